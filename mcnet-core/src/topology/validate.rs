//! Validation: every problem at once, each with a stable code, the path of
//! the offending field and a message naming the objects involved.
//!
//! | code | severity | meaning |
//! |---|---|---|
//! | `parse.syntax`, `parse.schema`, `parse.unknown-field`, `parse.api-version`, `parse.kind` | error | the document itself |
//! | `name.empty`, `name.invalid`, `name.duplicate` | error | object names: every name is a DNS-1123 label (a hostname a DNS-1123 subdomain), unique among its kind |
//! | `ref.dangling`, `ref.region`, `ref.provider-kind` | error | references between objects |
//! | `cidr.invalid`, `cidr.overlap`, `subnet.outside-network` | error | address space |
//! | `ipam.no-pool`, `ipam.exhausted` | error | `auto` allocation |
//! | `clustermesh.id-range`, `clustermesh.id-duplicate`, `clustermesh.name-invalid`, `clustermesh.name-duplicate`, `clustermesh.pod-cidr-overlap` | error | Cilium ClusterMesh |
//! | `cni.chaining` | error | chaining with the wrong cloud's CNI |
//! | `megaport.speed`, `megaport.oversubscribed`, `megaport.rate-limit`, `megaport.vlan-range`, `megaport.vlan-duplicate`, `megaport.asn` | error | Megaport |
//! | `peering.endpoints` | error | a peering must join two distinct networks |
//! | `tgw.asn`, `tgw.attachment`, `tgw.route-conflict` | error | AWS transit gateways: a private ASN, each VPC once, not also peered with another attached VPC |
//! | `aws.dx-prefix-limit`, `aws.peering-limit` | error | published AWS limits |
//! | `spof.mcr`, `spof.vxc` | warning | single points of failure |
//! | `monitoring.unreachable` | warning | a workload network the monitoring network cannot reach |

use crate::diag::Code;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use ipnet::IpNet;

use super::cidr::{span, Cidr};
use super::ipam;
use super::model::*;
use super::name;
use super::parse;
use super::paths::Connectivity;
use crate::diag::{Diagnostic, Report};

/// The one subnet name that is not a DNS-1123 label: Azure requires a
/// virtual network gateway's subnet to be called this.
pub const GATEWAY_SUBNET: &str = "GatewaySubnet";

/// Megaport's MCR port speeds, in Mbps.
pub const MCR_SPEEDS_MBPS: [u32; 7] = [1000, 2500, 5000, 10000, 25000, 50000, 100000];

/// Parses and validates a document.
pub fn validate_str(text: &str) -> Report {
    let parsed = parse::parse(text);
    match parsed.topology {
        None => Report::new(parsed.problems, Vec::new()),
        Some(t) => {
            let mut r = validate(&t);
            let mut errors = parsed.problems;
            errors.append(&mut r.errors);
            Report::new(errors, r.warnings)
        }
    }
}

/// Validates a parsed topology.
pub fn validate(t: &Topology) -> Report {
    let mut v = Validator::default();
    v.names(t);
    v.references(t);
    v.cidrs(t);
    // Overlap checks work on the allocated topology, so `auto` values are
    // checked too, and an allocation failure is reported instead.
    let allocated = match ipam::allocate(t) {
        Ok(a) => a,
        Err(problems) => {
            v.errors.extend(problems);
            t.clone()
        }
    };
    let conn = Connectivity::new(&allocated);
    v.overlaps(&allocated, &conn);
    v.cluster_mesh(&allocated);
    v.megaport(t);
    v.limits(&allocated, &conn);
    v.single_points_of_failure(t, &conn);
    v.monitoring(t, &conn);
    Report::new(v.errors, v.warnings)
}

#[derive(Default)]
struct Validator {
    errors: Vec<Diagnostic>,
    warnings: Vec<Diagnostic>,
}

/// Who owns a CIDR, for messages.
#[derive(Clone, Debug)]
struct Owner {
    /// `network "aws-vpc"` or `cluster "eks-prod" pod CIDR`.
    label: String,
    path: String,
    /// Index of the network the prefix is routed in.
    network: Option<usize>,
    /// Cluster index, for pod/service prefixes.
    cluster: Option<usize>,
    kind: OwnerKind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum OwnerKind {
    Network,
    Pods,
    Services,
}

impl Validator {
    fn err(&mut self, code: Code, path: impl Into<String>, msg: impl Into<String>) {
        self.errors.push(Diagnostic::new(code, path, msg));
    }

    fn warn(&mut self, code: Code, path: impl Into<String>, msg: impl Into<String>) {
        self.warnings.push(Diagnostic::new(code, path, msg));
    }

    fn names(&mut self, t: &Topology) {
        if t.metadata.name.trim().is_empty() {
            self.err(Code::NameEmpty, "metadata.name", "the topology has no name");
        } else {
            self.label("metadata.name", "the topology", &t.metadata.name);
        }
        let s = &t.spec;
        self.unique(
            "spec.providers",
            "provider",
            s.providers.iter().map(|p| p.name.as_str()),
        );
        self.unique(
            "spec.networks",
            "network",
            s.networks.iter().map(|p| p.name.as_str()),
        );
        self.unique(
            "spec.clusters",
            "cluster",
            s.clusters.iter().map(|p| p.name.as_str()),
        );
        self.unique(
            "spec.interconnect.routers",
            "MCR",
            s.interconnect.routers.iter().map(|p| p.name.as_str()),
        );
        self.unique(
            "spec.interconnect.vxcs",
            "VXC",
            s.interconnect.vxcs.iter().map(|p| p.name.as_str()),
        );
        self.unique(
            "spec.peerings",
            "peering",
            s.peerings.iter().map(|p| p.name.as_str()),
        );
        self.unique(
            "spec.transitGateways",
            "transit gateway",
            s.transit_gateways.iter().map(|p| p.name.as_str()),
        );
        self.unique(
            "spec.privateEndpoints",
            "private endpoint",
            s.private_endpoints.iter().map(|p| p.name.as_str()),
        );
        self.unique(
            "spec.namespaces",
            "namespace",
            s.namespaces.iter().map(|p| p.name.as_str()),
        );
        for (i, n) in s.networks.iter().enumerate() {
            self.unique(
                &format!("spec.networks[{i}].subnets"),
                &format!("subnet of network `{}`:", n.name),
                n.subnets.iter().map(|s| s.name.as_str()),
            );
        }
        for (i, n) in s.namespaces.iter().enumerate() {
            self.unique(
                &format!("spec.namespaces[{i}].workloads"),
                &format!("workload of namespace `{}`:", n.name),
                n.workloads.iter().map(|s| s.name.as_str()),
            );
            for (j, w) in n.workloads.iter().enumerate() {
                let at = format!("spec.namespaces[{i}].workloads[{j}]");
                if let Some(svc) = &w.service {
                    self.label(&format!("{at}.service"), "a Service", svc);
                }
                for (k, p) in w.ports.iter().enumerate() {
                    self.label(&format!("{at}.ports[{k}].name"), "a port", &p.name);
                }
            }
        }
        if let Some(m) = &s.monitoring {
            self.unique(
                "spec.monitoring.components",
                "monitoring component",
                m.components.iter().map(|c| c.name.as_str()),
            );
        }
        for (i, h) in s.load_balancing.hostnames.iter().enumerate() {
            if let Some(why) = name::subdomain_problem(&h.name) {
                self.err(
                    Code::NameInvalid,
                    format!("spec.loadBalancing.hostnames[{i}].name"),
                    format!(
                        "hostname `{}` is not a DNS name: {why}; a hostname is labels of a-z, 0-9 and '-' joined by '.', at most 253 characters",
                        h.name.escape_debug()
                    ),
                );
            }
        }
    }

