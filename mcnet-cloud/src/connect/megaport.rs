//! Megaport over its REST API (feature `megaport`): OAuth2 client
//! credentials, locations, MCR validate and buy, VXCs from the MCR to AWS
//! (hosted connection or hosted VIF), Azure (service key) and Google
//! (pairing key),
//! product get, list, update and cancel, provisioning-state polling and
//! pricing.
//!
//! Ownership: Megaport products have no free-form tags in the product list,
//! so mcnet writes `mcnet:<topology>:<logical id>` into each product's cost
//! centre and reads it back from the one `GET /v2/products` call a no-op
//! plan makes.
//!
//! Configuration comes from the environment: `MEGAPORT_ACCESS_KEY`,
//! `MEGAPORT_SECRET_KEY`, `MEGAPORT_API_URL` (default
//! `https://api.megaport.com`), `MEGAPORT_AUTH_URL` (default
//! `https://auth-m2m.megaport.com/oauth2/token`) and, for AWS hosted
//! connections and VIFs, `MEGAPORT_AWS_ACCOUNT` (the AWS account that
//! accepts them).

mod order;

use std::collections::BTreeMap;

use async_trait::async_trait;
use mcnet_core::reconcile::{
    Desired, ErrorKind, InterconnectProvider, Observed, Owner, ProviderError, Quote, Refs,
    ResourceId, ResourceKind, ResourceProvider, ResourceState, Scope, Spec, VxcBgp,
};
use serde_json::{json, Value};

use super::rest::{env, env_required, Rest};

const KINDS: &[ResourceKind] = &[ResourceKind::Router, ResourceKind::Vxc];

/// Where and how to reach Megaport.
#[derive(Clone)]
pub struct MegaportConfig {
    /// API base URL, without a trailing slash.
    pub api_url: String,
    /// The OAuth2 token endpoint.
    pub auth_url: String,
    /// Client id (API key).
    pub access_key: String,
    /// Client secret.
    pub secret_key: String,
    /// AWS account for hosted connections and VIFs.
    pub aws_account: Option<String>,
}

impl std::fmt::Debug for MegaportConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MegaportConfig")
            .field("api_url", &self.api_url)
            .field("auth_url", &self.auth_url)
            .field("access_key", &self.access_key)
            .field("secret_key", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// Megaport's error body: `{"message": ...}`, with no code of its own.
fn megaport_error(body: &Value) -> (Option<String>, String) {
    let msg = body["message"].as_str().unwrap_or("no message");
    (None, msg.to_string())
}

fn invalid(op: &str, msg: String) -> ProviderError {
    ProviderError::new(Scope::Megaport, ErrorKind::Invalid, op, msg)
}

impl MegaportConfig {
    /// Reads the environment (see the module docs); `api_url` overrides it.
    pub fn from_env(api_url: Option<String>) -> Result<MegaportConfig, ProviderError> {
        let var = env;
        let need = |k: &str| env_required(Scope::Megaport, k, "");
        Ok(MegaportConfig {
            api_url: api_url
                .or_else(|| var("MEGAPORT_API_URL"))
                .unwrap_or_else(|| "https://api.megaport.com".into())
                .trim_end_matches('/')
                .to_string(),
            auth_url: var("MEGAPORT_AUTH_URL")
                .unwrap_or_else(|| "https://auth-m2m.megaport.com/oauth2/token".into()),
            access_key: need("MEGAPORT_ACCESS_KEY")?,
            secret_key: need("MEGAPORT_SECRET_KEY")?,
            aws_account: var("MEGAPORT_AWS_ACCOUNT"),
        })
    }
}

/// The Megaport provider.
pub struct MegaportProvider {
    cfg: MegaportConfig,
    rest: Rest,
}

impl std::fmt::Debug for MegaportProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MegaportProvider")
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

fn cost_centre(owner: &Owner, id: &ResourceId) -> String {
    owner.mark(id)
}

/// The logical id in a cost centre written for `owner`, when it is one of
/// `kind`: the whole cost centre must be the mark, nothing appended.
fn owned(owner: &Owner, cost_centre: &str, kind: ResourceKind) -> Option<ResourceId> {
    owner
        .marked(cost_centre)
        .filter(|(id, extra)| extra.is_empty() && id.kind() == kind)
        .map(|(id, _)| id)
}

fn state_of(status: &str) -> Option<ResourceState> {
    match status {
        "LIVE" => Some(ResourceState::Ready),
        "DECOMMISSIONED" | "CANCELLED" | "DECOMMISSIONING" => None,
        "FAILED" => Some(ResourceState::Failed(status.into())),
        other => Some(ResourceState::Pending(other.into())),
    }
}

/// The on-ramp kind of a VXC's B end, from its CSP connection type.
/// What a VXC's CSP connection gives the cloud side: the keys it carries,
/// an AWS hosted connection's id, a hosted VIF's id (as `vifId`).
fn csp_outputs(c: &Value) -> Vec<(String, String)> {
    [
        ("service_key", "service_key"),
        ("pairingKey", "pairingKey"),
        ("connectionId", "connectionId"),
        ("vif_id", "vifId"),
    ]
    .into_iter()
    .filter_map(|(k, out)| Some((out.to_string(), c[k].as_str()?.to_string())))
    .collect()
}

fn target_of(connect_type: &str) -> Option<&'static str> {
    match connect_type {
        "AWSHC" => Some("aws-direct-connect"),
        "AWS" => Some("aws-hosted-vif"),
        "AZURE" => Some("azure-expressroute"),
        "GOOGLE" => Some("gcp-partner-interconnect"),
        _ => None,
    }
}

