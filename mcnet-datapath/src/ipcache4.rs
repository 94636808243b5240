//! The direct-mapped IPv4 ipcache.
//!
//! A pod address is looked up on every new flow, so IPv4 ones skip the hash
//! map: slot [`ipcache4_slot`]`(addr)` of `MCNET_IPCACHE4_SLOTS` holds the
//! address and its identity in one word, and the program finds it with an
//! array lookup that the verifier inlines. Two addresses that share a slot
//! are rare (never two of one aligned /14); the one that sorts first takes
//! the slot and the other goes to the `MCNET_IPCACHE4` hash map, and the
//! slot is marked [`IPCACHE4_SHARED`] so that lookups of its addresses go on
//! to the hash map. A lookup that misses an unmarked slot (a world address,
//! most often) is done without hashing at all.
//!
//! Userspace writes the slots through a shared mapping of the array, one
//! aligned 64-bit store per slot, so a packet sees a slot's old word or its
//! new one, never half of each: a slot can go from one address to another
//! in a single step.
//!
//! IPv4 prefixes live in their LPM trie, and in front of it a directory
//! with one word per /16 ([`directory`]): the identity of the longest prefix
//! of /16 or shorter covering the /16, 0 where none does, or
//! [`IPCACHE4_DIR_TRIE`] where a longer prefix lies inside it. Only the
//! addresses of those /16s walk the trie. A sync marks the words it will
//! change [`IPCACHE4_DIR_TRIE`] before it writes the trie, and gives them
//! their new values after, so that meanwhile those addresses are decided by
//! the trie alone.

use std::collections::BTreeMap;
use std::io;
use std::os::fd::BorrowedFd;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use mcnet_ebpf_common::{
    ipcache4_slot, ipcache4_slot_value, IPCACHE4_DIR_ENTRIES, IPCACHE4_DIR_TRIE,
    IPCACHE4_MAX_IDENTITY, IPCACHE4_SHARED, IPCACHE4_SLOTS,
};

use crate::mmap::MappedArray;
use crate::state::ipv4_prefix;

/// Where the exact IPv4 addresses of an ipcache go.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Placement {
    /// Slot → its word ([`ipcache4_slot_value`], with [`IPCACHE4_SHARED`]
    /// where the hash map holds addresses of the slot).
    pub slots: BTreeMap<u32, u64>,
    /// Addresses whose slot another address took, or whose identity no
    /// slot can hold (0, or above [`IPCACHE4_MAX_IDENTITY`]) → identity.
    pub overflow: BTreeMap<[u8; 4], u32>,
}

impl Placement {
    /// Places the exact IPv4 entries of `ipcache` (keys as
    /// [`DesiredState::ipcache`](crate::state::DesiredState::ipcache) has
    /// them); other entries are ignored. Addresses are placed in ascending
    /// order, so the placement depends on the set alone.
    pub fn of(ipcache: &BTreeMap<(u32, [u8; 16]), u32>) -> Placement {
        let mut p = Placement::default();
        for (&(len, addr), &id) in ipcache {
            let Some((32, v4)) = ipv4_prefix(len, &addr) else {
                continue;
            };
            let slot = ipcache4_slot(u32::from(v4));
            let fits = id != 0 && id <= IPCACHE4_MAX_IDENTITY;
            let word = p.slots.entry(slot).or_default();
            if fits && *word & !IPCACHE4_SHARED == 0 {
                *word |= ipcache4_slot_value(v4.octets(), id);
            } else {
                *word |= IPCACHE4_SHARED;
                p.overflow.insert(v4.octets(), id);
            }
        }
        p
    }
}

/// The address and identity a slot's word holds, if it holds one.
pub fn decode(word: u64) -> Option<([u8; 4], u32)> {
    let id = (word >> 32) as u32 & IPCACHE4_MAX_IDENTITY;
    (id != 0).then(|| ((word as u32).to_ne_bytes(), id))
}

