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
//! vmsingle, vmalert with the alert rules, Grafana with the dashboards and its
//! datasource, the Vector aggregator and the log store (VictoriaLogs).
//! The rules, dashboards and Vector configurations are also written as
//! plain files, for `promtool`, Grafana's API and `vector validate`.
//!
//! The rules, dashboards and configurations themselves are
//! [`crate::monitoring`]'s.

use serde_json::{json, Value};

use super::{builtin, ClusterRender, Context, DocKind};
use crate::monitoring::{
    alert_rules, dashboards, scrape_config, vector_agent, vector_aggregator, VECTOR_API_PORT,
    VECTOR_PORT, VLOGS_PORT,
};
use crate::topology::{Cluster, Monitoring, MonitoringKind};
use crate::Result;

/// The namespace the stack runs in, in every cluster.
pub const NAMESPACE: &str = "mcnet-monitoring";

const VM_VERSION: &str = "v1.102.1";
const VLOGS_IMAGE: &str = "victoriametrics/victoria-logs:v0.28.0-victorialogs";
const GRAFANA_IMAGE: &str = "grafana/grafana:11.2.0";
const VECTOR_IMAGE: &str = "timberio/vector:0.41.1-debian";

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
    let rules = alert_rules(ctx.t);
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
        let boards = dashboards(ctx.t);
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
