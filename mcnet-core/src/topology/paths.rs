//! Path analysis: which networks and clusters reach which, over which path,
//! and what is lost when components fail.
//!
//! The model follows how the clouds route:
//! - a peering connects exactly its two networks and is not transitive;
//! - a transit gateway connects every network attached to it;
//! - a Megaport Cloud Router routes between its VXCs, so two networks reach
//!   each other through a router when each is behind a different VXC on it;
//! - networks behind the same VXC (one Direct Connect gateway, say) do not
//!   reach each other through it, as the clouds forbid that hairpin;
//! - a cluster reaches what its home network reaches.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::model::Topology;

/// A component that can fail.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "kind", content = "name", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Component {
    /// A Megaport Cloud Router.
    Router(String),
    /// A VXC.
    Vxc(String),
    /// A peering.
    Peering(String),
    /// An AWS transit gateway.
    TransitGateway(String),
    /// An internet VPN backup.
    Vpn(String),
}

impl Component {
    /// The component's name.
    pub fn name(&self) -> &str {
        match self {
            Component::Router(n)
            | Component::Vxc(n)
            | Component::Peering(n)
            | Component::TransitGateway(n)
            | Component::Vpn(n) => n,
        }
    }

    /// Resolves `name` or `kind/name` (kind: `mcr`, `router`, `vxc`,
    /// `peering`, `tgw`, `vpn`) against a topology.
    pub fn resolve(t: &Topology, spec: &str) -> Result<Component, ComponentError> {
        let (kind, name) = match spec.split_once('/') {
            Some((k, n)) => (Some(k), n),
            None => (None, spec),
        };
        let mut found = Vec::new();
        let want = |k: &str| kind.is_none() || kind == Some(k);
        if (want("mcr") || want("router"))
            && t.spec.interconnect.routers.iter().any(|r| r.name == name)
        {
            found.push(Component::Router(name.to_string()));
        }
        if want("vxc") && t.spec.interconnect.vxcs.iter().any(|v| v.name == name) {
            found.push(Component::Vxc(name.to_string()));
        }
        if want("peering") && t.spec.peerings.iter().any(|p| p.name == name) {
            found.push(Component::Peering(name.to_string()));
        }
        if want("tgw") && t.spec.transit_gateways.iter().any(|g| g.name == name) {
            found.push(Component::TransitGateway(name.to_string()));
        }
        if want("vpn") && t.spec.vpn_backups.iter().any(|v| v.name == name) {
            found.push(Component::Vpn(name.to_string()));
        }
        if let Some(k) = kind {
            if !["mcr", "router", "vxc", "peering", "tgw", "vpn"].contains(&k) {
                return Err(ComponentError::UnknownKind {
                    kind: k.to_string(),
                    spec: spec.to_string(),
                });
            }
        }
        match found.len() {
            1 => Ok(found.remove(0)),
            0 => {
                let mut known: Vec<String> = t
                    .spec
                    .interconnect
                    .routers
                    .iter()
                    .map(|r| format!("mcr/{}", r.name))
                    .chain(
                        t.spec
                            .interconnect
                            .vxcs
                            .iter()
                            .map(|v| format!("vxc/{}", v.name)),
                    )
                    .chain(
                        t.spec
                            .peerings
                            .iter()
                            .map(|p| format!("peering/{}", p.name)),
                    )
                    .chain(
                        t.spec
                            .transit_gateways
                            .iter()
                            .map(|g| format!("tgw/{}", g.name)),
                    )
                    .chain(t.spec.vpn_backups.iter().map(|v| format!("vpn/{}", v.name)))
                    .collect();
                known.sort();
                Err(ComponentError::NotFound {
                    spec: spec.to_string(),
                    topology: t.metadata.name.clone(),
                    known,
                })
            }
            _ => Err(ComponentError::Ambiguous {
                spec: spec.to_string(),
                candidates: found,
            }),
        }
    }
}

