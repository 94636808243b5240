//! Zero trust: namespaces, Services, default deny and the declared allows,
//! and the preview inventory that lets the policy engine check them.

use crate::diag::Code;
use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::{builtin, ClusterRender, Context, DocKind};
use crate::diag::Diagnostic;
use crate::policy::analysis::PLATFORM_LABEL;
use crate::policy::generate::{self, Allow, Side};
use crate::policy::model::LINT_ALLOW_LABEL;
use crate::topology::{Cluster, ClusterFlavour, Namespace, Protocol, Workload};
use crate::Result;

/// Where the system components the policies name live, and how their pods are labelled.
pub(super) const KUBE_DNS: (&str, &str, &str) = ("kube-system", "k8s-app", "kube-dns");
pub(super) const INGRESS_NGINX: (&str, &str, &str) =
    ("ingress-nginx", "app.kubernetes.io/name", "ingress-nginx");
pub(super) const LINKERD_GATEWAY: (&str, &str, &str) =
    ("linkerd-multicluster", "app", "linkerd-gateway");
pub(super) const LINKERD_CONTROL_PLANE: &str = "linkerd";
/// Linkerd's control-plane ports a meshed pod calls: identity, destination, policy.
pub(super) const LINKERD_CONTROL_PORTS: [u16; 3] = [8080, 8086, 8090];
/// Port of Linkerd's multicluster gateway.
pub(super) const GATEWAY_PORT: u16 = 4143;
/// Google Cloud load balancer and health-check source ranges (GKE's global Ingress sends from these).
const GCLB_RANGES: [&str; 2] = ["130.211.0.0/22", "35.191.0.0/16"];

/// A workload's pod labels: its own, or `app: <name>` when it declares none.
pub(super) fn pod_labels(w: &Workload) -> BTreeMap<String, String> {
    if w.labels.is_empty() {
        [("app".to_string(), w.name.clone())].into()
    } else {
        w.labels.clone()
    }
}

pub(super) fn proto(p: Protocol) -> &'static str {
    match p {
        Protocol::Tcp => "TCP",
        Protocol::Udp => "UDP",
        Protocol::Sctp => "SCTP",
    }
}

/// Whether a namespace's workloads are exported to the other clusters (it spans more than one).
pub(super) fn exported(ns: &Namespace) -> bool {
    ns.clusters.len() > 1
}

fn network_policy(namespace: &str, name: &str, spec: Value) -> Value {
    json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec
    })
}

fn labelled(mut doc: Value, key: &str, value: &str) -> Value {
    doc["metadata"]["labels"] = json!({key: value});
    doc
}

fn ns_peer(namespace: &str, key: &str, value: &str) -> Value {
    json!({
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
        "podSelector": {"matchLabels": {key: value}}
    })
}

fn port_list(w: &Workload) -> Vec<Value> {
    w.ports
        .iter()
        .map(|p| json!({"protocol": proto(p.protocol), "port": p.port}))
        .collect()
}

