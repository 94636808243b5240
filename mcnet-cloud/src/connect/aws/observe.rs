//! Listing the owner's resources of one kind in one region.

use super::*;

impl AwsProvider {
    /// Lists one kind in one region.
    pub(super) async fn list(
        &self,
        kind: ResourceKind,
        region: &str,
        owner: &Owner,
    ) -> Result<Vec<Raw>, ProviderError> {
        if matches!(
            kind,
            ResourceKind::InterconnectGateway | ResourceKind::InterconnectAttachment
        ) {
            return self.dx_list(kind, region, owner).await;
        }
        let c = self.client(region);
        let f = owner_filter(owner);
        let mut out = Vec::new();
        let raw = |id: Option<ResourceId>, cloud_id: &str, spec: Spec, status: &str| {
            id.map(|id| Raw {
                id,
                cloud_id: cloud_id.to_string(),
                spec,
                state: state_of(status),
                region: region.to_string(),
                status: status.to_string(),
            })
        };
        match kind {
            ResourceKind::Network => {
                let r = c
                    .describe_vpcs()
                    .filters(f)
                    .send()
                    .named("DescribeVpcs", region)
                    .await?;
                for v in r.vpcs() {
                    let cidrs = v
                        .cidr_block_association_set()
                        .iter()
                        .filter(|a| {
                            a.cidr_block_state()
                                .and_then(|s| s.state())
                                .is_none_or(|s| {
                                    s.as_str() == "associated" || s.as_str() == "associating"
                                })
                        })
                        .filter_map(|a| a.cidr_block().map(str::to_string))
                        .collect();
                    let spec = Spec::Network {
                        region: region.to_string(),
                        cidrs,
                    };
                    let status = v.state().map_or("available", |s| s.as_str());
                    out.extend(raw(
                        logical(owner, v.tags()),
                        v.vpc_id().unwrap_or_default(),
                        spec,
                        status,
                    ));
                }
            }
            ResourceKind::Subnet => {
                let r = c
                    .describe_subnets()
                    .filters(f)
                    .send()
                    .named("DescribeSubnets", region)
                    .await?;
                for s in r.subnets() {
                    let spec = Spec::Subnet {
                        network: s.vpc_id().unwrap_or_default().into(),
                        cidr: s.cidr_block().unwrap_or_default().into(),
                        zone: s.availability_zone().map(str::to_string),
                    };
                    let status = s.state().map_or("available", |x| x.as_str());
                    out.extend(raw(
                        logical(owner, s.tags()),
                        s.subnet_id().unwrap_or_default(),
                        spec,
                        status,
                    ));
                }
            }
            ResourceKind::RouteTable | ResourceKind::Route => {
                let r = c
                    .describe_route_tables()
                    .filters(f)
                    .send()
                    .named("DescribeRouteTables", region)
                    .await?;
                for t in r.route_tables() {
                    let Some(id) = logical(owner, t.tags()) else {
                        continue;
                    };
                    let rtb = t.route_table_id().unwrap_or_default();
                    if kind == ResourceKind::RouteTable {
                        let spec = Spec::RouteTable {
                            network: t.vpc_id().unwrap_or_default().into(),
                            subnets: t
                                .associations()
                                .iter()
                                .filter_map(|a| a.subnet_id().map(str::to_string))
                                .collect(),
                            propagating_gateways: t
                                .propagating_vgws()
                                .iter()
                                .filter_map(|g| g.gateway_id().map(str::to_string))
                                .collect(),
                        };
                        out.extend(raw(Some(id), rtb, spec, "available"));
                        continue;
                    }
                    let net = id.name().to_string();
                    for rt in t.routes() {
                        if rt.origin() != Some(&RouteOrigin::CreateRoute) {
                            continue; // local and propagated routes are not ours
                        }
                        let Some(dest) = rt.destination_cidr_block() else {
                            continue;
                        };
                        let target = rt
                            .vpc_peering_connection_id()
                            .or(rt.transit_gateway_id())
                            .or(rt.gateway_id())
                            .unwrap_or_default();
                        let spec = Spec::Route {
                            route_table: rtb.into(),
                            destination: dest.into(),
                            target: target.into(),
                        };
                        let status = rt.state().map_or("active", |s| s.as_str());
                        let status = if status == "blackhole" {
                            "failed"
                        } else {
                            "available"
                        };
                        out.extend(raw(
                            Some(ResourceId::route(&net, dest)),
                            &format!("{rtb}|{dest}"),
                            spec,
                            status,
                        ));
                    }
                }
            }
            ResourceKind::Peering => {
                let r = c
                    .describe_vpc_peering_connections()
                    .filters(f)
                    .send()
                    .named("DescribeVpcPeeringConnections", region)
                    .await?;
                for p in r.vpc_peering_connections() {
                    let code = p.status().and_then(|s| s.code());
                    if code == Some(&VpcPeeringConnectionStateReasonCode::Deleted) {
                        continue;
                    }
                    let (req, acc) = (p.requester_vpc_info(), p.accepter_vpc_info());
                    // A cross-region peering shows in both regions; keep the requester's view.
                    if req.and_then(|r| r.region()).is_some_and(|r| r != region) {
                        continue;
                    }
                    let peer_region = acc
                        .and_then(|a| a.region())
                        .filter(|r| *r != region)
                        .map(str::to_string);
                    let spec = Spec::Peering {
                        requester: req.and_then(|r| r.vpc_id()).unwrap_or_default().into(),
                        accepter: acc.and_then(|a| a.vpc_id()).unwrap_or_default().into(),
                        peer_region,
                    };
                    let status = code.map_or("pending-acceptance", |c| c.as_str());
                    out.extend(raw(
                        logical(owner, p.tags()),
                        p.vpc_peering_connection_id().unwrap_or_default(),
                        spec,
                        status,
                    ));
                }
            }
            ResourceKind::VpnGateway => {
                let r = c
                    .describe_vpn_gateways()
                    .filters(f)
                    .send()
                    .named("DescribeVpnGateways", region)
                    .await?;
                for g in r.vpn_gateways() {
                    let state = g.state().map_or("available", |s| s.as_str());
                    if state == "deleted" {
                        continue;
                    }
                    let att = g
                        .vpc_attachments()
                        .iter()
                        .find(|a| a.state().is_some_and(|s| s.as_str() != "detached"));
                    let status = match att.and_then(|a| a.state()) {
                        Some(s) if state == "available" => s.as_str(),
                        _ => state,
                    };
                    let spec = Spec::VpnGateway {
                        network: att.and_then(|a| a.vpc_id()).unwrap_or_default().into(),
                        asn: None,
                    };
                    out.extend(raw(
                        logical(owner, g.tags()),
                        g.vpn_gateway_id().unwrap_or_default(),
                        spec,
                        status,
                    ));
                }
            }
            ResourceKind::TransitGateway | ResourceKind::TransitGatewayRoute => {
                let r = c
                    .describe_transit_gateways()
                    .filters(f)
                    .send()
                    .named("DescribeTransitGateways", region)
                    .await?;
                for g in r.transit_gateways() {
                    let status = g.state().map_or("available", |s| s.as_str());
                    if status == "deleted" || status == "deleting" {
                        continue;
                    }
                    let Some(id) = logical(owner, g.tags()) else {
                        continue;
                    };
                    let tgw = g.transit_gateway_id().unwrap_or_default();
                    let opts = g.options();
                    if kind == ResourceKind::TransitGateway {
                        let spec = Spec::TransitGateway {
                            region: region.to_string(),
                            asn: opts
                                .and_then(|o| o.amazon_side_asn())
                                .and_then(|a| u32::try_from(a).ok())
                                .unwrap_or_default(),
                        };
                        out.extend(raw(Some(id), tgw, spec, status));
                        continue;
                    }
                    // Static routes of its default route table (one read per transit gateway).
                    let Some(rtb) = opts.and_then(|o| o.association_default_route_table_id())
                    else {
                        continue;
                    };
                    let routes = self
                        .client(region)
                        .search_transit_gateway_routes()
                        .transit_gateway_route_table_id(rtb)
                        .filters(Filter::builder().name("type").values("static").build())
                        .send()
                        .named("SearchTransitGatewayRoutes", region)
                        .await?;
                    let name = id.name();
                    for rt in routes.routes() {
                        let Some(dest) = rt.destination_cidr_block() else {
                            continue;
                        };
                        let att = rt
                            .transit_gateway_attachments()
                            .first()
                            .and_then(|a| a.transit_gateway_attachment_id())
                            .unwrap_or_default();
                        let spec = Spec::TransitGatewayRoute {
                            transit_gateway: tgw.into(),
                            destination: dest.into(),
                            attachment: att.into(),
                        };
                        let st = rt.state().map_or("active", |s| s.as_str());
                        let st = if st == "blackhole" {
                            "failed"
                        } else {
                            "available"
                        };
                        out.extend(raw(
                            Some(ResourceId::transit_gateway_route(name, dest)),
                            &format!("{rtb}|{dest}"),
                            spec,
                            st,
                        ));
                    }
                }
            }
            ResourceKind::TransitGatewayAttachment => {
                let r = c
                    .describe_transit_gateway_vpc_attachments()
                    .filters(f)
                    .send()
                    .named("DescribeTransitGatewayVpcAttachments", region)
                    .await?;
                for a in r.transit_gateway_vpc_attachments() {
                    let status = a.state().map_or("available", |s| s.as_str());
                    if status == "deleted" || status == "deleting" {
                        continue;
                    }
                    let spec = Spec::TransitGatewayAttachment {
                        transit_gateway: a.transit_gateway_id().unwrap_or_default().into(),
                        network: a.vpc_id().unwrap_or_default().into(),
                        subnets: a.subnet_ids().to_vec(),
                    };
                    out.extend(raw(
                        logical(owner, a.tags()),
                        a.transit_gateway_attachment_id().unwrap_or_default(),
                        spec,
                        status,
                    ));
                }
            }
            ResourceKind::PrivateEndpoint => {
                let r = c
                    .describe_vpc_endpoints()
                    .filters(f)
                    .send()
                    .named("DescribeVpcEndpoints", region)
                    .await?;
                for v in r.vpc_endpoints() {
                    let state = v
                        .state()
                        .map_or("available", |s| s.as_str())
                        .to_ascii_lowercase();
                    if state == "deleted" {
                        continue;
                    }
                    let spec = Spec::PrivateEndpoint {
                        network: v.vpc_id().unwrap_or_default().into(),
                        service: v.service_name().unwrap_or_default().into(),
                        subresource: None,
                        subnets: v.subnet_ids().to_vec(),
                    };
                    out.extend(raw(
                        logical(owner, v.tags()),
                        v.vpc_endpoint_id().unwrap_or_default(),
                        spec,
                        &state,
                    ));
                }
            }
            _ => {}
        }
        Ok(out)
    }

    pub(super) fn finish(raw: Raw, idx: &BTreeMap<String, String>) -> Observed {
        let links: Vec<String> = raw.spec.refs().into_iter().cloned().collect();
        let mut spec = raw.spec;
        // AWS ids never contain `/`; a reference that does is a logical id
        // already (a VIF's VXC, kept in a tag).
        spec.map_refs(|c| match idx.get(c) {
            Some(id) => id.clone(),
            None if c.contains('/') => c.to_string(),
            None => format!("unmanaged:{c}"),
        });
        if let Spec::InterconnectGateway { associations, .. } = &mut spec {
            associations.sort();
        }
        Observed {
            id: raw.id,
            cloud_id: raw.cloud_id,
            scope: Scope::Aws,
            spec,
            state: raw.state,
            outputs: BTreeMap::from([("region".into(), raw.region), ("status".into(), raw.status)]),
            links,
        }
    }
}
