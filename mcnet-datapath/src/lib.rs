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
//! let bind = vec![Binding { ifindex: mcnet_datapath::netns::ifindex("lxc1")?, pod: "prod/api".into() }];
//! dp.sync(&DesiredState::from_compiled(&c, &bind)?)?;
//! dp.attach("lxc1")?;
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

pub mod enforcer;
pub mod flows;
pub mod ipcache4;
pub mod lab;
pub mod metrics;
mod mmap;
pub mod netns;
pub mod node;
pub mod policy_cache;
pub mod state;
pub mod testrun;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use aya::maps::lpm_trie::{Key, LpmTrie};
use aya::maps::{Array, HashMap, MapData, PerCpuArray};
use aya::programs::tc::{self, SchedClassifierLinkId};
use aya::programs::{SchedClassifier, TcAttachType};
use aya::Ebpf;
use mcnet_ebpf_common::*;

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
/// judge requests, so [`L7Mode::Deny`] is what a freshly loaded program
/// does until told otherwise: fail closed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum L7Mode {
    /// Pass at L4, count it and mark its flow events `l7` (no proxy here):
    /// the L7 rules are not enforced.
    Audit,
    /// Drop, with reason `drop-l7` (the default).
    #[default]
    Deny,
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

/// How to load the datapath.
#[derive(Clone, Debug, Default)]
pub struct LoadOptions {
    /// Pin the maps here (on a bpffs) and reuse maps already pinned there,
    /// so that a restarted agent keeps conntrack and policy state. Without
    /// it the maps live in a private directory removed when the datapath
    /// is dropped.
    pub pin_dir: Option<PathBuf>,
}

/// Whether this process runs as root (the datapath needs it; tests skip without it).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Mounts the BPF filesystem at /sys/fs/bpf unless it is there.
pub fn ensure_bpffs() -> Result<()> {
    let mounted = std::fs::read_to_string("/proc/self/mounts")
        .map(|m| {
            m.lines().any(|l| {
                l.split_whitespace().nth(1) == Some("/sys/fs/bpf")
                    && l.split_whitespace().nth(2) == Some("bpf")
            })
        })
        .unwrap_or(false);
    if mounted {
        return Ok(());
    }
    let _ = std::fs::create_dir_all("/sys/fs/bpf");
    let status = std::process::Command::new("mount")
        .args(["-t", "bpf", "bpf", "/sys/fs/bpf"])
        .status()
        .map_err(|source| Error::Netns {
            what: "mounting bpffs on /sys/fs/bpf".into(),
            source,
        })?;
    if !status.success() {
        return Err(Error::Netns {
            what: "mounting bpffs on /sys/fs/bpf".into(),
            source: std::io::Error::other(format!("mount exited with {status}")),
        });
    }
    Ok(())
}

