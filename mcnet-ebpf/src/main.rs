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
// Word loads from packet data (see `prog::load32`); the crate is built with
// the nightly toolchain anyway (`-Z build-std=core`).
#![cfg_attr(target_arch = "bpf", feature(asm_experimental_arch))]

#[cfg(target_arch = "bpf")]
mod prog {
    use aya_ebpf::bindings::{TC_ACT_OK, TC_ACT_SHOT};
    use aya_ebpf::helpers::{bpf_ktime_get_ns, bpf_map_lookup_elem, bpf_sk_assign, bpf_sk_release};
    use aya_ebpf::macros::{classifier, map};
    use aya_ebpf::maps::{Array, HashMap, LpmTrie, LruHashMap, PerCpuArray, RingBuf, SockMap};
    use aya_ebpf::programs::TcContext;
    use mcnet_ebpf_common::*;

    #[map(name = "MCNET_ENDPOINTS")]
    static ENDPOINTS: Array<EndpointInfo> = Array::pinned(MAX_IFINDEX, 0);

    /// Exact IPv4 addresses (pods) → identity, direct-mapped: slot
    /// `ipcache4_slot(addr)` holds `ipcache4_slot_value(addr, identity)`.
    /// Userspace writes it through a shared mapping, one word per store.
    #[map(name = "MCNET_IPCACHE4_SLOTS")]
    static SLOTS4: Array<u64> = Array::pinned(IPCACHE4_SLOTS, 1 << 10 /* BPF_F_MMAPABLE */);

    /// Exact IPv4 addresses that found their slot taken → identity;
    /// prefixes live in the LPM trie.
    #[map(name = "MCNET_IPCACHE4")]
    static IPCACHE4: HashMap<u32, u32> = HashMap::pinned(262_144, 1 /* BPF_F_NO_PREALLOC */);

    /// Exact IPv6 addresses (pods) → identity.
    #[map(name = "MCNET_IPCACHE6")]
    static IPCACHE6: HashMap<[u32; 4], u32> =
        HashMap::pinned(262_144, 1 /* BPF_F_NO_PREALLOC */);

    /// IPv6 prefixes → identity.
    #[map(name = "MCNET_IPCACHE")]
    static IPCACHE: LpmTrie<[u32; 4], u32> =
        LpmTrie::pinned(262_144, 1 /* BPF_F_NO_PREALLOC */);

    /// IPv4 prefixes → identity: a trie of their own, so that no IPv6
    /// prefix ever covers an IPv4 address, and lookups compare one word.
    #[map(name = "MCNET_IPCACHE_V4")]
    static IPCACHE_V4: LpmTrie<u32, u32> = LpmTrie::pinned(262_144, 1 /* BPF_F_NO_PREALLOC */);

    /// The IPv4 prefix directory, one entry per /16: the identity of the
    /// longest prefix of /16 or shorter covering it, 0 for none, or
    /// `IPCACHE4_DIR_TRIE` where a longer prefix lies in the /16, so that
    /// only those addresses reach the trie. Userspace writes it through a
    /// shared mapping.
    #[map(name = "MCNET_IPCACHE4_DIR")]
    static DIR4: Array<u32> =
        Array::pinned(IPCACHE4_DIR_ENTRIES, 1 << 10 /* BPF_F_MMAPABLE */);

    #[map(name = "MCNET_POLICY")]
    static POLICY: HashMap<PolicyKey, PolicyValue> =
        HashMap::pinned(262_144, 1 /* BPF_F_NO_PREALLOC */);

    /// The policy entries again, in buckets of [`policy_bucket`]`(key)`,
    /// so that most lookups need no hashing (see [`PolicyBucket`]).
    /// Userspace writes it through a shared mapping.
    #[map(name = "MCNET_POLICY_CACHE")]
    static POLICY_CACHE: Array<PolicyBucket> =
        Array::pinned(POLICY_CACHE_BUCKETS, 1 << 10 /* BPF_F_MMAPABLE */);

    #[map(name = "MCNET_CT")]
    static CT: LruHashMap<CtKey, CtValue> = LruHashMap::pinned(65_536, 0);

    #[map(name = "MCNET_CT4")]
    static CT4: LruHashMap<CtKey4, CtValue> = LruHashMap::pinned(262_144, 0);

