//! The layers of a reachability proof, one function each.

use std::collections::HashSet;
use std::net::IpAddr;

use ipnet::IpNet;

use super::{holds, Hop, Layer, Model, PodRef, Proof, Query, Verdict, GATEWAY, GATEWAY_PORT};
use crate::policy::eval::{L7Request, Reason, Resolved, Side};
use crate::policy::Compiled;
use crate::topology::cidr::common_supernet;
use crate::topology::paths::{Component, Connectivity, Path};
use crate::topology::validate::advertised_prefixes;
use crate::topology::{Cluster, CniChaining, CniMode, Network, Topology, VxcTargetKind};

/// Prefixes an Azure ExpressRoute private peering accepts from the
/// customer side (standard SKU; Premium raises it to 10,000). More, and
/// Azure drops the BGP session.
pub const AZURE_ER_PRIVATE_PREFIXES: usize = 4000;
/// Prefixes a GCP Cloud Router accepts from one BGP peer; more, and it
/// resets the session.
pub const GCP_CLOUD_ROUTER_PEER_PREFIXES: usize = 5000;

/// Where a query goes.
pub(super) enum Dest {
    /// A pod, addressed directly.
    Pod(PodRef),
    /// A service's backend in the source's own cluster.
    LocalBackend(PodRef),
    /// An address outside every cluster's pods.
    Address(IpAddr),
    /// A backend of a service in another cluster, through that cluster's
    /// Linkerd gateway.
    ViaGateway {
        /// The backend pod.
        backend: PodRef,
        /// The service name.
        service: String,
    },
}

/// Why two clusters do not share identities.
pub(super) enum MeshGap {
    /// One of them is not in a ClusterMesh.
    NotMeshed,
    /// Both use the same ClusterMesh id.
    SameId(u32),
}

/// The ClusterMesh ids of two clusters that can share identities.
pub(super) fn mesh_ids(a: &Cluster, b: &Cluster) -> Result<(u32, u32), MeshGap> {
    match (&a.cluster_mesh, &b.cluster_mesh) {
        (Some(x), Some(y)) if x.id == y.id => Err(MeshGap::SameId(x.id)),
        (Some(x), Some(y)) => Ok((x.id, y.id)),
        _ => Err(MeshGap::NotMeshed),
    }
}

/// Whether two clusters are linked for multicluster services: they share
/// an application namespace (as `mcnet render` links them).
pub(super) fn linked(t: &Topology, a: &str, b: &str) -> bool {
    a != b
        && t.spec
            .namespaces
            .iter()
            .any(|n| n.clusters.iter().any(|c| c == a) && n.clusters.iter().any(|c| c == b))
}

/// The address a network's hosts (nodes, load balancers) are modelled at:
/// the tenth host of its first CIDR.
pub fn node_address(n: &Network) -> Option<IpAddr> {
    let net = n.cidrs.first()?.net()?;
    net.hosts().nth(9)
}

/// What the walk carries from layer to layer.
struct Walk<'m> {
    m: &'m Model,
    q: &'m Query,
    hops: Vec<Hop>,
}

impl Walk<'_> {
    /// Records a hop; `true` when it allows (the walk goes on).
    fn hop(&mut self, layer: Layer, allow: bool, explanation: String) -> bool {
        self.hops.push(Hop {
            layer,
            verdict: if allow { Verdict::Allow } else { Verdict::Deny },
            explanation,
        });
        allow
    }

    fn l7(&self) -> Option<L7Request<'_>> {
        self.q.http.as_ref().map(L7Request::Http)
    }
}

/// The facts about the far end that the layers share.
struct Far<'m> {
    /// The cluster of the target (the backend's, through a gateway).
    cluster: Option<&'m Cluster>,
    /// Where the first leg goes: the pod, the address, or the gateway.
    address: IpAddr,
    /// The port of the first leg.
    port: u16,
    /// The network holding `address`.
    network: Option<&'m Network>,
    /// Through a gateway: the backend and the service.
    via: Option<(&'m PodRef, &'m str)>,
    /// The pod, when addressed directly.
    pod: Option<&'m PodRef>,
    /// Whether the pod was reached as a service's local backend.
    local_backend: bool,
}

