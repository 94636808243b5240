//! The Azure provider against a local, stateful stand-in for Azure Resource
//! Manager and its Entra ID token endpoint (a **mock** of the service, since
//! no Azure subscription can be reached from here).
//!
//! The mock keeps ARM's rules that bite: the client-credentials token and
//! Bearer auth on every call, a mandatory `api-version`, tag names without
//! `/`, case-insensitive ids, paged lists, a VNet PUT that replaces its
//! subnet list, peering halves that are `Initiated` until the other side
//! exists and `Disconnected` once it is gone, a gateway that must sit in
//! `GatewaySubnet` and takes a while to provision, a circuit that gets a
//! service key and stays `NotProvisioned` until its service provider acts,
//! and a connection that ARM refuses until then.
//!
//! adr-003 is applied with Azure on this server and AWS, GCP and Megaport on
//! the embedded sim, so the circuit's service key feeds the sim's VXC, and
//! the test, acting as Megaport, provisions the circuit with the key the
//! VXC carries.

// The mock's handlers return an axum Response as their error.
#![allow(clippy::result_large_err)]

#[path = "support/mod.rs"]
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::{Json, Router};
use ipnet::Ipv4Net;
use mcnet_cloud::connect::azure::{AzureConfig, AzureProvider, NETWORK_API, RESOURCES_API};
use mcnet_cloud::connect::sim::{SimCloud, SimConfig};
use mcnet_core::reconcile::{ErrorKind, Op, Providers, ResourceProvider, Scope};
use mcnet_core::topology::{Topology, VxcTargetKind};
use serde_json::{json, Value};
use support::rig::{example, Rig, TempDir};

const TENANT: &str = "tenant-1";
const CLIENT: &str = "client-1";
const SECRET: &str = "s3cret";
const SUB: &str = "00000000-0000-0000-0000-000000000001";
const GROUP: &str = "mcnet-adr-003";

#[derive(Default)]
struct Arm {
    tokens: BTreeSet<String>,
    /// Lower-case id → resource, children (subnets, peerings) included.
    res: BTreeMap<String, Value>,
    groups: BTreeSet<String>,
    /// Reads left before a resource leaves `Updating`.
    busy: BTreeMap<String, u32>,
    keys: u32,
    calls: Vec<String>,
}

type Shared = Arc<Mutex<Arm>>;

fn err(status: StatusCode, code: &str, message: String) -> Response {
    (
        status,
        Json(json!({"error": {"code": code, "message": message}})),
    )
        .into_response()
}

fn decode(s: &str) -> String {
    let s = s.replace('+', " ");
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() + 1 {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..(i + 3).min(s.len())], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn form(body: &[u8]) -> BTreeMap<String, String> {
    String::from_utf8_lossy(body)
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (decode(k), decode(v)))
        .collect()
}

fn token(arm: &Shared, body: &[u8]) -> Response {
    let f = form(body);
    let get = |k: &str| f.get(k).map(String::as_str).unwrap_or("");
    if get("grant_type") != "client_credentials" || !get("scope").ends_with("/.default") {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "invalid_request"})),
        )
            .into_response();
    }
    if get("client_id") != CLIENT || get("client_secret") != SECRET {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "invalid_client", "error_description": "AADSTS7000215"})),
        )
            .into_response();
    }
    let mut a = arm.lock().unwrap();
    let t = format!("arm-token-{}", a.tokens.len() + 1);
    a.tokens.insert(t.clone());
    Json(json!({"token_type": "Bearer", "expires_in": 3599, "access_token": t})).into_response()
}

fn net(v: &Value) -> Vec<Ipv4Net> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c.as_str()?.parse().ok())
        .collect()
}

fn overlaps(a: &[Ipv4Net], b: &[Ipv4Net]) -> bool {
    a.iter().any(|x| {
        b.iter()
            .any(|y| x.contains(&y.network()) || y.contains(&x.network()))
    })
}

impl Arm {
    fn children(&self, parent: &str, kind: &str) -> Vec<Value> {
        let prefix = format!("{parent}/{kind}/");
        self.res
            .iter()
            .filter(|(k, _)| k.starts_with(&prefix) && !k[prefix.len()..].contains('/'))
            .map(|(k, v)| self.view(k, v))
            .collect()
    }

    /// A resource as GET shows it: VNets with their children, and the
    /// provisioning state stepping on with every read.
    fn view(&self, key: &str, v: &Value) -> Value {
        let mut v = v.clone();
        if self.busy.get(key).is_some_and(|n| *n > 0) {
            v["properties"]["provisioningState"] = json!("Updating");
        }
        if key.contains("/virtualnetworks/")
            && !key.contains("/subnets/")
            && !key.contains("/virtualnetworkpeerings/")
        {
            v["properties"]["subnets"] = json!(self.children(key, "subnets"));
            v["properties"]["virtualNetworkPeerings"] =
                json!(self.children(key, "virtualnetworkpeerings"));
        }
        v
    }