impl fmt::Display for Component {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Component::Router(n) => write!(f, "mcr/{n}"),
            Component::Vxc(n) => write!(f, "vxc/{n}"),
            Component::Peering(n) => write!(f, "peering/{n}"),
            Component::TransitGateway(n) => write!(f, "tgw/{n}"),
            Component::Vpn(n) => write!(f, "vpn/{n}"),
        }
    }
}

impl FromStr for Component {
    type Err = ComponentError;
    fn from_str(s: &str) -> Result<Self, ComponentError> {
        match s.split_once('/') {
            Some(("mcr" | "router", n)) => Ok(Component::Router(n.into())),
            Some(("vxc", n)) => Ok(Component::Vxc(n.into())),
            Some(("peering", n)) => Ok(Component::Peering(n.into())),
            Some(("tgw", n)) => Ok(Component::TransitGateway(n.into())),
            Some(("vpn", n)) => Ok(Component::Vpn(n.into())),
            _ => Err(ComponentError::Malformed {
                spec: s.to_string(),
            }),
        }
    }
}

/// Why a component name does not resolve.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ComponentError {
    /// Not `kind/name` with a known kind.
    #[error("`{spec}` is not kind/name with kind mcr, vxc, peering, tgw or vpn")]
    Malformed {
        /// What was given.
        spec: String,
    },
    /// A kind that is not a component kind.
    #[error("component kind `{kind}` in `{spec}` is not one of mcr, vxc, peering, tgw, vpn")]
    UnknownKind {
        /// The kind.
        kind: String,
        /// What was given.
        spec: String,
    },
    /// No component has the name.
    #[error("no component named `{spec}` in topology `{topology}`; known: {}", if known.is_empty() { "none".to_string() } else { known.join(", ") })]
    NotFound {
        /// What was given.
        spec: String,
        /// The topology.
        topology: String,
        /// Every component, as `kind/name`.
        known: Vec<String>,
    },
    /// Several components have the name.
    #[error("`{spec}` is ambiguous; say {}", candidates.iter().map(|c| c.to_string()).collect::<Vec<_>>().join(" or "))]
    Ambiguous {
        /// What was given.
        spec: String,
        /// The components it could be.
        candidates: Vec<Component>,
    },
}

/// One way from one network to another.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Path {
    /// `peering`, `transit-gateway`, `interconnect` or `internet-vpn`.
    pub via: String,
    /// The components traversed, in order.
    pub hops: Vec<Component>,
}

impl Path {
    fn uses_any(&self, failed: &HashSet<Component>) -> bool {
        self.hops.iter().any(|h| failed.contains(h))
    }

    /// Route preference, lower first: a peering or transit route is more
    /// specific than BGP's; the interconnect's BGP routes are preferred to
    /// the VPN's (its tunnels advertise with a longer AS path), so the VPN
    /// carries traffic only when the interconnect path is gone.
    pub fn preference(&self) -> u8 {
        match self.via.as_str() {
            "peering" => 0,
            "transit-gateway" => 1,
            "interconnect" => 2,
            _ => 3,
        }
    }

    /// A round-trip estimate between networks in one metro (as the ADR's
    /// us-east-1, eastus and us-east4 are, all in northern Virginia), in
    /// milliseconds: a peering or transit gateway stays in the cloud's
    /// backbone (1 ms), the interconnect adds the two cloud-to-MCR legs at
    /// the Megaport location (2 ms), an internet VPN crosses the public
    /// internet with IPsec at both ends (8 ms). Measure the real figure with
    /// `mcnet probe`.
    pub fn estimated_rtt_ms(&self) -> u32 {
        match self.via.as_str() {
            "peering" | "transit-gateway" => 1,
            "interconnect" => 2,
            _ => 8,
        }
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hops: Vec<String> = self.hops.iter().map(|h| h.to_string()).collect();
        write!(f, "{}: {}", self.via, hops.join(" → "))
    }
}

