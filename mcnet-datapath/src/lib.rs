//! # mcnet-datapath
//!
//! The userspace half of mcnet's eBPF datapath. It embeds the kernel
//! programs built from `mcnet-ebpf`, loads them with aya, attaches them to
//! pods' host-side interfaces at the TC hooks (also inside network
//! namespaces), turns the policy engine's compiled state into kernel map
//! entries and keeps them in sync, and reads counters and flow events.
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use mcnet_core::policy::{Compiled, Manifests};
//! use mcnet_datapath::{Datapath, state::{Binding, DesiredState}};
//!
//! let m = Manifests::parse_str(&std::fs::read_to_string("policy.yaml")?)?;
//! let c = Compiled::new(&m);
//! let mut dp = Datapath::load()?;
//! let bind = vec![Binding { ifindex: mcnet_datapath::ifindex("lxc1")?, pod: "prod/api".into() }];
//! dp.sync(&DesiredState::from_compiled(&c, &bind)?)?;
//! dp.attach("lxc1")?;
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

#[cfg(feature = "agent")]
pub mod agent;
mod attach;
pub mod enforcer;
pub mod flows;
pub mod ipcache4;
#[cfg(any(test, feature = "lab"))]
pub mod lab;
mod load;
pub mod metrics;
mod mmap;
#[cfg(any(test, feature = "lab"))]
pub mod netns;
#[cfg(not(any(test, feature = "lab")))]
mod netns;
pub mod node;
pub mod policy_cache;
pub mod proxy;
pub mod state;
mod sync;
#[cfg(any(test, feature = "test-util"))]
pub mod testrun;
#[cfg(any(test, feature = "lab"))]
pub mod toplab;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use aya::maps::lpm_trie::{Key, LpmTrie};
use aya::maps::{Array, HashMap, MapData, PerCpuArray};
use aya::programs::tc::{self, SchedClassifierLinkId};
use aya::programs::{SchedClassifier, TcAttachType};
use aya::Ebpf;
use mcnet_ebpf_common::*;

pub use load::{ensure_bpffs, is_root, LoadOptions};
/// The index of the interface `name` in the caller's network namespace.
pub use netns::ifindex;

use attach::Attachment;
use ipcache4::{Directory, Placement, SlotTable};
use policy_cache::PolicyCache;
use state::{Delta, DesiredState};

/// The kernel object: the one this crate ships, or with the `build-ebpf`
/// feature the one built from `mcnet-ebpf` (empty with `MCNET_EBPF_STUB`).
pub static EBPF_OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/mcnet.bpf.o"));

/// Whether [`EBPF_OBJECT`] was built from the sources here (the `build-ebpf`
/// feature) rather than taken from the object this crate ships.
pub const EBPF_FROM_SOURCE: bool = cfg!(mcnet_ebpf_from_source);

/// The program on the TC ingress hook of a host-side interface (the pod's egress).
pub const FROM_POD: &str = "mcnet_from_pod";
/// The program on the TC egress hook (the pod's ingress).
pub const TO_POD: &str = "mcnet_to_pod";

