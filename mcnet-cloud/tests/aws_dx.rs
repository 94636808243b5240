//! Direct Connect through the AWS provider: EC2 on moto's server, and Direct
//! Connect on a local stateful **mock** of its JSON API, since moto has no
//! Direct Connect and no AWS account is reachable from here.
//!
//! The mock speaks the wire protocol the SDK uses (AWS JSON 1.1, operations
//! named by `X-Amz-Target: OvertureService.<Operation>`, errors as
//! `__type`), requires a SigV4 `Authorization` header, and keeps the rules
//! that matter: gateways and associations that are pending first, hosted
//! connections that must be confirmed before a VIF goes on them, a VIF's
//! VLAN that must be the hosted connection's, and gateways that cannot be
//! deleted while anything is associated or attached.
//!
//! adr-003 is applied with AWS on moto and the mock, and Azure, GCP and
//! Megaport on the embedded sim. The sim's VXC names a hosted connection;
//! the test, standing in for Megaport, creates that connection in the mock.

// The mock's handlers return an axum Response as their error.
#![allow(clippy::result_large_err)]

#[path = "support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use mcnet_cloud::connect::aws::AwsProvider;
use mcnet_cloud::connect::sim::{SimCloud, SimConfig};
use mcnet_core::reconcile::{Op, Providers, ResourceId, ResourceProvider, Scope, Spec};
use mcnet_core::topology::{AwsConnection, VxcTargetKind};
use serde_json::{json, Value};
use support::moto::moto;
use support::rig::{example, Rig, TempDir};

const ACCOUNT: &str = "123456789012";

#[derive(Default)]
struct Dx {
    gateways: BTreeMap<String, Value>,
    associations: BTreeMap<String, Value>,
    connections: BTreeMap<String, Value>,
    vifs: BTreeMap<String, Value>,
    n: u32,
    calls: Vec<String>,
}

type Shared = Arc<Mutex<Dx>>;

fn client_error(message: String) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"__type": "DirectConnectClientException", "message": message})),
    )
        .into_response()
}

/// Moves pending things on by one step per read, as AWS does over minutes.
fn step(v: &mut Value, field: &str, from: &str, to: &str) {
    if v[field] == from {
        v[field] = json!(to);
    }
}

impl Dx {
    fn id(&mut self, prefix: &str) -> String {
        self.n += 1;
        format!("{prefix}{:08x}", self.n.wrapping_mul(2_654_435_761))
    }

