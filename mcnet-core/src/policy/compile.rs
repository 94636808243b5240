//! Compilation: pods become numeric identities (one per distinct label
//! set), addresses outside the cluster become CIDR identities, and every
//! policy is resolved into a per-identity map keyed by (direction, peer
//! identity, protocol, port range), as Cilium's MapState is. Evaluating a
//! query afterwards is a handful of hash lookups and never scans policies.
//!
//! Two refinements keep Kubernetes semantics exact where Cilium's identity
//! model would blur them: a NetworkPolicy `ipBlock` may select pod IPs, and a
//! named port resolves on each destination pod. Pods with identical labels
//! therefore share an identity unless an ipBlock covers some of them and not
//! the others, or they name the same port differently; then the identity
//! splits.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;
use serde::Serialize;

use super::load::Manifests;
use super::model::*;

pub(super) use super::identity::RESERVED;
pub use super::identity::{
    IdHasher, IdMap, Identity, IdentityKind, NumericIdentity, FIRST_CIDR_IDENTITY,
    FIRST_USER_IDENTITY, HEALTH, HOST, INGRESS, INIT, KUBE_APISERVER, REMOTE_NODE, UNMANAGED,
    WILDCARD, WORLD, WORLD_IPV4, WORLD_IPV6,
};

/// Where a map entry came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct RuleRef {
    /// Index of the policy in [`Compiled::policies`].
    pub policy: usize,
    /// Direction.
    pub direction: Direction,
    /// Whether it is a deny rule.
    pub deny: bool,
    /// Index of the rule in its section.
    pub index: usize,
}

/// One map entry: a port range with a verdict.
#[derive(Clone, Debug)]
pub struct Entry {
    /// First port.
    pub lo: u16,
    /// Last port.
    pub hi: u16,
    /// Deny (wins) or allow.
    pub deny: bool,
    /// L7 rules; `None` allows every request.
    pub l7: Option<Arc<L7Rules>>,
    /// The field that makes this entry not evaluable offline (an
    /// unresolved peer such as `toFQDNs`, or `authentication`): such an
    /// entry never allows, and a deny of this kind makes verdicts "not
    /// evaluable".
    pub not_evaluable: Option<Arc<str>>,
    /// The rule that produced it.
    pub origin: RuleRef,
}

/// One direction of an endpoint's compiled policy.
#[derive(Clone, Debug, Default)]
pub struct DirState {
    /// Policies that isolate the endpoint in this direction (empty: not isolated).
    pub isolated_by: Vec<usize>,
    /// Policies that select the endpoint.
    pub selected_by: Vec<usize>,
    /// Entries by (peer identity, protocol); the peer may be [`WILDCARD`] and the protocol `Any`.
    pub entries: IdMap<(NumericIdentity, Proto), Vec<Entry>>,
}

/// An endpoint identity's compiled policy.
#[derive(Clone, Debug, Default)]
pub struct EndpointState {
    /// Ingress.
    pub ingress: DirState,
    /// Egress.
    pub egress: DirState,
}

impl EndpointState {
    /// One direction.
    pub fn dir(&self, d: Direction) -> &DirState {
        match d {
            Direction::Ingress => &self.ingress,
            Direction::Egress => &self.egress,
        }
    }
}

/// A key of the logical map state (what the datapath loads).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct PolicyKey {
    /// Direction.
    pub direction: Direction,
    /// Peer identity ([`WILDCARD`] for any).
    pub peer: NumericIdentity,
    /// Protocol (`Any` for every one).
    pub proto: Proto,
    /// First port.
    pub lo: u16,
    /// Last port.
    pub hi: u16,
}

/// The value of a map-state entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// Deny (wins).
    Deny,
    /// Allow every request.
    Allow,
    /// Allow at L4, with L7 rules to enforce in a proxy.
    AllowL7,
}

/// Longest-prefix match over a set of prefixes.
#[derive(Clone, Debug, Default)]
pub struct Lpm {
    by_prefix: HashMap<IpNet, NumericIdentity>,
    lens_v4: Vec<u8>,
    lens_v6: Vec<u8>,
}

