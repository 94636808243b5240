//! Ordering: where a VXC's B-end lands (a cloud's partner port or a
//! Megaport product), checked locations, the buy call, and the MCR's
//! prefix filter lists.

use super::*;

impl MegaportProvider {
    /// The B end for a VXC: the partner port and its CSP configuration.
    pub(super) async fn b_end(
        &self,
        r: &Desired,
        target: &str,
        partner: Option<&str>,
        refs: &Refs<'_>,
        location: u32,
    ) -> Result<Value, ProviderError> {
        let id = r.id.as_str();
        match target {
            "azure-expressroute" => {
                let key = refs.output(partner.unwrap_or_default(), "serviceKey")?;
                let d = self
                    .call(
                        reqwest::Method::GET,
                        &format!("/v2/secure/azure/{}", path_segment(key)),
                        None,
                        id,
                    )
                    .await?;
                let port = s(&d["megaports"][0]["productUid"]).to_string();
                Ok(json!({"productUid": port, "partnerConfig": {
                    "connectType": "AZURE", "serviceKey": key, "peers": [{"type": "private"}],
                }}))
            }
            "gcp-partner-interconnect" => {
                let key = refs.output(partner.unwrap_or_default(), "pairingKey")?;
                let d = self
                    .call(
                        reqwest::Method::GET,
                        &format!("/v2/secure/google/{}", path_segment(key)),
                        None,
                        id,
                    )
                    .await?;
                let port = s(&d["megaports"][0]["productUid"]).to_string();
                Ok(
                    json!({"productUid": port, "partnerConfig": {"connectType": "GOOGLE", "pairingKey": key}}),
                )
            }
            "aws-direct-connect" => {
                let account = self.cfg.aws_account.clone().ok_or_else(|| {
                    invalid("configure", format!("{id}: MEGAPORT_AWS_ACCOUNT is not set (the AWS account that accepts the hosted connection)"))
                })?;
                let port = self.partner_port("AWSHC", location, id).await?;
                Ok(json!({"productUid": port, "partnerConfig": {
                    "connectType": "AWSHC", "type": "private", "ownerAccount": account,
                    "name": r.id.name(),
                }}))
            }
            "aws-hosted-vif" => {
                let account = self.cfg.aws_account.clone().ok_or_else(|| {
                    invalid("configure", format!("{id}: MEGAPORT_AWS_ACCOUNT is not set (the AWS account that accepts the hosted VIF)"))
                })?;
                let port = self.partner_port("AWS", location, id).await?;
                // The VIF's BGP: the MCR is the customer side.
                let Spec::Vxc { router, bgp, .. } = &r.spec else {
                    return Err(invalid("buy VXC", format!("{id}: not a VXC")));
                };
                let asn = match refs.get(router).map(|o| &o.spec) {
                    Ok(Spec::Router { asn, .. }) => *asn,
                    _ => {
                        return Err(invalid(
                            "buy VXC",
                            format!("{id}: its MCR {router} is not known yet"),
                        ))
                    }
                };
                let (local, peer, amazon_asn) = bgp.peers.first().cloned().ok_or_else(|| {
                    invalid(
                        "buy VXC",
                        format!("{id}: a hosted VIF needs a BGP peer (the Amazon side's address and ASN)"),
                    )
                })?;
                let len = local.split_once('/').map_or("30", |(_, l)| l).to_string();
                Ok(json!({"productUid": port, "partnerConfig": {
                    "connectType": "AWS", "type": "private", "ownerAccount": account,
                    "asn": asn, "amazonAsn": amazon_asn,
                    "customerIpAddress": local, "amazonIpAddress": format!("{peer}/{len}"),
                    "name": r.id.name(),
                }}))
            }
            other => Err(invalid(
                "buy VXC",
                format!("{id}: unknown target `{other}`"),
            )),
        }
    }

