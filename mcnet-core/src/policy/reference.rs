//! A direct evaluator written straight from the specifications: for every
//! query it walks every policy against the two pods themselves, with no
//! identities and no precomputation. It is the oracle of the property tests
//! and the naive baseline of the benchmarks; use [`Compiled`] otherwise.
//!
//! [`Compiled`]: super::Compiled

use std::collections::BTreeMap;
use std::net::IpAddr;

use super::eval::{http_matches, Decision, HttpRequest};
use super::load::Manifests;
use super::model::*;
use super::selector::{Key, Labels, Selector, Source};

/// One side of a connection as the reference sees it.
#[derive(Clone, Copy, Debug)]
pub enum Party<'a> {
    /// A pod.
    Pod(&'a Pod),
    /// An address that belongs to no pod.
    External(IpAddr),
}

struct PodView<'a> {
    pod: &'a Pod,
    cilium: BTreeMap<String, String>,
    ns_labels: BTreeMap<String, String>,
}

/// An address outside the cluster carries `reserved:world` and its family's world label.
struct WorldLabels(IpAddr);

impl Labels for WorldLabels {
    fn get(&self, key: &Key) -> Option<&str> {
        let family = if self.0.is_ipv4() {
            "world-ipv4"
        } else {
            "world-ipv6"
        };
        (matches!(key.source, Source::Reserved | Source::Any)
            && (key.name == "world" || key.name == family))
            .then_some("")
    }
}

impl Labels for PodView<'_> {
    fn get(&self, key: &Key) -> Option<&str> {
        match key.source {
            Source::Any | Source::K8s => self.cilium.get(&key.name).map(String::as_str),
            _ => None,
        }
    }
}

fn view<'a>(m: &Manifests, pod: &'a Pod) -> PodView<'a> {
    let ns_labels = m.inventory.namespace_labels(&pod.namespace);
    let mut cilium = pod.labels.clone();
    cilium.insert(NAMESPACE_LABEL.into(), pod.namespace.clone());
    for (k, v) in &ns_labels {
        cilium.insert(format!("{NAMESPACE_LABELS_PREFIX}{k}"), v.clone());
    }
    cilium.insert(CLUSTER_LABEL.into(), pod.cluster.clone());
    cilium.insert(SERVICE_ACCOUNT_LABEL.into(), pod.service_account.clone());
    PodView {
        pod,
        cilium,
        ns_labels,
    }
}

fn selects(m: &Manifests, subject: &Subject, v: &PodView<'_>) -> bool {
    if v.pod.cluster != m.options.local_cluster {
        return false;
    }
    match subject {
        Subject::Pods {
            namespace,
            selector,
        } => &v.pod.namespace == namespace && selector.matches(&v.pod.labels),
        Subject::Endpoints(sel) => sel.matches(v),
        Subject::Nodes(_) => false,
    }
}

fn peer_matches(m: &Manifests, peer: &Peer, other: &Party<'_>, requires: &[&Selector]) -> bool {
    let local = m.options.local_cluster.as_str();
    match (peer, other) {
        (
            Peer::K8sPods {
                pods,
                namespaces,
                policy_namespace,
            },
            Party::Pod(p),
        ) => {
            let v = view(m, p);
            p.cluster == local
                && match namespaces {
                    None => &p.namespace == policy_namespace,
                    Some(s) => s.matches(&v.ns_labels),
                }
                && pods.as_ref().is_none_or(|s| s.matches(&p.labels))
        }
        (Peer::K8sPods { .. }, Party::External(_)) => false,
        (Peer::IpBlock(set), Party::Pod(p)) => p.ips.first().is_some_and(|ip| set.contains(ip)),
        (Peer::IpBlock(set), Party::External(ip)) => set.contains(ip),
        (Peer::Cidr(_), Party::Pod(_)) => false,
        (Peer::Cidr(set), Party::External(ip)) => set.contains(ip),
        (Peer::Endpoints(sel), Party::Pod(p)) => {
            let v = view(m, p);
            sel.matches(&v) && requires.iter().all(|r| r.matches(&v))
        }
        (Peer::Endpoints(sel), Party::External(ip)) => {
            let w = WorldLabels(*ip);
            sel.matches(&w) && requires.iter().all(|r| r.matches(&w))
        }
        (Peer::Entity(e), other) => match (e, other) {
            (Entity::All, _) => true,
            (Entity::World, Party::External(_)) => true,
            (Entity::WorldIpv4, Party::External(ip)) => ip.is_ipv4(),
            (Entity::WorldIpv6, Party::External(ip)) => ip.is_ipv6(),
            (Entity::Cluster, Party::Pod(p)) => p.cluster == local,
            _ => false,
        },
    }
}

