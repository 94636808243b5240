//! The policy cache: the policy map's entries again, in buckets the program
//! reads without hashing.
//!
//! A new flow used to cost the program two hash lookups, conntrack and
//! policy. In the datapath bench, skipping the policy one outright took
//! about 40% off the program's own cost per new flow (its cost above the
//! test harness's floor), and this cache, which still reads a bucket,
//! about a quarter. The cache is `MCNET_POLICY_CACHE`, an array of
//! [`POLICY_CACHE_BUCKETS`] cache lines: bucket [`policy_bucket`]`(key)`
//! holds up to [`POLICY_CACHE_WAYS`] of the keys that fall in it, with their
//! values, and says whether it holds all of them
//! ([`POLICY_BUCKET_COMPLETE`]). A lookup that finds its key, or misses a
//! complete bucket, is decided there; any other goes on to the hash map,
//! which stays complete and authoritative.
//!
//! Userspace writes a bucket through a shared mapping of the array, as a
//! seqlock writer: it makes the bucket's count odd, writes the words, and
//! makes the count even again. A reader that sees an odd count, or a count
//! that moved while it read, asks the hash map. A sync makes the buckets it
//! will change odd before it writes any map and fills them after it has
//! written them all, so while it runs the program decides those keys from
//! the hash map alone, exactly as it would without a cache.
//!
//! The reader relies on loads staying in program order, which x86-64
//! guarantees. On other architectures userspace leaves every bucket empty
//! and incomplete, so every lookup goes to the hash map.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::os::fd::BorrowedFd;
use std::sync::atomic::{fence, AtomicU32, Ordering};

pub use mcnet_ebpf_common::policy_bucket;
use mcnet_ebpf_common::{
    PolicyBucket, PolicyKey, PolicyValue, POLICY_BUCKET_COMPLETE, POLICY_CACHE_BUCKETS,
    POLICY_CACHE_WAYS,
};

use crate::mmap::MappedArray;

/// Whether this build fills the cache (see the module docs).
pub const ENABLED: bool = cfg!(target_arch = "x86_64");

/// Words in a bucket.
const WORDS: usize = std::mem::size_of::<PolicyBucket>() / 4;

/// A bucket holding `entries` (the entries of one bucket, in key order):
/// the first [`POLICY_CACHE_WAYS`] of them, complete if that is all. Its
/// count is left 0.
pub fn fill(entries: &[(PolicyKey, PolicyValue)]) -> PolicyBucket {
    let mut b = PolicyBucket {
        flags: if entries.len() <= POLICY_CACHE_WAYS {
            POLICY_BUCKET_COMPLETE
        } else {
            0
        },
        ..PolicyBucket::default()
    };
    for (way, (k, v)) in entries.iter().take(POLICY_CACHE_WAYS).enumerate() {
        b.keys[way] = *k;
        b.values[way] = *v;
    }
    b
}

/// What each bucket of `buckets` holds for `policy` (all buckets with
/// entries when `buckets` is `None`; with it, buckets without entries too,
/// empty and complete).
pub fn contents(
    policy: &BTreeMap<PolicyKey, PolicyValue>,
    buckets: Option<&BTreeSet<u32>>,
) -> BTreeMap<u32, PolicyBucket> {
    let mut grouped: BTreeMap<u32, Vec<(PolicyKey, PolicyValue)>> = BTreeMap::new();
    if let Some(set) = buckets {
        for &b in set {
            grouped.insert(b, Vec::new());
        }
    }
    for (k, v) in policy {
        let b = policy_bucket(k);
        match buckets {
            Some(_) => {
                if let Some(entries) = grouped.get_mut(&b) {
                    entries.push((*k, *v));
                }
            }
            None => grouped.entry(b).or_default().push((*k, *v)),
        }
    }
    grouped
        .into_iter()
        .map(|(b, entries)| (b, fill(&entries)))
        .collect()
}

/// `MCNET_POLICY_CACHE` mapped into this process.
pub(crate) struct PolicyCache {
    words: MappedArray<AtomicU32>,
}

impl PolicyCache {
    /// Maps the array behind `fd` (created with `BPF_F_MMAPABLE`).
    pub(crate) fn map(fd: BorrowedFd<'_>) -> io::Result<PolicyCache> {
        let words = MappedArray::map(fd, POLICY_CACHE_BUCKETS as usize * WORDS)?;
        Ok(PolicyCache { words })
    }

    fn word(&self, bucket: u32, i: usize) -> &AtomicU32 {
        self.words.word(bucket as usize * WORDS + i)
    }

    /// A bucket as it is now (this process is its only writer).
    pub(crate) fn read(&self, bucket: u32) -> PolicyBucket {
        let mut w = [0u32; WORDS];
        for (i, w) in w.iter_mut().enumerate() {
            *w = self.word(bucket, i).load(Ordering::Acquire);
        }
        // SAFETY: `PolicyBucket` is 16 plain `u32`-sized words with no
        // implicit padding, valid for any bit pattern.
        unsafe { std::mem::transmute::<[u32; WORDS], PolicyBucket>(w) }
    }

