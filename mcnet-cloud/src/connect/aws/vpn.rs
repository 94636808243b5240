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

/// Tags that keep a customer gateway's references: the network on this
/// side and the resource (and output) its address came from. A customer
/// gateway belongs to no VPC, and its address is the other cloud's.
const TAG_VPN_NETWORK: &str = "mcnet.io/vpn-network";
const TAG_VPN_ADDRESS: &str = "mcnet.io/vpn-address-from";
const TAG_VPN_OUTPUT: &str = "mcnet.io/vpn-address-output";

fn tag_value<'a>(tags: &'a [Tag], key: &str) -> Option<&'a str> {
    tags.iter()
        .find(|t| t.key() == Some(key))
        .and_then(Tag::value)
}

/// The AWS side's public tunnel address in a VPN connection's
/// configuration (the first tunnel's `vpn_gateway` outside address).
fn outside_ip(configuration: &str) -> Option<String> {
    let gw = configuration.split("<vpn_gateway>").nth(1)?;
    let outside = gw.split("<tunnel_outside_address>").nth(1)?;
    let ip = outside
        .split("<ip_address>")
        .nth(1)?
        .split("</ip_address>")
        .next()?;
    ip.trim()
        .parse::<std::net::IpAddr>()
        .ok()
        .map(|a| a.to_string())
}

impl AwsProvider {
    /// Lists the owner's customer gateways (the other ends of VPN backups).
    pub(super) async fn list_customer_gateways(
        &self,
        l: &Listing<'_>,
    ) -> Result<Vec<Raw>, ProviderError> {
        let (c, f, region, owner) = (l.c, &l.f, l.region, l.owner);
        let (raw, mut out) = (raw_in(region), Vec::new());
        let r = c
            .describe_customer_gateways()
            .filters(f.clone())
            .send()
            .named("DescribeCustomerGateways", region)
            .await?;
        for g in r.customer_gateways() {
            let state = g.state().unwrap_or("available");
            if state == "deleted" || state == "deleting" {
                continue;
            }
            let tags = g.tags();
            let spec = Spec::VpnPeer {
                network: tag_value(tags, TAG_VPN_NETWORK).unwrap_or_default().into(),
                asn: g.bgp_asn().and_then(|a| a.parse().ok()).unwrap_or_default(),
                address: tag_value(tags, TAG_VPN_ADDRESS).unwrap_or_default().into(),
                address_output: tag_value(tags, TAG_VPN_OUTPUT).unwrap_or_default().into(),
            };
            if let Some(mut r) = raw(
                logical(owner, tags),
                g.customer_gateway_id().unwrap_or_default(),
                spec,
                state,
            ) {
                if let Some(ip) = g.ip_address() {
                    r.extra.insert("address".into(), ip.to_string());
                }
                out.push(r);
            }
        }
        Ok(out)
    }

    /// Creates a customer gateway at the other side's address (an output of
    /// the other cloud's gateway), with its BGP ASN.
    pub(super) async fn create_customer_gateway(
        &self,
        op: &Op<'_>,
    ) -> Result<Observed, ProviderError> {
        let Spec::VpnPeer {
            network,
            asn,
            address,
            address_output,
        } = &op.r.spec
        else {
            return Err(self.unsupported(op.id, op.r.kind()));
        };
        let ip = op.refs.output(address, address_output)?.to_string();
        let mut spec = tags(op.owner, op.rid, ResourceType::CustomerGateway);
        let mut all = spec.tags().to_vec();
        for (k, v) in [
            (TAG_VPN_NETWORK, network.as_str()),
            (TAG_VPN_ADDRESS, address.as_str()),
            (TAG_VPN_OUTPUT, address_output.as_str()),
        ] {
            all.push(Tag::builder().key(k).value(v).build());
        }
        spec = TagSpecification::builder()
            .resource_type(ResourceType::CustomerGateway)
            .set_tags(Some(all))
            .build();
        let out =
            op.c.create_customer_gateway()
                .r#type(GatewayType::Ipsec1)
                .bgp_asn(i32::try_from(*asn).unwrap_or(i32::MAX))
                .ip_address(&ip)
                .tag_specifications(spec)
                .send()
                .named("CreateCustomerGateway", op.id)
                .await?;
        let id = out
            .customer_gateway()
            .and_then(|g| g.customer_gateway_id())
            .unwrap_or_default()
            .to_string();
        let mut o = just_created(op, id);
        o.outputs.insert("address".into(), ip);
        Ok(o)
    }

