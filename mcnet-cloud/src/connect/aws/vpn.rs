//! Virtual private gateways, attached to their VPC.

use super::*;

impl AwsProvider {
    /// Lists the owner's virtual private gateways in `region`.
    pub(super) async fn list_vpn_gateways(
        &self,
        l: &Listing<'_>,
    ) -> Result<Vec<Raw>, ProviderError> {
        let (c, f, region, owner) = (l.c, &l.f, l.region, l.owner);
        let (raw, mut out) = (raw_in(region), Vec::new());
        let r = c
            .describe_vpn_gateways()
            .filters(f.clone())
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
                ipsec: false,
            };
            out.extend(raw(
                logical(owner, g.tags()),
                g.vpn_gateway_id().unwrap_or_default(),
                spec,
                status,
            ));
        }
        Ok(out)
    }

    /// Creates a virtual private gateway and attaches it to its VPC.
    pub(super) async fn create_vpn_gateway(
        &self,
        op: &Op<'_>,
        spec: &Spec,
    ) -> Result<Observed, ProviderError> {
        let Spec::VpnGateway { network, asn, .. } = spec else {
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
            self.client(region)
                .attach_vpn_gateway()
                .vpn_gateway_id(&vgw)
                .vpc_id(network)
                .send()
                .named("AttachVpnGateway", id)
                .await?;
            vgw
        };
        Ok(just_created(op, cloud_id))
    }

    /// Deletes a virtual private gateway, detached first.
    pub(super) async fn delete_vpn_gateway(
        &self,
        c: &Client,
        current: &Observed,
    ) -> Result<(), ProviderError> {
        let id = current.id.as_str();
        let region = current.outputs.get("region").cloned().unwrap_or_default();
        let cid = current.cloud_id.as_str();
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
}
