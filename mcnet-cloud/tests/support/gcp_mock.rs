//! A local, stateful **mock** of the Compute Engine API (no Google Cloud
//! project is reachable here), shared by the GCP provider's tests and the
//! CLI's. It keeps the API's rules that matter here: Bearer auth, RFC 1035
//! names, inserts that return an operation finished by `wait`, paged and
//! aggregated lists, custom-mode networks, peering halves that are INACTIVE
//! until both sides exist, Cloud Routers, PARTNER attachments that need a
//! router with AS 16550 and sit in PENDING_PARTNER with a pairing key until
//! the partner acts, internal addresses taken from a subnet (its first two
//! and last two addresses reserved), Private Service Connect forwarding
//! rules to a service attachment through such an address, and deletes
//! refused while something uses the resource.
//! `serve()` starts it on a free loopback port.

// The handlers return an axum Response as their error.
#![allow(clippy::result_large_err)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::{Json, Router};
use serde_json::{json, Value};

pub const PROJECT: &str = "mcnet-test";
pub const TOKEN: &str = "ya29.test-token";

#[derive(Default)]
pub struct Compute {
    /// Path from `projects/` → resource.
    pub res: BTreeMap<String, Value>,
    /// Operation path → (operation, what to do when it finishes).
    ops: BTreeMap<String, (Value, Effect)>,
    n: u32,
    base: String,
}

#[derive(Clone)]
enum Effect {
    Insert(String, Value),
    Delete(String),
    AddPeering(String, Value),
    RemovePeering(String, String),
}

pub type Shared = Arc<Mutex<Compute>>;

fn err(status: StatusCode, reason: &str, message: String) -> Response {
    (
        status,
        Json(json!({"error": {
            "code": status.as_u16(),
            "message": message,
            "errors": [{"reason": reason, "message": message}],
        }})),
    )
        .into_response()
}

