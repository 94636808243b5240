//! Loads the embedded kernel programs into the running kernel. Needs root
//! (CI runs as root); skipped with a message otherwise.

use std::net::Ipv4Addr;

use aya::maps::{Array, Map, MapData};
use mcnet_datapath::state::{mapped, DesiredState};
use mcnet_datapath::{testrun, Datapath, LoadOptions, TO_POD};
use mcnet_ebpf_common::*;

#[test]
fn kernel_accepts_the_programs() {
    if cfg!(mcnet_ebpf_stub) {
        mcnet_core::testing::skip("built with MCNET_EBPF_STUB");
        return;
    }
    if !mcnet_datapath::is_root() {
        mcnet_core::testing::skip("loading eBPF needs root");
        return;
    }
    let dp = Datapath::load().expect("the verifier accepts both TC programs");
    // Nothing is attached yet, so every counter is zero.
    let c = dp.counters().expect("the counter map is readable");
    assert_eq!(c.by_reason.len(), REASON_COUNT as usize);
    assert!(c.by_reason.values().all(|&(p, b)| p == 0 && b == 0));
}

/// A pin directory of this test process, removed on drop (also on panic);
/// `None`, with a message, where the kernel tests cannot run.
struct Pins(std::path::PathBuf);

impl Pins {
    fn new(test: &str) -> Option<Pins> {
        if cfg!(mcnet_ebpf_stub) || !mcnet_datapath::is_root() {
            mcnet_core::testing::skip("needs root and the real eBPF object");
            return None;
        }
        let dir = format!("/sys/fs/bpf/mcnet-test-{test}-{}", std::process::id());
        Some(Pins(dir.into()))
    }
}

impl Pins {
    /// Load options that pin the maps here.
    fn options(&self) -> LoadOptions {
        LoadOptions {
            pin_dir: Some(self.0.clone()),
        }
    }

    /// A map pinned here.
    fn open(&self, name: &str) -> MapData {
        MapData::from_pin(self.0.join(name)).unwrap()
    }

    /// An array map pinned here.
    fn array<T: aya::Pod>(&self, name: &str) -> Array<MapData, T> {
        Array::try_from(Map::Array(self.open(name))).unwrap()
    }
}

