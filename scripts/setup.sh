#!/usr/bin/env bash
# Installs what building and testing mcnet needs on a fresh Debian 12 machine.
# Idempotent: every step checks first, so a second run takes seconds.
set -euo pipefail

say() { printf '\033[1m[setup]\033[0m %s\n' "$*" >&2; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
        say "need root for: $*"; return 1; fi
}

# Debian packages: iproute2 for the netns lab; iptables, ipset and nftables for
# the datapath benchmark's baselines; openssl to check our certificates with an
# independent TLS implementation; nginx (with its stream module) as the mTLS
# proxy the gateway benchmark compares against; dig, dnsperf and NSD for the
# GSLB tests and benchmark; promtool (prometheus) and VictoriaMetrics for the
# metrics tests; curl as a real HTTP client in the L7 proxy tests (nginx also
# serves as the L7 reverse proxy the proxy benchmark compares against); BIRD 2
# as the BGP speakers (MCR, cloud edges, network routers) of `mcnet lab`;
# Chromium (headless, driven over the DevTools protocol) for the `mcnet ui`
# browser test.
missing=()
for pkg in iproute2 curl pkg-config iptables ipset nftables openssl nginx-light libnginx-mod-stream \
    bind9-dnsutils dnsperf nsd prometheus victoria-metrics bird2 chromium; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
    say "installing Debian packages: ${missing[*]}"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
fi

# Rust: the stable toolchain builds the workspace; nightly with rust-src builds the eBPF programs.
command -v rustup >/dev/null || { say "rustup is required (https://rustup.rs)"; exit 1; }
if ! rustup toolchain list | grep -q '^nightly'; then
    say "installing the nightly toolchain"
    rustup toolchain install nightly --profile minimal
fi
if ! rustup component list --toolchain nightly --installed 2>/dev/null | grep -q '^rust-src'; then
    say "adding rust-src to nightly"
    rustup component add rust-src --toolchain nightly
fi
for c in rustfmt clippy; do
    if ! rustup component list --installed 2>/dev/null | grep -q "^$c"; then
        say "adding $c"
        rustup component add "$c"
    fi
done

# bpf-linker links the aya-ebpf programs; 0.10.0 uses the nightly's own LLVM.
if ! bpf-linker --version 2>/dev/null | grep -q '0\.10\.0'; then
    say "installing bpf-linker 0.10.0 (about a minute)"
    cargo +nightly install bpf-linker --version 0.10.0 --locked
fi
# moto's EC2 server stands in for AWS in the AWS provider's tests; boto3
# (which moto brings) checks what the provider did, independently of it.
if ! command -v moto_server >/dev/null || ! python3 -c 'import moto.server, boto3' 2>/dev/null; then
    say "installing moto[server]"
    python3 -m pip install --quiet 'moto[server]' 2>/dev/null \
        || python3 -m pip install --quiet --break-system-packages 'moto[server]'
fi
say "ready"
