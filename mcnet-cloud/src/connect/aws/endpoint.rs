//! VPC endpoints: Interface endpoints in subnets, Gateway endpoints without.

use super::*;

impl AwsProvider {
    /// Lists the owner's VPC endpoints in `region`.
    pub(super) async fn list_endpoints(&self, l: &Listing<'_>) -> Result<Vec<Raw>, ProviderError> {
        let (c, f, region, owner) = (l.c, &l.f, l.region, l.owner);
        let (raw, mut out) = (raw_in(region), Vec::new());
        let r = c
            .describe_vpc_endpoints()
            .filters(f.clone())
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
        Ok(out)
    }

    /// Creates a VPC endpoint (Interface with subnets, else Gateway).
    pub(super) async fn create_endpoint(
        &self,
        op: &Op<'_>,
        spec: &Spec,
    ) -> Result<Observed, ProviderError> {
        let Spec::PrivateEndpoint {
            network,
            service,
            subnets,
            ..
        } = spec
        else {
            return Err(self.unsupported(op.id, spec.kind()));
        };
        let Op {
            c, owner, rid, id, ..
        } = *op;
        let cloud_id = {
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
        };
        Ok(just_created(op, cloud_id))
    }

    /// Updates an endpoint's subnets.
    pub(super) async fn update_endpoint(
        &self,
        op: &Op<'_>,
        current: &Observed,
        want: &Spec,
    ) -> Result<(), ProviderError> {
        let Spec::PrivateEndpoint { subnets, .. } = want else {
            return Ok(());
        };
        let Op { c, id, .. } = *op;
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
        Ok(())
    }

    /// Deletes a VPC endpoint.
    pub(super) async fn delete_endpoint(
        &self,
        c: &Client,
        current: &Observed,
    ) -> Result<(), ProviderError> {
        let id = current.id.as_str();
        let cid = current.cloud_id.as_str();
        c.delete_vpc_endpoints()
            .vpc_endpoint_ids(cid)
            .send()
            .named("DeleteVpcEndpoints", id)
            .await
            .map(drop)
    }
}
