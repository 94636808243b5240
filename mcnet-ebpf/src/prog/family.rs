//! What differs per address family (conntrack and ipcache maps, keys,
//! the world identity) and the ipcache lookup both families share.

use super::*;

/// What differs per address family: its conntrack and ipcache maps, its
/// conntrack key, its world identity and the address as flow events
/// carry it. Tracking and the ipcache lookup are the same for both.
pub(super) trait Family: Copy + 'static {
    const FAMILY: u8;
    /// The `CONFIG` slot saying which of this family's ipcache maps hold entries.
    const MAPS: u32;
    /// The identity of addresses the ipcache does not know.
    const WORLD: u32;
    /// The conntrack key.
    type CtKey;
    fn conntrack() -> &'static LruHashMap<Self::CtKey, CtValue>;
    /// The canonical conntrack key of a packet, and whether its source
    /// is the key's `a` side.
    fn ct_key(p: &Packet<Self>, ifindex: u32) -> (Self::CtKey, bool);
    /// Exact addresses (pods) → identity.
    fn exact() -> &'static HashMap<Self, u32>;
    /// Prefixes → identity.
    fn prefixes() -> &'static LpmTrie<Self, u32>;

    /// The identity of the longest prefix holding the address, else
    /// world.
    #[inline(always)]
    fn covering(&self) -> u32 {
        longest_prefix(Self::prefixes(), *self)
    }

    /// The address as 16 bytes, IPv4 mapped.
    fn bytes(&self) -> [u8; 16];

    /// Finds the packet's flow (or the flow it replies to) in conntrack.
    #[inline(always)]
    fn track(p: &Packet<Self>, ifindex: u32) -> Tracked {
        let (k, src_is_a) = Self::ct_key(p, ifindex);
        tracked(Self::conntrack().get_ptr_mut(&k), src_is_a)
    }

    /// Starts tracking an allowed flow.
    #[inline(always)]
    fn open(p: &Packet<Self>, ifindex: u32, now: u64, proxied: bool) {
        let (k, src_is_a) = Self::ct_key(p, ifindex);
        let _ = Self::conntrack().insert(&k, &ct_value(now, src_is_a, proxied), 0);
    }

    /// Hands a new connection to the L7 proxy: records its origin for
    /// the proxy and assigns the packet to the proxy's listener.
    /// `false` when the proxy is not there (or the family has none).
    fn to_proxy(ctx: &TcContext, p: &Packet<Self>, origin: &ProxyOrigin) -> bool;

    /// What the lookups that need no hashing say of an exact address.
    #[inline(always)]
    fn direct(&self) -> Direct {
        if maps(Self::MAPS) & MAPS_EXACT != 0 {
            Direct::Hashed
        } else {
            Direct::Absent
        }
    }

    /// The ipcache: exact addresses first (direct-mapped, then hashed),
    /// then the longest prefix, else world; maps that cannot hold the
    /// address are skipped.
    #[inline(always)]
    fn identity(&self) -> u32 {
        match self.direct() {
            Direct::Found(id) => return id,
            Direct::Hashed => {
                if let Some(id) = Self::exact().get_ptr(self) {
                    // SAFETY: the pointer comes from a successful lookup.
                    return unsafe { *id };
                }
            }
            Direct::Absent => {}
        }
        if maps(Self::MAPS) & MAPS_PREFIXES != 0 {
            self.covering()
        } else {
            Self::WORLD
        }
    }
}

impl Family for u32 {
    #[inline(always)]
    fn to_proxy(ctx: &TcContext, p: &Packet<u32>, origin: &ProxyOrigin) -> bool {
        let key = ProxyKey4 {
            client: p.src.to_ne_bytes(),
            dst: p.dst.to_ne_bytes(),
            client_port: p.sport,
            dst_port: p.dport,
        };
        if PROXY_ORIGIN4.insert(&key, origin, 0).is_err() {
            return false;
        }
        assign_to_proxy(ctx, PROXY_SLOT_V4)
    }

    const FAMILY: u8 = 4;
    const MAPS: u32 = CONFIG_PREFIXES_V4;
    const WORLD: u32 = IDENTITY_WORLD_IPV4;
    type CtKey = CtKey4;

