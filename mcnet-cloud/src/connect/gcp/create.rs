//! Creating a resource through the Compute API: an insert, marked in its
//! description with its owner and logical id, waited for.

use super::*;

impl GcpProvider {
    pub(super) async fn create_resource(
        &self,
        owner: &Owner,
        r: &Desired,
        refs: Refs<'_>,
    ) -> Result<Observed, ProviderError> {
        let rid = &r.id;
        let id = rid.as_str();
        let name = gcp_name(id)?;
        let pp = self.project_path();
        let desc = description(owner, rid);
        let region_of = |net: &str| -> Result<String, ProviderError> {
            match &refs.get(net)?.spec {
                Spec::Network { region, .. } => Ok(region.clone()),
                _ => Ok(String::new()),
            }
        };
        let url = |path: &str| format!("{}/{path}", self.cfg.compute_url);
        match &r.spec {
            Spec::Network { region, cidrs } => {
                let body = json!({
                    "name": name,
                    "description": format!("{desc};region={region};cidrs={}", cidrs.join(",")),
                    "autoCreateSubnetworks": false,
                    "routingConfig": {"routingMode": "GLOBAL"},
                });
                self.insert(&format!("{pp}/global/networks"), body, id)
                    .await?;
                let path = format!("{pp}/global/networks/{name}");
                let v = self.read(&path, id).await?;
                let mut o = Self::network(rid.clone(), "", &v);
                o.spec = r.spec.clone();
                Ok(o)
            }
            Spec::Subnet { network, cidr, .. } => {
                let net = refs.cloud_id(network)?;
                let region = region_of(network)?;
                let body = json!({
                    "name": name,
                    "description": desc,
                    "network": url(net),
                    "ipCidrRange": cidr,
                    "region": url(&format!("{pp}/regions/{region}")),
                });
                let coll = format!("{pp}/regions/{region}/subnetworks");
                self.insert(&coll, body, id).await?;
                let v = self.read(&format!("{coll}/{name}"), id).await?;
                let mut o = Self::subnet(rid.clone(), &v, &Index::new());
                o.spec = r.spec.clone();
                Ok(o)
            }
            Spec::Peering {
                requester,
                accepter,
                ..
            } => {
                let (a, b) = (refs.cloud_id(requester)?, refs.cloud_id(accepter)?);
                self.peer(id, a, b).await?;
                let cur = Observed {
                    id: rid.clone(),
                    cloud_id: format!("{a}#{name}").into(),
                    scope: Scope::Gcp,
                    spec: r.spec.clone(),
                    state: ResourceState::Pending("INACTIVE".into()),
                    outputs: BTreeMap::new(),
                    links: vec![a.to_string(), b.to_string()],
                };
                Ok(self.peering_now(&cur).await?.unwrap_or(cur))
            }
            Spec::InterconnectGateway {
                region,
                asn,
                network,
                ..
            } => {
                if *asn != PARTNER_ROUTER_ASN {
                    return Err(ProviderError::new(
                        Scope::Gcp,
                        ErrorKind::Invalid,
                        "POST routers",
                        format!(
                            "{id}: asn is {asn}, but a Cloud Router for Partner Interconnect must use \
                             AS {PARTNER_ROUTER_ASN} (set the VXC's bgp peer peerAsn to {PARTNER_ROUTER_ASN})"
                        ),
                    ));
                }
                let Some(network) = network else {
                    return Err(ProviderError::new(
                        Scope::Gcp,
                        ErrorKind::Invalid,
                        "POST routers",
                        format!("{id}: a Cloud Router needs a network"),
                    ));
                };
                let net = refs.cloud_id(network)?;
                let body = json!({
                    "name": name,
                    "description": desc,
                    "network": url(net),
                    "bgp": {"asn": asn},
                });
                let coll = format!("{pp}/regions/{region}/routers");
                self.insert(&coll, body, id).await?;
                let v = self.read(&format!("{coll}/{name}"), id).await?;
                let mut o = Self::router(rid.clone(), &v, &Index::new());
                o.spec = r.spec.clone();
                Ok(o)
            }
            Spec::InterconnectAttachment { gateway, .. } => {
                let router = refs.cloud_id(gateway)?;
                let region = match &refs.get(gateway)?.spec {
                    Spec::InterconnectGateway { region, .. } => region.clone(),
                    _ => String::new(),
                };
                let body = json!({
                    "name": name,
                    "description": desc,
                    "router": url(router),
                    "type": "PARTNER",
                    "edgeAvailabilityDomain": "AVAILABILITY_DOMAIN_1",
                    "adminEnabled": true,
                });
                let coll = format!("{pp}/regions/{region}/interconnectAttachments");
                self.insert(&coll, body, id).await?;
                let v = self.read(&format!("{coll}/{name}"), id).await?;
                let mut o = Self::attachment(rid.clone(), &v, &Index::new());
                o.spec = r.spec.clone();
                Ok(o)
            }
            Spec::PrivateEndpoint {
                network,
                service,
                subnets,
                ..
            } => {
                let invalid = |m: String| {
                    Err(ProviderError::new(
                        Scope::Gcp,
                        ErrorKind::Invalid,
                        "POST forwardingRules",
                        format!("{id}: {m}"),
                    ))
                };
                let [subnet] = &subnets[..] else {
                    return invalid(format!(
                        "a Private Service Connect endpoint takes its address from exactly one subnet, not {}",
                        subnets.len()
                    ));
                };
                let target = path_of(service);
                let Some(region) = service_attachment_region(target) else {
                    return invalid(format!(
                        "`{service}` is not a service attachment (projects/P/regions/R/serviceAttachments/NAME)"
                    ));
                };
                let here = region_of(network)?;
                if here != region {
                    return invalid(format!(
                        "the service attachment is in {region}, but the endpoint's subnet is in \
                         {here}: a Private Service Connect endpoint must be in its attachment's region"
                    ));
                }
                let (net, sn) = (refs.cloud_id(network)?, refs.cloud_id(subnet)?);
                // The address first, from the subnet; then the rule through it.
                let addresses = format!("{pp}/regions/{region}/addresses");
                let body = json!({
                    "name": name,
                    "description": desc,
                    "addressType": "INTERNAL",
                    "subnetwork": url(sn),
                });
                self.insert(&addresses, body, id).await?;
                let rules = format!("{pp}/regions/{region}/forwardingRules");
                let body = json!({
                    "name": name,
                    "description": desc,
                    "network": url(net),
                    "IPAddress": url(&format!("{addresses}/{name}")),
                    "target": url(target),
                    "loadBalancingScheme": "",
                });
                if let Err(e) = self.insert(&rules, body, id).await {
                    // No address without its rule: observe would not see it.
                    let address = format!("{addresses}/{name}");
                    if let Ok(op) = self.call(Method::DELETE, &address, None, id).await {
                        let _ = self.wait(op, id).await;
                    }
                    return Err(e);
                }
                let v = self.read(&format!("{rules}/{name}"), id).await?;
                let mut o = Self::endpoint(rid.clone(), &v, &Index::new(), &Index::new());
                o.spec = r.spec.clone();
                Ok(o)
            }
            _ => Err(ProviderError::new(
                Scope::Gcp,
                ErrorKind::Invalid,
                "plan",
                format!(
                    "{id}: the GCP provider does not manage {} resources",
                    r.kind()
                ),
            )),
        }
    }
}
