//! `mcnet plan|apply|destroy --provider gcp` through the binary, against the
//! local **mock** of the Compute Engine API that the GCP provider's own
//! tests use (no Google Cloud project is reachable here). It checks that
//! the provider is configured from the standard environment and that
//! `--provider gcp` acts on the topology's GCP part only.

mod common;
#[path = "../../mcnet-cloud/tests/support/gcp_mock.rs"]
mod gcp_mock;

use std::process::Command;

use common::TempDir;
use serde_json::Value;

/// Runs mcnet with the GCP environment pointing at the mock.
fn mcnet_gcp(url: &str, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_mcnet"))
        .args(args)
        .env("MCNET_GCP_COMPUTE_URL", format!("{url}/compute/v1"))
        .env("GOOGLE_CLOUD_PROJECT", gcp_mock::PROJECT)
        .env("GOOGLE_OAUTH_ACCESS_TOKEN", gcp_mock::TOKEN)
        .output()
        .expect("run mcnet");
    (
        out.status.code().expect("exited"),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_gcp_part_of_adr003_plans_applies_replans_empty_and_destroys() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let (url, api) = rt.block_on(gcp_mock::serve());
    let dir = TempDir::new("cli-gcp");
    let state = dir.path("state");
    let topo = concat!(env!("CARGO_MANIFEST_DIR"), "/topologies/adr-003.yaml");
    let common = ["--provider", "gcp", "--state", state.as_str()];
    let with = |verb: &str, extra: &[&str]| -> Vec<String> {
        [verb, topo]
            .iter()
            .chain(common.iter())
            .chain(extra.iter())
            .map(|s| s.to_string())
            .collect()
    };
    let run = |args: Vec<String>| {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        mcnet_gcp(&url, &a)
    };

    let (code, out, err) = run(with("plan", &["-O", "json"]));
    assert_eq!(code, 0, "{err}");
    let plan: Value = serde_json::from_str(&out).unwrap();
    let acts = plan["actions"].as_array().unwrap();
    let ids: Vec<&str> = acts
        .iter()
        .map(|a| a["resource"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [
            "network/gcp-vpc",
            "subnet/gcp-vpc/gke-nodes",
            "interconnect-gateway/vxc-gcp-pi",
            "interconnect-attachment/vxc-gcp-pi"
        ],
        "the GCP part only"
    );
    assert!(acts.iter().all(|a| a["provider"] == "gcp"));

    let (code, out, err) = run(with("apply", &["--auto-approve"]));
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("Apply complete: 4 step(s)"), "{out}");
    assert_eq!(api.lock().unwrap().res.len(), 4);

    let (code, out, _) = run(with("plan", &["-O", "json"]));
    assert_eq!(code, 0);
    let again: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(again["actions"], serde_json::json!([]), "{out}");

    let (code, _, err) = run(with("drift", &[]));
    assert_eq!(code, 0, "{err}");

    let (code, out, err) = run(with("destroy", &["--auto-approve"]));
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(api.lock().unwrap().res.is_empty());
}

#[test]
fn a_missing_credential_is_named() {
    let dir = TempDir::new("cli-cred");
    let state = dir.path("state");
    let topo = concat!(env!("CARGO_MANIFEST_DIR"), "/topologies/adr-003.yaml");
    for (provider, var) in [
        ("gcp", "GOOGLE_CLOUD_PROJECT"),
        ("azure", "AZURE_TENANT_ID"),
        ("megaport", "MEGAPORT_ACCESS_KEY"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_mcnet"))
            .args(["plan", topo, "--provider", provider, "--state", &state])
            .env_remove(var)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_ne!(out.status.code(), Some(0), "{provider}");
        assert!(
            err.contains(&format!("{var} is not set")),
            "{provider}: {err}"
        );
    }
}
