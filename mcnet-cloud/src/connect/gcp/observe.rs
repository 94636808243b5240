//! Observed resources shaped from the Compute API's JSON.

use super::*;

impl GcpProvider {
    pub(super) fn network(id: ResourceId, extra: &str, n: &Value) -> Observed {
        let spec = Spec::Network {
            region: field(extra, "region").unwrap_or_default().to_string(),
            cidrs: field(extra, "cidrs")
                .unwrap_or_default()
                .split(',')
                .filter(|c| !c.is_empty())
                .map(str::to_string)
                .collect(),
        };
        Self::observed(id, n, spec, ResourceState::Ready, BTreeMap::new(), vec![])
    }

    /// The requester halves of a network's peerings.
    pub(super) fn peerings(
        id: &ResourceId,
        n: &Value,
        index: &Index,
        regions: &Index,
        out: &mut Vec<Observed>,
    ) {
        let here = path_of(s(&n["selfLink"]));
        for p in n["peerings"].as_array().into_iter().flatten() {
            let name = s(&p["name"]);
            let Some(logical) = name.strip_prefix("peering-") else {
                continue;
            };
            if logical.ends_with("-accept") {
                continue;
            }
            let remote = path_of(s(&p["network"]));
            let state = s(&p["state"]);
            let mut outputs = BTreeMap::new();
            outputs.insert("status".into(), state.to_string());
            let (a_region, b_region) = (regions.get(here), regions.get(remote));
            out.push(Observed {
                id: ResourceId::peering(logical),
                cloud_id: format!("{here}#{name}").into(),
                scope: Scope::Gcp,
                spec: Spec::Peering {
                    requester: id.to_string(),
                    accepter: index
                        .get(remote)
                        .cloned()
                        .unwrap_or_else(|| format!("unmanaged:{remote}")),
                    peer_region: b_region.filter(|b| Some(*b) != a_region).cloned(),
                },
                state: match state {
                    "ACTIVE" => ResourceState::Ready,
                    other => ResourceState::Pending(other.into()),
                },
                outputs,
                links: vec![here.to_string(), remote.to_string()],
            });
        }
    }

    pub(super) fn subnet(id: ResourceId, v: &Value, index: &Index) -> Observed {
        let net = path_of(s(&v["network"]));
        Self::observed(
            id,
            v,
            Spec::Subnet {
                network: index
                    .get(net)
                    .cloned()
                    .unwrap_or_else(|| format!("unmanaged:{net}")),
                cidr: s(&v["ipCidrRange"]).into(),
                zone: None,
            },
            ResourceState::Ready,
            BTreeMap::new(),
            vec![net.to_string()],
        )
    }

    pub(super) fn router(id: ResourceId, v: &Value, index: &Index) -> Observed {
        let net = path_of(s(&v["network"]));
        Self::observed(
            id,
            v,
            Spec::InterconnectGateway {
                region: last(s(&v["region"])).into(),
                asn: v["bgp"]["asn"]
                    .as_u64()
                    .and_then(|a| u32::try_from(a).ok())
                    .unwrap_or_default(),
                bandwidth_mbps: None,
                network: Some(
                    index
                        .get(net)
                        .cloned()
                        .unwrap_or_else(|| format!("unmanaged:{net}")),
                ),
                associations: vec![],
            },
            ResourceState::Ready,
            BTreeMap::new(),
            vec![net.to_string()],
        )
    }

    pub(super) fn attachment(id: ResourceId, v: &Value, index: &Index) -> Observed {
        let router = path_of(s(&v["router"]));
        let state = s(&v["state"]);
        let mut outputs = BTreeMap::new();
        outputs.insert("status".into(), state.to_string());
        if let Some(k) = v["pairingKey"].as_str() {
            outputs.insert("pairingKey".into(), k.to_string());
        }
        Self::observed(
            id,
            v,
            Spec::InterconnectAttachment {
                gateway: index
                    .get(router)
                    .cloned()
                    .unwrap_or_else(|| format!("unmanaged:{router}")),
                vxc: None,
                network_gateway: None,
                vlan: None,
            },
            attachment_state(state),
            outputs,
            vec![router.to_string()],
        )
    }

    /// A Private Service Connect endpoint: its forwarding rule, with the
    /// subnet of the address it uses (`subnets` by address path).
    pub(super) fn endpoint(id: ResourceId, v: &Value, index: &Index, subnets: &Index) -> Observed {
        let rule = path_of(s(&v["selfLink"]));
        let net = path_of(s(&v["network"]));
        let name = |p: &str| {
            index
                .get(p)
                .cloned()
                .unwrap_or_else(|| format!("unmanaged:{p}"))
        };
        let status = s(&v["pscConnectionStatus"]);
        let mut outputs = BTreeMap::new();
        outputs.insert("status".into(), status.to_string());
        outputs.insert("ip".into(), s(&v["IPAddress"]).to_string());
        let address = address_of(rule);
        Self::observed(
            id,
            v,
            Spec::PrivateEndpoint {
                network: name(net),
                service: path_of(s(&v["target"])).to_string(),
                subresource: None,
                subnets: subnets
                    .get(&address)
                    .map(|sn| name(sn))
                    .into_iter()
                    .collect(),
            },
            psc_state(status),
            outputs,
            vec![address],
        )
    }
}
