//! The Megaport provider against a local, stateful stand-in for the
//! Megaport API (a **mock** of the service, since no Megaport account can be
//! reached from here). It speaks the public API's shapes, as recorded in
//! `../shared/fixtures/megaport/`: the OAuth2 client-credentials token with
//! Basic auth, Bearer auth on every call, order validation and buy with their
//! field rules, products stepping DEPLOYABLE → CONFIGURED → LIVE, VXC
//! updates, prefix lists, partner-port lookups, cancellation and pricing.
//!
//! adr-003 is applied with the clouds on the embedded sim and Megaport on
//! this server, so the sim's ExpressRoute service key and GCP pairing key
//! feed real HTTP orders.

#[path = "support/mod.rs"]
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use mcnet_cloud::connect::megaport::{MegaportConfig, MegaportProvider};
use mcnet_cloud::connect::sim::{SimCloud, SimConfig};
use mcnet_core::reconcile::{
    apply, desired, plan, ApplyOptions, ErrorKind, Op, Owner, Providers, ResourceProvider, Retry,
    Scope,
};
use mcnet_core::topology::Topology;
use serde_json::{json, Value};

const KEY: &str = "mcnet-test-key";
const SECRET: &str = "mcnet-test-secret";
const STEP: Duration = Duration::from_millis(60);

#[derive(Default)]
struct Api {
    token: Option<String>,
    tokens_issued: u32,
    next: u64,
    products: BTreeMap<String, Product>,
    prefix_lists: BTreeMap<u64, (String, Value)>,
    log: Vec<String>,
}

struct Product {
    body: Value,
    since: Instant,
    cancelled: bool,
}

type Shared = Arc<Mutex<Api>>;

fn status(p: &Product) -> &'static str {
    if p.cancelled {
        return "DECOMMISSIONED";
    }
    match p.since.elapsed().as_millis() / STEP.as_millis() {
        0 => "DEPLOYABLE",
        1 => "CONFIGURED",
        _ => "LIVE",
    }
}

fn view(p: &Product) -> Value {
    let mut v = p.body.clone();
    v["provisioningStatus"] = status(p).into();
    v
}

fn reply(code: StatusCode, message: &str, data: Value) -> Response {
    (
        code,
        Json(json!({"message": message, "terms": "test terms", "data": data})),
    )
        .into_response()
}

fn bad(message: String) -> Response {
    reply(StatusCode::BAD_REQUEST, &message, Value::Null)
}

fn base64(input: &str) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let b = input.as_bytes();
    let mut out = String::new();
    for c in b.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

async fn token(
    State(api): State<Shared>,
    q: Query<BTreeMap<String, String>>,
    h: HeaderMap,
) -> Response {
    let basic = format!("Basic {}", base64(&format!("{KEY}:{SECRET}")));
    if q.get("grant_type").map(String::as_str) != Some("client_credentials") {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "unsupported_grant_type"})),
        )
            .into_response();
    }
    if h.get("authorization").and_then(|v| v.to_str().ok()) != Some(basic.as_str()) {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "invalid_client"})),
        )
            .into_response();
    }
    let mut a = api.lock().unwrap();
    a.tokens_issued += 1;
    let t = format!("token-{}", a.tokens_issued);
    a.token = Some(t.clone());
    Json(json!({"access_token": t, "token_type": "Bearer", "expires_in": 3600})).into_response()
}

/// Every API route checks the Bearer token first and logs the call; the
/// refusal, if any.
fn refused(api: &Shared, h: &HeaderMap, call: String) -> Option<Response> {
    let mut a = api.lock().unwrap();
    let want = a.token.clone().map(|t| format!("Bearer {t}"));
    if want.is_none() || h.get("authorization").and_then(|v| v.to_str().ok()) != want.as_deref() {
        return Some(reply(
            StatusCode::UNAUTHORIZED,
            "Bearer token missing or invalid",
            Value::Null,
        ));
    }
    a.log.push(call);
    None
}

fn location_speeds() -> Vec<u64> {
    vec![1000, 2500, 5000, 10000]
}