    fn call(&mut self, op: &str, b: &Value) -> Result<Value, Response> {
        let s = |k: &str| b[k].as_str().unwrap_or_default().to_string();
        match op {
            "DescribeDirectConnectGateways" => {
                let out: Vec<Value> = self.gateways.values().cloned().collect();
                for g in self.gateways.values_mut() {
                    step(g, "directConnectGatewayState", "pending", "available");
                }
                Ok(json!({"directConnectGateways": out}))
            }
            "CreateDirectConnectGateway" => {
                let asn = b["amazonSideAsn"].as_i64().unwrap_or(64512);
                if !(64512..=65534).contains(&asn)
                    && !(4_200_000_000..=4_294_967_294).contains(&asn)
                {
                    return Err(client_error(format!(
                        "amazonSideAsn {asn} is not a private ASN"
                    )));
                }
                let id = format!("{}-0000-4000-8000-000000000000", self.id(""));
                let g = json!({
                    "directConnectGatewayId": id,
                    "directConnectGatewayName": s("directConnectGatewayName"),
                    "amazonSideAsn": asn,
                    "ownerAccount": ACCOUNT,
                    "directConnectGatewayState": "pending",
                    "tags": b["tags"],
                });
                self.gateways.insert(id, g.clone());
                Ok(json!({"directConnectGateway": g}))
            }
            "DeleteDirectConnectGateway" => {
                let id = s("directConnectGatewayId");
                if !self.gateways.contains_key(&id) {
                    return Err(client_error(format!(
                        "Direct Connect gateway {id} does not exist"
                    )));
                }
                let busy = self
                    .associations
                    .values()
                    .any(|a| a["directConnectGatewayId"] == id.as_str())
                    || self
                        .vifs
                        .values()
                        .any(|v| v["directConnectGatewayId"] == id.as_str());
                if busy {
                    return Err(client_error(format!(
                        "Direct Connect gateway {id} has virtual interfaces or gateway associations"
                    )));
                }
                let g = self.gateways.remove(&id).unwrap();
                Ok(json!({"directConnectGateway": g}))
            }
            "DescribeDirectConnectGatewayAssociations" => {
                let id = s("directConnectGatewayId");
                let out: Vec<Value> = self
                    .associations
                    .values()
                    .filter(|a| a["directConnectGatewayId"] == id.as_str())
                    .cloned()
                    .collect();
                for a in self.associations.values_mut() {
                    step(a, "associationState", "associating", "associated");
                }
                Ok(json!({"directConnectGatewayAssociations": out}))
            }
            "CreateDirectConnectGatewayAssociation" => {
                let (gid, vgw) = (s("directConnectGatewayId"), s("gatewayId"));
                if !self.gateways.contains_key(&gid) || !vgw.starts_with("vgw-") {
                    return Err(client_error(format!("cannot associate {vgw} with {gid}")));
                }
                if self
                    .associations
                    .values()
                    .any(|a| a["associatedGateway"]["id"] == vgw.as_str())
                {
                    return Err(client_error(format!("{vgw} is already associated")));
                }
                let id = format!("{}-a000-4000-8000-000000000000", self.id(""));
                let a = json!({
                    "directConnectGatewayId": gid,
                    "associationId": id,
                    "associationState": "associating",
                    "associatedGateway": {"id": vgw, "type": "virtualPrivateGateway", "ownerAccount": ACCOUNT, "region": "us-east-1"},
                    "virtualGatewayId": vgw,
                });
                self.associations.insert(id, a.clone());
                Ok(json!({"directConnectGatewayAssociation": a}))
            }
            "DeleteDirectConnectGatewayAssociation" => {
                let id = s("associationId");
                match self.associations.remove(&id) {
                    Some(mut a) => {
                        a["associationState"] = json!("disassociating");
                        Ok(json!({"directConnectGatewayAssociation": a}))
                    }
                    None => Err(client_error(format!("association {id} does not exist"))),
                }
            }
            "DescribeConnections" => {
                let id = s("connectionId");
                match self.connections.get_mut(&id) {
                    Some(c) => {
                        let out = c.clone();
                        step(c, "connectionState", "pending", "available");
                        Ok(json!({"connections": [out]}))
                    }
                    None => Err(client_error(format!("Connection {id} does not exist"))),
                }
            }
            "ConfirmConnection" => {
                let id = s("connectionId");
                match self.connections.get_mut(&id) {
                    Some(c) if c["connectionState"] == "ordering" => {
                        c["connectionState"] = json!("pending");
                        Ok(json!({"connectionState": "pending"}))
                    }
                    Some(c) => Err(client_error(format!(
                        "Connection {id} is {} and cannot be confirmed",
                        c["connectionState"]
                    ))),
                    None => Err(client_error(format!("Connection {id} does not exist"))),
                }
            }
            "ConfirmPrivateVirtualInterface" => {
                let (vid, gw) = (s("virtualInterfaceId"), s("directConnectGatewayId"));
                if !self.gateways.contains_key(&gw) {
                    return Err(client_error(format!(
                        "Direct Connect gateway {gw} does not exist"
                    )));
                }
                match self.vifs.get_mut(&vid) {
                    Some(v) if v["virtualInterfaceState"] == "confirming" => {
                        v["virtualInterfaceState"] = json!("pending");
                        v["directConnectGatewayId"] = json!(gw);
                        Ok(json!({"virtualInterfaceState": "pending"}))
                    }
                    Some(_) => Err(client_error(format!(
                        "Virtual interface {vid} is not awaiting confirmation"
                    ))),
                    None => Err(client_error(format!(
                        "Virtual interface {vid} does not exist"
                    ))),
                }
            }
            "TagResource" => {
                let arn = s("resourceArn");
                let vid = arn.rsplit('/').next().unwrap_or_default();
                if !arn.starts_with(&format!("arn:aws:directconnect:us-east-1:{ACCOUNT}:dxvif/")) {
                    return Err(client_error(format!(
                        "{arn} is not a VIF ARN in this account"
                    )));
                }
                let Some(v) = self.vifs.get_mut(vid) else {
                    return Err(client_error(format!("Resource {arn} does not exist")));
                };
                let mut tags = v["tags"].as_array().cloned().unwrap_or_default();
                for t in b["tags"].as_array().into_iter().flatten() {
                    tags.retain(|x| x["key"] != t["key"]);
                    tags.push(t.clone());
                }
                v["tags"] = json!(tags);
                Ok(json!({}))
            }
            "DescribeVirtualInterfaces" => {
                if let Some(vid) = b["virtualInterfaceId"].as_str() {
                    return match self.vifs.get(vid) {
                        Some(v) => Ok(json!({"virtualInterfaces": [v]})),
                        None => Err(client_error(format!(
                            "Virtual interface {vid} does not exist"
                        ))),
                    };
                }
                let out: Vec<Value> = self.vifs.values().cloned().collect();
                for v in self.vifs.values_mut() {
                    step(v, "virtualInterfaceState", "pending", "available");
                }
                Ok(json!({"virtualInterfaces": out}))
            }
            "CreatePrivateVirtualInterface" => {
                let conn = s("connectionId");
                let n = &b["newPrivateVirtualInterface"];
                let Some(c) = self.connections.get(&conn) else {
                    return Err(client_error(format!("Connection {conn} does not exist")));
                };
                if c["connectionState"] == "ordering" {
                    return Err(client_error(format!(
                        "Connection {conn} has not been confirmed"
                    )));
                }
                if n["vlan"] != c["vlan"] {
                    return Err(client_error(format!(
                        "VLAN {} does not match the hosted connection's VLAN {}",
                        n["vlan"], c["vlan"]
                    )));
                }
                let gw = n["directConnectGatewayId"].as_str().unwrap_or_default();
                if !self.gateways.contains_key(gw) || n["asn"].as_i64().is_none() {
                    return Err(client_error(
                        "a private VIF needs an asn and an existing gateway".into(),
                    ));
                }
                let id = self.id("dxvif-");
                let v = json!({
                    "ownerAccount": ACCOUNT,
                    "virtualInterfaceId": id,
                    "connectionId": conn,
                    "virtualInterfaceType": "private",
                    "virtualInterfaceName": n["virtualInterfaceName"],
                    "vlan": n["vlan"],
                    "asn": n["asn"],
                    "amazonAddress": n["amazonAddress"],
                    "customerAddress": n["customerAddress"],
                    "addressFamily": n["addressFamily"],
                    "virtualInterfaceState": "pending",
                    "directConnectGatewayId": gw,
                    "tags": n["tags"],
                });
                self.vifs.insert(id, v.clone());
                Ok(v)
            }
            "DeleteVirtualInterface" => {
                let id = s("virtualInterfaceId");
                match self.vifs.remove(&id) {
                    Some(_) => Ok(json!({"virtualInterfaceState": "deleting"})),
                    None => Err(client_error(format!(
                        "Virtual interface {id} does not exist"
                    ))),
                }
            }
            other => Err(client_error(format!(
                "operation {other} is not in this mock"
            ))),
        }
    }
}

