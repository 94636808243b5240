//! A direct evaluator written straight from the specifications: for every
//! query it walks every policy against the two pods themselves, with no
//! identities and no precomputation. It is the oracle of the property tests
//! and the naive baseline of the benchmarks; use [`Compiled`] otherwise.
//!
//! [`Compiled`]: super::Compiled

use std::collections::BTreeMap;
use std::net::IpAddr;

use super::eval::{l7_match, Decision, L7Request};
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
        (Peer::Unresolved { scope, .. }, other) => matches!(
            (scope, other),
            (UnresolvedScope::Any, _) | (UnresolvedScope::World, Party::External(_))
        ),
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
    l7: Option<L7Request<'_>>,
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
    // Some((l7, not_evaluable)): the rule matches; l7 is None with no L7
    // rules, else whether the request matched them.
    let rule_matches = |r: &Rule| -> Option<(Option<bool>, bool)> {
        let mut not_evaluable = r.not_evaluable.is_some();
        let peer_ok = match &r.peers {
            Peers::All => true,
            Peers::Some(list) => {
                let hit = |unresolved: bool| {
                    list.iter().any(|peer| {
                        matches!(peer, Peer::Unresolved { .. }) == unresolved
                            && peer_matches(m, peer, other, &requires)
                    })
                };
                if hit(false) {
                    true
                } else if hit(true) {
                    not_evaluable = true;
                    true
                } else {
                    false
                }
            }
        };
        if !peer_ok {
            return None;
        }
        let l7_result = match &r.ports {
            Ports::All => None,
            Ports::Some(list) => {
                let hits: Vec<&PortSel> = list
                    .iter()
                    .filter(|s| port_matches(s, subject, other, d, port, proto))
                    .collect();
                if hits.is_empty() {
                    return None;
                } else if hits.iter().any(|s| s.l7.is_none()) {
                    None
                } else {
                    Some(l7.is_some_and(|req| {
                        hits.iter().any(|s| {
                            s.l7.as_ref()
                                .is_some_and(|rules| matches!(l7_match(rules, req), Ok(Some(_))))
                        })
                    }))
                }
            }
        };
        Some((l7_result, not_evaluable))
    };
    let mut maybe_denied = false;
    for p in &selecting {
        for r in &p.dir(d).deny {
            match rule_matches(r) {
                Some((_, false)) => return Decision::Deny,
                Some((_, true)) => maybe_denied = true,
                None => {}
            }
        }
    }
    if maybe_denied {
        return Decision::NotEvaluable;
    }
    if !isolated {
        return Decision::Allow;
    }
    let all: Vec<(Option<bool>, bool)> = selecting
        .iter()
        .flat_map(|p| p.dir(d).allow.iter().filter_map(rule_matches))
        .collect();
    let maybe_allowed = all.iter().any(|(_, ne)| *ne);
    let results: Vec<Option<bool>> = all.iter().filter(|(_, ne)| !ne).map(|(r, _)| *r).collect();
    let fallback = if maybe_allowed {
        Decision::NotEvaluable
    } else {
        Decision::Deny
    };
    if results.is_empty() {
        return fallback;
    }
    let unrestricted = results.iter().any(|r| r.is_none());
    if unrestricted || l7.is_none() || results.contains(&Some(true)) {
        Decision::Allow
    } else {
        fallback
    }
}

/// Evaluates a connection: the source's egress and the destination's ingress must both allow it.
pub fn eval(
    m: &Manifests,
    from: &Party<'_>,
    to: &Party<'_>,
    port: u16,
    proto: Proto,
    l7: Option<L7Request<'_>>,
) -> Decision {
    let local =
        |p: &Party<'_>| matches!(p, Party::Pod(pod) if pod.cluster == m.options.local_cluster);
    let mut verdict = Decision::Allow;
    if let (true, Party::Pod(src)) = (local(from), from) {
        match side(m, src, to, Direction::Egress, port, proto, l7) {
            Decision::Deny => return Decision::Deny,
            Decision::NotEvaluable => verdict = Decision::NotEvaluable,
            Decision::Allow => {}
        }
    }
    if let (true, Party::Pod(dst)) = (local(to), to) {
        match side(m, dst, from, Direction::Ingress, port, proto, l7) {
            Decision::Deny => return Decision::Deny,
            Decision::NotEvaluable => verdict = Decision::NotEvaluable,
            Decision::Allow => {}
        }
    }
    verdict
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
