//! What the monitoring stack of ADR-003 runs, as data: vmagent's scrape
//! configuration, the alert rules on the ADR's success metrics, the
//! Grafana dashboards and the Vector configurations. `render` wraps them in
//! Kubernetes objects; `mcnet lab` runs the rules on a real vmalert.
//!
//! Metric sources: Linkerd's proxy metrics (`response_total`,
//! `response_latency_ms_bucket`, `identity_cert_expiration_timestamp_seconds`),
//! Cilium's agent (`cilium_drop_count_total`, `cilium_forward_count_total`),
//! Hubble (`hubble_drop_total`, `hubble_flows_processed_total`), and
//! mcnet's own: `mcnet_datapath_packets_total` and `_bytes_total` (the node
//! agent), `mcnet_vxc_bgp_session_up`, `mcnet_vxc_transmit_bytes_total` and
//! `mcnet_vxc_speed_bits` (an interconnect exporter: `mcnet lab exporter`
//! today), and `mcnet_cost_monthly_usd` (`mcnet cost --metrics-file`, for
//! the node exporter's textfile collector).

use serde_json::{json, Value};

use crate::topology::{AlertThresholds, Topology};

/// Where the aggregator takes Vector's own protocol.
pub const VECTOR_PORT: u16 = 6000;
/// Vector's API (health).
pub const VECTOR_API_PORT: u16 = 8686;
/// VictoriaLogs' HTTP port.
pub const VLOGS_PORT: u16 = 9428;
/// Hubble's flow export (`hubble-export-file-path`), on each node.
pub const HUBBLE_EXPORT: &str = "/var/run/cilium/hubble/events.log";
/// mcnet's node agent's flow events (`datapath enforce --flows`), on each node.
pub const MCNET_FLOWS: &str = "/var/log/mcnet/flows.jsonl";

/// vmagent's scrape configuration for one cluster: every series gets
/// `cluster: NAME`.
pub fn scrape_config(cluster: &str) -> Value {
    // A pod job: pods in `namespaces` (all when empty) whose label `label`
    // is `value`, scraped on `port`.
    let pod_job = |job: &str, namespaces: &[&str], keep: Vec<Value>, port: Option<u16>| {
        let mut sd = json!({"role": "pod"});
        if !namespaces.is_empty() {
            sd["namespaces"] = json!({"names": namespaces});
        }
        let mut relabel = keep;
        if let Some(port) = port {
            relabel.push(json!({
                "source_labels": ["__meta_kubernetes_pod_ip"],
                "regex": "(.+)", "target_label": "__address__", "replacement": format!("$1:{port}")
            }));
        }
        relabel.extend([
            json!({"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"}),
            json!({"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"}),
            json!({"source_labels": ["__meta_kubernetes_pod_node_name"], "target_label": "node"}),
        ]);
        json!({"job_name": job, "kubernetes_sd_configs": [sd], "relabel_configs": relabel})
    };
    let label_is = |label: &str, value: &str| {
        json!({"source_labels": [format!("__meta_kubernetes_pod_label_{}", sanitize(label))],
            "regex": value, "action": "keep"})
    };
    let port_named = |name: &str| {
        json!({"source_labels": ["__meta_kubernetes_pod_container_port_name"],
            "regex": name, "action": "keep"})
    };
    json!({
        "global": {"scrape_interval": "15s", "external_labels": {"cluster": cluster}},
        "scrape_configs": [
            pod_job("cilium-agent", &["kube-system"], vec![label_is("k8s-app", "cilium")], Some(9962)),
            pod_job("hubble", &["kube-system"], vec![label_is("k8s-app", "cilium")], Some(9965)),
            pod_job("cilium-operator", &["kube-system"], vec![label_is("io.cilium/app", "operator")], Some(9963)),
            // Every meshed pod's proxy: its admin port is named linkerd-admin.
            pod_job("linkerd-proxy", &[], vec![port_named("linkerd-admin"),
                json!({"source_labels": ["__meta_kubernetes_pod_container_port_number"],
                    "regex": "(.+)", "target_label": "__tmp_port"}),
                json!({"source_labels": ["__meta_kubernetes_pod_ip", "__tmp_port"], "separator": ":",
                    "target_label": "__address__"})], None),
            // mcnet's node agent, gateway and GSLB: a container port named metrics.
            pod_job("mcnet", &[], vec![label_is("app.kubernetes.io/part-of", "mcnet"), port_named("metrics")], None),
            {
                "job_name": "node-exporter",
                "kubernetes_sd_configs": [{"role": "node"}],
                "relabel_configs": [
                    {"source_labels": ["__meta_kubernetes_node_address_InternalIP"], "regex": "(.+)",
                        "target_label": "__address__", "replacement": "$1:9100"},
                    {"source_labels": ["__meta_kubernetes_node_name"], "target_label": "node"}
                ]
            }
        ]
    })
}

