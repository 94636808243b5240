//! `mcnet plan|apply|destroy|drift` on the embedded sim: the CLI contract,
//! drift, kill -9 in the middle of an apply, and two applies at once.

mod common;

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{mcnet, promtool_accepts, Proc, TempDir};
use serde_json::Value;

const ADR: &str = "topologies/adr-003.yaml";

fn json(args: &[&str]) -> (i32, Value) {
    let (code, out, err) = mcnet(args);
    let v = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out} {err}"));
    (code, v)
}

/// `mcnet VERB adr-003 --provider sim --state STATE EXTRA...`.
fn sim<'a>(verb: &'a str, state: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec![verb, ADR, "--provider", "sim", "--state", state];
    v.extend_from_slice(extra);
    v
}

/// Logical id → copies, over every sim state file.
fn census(state: &str) -> BTreeMap<String, usize> {
    let mut n = BTreeMap::new();
    for scope in ["aws", "azure", "gcp", "megaport"] {
        let Ok(text) = std::fs::read(format!("{state}/sim/{scope}.json")) else {
            continue;
        };
        let v: Value = serde_json::from_slice(&text).expect("state files are always whole");
        for r in v["resources"].as_object().unwrap().values() {
            *n.entry(r["tags"]["mcnet.io/id"].as_str().unwrap().to_string())
                .or_default() += 1;
        }
    }
    n
}

