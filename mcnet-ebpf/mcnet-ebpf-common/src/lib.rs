//! `#[repr(C)]` types shared by the kernel programs in `mcnet-ebpf` and the
//! userspace loader in `mcnet-datapath`: no `bool`, explicit padding, and
//! size assertions here and in the userspace tests.

#![no_std]

/// IP protocol numbers the datapath understands; `PROTO_ANY` only in map keys.
pub const PROTO_ANY: u8 = 0;
/// ICMP.
pub const PROTO_ICMP: u8 = 1;
/// TCP.
pub const PROTO_TCP: u8 = 6;
/// UDP.
pub const PROTO_UDP: u8 = 17;
/// ICMPv6.
pub const PROTO_ICMPV6: u8 = 58;
/// SCTP.
pub const PROTO_SCTP: u8 = 132;

/// The policy-map "port" of an ICMP or ICMPv6 message: its type, as Cilium
/// keys it, offset by this value so that type 0 (echo reply) never reads
/// as the any-port key 0.
pub const ICMP_TYPE_KEY: u16 = 0x100;

/// The policy-map port of ICMP type `t`.
#[inline(always)]
pub const fn icmp_key(t: u8) -> u16 {
    ICMP_TYPE_KEY | t as u16
}

/// ICMP echo request and reply types (IPv4 and IPv6): conntrack keys them
/// by their identifier, so that a reply finds its request.
pub const ICMP_ECHO_REQUEST: u8 = 8;
/// ICMP echo reply.
pub const ICMP_ECHO_REPLY: u8 = 0;
/// ICMPv6 echo request.
pub const ICMPV6_ECHO_REQUEST: u8 = 128;
/// ICMPv6 echo reply.
pub const ICMPV6_ECHO_REPLY: u8 = 129;

/// Traffic into the pod (the TC egress hook of its host-side interface).
pub const DIR_INGRESS: u8 = 0;
/// Traffic out of the pod (the TC ingress hook of its host-side interface).
pub const DIR_EGRESS: u8 = 1;

/// Reserved identity for addresses outside the cluster, IPv4 (ipcache miss).
pub const IDENTITY_WORLD_IPV4: u32 = 9;
/// Reserved identity for addresses outside the cluster, IPv6 (ipcache miss).
pub const IDENTITY_WORLD_IPV6: u32 = 10;

/// `EndpointInfo::flags`: ingress is isolated (default deny).
pub const EP_INGRESS_ISOLATED: u32 = 1;
/// `EndpointInfo::flags`: egress is isolated (default deny).
pub const EP_EGRESS_ISOLATED: u32 = 2;
/// `EndpointInfo::flags`: no policy restricts the endpoint in either
/// direction (not isolated, no deny rule): its packets pass untracked.
pub const EP_OPEN: u32 = 4;
/// `EndpointInfo::flags`: new TCP connections of this endpoint may need the
/// L7 proxy (its egress, or some peer's ingress, has L7 rules), so the
/// kernel checks the peer's ingress policy too when it opens one.
pub const EP_L7_REDIRECT: u32 = 8;

/// `EndpointInfo::flags`: the policy-key shapes an endpoint has entries of,
/// one bit per shape and direction, so that the kernel looks up only the
/// shapes that can hit. Shape 0 is (peer, port), 1 (peer, any port),
/// 2 (any peer, port), 3 (any peer, any port); the bit of `shape` in
/// `direction` is `1 << (EP_SHAPE_SHIFT + 4 * direction + shape)`.
pub const EP_SHAPE_SHIFT: u32 = 8;

/// The `EndpointInfo::flags` bit saying that `direction` has entries of `shape`.
#[inline(always)]
pub const fn ep_shape_bit(direction: u8, shape: u32) -> u32 {
    1 << (EP_SHAPE_SHIFT + 4 * direction as u32 + shape)
}

/// Every shape bit of both directions.
pub const EP_SHAPES: u32 = 0xff << EP_SHAPE_SHIFT;

/// Size of the endpoint array, indexed by ifindex (interfaces with a larger index cannot be bound).
pub const MAX_IFINDEX: u32 = 65_536;