/// The IPv4 prefix directory for the prefixes of `ipcache` (keys as
/// [`DesiredState::ipcache`](crate::state::DesiredState::ipcache) has
/// them), one word per /16 (see the module docs). A prefix whose identity
/// no word can hold (0, or above [`IPCACHE4_MAX_IDENTITY`]) sends its /16s
/// to the trie.
pub fn directory(ipcache: &BTreeMap<(u32, [u8; 16]), u32>) -> Vec<u32> {
    let mut prefixes: Vec<(u32, u32, u32)> = ipcache
        .iter()
        .filter_map(|(&(len, addr), &id)| {
            let (len, net) = ipv4_prefix(len, &addr)?;
            (len < 32).then(|| (len, u32::from(net) & !(u32::MAX >> len), id))
        })
        .collect();
    // Shorter prefixes first, so that longer ones overwrite them.
    prefixes.sort_unstable();
    let mut dir = vec![0u32; IPCACHE4_DIR_ENTRIES as usize];
    for (len, net, id) in prefixes {
        let first = (net >> 16) as usize;
        if len <= 16 {
            let word = if id == 0 || id > IPCACHE4_MAX_IDENTITY {
                IPCACHE4_DIR_TRIE
            } else {
                id
            };
            dir[first..first + (1 << (16 - len))].fill(word);
        } else {
            dir[first] = IPCACHE4_DIR_TRIE;
        }
    }
    dir
}

/// `MCNET_IPCACHE4_DIR` mapped into this process.
pub(crate) struct Directory {
    /// Two words per entry: the kernel lays an array's values out 8 bytes
    /// apart, and the entry is the first word of its 8 bytes.
    words: MappedArray<AtomicU32>,
}

impl Directory {
    /// Maps the array behind `fd` (created with `BPF_F_MMAPABLE`).
    pub(crate) fn map(fd: BorrowedFd<'_>) -> io::Result<Directory> {
        let words = MappedArray::map(fd, 2 * IPCACHE4_DIR_ENTRIES as usize)?;
        Ok(Directory { words })
    }

    fn entry(&self, i: u32) -> &AtomicU32 {
        self.words.word(2 * i as usize)
    }

    /// The entries that differ from `want`, with their wanted values.
    pub(crate) fn changes(&self, want: &[u32]) -> Vec<(u32, u32)> {
        (0..IPCACHE4_DIR_ENTRIES)
            .zip(want)
            .filter(|&(i, &w)| self.entry(i).load(Ordering::Acquire) != w)
            .map(|(i, &w)| (i, w))
            .collect()
    }

    /// Replaces an entry in one store.
    pub(crate) fn set(&self, i: u32, word: u32) {
        self.entry(i).store(word, Ordering::Release);
    }
}

/// `MCNET_IPCACHE4_SLOTS` mapped into this process.
pub(crate) struct SlotTable {
    words: MappedArray<AtomicU64>,
}

impl SlotTable {
    /// Maps the array behind `fd` (created with `BPF_F_MMAPABLE`).
    pub(crate) fn map(fd: BorrowedFd<'_>) -> io::Result<SlotTable> {
        let words = MappedArray::map(fd, IPCACHE4_SLOTS as usize)?;
        Ok(SlotTable { words })
    }

    /// A slot's word.
    pub(crate) fn get(&self, slot: u32) -> u64 {
        self.words.word(slot as usize).load(Ordering::Acquire)
    }

    /// Replaces a slot's word in one store.
    pub(crate) fn set(&self, slot: u32, word: u64) {
        self.words
            .word(slot as usize)
            .store(word, Ordering::Release);
    }