/// Errors of the datapath.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The binary was built with `MCNET_EBPF_STUB`, so there is nothing to load.
    #[error("this build embeds a stub eBPF object (MCNET_EBPF_STUB was set); rebuild without it")]
    Stub,
    /// The kernel or aya refused the object.
    #[error("loading the eBPF object failed")]
    Load(#[source] Box<aya::EbpfError>),
    /// A program is missing, refused by the verifier, or cannot attach.
    #[error("program `{program}`: {action} failed")]
    Program {
        /// Program name.
        program: String,
        /// What was being done.
        action: String,
        /// The cause.
        #[source]
        source: Box<aya::programs::ProgramError>,
    },
    /// A map operation failed.
    #[error("map `{map}`: {action} failed")]
    Map {
        /// Map name.
        map: &'static str,
        /// What was being done.
        action: String,
        /// The cause.
        #[source]
        source: Box<aya::maps::MapError>,
    },
    /// The object lacks something it should have.
    #[error("the eBPF object has no {0}")]
    Missing(String),
    /// A system call on a map failed (mapping it into memory, say).
    #[error("{what}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Entering a network namespace or finding an interface failed.
    #[error("{what}")]
    Netns {
        /// What was being done.
        what: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A binding names a pod the compilation does not hold.
    #[error("pod `{pod}` is not in the manifests")]
    UnknownPod {
        /// `namespace/name`.
        pod: String,
    },
    /// A binding names a pod of another ClusterMesh cluster.
    #[error("pod `{pod}` belongs to cluster `{cluster}`, not the local one")]
    RemotePod {
        /// `namespace/name`.
        pod: String,
        /// Its cluster.
        cluster: String,
    },
    /// A command the lab runs (`ip`, `sysctl`) could not start.
    #[error("cannot run `{command}`")]
    Spawn {
        /// The command line.
        command: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A command the lab runs failed.
    #[error("`{command}` failed: {stderr}")]
    Command {
        /// The command line.
        command: String,
        /// What it printed on stderr.
        stderr: String,
    },
    /// A lab's parameters are refused (its prefix, a pod's address).
    #[error("lab {field} `{value}`: {reason}")]
    InvalidLab {
        /// Which parameter (`prefix`, `pod x/y address`).
        field: String,
        /// Its value.
        value: String,
        /// Why.
        reason: &'static str,
    },
}

/// `Result` with the datapath's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

fn map_err(
    map: &'static str,
    action: impl Into<String>,
) -> impl FnOnce(aya::maps::MapError) -> Error {
    let action = action.into();
    move |source| Error::Map {
        map,
        action,
        source: Box::new(source),
    }
}

fn perr(
    program: &str,
    action: impl Into<String>,
) -> impl FnOnce(aya::programs::ProgramError) -> Error {
    let (program, action) = (program.to_string(), action.into());
    move |source| Error::Program {
        program,
        action,
        source: Box::new(source),
    }
}

/// What happens on a port whose policy has L7 rules. The kernel cannot
/// judge requests, so a freshly loaded program drops them
/// ([`L7Mode::Deny`]) until told otherwise: fail closed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum L7Mode {
    /// Hand TCP connections to the L7 proxy ([`proxy::L7Proxy`]), which
    /// judges every request (the default of [`enforcer::Enforcer`]). Without
    /// a proxy listener in place they are dropped, `drop-proxy-unavailable`;
    /// UDP ports with L7 rules (DNS) are dropped, `drop-l7`.
    #[default]
    Enforce,
    /// Pass at L4, count it and mark its flow events `l7`: the L7 rules
    /// are not enforced.
    Audit,
    /// Drop, with reason `drop-l7`.
    Deny,
}

impl L7Mode {
    /// The `MCNET_CONFIG` value.
    fn config(self) -> u32 {
        match self {
            L7Mode::Enforce => L7_MODE_PROXY,
            L7Mode::Audit => L7_MODE_AUDIT,
            L7Mode::Deny => 0,
        }
    }

    /// `enforce`, `audit` or `deny`.
    pub fn name(self) -> &'static str {
        match self {
            L7Mode::Enforce => "enforce",
            L7Mode::Audit => "audit",
            L7Mode::Deny => "deny",
        }
    }
}

/// Verdict counters summed over CPUs.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counters {
    /// Packets and bytes by reason (`allowed-policy`, `drop-no-rule`, ...).
    pub by_reason: BTreeMap<&'static str, (u64, u64)>,
}

impl Counters {
    /// Packets counted for a reason.
    pub fn packets(&self, reason: &str) -> u64 {
        self.by_reason.get(reason).map(|c| c.0).unwrap_or(0)
    }

    /// Dropped packets.
    pub fn dropped(&self) -> u64 {
        self.by_reason
            .iter()
            .filter(|(k, _)| Reason::from_name(k).is_some_and(Reason::is_drop))
            .map(|(_, c)| c.0)
            .sum()
    }
}

/// The name of a `REASON_*` value.
pub fn reason_name(r: u32) -> &'static str {
    Reason::from_u32(r).map_or("unknown", Reason::name)
}

/// Opens map `name` of `ebpf` as a typed map (read-write).
fn open_mut<'a, T>(ebpf: &'a mut Ebpf, name: &'static str) -> Result<T>
where
    T: TryFrom<&'a mut aya::maps::Map, Error = aya::maps::MapError>,
{
    let map = ebpf
        .map_mut(name)
        .ok_or_else(|| Error::Missing(format!("map {name}")))?;
    T::try_from(map).map_err(map_err(name, "open"))
}