pub(super) fn render(
    ctx: &Context<'_>,
    c: &Cluster,
    out: &mut ClusterRender,
    warnings: &mut Vec<Diagnostic>,
) -> Result<()> {
    let local: Vec<&Namespace> = ctx.namespaces_in(c).collect();
    let find = |ns: &str, name: &str| {
        local
            .iter()
            .find(|n| n.name == ns)
            .and_then(|n| n.workloads.iter().find(|w| w.name == name).map(|w| (*n, w)))
    };
    // Hostnames this cluster serves, by (namespace, service).
    let entry_points: Vec<(&str, &str)> = ctx
        .t
        .spec
        .load_balancing
        .hostnames
        .iter()
        .filter(|h| h.targets.iter().any(|t| t.cluster == c.name))
        .filter_map(|h| h.service.as_deref()?.split_once('/'))
        .collect();
    let linked = ctx.linked_clusters(c);

    for ns in &local {
        // The namespace, and a Service in front of each workload that serves ports.
        let mut labels = ns.labels.clone();
        labels.insert("kubernetes.io/metadata.name".into(), ns.name.clone());
        if exported(ns) {
            labels.insert("linkerd.io/inject".into(), "enabled".into());
        }
        let namespace = json!({
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": ns.name, "labels": labels}
        });
        out.add(
            format!("namespaces/{}.yaml", ns.name),
            DocKind::BuiltIn,
            vec![builtin(namespace)?],
        );
        let mut services = Vec::new();
        for w in ns.workloads.iter().filter(|w| !w.ports.is_empty()) {
            let mut meta = json!({"name": w.service_name(), "namespace": ns.name});
            if exported(ns) {
                meta["labels"] = json!({"mirror.linkerd.io/exported": "true"});
            }
            // GKE's global Ingress reaches it through NEGs, checked as the
            // GSLB checks.
            let global_backend = entry_points
                .iter()
                .any(|(hns, svc)| *hns == ns.name && *svc == w.service_name());
            if c.flavour == ClusterFlavour::Gke && global_backend {
                meta["annotations"] = json!({
                    "cloud.google.com/neg": "{\"ingress\": true}",
                    "cloud.google.com/backend-config": format!("{{\"default\": \"{}\"}}", super::ingress::GKE_BACKEND_CONFIG)
                });
            }
            let ports: Vec<Value> = w
                .ports
                .iter()
                .map(|p| json!({"name": p.name, "port": p.port, "protocol": proto(p.protocol), "targetPort": p.name}))
                .collect();
            services.push(builtin(json!({
                "apiVersion": "v1", "kind": "Service", "metadata": meta,
                "spec": {"selector": pod_labels(w), "ports": ports}
            }))?);
        }
        out.add(
            format!("services/{}.yaml", ns.name),
            DocKind::BuiltIn,
            services,
        );

        // Default deny, DNS, and the mesh's control plane.
        let mut docs = vec![
            generate::default_deny(&ns.name),
            generate::allow_dns(&ns.name),
        ];
        if exported(ns) {
            let ports: Vec<Value> = LINKERD_CONTROL_PORTS
                .iter()
                .map(|p| json!({"protocol": "TCP", "port": p}))
                .collect();
            docs.push(network_policy(
                &ns.name,
                "allow-linkerd-control-plane",
                json!({
                    "podSelector": {},
                    "policyTypes": ["Egress"],
                    "egress": [{
                        "to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": LINKERD_CONTROL_PLANE}}}],
                        "ports": ports
                    }]
                }),
            ));
        }
        // The monitoring stack's scraper reads the proxies' metrics.
        if exported(ns) && super::monitoring::agents(ctx).0 {
            let (mns, key, value) = super::monitoring::VMAGENT;
            docs.push(network_policy(
                &ns.name,
                "allow-metrics-scrape",
                json!({
                    "podSelector": {},
                    "policyTypes": ["Ingress"],
                    "ingress": [{
                        "from": [ns_peer(mns, key, value)],
                        "ports": [{"protocol": "TCP", "port": super::monitoring::LINKERD_ADMIN_PORT}]
                    }]
                }),
            ));
        }
        let mut l7 = Vec::new();
        // Declared dependencies.
        for w in &ns.workloads {
            for (k, d) in w.depends_on.iter().enumerate() {
                let (tns, tname) = d
                    .workload
                    .split_once('/')
                    .unwrap_or((ns.name.as_str(), d.workload.as_str()));
                let Some((target_ns, target)) = find(tns, tname) else {
                    warnings.push(Diagnostic::new(
                        Code::RenderRemoteDependency,
                        format!("cluster/{}/namespace/{}/workload/{}/dependsOn[{k}]", c.name, ns.name, w.name),
                        format!(
                            "`{}/{}` depends on `{tns}/{tname}`, which does not run in cluster `{}`: only the egress to the other clusters' gateways is rendered",
                            ns.name, w.name, c.name
                        ),
                    ));
                    continue;
                };
                let allow = Allow {
                    from: Side {
                        namespace: ns.name.clone(),
                        name: w.name.clone(),
                        labels: pod_labels(w),
                    },
                    to: Side {
                        namespace: target_ns.name.clone(),
                        name: target.name.clone(),
                        labels: pod_labels(target),
                    },
                    port: d.port,
                    protocol: proto(d.protocol).into(),
                    http: d
                        .http
                        .iter()
                        .map(|r| {
                            (
                                r.method.clone().unwrap_or_else(|| ".*".into()),
                                r.path.clone().unwrap_or_else(|| "/.*".into()),
                            )
                        })
                        .collect(),
                };
                for p in allow.policies() {
                    if p["kind"] == "CiliumNetworkPolicy" {
                        l7.push(p);
                    } else {
                        docs.push(p);
                    }
                }
            }
        }
        // Cross-cluster calls leave through the other clusters' multicluster gateways.
        let clients: Vec<&Workload> = ns
            .workloads
            .iter()
            .filter(|w| !w.depends_on.is_empty())
            .collect();
        if exported(ns) && !clients.is_empty() && !linked.is_empty() {
            let mut blocks: Vec<Value> = Vec::new();
            for o in &linked {
                if let Some(net) = ctx.t.spec.networks.iter().find(|n| n.name == o.network) {
                    for cidr in net.cidrs.iter().filter_map(|c| c.net()) {
                        let b = json!({"ipBlock": {"cidr": cidr.to_string()}});
                        if !blocks.contains(&b) {
                            blocks.push(b);
                        }
                    }
                }
            }
            if !blocks.is_empty() {
                for w in &clients {
                    docs.push(network_policy(
                        &ns.name,
                        &format!("allow-egress-{}-to-remote-gateways", w.name),
                        json!({
                            "podSelector": {"matchLabels": pod_labels(w)},
                            "policyTypes": ["Egress"],
                            "egress": [{"to": blocks, "ports": [{"protocol": "TCP", "port": GATEWAY_PORT}]}]
                        }),
                    ));
                }
            }
        }
        // Entry points: the ingress controller for load-balanced hostnames
        // (and Google's load balancers for GKE's global Ingress), and the
        // multicluster gateway for exported services.
        for w in ns.workloads.iter().filter(|w| !w.ports.is_empty()) {
            let serves_hostname = entry_points
                .iter()
                .any(|(hns, svc)| *hns == ns.name && *svc == w.service_name());
            if serves_hostname {
                let mut from = vec![ns_peer(INGRESS_NGINX.0, INGRESS_NGINX.1, INGRESS_NGINX.2)];
                if c.flavour == ClusterFlavour::Gke {
                    from.extend(GCLB_RANGES.iter().map(|r| json!({"ipBlock": {"cidr": r}})));
                }
                docs.push(network_policy(
                    &ns.name,
                    &format!("allow-ingress-to-{}", w.name),
                    json!({
                        "podSelector": {"matchLabels": pod_labels(w)},
                        "policyTypes": ["Ingress"],
                        "ingress": [{"from": from, "ports": port_list(w)}]
                    }),
                ));
            }
            if exported(ns) && !linked.is_empty() {
                docs.push(network_policy(
                    &ns.name,
                    &format!("allow-gateway-to-{}", w.name),
                    json!({
                        "podSelector": {"matchLabels": pod_labels(w)},
                        "policyTypes": ["Ingress"],
                        "ingress": [{
                            "from": [ns_peer(LINKERD_GATEWAY.0, LINKERD_GATEWAY.1, LINKERD_GATEWAY.2)],
                            "ports": port_list(w)
                        }]
                    }),
                ));
            }
        }
        let docs = docs.into_iter().map(builtin).collect::<Result<Vec<_>>>()?;
        out.add(
            format!("policies/{}/network-policies.yaml", ns.name),
            DocKind::BuiltIn,
            docs,
        );
        out.add(
            format!("policies/{}/cilium-l7-policies.yaml", ns.name),
            DocKind::Custom,
            l7,
        );
    }
    ingress_controller(&local, &entry_points, out)?;
    out.add(
        "preview/inventory.yaml",
        DocKind::Preview,
        preview(c, &local, super::monitoring::agents(ctx))?,
    );
    Ok(())
}

