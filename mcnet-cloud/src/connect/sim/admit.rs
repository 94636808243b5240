//! What the simulated clouds admit: references that exist and belong to
//! the cloud, the clouds' own rules, and quotas.

use super::*;

impl SimProvider {
    /// Checks a create against the cloud's rules and quotas.
    pub(super) fn admit(
        &self,
        st: &SimState,
        spec: &Spec,
        logical: &str,
    ) -> Result<(), ProviderError> {
        let exists = |cid: &String, what: &str| -> Result<&SimResource, ProviderError> {
            st.resources.get(cid).ok_or_else(|| {
                self.err(
                    ErrorKind::NotFound,
                    "create",
                    "InvalidID.NotFound",
                    format!("{logical}: {what} `{cid}` does not exist"),
                )
            })
        };
        match spec {
            Spec::Network { region, cidrs } if self.scope == Scope::Aws => {
                let in_region = st
                    .resources
                    .values()
                    .filter(|r| matches!(&r.spec, Spec::Network { region: g, .. } if g == region))
                    .count();
                if in_region >= self.cloud.config.quotas.vpcs_per_region {
                    return Err(self.err(
                        ErrorKind::Quota,
                        "CreateVpc",
                        "VpcLimitExceeded",
                        format!(
                            "{logical}: the maximum number of VPCs in {region} ({}) has been reached",
                            self.cloud.config.quotas.vpcs_per_region
                        ),
                    ));
                }
                if cidrs.is_empty() {
                    return Err(self.err(
                        ErrorKind::Invalid,
                        "CreateVpc",
                        "MissingParameter",
                        format!("{logical}: no CIDR"),
                    ));
                }
            }
            Spec::Subnet { network, cidr, .. } => {
                let net = exists(network, "network")?;
                let (Ok(sub), Spec::Network { cidrs, .. }) =
                    (cidr.parse::<ipnet::IpNet>(), &net.spec)
                else {
                    return Err(self.err(
                        ErrorKind::Invalid,
                        "CreateSubnet",
                        "InvalidParameterValue",
                        format!("{logical}: `{cidr}` is not a CIDR"),
                    ));
                };
                if !cidrs
                    .iter()
                    .filter_map(|c| c.parse::<ipnet::IpNet>().ok())
                    .any(|c| c.contains(&sub))
                {
                    return Err(self.err(
                        ErrorKind::Invalid,
                        "CreateSubnet",
                        "InvalidSubnet.Range",
                        format!("{logical}: {cidr} is outside the network's CIDRs"),
                    ));
                }
                for r in st.resources.values() {
                    if let Spec::Subnet {
                        network: n,
                        cidr: c,
                        ..
                    } = &r.spec
                    {
                        if n == network
                            && c.parse::<ipnet::IpNet>()
                                .is_ok_and(|c| c.contains(&sub) || sub.contains(&c))
                        {
                            return Err(self.err(
                                ErrorKind::Conflict,
                                "CreateSubnet",
                                "InvalidSubnet.Conflict",
                                format!("{logical}: {cidr} conflicts with subnet {c}"),
                            ));
                        }
                    }
                }
            }
            Spec::Route {
                route_table,
                destination,
                target,
            } => {
                exists(route_table, "route table")?;
                exists(target, "target")?;
                if st.resources.values().any(|r| {
                    matches!(&r.spec, Spec::Route { route_table: t, destination: d, .. } if t == route_table && d == destination)
                }) {
                    return Err(self.err(
                        ErrorKind::Conflict,
                        "CreateRoute",
                        "RouteAlreadyExists",
                        format!("{logical}: the route table already has a route to {destination}"),
                    ));
                }
            }
            Spec::Peering {
                requester,
                accepter,
                ..
            } => {
                exists(requester, "network")?;
                exists(accepter, "network")?;
                if self.scope == Scope::Aws {
                    for vpc in [requester, accepter] {
                        let n = st
                            .resources
                            .values()
                            .filter(|r| matches!(&r.spec, Spec::Peering { requester: a, accepter: b, .. } if a == vpc || b == vpc))
                            .count();
                        if n >= self.cloud.config.quotas.peerings_per_vpc {
                            return Err(self.err(
                                ErrorKind::Quota,
                                "CreateVpcPeeringConnection",
                                "VpcPeeringConnectionLimitExceeded",
                                format!("{logical}: {vpc} already has {n} peerings (the limit)"),
                            ));
                        }
                    }
                }
            }
            Spec::Router { speed_mbps, .. } if !MCR_SPEEDS.contains(speed_mbps) => {
                return Err(self.err(
                    ErrorKind::Invalid,
                    "validate MCR",
                    "400",
                    format!(
                        "{logical}: {speed_mbps} Mbps is not an MCR speed (one of {MCR_SPEEDS:?})"
                    ),
                ));
            }
            Spec::Vxc {
                router,
                rate_limit_mbps,
                vlan,
                ..
            } => {
                let mcr = exists(router, "MCR")?;
                if let Spec::Router { speed_mbps, .. } = &mcr.spec {
                    if rate_limit_mbps > speed_mbps {
                        return Err(self.err(
                            ErrorKind::Invalid,
                            "validate VXC",
                            "400",
                            format!("{logical}: rate limit {rate_limit_mbps} Mbps exceeds the MCR's {speed_mbps} Mbps"),
                        ));
                    }
                }
                if let Some(v) = vlan {
                    if st.resources.values().any(|r| matches!(&r.spec, Spec::Vxc { router: m, vlan: Some(w), .. } if m == router && w == v)) {
                        return Err(self.err(
                            ErrorKind::Conflict,
                            "validate VXC",
                            "400",
                            format!("{logical}: VLAN {v} is already in use on the MCR"),
                        ));
                    }
                }
            }
            other => {
                for r in other.refs() {
                    if !r.starts_with("unmanaged:") && self.scope != Scope::Megaport {
                        // Cross-scope references (a VXC on a cloud resource) live elsewhere.
                        if st.resources.contains_key(r) || !same_scope_ref(self.scope, r) {
                            continue;
                        }
                        exists(r, "resource")?;
                    }
                }
            }
        }
        Ok(())
    }
}

pub(super) fn same_scope_ref(scope: Scope, cid: &str) -> bool {
    match scope {
        Scope::Aws => cid.split_once('-').is_some_and(|(p, _)| {
            !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()) && !is_uuid(cid)
        }),
        Scope::Azure => cid.starts_with("/subscriptions/"),
        Scope::Gcp => cid.starts_with("projects/"),
        Scope::Megaport => false,
    }
}
