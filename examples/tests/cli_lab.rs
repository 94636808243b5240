//! `mcnet lab up|verify|down` as root: the ADR's topologies built in
//! network namespaces with real BGP (BIRD 2), every pair `mcnet reach`
//! predicts checked with real TCP, the MCR failed, and nothing left behind.
//! Each test uses its own prefix, so they run side by side.

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

mod common;
use common::{have, mcnet};

const ADR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/topologies/adr-003.yaml");
const REDUNDANT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/topologies/adr-003-redundant.yaml"
);

fn can_run() -> bool {
    let tools = ["bird", "birdc", "dig", "victoria-metrics", "vmalert"];
    if !mcnet_datapath::is_root() || !tools.iter().all(|t| have(t)) {
        mcnet_core::testing::skip(
            "the topology lab needs root, BIRD 2 (bird, birdc), dig (the GSLB's DNS client) and VictoriaMetrics (victoria-metrics, vmalert)",
        );
        return false;
    }
    true
}

/// Tears the lab down when the test ends, also on failure.
struct Down(&'static str);

impl Drop for Down {
    fn drop(&mut self) {
        let _ = mcnet(&["lab", "down", "--prefix", self.0]);
    }
}

/// Namespaces of a prefix, and processes still running in them.
fn leftovers(prefix: &str) -> (Vec<String>, bool) {
    let out = Command::new("ip").args(["netns", "list"]).output().unwrap();
    let names: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(&format!("{prefix}-")))
        .map(str::to_string)
        .collect();
    // The lab's state, and the maps and links its node agents pinned.
    let state =
        std::path::Path::new("/run/mcnet-lab").join(prefix).exists() || pins(prefix).exists();
    (names, state)
}

/// Where the lab's node agents pin their maps.
fn pins(prefix: &str) -> std::path::PathBuf {
    std::path::PathBuf::from(format!("/sys/fs/bpf/mcnet-lab-{prefix}"))
}

/// Live (not zombie) BIRD processes whose command line names the prefix's state.
fn live_speakers(prefix: &str) -> usize {
    let needle = format!("/run/mcnet-lab/{prefix}/");
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok())
        .filter(|e| {
            let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
            let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
            let zombie = stat
                .rsplit(')')
                .next()
                .is_some_and(|s| s.trim_start().starts_with('Z'));
            !zombie && String::from_utf8_lossy(&cmd).contains(&needle)
        })
        .count()
}

fn verify(topology: &str, prefix: &str, fail: &[&str]) -> Value {
    let mut args = vec![
        "lab", "verify", topology, "--prefix", prefix, "--output", "json",
    ];
    for f in fail {
        args.extend_from_slice(&["--fail", f]);
    }
    let (code, stdout, stderr) = mcnet(&args);
    let v: Value =
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout} {stderr}"));
    assert_eq!(code, 0, "mismatches: {v}");
    v
}

/// The pairs `mcnet reach --matrix` says a failure loses.
fn predicted_lost(topology: &str, prefix: &str, fail: &[&str]) -> BTreeSet<(String, String, u64)> {
    // The same pods as the lab: one per workload (the lab's default).
    let _ = prefix;
    let pods = |failed: &[&str]| {
        let state = std::fs::read_to_string(format!("/run/mcnet-lab/{prefix}/lab.json")).unwrap();
        let lab: Value = serde_json::from_str(&state).unwrap();
        let dir = tempdir(prefix);
        let mut args = vec!["reach".to_string(), topology.to_string()];
        for (i, m) in lab["manifests"].as_array().unwrap().iter().enumerate() {
            let path = format!("{dir}/m{i}.yaml");
            std::fs::write(&path, m["text"].as_str().unwrap()).unwrap();
            args.push("--manifests".into());
            args.push(match m["cluster"].as_str() {
                Some(c) => format!("{c}={path}"),
                None => path,
            });
        }
        args.extend(["--matrix", "--output", "json"].map(String::from));
        for f in failed {
            args.extend(["--fail".to_string(), f.to_string()]);
        }
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, stdout, stderr) = mcnet(&refs);
        assert_eq!(code, 0, "{stderr}");
        let v: Value = serde_json::from_str(&stdout).unwrap();
        v["cells"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["verdict"] == "allow")
            .map(|c| {
                (
                    c["from"].as_str().unwrap().to_string(),
                    c["to"].as_str().unwrap().to_string(),
                    c["port"].as_u64().unwrap(),
                )
            })
            .collect::<BTreeSet<_>>()
    };
    let before = pods(&[]);
    let after = pods(fail);
    before.difference(&after).cloned().collect()
}