impl Drop for Pins {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Endpoint identity 256 behind ifindex 1 (where test runs arrive), its
/// ingress isolated, `ipcache` as given, and UDP allowed from each
/// (peer identity, port) of `allow`; with the lookup shapes that sync
/// stores.
fn ingress_state(ipcache: &[((u32, [u8; 16]), u32)], allow: &[(u32, u16)]) -> DesiredState {
    const ME: u32 = 256;
    let mut s = DesiredState::default();
    s.endpoints.insert(
        1,
        EndpointInfo {
            identity: ME,
            flags: EP_INGRESS_ISOLATED,
        },
    );
    s.ipcache.extend(ipcache.iter().copied());
    for &(peer, port) in allow {
        s.policy.insert(
            PolicyKey {
                endpoint: ME,
                peer,
                port,
                proto: PROTO_UDP,
                direction: DIR_INGRESS,
            },
            PolicyValue {
                action: ACTION_ALLOW,
                _pad: [0; 3],
                cookie: 1,
            },
        );
    }
    s.mark_lookup_shapes();
    s
}

/// Whether `dp`'s to-pod program passes a UDP packet from `src:sport` to
/// the endpoint's port `port` (as BPF_PROG_TEST_RUN runs it).
fn passes(dp: &Datapath, src: Ipv4Addr, sport: u16, port: u16) -> bool {
    let pkt = testrun::ipv4_packet(src.octets(), [198, 18, 0, 100], PROTO_UDP, sport, port);
    let fd = dp.program_fd(TO_POD).unwrap();
    testrun::run(fd, &pkt, 1, 0).unwrap().retval == 0
}

/// A restarted agent reads the state back from the pinned maps, and moves
/// the IPv4 prefixes that an agent from before the per-family tries left in
/// the IPv6 trie, so that IPv4 lookups find them again.
#[test]
fn a_restart_moves_ipv4_prefixes_an_older_agent_left_in_the_ipv6_trie() {
    use aya::maps::lpm_trie::{Key, LpmTrie};

    let Some(pins) = Pins::new("restart") else {
        return;
    };
    let opts = pins.options();
    let net = mapped(Ipv4Addr::new(198, 19, 0, 0).into());
    let s = ingress_state(&[((96 + 16, net), 400)], &[(400, 53)]);
    let mut first = Datapath::load_with(&opts).expect("load");
    first.sync(&s).unwrap();
    let synced = first.applied().clone();
    drop(first);

    // What an older agent left: the prefix in the IPv6 trie, flags unset.
    let open = |name: &str| pins.open(name);
    let mut v4: LpmTrie<MapData, [u8; 4], u32> =
        LpmTrie::try_from(Map::LpmTrie(open("MCNET_IPCACHE_V4"))).unwrap();
    v4.remove(&Key::new(16, [198, 19, 0, 0])).unwrap();
    let mut v6: LpmTrie<MapData, IpKey, u32> =
        LpmTrie::try_from(Map::LpmTrie(open("MCNET_IPCACHE"))).unwrap();
    v6.insert(&Key::new(96 + 16, IpKey { addr: net }), 400, 0)
        .unwrap();
    drop((v4, v6));

    let second = Datapath::load_with(&opts).expect("reload");
    assert_eq!(second.applied(), &synced, "the state read back");
    let v6: LpmTrie<MapData, IpKey, u32> =
        LpmTrie::try_from(Map::LpmTrie(open("MCNET_IPCACHE"))).unwrap();
    assert_eq!(v6.iter().count(), 0, "the IPv6 trie keeps no IPv4 prefix");
    let passes = |src: [u8; 4]| passes(&second, src.into(), 5353, 53);
    assert!(passes([198, 19, 7, 7]), "the prefix's identity is found");
    assert!(!passes([198, 20, 7, 7]), "outside it is world");
}

/// Two IPv4 addresses that share a slot of the direct-mapped ipcache: the
/// one that sorts first takes the slot, the other goes to the hash map, and
/// each keeps its own identity through syncs that move them, a restart, and
/// maps left by an agent that kept every address in the hash map.
#[test]
fn addresses_that_share_a_slot_keep_their_identities() {
    use aya::maps::HashMap;

    let Some(pins) = Pins::new("slots") else {
        return;
    };
    let opts = pins.options();
    // `a` and `b` fold to one slot; `a` sorts first.
    let a = Ipv4Addr::new(198, 18, 0, 1);
    let slot = ipcache4_slot(u32::from(a));
    let high = (u32::from(a) >> IPCACHE4_SLOT_BITS) + 1;
    let b = Ipv4Addr::from(high << IPCACHE4_SLOT_BITS | ((slot ^ high) & (IPCACHE4_SLOTS - 1)));
    assert_eq!(ipcache4_slot(u32::from(b)), slot);
    assert!(a < b);

    // `a` (identity 401) may reach port 53, `b` (402) port 54.
    let state = |peers: &[(Ipv4Addr, u32)]| {
        let ipcache: Vec<_> = peers
            .iter()
            .map(|&(ip, id)| ((128, mapped(ip.into())), id))
            .collect();
        ingress_state(&ipcache, &[(401, 53), (402, 54)])
    };
    let both = state(&[(a, 401), (b, 402)]);
    let only_b = state(&[(b, 402)]);
    // A new source port each time, so that no packet is a tracked flow's.
    let sport = std::cell::Cell::new(5000u16);
    let passes = |dp: &Datapath, src: Ipv4Addr, port: u16| {
        sport.set(sport.get() + 1);
        passes(dp, src, sport.get(), port)
    };
    // Which of a and b pass on ports 53 and 54.
    let verdicts = |dp: &Datapath| {
        [
            passes(dp, a, 53),
            passes(dp, a, 54),
            passes(dp, b, 53),
            passes(dp, b, 54),
        ]
    };
    let open = |name: &str| pins.open(name);
    let hashed = || -> Vec<[u8; 4]> {
        let m: HashMap<MapData, [u8; 4], u32> =
            HashMap::try_from(Map::HashMap(open("MCNET_IPCACHE4"))).unwrap();
        m.keys().map(|k| k.unwrap()).collect()
    };

    let mut dp = Datapath::load_with(&opts).expect("load");
    dp.sync(&both).unwrap();
    assert_eq!(verdicts(&dp), [true, false, false, true]);
    assert_eq!(hashed(), vec![b.octets()], "b found its slot taken");

    dp.sync(&only_b).unwrap();
    assert_eq!(verdicts(&dp), [false, false, false, true], "a is world now");
    assert!(hashed().is_empty(), "b moved to the slot");

    dp.sync(&both).unwrap();
    assert_eq!(verdicts(&dp), [true, false, false, true]);
    assert_eq!(hashed(), vec![b.octets()]);
    drop(dp);

    let dp = Datapath::load_with(&opts).expect("reload");
    assert_eq!(dp.applied(), &both, "the state read back");
    assert_eq!(verdicts(&dp), [true, false, false, true]);
    drop(dp);

    // What an agent from before the slots left: both addresses hashed,
    // the slot empty and no lookup flags.
    let mut h: HashMap<MapData, [u8; 4], u32> =
        HashMap::try_from(Map::HashMap(open("MCNET_IPCACHE4"))).unwrap();
    h.insert(a.octets(), 401, 0).unwrap();
    let mut slots = pins.array::<u64>("MCNET_IPCACHE4_SLOTS");
    slots.set(slot, 0, 0).unwrap();
    let mut config = pins.array::<u32>("MCNET_CONFIG");
    config.set(CONFIG_PREFIXES_V4, 0, 0).unwrap();
    drop((h, slots, config));

    let mut dp = Datapath::load_with(&opts).expect("reload over an older layout");
    assert_eq!(dp.applied(), &both);
    assert_eq!(
        verdicts(&dp),
        [true, false, false, true],
        "found in the hash map"
    );
    dp.sync(&both).unwrap();
    assert_eq!(verdicts(&dp), [true, false, false, true]);
    assert_eq!(hashed(), vec![b.octets()], "a moved to its slot");
}

/// Policy keys that fall in one policy-cache bucket keep their own
/// verdicts as the bucket overflows and empties, across a restart; the
/// program trusts what a bucket says, and a restarted agent mends buckets
/// that disagree with the hash map.
#[test]
fn keys_that_share_a_policy_bucket_keep_their_verdicts() {
    use mcnet_datapath::policy_cache::{self, policy_bucket};

    let Some(pins) = Pins::new("policy-cache") else {
        return;
    };
    let opts = pins.options();
    let key = |peer: u32| PolicyKey {
        endpoint: 256,
        peer,
        port: 53,
        proto: PROTO_UDP,
        direction: DIR_INGRESS,
    };
    // Four peers whose port-53 keys share a bucket, at 198.18.1.1-4.
    let bucket = policy_bucket(&key(1000));
    let mut same = (1000..).filter(|&p| policy_bucket(&key(p)) == bucket);
    let peers: [u32; 4] = std::array::from_fn(|_| same.next().unwrap());
    let ip = |i: usize| Ipv4Addr::new(198, 18, 1, i as u8 + 1);
    let ipcache: Vec<_> = (0..4)
        .map(|i| ((128, mapped(ip(i).into())), peers[i]))
        .collect();
    let state = |allowed: &[usize]| {
        let allow: Vec<_> = allowed.iter().map(|&i| (peers[i], 53)).collect();
        ingress_state(&ipcache, &allow)
    };
    let sport = std::cell::Cell::new(5000u16);
    // Which of the four peers pass to port 53, each on a new flow.
    let verdicts = |dp: &Datapath| {
        std::array::from_fn::<bool, 4, _>(|i| {
            sport.set(sport.get() + 1);
            passes(dp, ip(i), sport.get(), 53)
        })
    };
    let cache = || pins.array::<PolicyBucket>("MCNET_POLICY_CACHE");
    let held = || {
        let b = cache().get(&bucket, 0).unwrap();
        assert_eq!(b.seq % 2, 0, "no bucket is left mid-write");
        let keys = b.keys.iter().filter(|k| k.endpoint != 0).map(|k| k.peer);
        (
            keys.collect::<Vec<_>>(),
            b.flags & POLICY_BUCKET_COMPLETE != 0,
        )
    };

    let mut dp = Datapath::load_with(&opts).expect("load");
    dp.sync(&state(&[0, 1, 2])).unwrap();
    assert_eq!(verdicts(&dp), [true, true, true, false]);
    if policy_cache::ENABLED {
        assert_eq!(held(), (vec![peers[0], peers[1]], false), "overflowed");
    }

    dp.sync(&state(&[1, 2])).unwrap();
    assert_eq!(verdicts(&dp), [false, true, true, false]);
    if policy_cache::ENABLED {
        assert_eq!(held(), (vec![peers[1], peers[2]], true), "complete again");
    }

    dp.sync(&state(&[1, 2, 3])).unwrap();
    assert_eq!(verdicts(&dp), [false, true, true, true]);
    drop(dp);

    let dp = Datapath::load_with(&opts).expect("reload");
    assert_eq!(dp.applied(), &state(&[1, 2, 3]), "the state read back");
    assert_eq!(verdicts(&dp), [false, true, true, true]);
    if !policy_cache::ENABLED {
        return;
    }
    // A bucket that claims, wrongly, to be complete and empty: the program
    // believes it, and the next agent mends it.
    let mut lie = cache().get(&bucket, 0).unwrap();
    lie.seq += 2;
    lie.flags = POLICY_BUCKET_COMPLETE;
    lie.keys = [PolicyKey::default(); POLICY_CACHE_WAYS];
    cache().set(bucket, lie, 0).unwrap();
    assert_eq!(verdicts(&dp), [false; 4], "the bucket decides");
    drop(dp);
    let dp = Datapath::load_with(&opts).expect("reload over a wrong bucket");
    assert_eq!(verdicts(&dp), [false, true, true, true], "mended on load");
    assert_eq!(held(), (vec![peers[1], peers[2]], false));

    // Left odd, as by a sync cut short: the program asks the hash map, and
    // the next agent fills the bucket again.
    let mut odd = lie;
    odd.seq += 1;
    cache().set(bucket, odd, 0).unwrap();
    assert_eq!(
        verdicts(&dp),
        [false, true, true, true],
        "odd: the hash map decides"
    );
    drop(dp);
    let dp = Datapath::load_with(&opts).expect("reload over an odd bucket");
    assert_eq!(verdicts(&dp), [false, true, true, true]);
    assert_eq!(held(), (vec![peers[1], peers[2]], false));
}

/// IPv4 prefixes are found through the per-/16 directory where it can
/// decide and through the trie where a longer prefix lies in the /16, as
/// syncs change them; the program trusts the directory, and a restarted
/// agent mends a word that disagrees with the trie.
#[test]
fn ipv4_prefixes_are_found_through_the_directory() {
    let Some(pins) = Pins::new("prefix-dir") else {
        return;
    };
    let opts = pins.options();
    let prefix =
        |net: [u8; 4], len: u32, id: u32| ((96 + len, mapped(Ipv4Addr::from(net).into())), id);
    let wide = prefix([198, 18, 0, 0], 15, 601);
    let sixteen = prefix([198, 19, 0, 0], 16, 600);
    let narrow = prefix([198, 18, 7, 0], 24, 602);
    let sport = std::cell::Cell::new(7000u16);
    // Which of these sources pass to port 53, each on a new flow.
    let sources = [
        [198, 19, 1, 1],
        [198, 18, 7, 7],
        [198, 18, 8, 8],
        [203, 0, 113, 9],
    ];
    let verdicts = |dp: &Datapath| {
        sources.map(|src| {
            sport.set(sport.get() + 1);
            passes(dp, src.into(), sport.get(), 53)
        })
    };
    let dir = || pins.array::<u32>("MCNET_IPCACHE4_DIR");
    let word = |a: u8, b: u8| dir().get(&(u32::from(a) << 8 | u32::from(b)), 0).unwrap();

    let mut dp = Datapath::load_with(&opts).expect("load");
    dp.sync(&ingress_state(
        &[wide, sixteen, narrow],
        &[(600, 53), (602, 53)],
    ))
    .unwrap();
    assert_eq!(verdicts(&dp), [true, true, false, false]);
    assert_eq!((word(198, 19), word(198, 18)), (600, IPCACHE4_DIR_TRIE));

    dp.sync(&ingress_state(&[wide, sixteen], &[(600, 53), (602, 53)]))
        .unwrap();
    assert_eq!(
        verdicts(&dp),
        [true, false, false, false],
        "the /24 is gone"
    );
    assert_eq!((word(198, 19), word(198, 18)), (600, 601));

    let both = ingress_state(&[wide, sixteen], &[(600, 53), (601, 53)]);
    dp.sync(&both).unwrap();
    assert_eq!(verdicts(&dp), [true, true, true, false]);

    // A word that says, wrongly, that no prefix covers 198.19.0.0/16: the
    // program believes it, and the next agent mends it.
    dir().set(198 << 8 | 19, 0, 0).unwrap();
    assert_eq!(
        verdicts(&dp),
        [false, true, true, false],
        "the word decides"
    );
    drop(dp);
    let dp = Datapath::load_with(&opts).expect("reload");
    assert_eq!(dp.applied(), &both);
    assert_eq!(verdicts(&dp), [true, true, true, false], "mended on load");
    assert_eq!(word(198, 19), 600);
}

/// A sync that fails part-way (an interface index no endpoint slot holds)
/// leaves the applied state as the maps hold it, so that syncing back to
/// the old state undoes the entries the failed sync wrote.
#[test]
fn a_failed_sync_leaves_the_applied_state_as_the_maps_hold_it() {
    let Some(pins) = Pins::new("failed-sync") else {
        return;
    };
    let peer = |d: u8, id: u32| ((128, mapped(Ipv4Addr::new(198, 18, 2, d).into())), id);
    let peers = [peer(1, 801), peer(2, 802)];
    let old = ingress_state(&peers, &[(801, 53)]);
    let mut new = ingress_state(&peers, &[(801, 53), (802, 53)]);
    new.endpoints.insert(
        MAX_IFINDEX + 1,
        EndpointInfo {
            identity: 300,
            flags: EP_INGRESS_ISOLATED,
        },
    );
    let sport = std::cell::Cell::new(9000u16);
    let verdicts = |dp: &Datapath| {
        [[198, 18, 2, 1], [198, 18, 2, 2]].map(|src| {
            sport.set(sport.get() + 1);
            passes(dp, src.into(), sport.get(), 53)
        })
    };

    let mut dp = Datapath::load_with(&pins.options()).expect("load");
    dp.sync(&old).unwrap();
    assert_eq!(verdicts(&dp), [true, false]);
    let err = dp
        .sync(&new)
        .expect_err("no endpoint slot for the interface");
    assert!(err.to_string().contains("ifindex"), "{err}");
    assert_eq!(
        dp.applied(),
        &dp.observe().unwrap(),
        "applied = what the maps hold"
    );
    assert_eq!(
        verdicts(&dp),
        [true, true],
        "the upserts went in before the failure"
    );
    dp.sync(&old).unwrap();
    assert_eq!(verdicts(&dp), [true, false], "and are undone");
    assert_eq!(dp.applied(), &dp.observe().unwrap());
}