    /// The partner port of `connect_type` (`AWSHC`, `AWS`) at `location`.
    pub(super) async fn partner_port(
        &self,
        connect_type: &str,
        location: u32,
        id: &str,
    ) -> Result<String, ProviderError> {
        let ports = self
            .call(
                reqwest::Method::GET,
                "/v2/dropdowns/partner/megaports",
                None,
                id,
            )
            .await?;
        ports
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["connectType"] == connect_type && n(&p["locationId"]) == location)
            .map(|p| s(&p["productUid"]).to_string())
            .ok_or_else(|| {
                invalid(
                    "select port",
                    format!("{id}: no AWS {connect_type} port at location {location}"),
                )
            })
    }

    /// Checks that `location` exists and offers an MCR of `speed` (in
    /// `zone`, when one is asked for), before anything is ordered.
    pub(super) async fn check_location(
        &self,
        id: &str,
        location: u32,
        speed: u32,
        zone: Option<&str>,
    ) -> Result<(), ProviderError> {
        let all = self
            .call(reqwest::Method::GET, "/v3/locations", None, id)
            .await?;
        let Some(loc) = all
            .as_array()
            .into_iter()
            .flatten()
            .find(|l| n(&l["id"]) == location)
        else {
            return Err(invalid(
                "locations",
                format!("{id}: Megaport has no location {location}"),
            ));
        };
        let mut speeds: Vec<u32> = loc["diversityZones"]
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(z, _)| zone.is_none_or(|want| want == z.as_str()))
            .flat_map(|(_, z)| z["mcrSpeedMbps"].as_array().into_iter().flatten().map(n))
            .collect();
        speeds.sort_unstable();
        speeds.dedup();
        if !speeds.contains(&speed) {
            return Err(invalid(
                "locations",
                format!(
                    "{id}: {} offers MCR speeds {speeds:?} Mbps, not {speed}",
                    s(&loc["name"])
                ),
            ));
        }
        Ok(())
    }

    /// Validates an order (`/v3/networkdesign/validate`), then buys it
    /// (`/v4/networkdesign/buy`); returns the buy's `data`.
    pub(super) async fn buy(&self, order: Value, what: &str) -> Result<Value, ProviderError> {
        self.call(
            reqwest::Method::POST,
            "/v3/networkdesign/validate",
            Some(order.clone()),
            what,
        )
        .await?;
        let body = json!({"networkDesign": order, "discountCodes": []});
        self.call(
            reqwest::Method::POST,
            "/v4/networkdesign/buy",
            Some(body),
            what,
        )
        .await
    }

    /// Makes the MCR's prefix list for one VXC and direction hold
    /// `prefixes` (creating or replacing it); its id, or `None` when empty.
    pub(super) async fn prefix_list(
        &self,
        owner: &Owner,
        mcr: &str,
        vxc_id: &ResourceId,
        dir: &str,
        prefixes: &[String],
    ) -> Result<Option<u64>, ProviderError> {
        if prefixes.is_empty() {
            return Ok(None);
        }
        let desc = format!("{}:{dir}", cost_centre(owner, vxc_id));
        let body = json!({
            "description": desc,
            "addressFamily": "IPv4",
            "entries": prefixes.iter().map(|p| json!({"action": "permit", "prefix": p})).collect::<Vec<_>>(),
        });
        let base = format!("/v2/product/mcr2/{mcr}");
        let lists = self
            .call(
                reqwest::Method::GET,
                &format!("{base}/prefixLists"),
                None,
                vxc_id.as_str(),
            )
            .await?;
        let existing = lists
            .as_array()
            .into_iter()
            .flatten()
            .find(|l| l["description"] == desc.as_str());
        let id = match existing.and_then(|l| l["id"].as_u64()) {
            Some(id) => {
                self.call(
                    reqwest::Method::PUT,
                    &format!("{base}/prefixList/{id}"),
                    Some(body),
                    vxc_id.as_str(),
                )
                .await?;
                id
            }
            None => {
                let d = self
                    .call(
                        reqwest::Method::POST,
                        &format!("{base}/prefixList"),
                        Some(body),
                        vxc_id.as_str(),
                    )
                    .await?;
                d["id"].as_u64().ok_or_else(|| {
                    invalid("prefix list", format!("{vxc_id}: no list id returned"))
                })?
            }
        };
        Ok(Some(id))
    }

    /// The A-end configuration of a VXC, with its prefix lists in place.
    pub(super) async fn a_end_config(
        &self,
        owner: &Owner,
        mcr: &str,
        id: &ResourceId,
        bgp: &VxcBgp,
    ) -> Result<Value, ProviderError> {
        let import = self
            .prefix_list(owner, mcr, id, "import", &bgp.import)
            .await?;
        let export = self
            .prefix_list(owner, mcr, id, "export", &bgp.export)
            .await?;
        Ok(vrouter_config(bgp, import, export))
    }

    /// Prefix lists of one MCR: id → prefixes.
    pub(super) async fn prefix_lists(
        &self,
        mcr: &str,
        ids: &[u64],
    ) -> Result<BTreeMap<u64, Vec<String>>, ProviderError> {
        let mut out = BTreeMap::new();
        for id in ids {
            let l = self
                .call(
                    reqwest::Method::GET,
                    &format!("/v2/product/mcr2/{mcr}/prefixList/{id}"),
                    None,
                    mcr,
                )
                .await?;
            let prefixes = l["entries"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|e| s(&e["prefix"]).to_string())
                .collect();
            out.insert(*id, prefixes);
        }
        Ok(out)
    }
}
