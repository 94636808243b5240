//! Ingress: Nginx Ingress objects for the hostnames a cluster serves, the
//! cloud's load balancer in front of the ingress controller (the ADR's
//! second tier), and on GKE the ADR's global Ingress with its managed
//! certificate. Every load balancer checks health as the GSLB does
//! (`loadBalancing.healthCheck`), within what each cloud accepts.

use serde_json::{json, Map, Value};

use super::zero_trust::INGRESS_NGINX;
use super::{builtin, ClusterRender, Context, DocKind};
use crate::topology::{Cluster, ClusterFlavour, HealthCheck};
use crate::Result;

/// The BackendConfig that gives GKE's load balancer the GSLB's health check.
pub(super) const GKE_BACKEND_CONFIG: &str = "mcnet-ingress-health";

/// The annotations the cloud's controller reads on a `LoadBalancer`
/// Service, with the health check in each cloud's terms: AWS's load
/// balancer controller (an NLB to the controller pods' IPs; interval 5–300
/// s, timeout 2–120 s, thresholds 2–10), Azure's cloud provider (probe
/// interval ≥ 5 s), and on GKE a backend-service-based network load
/// balancer (which checks the Service's `healthCheckNodePort`: GKE takes no
/// path or interval for it).
pub fn load_balancer_annotations(flavour: ClusterFlavour, h: &HealthCheck) -> Map<String, Value> {
    let mut a = Map::new();
    let mut put = |k: &str, v: String| {
        a.insert(k.to_string(), Value::String(v));
    };
    let interval = h.interval_seconds.max(5);
    match flavour {
        ClusterFlavour::Eks => {
            let aws = "service.beta.kubernetes.io/aws-load-balancer";
            put(&format!("{aws}-type"), "external".into());
            put(&format!("{aws}-nlb-target-type"), "ip".into());
            put(&format!("{aws}-scheme"), "internet-facing".into());
            put(
                &format!("{aws}-healthcheck-protocol"),
                if h.tcp { "TCP" } else { "HTTP" }.into(),
            );
            put(&format!("{aws}-healthcheck-port"), h.port.to_string());
            if !h.tcp {
                put(&format!("{aws}-healthcheck-path"), h.path.clone());
            }
            put(&format!("{aws}-healthcheck-interval"), interval.to_string());
            put(
                &format!("{aws}-healthcheck-timeout"),
                h.timeout_seconds.clamp(2, 120).to_string(),
            );
            put(
                &format!("{aws}-healthcheck-healthy-threshold"),
                h.healthy_threshold.clamp(2, 10).to_string(),
            );
            put(
                &format!("{aws}-healthcheck-unhealthy-threshold"),
                h.unhealthy_threshold.clamp(2, 10).to_string(),
            );
        }
        ClusterFlavour::Aks => {
            let az = "service.beta.kubernetes.io/azure-load-balancer-health-probe";
            put(
                &format!("{az}-protocol"),
                if h.tcp { "tcp" } else { "http" }.into(),
            );
            if !h.tcp {
                put(&format!("{az}-request-path"), h.path.clone());
            }
            put(&format!("{az}-interval"), interval.to_string());
            put(
                &format!("{az}-num-of-probe"),
                h.unhealthy_threshold.to_string(),
            );
        }
        ClusterFlavour::Gke => {
            put("cloud.google.com/l4-rbs", "enabled".into());
        }
        ClusterFlavour::SelfManaged => {}
    }
    a
}

/// The ingress controller's `LoadBalancer` Service, with the cloud's
/// annotations; `externalTrafficPolicy: Local` keeps the client's address
/// and sends nothing to a node without a controller.
fn controller_service(c: &Cluster, h: &HealthCheck) -> Result<Value> {
    let (ns, key, value) = INGRESS_NGINX;
    builtin(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {
            "name": "ingress-nginx-controller", "namespace": ns,
            "labels": {key: value},
            "annotations": load_balancer_annotations(c.flavour, h)
        },
        "spec": {
            "type": "LoadBalancer",
            "externalTrafficPolicy": "Local",
            "selector": {key: value},
            "ports": [
                {"name": "http", "port": 80, "targetPort": 80, "protocol": "TCP"},
                {"name": "https", "port": 443, "targetPort": 443, "protocol": "TCP"}
            ]
        }
    }))
}