    fn read(&mut self, key: &str) -> Option<Value> {
        let v = self.res.get(key)?.clone();
        let out = self.view(key, &v);
        if let Some(n) = self.busy.get_mut(key) {
            *n = n.saturating_sub(1);
        }
        Some(out)
    }

    /// The other half of a peering: the remote VNet's peering back to us.
    fn partner_half(&self, key: &str) -> Option<String> {
        let (vnet, _) = key.split_once("/virtualnetworkpeerings/")?;
        let remote = self.res.get(key)?["properties"]["remoteVirtualNetwork"]["id"]
            .as_str()?
            .to_ascii_lowercase();
        self.res
            .iter()
            .find(|(k, v)| {
                k.starts_with(&format!("{remote}/virtualnetworkpeerings/"))
                    && v["properties"]["remoteVirtualNetwork"]["id"]
                        .as_str()
                        .is_some_and(|r| r.eq_ignore_ascii_case(vnet))
            })
            .map(|(k, _)| k.clone())
    }

    fn settle_peerings(&mut self) {
        let keys: Vec<String> = self
            .res
            .keys()
            .filter(|k| k.contains("/virtualnetworkpeerings/"))
            .cloned()
            .collect();
        for k in keys {
            let state = match self.partner_half(&k) {
                Some(_) => "Connected",
                None if self.res[&k]["properties"]["peeringState"] == "Connected" => "Disconnected",
                None => match self.res[&k]["properties"]["peeringState"].as_str() {
                    Some("Disconnected") => "Disconnected",
                    _ => "Initiated",
                },
            };
            self.res.get_mut(&k).unwrap()["properties"]["peeringState"] = json!(state);
        }
    }

