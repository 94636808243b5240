//! The policy lookup: the bucketed cache first (a seqlock reader), the
//! hash map when the cache cannot say.

use super::*;

/// The policy entry deciding (endpoint, peer, port, protocol, direction).
#[inline(always)]
pub(super) fn policy(
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
pub(super) enum Cached {
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
pub(super) fn cached(key: &PolicyKey) -> Cached {
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
