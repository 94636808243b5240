//! The monitoring stack `mcnet render` writes, checked by the tools that
//! will run it: `promtool check rules` and `promtool test rules` on the
//! alert rules (each alert fires on a series past its threshold and stays
//! quiet on one that is not), `vmalert -dryRun`, `vmagent -dryRun` on every
//! cluster's scrape configuration, every dashboard query on a real
//! VictoriaMetrics, and the Vector configurations against Vector's
//! documented component schema (no Vector binary is packaged for Debian or
//! any registry reachable here).

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

mod common;
use common::{have, listening, mcnet, start_server, TempDir};

const ADR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/topologies/adr-003.yaml");

/// Whether every tool is here; a skip fails under `MCNET_REQUIRE_ALL=1`.
fn tools(needed: &[&str]) -> bool {
    let missing: Vec<&str> = needed.iter().copied().filter(|t| !have(t)).collect();
    if missing.is_empty() {
        return true;
    }
    mcnet_core::testing::skip(&format!(
        "the monitoring checks need {} (scripts/setup.sh installs them)",
        missing.join(", ")
    ));
    false
}

/// Renders `topology` (text) into a fresh directory.
fn render(dir: &TempDir, topology: &str) -> std::path::PathBuf {
    let file = dir.path("topology.yaml");
    std::fs::write(&file, topology).unwrap();
    let out = dir.path("out");
    let (code, stdout, stderr) = mcnet(&["render", &file, "-o", &out]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    std::path::PathBuf::from(out)
}

fn adr() -> String {
    std::fs::read_to_string(ADR).unwrap()
}

fn run(program: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run {program}: {e}"));
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// The rules without annotations: `promtool test rules` compares an
/// alert's annotations too, and these are checked by `check rules`; what
/// is tested here is when each alert fires.
fn rules_without_annotations(rules: &std::path::Path, to: &std::path::Path) {
    let mut v: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(rules).unwrap()).unwrap();
    for g in v["groups"].as_sequence_mut().unwrap() {
        for r in g["rules"].as_sequence_mut().unwrap() {
            r.as_mapping_mut().unwrap().remove("annotations");
        }
    }
    std::fs::write(to, serde_yaml::to_string(&v).unwrap()).unwrap();
}

/// Series for every alert: one past the ADR's threshold, one not. Cluster
/// eks-prod calls api-service in gke-prod (mirrored as
/// `api-service-gke-prod`) slowly and with 1% failures; everything else
/// is healthy.
const SERIES: &str = r#"
      # p95 about 97 ms across clusters (fires), 9.5 ms to aks-prod, and
      # 97 ms to a local service (not cross-cluster: quiet).
      - {series: 'response_latency_ms_bucket{cluster="eks-prod",direction="outbound",dst_service="api-service-gke-prod",le="10"}', values: '0+0x40'}
      - {series: 'response_latency_ms_bucket{cluster="eks-prod",direction="outbound",dst_service="api-service-gke-prod",le="50"}', values: '0+0x40'}
      - {series: 'response_latency_ms_bucket{cluster="eks-prod",direction="outbound",dst_service="api-service-gke-prod",le="100"}', values: '0+10x40'}
      - {series: 'response_latency_ms_bucket{cluster="eks-prod",direction="outbound",dst_service="api-service-gke-prod",le="+Inf"}', values: '0+10x40'}
      - {series: 'response_latency_ms_bucket{cluster="eks-prod",direction="outbound",dst_service="orders-aks-prod",le="10"}', values: '0+10x40'}
      - {series: 'response_latency_ms_bucket{cluster="eks-prod",direction="outbound",dst_service="orders-aks-prod",le="50"}', values: '0+10x40'}
      - {series: 'response_latency_ms_bucket{cluster="eks-prod",direction="outbound",dst_service="orders-aks-prod",le="100"}', values: '0+10x40'}
      - {series: 'response_latency_ms_bucket{cluster="eks-prod",direction="outbound",dst_service="orders-aks-prod",le="+Inf"}', values: '0+10x40'}
      - {series: 'response_latency_ms_bucket{cluster="eks-prod",direction="outbound",dst_service="api-service",le="50"}', values: '0+0x40'}
      - {series: 'response_latency_ms_bucket{cluster="eks-prod",direction="outbound",dst_service="api-service",le="100"}', values: '0+10x40'}
      - {series: 'response_latency_ms_bucket{cluster="eks-prod",direction="outbound",dst_service="api-service",le="+Inf"}', values: '0+10x40'}
      # eks-prod loses 0.1% (fires); aks-prod 0.005%, its policy denials not counted (quiet).
      - {series: 'cilium_forward_count_total{cluster="eks-prod"}', values: '0+100000x40'}
      - {series: 'cilium_drop_count_total{cluster="eks-prod",reason="Missed tail call"}', values: '0+100x40'}
      - {series: 'cilium_forward_count_total{cluster="aks-prod"}', values: '0+100000x40'}
      - {series: 'cilium_drop_count_total{cluster="aks-prod",reason="Policy denied"}', values: '0+5000x40'}
      - {series: 'cilium_drop_count_total{cluster="aks-prod",reason="Missed tail call"}', values: '0+5x40'}
      # 99% success across clusters (fires); 99.95% to a local service (quiet).
      - {series: 'response_total{cluster="eks-prod",direction="outbound",dst_service="api-service-gke-prod",classification="success"}', values: '0+990x40'}
      - {series: 'response_total{cluster="eks-prod",direction="outbound",dst_service="api-service-gke-prod",classification="failure"}', values: '0+10x40'}
      - {series: 'response_total{cluster="eks-prod",direction="outbound",dst_service="orders",classification="success"}', values: '0+99950x40'}
      - {series: 'response_total{cluster="eks-prod",direction="outbound",dst_service="orders",classification="failure"}', values: '0+50x40'}
      # The AWS VXC's session goes down at 11 min (fires); Azure's stays up.
      - {series: 'mcnet_vxc_bgp_session_up{mcr="multicloud-mcr",vxc="vxc-aws-dx",peer="169.254.100.2"}', values: '1x10 0x30'}
      - {series: 'mcnet_vxc_bgp_session_up{mcr="multicloud-mcr",vxc="vxc-azure-er",peer="169.254.200.2"}', values: '1x40'}
      # At 30 min (time() = 1800): 6 days left (fires), 30 days left (quiet).
      - {series: 'identity_cert_expiration_timestamp_seconds{cluster="eks-prod",namespace="production",pod="frontend-1"}', values: '520200x40'}
      - {series: 'identity_cert_expiration_timestamp_seconds{cluster="eks-prod",namespace="production",pod="api-server-1"}', values: '2593800x40'}
"#;

/// What fires at 30 min with [`SERIES`].
const FIRING: &str = r#"
      - eval_time: 30m
        alertname: CrossClusterLatencyHigh
        exp_alerts:
          - exp_labels: {severity: warning, slo: latency, cluster: eks-prod, dst_service: api-service-gke-prod}
      - eval_time: 30m
        alertname: PacketLossHigh
        exp_alerts:
          - exp_labels: {severity: warning, slo: packet-loss, cluster: eks-prod}
      - eval_time: 30m
        alertname: ServiceSuccessRateLow
        exp_alerts:
          - exp_labels: {severity: critical, slo: success-rate, cluster: eks-prod, dst_service: api-service-gke-prod}
      - eval_time: 30m
        alertname: VxcBgpSessionDown
        exp_alerts:
          - exp_labels: {severity: critical, slo: interconnect, mcr: multicloud-mcr, vxc: vxc-aws-dx, peer: 169.254.100.2}
      - eval_time: 30m
        alertname: CertificateExpiresSoon
        exp_alerts:
          - exp_labels: {severity: warning, slo: certificates, cluster: eks-prod, namespace: production, pod: frontend-1}
"#;

/// Nothing fires at 3 min: the thresholds are crossed, but no alert has
/// held for its `for` yet (and the VXC is still up).
const NOT_YET: &str = r#"
      - {eval_time: 3m, alertname: CrossClusterLatencyHigh, exp_alerts: []}
      - {eval_time: 3m, alertname: PacketLossHigh, exp_alerts: []}
      - {eval_time: 3m, alertname: ServiceSuccessRateLow, exp_alerts: []}
      - {eval_time: 3m, alertname: VxcBgpSessionDown, exp_alerts: []}
"#;

/// The cost: adr-003 at 3,810 USD a month against its 3,500 budget
/// (fires after an hour), another topology at 100 (quiet).
const COST: &str = r#"
  - interval: 1m
    input_series:
      - {series: 'mcnet_cost_monthly_usd{topology="adr-003",item="transfer"}', values: '3000x120'}
      - {series: 'mcnet_cost_monthly_usd{topology="adr-003",item="MCR multicloud-mcr"}', values: '810x120'}
      - {series: 'mcnet_cost_monthly_usd{topology="small",item="transfer"}', values: '100x120'}
    alert_rule_test:
      - {eval_time: 30m, alertname: CostOverBudget, exp_alerts: []}
      - eval_time: 90m
        alertname: CostOverBudget
        exp_alerts:
          - exp_labels: {severity: warning, slo: cost, topology: adr-003}
"#;

fn promtool_test(
    dir: &TempDir,
    name: &str,
    rules: &std::path::Path,
    tests: &str,
) -> (bool, String) {
    let file = dir.path(name);
    std::fs::write(
        &file,
        format!(
            "rule_files: ['{}']\nevaluation_interval: 1m\ntests:\n{tests}",
            rules.display()
        ),
    )
    .unwrap();
    run("promtool", &["test", "rules", &file])
}

#[test]
fn the_rendered_alert_rules_pass_promtool_and_each_fires_only_past_its_threshold() {
    if !tools(&["promtool", "vmalert"]) {
        return;
    }
    let dir = TempDir::new("mon-rules");
    let out = render(&dir, &adr());
    let rules = out.join("monitoring-vpc/monitoring/rules.yaml");
    let (ok, text) = run("promtool", &["check", "rules", rules.to_str().unwrap()]);
    assert!(ok && text.contains("SUCCESS: 6 rules found"), "{text}");
    let (ok, text) = run(
        "vmalert",
        &["-dryRun", &format!("-rule={}", rules.display())],
    );
    assert!(ok, "vmalert -dryRun: {text}");

    let bare = std::path::PathBuf::from(dir.path("bare.yaml"));
    rules_without_annotations(&rules, &bare);
    let tests = format!(
        "  - interval: 1m\n    input_series:{SERIES}    alert_rule_test:{FIRING}{NOT_YET}{COST}"
    );
    let (ok, text) = promtool_test(&dir, "tests.yaml", &bare, &tests);
    assert!(ok && text.contains("SUCCESS"), "{text}");

    // The check can fail: claiming that aks-prod's loss fires too is refused.
    let wrong = FIRING.replace(
        "          - exp_labels: {severity: warning, slo: packet-loss, cluster: eks-prod}\n",
        "          - exp_labels: {severity: warning, slo: packet-loss, cluster: eks-prod}\n          - exp_labels: {severity: warning, slo: packet-loss, cluster: aks-prod}\n",
    );
    assert_ne!(wrong, FIRING);
    let tests = format!("  - interval: 1m\n    input_series:{SERIES}    alert_rule_test:{wrong}");
    let (ok, text) = promtool_test(&dir, "wrong.yaml", &bare, &tests);
    assert!(!ok && text.contains("PacketLossHigh"), "{text}");
}

#[test]
fn alert_thresholds_come_from_the_topology() {
    if !tools(&["promtool"]) {
        return;
    }
    // A 120 ms latency objective: the same 97 ms series no longer fires;
    // a 98% success objective: 99% no longer fires; no budget: no cost rule.
    let dir = TempDir::new("mon-thresholds");
    let topology = adr().replace(
        "alerts: {monthlyBudgetUsd: 3500}",
        "alerts: {latencyP95Ms: 120, successRatio: 0.98}",
    );
    let out = render(&dir, &topology);
    let rules = out.join("monitoring-vpc/monitoring/rules.yaml");
    let (ok, text) = run("promtool", &["check", "rules", rules.to_str().unwrap()]);
    assert!(ok && text.contains("SUCCESS: 5 rules found"), "{text}");
    let bare = std::path::PathBuf::from(dir.path("bare.yaml"));
    rules_without_annotations(&rules, &bare);
    let tests = format!(
        "  - interval: 1m\n    input_series:{SERIES}    alert_rule_test:\n      \
         - {{eval_time: 30m, alertname: CrossClusterLatencyHigh, exp_alerts: []}}\n      \
         - {{eval_time: 30m, alertname: ServiceSuccessRateLow, exp_alerts: []}}\n"
    );
    let (ok, text) = promtool_test(&dir, "tests.yaml", &bare, &tests);
    assert!(ok, "{text}");

    // Out of range: named by field, nothing rendered.
    let bad = adr().replace(
        "alerts: {monthlyBudgetUsd: 3500}",
        "alerts: {packetLossRatio: 1.5}",
    );
    let file = dir.path("bad.yaml");
    std::fs::write(&file, bad).unwrap();
    let (code, _, stderr) = mcnet(&["render", &file, "-o", &dir.path("bad-out")]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("spec.monitoring.alerts.packetLossRatio") && stderr.contains("1.5"),
        "{stderr}"
    );
    assert!(!std::path::Path::new(&dir.path("bad-out")).exists());
}

/// Percent-encodes a query parameter.
fn encode(q: &str) -> String {
    q.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// VictoriaMetrics' answer to an instant query: (status, body).
fn query(port: u16, expr: &str) -> (String, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET /api/v1/query?query={} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        encode(expr)
    )
    .unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    let body = out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    let status = serde_json::from_str::<Value>(&body)
        .ok()
        .and_then(|v| v["status"].as_str().map(str::to_string))
        .unwrap_or_default();
    (status, body)
}

#[test]
fn every_dashboard_and_rule_query_parses_on_a_real_victoria_metrics() {
    if !tools(&["victoria-metrics"]) {
        return;
    }
    let dir = TempDir::new("mon-dashboards");
    let out = render(&dir, &adr());
    let data = dir.path("vm");
    let (_vm, [port]) = start_server(
        "victoria-metrics",
        |[port]| {
            let mut cmd = Command::new("victoria-metrics");
            cmd.args([
                &format!("-storageDataPath={data}"),
                &format!("-httpListenAddr=127.0.0.1:{port}"),
            ])
            .stdout(Stdio::null());
            cmd
        },
        |[port]| listening(port),
    );
    // The check can fail: a broken query is an error.
    assert_eq!(query(port, "sum(rate(x[5m])").0, "error");

    let mon = out.join("monitoring-vpc/monitoring");
    let mut exprs = Vec::new();
    let mut titles = BTreeSet::new();
    for entry in std::fs::read_dir(mon.join("dashboards")).unwrap() {
        let path = entry.unwrap().path();
        let board: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(
            board["uid"].is_string() && board["title"].is_string(),
            "{}",
            path.display()
        );
        titles.insert(board["title"].as_str().unwrap().to_string());
        let panels = board["panels"].as_array().unwrap();
        assert!(!panels.is_empty());
        for p in panels {
            let targets = p["targets"].as_array().unwrap();
            assert!(
                !targets.is_empty(),
                "{} panel {}",
                path.display(),
                p["title"]
            );
            for t in targets {
                exprs.push((
                    format!("{} / {}", board["title"], p["title"]),
                    t["expr"].as_str().unwrap().to_string(),
                ));
            }
        }
    }
    assert_eq!(
        titles,
        BTreeSet::from([
            "mcnet: latency and success SLOs".to_string(),
            "mcnet: policy drops by reason".into(),
            "mcnet: traffic matrix".into(),
            "mcnet: VXC utilisation".into(),
        ])
    );
    let rules: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(mon.join("rules.yaml")).unwrap()).unwrap();
    for r in rules["groups"][0]["rules"].as_sequence().unwrap() {
        exprs.push((
            format!("rule {}", r["alert"].as_str().unwrap()),
            r["expr"].as_str().unwrap().to_string(),
        ));
    }
    assert!(exprs.len() > 15);
    for (what, expr) in &exprs {
        // Grafana's variable, as "All" expands it.
        let expr = expr.replace("$cluster", ".*");
        let (status, body) = query(port, &expr);
        assert_eq!(status, "success", "{what}: {expr}\n{body}");
    }

    // Grafana gets the same dashboards through its ConfigMap.
    let grafana: Vec<Value> = serde_yaml::Deserializer::from_str(
        &std::fs::read_to_string(mon.join("grafana.yaml")).unwrap(),
    )
    .map(|d| serde::Deserialize::deserialize(d).unwrap())
    .collect();
    let boards = grafana
        .iter()
        .find(|d| d["metadata"]["name"] == "grafana-dashboards")
        .unwrap();
    for (file, text) in boards["data"].as_object().unwrap() {
        let on_disk = std::fs::read_to_string(mon.join("dashboards").join(file)).unwrap();
        assert_eq!(
            on_disk.trim_end(),
            text.as_str().unwrap().trim_end(),
            "{file}"
        );
    }
}

