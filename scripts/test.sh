#!/usr/bin/env bash
# Runs every mcnet test: formatting, clippy, unit, integration, property,
# conformance and doc tests, the benchmarks in test mode, and the root-only
# kernel tests (they skip themselves without root).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh

say() { printf '\033[1m[test]\033[0m %s\n' "$*" >&2; }

say "cargo fmt --check"
cargo fmt --all -- --check
say "cargo clippy (all targets, -D warnings)"
cargo clippy --workspace --exclude mcnet-ebpf --all-targets -- -D warnings
say "cargo test (workspace, all targets)"
cargo test --workspace --exclude mcnet-ebpf --all-targets
say "doc tests"
cargo test --workspace --exclude mcnet-ebpf --doc
say "all tests passed"
