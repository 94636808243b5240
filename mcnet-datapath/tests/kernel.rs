//! The kernel programs, run through BPF_PROG_TEST_RUN, give the policy
//! engine's verdict for every packet of the conformance suites (each pod
//! in turn bound to the loopback interface, each query's side run through
//! the program of its direction). Needs root; skipped otherwise.

mod common;

use std::net::IpAddr;

use mcnet_core::policy::eval::Decision;
use mcnet_core::policy::Compiled;
use mcnet_datapath::state::{Binding, DesiredState};
use mcnet_datapath::{testrun, Datapath, FROM_POD, TO_POD};

fn v4(ip: IpAddr) -> Option<[u8; 4]> {
    match ip {
        IpAddr::V4(a) => Some(a.octets()),
        IpAddr::V6(_) => None,
    }
}

#[test]
fn kernel_verdicts_equal_the_engine() {
    if cfg!(mcnet_ebpf_stub) || !mcnet_datapath::is_root() {
        mcnet_core::testing::skip("needs root and the real eBPF object");
        return;
    }
    let mut dp = Datapath::load().expect("load");
    let from_pod = dp.program_fd(FROM_POD).unwrap();
    let to_pod = dp.program_fd(TO_POD).unwrap();
    let mut sport: u16 = 1024;
    let (mut runs, mut failures) = (0usize, Vec::new());
    for (name, m, queries) in common::cases() {
        let c = Compiled::new(&m);
        dp.flush_conntrack().unwrap();
        for (pi, pod) in m.inventory.pods.iter().enumerate() {
            if pod.cluster != c.local_cluster || pod.ips.is_empty() {
                continue;
            }
            let desired = DesiredState::from_compiled(
                &c,
                &[Binding {
                    ifindex: 1,
                    pod: pod.key(),
                }],
            )
            .unwrap();
            dp.sync(&desired).unwrap();
            for (qi, q) in queries.iter().enumerate() {
                if q.l7().is_some() {
                    continue;
                }
                let (Some((src_pod, src_ip)), Some((dst_pod, dst_ip))) =
                    (common::resolve(&m, &q.from), common::resolve(&m, &q.to))
                else {
                    continue;
                };
                let (Some(s4), Some(d4)) = (v4(src_ip), v4(dst_ip)) else {
                    continue;
                };
                let out = c.eval(q).unwrap();
                let proto = common::proto_number(q.protocol);
                for (is_src, prog, side) in
                    [(true, from_pod, &out.egress), (false, to_pod, &out.ingress)]
                {
                    let me = if is_src { src_pod } else { dst_pod };
                    if me != Some(pi) {
                        continue;
                    }
                    sport = if sport == u16::MAX { 1024 } else { sport + 1 };
                    let pkt = testrun::ipv4_packet(s4, d4, proto, sport, q.port);
                    let r = testrun::run(prog, &pkt, 1, 0).expect("BPF_PROG_TEST_RUN");
                    runs += 1;
                    let kernel = if r.retval == 0 {
                        Decision::Allow
                    } else {
                        Decision::Deny
                    };
                    let engine = common::kernel_expectation(side);
                    if kernel != engine {
                        failures.push(format!(
                            "{name} query {qi} ({}): engine {} but kernel {} ({})",
                            if is_src { "egress" } else { "ingress" },
                            side.verdict,
                            kernel,
                            out.explanation
                        ));
                    }
                }
            }
        }
    }
    eprintln!("{runs} packets through the kernel");
    assert!(runs > 10_000, "only {runs} packets were run");
    assert!(
        failures.is_empty(),
        "{} mismatches, first: {:#?}",
        failures.len(),
        &failures[..failures.len().min(10)]
    );
}

#[path = "../../mcnet-core/tests/support/random_policies.rs"]
mod random_policies;

