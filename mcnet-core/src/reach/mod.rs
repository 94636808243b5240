//! Reachability across every layer: can this workload open a connection to
//! that one, and if not, which layer stops it?
//!
//! A [`Model`] joins a [`Topology`] with each cluster's manifests. A
//! [`Query`] is walked through the layers in the order a packet meets
//! them ([`Layer`]), and the walk stops at the first layer that refuses:
//!
//! 1. the source's egress policy (in the source cluster);
//! 2. the clusters' pod and node CIDRs (overlaps, overlay pod addresses);
//! 3. cloud route tables: peering and transit routes, the MCR's BGP prefix
//!    filters and the providers' prefix limits, with failed components;
//! 4. the target cluster's ClusterMesh: which identity the target sees;
//! 5. the service mesh: exported, mirrored, and admitted by the target's
//!    Linkerd authorization (only for `SERVICE.NS.svc.clusterset.local`);
//! 6. the target's ingress policy, L7 included.
//!
//! Pods keep the address their manifest gives when it lies in their
//! cluster's pod CIDR; otherwise they get a stable one from it (in
//! manifest order), so that one manifest can describe a namespace that
//! spans several clusters. [`Model::address`] tells which.
//!
//! ```
//! # std::env::set_current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/..")).unwrap();
//! use mcnet_core::reach::{Model, Query, Scope};
//! use mcnet_core::topology::{ipam, parse};
//! let text = std::fs::read_to_string("examples/topologies/adr-003.yaml")?;
//! let t = ipam::allocate(&parse(&text).topology.unwrap()).unwrap();
//! let manifests = std::fs::read_to_string("examples/policies/adr-003-production.yaml")?;
//! let model = Model::new(&t, [(Scope::All, "adr-003-production.yaml", manifests.as_str())])?;
//! let q = Query::parse(&model, "eks-prod/production/frontend", "eks-prod/production/api-server", 8080)?
//!     .http("DELETE", "/api/v1/users");
//! let proof = model.prove(&q);
//! assert_eq!(proof.stopped_at, Some(mcnet_core::reach::Layer::TargetIngress));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod layers;
pub use layers::{
    native_cidr, node_address, AZURE_ER_PRIVATE_PREFIXES, GCP_CLOUD_ROUTER_PEER_PREFIXES,
};
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::policy::eval::HttpRequest;
use crate::policy::model::{Namespace as PolicyNamespace, Pod, METADATA_NAME_LABEL};
use crate::policy::{Compiled, LoadOptions, Manifests, Proto};
use crate::topology::paths::Component;
use crate::topology::{Cluster, Topology};
use crate::{Error, Result};

/// Namespace, labels and service account of Linkerd's multicluster gateway,
/// which every linked cluster runs (`mcnet render` writes it).
pub const GATEWAY: (&str, &str, &str) = ("linkerd-multicluster", "app", "linkerd-gateway");
/// Port of Linkerd's multicluster gateway.
pub const GATEWAY_PORT: u16 = 4143;

/// The layers, in the order a connection meets them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Layer {
    /// The source pod's egress policy, in its own cluster.
    SourceEgress,
    /// Pod and node CIDRs of the two clusters.
    ClusterCidr,
    /// Cloud route tables, peerings, transit gateways and the MCR's BGP.
    CloudRoute,
    /// The identity the target cluster gives the source.
    Clustermesh,
    /// Linkerd multicluster: export, mirror, gateway authorization.
    Mesh,
    /// The target pod's ingress policy, L7 included.
    TargetIngress,
}

impl Layer {
    /// Every layer, in order.
    pub const ALL: [Layer; 6] = [
        Layer::SourceEgress,
        Layer::ClusterCidr,
        Layer::CloudRoute,
        Layer::Clustermesh,
        Layer::Mesh,
        Layer::TargetIngress,
    ];

    /// The name used in JSON and text.
    pub fn name(self) -> &'static str {
        match self {
            Layer::SourceEgress => "source-egress",
            Layer::ClusterCidr => "cluster-cidr",
            Layer::CloudRoute => "cloud-route",
            Layer::Clustermesh => "clustermesh",
            Layer::Mesh => "mesh",
            Layer::TargetIngress => "target-ingress",
        }
    }
}

impl fmt::Display for Layer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A layer's answer. Exhaustive on purpose: a caller must never treat a
/// new kind of answer as an allow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// The layer lets the connection through.
    Allow,
    /// The layer stops it.
    Deny,
}