impl Lpm {
    fn insert(&mut self, p: IpNet, id: NumericIdentity) {
        self.by_prefix.insert(p, id);
        let lens = if p.addr().is_ipv4() {
            &mut self.lens_v4
        } else {
            &mut self.lens_v6
        };
        if !lens.contains(&p.prefix_len()) {
            lens.push(p.prefix_len());
            lens.sort_unstable_by(|a, b| b.cmp(a));
        }
    }

    /// The longest prefix containing `ip`, with its value.
    pub fn lookup(&self, ip: IpAddr) -> Option<(IpNet, NumericIdentity)> {
        let lens = if ip.is_ipv4() {
            &self.lens_v4
        } else {
            &self.lens_v6
        };
        lens.iter().find_map(|&len| {
            let net = IpNet::new(ip, len).ok()?.trunc();
            self.by_prefix.get(&net).map(|&id| (net, id))
        })
    }

    /// Every prefix.
    pub fn prefixes(&self) -> impl Iterator<Item = (&IpNet, &NumericIdentity)> {
        self.by_prefix.iter()
    }
}

/// The compiled policy of a set of manifests.
#[derive(Debug)]
pub struct Compiled {
    /// The inventory.
    pub inventory: Inventory,
    /// The policies, indexed by [`RuleRef::policy`].
    pub policies: Vec<Policy>,
    /// Every identity.
    pub identities: Vec<Identity>,
    by_id: HashMap<NumericIdentity, usize>,
    /// Each policy's display name (`Kind ns/name`), rendered once: the
    /// evaluator names rules on every query.
    pub(crate) policy_names: Vec<String>,
    /// Identity of each pod (by inventory index).
    pub pod_identity: Vec<NumericIdentity>,
    ip_pod: HashMap<IpAddr, usize>,
    /// Prefixes of addresses outside the cluster → CIDR identities (the ipcache's world part).
    pub cidr_lpm: Lpm,
    /// Compiled state per local pod identity.
    pub states: IdMap<NumericIdentity, EndpointState>,
    /// The local cluster.
    pub local_cluster: String,
}

fn pod_cilium_labels(pod: &Pod, ns_labels: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut l = pod.labels.clone();
    l.insert(NAMESPACE_LABEL.into(), pod.namespace.clone());
    for (k, v) in ns_labels {
        l.insert(format!("{NAMESPACE_LABELS_PREFIX}{k}"), v.clone());
    }
    l.insert(CLUSTER_LABEL.into(), pod.cluster.clone());
    l.insert(SERVICE_ACCOUNT_LABEL.into(), pod.service_account.clone());
    l
}

fn all_peers(policies: &[Policy]) -> impl Iterator<Item = &Peer> {
    policies.iter().flat_map(|p| {
        [&p.ingress, &p.egress]
            .into_iter()
            .flat_map(|d| d.allow.iter().chain(&d.deny))
            .flat_map(|r| match &r.peers {
                Peers::All => [].iter(),
                Peers::Some(v) => v.iter(),
            })
    })
}

fn all_ports(policies: &[Policy]) -> impl Iterator<Item = &PortSel> {
    policies.iter().flat_map(|p| {
        [&p.ingress, &p.egress]
            .into_iter()
            .flat_map(|d| d.allow.iter().chain(&d.deny))
            .flat_map(|r| match &r.ports {
                Ports::All => [].iter(),
                Ports::Some(v) => v.iter(),
            })
    })
}

