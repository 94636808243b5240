//! ClusterMesh, Megaport, published cloud limits, single points of
//! failure and the monitoring network's reach.

use super::*;

impl Validator {
    pub(super) fn cluster_mesh(&mut self, t: &Topology) {
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

    pub(super) fn megaport(&mut self, t: &Topology) {
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
    pub(super) fn limits(&mut self, t: &Topology, conn: &Connectivity<'_>) {
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

    pub(super) fn single_points_of_failure(&mut self, t: &Topology, conn: &Connectivity<'_>) {
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
                        .find(|&&b| {
                            a != b
                                && !conn.peered(a, b)
                                && !conn.vpn_between(a, b)
                                && conn.reachable(a, b)
                        })
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
                    "MCR `{}` is a single point of failure: networks `{}` and `{}` (and maybe others) connect only through it; the ADR's mitigations: a redundant MCR in another diversity zone, or an internet VPN backup between them (spec.vpnBackups: [{{name: ..., networks: [{}, {}]}}])",
                    router.name, s.networks[a].name, s.networks[b].name, s.networks[a].name, s.networks[b].name
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

    pub(super) fn monitoring(&mut self, t: &Topology, conn: &Connectivity<'_>) {
        let Some(m) = &t.spec.monitoring else { return };
        let a = &m.alerts;
        let ratio = |v: f64| v.is_finite() && v > 0.0 && v < 1.0;
        let positive = |v: f64| v.is_finite() && v > 0.0;
        for (field, ok, value, want) in [
            (
                "latencyP95Ms",
                positive(a.latency_p95_ms),
                a.latency_p95_ms,
                "a positive number of milliseconds",
            ),
            (
                "packetLossRatio",
                ratio(a.packet_loss_ratio),
                a.packet_loss_ratio,
                "a ratio between 0 and 1 (0.0001 is 0.01%)",
            ),
            (
                "successRatio",
                ratio(a.success_ratio),
                a.success_ratio,
                "a ratio between 0 and 1 (0.999 is 99.9%)",
            ),
            (
                "certificateExpiryDays",
                a.certificate_expiry_days > 0,
                f64::from(a.certificate_expiry_days),
                "at least 1 day",
            ),
            (
                "monthlyBudgetUsd",
                a.monthly_budget_usd.is_none_or(positive),
                a.monthly_budget_usd.unwrap_or(0.0),
                "a positive amount",
            ),
        ] {
            if !ok {
                self.err(
                    Code::MonitoringThreshold,
                    format!("spec.monitoring.alerts.{field}"),
                    format!("alert threshold {field} is {value}; it must be {want}"),
                );
            }
        }
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

/// What a network's VPN gateway advertises over BGP to the other side of
/// a VPN backup: the network's CIDRs and the pod CIDRs of its natively
/// routed clusters (as its interconnect routes do).
pub fn vpn_prefixes(t: &Topology, network: &str) -> Vec<IpNet> {
    let s = &t.spec;
    let mut out: BTreeSet<IpNet> = s
        .networks
        .iter()
        .filter(|n| n.name == network)
        .flat_map(|n| n.cidrs.iter().filter_map(Cidr::net))
        .collect();
    for c in s
        .clusters
        .iter()
        .filter(|c| c.network == network && c.cni.mode == CniMode::Native)
    {
        out.extend(c.pod_cidr.net());
    }
    out.into_iter().collect()
}

pub(super) fn summarize(list: &[IpNet], max: usize) -> String {
    let mut s: Vec<String> = list.iter().take(max).map(|p| p.to_string()).collect();
    if list.len() > max {
        s.push(format!("… ({} more)", list.len() - max));
    }
    format!("[{}]", s.join(", "))
}
