//! Creating a resource, tagged with its owner and logical id at creation.

use super::*;

impl AwsProvider {
    pub(super) async fn create_resource(
        &self,
        owner: &Owner,
        r: &Desired,
        refs: Refs<'_>,
    ) -> Result<Observed, ProviderError> {
        self.remember(owner);
        if matches!(
            r.spec,
            Spec::InterconnectGateway { .. } | Spec::InterconnectAttachment { .. }
        ) {
            return self.dx_create(owner, r, refs).await;
        }
        let spec = refs.to_cloud(&r.spec)?;
        let rid = &r.id;
        let id = rid.as_str();
        let region = match &r.spec {
            Spec::Network { region, .. } => region.clone(),
            Spec::Subnet { network, .. }
            | Spec::RouteTable { network, .. }
            | Spec::VpnGateway { network, .. }
            | Spec::PrivateEndpoint { network, .. }
            | Spec::TransitGatewayAttachment { network, .. } => Self::region_of(&refs, network)?,
            Spec::TransitGateway { region, .. } => region.clone(),
            Spec::TransitGatewayRoute {
                transit_gateway, ..
            } => Self::region_of(&refs, transit_gateway)?,
            Spec::Route { route_table, .. } => Self::region_of(&refs, route_table)?,
            Spec::Peering { requester, .. } => Self::region_of(&refs, requester)?,
            other => return Err(self.unsupported(id, other.kind())),
        };
        let c = self.client(&region);
        let cloud_id = match &spec {
            Spec::Network { cidrs, .. } => {
                let first = cidrs.first().cloned().unwrap_or_default();
                let out = c
                    .create_vpc()
                    .cidr_block(first)
                    .tag_specifications(tags(owner, rid, ResourceType::Vpc))
                    .send()
                    .named("CreateVpc", id)
                    .await?;
                let vpc = out
                    .vpc()
                    .and_then(|v| v.vpc_id())
                    .unwrap_or_default()
                    .to_string();
                for extra in cidrs.iter().skip(1) {
                    self.client(&region)
                        .associate_vpc_cidr_block()
                        .vpc_id(&vpc)
                        .cidr_block(extra)
                        .send()
                        .named("AssociateVpcCidrBlock", id)
                        .await?;
                }
                vpc
            }
            Spec::Subnet {
                network,
                cidr,
                zone,
            } => {
                let out = c
                    .create_subnet()
                    .vpc_id(network)
                    .cidr_block(cidr)
                    .set_availability_zone(zone.clone())
                    .tag_specifications(tags(owner, rid, ResourceType::Subnet))
                    .send()
                    .named("CreateSubnet", id)
                    .await?;
                out.subnet()
                    .and_then(|s| s.subnet_id())
                    .unwrap_or_default()
                    .to_string()
            }
            Spec::RouteTable { network, .. } => {
                let out = c
                    .create_route_table()
                    .vpc_id(network)
                    .tag_specifications(tags(owner, rid, ResourceType::RouteTable))
                    .send()
                    .named("CreateRouteTable", id)
                    .await?;
                let rtb = out
                    .route_table()
                    .and_then(|t| t.route_table_id())
                    .unwrap_or_default()
                    .to_string();
                // Associations and propagation are the update's job.
                let empty = Spec::RouteTable {
                    network: String::new(),
                    subnets: vec![],
                    propagating_gateways: vec![],
                };
                let created = fresh(rid, rtb, empty, ResourceState::Ready, &region);
                return self.update(owner, r, &created, refs).await;
            }
            Spec::Route {
                route_table,
                destination,
                target,
            } => {
                let b = next_hop!(
                    c.create_route()
                        .route_table_id(route_table)
                        .destination_cidr_block(destination),
                    target
                );
                match b.send().await {
                    Ok(_) => {}
                    // Already there (a create whose answer was lost): make it ours.
                    Err(e) if e.code() == Some("RouteAlreadyExists") => {
                        let cid = format!("{route_table}|{destination}");
                        let current =
                            fresh(rid, cid, r.spec.clone(), ResourceState::Ready, &region);
                        return self.update(owner, r, &current, refs).await;
                    }
                    // A route to a transit gateway waits for the VPC's
                    // attachment, which may still be pending: retried.
                    Err(e)
                        if target.starts_with("tgw-")
                            && e.code()
                                .is_some_and(|c| c.starts_with("InvalidTransitGatewayID")) =>
                    {
                        let mut pe = err("CreateRoute", id, e);
                        pe.kind = ErrorKind::Transient;
                        pe.message = format!(
                            "{} (waiting for the VPC's attachment to {target})",
                            pe.message
                        );
                        return Err(pe);
                    }
                    Err(e) => return Err(err("CreateRoute", id, e)),
                }
                format!("{route_table}|{destination}")
            }
            Spec::Peering {
                requester,
                accepter,
                peer_region,
            } => {
                let out = c
                    .create_vpc_peering_connection()
                    .vpc_id(requester)
                    .peer_vpc_id(accepter)
                    .set_peer_region(peer_region.clone())
                    .tag_specifications(tags(owner, rid, ResourceType::VpcPeeringConnection))
                    .send()
                    .named("CreateVpcPeeringConnection", id)
                    .await?;
                let made = out.vpc_peering_connection();
                let pcx = made
                    .and_then(|p| p.vpc_peering_connection_id())
                    .unwrap_or_default()
                    .to_string();
                // AWS refuses some peerings by failing them at once
                // (overlapping CIDRs): nothing to accept.
                if let Some(st) = made
                    .and_then(|p| p.status())
                    .filter(|s| s.code() == Some(&VpcPeeringConnectionStateReasonCode::Failed))
                {
                    return Err(ProviderError::new(
                        Scope::Aws,
                        ErrorKind::Invalid,
                        "CreateVpcPeeringConnection",
                        format!(
                            "{id}: AWS failed peering {pcx}: {}",
                            st.message().unwrap_or("no reason given")
                        ),
                    ));
                }
                self.accept(&pcx, peer_region.as_deref().unwrap_or(&region), id)
                    .await?;
                pcx
            }
            Spec::VpnGateway { network, asn } => {
                let mut b = c
                    .create_vpn_gateway()
                    .r#type(GatewayType::Ipsec1)
                    .tag_specifications(tags(owner, rid, ResourceType::VpnGateway));
                if let Some(a) = asn {
                    b = b.amazon_side_asn(i64::from(*a));
                }
                let out = b.send().named("CreateVpnGateway", id).await?;
                let vgw = out
                    .vpn_gateway()
                    .and_then(|g| g.vpn_gateway_id())
                    .unwrap_or_default()
                    .to_string();
                self.client(&region)
                    .attach_vpn_gateway()
                    .vpn_gateway_id(&vgw)
                    .vpc_id(network)
                    .send()
                    .named("AttachVpnGateway", id)
                    .await?;
                vgw
            }
            Spec::TransitGateway { asn, .. } => {
                let opts = aws_sdk_ec2::types::TransitGatewayRequestOptions::builder()
                    .amazon_side_asn(i64::from(*asn))
                    .build();
                let out = c
                    .create_transit_gateway()
                    .description(id)
                    .options(opts)
                    .tag_specifications(tags(owner, rid, ResourceType::TransitGateway))
                    .send()
                    .named("CreateTransitGateway", id)
                    .await?;
                out.transit_gateway()
                    .and_then(|g| g.transit_gateway_id())
                    .unwrap_or_default()
                    .to_string()
            }
            Spec::TransitGatewayAttachment {
                transit_gateway,
                network,
                subnets,
            } => {
                let out = c
                    .create_transit_gateway_vpc_attachment()
                    .transit_gateway_id(transit_gateway)
                    .vpc_id(network)
                    .set_subnet_ids(Some(subnets.clone()))
                    .tag_specifications(tags(owner, rid, ResourceType::TransitGatewayAttachment))
                    .send()
                    .named("CreateTransitGatewayVpcAttachment", id)
                    .await?;
                let att = out
                    .transit_gateway_vpc_attachment()
                    .and_then(|a| a.transit_gateway_attachment_id())
                    .unwrap_or_default()
                    .to_string();
                // Tag again by id: moto drops TagSpecifications on this type
                // (AWS keeps them; there the call changes nothing).
                let mut t = self.client(&region).create_tags().resources(&att);
                for (k, v) in owner.tags(rid) {
                    t = t.tags(Tag::builder().key(k).value(v).build());
                }
                t.send().named("CreateTags", id).await?;
                att
            }
            Spec::TransitGatewayRoute {
                transit_gateway,
                destination,
                attachment,
            } => {
                let rtb = self.tgw_route_table(&region, transit_gateway, id).await?;
                c.create_transit_gateway_route()
                    .transit_gateway_route_table_id(&rtb)
                    .destination_cidr_block(destination)
                    .transit_gateway_attachment_id(attachment)
                    .send()
                    .named("CreateTransitGatewayRoute", id)
                    .await?;
                format!("{rtb}|{destination}")
            }
            Spec::PrivateEndpoint {
                network,
                service,
                subnets,
                ..
            } => {
                let kind = if subnets.is_empty() {
                    VpcEndpointType::Gateway
                } else {
                    VpcEndpointType::Interface
                };
                let out = c
                    .create_vpc_endpoint()
                    .vpc_id(network)
                    .service_name(service)
                    .vpc_endpoint_type(kind)
                    .set_subnet_ids((!subnets.is_empty()).then(|| subnets.clone()))
                    .tag_specifications(tags(owner, rid, ResourceType::VpcEndpoint))
                    .send()
                    .named("CreateVpcEndpoint", id)
                    .await?;
                out.vpc_endpoint()
                    .and_then(|v| v.vpc_endpoint_id())
                    .unwrap_or_default()
                    .to_string()
            }
            other => return Err(self.unsupported(id, other.kind())),
        };
        let pending = ResourceState::Pending("created".into());
        Ok(fresh(rid, cloud_id, r.spec.clone(), pending, &region))
    }
}
