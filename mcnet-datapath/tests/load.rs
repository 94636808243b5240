//! Loads the embedded kernel programs into the running kernel. Needs root
//! (CI runs as root); skipped with a message otherwise.

#[test]
fn kernel_accepts_the_programs() {
    if cfg!(mcnet_ebpf_stub) {
        eprintln!("skipped: built with MCNET_EBPF_STUB");
        return;
    }
    if !mcnet_datapath::is_root() {
        eprintln!("skipped: loading eBPF needs root");
        return;
    }
    let dp = mcnet_datapath::Datapath::load().expect("the verifier accepts both TC programs");
    // Nothing is attached yet, so every counter is zero.
    let c = dp.counters().expect("the counter map is readable");
    assert_eq!(c.by_reason.len(), mcnet_ebpf_common::REASON_COUNT as usize);
    assert!(c.by_reason.values().all(|&(p, b)| p == 0 && b == 0));
}

/// A restarted agent reads the state back from the pinned maps, and moves
/// the IPv4 prefixes that an agent from before the per-family tries left in
/// the IPv6 trie, so that IPv4 lookups find them again.
#[test]
fn a_restart_moves_ipv4_prefixes_an_older_agent_left_in_the_ipv6_trie() {
    use aya::maps::lpm_trie::{Key, LpmTrie};
    use aya::maps::{Map, MapData};
    use mcnet_datapath::state::{mapped, DesiredState};
    use mcnet_datapath::{testrun, Datapath, LoadOptions, TO_POD};
    use mcnet_ebpf_common::*;
    use std::net::{IpAddr, Ipv4Addr};

    if cfg!(mcnet_ebpf_stub) || !mcnet_datapath::is_root() {
        eprintln!("skipped: needs root and the real eBPF object");
        return;
    }
    struct Pins(std::path::PathBuf);
    impl Drop for Pins {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    let pins = Pins(format!("/sys/fs/bpf/mcnet-test-restart-{}", std::process::id()).into());
    let opts = LoadOptions {
        pin_dir: Some(pins.0.clone()),
    };
    const ME: u32 = 256;
    let mut s = DesiredState::default();
    s.endpoints.insert(
        1,
        EndpointInfo {
            identity: ME,
            flags: EP_INGRESS_ISOLATED,
        },
    );
    let net = mapped(IpAddr::V4(Ipv4Addr::new(198, 19, 0, 0)));
    s.ipcache.insert((96 + 16, net), 400);
    s.policy.insert(
        PolicyKey {
            endpoint: ME,
            peer: 400,
            port: 53,
            proto: PROTO_UDP,
            direction: DIR_INGRESS,
        },
        PolicyValue {
            action: ACTION_ALLOW,
            _pad: [0; 3],
            cookie: 1,
        },
    );
    let mut first = Datapath::load_with(&opts).expect("load");
    first.sync(&s).unwrap();
    let synced = first.applied().clone();
    drop(first);

    // What an older agent left: the prefix in the IPv6 trie, flags unset.
    let open = |name: &str| MapData::from_pin(pins.0.join(name)).unwrap();
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
    let to_pod = second.program_fd(TO_POD).unwrap();
    let passes = |src: [u8; 4]| {
        let pkt = testrun::ipv4_packet(src, [198, 18, 0, 100], PROTO_UDP, 5353, 53);
        testrun::run(to_pod, &pkt, 1, 0).unwrap().retval == 0
    };
    assert!(passes([198, 19, 7, 7]), "the prefix's identity is found");
    assert!(!passes([198, 20, 7, 7]), "outside it is world");
}