async fn endpoint(State(dx): State<Shared>, h: HeaderMap, body: Bytes) -> Response {
    let header = |k: &str| h.get(k).and_then(|v| v.to_str().ok()).unwrap_or_default();
    if !header("authorization").starts_with("AWS4-HMAC-SHA256 Credential=") {
        return (
            StatusCode::FORBIDDEN,
            Json(json!({"__type": "MissingAuthenticationTokenException", "message": "Missing Authentication Token"})),
        )
            .into_response();
    }
    let Some(op) = header("x-amz-target").strip_prefix("OvertureService.") else {
        return client_error("X-Amz-Target must name an OvertureService operation".into());
    };
    let b: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let mut d = dx.lock().unwrap();
    d.calls.push(op.to_string());
    match d.call(op, &b) {
        Ok(v) => (
            [("content-type", "application/x-amz-json-1.1")],
            v.to_string(),
        )
            .into_response(),
        Err(r) => r,
    }
}

async fn serve() -> (String, Shared) {
    let state: Shared = Arc::default();
    let app = Router::new()
        .route("/", post(endpoint))
        .with_state(Arc::clone(&state));
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    (url, state)
}

/// adr-003 with AWS on moto and this mock, and Azure, GCP and Megaport on
/// the sim; its Direct Connect VXC as a hosted VIF when `hosted_vif`.
struct World {
    rig: Rig,
    dx: Shared,
    aws: Arc<AwsProvider>,
    _moto: support::moto::Moto,
    _dir: TempDir,
}

