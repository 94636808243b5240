//! Linkerd: multicluster Links, and Server / MeshTLSAuthentication /
//! AuthorizationPolicy for every exported port.

use serde_json::{json, Value};

use super::zero_trust::{exported, pod_labels, GATEWAY_PORT, INGRESS_NGINX};
use super::{ClusterRender, Context, DocKind};
use crate::topology::Cluster;
use crate::Result;

/// Namespace of Linkerd's multicluster extension.
const MULTICLUSTER_NS: &str = "linkerd-multicluster";
/// Service account of the multicluster gateway.
const GATEWAY_SA: &str = "linkerd-gateway";

pub(super) fn render(ctx: &Context<'_>, c: &Cluster, out: &mut ClusterRender) -> Result<()> {
    let td = &ctx.opts.trust_domain;
    // One Link per other linked cluster: this cluster mirrors that one's exported services.
    let links: Vec<Value> = ctx
        .linked_clusters(c)
        .iter()
        .map(|target| {
            json!({
                "apiVersion": "multicluster.linkerd.io/v1alpha3",
                "kind": "Link",
                "metadata": {
                    "name": target.name,
                    "namespace": MULTICLUSTER_NS,
                    "labels": {"mcnet.io/topology": ctx.t.metadata.name}
                },
                "spec": {
                    "targetClusterName": target.name,
                    "targetClusterDomain": td,
                    "targetClusterLinkerdNamespace": "linkerd",
                    "clusterCredentialsSecret": format!("cluster-credentials-{}", target.name),
                    "gatewayAddress": format!("linkerd-gateway.{}.{}", target.name, ctx.domain),
                    "gatewayPort": GATEWAY_PORT.to_string(),
                    "gatewayIdentity": ctx.identity(MULTICLUSTER_NS, GATEWAY_SA),
                    "probeSpec": {"path": "/ready", "port": "4191", "period": "3s", "failureThreshold": "3", "timeout": "30s"},
                    "selector": {"matchLabels": {"mirror.linkerd.io/exported": "true"}},
                    "remoteDiscoverySelector": {"matchLabels": {"mirror.linkerd.io/exported": "remote-discovery"}},
                    "federatedServiceSelector": {"matchLabels": {"mirror.linkerd.io/federated": "member"}}
                }
            })
        })
        .collect();
    out.add("linkerd/links.yaml", DocKind::Custom, links);

    // Authorization for every exported port: the declared clients (in any
    // cluster: identities are the same everywhere under one trust root), the
    // multicluster gateway, and the ingress controller for hostnames.
    for ns in ctx.namespaces_in(c).filter(|n| exported(n)) {
        let mut docs = Vec::new();
        for w in ns.workloads.iter().filter(|w| !w.ports.is_empty()) {
            let serves_hostname = ctx.t.spec.load_balancing.hostnames.iter().any(|h| {
                h.service.as_deref() == Some(&format!("{}/{}", ns.name, w.service_name()))
            });
            for p in &w.ports {
                let mut identities: Vec<String> = Vec::new();
                for cns in &ctx.t.spec.namespaces {
                    for client in &cns.workloads {
                        let calls = client.depends_on.iter().any(|d| {
                            let (dns, dname) = d
                                .workload
                                .split_once('/')
                                .unwrap_or((cns.name.as_str(), d.workload.as_str()));
                            dns == ns.name && dname == w.name && d.port == p.port
                        });
                        if calls {
                            identities.push(ctx.identity(&cns.name, &client.name));
                        }
                    }
                }
                identities.push(ctx.identity(MULTICLUSTER_NS, GATEWAY_SA));
                if serves_hostname {
                    identities.push(ctx.identity(INGRESS_NGINX.0, INGRESS_NGINX.0));
                }
                identities.sort();
                identities.dedup();
                let server = format!("{}-{}", w.name, p.name);
                docs.push(json!({
                    "apiVersion": "policy.linkerd.io/v1beta3",
                    "kind": "Server",
                    "metadata": {"name": server, "namespace": ns.name},
                    "spec": {
                        "podSelector": {"matchLabels": pod_labels(w)},
                        "port": p.name,
                        "accessPolicy": "deny"
                    }
                }));
                docs.push(json!({
                    "apiVersion": "policy.linkerd.io/v1alpha1",
                    "kind": "MeshTLSAuthentication",
                    "metadata": {"name": format!("{server}-clients"), "namespace": ns.name},
                    "spec": {"identities": identities}
                }));
                docs.push(json!({
                    "apiVersion": "policy.linkerd.io/v1alpha1",
                    "kind": "AuthorizationPolicy",
                    "metadata": {"name": format!("{server}-authz"), "namespace": ns.name},
                    "spec": {
                        "targetRef": {"group": "policy.linkerd.io", "kind": "Server", "name": server},
                        "requiredAuthenticationRefs": [{
                            "group": "policy.linkerd.io",
                            "kind": "MeshTLSAuthentication",
                            "name": format!("{server}-clients")
                        }]
                    }
                }));
            }
        }
        out.add(
            format!("linkerd/{}/authorization.yaml", ns.name),
            DocKind::Custom,
            docs,
        );
    }
    Ok(())
}
