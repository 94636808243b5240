//! Updating a resource in place and deleting it.

use super::*;

impl AwsProvider {
    pub(super) async fn update_resource(
        &self,
        _owner: &Owner,
        r: &Desired,
        current: &Observed,
        refs: Refs<'_>,
    ) -> Result<Observed, ProviderError> {
        let want = refs.to_cloud(&r.spec)?;
        let rid = &r.id;
        let id = rid.as_str();
        if matches!(
            want,
            Spec::InterconnectGateway { .. } | Spec::InterconnectAttachment { .. }
        ) {
            self.dx_update(current, &want, id).await?;
            return Ok(Observed {
                spec: r.spec.clone(),
                state: ResourceState::Pending("updated".into()),
                ..current.clone()
            });
        }
        let region = current
            .outputs
            .get("region")
            .cloned()
            .ok_or_else(|| self.unsupported(id, r.kind()))?;
        let c = self.client(&region);
        match &want {
            Spec::Network { cidrs, .. } => {
                let have = match &current.spec {
                    Spec::Network { cidrs, .. } => cidrs.clone(),
                    _ => vec![],
                };
                for add in cidrs.iter().filter(|x| !have.contains(x)) {
                    c.associate_vpc_cidr_block()
                        .vpc_id(&current.cloud_id)
                        .cidr_block(add)
                        .send()
                        .named("AssociateVpcCidrBlock", id)
                        .await?;
                }
            }
            Spec::RouteTable {
                subnets,
                propagating_gateways,
                ..
            } => {
                // Read the table's real associations: ids, not logical names.
                let t = c
                    .describe_route_tables()
                    .route_table_ids(&current.cloud_id)
                    .send()
                    .named("DescribeRouteTables", id)
                    .await?;
                let t = t.route_tables().first();
                let assoc: Vec<(String, String)> = t
                    .map(|t| {
                        t.associations()
                            .iter()
                            .filter_map(|a| {
                                Some((
                                    a.subnet_id()?.to_string(),
                                    a.route_table_association_id()?.to_string(),
                                ))
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                let vgws: Vec<String> = t
                    .map(|t| {
                        t.propagating_vgws()
                            .iter()
                            .filter_map(|g| g.gateway_id().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default();
                for s in subnets
                    .iter()
                    .filter(|s| !assoc.iter().any(|(x, _)| x == *s))
                {
                    self.client(&region)
                        .associate_route_table()
                        .route_table_id(&current.cloud_id)
                        .subnet_id(s)
                        .send()
                        .named("AssociateRouteTable", id)
                        .await?;
                }
                for (_, a) in assoc.iter().filter(|(s, _)| !subnets.contains(s)) {
                    self.client(&region)
                        .disassociate_route_table()
                        .association_id(a)
                        .send()
                        .named("DisassociateRouteTable", id)
                        .await?;
                }
                for g in propagating_gateways.iter().filter(|g| !vgws.contains(g)) {
                    self.client(&region)
                        .enable_vgw_route_propagation()
                        .route_table_id(&current.cloud_id)
                        .gateway_id(g)
                        .send()
                        .named("EnableVgwRoutePropagation", id)
                        .await?;
                }
            }
            Spec::Route {
                route_table,
                destination,
                target,
            } => {
                let b = next_hop!(
                    c.replace_route()
                        .route_table_id(route_table)
                        .destination_cidr_block(destination),
                    target
                );
                b.send().named("ReplaceRoute", id).await?;
            }
            Spec::Peering { peer_region, .. } if current.state != ResourceState::Ready => {
                self.accept(
                    &current.cloud_id,
                    peer_region.as_deref().unwrap_or(&region),
                    id,
                )
                .await?;
            }
            Spec::TransitGatewayAttachment { subnets, .. } => {
                let have: Vec<String> = current.links.iter().skip(2).cloned().collect();
                let add: Vec<String> = subnets
                    .iter()
                    .filter(|s| !have.contains(s))
                    .cloned()
                    .collect();
                let remove: Vec<String> = have
                    .iter()
                    .filter(|s| !subnets.contains(s))
                    .cloned()
                    .collect();
                c.modify_transit_gateway_vpc_attachment()
                    .transit_gateway_attachment_id(&current.cloud_id)
                    .set_add_subnet_ids((!add.is_empty()).then_some(add))
                    .set_remove_subnet_ids((!remove.is_empty()).then_some(remove))
                    .send()
                    .named("ModifyTransitGatewayVpcAttachment", id)
                    .await?;
            }
            Spec::TransitGatewayRoute {
                destination,
                attachment,
                ..
            } => {
                let (rtb, _) = current.cloud_id.split_once('|').unwrap_or_default();
                c.replace_transit_gateway_route()
                    .transit_gateway_route_table_id(rtb)
                    .destination_cidr_block(destination)
                    .transit_gateway_attachment_id(attachment)
                    .send()
                    .named("ReplaceTransitGatewayRoute", id)
                    .await?;
            }
            Spec::PrivateEndpoint { subnets, .. } => {
                let have: Vec<String> = current.links.iter().skip(1).cloned().collect();
                let add: Vec<String> = subnets
                    .iter()
                    .filter(|s| !have.contains(s))
                    .cloned()
                    .collect();
                let remove: Vec<String> = have
                    .iter()
                    .filter(|s| !subnets.contains(s))
                    .cloned()
                    .collect();
                c.modify_vpc_endpoint()
                    .vpc_endpoint_id(&current.cloud_id)
                    .set_add_subnet_ids((!add.is_empty()).then_some(add))
                    .set_remove_subnet_ids((!remove.is_empty()).then_some(remove))
                    .send()
                    .named("ModifyVpcEndpoint", id)
                    .await?;
            }
            _ => {}
        }
        Ok(Observed {
            spec: r.spec.clone(),
            state: ResourceState::Pending("updated".into()),
            ..current.clone()
        })
    }

    pub(super) async fn delete_resource(&self, current: &Observed) -> Result<(), ProviderError> {
        if matches!(
            current.spec.kind(),
            ResourceKind::InterconnectGateway | ResourceKind::InterconnectAttachment
        ) {
            return self.dx_delete(current).await;
        }
        let id = current.id.as_str();
        let region = current.outputs.get("region").cloned().unwrap_or_default();
        let c = self.client(&region);
        let cid = current.cloud_id.as_str();
        match current.spec.kind() {
            ResourceKind::Network => c
                .delete_vpc()
                .vpc_id(cid)
                .send()
                .named("DeleteVpc", id)
                .await
                .map(drop),
            ResourceKind::Subnet => c
                .delete_subnet()
                .subnet_id(cid)
                .send()
                .named("DeleteSubnet", id)
                .await
                .map(drop),
            ResourceKind::RouteTable => {
                let t = c
                    .describe_route_tables()
                    .route_table_ids(cid)
                    .send()
                    .named("DescribeRouteTables", id)
                    .await?;
                for a in t.route_tables().iter().flat_map(|t| t.associations()) {
                    if let Some(aid) = a.route_table_association_id() {
                        self.client(&region)
                            .disassociate_route_table()
                            .association_id(aid)
                            .send()
                            .named("DisassociateRouteTable", id)
                            .await?;
                    }
                }
                self.client(&region)
                    .delete_route_table()
                    .route_table_id(cid)
                    .send()
                    .named("DeleteRouteTable", id)
                    .await
                    .map(drop)
            }
            ResourceKind::Route => {
                let (rtb, dest) = cid.split_once('|').unwrap_or((cid, ""));
                c.delete_route()
                    .route_table_id(rtb)
                    .destination_cidr_block(dest)
                    .send()
                    .named("DeleteRoute", id)
                    .await
                    .map(drop)
            }
            ResourceKind::Peering => c
                .delete_vpc_peering_connection()
                .vpc_peering_connection_id(cid)
                .send()
                .named("DeleteVpcPeeringConnection", id)
                .await
                .map(drop),
            ResourceKind::VpnGateway => {
                if let Some(vpc) = current.links.first().filter(|v| !v.is_empty()) {
                    if let Err(e) = c
                        .detach_vpn_gateway()
                        .vpn_gateway_id(cid)
                        .vpc_id(vpc)
                        .send()
                        .await
                    {
                        let e = err("DetachVpnGateway", id, e);
                        if e.kind != ErrorKind::NotFound
                            && e.code.as_deref() != Some("InvalidVpnGatewayAttachment.NotFound")
                        {
                            return Err(e);
                        }
                    }
                }
                self.client(&region)
                    .delete_vpn_gateway()
                    .vpn_gateway_id(cid)
                    .send()
                    .named("DeleteVpnGateway", id)
                    .await
                    .map(drop)
            }
            ResourceKind::TransitGateway => c
                .delete_transit_gateway()
                .transit_gateway_id(cid)
                .send()
                .named("DeleteTransitGateway", id)
                .await
                .map(drop),
            ResourceKind::TransitGatewayAttachment => c
                .delete_transit_gateway_vpc_attachment()
                .transit_gateway_attachment_id(cid)
                .send()
                .named("DeleteTransitGatewayVpcAttachment", id)
                .await
                .map(drop),
            ResourceKind::TransitGatewayRoute => {
                let (rtb, dest) = cid.split_once('|').unwrap_or((cid, ""));
                c.delete_transit_gateway_route()
                    .transit_gateway_route_table_id(rtb)
                    .destination_cidr_block(dest)
                    .send()
                    .named("DeleteTransitGatewayRoute", id)
                    .await
                    .map(drop)
            }
            ResourceKind::PrivateEndpoint => c
                .delete_vpc_endpoints()
                .vpc_endpoint_ids(cid)
                .send()
                .named("DeleteVpcEndpoints", id)
                .await
                .map(drop),
            other => Err(self.unsupported(id, other)),
        }
    }
}
