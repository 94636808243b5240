//! Syncing the compiled policy into the maps: the delta, the ipcache
//! slot plan, and the writes in an order that never opens a gap.

use super::*;

/// ipcache writes grouped by the map they go to (`None`: remove).
#[derive(Default)]
pub(crate) struct IpcacheOps {
    v4: Vec<([u8; 4], Option<u32>)>,
    v6: Vec<([u8; 16], Option<u32>)>,
    prefixes4: Vec<(Key<[u8; 4]>, Option<u32>)>,
    prefixes6: Vec<(Key<IpKey>, Option<u32>)>,
}

/// Slot and IPv4 hash-map writes of one sync (see `Datapath::plan_slots`).
#[derive(Default)]
pub(crate) struct SlotPlan {
    overflow_upsert: Vec<([u8; 4], u32)>,
    /// Slot words written after the hash map's upserts.
    fill: Vec<(u32, u64)>,
    /// Slot words written last: cleared slots, and shared marks dropped.
    finish: Vec<(u32, u64)>,
    overflow_remove: BTreeSet<[u8; 4]>,
}

/// Maps a mmapable array of a loaded object into this process.
pub(crate) fn map_array<T>(
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

impl Datapath {
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
    pub(crate) fn plan_slots(&self, place: &Placement) -> SlotPlan {
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

    pub(crate) fn apply(&mut self, d: &Delta, slots: &SlotPlan) -> Result<usize> {
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
    pub(crate) fn apply_ipcache(&mut self, ops: &IpcacheOps) -> Result<usize> {
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
}