    #[map(name = "MCNET_COUNTERS")]
    static COUNTERS: PerCpuArray<PacketCount> = PerCpuArray::pinned(REASON_COUNT, 0);

    #[map(name = "MCNET_CONFIG")]
    static CONFIG: Array<u32> = Array::pinned(CONFIG_SLOTS, 0);

    /// The L7 proxy's listening sockets ([`PROXY_SLOT_V4`]), put there by
    /// the proxy; a closed listener leaves its slot empty.
    #[map(name = "MCNET_PROXY")]
    static PROXY: SockMap = SockMap::pinned(2, 0);

    /// What the kernel knew of each connection it handed to the proxy: the
    /// proxy reads the client's identity here, never from the packet.
    #[map(name = "MCNET_PROXY_ORIGIN4")]
    static PROXY_ORIGIN4: LruHashMap<ProxyKey4, ProxyOrigin> = LruHashMap::pinned(65_536, 0);

    #[map(name = "MCNET_FLOWS")]
    static FLOWS: RingBuf = RingBuf::with_byte_size(1 << 20, 0);

    const ETH_HLEN: usize = 14;
    const ETH_P_IP: u16 = 0x0800;
    const ETH_P_IPV6: u16 = 0x86DD;

    /// A parsed packet of one address family. Addresses are their wire
    /// bytes read as native words, so that copies, comparisons and map keys
    /// move whole words, never single bytes.
    #[derive(Clone, Copy)]
    struct Packet<A> {
        src: A,
        dst: A,
        sport: u16,
        dport: u16,
        /// The port policy is looked up by: `dport`, or for ICMP the type
        /// ([`icmp_key`]); conntrack keys ICMP echoes by their identifier.
        key_port: u16,
        proto: u8,
    }

    enum Parsed {
        V4(Packet<u32>),
        V6(Packet<[u32; 4]>),
        NotIp,
        Ndp,
    }

    /// Word 2 of an IPv4-mapped address: the bytes `00 00 ff ff`.
    const MAPPED: u32 = u32::from_ne_bytes([0, 0, 0xff, 0xff]);

    /// What differs per address family: its conntrack and ipcache maps, its
    /// conntrack key, its world identity and the address as flow events
    /// carry it. Tracking and the ipcache lookup are the same for both.
    trait Family: Copy + 'static {
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
    enum Direct {
        /// The address and its identity.
        Found(u32),
        /// Nothing, but the hash map may hold it.
        Hashed,
        /// Nothing, and no exact map holds it.
        Absent,
    }

    /// The `CONFIG_PREFIXES_V*` bits in `slot` (all set if unreadable).
    #[inline(always)]
    fn maps(slot: u32) -> u32 {
        CONFIG
            .get(slot)
            .copied()
            .unwrap_or(MAPS_EXACT | MAPS_PREFIXES)
    }

    #[inline(always)]
    fn count(reason: u32, len: u32) {
        if let Some(c) = COUNTERS.get_ptr_mut(reason) {
            // SAFETY: a per-CPU slot has no concurrent writer on this CPU.
            unsafe {
                (*c).packets += 1;
                (*c).bytes += len as u64;
            }
        }
    }

    /// One 32-bit load from packet memory at `addr`, whatever its alignment.
    ///
    /// Rust can only read an unaligned `u32` byte by byte on BPF (four loads,
    /// three shifts, three ors); the kernel accepts unaligned packet loads
    /// on the JITs that run this program, so one instruction does it.
    ///
    /// # Safety
    /// `addr..addr + 4` must lie inside the packet's linear data, checked
    /// against `data_end` so that the verifier knows it too.
    #[inline(always)]
    unsafe fn load32(addr: usize) -> u32 {
        let v: u32;
        // SAFETY: the caller guarantees the four bytes are readable.
        unsafe {
            core::arch::asm!(
                "{v} = *(u32 *)({a} + 0)",
                v = lateout(reg) v,
                a = in(reg) addr,
                options(nostack, readonly, preserves_flags)
            );
        }
        v
    }

