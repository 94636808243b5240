//! The monitoring stack of ADR-003: metrics from every cluster into
//! VictoriaMetrics in the monitoring network, alert rules on the ADR's
//! success metrics, Grafana dashboards, and Vector shipping flow logs.
//!
//! In each cluster (`monitoring/` of the cluster's directory):
//! - a vmagent that scrapes Cilium, Hubble, the Linkerd proxies, mcnet's
//!   own components and the node exporters, labels every series with the
//!   cluster's name and remote-writes them to the monitoring network;
//! - a Vector agent (a DaemonSet) that reads Hubble's flow export and
//!   mcnet's flow events on each node and forwards them.
//!
//! In the monitoring network (its own directory beside the clusters'):
//! vmsingle, vmalert with [`rules`], Grafana with [`dashboards`] and its
//! datasource, the Vector aggregator and the log store (VictoriaLogs).
//! The rules, dashboards and Vector configurations are also written as
//! plain files, for `promtool`, Grafana's API and `vector validate`.
//!
//! Metric sources: Linkerd's proxy metrics (`response_total`,
//! `response_latency_ms_bucket`, `identity_cert_expiration_timestamp_seconds`),
//! Cilium's agent (`cilium_drop_count_total`, `cilium_forward_count_total`),
//! Hubble (`hubble_drop_total`, `hubble_flows_processed_total`), and
//! mcnet's own: `mcnet_datapath_packets_total` (the node agent),
//! `mcnet_vxc_bgp_session_up` and `mcnet_vxc_transmit_bytes_total` with
//! `mcnet_vxc_speed_bits` (the interconnect's exporter, `mcnet lab` today),
//! and `mcnet_cost_monthly_usd` (`mcnet cost --metrics-file`, for the node
//! exporter's textfile collector).

use serde_json::{json, Value};

use super::{builtin, ClusterRender, Context, DocKind};
use crate::topology::{AlertThresholds, Cluster, Monitoring, MonitoringKind};
use crate::Result;

/// The namespace the stack runs in, in every cluster.
pub const NAMESPACE: &str = "mcnet-monitoring";

const VM_VERSION: &str = "v1.102.1";
const VLOGS_IMAGE: &str = "victoriametrics/victoria-logs:v0.28.0-victorialogs";
const GRAFANA_IMAGE: &str = "grafana/grafana:11.2.0";
const VECTOR_IMAGE: &str = "timberio/vector:0.41.1-debian";

/// Where the aggregator takes Vector's own protocol.
const VECTOR_PORT: u16 = 6000;
/// Vector's API (health).
const VECTOR_API_PORT: u16 = 8686;
const VLOGS_PORT: u16 = 9428;
/// Hubble's flow export (`hubble-export-file-path`), on each node.
pub const HUBBLE_EXPORT: &str = "/var/run/cilium/hubble/events.log";
/// mcnet's node agent's flow events (`datapath enforce --flows`), on each node.
pub const MCNET_FLOWS: &str = "/var/log/mcnet/flows.jsonl";

/// The scraper's pods: (namespace, label, value).
pub(super) const VMAGENT: (&str, &str, &str) = (NAMESPACE, "app.kubernetes.io/name", "vmagent");
/// The log shipper's pods.
pub(super) const VECTOR_AGENT: (&str, &str, &str) =
    (NAMESPACE, "app.kubernetes.io/name", "vector-agent");
/// The Linkerd proxy's admin port, where it serves its metrics.
pub(super) const LINKERD_ADMIN_PORT: u16 = 4191;
/// Host-network metrics ports vmagent scrapes on the nodes: Cilium's agent,
/// operator and Hubble, and the node exporter.
const NODE_METRICS_PORTS: [u16; 4] = [9962, 9963, 9965, 9100];

/// Which of the cluster-side agents the topology's monitoring stack runs:
/// (vmagent, Vector agent).
pub(super) fn agents(ctx: &Context<'_>) -> (bool, bool) {
    ctx.t.spec.monitoring.as_ref().map_or((false, false), |m| {
        let has = |k: &[MonitoringKind]| m.components.iter().any(|c| k.contains(&c.kind));
        (
            has(&[MonitoringKind::VictoriaMetrics, MonitoringKind::Prometheus]),
            has(&[MonitoringKind::Vector]),
        )
    })
}