/// One layer's verdict and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hop {
    /// Which layer.
    pub layer: Layer,
    /// Its verdict.
    pub verdict: Verdict,
    /// Why, in one or two sentences naming the objects that decided.
    pub explanation: String,
}

/// The answer to a [`Query`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proof {
    /// `allow` when every layer allows.
    pub verdict: Verdict,
    /// The first layer that denies.
    pub stopped_at: Option<Layer>,
    /// The layers walked, in order, up to and including the one that denied.
    pub hops: Vec<Hop>,
    /// The source, `cluster/namespace/pod`.
    pub from: String,
    /// The target as asked, with the backend chosen for a service.
    pub to: String,
    /// Destination port.
    pub port: u16,
    /// Protocol.
    pub protocol: Proto,
}

/// Which clusters a manifest source describes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Every cluster of the topology (a namespace that spans them).
    All,
    /// One cluster, by name.
    Cluster(String),
}

/// A pod of one cluster.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PodRef {
    /// Cluster name.
    pub cluster: String,
    /// Namespace.
    pub namespace: String,
    /// Pod name.
    pub name: String,
}

impl fmt::Display for PodRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.cluster, self.namespace, self.name)
    }
}

/// What a query is about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// A pod.
    Pod(PodRef),
    /// An address outside every cluster's pods (a node, a VM, an endpoint).
    Address(IpAddr),
    /// `SERVICE.NAMESPACE.svc.clusterset.local`: the service's backends in
    /// every cluster; the first that admits the source answers.
    Service {
        /// Namespace.
        namespace: String,
        /// Service name.
        name: String,
    },
}

/// A reachability question.
#[derive(Clone, Debug)]
pub struct Query {
    /// The source pod.
    pub from: PodRef,
    /// The target.
    pub to: Target,
    /// Destination port.
    pub port: u16,
    /// Protocol (TCP unless set).
    pub protocol: Proto,
    /// An HTTP request, for L7 rules.
    pub http: Option<HttpRequest>,
    /// Components taken down (`mcnet paths --fail` names).
    pub failed: Vec<Component>,
}

impl Query {
    /// A TCP query from `from` (`CLUSTER/NS/POD`) to `to` (`CLUSTER/NS/POD`,
    /// an IP address, or `SERVICE.NS.svc.clusterset.local`).
    pub fn parse(model: &Model, from: &str, to: &str, port: u16) -> Result<Query> {
        let from = model.pod_ref(from, "from")?;
        let to = model.target(to)?;
        Ok(Query {
            from,
            to,
            port,
            protocol: Proto::Tcp,
            http: None,
            failed: Vec::new(),
        })
    }

    /// With an HTTP method and path, for L7 rules.
    pub fn http(mut self, method: &str, path: &str) -> Query {
        self.http = Some(HttpRequest {
            method: method.to_string(),
            path: path.to_string(),
            ..HttpRequest::default()
        });
        self
    }

    /// With a protocol.
    pub fn protocol(mut self, p: Proto) -> Query {
        self.protocol = p;
        self
    }

    /// With components failed.
    pub fn failing(mut self, failed: Vec<Component>) -> Query {
        self.failed = failed;
        self
    }
}

/// One cluster's view: its policies, with its own pods and the pods of the
/// clusters in its ClusterMesh.
#[derive(Debug)]
struct View {
    compiled: Compiled,
    /// The cluster's own pods: reference → inventory index.
    local: BTreeMap<(String, String), usize>,
}

/// Where a pod's address came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AddressOrigin {
    /// The manifest's `status.podIP`, inside the cluster's pod CIDR.
    Manifest,
    /// Given from the cluster's pod CIDR (the manifest had none there).
    Assigned,
}

/// The topology with each cluster's manifests, ready for queries.
#[derive(Debug)]
pub struct Model {
    topology: Topology,
    views: BTreeMap<String, View>,
    addresses: BTreeMap<PodRef, (IpAddr, AddressOrigin)>,
    /// Each linked cluster's Linkerd gateway pod address.
    gateways: BTreeMap<String, IpAddr>,
}