    /// `N` words at `offset`, loaded a word at a time from linear data, or
    /// through bpf_skb_load_bytes when the headers are not linear.
    #[inline(always)]
    fn words<const N: usize>(ctx: &TcContext, offset: usize) -> Result<[u32; N], ()> {
        let start = ctx.data();
        if start + offset + 4 * N <= ctx.data_end() {
            let mut w = [0u32; N];
            let mut i = 0;
            while i < N {
                // SAFETY: inside the bounds checked above.
                w[i] = unsafe { load32(start + offset + 4 * i) };
                i += 1;
            }
            Ok(w)
        } else {
            ctx.load::<[u32; N]>(offset).map_err(|_| ())
        }
    }

    /// A byte at `offset` (linear data or bpf_skb_load_bytes).
    #[inline(always)]
    fn byte_at(ctx: &TcContext, offset: usize) -> Result<u8, ()> {
        let start = ctx.data();
        if start + offset < ctx.data_end() {
            // SAFETY: bounds-checked above.
            Ok(unsafe { *((start + offset) as *const u8) })
        } else {
            ctx.load::<u8>(offset).map_err(|_| ())
        }
    }

    /// Byte `i` (in memory order) of a word read from the packet.
    #[inline(always)]
    fn byte(w: u32, i: u32) -> u8 {
        w.to_ne_bytes()[i as usize]
    }

    /// The conntrack ports and the policy port of the L4 header at `l4`:
    /// TCP, UDP and SCTP by their ports; ICMP and ICMPv6 by type for
    /// policy, and echoes by identifier for conntrack (the request's
    /// identifier as its destination port, the reply's as its source port,
    /// so that a reply finds its request), as Cilium tracks them.
    #[inline(always)]
    fn ports(ctx: &TcContext, l4: usize, proto: u8) -> Result<(u16, u16, u16), ()> {
        match proto {
            PROTO_TCP | PROTO_UDP | PROTO_SCTP => {
                let [w] = words::<1>(ctx, l4)?;
                let dport = u16::from_be((w >> 16) as u16);
                Ok((u16::from_be(w as u16), dport, dport))
            }
            PROTO_ICMP | PROTO_ICMPV6 => {
                // Type, code, checksum | identifier, sequence.
                let [w0, w1] = words::<2>(ctx, l4)?;
                let t = byte(w0, 0);
                let id = u16::from_be(w1 as u16);
                let (sport, dport) = match (proto, t) {
                    (PROTO_ICMP, ICMP_ECHO_REQUEST) | (PROTO_ICMPV6, ICMPV6_ECHO_REQUEST) => {
                        (0, id)
                    }
                    (PROTO_ICMP, ICMP_ECHO_REPLY) | (PROTO_ICMPV6, ICMPV6_ECHO_REPLY) => (id, 0),
                    _ => (0, 0),
                };
                Ok((sport, dport, icmp_key(t)))
            }
            _ => Ok((0, 0, 0)),
        }
    }

    #[inline(always)]
    fn parse(ctx: &TcContext) -> Result<Parsed, ()> {
        let ethertype = u16::from_be_bytes([byte_at(ctx, 12)?, byte_at(ctx, 13)?]);
        match ethertype {
            ETH_P_IP => {
                // Five words: version/ihl, tos, total length | id, flags and
                // fragment offset | ttl, protocol, checksum | source | destination.
                let hdr: [u32; 5] = words(ctx, ETH_HLEN)?;
                let ihl = ((byte(hdr[0], 0) & 0x0f) as usize) * 4;
                if ihl < 20 {
                    return Err(());
                }
                let proto = byte(hdr[2], 1);
                // Fragments after the first carry no ports.
                let fragment = u16::from_be((hdr[1] >> 16) as u16) & 0x1fff != 0;
                let (sport, dport, key_port) = if fragment {
                    (0, 0, 0)
                } else {
                    ports(ctx, ETH_HLEN + ihl, proto)?
                };
                Ok(Parsed::V4(Packet {
                    src: hdr[3],
                    dst: hdr[4],
                    sport,
                    dport,
                    key_port,
                    proto,
                }))
            }
            ETH_P_IPV6 => {
                let proto = byte_at(ctx, ETH_HLEN + 6)?;
                let src: [u32; 4] = words(ctx, ETH_HLEN + 8)?;
                let dst: [u32; 4] = words(ctx, ETH_HLEN + 24)?;
                let l4 = ETH_HLEN + 40;
                // Link-local multicast (MLD, router and neighbour solicitation).
                if byte(dst[0], 0) == 0xff && byte(dst[0], 1) & 0x0f == 0x02 {
                    return Ok(Parsed::Ndp);
                }
                if proto == PROTO_ICMPV6 && (133..=137).contains(&byte_at(ctx, l4)?) {
                    return Ok(Parsed::Ndp);
                }
                let (sport, dport, key_port) = ports(ctx, l4, proto)?;
                Ok(Parsed::V6(Packet {
                    src,
                    dst,
                    sport,
                    dport,
                    key_port,
                    proto,
                }))
            }
            _ => Ok(Parsed::NotIp),
        }
    }