/// A program attached to a hook: owned by this process, or pinned in the
/// bpffs so that it outlives the process (and a restarted agent takes over).
enum AttachedLink {
    Owned(&'static str, SchedClassifierLinkId),
    Pinned(aya::programs::links::PinnedLink),
}

/// ipcache writes grouped by the map they go to (`None`: remove).
#[derive(Default)]
struct IpcacheOps {
    v4: Vec<([u8; 4], Option<u32>)>,
    v6: Vec<([u8; 16], Option<u32>)>,
    prefixes4: Vec<(Key<[u8; 4]>, Option<u32>)>,
    prefixes6: Vec<(Key<IpKey>, Option<u32>)>,
}

/// Slot and IPv4 hash-map writes of one sync (see `Datapath::plan_slots`).
#[derive(Default)]
struct SlotPlan {
    overflow_upsert: Vec<([u8; 4], u32)>,
    /// Slot words written after the hash map's upserts.
    fill: Vec<(u32, u64)>,
    /// Slot words written last: cleared slots, and shared marks dropped.
    finish: Vec<(u32, u64)>,
    overflow_remove: BTreeSet<[u8; 4]>,
}

/// Maps a mmapable array of a loaded object into this process.
fn map_array<T>(
    ebpf: &Ebpf,
    name: &str,
    map: impl FnOnce(std::os::fd::BorrowedFd<'_>) -> std::io::Result<T>,
) -> Result<T> {
    use std::os::fd::AsFd;
    let Some(aya::maps::Map::Array(data)) = ebpf.map(name) else {
        return Err(Error::Missing(format!("array map {name}")));
    };
    map(data.fd().as_fd()).map_err(|source| Error::Io {
        what: format!("mapping {name} into memory"),
        source,
    })
}

struct Attachment {
    netns: Option<PathBuf>,
    iface: String,
    links: Vec<AttachedLink>,
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
    /// Loads the embedded object and both programs into the kernel (which
    /// runs the verifier), with private maps. Needs root.
    pub fn load() -> Result<Self> {
        Self::load_with(&LoadOptions::default())
    }

    /// Loads with options; with a pin directory, maps pinned there by an
    /// earlier agent are reused (and their state with them), and the
    /// applied state is read back from them.
    pub fn load_with(options: &LoadOptions) -> Result<Self> {
        use std::sync::atomic::{AtomicU32, Ordering};
        static PRIVATE: AtomicU32 = AtomicU32::new(0);
        if EBPF_OBJECT.is_empty() {
            return Err(Error::Stub);
        }
        ensure_bpffs()?;
        let (dir, private) = match &options.pin_dir {
            Some(d) => (d.clone(), None),
            None => {
                let d = PathBuf::from(format!(
                    "/sys/fs/bpf/mcnet-private-{}-{}",
                    std::process::id(),
                    PRIVATE.fetch_add(1, Ordering::Relaxed)
                ));
                (d.clone(), Some(d))
            }
        };
        std::fs::create_dir_all(&dir).map_err(|source| Error::Netns {
            what: format!("creating pin directory {}", dir.display()),
            source,
        })?;
        let loaded = aya::EbpfLoader::new()
            .map_pin_path(&dir)
            .load(EBPF_OBJECT)
            .map_err(|e| Error::Load(Box::new(e)));
        let ebpf = match loaded {
            Ok(e) => e,
            Err(e) => {
                if let Some(p) = &private {
                    let _ = std::fs::remove_dir_all(p);
                }
                return Err(e);
            }
        };
        let mapped: Result<_> = (|| {
            Ok((
                map_array(&ebpf, "MCNET_IPCACHE4_SLOTS", SlotTable::map)?,
                map_array(&ebpf, "MCNET_POLICY_CACHE", PolicyCache::map)?,
                map_array(&ebpf, "MCNET_IPCACHE4_DIR", Directory::map)?,
            ))
        })();
        let (slots4, policy_cache, dir4) = match mapped {
            Ok(m) => m,
            Err(e) => {
                if let Some(p) = &private {
                    let _ = std::fs::remove_dir_all(p);
                }
                return Err(e);
            }
        };
        // From here on, Drop cleans a private pin directory up.
        let mut dp = Datapath {
            ebpf,
            applied: DesiredState::default(),
            slots4,
            overflow4: BTreeMap::new(),
            policy_cache,
            stale_buckets: BTreeSet::new(),
            dir4,
            attachments: Vec::new(),
            private_pins: private,
            pin_dir: options.pin_dir.clone(),
        };
        for name in [FROM_POD, TO_POD] {
            classifier(&mut dp.ebpf, name)?
                .load()
                .map_err(perr(name, "load"))?;
        }
        (dp.applied, dp.overflow4) = dp.read_back()?;
        // Pinned maps may come from an agent that kept IPv4 prefixes in the
        // IPv6 trie, every IPv4 address in the hash map, and no lookup
        // flags: move the prefixes, mark the slots of hashed addresses as
        // shared (the next sync gives them slots of their own), and set the
        // flags from what the maps hold.
        dp.move_ipv4_prefixes()?;
        dp.share_slots_of_hashed_addresses();
        // The cache may be new (maps from an agent without it) or hold
        // buckets a sync cut short left odd: match it to the hash map.
        dp.policy_cache.rebuild(&dp.applied.policy);
        // Likewise the prefix directory, from what the tries hold (each
        // word replaced in one store).
        for (i, word) in dp.dir4.changes(&ipcache4::directory(&dp.applied.ipcache)) {
            dp.dir4.set(i, word);
        }
        let held = dp.applied.ipcache_maps();
        dp.set_lookup_flags(held)?;
        Ok(dp)
    }

    /// Moves IPv4 prefixes that an earlier agent kept in the IPv6 trie into
    /// the IPv4 one: written there first, then removed from the old place.
    fn move_ipv4_prefixes(&mut self) -> Result<()> {
        let mut misplaced = Vec::new();
        {
            let ipc: LpmTrie<&MapData, IpKey, u32> = open(&self.ebpf, "MCNET_IPCACHE")?;
            for kv in ipc.iter() {
                let (k, v) = kv.map_err(map_err("MCNET_IPCACHE", "read"))?;
                if let Some(v4) = state::ipv4_prefix(k.prefix_len(), &k.data().addr) {
                    misplaced.push((k, v4, v));
                }
            }
        }
        if misplaced.is_empty() {
            return Ok(());
        }
        {
            let mut m: LpmTrie<&mut MapData, [u8; 4], u32> =
                open_mut(&mut self.ebpf, "MCNET_IPCACHE_V4")?;
            for (_, (len, net), id) in &misplaced {
                m.insert(&Key::new(*len, net.octets()), id, 0)
                    .map_err(map_err("MCNET_IPCACHE_V4", "insert"))?;
            }
        }
        let mut m: LpmTrie<&mut MapData, IpKey, u32> = open_mut(&mut self.ebpf, "MCNET_IPCACHE")?;
        for (k, _, _) in &misplaced {
            let _ = m.remove(k);
        }
        tracing::info!(
            prefixes = misplaced.len(),
            "moved IPv4 prefixes from the IPv6 trie to the IPv4 one"
        );
        Ok(())
    }

    /// Writes the `CONFIG` flags that let lookups skip the ipcache maps
    /// that hold nothing: `(IPv4, IPv6)`.
    fn set_lookup_flags(&mut self, (v4, v6): (u32, u32)) -> Result<()> {
        let mut cfg: Array<&mut MapData, u32> = open_mut(&mut self.ebpf, "MCNET_CONFIG")?;
        for (slot, maps) in [(CONFIG_PREFIXES_V4, v4), (CONFIG_PREFIXES_V6, v6)] {
            cfg.set(slot, maps, 0)
                .map_err(map_err("MCNET_CONFIG", "set"))?;
        }
        Ok(())
    }

    /// Marks the slot of every hashed IPv4 address that does not hold it as
    /// shared, so that lookups of the address reach the hash map.
    fn share_slots_of_hashed_addresses(&self) {
        for a in self.overflow4.keys() {
            let slot = ipcache4_slot(u32::from_be_bytes(*a));
            let word = self.slots4.get(slot);
            let holds = ipcache4::decode(word).is_some_and(|(b, _)| b == *a);
            if !holds && word & IPCACHE4_SHARED == 0 {
                self.slots4.set(slot, word | IPCACHE4_SHARED);
            }
        }
    }

    /// What the IPv4 exact-address hash map holds.
    fn read_overflow4(&self) -> Result<BTreeMap<[u8; 4], u32>> {
        let ip4: HashMap<&MapData, [u8; 4], u32> = open(&self.ebpf, "MCNET_IPCACHE4")?;
        ip4.iter()
            .map(|kv| kv.map_err(map_err("MCNET_IPCACHE4", "read")))
            .collect()
    }

    /// Reads the state the maps hold now (after a restart, what the previous agent synced).
    pub fn observe(&self) -> Result<DesiredState> {
        Ok(self.read_back()?.0)
    }

    /// The state the maps hold, and what the IPv4 hash map holds of it.
    fn read_back(&self) -> Result<(DesiredState, BTreeMap<[u8; 4], u32>)> {
        let mut s = DesiredState::default();
        let eps: Array<&MapData, EndpointInfo> = open(&self.ebpf, "MCNET_ENDPOINTS")?;
        for (k, v) in eps.iter().enumerate() {
            let v = v.map_err(map_err("MCNET_ENDPOINTS", "read"))?;
            if v.identity != 0 {
                s.endpoints.insert(k as u32, v);
            }
        }
        let pol: HashMap<&MapData, PolicyKey, PolicyValue> = open(&self.ebpf, "MCNET_POLICY")?;
        for kv in pol.iter() {
            let (k, v) = kv.map_err(map_err("MCNET_POLICY", "read"))?;
            s.policy.insert(k, v);
        }
        // The hash map, then the slots: where both hold an address (a sync
        // cut short), the kernel finds the slot first.
        let v4 = |a: [u8; 4]| (128, std::net::Ipv4Addr::from(a).to_ipv6_mapped().octets());
        let overflow4 = self.read_overflow4()?;
        for (&a, &id) in &overflow4 {
            s.ipcache.insert(v4(a), id);
        }
        for (_, word) in self.slots4.occupied() {
            if let Some((a, id)) = ipcache4::decode(word) {
                s.ipcache.insert(v4(a), id);
            }
        }
        let ip6: HashMap<&MapData, [u8; 16], u32> = open(&self.ebpf, "MCNET_IPCACHE6")?;
        for kv in ip6.iter() {
            let (k, v) = kv.map_err(map_err("MCNET_IPCACHE6", "read"))?;
            s.ipcache.insert((128, k), v);
        }
        let ipc: LpmTrie<&MapData, IpKey, u32> = open(&self.ebpf, "MCNET_IPCACHE")?;
        for kv in ipc.iter() {
            let (k, v) = kv.map_err(map_err("MCNET_IPCACHE", "read"))?;
            s.ipcache.insert((k.prefix_len(), k.data().addr), v);
        }
        let ipc4: LpmTrie<&MapData, [u8; 4], u32> = open(&self.ebpf, "MCNET_IPCACHE_V4")?;
        for kv in ipc4.iter() {
            let (k, v) = kv.map_err(map_err("MCNET_IPCACHE_V4", "read"))?;
            let addr = std::net::Ipv4Addr::from(k.data()).to_ipv6_mapped().octets();
            s.ipcache.insert((96 + k.prefix_len(), addr), v);
        }
        Ok((s, overflow4))
    }

    /// The file descriptor of a program (for BPF_PROG_TEST_RUN).
    pub fn program_fd(&self, name: &str) -> Result<std::os::fd::RawFd> {
        use std::os::fd::{AsFd, AsRawFd};
        let prog: &SchedClassifier = self
            .ebpf
            .program(name)
            .ok_or_else(|| Error::Missing(format!("program `{name}`")))?
            .try_into()
            .map_err(perr(name, "type check"))?;
        let fd = prog.fd().map_err(perr(name, "fd"))?;
        Ok(fd.as_fd().as_raw_fd())
    }

    fn attach_here(&mut self, iface: &str) -> Result<Vec<AttachedLink>> {
        use aya::programs::links::{FdLink, PinnedLink};
        // The clsact qdisc matters only where TCX is missing; it may exist already.
        let _ = tc::qdisc_add_clsact(iface);
        let mut links = Vec::new();
        for (name, hook, tag) in [
            (FROM_POD, TcAttachType::Ingress, "ingress"),
            (TO_POD, TcAttachType::Egress, "egress"),
        ] {
            let pin = self
                .pin_dir
                .as_ref()
                .map(|d| d.join("links").join(format!("{iface}-{tag}")));
            // A link a previous agent pinned keeps enforcing until ours is in place.
            let previous: Option<FdLink> = pin
                .as_ref()
                .filter(|p| p.exists())
                .and_then(|p| PinnedLink::from_pin(p).ok())
                .and_then(|l| l.unpin().ok());
            let prog = classifier(&mut self.ebpf, name)?;
            let id = prog
                .attach(iface, hook)
                .map_err(perr(name, format!("attach to {iface}")))?;
            match pin {
                None => links.push(AttachedLink::Owned(name, id)),
                Some(path) => {
                    let link = prog.take_link(id).map_err(perr(name, "take link"))?;
                    let fd = FdLink::try_from(link).map_err(|e| Error::Netns {
                        what: format!("{iface}: the kernel attached without a TCX link, which cannot be pinned"),
                        source: std::io::Error::other(e.to_string()),
                    })?;
                    if let Some(parent) = path.parent() {
                        let _ = std::fs::create_dir_all(parent);
                    }
                    let pinned = fd.pin(&path).map_err(|e| Error::Netns {
                        what: format!("pinning {}", path.display()),
                        source: std::io::Error::other(e.to_string()),
                    })?;
                    links.push(AttachedLink::Pinned(pinned));
                }
            }
            // Now the previous link may go (dropping it detaches its program).
            drop(previous);
        }
        Ok(links)
    }

    /// Attaches both programs to `iface` in the current network namespace.
    pub fn attach(&mut self, iface: &str) -> Result<()> {
        let links = self.attach_here(iface)?;
        self.attachments.push(Attachment {
            netns: None,
            iface: iface.into(),
            links,
        });
        Ok(())
    }

    /// Attaches both programs to `iface` inside the network namespace at `netns`.
    pub fn attach_in(&mut self, netns: &Path, iface: &str) -> Result<()> {
        let links =
            netns::run_in(netns, || self.attach_here(iface)).map_err(|source| Error::Netns {
                what: format!("entering {}", netns.display()),
                source,
            })??;
        self.attachments.push(Attachment {
            netns: Some(netns.to_path_buf()),
            iface: iface.into(),
            links,
        });
        Ok(())
    }

    fn detach_links(&mut self, links: Vec<AttachedLink>) -> Result<()> {
        for link in links {
            match link {
                AttachedLink::Owned(name, id) => {
                    classifier(&mut self.ebpf, name)?
                        .detach(id)
                        .map_err(perr(name, "detach"))?;
                }
                // Unpinning hands the link back; dropping it detaches.
                AttachedLink::Pinned(p) => drop(p.unpin().map_err(|source| Error::Netns {
                    what: "unpinning a link".into(),
                    source,
                })?),
            }
        }
        Ok(())
    }

    /// Detaches from `iface` (wherever it was attached).
    pub fn detach(&mut self, iface: &str) -> Result<()> {
        let mut keep = Vec::new();
        let mut result = Ok(());
        for a in std::mem::take(&mut self.attachments) {
            if a.iface != iface {
                keep.push(a);
                continue;
            }
            let r = match &a.netns {
                None => self.detach_links(a.links),
                Some(ns) => {
                    let ns = ns.clone();
                    netns::run_in(&ns, || self.detach_links(a.links))
                        .map_err(|source| Error::Netns {
                            what: format!("entering {}", ns.display()),
                            source,
                        })
                        .and_then(|r| r)
                }
            };
            if result.is_ok() {
                result = r;
            }
        }
        self.attachments = keep;
        result
    }

    /// Detaches from every interface.
    pub fn detach_all(&mut self) -> Result<()> {
        let ifaces: Vec<String> = self.attachments.iter().map(|a| a.iface.clone()).collect();
        let mut result = Ok(());
        for i in ifaces {
            let r = self.detach(&i);
            if result.is_ok() {
                result = r;
            }
        }
        result
    }

    /// Sets the L7 mode.
    pub fn set_l7_mode(&mut self, mode: L7Mode) -> Result<()> {
        let mut cfg: Array<&mut MapData, u32> = open_mut(&mut self.ebpf, "MCNET_CONFIG")?;
        cfg.set(
            CONFIG_L7_MODE,
            if mode == L7Mode::Audit {
                L7_MODE_AUDIT
            } else {
                0
            },
            0,
        )
        .map_err(map_err("MCNET_CONFIG", "set"))
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

    /// Brings the kernel maps from the last applied state to `desired`,
    /// incrementally: upserts first, endpoints next, removals last, each
    /// entry replaced atomically, so that no packet meets a key that is in
    /// neither state. Returns the number of map operations.
    ///
    /// A sync that fails part-way leaves the maps holding part of the new
    /// state (every entry is whole, and lookups that cannot trust the
    /// caches ask the maps); the applied state is then read back from the
    /// maps, so that the next sync brings them the rest of the way.
    pub fn sync(&mut self, desired: &DesiredState) -> Result<usize> {
        let mut desired = desired.clone();
        desired.mark_lookup_shapes();
        let delta = Delta::between(&self.applied, &desired);
        let slots = self.plan_slots(&Placement::of(&desired.ipcache));
        // The lookup flags are raised for both states' maps first, so that
        // no lookup skips an entry either state holds, and set to the new
        // state's alone once its entries are in place.
        let (old, new) = (self.applied.ipcache_maps(), desired.ipcache_maps());
        self.set_lookup_flags((old.0 | new.0, old.1 | new.1))?;
        // The policy cache's buckets that change are out of use while the
        // maps change (lookups of their keys go to the hash map), and
        // filled once the hash map holds the new state.
        let mut buckets: BTreeSet<u32> = (delta.policy_upsert.iter().map(|(k, _)| k))
            .chain(&delta.policy_remove)
            .map(policy_cache::policy_bucket)
            .collect();
        buckets.append(&mut self.stale_buckets);
        let fills = policy_cache::contents(&desired.policy, Some(&buckets));
        for &b in &buckets {
            self.policy_cache.invalidate(b);
        }
        // So are the prefix directory's words that change: the trie
        // decides their addresses until the end.
        let dir = self.dir4.changes(&ipcache4::directory(&desired.ipcache));
        for &(i, _) in &dir {
            self.dir4.set(i, IPCACHE4_DIR_TRIE);
        }
        let ops = match self.apply(&delta, &slots) {
            Ok(ops) => ops,
            Err(e) => {
                // The maps hold part of the new state. Take what they hold
                // as the applied state, so that the next sync starts from
                // it, and leave the out-of-use buckets and directory words
                // (still the trie's) for it to fill.
                self.stale_buckets = buckets;
                if let Ok((applied, overflow4)) = self.read_back() {
                    self.applied = applied;
                    self.overflow4 = overflow4;
                }
                return Err(e);
            }
        };
        for (b, content) in &fills {
            self.policy_cache.write(*b, content);
        }
        for &(i, word) in &dir {
            self.dir4.set(i, word);
        }
        self.set_lookup_flags(new)?;
        self.applied = desired;
        Ok(ops + fills.len() + dir.len())
    }

    /// The writes that bring the slots and the IPv4 hash map from what they
    /// hold to `place`, in the order of the other ipcache writes: hash-map
    /// upserts, slots, and at the end hash-map removals and slot clears.
    /// An address that loses its slot to another is written to the hash
    /// map first, with its new identity, or with its old one if it is
    /// going away; and a slot stays marked shared until the hash map no
    /// longer holds its addresses. So a packet meets one state or the
    /// other, never neither.
    fn plan_slots(&self, place: &Placement) -> SlotPlan {
        let mut plan = SlotPlan::default();
        for (&a, &id) in &place.overflow {
            if self.overflow4.get(&a) != Some(&id) {
                plan.overflow_upsert.push((a, id));
            }
        }
        for (&slot, &word) in &place.slots {
            let now = self.slots4.get(slot);
            if now == word {
                continue;
            }
            // Hashed addresses of the slot are removed at the end, so
            // the slot stays shared until then.
            let mut during = word | (now & IPCACHE4_SHARED);
            if let Some((a, id)) = ipcache4::decode(now) {
                let displaced = ipcache4::decode(word).is_none_or(|(b, _)| b != a);
                if displaced && !place.overflow.contains_key(&a) {
                    if self.overflow4.get(&a) != Some(&id) {
                        plan.overflow_upsert.push((a, id));
                    }
                    during |= IPCACHE4_SHARED;
                }
            }
            plan.fill.push((slot, during));
            if during != word {
                plan.finish.push((slot, word));
            }
        }
        for (slot, _) in self.slots4.occupied() {
            if !place.slots.contains_key(&slot) {
                plan.finish.push((slot, 0));
            }
        }
        let kept = |a: &[u8; 4]| place.overflow.contains_key(a);
        plan.overflow_remove = self
            .overflow4
            .keys()
            .chain(plan.overflow_upsert.iter().map(|(a, _)| a))
            .filter(|a| !kept(a))
            .copied()
            .collect();
        plan
    }

    fn apply(&mut self, d: &Delta, slots: &SlotPlan) -> Result<usize> {
        // Exact addresses go to the per-family hash maps, prefixes to the
        // per-family tries.
        fn split<'a>(
            entries: impl Iterator<Item = (&'a (u32, [u8; 16]), Option<u32>)>,
        ) -> IpcacheOps {
            let mut ops = IpcacheOps::default();
            for (&(len, addr), id) in entries {
                match (len, state::ipv4_prefix(len, &addr)) {
                    // Placed by `plan_slots`.
                    (128, Some(_)) => {}
                    (128, None) => ops.v6.push((addr, id)),
                    (_, Some((len4, net))) => {
                        ops.prefixes4.push((Key::new(len4, net.octets()), id))
                    }
                    (_, None) => ops.prefixes6.push((Key::new(len, IpKey { addr }), id)),
                }
            }
            ops
        }
        let mut upserts = split(d.ipcache_upsert.iter().map(|(k, id)| (k, Some(*id))));
        let mut removals = split(d.ipcache_remove.iter().map(|k| (k, None)));
        upserts.v4 = (slots.overflow_upsert.iter())
            .map(|&(a, id)| (a, Some(id)))
            .collect();
        removals.v4 = slots.overflow_remove.iter().map(|&a| (a, None)).collect();
        // 1. ipcache upserts, the hash map before the slots; 2. policy
        // upserts; 3. endpoints, whose isolation flags may rely on the
        // entries above; 4. removals, the slots last.
        let mut ops = self.apply_ipcache(&upserts)?;
        self.overflow4.extend(slots.overflow_upsert.iter().copied());
        for &(slot, word) in &slots.fill {
            self.slots4.set(slot, word);
        }
        ops += slots.fill.len();
        {
            let mut pol: HashMap<&mut MapData, PolicyKey, PolicyValue> =
                open_mut(&mut self.ebpf, "MCNET_POLICY")?;
            for (k, v) in &d.policy_upsert {
                pol.insert(k, v, 0)
                    .map_err(map_err("MCNET_POLICY", format!("insert {k:?}")))?;
                ops += 1;
            }
        }
        {
            let mut eps: Array<&mut MapData, EndpointInfo> =
                open_mut(&mut self.ebpf, "MCNET_ENDPOINTS")?;
            for (k, v) in &d.endpoint_upsert {
                if *k >= MAX_IFINDEX {
                    return Err(Error::Missing(format!(
                        "room for ifindex {k} (interfaces above {} cannot be bound)",
                        MAX_IFINDEX - 1
                    )));
                }
                eps.set(*k, v, 0)
                    .map_err(map_err("MCNET_ENDPOINTS", "set"))?;
                ops += 1;
            }
            for k in &d.endpoint_remove {
                let _ = eps.set(*k, EndpointInfo::default(), 0);
                ops += 1;
            }
        }
        {
            let mut pol: HashMap<&mut MapData, PolicyKey, PolicyValue> =
                open_mut(&mut self.ebpf, "MCNET_POLICY")?;
            for k in &d.policy_remove {
                let _ = pol.remove(k);
                ops += 1;
            }
        }
        ops += self.apply_ipcache(&removals)?;
        for a in &slots.overflow_remove {
            self.overflow4.remove(a);
        }
        for &(slot, word) in &slots.finish {
            self.slots4.set(slot, word);
        }
        ops += slots.finish.len();
        Ok(ops)
    }

    /// Writes (`Some`) or removes (`None`) ipcache entries, each map opened once.
    fn apply_ipcache(&mut self, ops: &IpcacheOps) -> Result<usize> {
        // The same loop over maps whose key types differ.
        macro_rules! write {
            ($map:ty, $name:literal, $entries:expr) => {{
                let mut m: $map = open_mut(&mut self.ebpf, $name)?;
                for (k, id) in $entries {
                    match id {
                        Some(id) => m.insert(k, id, 0).map_err(map_err($name, "insert"))?,
                        None => drop(m.remove(k)),
                    }
                }
            }};
        }
        write!(HashMap<&mut MapData, [u8; 4], u32>, "MCNET_IPCACHE4", &ops.v4);
        write!(HashMap<&mut MapData, [u8; 16], u32>, "MCNET_IPCACHE6", &ops.v6);
        write!(LpmTrie<&mut MapData, [u8; 4], u32>, "MCNET_IPCACHE_V4", &ops.prefixes4);
        write!(LpmTrie<&mut MapData, IpKey, u32>, "MCNET_IPCACHE", &ops.prefixes6);
        Ok(ops.v4.len() + ops.v6.len() + ops.prefixes4.len() + ops.prefixes6.len())
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