    /// `name.invalid` unless `name` is a DNS-1123 label.
    fn label(&mut self, path: &str, what: &str, name: &str) {
        if let Some(why) = name::label_problem(name) {
            self.err(
                Code::NameInvalid,
                path,
                format!(
                    "{what} is named `{}`, which is not a DNS-1123 label: {why}; {}",
                    name.escape_debug(),
                    name::LABEL_RULE
                ),
            );
        }
    }

    fn unique<'a>(&mut self, base: &str, what: &str, names: impl Iterator<Item = &'a str>) {
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for (i, name) in names.enumerate() {
            if name.trim().is_empty() {
                self.err(
                    Code::NameEmpty,
                    format!("{base}[{i}].name"),
                    format!("a {what} has an empty name"),
                );
                continue;
            }
            // Azure requires its gateway subnet to be named `GatewaySubnet`.
            let azure_gateway_subnet = base.ends_with(".subnets") && name == GATEWAY_SUBNET;
            if !azure_gateway_subnet {
                self.label(
                    &format!("{base}[{i}].name"),
                    &format!("a {}", what.trim_end_matches(':')),
                    name,
                );
            }
            if let Some(first) = seen.insert(name, i) {
                self.err(
                    Code::NameDuplicate,
                    format!("{base}[{i}].name"),
                    format!("{what} `{name}` is declared twice (first at {base}[{first}])"),
                );
            }
        }
    }

