//! Creating a resource through ARM: a PUT of its body, tagged with its
//! owner and logical id, and what comes back.

use super::*;

impl AzureProvider {
    pub(super) async fn create_resource(
        &self,
        owner: &Owner,
        r: &Desired,
        refs: Refs<'_>,
    ) -> Result<Observed, ProviderError> {
        let rid = &r.id;
        let id = rid.as_str();
        let name = arm_name(id);
        let region_of = |net: &str| -> Result<String, ProviderError> {
            match &refs.get(net)?.spec {
                Spec::Network { region, .. } => Ok(region.clone()),
                _ => Ok(String::new()),
            }
        };
        match &r.spec {
            Spec::Network { region, cidrs } => {
                self.ensure_group(owner, region).await?;
                let v = self
                    .put_owned(
                        owner,
                        rid,
                        "virtualNetworks",
                        region,
                        json!({"addressSpace": {"addressPrefixes": cidrs}}),
                    )
                    .await?;
                Ok(Self::made(r, &v, vec![]))
            }
            Spec::Subnet { network, cidr, .. } => {
                let vnet = refs.cloud_id(network)?;
                let sub = rid.path().last().map_or(id, String::as_str);
                let v = self
                    .put(
                        &format!("{vnet}/subnets/{sub}"),
                        json!({"properties": {"addressPrefix": cidr}}),
                        id,
                    )
                    .await?;
                Ok(Self::made(r, &v, vec![vnet.to_string()]))
            }
            Spec::Peering {
                requester,
                accepter,
                ..
            } => {
                let (a, b) = (refs.cloud_id(requester)?, refs.cloud_id(accepter)?);
                let v = self.peer(id, a, b).await?;
                let cur = Self::observed(
                    rid.clone(),
                    s(&v["id"]),
                    r.spec.clone(),
                    ResourceState::Ready,
                    BTreeMap::new(),
                    vec![a.to_string(), b.to_string()],
                );
                Ok(Self::refreshed(&cur, &v))
            }
            // A site-to-site gateway, its local network gateway and its
            // IPsec connection are not implemented here yet: refused before
            // anything is created, never turned into an ExpressRoute one.
            Spec::VpnGateway { ipsec: true, .. } | Spec::VpnPeer { .. } | Spec::VpnConnection { .. } => {
                Err(ProviderError::new(
                    Scope::Azure,
                    ErrorKind::Invalid,
                    "plan",
                    format!(
                        "{id}: the Azure provider does not implement VPN backups yet \
                         (apply them on the embedded sim, or leave spec.vpnBackups out for Azure networks)"
                    ),
                ))
            }
            Spec::VpnGateway { network, .. } => {
                let vnet = refs.cloud_id(network)?;
                // `vpn-gateway/<network>`: the gateway is named after its VNet.
                let net = rid.name();
                // The gateway needs the VNet's GatewaySubnet, which the
                // planner may still be creating beside it.
                let subnet = refs
                    .get(ResourceId::subnet(net, GATEWAY_SUBNET).as_str())
                    .map_err(|_| {
                        ProviderError::new(
                            Scope::Azure,
                            ErrorKind::Transient,
                            "PUT virtualNetworkGateways",
                            format!(
                                "{id}: an ExpressRoute gateway needs subnet/{net}/{GATEWAY_SUBNET} \
                                 (declare a /27 or larger subnet named {GATEWAY_SUBNET} in {network})"
                            ),
                        )
                    })?;
                let properties = json!({
                    "gatewayType": "ExpressRoute",
                    "sku": {"name": "Standard", "tier": "Standard"},
                    "ipConfigurations": [{
                        "name": "default",
                        "properties": {
                            "privateIPAllocationMethod": "Dynamic",
                            "subnet": {"id": subnet.cloud_id},
                        },
                    }],
                });
                let v = self
                    .put_owned(
                        owner,
                        rid,
                        "virtualNetworkGateways",
                        &region_of(network)?,
                        properties,
                    )
                    .await?;
                Ok(Self::made(r, &v, vec![vnet.to_string()]))
            }
            Spec::InterconnectGateway {
                region,
                asn,
                bandwidth_mbps,
                ..
            } => {
                let invalid = |m: String| {
                    ProviderError::new(
                        Scope::Azure,
                        ErrorKind::Invalid,
                        "PUT expressRouteCircuits",
                        m,
                    )
                };
                if *asn != MICROSOFT_ASN {
                    return Err(invalid(format!(
                        "{id}: asn is {asn}, but Microsoft's side of ExpressRoute is always AS {MICROSOFT_ASN} \
                         (set the VXC's bgp peer peerAsn to {MICROSOFT_ASN})"
                    )));
                }
                let mbps = bandwidth_mbps.unwrap_or(1000);
                if !CIRCUIT_MBPS.contains(&mbps) {
                    return Err(invalid(format!(
                        "{id}: bandwidthMbps {mbps} is not an ExpressRoute circuit size through Megaport \
                         ({CIRCUIT_MBPS:?})"
                    )));
                }
                let location = match &self.cfg.peering_location {
                    Some(l) => l.clone(),
                    None => default_peering_location(region)
                        .ok_or_else(|| {
                            invalid(format!(
                                "{id}: no default ExpressRoute peering location for region `{region}`; \
                                 set MCNET_AZURE_PEERING_LOCATION"
                            ))
                        })?
                        .to_string(),
                };
                self.ensure_group(owner, region).await?;
                let cid = self.id_of("expressRouteCircuits", &name);
                let v = self
                    .put(
                        &cid,
                        json!({
                            "location": region,
                            "tags": tags(owner, rid),
                            "sku": {"name": "Standard_MeteredData", "tier": "Standard", "family": "MeteredData"},
                            "properties": {
                                "serviceProviderProperties": {
                                    "serviceProviderName": "Megaport",
                                    "peeringLocation": location,
                                    "bandwidthInMbps": mbps,
                                },
                                "allowClassicOperations": false,
                            },
                        }),
                        id,
                    )
                    .await?;
                let mut o = Self::circuit(rid.clone(), &v);
                o.spec = r.spec.clone();
                Ok(o)
            }
            Spec::InterconnectAttachment {
                gateway,
                vxc,
                network_gateway,
                vlan,
            } => {
                let circuit = refs.cloud_id(gateway)?;
                let Some(ng) = network_gateway else {
                    return Err(ProviderError::new(
                        Scope::Azure,
                        ErrorKind::Invalid,
                        "PUT connections",
                        format!("{id}: an ExpressRoute connection needs a network gateway"),
                    ));
                };
                let vgw = refs.cloud_id(ng)?;
                // Azure refuses a connection until the provider (Megaport)
                // has provisioned the circuit.
                let c = self.get(circuit, gateway).await?.unwrap_or(Value::Null);
                let st = s(&c["properties"]["serviceProviderProvisioningState"]);
                if st != "Provisioned" {
                    let vxc_live = vxc
                        .as_deref()
                        .and_then(|v| refs.get(v).ok())
                        .is_some_and(|v| v.state == ResourceState::Ready);
                    let (kind, hint) = if vxc_live {
                        (ErrorKind::Transient, "its VXC is live; waiting for Azure")
                    } else {
                        (
                            ErrorKind::Unresolved,
                            "apply the Megaport provider (its VXC carries the service key), then apply again",
                        )
                    };
                    return Err(ProviderError::new(
                        Scope::Azure,
                        kind,
                        "PUT connections",
                        format!(
                            "{id}: circuit {gateway} is `{st}` by its service provider: {hint}"
                        ),
                    )
                    .with_code("CircuitNotProvisioned"));
                }
                let mut t = tags(owner, rid);
                if let Some(v) = vxc {
                    t.insert(TAG_VXC.into(), v.clone());
                }
                if let Some(v) = vlan {
                    t.insert(TAG_VLAN.into(), v.to_string());
                }
                let cid = self.id_of("connections", &name);
                let v = self
                    .put(
                        &cid,
                        json!({
                            "location": s(&c["location"]),
                            "tags": t,
                            "properties": {
                                "connectionType": "ExpressRoute",
                                "virtualNetworkGateway1": {"id": vgw},
                                "peer": {"id": circuit},
                                "routingWeight": 0,
                            },
                        }),
                        id,
                    )
                    .await?;
                let mut o = Self::connection(rid.clone(), &v, &Index::new());
                o.spec = r.spec.clone();
                Ok(o)
            }
            Spec::PrivateEndpoint {
                network,
                service,
                subresource,
                subnets,
            } => {
                let [subnet] = &subnets[..] else {
                    return Err(ProviderError::new(
                        Scope::Azure,
                        ErrorKind::Invalid,
                        "PUT privateEndpoints",
                        format!(
                            "{id}: an Azure private endpoint lives in exactly one subnet, not {}",
                            subnets.len()
                        ),
                    ));
                };
                let subnet = refs.cloud_id(subnet)?;
                let properties = json!({
                    "subnet": {"id": subnet},
                    "privateLinkServiceConnections": [{
                        "name": name,
                        "properties": {
                            "privateLinkServiceId": service,
                            "groupIds": subresource.iter().collect::<Vec<_>>(),
                        },
                    }],
                });
                let v = self
                    .put_owned(
                        owner,
                        rid,
                        "privateEndpoints",
                        &region_of(network)?,
                        properties,
                    )
                    .await?;
                let mut o = Self::private_endpoint(rid.clone(), &v, &Index::new());
                o.spec = r.spec.clone();
                Ok(o)
            }
            _ => Err(Self::unsupported(r)),
        }
    }
}
