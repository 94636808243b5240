#!/usr/bin/env bash
# Checks that each library crate builds with its default features, with no
# features, and with each feature alone (what cargo-hack's
# `--each-feature` does), so a feature never leans on another one that a
# user may not enable.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\033[1m[features]\033[0m %s\n' "$*" >&2; }

crates=(mcnet-core mcnet-cloud mcnet-mesh mcnet-datapath mcnet-ebpf-common)
features_of() {
    cargo metadata --no-deps --format-version 1 | python3 -c '
import json, sys
crate = sys.argv[1]
for p in json.load(sys.stdin)["packages"]:
    if p["name"] == crate:
        print("\n".join(sorted(f for f in p["features"] if f != "default")))
' "$1"
}

for crate in "${crates[@]}"; do
    say "$crate: default features"
    cargo check --quiet -p "$crate" --lib
    say "$crate: no features"
    cargo check --quiet -p "$crate" --lib --no-default-features
    for feature in $(features_of "$crate"); do
        say "$crate: --features $feature alone"
        cargo check --quiet -p "$crate" --lib --no-default-features --features "$feature"
    done
done
say "every crate builds with each feature alone"
