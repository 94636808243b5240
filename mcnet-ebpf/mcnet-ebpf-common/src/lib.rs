//! `#[repr(C)]` types shared by the kernel programs in `mcnet-ebpf` and the
//! userspace loader in `mcnet-datapath`. No `bool`, explicit padding, and
//! size assertions on both sides.

#![no_std]

/// Index into the per-CPU packet counters.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counter {
    /// Packets seen on ingress (into the pod).
    Ingress = 0,
    /// Packets seen on egress (out of the pod).
    Egress = 1,
}

/// Number of counter slots.
pub const COUNTER_SLOTS: u32 = 2;

/// One per-CPU counter slot.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PacketCount {
    /// Packets.
    pub packets: u64,
    /// Bytes.
    pub bytes: u64,
}

const _: () = assert!(core::mem::size_of::<PacketCount>() == 16);

#[cfg(feature = "user")]
// SAFETY: PacketCount is repr(C), has no padding and is valid for any bit pattern.
unsafe impl aya::Pod for PacketCount {}