async fn world(hosted_vif: bool) -> Option<World> {
    let (moto, moto_url) = moto()?;
    for (k, v) in [
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_REGION", "us-east-1"),
    ] {
        // The standard credential chain reads these (the same in each test).
        std::env::set_var(k, v);
    }
    let (dx_url, dx) = serve().await;
    let dir = TempDir::new("dx");
    let sim = SimCloud::with_config(
        &dir.0,
        SimConfig {
            step_ms: 10,
            ..SimConfig::default()
        },
    );
    let aws = Arc::new(
        AwsProvider::new(vec!["us-east-1".into()], Some(moto_url))
            .await
            .with_direct_connect_endpoint(dx_url),
    );
    let mut t = example("adr-003.yaml");
    if hosted_vif {
        for v in &mut t.spec.interconnect.vxcs {
            if v.target.kind == VxcTargetKind::AwsDirectConnect {
                v.target.aws_connection = Some(AwsConnection::HostedVif);
            }
        }
    }
    let mut rig = Rig::new(
        t,
        Providers::default()
            .with(aws.clone())
            .with(sim.provider(Scope::Azure))
            .with(sim.provider(Scope::Gcp))
            .with(sim.provider(Scope::Megaport)),
    );
    // moto 5.2 has no EnableVgwRoutePropagation (it answers 500, "not
    // implemented"), so the route tables here skip propagation.
    rig.adjust = |want| {
        for d in want {
            if let Spec::RouteTable {
                propagating_gateways,
                ..
            } = &mut d.spec
            {
                propagating_gateways.clear();
            }
        }
    };
    Some(World {
        rig,
        dx,
        aws,
        _moto: moto,
        _dir: dir,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adr003_direct_connect_gateway_and_vif_ride_on_the_vxcs_hosted_connection() {
    let Some(w) = world(false).await else {
        return;
    };
    let (rig, dx, aws) = (&w.rig, &w.dx, &w.aws);

    // First apply: all but the VIF, whose hosted connection Megaport has
    // not made in this account yet (the sim's VXC cannot reach the mock).
    let r = rig.converge().await;
    assert_eq!(r.failed.len(), 1, "{r:?}");
    let f = &r.failed[0];
    assert_eq!(f.resource, "interconnect-attachment/vxc-aws-dx");
    assert!(f.error.contains("not visible to this AWS account"), "{f:?}");

    // Megaport's side: the hosted connection the sim's VXC names appears in
    // the account, waiting to be confirmed.
    let conn = rig.find("vxc/vxc-aws-dx").await.outputs["connectionId"].clone();
    dx.lock().unwrap().connections.insert(
        conn.clone(),
        json!({"connectionId": conn, "connectionState": "ordering", "vlan": 1234,
               "ownerAccount": ACCOUNT, "partnerName": "Megaport", "bandwidth": "5Gbps"}),
    );

    let r = rig.converge().await;
    assert!(r.ok(), "{r:?}");
    let again = rig.plan().await;
    assert!(again.is_empty(), "{again}");

    // Checked on the mock's own state and against moto's VGWs.
    let seen = rig.observe().await;
    let vgw = |n: &str| {
        seen.iter()
            .find(|o| o.id == ResourceId::vpn_gateway(n))
            .unwrap()
            .cloud_id
            .clone()
    };
    {
        let d = dx.lock().unwrap();
        assert_ne!(
            d.connections[&conn]["connectionState"], "ordering",
            "confirmed"
        );
        assert_eq!(d.gateways.len(), 1);
        let g = d.gateways.values().next().unwrap();
        assert_eq!(g["amazonSideAsn"], 64512);
        assert!(g["tags"]
            .as_array()
            .unwrap()
            .contains(&json!({"key": "mcnet.io/id", "value": "interconnect-gateway/vxc-aws-dx"})));
        let mut assoc: Vec<String> = d
            .associations
            .values()
            .map(|a| a["associatedGateway"]["id"].as_str().unwrap().to_string())
            .collect();
        assoc.sort();
        let mut want = vec![vgw("aws-vpc"), vgw("monitoring-vpc")];
        want.sort();
        assert_eq!(assoc, want);
        assert_eq!(d.vifs.len(), 1);
        let v = d.vifs.values().next().unwrap();
        assert_eq!(v["vlan"], 1234, "the hosted connection's VLAN");
        assert_eq!(v["asn"], 133937, "the MCR's ASN");
        assert_eq!(v["customerAddress"], "169.254.100.1/30");
        assert_eq!(v["amazonAddress"], "169.254.100.2/30");
        assert_eq!(v["directConnectGatewayId"], g["directConnectGatewayId"]);
    }

    // A no-op plan's Direct Connect calls: gateways, each gateway's
    // associations, and the VIFs.
    let before = dx.lock().unwrap().calls.len();
    let _ = rig.plan().await;
    let calls = dx.lock().unwrap().calls.len() - before;
    println!("direct connect no-op observe: {calls} API calls");
    assert_eq!(calls, 3);

    // Drift: an association removed by hand comes back, in place.
    {
        let mut d = dx.lock().unwrap();
        let k = d
            .associations
            .iter()
            .find(|(_, a)| a["associatedGateway"]["id"] == vgw("monitoring-vpc").as_str())
            .map(|(k, _)| k.clone())
            .unwrap();
        d.associations.remove(&k);
    }
    let p = rig.plan().await;
    assert_eq!(p.actions.len(), 1, "{p}");
    assert_eq!(p.actions[0].op, Op::Update);
    assert_eq!(p.actions[0].resource, "interconnect-gateway/vxc-aws-dx");
    let r = rig.apply(&p).await;
    assert!(r.ok(), "{r:?}");
    assert!(rig.plan().await.is_empty());
    assert_eq!(dx.lock().unwrap().associations.len(), 2);

    // Destroy: the VIF, the associations and the gateway all go.
    let r = rig.destroy().await;
    assert!(r.ok(), "{r:?}");
    {
        let d = dx.lock().unwrap();
        assert!(d.vifs.is_empty() && d.associations.is_empty() && d.gateways.is_empty());
    }
    assert!(aws.observe(&rig.owner).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hosted_vif_is_accepted_onto_the_gateway_and_tagged() {
    let Some(w) = world(true).await else {
        return;
    };
    let (rig, dx) = (&w.rig, &w.dx);
    let r = rig.converge().await;
    assert_eq!(r.failed.len(), 1, "{r:?}");
    assert!(r.failed[0].error.contains("hosted VIF"), "{r:?}");

    // Megaport's side: the VIF the sim's VXC names appears in the account,
    // awaiting confirmation, with no mcnet tags.
    let vid = rig.find("vxc/vxc-aws-dx").await.outputs["vifId"].clone();
    dx.lock().unwrap().vifs.insert(
        vid.clone(),
        json!({"virtualInterfaceId": vid, "ownerAccount": ACCOUNT, "virtualInterfaceType": "private",
               "vlan": 1234, "asn": 133937, "virtualInterfaceState": "confirming", "tags": []}),
    );
    let r = rig.converge().await;
    assert!(r.ok(), "{r:?}");
    let again = rig.plan().await;
    assert!(again.is_empty(), "{again}");
    {
        let d = dx.lock().unwrap();
        let v = &d.vifs[&vid];
        let gw = d.gateways.keys().next().unwrap();
        assert_eq!(
            v["directConnectGatewayId"],
            gw.as_str(),
            "accepted onto the gateway"
        );
        assert_ne!(v["virtualInterfaceState"], "confirming");
        assert!(v["tags"].as_array().unwrap().contains(
            &json!({"key": "mcnet.io/id", "value": "interconnect-attachment/vxc-aws-dx"})
        ));
    }
    assert!(rig.destroy().await.ok());
    let d = dx.lock().unwrap();
    assert!(d.vifs.is_empty() && d.gateways.is_empty());
}