/// The ingress controller's namespace, which the rendered Ingresses rely
/// on, under the same zero trust as every namespace mcnet writes: default
/// deny, DNS, HTTP and HTTPS from anywhere to the controller, the
/// controller to the backends it routes to (only their ports), and the
/// controller to the API server it watches (Cilium's `kube-apiserver`
/// entity, as no NetworkPolicy can name it).
fn ingress_controller(
    local: &[&Namespace],
    entry_points: &[(&str, &str)],
    out: &mut ClusterRender,
) -> Result<()> {
    let backends: Vec<(&Namespace, &Workload)> = entry_points
        .iter()
        .filter_map(|(ns, svc)| {
            let n = local.iter().find(|n| n.name == *ns)?;
            let w = n.workloads.iter().find(|w| w.service_name() == *svc)?;
            Some((*n, w))
        })
        .collect();
    if backends.is_empty() {
        return Ok(());
    }
    let (ns, key, value) = INGRESS_NGINX;
    let controller = json!({"matchLabels": {key: value}});
    out.add(
        format!("namespaces/{ns}.yaml"),
        DocKind::BuiltIn,
        vec![builtin(json!({
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": ns, "labels": {"kubernetes.io/metadata.name": ns}}
        }))?],
    );
    let from_world = vec![
        json!({"ipBlock": {"cidr": "0.0.0.0/0"}}),
        json!({"ipBlock": {"cidr": "::/0"}}),
    ];
    let to_backends: Vec<Value> = backends
        .iter()
        .map(|(n, w)| {
            json!({
                "to": [{
                    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": n.name}},
                    "podSelector": {"matchLabels": pod_labels(w)}
                }],
                "ports": port_list(w)
            })
        })
        .collect();
    let docs = vec![
        generate::default_deny(ns),
        generate::allow_dns(ns),
        labelled(
            network_policy(
                ns,
                "allow-http-https-from-anywhere",
                json!({
                    "podSelector": controller,
                    "policyTypes": ["Ingress"],
                    "ingress": [{
                        "from": from_world,
                        "ports": [{"protocol": "TCP", "port": 80}, {"protocol": "TCP", "port": 443}]
                    }]
                }),
            ),
            // The ingress controller is the cluster's public entry point.
            LINT_ALLOW_LABEL,
            "world-open",
        ),
        network_policy(
            ns,
            "allow-to-backends",
            json!({
                "podSelector": controller,
                "policyTypes": ["Egress"],
                "egress": to_backends
            }),
        ),
    ];
    out.add(
        format!("policies/{ns}/network-policies.yaml"),
        DocKind::BuiltIn,
        docs.into_iter().map(builtin).collect::<Result<Vec<_>>>()?,
    );
    out.add(
        format!("policies/{ns}/cilium-policies.yaml"),
        DocKind::Custom,
        vec![json!({
            "apiVersion": "cilium.io/v2",
            "kind": "CiliumNetworkPolicy",
            "metadata": {"name": "allow-kube-apiserver", "namespace": ns},
            "spec": {
                "endpointSelector": controller,
                "egress": [{
                    "toEntities": ["kube-apiserver"],
                    "toPorts": [{"ports": [{"port": "443", "protocol": "TCP"}, {"port": "6443", "protocol": "TCP"}]}]
                }]
            }
        })],
    );
    Ok(())
}