impl Model {
    /// Builds the model. `sources` are `(scope, name, text)`: a manifest
    /// for every cluster or for one. The topology must have its `auto`
    /// CIDRs allocated ([`crate::topology::ipam::allocate`]).
    pub fn new<'a>(
        t: &Topology,
        sources: impl IntoIterator<Item = (Scope, &'a str, &'a str)>,
    ) -> Result<Model> {
        let sources: Vec<(Scope, &str, &str)> = sources.into_iter().collect();
        for (scope, name, _) in &sources {
            if let Scope::Cluster(c) = scope {
                if t.cluster(c).is_none() {
                    return Err(Error::NotFound {
                        kind: "cluster",
                        name: format!("{c} (the scope of manifests {name})"),
                    });
                }
            }
        }
        // Each cluster's own manifests, its pods re-addressed into its pod CIDR.
        let mut own: BTreeMap<String, Manifests> = BTreeMap::new();
        let mut addresses = BTreeMap::new();
        let mut gateways = BTreeMap::new();
        for c in &t.spec.clusters {
            let texts = sources
                .iter()
                .filter(|(s, _, _)| matches!(s, Scope::All) || *s == Scope::Cluster(c.name.clone()))
                .map(|(_, n, text)| (*n, *text));
            let options = LoadOptions {
                local_cluster: c.name.clone(),
                ..LoadOptions::default()
            };
            let mut m = Manifests::load_with(texts, options)?;
            // Pods labelled for another cluster belong to that one's manifests.
            m.inventory.pods.retain(|p| p.cluster == c.name);
            let is_gateway = |p: &Pod| {
                p.namespace == GATEWAY.0
                    && p.labels.get(GATEWAY.1).map(String::as_str) == Some(GATEWAY.2)
            };
            let linked_somewhere = t
                .spec
                .clusters
                .iter()
                .any(|o| layers::linked(t, &c.name, &o.name));
            if linked_somewhere && !m.inventory.pods.iter().any(is_gateway) {
                // Linkerd's multicluster gateway, as `mcnet render` deploys it.
                m.inventory.pods.push(Pod {
                    namespace: GATEWAY.0.into(),
                    name: GATEWAY.2.into(),
                    labels: BTreeMap::from([(GATEWAY.1.into(), GATEWAY.2.into())]),
                    ips: Vec::new(),
                    named_ports: Vec::new(),
                    service_account: GATEWAY.2.into(),
                    cluster: c.name.clone(),
                });
                m.inventory
                    .namespaces
                    .entry(GATEWAY.0.into())
                    .or_insert_with(|| PolicyNamespace {
                        name: GATEWAY.0.into(),
                        labels: BTreeMap::from([(METADATA_NAME_LABEL.into(), GATEWAY.0.into())]),
                    });
            }
            let mut given = BTreeMap::new();
            address_pods(c, &mut m.inventory.pods, &mut given)?;
            for (r, a) in given {
                let gateway = m
                    .inventory
                    .pods
                    .iter()
                    .any(|p| p.namespace == r.namespace && p.name == r.name && is_gateway(p));
                if gateway {
                    gateways.insert(c.name.clone(), a.0);
                } else {
                    addresses.insert(r, a);
                }
            }
            own.insert(c.name.clone(), m);
        }
        // Each view adds the pods of the other clusters in its ClusterMesh.
        let mut views = BTreeMap::new();
        for c in &t.spec.clusters {
            let mut m = own[&c.name].clone();
            let local: BTreeMap<(String, String), usize> = m
                .inventory
                .pods
                .iter()
                .enumerate()
                .map(|(i, p)| ((p.namespace.clone(), p.name.clone()), i))
                .collect();
            for other in t.spec.clusters.iter().filter(|o| o.name != c.name) {
                if layers::mesh_ids(c, other).is_ok() {
                    let theirs = &own[&other.name].inventory;
                    m.inventory.pods.extend(theirs.pods.iter().cloned());
                    for (name, ns) in &theirs.namespaces {
                        m.inventory
                            .namespaces
                            .entry(name.clone())
                            .or_insert_with(|| ns.clone());
                    }
                }
            }
            views.insert(
                c.name.clone(),
                View {
                    compiled: Compiled::new(&m),
                    local,
                },
            );
        }
        Ok(Model {
            topology: t.clone(),
            views,
            addresses,
            gateways,
        })
    }

    /// The topology.
    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    /// A pod's address and where it came from.
    pub fn address(&self, pod: &PodRef) -> Option<(IpAddr, AddressOrigin)> {
        self.addresses.get(pod).copied()
    }

    /// The address of `cluster`'s Linkerd multicluster gateway pod, when
    /// the cluster is linked to another (see [`GATEWAY`]).
    pub fn gateway(&self, cluster: &str) -> Option<IpAddr> {
        self.gateways.get(cluster).copied()
    }

    /// Every pod of every cluster (the gateway pods are apart: [`Model::gateway`]).
    pub fn pods(&self) -> impl Iterator<Item = &PodRef> {
        self.addresses.keys()
    }

    /// The pods a cluster's policy sees, with their addresses: its own
    /// (`true`), then those of its ClusterMesh peers, each with its cluster.
    pub fn cluster_pods(&self, cluster: &str) -> Vec<(Pod, bool)> {
        let Some(v) = self.views.get(cluster) else {
            return Vec::new();
        };
        let local: HashSet<usize> = v.local.values().copied().collect();
        let pods = &v.compiled.inventory.pods;
        let mut out: Vec<(Pod, bool)> = (0..pods.len())
            .filter(|i| local.contains(i))
            .map(|i| (pods[i].clone(), true))
            .collect();
        out.extend(
            (0..pods.len())
                .filter(|i| !local.contains(i))
                .map(|i| (pods[i].clone(), false)),
        );
        out
    }

    /// A pod's named container ports.
    pub fn ports_of(&self, pod: &PodRef) -> Vec<(u16, Proto)> {
        let Some((v, i)) = self.local(pod) else {
            return Vec::new();
        };
        let mut ports: Vec<(u16, Proto)> = v.compiled.inventory.pods[i]
            .named_ports
            .iter()
            .map(|p| (p.port, p.proto))
            .collect();
        ports.sort();
        ports.dedup();
        ports
    }

    fn local(&self, pod: &PodRef) -> Option<(&View, usize)> {
        let v = self.views.get(&pod.cluster)?;
        let i = *v.local.get(&(pod.namespace.clone(), pod.name.clone()))?;
        Some((v, i))
    }

    /// Parses `CLUSTER/NS/POD` naming a pod of the model.
    pub fn pod_ref(&self, s: &str, what: &str) -> Result<PodRef> {
        let parts: Vec<&str> = s.split('/').collect();
        let [cluster, namespace, name] = parts[..] else {
            return Err(Error::NotFound {
                kind: "pod (expected CLUSTER/NAMESPACE/POD)",
                name: format!("{s} ({what})"),
            });
        };
        if self.topology.cluster(cluster).is_none() {
            return Err(Error::NotFound {
                kind: "cluster",
                name: format!("{cluster} ({what}: {s})"),
            });
        }
        let r = PodRef {
            cluster: cluster.into(),
            namespace: namespace.into(),
            name: name.into(),
        };
        if self.local(&r).is_none() {
            return Err(Error::NotFound {
                kind: "pod",
                name: format!("{namespace}/{name} in cluster {cluster} ({what})"),
            });
        }
        Ok(r)
    }

    /// Parses a target: `CLUSTER/NS/POD`, an IP address, or
    /// `SERVICE.NS.svc.clusterset.local`.
    pub fn target(&self, s: &str) -> Result<Target> {
        if let Ok(ip) = s.parse::<IpAddr>() {
            let ip = ip.to_canonical();
            return Ok(match self.addresses.iter().find(|(_, (a, _))| *a == ip) {
                Some((p, _)) => Target::Pod(p.clone()),
                None => Target::Address(ip),
            });
        }
        if let Some(rest) = s.strip_suffix(".svc.clusterset.local") {
            let Some((name, namespace)) = rest.split_once('.') else {
                return Err(Error::NotFound {
                    kind: "service (expected SERVICE.NAMESPACE.svc.clusterset.local)",
                    name: s.into(),
                });
            };
            if namespace.contains('.') || self.backends(namespace, name).is_empty() {
                return Err(Error::NotFound {
                    kind: "service (a workload of the topology's namespaces with pods in the manifests)",
                    name: format!("{name} in namespace {namespace} (to: {s})"),
                });
            }
            return Ok(Target::Service {
                namespace: namespace.into(),
                name: name.into(),
            });
        }
        Ok(Target::Pod(self.pod_ref(s, "to")?))
    }

    /// The pods behind a service, by cluster order: the topology's
    /// workload whose service it is, in each cluster its namespace spans.
    pub fn backends(&self, namespace: &str, service: &str) -> Vec<PodRef> {
        let t = &self.topology;
        let Some(ns) = t.spec.namespaces.iter().find(|n| n.name == namespace) else {
            return Vec::new();
        };
        let Some(w) = ns.workloads.iter().find(|w| w.service_name() == service) else {
            return Vec::new();
        };
        let labels = workload_labels(w);
        let mut out = Vec::new();
        for c in t
            .spec
            .clusters
            .iter()
            .filter(|c| ns.clusters.contains(&c.name))
        {
            let Some(v) = self.views.get(&c.name) else {
                continue;
            };
            for ((pns, pname), &i) in &v.local {
                let pod = &v.compiled.inventory.pods[i];
                if pns == namespace && labels.iter().all(|(k, val)| pod.labels.get(k) == Some(val))
                {
                    out.push(PodRef {
                        cluster: c.name.clone(),
                        namespace: pns.clone(),
                        name: pname.clone(),
                    });
                }
            }
        }
        out
    }

    /// Walks the layers for one query.
    pub fn prove(&self, q: &Query) -> Proof {
        match &q.to {
            Target::Pod(p) => layers::walk(self, q, layers::Dest::Pod(p.clone()), p.to_string()),
            Target::Address(ip) => {
                layers::walk(self, q, layers::Dest::Address(*ip), ip.to_string())
            }
            Target::Service { namespace, name } => {
                let asked = format!("{name}.{namespace}.svc.clusterset.local");
                // The source's own cluster first (no mesh hop), then the others.
                let mut backends = self.backends(namespace, name);
                backends.sort_by_key(|b| (b.cluster != q.from.cluster, b.clone()));
                // Every backend denies: the proof that got farthest explains best.
                let mut best: Option<Proof> = None;
                for b in backends {
                    let proof = if b.cluster == q.from.cluster {
                        layers::walk(
                            self,
                            q,
                            layers::Dest::LocalBackend(b.clone()),
                            format!("{asked} → {b}"),
                        )
                    } else {
                        layers::walk(
                            self,
                            q,
                            layers::Dest::ViaGateway {
                                backend: b.clone(),
                                service: name.clone(),
                            },
                            format!("{asked} → {b} (via the {} gateway)", b.cluster),
                        )
                    };
                    if proof.verdict == Verdict::Allow {
                        return proof;
                    }
                    if best
                        .as_ref()
                        .is_none_or(|p| proof.hops.len() > p.hops.len())
                    {
                        best = Some(proof);
                    }
                }
                best.unwrap_or_else(|| Proof {
                    verdict: Verdict::Deny,
                    stopped_at: Some(Layer::Mesh),
                    hops: vec![Hop {
                        layer: Layer::Mesh,
                        verdict: Verdict::Deny,
                        explanation: format!("{asked} has no backend pods"),
                    }],
                    from: q.from.to_string(),
                    to: asked,
                    port: q.port,
                    protocol: q.protocol,
                })
            }
        }
    }

    /// Proves every ordered pair of pods on each of the target's ports.
    pub fn matrix(&self, failed: &[Component]) -> Matrix {
        let pods: Vec<&PodRef> = self.pods().collect();
        let mut cells = Vec::new();
        for from in &pods {
            for to in &pods {
                if from == to {
                    continue;
                }
                for (port, protocol) in self.ports_of(to) {
                    let q = Query {
                        from: (*from).clone(),
                        to: Target::Pod((*to).clone()),
                        port,
                        protocol,
                        http: None,
                        failed: failed.to_vec(),
                    };
                    let p = self.prove(&q);
                    cells.push(Cell {
                        from: from.to_string(),
                        to: to.to_string(),
                        port,
                        protocol,
                        verdict: p.verdict,
                        stopped_at: p.stopped_at,
                        explanation: p
                            .hops
                            .last()
                            .filter(|h| h.verdict == Verdict::Deny)
                            .map(|h| h.explanation.clone()),
                    });
                }
            }
        }
        let mut by_layer: BTreeMap<Layer, usize> = BTreeMap::new();
        for c in &cells {
            if let Some(l) = c.stopped_at {
                *by_layer.entry(l).or_default() += 1;
            }
        }
        Matrix {
            failed: failed.to_vec(),
            allowed: cells.iter().filter(|c| c.verdict == Verdict::Allow).count(),
            denied_by_layer: by_layer,
            cells,
        }
    }
}