    fn references(&mut self, t: &Topology) {
        let s = &t.spec;
        let providers: HashMap<&str, &Provider> =
            s.providers.iter().map(|p| (p.name.as_str(), p)).collect();
        let networks: HashMap<&str, &Network> =
            s.networks.iter().map(|n| (n.name.as_str(), n)).collect();
        let clusters: HashSet<&str> = s.clusters.iter().map(|c| c.name.as_str()).collect();
        let routers: HashSet<&str> = s
            .interconnect
            .routers
            .iter()
            .map(|r| r.name.as_str())
            .collect();
        let provider_of = |net: &str| -> Option<ProviderKind> {
            networks
                .get(net)
                .and_then(|n| providers.get(n.provider.as_str()))
                .map(|p| p.kind)
        };

        for (i, n) in s.networks.iter().enumerate() {
            match providers.get(n.provider.as_str()) {
                None => self.err(
                    Code::RefDangling,
                    format!("spec.networks[{i}].provider"),
                    format!("network `{}` refers to provider `{}`, which is not declared", n.name, n.provider),
                ),
                Some(p) if !p.regions.is_empty() && !p.regions.contains(&n.region) => self.err(
                    Code::RefRegion,
                    format!("spec.networks[{i}].region"),
                    format!(
                        "network `{}` is in region `{}`, which provider `{}` does not list (regions: {})",
                        n.name,
                        n.region,
                        p.name,
                        p.regions.join(", ")
                    ),
                ),
                Some(_) => {}
            }
        }
        for (i, c) in s.clusters.iter().enumerate() {
            if !networks.contains_key(c.network.as_str()) {
                self.err(
                    Code::RefDangling,
                    format!("spec.clusters[{i}].network"),
                    format!(
                        "cluster `{}` refers to network `{}`, which is not declared",
                        c.name, c.network
                    ),
                );
            } else if let (Some(want), Some(have)) =
                (c.flavour.provider_kind(), provider_of(&c.network))
            {
                if want != have {
                    self.err(
                        Code::RefProviderKind,
                        format!("spec.clusters[{i}].flavour"),
                        format!(
                            "cluster `{}` is {:?} but its network `{}` is on {have}",
                            c.name, c.flavour, c.network
                        ),
                    );
                }
            }
            let ok = match c.cni.chaining {
                CniChaining::None => true,
                CniChaining::AwsVpcCni => c.flavour == ClusterFlavour::Eks,
                CniChaining::AzureCni => c.flavour == ClusterFlavour::Aks,
            };
            if !ok {
                self.err(
                    Code::CniChaining,
                    format!("spec.clusters[{i}].cni.chaining"),
                    format!(
                        "cluster `{}` ({:?}) cannot chain Cilium with {:?}",
                        c.name, c.flavour, c.cni.chaining
                    ),
                );
            }
        }
        for (i, v) in s.interconnect.vxcs.iter().enumerate() {
            if v.target.aws_connection.is_some() && v.target.kind != VxcTargetKind::AwsDirectConnect
            {
                self.err(
                    Code::RefProviderKind,
                    format!("spec.interconnect.vxcs[{i}].target.awsConnection"),
                    format!(
                        "VXC `{}` sets awsConnection but is an {}, not AWS Direct Connect",
                        v.name,
                        v.target.kind.label()
                    ),
                );
            }
            if !routers.contains(v.router.as_str()) {
                self.err(
                    Code::RefDangling,
                    format!("spec.interconnect.vxcs[{i}].router"),
                    format!(
                        "VXC `{}` refers to MCR `{}`, which is not declared",
                        v.name, v.router
                    ),
                );
            }
            if v.target.networks.is_empty() {
                self.err(
                    Code::RefDangling,
                    format!("spec.interconnect.vxcs[{i}].target.networks"),
                    format!("VXC `{}` reaches no network", v.name),
                );
            }
            for (j, n) in v.target.networks.iter().enumerate() {
                let path = format!("spec.interconnect.vxcs[{i}].target.networks[{j}]");
                if !networks.contains_key(n.as_str()) {
                    self.err(
                        Code::RefDangling,
                        path,
                        format!(
                            "VXC `{}` refers to network `{n}`, which is not declared",
                            v.name
                        ),
                    );
                } else if let Some(kind) = provider_of(n) {
                    if kind != v.target.kind.provider_kind() {
                        self.err(
                            Code::RefProviderKind,
                            path,
                            format!(
                                "VXC `{}` is an {} but network `{n}` is on {kind}",
                                v.name,
                                v.target.kind.label()
                            ),
                        );
                    }
                }
            }
        }
        for (i, p) in s.peerings.iter().enumerate() {
            if p.networks.len() != 2 || p.networks[0] == p.networks[1] {
                self.err(
                    Code::PeeringEndpoints,
                    format!("spec.peerings[{i}].networks"),
                    format!(
                        "peering `{}` must join exactly two distinct networks",
                        p.name
                    ),
                );
            }
            for (j, n) in p.networks.iter().enumerate() {
                let path = format!("spec.peerings[{i}].networks[{j}]");
                if !networks.contains_key(n.as_str()) {
                    self.err(
                        Code::RefDangling,
                        path,
                        format!(
                            "peering `{}` refers to network `{n}`, which is not declared",
                            p.name
                        ),
                    );
                } else if let Some(kind) = provider_of(n) {
                    if kind != p.kind.provider_kind() {
                        self.err(
                            Code::RefProviderKind,
                            path,
                            format!(
                                "peering `{}` is {:?} but network `{n}` is on {kind}",
                                p.name, p.kind
                            ),
                        );
                    }
                }
            }
        }
        for (i, g) in s.transit_gateways.iter().enumerate() {
            let at = format!("spec.transitGateways[{i}]");
            match providers.get(g.provider.as_str()) {
                None => self.err(
                    Code::RefDangling,
                    format!("{at}.provider"),
                    format!(
                        "transit gateway `{}` refers to provider `{}`, which is not declared",
                        g.name, g.provider
                    ),
                ),
                Some(p) if p.kind != ProviderKind::Aws => self.err(
                    Code::RefProviderKind,
                    format!("{at}.provider"),
                    format!(
                        "transit gateway `{}` is an AWS transit gateway but provider `{}` is {}",
                        g.name, g.provider, p.kind
                    ),
                ),
                Some(p) if !p.regions.is_empty() && !p.regions.contains(&g.region) => self.err(
                    Code::RefRegion,
                    format!("{at}.region"),
                    format!(
                        "transit gateway `{}` is in region `{}`, which provider `{}` does not list",
                        g.name, g.region, g.provider
                    ),
                ),
                Some(_) => {}
            }
            if !((64512..=65534).contains(&g.asn) || g.asn >= 4_200_000_000) {
                self.err(
                    Code::TgwAsn,
                    format!("{at}.asn"),
                    format!(
                        "transit gateway `{}` has ASN {}; AWS wants a private ASN (64512-65534 or 4200000000-4294967294)",
                        g.name, g.asn
                    ),
                );
            }
            let mut seen = HashSet::new();
            for (j, n) in g.networks.iter().enumerate() {
                let path = format!("{at}.networks[{j}]");
                if !seen.insert(n.as_str()) {
                    self.err(
                        Code::TgwAttachment,
                        path,
                        format!("transit gateway `{}` attaches network `{n}` twice", g.name),
                    );
                    continue;
                }
                match networks.get(n.as_str()) {
                    None => self.err(
                        Code::RefDangling,
                        path,
                        format!(
                            "transit gateway `{}` refers to network `{n}`, which is not declared",
                            g.name
                        ),
                    ),
                    Some(net) if net.provider != g.provider => self.err(
                        Code::RefProviderKind,
                        path,
                        format!(
                            "transit gateway `{}` is on provider `{}` but network `{n}` is on `{}`",
                            g.name, g.provider, net.provider
                        ),
                    ),
                    Some(net) if net.region != g.region => self.err(
                        Code::RefRegion,
                        path,
                        format!(
                            "transit gateway `{}` is in `{}` but network `{n}` is in `{}`; attachments are regional",
                            g.name, g.region, net.region
                        ),
                    ),
                    Some(_) => {}
                }
            }
            // Two ways to the same peer: both would write the VPC's route.
            for p in s
                .peerings
                .iter()
                .filter(|p| p.kind == PeeringKind::VpcPeering)
            {
                if p.networks.len() == 2 && p.networks.iter().all(|n| g.networks.contains(n)) {
                    self.err(
                        Code::TgwRouteConflict,
                        format!("{at}.networks"),
                        format!(
                            "networks `{}` and `{}` are joined by peering `{}` and by transit gateway `{}`; their VPC routes can point one way only",
                            p.networks[0], p.networks[1], p.name, g.name
                        ),
                    );
                }
            }
        }
        for (i, e) in s.private_endpoints.iter().enumerate() {
            match networks.get(e.network.as_str()) {
                None => self.err(
                    Code::RefDangling,
                    format!("spec.privateEndpoints[{i}].network"),
                    format!(
                        "private endpoint `{}` refers to network `{}`, which is not declared",
                        e.name, e.network
                    ),
                ),
                Some(n) => {
                    for (j, sn) in e.subnets.iter().enumerate() {
                        if !n.subnets.iter().any(|x| &x.name == sn) {
                            self.err(
                                Code::RefDangling,
                                format!("spec.privateEndpoints[{i}].subnets[{j}]"),
                                format!(
                                    "private endpoint `{}` refers to subnet `{sn}`, which network `{}` does not have",
                                    e.name, n.name
                                ),
                            );
                        }
                    }
                    self.private_endpoint_shape(i, e, provider_of(&e.network));
                }
            }
        }
        if let Some(m) = &s.monitoring {
            if !networks.contains_key(m.network.as_str()) {
                self.err(
                    Code::RefDangling,
                    "spec.monitoring.network",
                    format!("the monitoring network `{}` is not declared", m.network),
                );
            }
        }
        let workloads: HashSet<(&str, &str)> = s
            .namespaces
            .iter()
            .flat_map(|ns| {
                ns.workloads
                    .iter()
                    .map(move |w| (ns.name.as_str(), w.name.as_str()))
            })
            .collect();
        for (i, ns) in s.namespaces.iter().enumerate() {
            for (j, c) in ns.clusters.iter().enumerate() {
                if !clusters.contains(c.as_str()) {
                    self.err(
                        Code::RefDangling,
                        format!("spec.namespaces[{i}].clusters[{j}]"),
                        format!(
                            "namespace `{}` refers to cluster `{c}`, which is not declared",
                            ns.name
                        ),
                    );
                }
            }
            for (j, w) in ns.workloads.iter().enumerate() {
                for (k, d) in w.depends_on.iter().enumerate() {
                    let (dns, dname) = d
                        .workload
                        .split_once('/')
                        .unwrap_or((ns.name.as_str(), d.workload.as_str()));
                    if !workloads.contains(&(dns, dname)) {
                        self.err(
                            Code::RefDangling,
                            format!("spec.namespaces[{i}].workloads[{j}].dependsOn[{k}].workload"),
                            format!(
                                "workload `{}/{}` depends on `{dns}/{dname}`, which is not declared",
                                ns.name, w.name
                            ),
                        );
                    }
                }
            }
        }
        let services: HashSet<(&str, &str)> = s
            .namespaces
            .iter()
            .flat_map(|ns| {
                ns.workloads
                    .iter()
                    .map(move |w| (ns.name.as_str(), w.service_name()))
            })
            .collect();
        for (i, h) in s.load_balancing.hostnames.iter().enumerate() {
            if let Some(svc) = &h.service {
                let known = svc
                    .split_once('/')
                    .is_some_and(|(ns, name)| services.contains(&(ns, name)));
                if !known {
                    self.err(
                        Code::RefDangling,
                        format!("spec.loadBalancing.hostnames[{i}].service"),
                        format!(
                            "hostname `{}` is served by `{svc}`, which is not the `namespace/service` of a declared workload",
                            h.name
                        ),
                    );
                }
            }
            for (j, tg) in h.targets.iter().enumerate() {
                if !clusters.contains(tg.cluster.as_str()) {
                    self.err(
                        Code::RefDangling,
                        format!("spec.loadBalancing.hostnames[{i}].targets[{j}].cluster"),
                        format!(
                            "hostname `{}` targets cluster `{}`, which is not declared",
                            h.name, tg.cluster
                        ),
                    );
                }
            }
        }
    }

