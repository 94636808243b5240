//! Route tables (subnet associations, VGW route propagation) and their routes.
//! Routes have no tags: a route is mcnet's when its table is, and it is not
//! `local` or propagated.

use super::*;

impl AwsProvider {
    /// Lists the owner's route tables, or with `kind` Route their routes in `region`.
    pub(super) async fn list_route_tables(
        &self,
        l: &Listing<'_>,
        kind: ResourceKind,
    ) -> Result<Vec<Raw>, ProviderError> {
        let (c, f, region, owner) = (l.c, &l.f, l.region, l.owner);
        let (raw, mut out) = (raw_in(region), Vec::new());
        let r = c
            .describe_route_tables()
            .filters(f.clone())
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
        Ok(out)
    }

    /// Creates a route table; its associations and propagation are the update's job.
    pub(super) async fn create_route_table(
        &self,
        op: &Op<'_>,
        spec: &Spec,
    ) -> Result<Observed, ProviderError> {
        let Spec::RouteTable { network, .. } = spec else {
            return Err(self.unsupported(op.id, spec.kind()));
        };
        let Op {
            c,
            owner,
            r,
            refs,
            rid,
            id,
            region,
        } = *op;
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
        let created = fresh(rid, rtb, empty, ResourceState::Ready, region);
        return self.update(owner, r, &created, refs).await;
    }

    /// Creates a route (adopting one that is already there).
    pub(super) async fn create_route(
        &self,
        op: &Op<'_>,
        spec: &Spec,
    ) -> Result<Observed, ProviderError> {
        let Spec::Route {
            route_table,
            destination,
            target,
        } = spec
        else {
            return Err(self.unsupported(op.id, spec.kind()));
        };
        let Op {
            c,
            owner,
            r,
            refs,
            rid,
            id,
            region,
        } = *op;
        let cloud_id = {
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
                    let current = fresh(rid, cid, r.spec.clone(), ResourceState::Ready, region);
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
        };
        Ok(just_created(op, cloud_id))
    }

    /// Updates a route table: subnet associations and VGW propagation, read from the table itself.
    pub(super) async fn update_route_table(
        &self,
        op: &Op<'_>,
        current: &Observed,
        want: &Spec,
    ) -> Result<(), ProviderError> {
        let Spec::RouteTable {
            subnets,
            propagating_gateways,
            ..
        } = want
        else {
            return Ok(());
        };
        let Op { c, id, region, .. } = *op;
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
            self.client(region)
                .associate_route_table()
                .route_table_id(&current.cloud_id)
                .subnet_id(s)
                .send()
                .named("AssociateRouteTable", id)
                .await?;
        }
        for (_, a) in assoc.iter().filter(|(s, _)| !subnets.contains(s)) {
            self.client(region)
                .disassociate_route_table()
                .association_id(a)
                .send()
                .named("DisassociateRouteTable", id)
                .await?;
        }
        for g in propagating_gateways.iter().filter(|g| !vgws.contains(g)) {
            self.client(region)
                .enable_vgw_route_propagation()
                .route_table_id(&current.cloud_id)
                .gateway_id(g)
                .send()
                .named("EnableVgwRoutePropagation", id)
                .await?;
        }
        Ok(())
    }

    /// Updates a route's next hop.
    pub(super) async fn update_route(&self, op: &Op<'_>, want: &Spec) -> Result<(), ProviderError> {
        let Spec::Route {
            route_table,
            destination,
            target,
        } = want
        else {
            return Ok(());
        };
        let Op { c, id, .. } = *op;
        let b = next_hop!(
            c.replace_route()
                .route_table_id(route_table)
                .destination_cidr_block(destination),
            target
        );
        b.send().named("ReplaceRoute", id).await?;
        Ok(())
    }

    /// Deletes a route table, after its associations.
    pub(super) async fn delete_route_table(
        &self,
        c: &Client,
        current: &Observed,
    ) -> Result<(), ProviderError> {
        let id = current.id.as_str();
        let region = current.outputs.get("region").cloned().unwrap_or_default();
        let cid = current.cloud_id.as_str();
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

    /// Deletes a route.
    pub(super) async fn delete_route(
        &self,
        c: &Client,
        current: &Observed,
    ) -> Result<(), ProviderError> {
        let id = current.id.as_str();
        let cid = current.cloud_id.as_str();
        let (rtb, dest) = cid.split_once('|').unwrap_or((cid, ""));
        c.delete_route()
            .route_table_id(rtb)
            .destination_cidr_block(dest)
            .send()
            .named("DeleteRoute", id)
            .await
            .map(drop)
    }
}
