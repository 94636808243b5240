//! The programs, their maps, and the verdict: what runs at each TC hook.

use aya_ebpf::bindings::{TC_ACT_OK, TC_ACT_SHOT};
use aya_ebpf::helpers::{bpf_ktime_get_ns, bpf_map_lookup_elem, bpf_sk_assign, bpf_sk_release};
use aya_ebpf::macros::{classifier, map};
use aya_ebpf::maps::{Array, HashMap, LpmTrie, LruHashMap, PerCpuArray, RingBuf, SockMap};
use aya_ebpf::programs::TcContext;
use mcnet_ebpf_common::*;

mod conntrack;
mod family;
mod lookup;
mod packet;

use conntrack::*;
use family::*;
use lookup::*;
use packet::*;

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
static IPCACHE6: HashMap<[u32; 4], u32> = HashMap::pinned(262_144, 1 /* BPF_F_NO_PREALLOC */);

/// IPv6 prefixes → identity.
#[map(name = "MCNET_IPCACHE")]
static IPCACHE: LpmTrie<[u32; 4], u32> = LpmTrie::pinned(262_144, 1 /* BPF_F_NO_PREALLOC */);

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
static DIR4: Array<u32> = Array::pinned(IPCACHE4_DIR_ENTRIES, 1 << 10 /* BPF_F_MMAPABLE */);

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
