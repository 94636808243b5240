//! The GCP provider against a local, stateful stand-in for the Compute
//! Engine API (a **mock** of the service, since no Google Cloud project can
//! be reached from here; see `support/gcp_mock.rs` for the rules it keeps).
//!
//! adr-003 is applied with GCP on this server and AWS, Azure and Megaport on
//! the embedded sim, so the attachment's pairing key feeds the sim's VXC.

#[path = "support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::sync::Arc;

use mcnet_cloud::connect::gcp::{GcpConfig, GcpProvider};
use mcnet_cloud::connect::sim::{SimCloud, SimConfig};
use mcnet_core::reconcile::{ErrorKind, Op, Providers, ResourceProvider, Scope};
use mcnet_core::topology::Topology;
use serde_json::json;
use support::gcp_mock::{serve, PROJECT, TOKEN};
use support::rig::{example, Rig, TempDir};

fn config(url: &str, token: &str) -> GcpConfig {
    GcpConfig {
        compute_url: format!("{url}/compute/v1"),
        project: PROJECT.into(),
        access_token: token.into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adr003_gcp_part_applies_over_compute_with_the_pairing_key_feeding_the_vxc() {
    let (url, gcp_api) = serve().await;
    let dir = TempDir::new("gcp");
    let sim = SimCloud::with_config(
        &dir.0,
        SimConfig {
            step_ms: 10,
            ..SimConfig::default()
        },
    );
    let gcp = Arc::new(GcpProvider::new(config(&url, TOKEN)).unwrap());
    let rig = Rig::new(
        example("adr-003.yaml"),
        Providers::default()
            .with(sim.provider(Scope::Aws))
            .with(sim.provider(Scope::Azure))
            .with(gcp.clone())
            .with(sim.provider(Scope::Megaport)),
    );
    let p = rig.plan().await;
    let gcp_steps = p
        .actions
        .iter()
        .filter(|a| a.provider == Scope::Gcp)
        .count();
    assert_eq!(gcp_steps, 4, "{p}");
    let r = rig.apply(&p).await;
    assert!(r.ok(), "{r:?}");
    let again = rig.plan().await;
    assert!(again.is_empty(), "{again}");

    // The pairing key went from the attachment to the sim's VXC; the
    // partner (the test, standing in for Megaport) activates it with that key.
    let att = rig.find("interconnect-attachment/vxc-gcp-pi").await;
    assert_eq!(att.outputs["status"], "PENDING_PARTNER");
    let key = att.outputs["pairingKey"].clone();
    let vxc = rig.find("vxc/vxc-gcp-pi").await;
    assert_eq!(vxc.outputs.get("partnerKey"), Some(&key), "{vxc:?}");
    {
        let mut c = gcp_api.lock().unwrap();
        let a = c
            .res
            .values_mut()
            .find(|v| v["pairingKey"] == key.as_str())
            .expect("the VXC's key is the attachment's");
        a["state"] = json!("ACTIVE");
    }
    let att = rig.find("interconnect-attachment/vxc-gcp-pi").await;
    assert_eq!(att.outputs["status"], "ACTIVE");
    assert!(rig.plan().await.is_empty());

    // Checked on the server's own state.
    {
        let c = gcp_api.lock().unwrap();
        let n = &c.res[&format!("projects/{PROJECT}/global/networks/network-gcp-vpc")];
        assert_eq!(n["autoCreateSubnetworks"], false);
        assert_eq!(
            n["description"],
            "mcnet:adr-003:network/gcp-vpc;region=us-east4;cidrs=10.2.0.0/16"
        );
        let sn = &c.res
            [&format!("projects/{PROJECT}/regions/us-east4/subnetworks/subnet-gcp-vpc-gke-nodes")];
        assert_eq!(sn["ipCidrRange"], "10.2.0.0/20");
        let router = &c.res[&format!(
            "projects/{PROJECT}/regions/us-east4/routers/interconnect-gateway-vxc-gcp-pi"
        )];
        assert_eq!(router["bgp"]["asn"], 16550);
    }

    let before = gcp.api_calls();
    let _ = rig.plan().await;
    let calls = gcp.api_calls() - before;
    println!("gcp no-op observe: {calls} API calls");
    assert!((4..=6).contains(&calls), "{calls}");

    let r = rig.destroy().await;
    assert!(r.ok(), "{r:?}");
    let left: Vec<String> = gcp_api.lock().unwrap().res.keys().cloned().collect();
    assert!(left.is_empty(), "leaked: {left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peering_needs_both_halves_and_bad_input_is_named() {
    let (url, gcp_api) = serve().await;
    let t = Topology::from_str_strict(
        r#"
apiVersion: mcnet.io/v1alpha1
kind: Topology
metadata: {name: pair}
spec:
  providers:
    - {name: gcp, kind: gcp, regions: [us-east4, europe-west1]}
  networks:
    - {name: left, provider: gcp, region: us-east4, cidrs: [10.70.0.0/16], subnets: [{name: l, cidr: 10.70.0.0/24}]}
    - {name: right, provider: gcp, region: europe-west1, cidrs: [10.80.0.0/16], subnets: [{name: r, cidr: 10.80.0.0/24}]}
  peerings:
    - {name: left-right, kind: network-peering, networks: [left, right]}
"#,
    )
    .unwrap();
    let gcp = Arc::new(GcpProvider::new(config(&url, TOKEN)).unwrap());
    let rig = Rig::new(t, Providers::default().with(gcp.clone()));
    let r = rig.converge().await;
    assert!(r.ok(), "{r:?}");
    assert_eq!(
        rig.find("peering/left-right").await.outputs["status"],
        "ACTIVE"
    );
    assert!(rig.plan().await.is_empty());

    // Someone removes the accepter's half: ours goes INACTIVE, and the
    // apply adds the half back in place.
    {
        let mut c = gcp_api.lock().unwrap();
        let right = format!("projects/{PROJECT}/global/networks/network-right");
        c.res.get_mut(&right).unwrap()["peerings"] = json!([]);
        c.settle();
    }
    let p = rig.plan().await;
    assert_eq!(p.actions.len(), 1, "{p}");
    assert_eq!(p.actions[0].op, Op::Update, "{p}");
    let r = rig.apply(&p).await;
    assert!(r.ok(), "{r:?}");
    assert!(rig.plan().await.is_empty());

    // A bad token is an auth error; the token itself is never printed.
    let bad = GcpProvider::new(config(&url, "ya29.wrong")).unwrap();
    let e = bad.observe(&rig.owner).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Auth, "{e}");
    assert!(!e.to_string().contains("ya29.wrong"));

    // A Cloud Router for Partner Interconnect must be AS 16550: refused
    // before any call, naming the resource.
    let d = mcnet_core::reconcile::Desired {
        id: "interconnect-gateway/x".parse().unwrap(),
        scope: Scope::Gcp,
        spec: mcnet_core::reconcile::Spec::InterconnectGateway {
            region: "us-east4".into(),
            asn: 65000,
            bandwidth_mbps: None,
            network: Some("network/left".into()),
            associations: vec![],
        },
    };
    let known = BTreeMap::new();
    let e = gcp
        .create(
            &rig.owner,
            &d,
            mcnet_core::reconcile::Refs::new(Scope::Gcp, &known),
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Invalid);
    assert!(
        e.message.contains("interconnect-gateway/x") && e.message.contains("16550"),
        "{e}"
    );

    let r = rig.destroy().await;
    assert!(r.ok(), "{r:?}");
    assert!(gcp_api.lock().unwrap().res.is_empty());
}

/// Private Service Connect: an internal address from the endpoint's subnet
/// and a forwarding rule of the same name from it to the service
/// attachment. It re-plans to nothing, moves to another subnet by being
/// made anew, refuses an attachment in another region by name, and leaves
/// neither rule nor address behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_service_connect_endpoints_reach_service_attachments() {
    let (url, gcp_api) = serve().await;
    let topology = |subnet: &str, region: &str, attachment: &str| {
        Topology::from_str_strict(&format!(
            "apiVersion: mcnet.io/v1alpha1\nkind: Topology\nmetadata: {{name: psc}}\nspec:\n  providers: [{{name: gcp, kind: gcp, regions: [us-east4]}}]\n  networks:\n    - {{name: vpc, provider: gcp, region: us-east4, cidrs: [10.70.0.0/16], subnets: [{{name: apps, cidr: 10.70.0.0/24}}, {{name: psc, cidr: 10.70.9.0/28}}]}}\n  privateEndpoints:\n    - {{name: db, network: vpc, service: projects/producer/regions/{region}/serviceAttachments/{attachment}, subnets: [{subnet}]}}\n"
        ))
        .unwrap()
    };
    let gcp = Arc::new(GcpProvider::new(config(&url, TOKEN)).unwrap());
    let mut rig = Rig::new(
        topology("psc", "us-east4", "db"),
        Providers::default().with(gcp.clone()),
    );
    let r = rig.converge().await;
    assert!(r.ok(), "{r:?}");
    assert!(rig.plan().await.is_empty(), "{}", rig.plan().await);
    let pe = rig.find("private-endpoint/db").await;
    assert_eq!(
        (pe.outputs["ip"].as_str(), pe.outputs["status"].as_str()),
        ("10.70.9.2", "ACCEPTED"),
        "{pe:?}"
    );
    {
        let c = gcp_api.lock().unwrap();
        let rule = &c.res
            [&format!("projects/{PROJECT}/regions/us-east4/forwardingRules/private-endpoint-db")];
        assert!(rule["target"]
            .as_str()
            .unwrap()
            .ends_with("/projects/producer/regions/us-east4/serviceAttachments/db"));
        assert_eq!(rule["description"], "mcnet:psc:private-endpoint/db");
        let address =
            &c.res[&format!("projects/{PROJECT}/regions/us-east4/addresses/private-endpoint-db")];
        assert!(address["subnetwork"]
            .as_str()
            .unwrap()
            .ends_with("/subnetworks/subnet-vpc-psc"));
    }

    // Another subnet: a new address there, and a new rule through it.
    rig.topology = topology("apps", "us-east4", "db");
    let r = rig.converge().await;
    assert!(r.ok(), "{r:?}");
    assert!(rig.plan().await.is_empty(), "{}", rig.plan().await);
    assert_eq!(
        rig.find("private-endpoint/db").await.outputs["ip"],
        "10.70.0.2"
    );

    // An attachment in another region is refused before any call, naming
    // the endpoint.
    rig.topology = topology("apps", "europe-west1", "db");
    let r = rig.converge().await;
    assert!(!r.ok());
    let msg = format!("{r:?}");
    assert!(
        msg.contains("private-endpoint/db") && msg.contains("europe-west1"),
        "{msg}"
    );
    // An attachment the API does not know: the rule is refused, and the
    // address made for it goes too.
    rig.topology = topology("psc", "us-east4", "missing-db");
    let r = rig.converge().await;
    assert!(!r.ok());
    assert!(format!("{r:?}").contains("missing-db"), "{r:?}");
    let addresses: Vec<String> = gcp_api
        .lock()
        .unwrap()
        .res
        .keys()
        .filter(|k| k.contains("/addresses/"))
        .cloned()
        .collect();
    assert!(
        addresses.is_empty(),
        "an address outlived its refused rule: {addresses:?}"
    );

    rig.topology = topology("apps", "us-east4", "db");
    let r = rig.destroy().await;
    assert!(r.ok(), "{r:?}");
    let left: Vec<String> = gcp_api.lock().unwrap().res.keys().cloned().collect();
    assert!(left.is_empty(), "leaked: {left:?}");
}

/// GCP resources carry their owner only in the description: a topology
/// named `prod:x` (or `prod-x`) is not `prod`'s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destroying_prod_never_touches_prod_colon_x_or_prod_dash_x_resources() {
    for theirs in ["prod:x", "prod-x"] {
        let (url, _api) = serve().await;
        let dir = TempDir::new("gcp-owner");
        let sim = SimCloud::with_config(
            &dir.0,
            SimConfig {
                step_ms: 10,
                ..SimConfig::default()
            },
        );
        let gcp = Arc::new(GcpProvider::new(config(&url, TOKEN)).unwrap());
        let providers = Providers::default()
            .with(sim.provider(Scope::Aws))
            .with(sim.provider(Scope::Azure))
            .with(gcp)
            .with(sim.provider(Scope::Megaport));
        support::rig::destroy_of_prod_spares(&example("adr-003.yaml"), theirs, providers).await;
    }
}