/// Checks one order line as the API does; the error names the field.
fn check_order(a: &Api, o: &Value) -> Result<(), String> {
    let term = o["term"].as_u64();
    if o["productType"] == "MCR2" {
        if o["locationId"].as_u64() != Some(1) {
            return Err(format!(
                "locationId {} is not a known location",
                o["locationId"]
            ));
        }
        if o["productName"].as_str().is_none_or(str::is_empty) {
            return Err("productName is required".into());
        }
        let speed = o["portSpeed"].as_u64().unwrap_or(0);
        if !location_speeds().contains(&speed) {
            return Err(format!(
                "portSpeed {speed} is not offered for an MCR at this location"
            ));
        }
        if o["config"]["mcrAsn"].as_u64().is_none() {
            return Err("config.mcrAsn must be an integer".into());
        }
        if !matches!(term, Some(1 | 12 | 24 | 36)) {
            return Err(format!("term {:?} is not 1, 12, 24 or 36", term));
        }
        return Ok(());
    }
    let mcr_uid = o["productUid"]
        .as_str()
        .ok_or("productUid (the A end) is required")?;
    let mcr = a
        .products
        .get(mcr_uid)
        .filter(|p| !p.cancelled)
        .ok_or(format!("productUid {mcr_uid} is not a live product"))?;
    for v in o["associatedVxcs"]
        .as_array()
        .ok_or("associatedVxcs must be an array")?
    {
        if v["productName"].as_str().is_none_or(str::is_empty) {
            return Err("associatedVxcs[].productName is required".into());
        }
        let rate = v["rateLimit"]
            .as_u64()
            .ok_or("rateLimit must be an integer")?;
        if rate > mcr.body["portSpeed"].as_u64().unwrap_or(0) {
            return Err(format!("rateLimit {rate} exceeds the MCR's port speed"));
        }
        check_a_end(
            a,
            mcr_uid,
            &v["aEnd"]["vlan"],
            &v["aEnd"]["partnerConfig"],
            None,
        )?;
        let b = &v["bEnd"];
        if b["productUid"].as_str().is_none_or(str::is_empty) {
            return Err("bEnd.productUid is required".into());
        }
        let pc = &b["partnerConfig"];
        match pc["connectType"].as_str() {
            Some("AWSHC") if pc["ownerAccount"].is_string() && pc["type"] == "private" => {}
            // A hosted VIF: Megaport creates the VIF, so it needs its BGP.
            Some("AWS")
                if pc["ownerAccount"].is_string()
                    && pc["type"] == "private"
                    && pc["asn"].is_u64()
                    && pc["amazonAsn"].is_u64()
                    && pc["customerIpAddress"].is_string()
                    && pc["amazonIpAddress"].is_string() => {}
            Some("AZURE") if pc["serviceKey"].is_string() => {}
            Some("GOOGLE") if pc["pairingKey"].is_string() => {}
            other => {
                return Err(format!(
                    "bEnd.partnerConfig is incomplete for connectType {other:?}"
                ))
            }
        }
    }
    Ok(())
}

fn check_a_end(
    a: &Api,
    mcr: &str,
    vlan: &Value,
    config: &Value,
    except: Option<&str>,
) -> Result<(), String> {
    let vlan = vlan.as_u64().ok_or("aEnd.vlan must be an integer")?;
    if !(2..=4093).contains(&vlan) {
        return Err(format!("aEnd.vlan {vlan} is outside 2-4093"));
    }
    let taken = a.products.iter().any(|(uid, p)| {
        !p.cancelled
            && Some(uid.as_str()) != except
            && p.body["aEnd"]["productUid"] == mcr
            && p.body["aEnd"]["vlan"] == vlan
    });
    if taken {
        return Err(format!("aEnd.vlan {vlan} is already used on this MCR"));
    }
    if config.get("connectType").is_some() {
        return Err("an MCR A-end partnerConfig has no connectType".into());
    }
    for i in config["interfaces"]
        .as_array()
        .ok_or("partnerConfig.interfaces must be an array")?
    {
        for b in i["bgpConnections"]
            .as_array()
            .ok_or("interfaces[].bgpConnections must be an array")?
        {
            if b["peerAsn"].as_u64().is_none()
                || !b["localIpAddress"].is_string()
                || !b["peerIpAddress"].is_string()
            {
                return Err(
                    "bgpConnections[] needs peerAsn, localIpAddress and peerIpAddress".into(),
                );
            }
            for k in ["importWhitelist", "exportWhitelist"] {
                if let Some(id) = b[k].as_u64() {
                    if a.prefix_lists
                        .get(&id)
                        .is_none_or(|(owner, _)| owner != mcr)
                    {
                        return Err(format!("{k} {id} is not a prefix list of this MCR"));
                    }
                }
            }
        }
    }
    Ok(())
}

