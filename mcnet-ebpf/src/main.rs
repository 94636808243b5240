//! mcnet's kernel programs.
//!
//! `mcnet_tc_from_pod` and `mcnet_tc_to_pod` are TC classifiers for the two
//! hooks of a pod's host-side interface. They count packets and bytes per
//! direction in a per-CPU array and let every packet through. It proves the build
//! chain (nightly, `-Z build-std=core`, bpf-linker) and the loader.
//!
//! On any target but BPF this file builds as an empty host binary, so that
//! workspace-wide `cargo clippy` works.

#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]

#[cfg(target_arch = "bpf")]
mod prog {
    use aya_ebpf::{
        bindings::TC_ACT_OK, macros::classifier, macros::map, maps::PerCpuArray,
        programs::TcContext,
    };
    use mcnet_ebpf_common::{Counter, PacketCount, COUNTER_SLOTS};

    /// Per-CPU packet and byte counts, indexed by [`mcnet_ebpf_common::Counter`].
    #[map(name = "MCNET_COUNTERS")]
    static COUNTERS: PerCpuArray<PacketCount> = PerCpuArray::with_max_entries(COUNTER_SLOTS, 0);

    #[inline(always)]
    fn count(ctx: &TcContext, slot: Counter) -> i32 {
        if let Some(c) = COUNTERS.get_ptr_mut(slot as u32) {
            // SAFETY: a per-CPU slot has no concurrent writer on this CPU.
            unsafe {
                (*c).packets += 1;
                (*c).bytes += ctx.len() as u64;
            }
        }
        TC_ACT_OK
    }

    /// TC ingress hook of the host-side interface: packets leaving the pod.
    #[classifier]
    pub fn mcnet_tc_from_pod(ctx: TcContext) -> i32 {
        count(&ctx, Counter::Egress)
    }

    /// TC egress hook of the host-side interface: packets entering the pod.
    #[classifier]
    pub fn mcnet_tc_to_pod(ctx: TcContext) -> i32 {
        count(&ctx, Counter::Ingress)
    }

    #[panic_handler]
    fn panic(_info: &core::panic::PanicInfo<'_>) -> ! {
        loop {}
    }
}

#[cfg(not(target_arch = "bpf"))]
fn main() {}

#[cfg(target_arch = "bpf")]
#[link_section = "license"]
#[no_mangle]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
