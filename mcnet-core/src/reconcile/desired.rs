//! The desired state: the resources a topology asks for, by logical id.

use std::collections::BTreeSet;

use super::id::ResourceId as Id;
use super::resource::{Desired, Scope, Spec, VxcBgp};
use crate::topology::{ipam, AwsConnection, Network, PeeringKind, Topology, VxcTargetKind};
use crate::{Error, Result};

/// Every resource `t` asks for in `scopes`, dependencies before dependents.
///
/// Auto subnets are allocated first; a topology that fails IPAM is an
/// error. On-premises networks are not managed and produce nothing.
pub fn desired(t: &Topology, scopes: &BTreeSet<Scope>) -> Result<Vec<Desired>> {
    let t = ipam::allocate(t).map_err(|problems| Error::Invalid {
        what: format!("topology `{}`", t.metadata.name),
        problems,
    })?;
    let mut out = Vec::new();
    let mut push = |scope: Scope, id: Id, spec: Spec| {
        if scopes.contains(&scope) {
            out.push(Desired { id, scope, spec });
        }
    };
    let scope_of = |n: &Network| {
        t.spec
            .providers
            .iter()
            .find(|p| p.name == n.provider)
            .and_then(|p| Scope::of(p.kind))
    };
    let cidrs = |n: &Network| -> Vec<String> { n.cidrs.iter().map(ToString::to_string).collect() };

    // Networks behind an AWS Direct Connect VXC or an end of a VPN backup
    // get a virtual private gateway whose routes propagate into their route
    // table.
    let mut dx_networks = BTreeSet::new();
    for v in &t.spec.interconnect.vxcs {
        if v.target.kind == VxcTargetKind::AwsDirectConnect {
            dx_networks.extend(v.target.networks.iter().cloned());
        }
    }
    dx_networks.extend(
        t.spec
            .vpn_backups
            .iter()
            .flat_map(|v| v.networks.iter().cloned()),
    );

    for n in &t.spec.networks {
        let Some(scope) = scope_of(n) else { continue };
        let net_id = Id::network(&n.name);
        let net = net_id.to_string();
        push(
            scope,
            net_id,
            Spec::Network {
                region: n.region.clone(),
                cidrs: cidrs(n),
            },
        );
        for s in &n.subnets {
            push(
                scope,
                Id::subnet(&n.name, &s.name),
                Spec::Subnet {
                    network: net.clone(),
                    cidr: s.cidr.to_string(),
                    zone: s.zone.clone(),
                },
            );
        }
        if scope == Scope::Aws {
            let vgw = dx_networks.contains(&n.name);
            if vgw {
                push(
                    scope,
                    Id::vpn_gateway(&n.name),
                    Spec::VpnGateway {
                        network: net.clone(),
                        asn: None,
                        ipsec: false,
                    },
                );
            }
            push(
                scope,
                Id::route_table(&n.name),
                Spec::RouteTable {
                    network: net.clone(),
                    subnets: n
                        .subnets
                        .iter()
                        .map(|s| Id::subnet(&n.name, &s.name).to_string())
                        .collect(),
                    propagating_gateways: if vgw {
                        vec![Id::vpn_gateway(&n.name).to_string()]
                    } else {
                        vec![]
                    },
                },
            );
        }
    }

    for p in &t.spec.peerings {
        let (Some(a), Some(b)) = (
            p.networks.first().and_then(|n| t.network(n)),
            p.networks.get(1).and_then(|n| t.network(n)),
        ) else {
            continue;
        };
        let scope = Scope::of(p.kind.provider_kind()).unwrap_or(Scope::Aws);
        let id = Id::peering(&p.name);
        push(
            scope,
            id.clone(),
            Spec::Peering {
                requester: Id::network(&a.name).to_string(),
                accepter: Id::network(&b.name).to_string(),
                peer_region: (a.region != b.region).then(|| b.region.clone()),
            },
        );
        // VPC peering needs routes on both sides; VNet and GCP peering
        // exchange routes themselves.
        if p.kind == PeeringKind::VpcPeering {
            for (from, to) in [(a, b), (b, a)] {
                for c in cidrs(to) {
                    push(
                        scope,
                        Id::route(&from.name, &c),
                        Spec::Route {
                            route_table: Id::route_table(&from.name).to_string(),
                            destination: c,
                            target: id.to_string(),
                        },
                    );
                }
            }
        }
    }

    for g in &t.spec.transit_gateways {
        let hub_id = Id::transit_gateway(&g.name);
        let hub = hub_id.to_string();
        push(
            Scope::Aws,
            hub_id,
            Spec::TransitGateway {
                region: g.region.clone(),
                asn: g.asn,
            },
        );
        let attached: Vec<&Network> = g.networks.iter().filter_map(|n| t.network(n)).collect();
        for n in &attached {
            // One subnet per availability zone carries the attachment.
            let zoned = n.subnets.iter().any(|s| s.zone.is_some());
            let mut zones = BTreeSet::new();
            let subnets: Vec<String> = n
                .subnets
                .iter()
                .filter(|s| (!zoned || s.zone.is_some()) && zones.insert(s.zone.clone()))
                .map(|s| Id::subnet(&n.name, &s.name).to_string())
                .collect();
            let att_id = Id::transit_gateway_attachment(&g.name, &n.name);
            let att = att_id.to_string();
            push(
                Scope::Aws,
                att_id,
                Spec::TransitGatewayAttachment {
                    transit_gateway: hub.clone(),
                    network: Id::network(&n.name).to_string(),
                    subnets,
                },
            );
            for c in cidrs(n) {
                push(
                    Scope::Aws,
                    Id::transit_gateway_route(&g.name, &c),
                    Spec::TransitGatewayRoute {
                        transit_gateway: hub.clone(),
                        destination: c,
                        attachment: att.clone(),
                    },
                );
            }
            for other in attached.iter().filter(|o| o.name != n.name) {
                for c in cidrs(other) {
                    push(
                        Scope::Aws,
                        Id::route(&n.name, &c),
                        Spec::Route {
                            route_table: Id::route_table(&n.name).to_string(),
                            destination: c,
                            target: hub.clone(),
                        },
                    );
                }
            }
        }
    }

    for r in &t.spec.interconnect.routers {
        push(
            Scope::Megaport,
            Id::router(&r.name),
            Spec::Router {
                name: r.name.clone(),
                location_id: r.location_id.unwrap_or(0),
                speed_mbps: r.speed_mbps,
                asn: r.asn,
                diversity_zone: r.diversity_zone.map(|z| {
                    serde_json::to_value(z)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_string))
                        .unwrap_or_default()
                }),
                term_months: r.term_months.unwrap_or(1),
            },
        );
    }

    for v in &t.spec.interconnect.vxcs {
        let nets: Vec<&Network> = v
            .target
            .networks
            .iter()
            .filter_map(|n| t.network(n))
            .collect();
        let Some(first) = nets.first() else { continue };
        let peer_asn = v.bgp.peers.first().map_or(64512, |p| p.peer_asn);
        let gw_id = Id::interconnect_gateway(&v.name);
        let gw = gw_id.to_string();
        let vxc_id = Id::vxc(&v.name);
        let vxc = vxc_id.to_string();
        let mut partner = None;
        match v.target.kind {
            VxcTargetKind::AwsDirectConnect => {
                push(
                    Scope::Aws,
                    gw_id,
                    Spec::InterconnectGateway {
                        region: "global".into(),
                        asn: peer_asn,
                        bandwidth_mbps: None,
                        network: None,
                        associations: nets
                            .iter()
                            .map(|n| Id::vpn_gateway(&n.name).to_string())
                            .collect::<BTreeSet<_>>()
                            .into_iter()
                            .collect(),
                    },
                );
                push(
                    Scope::Aws,
                    Id::interconnect_attachment(&v.name, None),
                    Spec::InterconnectAttachment {
                        gateway: gw.clone(),
                        vxc: Some(vxc.clone()),
                        network_gateway: None,
                        vlan: v.vlan,
                    },
                );
            }
            VxcTargetKind::AzureExpressroute => {
                push(
                    Scope::Azure,
                    gw_id,
                    Spec::InterconnectGateway {
                        region: first.region.clone(),
                        asn: peer_asn,
                        bandwidth_mbps: Some(v.rate_limit_mbps),
                        network: None,
                        associations: vec![],
                    },
                );
                partner = Some(gw.clone());
                for n in &nets {
                    push(
                        Scope::Azure,
                        Id::vpn_gateway(&n.name),
                        Spec::VpnGateway {
                            network: Id::network(&n.name).to_string(),
                            asn: None,
                            ipsec: false,
                        },
                    );
                    push(
                        Scope::Azure,
                        Id::interconnect_attachment(&v.name, Some(&n.name)),
                        Spec::InterconnectAttachment {
                            gateway: gw.clone(),
                            vxc: Some(vxc.clone()),
                            network_gateway: Some(Id::vpn_gateway(&n.name).to_string()),
                            vlan: v.vlan,
                        },
                    );
                }
            }
            VxcTargetKind::GcpPartnerInterconnect => {
                push(
                    Scope::Gcp,
                    gw_id,
                    Spec::InterconnectGateway {
                        region: first.region.clone(),
                        asn: peer_asn,
                        bandwidth_mbps: None,
                        network: Some(Id::network(&first.name).to_string()),
                        associations: vec![],
                    },
                );
                let att_id = Id::interconnect_attachment(&v.name, None);
                let att = att_id.to_string();
                push(
                    Scope::Gcp,
                    att_id,
                    Spec::InterconnectAttachment {
                        gateway: gw.clone(),
                        vxc: None,
                        network_gateway: None,
                        vlan: None,
                    },
                );
                partner = Some(att);
            }
        }
        push(
            Scope::Megaport,
            vxc_id,
            Spec::Vxc {
                name: v.name.clone(),
                router: Id::router(&v.router).to_string(),
                target: if v.target.aws_connection == Some(AwsConnection::HostedVif) {
                    "aws-hosted-vif".to_string()
                } else {
                    serde_json::to_value(v.target.kind)
                        .ok()
                        .and_then(|x| x.as_str().map(str::to_string))
                        .unwrap_or_default()
                },
                partner,
                rate_limit_mbps: v.rate_limit_mbps,
                vlan: v.vlan,
                bgp: VxcBgp {
                    peers: v
                        .bgp
                        .peers
                        .iter()
                        .map(|p| {
                            (
                                p.local_address.to_string(),
                                p.peer_address.clone(),
                                p.peer_asn,
                            )
                        })
                        .collect(),
                    import: v
                        .bgp
                        .prefix_filters
                        .import
                        .iter()
                        .map(ToString::to_string)
                        .collect(),
                    export: v
                        .bgp
                        .prefix_filters
                        .export
                        .iter()
                        .map(ToString::to_string)
                        .collect(),
                },
            },
        );
    }

    // VPN backups: each side's gateway, its record of the other side, and
    // its connection. The other side's address is an output: an Azure or
    // GCP gateway's public address; on AWS the VPN connection's tunnel
    // address, known once the connection exists.
    let side = |name: &str| t.network(name).and_then(|n| scope_of(n).map(|s| (n, s)));
    // A network in several backups has one gateway for all of them.
    let mut ipsec_gateways = BTreeSet::new();
    for v in &t.spec.vpn_backups {
        let [a, b] = v.networks.as_slice() else {
            continue;
        };
        let (Some(sa), Some(sb)) = (side(a), side(b)) else {
            continue;
        };
        let gateway = |(n, scope): (&Network, Scope)| match scope {
            Scope::Aws => Id::vpn_gateway(&n.name),
            _ => Id::ipsec_gateway(&n.name),
        };
        let address = |(n, scope): (&Network, Scope)| match scope {
            Scope::Aws => (Id::vpn_connection(&v.name, &n.name), "outsideIp"),
            _ => (Id::ipsec_gateway(&n.name), "publicIp"),
        };
        for (here, there) in [(sa, sb), (sb, sa)] {
            let (n, scope) = here;
            if scope != Scope::Aws && ipsec_gateways.insert(n.name.clone()) {
                push(
                    scope,
                    Id::ipsec_gateway(&n.name),
                    Spec::VpnGateway {
                        network: Id::network(&n.name).to_string(),
                        asn: Some(vpn_asn(scope)),
                        ipsec: true,
                    },
                );
            }
            let (addr, output) = address(there);
            push(
                scope,
                Id::vpn_peer(&v.name, &n.name),
                Spec::VpnPeer {
                    network: Id::network(&n.name).to_string(),
                    asn: vpn_asn(there.1),
                    address: addr.to_string(),
                    address_output: output.to_string(),
                },
            );
            push(
                scope,
                Id::vpn_connection(&v.name, &n.name),
                Spec::VpnConnection {
                    gateway: gateway(here).to_string(),
                    peer: Id::vpn_peer(&v.name, &n.name).to_string(),
                },
            );
        }
    }

    for e in &t.spec.private_endpoints {
        let Some(n) = t.network(&e.network) else {
            continue;
        };
        let Some(scope) = scope_of(n) else { continue };
        push(
            scope,
            Id::private_endpoint(&e.name),
            Spec::PrivateEndpoint {
                network: Id::network(&n.name).to_string(),
                service: e.service.clone(),
                subresource: e.subresource.clone(),
                subnets: e
                    .subnets
                    .iter()
                    .map(|s| Id::subnet(&n.name, s).to_string())
                    .collect(),
            },
        );
    }
    Ok(out)
}

/// The BGP ASN of a cloud's end of a VPN backup: an AWS virtual private
/// gateway's default (64512), an Azure VPN gateway's (65515), and the
/// private ASN mcnet gives the Cloud Router of a GCP HA VPN (64514).
pub fn vpn_asn(scope: Scope) -> u32 {
    match scope {
        Scope::Azure => 65515,
        Scope::Gcp => 64514,
        _ => 64512,
    }
}
