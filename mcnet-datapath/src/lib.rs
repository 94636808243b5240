//! # mcnet-datapath
//!
//! The userspace half of mcnet's eBPF datapath: it embeds the kernel
//! programs built from `mcnet-ebpf`, loads them with aya, attaches them to
//! a pod's host-side interface at the TC hooks, and reads their maps.

#![warn(missing_docs)]

use aya::maps::PerCpuArray;
use aya::programs::{tc, SchedClassifier, TcAttachType};
use aya::Ebpf;
use mcnet_ebpf_common::{Counter, PacketCount};

/// The kernel object built by `build.rs` (empty when built with `MCNET_EBPF_STUB`).
pub static EBPF_OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/mcnet.bpf.o"));

/// Names of the programs in [`EBPF_OBJECT`].
pub const PROGRAMS: [&str; 2] = ["mcnet_tc_from_pod", "mcnet_tc_to_pod"];

/// Errors of the datapath.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The binary was built with `MCNET_EBPF_STUB`, so there is nothing to load.
    #[error("this build embeds a stub eBPF object (MCNET_EBPF_STUB was set); rebuild without it")]
    Stub,
    /// The kernel or aya refused the object.
    #[error("loading the eBPF object failed")]
    Load(#[source] aya::EbpfError),
    /// A program is missing or refused by the verifier.
    #[error("program `{program}`: {action} failed")]
    Program {
        /// Program name.
        program: String,
        /// What was being done.
        action: &'static str,
        /// The cause.
        #[source]
        source: aya::programs::ProgramError,
    },
    /// A map is missing or has the wrong type.
    #[error("map `{map}` is unusable")]
    Map {
        /// Map name.
        map: String,
        /// The cause.
        #[source]
        source: aya::maps::MapError,
    },
    /// The object lacks something it should have.
    #[error("the eBPF object has no {0}")]
    Missing(String),
}

/// `Result` with the datapath's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The loaded kernel programs.
pub struct Datapath {
    ebpf: Ebpf,
}

impl std::fmt::Debug for Datapath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Datapath").finish_non_exhaustive()
    }
}

/// Packet and byte counts summed over CPUs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Into the pod.
    pub to_pod: PacketCount,
    /// Out of the pod.
    pub from_pod: PacketCount,
}

impl Datapath {
    /// Loads the embedded object and every program into the kernel (which
    /// runs the verifier). Needs CAP_BPF (root).
    pub fn load() -> Result<Self> {
        if EBPF_OBJECT.is_empty() {
            return Err(Error::Stub);
        }
        let mut ebpf = Ebpf::load(EBPF_OBJECT).map_err(Error::Load)?;
        for name in PROGRAMS {
            let prog: &mut SchedClassifier = ebpf
                .program_mut(name)
                .ok_or_else(|| Error::Missing(format!("program `{name}`")))?
                .try_into()
                .map_err(|source| Error::Program {
                    program: name.into(),
                    action: "type check",
                    source,
                })?;
            prog.load().map_err(|source| Error::Program {
                program: name.into(),
                action: "load",
                source,
            })?;
        }
        Ok(Datapath { ebpf })
    }

    /// Attaches both programs to `iface`, the host-side interface of a pod,
    /// in the current network namespace.
    pub fn attach(&mut self, iface: &str) -> Result<()> {
        // The clsact qdisc may already exist; that is fine.
        let _ = tc::qdisc_add_clsact(iface);
        for (name, hook) in [
            (PROGRAMS[0], TcAttachType::Ingress),
            (PROGRAMS[1], TcAttachType::Egress),
        ] {
            let prog: &mut SchedClassifier = self
                .ebpf
                .program_mut(name)
                .ok_or_else(|| Error::Missing(format!("program `{name}`")))?
                .try_into()
                .map_err(|source| Error::Program {
                    program: name.into(),
                    action: "type check",
                    source,
                })?;
            prog.attach(iface, hook).map_err(|source| Error::Program {
                program: name.into(),
                action: "attach",
                source,
            })?;
        }
        Ok(())
    }

    /// Reads the counters, summed over CPUs.
    pub fn counters(&self) -> Result<Counters> {
        let map = self
            .ebpf
            .map("MCNET_COUNTERS")
            .ok_or_else(|| Error::Missing("map `MCNET_COUNTERS`".into()))?;
        let arr: PerCpuArray<_, PacketCount> =
            PerCpuArray::try_from(map).map_err(|source| Error::Map {
                map: "MCNET_COUNTERS".into(),
                source,
            })?;
        let sum = |slot: Counter| -> Result<PacketCount> {
            let values = arr.get(&(slot as u32), 0).map_err(|source| Error::Map {
                map: "MCNET_COUNTERS".into(),
                source,
            })?;
            Ok(values
                .iter()
                .fold(PacketCount::default(), |acc, v| PacketCount {
                    packets: acc.packets + v.packets,
                    bytes: acc.bytes + v.bytes,
                }))
        };
        Ok(Counters {
            to_pod: sum(Counter::Ingress)?,
            from_pod: sum(Counter::Egress)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_types_have_the_kernel_layout() {
        assert_eq!(std::mem::size_of::<PacketCount>(), 16);
        assert_eq!(std::mem::align_of::<PacketCount>(), 8);
    }

    #[test]
    fn object_is_embedded_unless_stubbed() {
        if cfg!(mcnet_ebpf_stub) {
            assert!(EBPF_OBJECT.is_empty());
        } else {
            // An ELF relocatable for BPF: magic, 64-bit, little-endian, EM_BPF (247).
            assert_eq!(&EBPF_OBJECT[..4], b"\x7fELF");
            assert_eq!(EBPF_OBJECT[4], 2);
            assert_eq!(EBPF_OBJECT[5], 1);
            assert_eq!(u16::from_le_bytes([EBPF_OBJECT[18], EBPF_OBJECT[19]]), 247);
        }
    }
}