/// Random inventories and policies (the generator of the engine's own
/// property test), every pod bound in turn, every peer, port and protocol
/// as packets through BPF_PROG_TEST_RUN: the kernel agrees with the engine.
#[test]
fn kernel_verdicts_equal_the_engine_on_random_policies() {
    use mcnet_core::policy::{Manifests, Proto, Query, QueryEndpoint};
    use proptest::test_runner::{Config, TestCaseError, TestRunner};

    if cfg!(mcnet_ebpf_stub) || !mcnet_datapath::is_root() {
        mcnet_core::testing::skip("needs root and the real eBPF object");
        return;
    }
    let mut dp = Datapath::load().expect("load");
    dp.set_flow_events(false).unwrap();
    let from_pod = dp.program_fd(FROM_POD).unwrap();
    let to_pod = dp.program_fd(TO_POD).unwrap();
    let dp = std::cell::RefCell::new(dp);
    let sport = std::cell::Cell::new(1024u16);
    let packets = std::cell::Cell::new(0usize);
    let mut runner = TestRunner::new(Config {
        cases: 300,
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&random_policies::scenario(), |objects| {
        let text = serde_json::to_string(&objects).unwrap();
        let m = match Manifests::parse_str(&text) {
            Ok(m) => m,
            Err(e) => return Err(TestCaseError::reject(e.to_string())),
        };
        let c = Compiled::new(&m);
        dp.borrow_mut().flush_conntrack().unwrap();
        let peers = common::endpoints(&m, &random_policies::EXTERNAL);
        let ip_of = |e: &QueryEndpoint| -> IpAddr { common::resolve(&m, e).unwrap().1 };
        for pod in m.inventory.pods.iter().filter(|p| p.cluster == c.local_cluster) {
            dp.borrow_mut().sync(&DesiredState::from_compiled(&c, &[Binding { ifindex: 1, pod: pod.key() }]).unwrap()).unwrap();
            let me = QueryEndpoint { pod: Some(pod.key()), ip: None };
            for peer in &peers {
                if peer.pod.as_deref() == Some(&pod.key()) {
                    continue;
                }
                for (port, proto) in [(80, Proto::Tcp), (53, Proto::Udp), (8080, Proto::Tcp), (8050, Proto::Tcp), (443, Proto::Tcp), (80, Proto::Udp)] {
                    for (egress, from, to) in [(true, &me, peer), (false, peer, &me)] {
                        let q = Query::l4(from.clone(), to.clone(), port, proto);
                        let out = c.eval(&q).unwrap();
                        let side = if egress { &out.egress } else { &out.ingress };
                        let (Some(s4), Some(d4)) = (v4(ip_of(from)), v4(ip_of(to))) else { continue };
                        sport.set(if sport.get() == u16::MAX { 1024 } else { sport.get() + 1 });
                        let pkt = testrun::ipv4_packet(s4, d4, common::proto_number(proto), sport.get(), port);
                        let r = testrun::run(if egress { from_pod } else { to_pod }, &pkt, 1, 0).unwrap();
                        packets.set(packets.get() + 1);
                        let kernel = if r.retval == 0 { Decision::Allow } else { Decision::Deny };
                        if kernel != common::kernel_expectation(side) {
                            return Err(TestCaseError::fail(format!(
                                "{} side of {q:?}: engine {} ({}), kernel {kernel}\nmanifests: {text}",
                                if egress { "egress" } else { "ingress" },
                                side.verdict,
                                out.explanation
                            )));
                        }
                    }
                }
            }
        }
        Ok(())
    });
    let packets = packets.get();
    eprintln!("{packets} random packets through the kernel");
    if let Err(e) = result {
        panic!("{e}");
    }
    assert!(packets > 5_000, "only {packets} packets");
}

/// What the conformance suites do not reach: IPv6 (exact addresses and
/// prefixes, neighbour discovery, conntrack replies), IPv4 prefixes and
/// fragments, and the addresses flow events carry.
#[test]
fn ipv6_prefixes_fragments_and_flow_addresses() {
    use mcnet_datapath::flows;
    use mcnet_datapath::state::mapped;
    use mcnet_ebpf_common::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    if cfg!(mcnet_ebpf_stub) || !mcnet_datapath::is_root() {
        mcnet_core::testing::skip("needs root and the real eBPF object");
        return;
    }
    const ME: u32 = 256;
    let six = |s: &str| s.parse::<Ipv6Addr>().unwrap().octets();
    let me6 = six("fd00::100");
    let me4 = [198, 18, 0, 100];
    let mut s = DesiredState::default();
    s.endpoints.insert(
        1,
        EndpointInfo {
            identity: ME,
            flags: EP_INGRESS_ISOLATED | EP_EGRESS_ISOLATED,
        },
    );
    let v4 = |a: [u8; 4]| mapped(IpAddr::V4(Ipv4Addr::from(a)));
    s.ipcache.insert((128, six("fd00::1")), 300);
    s.ipcache.insert((96 + 16, six("fd00:1::")), 400);
    s.ipcache.insert((128, v4([198, 18, 0, 5])), 300);
    s.ipcache.insert((96 + 16, v4([198, 19, 0, 0])), 400);
    let allow = |s: &mut DesiredState, peer, port, proto| {
        s.policy.insert(
            PolicyKey {
                endpoint: ME,
                peer,
                port,
                proto,
                direction: DIR_INGRESS,
            },
            PolicyValue {
                action: ACTION_ALLOW,
                _pad: [0; 3],
                cookie: 7,
            },
        );
    };
    allow(&mut s, 300, 80, PROTO_TCP);
    allow(&mut s, 400, 53, PROTO_UDP);
    let mut dp = Datapath::load().expect("load");
    dp.sync(&s).unwrap();
    let mut ring = dp.take_flows().unwrap();
    let from_pod = dp.program_fd(FROM_POD).unwrap();
    let to_pod = dp.program_fd(TO_POD).unwrap();
    let passes = |prog, pkt: &[u8]| testrun::run(prog, pkt, 1, 0).unwrap().retval == 0;

    let in6 =
        |src: &str, proto, sport, dport| testrun::ipv6_packet(six(src), me6, proto, sport, dport);
    // Exact IPv6 peer: its port passes, another port does not.
    assert!(passes(to_pod, &in6("fd00::1", PROTO_TCP, 40000, 80)));
    assert!(!passes(to_pod, &in6("fd00::1", PROTO_TCP, 40001, 81)));
    // A prefix's identity (LPM), and world outside it.
    assert!(passes(to_pod, &in6("fd00:1::9", PROTO_UDP, 5353, 53)));
    assert!(!passes(to_pod, &in6("fd00:2::9", PROTO_UDP, 5353, 53)));
    // The reply of the allowed flow passes egress isolation through
    // conntrack; a new egress flow does not.
    let reply = testrun::ipv6_packet(me6, six("fd00::1"), PROTO_TCP, 80, 40000);
    assert!(passes(from_pod, &reply));
    let fresh = testrun::ipv6_packet(me6, six("fd00::1"), PROTO_TCP, 80, 40002);
    assert!(!passes(from_pod, &fresh));
    // Neighbour solicitation to a solicited-node address passes untracked.
    let ns = testrun::ipv6_packet(
        six("fe80::1"),
        six("ff02::1:ff00:100"),
        PROTO_ICMPV6,
        0,
        135,
    );
    assert!(passes(to_pod, &ns));

    // IPv4: an exact peer, a prefix, world.
    let in4 =
        |src: [u8; 4], proto, sport, dport| testrun::ipv4_packet(src, me4, proto, sport, dport);
    assert!(passes(to_pod, &in4([198, 18, 0, 5], PROTO_TCP, 41000, 80)));
    assert!(passes(to_pod, &in4([198, 19, 7, 7], PROTO_UDP, 5353, 53)));
    assert!(!passes(to_pod, &in4([198, 20, 7, 7], PROTO_UDP, 5353, 53)));
    // A later fragment carries no ports: judged as port 0, which no rule allows.
    let mut frag = in4([198, 18, 0, 5], PROTO_TCP, 41001, 80);
    frag[20] = 0x00;
    frag[21] = 0x10; // fragment offset 16 (x 8 bytes)
    assert!(!passes(to_pod, &frag));

    // Flow events carry both families' addresses and the identities.
    let seen = flows::drain(&mut ring);
    let find = |src: IpAddr, dport: u16| {
        seen.iter()
            .find(|f| f.src == src && f.dport == dport)
            .unwrap_or_else(|| panic!("no flow from {src} to port {dport} in {seen:#?}"))
    };
    let f = find("fd00::1".parse().unwrap(), 80);
    assert_eq!(
        (f.verdict, f.dst, f.src_identity, f.dst_identity),
        ("allow", IpAddr::V6(Ipv6Addr::from(me6)), 300, ME)
    );
    let f = find("fd00:2::9".parse().unwrap(), 53);
    assert_eq!(
        (f.verdict, f.reason, f.src_identity),
        ("deny", "drop-no-rule", IDENTITY_WORLD_IPV6)
    );
    let f = find(IpAddr::V4(Ipv4Addr::new(198, 19, 7, 7)), 53);
    assert_eq!(
        (f.verdict, f.dst, f.src_identity, f.sport),
        ("allow", IpAddr::V4(Ipv4Addr::from(me4)), 400, 5353)
    );
}

/// An IPv6 prefix never gives its identity to an IPv4 peer (nor the other
/// way round), although the ipcache trie keys IPv4 as `::ffff:a.b.c.d`:
/// `::/8` (like any IPv6 prefix of zeros up to /95) covers that range bit
/// for bit, and the engine, like Kubernetes and Cilium, keeps the families
/// apart.
#[test]
fn prefixes_of_one_family_never_cover_the_other() {
    use mcnet_core::policy::{Manifests, Proto, Query, QueryEndpoint};

    if cfg!(mcnet_ebpf_stub) || !mcnet_datapath::is_root() {
        mcnet_core::testing::skip("needs root and the real eBPF object");
        return;
    }
    const MANIFESTS: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: api, namespace: prod, labels: {app: api}}
status: {podIP: 198.18.0.100, podIPs: [{ip: 198.18.0.100}, {ip: "fd00::100"}]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: families, namespace: prod}
spec:
  podSelector: {matchLabels: {app: api}}
  policyTypes: [Ingress, Egress]
  ingress:
  - from: [{ipBlock: {cidr: "::/8"}}]
  egress:
  - to: [{ipBlock: {cidr: "203.0.113.0/24"}}]
"#;
    let m = Manifests::parse_str(MANIFESTS).unwrap();
    let c = Compiled::new(&m);
    let mut dp = Datapath::load().expect("load");
    dp.set_flow_events(false).unwrap();
    dp.sync(
        &DesiredState::from_compiled(
            &c,
            &[Binding {
                ifindex: 1,
                pod: "prod/api".into(),
            }],
        )
        .unwrap(),
    )
    .unwrap();
    let from_pod = dp.program_fd(FROM_POD).unwrap();
    let to_pod = dp.program_fd(TO_POD).unwrap();
    let api = |peer: IpAddr| -> IpAddr {
        if peer.is_ipv4() {
            "198.18.0.100".parse().unwrap()
        } else {
            "fd00::100".parse().unwrap()
        }
    };
    let packet = |src: IpAddr, dst: IpAddr, sport| match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            testrun::ipv4_packet(s.octets(), d.octets(), 6, sport, 80)
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            testrun::ipv6_packet(s.octets(), d.octets(), 6, sport, 80)
        }
        _ => unreachable!("one family per packet"),
    };
    let ends = |ip: Option<IpAddr>| QueryEndpoint {
        pod: ip.is_none().then(|| "prod/api".to_string()),
        ip: ip.map(|i| i.to_string()),
    };
    let mut verdicts = Vec::new();
    for (i, peer) in [
        "203.0.113.9",
        "198.51.100.7",
        "64:ff9b::9",
        "::ffff:198.51.100.7",
    ]
    .into_iter()
    .enumerate()
    {
        let peer: IpAddr = peer.parse().unwrap();
        // An IPv4-mapped IPv6 peer is an IPv4 peer on the wire.
        let wire = match peer {
            IpAddr::V6(a) => a.to_ipv4_mapped().map_or(peer, IpAddr::V4),
            v4 => v4,
        };
        for (egress, prog) in [(false, to_pod), (true, from_pod)] {
            let (from, to) = if egress {
                (None, Some(peer))
            } else {
                (Some(peer), None)
            };
            let q = Query::l4(ends(from), ends(to), 80, Proto::Tcp);
            let out = c.eval(&q).unwrap();
            let engine = if egress { &out.egress } else { &out.ingress }.verdict;
            let (src, dst) = if egress {
                (api(wire), wire)
            } else {
                (wire, api(wire))
            };
            let sport = 40_000 + 2 * i as u16 + egress as u16;
            let r = testrun::run(prog, &packet(src, dst, sport), 1, 0).unwrap();
            let kernel = if r.retval == 0 {
                Decision::Allow
            } else {
                Decision::Deny
            };
            assert_eq!(
                kernel,
                engine,
                "{} {peer}: engine {engine}, kernel {kernel} ({})",
                if egress { "egress to" } else { "ingress from" },
                out.explanation
            );
            verdicts.push(kernel);
        }
    }
    // ::/8 admits the IPv6 peer only (198.51.100.7 is world, whose IPv4
    // lookup ends at the fence), 203.0.113.0/24 lets out to IPv4 only, and an
    // IPv4-mapped peer is an IPv4 peer.
    use Decision::{Allow, Deny};
    assert_eq!(verdicts, [Deny, Allow, Deny, Deny, Allow, Deny, Deny, Deny]);
}