/// Walks every layer for one destination.
pub(super) fn walk(m: &Model, q: &Query, dest: Dest, shown: String) -> Proof {
    let mut w = Walk {
        m,
        q,
        hops: Vec::new(),
    };
    let done = |w: Walk<'_>| {
        let stopped_at = w
            .hops
            .iter()
            .find(|h| h.verdict == Verdict::Deny)
            .map(|h| h.layer);
        Proof {
            verdict: if stopped_at.is_some() {
                Verdict::Deny
            } else {
                Verdict::Allow
            },
            stopped_at,
            hops: w.hops,
            from: q.from.to_string(),
            to: shown.clone(),
            port: q.port,
            protocol: q.protocol,
        }
    };
    // A pod cannot block access to itself (Kubernetes NetworkPolicy), and
    // Cilium skips policy for a pod reaching itself through a service: the
    // connection never leaves the pod.
    if let Dest::Pod(p) | Dest::LocalBackend(p) = &dest {
        if *p == q.from && m.address(p).is_some() {
            for layer in Layer::ALL {
                w.hop(
                    layer,
                    true,
                    format!("{p} is the source itself: a pod cannot block access to itself, and the connection never leaves it"),
                );
            }
            return done(w);
        }
    }
    let t = &m.topology;
    let (Some(src_cluster), Some((src_addr, _))) = (t.cluster(&q.from.cluster), m.address(&q.from))
    else {
        w.hop(
            Layer::SourceEgress,
            false,
            format!("{} is not a pod of the model", q.from),
        );
        return done(w);
    };
    let network_of = |c: &Cluster| t.network(&c.network);
    let far = match &dest {
        Dest::Pod(p) | Dest::LocalBackend(p) => {
            let cluster = t.cluster(&p.cluster);
            let Some((address, _)) = m.address(p) else {
                w.hop(
                    Layer::SourceEgress,
                    false,
                    format!("{p} is not a pod of the model"),
                );
                return done(w);
            };
            Far {
                cluster,
                address,
                port: q.port,
                network: cluster.and_then(network_of),
                via: None,
                pod: Some(p),
                local_backend: matches!(dest, Dest::LocalBackend(_)),
            }
        }
        Dest::Address(ip) => Far {
            cluster: None,
            address: *ip,
            port: q.port,
            network: t.spec.networks.iter().find(|n| {
                n.cidrs
                    .iter()
                    .filter_map(|c| c.net())
                    .any(|c| holds(&c, *ip))
            }),
            via: None,
            pod: None,
            local_backend: false,
        },
        Dest::ViaGateway { backend, service } => {
            let cluster = t.cluster(&backend.cluster);
            let network = cluster.and_then(network_of);
            let Some(address) = network.and_then(node_address) else {
                w.hop(
                    Layer::Mesh,
                    false,
                    format!(
                        "cluster {} has no network address for its gateway",
                        backend.cluster
                    ),
                );
                return done(w);
            };
            Far {
                cluster,
                address,
                port: GATEWAY_PORT,
                network,
                via: Some((backend, service.as_str())),
                pod: None,
                local_backend: false,
            }
        }
    };
    let same_cluster = far.cluster.is_some_and(|c| c.name == src_cluster.name) && far.via.is_none();
    let meshed = far
        .cluster
        .is_some_and(|c| mesh_ids(src_cluster, c).is_ok());

    let leave = leave(t, src_cluster, src_addr, &far, same_cluster, meshed);
    if !source_egress(&mut w, src_addr, &far) {
        return done(w);
    }
    let leave = match leave {
        Ok(l) => {
            w.hop(Layer::ClusterCidr, true, l.words.clone());
            l
        }
        Err(why) => {
            w.hop(Layer::ClusterCidr, false, why);
            return done(w);
        }
    };
    let seen_src = leave.seen_src;
    if !cloud_route(&mut w, src_cluster, leave.routed, &far, same_cluster) {
        return done(w);
    }
    if !clustermesh(&mut w, src_cluster, seen_src, &far, same_cluster) {
        return done(w);
    }
    if !mesh(&mut w, &far) {
        return done(w);
    }
    target_ingress(&mut w, seen_src, &far, meshed || same_cluster);
    done(w)
}