/// An endpoint (pod) behind a host-side interface, at its ifindex in the
/// endpoint array; identity 0 means no endpoint.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EndpointInfo {
    /// The pod's security identity (also the `endpoint` of its policy keys).
    pub identity: u32,
    /// `EP_*` flags.
    pub flags: u32,
}

/// LPM-trie key data of the ipcache: an IPv6 address, IPv4 mapped as
/// `::ffff:a.b.c.d` (its prefix length plus 96).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct IpKey {
    /// Address bytes, network order.
    pub addr: [u8; 16],
}

/// A policy-map key. `peer == 0` is the wildcard peer, `port == 0` every
/// port, `proto == PROTO_ANY` is never stored (userspace expands it).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PolicyKey {
    /// Identity of the endpoint the policy belongs to.
    pub endpoint: u32,
    /// Identity of the peer, or 0.
    pub peer: u32,
    /// Destination port (host order), or 0.
    pub port: u16,
    /// IP protocol.
    pub proto: u8,
    /// `DIR_INGRESS` or `DIR_EGRESS`.
    pub direction: u8,
}

/// Allow.
pub const ACTION_ALLOW: u8 = 1;
/// Deny (wins; userspace already merged precedence into each key).
pub const ACTION_DENY: u8 = 2;
/// Allowed at L4, with L7 rules the kernel cannot enforce.
pub const ACTION_ALLOW_L7: u8 = 3;

/// A policy-map value.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct PolicyValue {
    /// `ACTION_*`.
    pub action: u8,
    /// Padding.
    pub _pad: [u8; 3],
    /// An opaque rule cookie for flow events.
    pub cookie: u32,
}

/// An IPv4 connection-tracking key (16 bytes, so that hashing it is cheap),
/// canonical: the `a` side is the lower (address word, port) of the two,
/// compared as the kernel reads them, so that a flow and its replies share
/// one entry and one lookup finds either.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct CtKey4 {
    /// The lower side's address: its four bytes in network order, read as
    /// one native-endian word.
    pub a: u32,
    /// The higher side's address, as `a`.
    pub b: u32,
    /// The lower side's port.
    pub pa: u16,
    /// The higher side's port.
    pub pb: u16,
    /// IP protocol.
    pub proto: u8,
    /// Padding.
    pub _pad: u8,
    /// The endpoint's host-side interface (low 16 bits).
    pub ifindex: u16,
}

/// An IPv6 connection-tracking key, canonical as [`CtKey4`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct CtKey {
    /// The lower side's address.
    pub a: [u8; 16],
    /// The higher side's address.
    pub b: [u8; 16],
    /// The lower side's port.
    pub pa: u16,
    /// The higher side's port.
    pub pb: u16,
    /// IP protocol.
    pub proto: u8,
    /// Padding.
    pub _pad: [u8; 3],
    /// The endpoint's host-side interface.
    pub ifindex: u32,
}

/// A connection-tracking value.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CtValue {
    /// When the entry was created (ktime ns).
    pub created_ns: u64,
    /// Packets seen in the original direction.
    pub packets: u64,
    /// Replies seen.
    pub replies: u64,
    /// 1 when the flow's originator is the key's `a` side.
    pub a_is_origin: u8,
    /// 1 when the flow was handed to the L7 proxy: its later packets carry
    /// [`MARK_TO_PROXY`] so that the node delivers them to the proxy.
    pub proxied: u8,
    /// Padding.
    pub _pad: [u8; 6],
}