    fn invalid_cidr(&mut self, c: &Cidr, path: String, owner: &str) {
        if let Cidr::Invalid { reason, .. } = c {
            self.err(Code::CidrInvalid, path, format!("{owner}: {reason}"));
        }
    }

    fn cidrs(&mut self, t: &Topology) {
        for (i, n) in t.spec.networks.iter().enumerate() {
            if n.cidrs.is_empty() {
                self.err(
                    Code::CidrInvalid,
                    format!("spec.networks[{i}].cidrs"),
                    format!("network `{}` has no CIDR", n.name),
                );
            }
            for (j, c) in n.cidrs.iter().enumerate() {
                if c.is_auto() {
                    self.err(
                        Code::CidrInvalid,
                        format!("spec.networks[{i}].cidrs[{j}]"),
                        format!(
                            "network `{}`: a network's CIDR must be given, not auto",
                            n.name
                        ),
                    );
                }
                self.invalid_cidr(
                    c,
                    format!("spec.networks[{i}].cidrs[{j}]"),
                    &format!("network `{}`", n.name),
                );
            }
            let nets: Vec<IpNet> = n.cidrs.iter().filter_map(Cidr::net).collect();
            let mut subnets: Vec<(IpNet, usize)> = Vec::new();
            for (j, s) in n.subnets.iter().enumerate() {
                let path = format!("spec.networks[{i}].subnets[{j}].cidr");
                self.invalid_cidr(
                    &s.cidr,
                    path.clone(),
                    &format!("subnet `{}` of network `{}`", s.name, n.name),
                );
                if let Some(sn) = s.cidr.net() {
                    if !nets.is_empty() && !nets.iter().any(|p| p.contains(&sn)) {
                        self.err(
                            Code::SubnetOutsideNetwork,
                            path.clone(),
                            format!(
                                "subnet `{}` ({sn}) is outside network `{}` ({})",
                                s.name,
                                n.name,
                                nets.iter()
                                    .map(|x| x.to_string())
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            ),
                        );
                    }
                    if let Some((other, k)) = subnets
                        .iter()
                        .find(|(o, _)| o.contains(&sn) || sn.contains(o))
                    {
                        self.err(
                            Code::CidrOverlap,
                            path,
                            format!(
                                "subnet `{}` ({sn}) overlaps subnet `{}` ({other}) in network `{}`",
                                s.name, n.subnets[*k].name, n.name
                            ),
                        );
                    }
                    subnets.push((sn, j));
                }
            }
        }
        for (i, c) in t.spec.clusters.iter().enumerate() {
            self.invalid_cidr(
                &c.pod_cidr,
                format!("spec.clusters[{i}].podCidr"),
                &format!("cluster `{}` pod CIDR", c.name),
            );
            self.invalid_cidr(
                &c.service_cidr,
                format!("spec.clusters[{i}].serviceCidr"),
                &format!("cluster `{}` service CIDR", c.name),
            );
        }
        for (i, v) in t.spec.interconnect.vxcs.iter().enumerate() {
            for (dir, list) in [
                ("import", &v.bgp.prefix_filters.import),
                ("export", &v.bgp.prefix_filters.export),
            ] {
                for (j, c) in list.iter().enumerate() {
                    self.invalid_cidr(
                        c,
                        format!("spec.interconnect.vxcs[{i}].bgp.prefixFilters.{dir}[{j}]"),
                        &format!("VXC `{}` {dir} filter", v.name),
                    );
                }
            }
            for (j, p) in v.bgp.peers.iter().enumerate() {
                if let Cidr::Invalid { raw, .. } = &p.local_address {
                    // Interface addresses carry host bits; only reject what is not an address at all.
                    if raw.parse::<IpNet>().is_err() {
                        self.err(
                            Code::CidrInvalid,
                            format!("spec.interconnect.vxcs[{i}].bgp.peers[{j}].localAddress"),
                            format!(
                                "VXC `{}` BGP peer: `{raw}` is not an address with prefix length",
                                v.name
                            ),
                        );
                    }
                }
                if p.peer_address.parse::<std::net::IpAddr>().is_err() {
                    self.err(
                        Code::CidrInvalid,
                        format!("spec.interconnect.vxcs[{i}].bgp.peers[{j}].peerAddress"),
                        format!(
                            "VXC `{}` BGP peer: `{}` is not an IP address",
                            v.name, p.peer_address
                        ),
                    );
                }
            }
        }
        if let Some(pools) = &t.spec.ipam {
            for (f, c) in [("pods", &pools.pods), ("services", &pools.services)] {
                if let Some(c) = c {
                    self.invalid_cidr(c, format!("spec.ipam.{f}"), &format!("IPAM pool `{f}`"));
                }
            }
        }
    }

    /// Overlaps among network, pod and service prefixes that can route to
    /// each other. A sweep over prefixes sorted by start address: prefixes
    /// either nest or are disjoint, so a stack of enclosing prefixes finds
    /// every overlapping pair in O(n log n + overlaps).
    fn overlaps(&mut self, t: &Topology, conn: &Connectivity<'_>) {
        let mut entries: Vec<(IpNet, Owner)> = Vec::new();
        for (i, n) in t.spec.networks.iter().enumerate() {
            for (j, c) in n.cidrs.iter().enumerate() {
                if let Some(net) = c.net() {
                    entries.push((
                        net,
                        Owner {
                            label: format!("network `{}`", n.name),
                            path: format!("spec.networks[{i}].cidrs[{j}]"),
                            network: Some(i),
                            cluster: None,
                            kind: OwnerKind::Network,
                        },
                    ));
                }
            }
        }
        for (i, c) in t.spec.clusters.iter().enumerate() {
            let home = conn.network_index(&c.network);
            for (kind, cidr, field, what) in [
                (OwnerKind::Pods, &c.pod_cidr, "podCidr", "pod CIDR"),
                (
                    OwnerKind::Services,
                    &c.service_cidr,
                    "serviceCidr",
                    "service CIDR",
                ),
            ] {
                if let Some(net) = cidr.net() {
                    entries.push((
                        net,
                        Owner {
                            label: format!("cluster `{}` {what}", c.name),
                            path: format!("spec.clusters[{i}].{field}"),
                            network: home,
                            cluster: Some(i),
                            kind,
                        },
                    ));
                }
            }
        }
        entries.sort_by(|(a, _), (b, _)| {
            let (fa, sa, ea) = span(a);
            let (fb, sb, eb) = span(b);
            (fa, sa, std::cmp::Reverse(ea)).cmp(&(fb, sb, std::cmp::Reverse(eb)))
        });
        let mut stack: Vec<usize> = Vec::new();
        let mut reported: HashSet<(usize, usize)> = HashSet::new();
        for i in 0..entries.len() {
            let (fi, si, _) = span(&entries[i].0);
            while let Some(&top) = stack.last() {
                let (ft, _, et) = span(&entries[top].0);
                if ft != fi || et < si {
                    stack.pop();
                } else {
                    break;
                }
            }
            for &j in &stack {
                let (a, b) = (&entries[j], &entries[i]);
                if self.routable_overlap(t, conn, &a.1, &b.1) && reported.insert((j, i)) {
                    self.err(
                        Code::CidrOverlap,
                        b.1.path.clone(),
                        format!("{} {} overlaps {} {}", b.1.label, b.0, a.1.label, a.0),
                    );
                }
            }
            stack.push(i);
        }
    }