/// One policy side in words.
fn side_words(side: &Side, what: &str, l7_given: bool) -> String {
    let pod = side.pod.as_deref().unwrap_or("the endpoint");
    let rules = || {
        side.rules
            .iter()
            .map(|r| r.to_string())
            .collect::<Vec<_>>()
            .join("; ")
    };
    match side.reason {
        Reason::NotAPod => format!("{what}: not a pod of this cluster, no policy applies"),
        Reason::NotIsolated => format!("{what}: no policy isolates {pod}"),
        Reason::AllowedByRule if side.l7_enforced && !l7_given => format!(
            "{what} of {pod} allowed by {}; its L7 rules judge each request (give --method and --path to check one)",
            rules()
        ),
        Reason::AllowedByRule => format!("{what} of {pod} allowed by {}", rules()),
        Reason::DeniedByRule => format!("{what} of {pod} denied by {}", rules()),
        Reason::L7NoMatch => format!(
            "{what} of {pod}: the port is allowed only for L7 requests matching {}; this one matches none",
            rules()
        ),
        Reason::NoRuleMatched => format!(
            "{what} of {pod} is isolated by {} and no rule allows this peer and port",
            side.isolated_by.join(", ")
        ),
        Reason::NotEvaluable => format!(
            "{what} of {pod} is decided by a rule the engine cannot evaluate offline ({}), never an allow",
            rules()
        ),
    }
}

fn source_egress(w: &mut Walk<'_>, src_addr: IpAddr, far: &Far<'_>) -> bool {
    let q = w.q;
    let Some(view) = w.m.views.get(&q.from.cluster) else {
        return w.hop(
            Layer::SourceEgress,
            false,
            format!("no view of cluster {}", q.from.cluster),
        );
    };
    let c = &view.compiled;
    let src = resolve(c, src_addr);
    let dst = resolve(c, far.address);
    let l7 = if far.via.is_some() { None } else { w.l7() };
    let o = c.eval_resolved(src, dst, far.port, q.protocol, l7);
    let peer = match (far.pod, far.via) {
        (_, Some((b, _))) => format!(
            "the linkerd-gateway of {} at {}:{}",
            b.cluster, far.address, far.port
        ),
        (Some(p), None) if dst.pod.is_some() => format!("{p} at {}:{}", far.address, far.port),
        (Some(p), None) => format!(
            "{p} at {}:{} (seen as world: no ClusterMesh)",
            far.address, far.port
        ),
        (None, None) => format!("{}:{}", far.address, far.port),
    };
    let mut words = side_words(&o.egress, "egress", l7.is_some());
    let allow = o.egress.verdict.is_allow();
    let remote_pod = far.pod.is_some_and(|p| p.cluster != q.from.cluster) && dst.pod.is_some();
    if !allow && remote_pod && o.egress.reason == Reason::NoRuleMatched {
        words.push_str(
            " (a selector that names no io.cilium.k8s.policy.cluster selects the local cluster only: Cilium's policy-default-local-cluster)",
        );
    }
    w.hop(Layer::SourceEgress, allow, format!("to {peer}: {words}"))
}

/// How the source's packets leave its cluster.
struct Leave {
    /// The source address the far end sees.
    seen_src: IpAddr,
    /// Source and destination as the cloud networks route them.
    routed: (IpAddr, IpAddr),
    /// The cluster-cidr layer's explanation.
    words: String,
}

/// The range a cluster routes pod addresses to unmasqueraded, as `mcnet
/// render` configures Cilium (`ipv4NativeRoutingCIDR`): its own pod CIDR,
/// or in a ClusterMesh the supernet of every member's; none in overlay.
pub fn native_cidr(t: &Topology, c: &Cluster) -> Option<IpNet> {
    match c.cni.mode {
        CniMode::Overlay => None,
        CniMode::Native if c.cluster_mesh.is_some() => {
            let pods: Vec<IpNet> = t
                .spec
                .clusters
                .iter()
                .filter(|o| o.cluster_mesh.is_some())
                .filter_map(|o| o.pod_cidr.net())
                .collect();
            common_supernet(&pods)
        }
        CniMode::Native => c.pod_cidr.net(),
    }
}