/// Why a packet got its verdict: the index into the per-CPU counters.
pub const REASON_ALLOWED_POLICY: u32 = 0;
/// Established connection (conntrack).
pub const REASON_ALLOWED_ESTABLISHED: u32 = 1;
/// Reply of a tracked connection.
pub const REASON_ALLOWED_REPLY: u32 = 2;
/// The direction is not isolated.
pub const REASON_ALLOWED_NOT_ISOLATED: u32 = 3;
/// Allowed at L4 on a port with L7 rules (audit: L7 not enforced in the kernel).
pub const REASON_ALLOWED_L7_AUDIT: u32 = 4;
/// Dropped: isolated and no rule matched.
pub const REASON_DROP_NO_RULE: u32 = 5;
/// Dropped: a deny rule matched.
pub const REASON_DROP_DENY_RULE: u32 = 6;
/// Dropped: the port needs L7 enforcement (L7 mode `deny`).
pub const REASON_DROP_L7: u32 = 7;
/// Passed: not IPv4/IPv6.
pub const REASON_PASS_NOT_IP: u32 = 8;
/// Passed: the interface has no endpoint.
pub const REASON_PASS_NO_ENDPOINT: u32 = 9;
/// Dropped: malformed packet.
pub const REASON_DROP_MALFORMED: u32 = 10;
/// Passed: IPv6 neighbour discovery or link-local multicast (always allowed, as in Cilium).
pub const REASON_PASS_NDP: u32 = 11;
/// A new TCP connection handed to the L7 proxy.
pub const REASON_REDIRECTED_L7: u32 = 12;
/// An L7 port whose proxy is not running: dropped (fail closed).
pub const REASON_DROP_PROXY_UNAVAILABLE: u32 = 13;
/// The proxy's own upstream connection, after it judged the request.
pub const REASON_ALLOWED_L7_PROXIED: u32 = 14;
/// Number of counter slots.
pub const REASON_COUNT: u32 = 15;

/// The reasons as a type, for userspace: its name (as flow events and
/// metrics print it) and whether it drops.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u32)]
pub enum Reason {
    /// [`REASON_ALLOWED_POLICY`].
    AllowedPolicy = REASON_ALLOWED_POLICY,
    /// [`REASON_ALLOWED_ESTABLISHED`].
    AllowedEstablished = REASON_ALLOWED_ESTABLISHED,
    /// [`REASON_ALLOWED_REPLY`].
    AllowedReply = REASON_ALLOWED_REPLY,
    /// [`REASON_ALLOWED_NOT_ISOLATED`].
    AllowedNotIsolated = REASON_ALLOWED_NOT_ISOLATED,
    /// [`REASON_ALLOWED_L7_AUDIT`].
    AllowedL7Audit = REASON_ALLOWED_L7_AUDIT,
    /// [`REASON_DROP_NO_RULE`].
    DropNoRule = REASON_DROP_NO_RULE,
    /// [`REASON_DROP_DENY_RULE`].
    DropDenyRule = REASON_DROP_DENY_RULE,
    /// [`REASON_DROP_L7`].
    DropL7 = REASON_DROP_L7,
    /// [`REASON_PASS_NOT_IP`].
    PassNotIp = REASON_PASS_NOT_IP,
    /// [`REASON_PASS_NO_ENDPOINT`].
    PassNoEndpoint = REASON_PASS_NO_ENDPOINT,
    /// [`REASON_DROP_MALFORMED`].
    DropMalformed = REASON_DROP_MALFORMED,
    /// [`REASON_PASS_NDP`].
    PassNdp = REASON_PASS_NDP,
    /// [`REASON_REDIRECTED_L7`].
    RedirectedL7 = REASON_REDIRECTED_L7,
    /// [`REASON_DROP_PROXY_UNAVAILABLE`].
    DropProxyUnavailable = REASON_DROP_PROXY_UNAVAILABLE,
    /// [`REASON_ALLOWED_L7_PROXIED`].
    AllowedL7Proxied = REASON_ALLOWED_L7_PROXIED,
}

impl Reason {
    /// Every reason, in counter order.
    pub const ALL: [Reason; REASON_COUNT as usize] = [
        Reason::AllowedPolicy,
        Reason::AllowedEstablished,
        Reason::AllowedReply,
        Reason::AllowedNotIsolated,
        Reason::AllowedL7Audit,
        Reason::DropNoRule,
        Reason::DropDenyRule,
        Reason::DropL7,
        Reason::PassNotIp,
        Reason::PassNoEndpoint,
        Reason::DropMalformed,
        Reason::PassNdp,
        Reason::RedirectedL7,
        Reason::DropProxyUnavailable,
        Reason::AllowedL7Proxied,
    ];

    /// The reason of a counter slot or flow event.
    pub const fn from_u32(r: u32) -> Option<Reason> {
        if r < REASON_COUNT {
            Some(Reason::ALL[r as usize])
        } else {
            None
        }
    }