/// A Kubernetes label name as service discovery exposes it.
fn sanitize(label: &str) -> String {
    label
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

/// A PromQL regex alternative of DNS labels (no metacharacters but `-`).
fn alternatives<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let mut v: Vec<&str> = names.collect();
    v.sort_unstable();
    v.dedup();
    v.join("|")
}

/// The remote services' names as Linkerd mirrors them: `SERVICE-CLUSTER`.
fn mirrored_services(t: &Topology) -> String {
    format!(
        ".+-({})",
        alternatives(t.spec.clusters.iter().map(|c| c.name.as_str()))
    )
}

/// Alert rules (Prometheus rule-file format) on the ADR's success metrics.
pub fn alert_rules(t: &Topology) -> Value {
    let defaults = AlertThresholds::default();
    let a = t.spec.monitoring.as_ref().map_or(&defaults, |m| &m.alerts);
    let mirrored = mirrored_services(t);
    let dropped = r#"cilium_drop_count_total{reason!~"Policy denied.*"}"#;
    let mut rules = vec![
        json!({
            "alert": "CrossClusterLatencyHigh",
            "expr": format!(
                "histogram_quantile(0.95, sum by (cluster, dst_service, le) (rate(response_latency_ms_bucket{{direction=\"outbound\", dst_service=~\"{mirrored}\"}}[5m]))) > {}",
                a.latency_p95_ms
            ),
            "for": "10m",
            "labels": {"severity": "warning", "slo": "latency"},
            "annotations": {
                "summary": format!("p95 latency from {{{{ $labels.cluster }}}} to {{{{ $labels.dst_service }}}} is above {} ms", a.latency_p95_ms),
                "description": format!("ADR-003 success metric: cross-cluster latency below {} ms at p95. Now {{{{ $value | humanize }}}} ms.", a.latency_p95_ms)
            }
        }),
        json!({
            "alert": "PacketLossHigh",
            "expr": format!(
                "sum by (cluster) (rate({dropped}[5m])) / (sum by (cluster) (rate(cilium_forward_count_total[5m])) + sum by (cluster) (rate({dropped}[5m]))) > {}",
                a.packet_loss_ratio
            ),
            "for": "10m",
            "labels": {"severity": "warning", "slo": "packet-loss"},
            "annotations": {
                "summary": "packets lost in {{ $labels.cluster }} (drops other than policy denials)",
                "description": format!("ADR-003 success metric: packet loss below {}%. Now {{{{ $value | humanizePercentage }}}}.", a.packet_loss_ratio * 100.0)
            }
        }),
        json!({
            "alert": "ServiceSuccessRateLow",
            "expr": format!(
                "sum by (cluster, dst_service) (rate(response_total{{direction=\"outbound\", classification=\"success\"}}[5m])) / sum by (cluster, dst_service) (rate(response_total{{direction=\"outbound\"}}[5m])) < {}",
                a.success_ratio
            ),
            "for": "5m",
            "labels": {"severity": "critical", "slo": "success-rate"},
            "annotations": {
                "summary": "calls from {{ $labels.cluster }} to {{ $labels.dst_service }} are failing",
                "description": format!("ADR-003 success metric: connection success rate above {}%. Now {{{{ $value | humanizePercentage }}}}.", a.success_ratio * 100.0)
            }
        }),
        json!({
            "alert": "VxcBgpSessionDown",
            "expr": "mcnet_vxc_bgp_session_up == 0",
            "for": "1m",
            "labels": {"severity": "critical", "slo": "interconnect"},
            "annotations": {
                "summary": "BGP over VXC {{ $labels.vxc }} ({{ $labels.mcr }}) is down",
                "description": "The Megaport Cloud Router's session with {{ $labels.peer }} over {{ $labels.vxc }} is not established; traffic takes another path or is lost."
            }
        }),
        json!({
            "alert": "CertificateExpiresSoon",
            "expr": format!(
                "min by (cluster, namespace, pod) (identity_cert_expiration_timestamp_seconds) - time() < {}",
                u64::from(a.certificate_expiry_days) * 86_400
            ),
            "for": "5m",
            "labels": {"severity": "warning", "slo": "certificates"},
            "annotations": {
                "summary": "the workload certificate of {{ $labels.namespace }}/{{ $labels.pod }} in {{ $labels.cluster }} expires soon",
                "description": format!("A Linkerd proxy's certificate expires within {} days; rotation has stopped.", a.certificate_expiry_days)
            }
        }),
    ];
    if let Some(budget) = a.monthly_budget_usd {
        rules.push(json!({
            "alert": "CostOverBudget",
            "expr": format!("sum by (topology) (mcnet_cost_monthly_usd) > {budget}"),
            "for": "1h",
            "labels": {"severity": "warning", "slo": "cost"},
            "annotations": {
                "summary": "{{ $labels.topology }} costs more than its monthly budget",
                "description": format!("The estimated monthly cost is {{{{ $value | humanize }}}} USD; the budget is {budget} USD.")
            }
        }));
    }
    json!({"groups": [{"name": format!("mcnet-{}-success-metrics", t.metadata.name), "interval": "30s", "rules": rules}]})
}