/// The cluster-cidr layer: addresses as they leave the source cluster, or
/// why they cannot reach the far end.
fn leave(
    t: &Topology,
    src: &Cluster,
    src_addr: IpAddr,
    far: &Far<'_>,
    same_cluster: bool,
    meshed: bool,
) -> Result<Leave, String> {
    if same_cluster {
        return Ok(Leave {
            seen_src: src_addr,
            routed: (src_addr, far.address),
            words: format!(
                "both pods are in {} (pod CIDR {}): routed by the CNI inside the cluster",
                src.name, src.pod_cidr
            ),
        });
    }
    for (what, cidr) in [
        ("pod CIDR", &src.pod_cidr),
        ("service CIDR", &src.service_cidr),
    ] {
        if let Some(net) = cidr.net().filter(|n| holds(n, far.address)) {
            return Err(format!(
                "{} lies in {}'s own {what} {net}: the source cluster routes it locally and it never leaves",
                far.address, src.name
            ));
        }
    }
    let node = |c: &Cluster| t.network(&c.network).and_then(node_address);
    let src_node = node(src).unwrap_or(src_addr);
    let overlay = |c: &Cluster| c.cni.mode == CniMode::Overlay;
    if let (Some(dst), Some(_)) = (far.cluster, far.pod) {
        if overlay(dst) && !meshed {
            return Err(format!(
                "{} uses overlay pod addressing: its pod CIDR {} is not routable outside the cluster, and the \
                 clusters share no ClusterMesh tunnel; call the pod through the mesh \
                 (SERVICE.NAMESPACE.svc.clusterset.local)",
                dst.name, dst.pod_cidr
            ));
        }
        if meshed && (overlay(src) || overlay(dst)) {
            // ClusterMesh tunnels between the clusters' nodes.
            let dst_node = node(dst).unwrap_or(far.address);
            return Ok(Leave {
                seen_src: src_addr,
                routed: (src_node, dst_node),
                words: format!(
                    "ClusterMesh tunnels {src_addr} → {} from a node of {} ({src_node}) to a node of {} ({dst_node})",
                    far.address, src.name, dst.name
                ),
            });
        }
    }
    let toward = match (far.cluster, far.pod) {
        (Some(dst), Some(_)) => format!(
            "{} in {}'s pod CIDR {} (native routing)",
            far.address, dst.name, dst.pod_cidr
        ),
        _ => far.address.to_string(),
    };
    let chained = src.cni.chaining != CniChaining::None;
    match native_cidr(t, src) {
        Some(native) if holds(&native, far.address) => Ok(Leave {
            seen_src: src_addr,
            routed: (src_addr, far.address),
            words: format!(
                "{src_addr} leaves {} unmasqueraded (the destination is inside its native-routing CIDR {native}); toward {toward}",
                src.name
            ),
        }),
        _ if chained => Ok(Leave {
            seen_src: src_addr,
            routed: (src_addr, far.address),
            words: format!(
                "{src_addr} leaves {} unmasqueraded (chained CNI); toward {toward}",
                src.name
            ),
        }),
        native => Ok(Leave {
            seen_src: src_node,
            routed: (src_node, far.address),
            words: format!(
                "{src_addr} leaves {} masqueraded to its node's address {src_node} ({}); toward {toward}",
                src.name,
                match native {
                    Some(n) => format!("the destination is outside its native-routing CIDR {n}"),
                    None => "overlay pods are masqueraded outside the cluster".into(),
                }
            ),
        }),
    }
}

