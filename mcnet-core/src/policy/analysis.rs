//! Reachability matrix, policy diff and lint, all computed on identities
//! rather than pods.

use crate::diag::Code;
use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::Serialize;

use super::compile::{Compiled, Entry, IdentityKind, NumericIdentity, RuleRef, WILDCARD};
use super::eval::Decision;
use super::model::*;
use crate::diag::Diagnostic;

/// A port to put in a matrix (`8080`, `53/UDP`; for ICMP, the type: `8/ICMP`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct PortProto {
    /// Port, or the ICMP type.
    pub port: u16,
    /// Protocol.
    pub proto: Proto,
}

impl std::fmt::Display for PortProto {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.port, self.proto)
    }
}

impl std::str::FromStr for PortProto {
    type Err = PortProtoError;
    fn from_str(s: &str) -> Result<Self, PortProtoError> {
        let (p, proto) = s.split_once('/').unwrap_or((s, "TCP"));
        let bad = || PortProtoError(s.to_string());
        let port = p.parse::<u16>().map_err(|_| bad())?;
        let proto = Proto::parse(proto)
            .filter(|p| *p != Proto::Any)
            .ok_or_else(bad)?;
        if proto.is_icmp() && port > 255 {
            return Err(bad());
        }
        Ok(PortProto { port, proto })
    }
}

/// A matrix port that does not parse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("`{0}`: expected PORT or PORT/PROTOCOL (TCP, UDP, SCTP; ICMP or ICMPv6 with a type 0–255)")]
pub struct PortProtoError(pub String);

/// The ports the policies talk about: every numeric port (a range's first
/// port) and every named port resolved on the pods.
pub fn policy_ports(c: &Compiled) -> Vec<PortProto> {
    let mut out = BTreeSet::new();
    for state in c.states.values() {
        for d in [Direction::Ingress, Direction::Egress] {
            for (&(_, proto), entries) in &state.dir(d).entries {
                for e in entries {
                    if e.hi == 65535 && e.lo <= 1 {
                        continue;
                    }
                    if proto.is_icmp() {
                        out.insert(PortProto { port: e.lo, proto });
                        continue;
                    }
                    for p in [Proto::Tcp, Proto::Udp, Proto::Sctp] {
                        if proto.covers(p) && (proto != Proto::Any || p == Proto::Tcp) {
                            out.insert(PortProto {
                                port: e.lo,
                                proto: p,
                            });
                        }
                    }
                }
            }
        }
    }
    out.into_iter().collect()
}

/// The reachability matrix, held per identity pair.
#[derive(Clone, Debug, Serialize)]
pub struct Matrix {
    /// Columns.
    pub ports: Vec<PortProto>,
    /// Distinct identities among the pods.
    pub identities: Vec<NumericIdentity>,
    /// `allowed[port][src * n + dst]`.
    #[serde(skip)]
    pub allowed: Vec<Vec<bool>>,
    /// Identity index of each pod.
    #[serde(skip)]
    pub pod_index: Vec<usize>,
    /// Pod names, in inventory order.
    pub pods: Vec<String>,
}

impl Matrix {
    /// Computes the matrix: |identities|² × |ports| evaluations, whatever the pod count.
    pub fn compute(c: &Compiled, ports: &[PortProto]) -> Matrix {
        let mut index: HashMap<NumericIdentity, usize> = HashMap::new();
        let mut identities = Vec::new();
        let pod_index: Vec<usize> = c
            .pod_identity
            .iter()
            .map(|&id| {
                *index.entry(id).or_insert_with(|| {
                    identities.push(id);
                    identities.len() - 1
                })
            })
            .collect();
        let n = identities.len();
        let allowed = ports
            .iter()
            .map(|pp| {
                let mut v = vec![false; n * n];
                for (i, &a) in identities.iter().enumerate() {
                    for (j, &b) in identities.iter().enumerate() {
                        v[i * n + j] = c.verdict(a, b, pp.port, pp.proto) == Decision::Allow;
                    }
                }
                v
            })
            .collect();
        Matrix {
            ports: ports.to_vec(),
            identities,
            allowed,
            pod_index,
            pods: c.inventory.pods.iter().map(Pod::key).collect(),
        }
    }

    /// Whether pod `a` may reach pod `b` on port column `p`.
    pub fn allowed(&self, p: usize, a: usize, b: usize) -> bool {
        let n = self.identities.len();
        self.allowed[p][self.pod_index[a] * n + self.pod_index[b]]
    }

    /// Number of allowed pod pairs per port, weighted from the identity matrix.
    pub fn allowed_pairs(&self) -> Vec<u64> {
        let n = self.identities.len();
        let mut count = vec![0u64; n];
        for &i in &self.pod_index {
            count[i] += 1;
        }
        self.allowed
            .iter()
            .map(|v| {
                let mut total = 0;
                for i in 0..n {
                    for j in 0..n {
                        if v[i * n + j] {
                            total += count[i] * count[j];
                        }
                    }
                }
                total
            })
            .collect()
    }
}