/// Percent-encodes a value for one URL path segment (a GCP pairing key
/// holds slashes).
fn path_segment(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_default()
}

fn n(v: &Value) -> u32 {
    v.as_u64()
        .and_then(|x| u32::try_from(x).ok())
        .unwrap_or_default()
}

/// A product's CSP connections (an object or an array, depending on the call).
fn csp_connections(p: &Value) -> Vec<&Value> {
    match &p["resources"]["csp_connection"] {
        Value::Array(a) => a.iter().collect(),
        o @ Value::Object(_) => vec![o],
        _ => vec![],
    }
}

/// The MCR (A end) configuration: one interface with the BGP sessions,
/// whose prefix filters reference the MCR's prefix lists by id.
fn vrouter_config(bgp: &VxcBgp, import: Option<u64>, export: Option<u64>) -> Value {
    let mut ips: Vec<&str> = bgp
        .peers
        .iter()
        .map(|(local, _, _)| local.as_str())
        .collect();
    ips.dedup();
    let conns: Vec<Value> = bgp
        .peers
        .iter()
        .map(|(local, peer, asn)| {
            json!({
                "peerAsn": asn,
                "localIpAddress": local.split('/').next().unwrap_or_default(),
                "peerIpAddress": peer,
                "shutdown": false,
                "bfdEnabled": false,
                "importWhitelist": import,
                "exportWhitelist": export,
            })
        })
        .collect();
    json!({"interfaces": [{"ipAddresses": ips, "bgpConnections": conns}]})
}

impl MegaportProvider {
    /// A provider for `cfg`.
    pub fn new(cfg: MegaportConfig) -> Result<MegaportProvider, ProviderError> {
        Ok(MegaportProvider {
            cfg,
            rest: Rest::new(Scope::Megaport)?,
        })
    }

    /// A bearer token from the client credentials (sent with Basic auth,
    /// as Megaport's token endpoint wants), reused until a minute before it
    /// expires.
    async fn token(&self) -> Result<String, ProviderError> {
        self.rest
            .bearer(|| async {
                let r = self
                    .rest
                    .http
                    .post(&self.cfg.auth_url)
                    .basic_auth(&self.cfg.access_key, Some(&self.cfg.secret_key))
                    .query(&[("grant_type", "client_credentials")])
                    .header(
                        reqwest::header::CONTENT_TYPE,
                        "application/x-www-form-urlencoded",
                    )
                    .send()
                    .await
                    .map_err(|e| {
                        ProviderError::new(
                            Scope::Megaport,
                            ErrorKind::Transient,
                            "token",
                            e.to_string(),
                        )
                    })?;
                let status = r.status();
                let body: Value = r.json().await.unwrap_or(Value::Null);
                if !status.is_success() {
                    let kind = if status.as_u16() == 429 {
                        ErrorKind::Throttled
                    } else {
                        ErrorKind::Auth
                    };
                    return Err(ProviderError::new(
                        Scope::Megaport,
                        kind,
                        "token",
                        format!("the token endpoint refused the client credentials ({status})"),
                    ));
                }
                let ttl = body["expires_in"].as_u64().unwrap_or(3600);
                Ok((s(&body["access_token"]).to_string(), ttl))
            })
            .await
    }