async fn validate(State(api): State<Shared>, h: HeaderMap, Json(body): Json<Value>) -> Response {
    if let Some(r) = refused(&api, &h, "POST validate".into()) {
        return r;
    }
    let a = api.lock().unwrap();
    let Some(orders) = body.as_array() else {
        return bad("the body must be an array of orders".into());
    };
    for o in orders {
        if let Err(e) = check_order(&a, o) {
            return bad(e);
        }
    }
    reply(StatusCode::OK, "Validation passed", json!([]))
}

async fn buy(State(api): State<Shared>, h: HeaderMap, Json(body): Json<Value>) -> Response {
    if let Some(r) = refused(&api, &h, "POST buy".into()) {
        return r;
    }
    let mut a = api.lock().unwrap();
    let Some(orders) = body["networkDesign"].as_array().cloned() else {
        return bad("networkDesign must be an array of orders".into());
    };
    let mut data = vec![];
    for o in &orders {
        if let Err(e) = check_order(&a, o) {
            return bad(e);
        }
        a.next += 1;
        let uid = format!("{:08x}-0000-4000-8000-{:012x}", a.next, a.next);
        if o["productType"] == "MCR2" {
            let body = json!({
                "productUid": uid, "productName": o["productName"], "productType": "MCR2",
                "locationId": o["locationId"], "portSpeed": o["portSpeed"], "costCentre": o["costCentre"],
                "diversityZone": o["config"]["diversityZone"], "contractTermMonths": o["term"],
                "resources": {"virtual_router": {"mcrASN": o["config"]["mcrAsn"]}},
            });
            a.products.insert(
                uid.clone(),
                Product {
                    body,
                    since: Instant::now(),
                    cancelled: false,
                },
            );
            data.push(json!({"technicalServiceUid": uid}));
        } else {
            let v = &o["associatedVxcs"][0];
            let pc = &v["bEnd"]["partnerConfig"];
            let mut csp =
                json!({"connectType": pc["connectType"], "resource_type": "csp_connection"});
            match pc["connectType"].as_str() {
                Some("AZURE") => csp["service_key"] = pc["serviceKey"].clone(),
                Some("GOOGLE") => csp["pairingKey"] = pc["pairingKey"].clone(),
                Some("AWS") => {
                    for k in ["ownerAccount", "asn", "amazonAsn"] {
                        csp[k] = pc[k].clone();
                    }
                    csp["customer_address"] = pc["customerIpAddress"].clone();
                    csp["amazon_address"] = pc["amazonIpAddress"].clone();
                    csp["vif_id"] = format!("dxvif-{:08x}", a.next).into();
                }
                _ => {
                    csp["ownerAccount"] = pc["ownerAccount"].clone();
                    csp["connectionId"] = format!("dxcon-{:08x}", a.next).into();
                }
            }
            let mut vrouter = v["aEnd"]["partnerConfig"].clone();
            vrouter["connectType"] = "VROUTER".into();
            let body = json!({
                "productUid": uid, "productName": v["productName"], "productType": "VXC",
                "rateLimit": v["rateLimit"], "costCentre": v["costCentre"],
                "aEnd": {"productUid": o["productUid"], "vlan": v["aEnd"]["vlan"]},
                "bEnd": {"productUid": v["bEnd"]["productUid"], "vlan": 0},
                "resources": {"csp_connection": [vrouter, csp]},
            });
            a.products.insert(
                uid.clone(),
                Product {
                    body,
                    since: Instant::now(),
                    cancelled: false,
                },
            );
            data.push(json!({"vxcJTechnicalServiceUid": uid}));
        }
    }
    reply(StatusCode::OK, "ordered", Value::Array(data))
}

async fn products(State(api): State<Shared>, h: HeaderMap) -> Response {
    if let Some(r) = refused(&api, &h, "GET products".into()) {
        return r;
    }
    let a = api.lock().unwrap();
    let live = |p: &&Product| !p.cancelled;
    let list: Vec<Value> = a
        .products
        .values()
        .filter(live)
        .filter(|p| p.body["productType"] == "MCR2")
        .map(|m| {
            let mut v = view(m);
            v["associatedVxcs"] = a
                .products
                .values()
                .filter(live)
                .filter(|p| p.body["aEnd"]["productUid"] == m.body["productUid"])
                .map(view)
                .collect();
            v
        })
        .collect();
    reply(StatusCode::OK, "products", Value::Array(list))
}