fn cloud_route(
    w: &mut Walk<'_>,
    src: &Cluster,
    (src_addr, dst_addr): (IpAddr, IpAddr),
    far: &Far<'_>,
    same_cluster: bool,
) -> bool {
    let t = &w.m.topology;
    if same_cluster {
        return w.hop(
            Layer::CloudRoute,
            true,
            "inside one cluster: no cloud route involved".into(),
        );
    }
    let Some(dst_net) = far.network else {
        return w.hop(
            Layer::CloudRoute,
            false,
            format!("no network of the topology holds {}", far.address),
        );
    };
    if dst_net.name == src.network {
        return w.hop(
            Layer::CloudRoute,
            true,
            format!(
                "both ends are in network {}: its local route carries it",
                dst_net.name
            ),
        );
    }
    let conn = Connectivity::new(t);
    let (Some(a), Some(b)) = (
        conn.network_index(&src.network),
        conn.network_index(&dst_net.name),
    ) else {
        return w.hop(
            Layer::CloudRoute,
            false,
            "a network is missing from the topology".into(),
        );
    };
    let failed: HashSet<Component> = w.q.failed.iter().cloned().collect();
    let all = conn.paths(a, b, &HashSet::new());
    let alive = conn.paths(a, b, &failed);
    if all.is_empty() {
        return w.hop(
            Layer::CloudRoute,
            false,
            format!(
                "no peering, transit gateway or interconnect joins {} and {}",
                src.network, dst_net.name
            ),
        );
    }
    if alive.is_empty() {
        let names: Vec<String> = w.q.failed.iter().map(|c| c.to_string()).collect();
        return w.hop(
            Layer::CloudRoute,
            false,
            format!(
                "every path between {} and {} uses a failed component ({}): {}",
                src.network,
                dst_net.name,
                names.join(", "),
                all.iter()
                    .map(|p| p.to_string())
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
        );
    }
    let mut refusals = Vec::new();
    for p in &alive {
        match carries(t, &conn, p, a, b, src_addr, dst_addr) {
            Ok(why) => {
                return w.hop(
                    Layer::CloudRoute,
                    true,
                    format!("{} → {} over {p}: {why}", src.network, dst_net.name),
                )
            }
            Err(why) => refusals.push(format!("{p}: {why}")),
        }
    }
    w.hop(
        Layer::CloudRoute,
        false,
        format!(
            "no path between {} and {} carries {src_addr} → {dst_addr}: {}",
            src.network,
            dst_net.name,
            refusals.join("; ")
        ),
    )
}

/// Whether a path routes both directions between two addresses, and why.
fn carries(
    t: &Topology,
    conn: &Connectivity<'_>,
    p: &Path,
    a: usize,
    b: usize,
    src: IpAddr,
    dst: IpAddr,
) -> Result<String, String> {
    let nets = &t.spec.networks;
    let in_net = |n: usize, ip: IpAddr| {
        nets[n]
            .cidrs
            .iter()
            .filter_map(|c| c.net())
            .any(|c| holds(&c, ip))
    };
    if p.via == "internet-vpn" {
        // BGP over the tunnels: each side's gateway advertises its network
        // and its native clusters' pods.
        let (na, nb) = (&nets[a].name, &nets[b].name);
        let covers = |net: &str, ip: IpAddr| {
            crate::topology::validate::vpn_prefixes(t, net)
                .into_iter()
                .find(|n| holds(n, ip))
        };
        let Some(to_dst) = covers(nb, dst) else {
            return Err(format!(
                "{nb}'s VPN gateway advertises no prefix holding {dst}"
            ));
        };
        let Some(to_src) = covers(na, src) else {
            return Err(format!(
                "the return route is missing: {na}'s VPN gateway advertises no prefix holding {src}"
            ));
        };
        return Ok(format!(
            "{nb}'s VPN gateway advertises {to_dst} and {na}'s {to_src} over the tunnels"
        ));
    }
    if p.via != "interconnect" {
        // Peering and transit routes cover the networks' own CIDRs only.
        if !in_net(b, dst) {
            return Err(format!(
                "{}'s route table routes only {}'s CIDRs this way, and {dst} is outside them",
                nets[a].name, nets[b].name
            ));
        }
        if !in_net(a, src) {
            return Err(format!(
                "the return route covers only {}'s CIDRs, and {src} is outside them",
                nets[a].name
            ));
        }
        return Ok(format!(
            "{}'s route table sends {} there",
            nets[a].name, nets[b].name
        ));
    }
    let vxc_index = |name: &str| t.spec.interconnect.vxcs.iter().position(|v| v.name == name);
    let (Some(Component::Vxc(va)), Some(Component::Vxc(vb))) = (p.hops.first(), p.hops.last())
    else {
        return Err("malformed interconnect path".into());
    };
    let (Some(ia), Some(ib)) = (vxc_index(va), vxc_index(vb)) else {
        return Err("a VXC of the path is missing".into());
    };
    for (i, name) in [(ia, va), (ib, vb)] {
        let advertised = advertised_prefixes(t, conn, i);
        let v = &t.spec.interconnect.vxcs[i];
        let (limit, what) = match v.target.kind {
            VxcTargetKind::AwsDirectConnect => (
                t.spec.limits.aws_dx_private_vif_prefixes as usize,
                "an AWS Direct Connect private VIF",
            ),
            VxcTargetKind::AzureExpressroute => (
                AZURE_ER_PRIVATE_PREFIXES,
                "an Azure ExpressRoute private peering",
            ),
            VxcTargetKind::GcpPartnerInterconnect => (
                GCP_CLOUD_ROUTER_PEER_PREFIXES,
                "a GCP Cloud Router BGP session",
            ),
        };
        if advertised.len() > limit {
            return Err(format!(
                "the MCR advertises {} prefixes over {name}, more than the {limit} that {what} accepts, so its BGP session is down",
                advertised.len()
            ));
        }
    }
    let covers = |i: usize, ip: IpAddr| {
        advertised_prefixes(t, conn, i)
            .into_iter()
            .find(|n| holds(n, ip))
    };
    let Some(to_dst) = covers(ia, dst) else {
        return Err(format!(
            "the MCR advertises no prefix holding {dst} over {va} (check {vb}'s bgp.prefixFilters.import and {va}'s export)"
        ));
    };
    let Some(to_src) = covers(ib, src) else {
        return Err(format!(
            "the return route is missing: the MCR advertises no prefix holding {src} over {vb} (check {va}'s bgp.prefixFilters.import and {vb}'s export)"
        ));
    };
    Ok(format!(
        "the MCR advertises {to_dst} over {va} and {to_src} over {vb}"
    ))
}

fn clustermesh(
    w: &mut Walk<'_>,
    src: &Cluster,
    seen_src: IpAddr,
    far: &Far<'_>,
    same_cluster: bool,
) -> bool {
    let Some(dst) = far.cluster else {
        return w.hop(
            Layer::Clustermesh,
            true,
            format!(
                "{} is not a cluster endpoint: no identity is carried",
                far.address
            ),
        );
    };
    if same_cluster {
        return w.hop(
            Layer::Clustermesh,
            true,
            format!(
                "same cluster {}: the source keeps its local identity",
                src.name
            ),
        );
    }
    if let Some((b, _)) = far.via {
        return w.hop(
            Layer::Clustermesh,
            true,
            format!(
                "through Linkerd's gateway: {} sees the connection come from its own {}/{} pod, not from the source",
                b.cluster, GATEWAY.0, GATEWAY.2
            ),
        );
    }
    match mesh_ids(src, dst) {
        Ok((a, b)) => {
            let ident = w
                .m
                .views
                .get(&dst.name)
                .map(|v| v.compiled.identity_of_ip(seen_src))
                .map_or_else(String::new, |id| format!(" as identity {}", id.get()));
            w.hop(
                Layer::Clustermesh,
                true,
                format!(
                    "{} (id {a}) and {} (id {b}) share a ClusterMesh: {} knows the source{ident}, labelled io.cilium.k8s.policy.cluster={}",
                    src.name, dst.name, dst.name, src.name
                ),
            )
        }
        Err(MeshGap::SameId(id)) => w.hop(
            Layer::Clustermesh,
            false,
            format!(
                "{} and {} both use ClusterMesh id {id}: Cilium will not connect clusters with one id, as their identities would collide",
                src.name, dst.name
            ),
        ),
        Err(MeshGap::NotMeshed) => w.hop(
            Layer::Clustermesh,
            true,
            format!(
                "{} and {} share no ClusterMesh: {} sees the source only as the address {seen_src} (world)",
                src.name, dst.name, dst.name
            ),
        ),
    }
}

fn mesh(w: &mut Walk<'_>, far: &Far<'_>) -> bool {
    let Some((backend, service)) = far.via else {
        if far.local_backend {
            return w.hop(
                Layer::Mesh,
                true,
                "the service has a backend in the source's own cluster: the call stays local, no gateway".into(),
            );
        }
        return w.hop(
            Layer::Mesh,
            true,
            "not on this path: the target is addressed directly, not as SERVICE.NAMESPACE.svc.clusterset.local".into(),
        );
    };
    let q = w.q;
    let t = &w.m.topology;
    let Some(ns) = t
        .spec
        .namespaces
        .iter()
        .find(|n| n.name == backend.namespace)
    else {
        return w.hop(
            Layer::Mesh,
            false,
            format!("namespace {} is not in the topology", backend.namespace),
        );
    };
    if ns.clusters.len() < 2 {
        return w.hop(
            Layer::Mesh,
            false,
            format!(
                "service {}/{service} is not exported: namespace {} spans one cluster, so it carries no mirror.linkerd.io/exported label",
                ns.name, ns.name
            ),
        );
    }
    if !linked(t, &q.from.cluster, &backend.cluster) {
        return w.hop(
            Layer::Mesh,
            false,
            format!(
                "{} has no Linkerd Link to {}: they share no namespace, so {service}-{} is not mirrored there",
                q.from.cluster, backend.cluster, backend.cluster
            ),
        );
    }
    let Some(target) = ns.workloads.iter().find(|wl| wl.service_name() == service) else {
        return w.hop(
            Layer::Mesh,
            false,
            format!("no workload serves {}/{service}", ns.name),
        );
    };
    let Some(port) = target.ports.iter().find(|p| p.port == q.port) else {
        return w.hop(
            Layer::Mesh,
            false,
            format!("service {}/{service} exposes no port {}", ns.name, q.port),
        );
    };
    let server = format!("{}-{}", target.name, port.name);
    let mirrored = format!("{service}-{} in {}", backend.cluster, q.from.cluster);
    // Linkerd's gateway admits any meshed (mTLS) identity; a pod is meshed
    // when its namespace is injected, as `mcnet render` injects every
    // namespace that spans clusters.
    let src_meshed = t.spec.namespaces.iter().any(|n| {
        n.name == q.from.namespace && n.clusters.len() > 1 && n.clusters.contains(&q.from.cluster)
    });
    if !src_meshed {
        return w.hop(
            Layer::Mesh,
            false,
            format!(
                "{}/{service} is mirrored as {mirrored}, but {} is not meshed (namespace {} is not injected with Linkerd's proxy), \
                 and the gateway's AuthorizationPolicy admits only meshed (mTLS) identities",
                ns.name, q.from, q.from.namespace
            ),
        );
    }
    // Behind the gateway, the target's proxy sees the gateway's identity,
    // which the port's authorization admits; the declared clients are
    // listed there for calls that do not cross the gateway.
    w.hop(
        Layer::Mesh,
        true,
        format!(
            "{}/{service} is exported and mirrored as {mirrored}; the gateway admits the meshed source {}, and \
             AuthorizationPolicy {}/{server}-authz admits the gateway's identity",
            ns.name, q.from, ns.name
        ),
    )
}

fn target_ingress(w: &mut Walk<'_>, seen_src: IpAddr, far: &Far<'_>, knows_src: bool) -> bool {
    let q = w.q;
    let (pod, from_gateway) = match (far.pod, far.via) {
        (Some(p), _) => (p, false),
        (None, Some((b, _))) => (b, true),
        (None, None) => {
            return w.hop(
                Layer::TargetIngress,
                true,
                format!(
                    "{} is not a Kubernetes endpoint: no ingress policy applies",
                    far.address
                ),
            )
        }
    };
    let Some((view, idx)) = w.m.local(pod) else {
        return w.hop(
            Layer::TargetIngress,
            false,
            format!("{pod} is not a pod of the model"),
        );
    };
    let c = &view.compiled;
    let src = if from_gateway {
        match w.m.gateways.get(&pod.cluster) {
            Some(&gw) => resolve(c, gw),
            None => {
                return w.hop(
                    Layer::TargetIngress,
                    false,
                    format!("{} runs no Linkerd gateway", pod.cluster),
                )
            }
        }
    } else if knows_src {
        resolve(c, seen_src)
    } else {
        // Not meshed: the source is only an address here.
        Resolved {
            pod: None,
            identity: c.identity_of_ip(seen_src),
        }
    };
    let dst = Resolved {
        pod: Some(idx),
        identity: c.pod_identity[idx],
    };
    let o = c.eval_resolved(src, dst, q.port, q.protocol, w.l7());
    let who = if from_gateway {
        format!("from {}'s {}/{} ", pod.cluster, GATEWAY.0, GATEWAY.2)
    } else {
        format!("from {seen_src} ")
    };
    let words = side_words(&o.ingress, "ingress", q.http.is_some());
    let allow = o.ingress.verdict.is_allow();
    w.hop(
        Layer::TargetIngress,
        allow,
        format!("{who}to {pod}:{}: {words}", q.port),
    )
}

/// An address as a cluster's policy sees it.
fn resolve(c: &Compiled, ip: IpAddr) -> Resolved {
    Resolved {
        pod: c.pod_by_ip(&ip),
        identity: c.identity_of_ip(ip),
    }
}