/// The selected components and their addresses.
struct Stack<'a> {
    /// The metrics store's name and port.
    metrics: Option<(&'a str, u16)>,
    grafana: Option<(&'a str, u16)>,
    vector: Option<(&'a str, u16)>,
    /// Base URL of the metrics store as the clusters reach it.
    metrics_url: String,
    /// Host of the Vector aggregator as the clusters reach it.
    vector_host: String,
}

impl<'a> Stack<'a> {
    fn new(ctx: &Context<'a>, m: &'a Monitoring) -> Stack<'a> {
        let find = |kinds: &[MonitoringKind], port: u16| {
            m.components
                .iter()
                .find(|c| kinds.contains(&c.kind))
                .map(|c| (c.name.as_str(), c.port.unwrap_or(port)))
        };
        let metrics = find(
            &[MonitoringKind::VictoriaMetrics, MonitoringKind::Prometheus],
            8428,
        );
        let vector = find(&[MonitoringKind::Vector], VECTOR_API_PORT);
        let host = |name: &str| format!("{name}.{}.{}", m.network, ctx.domain);
        let metrics_url = ctx.opts.monitoring_url.clone().unwrap_or_else(|| {
            let (name, port) = metrics.unwrap_or(("victoriametrics", 8428));
            format!("http://{}:{port}", host(name))
        });
        Stack {
            metrics,
            grafana: find(&[MonitoringKind::Grafana], 3000),
            vector,
            metrics_url: metrics_url.trim_end_matches('/').to_string(),
            vector_host: host(vector.map_or("vector", |v| v.0)),
        }
    }
}

fn labels(component: &str) -> Value {
    json!({"app.kubernetes.io/name": component, "app.kubernetes.io/part-of": "mcnet-monitoring"})
}

fn meta(name: &str, component: &str) -> Value {
    json!({"name": name, "namespace": NAMESPACE, "labels": labels(component)})
}

fn config_map(name: &str, component: &str, data: Value) -> Result<Value> {
    builtin(
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta(name, component), "data": data}),
    )
}

fn service(name: &str, ports: &[(&str, u16)]) -> Result<Value> {
    let ports: Vec<Value> = ports
        .iter()
        .map(|(n, p)| json!({"name": n, "port": p, "targetPort": p, "protocol": "TCP"}))
        .collect();
    builtin(json!({
        "apiVersion": "v1", "kind": "Service", "metadata": meta(name, name),
        "spec": {"selector": {"app.kubernetes.io/name": name}, "ports": ports}
    }))
}

/// A container reading its configuration from ConfigMaps: `(configmap, mount path)`.
struct Workload<'a> {
    name: &'a str,
    image: String,
    args: Vec<String>,
    ports: Vec<(&'a str, u16)>,
    config: Vec<(&'a str, &'a str)>,
    /// `(volume, host path, mount path)`, read only.
    host_paths: Vec<(&'a str, &'a str, &'a str)>,
    /// An emptyDir for data at this path.
    data: Option<&'a str>,
    service_account: Option<&'a str>,
    /// `(path, port)` of the readiness probe.
    ready: Option<(&'a str, u16)>,
}

impl Workload<'_> {
    fn pod(&self) -> Value {
        let mut volumes = Vec::new();
        let mut mounts = Vec::new();
        for (cm, path) in &self.config {
            volumes.push(json!({"name": cm, "configMap": {"name": cm}}));
            mounts.push(json!({"name": cm, "mountPath": path, "readOnly": true}));
        }
        for (name, host, path) in &self.host_paths {
            volumes.push(
                json!({"name": name, "hostPath": {"path": host, "type": "DirectoryOrCreate"}}),
            );
            mounts.push(json!({"name": name, "mountPath": path, "readOnly": true}));
        }
        if let Some(path) = self.data {
            volumes.push(json!({"name": "data", "emptyDir": {}}));
            mounts.push(json!({"name": "data", "mountPath": path}));
        }
        let ports: Vec<Value> = self
            .ports
            .iter()
            .map(|(n, p)| json!({"name": n, "containerPort": p, "protocol": "TCP"}))
            .collect();
        let mut container = json!({
            "name": self.name,
            "image": self.image,
            "args": self.args,
            "ports": ports,
            "volumeMounts": mounts,
            "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "1Gi"}},
            "securityContext": {"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true,
                "capabilities": {"drop": ["ALL"]}}
        });
        if let Some((path, port)) = self.ready {
            container["readinessProbe"] =
                json!({"httpGet": {"path": path, "port": port}, "periodSeconds": 10});
        }
        let mut spec = json!({"containers": [container], "volumes": volumes});
        if let Some(sa) = self.service_account {
            spec["serviceAccountName"] = json!(sa);
        }
        json!({"metadata": {"labels": labels(self.name)}, "spec": spec})
    }

    fn deployment(&self) -> Result<Value> {
        builtin(json!({
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta(self.name, self.name),
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app.kubernetes.io/name": self.name}},
                "template": self.pod()}
        }))
    }

    fn daemon_set(&self) -> Result<Value> {
        builtin(json!({
            "apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": meta(self.name, self.name),
            "spec": {"selector": {"matchLabels": {"app.kubernetes.io/name": self.name}},
                "template": self.pod()}
        }))
    }
}