impl Compiled {
    /// Compiles manifests.
    pub fn new(m: &Manifests) -> Compiled {
        let inv = m.inventory.clone();
        let policies = m.policies.clone();
        let local = m.options.local_cluster.clone();

        // Prefixes: NetworkPolicy ipBlocks may select pods; every prefix defines world identities.
        let mut k8s_prefixes: BTreeSet<IpNet> = BTreeSet::new();
        let mut all_prefixes: BTreeSet<IpNet> = BTreeSet::new();
        for peer in all_peers(&policies) {
            match peer {
                Peer::IpBlock(s) => {
                    k8s_prefixes.insert(s.cidr);
                    k8s_prefixes.extend(s.except.iter().copied());
                    all_prefixes.insert(s.cidr);
                    all_prefixes.extend(s.except.iter().copied());
                }
                Peer::Cidr(s) => {
                    all_prefixes.insert(s.cidr);
                    all_prefixes.extend(s.except.iter().copied());
                }
                _ => {}
            }
        }
        let mut k8s_lpm = Lpm::default();
        for p in &k8s_prefixes {
            k8s_lpm.insert(*p, WILDCARD);
        }
        let named: BTreeSet<&str> = all_ports(&policies)
            .filter_map(|p| match &p.port {
                PortSpec::Named(n) => Some(n.as_str()),
                _ => None,
            })
            .collect();

        let mut identities: Vec<Identity> = RESERVED
            .iter()
            .map(|&(id, name)| Identity {
                id,
                kind: IdentityKind::Reserved { name },
                labels: BTreeMap::from([(format!("reserved:{name}"), String::new())]),
                pod_labels: BTreeMap::new(),
                namespace_labels: BTreeMap::new(),
                named_ports: Vec::new(),
                ip_class: None,
                pods: Vec::new(),
            })
            .collect();

        // Group pods by their identity key, in a deterministic order.
        type PodKey = (BTreeMap<String, String>, Option<IpNet>, Vec<NamedPort>);
        let mut groups: BTreeMap<PodKey, Vec<usize>> = BTreeMap::new();
        let mut ip_pod = HashMap::new();
        for (i, pod) in inv.pods.iter().enumerate() {
            let ns_labels = inv.namespace_labels(&pod.namespace);
            let labels = pod_cilium_labels(pod, &ns_labels);
            let class = pod
                .ips
                .first()
                .and_then(|ip| k8s_lpm.lookup(*ip))
                .map(|(p, _)| p);
            let mut ports: Vec<NamedPort> = pod
                .named_ports
                .iter()
                .filter(|p| named.contains(p.name.as_str()))
                .cloned()
                .collect();
            ports.sort();
            ports.dedup();
            groups.entry((labels, class, ports)).or_default().push(i);
            for ip in &pod.ips {
                ip_pod.insert(*ip, i);
            }
        }
        let mut pod_identity = vec![WILDCARD; inv.pods.len()];
        for (n, ((labels, class, ports), pods)) in groups.into_iter().enumerate() {
            let id = NumericIdentity(FIRST_USER_IDENTITY.0 + n as u32);
            let first = &inv.pods[pods[0]];
            for &p in &pods {
                pod_identity[p] = id;
            }
            identities.push(Identity {
                id,
                kind: IdentityKind::Pods {
                    cluster: first.cluster.clone(),
                    namespace: first.namespace.clone(),
                },
                labels,
                pod_labels: first.labels.clone(),
                namespace_labels: inv.namespace_labels(&first.namespace),
                named_ports: ports,
                ip_class: class,
                pods,
            });
        }
        let mut cidr_lpm = Lpm::default();
        for (n, p) in all_prefixes.iter().enumerate() {
            let id = NumericIdentity(FIRST_CIDR_IDENTITY.0 + n as u32);
            cidr_lpm.insert(*p, id);
            identities.push(Identity {
                id,
                kind: IdentityKind::Cidr { prefix: *p },
                labels: BTreeMap::from([("reserved:world".to_string(), String::new())]),
                pod_labels: BTreeMap::new(),
                namespace_labels: BTreeMap::new(),
                named_ports: Vec::new(),
                ip_class: None,
                pods: Vec::new(),
            });
        }
        let by_id = identities
            .iter()
            .enumerate()
            .map(|(i, x)| (x.id, i))
            .collect();
        let policy_names = policies.iter().map(|p| p.id.to_string()).collect();
        let mut c = Compiled {
            inventory: inv,
            policy_names,
            policies,
            identities,
            by_id,
            pod_identity,
            ip_pod,
            cidr_lpm,
            states: IdMap::default(),
            local_cluster: local,
        };
        c.resolve();
        c
    }

    /// Looks an identity up by number.
    pub fn identity(&self, id: NumericIdentity) -> Option<&Identity> {
        self.by_id.get(&id).map(|&i| &self.identities[i])
    }