/// Opens map `name` of `ebpf` as a typed map (read-only).
fn open<'a, T>(ebpf: &'a Ebpf, name: &'static str) -> Result<T>
where
    T: TryFrom<&'a aya::maps::Map, Error = aya::maps::MapError>,
{
    let map = ebpf
        .map(name)
        .ok_or_else(|| Error::Missing(format!("map {name}")))?;
    T::try_from(map).map_err(map_err(name, "open"))
}

/// A TC program of `ebpf` by name.
fn classifier<'a>(ebpf: &'a mut Ebpf, name: &'static str) -> Result<&'a mut SchedClassifier> {
    ebpf.program_mut(name)
        .ok_or_else(|| Error::Missing(format!("program `{name}`")))?
        .try_into()
        .map_err(perr(name, "type check"))
}

/// The loaded datapath.
pub struct Datapath {
    ebpf: Ebpf,
    applied: DesiredState,
    /// The direct-mapped IPv4 ipcache, mapped into this process.
    slots4: SlotTable,
    /// What `MCNET_IPCACHE4` holds: IPv4 addresses without a slot.
    overflow4: BTreeMap<[u8; 4], u32>,
    /// The policy cache, mapped into this process.
    policy_cache: PolicyCache,
    /// Policy-cache buckets that a failed sync left out of use.
    stale_buckets: BTreeSet<u32>,
    /// The IPv4 prefix directory, mapped into this process.
    dir4: Directory,
    attachments: Vec<Attachment>,
    /// A private pin directory to remove on drop.
    private_pins: Option<PathBuf>,
    /// The public pin directory (links are pinned there too).
    pin_dir: Option<PathBuf>,
}

impl std::fmt::Debug for Datapath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Datapath")
            .field("attachments", &self.attachments.len())
            .finish_non_exhaustive()
    }
}

impl Datapath {
    /// Sets the L7 mode. [`L7Mode::Enforce`] needs the proxy's listener
    /// in place ([`Datapath::set_proxy_listener`]) and the node's routing
    /// ([`proxy::install_routing`]); without them L7 ports are dropped.
    pub fn set_l7_mode(&mut self, mode: L7Mode) -> Result<()> {
        let mut cfg: Array<&mut MapData, u32> = open_mut(&mut self.ebpf, "MCNET_CONFIG")?;
        cfg.set(CONFIG_L7_MODE, mode.config(), 0)
            .map_err(map_err("MCNET_CONFIG", "set"))
    }

    /// Puts the L7 proxy's listening socket where the kernel assigns
    /// redirected connections. The kernel forgets it when the socket closes.
    pub fn set_proxy_listener(&mut self, listener: std::os::fd::BorrowedFd<'_>) -> Result<()> {
        let mut map: aya::maps::SockMap<&mut MapData> = open_mut(&mut self.ebpf, "MCNET_PROXY")?;
        map.set(PROXY_SLOT_V4, &listener, 0)
            .map_err(map_err("MCNET_PROXY", "set"))
    }

    /// The kernel's records of the connections it redirected to the proxy
    /// (see [`proxy::OriginLookup`]). Once: the map moves out of the datapath.
    pub fn take_proxy_origins(
        &mut self,
    ) -> Result<aya::maps::HashMap<MapData, ProxyKey4, ProxyOrigin>> {
        let map = self
            .ebpf
            .take_map("MCNET_PROXY_ORIGIN4")
            .ok_or_else(|| Error::Missing("map MCNET_PROXY_ORIGIN4".into()))?;
        aya::maps::HashMap::try_from(map).map_err(map_err("MCNET_PROXY_ORIGIN4", "open"))
    }

    /// Forgets every tracked connection (as `cilium bpf ct flush` does):
    /// established flows are judged by the policy again on their next packet.
    /// Returns how many entries were removed.
    pub fn flush_conntrack(&mut self) -> Result<usize> {
        let mut n = 0;
        {
            let mut ct: HashMap<&mut MapData, CtKey4, CtValue> =
                open_mut(&mut self.ebpf, "MCNET_CT4")?;
            let keys: Vec<CtKey4> = ct.keys().filter_map(|k| k.ok()).collect();
            for k in keys {
                if ct.remove(&k).is_ok() {
                    n += 1;
                }
            }
        }
        let mut ct: HashMap<&mut MapData, CtKey, CtValue> = open_mut(&mut self.ebpf, "MCNET_CT")?;
        let keys: Vec<CtKey> = ct.keys().filter_map(|k| k.ok()).collect();
        for k in keys {
            if ct.remove(&k).is_ok() {
                n += 1;
            }
        }
        Ok(n)
    }

