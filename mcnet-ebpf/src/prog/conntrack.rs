//! Connection tracking: canonical keys, what a lookup found, new entries.

use super::*;

pub(super) enum Tracked {
    New,
    /// An allowed flow; `true` when the proxy owns its client side.
    Established(bool),
    Reply,
}

/// What a conntrack lookup found, counting the packet on the entry.
#[inline(always)]
pub(super) fn tracked(entry: Option<*mut CtValue>, src_is_a: bool) -> Tracked {
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
pub(super) fn ct_value(now: u64, src_is_a: bool, proxied: bool) -> CtValue {
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
pub(super) fn ct4(p: &Packet<u32>, ifindex: u32) -> (CtKey4, bool) {
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
pub(super) fn ct6(p: &Packet<[u32; 4]>, ifindex: u32) -> (CtKey, bool) {
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
