//! Loading the kernel object: maps, programs, pinning, and reading the
//! applied state back from the maps.

use super::*;
use crate::sync::map_array;

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
    pub(crate) fn move_ipv4_prefixes(&mut self) -> Result<()> {
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
    pub(crate) fn set_lookup_flags(&mut self, (v4, v6): (u32, u32)) -> Result<()> {
        let mut cfg: Array<&mut MapData, u32> = open_mut(&mut self.ebpf, "MCNET_CONFIG")?;
        for (slot, maps) in [(CONFIG_PREFIXES_V4, v4), (CONFIG_PREFIXES_V6, v6)] {
            cfg.set(slot, maps, 0)
                .map_err(map_err("MCNET_CONFIG", "set"))?;
        }
        Ok(())
    }

    /// Marks the slot of every hashed IPv4 address that does not hold it as
    /// shared, so that lookups of the address reach the hash map.
    pub(crate) fn share_slots_of_hashed_addresses(&self) {
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
    pub(crate) fn read_overflow4(&self) -> Result<BTreeMap<[u8; 4], u32>> {
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
    pub(crate) fn read_back(&self) -> Result<(DesiredState, BTreeMap<[u8; 4], u32>)> {
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
}