    fn routable_overlap(
        &self,
        t: &Topology,
        conn: &Connectivity<'_>,
        a: &Owner,
        b: &Owner,
    ) -> bool {
        // A chained cluster takes pod IPs from its own VPC/VNet.
        let chained_in = |o: &Owner, other: &Owner| {
            o.kind == OwnerKind::Pods
                && other.kind == OwnerKind::Network
                && o.network == other.network
                && o.cluster
                    .map(|c| t.spec.clusters[c].cni.chaining != CniChaining::None)
                    .unwrap_or(false)
        };
        if chained_in(a, b) || chained_in(b, a) {
            return false;
        }
        match (a.network, b.network) {
            (Some(x), Some(y)) => conn.reachable(x, y),
            // An unknown home network is reported as a dangling reference;
            // still flag the overlap within one cluster.
            _ => a.cluster.is_some() && a.cluster == b.cluster,
        }
    }

    fn cluster_mesh(&mut self, t: &Topology) {
        let mut ids: HashMap<u32, &str> = HashMap::new();
        let mut names: HashMap<&str, &str> = HashMap::new();
        let mut pods: Vec<(IpNet, usize)> = Vec::new();
        for (i, c) in t.spec.clusters.iter().enumerate() {
            let Some(m) = &c.cluster_mesh else { continue };
            let base = format!("spec.clusters[{i}].clusterMesh");
            if !(1..=255).contains(&m.id) {
                self.err(
                    Code::ClustermeshIdRange,
                    format!("{base}.id"),
                    format!(
                        "cluster `{}` has ClusterMesh id {}; ids must be 1–255",
                        c.name, m.id
                    ),
                );
            } else if let Some(other) = ids.insert(m.id, &c.name) {
                self.err(
                    Code::ClustermeshIdDuplicate,
                    format!("{base}.id"),
                    format!(
                        "clusters `{other}` and `{}` both have ClusterMesh id {}",
                        c.name, m.id
                    ),
                );
            }
            let valid = !m.name.is_empty()
                && m.name.len() <= 32
                && m.name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !m.name.starts_with('-')
                && !m.name.ends_with('-');
            if !valid {
                self.err(
                    Code::ClustermeshNameInvalid,
                    format!("{base}.name"),
                    format!(
                        "cluster `{}` has ClusterMesh name `{}`; names are 1–32 characters of [a-z0-9-], starting and ending alphanumeric",
                        c.name, m.name
                    ),
                );
            } else if let Some(other) = names.insert(&m.name, &c.name) {
                self.err(
                    Code::ClustermeshNameDuplicate,
                    format!("{base}.name"),
                    format!(
                        "clusters `{other}` and `{}` both have ClusterMesh name `{}`",
                        c.name, m.name
                    ),
                );
            }
            if let Some(p) = c.pod_cidr.net() {
                pods.push((p, i));
            }
        }
        // Sort by start: overlapping prefixes nest, so compare with the last
        // enclosing one on a stack.
        pods.sort_by_key(|(n, _)| {
            let (f, s, e) = span(n);
            (f, s, std::cmp::Reverse(e))
        });
        let mut stack: Vec<(IpNet, usize)> = Vec::new();
        for (net, i) in pods {
            while stack.last().is_some_and(|(top, _)| !top.contains(&net)) {
                stack.pop();
            }
            for (other, j) in &stack {
                self.err(
                    Code::ClustermeshPodCidrOverlap,
                    format!("spec.clusters[{i}].podCidr"),
                    format!(
                        "ClusterMesh clusters `{}` ({net}) and `{}` ({other}) have overlapping pod CIDRs",
                        t.spec.clusters[i].name, t.spec.clusters[*j].name
                    ),
                );
            }
            stack.push((net, i));
        }
    }

    fn megaport(&mut self, t: &Topology) {
        let ic = &t.spec.interconnect;
        for (i, r) in ic.routers.iter().enumerate() {
            if !MCR_SPEEDS_MBPS.contains(&r.speed_mbps) {
                self.err(
                    Code::MegaportSpeed,
                    format!("spec.interconnect.routers[{i}].speedMbps"),
                    format!(
                        "MCR `{}` speed {} Mbps is not one Megaport sells (1000, 2500, 5000, 10000, 25000, 50000, 100000)",
                        r.name, r.speed_mbps
                    ),
                );
            }
            if r.asn == 0 || r.asn == 23456 || r.asn > u32::MAX - 1 {
                self.err(
                    Code::MegaportAsn,
                    format!("spec.interconnect.routers[{i}].asn"),
                    format!("MCR `{}` ASN {} is not usable", r.name, r.asn),
                );
            }
            let vxcs: Vec<(usize, &Vxc)> = ic
                .vxcs
                .iter()
                .enumerate()
                .filter(|(_, v)| v.router == r.name)
                .collect();
            let total: u64 = vxcs.iter().map(|(_, v)| v.rate_limit_mbps as u64).sum();
            if MCR_SPEEDS_MBPS.contains(&r.speed_mbps) && total > r.speed_mbps as u64 {
                self.err(
                    Code::MegaportOversubscribed,
                    format!("spec.interconnect.routers[{i}].speedMbps"),
                    format!(
                        "VXCs on MCR `{}` ({}) sum to {total} Mbps, over its {} Mbps speed",
                        r.name,
                        vxcs.iter()
                            .map(|(_, v)| format!("{} {} Mbps", v.name, v.rate_limit_mbps))
                            .collect::<Vec<_>>()
                            .join(", "),
                        r.speed_mbps
                    ),
                );
            }
            let mut vlans: HashMap<u16, &str> = HashMap::new();
            for (vi, v) in vxcs {
                if let Some(vlan) = v.vlan {
                    if let Some(other) = vlans.insert(vlan, &v.name) {
                        self.err(
                            Code::MegaportVlanDuplicate,
                            format!("spec.interconnect.vxcs[{vi}].vlan"),
                            format!(
                                "VXCs `{other}` and `{}` both use VLAN {vlan} on MCR `{}`",
                                v.name, r.name
                            ),
                        );
                    }
                }
            }
        }
        for (i, v) in ic.vxcs.iter().enumerate() {
            if let Some(vlan) = v.vlan {
                if !(2..=4093).contains(&vlan) {
                    self.err(
                        Code::MegaportVlanRange,
                        format!("spec.interconnect.vxcs[{i}].vlan"),
                        format!("VXC `{}` VLAN {vlan} is outside 2–4093", v.name),
                    );
                }
            }
            if v.rate_limit_mbps == 0 {
                self.err(
                    Code::MegaportRateLimit,
                    format!("spec.interconnect.vxcs[{i}].rateLimitMbps"),
                    format!("VXC `{}` has a zero rate limit", v.name),
                );
            }
        }
    }