    /// One API call; returns the body's `data` (or the body when it has none).
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        what: &str,
    ) -> Result<Value, ProviderError> {
        let token = self.token().await?;
        let op = format!("{method} {path}");
        let mut req = self
            .rest
            .http
            .request(method, format!("{}{path}", self.cfg.api_url));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let body = self
            .rest
            .send(req, &token, &op, what, megaport_error)
            .await?;
        Ok(match body.get("data") {
            Some(d) => d.clone(),
            None => body,
        })
    }

    fn observed(
        &self,
        id: ResourceId,
        p: &Value,
        spec: Spec,
        outputs: BTreeMap<String, String>,
    ) -> Option<Observed> {
        let status = s(&p["provisioningStatus"]);
        let state = state_of(status)?;
        let mut outputs = outputs;
        outputs.insert("status".into(), status.into());
        Some(Observed {
            id,
            cloud_id: s(&p["productUid"]).into(),
            scope: Scope::Megaport,
            spec,
            state,
            outputs,
            links: vec![],
        })
    }

    fn router(&self, owner: &Owner, p: &Value) -> Option<Observed> {
        let id = owned(owner, s(&p["costCentre"]), ResourceKind::Router)?;
        let zone = s(&p["diversityZone"]);
        let spec = Spec::Router {
            name: s(&p["productName"]).into(),
            location_id: n(&p["locationId"]),
            speed_mbps: n(&p["portSpeed"]),
            asn: n(&p["resources"]["virtual_router"]["mcrASN"]),
            diversity_zone: (!zone.is_empty()).then(|| zone.to_string()),
            term_months: n(&p["contractTermMonths"]),
        };
        self.observed(id, p, spec, BTreeMap::new())
    }

    fn vxc(
        &self,
        owner: &Owner,
        p: &Value,
        routers: &BTreeMap<String, ResourceId>,
        lists: &BTreeMap<u64, Vec<String>>,
    ) -> Option<Observed> {
        let id = owned(owner, s(&p["costCentre"]), ResourceKind::Vxc)?;
        let conns = csp_connections(p);
        let vrouter = conns.iter().find(|c| c["connectType"] == "VROUTER");
        let csp = conns
            .iter()
            .find(|c| target_of(s(&c["connectType"])).is_some());
        let target = csp
            .and_then(|c| target_of(s(&c["connectType"])))
            .unwrap_or("unknown");
        let name = id.name();
        // The B end's key came from the cloud resource desired() names for this VXC.
        let partner = match target {
            "azure-expressroute" => Some(ResourceId::interconnect_gateway(name).to_string()),
            "gcp-partner-interconnect" => {
                Some(ResourceId::interconnect_attachment(name, None).to_string())
            }
            _ => None,
        };
        let mut bgp = VxcBgp::default();
        if let Some(v) = vrouter {
            for i in v["interfaces"].as_array().into_iter().flatten() {
                let local = i["ipAddresses"][0].as_str().unwrap_or_default();
                for b in i["bgpConnections"].as_array().into_iter().flatten() {
                    bgp.peers.push((
                        local.into(),
                        s(&b["peerIpAddress"]).into(),
                        n(&b["peerAsn"]),
                    ));
                    let list = |k: &str| -> Vec<String> {
                        b[k].as_u64()
                            .and_then(|id| lists.get(&id))
                            .cloned()
                            .unwrap_or_default()
                    };
                    bgp.import = list("importWhitelist");
                    bgp.export = list("exportWhitelist");
                }
            }
        }
        let a_uid = s(&p["aEnd"]["productUid"]);
        let spec = Spec::Vxc {
            name: s(&p["productName"]).into(),
            router: routers
                .get(a_uid)
                .map(ToString::to_string)
                .unwrap_or_else(|| format!("unmanaged:{a_uid}")),
            target: target.into(),
            partner,
            rate_limit_mbps: n(&p["rateLimit"]),
            vlan: p["aEnd"]["vlan"]
                .as_u64()
                .and_then(|v| u16::try_from(v).ok()),
            bgp,
        };
        let mut outputs = BTreeMap::new();
        if let Some(c) = csp {
            outputs.extend(csp_outputs(c));
        }
        let mut o = self.observed(id, p, spec, outputs)?;
        o.links = vec![a_uid.to_string()];
        Some(o)
    }
}