    fn put(
        &mut self,
        path: &str,
        key: &str,
        mut body: Value,
    ) -> Result<(StatusCode, Value), Response> {
        let bad = |code: &str, m: String| Err(err(StatusCode::BAD_REQUEST, code, m));
        if let Some(tags) = body["tags"].as_object() {
            if let Some(k) = tags.keys().find(|k| k.contains('/')) {
                return bad(
                    "InvalidTagNameCharacters",
                    format!("The tag names '{k}' have reserved characters '<,>,%,&,\\,?,/'"),
                );
            }
        }
        let segs: Vec<&str> = key.split('/').collect();
        let group = segs.get(4).copied().unwrap_or("");
        if !self.groups.contains(group) {
            return Err(err(
                StatusCode::NOT_FOUND,
                "ResourceGroupNotFound",
                format!("Resource group '{group}' could not be found."),
            ));
        }
        let created = !self.res.contains_key(key);
        let kind = segs.get(7).copied().unwrap_or("");
        body["id"] = json!(path);
        body["name"] = json!(path.rsplit('/').next().unwrap_or(""));
        body["properties"]["provisioningState"] = json!("Succeeded");
        match (kind, segs.len()) {
            ("virtualnetworks", 9) => {
                let space = net(&body["properties"]["addressSpace"]["addressPrefixes"]);
                if space.is_empty() || body["location"].as_str().is_none() {
                    return bad(
                        "InvalidRequestFormat",
                        "location and properties.addressSpace.addressPrefixes are required".into(),
                    );
                }
                // A VNet PUT replaces its subnet list: subnets it omits go.
                let listed: BTreeSet<String> = body["properties"]["subnets"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|s| s["name"].as_str().map(str::to_ascii_lowercase))
                    .collect();
                let gone: Vec<String> = self
                    .res
                    .keys()
                    .filter(|k| {
                        k.strip_prefix(&format!("{key}/subnets/"))
                            .is_some_and(|n| !listed.contains(n))
                    })
                    .cloned()
                    .collect();
                for k in gone {
                    self.res.remove(&k);
                }
                if let Some(props) = body["properties"].as_object_mut() {
                    props.remove("subnets");
                    props.remove("virtualNetworkPeerings");
                }
            }
            ("virtualnetworks", 11) if segs[9] == "subnets" => {
                let vnet = segs[..9].join("/");
                let Some(v) = self.res.get(&vnet) else {
                    return Err(err(StatusCode::NOT_FOUND, "ResourceNotFound", vnet.clone()));
                };
                let space = net(&v["properties"]["addressSpace"]["addressPrefixes"]);
                let Ok(p) = body["properties"]["addressPrefix"]
                    .as_str()
                    .unwrap_or("")
                    .parse::<Ipv4Net>()
                else {
                    return bad("InvalidAddressPrefixFormat", "addressPrefix".into());
                };
                if !space.iter().any(|s| s.contains(&p)) {
                    return bad(
                        "NetcfgSubnetRangeOutsideVnet",
                        format!("Subnet {p} is not within the address space of {vnet}"),
                    );
                }
                let siblings: Vec<Ipv4Net> = self
                    .children(&vnet, "subnets")
                    .iter()
                    .filter(|s| !s["id"].as_str().unwrap_or("").eq_ignore_ascii_case(path))
                    .filter_map(|s| s["properties"]["addressPrefix"].as_str()?.parse().ok())
                    .collect();
                if overlaps(&[p], &siblings) {
                    return bad("NetcfgInvalidSubnet", format!("Subnet {p} overlaps"));
                }
            }
            ("virtualnetworks", 11) if segs[9] == "virtualnetworkpeerings" => {
                let vnet = segs[..9].join("/");
                let remote = body["properties"]["remoteVirtualNetwork"]["id"]
                    .as_str()
                    .unwrap_or("")
                    .to_ascii_lowercase();
                let (Some(a), Some(b)) = (self.res.get(&vnet), self.res.get(&remote)) else {
                    return bad(
                        "InvalidResourceReference",
                        format!("peering {path}: unknown VNet"),
                    );
                };
                if overlaps(
                    &net(&a["properties"]["addressSpace"]["addressPrefixes"]),
                    &net(&b["properties"]["addressSpace"]["addressPrefixes"]),
                ) {
                    return bad("VnetAddressSpacesOverlap", format!("{vnet} and {remote}"));
                }
                if self
                    .res
                    .get(key)
                    .is_some_and(|p| p["properties"]["peeringState"] == "Disconnected")
                {
                    return bad(
                        "PeeringCannotBeUpdatedWhenDisconnected",
                        format!("delete {path} and create it again"),
                    );
                }
                body["properties"]["peeringState"] = json!("Initiated");
            }
            ("virtualnetworkgateways", 9) => {
                let p = &body["properties"];
                let subnet = p["ipConfigurations"][0]["properties"]["subnet"]["id"]
                    .as_str()
                    .unwrap_or("")
                    .to_ascii_lowercase();
                if p["gatewayType"] != "ExpressRoute" || !subnet.ends_with("/subnets/gatewaysubnet")
                {
                    return bad(
                        "InvalidGatewaySubnet",
                        "an ExpressRoute gateway needs gatewayType ExpressRoute and a subnet named GatewaySubnet".into(),
                    );
                }
                if !self.res.contains_key(&subnet) {
                    return bad(
                        "InvalidResourceReference",
                        format!("{subnet} does not exist"),
                    );
                }
                // Gateways take long to provision.
                self.busy.insert(key.to_string(), 3);
            }
            ("expressroutecircuits", 9) => {
                let sp = &body["properties"]["serviceProviderProperties"];
                if body["sku"]["family"] != "MeteredData"
                    && body["sku"]["family"] != "UnlimitedData"
                    || sp["serviceProviderName"].as_str().is_none()
                    || sp["peeringLocation"].as_str().is_none()
                    || sp["bandwidthInMbps"].as_u64().is_none()
                {
                    return bad(
                        "InvalidRequestFormat",
                        "sku.family and serviceProviderProperties (name, peeringLocation, bandwidthInMbps) are required".into(),
                    );
                }
                match self.res.get(key) {
                    Some(old) => {
                        body["properties"]["serviceKey"] = old["properties"]["serviceKey"].clone();
                        body["properties"]["serviceProviderProvisioningState"] =
                            old["properties"]["serviceProviderProvisioningState"].clone();
                    }
                    None => {
                        self.keys += 1;
                        body["properties"]["serviceKey"] =
                            json!(format!("a1b2c3d4-0000-4000-8000-{:012}", self.keys));
                        body["properties"]["serviceProviderProvisioningState"] =
                            json!("NotProvisioned");
                    }
                }
            }
            ("connections", 9) => {
                let p = &body["properties"];
                let circuit = p["peer"]["id"].as_str().unwrap_or("").to_ascii_lowercase();
                let gw = p["virtualNetworkGateway1"]["id"]
                    .as_str()
                    .unwrap_or("")
                    .to_ascii_lowercase();
                if p["connectionType"] != "ExpressRoute" || !self.res.contains_key(&gw) {
                    return bad(
                        "InvalidRequestFormat",
                        "connectionType ExpressRoute and an existing virtualNetworkGateway1".into(),
                    );
                }
                match self.res.get(&circuit) {
                    Some(c)
                        if c["properties"]["serviceProviderProvisioningState"] == "Provisioned" => {
                    }
                    Some(_) => {
                        return bad(
                            "ExpressRouteCircuitNotProvisioned",
                            format!("circuit {circuit} is not provisioned by its service provider"),
                        )
                    }
                    None => {
                        return bad(
                            "InvalidResourceReference",
                            format!("{circuit} does not exist"),
                        )
                    }
                }
                body["properties"]["connectionStatus"] = json!("Connected");
            }
            ("privateendpoints", 9) => {
                let p = &body["properties"];
                let subnet_id = p["subnet"]["id"].as_str().unwrap_or("");
                let subnet = subnet_id.to_ascii_lowercase();
                let Some(sn) = self.res.get(&subnet) else {
                    return bad(
                        "InvalidResourceReference",
                        format!("subnet {subnet_id} does not exist"),
                    );
                };
                if subnet.ends_with("/subnets/gatewaysubnet") {
                    return bad(
                        "PrivateEndpointCreationNotAllowedOnGatewaySubnet",
                        "a private endpoint cannot live in GatewaySubnet".into(),
                    );
                }
                let conn = &p["privateLinkServiceConnections"][0]["properties"];
                let target = conn["privateLinkServiceId"].as_str().unwrap_or("");
                let groups = conn["groupIds"].as_array().map_or(0, Vec::len);
                let is_pls = target
                    .to_ascii_lowercase()
                    .contains("/providers/microsoft.network/privatelinkservices/");
                if !target.starts_with("/subscriptions/") || (!is_pls && groups != 1) {
                    return bad(
                        "PrivateEndpointBadRequest",
                        format!("a connection to {target:?} needs a resource id and one group id"),
                    );
                }
                // Azure keeps the first four addresses of a subnet.
                let prefix: Ipv4Net = sn["properties"]["addressPrefix"]
                    .as_str()
                    .and_then(|c| c.parse().ok())
                    .unwrap();
                let taken = self
                    .res
                    .iter()
                    .filter(|(k, v)| {
                        k.as_str() != key
                            && v["properties"]["subnet"]["id"]
                                .as_str()
                                .is_some_and(|i| i.to_ascii_lowercase() == subnet)
                    })
                    .count();
                let ip = prefix.hosts().nth(3 + taken).unwrap();
                let name = body["name"].clone();
                body["properties"]["privateLinkServiceConnections"][0]["properties"]
                    ["privateLinkServiceConnectionState"] =
                    json!({"status": "Approved", "description": "Auto-Approved"});
                body["properties"]["customDnsConfigs"] = json!([{"fqdn": format!("{}.privatelink.example", name.as_str().unwrap_or("")), "ipAddresses": [ip.to_string()]}]);
                body["properties"]["networkInterfaces"] = json!([{"id": format!("{path}.nic")}]);
            }
            _ => return bad("InvalidResourceType", path.to_string()),
        }
        self.res.insert(key.to_string(), body);
        self.settle_peerings();
        let out = self.view(key, &self.res[key].clone());
        Ok((
            if created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            },
            out,
        ))
    }

    fn delete(&mut self, key: &str) -> Result<StatusCode, Response> {
        if !self.res.contains_key(key) {
            return Ok(StatusCode::NO_CONTENT);
        }
        let in_use = self.res.iter().find(|(k, v)| {
            let refs = [
                &v["properties"]["ipConfigurations"][0]["properties"]["subnet"]["id"],
                &v["properties"]["subnet"]["id"],
                &v["properties"]["peer"]["id"],
                &v["properties"]["virtualNetworkGateway1"]["id"],
            ];
            k.as_str() != key
                && refs.iter().any(|r| {
                    r.as_str().is_some_and(|r| {
                        let r = r.to_ascii_lowercase();
                        r == key || r.starts_with(&format!("{key}/"))
                    })
                })
        });
        if let Some((k, _)) = in_use {
            let code = if key.contains("/subnets/") {
                "InUseSubnetCannotBeDeleted"
            } else {
                "InUseResourceCannotBeDeleted"
            };
            return Err(err(
                StatusCode::BAD_REQUEST,
                code,
                format!("{key} is in use by {k}"),
            ));
        }
        self.res
            .retain(|k, _| k != key && !k.starts_with(&format!("{key}/")));
        self.settle_peerings();
        Ok(StatusCode::OK)
    }
}

