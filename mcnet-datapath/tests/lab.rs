//! Real traffic through the lab: TCP and UDP between pod namespaces are
//! allowed or denied exactly as the policy engine predicts, replies pass
//! through conntrack, flow events carry the verdicts and identities, and a
//! live policy update keeps established connections while new ones follow
//! the new policy. Needs root; skipped otherwise.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use mcnet_core::policy::{Compiled, Decision, Manifests, Proto, Query, QueryEndpoint};
use mcnet_datapath::lab::{serve, tcp_ok, udp_ok, Lab};
use mcnet_datapath::state::{Binding, DesiredState};
use mcnet_datapath::{flows, netns, Datapath};

const ADR: &str = include_str!("../../examples/policies/adr-003-production.yaml");

/// UDP 9000 from batch to api-server, both sides.
const UDP_POLICY: &str = r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: batch-udp, namespace: production}
spec:
  podSelector: {matchLabels: {app: batch}}
  policyTypes: [Egress]
  egress: [{to: [{podSelector: {matchLabels: {app: api-server}}}], ports: [{port: 9000, protocol: UDP}]}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: api-udp, namespace: production}
spec:
  podSelector: {matchLabels: {app: api-server}}
  policyTypes: [Ingress]
  ingress: [{from: [{podSelector: {matchLabels: {app: batch}}}], ports: [{port: 9000, protocol: UDP}]}]
"#;

fn pod(p: &str) -> QueryEndpoint {
    QueryEndpoint {
        pod: Some(p.into()),
        ip: None,
    }
}