#[async_trait]
impl ResourceProvider for MegaportProvider {
    fn scope(&self) -> Scope {
        Scope::Megaport
    }

    fn kinds(&self) -> &'static [ResourceKind] {
        KINDS
    }

    async fn observe(&self, owner: &Owner) -> Result<Vec<Observed>, ProviderError> {
        // One call: MCRs come with their VXCs.
        let products = self
            .call(reqwest::Method::GET, "/v2/products", None, "list products")
            .await?;
        let list = products.as_array().cloned().unwrap_or_default();
        let mut out = Vec::new();
        let mut routers = BTreeMap::new();
        for p in list
            .iter()
            .filter(|p| s(&p["productType"]).starts_with("MCR"))
        {
            if let Some(o) = self.router(owner, p) {
                routers.insert(o.cloud_id.to_string(), o.id.clone());
                out.push(o);
            }
        }
        // Ours, once each (a VXC shows under both of its ends).
        let mut vxcs: BTreeMap<String, &Value> = BTreeMap::new();
        for p in &list {
            for v in p["associatedVxcs"].as_array().into_iter().flatten() {
                if owned(owner, s(&v["costCentre"]), ResourceKind::Vxc).is_some() {
                    vxcs.insert(s(&v["productUid"]).to_string(), v);
                }
            }
        }
        // Their prefix lists: one read per list, which the API has no bulk call for.
        let mut wanted: BTreeMap<String, Vec<u64>> = BTreeMap::new();
        for v in vxcs.values() {
            for c in csp_connections(v) {
                for i in c["interfaces"].as_array().into_iter().flatten() {
                    for b in i["bgpConnections"].as_array().into_iter().flatten() {
                        for k in ["importWhitelist", "exportWhitelist"] {
                            if let Some(id) = b[k].as_u64() {
                                wanted
                                    .entry(s(&v["aEnd"]["productUid"]).to_string())
                                    .or_default()
                                    .push(id);
                            }
                        }
                    }
                }
            }
        }
        let mut lists = BTreeMap::new();
        for (mcr, ids) in &wanted {
            lists.extend(self.prefix_lists(mcr, ids).await?);
        }
        for v in vxcs.values() {
            out.extend(self.vxc(owner, v, &routers, &lists));
        }
        Ok(out)
    }

    async fn create(
        &self,
        owner: &Owner,
        r: &Desired,
        refs: Refs<'_>,
    ) -> Result<Observed, ProviderError> {
        let uid = match &r.spec {
            Spec::Router {
                name,
                location_id,
                speed_mbps,
                asn,
                diversity_zone,
                term_months,
            } => {
                self.check_location(
                    r.id.as_str(),
                    *location_id,
                    *speed_mbps,
                    diversity_zone.as_deref(),
                )
                .await?;
                let order = json!([{
                    "locationId": location_id,
                    "productName": name,
                    "productType": "MCR2",
                    "portSpeed": speed_mbps,
                    "term": term_months,
                    "costCentre": cost_centre(owner, &r.id),
                    "config": {"mcrAsn": asn, "diversityZone": diversity_zone},
                }]);
                let d = self.buy(order, r.id.as_str()).await?;
                s(&d[0]["technicalServiceUid"]).to_string()
            }
            Spec::Vxc {
                name,
                router,
                target,
                partner,
                rate_limit_mbps,
                vlan,
                bgp,
            } => {
                let mcr = refs.get(router)?;
                let location = match &mcr.spec {
                    Spec::Router { location_id, .. } => *location_id,
                    _ => 0,
                };
                let b_end = self
                    .b_end(r, target, partner.as_deref(), &refs, location)
                    .await?;
                let a_config = self.a_end_config(owner, &mcr.cloud_id, &r.id, bgp).await?;
                let order = json!([{
                    "productUid": mcr.cloud_id,
                    "associatedVxcs": [{
                        "productName": name,
                        "rateLimit": rate_limit_mbps,
                        "term": 1,
                        "costCentre": cost_centre(owner, &r.id),
                        "aEnd": {"vlan": vlan, "partnerConfig": a_config},
                        "bEnd": b_end,
                    }],
                }]);
                let d = self.buy(order, r.id.as_str()).await?;
                s(&d[0]["vxcJTechnicalServiceUid"]).to_string()
            }
            other => {
                return Err(invalid(
                    "buy",
                    format!("{}: Megaport does not sell a {}", r.id, other.kind()),
                ))
            }
        };
        if uid.is_empty() {
            return Err(invalid(
                "buy",
                format!("{}: the order returned no product id", r.id),
            ));
        }
        Ok(Observed {
            id: r.id.clone(),
            cloud_id: uid.into(),
            scope: Scope::Megaport,
            spec: r.spec.clone(),
            state: ResourceState::Pending("ordered".into()),
            outputs: BTreeMap::new(),
            links: vec![],
        })
    }

    async fn update(
        &self,
        owner: &Owner,
        r: &Desired,
        current: &Observed,
        _refs: Refs<'_>,
    ) -> Result<Observed, ProviderError> {
        let path_body = match &r.spec {
            Spec::Router { name, .. } => (
                format!("/v2/product/mcr2/{}", current.cloud_id),
                json!({"name": name, "costCentre": cost_centre(owner, &r.id)}),
            ),
            Spec::Vxc {
                name,
                rate_limit_mbps,
                vlan,
                bgp,
                ..
            } => {
                let mcr = current.links.first().cloned().unwrap_or_default();
                let config = self.a_end_config(owner, &mcr, &r.id, bgp).await?;
                (
                    format!("/v3/product/vxc/{}", current.cloud_id),
                    json!({
                        "name": name,
                        "rateLimit": rate_limit_mbps,
                        "aEndVlan": vlan,
                        "costCentre": cost_centre(owner, &r.id),
                        "aEndConfig": config,
                    }),
                )
            }
            other => {
                return Err(invalid(
                    "update",
                    format!("{}: not a Megaport product ({})", r.id, other.kind()),
                ))
            }
        };
        if current.state == ResourceState::Ready || !r.spec.diff(&current.spec).is_empty() {
            self.call(
                reqwest::Method::PUT,
                &path_body.0,
                Some(path_body.1),
                r.id.as_str(),
            )
            .await?;
        }
        Ok(Observed {
            spec: r.spec.clone(),
            state: ResourceState::Pending("updating".into()),
            ..current.clone()
        })
    }

    async fn delete(&self, current: &Observed) -> Result<(), ProviderError> {
        let path = format!("/v3/product/{}/action/CANCEL_NOW", current.cloud_id);
        self.call(reqwest::Method::POST, &path, None, current.id.as_str())
            .await
            .map(drop)
    }

    async fn refresh(&self, current: &Observed) -> Result<Option<Observed>, ProviderError> {
        let path = format!("/v2/product/{}", current.cloud_id);
        let p = match self
            .call(reqwest::Method::GET, &path, None, current.id.as_str())
            .await
        {
            Ok(p) => p,
            Err(e) if e.kind == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let Some(state) = state_of(s(&p["provisioningStatus"])) else {
            return Ok(None);
        };
        let mut o = current.clone();
        o.state = state;
        o.outputs
            .insert("status".into(), s(&p["provisioningStatus"]).into());
        for c in csp_connections(&p) {
            o.outputs.extend(csp_outputs(c));
        }
        Ok(Some(o))
    }

    fn api_calls(&self) -> u64 {
        self.rest.calls()
    }
}

#[async_trait]
impl InterconnectProvider for MegaportProvider {
    async fn validate(&self, r: &Desired, _refs: Refs<'_>) -> Result<Quote, ProviderError> {
        let body = match &r.spec {
            Spec::Router {
                location_id,
                speed_mbps,
                term_months,
                ..
            } => {
                json!({"productType": "MCR2", "locationId": location_id, "speed": speed_mbps, "term": term_months})
            }
            Spec::Vxc {
                rate_limit_mbps, ..
            } => json!({"productType": "VXC", "speed": rate_limit_mbps, "term": 1}),
            other => {
                return Err(invalid(
                    "price",
                    format!("{}: not a Megaport product ({})", r.id, other.kind()),
                ))
            }
        };
        let d = self
            .call(
                reqwest::Method::POST,
                "/v4/pricebook/product",
                Some(body),
                r.id.as_str(),
            )
            .await?;
        Ok(Quote {
            monthly_rate: d["monthlyRate"].as_f64().unwrap_or_default(),
            currency: s(&d["currency"]).to_string(),
        })
    }
}