    /// The pod owning an address.
    pub fn pod_by_ip(&self, ip: &IpAddr) -> Option<usize> {
        self.ip_pod.get(ip).copied()
    }

    /// The identity of an address: its pod's, else the longest policy
    /// prefix's CIDR identity, else world for its family (what the ipcache
    /// answers, as in a dual-stack Cilium).
    pub fn identity_of_ip(&self, ip: IpAddr) -> NumericIdentity {
        if let Some(&p) = self.ip_pod.get(&ip) {
            return self.pod_identity[p];
        }
        match self.cidr_lpm.lookup(ip) {
            Some((_, id)) => id,
            None if ip.is_ipv4() => WORLD_IPV4,
            None => WORLD_IPV6,
        }
    }

    /// Whether a policy subject selects an identity.
    pub fn subject_matches(&self, subject: &Subject, ident: &Identity) -> bool {
        if !ident.is_pods_of(&self.local_cluster) {
            return false;
        }
        match subject {
            Subject::Pods {
                namespace,
                selector,
            } => {
                matches!(&ident.kind, IdentityKind::Pods { namespace: ns, .. } if ns == namespace)
                    && selector.matches(&ident.pod_labels)
            }
            Subject::Endpoints(sel) => sel.matches(ident),
            Subject::Nodes(_) => false,
        }
    }

    /// The identities a peer selects (before `fromRequires`; `Entity::All` selects through the wildcard and returns nothing here).
    pub fn peer_identities(&self, peer: &Peer) -> Vec<NumericIdentity> {
        let local = self.local_cluster.as_str();
        self.identities
            .iter()
            .filter(|x| match peer {
                Peer::K8sPods {
                    pods,
                    namespaces,
                    policy_namespace,
                } => {
                    let IdentityKind::Pods { cluster, namespace } = &x.kind else {
                        return false;
                    };
                    cluster == local
                        && match namespaces {
                            None => namespace == policy_namespace,
                            Some(s) => s.matches(&x.namespace_labels),
                        }
                        && pods.as_ref().is_none_or(|s| s.matches(&x.pod_labels))
                }
                Peer::IpBlock(set) => match &x.kind {
                    IdentityKind::Cidr { prefix } => set.contains_prefix(prefix),
                    IdentityKind::Pods { .. } => {
                        x.ip_class.is_some_and(|c| set.contains_prefix(&c))
                    }
                    IdentityKind::Reserved { .. } => false,
                },
                Peer::Cidr(set) => {
                    matches!(&x.kind, IdentityKind::Cidr { prefix } if set.contains_prefix(prefix))
                }
                Peer::Endpoints(sel) => sel.matches(*x),
                Peer::Unresolved { scope, .. } => match scope {
                    UnresolvedScope::World => x.is_world(),
                    UnresolvedScope::Nodes => x.id == HOST || x.id == REMOTE_NODE,
                    UnresolvedScope::Any => true,
                },
                Peer::Entity(e) => match e {
                    Entity::World => x.is_world(),
                    Entity::WorldIpv4 => x.has_reserved("world-ipv4"),
                    Entity::WorldIpv6 => x.has_reserved("world-ipv6"),
                    Entity::Cluster => {
                        x.is_pods_of(local)
                            || [
                                HOST,
                                UNMANAGED,
                                HEALTH,
                                INIT,
                                REMOTE_NODE,
                                KUBE_APISERVER,
                                INGRESS,
                            ]
                            .contains(&x.id)
                    }
                    Entity::Host => x.id == HOST,
                    Entity::RemoteNode => x.id == REMOTE_NODE,
                    Entity::KubeApiserver => x.id == KUBE_APISERVER,
                    Entity::Init => x.id == INIT,
                    Entity::Health => x.id == HEALTH,
                    Entity::Unmanaged => x.id == UNMANAGED,
                    Entity::Ingress => x.id == INGRESS,
                    Entity::All | Entity::None => false,
                },
            })
            .map(|x| x.id)
            .collect()
    }