fn namespace() -> Result<Value> {
    builtin(json!({"apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": NAMESPACE, "labels": {"app.kubernetes.io/part-of": "mcnet-monitoring"}}}))
}

fn yaml(v: &Value) -> String {
    serde_yaml::to_string(v).unwrap_or_default()
}

/// Zero trust for the agents' namespace: default deny and DNS; vmagent
/// may call every pod's Linkerd admin port and named `metrics` port, the
/// nodes' metrics ports and the API server (Cilium entities: no
/// NetworkPolicy can name them), and the store in the monitoring network;
/// the Vector agent only the aggregator there.
fn agent_policies(
    ctx: &Context<'_>,
    s: &Stack<'_>,
    m: &Monitoring,
) -> Result<(Vec<Value>, Vec<Value>)> {
    let (scrape, ship) = agents(ctx);
    let blocks: Vec<Value> = ctx
        .t
        .spec
        .networks
        .iter()
        .filter(|n| n.name == m.network)
        .flat_map(|n| n.cidrs.iter().filter_map(|c| c.net()))
        .map(|c| json!({"ipBlock": {"cidr": c.to_string()}}))
        .collect();
    let policy = |name: &str, pods: (&str, &str, &str), egress: Value| {
        builtin(json!({
            "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": name, "namespace": NAMESPACE},
            "spec": {"podSelector": {"matchLabels": {pods.1: pods.2}}, "policyTypes": ["Egress"],
                "egress": egress}
        }))
    };
    let mut net = vec![
        builtin(crate::policy::generate::default_deny(NAMESPACE))?,
        builtin(crate::policy::generate::allow_dns(NAMESPACE))?,
    ];
    let mut cilium = Vec::new();
    if scrape {
        let store_port = s.metrics.map_or(8428, |m| m.1);
        net.push(policy(
            "allow-vmagent-scrape-and-write",
            VMAGENT,
            json!([
                {"to": [{"namespaceSelector": {}, "podSelector": {}}],
                    "ports": [{"protocol": "TCP", "port": LINKERD_ADMIN_PORT}, {"protocol": "TCP", "port": "metrics"}]},
                {"to": blocks, "ports": [{"protocol": "TCP", "port": store_port}]}
            ]),
        )?);
        let node_ports: Vec<Value> = NODE_METRICS_PORTS
            .iter()
            .map(|p| json!({"port": p.to_string(), "protocol": "TCP"}))
            .collect();
        cilium.push(json!({
            "apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy",
            "metadata": {"name": "allow-vmagent-nodes-and-apiserver", "namespace": NAMESPACE},
            "spec": {
                "endpointSelector": {"matchLabels": {VMAGENT.1: VMAGENT.2}},
                "egress": [
                    {"toEntities": ["host", "remote-node"], "toPorts": [{"ports": node_ports}]},
                    {"toEntities": ["kube-apiserver"],
                        "toPorts": [{"ports": [{"port": "443", "protocol": "TCP"}, {"port": "6443", "protocol": "TCP"}]}]}
                ]
            }
        }));
    }
    if ship {
        net.push(policy(
            "allow-vector-agent-to-aggregator",
            VECTOR_AGENT,
            json!([{"to": blocks, "ports": [{"protocol": "TCP", "port": VECTOR_PORT}]}]),
        )?);
    }
    Ok((net, cilium))
}