    /// Published provider limits.
    fn limits(&mut self, t: &Topology, conn: &Connectivity<'_>) {
        let s = &t.spec;
        // AWS: active peerings per VPC.
        let mut per_vpc: BTreeMap<&str, usize> = BTreeMap::new();
        for p in s
            .peerings
            .iter()
            .filter(|p| p.kind == PeeringKind::VpcPeering)
        {
            for n in p.networks.iter().collect::<BTreeSet<_>>() {
                *per_vpc.entry(n.as_str()).or_default() += 1;
            }
        }
        for (vpc, count) in per_vpc {
            if count > s.limits.aws_peerings_per_vpc as usize {
                let i = conn.network_index(vpc).unwrap_or(0);
                self.err(
                    Code::AwsPeeringLimit,
                    format!("spec.networks[{i}]"),
                    format!(
                        "VPC `{vpc}` has {count} VPC peerings; AWS allows {} per VPC (the default quota is 50, adjustable to 125: raise spec.limits.awsPeeringsPerVpc once granted)",
                        s.limits.aws_peerings_per_vpc
                    ),
                );
            }
        }
        // AWS Direct Connect: prefixes advertised to AWS over a private VIF.
        for (i, v) in s.interconnect.vxcs.iter().enumerate() {
            if v.target.kind != VxcTargetKind::AwsDirectConnect {
                continue;
            }
            let advertised = advertised_prefixes(t, conn, i);
            let limit = s.limits.aws_dx_private_vif_prefixes as usize;
            if advertised.len() > limit {
                let aggregated = IpNet::aggregate(&advertised);
                let hint = if aggregated.len() <= limit {
                    format!(
                        "aggregating them gives {} prefixes: set bgp.prefixFilters.export to {}",
                        aggregated.len(),
                        summarize(&aggregated, 6)
                    )
                } else {
                    format!(
                        "even aggregated they are {}; advertise covering supernets in bgp.prefixFilters.export",
                        aggregated.len()
                    )
                };
                self.err(
                    Code::AwsDxPrefixLimit,
                    format!("spec.interconnect.vxcs[{i}].bgp.prefixFilters.export"),
                    format!(
                        "VXC `{}` would advertise {} prefixes to AWS; a Direct Connect private VIF accepts at most {limit}; {hint}",
                        v.name,
                        advertised.len()
                    ),
                );
            }
        }
    }

    fn single_points_of_failure(&mut self, t: &Topology, conn: &Connectivity<'_>) {
        let s = &t.spec;
        // Group networks by the set of routers they attach to: a router is a
        // single point of failure when two groups share only it (and the pair
        // is not also peered).
        let mut groups: BTreeMap<BTreeSet<usize>, Vec<usize>> = BTreeMap::new();
        for n in 0..s.networks.len() {
            let rs = conn.routers_of(n);
            if !rs.is_empty() {
                groups.entry(rs).or_default().push(n);
            }
        }
        let groups: Vec<(BTreeSet<usize>, Vec<usize>)> = groups.into_iter().collect();
        let mut spof: BTreeMap<usize, (usize, usize)> = BTreeMap::new();
        for (gi, (ra, na)) in groups.iter().enumerate() {
            for (rb, nb) in &groups[gi..] {
                let common: Vec<usize> = ra.intersection(rb).copied().collect();
                if common.len() != 1 || spof.contains_key(&common[0]) {
                    continue;
                }
                // Find a pair that is connected only through that router.
                let pair = na.iter().find_map(|&a| {
                    nb.iter()
                        .find(|&&b| a != b && !conn.peered(a, b) && conn.reachable(a, b))
                        .map(|&b| (a, b))
                });
                if let Some(p) = pair {
                    spof.insert(common[0], p);
                }
            }
        }
        for (r, (a, b)) in spof {
            let router = &s.interconnect.routers[r];
            self.warn(
                Code::SpofMcr,
                format!("spec.interconnect.routers[{r}]"),
                format!(
                    "MCR `{}` is a single point of failure: networks `{}` and `{}` (and maybe others) connect only through it; the ADR's mitigation is a redundant MCR in another diversity zone",
                    router.name, s.networks[a].name, s.networks[b].name
                ),
            );
        }
        for (i, n) in s.networks.iter().enumerate() {
            if conn.vxc_count(i) == 1 {
                let vxc = s
                    .interconnect
                    .vxcs
                    .iter()
                    .find(|v| v.target.networks.contains(&n.name))
                    .map(|v| v.name.as_str())
                    .unwrap_or("?");
                self.warn(
                    Code::SpofVxc,
                    format!("spec.networks[{i}]"),
                    format!(
                        "network `{}` reaches the interconnect through one VXC only (`{vxc}`)",
                        n.name
                    ),
                );
            }
        }
    }

    fn monitoring(&mut self, t: &Topology, conn: &Connectivity<'_>) {
        let Some(m) = &t.spec.monitoring else { return };
        let Some(mi) = conn.network_index(&m.network) else {
            return;
        };
        for (i, n) in t.spec.networks.iter().enumerate() {
            if n.role == NetworkRole::Workload && !conn.reachable(mi, i) {
                self.warn(
                    Code::MonitoringUnreachable,
                    format!("spec.networks[{i}]"),
                    format!(
                        "monitoring network `{}` cannot reach workload network `{}`",
                        m.network, n.name
                    ),
                );
            }
        }
    }
}

/// The prefixes an MCR advertises over VXC `vxc`: what it learns from its
/// other VXCs (their networks, and native-routed pod CIDRs of clusters in
/// them), narrowed by the VXC's export filter when one is set.
pub fn advertised_prefixes(t: &Topology, conn: &Connectivity<'_>, vxc: usize) -> Vec<IpNet> {
    let s = &t.spec;
    let v = &s.interconnect.vxcs[vxc];
    let export: Vec<IpNet> = v
        .bgp
        .prefix_filters
        .export
        .iter()
        .filter_map(Cidr::net)
        .collect();
    if !export.is_empty() {
        return export;
    }
    let own: HashSet<&str> = v.target.networks.iter().map(String::as_str).collect();
    let mut learned: BTreeSet<IpNet> = BTreeSet::new();
    for (oi, other) in s.interconnect.vxcs.iter().enumerate() {
        if oi == vxc || other.router != v.router {
            continue;
        }
        let import: Vec<IpNet> = other
            .bgp
            .prefix_filters
            .import
            .iter()
            .filter_map(Cidr::net)
            .collect();
        let accept = |p: &IpNet| import.is_empty() || import.iter().any(|f| f.contains(p));
        for name in other
            .target
            .networks
            .iter()
            .filter(|n| !own.contains(n.as_str()))
        {
            let Some(ni) = conn.network_index(name) else {
                continue;
            };
            for p in s.networks[ni].cidrs.iter().filter_map(Cidr::net) {
                if accept(&p) {
                    learned.insert(p);
                }
            }
            for c in s
                .clusters
                .iter()
                .filter(|c| &c.network == name && c.cni.mode == CniMode::Native)
            {
                if let Some(p) = c.pod_cidr.net() {
                    if accept(&p) {
                        learned.insert(p);
                    }
                }
            }
        }
    }
    learned.into_iter().collect()
}

fn summarize(list: &[IpNet], max: usize) -> String {
    let mut s: Vec<String> = list.iter().take(max).map(|p| p.to_string()).collect();
    if list.len() > max {
        s.push(format!("… ({} more)", list.len() - max));
    }
    format!("[{}]", s.join(", "))
}