fn last(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

fn valid_name(n: &str) -> bool {
    n.len() <= 63
        && n.starts_with(|c: char| c.is_ascii_lowercase())
        && n.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !n.ends_with('-')
}

fn path_of(url: &str) -> String {
    url.find("projects/")
        .map_or(url.to_string(), |i| url[i..].to_string())
}

impl Compute {
    fn url(&self, path: &str) -> String {
        format!("{}/{path}", self.base)
    }

    /// Starts an operation; it finishes on `wait`.
    fn op(&mut self, scope: &str, kind: &str, target: &str, effect: Effect) -> Value {
        self.n += 1;
        let path = format!("projects/{PROJECT}/{scope}/operations/operation-{}", self.n);
        let op = json!({
            "kind": "compute#operation",
            "name": format!("operation-{}", self.n),
            "operationType": kind,
            "status": "RUNNING",
            "targetLink": self.url(target),
            "selfLink": self.url(&path),
        });
        self.ops.insert(path, (op.clone(), effect));
        op
    }

    fn finish(&mut self, path: &str) -> Option<Value> {
        let (mut op, effect) = self.ops.get(path)?.clone();
        if op["status"] == "DONE" {
            return Some(op);
        }
        match effect {
            Effect::Insert(p, v) => {
                self.res.insert(p, v);
            }
            Effect::Delete(p) => {
                self.res.remove(&p);
            }
            Effect::AddPeering(net, peering) => {
                if let Some(n) = self.res.get_mut(&net) {
                    n["peerings"].as_array_mut().unwrap().push(peering);
                }
            }
            Effect::RemovePeering(net, name) => {
                if let Some(n) = self.res.get_mut(&net) {
                    n["peerings"]
                        .as_array_mut()
                        .unwrap()
                        .retain(|p| p["name"] != name.as_str());
                }
            }
        }
        self.settle();
        op["status"] = json!("DONE");
        op["progress"] = json!(100);
        self.ops.get_mut(path).unwrap().0 = op.clone();
        Some(op)
    }

    /// A peering is ACTIVE while the peer network has one pointing back.
    pub fn settle(&mut self) {
        let back: BTreeSet<(String, String)> = self
            .res
            .iter()
            .flat_map(|(k, v)| {
                v["peerings"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|p| (k.clone(), path_of(p["network"].as_str().unwrap_or(""))))
                    .collect::<Vec<_>>()
            })
            .collect();
        for (k, v) in self.res.iter_mut() {
            for p in v["peerings"].as_array_mut().into_iter().flatten() {
                let remote = path_of(p["network"].as_str().unwrap_or(""));
                let active = back.contains(&(remote, k.clone()));
                p["state"] = json!(if active { "ACTIVE" } else { "INACTIVE" });
            }
        }
    }

    fn used_by(&self, path: &str) -> Option<String> {
        let url = self.url(path);
        self.res
            .iter()
            .find(|(k, v)| {
                k.as_str() != path
                    && ["network", "router", "subnetwork", "IPAddressRef"]
                        .iter()
                        .any(|f| v[*f] == url.as_str())
            })
            .map(|(k, _)| k.clone())
            .or_else(|| {
                self.res
                    .get(path)
                    .and_then(|v| v["peerings"].as_array())
                    .filter(|p| !p.is_empty())
                    .map(|_| format!("{path} peerings"))
            })
    }

    fn insert(&mut self, coll: &str, mut body: Value) -> Result<Value, Response> {
        let bad = |m: String| Err(err(StatusCode::BAD_REQUEST, "invalid", m));
        let name = body["name"].as_str().unwrap_or("").to_string();
        if !valid_name(&name) {
            return bad(format!("Invalid value for field 'resource.name': '{name}'"));
        }
        let path = format!("{coll}/{name}");
        if self.res.contains_key(&path) {
            return Err(err(
                StatusCode::CONFLICT,
                "alreadyExists",
                format!("The resource '{path}' already exists"),
            ));
        }
        let kind = coll.rsplit('/').next().unwrap_or("");
        let region = coll
            .split("/regions/")
            .nth(1)
            .and_then(|r| r.split('/').next());
        let exists = |f: &str, body: &Value| {
            let p = path_of(body[f].as_str().unwrap_or(""));
            self.res.contains_key(&p)
        };
        match kind {
            "networks" => {
                if body["autoCreateSubnetworks"] != false {
                    return bad(
                        "only custom-mode networks here: autoCreateSubnetworks must be false"
                            .into(),
                    );
                }
                body["peerings"] = json!([]);
            }
            "subnetworks" => {
                if !exists("network", &body) || body["ipCidrRange"].as_str().is_none() {
                    return bad("network must exist and ipCidrRange is required".into());
                }
            }
            "routers" => {
                if !exists("network", &body) || body["bgp"]["asn"].as_u64().is_none() {
                    return bad("network must exist and bgp.asn is required".into());
                }
            }
            "interconnectAttachments" => {
                if body["type"] != "PARTNER" || body["edgeAvailabilityDomain"].as_str().is_none() {
                    return bad("type PARTNER needs an edgeAvailabilityDomain".into());
                }
                let router = path_of(body["router"].as_str().unwrap_or(""));
                match self.res.get(&router) {
                    Some(r) if r["bgp"]["asn"] == 16550 => {}
                    Some(_) => {
                        return bad("a PARTNER attachment's Cloud Router must have ASN 16550".into())
                    }
                    None => return bad(format!("router {router} does not exist")),
                }
                body["pairingKey"] = json!(format!(
                    "7e51371e-72a3-40b5-b844-2e3efefaee{:02}/{}/1",
                    self.n,
                    region.unwrap_or("")
                ));
                body["state"] = json!("PENDING_PARTNER");
            }
            "addresses" => {
                let subnet = path_of(body["subnetwork"].as_str().unwrap_or(""));
                let Some(sn) = self.res.get(&subnet) else {
                    return bad(format!("subnetwork {subnet} does not exist"));
                };
                if body["addressType"] != "INTERNAL" {
                    return bad("only INTERNAL addresses here".into());
                }
                if !subnet.contains(&format!("/regions/{}/", region.unwrap_or(""))) {
                    return bad(format!(
                        "subnetwork {subnet} is not in region {}",
                        region.unwrap_or("")
                    ));
                }
                let (base, len) = sn["ipCidrRange"]
                    .as_str()
                    .and_then(|c| c.split_once('/'))
                    .unwrap();
                let base = u32::from(base.parse::<std::net::Ipv4Addr>().unwrap());
                let size = 1u32 << (32 - len.parse::<u32>().unwrap());
                let taken: BTreeSet<&str> = self
                    .res
                    .values()
                    .filter(|v| path_of(v["subnetwork"].as_str().unwrap_or("")) == subnet)
                    .filter_map(|v| v["address"].as_str())
                    .collect();
                // The first two addresses (network, gateway) and the last
                // two are reserved.
                let Some(ip) = (base + 2..base + size - 2)
                    .map(std::net::Ipv4Addr::from)
                    .find(|ip| !taken.contains(ip.to_string().as_str()))
                else {
                    return bad(format!("subnetwork {subnet} has no free address"));
                };
                body["address"] = json!(ip.to_string());
                body["status"] = json!("RESERVED");
            }
            "forwardingRules" => {
                let address = path_of(body["IPAddress"].as_str().unwrap_or(""));
                let target = path_of(body["target"].as_str().unwrap_or(""));
                let Some(a) = self.res.get(&address).cloned() else {
                    return bad(format!("IPAddress {address} is not a reserved address"));
                };
                if !exists("network", &body)
                    || !target.contains("/serviceAttachments/")
                    || !body["loadBalancingScheme"]
                        .as_str()
                        .unwrap_or("")
                        .is_empty()
                {
                    return bad(
                        "a Private Service Connect endpoint needs an existing network, a service \
                         attachment target and no load-balancing scheme"
                            .into(),
                    );
                }
                if !target.contains(&format!("/regions/{}/", region.unwrap_or(""))) {
                    return bad(format!(
                        "the service attachment {target} is not in region {}",
                        region.unwrap_or("")
                    ));
                }
                // The producer's side is not modelled: an attachment named
                // `missing...` stands for one that does not exist.
                if last(&target).starts_with("missing") {
                    return Err(err(
                        StatusCode::NOT_FOUND,
                        "notFound",
                        format!("The resource '{target}' was not found"),
                    ));
                }
                // The rule shows the address itself, and keeps the reference.
                body["IPAddressRef"] = json!(self.url(&address));
                body["IPAddress"] = a["address"].clone();
                body["pscConnectionStatus"] = json!("ACCEPTED");
                body["pscConnectionId"] = json!(format!("{}", 1_000_000 + self.n));
            }
            _ => return bad(format!("unknown collection {coll}")),
        }
        body["selfLink"] = json!(self.url(&path));
        body["kind"] = json!(format!("compute#{}", kind.trim_end_matches('s')));
        if let Some(r) = region {
            body["region"] = json!(self.url(&format!("projects/{PROJECT}/regions/{r}")));
        }
        let scope = match region {
            Some(r) => format!("regions/{r}"),
            None => "global".into(),
        };
        Ok(self.op(&scope, "insert", &path, Effect::Insert(path.clone(), body)))
    }

    fn list(&self, path: &str, page: usize) -> Value {
        let (aggregated, field) = match path.split_once("/aggregated/") {
            Some((_, f)) => (true, f.to_string()),
            None => (false, path.rsplit('/').next().unwrap_or("").to_string()),
        };
        let items: Vec<&Value> = self
            .res
            .iter()
            .filter(|(k, _)| {
                let parts: Vec<&str> = k.split('/').collect();
                parts.len() >= 2
                    && parts[parts.len() - 2] == field
                    && (aggregated || k.starts_with(path))
            })
            .map(|(_, v)| v)
            .collect();
        let chunk: Vec<&Value> = items.iter().skip(page).take(1).copied().collect();
        let mut out = if aggregated {
            let mut by: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
            for v in chunk {
                let r = v["region"]
                    .as_str()
                    .unwrap_or("")
                    .rsplit('/')
                    .next()
                    .unwrap_or("");
                by.entry(format!("regions/{r}")).or_default().push(v);
            }
            let items: serde_json::Map<String, Value> = by
                .into_iter()
                .map(|(k, v)| (k, json!({ field.as_str(): v })))
                .collect();
            json!({"items": items})
        } else {
            json!({"items": chunk})
        };
        if page + 1 < items.len() {
            out["nextPageToken"] = json!((page + 1).to_string());
        }
        out
    }
}

async fn compute(
    State(st): State<Shared>,
    method: Method,
    uri: Uri,
    h: HeaderMap,
    body: Bytes,
) -> Response {
    let full = uri.path().to_string();
    let mut c = st.lock().unwrap();
    if let Some(key) = full.strip_prefix("/_mock/partner/") {
        // The partner's side: Megaport configures the attachment whose
        // pairing key its VXC carries.
        let key = key.replace("%2F", "/");
        for v in c.res.values_mut() {
            if v["pairingKey"] == key.as_str() {
                v["state"] = json!("ACTIVE");
                v["partnerAsn"] = json!(133937);
                return StatusCode::OK.into_response();
            }
        }
        return StatusCode::NOT_FOUND.into_response();
    }
    if h.get("authorization").and_then(|v| v.to_str().ok()) != Some(&format!("Bearer {TOKEN}")) {
        return err(
            StatusCode::UNAUTHORIZED,
            "authError",
            "Request had invalid authentication credentials.".into(),
        );
    }
    let Some(path) = full.strip_prefix("/compute/v1/") else {
        return err(StatusCode::NOT_FOUND, "notFound", full);
    };
    let path = path.to_string();
    if !path.starts_with(&format!("projects/{PROJECT}/")) {
        return err(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("no access to {path}"),
        );
    }
    let page: usize = uri
        .query()
        .and_then(|q| q.strip_prefix("pageToken="))
        .and_then(|t| t.parse().ok())
        .unwrap_or(0);
    let json_body = || serde_json::from_slice::<Value>(&body).unwrap_or(Value::Null);
    let last = path.rsplit('/').next().unwrap_or("").to_string();
    let parent = path.rsplit_once('/').map_or("", |(p, _)| p).to_string();
    let scope_of = |p: &str| -> String {
        match p
            .split("/regions/")
            .nth(1)
            .and_then(|r| r.split('/').next())
        {
            Some(r) => format!("regions/{r}"),
            None => "global".into(),
        }
    };
    match method {
        Method::POST if last == "wait" => match c.finish(&parent) {
            Some(op) => Json(op).into_response(),
            None => err(StatusCode::NOT_FOUND, "notFound", parent),
        },
        Method::POST if last == "addPeering" || last == "removePeering" => {
            if !c.res.contains_key(&parent) {
                return err(StatusCode::NOT_FOUND, "notFound", parent);
            }
            let b = json_body();
            let effect = if last == "addPeering" {
                let p = &b["networkPeering"];
                let name = p["name"].as_str().unwrap_or("");
                let remote = path_of(p["network"].as_str().unwrap_or(""));
                if !valid_name(name) || !c.res.contains_key(&remote) {
                    return err(
                        StatusCode::BAD_REQUEST,
                        "invalid",
                        format!("peering {name} to {remote}"),
                    );
                }
                Effect::AddPeering(
                    parent.clone(),
                    json!({"name": name, "network": c.url(&remote), "state": "INACTIVE",
                           "exchangeSubnetRoutes": p["exchangeSubnetRoutes"]}),
                )
            } else {
                let name = b["name"].as_str().unwrap_or("").to_string();
                let has = c.res[&parent]["peerings"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|p| p["name"] == name.as_str());
                if !has {
                    return err(
                        StatusCode::BAD_REQUEST,
                        "invalid",
                        format!("no peering {name}"),
                    );
                }
                Effect::RemovePeering(parent.clone(), name)
            };
            let op = c.op("global", &last, &parent, effect);
            Json(op).into_response()
        }
        Method::POST => match c.insert(&path, json_body()) {
            Ok(op) => Json(op).into_response(),
            Err(r) => r,
        },
        Method::GET
            if matches!(
                last.as_str(),
                "networks"
                    | "subnetworks"
                    | "routers"
                    | "interconnectAttachments"
                    | "addresses"
                    | "forwardingRules"
            ) =>
        {
            Json(c.list(&path, page)).into_response()
        }
        Method::GET => match c.res.get(&path) {
            Some(v) => Json(v.clone()).into_response(),
            None => err(
                StatusCode::NOT_FOUND,
                "notFound",
                format!("The resource '{path}' was not found"),
            ),
        },
        Method::DELETE => {
            if !c.res.contains_key(&path) {
                return err(StatusCode::NOT_FOUND, "notFound", path);
            }
            if let Some(user) = c.used_by(&path) {
                return err(
                    StatusCode::BAD_REQUEST,
                    "resourceInUseByAnotherResource",
                    format!("The resource '{path}' is already being used by '{user}'"),
                );
            }
            let scope = scope_of(&path);
            let op = c.op(&scope, "delete", &path, Effect::Delete(path.clone()));
            Json(op).into_response()
        }
        _ => StatusCode::METHOD_NOT_ALLOWED.into_response(),
    }
}

pub async fn serve() -> (String, Shared) {
    let state: Shared = Arc::default();
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    state.lock().unwrap().base = format!("{url}/compute/v1");
    let app = Router::new()
        .route("/{*path}", any(compute))
        .with_state(Arc::clone(&state));
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    (url, state)
}