    /// Its name (`allowed-policy`, `drop-no-rule`, ...).
    pub const fn name(self) -> &'static str {
        match self {
            Reason::AllowedPolicy => "allowed-policy",
            Reason::AllowedEstablished => "allowed-established",
            Reason::AllowedReply => "allowed-reply",
            Reason::AllowedNotIsolated => "allowed-not-isolated",
            Reason::AllowedL7Audit => "allowed-l7-audit",
            Reason::DropNoRule => "drop-no-rule",
            Reason::DropDenyRule => "drop-deny-rule",
            Reason::DropL7 => "drop-l7",
            Reason::PassNotIp => "pass-not-ip",
            Reason::PassNoEndpoint => "pass-no-endpoint",
            Reason::DropMalformed => "drop-malformed",
            Reason::PassNdp => "pass-ndp",
            Reason::RedirectedL7 => "redirected-l7",
            Reason::DropProxyUnavailable => "drop-proxy-unavailable",
            Reason::AllowedL7Proxied => "allowed-l7-proxied",
        }
    }

    /// Whether packets of this reason are dropped.
    pub const fn is_drop(self) -> bool {
        matches!(
            self,
            Reason::DropNoRule
                | Reason::DropDenyRule
                | Reason::DropL7
                | Reason::DropMalformed
                | Reason::DropProxyUnavailable
        )
    }

    /// The reason with this name.
    pub fn from_name(name: &str) -> Option<Reason> {
        Reason::ALL.iter().copied().find(|r| r.name() == name)
    }
}

/// Flow verdicts.
pub const VERDICT_FORWARDED: u8 = 1;
/// Dropped.
pub const VERDICT_DROPPED: u8 = 2;

/// `Config` index of the L7 mode: [`L7_MODE_AUDIT`] passes ports with L7
/// rules at L4 and records them; [`L7_MODE_PROXY`] hands their TCP
/// connections to the L7 proxy; any other value (an unset map included)
/// drops them, since the kernel cannot judge their requests: fail closed.
pub const CONFIG_L7_MODE: u32 = 0;
/// The L7 mode value that audits instead of dropping.
pub const L7_MODE_AUDIT: u32 = 2;
/// The L7 mode value that redirects to the proxy (enforcing).
pub const L7_MODE_PROXY: u32 = 3;

/// `skb->mark` of packets handed to the proxy: the node's policy routing
/// (`ip rule fwmark 0x4d/0xff lookup 100`, `local default dev lo table
/// 100`) delivers them locally instead of forwarding them.
pub const MARK_TO_PROXY: u32 = 0x4d;
/// Low byte of the mark the proxy puts on its upstream connections; the
/// client's identity is in the upper 24 bits (pod identities fit). Marks
/// cannot come from pods: crossing a veth into the node scrubs them.
pub const MARK_FROM_PROXY: u32 = 0x4e;
/// Routing table the node uses for [`MARK_TO_PROXY`].
pub const PROXY_ROUTE_TABLE: u32 = 100;
/// `MCNET_PROXY` sockmap slot of the IPv4 listener.
pub const PROXY_SLOT_V4: u32 = 0;

/// Key of `MCNET_PROXY_ORIGIN4`: a redirected connection as the proxy sees
/// it accepted (client address and port, original destination and port),
/// addresses in wire order, ports in host order.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ProxyKey4 {
    /// Client address.
    pub client: [u8; 4],
    /// Original destination address.
    pub dst: [u8; 4],
    /// Client port.
    pub client_port: u16,
    /// Original destination port.
    pub dst_port: u16,
}