/// Vector's documented component kinds and the fields each requires.
fn vector_component_ok(kind: &str, c: &Value) -> Result<(), String> {
    let need = |fields: &[&str]| -> Result<(), String> {
        for f in fields {
            if c.get(*f).is_none() {
                return Err(format!("a {kind} `{}` needs `{f}`", c["type"]));
            }
        }
        Ok(())
    };
    match (kind, c["type"].as_str().unwrap_or_default()) {
        ("source", "file") => need(&["include"]),
        ("source", "vector") => need(&["address"]),
        ("transform", "remap") => need(&["inputs", "source"]),
        ("sink", "vector") => need(&["inputs", "address"]),
        ("sink", "elasticsearch") => need(&["inputs", "endpoints"]),
        (k, t) => Err(format!("{k} type `{t}` is not one mcnet renders")),
    }
}

/// Every component well formed, every input an existing source or
/// transform, every source used.
fn check_vector(path: &std::path::Path) {
    let v: Value = serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let section = |s: &str| v[s].as_object().cloned().unwrap_or_default();
    let (sources, transforms, sinks) =
        (section("sources"), section("transforms"), section("sinks"));
    assert!(
        !sources.is_empty() && !sinks.is_empty(),
        "{}",
        path.display()
    );
    let producers: BTreeSet<&String> = sources.keys().chain(transforms.keys()).collect();
    let mut used = BTreeSet::new();
    for (kind, map) in [
        ("source", &sources),
        ("transform", &transforms),
        ("sink", &sinks),
    ] {
        for (id, c) in map {
            vector_component_ok(kind, c)
                .unwrap_or_else(|e| panic!("{}: {id}: {e}", path.display()));
            for input in c["inputs"].as_array().into_iter().flatten() {
                let input = input.as_str().unwrap().to_string();
                assert!(
                    producers.contains(&input),
                    "{}: {id} reads unknown `{input}`",
                    path.display()
                );
                used.insert(input);
            }
        }
    }
    for id in sources.keys() {
        assert!(
            used.contains(id),
            "{}: source {id} goes nowhere",
            path.display()
        );
    }
}