async fn product(
    State(api): State<Shared>,
    h: HeaderMap,
    UrlPath(uid): UrlPath<String>,
) -> Response {
    if let Some(r) = refused(&api, &h, format!("GET product {uid}")) {
        return r;
    }
    match api.lock().unwrap().products.get(&uid) {
        Some(p) => reply(StatusCode::OK, "product", view(p)),
        None => reply(
            StatusCode::NOT_FOUND,
            &format!("product {uid} not found"),
            Value::Null,
        ),
    }
}

async fn update_vxc(
    State(api): State<Shared>,
    h: HeaderMap,
    UrlPath(uid): UrlPath<String>,
    Json(b): Json<Value>,
) -> Response {
    if let Some(r) = refused(&api, &h, format!("PUT vxc {uid}")) {
        return r;
    }
    let mut a = api.lock().unwrap();
    let Some(p) = a
        .products
        .get(&uid)
        .filter(|p| !p.cancelled && p.body["productType"] == "VXC")
    else {
        return reply(
            StatusCode::NOT_FOUND,
            &format!("VXC {uid} not found"),
            Value::Null,
        );
    };
    let mcr = p.body["aEnd"]["productUid"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let speed = a
        .products
        .get(&mcr)
        .and_then(|m| m.body["portSpeed"].as_u64())
        .unwrap_or(0);
    if b["rateLimit"].as_u64().is_some_and(|r| r > speed) {
        return bad(format!(
            "rateLimit {} exceeds the MCR's port speed",
            b["rateLimit"]
        ));
    }
    let config = b
        .get("aEndConfig")
        .cloned()
        .unwrap_or(json!({"interfaces": []}));
    if let Err(e) = check_a_end(&a, &mcr, &b["aEndVlan"], &config, Some(&uid)) {
        return bad(e);
    }
    let p = a.products.get_mut(&uid).unwrap();
    for (from, to) in [
        ("name", "productName"),
        ("rateLimit", "rateLimit"),
        ("costCentre", "costCentre"),
    ] {
        if let Some(v) = b.get(from) {
            p.body[to] = v.clone();
        }
    }
    p.body["aEnd"]["vlan"] = b["aEndVlan"].clone();
    if let Some(mut c) = b.get("aEndConfig").cloned() {
        c["connectType"] = "VROUTER".into();
        p.body["resources"]["csp_connection"][0] = c;
    }
    // Reconfiguring takes a moment: back through CONFIGURED.
    p.since = Instant::now() - STEP;
    reply(StatusCode::OK, "updated", view(p))
}

async fn cancel(
    State(api): State<Shared>,
    h: HeaderMap,
    UrlPath((uid, action)): UrlPath<(String, String)>,
) -> Response {
    if let Some(r) = refused(&api, &h, format!("POST {action} {uid}")) {
        return r;
    }
    let mut a = api.lock().unwrap();
    if action != "CANCEL_NOW" {
        return bad(format!("unsupported action {action}"));
    }
    let busy = a
        .products
        .values()
        .any(|p| !p.cancelled && p.body["aEnd"]["productUid"] == uid.as_str());
    if busy {
        return bad(format!("product {uid} still has VXCs attached"));
    }
    match a.products.get_mut(&uid) {
        Some(p) => {
            p.cancelled = true;
            reply(
                StatusCode::OK,
                &format!("Action [CANCEL_NOW Service {uid}] has been done."),
                Value::Null,
            )
        }
        None => reply(
            StatusCode::NOT_FOUND,
            &format!("product {uid} not found"),
            Value::Null,
        ),
    }
}

async fn secure_lookup(
    State(api): State<Shared>,
    h: HeaderMap,
    UrlPath((csp, key)): UrlPath<(String, String)>,
) -> Response {
    if let Some(r) = refused(&api, &h, format!("GET secure {csp}")) {
        return r;
    }
    if !matches!(csp.as_str(), "azure" | "google") || key.is_empty() {
        return reply(StatusCode::NOT_FOUND, "unknown key", Value::Null);
    }
    reply(
        StatusCode::OK,
        "ports",
        json!({"megaports": [{"productUid": format!("{csp}-port-1"), "vxc": 0, "portSpeed": 10000}]}),
    )
}

async fn partner_ports(State(api): State<Shared>, h: HeaderMap) -> Response {
    if let Some(r) = refused(&api, &h, "GET partner ports".into()) {
        return r;
    }
    reply(
        StatusCode::OK,
        "ports",
        json!([
            {"connectType": "AWSHC", "productUid": "aws-port-elsewhere", "locationId": 9},
            {"connectType": "AWSHC", "productUid": "aws-port-1", "locationId": 1},
            {"connectType": "AWS", "productUid": "aws-vif-port-1", "locationId": 1},
        ]),
    )
}

async fn locations(State(api): State<Shared>, h: HeaderMap) -> Response {
    if let Some(r) = refused(&api, &h, "GET locations".into()) {
        return r;
    }
    reply(
        StatusCode::OK,
        "locations",
        json!([{"id": 1, "name": "Equinix DC2", "status": "Active",
                 "diversityZones": {"red": {"mcrSpeedMbps": location_speeds()}, "blue": {"mcrSpeedMbps": location_speeds()}}}]),
    )
}

async fn prefix_lists(
    State(api): State<Shared>,
    h: HeaderMap,
    UrlPath(mcr): UrlPath<String>,
) -> Response {
    if let Some(r) = refused(&api, &h, "GET prefixLists".into()) {
        return r;
    }
    let a = api.lock().unwrap();
    let lists: Vec<Value> = a
        .prefix_lists
        .iter()
        .filter(|(_, (m, _))| *m == mcr)
        .map(|(id, (_, l))| json!({"id": id, "description": l["description"], "addressFamily": l["addressFamily"]}))
        .collect();
    reply(StatusCode::OK, "lists", Value::Array(lists))
}

fn check_list(l: &Value) -> Result<(), String> {
    if l["addressFamily"] != "IPv4" && l["addressFamily"] != "IPv6" {
        return Err("addressFamily must be IPv4 or IPv6".into());
    }
    for e in l["entries"].as_array().ok_or("entries must be an array")? {
        if !matches!(e["action"].as_str(), Some("permit" | "deny")) || !e["prefix"].is_string() {
            return Err("entries[] need action (permit|deny) and prefix".into());
        }
    }
    Ok(())
}

async fn create_list(
    State(api): State<Shared>,
    h: HeaderMap,
    UrlPath(mcr): UrlPath<String>,
    Json(l): Json<Value>,
) -> Response {
    if let Some(r) = refused(&api, &h, "POST prefixList".into()) {
        return r;
    }
    if let Err(e) = check_list(&l) {
        return bad(e);
    }
    let mut a = api.lock().unwrap();
    a.next += 1;
    let id = a.next;
    a.prefix_lists.insert(id, (mcr, l));
    reply(StatusCode::OK, "created", json!({"id": id}))
}

async fn one_list(
    State(api): State<Shared>,
    h: HeaderMap,
    UrlPath((_, id)): UrlPath<(String, u64)>,
) -> Response {
    if let Some(r) = refused(&api, &h, "GET prefixList".into()) {
        return r;
    }
    match api.lock().unwrap().prefix_lists.get(&id) {
        Some((_, l)) => reply(StatusCode::OK, "list", l.clone()),
        None => reply(StatusCode::NOT_FOUND, "no such list", Value::Null),
    }
}

async fn put_list(
    State(api): State<Shared>,
    h: HeaderMap,
    UrlPath((_, id)): UrlPath<(String, u64)>,
    Json(l): Json<Value>,
) -> Response {
    if let Some(r) = refused(&api, &h, "PUT prefixList".into()) {
        return r;
    }
    if let Err(e) = check_list(&l) {
        return bad(e);
    }
    match api.lock().unwrap().prefix_lists.get_mut(&id) {
        Some((_, old)) => {
            *old = l;
            reply(StatusCode::OK, "updated", Value::Null)
        }
        None => reply(StatusCode::NOT_FOUND, "no such list", Value::Null),
    }
}

async fn price(State(api): State<Shared>, h: HeaderMap, Json(b): Json<Value>) -> Response {
    if let Some(r) = refused(&api, &h, "POST pricebook".into()) {
        return r;
    }
    let rate = match b["productType"].as_str() {
        Some("MCR2") => 900.0,
        Some("VXC") => 350.0,
        _ => return bad("productType must be MCR2 or VXC".into()),
    };
    reply(
        StatusCode::OK,
        "price",
        json!({"productType": b["productType"], "currency": "USD", "monthlyRate": rate}),
    )
}

async fn serve() -> (String, Shared) {
    let api: Shared = Arc::default();
    let app = Router::new()
        .route("/oauth2/token", post(token))
        .route("/v3/networkdesign/validate", post(validate))
        .route("/v4/networkdesign/buy", post(buy))
        .route("/v2/products", get(products))
        .route("/v2/product/{uid}", get(product))
        .route("/v3/product/vxc/{uid}", put(update_vxc))
        .route("/v3/product/{uid}/action/{action}", post(cancel))
        .route("/v2/secure/{csp}/{key}", get(secure_lookup))
        .route("/v2/dropdowns/partner/megaports", get(partner_ports))
        .route("/v3/locations", get(locations))
        .route("/v2/product/mcr2/{uid}/prefixLists", get(prefix_lists))
        .route("/v2/product/mcr2/{uid}/prefixList", post(create_list))
        .route(
            "/v2/product/mcr2/{uid}/prefixList/{id}",
            get(one_list).put(put_list),
        )
        .route("/v4/pricebook/product", post(price))
        .with_state(Arc::clone(&api));
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    (url, api)
}

struct TempDir(PathBuf);
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn config(url: &str, secret: &str) -> MegaportConfig {
    MegaportConfig {
        api_url: url.into(),
        auth_url: format!("{url}/oauth2/token"),
        access_key: KEY.into(),
        secret_key: secret.into(),
        aws_account: Some("123456789012".into()),
    }
}

fn opts() -> ApplyOptions {
    ApplyOptions {
        retry: Retry {
            attempts: 5,
            base: Duration::from_millis(5),
            cap: Duration::from_millis(50),
        },
        poll: Duration::from_millis(20),
        wait_timeout: Duration::from_secs(20),
        ..ApplyOptions::default()
    }
}

/// A temporary directory unique to this process and moment.
fn temp_dir(tag: &str) -> TempDir {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    TempDir(std::env::temp_dir().join(format!("mcnet-{tag}-{}-{nanos}", std::process::id())))
}

/// The ADR's topology, as the examples hold it.
fn adr003() -> Topology {
    Topology::from_str_strict(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/topologies/adr-003.yaml"),
        )
        .unwrap(),
    )
    .unwrap()
}