/// A connection whose verdict changed.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Change {
    /// Source pod.
    pub from: String,
    /// Destination pod.
    pub to: String,
    /// Port.
    pub port: u16,
    /// Protocol.
    pub protocol: Proto,
}

/// What a policy change opens and closes.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Diff {
    /// Ports compared.
    pub ports: Vec<PortProto>,
    /// Denied before, allowed after.
    pub opened: Vec<Change>,
    /// Allowed before, denied after.
    pub closed: Vec<Change>,
}

/// Compares two compilations of the same inventory (pods are matched by name).
pub fn diff(old: &Compiled, new: &Compiled, ports: &[PortProto]) -> Diff {
    // Group pods by their (old, new) identity pair, evaluate per class pair.
    let mut classes: BTreeMap<(NumericIdentity, NumericIdentity), Vec<String>> = BTreeMap::new();
    for (i, p) in new.inventory.pods.iter().enumerate() {
        let Some(oi) = old.inventory.pod(&p.key()) else {
            continue;
        };
        classes
            .entry((old.pod_identity[oi], new.pod_identity[i]))
            .or_default()
            .push(p.key());
    }
    let classes: Vec<_> = classes.into_iter().collect();
    let mut out = Diff {
        ports: ports.to_vec(),
        ..Diff::default()
    };
    for pp in ports {
        for ((os, ns), src_pods) in &classes {
            for ((od, nd), dst_pods) in &classes {
                let before = old.verdict(*os, *od, pp.port, pp.proto);
                let after = new.verdict(*ns, *nd, pp.port, pp.proto);
                // Not evaluable is not allowed: only allow ⇄ not-allow is a change.
                if before.is_allow() == after.is_allow() {
                    continue;
                }
                let list = if after.is_allow() {
                    &mut out.opened
                } else {
                    &mut out.closed
                };
                for a in src_pods {
                    for b in dst_pods {
                        list.push(Change {
                            from: a.clone(),
                            to: b.clone(),
                            port: pp.port,
                            protocol: pp.proto,
                        });
                    }
                }
            }
        }
    }
    out.opened.sort();
    out.closed.sort();
    out
}

/// The label marking a platform namespace (an ingress controller, the mesh's
/// control plane) that application zero-trust rules do not cover.
pub const PLATFORM_LABEL: &str = "mcnet.io/platform";

/// `kube-*` namespaces, and those labelled `mcnet.io/platform=true`.
fn is_system_namespace(ns: &super::model::Namespace) -> bool {
    ns.name.starts_with("kube-")
        || ns.labels.get(PLATFORM_LABEL).map(String::as_str) == Some("true")
}

fn covers_world(peer: &Peer) -> bool {
    match peer {
        Peer::Entity(Entity::World | Entity::WorldIpv4 | Entity::WorldIpv6 | Entity::All) => true,
        Peer::IpBlock(s) | Peer::Cidr(s) => s.cidr.prefix_len() == 0 && s.except.is_empty(),
        _ => false,
    }
}

/// Lints a compiled policy set. Every finding is a warning with a stable code:
/// `lint.no-default-deny`, `lint.allow-all`, `lint.world-open`,
/// `lint.selects-nothing`, `lint.peer-selects-nothing`, `lint.shadowed`.
pub fn lint(c: &Compiled) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    // Namespaces without default deny, per direction.
    for ns in c
        .inventory
        .namespaces
        .values()
        .filter(|n| !is_system_namespace(n))
        .map(|n| &n.name)
    {
        for d in [Direction::Ingress, Direction::Egress] {
            let covered = c.policies.iter().any(|p| {
                let all_of_ns = match &p.subject {
                    Subject::Pods {
                        namespace,
                        selector,
                    } => namespace == ns && selector.is_empty(),
                    Subject::Endpoints(sel) => {
                        sel.reqs.iter().all(|r| {
                            r.key.name == NAMESPACE_LABEL
                                && r.op == super::selector::Op::In(vec![ns.clone()])
                        }) || sel.is_empty()
                    }
                    Subject::Nodes(_) => false,
                };
                let dp = p.dir(d);
                all_of_ns && dp.isolates
            });
            if !covered {
                out.push(Diagnostic::new(
                    Code::LintNoDefaultDeny,
                    format!("namespace/{ns}"),
                    format!("namespace `{ns}` has no default-deny {d} policy (a policy selecting every pod with {d} isolation); zero trust needs one"),
                ));
            }
        }
    }
    for p in &c.policies {
        let subject_count = c
            .local_pod_identities()
            .filter(|x| c.subject_matches(&p.subject, x))
            .count();
        if subject_count == 0 {
            out.push(Diagnostic::new(
                Code::LintSelectsNothing,
                p.id.to_string(),
                format!("{} selects no pod", p.id),
            ));
        }
        for d in [Direction::Ingress, Direction::Egress] {
            let dp = p.dir(d);
            for r in &dp.allow {
                let name = format!("{} {} rule {}", p.id, p.section(d, false), r.index);
                let world = match &r.peers {
                    Peers::All => true,
                    Peers::Some(v) => v.iter().any(covers_world),
                };
                let all_peers = matches!(r.peers, Peers::All)
                    || matches!(&r.peers, Peers::Some(v) if v.contains(&Peer::Entity(Entity::All)));
                if all_peers && matches!(r.ports, Ports::All) {
                    out.push(Diagnostic::new(
                        Code::LintAllowAll,
                        name.clone(),
                        format!("{name} allows every peer on every port"),
                    ));
                } else if world && !p.lint_allow.iter().any(|a| a == "world-open") {
                    out.push(Diagnostic::new(
                        Code::LintWorldOpen,
                        name.clone(),
                        format!("{name} is open to the world (addresses outside the cluster)"),
                    ));
                }
                if let Peers::Some(peers) = &r.peers {
                    for (i, peer) in peers.iter().enumerate() {
                        if matches!(peer, Peer::K8sPods { .. } | Peer::Endpoints(_))
                            && c.peer_identities(peer).is_empty()
                        {
                            out.push(Diagnostic::new(
                                Code::LintPeerSelectsNothing,
                                format!("{name} peer {i}"),
                                format!("{name}: peer {i} matches no pod in the inventory"),
                            ));
                        }
                    }
                }
            }
        }
    }
    out.extend(shadowed(c));
    out
}