#[test]
fn scrape_and_vector_configurations_are_accepted() {
    if !tools(&["vmagent"]) {
        return;
    }
    let dir = TempDir::new("mon-scrape");
    let out = render(&dir, &adr());
    for cluster in ["eks-prod", "aks-prod", "gke-prod"] {
        let mon = out.join(cluster).join("monitoring");
        let copies = out.join("monitoring-vpc/monitoring/clusters").join(cluster);
        let scrape = copies.join("scrape.yaml");
        let (ok, text) = run(
            "vmagent",
            &[
                "-dryRun",
                &format!("-promscrape.config={}", scrape.display()),
            ],
        );
        assert!(ok, "{cluster}: vmagent -dryRun: {text}");
        let v: Value = serde_yaml::from_str(&std::fs::read_to_string(&scrape).unwrap()).unwrap();
        assert_eq!(v["global"]["external_labels"]["cluster"], cluster);
        let jobs: BTreeSet<&str> = v["scrape_configs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|j| j["job_name"].as_str().unwrap())
            .collect();
        for job in [
            "cilium-agent",
            "hubble",
            "linkerd-proxy",
            "mcnet",
            "node-exporter",
        ] {
            assert!(jobs.contains(job), "{cluster}: no {job} job in {jobs:?}");
        }
        // The agent remote-writes to the monitoring network's store.
        let agent = std::fs::read_to_string(mon.join("vmagent.yaml")).unwrap();
        assert!(
            agent.contains("-remoteWrite.url=http://victoriametrics.monitoring-vpc.multicloud-k8s.com:8428/api/v1/write"),
            "{agent}"
        );
        check_vector(&copies.join("vector-agent.config.yaml"));
        let conf = std::fs::read_to_string(copies.join("vector-agent.config.yaml")).unwrap();
        // The copy is what the cluster's ConfigMap holds.
        let in_cluster = std::fs::read_to_string(mon.join("vector-agent.yaml")).unwrap();
        let cm: Value = serde_yaml::Deserializer::from_str(&in_cluster)
            .map(|d| <Value as serde::Deserialize>::deserialize(d).unwrap())
            .find(|d| d["kind"] == "ConfigMap")
            .unwrap();
        assert_eq!(cm["data"]["vector.yaml"], conf.as_str());
        assert!(
            conf.contains(&format!(".cluster = \"{cluster}\"")),
            "{conf}"
        );
    }
    check_vector(&out.join("monitoring-vpc/monitoring/vector.config.yaml"));

    // The check can fail: a sink reading a component that does not exist.
    let broken = dir.path("broken.yaml");
    std::fs::write(
        &broken,
        "sources: {a: {type: file, include: [/x]}}\nsinks: {s: {type: vector, inputs: [b], address: 'h:6000'}}\n",
    )
    .unwrap();
    let caught = std::panic::catch_unwind(|| check_vector(std::path::Path::new(&broken)));
    assert!(caught.is_err());
}

#[test]
fn cost_metrics_are_valid_for_promtool() {
    let dir = TempDir::new("mon-cost");
    let file = dir.path("cost.prom");
    let traffic = concat!(env!("CARGO_MANIFEST_DIR"), "/traffic/adr-003.yaml");
    let (code, _, stderr) = mcnet(&["cost", ADR, "--traffic", traffic, "--metrics-file", &file]);
    assert_eq!(code, 0, "{stderr}");
    let text = std::fs::read_to_string(&file).unwrap();
    common::promtool_accepts(&text);
    let total: f64 = text
        .lines()
        .filter(|l| l.starts_with("mcnet_cost_monthly_usd{"))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum();
    let (_, json, _) = mcnet(&["cost", ADR, "--traffic", traffic, "-O", "json"]);
    let e: Value = serde_json::from_str(&json).unwrap();
    assert!(
        (total - e["total_monthly"].as_f64().unwrap()).abs() < 1e-6,
        "{text}"
    );
}