    /// Turns flow events on or off (counters keep counting).
    pub fn set_flow_events(&mut self, on: bool) -> Result<()> {
        let mut cfg: Array<&mut MapData, u32> = open_mut(&mut self.ebpf, "MCNET_CONFIG")?;
        cfg.set(CONFIG_EVENTS_OFF, if on { 0 } else { 1 }, 0)
            .map_err(map_err("MCNET_CONFIG", "set"))
    }

    /// Run time and run count of each program, from its fdinfo; non-zero
    /// only while `kernel.bpf_stats_enabled` is 1.
    pub fn run_stats(&self) -> Result<Vec<(&'static str, u64, u64)>> {
        let mut out = Vec::new();
        for name in [FROM_POD, TO_POD] {
            let fd = self.program_fd(name)?;
            let info =
                std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}")).map_err(|source| {
                    Error::Netns {
                        what: format!("reading fdinfo of {name}"),
                        source,
                    }
                })?;
            let field = |k: &str| {
                info.lines()
                    .find_map(|l| {
                        l.strip_prefix(k)
                            .map(|v| v.trim().parse::<u64>().unwrap_or(0))
                    })
                    .unwrap_or(0)
            };
            out.push((name, field("run_time_ns:"), field("run_cnt:")));
        }
        Ok(out)
    }

    /// Reads the verdict counters, summed over CPUs.
    pub fn counters(&self) -> Result<Counters> {
        let arr: PerCpuArray<&MapData, PacketCount> = open(&self.ebpf, "MCNET_COUNTERS")?;
        let mut out = Counters::default();
        for r in 0..REASON_COUNT {
            let values = arr.get(&r, 0).map_err(map_err("MCNET_COUNTERS", "read"))?;
            let (p, b) = values
                .iter()
                .fold((0, 0), |(p, b), v| (p + v.packets, b + v.bytes));
            out.by_reason.insert(reason_name(r), (p, b));
        }
        Ok(out)
    }

    /// Takes the flow ring buffer out of the datapath (once), for [`flows::FlowStream`].
    pub fn take_flows(&mut self) -> Result<aya::maps::RingBuf<MapData>> {
        let map = self
            .ebpf
            .take_map("MCNET_FLOWS")
            .ok_or_else(|| Error::Missing("map MCNET_FLOWS (already taken?)".into()))?;
        aya::maps::RingBuf::try_from(map).map_err(map_err("MCNET_FLOWS", "open"))
    }

    /// The state last synced.
    pub fn applied(&self) -> &DesiredState {
        &self.applied
    }
}

impl Drop for Datapath {
    fn drop(&mut self) {
        let _ = self.detach_all();
        if let Some(p) = &self.private_pins {
            let _ = std::fs::remove_dir_all(p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_types_have_the_kernel_layout() {
        assert_eq!(std::mem::size_of::<PolicyKey>(), 12);
        assert_eq!(std::mem::size_of::<PolicyValue>(), 8);
        assert_eq!(std::mem::size_of::<CtKey>(), 44);
        assert_eq!(std::mem::size_of::<FlowEvent>(), 72);
        assert_eq!(std::mem::align_of::<FlowEvent>(), 8);
        assert_eq!(std::mem::size_of::<EndpointInfo>(), 8);
        assert_eq!(std::mem::size_of::<PacketCount>(), 16);
    }

    /// docs/datapath.md's reason table lists every reason, in counter
    /// order, with the verdict the program gives it.
    #[test]
    fn the_reason_table_in_the_docs_is_the_enum() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/datapath.md");
        let doc = std::fs::read_to_string(path).expect("docs/datapath.md");
        let table = doc
            .split_once("| reason | verdict | meaning |")
            .expect("the reason table")
            .1;
        let rows: Vec<(String, String)> = table
            .lines()
            .skip(2)
            .take_while(|l| l.starts_with('|'))
            .map(|l| {
                let cells: Vec<&str> = l.split('|').map(str::trim).collect();
                (cells[1].trim_matches('`').to_string(), cells[2].to_string())
            })
            .collect();
        let want: Vec<(String, String)> = mcnet_ebpf_common::Reason::ALL
            .iter()
            .map(|r| {
                let verdict = if r.is_drop() { "dropped" } else { "forwarded" };
                (r.name().to_string(), verdict.to_string())
            })
            .collect();
        assert_eq!(rows, want);
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