    /// The policy entry deciding (endpoint, peer, port, protocol, direction).
    #[inline(always)]
    fn policy(
        ep: &EndpointInfo,
        peer: u32,
        port: u16,
        proto: u8,
        direction: u8,
    ) -> Option<PolicyValue> {
        // Most specific first; userspace guarantees that the first hit carries
        // the merged verdict of every entry that covers it, and flags the
        // shapes the endpoint has entries of, so that the rest are skipped.
        // Shape bit 1 is "any port", bit 2 "any peer".
        let mut key = PolicyKey {
            endpoint: ep.identity,
            peer,
            port,
            proto,
            direction,
        };
        let mut shape = 0;
        while shape < 4 {
            if ep.flags & ep_shape_bit(direction, shape) != 0 {
                key.peer = if shape & 2 == 0 { peer } else { 0 };
                key.port = if shape & 1 == 0 { port } else { 0 };
                match cached(&key) {
                    Cached::Hit(v) => return Some(v),
                    Cached::Absent => {}
                    Cached::Unknown => {
                        if let Some(v) = POLICY.get_ptr(&key) {
                            // SAFETY: the pointer comes from a successful lookup.
                            return Some(unsafe { *v });
                        }
                    }
                }
            }
            shape += 1;
        }
        None
    }

    /// What the policy cache says of a key.
    enum Cached {
        /// The key's value.
        Hit(PolicyValue),
        /// No map holds the key.
        Absent,
        /// Ask the hash map: the bucket is being written, or it overflowed.
        Unknown,
    }

    /// Reads the key's bucket as a seqlock reader: the count, the bucket,
    /// the count again. Every load is volatile, so the compiler keeps their
    /// order, and x86-64 keeps loads in order (userspace fills the cache
    /// only there).
    #[inline(always)]
    fn cached(key: &PolicyKey) -> Cached {
        let Some(b) = POLICY_CACHE.get(policy_bucket(key)) else {
            return Cached::Unknown;
        };
        let b: *const PolicyBucket = b;
        // SAFETY: `b` points into a map value that stays valid for the
        // program's run; every field is plain words, read whole.
        unsafe {
            let seq = core::ptr::read_volatile(core::ptr::addr_of!((*b).seq));
            if seq & 1 != 0 {
                return Cached::Unknown;
            }
            let want = key as *const PolicyKey as *const u32;
            let (w0, w1, w2) = (*want, *want.add(1), *want.add(2));
            let flags = core::ptr::read_volatile(core::ptr::addr_of!((*b).flags));
            let mut found = if flags & POLICY_BUCKET_COMPLETE != 0 {
                Cached::Absent
            } else {
                Cached::Unknown
            };
            let mut way = 0;
            while way < POLICY_CACHE_WAYS {
                let k = core::ptr::addr_of!((*b).keys[way]) as *const u32;
                if core::ptr::read_volatile(k) == w0
                    && core::ptr::read_volatile(k.add(1)) == w1
                    && core::ptr::read_volatile(k.add(2)) == w2
                {
                    let v = core::ptr::addr_of!((*b).values[way]) as *const u32;
                    let action = core::ptr::read_volatile(v) as u8;
                    let cookie = core::ptr::read_volatile(v.add(1));
                    found = Cached::Hit(PolicyValue {
                        action,
                        _pad: [0; 3],
                        cookie,
                    });
                    break;
                }
                way += 1;
            }
            if core::ptr::read_volatile(core::ptr::addr_of!((*b).seq)) != seq {
                return Cached::Unknown;
            }
            found
        }
    }