    #[inline(always)]
    fn conntrack() -> &'static LruHashMap<CtKey4, CtValue> {
        &CT4
    }

    #[inline(always)]
    fn ct_key(p: &Packet<u32>, ifindex: u32) -> (CtKey4, bool) {
        ct4(p, ifindex)
    }

    #[inline(always)]
    fn exact() -> &'static HashMap<u32, u32> {
        &IPCACHE4
    }

    #[inline(always)]
    fn direct(&self) -> Direct {
        // An array lookup, which the verifier inlines: no call, no hash.
        let Some(&v) = SLOTS4.get(ipcache4_slot(u32::from_be(*self))) else {
            return Direct::Hashed;
        };
        let id = (v >> 32) as u32 & IPCACHE4_MAX_IDENTITY;
        if v as u32 == *self && id != 0 {
            Direct::Found(id)
        } else if v & IPCACHE4_SHARED != 0 {
            Direct::Hashed
        } else {
            Direct::Absent
        }
    }

    #[inline(always)]
    fn prefixes() -> &'static LpmTrie<u32, u32> {
        &IPCACHE_V4
    }

    #[inline(always)]
    fn covering(&self) -> u32 {
        // The /16's directory entry decides, unless a longer prefix
        // lies in the /16: an array read instead of a trie walk.
        match DIR4.get(u32::from_be(*self) >> 16) {
            Some(&e) if e & IPCACHE4_DIR_TRIE == 0 => {
                if e == 0 {
                    Self::WORLD
                } else {
                    e
                }
            }
            _ => longest_prefix(&IPCACHE_V4, *self),
        }
    }

    #[inline(always)]
    fn bytes(&self) -> [u8; 16] {
        [0, 0, MAPPED, *self].bytes()
    }
}

impl Family for [u32; 4] {
    #[inline(always)]
    fn to_proxy(_: &TcContext, _: &Packet<[u32; 4]>, _: &ProxyOrigin) -> bool {
        // The proxy listens for IPv4 only: IPv6 L7 ports fail closed.
        false
    }

    const FAMILY: u8 = 6;
    const MAPS: u32 = CONFIG_PREFIXES_V6;
    const WORLD: u32 = IDENTITY_WORLD_IPV6;
    type CtKey = CtKey;

    #[inline(always)]
    fn conntrack() -> &'static LruHashMap<CtKey, CtValue> {
        &CT
    }

    #[inline(always)]
    fn ct_key(p: &Packet<[u32; 4]>, ifindex: u32) -> (CtKey, bool) {
        ct6(p, ifindex)
    }

    #[inline(always)]
    fn exact() -> &'static HashMap<[u32; 4], u32> {
        &IPCACHE6
    }

    #[inline(always)]
    fn prefixes() -> &'static LpmTrie<[u32; 4], u32> {
        &IPCACHE
    }

    #[inline(always)]
    fn bytes(&self) -> [u8; 16] {
        // SAFETY: both are 16 plain bytes.
        unsafe { core::mem::transmute::<[u32; 4], [u8; 16]>(*self) }
    }
}

/// What a lookup without hashing found of an exact address.
pub(super) enum Direct {
    /// The address and its identity.
    Found(u32),
    /// Nothing, but the hash map may hold it.
    Hashed,
    /// Nothing, and no exact map holds it.
    Absent,
}

/// An LPM-trie key laid out as the kernel wants it (prefix length, then
/// data), aligned so that it is written word by word.
#[repr(C)]
pub(super) struct LpmKey<A> {
    pub(super) prefix_len: u32,
    pub(super) addr: A,
}

/// The identity of the longest prefix in `trie` holding `addr`, else the
/// family's world.
#[inline(always)]
pub(super) fn longest_prefix<A: Family>(trie: &LpmTrie<A, u32>, addr: A) -> u32 {
    let key = LpmKey {
        prefix_len: 8 * core::mem::size_of::<A>() as u32,
        addr,
    };
    // SAFETY: `trie` is an LPM trie whose keys are a u32 prefix length
    // followed by the family's address bytes, which is `LpmKey<A>`'s
    // layout; the helper reads the key and returns a pointer to a u32
    // value or null. (`LpmTrie::get` takes aya's packed key, which the
    // compiler writes byte by byte.)
    let id = unsafe {
        bpf_map_lookup_elem(
            trie as *const LpmTrie<A, u32> as *mut core::ffi::c_void,
            &key as *const LpmKey<A> as *const core::ffi::c_void,
        ) as *const u32
    };
    if id.is_null() {
        A::WORLD
    } else {
        // SAFETY: non-null: a pointer to the value of the entry found.
        unsafe { *id }
    }
}
