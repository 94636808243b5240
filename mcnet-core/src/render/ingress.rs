//! Ingress: Nginx Ingress objects for the hostnames a cluster serves, and on
//! GKE the ADR's global Ingress with its managed certificate.

use serde_json::{json, Value};

use super::{builtin, ClusterRender, Context, DocKind};
use crate::topology::{Cluster, ClusterFlavour};
use crate::Result;

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
    out.add("ingress/nginx.yaml", DocKind::BuiltIn, nginx);

    if c.flavour == ClusterFlavour::Gke && !served.is_empty() {
        // The ADR's global entry: one certificate for every hostname, one
        // Ingress per namespace (an Ingress only reaches Services of its own).
        let domains: Vec<&str> = served.iter().map(|s| s.0.as_str()).collect();
        let (mut certs, mut docs) = (Vec::new(), Vec::new());
        let mut namespaces: Vec<&str> = served.iter().map(|s| s.1.as_str()).collect();
        namespaces.sort();
        namespaces.dedup();
        for ns in namespaces {
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
    }
    Ok(())
}