async fn arm(
    State(arm): State<Shared>,
    method: Method,
    uri: Uri,
    h: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    if path.ends_with("/oauth2/v2.0/token") && method == Method::POST {
        return token(&arm, &body);
    }
    if let Some(key) = path.strip_prefix("/_mock/provision/") {
        // The service provider's side: Megaport provisions the circuit
        // whose service key its VXC carries.
        let mut a = arm.lock().unwrap();
        for v in a.res.values_mut() {
            if v["properties"]["serviceKey"] == key {
                v["properties"]["serviceProviderProvisioningState"] = json!("Provisioned");
                return StatusCode::OK.into_response();
            }
        }
        return StatusCode::NOT_FOUND.into_response();
    }
    let auth = h
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mut a = arm.lock().unwrap();
    if !auth
        .strip_prefix("Bearer ")
        .is_some_and(|t| a.tokens.contains(t))
    {
        return err(
            StatusCode::UNAUTHORIZED,
            "AuthenticationFailed",
            "Authentication failed. The 'Authorization' header is missing or invalid.".into(),
        );
    }
    let q: BTreeMap<String, String> = uri
        .query()
        .unwrap_or("")
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (decode(k), decode(v)))
        .collect();
    let key = path.to_ascii_lowercase();
    let is_group = key.split('/').count() == 5 && key.contains("/resourcegroups/");
    let want_api = if is_group { RESOURCES_API } else { NETWORK_API };
    if q.get("api-version").map(String::as_str) != Some(want_api) {
        return err(
            StatusCode::BAD_REQUEST,
            "MissingApiVersionParameter",
            format!("The api-version query parameter (?api-version=) is required ({want_api})."),
        );
    }
    a.calls.push(format!("{method} {path}"));
    if is_group {
        let group = key.rsplit('/').next().unwrap_or("").to_string();
        return match method {
            Method::PUT => {
                a.groups.insert(group);
                Json(json!({"id": path, "properties": {"provisioningState": "Succeeded"}}))
                    .into_response()
            }
            _ => StatusCode::METHOD_NOT_ALLOWED.into_response(),
        };
    }
    let segs = key.split('/').count();
    // A collection: list it, one per page, so that paging is exercised.
    if segs == 8 {
        let group = key.split('/').nth(4).unwrap_or("");
        if !a.groups.contains(group) {
            return err(
                StatusCode::NOT_FOUND,
                "ResourceGroupNotFound",
                format!("Resource group '{group}' could not be found."),
            );
        }
        let skip: usize = q
            .get("$skiptoken")
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let prefix = format!("{key}/");
        let items: Vec<(String, Value)> = a
            .res
            .iter()
            .filter(|(k, _)| k.starts_with(&prefix) && !k[prefix.len()..].contains('/'))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let page: Vec<Value> = items
            .iter()
            .skip(skip)
            .take(1)
            .map(|(k, v)| a.view(k, v))
            .collect();
        let mut out = json!({"value": page});
        if skip + 1 < items.len() {
            let host = h.get("host").and_then(|v| v.to_str().ok()).unwrap_or("");
            out["nextLink"] = json!(format!(
                "http://{host}{path}?api-version={NETWORK_API}&$skiptoken={}",
                skip + 1
            ));
        }
        return Json(out).into_response();
    }
    match method {
        Method::GET => match a.read(&key) {
            Some(v) => Json(v).into_response(),
            None => err(
                StatusCode::NOT_FOUND,
                "ResourceNotFound",
                format!("{path} was not found"),
            ),
        },
        Method::PUT => {
            let Ok(v) = serde_json::from_slice::<Value>(&body) else {
                return err(
                    StatusCode::BAD_REQUEST,
                    "InvalidRequestContent",
                    "not JSON".into(),
                );
            };
            match a.put(&path, &key, v) {
                Ok((st, v)) => (st, Json(v)).into_response(),
                Err(r) => r,
            }
        }
        Method::DELETE => match a.delete(&key) {
            Ok(st) => st.into_response(),
            Err(r) => r,
        },
        _ => StatusCode::METHOD_NOT_ALLOWED.into_response(),
    }
}

