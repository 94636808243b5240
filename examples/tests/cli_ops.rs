//! `mcnet cost` and `mcnet probe`, run as a user would.

use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;
use common::{mcnet, Proc};

const ADR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/topologies/adr-003.yaml");
const TRAFFIC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/traffic/adr-003.yaml");

#[test]
fn cost_prints_a_table_and_consistent_json() {
    let (code, out, err) = mcnet(&["cost", ADR, "--traffic", TRAFFIC]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("interconnect") && out.contains("what if"),
        "{out}"
    );
    let (code, out, err) = mcnet(&["cost", ADR, "--traffic", TRAFFIC, "-O", "json"]);
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    let flows: f64 = v["flows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["monthly"].as_f64().unwrap())
        .sum();
    let fixed: f64 = v["fixed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["monthly"].as_f64().unwrap())
        .sum();
    let total = v["total_monthly"].as_f64().unwrap();
    assert!(
        (flows + fixed - total).abs() < 0.01,
        "{flows} + {fixed} != {total}"
    );
    assert_eq!(
        v["fixed"].as_array().unwrap().len(),
        4,
        "one MCR and three VXCs"
    );
    assert!(
        v["prices"].as_str().unwrap().contains("2026-11-01"),
        "the table's date is shown"
    );

    // A user's own prices override the embedded ones.
    let mine = common::temp(
        "prices.yaml",
        "source: mine\ndate: '2026-11-27'\ncurrency: EUR\ninternet_egress_per_gb: {aws: 0, azure: 0, gcp: 0}\n\
         interconnect_egress_per_gb: {aws: 0, azure: 0, gcp: 0}\ninter_region_per_gb: {aws: 0, azure: 0, gcp: 0}\n\
         peering_per_gb: {aws: 0, azure: 0, gcp: 0}\nvpn_per_hour: {aws: 0, azure: 0, gcp: 0}\n\
         mcr_monthly: {10000: 100}\nvxc_monthly: {10000: 10}\n",
    );
    let (code, out, err) = mcnet(&[
        "cost",
        ADR,
        "--traffic",
        TRAFFIC,
        "--prices",
        &mine,
        "-O",
        "json",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["currency"], "EUR");
    assert_eq!(
        v["total_monthly"].as_f64().unwrap(),
        130.0,
        "MCR 100 + 3 VXCs at 10, no term discount given"
    );

    let bad = common::temp(
        "bad-traffic.yaml",
        "flows: [{from: eks-prod, to: mars, gb_per_month: 1}]",
    );
    let (code, _, err) = mcnet(&["cost", ADR, "--traffic", &bad]);
    assert_eq!(code, 1);
    assert!(err.contains("flows[0].to"), "{err}");
}

#[test]
fn probe_measures_a_loopback_responder_against_the_adr_slos() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let _r = Proc(
        Command::new(env!("CARGO_BIN_EXE_mcnet"))
            .args(["probe", "--serve", &addr])
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let t0 = Instant::now();
    while std::net::TcpStream::connect(&addr).is_err() {
        assert!(t0.elapsed() < Duration::from_secs(20));
        std::thread::sleep(Duration::from_millis(50));
    }
    let (code, out, err) = mcnet(&[
        "probe",
        "--target",
        &addr,
        "--connects",
        "300",
        "--requests",
        "2000",
        "--bulk-mb",
        "8",
        "--datagrams",
        "5000",
        "-O",
        "json",
    ]);
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out} {err}"));
    assert_eq!(v["connects_ok"], 300);
    assert_eq!(v["datagrams_sent"], 5000);
    for k in [
        "latency_p50_ms",
        "latency_p95_ms",
        "latency_p99_ms",
        "throughput_mbps",
        "loss_percent",
    ] {
        assert!(v[k].is_number(), "{k}");
    }
    assert_eq!(v["slo"].as_array().unwrap().len(), 3);
    assert_eq!(code, if v["pass"] == true { 0 } else { 1 });
    // Nothing listening: the probe fails and says so.
    let dead = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();
    let (code, _, _) = mcnet(&["probe", "--target", &dead, "--connects", "5"]);
    assert_ne!(code, 0);
}