    /// The slots that hold a word.
    pub(crate) fn occupied(&self) -> Vec<(u32, u64)> {
        (0..IPCACHE4_SLOTS)
            .map(|s| (s, self.get(s)))
            .filter(|&(_, w)| w != 0)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::mapped;
    use std::net::Ipv4Addr;

    fn exact(ip: &str) -> (u32, [u8; 16]) {
        (128, mapped(ip.parse().unwrap()))
    }

    #[test]
    fn a_clusters_pod_cidr_never_shares_a_slot() {
        let mut ipcache = BTreeMap::new();
        for i in 0..(1u32 << 14) {
            // Spread over 10.4.0.0/14.
            let ip = Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 4, 0, 0)) + i * 16 + 3);
            ipcache.insert((128, mapped(ip.into())), 300 + i);
        }
        let p = Placement::of(&ipcache);
        assert_eq!(p.slots.len(), 1 << 14);
        assert!(p.overflow.is_empty());
        assert!(p.slots.values().all(|w| w & IPCACHE4_SHARED == 0));
    }

    #[test]
    fn the_first_address_of_a_slot_keeps_it_and_the_rest_overflow() {
        // An address of the next /14 whose low bits fold to 10.0.0.1's slot.
        let a = Ipv4Addr::new(10, 0, 0, 1);
        let slot = ipcache4_slot(u32::from(a));
        let high = (u32::from(a) >> 18) + 1;
        let b = Ipv4Addr::from(high << 18 | ((slot ^ high) & (IPCACHE4_SLOTS - 1)));
        assert_eq!(ipcache4_slot(u32::from(b)), slot);
        let mut ipcache = BTreeMap::from([
            (exact(&b.to_string()), 501),
            (exact("10.0.0.1"), 500),
            (exact("10.9.9.9"), 0),
            // Prefixes and IPv6 addresses are not placed.
            ((96 + 8, mapped("10.0.0.0".parse().unwrap())), 7),
            ((128, mapped("fd00::1".parse().unwrap())), 8),
        ]);
        let p = Placement::of(&ipcache);
        assert_eq!(
            p.slots.get(&slot),
            Some(&(ipcache4_slot_value(a.octets(), 500) | IPCACHE4_SHARED))
        );
        assert_eq!(decode(p.slots[&slot]), Some((a.octets(), 500)));
        assert_eq!(
            p.overflow,
            BTreeMap::from([(b.octets(), 501), ([10, 9, 9, 9], 0)])
        );
        // Identity 0 takes no slot, but marks its own.
        let zero = ipcache4_slot(u32::from(Ipv4Addr::new(10, 9, 9, 9)));
        assert_eq!(p.slots.get(&zero), Some(&IPCACHE4_SHARED));
        assert_eq!(decode(IPCACHE4_SHARED), None);
        // Without the first address, the second takes the slot, unshared.
        ipcache.remove(&exact("10.0.0.1"));
        let p = Placement::of(&ipcache);
        assert_eq!(p.slots[&slot], ipcache4_slot_value(b.octets(), 501));
        assert_eq!(p.overflow, BTreeMap::from([([10, 9, 9, 9], 0)]));
    }

    #[test]
    fn the_directory_gives_each_16_its_longest_short_prefix_or_the_trie() {
        let prefix = |net: &str, len: u32| (96 + len, mapped(net.parse().unwrap()));
        let ipcache = BTreeMap::from([
            (prefix("10.0.0.0", 8), 700),
            (prefix("10.16.0.0", 12), 701),
            (prefix("10.32.5.0", 24), 702),
            // Host bits set: the /12 of 172.16.0.0.
            (prefix("172.16.9.9", 12), 703),
            (prefix("192.168.0.0", 16), 0),
            // Exact addresses and IPv6 prefixes are not the directory's.
            (exact("10.64.0.1"), 704),
            ((64, mapped("fd00::".parse().unwrap())), 705),
        ]);
        let dir = directory(&ipcache);
        let at = |a: u8, b: u8| dir[(a as usize) << 8 | b as usize];
        assert_eq!(at(10, 0), 700);
        assert_eq!(at(10, 15), 700);
        assert_eq!(
            (at(10, 16), at(10, 31)),
            (701, 701),
            "the longer prefix wins"
        );
        assert_eq!(
            at(10, 32),
            IPCACHE4_DIR_TRIE,
            "a /24 inside sends its /16 to the trie"
        );
        assert_eq!(at(10, 64), 700);
        assert_eq!((at(172, 16), at(172, 31), at(172, 32)), (703, 703, 0));
        assert_eq!(at(192, 168), IPCACHE4_DIR_TRIE, "identity 0 fits no word");
        assert_eq!((at(9, 255), at(11, 0)), (0, 0));
        let covered = dir.iter().filter(|&&w| w != 0).count();
        assert_eq!(covered, 256 + 16 + 1);
        // 0.0.0.0/0 covers every /16.
        let all = directory(&BTreeMap::from([(prefix("0.0.0.0", 0), 9)]));
        assert!(all.iter().all(|&w| w == 9));
        assert!(directory(&BTreeMap::new()).iter().all(|&w| w == 0));
    }

    #[test]
    fn an_empty_word_decodes_to_nothing() {
        assert_eq!(decode(0), None);
        assert_eq!(decode(ipcache4_slot_value([0, 0, 0, 0], 0)), None);
        assert_eq!(
            decode(ipcache4_slot_value([192, 0, 2, 1], 9)),
            Some(([192, 0, 2, 1], 9))
        );
    }
}