/// One cell of [`Model::matrix`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cell {
    /// Source pod.
    pub from: String,
    /// Target pod.
    pub to: String,
    /// Port.
    pub port: u16,
    /// Protocol.
    pub protocol: Proto,
    /// Verdict.
    pub verdict: Verdict,
    /// The layer that denied.
    pub stopped_at: Option<Layer>,
    /// Why it denied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub explanation: Option<String>,
}

/// Every pod pair's proof, summarised.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Matrix {
    /// Components failed.
    pub failed: Vec<Component>,
    /// Pairs allowed.
    pub allowed: usize,
    /// Denied pairs per stopping layer.
    pub denied_by_layer: BTreeMap<Layer, usize>,
    /// Every pair.
    pub cells: Vec<Cell>,
}

/// One pod per workload of the topology's namespaces in each cluster the
/// namespace spans, with the workload's labels and ports and no policy: the
/// manifests `mcnet lab` uses when given none. `(scope, name, YAML)`.
pub fn topology_pods(t: &Topology) -> Vec<(Scope, String, String)> {
    let mut out = Vec::new();
    for c in &t.spec.clusters {
        let mut docs = Vec::new();
        for ns in t
            .spec
            .namespaces
            .iter()
            .filter(|n| n.clusters.contains(&c.name))
        {
            for w in &ns.workloads {
                let ports: Vec<serde_json::Value> = w
                    .ports
                    .iter()
                    .map(|p| {
                        serde_json::json!({
                            "name": p.name,
                            "containerPort": p.port,
                            "protocol": match p.protocol {
                                crate::topology::Protocol::Tcp => "TCP",
                                crate::topology::Protocol::Udp => "UDP",
                                crate::topology::Protocol::Sctp => "SCTP",
                            }
                        })
                    })
                    .collect();
                let pod = serde_json::json!({
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {"name": w.name, "namespace": ns.name, "labels": workload_labels(w)},
                    "spec": {"containers": [{"name": w.name, "ports": ports}]}
                });
                docs.push(pod.to_string());
            }
        }
        out.push((
            Scope::Cluster(c.name.clone()),
            format!("<workloads of {}>", c.name),
            docs.join("\n---\n"),
        ));
    }
    out
}