#[test]
fn real_traffic_follows_the_engine() {
    if cfg!(mcnet_ebpf_stub) || !mcnet_datapath::is_root() {
        mcnet_core::testing::skip("needs root and the real eBPF object");
        return;
    }
    let m = Manifests::load([("adr", ADR), ("udp", UDP_POLICY)]).unwrap();
    let c = Compiled::new(&m);
    let ip = |k: &str| match m.inventory.pods[m.inventory.pod(k).unwrap()].ips[0] {
        std::net::IpAddr::V4(a) => a,
        _ => unreachable!(),
    };
    let names = [
        "production/frontend",
        "production/api-server",
        "production/batch",
    ];
    let lab = Lab::new(
        &format!("mt{}", std::process::id() % 10000),
        &names.map(|n| (n, ip(n))),
    )
    .expect("lab");
    let stop = Arc::new(AtomicBool::new(false));
    for p in &lab.pods {
        serve(&p.netns, 8080, stop.clone());
        serve(&p.netns, 9000, stop.clone());
    }
    // Before enforcement everything flows.
    assert!(
        tcp_ok(
            &lab.pod("production/batch").unwrap().netns,
            ip("production/api-server"),
            8080
        ),
        "the lab routes"
    );

    let node = netns::named(&lab.node);
    let mut dp = Datapath::load().unwrap();
    let mut ring = dp.take_flows().unwrap();
    let bindings: Vec<Binding> = lab
        .pods
        .iter()
        .map(|p| Binding {
            ifindex: netns::run_in(&node, || netns::ifindex(&p.host_iface))
                .unwrap()
                .unwrap(),
            pod: p.key.clone(),
        })
        .collect();
    dp.sync(&DesiredState::from_compiled(&c, &bindings).unwrap())
        .unwrap();
    for p in &lab.pods {
        dp.attach_in(&node, &p.host_iface).unwrap();
    }

    // A freshly loaded program fails closed on ports with L7 rules: the
    // frontend's allowed-at-L4 call to api-server:8080 is dropped, since
    // the kernel cannot judge its requests.
    assert!(!tcp_ok(
        &lab.pod("production/frontend").unwrap().netns,
        ip("production/api-server"),
        8080
    ));
    assert!(dp.counters().unwrap().packets("drop-l7") > 0);
    // Audit mode passes them at L4 and marks their flows (below).
    dp.set_l7_mode(mcnet_datapath::L7Mode::Audit).unwrap();

    let mut checked = 0;
    for from in names {
        for to in names {
            if from == to {
                continue;
            }
            for (port, proto) in [(8080, Proto::Tcp), (9000, Proto::Udp)] {
                let q = Query::l4(pod(from), pod(to), port, proto);
                let want = c.eval(&q).unwrap().verdict == Decision::Allow;
                let ns = &lab.pod(from).unwrap().netns;
                let got = if proto == Proto::Tcp {
                    tcp_ok(ns, ip(to), port)
                } else {
                    udp_ok(ns, ip(to), port)
                };
                assert_eq!(
                    got, want,
                    "{from} → {to} {port}/{proto}: kernel {got}, engine {want}"
                );
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 12);
    // The ADR's allowed path and a denied one, explicitly.
    assert!(tcp_ok(
        &lab.pod("production/frontend").unwrap().netns,
        ip("production/api-server"),
        8080
    ));
    assert!(!tcp_ok(
        &lab.pod("production/batch").unwrap().netns,
        ip("production/api-server"),
        8080
    ));
    assert!(udp_ok(
        &lab.pod("production/batch").unwrap().netns,
        ip("production/api-server"),
        9000
    ));

    // Flow events: a drop of batch → api-server:8080 with both identities, and a forwarded frontend flow marked L7.
    let events = flows::drain(&mut ring);
    let id = |k: &str| c.pod_identity[m.inventory.pod(k).unwrap()].get();
    let dropped = events
        .iter()
        .find(|e| {
            e.verdict == "deny"
                && e.src == ip("production/batch")
                && e.dst == ip("production/api-server")
                && e.dport == 8080
        })
        .expect("a drop event for batch → api-server");
    assert_eq!(
        (dropped.src_identity, dropped.dst_identity),
        (id("production/batch"), id("production/api-server"))
    );
    assert_eq!(dropped.protocol, "TCP");
    let fwd = events
        .iter()
        .find(|e| {
            e.verdict == "allow"
                && e.src == ip("production/frontend")
                && e.dst == ip("production/api-server")
                && e.dport == 8080
                && e.direction == "ingress"
        })
        .expect("a forwarded event for frontend → api-server");
    assert!(fwd.l7, "port 8080 of api-server carries L7 rules");
    let counters = dp.counters().unwrap();
    assert!(
        counters.packets("allowed-reply") > 0,
        "replies went through conntrack: {counters:?}"
    );
    assert!(counters.dropped() > 0);

    // Live update: keep a connection open, then remove the frontend's egress allow.
    let fe = lab.pod("production/frontend").unwrap().netns.clone();
    let api = ip("production/api-server");
    let mut conn = netns::run_in(&netns::named(&fe), || {
        TcpStream::connect_timeout(&SocketAddr::from((api, 8080)), Duration::from_secs(1)).unwrap()
    })
    .unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    let echo = |c: &mut TcpStream| -> bool {
        let mut b = [0u8; 4];
        c.write_all(b"live").is_ok() && c.read_exact(&mut b).is_ok() && &b == b"live"
    };
    assert!(echo(&mut conn));
    let without: String = ADR
        .split("\n---\n")
        .filter(|d| !d.contains("name: frontend-egress-api"))
        .collect::<Vec<_>>()
        .join("\n---\n");
    let m2 = Manifests::load([("adr", without.as_str()), ("udp", UDP_POLICY)]).unwrap();
    let c2 = Compiled::new(&m2);
    let batch = lab.pod("production/batch").unwrap().netns.clone();
    // Allowed UDP keeps flowing while the maps change, update after update.
    for round in 0..20 {
        let state = if round % 2 == 0 {
            DesiredState::from_compiled(&c2, &bindings).unwrap()
        } else {
            DesiredState::from_compiled(&c, &bindings).unwrap()
        };
        dp.sync(&state).unwrap();
        assert!(
            udp_ok(&batch, api, 9000),
            "allowed UDP dropped during update round {round}"
        );
    }
    dp.sync(&DesiredState::from_compiled(&c2, &bindings).unwrap())
        .unwrap();
    assert!(
        echo(&mut conn),
        "the established connection survives the update"
    );
    assert!(
        !tcp_ok(&fe, api, 8080),
        "a new connection follows the new policy"
    );
    let q = Query::l4(
        pod("production/frontend"),
        pod("production/api-server"),
        8080,
        Proto::Tcp,
    );
    assert_eq!(c2.eval(&q).unwrap().verdict, Decision::Deny);

    dp.detach_all().unwrap();
    // Without the programs, traffic flows again.
    assert!(tcp_ok(&batch, api, 8080));
    stop.store(true, Ordering::Relaxed);
    drop(lab);
}