fn port_matches(
    sel: &PortSel,
    subject: &Pod,
    other: &Party<'_>,
    d: Direction,
    port: u16,
    proto: Proto,
) -> bool {
    if !sel.proto.covers(proto) {
        return false;
    }
    match &sel.port {
        PortSpec::Range(lo, hi) => *lo <= port && port <= *hi,
        PortSpec::Named(name) => {
            let dest = match (d, other) {
                (Direction::Ingress, _) => subject,
                (Direction::Egress, Party::Pod(p)) => p,
                (Direction::Egress, Party::External(_)) => return false,
            };
            dest.named_ports
                .iter()
                .any(|np| &np.name == name && np.proto == proto && np.port == port)
        }
    }
}

/// Evaluates one side: may `subject` send (egress) to, or receive (ingress) from, `other`?
pub fn side(
    m: &Manifests,
    subject: &Pod,
    other: &Party<'_>,
    d: Direction,
    port: u16,
    proto: Proto,
    http: Option<&HttpRequest>,
) -> Decision {
    let v = view(m, subject);
    let selecting: Vec<&Policy> = m
        .policies
        .iter()
        .filter(|p| selects(m, &p.subject, &v))
        .collect();
    let requires: Vec<&Selector> = selecting
        .iter()
        .flat_map(|p| p.dir(d).requires.iter())
        .collect();
    let isolated = selecting.iter().any(|p| p.dir(d).isolates);
    let rule_matches = |r: &Rule| -> Option<Option<bool>> {
        // Some(None): matches with no L7; Some(Some(ok)): matches with L7, ok = request matched.
        let peer_ok = match &r.peers {
            Peers::All => true,
            Peers::Some(list) => list
                .iter()
                .any(|peer| peer_matches(m, peer, other, &requires)),
        };
        if !peer_ok {
            return None;
        }
        match &r.ports {
            Ports::All => Some(None),
            Ports::Some(list) => {
                let hits: Vec<&PortSel> = list
                    .iter()
                    .filter(|s| port_matches(s, subject, other, d, port, proto))
                    .collect();
                if hits.is_empty() {
                    None
                } else if hits.iter().any(|s| s.http.is_none()) {
                    Some(None)
                } else {
                    Some(Some(http.is_some_and(|req| {
                        hits.iter().any(|s| {
                            s.http
                                .as_ref()
                                .is_some_and(|h| h.iter().any(|x| http_matches(x, req)))
                        })
                    })))
                }
            }
        }
    };
    for p in &selecting {
        if p.dir(d).deny.iter().any(|r| rule_matches(r).is_some()) {
            return Decision::Deny;
        }
    }
    if !isolated {
        return Decision::Allow;
    }
    let results: Vec<Option<bool>> = selecting
        .iter()
        .flat_map(|p| p.dir(d).allow.iter().filter_map(rule_matches))
        .collect();
    if results.is_empty() {
        return Decision::Deny;
    }
    let unrestricted = results.iter().any(|r| r.is_none());
    if unrestricted || http.is_none() || results.contains(&Some(true)) {
        Decision::Allow
    } else {
        Decision::Deny
    }
}

/// Evaluates a connection: the source's egress and the destination's ingress must both allow it.
pub fn eval(
    m: &Manifests,
    from: &Party<'_>,
    to: &Party<'_>,
    port: u16,
    proto: Proto,
    http: Option<&HttpRequest>,
) -> Decision {
    let local =
        |p: &Party<'_>| matches!(p, Party::Pod(pod) if pod.cluster == m.options.local_cluster);
    if let (true, Party::Pod(src)) = (local(from), from) {
        if side(m, src, to, Direction::Egress, port, proto, http) == Decision::Deny {
            return Decision::Deny;
        }
    }
    if let (true, Party::Pod(dst)) = (local(to), to) {
        if side(m, dst, from, Direction::Ingress, port, proto, http) == Decision::Deny {
            return Decision::Deny;
        }
    }
    Decision::Allow
}

/// Resolves an address to a party: the pod that owns it, or an external address.
pub fn party<'a>(m: &'a Manifests, ip: IpAddr) -> Party<'a> {
    m.inventory
        .pods
        .iter()
        .find(|p| p.ips.contains(&ip))
        .map(Party::Pod)
        .unwrap_or(Party::External(ip))
}
