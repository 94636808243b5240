//! Shared by the datapath tests: the conformance cases as manifests and queries.

use std::net::IpAddr;
use std::path::Path;

use mcnet_core::policy::{Compiled, Decision, Manifests, Proto, Query, QueryEndpoint};
use mcnet_datapath::state::Binding;
use mcnet_ebpf_common::{PROTO_ICMP, PROTO_ICMPV6, PROTO_SCTP, PROTO_TCP, PROTO_UDP};
use serde::Deserialize;

#[derive(Deserialize)]
struct Case {
    name: String,
    #[serde(default)]
    inventory: Option<String>,
    manifests: serde_yaml::Value,
    queries: Vec<Query>,
}

/// What the kernel program decides for one side of a query, given the
/// engine's verdict: what the engine cannot evaluate is dropped, and so is
/// a port allowed only with L7 rules, which the program cannot judge (its
/// default L7 mode fails closed).
#[allow(dead_code)] // the kernel tests use it, the model tests do not
pub fn kernel_expectation(side: &mcnet_core::policy::eval::Side) -> Decision {
    match side.verdict {
        Decision::Allow if side.l7_enforced => Decision::Deny,
        Decision::NotEvaluable => Decision::Deny,
        v => v,
    }
}

/// The IP protocol number.
pub fn proto_number(p: Proto) -> u8 {
    match p {
        Proto::Tcp => PROTO_TCP,
        Proto::Udp => PROTO_UDP,
        Proto::Sctp => PROTO_SCTP,
        Proto::Icmp => PROTO_ICMP,
        Proto::Icmpv6 => PROTO_ICMPV6,
        Proto::Any => 0,
    }
}

/// Every conformance case: name, manifests, queries.
pub fn cases() -> Vec<(String, Manifests, Vec<Query>)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../mcnet-core/tests/conformance");
    let mut out = Vec::new();
    for dir in ["k8s", "cilium"] {
        let mut files: Vec<_> = std::fs::read_dir(root.join(dir))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        for f in files {
            let case: Case = serde_yaml::from_str(&std::fs::read_to_string(&f).unwrap()).unwrap();
            let inv = case
                .inventory
                .map(|i| {
                    std::fs::read_to_string(root.join("inventories").join(format!("{i}.yaml")))
                        .unwrap()
                })
                .unwrap_or_default();
            let man = serde_yaml::to_string(&case.manifests).unwrap();
            let m = Manifests::load([("inv", inv.as_str()), ("m", man.as_str())]).unwrap();
            out.push((case.name, m, case.queries));
        }
    }
    out
}

/// A query endpoint as the datapath sees it: the pod it is (inventory
/// index), if any, and its address; `None` when it has no address.
pub fn resolve(m: &Manifests, e: &QueryEndpoint) -> Option<(Option<usize>, IpAddr)> {
    match (&e.pod, &e.ip) {
        (Some(p), _) => {
            let i = m.inventory.pod(p)?;
            Some((Some(i), *m.inventory.pods[i].ips.first()?))
        }
        (_, Some(ip)) => {
            let ip: IpAddr = ip.parse().ok()?;
            Some((
                m.inventory.pods.iter().position(|p| p.ips.contains(&ip)),
                ip,
            ))
        }
        _ => None,
    }
}

/// Every pod of the inventory, then `external` addresses, as query endpoints.
#[allow(dead_code)]
pub fn endpoints(m: &Manifests, external: &[&str]) -> Vec<QueryEndpoint> {
    let pods = m.inventory.pods.iter().map(|p| QueryEndpoint {
        pod: Some(p.key()),
        ip: None,
    });
    let ips = external.iter().map(|ip| QueryEndpoint {
        pod: None,
        ip: Some(ip.to_string()),
    });
    pods.chain(ips).collect()
}

/// Binds every local pod with an address to ifindex 100 + its inventory index.
#[allow(dead_code)]
pub fn bind_local_pods(m: &Manifests, c: &Compiled) -> Vec<Binding> {
    m.inventory
        .pods
        .iter()
        .enumerate()
        .filter(|(_, p)| p.cluster == c.local_cluster && !p.ips.is_empty())
        .map(|(i, p)| Binding {
            ifindex: 100 + i as u32,
            pod: p.key(),
        })
        .collect()
}

/// The ifindex [`bind_local_pods`] gave a pod (by inventory index), if it bound it.
#[allow(dead_code)]
pub fn bound_ifindex(bindings: &[Binding], pod: Option<usize>) -> Option<u32> {
    pod.map(|i| 100 + i as u32)
        .filter(|ifi| bindings.iter().any(|b| b.ifindex == *ifi))
}