    /// Deletes a customer gateway.
    pub(super) async fn delete_customer_gateway(
        &self,
        c: &Client,
        current: &Observed,
    ) -> Result<(), ProviderError> {
        c.delete_customer_gateway()
            .customer_gateway_id(current.cloud_id.as_str())
            .send()
            .named("DeleteCustomerGateway", current.id.as_str())
            .await
            .map(drop)
    }

    /// Lists the owner's VPN connections, with the AWS side's tunnel
    /// address as the `outsideIp` output.
    pub(super) async fn list_vpn_connections(
        &self,
        l: &Listing<'_>,
    ) -> Result<Vec<Raw>, ProviderError> {
        let (c, f, region, owner) = (l.c, &l.f, l.region, l.owner);
        let (raw, mut out) = (raw_in(region), Vec::new());
        let r = c
            .describe_vpn_connections()
            .filters(f.clone())
            .send()
            .named("DescribeVpnConnections", region)
            .await?;
        for v in r.vpn_connections() {
            let state = v.state().map_or("available", |s| s.as_str());
            if state == "deleted" || state == "deleting" {
                continue;
            }
            let spec = Spec::VpnConnection {
                gateway: v.vpn_gateway_id().unwrap_or_default().into(),
                peer: v.customer_gateway_id().unwrap_or_default().into(),
            };
            if let Some(mut r) = raw(
                logical(owner, v.tags()),
                v.vpn_connection_id().unwrap_or_default(),
                spec,
                state,
            ) {
                let ip = v
                    .vgw_telemetry()
                    .first()
                    .and_then(|t| t.outside_ip_address())
                    .map(str::to_string)
                    .or_else(|| v.customer_gateway_configuration().and_then(outside_ip));
                if let Some(ip) = ip {
                    r.extra.insert("outsideIp".into(), ip);
                }
                out.push(r);
            }
        }
        Ok(out)
    }

    /// Creates a VPN connection (two IPsec tunnels, BGP) from the network's
    /// virtual private gateway to a customer gateway.
    pub(super) async fn create_vpn_connection(
        &self,
        op: &Op<'_>,
        spec: &Spec,
    ) -> Result<Observed, ProviderError> {
        let Spec::VpnConnection { gateway, peer } = spec else {
            return Err(self.unsupported(op.id, spec.kind()));
        };
        let out =
            op.c.create_vpn_connection()
                .r#type("ipsec.1")
                .vpn_gateway_id(gateway)
                .customer_gateway_id(peer)
                .options(
                    aws_sdk_ec2::types::VpnConnectionOptionsSpecification::builder()
                        .static_routes_only(false)
                        .build(),
                )
                .tag_specifications(tags(op.owner, op.rid, ResourceType::VpnConnection))
                .send()
                .named("CreateVpnConnection", op.id)
                .await?;
        let v = out.vpn_connection();
        let id = v
            .and_then(|v| v.vpn_connection_id())
            .unwrap_or_default()
            .to_string();
        let mut o = just_created(op, id);
        let ip = v.and_then(|v| {
            v.vgw_telemetry()
                .first()
                .and_then(|t| t.outside_ip_address())
                .map(str::to_string)
                .or_else(|| v.customer_gateway_configuration().and_then(outside_ip))
        });
        if let Some(ip) = ip {
            o.outputs.insert("outsideIp".into(), ip);
        }
        Ok(o)
    }

    /// Deletes a VPN connection.
    pub(super) async fn delete_vpn_connection(
        &self,
        c: &Client,
        current: &Observed,
    ) -> Result<(), ProviderError> {
        c.delete_vpn_connection()
            .vpn_connection_id(current.cloud_id.as_str())
            .send()
            .named("DeleteVpnConnection", current.id.as_str())
            .await
            .map(drop)
    }
}