#[test]
fn plan_apply_replan_drift_repair_destroy() {
    let dir = TempDir::new("cloud-cli");
    let state = dir.path("state");
    let s = state.as_str();
    std::fs::create_dir_all(format!("{s}/sim")).unwrap();
    std::fs::write(format!("{s}/sim/config.yaml"), "stepMs: 20\n").unwrap();

    let (code, plan) = json(&sim("plan", s, &["--output", "json"]));
    assert_eq!(code, 0);
    let actions = plan["actions"].as_array().unwrap();
    assert_eq!(actions.len(), 31);
    assert!(actions.iter().all(|a| a["op"] == "create"));
    let vxc = actions
        .iter()
        .find(|a| a["resource"] == "vxc/vxc-azure-er")
        .unwrap();
    let er = actions
        .iter()
        .find(|a| a["resource"] == "interconnect-gateway/vxc-azure-er")
        .unwrap();
    assert!(
        vxc["dependsOn"].as_array().unwrap().contains(&er["index"]),
        "the VXC waits for the circuit's service key"
    );

    // Without --auto-approve and without a terminal, nothing happens.
    let (code, _, err) = mcnet(&sim("apply", s, &[]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--auto-approve"), "{err}");
    assert!(census(s).is_empty());

    let prom = dir.path("cloud.prom");
    let (code, out, err) = mcnet(&sim(
        "apply",
        s,
        &["--auto-approve", "--metrics-file", prom.as_str()],
    ));
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("Apply complete: 31 step(s)"), "{out}");
    assert!(
        err.contains("[31/31]"),
        "progress, a line per step off a terminal: {err}"
    );
    // The cloud-API metrics: one create per resource, by provider.
    let text = std::fs::read_to_string(&prom).unwrap();
    promtool_accepts(&text);
    let creates: u64 = text
        .lines()
        .filter(|l| {
            l.starts_with("mcnet_cloud_operations_total{") && l.contains("operation=\"create\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    assert_eq!(creates, 31, "{text}");
    assert!(
        text.contains("mcnet_cloud_api_requests_total{provider=\"megaport\"}"),
        "{text}"
    );
    assert!(text.contains("mcnet_cloud_operation_duration_seconds_bucket"));

    let (code, plan) = json(&sim("plan", s, &["-O", "json"]));
    assert_eq!(code, 0);
    assert_eq!(plan["actions"], serde_json::json!([]));
    let (code, d) = json(&sim("drift", s, &["-O", "json"]));
    assert_eq!((code, &d["drifted"]), (0, &Value::Bool(false)));

    // A console change: a subnet deleted, a VXC's VLAN changed.
    for (scope, id) in [
        ("aws", "subnet/aws-vpc/endpoints"),
        ("megaport", "vxc/vxc-gcp-pi"),
    ] {
        let path = format!("{s}/sim/{scope}.json");
        let mut v: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        let res = v["resources"].as_object_mut().unwrap();
        let key = res
            .iter()
            .find(|(_, r)| r["tags"]["mcnet.io/id"] == id)
            .map(|(k, _)| k.clone())
            .unwrap();
        if scope == "aws" {
            // The endpoints' interfaces use the subnet; the sim, like AWS, would
            // refuse, so the "console" removes the endpoints' reference too.
            res.remove(&key);
        } else {
            res.get_mut(&key).unwrap()["spec"]["vlan"] = 301.into();
        }
        std::fs::write(&path, serde_json::to_vec(&v).unwrap()).unwrap();
    }
    let (code, d) = json(&sim("drift", s, &["-O", "json"]));
    assert_eq!(code, 1, "drift found exits 1");
    let items: Vec<(String, String)> = d["drift"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["status"].as_str().unwrap().into(),
                i["resource"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert!(
        items.contains(&("missing".into(), "subnet/aws-vpc/endpoints".into())),
        "{items:?}"
    );
    assert!(
        items.contains(&("changed".into(), "vxc/vxc-gcp-pi".into())),
        "{items:?}"
    );
    let vlan = d["drift"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["resource"] == "vxc/vxc-gcp-pi")
        .unwrap();
    assert_eq!(vlan["repair"], "update", "a VLAN change is made in place");
    assert_eq!(vlan["changes"][0]["from"], 301);

    let (code, out, err) = mcnet(&sim("apply", s, &["--auto-approve"]));
    assert_eq!(code, 0, "{out}\n{err}");
    let (code, _, _) = mcnet(&sim("drift", s, &[]));
    assert_eq!(code, 0);

    let (code, out, err) = mcnet(&sim("destroy", s, &["--auto-approve"]));
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        census(s).is_empty(),
        "destroy leaves nothing: {:?}",
        census(s)
    );
}

#[test]
fn an_apply_killed_at_any_point_converges_when_run_again() {
    // Three kills at different moments, each followed by another apply.
    for (i, after_ms) in [150u64, 450, 900].into_iter().enumerate() {
        let dir = TempDir::new(&format!("cloud-kill-{i}"));
        let state = dir.path("state");
        let s = state.as_str();
        std::fs::create_dir_all(format!("{s}/sim")).unwrap();
        std::fs::write(
            format!("{s}/sim/config.yaml"),
            "stepMs: 120\nfaults: {timeout: 0.1}\n",
        )
        .unwrap();
        let mut child = Proc(
            Command::new(env!("CARGO_BIN_EXE_mcnet"))
                .args(sim("apply", s, &["--auto-approve"]))
                .current_dir(env!("CARGO_MANIFEST_DIR"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        std::thread::sleep(Duration::from_millis(after_ms));
        child.0.kill().unwrap(); // SIGKILL
        let _ = child.0.wait();
        let partial = census(s).len();

        let (code, out, err) = mcnet(&sim("apply", s, &["--auto-approve"]));
        assert_eq!(
            code, 0,
            "after a kill at {after_ms} ms ({partial} created):\n{out}\n{err}"
        );
        let (_, plan) = json(&sim("plan", s, &["-O", "json"]));
        assert_eq!(
            plan["actions"],
            serde_json::json!([]),
            "kill at {after_ms} ms"
        );
        let c = census(s);
        assert_eq!(c.len(), 31);
        assert!(
            c.values().all(|&n| n == 1),
            "duplicates after a kill at {after_ms} ms: {c:?}"
        );
    }
}

#[test]
fn two_applies_at_once_take_turns() {
    let dir = TempDir::new("cloud-twice");
    let state = dir.path("state");
    let s = state.as_str();
    std::fs::create_dir_all(format!("{s}/sim")).unwrap();
    std::fs::write(format!("{s}/sim/config.yaml"), "stepMs: 20\n").unwrap();
    let spawn = || {
        Command::new(env!("CARGO_BIN_EXE_mcnet"))
            .args(sim("apply", s, &["--auto-approve"]))
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    assert!(a.status.success() && b.status.success());
    // One of them did the work; the other, holding the lock after it, found nothing to do.
    let outs = [
        String::from_utf8_lossy(&a.stdout),
        String::from_utf8_lossy(&b.stdout),
    ];
    assert_eq!(
        outs.iter().filter(|o| o.contains("No changes.")).count(),
        1,
        "{outs:?}"
    );
    let c = census(s);
    assert_eq!(c.len(), 31);
    assert!(c.values().all(|&n| n == 1));
}