/// A workload's pod labels: its own, or `app: <name>` (as `mcnet render` writes them).
fn workload_labels(w: &crate::topology::Workload) -> BTreeMap<String, String> {
    if w.labels.is_empty() {
        BTreeMap::from([("app".to_string(), w.name.clone())])
    } else {
        w.labels.clone()
    }
}

/// Gives each pod an address in its cluster's pod CIDR: the manifest's
/// when it lies there (and is not taken), else the next free one.
fn address_pods(
    c: &Cluster,
    pods: &mut [Pod],
    out: &mut BTreeMap<PodRef, (IpAddr, AddressOrigin)>,
) -> Result<()> {
    let Some(cidr) = c.pod_cidr.net() else {
        return Err(Error::NotFound {
            kind: "pod CIDR (allocate `auto` CIDRs first)",
            name: format!("spec.clusters[{}].podCidr", c.name),
        });
    };
    let mut taken: HashSet<IpAddr> = HashSet::new();
    let mut origin = vec![AddressOrigin::Assigned; pods.len()];
    for (i, p) in pods.iter().enumerate() {
        if let Some(ip) = p.ips.first().copied() {
            if cidr.contains(&ip) && ip != cidr.network() && taken.insert(ip) {
                origin[i] = AddressOrigin::Manifest;
            }
        }
    }
    // Hosts from .10 up, skipping the manifests' own addresses.
    let mut hosts = cidr.hosts().skip(9).filter(|h| !taken.contains(h));
    for (i, p) in pods.iter_mut().enumerate() {
        if origin[i] == AddressOrigin::Assigned {
            let Some(ip) = hosts.next() else {
                return Err(Error::NotFound {
                    kind: "free address",
                    name: format!(
                        "in pod CIDR {cidr} of cluster {} for pod {}",
                        c.name,
                        p.key()
                    ),
                });
            };
            p.ips = vec![ip];
        } else {
            p.ips.truncate(1);
        }
        out.insert(
            PodRef {
                cluster: c.name.clone(),
                namespace: p.namespace.clone(),
                name: p.name.clone(),
            },
            (p.ips[0], origin[i]),
        );
    }
    Ok(())
}

/// Whether `net` holds `ip`.
fn holds(net: &IpNet, ip: IpAddr) -> bool {
    net.contains(&ip)
}
