#!/usr/bin/env bash
# Runs every mcnet test: formatting, clippy, unit, integration, property,
# conformance and doc tests, the benchmarks in test mode, and the root-only
# kernel tests (they skip themselves without root).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh

# The minimum supported Rust version (the workspace's rust-version), built
# with exactly that toolchain.
MSRV="$(sed -n 's/^rust-version = "\(.*\)"/\1/p' Cargo.toml)"
if ! rustup toolchain list | grep -q "^$MSRV"; then
    printf '\033[1m[test]\033[0m installing Rust %s (the MSRV)\n' "$MSRV" >&2
    rustup toolchain install "$MSRV" --profile minimal
fi
# cargo-deny checks licences, bans and sources.
if ! cargo deny --version 2>/dev/null | grep -q '0\.20\.2'; then
    printf '\033[1m[test]\033[0m installing cargo-deny 0.20.2 (a few minutes)\n' >&2
    cargo install cargo-deny --version 0.20.2 --locked
fi

# A one-off run gains nothing from incremental caches but their disk.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

say() { printf '\033[1m[test]\033[0m %s\n' "$*" >&2; }

say "cargo fmt --check"
cargo fmt --all -- --check
say "cargo clippy (all targets, -D warnings)"
cargo clippy --workspace --exclude mcnet-ebpf --all-targets -- -D warnings
say "cargo test (workspace, all targets)"
cargo test --workspace --exclude mcnet-ebpf --all-targets --no-fail-fast
say "doc tests"
cargo test --workspace --exclude mcnet-ebpf --doc
say "cargo doc (-D warnings)"
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --workspace --exclude mcnet-ebpf
# Each library alone, with its default features (what a dependent's docs
# build): a link to an item behind a feature must not break it.
for crate in mcnet-core mcnet-cloud mcnet-mesh mcnet-datapath; do
    RUSTDOCFLAGS="-D warnings" cargo doc --quiet --no-deps -p "$crate"
done
say "feature matrix (each crate: default, none, each feature alone)"
./scripts/feature-matrix.sh
say "MSRV build (rust-version = $MSRV)"
cargo "+$MSRV" check --quiet --workspace --exclude mcnet-ebpf --all-targets
say "cargo deny (licences, bans, sources; advisories need GitHub, see deny.toml)"
cargo deny --all-features check licenses bans sources
say "all tests passed (target dir: $(du -sh target 2>/dev/null | cut -f1))"