/// A time series panel (or table, for matrices) on the VictoriaMetrics datasource.
fn panel(
    id: u32,
    title: &str,
    kind: &str,
    unit: &str,
    pos: (u32, u32),
    exprs: &[(&str, &str)],
) -> Value {
    let targets: Vec<Value> = exprs
        .iter()
        .zip('A'..)
        .map(|((expr, legend), r)| {
            json!({"refId": r.to_string(), "expr": expr, "legendFormat": legend,
            "datasource": {"type": "prometheus", "uid": "victoriametrics"}})
        })
        .collect();
    let mut p = json!({
        "id": id, "title": title, "type": kind,
        "gridPos": {"x": pos.0, "y": pos.1, "w": 12, "h": 8},
        "datasource": {"type": "prometheus", "uid": "victoriametrics"},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "targets": targets
    });
    if kind == "table" {
        for t in p["targets"].as_array_mut().into_iter().flatten() {
            t["format"] = json!("table");
            t["instant"] = json!(true);
        }
    }
    p
}

fn dashboard(uid: &str, title: &str, panels: Vec<Value>) -> Value {
    json!({
        "uid": uid, "title": title, "tags": ["mcnet", "adr-003"], "timezone": "utc",
        "schemaVersion": 39, "version": 1, "editable": false, "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {"list": [{
            "name": "cluster", "label": "cluster", "type": "query",
            "datasource": {"type": "prometheus", "uid": "victoriametrics"},
            "query": {"query": "label_values(up, cluster)", "refId": "cluster"},
            "definition": "label_values(up, cluster)",
            "includeAll": true, "multi": true, "allValue": ".*", "refresh": 2,
            "current": {"text": "All", "value": "$__all"}
        }]},
        "panels": panels
    })
}