impl Validator {
    /// What each cloud's private endpoints need: Azure and GCP put one in
    /// exactly one subnet; only Azure names a sub-resource; GCP reaches a
    /// service attachment.
    fn private_endpoint_shape(
        &mut self,
        i: usize,
        e: &PrivateEndpoint,
        kind: Option<ProviderKind>,
    ) {
        let at = format!("spec.privateEndpoints[{i}]");
        if e.subresource.is_some() && kind != Some(ProviderKind::Azure) {
            self.err(
                Code::PrivateEndpointSubresource,
                format!("{at}.subresource"),
                format!(
                    "private endpoint `{}`: only Azure private endpoints take a subresource",
                    e.name
                ),
            );
        }
        if matches!(kind, Some(ProviderKind::Azure | ProviderKind::Gcp)) && e.subnets.len() != 1 {
            self.err(
                Code::PrivateEndpointSubnets,
                format!("{at}.subnets"),
                format!(
                    "private endpoint `{}` is on {}, where a private endpoint lives in exactly one subnet, not {}",
                    e.name,
                    kind.map(|k| k.to_string()).unwrap_or_default(),
                    e.subnets.len()
                ),
            );
        }
        if kind == Some(ProviderKind::Gcp) && service_attachment_region(&e.service).is_none() {
            self.err(
                Code::PrivateEndpointService,
                format!("{at}.service"),
                format!(
                    "private endpoint `{}`: `{}` is not a GCP service attachment (projects/PROJECT/regions/REGION/serviceAttachments/NAME)",
                    e.name, e.service
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::synth::synthetic;
    use super::*;

    /// A topology with one network and one cluster, named as given.
    fn named(network: &str, subnet: &str, cluster: &str) -> String {
        format!(
            "apiVersion: mcnet.io/v1alpha1\nkind: Topology\nmetadata: {{name: t}}\nspec:\n  providers: [{{name: aws, kind: aws, regions: [us-east-1]}}]\n  networks:\n    - {{name: '{network}', provider: aws, region: us-east-1, cidrs: [10.0.0.0/16], subnets: [{{name: '{subnet}', cidr: 10.0.1.0/24}}]}}\n  clusters:\n    - {{name: '{cluster}', flavour: eks, network: '{network}', podCidr: 10.100.0.0/16, serviceCidr: 10.200.0.0/20}}\n"
        )
    }

    fn invalid_names(y: &str) -> Vec<String> {
        validate_str(y)
            .errors
            .iter()
            .filter(|d| d.code == Code::NameInvalid)
            .map(|d| d.path.clone())
            .collect()
    }

    #[test]
    fn names_that_would_collide_as_ids_or_escape_as_paths_are_refused_with_their_path() {
        assert!(validate_str(&named("n", "a", "c")).valid);
        // `n/a` + `b` and `n` + `a/b` both spelled `subnet/n/a/b` once.
        assert_eq!(
            invalid_names(&named("n/a", "b", "c")),
            ["spec.networks[0].name"]
        );
        assert_eq!(
            invalid_names(&named("n", "a/b", "c")),
            ["spec.networks[0].subnets[0].name"]
        );
        for cluster in ["../../../escape", "/tmp/x", "..", "Prod", "a_b"] {
            assert_eq!(
                invalid_names(&named("n", "a", cluster)),
                ["spec.clusters[0].name"],
                "{cluster}"
            );
        }
        // Every problem at once, each with its path.
        let r = validate_str(&named("n:x", "s/1", "../c"));
        let paths: Vec<&str> = r
            .errors
            .iter()
            .filter(|d| d.code == Code::NameInvalid)
            .map(|d| d.path.as_str())
            .collect();
        assert_eq!(
            paths,
            [
                "spec.networks[0].name",
                "spec.clusters[0].name",
                "spec.networks[0].subnets[0].name"
            ]
        );
        assert!(r.errors[0].message.contains("`n:x`"), "{}", r.errors[0]);
    }

    #[test]
    fn every_name_field_is_a_label() {
        let y = "apiVersion: mcnet.io/v1alpha1\nkind: Topology\nmetadata: {name: 'prod:x'}\nspec:\n  providers: [{name: AWS, kind: aws, regions: [us-east-1]}]\n  networks: [{name: n, provider: AWS, region: us-east-1, cidrs: [10.0.0.0/16], subnets: [{name: s, cidr: 10.0.1.0/24}]}]\n  interconnect:\n    routers: [{name: r.1, location: X, speedMbps: 1000, asn: 133937}]\n    vxcs: [{name: 'v 1', router: r.1, target: {kind: aws-direct-connect, networks: [n]}, rateLimitMbps: 100}]\n  peerings: [{name: p/1, kind: vpc-peering, networks: [n, n]}]\n  transitGateways: [{name: -g, provider: AWS, region: us-east-1, networks: [n]}]\n  privateEndpoints: [{name: e_1, network: n, service: com.amazonaws.us-east-1.s3, subnets: [s]}]\n  monitoring: {network: n, components: [{name: Graf, kind: grafana}]}\n  namespaces: [{name: ns., clusters: [], workloads: [{name: w/x, service: S, ports: [{name: Http, port: 80}]}]}]\n  loadBalancing: {hostnames: [{name: 'a..b', targets: []}]}\n";
        let got: BTreeSet<String> = invalid_names(y).into_iter().collect();
        let want: BTreeSet<String> = [
            "metadata.name",
            "spec.providers[0].name",
            "spec.interconnect.routers[0].name",
            "spec.interconnect.vxcs[0].name",
            "spec.peerings[0].name",
            "spec.transitGateways[0].name",
            "spec.privateEndpoints[0].name",
            "spec.monitoring.components[0].name",
            "spec.namespaces[0].name",
            "spec.namespaces[0].workloads[0].name",
            "spec.namespaces[0].workloads[0].service",
            "spec.namespaces[0].workloads[0].ports[0].name",
            "spec.loadBalancing.hostnames[0].name",
        ]
        .into_iter()
        .map(String::from)
        .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn direct_connect_prefix_limit_suggests_aggregation() {
        let mut t = synthetic(300, 0);
        for v in t
            .spec
            .interconnect
            .vxcs
            .iter_mut()
            .filter(|v| v.target.kind == VxcTargetKind::AwsDirectConnect)
        {
            v.bgp.prefix_filters.export.clear();
        }
        let r = validate(&t);
        let e: Vec<_> = r
            .errors
            .iter()
            .filter(|d| d.code == Code::AwsDxPrefixLimit)
            .collect();
        assert_eq!(e.len(), 2, "{:?}", r.errors);
        assert!(
            e[0].message.contains("200 prefixes") && e[0].message.contains("at most 100"),
            "{}",
            e[0].message
        );
        assert!(e[0].message.contains("aggregat"), "{}", e[0].message);
    }

    #[test]
    fn aws_connection_is_for_direct_connect_only() {
        let mut t = synthetic(6, 0);
        let i = t
            .spec
            .interconnect
            .vxcs
            .iter()
            .position(|v| v.target.kind != VxcTargetKind::AwsDirectConnect)
            .unwrap();
        t.spec.interconnect.vxcs[i].target.aws_connection = Some(AwsConnection::HostedVif);
        let r = validate(&t);
        assert!(
            r.errors.iter().any(|d| d.code == Code::RefProviderKind
                && d.path == format!("spec.interconnect.vxcs[{i}].target.awsConnection")),
            "{:?}",
            r.errors
        );
    }

    #[test]
    fn private_endpoints_are_checked_per_cloud() {
        let codes = |pe: &str| -> Vec<(Code, String)> {
            let y = format!(
                "apiVersion: mcnet.io/v1alpha1\nkind: Topology\nmetadata: {{name: t}}\nspec:\n  providers: [{{name: aws, kind: aws, regions: [us-east-1]}}, {{name: az, kind: azure, regions: [eastus]}}, {{name: g, kind: gcp, regions: [us-east4]}}]\n  networks:\n    - {{name: a, provider: aws, region: us-east-1, cidrs: [10.0.0.0/16], subnets: [{{name: s1, cidr: 10.0.1.0/24, zone: us-east-1a}}, {{name: s2, cidr: 10.0.2.0/24, zone: us-east-1b}}]}}\n    - {{name: z, provider: az, region: eastus, cidrs: [10.3.0.0/16], subnets: [{{name: s1, cidr: 10.3.1.0/24}}, {{name: s2, cidr: 10.3.2.0/24}}]}}\n    - {{name: g, provider: g, region: us-east4, cidrs: [10.4.0.0/16], subnets: [{{name: s1, cidr: 10.4.1.0/24}}]}}\n  privateEndpoints: [{pe}]\n"
            );
            let r = validate_str(&y);
            r.errors.iter().map(|d| (d.code, d.path.clone())).collect()
        };
        let pair = |c: Code, p: &str| (c, format!("spec.privateEndpoints[0].{p}"));
        let blob =
            "/subscriptions/s/resourceGroups/r/providers/Microsoft.Storage/storageAccounts/acct";
        let attachment = "projects/p/regions/us-east4/serviceAttachments/db";
        // Well-formed on each cloud.
        for pe in [
            "{name: e, network: a, service: com.amazonaws.us-east-1.s3, subnets: [s1, s2]}"
                .to_string(),
            format!("{{name: e, network: z, service: {blob}, subresource: blob, subnets: [s1]}}"),
            format!("{{name: e, network: g, service: {attachment}, subnets: [s1]}}"),
        ] {
            assert!(codes(&pe).is_empty(), "{pe}: {:?}", codes(&pe));
        }
        assert_eq!(
            codes(&format!(
                "{{name: e, network: z, service: {blob}, subresource: blob, subnets: [s1, s2]}}"
            )),
            [pair(Code::PrivateEndpointSubnets, "subnets")]
        );
        assert_eq!(
            codes("{name: e, network: a, service: com.amazonaws.us-east-1.s3, subresource: blob, subnets: [s1]}"),
            [pair(Code::PrivateEndpointSubresource, "subresource")]
        );
        assert_eq!(
            codes("{name: e, network: g, service: all-apis, subnets: [s1]}"),
            [pair(Code::PrivateEndpointService, "service")]
        );
    }

    #[test]
    fn transit_gateways_are_checked() {
        let y = |tgw: &str| {
            format!(
                "apiVersion: mcnet.io/v1alpha1\nkind: Topology\nmetadata: {{name: t}}\nspec:\n  providers: [{{name: aws, kind: aws, regions: [us-east-1, eu-west-1]}}, {{name: az, kind: azure, regions: [eastus]}}]\n  networks:\n    - {{name: a, provider: aws, region: us-east-1, cidrs: [10.0.0.0/16]}}\n    - {{name: b, provider: aws, region: us-east-1, cidrs: [10.1.0.0/16]}}\n    - {{name: e, provider: aws, region: eu-west-1, cidrs: [10.2.0.0/16]}}\n    - {{name: z, provider: az, region: eastus, cidrs: [10.3.0.0/16]}}\n  peerings: [{{name: ab, kind: vpc-peering, networks: [a, b]}}]\n  transitGateways: [{tgw}]\n"
            )
        };
        let codes = |tgw: &str| -> Vec<(Code, String)> {
            let r = validate_str(&y(tgw));
            r.errors.iter().map(|d| (d.code, d.path.clone())).collect()
        };
        assert!(codes("{name: hub, provider: aws, region: us-east-1, networks: [a]}").is_empty());
        assert_eq!(
            codes("{name: hub, provider: aws, region: us-east-1, networks: [a, e]}"),
            [(
                Code::RefRegion,
                "spec.transitGateways[0].networks[1]".to_string()
            )]
        );
        assert_eq!(
            codes("{name: hub, provider: aws, region: us-east-1, networks: [a, z]}")[0].0,
            Code::RefProviderKind
        );
        assert_eq!(
            codes("{name: hub, provider: aws, region: us-east-1, asn: 65000000, networks: [a]}")[0],
            (Code::TgwAsn, "spec.transitGateways[0].asn".to_string())
        );
        assert_eq!(
            codes("{name: hub, provider: aws, region: us-east-1, networks: [a, b]}")[0].0,
            Code::TgwRouteConflict
        );
        assert_eq!(
            codes("{name: hub, provider: az, region: eastus, networks: [z]}")[0].0,
            Code::RefProviderKind
        );
    }

    #[test]
    fn peerings_per_vpc_are_limited() {
        let mut t = synthetic(60, 0);
        t.spec.peerings.clear();
        for i in (3..60).step_by(3) {
            t.spec.peerings.push(Peering {
                name: format!("p{i}"),
                kind: PeeringKind::VpcPeering,
                networks: vec!["net-0".into(), format!("net-{i}")],
            });
        }
        assert!(validate(&t).valid, "19 peerings are fine");
        let mut big = synthetic(200, 0);
        big.spec.peerings.clear();
        for i in (3..200).step_by(3) {
            big.spec.peerings.push(Peering {
                name: format!("p{i}"),
                kind: PeeringKind::VpcPeering,
                networks: vec!["net-0".into(), format!("net-{i}")],
            });
        }
        let r = validate(&big);
        let e: Vec<_> = r
            .errors
            .iter()
            .filter(|d| d.code == Code::AwsPeeringLimit)
            .collect();
        assert_eq!(e.len(), 1, "{:?}", r.errors);
        assert!(
            e[0].message.contains("net-0") && e[0].message.contains("66 VPC peerings"),
            "{}",
            e[0].message
        );
    }

    #[test]
    fn ipam_exhaustion_names_the_cluster_and_pool() {
        let mut t = synthetic(4, 4);
        t.spec.ipam = Some(IpamPools {
            pods: Some("10.200.0.0/15".parse().unwrap()),
            services: None,
        });
        for c in &mut t.spec.clusters {
            c.pod_cidr = Cidr::Auto;
        }
        let r = validate(&t);
        let e: Vec<_> = r
            .errors
            .iter()
            .filter(|d| d.code == Code::IpamExhausted)
            .collect();
        assert_eq!(e.len(), 2, "two /16s fit in a /15: {:?}", r.errors);
        assert!(
            e[0].message.contains("cluster-2") && e[0].message.contains("10.200.0.0/15"),
            "{}",
            e[0].message
        );
        assert_eq!(e[0].path, "spec.clusters[2].podCidr");
    }
}