/// A fast index of what connects to what, built once per topology.
#[derive(Debug)]
pub struct Connectivity<'t> {
    topology: &'t Topology,
    index: HashMap<&'t str, usize>,
    /// For each network: (router, vxc) attachments.
    attach: Vec<Vec<(usize, usize)>>,
    /// Peerings by unordered network pair.
    peers: HashMap<(usize, usize), Vec<usize>>,
    /// For each network: the transit gateways it is attached to.
    hubs: Vec<Vec<usize>>,
    /// VPN backups by unordered network pair.
    vpns: HashMap<(usize, usize), Vec<usize>>,
}

impl<'t> Connectivity<'t> {
    /// Indexes a topology. Dangling references are skipped (validation reports them).
    pub fn new(topology: &'t Topology) -> Self {
        let spec = &topology.spec;
        let index: HashMap<&str, usize> = spec
            .networks
            .iter()
            .enumerate()
            .map(|(i, n)| (n.name.as_str(), i))
            .collect();
        let routers: HashMap<&str, usize> = spec
            .interconnect
            .routers
            .iter()
            .enumerate()
            .map(|(i, r)| (r.name.as_str(), i))
            .collect();
        let mut attach = vec![Vec::new(); spec.networks.len()];
        for (vi, vxc) in spec.interconnect.vxcs.iter().enumerate() {
            let Some(&ri) = routers.get(vxc.router.as_str()) else {
                continue;
            };
            let mut seen = HashSet::new();
            for n in &vxc.target.networks {
                if let Some(&ni) = index.get(n.as_str()) {
                    if seen.insert(ni) {
                        attach[ni].push((ri, vi));
                    }
                }
            }
        }
        let mut peers: HashMap<(usize, usize), Vec<usize>> = HashMap::new();
        for (pi, p) in spec.peerings.iter().enumerate() {
            if let [a, b] = p.networks.as_slice() {
                if let (Some(&a), Some(&b)) = (index.get(a.as_str()), index.get(b.as_str())) {
                    if a != b {
                        peers.entry((a.min(b), a.max(b))).or_default().push(pi);
                    }
                }
            }
        }
        let mut hubs = vec![Vec::new(); spec.networks.len()];
        for (gi, g) in spec.transit_gateways.iter().enumerate() {
            for n in &g.networks {
                if let Some(&ni) = index.get(n.as_str()) {
                    if !hubs[ni].contains(&gi) {
                        hubs[ni].push(gi);
                    }
                }
            }
        }
        let mut vpns: HashMap<(usize, usize), Vec<usize>> = HashMap::new();
        for (vi, v) in spec.vpn_backups.iter().enumerate() {
            if let [a, b] = v.networks.as_slice() {
                if let (Some(&a), Some(&b)) = (index.get(a.as_str()), index.get(b.as_str())) {
                    if a != b {
                        vpns.entry((a.min(b), a.max(b))).or_default().push(vi);
                    }
                }
            }
        }
        Connectivity {
            topology,
            index,
            attach,
            peers,
            hubs,
            vpns,
        }
    }

    /// The index of a network by name.
    pub fn network_index(&self, name: &str) -> Option<usize> {
        self.index.get(name).copied()
    }

    /// Whether two networks (by index) can route to each other, ignoring failures.
    pub fn reachable(&self, a: usize, b: usize) -> bool {
        if a == b {
            return true;
        }
        if self.peers.contains_key(&(a.min(b), a.max(b)))
            || self.vpns.contains_key(&(a.min(b), a.max(b)))
        {
            return true;
        }
        if self.hubs[a].iter().any(|g| self.hubs[b].contains(g)) {
            return true;
        }
        let (small, large) = if self.attach[a].len() <= self.attach[b].len() {
            (&self.attach[a], &self.attach[b])
        } else {
            (&self.attach[b], &self.attach[a])
        };
        small
            .iter()
            .any(|&(r, v)| large.iter().any(|&(r2, v2)| r == r2 && v != v2))
    }

