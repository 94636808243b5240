//! Address space: CIDRs that parse, subnets inside their network, and
//! overlaps where traffic is routed.

use super::*;

impl Validator {
    pub(super) fn invalid_cidr(&mut self, c: &Cidr, path: String, owner: &str) {
        if let Cidr::Invalid { reason, .. } = c {
            self.err(Code::CidrInvalid, path, format!("{owner}: {reason}"));
        }
    }

    pub(super) fn cidrs(&mut self, t: &Topology) {
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
    pub(super) fn overlaps(&mut self, t: &Topology, conn: &Connectivity<'_>) {
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

    pub(super) fn routable_overlap(
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
}
