//! Observed resources shaped from ARM's JSON.

use super::*;

impl AzureProvider {
    /// A VNet, its subnets and the requester halves of its peerings.
    pub(super) fn vnet(
        id: &ResourceId,
        v: &Value,
        index: &Index,
        locations: &Index,
        out: &mut Vec<Observed>,
    ) {
        let p = &v["properties"];
        let net = id.name();
        let cloud_id = s(&v["id"]);
        out.push(Self::observed(
            id.clone(),
            cloud_id,
            Spec::Network {
                region: s(&v["location"]).into(),
                cidrs: p["addressSpace"]["addressPrefixes"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|c| s(c).to_string())
                    .collect(),
            },
            state_of(s(&p["provisioningState"])),
            BTreeMap::new(),
            vec![],
        ));
        for sn in p["subnets"].as_array().into_iter().flatten() {
            out.push(Self::observed(
                ResourceId::subnet(net, s(&sn["name"])),
                s(&sn["id"]),
                Spec::Subnet {
                    network: id.to_string(),
                    cidr: s(&sn["properties"]["addressPrefix"]).into(),
                    zone: None,
                },
                state_of(s(&sn["properties"]["provisioningState"])),
                BTreeMap::new(),
                vec![cloud_id.to_string()],
            ));
        }
        for pe in p["virtualNetworkPeerings"].as_array().into_iter().flatten() {
            let name = s(&pe["name"]);
            let Some(logical) = name.strip_prefix("peering-") else {
                continue;
            };
            if logical.ends_with("-accept") {
                continue;
            }
            let remote = s(&pe["properties"]["remoteVirtualNetwork"]["id"]);
            let remote_location = locations.get(&key(remote));
            let here = s(&v["location"]);
            let mut outputs = BTreeMap::new();
            outputs.insert(
                "status".into(),
                s(&pe["properties"]["peeringState"]).to_string(),
            );
            out.push(Self::observed(
                ResourceId::peering(logical),
                s(&pe["id"]),
                Spec::Peering {
                    requester: id.to_string(),
                    accepter: index
                        .get(&key(remote))
                        .cloned()
                        .unwrap_or_else(|| format!("unmanaged:{remote}")),
                    peer_region: remote_location.filter(|l| l.as_str() != here).cloned(),
                },
                peering_state(pe),
                outputs,
                vec![cloud_id.to_string(), remote.to_string()],
            ));
        }
    }

    pub(super) fn gateway(id: ResourceId, g: &Value, index: &Index) -> Observed {
        let p = &g["properties"];
        let subnet = s(&p["ipConfigurations"][0]["properties"]["subnet"]["id"]);
        let vnet = subnet
            .rsplit_once("/subnets/")
            .map_or(subnet, |(v, _)| v)
            .to_string();
        Self::observed(
            id,
            s(&g["id"]),
            Spec::VpnGateway {
                network: index
                    .get(&key(&vnet))
                    .cloned()
                    .unwrap_or_else(|| format!("unmanaged:{vnet}")),
                asn: None,
                ipsec: false,
            },
            state_of(s(&p["provisioningState"])),
            BTreeMap::new(),
            vec![vnet],
        )
    }

    pub(super) fn circuit(id: ResourceId, c: &Value) -> Observed {
        let p = &c["properties"];
        let mut outputs = BTreeMap::new();
        if let Some(k) = p["serviceKey"].as_str() {
            outputs.insert("serviceKey".into(), k.to_string());
        }
        outputs.insert(
            "status".into(),
            s(&p["serviceProviderProvisioningState"]).to_string(),
        );
        Self::observed(
            id,
            s(&c["id"]),
            Spec::InterconnectGateway {
                region: s(&c["location"]).into(),
                asn: MICROSOFT_ASN,
                bandwidth_mbps: p["serviceProviderProperties"]["bandwidthInMbps"]
                    .as_u64()
                    .and_then(|b| u32::try_from(b).ok()),
                network: None,
                associations: vec![],
            },
            state_of(s(&p["provisioningState"])),
            outputs,
            vec![],
        )
    }

    pub(super) fn connection(id: ResourceId, c: &Value, index: &Index) -> Observed {
        let p = &c["properties"];
        let circuit = s(&p["peer"]["id"]);
        let gateway = s(&p["virtualNetworkGateway1"]["id"]);
        let name = |cid: &str| {
            index
                .get(&key(cid))
                .cloned()
                .unwrap_or_else(|| format!("unmanaged:{cid}"))
        };
        let mut outputs = BTreeMap::new();
        outputs.insert("status".into(), s(&p["connectionStatus"]).to_string());
        Self::observed(
            id,
            s(&c["id"]),
            Spec::InterconnectAttachment {
                gateway: name(circuit),
                vxc: c["tags"][TAG_VXC].as_str().map(str::to_string),
                network_gateway: (!gateway.is_empty()).then(|| name(gateway)),
                vlan: c["tags"][TAG_VLAN].as_str().and_then(|v| v.parse().ok()),
            },
            state_of(s(&p["provisioningState"])),
            outputs,
            vec![circuit.to_string(), gateway.to_string()],
        )
    }

    /// A private endpoint: its subnet (and so its VNet), the Private Link
    /// resource and sub-resource it reaches, the state of that connection
    /// (`Approved`, or `Pending` until the resource's owner approves it) and
    /// the address it got.
    pub(super) fn private_endpoint(id: ResourceId, e: &Value, index: &Index) -> Observed {
        let p = &e["properties"];
        let subnet = s(&p["subnet"]["id"]);
        let vnet = subnet.rsplit_once("/subnets/").map_or(subnet, |(v, _)| v);
        let name = |cid: &str| {
            index
                .get(&key(cid))
                .cloned()
                .unwrap_or_else(|| format!("unmanaged:{cid}"))
        };
        // Auto-approved connections are listed apart from manual ones.
        let conn = [
            &p["privateLinkServiceConnections"],
            &p["manualPrivateLinkServiceConnections"],
        ]
        .into_iter()
        .find_map(|c| c.as_array().and_then(|a| a.first()))
        .map(|c| &c["properties"])
        .unwrap_or(&Value::Null);
        let mut outputs = BTreeMap::new();
        if let Some(st) = conn["privateLinkServiceConnectionState"]["status"].as_str() {
            outputs.insert("status".into(), st.to_string());
        }
        if let Some(ip) = p["customDnsConfigs"][0]["ipAddresses"][0].as_str() {
            outputs.insert("ip".into(), ip.to_string());
        }
        Self::observed(
            id,
            s(&e["id"]),
            Spec::PrivateEndpoint {
                network: name(vnet),
                service: s(&conn["privateLinkServiceId"]).to_string(),
                subresource: conn["groupIds"][0].as_str().map(str::to_string),
                subnets: vec![name(subnet)],
            },
            state_of(s(&p["provisioningState"])),
            outputs,
            vec![subnet.to_string()],
        )
    }
}