    /// Every path between two networks (by index), avoiding failed components.
    pub fn paths(&self, a: usize, b: usize, failed: &HashSet<Component>) -> Vec<Path> {
        let spec = &self.topology.spec;
        let mut out = Vec::new();
        if let Some(ps) = self.peers.get(&(a.min(b), a.max(b))) {
            for &pi in ps {
                out.push(Path {
                    via: "peering".into(),
                    hops: vec![Component::Peering(spec.peerings[pi].name.clone())],
                });
            }
        }
        for g in self.hubs[a].iter().filter(|g| self.hubs[b].contains(g)) {
            out.push(Path {
                via: "transit-gateway".into(),
                hops: vec![Component::TransitGateway(
                    spec.transit_gateways[*g].name.clone(),
                )],
            });
        }
        for &(ra, va) in &self.attach[a] {
            for &(rb, vb) in &self.attach[b] {
                if ra == rb && va != vb {
                    out.push(Path {
                        via: "interconnect".into(),
                        hops: vec![
                            Component::Vxc(spec.interconnect.vxcs[va].name.clone()),
                            Component::Router(spec.interconnect.routers[ra].name.clone()),
                            Component::Vxc(spec.interconnect.vxcs[vb].name.clone()),
                        ],
                    });
                }
            }
        }
        if let Some(vs) = self.vpns.get(&(a.min(b), a.max(b))) {
            for &vi in vs {
                out.push(Path {
                    via: "internet-vpn".into(),
                    hops: vec![Component::Vpn(spec.vpn_backups[vi].name.clone())],
                });
            }
        }
        out.retain(|p| !p.uses_any(failed));
        out.sort_by(|x, y| x.preference().cmp(&y.preference()).then_with(|| x.cmp(y)));
        out
    }

    /// Whether a VPN backup joins two networks (by index).
    pub fn vpn_between(&self, a: usize, b: usize) -> bool {
        self.vpns.contains_key(&(a.min(b), a.max(b)))
    }

    /// The number of VXCs a network (by index) is attached through.
    pub fn vxc_count(&self, n: usize) -> usize {
        self.attach[n].len()
    }

    /// The set of routers a network (by index) is attached to.
    pub fn routers_of(&self, n: usize) -> BTreeSet<usize> {
        self.attach[n].iter().map(|&(r, _)| r).collect()
    }

    /// Whether two networks are directly peered.
    pub fn peered(&self, a: usize, b: usize) -> bool {
        self.peers.contains_key(&(a.min(b), a.max(b)))
    }
}

/// Reachability between two endpoints (networks or clusters).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reach {
    /// One side.
    pub from: String,
    /// The other side.
    pub to: String,
    /// Whether any path survives.
    pub reachable: bool,
    /// The surviving paths (for clusters: between their home networks;
    /// empty with `reachable` when both share one network).
    pub paths: Vec<Path>,
    /// Paths that existed before the failure and are gone now.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub lost: Vec<Path>,
    /// The path traffic takes now (the most preferred survivor), and its
    /// estimated round trip ([`Path::estimated_rtt_ms`]).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub active: Option<ActivePath>,
    /// The path traffic took before the failure, when it has moved.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub moved_from: Option<ActivePath>,
}

/// The path a pair's traffic takes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivePath {
    /// The path.
    pub path: Path,
    /// Its estimated round trip, ms.
    pub rtt_ms: u32,
}

impl ActivePath {
    fn of(paths: &[Path]) -> Option<ActivePath> {
        paths.first().map(|p| ActivePath {
            path: p.clone(),
            rtt_ms: p.estimated_rtt_ms(),
        })
    }
}

/// The pair's active path now, and the one before if it moved.
fn active(before: &[Path], after: &[Path]) -> (Option<ActivePath>, Option<ActivePath>) {
    let (now, was) = (ActivePath::of(after), ActivePath::of(before));
    let moved = match (&now, &was) {
        (Some(n), Some(w)) if n.path != w.path => was,
        _ => None,
    };
    (now, moved)
}