fn tempdir(tag: &str) -> String {
    let d = std::env::temp_dir().join(format!("mcnet-lab-test-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d.display().to_string()
}

fn observed_lost(v: &Value) -> BTreeSet<(String, String, u64)> {
    v["after_failure"]["lost"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l[0].as_str().unwrap().to_string(),
                l[1].as_str().unwrap().to_string(),
                l[2].as_u64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn adr_003_agrees_with_reach_and_the_mcr_failure_loses_exactly_the_predicted_pairs() {
    if !can_run() {
        return;
    }
    let prefix = "tla";
    let _down = Down(prefix);
    let (code, _, stderr) = mcnet(&["lab", "up", ADR, "--prefix", prefix]);
    assert_eq!(code, 0, "{stderr}");
    // The MCR, and gke-prod's public ingress, which the GSLB checks.
    let v = verify(ADR, prefix, &["multicloud-mcr", "ingress/gke-prod"]);
    // 3 clusters × 2 pods serving 8080, every ordered pair (30), and each
    // of the 6 pods to both clusterset services (12).
    assert_eq!(v["pairs"], 42);
    assert_eq!(v["agree"], 42, "{v}");
    assert_eq!(v["unchecked"], 0, "{v}");
    assert_eq!(v["mismatches"].as_array().unwrap().len(), 0);
    let after = &v["after_failure"];
    assert_eq!(after["agree"], 42, "{after}");
    let (lost, services): (BTreeSet<_>, BTreeSet<_>) = observed_lost(&v)
        .into_iter()
        .partition(|(_, to, _)| !to.ends_with(".svc.clusterset.local"));
    assert_eq!(lost.len(), 24, "every cross-cloud pair is lost: {lost:?}");
    assert_eq!(lost, predicted_lost(ADR, prefix, &["multicloud-mcr"]));
    // Every service has a backend in every cluster: none is lost.
    assert!(services.is_empty(), "{services:?}");
    // GSLB, asked with dig: the failover name moves off gke-prod to the
    // next priority, the weighted one drops it; every answer as predicted.
    let answered = |rows: &Value, name: &str| -> Vec<String> {
        let r = rows
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == name)
            .unwrap_or_else(|| panic!("no {name} in {rows}"));
        assert_eq!(r["agree"], true, "{r}");
        serde_json::from_value(r["observed"].clone()).unwrap()
    };
    assert_eq!(answered(&v["gslb"], "api.multicloud-k8s.com"), ["gke-prod"]);
    assert_eq!(
        answered(&after["gslb"], "api.multicloud-k8s.com"),
        ["eks-prod"]
    );
    let app = answered(&after["gslb"], "app.multicloud-k8s.com");
    assert!(
        !app.is_empty() && !app.contains(&"gke-prod".to_string()),
        "{app:?}"
    );
    // The lab's vmalert, scraping the interconnect exporter, fires the
    // ADR's VXC alert for each of the failed MCR's VXCs, and none before.
    let firing = |a: &Value| -> BTreeSet<String> {
        assert_eq!(a["agree"], true, "{a}");
        a["observed"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| {
                format!(
                    "{} {}",
                    k["alert"].as_str().unwrap(),
                    k["vxc"].as_str().unwrap()
                )
            })
            .collect()
    };
    assert!(firing(&v["alerts"]).is_empty(), "{}", v["alerts"]);
    assert_eq!(
        firing(&after["alerts"]),
        BTreeSet::from([
            "VxcBgpSessionDown vxc-aws-dx".to_string(),
            "VxcBgpSessionDown vxc-azure-er".into(),
            "VxcBgpSessionDown vxc-gcp-pi".into(),
        ])
    );
    // After the MCR comes back, every pair works again, GSLB returns, and
    // the alerts clear.
    let again = verify(ADR, prefix, &[]);
    assert_eq!(again["agree"], 42);
    assert!(firing(&again["alerts"]).is_empty(), "{}", again["alerts"]);
    assert_eq!(
        answered(&again["gslb"], "api.multicloud-k8s.com"),
        ["gke-prod"]
    );
    // Failing the MCR alone moves no GSLB answer: no ingress path crosses it.
    let mcr = verify(ADR, prefix, &["multicloud-mcr"]);
    assert_eq!(
        answered(&mcr["after_failure"]["gslb"], "api.multicloud-k8s.com"),
        ["gke-prod"]
    );

    let (code, _, _) = mcnet(&["lab", "down", "--prefix", prefix]);
    assert_eq!(code, 0);
    assert_eq!(leftovers(prefix), (vec![], false));
    assert_eq!(live_speakers(prefix), 0);
}

#[test]
fn the_redundant_design_loses_nothing_when_one_mcr_fails() {
    if !can_run() {
        return;
    }
    let prefix = "tlb";
    let _down = Down(prefix);
    let (code, _, stderr) = mcnet(&["lab", "up", REDUNDANT, "--prefix", prefix]);
    assert_eq!(code, 0, "{stderr}");
    let v = verify(REDUNDANT, prefix, &["mcr/mcr-red"]);
    assert_eq!(v["agree"], v["pairs"], "{v}");
    assert!(v["pairs"].as_u64().unwrap() > 100);
    assert_eq!(v["after_failure"]["agree"], v["pairs"]);
    assert!(observed_lost(&v).is_empty());
    assert!(predicted_lost(REDUNDANT, prefix, &["mcr/mcr-red"]).is_empty());
    // Nothing is lost, and still the failed MCR's VXCs alert (and only its).
    let alerts = &v["after_failure"]["alerts"];
    assert_eq!(alerts["agree"], true, "{alerts}");
    let vxcs = alerts["observed"].as_array().unwrap();
    assert!(!vxcs.is_empty(), "{alerts}");
    assert!(
        vxcs.iter().all(|k| k["alert"] == "VxcBgpSessionDown"),
        "{alerts}"
    );
}

#[test]
fn down_after_a_killed_up_leaves_nothing_behind() {
    if !can_run() {
        return;
    }
    let prefix = "tlc";
    let _down = Down(prefix);
    let bin = env!("CARGO_BIN_EXE_mcnet");
    // Kill `up` at several points of the build; the last (0) as soon as
    // a node agent has pinned its maps.
    for wait_ms in [150u64, 600, 1500, 0] {
        let mut child = Command::new(bin)
            .args(["lab", "up", REDUNDANT, "--prefix", prefix])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        if wait_ms == 0 {
            let deadline = std::time::Instant::now() + Duration::from_secs(30);
            while !pins(prefix).join("c0").exists() {
                assert!(
                    std::time::Instant::now() < deadline,
                    "no node agent pinned its maps"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        } else {
            std::thread::sleep(Duration::from_millis(wait_ms));
        }
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        // A second `up` is refused while the half-built lab exists.
        if !leftovers(prefix).0.is_empty() {
            let (code, _, stderr) = mcnet(&["lab", "up", REDUNDANT, "--prefix", prefix]);
            assert_ne!(code, 0);
            assert!(stderr.contains("lab down"), "{stderr}");
        }
        let (code, _, stderr) = mcnet(&["lab", "down", "--prefix", prefix]);
        assert_eq!(code, 0, "{stderr}");
        assert_eq!(
            leftovers(prefix),
            (vec![], false),
            "after a kill at {wait_ms} ms"
        );
        assert_eq!(live_speakers(prefix), 0, "after a kill at {wait_ms} ms");
    }
}

const VPN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/topologies/adr-003-vpn.yaml");

#[test]
fn vpn_backups_carry_what_the_mcr_failure_would_lose() {
    if !can_run() {
        return;
    }
    let prefix = "tlv";
    let _down = Down(prefix);
    let (code, _, stderr) = mcnet(&["lab", "up", VPN, "--prefix", prefix]);
    assert_eq!(code, 0, "{stderr}");
    // The MCR fails: every pair moves to the tunnels, nothing is lost,
    // and still the VXCs' alert fires.
    let v = verify(VPN, prefix, &["multicloud-mcr"]);
    assert_eq!(v["agree"], 42, "{v}");
    assert_eq!(v["after_failure"]["agree"], 42);
    assert!(observed_lost(&v).is_empty(), "{v}");
    assert!(predicted_lost(VPN, prefix, &["multicloud-mcr"]).is_empty());
    assert_eq!(
        v["after_failure"]["alerts"]["observed"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    // The MCR and the AWS–GCP tunnels fail: exactly the pairs between
    // eks-prod and gke-prod are lost, as `reach` predicts.
    let both = ["multicloud-mcr", "vpn/vpn-aws-gcp"];
    let v = verify(VPN, prefix, &both);
    let lost = observed_lost(&v);
    assert_eq!(lost, predicted_lost(VPN, prefix, &both));
    assert_eq!(lost.len(), 8, "{lost:?}");
    assert!(lost.iter().all(
        |(a, b, _)| [a, b].iter().any(|x| x.starts_with("eks-prod/"))
            && [a, b].iter().any(|x| x.starts_with("gke-prod/"))
    ));
}

/// The ADR's policy with frontend admitted to the API from every cluster
/// by an explicit cluster selector (ClusterMesh identities in the kernel).
const ANY_CLUSTER: &str = "
apiVersion: v1
kind: Pod
metadata: {name: frontend, namespace: production, labels: {app: frontend}}
spec: {containers: [{name: web, ports: [{name: http, containerPort: 8080}]}]}
---
apiVersion: v1
kind: Pod
metadata: {name: api-server, namespace: production, labels: {app: api-server}}
spec: {containers: [{name: api, ports: [{name: http, containerPort: 8080}]}]}
---
apiVersion: v1
kind: Pod
metadata: {name: batch, namespace: production, labels: {app: batch}}
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: api-from-any-cluster-frontend, namespace: production}
spec:
  endpointSelector: {matchLabels: {app: api-server}}
  ingress:
    - fromEndpoints:
        - matchLabels: {app: frontend}
          matchExpressions: [{key: io.cilium.k8s.policy.cluster, operator: Exists}]
      toPorts: [{ports: [{port: \"8080\", protocol: TCP}]}]
";

#[test]
fn the_datapath_in_each_node_enforces_policy_as_reach_predicts() {
    if !can_run() {
        return;
    }
    let production = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/policies/adr-003-production.yaml"
    );
    let any = common::temp("lab-any-cluster.yaml", ANY_CLUSTER);
    for (prefix, manifests, allowed) in [("tld", production.to_string(), 3), ("tle", any, 9)] {
        let _down = Down(prefix);
        let (code, _, stderr) = mcnet(&[
            "lab",
            "up",
            ADR,
            "--prefix",
            prefix,
            "--manifests",
            &manifests,
        ]);
        assert_eq!(code, 0, "{stderr}");
        assert!(stderr.contains("3 node datapaths"), "{stderr}");
        let v = verify(ADR, prefix, &[]);
        // 9 pods, 6 of them serving 8080: every ordered pair is checked,
        // policy included (48), and each pod to both clusterset services (18).
        assert_eq!(v["pairs"], 66, "{v}");
        assert_eq!(v["agree"], 66, "{v}");
        assert_eq!(v["unchecked"], 0, "{v}");
        // What the kernel let through is what reach allows: frontend to
        // the API in its own cluster (production), or in every cluster
        // (the cluster selector).
        let (_, text, _) = mcnet(&["lab", "verify", ADR, "--prefix", prefix]);
        let through = text
            .lines()
            .filter(|l| l.contains("api-server:8080") && l.contains("allow     allow"))
            .count();
        assert_eq!(through, allowed, "{text}");
        drop(_down);
        assert_eq!(leftovers(prefix), (vec![], false));
    }
}

const EKS_ONLY: &str = "\
apiVersion: v1
kind: Pod
metadata: {name: frontend, namespace: production, labels: {app: frontend}}
spec:
  serviceAccountName: frontend
  containers: [{name: web, ports: [{name: http, containerPort: 8080, protocol: TCP}]}]
---
apiVersion: v1
kind: Pod
metadata: {name: batch, namespace: jobs, labels: {app: batch}}
spec:
  containers: [{name: job}]
";

const GKE_ONLY: &str = "\
apiVersion: v1
kind: Pod
metadata: {name: api-server, namespace: production, labels: {app: api-server}}
spec:
  serviceAccountName: api-server
  containers: [{name: api, ports: [{name: http, containerPort: 8080, protocol: TCP}]}]
";

/// The gateway pod's `/metrics`, fetched inside its namespace.
fn gateway_metric(prefix: &str, cluster: &str, metric: &str) -> u64 {
    let state = std::fs::read_to_string(format!("/run/mcnet-lab/{prefix}/lab.json")).unwrap();
    let lab: Value = serde_json::from_str(&state).unwrap();
    let gw = lab["gateways"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["cluster"] == cluster)
        .unwrap_or_else(|| panic!("no gateway in {cluster}: {lab}"));
    let out = std::process::Command::new("nsenter")
        .arg(format!(
            "--net=/run/netns/{}",
            gw["netns"].as_str().unwrap()
        ))
        .args(["--", "curl", "-s", "--max-time", "5"])
        .arg(format!(
            "http://{}:4191/metrics",
            gw["lab"].as_str().unwrap()
        ))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    // The sum over every series that starts so (all of a family's labels).
    let values: Vec<u64> = text
        .lines()
        .filter(|l| l.starts_with(metric))
        .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
        .collect();
    assert!(!values.is_empty(), "no {metric} in {text}");
    values.iter().sum()
}

#[test]
fn clusterset_calls_cross_the_gateway_with_mtls_and_are_lost_with_the_mcr() {
    if !can_run() {
        return;
    }
    let prefix = "tlm";
    let _down = Down(prefix);
    let eks = common::temp("lab-eks-only.yaml", EKS_ONLY);
    let gke = common::temp("lab-gke-only.yaml", GKE_ONLY);
    let (code, _, stderr) = mcnet(&[
        "lab",
        "up",
        ADR,
        "--prefix",
        prefix,
        "--manifests",
        &format!("eks-prod={eks}"),
        "--manifests",
        &format!("gke-prod={gke}"),
    ]);
    assert_eq!(code, 0, "{stderr}");
    // gke-prod exports api-service, eks-prod frontend; aks-prod nothing.
    assert!(stderr.contains("2 mesh gateways"), "{stderr}");
    let v = verify(ADR, prefix, &["multicloud-mcr"]);
    let row = |v: &Value, from: &str, to: &str| -> (String, String) {
        let r = v["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["from"] == from && r["to"] == to)
            .unwrap_or_else(|| panic!("no row {from} → {to}: {v}"))
            .clone();
        (
            r["observed"].as_str().unwrap().to_string(),
            r["stopped_at"].as_str().unwrap_or("").to_string(),
        )
    };
    let api = "api-service.production.svc.clusterset.local";
    assert_eq!(v["unchecked"], 0, "{v}");
    assert_eq!(v["agree"], v["pairs"], "{v}");
    // The meshed frontend reaches the API only in gke-prod: through its gateway.
    assert_eq!(
        row(&v, "eks-prod/production/frontend", api),
        ("allow".into(), "".into())
    );
    // The batch job has no proxy: the gateway admits only mTLS identities.
    assert_eq!(
        row(&v, "eks-prod/jobs/batch", api),
        ("deny".into(), "mesh".into())
    );
    // With the MCR down the gateway is out of reach, as predicted.
    let after = &v["after_failure"];
    assert_eq!(after["agree"], v["pairs"], "{after}");
    assert_eq!(
        row(after, "eks-prod/production/frontend", api),
        ("deny".into(), "cloud-route".into())
    );
    // The gateway really carried the call (the 4-byte echo, at least once
    // per verify), and turned the clear-text one away in its handshake.
    assert!(
        gateway_metric(
            prefix,
            "gke-prod",
            "mcnet_gateway_bytes_total{direction=\"out\"}"
        ) >= 4
    );
    assert!(
        gateway_metric(
            prefix,
            "gke-prod",
            "mcnet_gateway_handshake_failures_total{"
        ) >= 1
    );
}

#[test]
fn lab_input_errors_are_named() {
    let (code, _, stderr) = mcnet(&["lab", "down", "--prefix", "Bad/../x"]);
    if mcnet_datapath::is_root() {
        assert_eq!(code, 2);
        assert!(stderr.contains("prefix"), "{stderr}");
    } else {
        assert_eq!(code, 2);
    }
}