/// Renders what cluster `c` runs of the stack.
pub(super) fn render_cluster(
    ctx: &Context<'_>,
    c: &Cluster,
    out: &mut ClusterRender,
) -> Result<()> {
    let Some(m) = &ctx.t.spec.monitoring else {
        return Ok(());
    };
    let s = Stack::new(ctx, m);
    let (net, cilium) = agent_policies(ctx, &s, m)?;
    if agents(ctx) != (false, false) {
        out.add(
            format!("policies/{NAMESPACE}/network-policies.yaml"),
            DocKind::BuiltIn,
            net,
        );
        out.add(
            format!("policies/{NAMESPACE}/cilium-policies.yaml"),
            DocKind::Custom,
            cilium,
        );
    }
    if s.metrics.is_some() {
        let scrape = scrape_config(&c.name);
        let rbac = vec![
            builtin(
                json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta("vmagent", "vmagent")}),
            )?,
            builtin(json!({
                "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                "metadata": {"name": "mcnet-vmagent", "labels": labels("vmagent")},
                "rules": [
                    {"apiGroups": [""], "resources": ["pods", "nodes", "services", "endpoints"],
                        "verbs": ["get", "list", "watch"]},
                    {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"],
                        "verbs": ["get", "list", "watch"]}
                ]
            }))?,
            builtin(json!({
                "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                "metadata": {"name": "mcnet-vmagent", "labels": labels("vmagent")},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "mcnet-vmagent"},
                "subjects": [{"kind": "ServiceAccount", "name": "vmagent", "namespace": NAMESPACE}]
            }))?,
        ];
        let agent = Workload {
            name: "vmagent",
            image: format!("victoriametrics/vmagent:{VM_VERSION}"),
            args: vec![
                "-promscrape.config=/config/scrape.yaml".into(),
                format!("-remoteWrite.url={}/api/v1/write", s.metrics_url),
                "-remoteWrite.tmpDataPath=/data".into(),
            ],
            ports: vec![("http", 8429)],
            config: vec![("vmagent-config", "/config")],
            host_paths: vec![],
            data: Some("/data"),
            service_account: Some("vmagent"),
            ready: Some(("/health", 8429)),
        };
        let mut docs = vec![namespace()?];
        docs.extend(rbac);
        docs.push(config_map(
            "vmagent-config",
            "vmagent",
            json!({"scrape.yaml": yaml(&scrape)}),
        )?);
        docs.push(agent.deployment()?);
        out.add("monitoring/vmagent.yaml", DocKind::BuiltIn, docs);
    }
    if s.vector.is_some() {
        let conf = vector_agent(&c.name, &s.vector_host);
        let agent = Workload {
            name: "vector-agent",
            image: VECTOR_IMAGE.into(),
            args: vec!["--config".into(), "/etc/vector/vector.yaml".into()],
            ports: vec![("api", VECTOR_API_PORT)],
            config: vec![("vector-agent-config", "/etc/vector")],
            host_paths: vec![
                ("hubble", "/var/run/cilium/hubble", "/var/run/cilium/hubble"),
                ("mcnet-flows", "/var/log/mcnet", "/var/log/mcnet"),
            ],
            data: Some("/var/lib/vector"),
            service_account: None,
            ready: Some(("/health", VECTOR_API_PORT)),
        };
        let mut docs = vec![namespace()?];
        docs.push(config_map(
            "vector-agent-config",
            "vector-agent",
            json!({"vector.yaml": yaml(&conf)}),
        )?);
        docs.push(agent.daemon_set()?);
        out.add("monitoring/vector-agent.yaml", DocKind::BuiltIn, docs);
    }
    Ok(())
}