/// The sim (fast states) under `dir`, and the Megaport provider on the mock at `url`.
fn sim_and_megaport(dir: &Path, url: &str) -> (Arc<SimCloud>, Arc<MegaportProvider>) {
    let sim = SimCloud::with_config(
        dir,
        SimConfig {
            step_ms: 10,
            ..SimConfig::default()
        },
    );
    let megaport = Arc::new(MegaportProvider::new(config(url, SECRET)).unwrap());
    (sim, megaport)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adr003_buys_the_mcr_and_vxcs_over_http_and_updates_a_vxc_in_place() {
    let (url, api) = serve().await;
    let dir = temp_dir("megaport");
    let mut t = adr003();
    let (sim, megaport) = sim_and_megaport(&dir.0, &url);
    let providers = Providers::default()
        .with(sim.provider(Scope::Aws))
        .with(sim.provider(Scope::Azure))
        .with(sim.provider(Scope::Gcp))
        .with(megaport.clone());
    let owner = Owner {
        topology: "adr-003".into(),
    };
    let scopes: BTreeSet<Scope> = Scope::ALL.into_iter().collect();
    let replan = |t: Topology| {
        let providers = providers.clone();
        let owner = owner.clone();
        let scopes = scopes.clone();
        async move {
            let want = desired(&t, &scopes).unwrap();
            let have = providers.observe(&owner).await.unwrap();
            plan("adr-003", &scopes, &want, &have)
        }
    };

    let p = replan(t.clone()).await;
    assert_eq!(
        p.actions
            .iter()
            .filter(|a| a.provider == Scope::Megaport)
            .count(),
        4
    );
    let r = apply(&p, &owner, &providers, &opts(), Arc::new(|_: &_| {})).await;
    assert!(r.ok(), "{r:?}");
    let again = replan(t.clone()).await;
    assert!(again.is_empty(), "{again}");

    // What the API holds, read from its own state.
    {
        let a = api.lock().unwrap();
        assert_eq!(a.tokens_issued, 1, "one token serves the whole run");
        let live: Vec<&Product> = a.products.values().filter(|p| !p.cancelled).collect();
        let mcr = live
            .iter()
            .find(|p| p.body["productType"] == "MCR2")
            .unwrap();
        assert_eq!(
            (
                &mcr.body["portSpeed"],
                &mcr.body["resources"]["virtual_router"]["mcrASN"],
                status(mcr)
            ),
            (&json!(10000), &json!(133937), "LIVE")
        );
        let mut vxcs: Vec<(String, u64, u64, String)> = live
            .iter()
            .filter(|p| p.body["productType"] == "VXC")
            .map(|p| {
                let csp = &p.body["resources"]["csp_connection"][1];
                (
                    p.body["productName"].as_str().unwrap().to_string(),
                    p.body["rateLimit"].as_u64().unwrap(),
                    p.body["aEnd"]["vlan"].as_u64().unwrap(),
                    csp["connectType"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        vxcs.sort();
        assert_eq!(
            vxcs,
            [
                ("vxc-aws-dx".into(), 5000, 100, "AWSHC".into()),
                ("vxc-azure-er".into(), 2000, 200, "AZURE".into()),
                ("vxc-gcp-pi".into(), 2000, 300, "GOOGLE".into()),
            ]
        );
        // Each VXC's import filter is an MCR prefix list with the topology's prefixes.
        let lists: Vec<Vec<&str>> = a
            .prefix_lists
            .values()
            .map(|(_, l)| {
                l["entries"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|e| e["prefix"].as_str().unwrap())
                    .collect()
            })
            .collect();
        assert!(
            lists.contains(&vec!["10.0.0.0/16", "10.10.0.0/16", "10.100.0.0/16"]),
            "{lists:?}"
        );
    }
    // The sim's ExpressRoute service key went into the Azure VXC's order.
    let have = providers.observe(&owner).await.unwrap();
    let er_key = have
        .iter()
        .find(|o| o.id == "interconnect-gateway/vxc-azure-er")
        .unwrap()
        .outputs["serviceKey"]
        .clone();
    let vxc = have.iter().find(|o| o.id == "vxc/vxc-azure-er").unwrap();
    assert_eq!(vxc.outputs["service_key"], er_key);

    // Lower a rate limit: an in-place PUT, no new order, the same product.
    let before = have
        .iter()
        .find(|o| o.id == "vxc/vxc-aws-dx")
        .unwrap()
        .cloud_id
        .clone();
    let buys = api
        .lock()
        .unwrap()
        .log
        .iter()
        .filter(|l| *l == "POST buy")
        .count();
    t.spec.interconnect.vxcs[0].rate_limit_mbps = 1000;
    let p = replan(t.clone()).await;
    assert_eq!(p.actions.len(), 1, "{p}");
    assert_eq!(
        (p.actions[0].op, p.actions[0].resource.as_str()),
        (Op::Update, "vxc/vxc-aws-dx")
    );
    let r = apply(&p, &owner, &providers, &opts(), Arc::new(|_: &_| {})).await;
    assert!(r.ok(), "{r:?}");
    {
        let a = api.lock().unwrap();
        assert_eq!(a.log.iter().filter(|l| *l == "POST buy").count(), buys);
        assert!(a.log.contains(&format!("PUT vxc {before}")));
        assert_eq!(a.products[before.as_str()].body["rateLimit"], 1000);
    }
    assert!(replan(t.clone()).await.is_empty());

    // A no-op plan's calls against the API.
    let calls = megaport.api_calls();
    megaport.observe(&owner).await.unwrap();
    eprintln!(
        "no-op observe against the Megaport API: {} calls",
        megaport.api_calls() - calls
    );

    // Destroy: every product cancelled, VXCs before the MCR.
    let have = providers.observe(&owner).await.unwrap();
    let p = plan("adr-003", &scopes, &[], &have);
    let r = apply(&p, &owner, &providers, &opts(), Arc::new(|_: &_| {})).await;
    assert!(r.ok(), "{r:?}");
    assert!(api.lock().unwrap().products.values().all(|p| p.cancelled));
}

#[tokio::test]
async fn bad_credentials_and_bad_orders_are_clear_errors() {
    let (url, _api) = serve().await;
    let owner = Owner {
        topology: "t".into(),
    };
    let wrong = MegaportProvider::new(config(&url, "not-the-secret")).unwrap();
    let e = wrong.observe(&owner).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Auth);
    assert!(e.message.contains("refused the client credentials"), "{e}");

    // An MCR speed the location does not offer: the API's validation says so.
    let p = MegaportProvider::new(config(&url, SECRET)).unwrap();
    let mcr = mcnet_core::reconcile::Desired {
        id: "router/r".parse().unwrap(),
        scope: Scope::Megaport,
        spec: mcnet_core::reconcile::Spec::Router {
            name: "r".into(),
            location_id: 1,
            speed_mbps: 25000,
            asn: 133937,
            diversity_zone: None,
            term_months: 12,
        },
    };
    let known = BTreeMap::new();
    let e = p
        .create(
            &owner,
            &mcr,
            mcnet_core::reconcile::Refs::new(Scope::Megaport, &known),
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Invalid);
    assert!(
        e.message.contains("25000") && e.message.contains("router/r"),
        "{e}"
    );
    let q = mcnet_core::reconcile::InterconnectProvider::validate(
        &p,
        &mcr,
        mcnet_core::reconcile::Refs::new(Scope::Megaport, &known),
    )
    .await
    .unwrap();
    assert_eq!((q.monthly_rate, q.currency.as_str()), (900.0, "USD"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hosted_vif_vxc_carries_the_vifs_bgp_and_names_the_vif() {
    let (url, api) = serve().await;
    let dir = temp_dir("mp-vif");
    let mut t = adr003();
    for v in &mut t.spec.interconnect.vxcs {
        if v.target.kind == mcnet_core::topology::VxcTargetKind::AwsDirectConnect {
            v.target.aws_connection = Some(mcnet_core::topology::AwsConnection::HostedVif);
        }
    }
    let (sim, megaport) = sim_and_megaport(&dir.0, &url);
    let providers = Providers::default()
        .with(sim.provider(Scope::Azure))
        .with(sim.provider(Scope::Gcp))
        .with(megaport.clone());
    let owner = Owner {
        topology: "adr-003".into(),
    };
    // Megaport and the clouds it needs keys from; AWS (which accepts the
    // VIF afterwards) is the Direct Connect test's business.
    let scopes: BTreeSet<Scope> = [Scope::Azure, Scope::Gcp, Scope::Megaport].into();
    let want = desired(&t, &scopes).unwrap();
    let have = providers.observe(&owner).await.unwrap();
    let p = plan("adr-003", &scopes, &want, &have);
    let r = apply(&p, &owner, &providers, &opts(), Arc::new(|_: &_| {})).await;
    assert!(r.ok(), "{r:?}");
    let have = providers.observe(&owner).await.unwrap();
    assert!(plan("adr-003", &scopes, &want, &have).is_empty());
    let vxc = have.iter().find(|o| o.id == "vxc/vxc-aws-dx").unwrap();
    assert!(vxc.outputs["vifId"].starts_with("dxvif-"), "{vxc:?}");
    let a = api.lock().unwrap();
    let csp = a
        .products
        .values()
        .find(|p| p.body["productName"] == "vxc-aws-dx")
        .map(|p| p.body["resources"]["csp_connection"][1].clone())
        .unwrap();
    assert_eq!(csp["connectType"], "AWS");
    assert_eq!(csp["asn"], 133937, "the MCR is the customer side");
    assert_eq!(csp["amazonAsn"], 64512);
    assert_eq!(csp["customer_address"], "169.254.100.1/30");
    assert_eq!(csp["amazon_address"], "169.254.100.2/30");
}

/// Megaport products carry their owner only in the cost centre: a
/// topology named `prod:x` (or `prod-x`) is not `prod`'s, so destroying
/// `prod` cancels none of its MCRs or VXCs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destroying_prod_never_cancels_prod_colon_x_or_prod_dash_x_products() {
    for theirs in ["prod:x", "prod-x"] {
        let (url, api) = serve().await;
        let dir = temp_dir("megaport-owner");
        let (sim, megaport) = sim_and_megaport(&dir.0, &url);
        let providers = Providers::default()
            .with(sim.provider(Scope::Aws))
            .with(sim.provider(Scope::Azure))
            .with(sim.provider(Scope::Gcp))
            .with(megaport);
        support::rig::destroy_of_prod_spares(&adr003(), theirs, providers).await;
        let a = api.lock().unwrap();
        assert!(
            a.products.values().all(|p| !p.cancelled),
            "{theirs}: a product was cancelled"
        );
        assert!(!a.products.is_empty());
    }
}
