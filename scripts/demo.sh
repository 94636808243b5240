#!/usr/bin/env bash
# The mcnet demo on the embedded default: validates the ADR-003 topology,
# analyses its paths (and what losing the MCR costs) and draws it.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
cargo run --quiet --release -p mcnet-examples --bin mcnet -- demo "$@"