/// The result of a path analysis.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PathReport {
    /// Components failed for this analysis.
    pub failed: Vec<Component>,
    /// Every unordered network pair.
    pub networks: Vec<Reach>,
    /// Every unordered cluster pair.
    pub clusters: Vec<Reach>,
    /// Network pairs that were connected and no longer are.
    pub disconnected: Vec<(String, String)>,
    /// Network pairs still connected but with fewer paths.
    pub degraded: Vec<(String, String)>,
    /// Components whose failure alone would disconnect some pair (computed
    /// on the topology with the given failures applied).
    pub single_points_of_failure: Vec<Component>,
}

/// Analyses every pair of networks and clusters with the given components failed.
pub fn analyze(t: &Topology, failed: &[Component]) -> PathReport {
    let conn = Connectivity::new(t);
    let failed_set: HashSet<Component> = failed.iter().cloned().collect();
    let none = HashSet::new();
    let nets = &t.spec.networks;
    let mut networks = Vec::new();
    let mut disconnected = Vec::new();
    let mut degraded = Vec::new();
    for a in 0..nets.len() {
        for b in a + 1..nets.len() {
            let before = conn.paths(a, b, &none);
            let after = conn.paths(a, b, &failed_set);
            let lost: Vec<Path> = before
                .iter()
                .filter(|p| !after.contains(p))
                .cloned()
                .collect();
            if !before.is_empty() && after.is_empty() {
                disconnected.push((nets[a].name.clone(), nets[b].name.clone()));
            } else if !lost.is_empty() {
                degraded.push((nets[a].name.clone(), nets[b].name.clone()));
            }
            let (active, moved_from) = active(&before, &after);
            networks.push(Reach {
                from: nets[a].name.clone(),
                to: nets[b].name.clone(),
                reachable: !after.is_empty(),
                paths: after,
                lost,
                active,
                moved_from,
            });
        }
    }
    let clusters = t.spec.clusters.as_slice();
    let mut cluster_reach = Vec::new();
    for (i, ca) in clusters.iter().enumerate() {
        for cb in &clusters[i + 1..] {
            let (Some(a), Some(b)) = (
                conn.network_index(&ca.network),
                conn.network_index(&cb.network),
            ) else {
                continue;
            };
            let (paths, lost, reachable, (active, moved_from)) = if a == b {
                (Vec::new(), Vec::new(), true, (None, None))
            } else {
                let before = conn.paths(a, b, &none);
                let after = conn.paths(a, b, &failed_set);
                let lost = before
                    .iter()
                    .filter(|p| !after.contains(p))
                    .cloned()
                    .collect();
                let r = !after.is_empty();
                let act = active(&before, &after);
                (after, lost, r, act)
            };
            cluster_reach.push(Reach {
                from: ca.name.clone(),
                to: cb.name.clone(),
                reachable,
                paths,
                lost,
                active,
                moved_from,
            });
        }
    }
    let single_points_of_failure = single_points_of_failure(t, &conn, &failed_set);
    PathReport {
        failed: failed.to_vec(),
        networks,
        clusters: cluster_reach,
        disconnected,
        degraded,
        single_points_of_failure,
    }
}