    /// A flow event, unless events are off.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn report<A: Family>(
        p: &Packet<A>,
        ifindex: u32,
        direction: u8,
        src_identity: u32,
        dst_identity: u32,
        verdict: u8,
        reason: u32,
        l7: u8,
        cookie: u32,
    ) {
        if CONFIG.get(CONFIG_EVENTS_OFF).copied().unwrap_or(0) == 1 {
            return;
        }
        if let Some(mut e) = FLOWS.reserve::<FlowEvent>(0) {
            let ev = FlowEvent {
                // SAFETY: a helper without preconditions.
                ts_ns: unsafe { bpf_ktime_get_ns() },
                src: p.src.bytes(),
                dst: p.dst.bytes(),
                src_identity,
                dst_identity,
                sport: p.sport,
                dport: p.key_port,
                ifindex,
                proto: p.proto,
                verdict,
                reason: reason as u8,
                direction,
                is_reply: 0,
                family: A::FAMILY,
                l7,
                _pad: 0,
                cookie,
                _pad2: 0,
            };
            e.write(ev);
            e.submit(0);
        }
    }

    enum Tracked {
        New,
        /// An allowed flow; `true` when the proxy owns its client side.
        Established(bool),
        Reply,
    }

    /// What a conntrack lookup found, counting the packet on the entry.
    #[inline(always)]
    fn tracked(entry: Option<*mut CtValue>, src_is_a: bool) -> Tracked {
        let Some(ct) = entry else { return Tracked::New };
        // SAFETY: the entry stays valid for the program's run; a lost
        // increment under a race only skews a statistic.
        unsafe {
            if ((*ct).a_is_origin == 1) == src_is_a {
                (*ct).packets += 1;
                Tracked::Established((*ct).proxied != 0)
            } else {
                (*ct).replies += 1;
                Tracked::Reply
            }
        }
    }

    #[inline(always)]
    fn ct_value(now: u64, src_is_a: bool, proxied: bool) -> CtValue {
        CtValue {
            created_ns: now,
            packets: 1,
            replies: 0,
            a_is_origin: src_is_a as u8,
            proxied: proxied as u8,
            _pad: [0; 6],
        }
    }

    /// The canonical conntrack key of a packet, and whether its source is the key's `a` side.
    #[inline(always)]
    fn ct4(p: &Packet<u32>, ifindex: u32) -> (CtKey4, bool) {
        let src_low =
            ((p.src as u64) << 16 | p.sport as u64) <= ((p.dst as u64) << 16 | p.dport as u64);
        let (a, b, pa, pb) = if src_low {
            (p.src, p.dst, p.sport, p.dport)
        } else {
            (p.dst, p.src, p.dport, p.sport)
        };
        let k = CtKey4 {
            a,
            b,
            pa,
            pb,
            proto: p.proto,
            _pad: 0,
            ifindex: ifindex as u16,
        };
        (k, src_low)
    }

    #[inline(always)]
    fn ct6(p: &Packet<[u32; 4]>, ifindex: u32) -> (CtKey, bool) {
        let src_low = (p.src, p.sport) <= (p.dst, p.dport);
        let (a, b, pa, pb) = if src_low {
            (&p.src, &p.dst, p.sport, p.dport)
        } else {
            (&p.dst, &p.src, p.dport, p.sport)
        };
        let k = CtKey {
            a: a.bytes(),
            b: b.bytes(),
            pa,
            pb,
            proto: p.proto,
            _pad: [0; 3],
            ifindex,
        };
        (k, src_low)
    }

    /// An LPM-trie key laid out as the kernel wants it (prefix length, then
    /// data), aligned so that it is written word by word.
    #[repr(C)]
    struct LpmKey<A> {
        prefix_len: u32,
        addr: A,
    }

    /// The identity of the longest prefix in `trie` holding `addr`, else the
    /// family's world.
    #[inline(always)]
    fn longest_prefix<A: Family>(trie: &LpmTrie<A, u32>, addr: A) -> u32 {
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

    /// Assigns the packet to the proxy listener in `slot` of `MCNET_PROXY`
    /// and marks it for local delivery.
    #[inline(always)]
    fn assign_to_proxy(ctx: &TcContext, slot: u32) -> bool {
        // SAFETY: `PROXY` is a sockmap (u32 keys); a lookup returns a
        // referenced socket or null, and the reference is released on
        // every path below.
        let sk = unsafe {
            bpf_map_lookup_elem(
                &PROXY as *const SockMap as *mut core::ffi::c_void,
                &slot as *const u32 as *const core::ffi::c_void,
            )
        };
        if sk.is_null() {
            return false;
        }
        // SAFETY: the skb is this program's; `sk` is a referenced socket.
        let assigned = unsafe { bpf_sk_assign(ctx.skb.skb as *mut _, sk, 0) } == 0;
        // SAFETY: releases the reference taken by the lookup.
        unsafe { bpf_sk_release(sk) };
        if assigned {
            set_mark(ctx, MARK_TO_PROXY);
        }
        assigned
    }

    #[inline(always)]
    fn set_mark(ctx: &TcContext, mark: u32) {
        // SAFETY: the skb pointer is valid for the program's run and
        // `mark` is writable from TC programs.
        unsafe { (*ctx.skb.skb).mark = mark };
    }

    /// Whether `peer`'s ingress policy has L7 rules for this connection
    /// from `src` (looked up for every key shape: the peer's shape flags
    /// are not at hand on this side).
    #[inline(always)]
    fn peer_ingress_l7(peer: u32, src: u32, port: u16, proto: u8) -> bool {
        let every_shape = EndpointInfo {
            identity: peer,
            flags: EP_SHAPES,
        };
        matches!(
            policy(&every_shape, src, port, proto, DIR_INGRESS),
            Some(v) if v.action == ACTION_ALLOW_L7
        )
    }

    /// The verdict on a parsed packet of `ep`.
    #[inline(always)]
    fn judge<A: Family>(
        ctx: &TcContext,
        p: &Packet<A>,
        ep: &EndpointInfo,
        ifindex: u32,
        direction: u8,
        len: u32,
    ) -> i32 {
        // ICMP messages other than echoes carry no identifier: conntrack
        // would lump every type between two addresses into one entry, so
        // each is judged by policy on its own.
        let tracked =
            !((p.proto == PROTO_ICMP || p.proto == PROTO_ICMPV6) && p.sport == 0 && p.dport == 0);
        let state = if tracked {
            A::track(p, ifindex)
        } else {
            Tracked::New
        };
        match state {
            Tracked::Established(proxied) => {
                if proxied {
                    set_mark(ctx, MARK_TO_PROXY);
                }
                count(REASON_ALLOWED_ESTABLISHED, len);
                return TC_ACT_OK;
            }
            Tracked::Reply => {
                count(REASON_ALLOWED_REPLY, len);
                return TC_ACT_OK;
            }
            Tracked::New => {}
        }
        let (mut peer, isolated) = if direction == DIR_EGRESS {
            (p.dst.identity(), ep.flags & EP_EGRESS_ISOLATED != 0)
        } else {
            (p.src.identity(), ep.flags & EP_INGRESS_ISOLATED != 0)
        };
        // The L7 proxy's upstream connection: the client's identity rides
        // in the mark (which pods cannot set), and its request was judged.
        let mut from_proxy = false;
        if direction == DIR_INGRESS && p.proto == PROTO_TCP {
            // SAFETY: the skb pointer is valid for the program's run.
            let mark = unsafe { (*ctx.skb.skb).mark };
            if mark & 0xff == MARK_FROM_PROXY && mark >> 8 != 0 {
                peer = mark >> 8;
                from_proxy = true;
            }
        }
        let (src_id, dst_id) = if direction == DIR_EGRESS {
            (ep.identity, peer)
        } else {
            (peer, ep.identity)
        };
        let l7_mode = || CONFIG.get(CONFIG_L7_MODE).copied().unwrap_or(0);
        let (mut allow, mut reason, mut l7, cookie) =
            match policy(ep, peer, p.key_port, p.proto, direction) {
                Some(v) if v.action == ACTION_DENY => (false, REASON_DROP_DENY_RULE, 0, v.cookie),
                Some(v) if v.action == ACTION_ALLOW_L7 => match l7_mode() {
                    L7_MODE_AUDIT => (true, REASON_ALLOWED_L7_AUDIT, 1, v.cookie),
                    L7_MODE_PROXY if from_proxy => (true, REASON_ALLOWED_L7_PROXIED, 1, v.cookie),
                    L7_MODE_PROXY if p.proto == PROTO_TCP && direction == DIR_EGRESS => {
                        (true, REASON_REDIRECTED_L7, 1, v.cookie)
                    }
                    _ => (false, REASON_DROP_L7, 1, v.cookie),
                },
                Some(v) => (true, REASON_ALLOWED_POLICY, 0, v.cookie),
                None if isolated => (false, REASON_DROP_NO_RULE, 0, 0),
                None => (true, REASON_ALLOWED_NOT_ISOLATED, 0, 0),
            };
        // A connection whose peer enforces L7 on its ingress goes to the
        // proxy from this side, where the socket can be assigned.
        if allow
            && l7 == 0
            && ep.flags & EP_L7_REDIRECT != 0
            && direction == DIR_EGRESS
            && p.proto == PROTO_TCP
            && peer_ingress_l7(peer, ep.identity, p.key_port, p.proto)
        {
            l7 = 1;
            (allow, reason) = match l7_mode() {
                L7_MODE_AUDIT => (true, REASON_ALLOWED_L7_AUDIT),
                L7_MODE_PROXY => (true, REASON_REDIRECTED_L7),
                _ => (false, REASON_DROP_L7),
            };
        }
        let proxied = reason == REASON_REDIRECTED_L7;
        if proxied {
            let origin = ProxyOrigin {
                src_identity: ep.identity,
                dst_identity: peer,
                ifindex,
                _pad: 0,
            };
            if !A::to_proxy(ctx, p, &origin) {
                (allow, reason) = (false, REASON_DROP_PROXY_UNAVAILABLE);
            }
        }
        count(reason, len);
        let verdict = if allow {
            if tracked {
                // SAFETY: a helper without preconditions.
                A::open(p, ifindex, unsafe { bpf_ktime_get_ns() }, proxied && allow);
            }
            VERDICT_FORWARDED
        } else {
            VERDICT_DROPPED
        };
        report(
            p, ifindex, direction, src_id, dst_id, verdict, reason, l7, cookie,
        );
        if allow {
            TC_ACT_OK
        } else {
            TC_ACT_SHOT
        }
    }

    #[inline(always)]
    fn enforce(ctx: &TcContext, direction: u8) -> i32 {
        let len = ctx.len();
        // The endpoint first: packets of unbound or unrestricted endpoints
        // pass without being parsed.
        // SAFETY: the skb pointer is valid for the program's run.
        let ifindex = unsafe { (*ctx.skb.skb).ifindex };
        let ep = match ENDPOINTS.get(ifindex) {
            Some(ep) if ep.identity != 0 => *ep,
            _ => {
                count(REASON_PASS_NO_ENDPOINT, len);
                return TC_ACT_OK;
            }
        };
        if ep.flags & EP_OPEN != 0 {
            count(REASON_ALLOWED_NOT_ISOLATED, len);
            return TC_ACT_OK;
        }
        match parse(ctx) {
            Ok(Parsed::V4(p)) => judge(ctx, &p, &ep, ifindex, direction, len),
            Ok(Parsed::V6(p)) => judge(ctx, &p, &ep, ifindex, direction, len),
            Ok(Parsed::NotIp) => {
                count(REASON_PASS_NOT_IP, len);
                TC_ACT_OK
            }
            Ok(Parsed::Ndp) => {
                count(REASON_PASS_NDP, len);
                TC_ACT_OK
            }
            Err(()) => {
                count(REASON_DROP_MALFORMED, len);
                TC_ACT_SHOT
            }
        }
    }

    /// TC ingress hook of the host-side interface: packets leaving the pod (its egress).
    #[classifier]
    pub fn mcnet_from_pod(ctx: TcContext) -> i32 {
        enforce(&ctx, DIR_EGRESS)
    }

    /// TC egress hook of the host-side interface: packets entering the pod (its ingress).
    #[classifier]
    pub fn mcnet_to_pod(ctx: TcContext) -> i32 {
        enforce(&ctx, DIR_INGRESS)
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