    fn resolve(&mut self) {
        // Selector cache: identities per peer, computed once.
        type PeerSets = Vec<Vec<(bool, Option<Arc<str>>, Vec<NumericIdentity>)>>;
        let mut cache: HashMap<(usize, Direction, bool, usize), PeerSets> = HashMap::new();
        for (pi, p) in self.policies.iter().enumerate() {
            for d in [Direction::Ingress, Direction::Egress] {
                let dp = p.dir(d);
                for (deny, rules) in [(false, &dp.allow), (true, &dp.deny)] {
                    for (ri, r) in rules.iter().enumerate() {
                        let sets: PeerSets = match &r.peers {
                            Peers::All => vec![vec![(false, None, vec![WILDCARD])]],
                            Peers::Some(peers) => vec![peers
                                .iter()
                                .map(|peer| match peer {
                                    Peer::Entity(Entity::All) => (false, None, vec![WILDCARD]),
                                    Peer::Unresolved {
                                        field,
                                        scope: UnresolvedScope::Any,
                                    } => (false, Some(Arc::from(field.as_str())), vec![WILDCARD]),
                                    Peer::Unresolved { field, .. } => (
                                        false,
                                        Some(Arc::from(field.as_str())),
                                        self.peer_identities(peer),
                                    ),
                                    Peer::Endpoints(_) => (true, None, self.peer_identities(peer)),
                                    _ => (false, None, self.peer_identities(peer)),
                                })
                                .collect()],
                        };
                        cache.insert((pi, d, deny, ri), sets);
                    }
                }
            }
        }
        let subjects: Vec<usize> = (0..self.identities.len())
            .filter(|&i| self.identities[i].is_pods_of(&self.local_cluster))
            .collect();
        let mut states = IdMap::default();
        for si in subjects {
            let subj = &self.identities[si];
            let selecting: Vec<usize> = (0..self.policies.len())
                .filter(|&pi| self.subject_matches(&self.policies[pi].subject, subj))
                .collect();
            if selecting.is_empty() {
                continue;
            }
            let mut state = EndpointState::default();
            for d in [Direction::Ingress, Direction::Egress] {
                let mut ds = DirState {
                    selected_by: selecting.clone(),
                    ..DirState::default()
                };
                let requires: Vec<&super::selector::Selector> = selecting
                    .iter()
                    .flat_map(|&pi| self.policies[pi].dir(d).requires.iter())
                    .collect();
                for &pi in &selecting {
                    let dp = self.policies[pi].dir(d);
                    if dp.isolates {
                        ds.isolated_by.push(pi);
                    }
                    for (deny, rules) in [(false, &dp.allow), (true, &dp.deny)] {
                        for (ri, r) in rules.iter().enumerate() {
                            let sets = &cache[&(pi, d, deny, ri)][0];
                            // Resolved peers, and per unresolved field its own.
                            let mut groups: BTreeMap<Option<Arc<str>>, BTreeSet<NumericIdentity>> =
                                BTreeMap::new();
                            for (is_ep, unresolved, ids) in sets {
                                let rule_ne: Option<Arc<str>> =
                                    r.not_evaluable.as_deref().map(Arc::from);
                                let key = unresolved.clone().or(rule_ne);
                                let peers = groups.entry(key).or_default();
                                for &id in ids {
                                    if *is_ep && !requires.is_empty() {
                                        let Some(x) = self.identity(id) else { continue };
                                        if !requires.iter().all(|s| s.matches(x)) {
                                            continue;
                                        }
                                    }
                                    peers.insert(id);
                                }
                            }
                            if groups.is_empty()
                                && matches!(&r.peers, Peers::Some(v) if v.is_empty())
                            {
                                continue;
                            }
                            let origin = RuleRef {
                                policy: pi,
                                direction: d,
                                deny,
                                index: r.index,
                            };
                            for (ne, mut peers) in groups {
                                if peers.contains(&WILDCARD) {
                                    peers = BTreeSet::from([WILDCARD]);
                                }
                                self.emit(&mut ds, subj, d, &peers, &r.ports, deny, ne, origin);
                            }
                        }
                    }
                }
                match d {
                    Direction::Ingress => state.ingress = ds,
                    Direction::Egress => state.egress = ds,
                }
            }
            states.insert(subj.id, state);
        }
        self.states = states;
    }

