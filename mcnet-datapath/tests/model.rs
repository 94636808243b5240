//! The map entries the datapath loads give the policy engine's verdicts,
//! checked with the userspace model of the kernel lookup on every query of
//! the conformance suites (no root needed). The kernel itself is checked
//! against the same model in `kernel.rs`.

use mcnet_core::policy::eval::Decision;
use mcnet_core::policy::Compiled;
use mcnet_datapath::state::{model_verdict, DesiredState};
use mcnet_ebpf_common::{DIR_EGRESS, DIR_INGRESS};

mod common;
use common::{bind_local_pods, bound_ifindex, cases, endpoints, proto_number, resolve};

#[test]
fn datapath_entries_reproduce_the_engine_on_the_conformance_suites() {
    let (mut checked, mut failures) = (0usize, Vec::new());
    for (name, m, queries) in cases() {
        let c = Compiled::new(&m);
        let bindings = bind_local_pods(&m, &c);
        let desired = DesiredState::from_compiled(&c, &bindings).unwrap();
        let ifindex = |pod| bound_ifindex(&bindings, pod);
        let ip_of = |e| resolve(&m, e).map(|(pod, ip)| (ifindex(pod), ip));
        for (qi, q) in queries.iter().enumerate() {
            if q.l7().is_some() {
                continue;
            }
            let (Some((src_if, src_ip)), Some((dst_if, dst_ip))) = (ip_of(&q.from), ip_of(&q.to))
            else {
                continue;
            };
            let out = c.eval(q).unwrap();
            let proto = proto_number(q.protocol);
            let egress = src_if
                .map(|i| model_verdict(&desired, i, DIR_EGRESS, dst_ip, proto, q.port).unwrap())
                .unwrap_or(true);
            let ingress = dst_if
                .map(|i| model_verdict(&desired, i, DIR_INGRESS, src_ip, proto, q.port).unwrap())
                .unwrap_or(true);
            let model = if egress && ingress {
                Decision::Allow
            } else {
                Decision::Deny
            };
            checked += 1;
            // What the engine cannot evaluate, the datapath never allows.
            let engine = match out.verdict {
                Decision::NotEvaluable => Decision::Deny,
                v => v,
            };
            if model != engine {
                failures.push(format!(
                    "{name} query {qi}: engine {} but datapath entries {} ({})",
                    out.verdict, model, out.explanation
                ));
            }
        }
    }
    eprintln!("checked {checked} queries");
    assert!(checked > 10_000, "only {checked} queries were checkable");
    assert!(
        failures.is_empty(),
        "{} mismatches, first: {:#?}",
        failures.len(),
        &failures[..failures.len().min(10)]
    );
}

#[path = "../../mcnet-core/tests/support/random_policies.rs"]
mod random_policies;

/// The same check on random inventories and policies (no root needed).
#[test]
fn datapath_entries_reproduce_the_engine_on_random_policies() {
    use mcnet_core::policy::{Manifests, Proto, Query};
    use proptest::test_runner::{Config, TestCaseError, TestRunner};

    let mut runner = TestRunner::new(Config {
        cases: 3000,
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
        let bindings = bind_local_pods(&m, &c);
        let desired = DesiredState::from_compiled(&c, &bindings).unwrap();
        let ends = endpoints(&m, &random_policies::EXTERNAL);
        let ifindex = |pod| bound_ifindex(&bindings, pod);
        let addr = |e| resolve(&m, e).map(|(pod, ip)| (ifindex(pod), ip)).unwrap();
        for from in &ends {
            for to in &ends {
                for (port, proto) in [
                    (80, Proto::Tcp),
                    (53, Proto::Udp),
                    (8080, Proto::Tcp),
                    (8050, Proto::Tcp),
                    (443, Proto::Tcp),
                    (80, Proto::Udp),
                ] {
                    let q = Query::l4(from.clone(), to.clone(), port, proto);
                    let out = c.eval(&q).unwrap();
                    let ((src_if, src_ip), (dst_if, dst_ip)) = (addr(from), addr(to));
                    let p = proto_number(proto);
                    let eg = src_if
                        .map(|i| model_verdict(&desired, i, DIR_EGRESS, dst_ip, p, port).unwrap())
                        .unwrap_or(true);
                    let ing = dst_if
                        .map(|i| model_verdict(&desired, i, DIR_INGRESS, src_ip, p, port).unwrap())
                        .unwrap_or(true);
                    let model = if eg && ing {
                        Decision::Allow
                    } else {
                        Decision::Deny
                    };
                    if model != out.verdict {
                        return Err(TestCaseError::fail(format!(
                            "{q:?}: engine {} ({}), datapath entries {model}\nmanifests: {text}",
                            out.verdict, out.explanation
                        )));
                    }
                }
            }
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}