/// Value of `MCNET_PROXY_ORIGIN4`: what the kernel knew when it redirected.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProxyOrigin {
    /// The client's identity, as the kernel judged it.
    pub src_identity: u32,
    /// The destination's identity.
    pub dst_identity: u32,
    /// The host-side interface the connection came from.
    pub ifindex: u32,
    /// Padding.
    pub _pad: u32,
}
/// `Config` index of flow events: 0 on, 1 off.
pub const CONFIG_EVENTS_OFF: u32 = 1;
/// `Config` index: [`MAPS_PREFIXES`] when the IPv4 CIDR trie may hold a
/// prefix; without it, IPv4 lookups skip the trie.
pub const CONFIG_PREFIXES_V4: u32 = 2;
/// `Config` index: which of the IPv6 ipcache maps may hold entries, as
/// [`MAPS_PREFIXES`] and [`MAPS_EXACT`] bits; lookups skip the others.
pub const CONFIG_PREFIXES_V6: u32 = 3;
/// `CONFIG_PREFIXES_V*` bit: the family's CIDR trie may hold a prefix.
/// (An agent from before the exact-map bit wrote 0 or 1 here.)
pub const MAPS_PREFIXES: u32 = 1;
/// `CONFIG_PREFIXES_V6` bit: the IPv6 exact-address hash may hold an
/// address. (IPv4 slots say this for themselves: [`IPCACHE4_SHARED`].)
pub const MAPS_EXACT: u32 = 2;

/// log2 of the number of slots of the direct-mapped IPv4 ipcache.
pub const IPCACHE4_SLOT_BITS: u32 = 18;
/// Slots of the direct-mapped IPv4 ipcache (2 MiB of `u64`).
pub const IPCACHE4_SLOTS: u32 = 1 << IPCACHE4_SLOT_BITS;

/// The slot of an IPv4 address (host byte order) in the direct-mapped
/// ipcache: its low bits folded with its high ones, so that the addresses
/// of any one aligned /14 (a cluster's pod CIDR, say) never share a slot.
pub const fn ipcache4_slot(addr: u32) -> u32 {
    (addr ^ (addr >> IPCACHE4_SLOT_BITS)) & (IPCACHE4_SLOTS - 1)
}

/// A direct-mapped slot's value: the address as the program loads it from
/// the packet (its wire bytes read as a native word) in bits 0-31, the
/// identity in bits 32-62, and [`IPCACHE4_SHARED`]. Identity 0 is no
/// address, so zero is an empty slot. One word, so that userspace replaces
/// it with one store.
pub const fn ipcache4_slot_value(octets: [u8; 4], identity: u32) -> u64 {
    ((identity & IPCACHE4_MAX_IDENTITY) as u64) << 32 | u32::from_ne_bytes(octets) as u64
}

/// Slot bit: the IPv4 hash map may hold addresses of this slot (which
/// another address took); without it, a lookup that misses the slot skips
/// the hash map.
pub const IPCACHE4_SHARED: u64 = 1 << 63;

/// The largest identity a slot holds; larger ones go to the hash map.
pub const IPCACHE4_MAX_IDENTITY: u32 = (1 << 31) - 1;

/// Entries of the IPv4 prefix directory: one per /16.
pub const IPCACHE4_DIR_ENTRIES: u32 = 1 << 16;
/// Directory entry bit: ask the IPv4 trie, because a prefix longer than
/// /16 lies in this /16 (or userspace is rewriting the entry). Without it,
/// the entry is the identity of the longest prefix of /16 or shorter that
/// covers the /16, or 0 where none does (world).
pub const IPCACHE4_DIR_TRIE: u32 = 1 << 31;

/// log2 of the number of buckets of the policy cache.
pub const POLICY_CACHE_BITS: u32 = 17;
/// Buckets of the policy cache (8 MiB of [`PolicyBucket`]).
pub const POLICY_CACHE_BUCKETS: u32 = 1 << POLICY_CACHE_BITS;
/// Keys a policy-cache bucket holds.
pub const POLICY_CACHE_WAYS: usize = 2;
/// [`PolicyBucket::flags`] bit: the bucket holds every policy key that
/// falls in it, so that a key it does not hold is in no map.
pub const POLICY_BUCKET_COMPLETE: u32 = 1;

/// The policy-cache bucket of a key: its three words multiplied into one
/// and the top bits kept (every key bit reaches them).
#[inline(always)]
pub const fn policy_bucket(key: &PolicyKey) -> u32 {
    let low = key.port as u64 | (key.proto as u64) << 16 | (key.direction as u64) << 24;
    let x =
        ((key.endpoint as u64) << 32 | key.peer as u64) ^ low.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    (x.wrapping_mul(0xd6e8_feb8_6659_fd93) >> (64 - POLICY_CACHE_BITS)) as u32
}