    #[allow(clippy::too_many_arguments)]
    fn emit(
        &self,
        ds: &mut DirState,
        subj: &Identity,
        d: Direction,
        peers: &BTreeSet<NumericIdentity>,
        ports: &Ports,
        deny: bool,
        not_evaluable: Option<Arc<str>>,
        origin: RuleRef,
    ) {
        let mut push =
            |peer: NumericIdentity, proto: Proto, lo: u16, hi: u16, l7: &Option<Arc<L7Rules>>| {
                ds.entries.entry((peer, proto)).or_default().push(Entry {
                    lo,
                    hi,
                    deny,
                    l7: l7.clone(),
                    not_evaluable: not_evaluable.clone(),
                    origin,
                });
            };
        let sels: Vec<PortSel> = match ports {
            Ports::All => vec![PortSel {
                proto: Proto::Any,
                port: PortSpec::Range(0, 65535),
                l7: None,
            }],
            Ports::Some(v) => v.clone(),
        };
        for sel in &sels {
            match &sel.port {
                PortSpec::Range(lo, hi) => {
                    for &peer in peers {
                        push(peer, sel.proto, *lo, *hi, &sel.l7);
                    }
                }
                PortSpec::Named(name) => {
                    let resolve = |owner: &Identity| -> Vec<(Proto, u16)> {
                        owner
                            .named_ports
                            .iter()
                            .filter(|np| &np.name == name && sel.proto.covers(np.proto))
                            .map(|np| (np.proto, np.port))
                            .collect()
                    };
                    match d {
                        // Ingress: the selected pod is the destination.
                        Direction::Ingress => {
                            for (proto, port) in resolve(subj) {
                                for &peer in peers {
                                    push(peer, proto, port, port, &sel.l7);
                                }
                            }
                        }
                        // Egress: resolved on each destination pod.
                        Direction::Egress => {
                            let targets: Vec<&Identity> = if peers.contains(&WILDCARD) {
                                self.identities
                                    .iter()
                                    .filter(|x| matches!(x.kind, IdentityKind::Pods { .. }))
                                    .collect()
                            } else {
                                peers.iter().filter_map(|&p| self.identity(p)).collect()
                            };
                            for t in targets {
                                for (proto, port) in resolve(t) {
                                    push(t.id, proto, port, port, &sel.l7);
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// The logical map state of an identity (what a datapath loads): every
    /// (direction, peer, protocol, range) with its verdict. Deny wins over
    /// allow on an identical key; an allow without L7 wins over one with L7.
    pub fn map_state(&self, id: NumericIdentity) -> BTreeMap<PolicyKey, Verdict> {
        let mut out = BTreeMap::new();
        let Some(state) = self.states.get(&id) else {
            return out;
        };
        for d in [Direction::Ingress, Direction::Egress] {
            for (&(peer, proto), entries) in &state.dir(d).entries {
                for e in entries {
                    let key = PolicyKey {
                        direction: d,
                        peer,
                        proto,
                        lo: e.lo,
                        hi: e.hi,
                    };
                    if e.not_evaluable.is_some() && !e.deny {
                        // Never an allow: what it might allow stays denied.
                        continue;
                    }
                    let v = if e.deny {
                        Verdict::Deny
                    } else if e.l7.is_some() {
                        Verdict::AllowL7
                    } else {
                        Verdict::Allow
                    };
                    out.entry(key)
                        .and_modify(|old: &mut Verdict| *old = (*old).min(v))
                        .or_insert(v);
                }
            }
        }
        out
    }

    /// Whether the identity is isolated in a direction.
    pub fn is_isolated(&self, id: NumericIdentity, d: Direction) -> bool {
        self.states
            .get(&id)
            .is_some_and(|s| !s.dir(d).isolated_by.is_empty())
    }

    /// Pod identities of the local cluster (the endpoints policies apply to).
    pub fn local_pod_identities(&self) -> impl Iterator<Item = &Identity> {
        self.identities
            .iter()
            .filter(|x| x.is_pods_of(&self.local_cluster))
    }

    /// Number of pod identities.
    pub fn pod_identity_count(&self) -> usize {
        self.identities
            .iter()
            .filter(|x| matches!(x.kind, IdentityKind::Pods { .. }))
            .count()
    }
}