async fn serve() -> (String, Shared) {
    let state: Shared = Arc::default();
    let app = Router::new()
        .route("/{*path}", any(arm))
        .with_state(Arc::clone(&state));
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    (url, state)
}

fn config(url: &str, secret: &str) -> AzureConfig {
    AzureConfig {
        arm_url: url.into(),
        authority_host: url.into(),
        tenant_id: TENANT.into(),
        client_id: CLIENT.into(),
        client_secret: secret.into(),
        subscription_id: SUB.into(),
        resource_group: GROUP.into(),
        peering_location: None,
    }
}

/// The lower-case ARM id of a Microsoft.Network resource in the group.
fn arm_key(kind_and_name: &str) -> String {
    format!(
        "/subscriptions/{SUB}/resourcegroups/{GROUP}/providers/microsoft.network/{kind_and_name}"
    )
    .to_ascii_lowercase()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adr003_azure_part_applies_over_arm_with_the_circuit_key_feeding_the_vxc() {
    let (url, arm) = serve().await;
    let dir = TempDir::new("azure");
    let sim = SimCloud::with_config(
        &dir.0,
        SimConfig {
            step_ms: 10,
            ..SimConfig::default()
        },
    );
    let azure = Arc::new(AzureProvider::new(config(&url, SECRET)).unwrap());
    let rig = Rig::new(
        example("adr-003.yaml"),
        Providers::default()
            .with(sim.provider(Scope::Aws))
            .with(azure.clone())
            .with(sim.provider(Scope::Gcp))
            .with(sim.provider(Scope::Megaport)),
    );

    // First apply: everything but the ExpressRoute connection, which ARM
    // refuses until Megaport has provisioned the circuit.
    let p = rig.plan().await;
    let azure_steps: Vec<&str> = p
        .actions
        .iter()
        .filter(|a| a.provider == Scope::Azure)
        .map(|a| a.resource.as_str())
        .collect();
    assert_eq!(azure_steps.len(), 6, "{azure_steps:?}");
    let r = rig.apply(&p).await;
    assert_eq!(r.failed.len(), 1, "{r:?}");
    let f = &r.failed[0];
    assert_eq!(
        f.resource,
        "interconnect-attachment/vxc-azure-er/azure-vnet"
    );
    assert!(
        f.error
            .contains("is `NotProvisioned` by its service provider"),
        "{f:?}"
    );
    assert!(
        f.error.contains("interconnect-gateway/vxc-azure-er"),
        "{f:?}"
    );

    // The sim's VXC carries the circuit's service key: provision with it,
    // as Megaport would.
    let key = rig.find("interconnect-gateway/vxc-azure-er").await.outputs["serviceKey"].clone();
    let vxc = rig.find("vxc/vxc-azure-er").await;
    assert_eq!(vxc.outputs.get("partnerKey"), Some(&key), "{vxc:?}");
    let status = reqwest_free_post(&format!("{url}/_mock/provision/{key}")).await;
    assert_eq!(status, 200);

    let r = rig.converge().await;
    assert!(r.ok(), "{r:?}");
    let again = rig.plan().await;
    assert!(again.is_empty(), "{again}");

    // Checked on the server's own state, not through the provider.
    {
        let a = arm.lock().unwrap();
        let vnet = &a.res[&arm_key("virtualnetworks/network-azure-vnet")];
        assert_eq!(vnet["tags"]["mcnet.io-topology"], "adr-003");
        assert_eq!(vnet["tags"]["mcnet.io-id"], "network/azure-vnet");
        assert_eq!(
            vnet["properties"]["addressSpace"]["addressPrefixes"],
            json!(["10.1.0.0/16"])
        );
        assert!(a.res.contains_key(&arm_key(
            "virtualnetworks/network-azure-vnet/subnets/gatewaysubnet"
        )));
        let conn = &a.res[&arm_key("connections/interconnect-attachment-vxc-azure-er-azure-vnet")];
        assert_eq!(conn["properties"]["connectionStatus"], "Connected");
        assert_eq!(conn["tags"]["mcnet.io-vlan"], "200");
        let circuit = &a.res[&arm_key("expressroutecircuits/interconnect-gateway-vxc-azure-er")];
        let sp = &circuit["properties"]["serviceProviderProperties"];
        assert_eq!(sp["peeringLocation"], "Washington DC");
        assert_eq!(sp["bandwidthInMbps"], 2000);
    }

    // A no-op plan costs one list per collection (and the cached token),
    // however many resources there are; the pager adds a call per page.
    let before = azure.api_calls();
    let _ = rig.plan().await;
    let calls = azure.api_calls() - before;
    println!("azure no-op observe: {calls} API calls");
    assert!((4..=6).contains(&calls), "{calls}");

    // Drift: someone widens the VNet by hand. The repair sends the whole
    // VNet back, so its subnets survive ARM's replace-on-PUT.
    arm.lock()
        .unwrap()
        .res
        .get_mut(&arm_key("virtualnetworks/network-azure-vnet"))
        .unwrap()["properties"]["addressSpace"]["addressPrefixes"] =
        json!(["10.1.0.0/16", "10.9.0.0/16"]);
    let p = rig.plan().await;
    assert_eq!(p.actions.len(), 1, "{p}");
    assert_eq!(p.actions[0].op, Op::Update);
    assert_eq!(p.actions[0].resource, "network/azure-vnet");
    let r = rig.apply(&p).await;
    assert!(r.ok(), "{r:?}");
    let again = rig.plan().await;
    assert!(again.is_empty(), "subnets lost in the repair? {again}");

    // Destroy: everything goes, dependents first, and nothing is left.
    let r = rig.destroy().await;
    assert!(r.ok(), "{r:?}");
    let left: Vec<String> = arm.lock().unwrap().res.keys().cloned().collect();
    assert!(left.is_empty(), "leaked: {left:?}");
}

/// A POST without a client library: one HTTP/1.1 request on a TCP socket.
async fn reqwest_free_post(url: &str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_once('/').unwrap();
    let mut s = tokio::net::TcpStream::connect(host).await.unwrap();
    s.write_all(
        format!("POST /{path} HTTP/1.1\r\nhost: {host}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
            .as_bytes(),
    )
    .await
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out.split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peering_halves_and_refusals_follow_arm() {
    let (url, arm) = serve().await;
    let t = Topology::from_str_strict(
        r#"
apiVersion: mcnet.io/v1alpha1
kind: Topology
metadata: {name: two}
spec:
  providers:
    - {name: azure, kind: azure, regions: [eastus, westeurope]}
  networks:
    - {name: hub, provider: azure, region: eastus, cidrs: [10.50.0.0/16], subnets: [{name: a, cidr: 10.50.0.0/24}]}
    - {name: spoke, provider: azure, region: westeurope, cidrs: [10.60.0.0/16], subnets: [{name: b, cidr: 10.60.0.0/24}]}
  peerings:
    - {name: hub-spoke, kind: vnet-peering, networks: [hub, spoke]}
"#,
    )
    .unwrap();
    let azure = Arc::new(AzureProvider::new(config(&url, SECRET)).unwrap());
    let rig = Rig::new(t, Providers::default().with(azure.clone()));
    let r = rig.converge().await;
    assert!(r.ok(), "{r:?}");
    assert_eq!(
        rig.find("peering/hub-spoke").await.outputs["status"],
        "Connected"
    );
    assert!(rig.plan().await.is_empty());

    // Someone deletes the accepter's half: ours turns Disconnected, which
    // only a replacement fixes.
    {
        let mut a = arm.lock().unwrap();
        let k = a
            .res
            .keys()
            .find(|k| k.ends_with("/virtualnetworkpeerings/peering-hub-spoke-accept"))
            .unwrap()
            .clone();
        a.delete(&k).unwrap();
    }
    let p = rig.plan().await;
    assert_eq!(p.actions.len(), 1, "{p}");
    assert_eq!(p.actions[0].op, Op::Replace, "{p}");
    let r = rig.apply(&p).await;
    assert!(r.ok(), "{r:?}");
    assert!(rig.plan().await.is_empty());

    // A wrong secret is an auth error that names the token endpoint.
    let bad = AzureProvider::new(config(&url, "wrong")).unwrap();
    let e = bad.observe(&rig.owner).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Auth, "{e}");
    assert!(e.message.contains("oauth2/v2.0/token"), "{e}");
    assert!(!e.message.contains("wrong"), "the secret leaked: {e}");

    // Every ARM call carried the api-version and a token (the mock refuses
    // others), and no tag name had a slash (the mock refuses those too).
    assert!(arm
        .lock()
        .unwrap()
        .calls
        .iter()
        .any(|c| c.starts_with("PUT ")));
}

/// Private endpoints: to a storage account's blob sub-resource and to a
/// Private Link service, in the VNet's endpoint subnet; they get an address
/// there, re-plan to nothing, are replaced when their target changes, and
/// go before their subnet on destroy (ARM refuses to delete a subnet in use).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_endpoints_reach_private_link_resources() {
    let (url, arm) = serve().await;
    let azure = Arc::new(AzureProvider::new(config(&url, SECRET)).unwrap());
    let blob = format!(
        "/subscriptions/{SUB}/resourceGroups/data/providers/Microsoft.Storage/storageAccounts/acct"
    );
    let pls = format!(
        "/subscriptions/{SUB}/resourceGroups/shared/providers/Microsoft.Network/privateLinkServices/api"
    );
    let topology = |blob_group: &str, blob_subnet: &str| {
        Topology::from_str_strict(&format!(
            "apiVersion: mcnet.io/v1alpha1\nkind: Topology\nmetadata: {{name: adr-003}}\nspec:\n  providers: [{{name: azure, kind: azure, regions: [eastus]}}]\n  networks:\n    - {{name: azure-vnet, provider: azure, region: eastus, cidrs: [10.1.0.0/16], subnets: [{{name: aks-nodes, cidr: 10.1.0.0/20}}, {{name: endpoints, cidr: 10.1.16.0/24}}]}}\n  privateEndpoints:\n    - {{name: blob, network: azure-vnet, service: \"{blob}\", subresource: {blob_group}, subnets: [{blob_subnet}]}}\n    - {{name: api, network: azure-vnet, service: \"{pls}\", subnets: [endpoints]}}\n"
        ))
        .unwrap()
    };
    let mut rig = Rig::new(
        topology("blob", "endpoints"),
        Providers::default().with(azure.clone()),
    );
    let r = rig.converge().await;
    assert!(r.ok(), "{r:?}");
    assert!(rig.plan().await.is_empty(), "{}", rig.plan().await);

    let blob_pe = rig.find("private-endpoint/blob").await;
    assert_eq!(blob_pe.outputs["status"], "Approved");
    let api_pe = rig.find("private-endpoint/api").await;
    let ips: BTreeSet<&str> = [&blob_pe, &api_pe]
        .iter()
        .map(|o| o.outputs["ip"].as_str())
        .collect();
    assert_eq!(
        ips,
        BTreeSet::from(["10.1.16.4", "10.1.16.5"]),
        "{blob_pe:?} {api_pe:?}"
    );
    {
        let a = arm.lock().unwrap();
        let v = &a.res[&arm_key("privateendpoints/private-endpoint-blob")];
        let conn = &v["properties"]["privateLinkServiceConnections"][0]["properties"];
        assert_eq!(conn["privateLinkServiceId"], blob.as_str());
        assert_eq!(conn["groupIds"], json!(["blob"]));
        assert!(v["properties"]["subnet"]["id"]
            .as_str()
            .unwrap()
            .ends_with("/subnets/endpoints"));
        assert_eq!(v["tags"]["mcnet.io-id"], "private-endpoint/blob");
    }

    // Another sub-resource is another endpoint: replaced, not patched.
    rig.topology = topology("dfs", "endpoints");
    let p = rig.plan().await;
    assert_eq!(
        p.actions
            .iter()
            .map(|a| (a.op, a.resource.as_str()))
            .collect::<Vec<_>>(),
        [(Op::Replace, "private-endpoint/blob")],
        "{p}"
    );
    let r = rig.apply(&p).await;
    assert!(r.ok(), "{r:?}");
    assert!(rig.plan().await.is_empty());
    assert_eq!(
        rig.find("private-endpoint/blob").await.spec,
        mcnet_core::reconcile::Spec::PrivateEndpoint {
            network: "network/azure-vnet".into(),
            service: blob.clone(),
            subresource: Some("dfs".into()),
            subnets: vec!["subnet/azure-vnet/endpoints".into()],
        }
    );

    // Another subnet is an update the planner allows (AWS moves an
    // interface endpoint in place); on Azure the endpoint is made anew there.
    rig.topology = topology("dfs", "aks-nodes");
    let r = rig.converge().await;
    assert!(r.ok(), "{r:?}");
    assert!(rig.plan().await.is_empty(), "{}", rig.plan().await);
    let pe = rig.find("private-endpoint/blob").await;
    assert_eq!(pe.outputs["ip"], "10.1.0.4", "{pe:?}");

    let r = rig.destroy().await;
    assert!(r.ok(), "{r:?}");
    assert!(rig.observe().await.is_empty());
}

/// ARM resources carry their owner in the `mcnet.io-topology` tag,
/// compared whole: a topology named `prod:x` (or `prod-x`) is not `prod`'s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destroying_prod_never_touches_prod_colon_x_or_prod_dash_x_resources() {
    for theirs in ["prod:x", "prod-x"] {
        let (url, _arm) = serve().await;
        let dir = TempDir::new("azure-owner");
        let sim = SimCloud::with_config(
            &dir.0,
            SimConfig {
                step_ms: 10,
                ..SimConfig::default()
            },
        );
        let azure = Arc::new(AzureProvider::new(config(&url, SECRET)).unwrap());
        let providers = Providers::default()
            .with(sim.provider(Scope::Aws))
            .with(azure)
            .with(sim.provider(Scope::Gcp))
            .with(sim.provider(Scope::Megaport));
        // Without the ExpressRoute VXC, whose connection waits on Megaport
        // provisioning the circuit (the test above covers that).
        let mut t = example("adr-003.yaml");
        t.spec
            .interconnect
            .vxcs
            .retain(|v| v.target.kind != VxcTargetKind::AzureExpressroute);
        support::rig::destroy_of_prod_spares(&t, theirs, providers).await;
    }
}
