//! Transit gateways, their VPC attachments and the static routes of their
//! default route tables.

use super::*;

impl AwsProvider {
    /// Lists the owner's transit gateways, or with `kind` TransitGatewayRoute the static routes of their default route tables in `region`.
    pub(super) async fn list_transit_gateways(
        &self,
        l: &Listing<'_>,
        kind: ResourceKind,
    ) -> Result<Vec<Raw>, ProviderError> {
        let (c, f, region, owner) = (l.c, &l.f, l.region, l.owner);
        let (raw, mut out) = (raw_in(region), Vec::new());
        let r = c
            .describe_transit_gateways()
            .filters(f.clone())
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
            let Some(rtb) = opts.and_then(|o| o.association_default_route_table_id()) else {
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
        Ok(out)
    }

    /// Lists the owner's transit gateways' VPC attachments in `region`.
    pub(super) async fn list_transit_gateway_attachments(
        &self,
        l: &Listing<'_>,
    ) -> Result<Vec<Raw>, ProviderError> {
        let (c, f, region, owner) = (l.c, &l.f, l.region, l.owner);
        let (raw, mut out) = (raw_in(region), Vec::new());
        let r = c
            .describe_transit_gateway_vpc_attachments()
            .filters(f.clone())
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
        Ok(out)
    }

    /// Creates a transit gateway.
    pub(super) async fn create_transit_gateway(
        &self,
        op: &Op<'_>,
        spec: &Spec,
    ) -> Result<Observed, ProviderError> {
        let Spec::TransitGateway { asn, .. } = spec else {
            return Err(self.unsupported(op.id, spec.kind()));
        };
        let Op {
            c, owner, rid, id, ..
        } = *op;
        let cloud_id = {
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
        };
        Ok(just_created(op, cloud_id))
    }

    /// Creates a transit gateway's VPC attachment.
    pub(super) async fn create_transit_gateway_attachment(
        &self,
        op: &Op<'_>,
        spec: &Spec,
    ) -> Result<Observed, ProviderError> {
        let Spec::TransitGatewayAttachment {
            transit_gateway,
            network,
            subnets,
        } = spec
        else {
            return Err(self.unsupported(op.id, spec.kind()));
        };
        let Op { c, .. } = *op;
        let Op {
            owner,
            rid,
            id,
            region,
            ..
        } = *op;
        let cloud_id = {
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
            let mut t = self.client(region).create_tags().resources(&att);
            for (k, v) in owner.tags(rid) {
                t = t.tags(Tag::builder().key(k).value(v).build());
            }
            t.send().named("CreateTags", id).await?;
            att
        };
        Ok(just_created(op, cloud_id))
    }

    /// Creates a static route in a transit gateway's default route table.
    pub(super) async fn create_transit_gateway_route(
        &self,
        op: &Op<'_>,
        spec: &Spec,
    ) -> Result<Observed, ProviderError> {
        let Spec::TransitGatewayRoute {
            transit_gateway,
            destination,
            attachment,
        } = spec
        else {
            return Err(self.unsupported(op.id, spec.kind()));
        };
        let Op { c, id, region, .. } = *op;
        let cloud_id = {
            let rtb = self.tgw_route_table(region, transit_gateway, id).await?;
            c.create_transit_gateway_route()
                .transit_gateway_route_table_id(&rtb)
                .destination_cidr_block(destination)
                .transit_gateway_attachment_id(attachment)
                .send()
                .named("CreateTransitGatewayRoute", id)
                .await?;
            format!("{rtb}|{destination}")
        };
        Ok(just_created(op, cloud_id))
    }

    /// Updates an attachment's subnets.
    pub(super) async fn update_transit_gateway_attachment(
        &self,
        op: &Op<'_>,
        current: &Observed,
        want: &Spec,
    ) -> Result<(), ProviderError> {
        let Spec::TransitGatewayAttachment { subnets, .. } = want else {
            return Ok(());
        };
        let Op { c, id, .. } = *op;
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
        Ok(())
    }

    /// Updates a transit gateway route's attachment.
    pub(super) async fn update_transit_gateway_route(
        &self,
        op: &Op<'_>,
        current: &Observed,
        want: &Spec,
    ) -> Result<(), ProviderError> {
        let Spec::TransitGatewayRoute {
            destination,
            attachment,
            ..
        } = want
        else {
            return Ok(());
        };
        let Op { c, id, .. } = *op;
        let (rtb, _) = current.cloud_id.split_once('|').unwrap_or_default();
        c.replace_transit_gateway_route()
            .transit_gateway_route_table_id(rtb)
            .destination_cidr_block(destination)
            .transit_gateway_attachment_id(attachment)
            .send()
            .named("ReplaceTransitGatewayRoute", id)
            .await?;
        Ok(())
    }

    /// Deletes a transit gateway.
    pub(super) async fn delete_transit_gateway(
        &self,
        c: &Client,
        current: &Observed,
    ) -> Result<(), ProviderError> {
        let id = current.id.as_str();
        let cid = current.cloud_id.as_str();
        c.delete_transit_gateway()
            .transit_gateway_id(cid)
            .send()
            .named("DeleteTransitGateway", id)
            .await
            .map(drop)
    }

    /// Deletes a VPC attachment.
    pub(super) async fn delete_transit_gateway_attachment(
        &self,
        c: &Client,
        current: &Observed,
    ) -> Result<(), ProviderError> {
        let id = current.id.as_str();
        let cid = current.cloud_id.as_str();
        c.delete_transit_gateway_vpc_attachment()
            .transit_gateway_attachment_id(cid)
            .send()
            .named("DeleteTransitGatewayVpcAttachment", id)
            .await
            .map(drop)
    }

    /// Deletes a transit gateway route.
    pub(super) async fn delete_transit_gateway_route(
        &self,
        c: &Client,
        current: &Observed,
    ) -> Result<(), ProviderError> {
        let id = current.id.as_str();
        let cid = current.cloud_id.as_str();
        let (rtb, dest) = cid.split_once('|').unwrap_or((cid, ""));
        c.delete_transit_gateway_route()
            .transit_gateway_route_table_id(rtb)
            .destination_cidr_block(dest)
            .send()
            .named("DeleteTransitGatewayRoute", id)
            .await
            .map(drop)
    }

    /// A transit gateway's default route table.
    async fn tgw_route_table(
        &self,
        region: &str,
        tgw: &str,
        id: &str,
    ) -> Result<String, ProviderError> {
        let r = self
            .client(region)
            .describe_transit_gateways()
            .transit_gateway_ids(tgw)
            .send()
            .named("DescribeTransitGateways", id)
            .await?;
        r.transit_gateways()
            .first()
            .and_then(|g| g.options())
            .and_then(|o| o.association_default_route_table_id())
            .map(str::to_string)
            .ok_or_else(|| {
                ProviderError::new(
                    Scope::Aws,
                    ErrorKind::Transient,
                    "DescribeTransitGateways",
                    format!("{id}: transit gateway {tgw} has no default route table yet"),
                )
            })
    }
}