pub(super) fn render(ctx: &Context<'_>, c: &Cluster, out: &mut ClusterRender) -> Result<()> {
    let mut nginx = Vec::new();
    // (host, namespace, service, port) served here.
    let mut served = Vec::new();
    for h in &ctx.t.spec.load_balancing.hostnames {
        if !h.targets.iter().any(|t| t.cluster == c.name) {
            continue;
        }
        let Some((ns, svc)) = h.service.as_deref().and_then(|s| s.split_once('/')) else {
            continue;
        };
        let Some(port) = ctx
            .t
            .spec
            .namespaces
            .iter()
            .filter(|n| n.name == ns)
            .flat_map(|n| &n.workloads)
            .find(|w| w.service_name() == svc)
            .and_then(|w| w.ports.first())
            .map(|p| p.port)
        else {
            continue;
        };
        served.push((h.name.clone(), ns.to_string(), svc.to_string(), port));
        nginx.push(builtin(json!({
            "apiVersion": "networking.k8s.io/v1",
            "kind": "Ingress",
            "metadata": {
                "name": h.name.replace('.', "-"),
                "namespace": ns,
                "annotations": {"nginx.ingress.kubernetes.io/ssl-redirect": "true"}
            },
            "spec": {
                "ingressClassName": "nginx",
                "tls": [{"hosts": [h.name], "secretName": format!("{}-tls", h.name.replace('.', "-"))}],
                "rules": [{
                    "host": h.name,
                    "http": {"paths": [{
                        "path": "/",
                        "pathType": "Prefix",
                        "backend": {"service": {"name": svc, "port": {"number": port}}}
                    }]}
                }]
            }
        }))?);
    }
    if !nginx.is_empty() {
        out.add(
            "ingress/load-balancer.yaml",
            DocKind::BuiltIn,
            vec![controller_service(
                c,
                &ctx.t.spec.load_balancing.health_check,
            )?],
        );
    }
    out.add("ingress/nginx.yaml", DocKind::BuiltIn, nginx);

    if c.flavour == ClusterFlavour::Gke && !served.is_empty() {
        // The ADR's global entry: one certificate for every hostname, one
        // Ingress per namespace (an Ingress only reaches Services of its own).
        let domains: Vec<&str> = served.iter().map(|s| s.0.as_str()).collect();
        let (mut certs, mut docs) = (Vec::new(), Vec::new());
        let mut namespaces: Vec<&str> = served.iter().map(|s| s.1.as_str()).collect();
        namespaces.sort();
        namespaces.dedup();
        let h = &ctx.t.spec.load_balancing.health_check;
        // GKE's Ingress checks over HTTP only: with a TCP check it keeps
        // its default (`GET /` on the serving port).
        let mut health = json!({
            "checkIntervalSec": h.interval_seconds,
            "timeoutSec": h.timeout_seconds,
            "healthyThreshold": h.healthy_threshold,
            "unhealthyThreshold": h.unhealthy_threshold
        });
        if !h.tcp {
            health["type"] = json!("HTTP");
            health["requestPath"] = json!(h.path);
        }
        let mut backend_configs = Vec::new();
        for ns in namespaces {
            // The backends' health check (GKE checks each NEG endpoint on
            // its serving port); the Services name it (see zero_trust).
            backend_configs.push(json!({
                "apiVersion": "cloud.google.com/v1",
                "kind": "BackendConfig",
                "metadata": {"name": GKE_BACKEND_CONFIG, "namespace": ns},
                "spec": {"healthCheck": health}
            }));
            certs.push(json!({
                "apiVersion": "networking.gke.io/v1",
                "kind": "ManagedCertificate",
                "metadata": {"name": "global-ssl-cert", "namespace": ns},
                "spec": {"domains": domains}
            }));
            let rules: Vec<Value> = served
                .iter()
                .filter(|s| s.1 == ns)
                .map(|(host, _, svc, port)| {
                    json!({"host": host, "http": {"paths": [{
                        "path": "/*",
                        "pathType": "ImplementationSpecific",
                        "backend": {"service": {"name": svc, "port": {"number": port}}}
                    }]}})
                })
                .collect();
            docs.push(builtin(json!({
                "apiVersion": "networking.k8s.io/v1",
                "kind": "Ingress",
                "metadata": {
                    "name": "global-ingress",
                    "namespace": ns,
                    "annotations": {
                        "kubernetes.io/ingress.global-static-ip-name": "global-ip",
                        "networking.gke.io/managed-certificates": "global-ssl-cert",
                        "kubernetes.io/ingress.class": "gce"
                    }
                },
                "spec": {"rules": rules}
            }))?);
        }
        out.add(
            "ingress/gke-managed-certificate.yaml",
            DocKind::Custom,
            certs,
        );
        out.add("ingress/gke-global-ingress.yaml", DocKind::BuiltIn, docs);
        out.add(
            "ingress/gke-backend-config.yaml",
            DocKind::Custom,
            backend_configs,
        );
    }
    Ok(())
}
