//! Property: on random inventories and random Kubernetes and Cilium
//! policies, the compiled evaluation gives the same verdict as the direct
//! reference evaluator (written straight from the specifications) for every
//! pod pair, external address, port, protocol and HTTP request tried.

use std::net::IpAddr;

use mcnet_core::policy::eval::L7Request;
use mcnet_core::policy::reference::{self, Party};
use mcnet_core::policy::{Compiled, HttpRequest, Manifests, Proto, Query, QueryEndpoint};
use proptest::prelude::*;

#[path = "support/random_policies.rs"]
mod random_policies;
use random_policies::{scenario, EXTERNAL};

proptest! {
    #![proptest_config(ProptestConfig { cases: 600, ..ProptestConfig::default() })]

    #[test]
    fn compiled_equals_reference(objects in scenario()) {
        let text = serde_json::to_string(&objects).unwrap();
        let m = match Manifests::parse_str(&text) {
            Ok(m) => m,
            Err(e) => return Err(TestCaseError::reject(format!("generator produced an invalid policy: {e}"))),
        };
        let c = Compiled::new(&m);
        let pods: Vec<String> = m.inventory.pods.iter().map(|p| p.key()).collect();
        let mut ends: Vec<QueryEndpoint> = pods.iter().map(|p| QueryEndpoint { pod: Some(p.clone()), ip: None }).collect();
        ends.extend(EXTERNAL.iter().map(|ip| QueryEndpoint { pod: None, ip: Some(ip.to_string()) }));
        let requests = [None, Some(HttpRequest { method: "GET".into(), path: "/a1".into(), ..Default::default() }), Some(HttpRequest { method: "PUT".into(), path: "/b".into(), ..Default::default() })];
        let party = |e: &QueryEndpoint| -> Party<'_> {
            match (&e.pod, &e.ip) {
                (Some(p), _) => Party::Pod(&m.inventory.pods[m.inventory.pod(p).unwrap()]),
                (_, Some(ip)) => reference::party(&m, ip.parse::<IpAddr>().unwrap()),
                _ => unreachable!(),
            }
        };
        for from in &ends {
            for to in &ends {
                for (port, proto) in [(80, Proto::Tcp), (53, Proto::Udp), (8080, Proto::Tcp), (8050, Proto::Tcp), (443, Proto::Tcp), (80, Proto::Udp)] {
                    for http in &requests {
                        if http.is_some() && proto != Proto::Tcp { continue; }
                        let q = Query { http: http.clone(), ..Query::l4(from.clone(), to.clone(), port, proto) };
                        let got = c.eval(&q).unwrap();
                        let want = reference::eval(&m, &party(from), &party(to), port, proto, http.as_ref().map(L7Request::Http));
                        prop_assert_eq!(got.verdict, want, "query {:?}\nexplanation: {}\nmanifests: {}", q, got.explanation, text);
                        // The allocation-free fast path agrees when no L7 is involved.
                        if http.is_none() {
                            prop_assert_eq!(c.verdict(got.from_identity, got.to_identity, port, proto), got.verdict);
                        }
                    }
                }
            }
        }
    }
}