/// One cache line of the policy cache: up to [`POLICY_CACHE_WAYS`] policy
/// entries whose keys fall in this bucket, under a sequence count.
///
/// The policy hash map stays complete; the cache spares the program the
/// hashing. Userspace writes a bucket as a seqlock writer (the count odd
/// while it writes); the program reads the count, the bucket and the count
/// again, and asks the hash map when the count was odd or moved, or when
/// the bucket is not [`POLICY_BUCKET_COMPLETE`] and does not hold the key.
/// An empty way has endpoint 0, which no packet's key has.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PolicyBucket {
    /// The sequence count: odd while userspace writes the bucket.
    pub seq: u32,
    /// `POLICY_BUCKET_*` flags.
    pub flags: u32,
    /// The keys held.
    pub keys: [PolicyKey; POLICY_CACHE_WAYS],
    /// Their values.
    pub values: [PolicyValue; POLICY_CACHE_WAYS],
    /// Padding to 64 bytes.
    pub _pad: [u32; 4],
}

/// Number of config slots.
pub const CONFIG_SLOTS: u32 = 4;

/// A flow event (new flows and drops), Hubble-like.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowEvent {
    /// ktime ns.
    pub ts_ns: u64,
    /// Source address (IPv4 mapped).
    pub src: [u8; 16],
    /// Destination address (IPv4 mapped).
    pub dst: [u8; 16],
    /// Source identity.
    pub src_identity: u32,
    /// Destination identity.
    pub dst_identity: u32,
    /// Source port.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
    /// Interface.
    pub ifindex: u32,
    /// IP protocol.
    pub proto: u8,
    /// `VERDICT_*`.
    pub verdict: u8,
    /// `REASON_*` (fits a byte).
    pub reason: u8,
    /// `DIR_*`.
    pub direction: u8,
    /// 1 for a reply.
    pub is_reply: u8,
    /// 4 or 6.
    pub family: u8,
    /// 1 when the port carries L7 rules.
    pub l7: u8,
    /// Padding.
    pub _pad: u8,
    /// Policy cookie of the deciding entry (0 if none).
    pub cookie: u32,
    /// Padding.
    pub _pad2: u32,
}

/// Per-CPU packet counter (one per reason).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PacketCount {
    /// Packets.
    pub packets: u64,
    /// Bytes.
    pub bytes: u64,
}

const _: () = assert!(core::mem::size_of::<EndpointInfo>() == 8);
const _: () = assert!(core::mem::size_of::<IpKey>() == 16);
const _: () = assert!(core::mem::size_of::<PolicyKey>() == 12);
const _: () = assert!(core::mem::size_of::<PolicyValue>() == 8);
const _: () = assert!(core::mem::size_of::<CtKey>() == 44);
const _: () = assert!(core::mem::size_of::<CtKey4>() == 16);
const _: () = assert!(core::mem::size_of::<CtValue>() == 32);
const _: () = assert!(core::mem::size_of::<FlowEvent>() == 72);
const _: () = assert!(core::mem::size_of::<PacketCount>() == 16);

#[cfg(feature = "user")]
mod pod {
    use super::*;
    // SAFETY: every type is repr(C), has explicit padding and is valid for any bit pattern.
    unsafe impl aya::Pod for EndpointInfo {}
    unsafe impl aya::Pod for IpKey {}
    unsafe impl aya::Pod for PolicyKey {}
    unsafe impl aya::Pod for PolicyValue {}
    unsafe impl aya::Pod for PolicyBucket {}
    unsafe impl aya::Pod for CtKey {}
    unsafe impl aya::Pod for CtKey4 {}
    unsafe impl aya::Pod for CtValue {}
    unsafe impl aya::Pod for FlowEvent {}
    unsafe impl aya::Pod for PacketCount {}
    unsafe impl aya::Pod for ProxyKey4 {}
    unsafe impl aya::Pod for ProxyOrigin {}
}
// `Reason::ALL` is in counter order, so that `from_u32` is an index.
const _: () = {
    let mut i = 0;
    while i < REASON_COUNT as usize {
        assert!(Reason::ALL[i] as u32 == i as u32);
        i += 1;
    }
};