/// Sample pods: one per workload, plus the system pods the policies name,
/// with addresses from the cluster's pod CIDR.
fn preview(c: &Cluster, local: &[&Namespace], agents: (bool, bool)) -> Result<Vec<Value>> {
    let mut hosts = c.pod_cidr.net().into_iter().flat_map(|n| n.hosts()).skip(9);
    let mut docs = Vec::new();
    let mut pod = |ns: &str, name: &str, labels: Value, ports: Vec<Value>| -> Result<()> {
        let ip = hosts.next().map(|ip| ip.to_string()).unwrap_or_default();
        docs.push(builtin(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": ns, "labels": labels},
            "spec": {"containers": [{"name": "main", "ports": ports}]},
            "status": {"podIP": ip}
        }))?);
        Ok(())
    };
    let system: [(&str, &str, &str, &[u16]); 4] = [
        (KUBE_DNS.0, KUBE_DNS.1, KUBE_DNS.2, &[53]),
        (
            INGRESS_NGINX.0,
            INGRESS_NGINX.1,
            INGRESS_NGINX.2,
            &[80, 443],
        ),
        (
            LINKERD_GATEWAY.0,
            LINKERD_GATEWAY.1,
            LINKERD_GATEWAY.2,
            &[GATEWAY_PORT, 4191],
        ),
        (
            LINKERD_CONTROL_PLANE,
            "linkerd.io/control-plane-component",
            "destination",
            &LINKERD_CONTROL_PORTS,
        ),
    ];
    let mut namespaces = Vec::new();
    let (vmagent, vector) = (super::monitoring::VMAGENT, super::monitoring::VECTOR_AGENT);
    let monitoring = [(vmagent, 8429, agents.0), (vector, 8686, agents.1)];
    for ((ns, key, value), port, runs) in monitoring {
        if runs {
            if !namespaces.iter().any(|n| n == ns) {
                namespaces.push(ns.to_string());
            }
            let ports = vec![json!({"containerPort": port, "protocol": "TCP"})];
            pod(ns, &format!("{value}-0"), json!({key: value}), ports)?;
        }
    }
    for (ns, key, value, ports) in system {
        namespaces.push(ns.to_string());
        let ports = ports
            .iter()
            .map(|p| json!({"containerPort": p, "protocol": "TCP"}))
            .collect();
        pod(ns, &format!("{value}-0"), json!({key: value}), ports)?;
    }
    for ns in local {
        for w in &ns.workloads {
            let ports = w
                .ports
                .iter()
                .map(|p| json!({"name": p.name, "containerPort": p.port, "protocol": proto(p.protocol)}))
                .collect();
            pod(
                &ns.name,
                &format!("{}-0", w.name),
                json!(pod_labels(w)),
                ports,
            )?;
        }
    }
    let mut out: Vec<Value> = namespaces
        .into_iter()
        .map(|n| {
            builtin(json!({
                "apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": n, "labels": {"kubernetes.io/metadata.name": n, PLATFORM_LABEL: "true"}}
            }))
        })
        .collect::<Result<_>>()?;
    out.extend(docs);
    Ok(out)
}
