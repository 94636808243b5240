//! References between objects, and what each cloud's objects may refer to.

use super::*;

impl Validator {
    pub(super) fn references(&mut self, t: &Topology) {
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
        for (i, v) in s.vpn_backups.iter().enumerate() {
            let at = format!("spec.vpnBackups[{i}]");
            let mut clouds = Vec::new();
            for (j, n) in v.networks.iter().enumerate() {
                if !networks.contains_key(n.as_str()) {
                    self.err(
                        Code::RefDangling,
                        format!("{at}.networks[{j}]"),
                        format!(
                            "VPN backup `{}` refers to network `{n}`, which is not declared",
                            v.name
                        ),
                    );
                } else if let Some(kind) = provider_of(n) {
                    clouds.push(kind);
                }
            }
            let cloud = |k: &ProviderKind| {
                matches!(
                    k,
                    ProviderKind::Aws | ProviderKind::Azure | ProviderKind::Gcp
                )
            };
            let why = if v.networks.len() != 2 {
                Some("must join exactly two networks".to_string())
            } else if clouds.len() == 2 && !clouds.iter().all(cloud) {
                Some("joins a network that is not on AWS, Azure or GCP".into())
            } else if clouds.len() == 2 && clouds[0] == clouds[1] {
                Some(format!(
                    "joins two {} networks; within one cloud, peer them",
                    clouds[0]
                ))
            } else {
                None
            };
            if let Some(why) = why {
                self.err(
                    Code::VpnEndpoints,
                    format!("{at}.networks"),
                    format!("VPN backup `{}` {why}", v.name),
                );
            }
            if v.bandwidth_mbps == 0 {
                self.err(
                    Code::VpnEndpoints,
                    format!("{at}.bandwidthMbps"),
                    format!("VPN backup `{}` has no bandwidth", v.name),
                );
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
        let hc = &s.load_balancing.health_check;
        let within = |v: u32, lo: u32, hi: u32| (lo..=hi).contains(&v);
        for (field, ok, value, want) in [
            (
                "path",
                hc.tcp || hc.path.starts_with('/'),
                hc.path.clone(),
                "an HTTP path starting with `/`",
            ),
            (
                "port",
                hc.port > 0,
                hc.port.to_string(),
                "a port from 1 to 65535",
            ),
            (
                "intervalSeconds",
                within(hc.interval_seconds, 1, 300),
                hc.interval_seconds.to_string(),
                "1 to 300 seconds",
            ),
            (
                "timeoutSeconds",
                within(hc.timeout_seconds, 1, hc.interval_seconds.max(1)),
                hc.timeout_seconds.to_string(),
                "at least 1 second and at most the interval",
            ),
            (
                "healthyThreshold",
                within(hc.healthy_threshold, 1, 10),
                hc.healthy_threshold.to_string(),
                "1 to 10 checks",
            ),
            (
                "unhealthyThreshold",
                within(hc.unhealthy_threshold, 1, 10),
                hc.unhealthy_threshold.to_string(),
                "1 to 10 checks",
            ),
        ] {
            if !ok {
                self.err(
                    Code::LbHealthCheck,
                    format!("spec.loadBalancing.healthCheck.{field}"),
                    format!("the ingress health check's {field} is `{value}`; it must be {want}"),
                );
            }
        }
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

    /// What each cloud's private endpoints need: Azure and GCP put one in
    /// exactly one subnet; only Azure names a sub-resource; GCP reaches a
    /// service attachment.
    pub(super) fn private_endpoint_shape(
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
