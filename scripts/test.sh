#!/usr/bin/env bash
# Runs every mcnet test: formatting, clippy, unit, integration, property,
# conformance and doc tests, the benchmarks in test mode, and the root-only
# kernel tests (they skip themselves without root).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh

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
say "all tests passed (target dir: $(du -sh target 2>/dev/null | cut -f1))"