type Keyed<'a> = ((NumericIdentity, Proto), &'a Entry);

fn covers(
    f: &Entry,
    fkey: (NumericIdentity, Proto),
    e: &Entry,
    ekey: (NumericIdentity, Proto),
) -> bool {
    (fkey.0 == WILDCARD || fkey.0 == ekey.0)
        && fkey.1.covers(ekey.1)
        && f.lo <= e.lo
        && e.hi <= f.hi
        && f.not_evaluable.is_none()
        && (f.deny || (f.l7.is_none() || e.l7.is_some() && f.l7 == e.l7))
}

/// Allow rules all of whose entries, on every pod they apply to, are covered
/// by an earlier rule (or a deny).
fn shadowed(c: &Compiled) -> Vec<Diagnostic> {
    // For each rule: (applies anywhere, shadowed everywhere, by whom).
    let mut seen: BTreeMap<RuleRef, (bool, Option<RuleRef>)> = BTreeMap::new();
    let mut subjects: Vec<_> = c.states.iter().collect();
    subjects.sort_by_key(|(id, _)| **id);
    for (_, state) in subjects {
        for d in [Direction::Ingress, Direction::Egress] {
            let all: Vec<((NumericIdentity, Proto), &Entry)> = state
                .dir(d)
                .entries
                .iter()
                .flat_map(|(k, v)| v.iter().map(move |e| (*k, e)))
                .collect();
            let mut by_rule: BTreeMap<RuleRef, Vec<Keyed<'_>>> = BTreeMap::new();
            for (k, e) in &all {
                if !e.deny {
                    by_rule.entry(e.origin).or_default().push((*k, e));
                }
            }
            for (rule, entries) in by_rule {
                let mut by = None;
                let all_covered = entries.iter().all(|(ek, e)| {
                    all.iter().any(|(fk, f)| {
                        let earlier = f.deny || f.origin < rule;
                        let ok = f.origin != rule && earlier && covers(f, *fk, e, *ek);
                        if ok && by.is_none() {
                            by = Some(f.origin);
                        }
                        ok
                    })
                });
                let slot = seen.entry(rule).or_insert((true, by));
                if !all_covered {
                    slot.0 = false;
                }
            }
        }
    }
    seen.into_iter()
        .filter(|(_, (sh, by))| *sh && by.is_some())
        .map(|(r, (_, by))| {
            let p = &c.policies[r.policy];
            let name = format!(
                "{} {} rule {}",
                p.id,
                p.section(r.direction, false),
                r.index
            );
            let by = by.map(|b| {
                let q = &c.policies[b.policy];
                format!(
                    "{} {} rule {}",
                    q.id,
                    q.section(b.direction, b.deny),
                    b.index
                )
            });
            Diagnostic::new(
                Code::LintShadowed,
                name.clone(),
                format!(
                    "{name} is shadowed: {} already covers everything it allows",
                    by.unwrap_or_default()
                ),
            )
        })
        .collect()
}

/// Counts of what compilation produced, for people and benchmarks.
#[derive(Clone, Debug, Serialize)]
pub struct Stats {
    /// Pods.
    pub pods: usize,
    /// Pod identities.
    pub pod_identities: usize,
    /// CIDR identities.
    pub cidr_identities: usize,
    /// Policies.
    pub policies: usize,
    /// Map-state entries over all identities.
    pub entries: usize,
}

/// Computes [`Stats`].
pub fn stats(c: &Compiled) -> Stats {
    Stats {
        pods: c.inventory.pods.len(),
        pod_identities: c.pod_identity_count(),
        cidr_identities: c
            .identities
            .iter()
            .filter(|x| matches!(x.kind, IdentityKind::Cidr { .. }))
            .count(),
        policies: c.policies.len(),
        entries: c
            .states
            .values()
            .map(|s| {
                [&s.ingress, &s.egress]
                    .iter()
                    .map(|d| d.entries.values().map(Vec::len).sum::<usize>())
                    .sum::<usize>()
            })
            .sum(),
    }
}