/// ICMP rules in the kernel: the type is the policy "port" (type 0 kept
/// apart from "any port"), an echo reply finds its request through
/// conntrack by the echo identifier, other types are judged one by one,
/// and flow events carry the type.
#[test]
fn icmp_types_are_enforced_and_echo_replies_tracked() {
    use mcnet_core::policy::Manifests;
    use mcnet_datapath::flows;
    use mcnet_ebpf_common::*;

    if cfg!(mcnet_ebpf_stub) || !mcnet_datapath::is_root() {
        mcnet_core::testing::skip("needs root and the real eBPF object");
        return;
    }
    const PODS: &str = r#"
- {apiVersion: v1, kind: Pod, metadata: {name: a, namespace: x, labels: {app: a}}, status: {podIP: 198.18.0.1}}
- {apiVersion: v1, kind: Pod, metadata: {name: b, namespace: x, labels: {app: b}}, status: {podIP: 198.18.0.2}}
"#;
    let policy = |egress: &str, ingress_types: &str| {
        format!(
            r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {{name: icmp, namespace: x}}
spec:
  endpointSelector: {{matchLabels: {{app: b}}}}
  egress: [{egress}]
  ingress: [{{fromEndpoints: [{{matchLabels: {{app: a}}}}], icmps: [{{fields: [{ingress_types}]}}]}}]
"#
        )
    };
    let mut dp = Datapath::load().expect("load");
    let mut ring = dp.take_flows().unwrap();
    let from_pod = dp.program_fd(FROM_POD).unwrap();
    let to_pod = dp.program_fd(TO_POD).unwrap();
    let mut enforce = |text: String| {
        let m = Manifests::load([("pods", PODS), ("policy", text.as_str())]).unwrap();
        let binding = Binding {
            ifindex: 1,
            pod: "x/b".into(),
        };
        let desired = DesiredState::from_compiled(&Compiled::new(&m), &[binding]).unwrap();
        dp.sync(&desired).unwrap();
        dp.flush_conntrack().unwrap();
    };
    let (a, b) = ([198, 18, 0, 1], [198, 18, 0, 2]);
    // (what, into b or out of it, protocol, echo identifier or source
    // port, type or port, passes), in order: conntrack carries over.
    type Case = (&'static str, bool, u8, u16, u16, bool);
    let check = |cases: &[Case]| {
        for &(what, into_b, proto, sport, dport, want) in cases {
            let (prog, pkt) = if into_b {
                (to_pod, testrun::ipv4_packet(a, b, proto, sport, dport))
            } else {
                (from_pod, testrun::ipv4_packet(b, a, proto, sport, dport))
            };
            let got = testrun::run(prog, &pkt, 1, 0).unwrap().retval == 0;
            assert_eq!(got, want, "{what}");
        }
    };

    // Ingress allows echo requests (8) and time exceeded (11); egress
    // allows type 0 only, an exact type and not "any port".
    enforce(policy(
        "{toEndpoints: [{matchLabels: {app: a}}], icmps: [{fields: [{type: 0}]}]}",
        "{type: EchoRequest}, {type: 11}",
    ));
    check(&[
        ("echo request in", true, PROTO_ICMP, 7, 8, true),
        ("time exceeded in", true, PROTO_ICMP, 0, 11, true),
        ("timestamp in", true, PROTO_ICMP, 0, 13, false),
        ("TCP in", true, PROTO_TCP, 40000, 8080, false),
        ("UDP to port 8 in", true, PROTO_UDP, 40000, 8, false),
        (
            "a type that passed opens no other",
            true,
            PROTO_ICMP,
            0,
            13,
            false,
        ),
        (
            "echo request out (type 0 only)",
            false,
            PROTO_ICMP,
            9,
            8,
            false,
        ),
        ("echo reply out", false, PROTO_ICMP, 99, 0, true),
    ]);

    // b's egress opens to nobody: a reply passes only when it answers a
    // request that was let in (same identifier).
    enforce(policy(
        "{toEndpoints: [{matchLabels: {app: c}}]}",
        "{type: 8}",
    ));
    check(&[
        ("an unsolicited reply", false, PROTO_ICMP, 42, 0, false),
        ("the request", true, PROTO_ICMP, 42, 8, true),
        ("its reply", false, PROTO_ICMP, 42, 0, true),
        (
            "a reply to another identifier",
            false,
            PROTO_ICMP,
            43,
            0,
            false,
        ),
    ]);

    // Flow events carry the type, not a port.
    let seen = flows::drain(&mut ring);
    assert!(
        seen.iter().any(|f| f.protocol == "ICMP"
            && f.icmp_type == Some(13)
            && f.dport == 0
            && f.verdict == "deny"),
        "{seen:#?}"
    );
}
