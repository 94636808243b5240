//! VPCs (with secondary CIDRs) and subnets.

use super::*;

impl AwsProvider {
    /// Lists the owner's VPCs in `region`.
    pub(super) async fn list_networks(&self, l: &Listing<'_>) -> Result<Vec<Raw>, ProviderError> {
        let (c, f, region, owner) = (l.c, &l.f, l.region, l.owner);
        let (raw, mut out) = (raw_in(region), Vec::new());
        let r = c
            .describe_vpcs()
            .filters(f.clone())
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
                        .is_none_or(|s| s.as_str() == "associated" || s.as_str() == "associating")
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
        Ok(out)
    }

    /// Lists the owner's subnets in `region`.
    pub(super) async fn list_subnets(&self, l: &Listing<'_>) -> Result<Vec<Raw>, ProviderError> {
        let (c, f, region, owner) = (l.c, &l.f, l.region, l.owner);
        let (raw, mut out) = (raw_in(region), Vec::new());
        let r = c
            .describe_subnets()
            .filters(f.clone())
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
        Ok(out)
    }

    /// Creates a VPC, then associates its secondary CIDRs.
    pub(super) async fn create_network(
        &self,
        op: &Op<'_>,
        spec: &Spec,
    ) -> Result<Observed, ProviderError> {
        let Spec::Network { cidrs, .. } = spec else {
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
                self.client(region)
                    .associate_vpc_cidr_block()
                    .vpc_id(&vpc)
                    .cidr_block(extra)
                    .send()
                    .named("AssociateVpcCidrBlock", id)
                    .await?;
            }
            vpc
        };
        Ok(just_created(op, cloud_id))
    }

    /// Creates a subnet.
    pub(super) async fn create_subnet(
        &self,
        op: &Op<'_>,
        spec: &Spec,
    ) -> Result<Observed, ProviderError> {
        let Spec::Subnet {
            network,
            cidr,
            zone,
        } = spec
        else {
            return Err(self.unsupported(op.id, spec.kind()));
        };
        let Op {
            c, owner, rid, id, ..
        } = *op;
        let cloud_id = {
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
        };
        Ok(just_created(op, cloud_id))
    }

    /// Updates a VPC: associates CIDRs it lacks.
    pub(super) async fn update_network(
        &self,
        op: &Op<'_>,
        current: &Observed,
        want: &Spec,
    ) -> Result<(), ProviderError> {
        let Spec::Network { cidrs, .. } = want else {
            return Ok(());
        };
        let Op { c, id, .. } = *op;
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
        Ok(())
    }

    /// Deletes a VPC.
    pub(super) async fn delete_network(
        &self,
        c: &Client,
        current: &Observed,
    ) -> Result<(), ProviderError> {
        let id = current.id.as_str();
        let cid = current.cloud_id.as_str();
        c.delete_vpc()
            .vpc_id(cid)
            .send()
            .named("DeleteVpc", id)
            .await
            .map(drop)
    }

    /// Deletes a subnet.
    pub(super) async fn delete_subnet(
        &self,
        c: &Client,
        current: &Observed,
    ) -> Result<(), ProviderError> {
        let id = current.id.as_str();
        let cid = current.cloud_id.as_str();
        c.delete_subnet()
            .subnet_id(cid)
            .send()
            .named("DeleteSubnet", id)
            .await
            .map(drop)
    }
}