/// Components whose failure (on top of `already`) disconnects a pair that is
/// connected with `already` failed. Exhaustive; meant for human-sized topologies.
pub fn single_points_of_failure(
    t: &Topology,
    conn: &Connectivity<'_>,
    already: &HashSet<Component>,
) -> Vec<Component> {
    let candidates = t
        .spec
        .interconnect
        .routers
        .iter()
        .map(|r| Component::Router(r.name.clone()))
        .chain(
            t.spec
                .interconnect
                .vxcs
                .iter()
                .map(|v| Component::Vxc(v.name.clone())),
        )
        .chain(
            t.spec
                .peerings
                .iter()
                .map(|p| Component::Peering(p.name.clone())),
        )
        .chain(
            t.spec
                .transit_gateways
                .iter()
                .map(|g| Component::TransitGateway(g.name.clone())),
        )
        .chain(
            t.spec
                .vpn_backups
                .iter()
                .map(|v| Component::Vpn(v.name.clone())),
        )
        .filter(|c| !already.contains(c));
    let n = t.spec.networks.len();
    let mut pairs = Vec::new();
    for a in 0..n {
        for b in a + 1..n {
            let p = conn.paths(a, b, already);
            if !p.is_empty() {
                pairs.push(p);
            }
        }
    }
    candidates
        .filter(|c| {
            pairs
                .iter()
                .any(|paths| paths.iter().all(|p| p.hops.contains(c)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topo(extra: &str) -> Topology {
        let y = format!(
            "apiVersion: mcnet.io/v1alpha1\nkind: Topology\nmetadata: {{name: t}}\nspec:\n  providers: [{{name: aws, kind: aws, regions: [r]}}, {{name: az, kind: azure, regions: [r]}}]\n  networks:\n    - {{name: a, provider: aws, region: r, cidrs: [10.0.0.0/16]}}\n    - {{name: b, provider: az, region: r, cidrs: [10.1.0.0/16]}}\n    - {{name: c, provider: aws, region: r, cidrs: [10.2.0.0/16]}}\n{extra}"
        );
        super::super::parse::parse(&y).topology.unwrap()
    }

    #[test]
    fn shared_vxc_does_not_hairpin_but_peering_connects() {
        let t = topo("  interconnect:\n    routers: [{name: m, location: l, speedMbps: 10000, asn: 133937}]\n    vxcs:\n      - {name: va, router: m, rateLimitMbps: 1000, target: {kind: aws-direct-connect, networks: [a, c]}}\n      - {name: vb, router: m, rateLimitMbps: 1000, target: {kind: azure-expressroute, networks: [b]}}\n");
        let conn = Connectivity::new(&t);
        assert!(conn.reachable(0, 1));
        assert!(conn.reachable(2, 1));
        assert!(
            !conn.reachable(0, 2),
            "a and c share one VXC and no peering"
        );
        let r = analyze(&t, &[Component::Router("m".into())]);
        assert_eq!(r.disconnected.len(), 2);
        assert!(r.networks.iter().all(|p| !p.reachable));
        assert!(analyze(&t, &[])
            .single_points_of_failure
            .contains(&Component::Router("m".into())));
    }

    #[test]
    fn a_transit_gateway_is_transitive_and_can_fail() {
        let t = topo(
            "    - {name: d, provider: aws, region: r, cidrs: [10.3.0.0/16]}\n  transitGateways: [{name: hub, provider: aws, region: r, networks: [a, c, d]}]\n",
        );
        let conn = Connectivity::new(&t);
        let (a, c, d) = (0, 2, 3);
        assert!(conn.reachable(a, c) && conn.reachable(c, d) && conn.reachable(a, d));
        assert!(!conn.reachable(a, 1), "b is not attached");
        let p = conn.paths(a, d, &HashSet::new());
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].via, "transit-gateway");
        assert_eq!(p[0].to_string(), "transit-gateway: tgw/hub");
        let hub = Component::resolve(&t, "tgw/hub").unwrap();
        assert_eq!(hub, Component::TransitGateway("hub".into()));
        let r = analyze(&t, std::slice::from_ref(&hub));
        assert_eq!(r.disconnected.len(), 3, "{:?}", r.disconnected);
        assert!(analyze(&t, &[]).single_points_of_failure.contains(&hub));
    }

    #[test]
    fn resolve_component_names() {
        let t = topo("  peerings: [{name: p, kind: vpc-peering, networks: [a, c]}]\n");
        assert_eq!(
            Component::resolve(&t, "p").unwrap(),
            Component::Peering("p".into())
        );
        assert_eq!(
            Component::resolve(&t, "peering/p").unwrap(),
            Component::Peering("p".into())
        );
        assert!(Component::resolve(&t, "mcr/p")
            .unwrap_err()
            .to_string()
            .contains("no component"));
        let r = analyze(&t, &[Component::Peering("p".into())]);
        assert_eq!(r.disconnected, vec![("a".to_string(), "c".to_string())]);
    }
}
