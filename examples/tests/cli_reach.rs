//! The `mcnet reach` contract: JSON shape, exit codes, `--fail`,
//! `--matrix`, per-cluster manifests, and errors naming what is wrong.

use serde_json::Value;

mod common;
use common::{mcnet, temp};

const ADR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/topologies/adr-003.yaml");
const REDUNDANT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/topologies/adr-003-redundant.yaml"
);
const PRODUCTION: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/policies/adr-003-production.yaml"
);

/// Two pods and no policy: only the network layers can refuse.
const OPEN: &str = "
apiVersion: v1
kind: Pod
metadata: {name: checkout, namespace: production, labels: {app: frontend}}
---
apiVersion: v1
kind: Pod
metadata: {name: orders, namespace: production, labels: {app: api-server}}
spec: {containers: [{name: api, ports: [{name: http, containerPort: 8080}]}]}
";

fn reach(args: &[&str]) -> (i32, Value) {
    let mut all = vec!["reach"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--output", "json"]);
    let (code, stdout, stderr) = mcnet(&all);
    let v: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("bad JSON ({e}): {stdout} {stderr}"));
    (code, v)
}

fn layers(v: &Value) -> Vec<String> {
    v["hops"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["layer"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn l7_denial_at_target_ingress_exits_1_with_every_layer_explained() {
    let from = "eks-prod/production/frontend";
    let to = "eks-prod/production/api-server";
    let (code, v) = reach(&[
        ADR,
        "--manifests",
        PRODUCTION,
        "--from",
        from,
        "--to",
        to,
        "--port",
        "8080",
        "--method",
        "DELETE",
        "--path",
        "/api/v1/users",
    ]);
    assert_eq!(code, 1);
    assert_eq!(v["verdict"], "deny");
    assert_eq!(v["stopped_at"], "target-ingress");
    assert_eq!(
        layers(&v),
        [
            "source-egress",
            "cluster-cidr",
            "cloud-route",
            "clustermesh",
            "mesh",
            "target-ingress"
        ]
    );
    for h in v["hops"].as_array().unwrap() {
        assert!(!h["explanation"].as_str().unwrap().is_empty());
    }
    let (code, v) = reach(&[
        ADR,
        "--manifests",
        PRODUCTION,
        "--from",
        from,
        "--to",
        to,
        "--port",
        "8080",
        "--method",
        "GET",
        "--path",
        "/api/v1/orders",
    ]);
    assert_eq!(code, 0);
    assert_eq!(v["verdict"], "allow");
    assert_eq!(v["stopped_at"], Value::Null);
}

#[test]
fn failing_the_mcr_stops_cross_cloud_pods_at_cloud_route_but_not_in_the_redundant_design() {
    let open = temp("reach-open.yaml", OPEN);
    let run = |t: &str, from: &str, to: &str, fail: &[&str]| {
        let from = format!("{from}/production/checkout");
        let to = format!("{to}/production/orders");
        let mut a = vec![
            t,
            "--manifests",
            &open,
            "--from",
            &from,
            "--to",
            &to,
            "--port",
            "8080",
        ];
        a.extend_from_slice(fail);
        reach(&a)
    };
    let (code, v) = run(ADR, "eks-prod", "gke-prod", &[]);
    assert_eq!((code, v["verdict"].as_str()), (0, Some("allow")), "{v}");
    let (code, v) = run(ADR, "eks-prod", "gke-prod", &["--fail", "multicloud-mcr"]);
    assert_eq!(code, 1);
    assert_eq!(v["stopped_at"], "cloud-route");
    let why = v["hops"][2]["explanation"].as_str().unwrap();
    assert!(why.contains("multicloud-mcr"), "{why}");
    // The redundant design keeps a path with one MCR down.
    let (code, v) = run(
        REDUNDANT,
        "eks-east",
        "gke-east",
        &["--fail", "mcr/mcr-red"],
    );
    assert_eq!((code, v["verdict"].as_str()), (0, Some("allow")), "{v}");
    assert!(
        v["hops"][2]["explanation"]
            .as_str()
            .unwrap()
            .contains("mcr-blue"),
        "{v}"
    );
    let (code, v) = run(
        REDUNDANT,
        "eks-east",
        "gke-east",
        &["--fail", "mcr/mcr-red", "--fail", "mcr/mcr-blue"],
    );
    assert_eq!(
        (code, v["stopped_at"].as_str()),
        (1, Some("cloud-route")),
        "{v}"
    );
}

#[test]
fn clusterset_services_go_through_the_gateway_and_its_authorization() {
    let clients = temp(
        "reach-clients.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: toolbox, namespace: ops, labels: {app: toolbox}}\n",
    );
    let server = temp("reach-server.yaml", OPEN);
    let (code, v) = reach(&[
        ADR,
        "--manifests",
        &format!("aks-prod={clients}"),
        &format!("gke-prod={server}"),
        "--from",
        "aks-prod/ops/toolbox",
        "--to",
        "api-service.production.svc.clusterset.local",
        "--port",
        "8080",
    ]);
    assert_eq!(code, 1);
    assert_eq!(v["stopped_at"], "mesh", "{v}");
    let why = v["hops"][4]["explanation"].as_str().unwrap();
    assert!(why.contains("not meshed"), "{why}");
}

#[test]
fn the_matrix_reports_pairs_and_the_layer_that_stops_each() {
    let (code, stdout, stderr) = mcnet(&[
        "reach",
        ADR,
        "--manifests",
        PRODUCTION,
        "--matrix",
        "--output",
        "json",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let v: Value = serde_json::from_str(&stdout).unwrap();
    let cells = v["cells"].as_array().unwrap();
    assert_eq!(cells.len(), 48);
    assert_eq!(v["allowed"], 3);
    assert_eq!(v["denied_by_layer"]["source-egress"], 45);
    let (code, text, _) = mcnet(&["reach", ADR, "--manifests", PRODUCTION, "--matrix"]);
    assert_eq!(code, 0);
    assert!(text.contains("48 pairs: 3 allowed, 45 denied"), "{text}");
}

#[test]
fn bad_input_names_the_object() {
    let (code, _, stderr) = mcnet(&[
        "reach",
        ADR,
        "--manifests",
        PRODUCTION,
        "--from",
        "eks-prod/production/ghost",
        "--to",
        "eks-prod/production/api-server",
        "--port",
        "8080",
    ]);
    assert_eq!(code, 1);
    assert!(stderr.contains("production/ghost"), "{stderr}");
    let (code, _, stderr) = mcnet(&[
        "reach",
        ADR,
        "--manifests",
        &format!("mars={PRODUCTION}"),
        "--matrix",
    ]);
    assert_eq!(code, 1);
    assert!(stderr.contains("mars"), "{stderr}");
    let (code, _, stderr) = mcnet(&[
        "reach",
        ADR,
        "--manifests",
        PRODUCTION,
        "--from",
        "eks-prod/production/frontend",
        "--to",
        "eks-prod/production/api-server",
        "--port",
        "8080",
        "--fail",
        "nothing-here",
    ]);
    assert_eq!(code, 2);
    assert!(stderr.contains("nothing-here"), "{stderr}");
    // --from without --port is a usage error.
    let (code, _, _) = mcnet(&[
        "reach",
        ADR,
        "--manifests",
        PRODUCTION,
        "--from",
        "a/b/c",
        "--to",
        "a/b/d",
    ]);
    assert_eq!(code, 2);
}