    /// Makes the bucket's count odd: from now on the program asks the hash
    /// map about its keys.
    pub(crate) fn invalidate(&self, bucket: u32) {
        let seq = self.word(bucket, 0);
        let s = seq.load(Ordering::Relaxed);
        if s & 1 == 0 {
            seq.store(s.wrapping_add(1), Ordering::Relaxed);
        }
        fence(Ordering::SeqCst);
    }

    /// Writes `content` (its count ignored) into the bucket, as a seqlock
    /// writer. Without [`ENABLED`] it only invalidates the bucket.
    pub(crate) fn write(&self, bucket: u32, content: &PolicyBucket) {
        self.invalidate(bucket);
        if !ENABLED {
            return;
        }
        // SAFETY: as in `read`; every byte of a `PolicyBucket` is a field.
        let w = unsafe { std::mem::transmute::<PolicyBucket, [u32; WORDS]>(*content) };
        for (i, &w) in w.iter().enumerate().skip(1) {
            self.word(bucket, i).store(w, Ordering::Relaxed);
        }
        let seq = self.word(bucket, 0);
        seq.store(
            seq.load(Ordering::Relaxed).wrapping_add(1),
            Ordering::Release,
        );
    }

    /// Brings every bucket in line with `policy` (what the hash map holds),
    /// rewriting those that differ or were left odd by a sync cut short.
    /// Returns the number of buckets written.
    pub(crate) fn rebuild(&self, policy: &BTreeMap<PolicyKey, PolicyValue>) -> usize {
        let want = contents(policy, None);
        let empty = fill(&[]);
        let mut written = 0;
        for b in 0..POLICY_CACHE_BUCKETS {
            let target = want.get(&b).unwrap_or(&empty);
            let mut now = self.read(b);
            if now.seq & 1 == 0 {
                now.seq = 0;
                if now == *target || (!ENABLED && now == PolicyBucket::default()) {
                    continue;
                }
            }
            self.write(b, target);
            written += 1;
        }
        written
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mcnet_ebpf_common::{ACTION_ALLOW, ACTION_DENY, DIR_INGRESS, PROTO_TCP};

    fn key(peer: u32) -> PolicyKey {
        PolicyKey {
            endpoint: 256,
            peer,
            port: 8080,
            proto: PROTO_TCP,
            direction: DIR_INGRESS,
        }
    }

    fn value(action: u8, cookie: u32) -> PolicyValue {
        PolicyValue {
            action,
            _pad: [0; 3],
            cookie,
        }
    }

    /// Three peers whose keys share a bucket.
    fn colliding() -> [u32; 3] {
        let b = policy_bucket(&key(1000));
        let mut same = (1001..).filter(|&p| policy_bucket(&key(p)) == b);
        [1000, same.next().unwrap(), same.next().unwrap()]
    }

    #[test]
    fn a_bucket_keeps_the_first_keys_and_is_complete_only_with_all() {
        let [a, b, c] = colliding();
        let bucket = policy_bucket(&key(a));
        let mut policy = BTreeMap::from([
            (key(a), value(ACTION_ALLOW, 1)),
            (key(b), value(ACTION_DENY, 2)),
        ]);
        let two = contents(&policy, None);
        assert_eq!(two.len(), 1);
        assert_eq!(two[&bucket].flags, POLICY_BUCKET_COMPLETE);
        assert_eq!(two[&bucket].keys, [key(a), key(b)]);
        assert_eq!(
            two[&bucket].values,
            [value(ACTION_ALLOW, 1), value(ACTION_DENY, 2)]
        );
        policy.insert(key(c), value(ACTION_ALLOW, 3));
        let three = contents(&policy, None);
        assert_eq!(three[&bucket].flags, 0);
        assert_eq!(three[&bucket].keys, [key(a), key(b)]);
        // Without the first key, the third takes its way.
        policy.remove(&key(a));
        let again = contents(&policy, None);
        assert_eq!(again[&bucket].flags, POLICY_BUCKET_COMPLETE);
        assert_eq!(again[&bucket].keys, [key(b), key(c)]);
    }

    #[test]
    fn buckets_asked_for_without_entries_come_back_empty_and_complete() {
        let policy = BTreeMap::from([(key(1000), value(ACTION_ALLOW, 1))]);
        let other = (policy_bucket(&key(1000)) + 1) % POLICY_CACHE_BUCKETS;
        let asked = BTreeSet::from([other]);
        let c = contents(&policy, Some(&asked));
        assert_eq!(c.len(), 1);
        assert_eq!(c[&other], fill(&[]));
        assert_eq!(c[&other].flags, POLICY_BUCKET_COMPLETE);
        assert_eq!(c[&other].keys, [PolicyKey::default(); POLICY_CACHE_WAYS]);
    }

    #[test]
    fn consecutive_peers_spread_over_the_buckets() {
        // 100,000 peers of one endpoint and port, as a large policy has
        // them: few buckets overflow.
        let policy: BTreeMap<_, _> = (0..100_000)
            .map(|i| (key(1000 + i), value(ACTION_ALLOW, i)))
            .collect();
        let c = contents(&policy, None);
        let overflowing = c.values().filter(|b| b.flags == 0).count();
        assert!(c.len() > 60_000, "{} buckets used", c.len());
        assert!(overflowing < 2_000, "{overflowing} buckets overflow");
    }
}
