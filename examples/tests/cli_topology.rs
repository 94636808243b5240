//! The `mcnet validate | paths | ipam | diagram` contracts, run as a user would.

use serde_json::Value;

mod common;
use common::{mcnet, temp};

const ADR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/topologies/adr-003.yaml");
const REDUNDANT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/topologies/adr-003-redundant.yaml"
);

/// Writes a variant of adr-003 with `from` replaced by `to`.
fn variant(name: &str, from: &str, to: &str) -> String {
    let text = std::fs::read_to_string(ADR).unwrap();
    assert!(
        text.contains(from),
        "adr-003.yaml no longer contains {from:?}"
    );
    temp(name, &text.replacen(from, to, 1))
}

fn validate_json(path: &str) -> (i32, Value) {
    let (code, stdout, stderr) = mcnet(&["validate", path, "--output", "json"]);
    let v: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("bad JSON ({e}): {stdout} {stderr}"));
    (code, v)
}

fn errors_with(v: &Value, code: &str) -> Vec<Value> {
    v["errors"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["code"] == code)
        .cloned()
        .collect()
}

#[test]
fn adr_003_validates_with_the_mcr_as_a_warned_spof() {
    let (code, v) = validate_json(ADR);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["valid"], true);
    assert!(v["errors"].as_array().unwrap().is_empty());
    let spof: Vec<&Value> = v["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|w| w["code"] == "spof.mcr")
        .collect();
    assert_eq!(spof.len(), 1);
    assert!(spof[0]["message"]
        .as_str()
        .unwrap()
        .contains("multicloud-mcr"));
    let (code, v) = validate_json(REDUNDANT);
    assert_eq!(code, 0, "{v}");
    assert!(v["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .all(|w| w["code"] != "spof.mcr"));
}

#[test]
fn overlapping_cidr_is_invalid_and_names_both_objects() {
    let p = variant(
        "overlap.yaml",
        "cidrs: [10.1.0.0/16]",
        "cidrs: [10.0.128.0/17]",
    );
    let (code, v) = validate_json(&p);
    assert_eq!(code, 1);
    assert_eq!(v["valid"], false);
    let e = errors_with(&v, "cidr.overlap");
    assert!(!e.is_empty(), "{v}");
    let msg = e[0]["message"].as_str().unwrap();
    assert!(
        msg.contains("azure-vnet") && msg.contains("aws-vpc"),
        "{msg}"
    );
    assert_eq!(e[0]["path"], "spec.networks[1].cidrs[0]");
}

#[test]
fn duplicate_clustermesh_id_is_invalid() {
    let p = variant(
        "meshid.yaml",
        "clusterMesh: {id: 2, name: aks-prod}",
        "clusterMesh: {id: 1, name: aks-prod}",
    );
    let (code, v) = validate_json(&p);
    assert_eq!(code, 1);
    let e = errors_with(&v, "clustermesh.id-duplicate");
    assert_eq!(e.len(), 1, "{v}");
    let msg = e[0]["message"].as_str().unwrap();
    assert!(
        msg.contains("eks-prod") && msg.contains("aks-prod"),
        "{msg}"
    );
    assert_eq!(e[0]["path"], "spec.clusters[1].clusterMesh.id");
}

#[test]
fn vxcs_over_mcr_speed_are_invalid() {
    let p = variant("oversub.yaml", "rateLimitMbps: 5000", "rateLimitMbps: 7000");
    let (code, v) = validate_json(&p);
    assert_eq!(code, 1);
    let e = errors_with(&v, "megaport.oversubscribed");
    assert_eq!(e.len(), 1, "{v}");
    let msg = e[0]["message"].as_str().unwrap();
    assert!(
        msg.contains("multicloud-mcr") && msg.contains("11000") && msg.contains("vxc-aws-dx"),
        "{msg}"
    );
}

#[test]
fn dangling_reference_is_invalid() {
    let p = variant("dangling.yaml", "network: gcp-vpc\n", "network: gcp-vcp\n");
    let (code, v) = validate_json(&p);
    assert_eq!(code, 1);
    let e = errors_with(&v, "ref.dangling");
    assert_eq!(e.len(), 1, "{v}");
    let msg = e[0]["message"].as_str().unwrap();
    assert!(msg.contains("gke-prod") && msg.contains("gcp-vcp"), "{msg}");
    assert_eq!(e[0]["path"], "spec.clusters[2].network");
}

#[test]
fn truncated_yaml_is_invalid_with_a_location() {
    let text = std::fs::read_to_string(ADR).unwrap();
    let cut = text.find("{name: gke-nodes").unwrap();
    // Cut mid-token, as a partial write would.
    let p = temp("truncated.yaml", &text[..cut + 12]);
    let (code, v) = validate_json(&p);
    assert_eq!(code, 1, "{v}");
    let msg = v["errors"][0]["message"].as_str().unwrap();
    assert!(msg.contains("line "), "{msg}");
}

#[test]
fn every_problem_is_reported_at_once() {
    let text = std::fs::read_to_string(ADR)
        .unwrap()
        .replacen("vlan: 100", "vlan: 4094", 1)
        .replacen("speedMbps: 10000", "speedMbps: 3000", 1)
        .replacen(
            "clusterMesh: {id: 3, name: gke-prod}",
            "clusterMesh: {id: 300, name: GKE_Prod}",
            1,
        );
    let p = temp("many.yaml", &text);
    let (code, v) = validate_json(&p);
    assert_eq!(code, 1);
    for c in [
        "megaport.vlan-range",
        "megaport.speed",
        "clustermesh.id-range",
        "clustermesh.name-invalid",
    ] {
        assert_eq!(errors_with(&v, c).len(), 1, "{c}: {v}");
    }
}

#[test]
fn usage_and_io_errors_exit_2() {
    assert_eq!(mcnet(&["validate", "/nonexistent/topology.yaml"]).0, 2);
    assert_eq!(mcnet(&["validate"]).0, 2);
    assert_eq!(mcnet(&["paths", ADR, "--fail", "no-such-thing"]).0, 2);
}

#[test]
fn failing_the_single_mcr_disconnects_clouds_but_not_in_the_redundant_pair() {
    let (code, out, _) = mcnet(&["paths", ADR, "--fail", "multicloud-mcr", "--output", "json"]);
    assert_eq!(code, 0);
    let v: Value = serde_json::from_str(&out).unwrap();
    let lost: Vec<(String, String)> = serde_json::from_value(v["disconnected"].clone()).unwrap();
    assert!(
        lost.contains(&("aws-vpc".into(), "azure-vnet".into())),
        "{lost:?}"
    );
    assert!(lost.contains(&("azure-vnet".into(), "gcp-vpc".into())));
    assert!(
        !lost.contains(&("aws-vpc".into(), "monitoring-vpc".into())),
        "the peering survives"
    );

    let (_, out, _) = mcnet(&["paths", ADR, "--output", "json"]);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert!(v["single_points_of_failure"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["name"] == "multicloud-mcr"));

    for mcr in ["mcr-red", "mcr-blue"] {
        let (code, out, _) = mcnet(&["paths", REDUNDANT, "--fail", mcr, "--output", "json"]);
        assert_eq!(code, 0);
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(
            v["disconnected"].as_array().unwrap().len(),
            0,
            "failing {mcr}: {}",
            v["disconnected"]
        );
        assert!(!v["degraded"].as_array().unwrap().is_empty());
    }
}

#[test]
fn ipam_fills_every_auto() {
    let (code, out, err) = mcnet(&["ipam", REDUNDANT]);
    assert_eq!(code, 0, "{err}");
    assert!(!out.contains("auto"), "{out}");
    let (code, out, _) = mcnet(&["ipam", REDUNDANT, "--output", "json"]);
    assert_eq!(code, 0);
    let v: Value = serde_json::from_str(&out).unwrap();
    let pods: Vec<&str> = v["spec"]["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["podCidr"].as_str().unwrap())
        .collect();
    assert_eq!(
        pods,
        [
            "10.64.0.0/16",
            "10.65.0.0/16",
            "10.66.0.0/16",
            "10.67.0.0/16",
            "10.68.0.0/16",
            "10.69.0.0/16"
        ]
    );
    // The allocated topology validates.
    assert_eq!(validate_json(&temp("filled.json", &out)).0, 0);
}

#[test]
fn diagram_writes_an_svg() {
    let dir = std::env::temp_dir().join(format!("mcnet-cli-d-{}", std::process::id()));
    let out = dir.join("adr.svg");
    let (code, _, err) = mcnet(&["diagram", ADR, "-o", out.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let svg = std::fs::read_to_string(&out).unwrap();
    for s in [
        "<svg",
        "10.0.0.0/16",
        "10.1.0.0/16",
        "10.2.0.0/16",
        "10.100.0.0/16",
        "eks-prod",
        "multicloud-mcr",
        "AWS Direct Connect",
        "Azure ExpressRoute",
        "GCP Partner Interconnect",
        "VictoriaMetrics",
        "Grafana",
        "Vector",
    ] {
        assert!(svg.contains(s), "missing {s}");
    }
}

#[test]
fn names_that_are_paths_or_collide_as_ids_are_invalid_with_their_field() {
    // `aws-vpc/private` + `a` and `aws-vpc` + `private/a` would both be
    // `subnet/aws-vpc/private/a`; a cluster named `../../escape` a path
    // out of `mcnet render -o`.
    for (tag, from, to, path) in [
        (
            "network",
            "    - name: aws-vpc\n",
            "    - name: aws-vpc/private\n",
            "spec.networks[0].name",
        ),
        (
            "subnet",
            "{name: private-a, cidr",
            "{name: private/a, cidr",
            "spec.networks[0].subnets[0].name",
        ),
        (
            "cluster",
            "    - name: eks-prod\n",
            "    - name: ../../escape\n",
            "spec.clusters[0].name",
        ),
    ] {
        let p = variant(&format!("name-{tag}.yaml"), from, to);
        let (code, v) = validate_json(&p);
        assert_eq!(code, 1, "{v}");
        let e = errors_with(&v, "name.invalid");
        assert_eq!(e.len(), 1, "{tag}: {v}");
        assert_eq!(e[0]["path"], path, "{tag}: {v}");
    }
}
