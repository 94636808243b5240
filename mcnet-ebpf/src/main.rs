//! mcnet's kernel programs: policy enforcement at the TC hooks of a pod's
//! host-side interface.
//!
//! - `mcnet_from_pod` runs on the interface's TC ingress hook: packets the
//!   pod sends, judged against its egress policy.
//! - `mcnet_to_pod` runs on the TC egress hook: packets for the pod, judged
//!   against its ingress policy.
//!
//! Each parses Ethernet, IPv4/IPv6 and TCP/UDP/SCTP/ICMP, passes tracked
//! connections and their replies, maps the peer address to an identity
//! through the ipcache (exact addresses, IPv4 ones direct-mapped, then a
//! per-family LPM trie, behind a per-/16 directory for IPv4, world on a
//! miss), looks the policy up (in a bucketed cache first, in the hash map
//! when the cache cannot say; userspace has merged deny precedence into
//! every key, so the most specific hit decides), counts the verdict per
//! CPU, and reports new flows and drops on a ring buffer.
//!
//! On any target but BPF this file builds as an empty host binary, so that
//! workspace-wide `cargo clippy` works.

#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]
// Word loads from packet data (see `prog::packet::load32`); the crate is built with
// the nightly toolchain anyway (`-Z build-std=core`).
#![cfg_attr(target_arch = "bpf", feature(asm_experimental_arch))]

#[cfg(target_arch = "bpf")]
mod prog;

#[cfg(not(target_arch = "bpf"))]
fn main() {}

#[cfg(target_arch = "bpf")]
#[link_section = "license"]
#[no_mangle]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