/// Grafana dashboards for the ADR's monitoring strategy: `(file, dashboard)`.
pub fn dashboards(t: &Topology) -> Vec<(String, Value)> {
    let mirrored = mirrored_services(t);
    let c = r#"cluster=~"$cluster""#;
    let traffic = dashboard(
        "mcnet-traffic-matrix",
        "mcnet: traffic matrix",
        vec![
            panel(
                1,
                "Requests per second, client cluster × service",
                "table",
                "reqps",
                (0, 0),
                &[(
                    &format!(
                        r#"sum by (cluster, dst_namespace, dst_service) (rate(response_total{{direction="outbound", {c}}}[5m]))"#
                    ),
                    "{{cluster}} → {{dst_service}}.{{dst_namespace}}",
                )],
            ),
            panel(
                2,
                "Cross-cluster requests per second",
                "timeseries",
                "reqps",
                (12, 0),
                &[(
                    &format!(
                        r#"sum by (cluster, dst_service) (rate(response_total{{direction="outbound", dst_service=~"{mirrored}", {c}}}[5m]))"#
                    ),
                    "{{cluster}} → {{dst_service}}",
                )],
            ),
            panel(
                3,
                "Bytes per second judged by the datapath",
                "timeseries",
                "Bps",
                (0, 8),
                &[
                    (
                        &format!(
                            r#"sum by (cluster, verdict) (rate(mcnet_datapath_bytes_total{{{c}}}[5m]))"#
                        ),
                        "{{cluster}} mcnet {{verdict}}",
                    ),
                    (
                        &format!(
                            r#"sum by (cluster) (rate(hubble_flows_processed_total{{{c}}}[5m]))"#
                        ),
                        "{{cluster}} Hubble flows/s",
                    ),
                ],
            ),
        ],
    );
    let drops = dashboard(
        "mcnet-policy-drops",
        "mcnet: policy drops by reason",
        vec![
            panel(
                1,
                "Hubble drops by reason",
                "timeseries",
                "pps",
                (0, 0),
                &[(
                    &format!(r#"sum by (cluster, reason) (rate(hubble_drop_total{{{c}}}[5m]))"#),
                    "{{cluster}} {{reason}}",
                )],
            ),
            panel(
                2,
                "Cilium drops by reason",
                "timeseries",
                "pps",
                (12, 0),
                &[(
                    &format!(
                        r#"sum by (cluster, reason) (rate(cilium_drop_count_total{{{c}}}[5m]))"#
                    ),
                    "{{cluster}} {{reason}}",
                )],
            ),
            panel(
                3,
                "mcnet datapath drops by reason",
                "timeseries",
                "pps",
                (0, 8),
                &[(
                    &format!(
                        r#"sum by (cluster, reason) (rate(mcnet_datapath_packets_total{{verdict="dropped", {c}}}[5m]))"#
                    ),
                    "{{cluster}} {{reason}}",
                )],
            ),
            panel(
                4,
                "Gateway authorization denials",
                "timeseries",
                "cps",
                (12, 8),
                &[(
                    &format!(
                        r#"sum by (cluster) (rate(mcnet_gateway_authz_denials_total{{{c}}}[5m]))"#
                    ),
                    "{{cluster}}",
                )],
            ),
        ],
    );
    let vxc = dashboard(
        "mcnet-vxc-utilisation",
        "mcnet: VXC utilisation",
        vec![
            panel(1, "VXC utilisation (of its rate limit)", "timeseries", "percentunit", (0, 0), &[(
                "sum by (vxc, direction) (rate(mcnet_vxc_transmit_bytes_total[5m])) * 8 / on (vxc) group_left max by (vxc) (mcnet_vxc_speed_bits)",
                "{{vxc}} {{direction}}",
            )]),
            panel(2, "BGP sessions over VXCs", "timeseries", "none", (12, 0), &[(
                "mcnet_vxc_bgp_session_up",
                "{{mcr}} {{vxc}} {{peer}}",
            )]),
            panel(3, "Alerts firing", "table", "none", (0, 8), &[(
                r#"sum by (alertname, severity) (ALERTS{alertstate="firing"})"#,
                "{{alertname}}",
            )]),
        ],
    );
    let slo = dashboard(
        "mcnet-latency-slo",
        "mcnet: latency and success SLOs",
        vec![
            panel(
                1,
                "Cross-cluster latency, p95",
                "timeseries",
                "ms",
                (0, 0),
                &[(
                    &format!(
                        r#"histogram_quantile(0.95, sum by (cluster, dst_service, le) (rate(response_latency_ms_bucket{{direction="outbound", dst_service=~"{mirrored}", {c}}}[5m])))"#
                    ),
                    "{{cluster}} → {{dst_service}}",
                )],
            ),
            panel(
                2,
                "Success rate",
                "timeseries",
                "percentunit",
                (12, 0),
                &[(
                    &format!(
                        r#"sum by (cluster, dst_service) (rate(response_total{{direction="outbound", classification="success", {c}}}[5m])) / sum by (cluster, dst_service) (rate(response_total{{direction="outbound", {c}}}[5m]))"#
                    ),
                    "{{cluster}} → {{dst_service}}",
                )],
            ),
            panel(
                3,
                "Certificate lifetime left",
                "timeseries",
                "s",
                (0, 8),
                &[(
                    &format!(
                        r#"min by (cluster, namespace) (identity_cert_expiration_timestamp_seconds{{{c}}}) - time()"#
                    ),
                    "{{cluster}} {{namespace}}",
                )],
            ),
            panel(
                4,
                "Estimated monthly cost",
                "timeseries",
                "currencyUSD",
                (12, 8),
                &[("sum by (topology) (mcnet_cost_monthly_usd)", "{{topology}}")],
            ),
        ],
    );
    vec![
        ("traffic-matrix.json".into(), traffic),
        ("policy-drops.json".into(), drops),
        ("vxc-utilisation.json".into(), vxc),
        ("latency-slo.json".into(), slo),
    ]
}

/// The Vector agent on each node of `cluster`: Hubble's and mcnet's flow
/// logs, parsed, labelled with the cluster, sent to the aggregator.
pub fn vector_agent(cluster: &str, aggregator: &str) -> Value {
    let label = |source: &str| {
        format!(
            "parsed, err = parse_json(string!(.message))\n\
             if err == null && is_object(parsed) {{\n  . = merge(., object!(parsed))\n}}\n\
             .cluster = \"{cluster}\"\n.flow_source = \"{source}\"\n"
        )
    };
    json!({
        "data_dir": "/var/lib/vector",
        "api": {"enabled": true, "address": format!("0.0.0.0:{VECTOR_API_PORT}")},
        "sources": {
            "hubble_flows": {"type": "file", "include": [HUBBLE_EXPORT], "read_from": "end"},
            "mcnet_flows": {"type": "file", "include": [MCNET_FLOWS], "read_from": "end"}
        },
        "transforms": {
            "hubble_parsed": {"type": "remap", "inputs": ["hubble_flows"], "source": label("hubble")},
            "mcnet_parsed": {"type": "remap", "inputs": ["mcnet_flows"], "source": label("mcnet")}
        },
        "sinks": {
            "aggregator": {
                "type": "vector",
                "inputs": ["hubble_parsed", "mcnet_parsed"],
                "address": format!("{aggregator}:{VECTOR_PORT}"),
                "buffer": {"type": "disk", "max_size": 268_435_488, "when_full": "block"}
            }
        }
    })
}

/// The aggregator in the monitoring network: flows from every cluster's
/// agents into the log store (VictoriaLogs' Elasticsearch bulk endpoint
/// unless `log_store` names another).
pub fn vector_aggregator(log_store: &Option<String>) -> Value {
    let endpoint = log_store
        .clone()
        .unwrap_or_else(|| format!("http://victorialogs:{VLOGS_PORT}/insert/elasticsearch/"));
    json!({
        "data_dir": "/var/lib/vector",
        "api": {"enabled": true, "address": format!("0.0.0.0:{VECTOR_API_PORT}")},
        "sources": {
            "agents": {"type": "vector", "address": format!("0.0.0.0:{VECTOR_PORT}")}
        },
        "sinks": {
            "log_store": {
                "type": "elasticsearch",
                "inputs": ["agents"],
                "endpoints": [endpoint],
                "api_version": "v8",
                "mode": "bulk",
                "compression": "gzip",
                "healthcheck": {"enabled": false},
                "query": {"_msg_field": "message", "_time_field": "timestamp",
                    "_stream_fields": "cluster,flow_source"}
            }
        }
    })
}