/// Renders the monitoring network's own directory: the store, alerting,
/// dashboards and the log pipeline. `None` without a `monitoring` section.
pub(super) fn render_network(ctx: &Context<'_>) -> Result<Option<ClusterRender>> {
    let Some(m) = &ctx.t.spec.monitoring else {
        return Ok(None);
    };
    let s = Stack::new(ctx, m);
    let mut out = ClusterRender {
        cluster: m.network.clone(),
        cluster_mesh: None,
        max_connected_clusters: ctx.opts.max_connected_clusters,
        files: Vec::new(),
    };
    let rules = rules(ctx, &m.alerts);
    if let Some((name, port)) = s.metrics {
        let store = Workload {
            name,
            image: format!("victoriametrics/victoria-metrics:{VM_VERSION}"),
            args: vec![
                "-storageDataPath=/storage".into(),
                "-retentionPeriod=30d".into(),
                format!("-httpListenAddr=:{port}"),
            ],
            ports: vec![("http", port)],
            config: vec![],
            host_paths: vec![],
            data: Some("/storage"),
            service_account: None,
            ready: Some(("/health", port)),
        };
        let local = format!("http://{name}:{port}");
        let mut alert_args = vec![
            "-rule=/rules/*.yaml".into(),
            format!("-datasource.url={local}"),
            format!("-remoteWrite.url={local}"),
            format!("-remoteRead.url={local}"),
        ];
        match &ctx.opts.alertmanager_url {
            Some(url) => alert_args.push(format!("-notifier.url={url}")),
            // Alerts still land in the store as `ALERTS` series, which the
            // dashboards show.
            None => alert_args.push("-notifier.blackhole".into()),
        }
        let alert = Workload {
            name: "vmalert",
            image: format!("victoriametrics/vmalert:{VM_VERSION}"),
            args: alert_args,
            ports: vec![("http", 8880)],
            config: vec![("mcnet-alert-rules", "/rules")],
            host_paths: vec![],
            data: None,
            service_account: None,
            ready: Some(("/health", 8880)),
        };
        out.add(
            "monitoring/victoriametrics.yaml",
            DocKind::BuiltIn,
            vec![
                namespace()?,
                store.deployment()?,
                service(name, &[("http", port)])?,
                config_map(
                    "mcnet-alert-rules",
                    "vmalert",
                    json!({"adr-003.yaml": yaml(&rules)}),
                )?,
                alert.deployment()?,
                service("vmalert", &[("http", 8880)])?,
            ],
        );
        out.add(
            "monitoring/rules.yaml",
            DocKind::Raw,
            vec![Value::String(yaml(&rules))],
        );
    }
    if let Some((name, port)) = s.grafana {
        let store = s
            .metrics
            .map_or_else(|| s.metrics_url.clone(), |(n, p)| format!("http://{n}:{p}"));
        let datasources = json!({"apiVersion": 1, "datasources": [{
            "name": "VictoriaMetrics", "uid": "victoriametrics", "type": "prometheus",
            "access": "proxy", "url": store, "isDefault": true
        }]});
        let provider = json!({"apiVersion": 1, "providers": [{
            "name": "mcnet", "folder": "mcnet", "type": "file", "disableDeletion": true,
            "options": {"path": "/var/lib/grafana/dashboards"}
        }]});
        let boards = dashboards(ctx);
        let mut data = serde_json::Map::new();
        for (file, board) in &boards {
            data.insert(
                file.clone(),
                Value::String(serde_json::to_string_pretty(board).unwrap_or_default()),
            );
            out.add(
                format!("monitoring/dashboards/{file}"),
                DocKind::Raw,
                vec![Value::String(
                    serde_json::to_string_pretty(board).unwrap_or_default() + "\n",
                )],
            );
        }
        let grafana = Workload {
            name,
            image: GRAFANA_IMAGE.into(),
            args: vec![],
            ports: vec![("http", port)],
            config: vec![
                (
                    "grafana-datasources",
                    "/etc/grafana/provisioning/datasources",
                ),
                (
                    "grafana-dashboard-provider",
                    "/etc/grafana/provisioning/dashboards",
                ),
                ("grafana-dashboards", "/var/lib/grafana/dashboards"),
            ],
            host_paths: vec![],
            data: None,
            service_account: None,
            ready: Some(("/api/health", port)),
        };
        let mut grafana_pod = grafana.deployment()?;
        // Grafana writes its database; the root filesystem stays read-only.
        let c = &mut grafana_pod["spec"]["template"]["spec"]["containers"][0];
        c["env"] = json!([{"name": "GF_SERVER_HTTP_PORT", "value": port.to_string()},
            {"name": "GF_PATHS_DATA", "value": "/var/lib/grafana/data"}]);
        if let Some(m) = c["volumeMounts"].as_array_mut() {
            m.push(json!({"name": "grafana-data", "mountPath": "/var/lib/grafana/data"}));
        }
        if let Some(v) = grafana_pod["spec"]["template"]["spec"]["volumes"].as_array_mut() {
            v.push(json!({"name": "grafana-data", "emptyDir": {}}));
        }
        out.add(
            "monitoring/grafana.yaml",
            DocKind::BuiltIn,
            vec![
                namespace()?,
                config_map(
                    "grafana-datasources",
                    name,
                    json!({"victoriametrics.yaml": yaml(&datasources)}),
                )?,
                config_map(
                    "grafana-dashboard-provider",
                    name,
                    json!({"mcnet.yaml": yaml(&provider)}),
                )?,
                config_map("grafana-dashboards", name, Value::Object(data))?,
                builtin(grafana_pod)?,
                service(name, &[("http", port)])?,
            ],
        );
    }
    if let Some((name, api)) = s.vector {
        let conf = vector_aggregator(&ctx.opts.log_store_url);
        let aggregator = Workload {
            name,
            image: VECTOR_IMAGE.into(),
            args: vec!["--config".into(), "/etc/vector/vector.yaml".into()],
            ports: vec![("vector", VECTOR_PORT), ("api", api)],
            config: vec![("vector-config", "/etc/vector")],
            host_paths: vec![],
            data: Some("/var/lib/vector"),
            service_account: None,
            ready: Some(("/health", api)),
        };
        let mut docs = vec![
            namespace()?,
            config_map("vector-config", name, json!({"vector.yaml": yaml(&conf)}))?,
            aggregator.deployment()?,
            service(name, &[("vector", VECTOR_PORT), ("api", api)])?,
        ];
        if ctx.opts.log_store_url.is_none() {
            let logs = Workload {
                name: "victorialogs",
                image: VLOGS_IMAGE.into(),
                args: vec![
                    "-storageDataPath=/storage".into(),
                    "-retentionPeriod=14d".into(),
                ],
                ports: vec![("http", VLOGS_PORT)],
                config: vec![],
                host_paths: vec![],
                data: Some("/storage"),
                service_account: None,
                ready: Some(("/health", VLOGS_PORT)),
            };
            docs.push(logs.deployment()?);
            docs.push(service("victorialogs", &[("http", VLOGS_PORT)])?);
        }
        out.add("monitoring/vector.yaml", DocKind::BuiltIn, docs);
        out.add(
            "monitoring/vector.config.yaml",
            DocKind::Raw,
            vec![Value::String(yaml(&conf))],
        );
    }
    // Plain copies of what each cluster's agents run, for validators
    // (kept out of the clusters' own directories, which hold only
    // Kubernetes objects).
    for c in &ctx.t.spec.clusters {
        if s.metrics.is_some() {
            out.add(
                format!("monitoring/clusters/{}/scrape.yaml", c.name),
                DocKind::Raw,
                vec![Value::String(yaml(&scrape_config(&c.name)))],
            );
        }
        if s.vector.is_some() {
            out.add(
                format!("monitoring/clusters/{}/vector-agent.config.yaml", c.name),
                DocKind::Raw,
                vec![Value::String(yaml(&vector_agent(&c.name, &s.vector_host)))],
            );
        }
    }
    Ok(Some(out))
}

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
fn mirrored_services(ctx: &Context<'_>) -> String {
    format!(
        ".+-({})",
        alternatives(ctx.t.spec.clusters.iter().map(|c| c.name.as_str()))
    )
}

/// Alert rules (Prometheus rule-file format) on the ADR's success metrics.
pub(super) fn rules(ctx: &Context<'_>, a: &AlertThresholds) -> Value {
    let mirrored = mirrored_services(ctx);
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
    json!({"groups": [{"name": format!("mcnet-{}-success-metrics", ctx.t.metadata.name), "interval": "30s", "rules": rules}]})
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
pub(super) fn dashboards(ctx: &Context<'_>) -> Vec<(String, Value)> {
    let mirrored = mirrored_services(ctx);
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
                        r#"sum by (cluster, reason) (rate(mcnet_datapath_packets_total{{verdict="drop", {c}}}[5m]))"#
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
