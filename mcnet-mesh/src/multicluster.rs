//! Linkerd multicluster: the Link resource, the gateway Service, the
//! remote-access credentials, what the service mirror makes of a remote
//! cluster's exported services, the checks to run before linking, and
//! server-side apply through kube.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use k8s_openapi::api::core::v1::{Endpoints, Secret, Service, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use k8s_openapi::ByteString;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::gateway::{GATEWAY_PORT, PROBE_PORT};
use crate::identity::{IssuerCa, TrustBundle, CLOCK_SKEW_ALLOWANCE};
use crate::x509::pem_certs;
use crate::{Error, Result};

/// Namespace of the multicluster extension.
pub const NAMESPACE: &str = "linkerd-multicluster";
/// The gateway's name (Service, Deployment and service account).
pub const GATEWAY_NAME: &str = "linkerd-gateway";
/// The service account a linking cluster uses to read this one.
pub const REMOTE_ACCESS_SA: &str = "linkerd-service-mirror-remote-access-default";
/// Label value that exports a service (mirrored with endpoints through the gateway).
pub const EXPORTED: &str = "mirror.linkerd.io/exported";
/// Label that makes a service a member of a federated service.
pub const FEDERATED: &str = "mirror.linkerd.io/federated";

/// A selector as Links carry them.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LabelSelector {
    /// Exact labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub match_labels: BTreeMap<String, String>,
}

impl LabelSelector {
    fn one(k: &str, v: &str) -> LabelSelector {
        LabelSelector {
            match_labels: [(k.to_string(), v.to_string())].into(),
        }
    }
}

/// The gateway probe a Link configures.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProbeSpec {
    /// Consecutive failures before the gateway counts as down.
    pub failure_threshold: String,
    /// Probe path.
    pub path: String,
    /// Interval (`3s`).
    pub period: String,
    /// Probe port.
    pub port: String,
    /// Request timeout.
    pub timeout: String,
}

/// Linkerd's Link (`multicluster.linkerd.io/v1alpha3`): this cluster
/// mirrors the target cluster's exported services.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "multicluster.linkerd.io",
    version = "v1alpha3",
    kind = "Link",
    namespaced
)]
#[serde(rename_all = "camelCase")]
pub struct LinkSpec {
    /// The target cluster's name.
    pub target_cluster_name: String,
    /// Its DNS domain.
    pub target_cluster_domain: String,
    /// Where Linkerd runs there.
    pub target_cluster_linkerd_namespace: String,
    /// The Secret holding the kubeconfig to read the target cluster.
    pub cluster_credentials_secret: String,
    /// The target's gateway address.
    pub gateway_address: String,
    /// The target's gateway port (a string in the CRD).
    pub gateway_port: String,
    /// The target gateway's mesh identity.
    pub gateway_identity: String,
    /// Gateway health probe.
    pub probe_spec: ProbeSpec,
    /// Services mirrored with endpoints through the gateway.
    pub selector: LabelSelector,
    /// Services mirrored in remote-discovery mode.
    pub remote_discovery_selector: LabelSelector,
    /// Services joining federated services.
    pub federated_service_selector: LabelSelector,
}

/// What a Link needs to know of its target.
#[derive(Clone, Debug)]
pub struct LinkTarget {
    /// Cluster name.
    pub cluster: String,
    /// Gateway address (DNS name or IP).
    pub gateway_address: String,
    /// Trust domain.
    pub trust_domain: String,
}

fn gateway_identity(trust_domain: &str) -> String {
    format!("{GATEWAY_NAME}.{NAMESPACE}.serviceaccount.identity.linkerd.{trust_domain}")
}

/// The Link a cluster creates to mirror `target`.
pub fn link(target: &LinkTarget) -> Link {
    let mut l = Link::new(
        &target.cluster,
        LinkSpec {
            target_cluster_name: target.cluster.clone(),
            target_cluster_domain: target.trust_domain.clone(),
            target_cluster_linkerd_namespace: "linkerd".into(),
            cluster_credentials_secret: credentials_secret_name(&target.cluster),
            gateway_address: target.gateway_address.clone(),
            gateway_port: GATEWAY_PORT.to_string(),
            gateway_identity: gateway_identity(&target.trust_domain),
            probe_spec: ProbeSpec {
                failure_threshold: "3".into(),
                path: "/ready".into(),
                period: "3s".into(),
                port: PROBE_PORT.to_string(),
                timeout: "30s".into(),
            },
            selector: LabelSelector::one(EXPORTED, "true"),
            remote_discovery_selector: LabelSelector::one(EXPORTED, "remote-discovery"),
            federated_service_selector: LabelSelector::one(FEDERATED, "member"),
        },
    );
    l.metadata.namespace = Some(NAMESPACE.into());
    l
}

fn typed<T: serde::de::DeserializeOwned>(what: &str, v: Value) -> Result<T> {
    serde_json::from_value(v).map_err(|e| Error::Invalid(format!("{what}: {e}")))
}

/// The gateway's LoadBalancer Service (mTLS on 4143, probe on 4191).
pub fn gateway_service(trust_domain: &str) -> Result<Service> {
    typed(
        "gateway Service",
        json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {
                "name": GATEWAY_NAME, "namespace": NAMESPACE,
                "annotations": {
                    "mirror.linkerd.io/gateway-identity": gateway_identity(trust_domain),
                    "mirror.linkerd.io/probe-path": "/ready",
                    "mirror.linkerd.io/probe-period": "3",
                    "mirror.linkerd.io/multicluster-gateway": "true",
                    "component": "gateway"
                },
                "labels": {"linkerd.io/extension": "multicluster", "app": GATEWAY_NAME}
            },
            "spec": {
                "type": "LoadBalancer",
                "selector": {"app": GATEWAY_NAME},
                "ports": [
                    {"name": "mc-gateway", "port": GATEWAY_PORT, "protocol": "TCP"},
                    {"name": "mc-probe", "port": PROBE_PORT, "protocol": "TCP"}
                ]
            }
        }),
    )
}

fn credentials_secret_name(target: &str) -> String {
    format!("cluster-credentials-{target}")
}

/// What a cluster must hold so that others may link to it: the remote-access
/// service account, its read-only role and binding, and a token Secret the
/// API server fills in.
#[derive(Clone, Debug, Serialize)]
pub struct RemoteAccess {
    /// The service account.
    pub service_account: ServiceAccount,
    /// Read access to services, endpoints and Links.
    pub role: ClusterRole,
    /// The binding.
    pub binding: ClusterRoleBinding,
    /// A `kubernetes.io/service-account-token` Secret for the account.
    pub token: Secret,
}

/// The remote-access credentials of a cluster others link to (what
/// `linkerd multicluster install` creates on the target).
pub fn remote_access() -> Result<RemoteAccess> {
    Ok(RemoteAccess {
        service_account: typed(
            "ServiceAccount",
            json!({"apiVersion": "v1", "kind": "ServiceAccount",
                   "metadata": {"name": REMOTE_ACCESS_SA, "namespace": NAMESPACE}}),
        )?,
        role: typed(
            "ClusterRole",
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": "linkerd-service-mirror-remote-access-default"},
            "rules": [
                {"apiGroups": ["apps"], "resources": ["replicasets"], "verbs": ["list", "get", "watch"]},
                {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["list", "get", "watch"]},
                {"apiGroups": [""], "resources": ["pods", "endpoints", "services"], "verbs": ["list", "get", "watch"]},
                {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["list", "get", "watch"]},
                {"apiGroups": ["policy.linkerd.io"], "resources": ["servers"], "verbs": ["list", "get", "watch"]},
                {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"], "resourceNames": ["linkerd-config"]},
                {"apiGroups": [""], "resources": ["events"], "verbs": ["create", "patch"]}
            ]}),
        )?,
        binding: typed(
            "ClusterRoleBinding",
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                "metadata": {"name": "linkerd-service-mirror-remote-access-default"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "linkerd-service-mirror-remote-access-default"},
                "subjects": [{"kind": "ServiceAccount", "name": REMOTE_ACCESS_SA, "namespace": NAMESPACE}]}),
        )?,
        token: typed(
            "Secret",
            json!({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/service-account-token",
                "metadata": {"name": format!("{REMOTE_ACCESS_SA}-token"), "namespace": NAMESPACE,
                    "annotations": {"kubernetes.io/service-account.name": REMOTE_ACCESS_SA}}}),
        )?,
    })
}

/// The Secret a linking cluster holds: a kubeconfig reaching the target's
/// API server as the remote-access account.
pub fn credentials_secret(
    target: &str,
    api_server: &str,
    api_ca_pem: &str,
    token: &str,
) -> Result<Secret> {
    let ca = ByteString(api_ca_pem.as_bytes().to_vec());
    let ca_b64 = serde_json::to_value(&ca)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_default();
    let kubeconfig = serde_yaml::to_string(&json!({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": target, "cluster": {"server": api_server, "certificate-authority-data": ca_b64}}],
        "users": [{"name": REMOTE_ACCESS_SA, "user": {"token": token}}],
        "contexts": [{"name": target, "context": {"cluster": target, "user": REMOTE_ACCESS_SA}}],
        "current-context": target
    }))
    .map_err(|e| Error::Invalid(format!("kubeconfig: {e}")))?;
    let mut s: Secret = typed(
        "Secret",
        json!({"apiVersion": "v1", "kind": "Secret", "type": "mirror.linkerd.io/remote-kubeconfig",
            "metadata": {"name": credentials_secret_name(target), "namespace": NAMESPACE,
                "labels": {"multicluster.linkerd.io/cluster-name": target}}}),
    )?;
    s.data = Some(
        [(
            "kubeconfig".to_string(),
            ByteString(kubeconfig.into_bytes()),
        )]
        .into(),
    );
    Ok(s)
}

/// A remote cluster as the service mirror sees it.
#[derive(Clone, Debug)]
pub struct RemoteCluster {
    /// Its name (the suffix of mirrored services).
    pub name: String,
    /// Its gateway's address: an IP for the mirrored endpoints.
    pub gateway_ip: String,
    /// Its trust domain.
    pub trust_domain: String,
    /// Its services (with their labels).
    pub services: Vec<Service>,
}

/// What the service mirror creates locally.
#[derive(Clone, Debug, Default)]
pub struct Mirror {
    /// Mirrored and federated Services.
    pub services: Vec<Service>,
    /// Endpoints of the mirrored Services (the remote gateway).
    pub endpoints: Vec<Endpoints>,
}

fn label<'a>(s: &'a Service, k: &str) -> Option<&'a str> {
    s.metadata.labels.as_ref()?.get(k).map(String::as_str)
}

/// Computes the service mirror's output for `remotes` (and, for federated
/// services, the `local` cluster's own members):
///
/// - `mirror.linkerd.io/exported=true`: `<svc>-<cluster>` with the remote
///   gateway as endpoints on port 4143;
/// - `mirror.linkerd.io/exported=remote-discovery`: `<svc>-<cluster>`
///   without endpoints, resolved by the destination controller in the remote
///   cluster (labels `multicluster.linkerd.io/remote-discovery` and
///   `multicluster.linkerd.io/remote-service`);
/// - `mirror.linkerd.io/federated=member`: one `<svc>-federated` per
///   namespace and name, listing every member as `<svc>@<cluster>`.
pub fn mirror(local: &RemoteCluster, remotes: &[RemoteCluster]) -> Result<Mirror> {
    let mut out = Mirror::default();
    let mut federated: BTreeMap<(String, String), (Vec<String>, Option<Service>)> = BTreeMap::new();
    let mut note_member = |cluster: &str, svc: &Service, remote: bool| {
        let ns = svc
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let name = svc.metadata.name.clone().unwrap_or_default();
        let e = federated.entry((ns, name.clone())).or_default();
        if remote {
            e.0.push(format!("{name}@{cluster}"));
        }
        if e.1.is_none() {
            e.1 = Some(svc.clone());
        }
    };
    for s in local
        .services
        .iter()
        .filter(|s| label(s, FEDERATED) == Some("member"))
    {
        note_member(&local.name, s, false);
    }
    for r in remotes {
        for s in &r.services {
            let name = s.metadata.name.clone().unwrap_or_default();
            let ns = s
                .metadata
                .namespace
                .clone()
                .unwrap_or_else(|| "default".into());
            let ports: Vec<Value> = s
                .spec
                .as_ref()
                .and_then(|sp| sp.ports.clone())
                .unwrap_or_default()
                .iter()
                .map(|p| json!({"name": p.name, "port": p.port, "protocol": p.protocol.clone().unwrap_or_else(|| "TCP".into()), "targetPort": p.target_port}))
                .collect();
            let mirrored = format!("{name}-{}", r.name);
            // The remote labels travel, but not mirror.linkerd.io's own.
            let mut labels: BTreeMap<String, String> = s
                .metadata
                .labels
                .clone()
                .unwrap_or_default()
                .into_iter()
                .filter(|(k, _)| !k.starts_with("mirror.linkerd.io/"))
                .collect();
            labels.insert("mirror.linkerd.io/mirrored-service".into(), "true".into());
            labels.insert("mirror.linkerd.io/cluster-name".into(), r.name.clone());
            let base_meta = json!({
                "name": mirrored, "namespace": ns, "labels": labels,
                "annotations": {
                    "mirror.linkerd.io/remote-svc-fq-name": format!("{name}.{ns}.svc.{}", r.trust_domain)
                }
            });
            match label(s, EXPORTED) {
                Some("true") => {
                    out.services.push(typed(
                        "mirror Service",
                        json!({"apiVersion": "v1", "kind": "Service", "metadata": base_meta, "spec": {"ports": ports}}),
                    )?);
                    let eports: Vec<Value> = ports
                        .iter()
                        .map(
                            |p| json!({"name": p["name"], "port": GATEWAY_PORT, "protocol": "TCP"}),
                        )
                        .collect();
                    // The gateway's identity goes on the Endpoints.
                    let mut ep_meta = base_meta.clone();
                    ep_meta["annotations"]["mirror.linkerd.io/remote-gateway-identity"] =
                        json!(gateway_identity(&r.trust_domain));
                    out.endpoints.push(typed(
                        "mirror Endpoints",
                        json!({"apiVersion": "v1", "kind": "Endpoints", "metadata": ep_meta,
                            "subsets": [{"addresses": [{"ip": r.gateway_ip}], "ports": eports}]}),
                    )?);
                }
                Some("remote-discovery") => {
                    let mut meta = base_meta.clone();
                    meta["labels"]["multicluster.linkerd.io/remote-discovery"] = json!(r.name);
                    meta["labels"]["multicluster.linkerd.io/remote-service"] = json!(name);
                    out.services.push(typed(
                        "remote-discovery Service",
                        json!({"apiVersion": "v1", "kind": "Service", "metadata": meta, "spec": {"ports": ports}}),
                    )?);
                }
                _ => {}
            }
            if label(s, FEDERATED) == Some("member") {
                note_member(&r.name, s, true);
            }
        }
    }
    for ((ns, name), (members, template)) in federated {
        let ports: Vec<Value> = template
            .and_then(|t| t.spec)
            .and_then(|sp| sp.ports)
            .unwrap_or_default()
            .iter()
            .map(|p| json!({"name": p.name, "port": p.port, "protocol": p.protocol.clone().unwrap_or_else(|| "TCP".into())}))
            .collect();
        let local_member = local.services.iter().any(|s| {
            s.metadata.name.as_deref() == Some(&name) && label(s, FEDERATED) == Some("member")
        });
        let mut ann = json!({"multicluster.linkerd.io/remote-discovery": members.join(",")});
        if local_member {
            ann["multicluster.linkerd.io/local-discovery"] = json!(name);
        }
        out.services.push(typed(
            "federated Service",
            json!({"apiVersion": "v1", "kind": "Service",
                "metadata": {"name": format!("{name}-federated"), "namespace": ns,
                    "labels": {"mirror.linkerd.io/mirrored-service": "true"}, "annotations": ann},
                "spec": {"ports": ports}}),
        )?);
    }
    Ok(out)
}

/// A cluster's trust material, as seen before linking.
#[derive(Clone, Debug)]
pub struct ClusterTrust {
    /// Cluster name.
    pub name: String,
    /// The anchors it trusts.
    pub bundle: TrustBundle,
    /// Its issuer.
    pub issuer: IssuerCa,
    /// Its clock, when read.
    pub now: SystemTime,
}

/// One pre-link check.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Check {
    /// Stable name (`trust-root`, `issuer-lifetime`, `clock-skew`).
    pub name: &'static str,
    /// `ok`, `warning` or `error`.
    pub status: &'static str,
    /// What was found.
    pub message: String,
}

/// Issuers closer than this to expiry get a warning.
pub const ISSUER_WARNING: Duration = Duration::from_secs(60 * 24 * 3600);

fn not_after(pem: &str) -> Result<SystemTime> {
    let der = pem_certs(pem)?
        .into_iter()
        .next()
        .ok_or_else(|| Error::Invalid("empty certificate".into()))?;
    let (_, c) = x509_parser::parse_x509_certificate(&der)
        .map_err(|e| Error::Invalid(format!("certificate: {e}")))?;
    let t = c.validity().not_after.timestamp();
    Ok(SystemTime::UNIX_EPOCH + Duration::from_secs(t.max(0) as u64))
}

/// The checks to pass before linking `a` and `b`: a shared trust root (each
/// side's issuer chains to an anchor the other trusts, as `linkerd
/// multicluster check` requires), both issuers' remaining lifetime (a warning
/// under 60 days, as `linkerd check`), and clock skew within the
/// certificates' 20 s allowance (stricter than `linkerd check`'s node
/// heartbeat check, which allows 5 min 10 s).
pub fn check_link(a: &ClusterTrust, b: &ClusterTrust) -> Result<Vec<Check>> {
    let mut out = Vec::new();
    let shared: Vec<&String> = a
        .bundle
        .anchors()
        .iter()
        .filter(|x| b.bundle.anchors().contains(x))
        .collect();
    let verifies = |issuer: &IssuerCa, bundle: &TrustBundle| {
        signed_by_any(&issuer.ca.cert_pem, bundle).unwrap_or(false)
    };
    let ok = !shared.is_empty() && verifies(&a.issuer, &b.bundle) && verifies(&b.issuer, &a.bundle);
    out.push(Check {
        name: "trust-root",
        status: if ok { "ok" } else { "error" },
        message: if ok {
            format!(
                "{} and {} share a trust anchor that both issuers chain to",
                a.name, b.name
            )
        } else {
            format!(
                "{} and {} do not share a trust root: mTLS between them would fail",
                a.name, b.name
            )
        },
    });
    for c in [a, b] {
        let left = not_after(&c.issuer.ca.cert_pem)?
            .duration_since(c.now)
            .unwrap_or_default();
        let (status, message) = if left.is_zero() {
            ("error", format!("{}'s issuer has expired", c.name))
        } else if left < ISSUER_WARNING {
            (
                "warning",
                format!(
                    "{}'s issuer expires in {} days: rotate it before linking",
                    c.name,
                    left.as_secs() / 86400
                ),
            )
        } else {
            (
                "ok",
                format!(
                    "{}'s issuer is valid for {} more days",
                    c.name,
                    left.as_secs() / 86400
                ),
            )
        };
        out.push(Check {
            name: "issuer-lifetime",
            status,
            message,
        });
    }
    let skew = match a.now.duration_since(b.now) {
        Ok(d) => d,
        Err(e) => e.duration(),
    };
    out.push(Check {
        name: "clock-skew",
        status: if skew <= CLOCK_SKEW_ALLOWANCE {
            "ok"
        } else {
            "error"
        },
        message: format!(
            "clocks differ by {:.1} s (allowance {} s)",
            skew.as_secs_f64(),
            CLOCK_SKEW_ALLOWANCE.as_secs()
        ),
    });
    Ok(out)
}

/// Whether the first certificate of `cert_pem` is signed by one of the bundle's anchors.
fn signed_by_any(cert_pem: &str, bundle: &TrustBundle) -> Result<bool> {
    let der = pem_certs(cert_pem)?;
    let Some(der) = der.first() else {
        return Ok(false);
    };
    let (_, c) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| Error::Invalid(format!("certificate: {e}")))?;
    for a in bundle.anchors() {
        for ader in pem_certs(a)? {
            let Ok((_, anchor)) = x509_parser::parse_x509_certificate(&ader) else {
                continue;
            };
            if c.issuer() == anchor.subject()
                && c.verify_signature(Some(anchor.public_key())).is_ok()
            {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

/// The REST plural of the kinds mcnet applies.
fn plural(kind: &str) -> Option<&'static str> {
    Some(match kind {
        "Link" => "links",
        "Service" => "services",
        "Endpoints" => "endpoints",
        "ServiceAccount" => "serviceaccounts",
        "Secret" => "secrets",
        "ClusterRole" => "clusterroles",
        "ClusterRoleBinding" => "clusterrolebindings",
        "Server" => "servers",
        "AuthorizationPolicy" => "authorizationpolicies",
        "MeshTLSAuthentication" => "meshtlsauthentications",
        _ => return None,
    })
}

/// Server-side applies `docs` (field manager `mcnet`, forcing conflicts)
/// through `client`; returns `(kind, namespace/name)` of each object applied.
pub async fn apply(client: kube::Client, docs: &[Value]) -> Result<Vec<(String, String)>> {
    use kube::api::{Api, DynamicObject, Patch, PatchParams};
    use kube::discovery::ApiResource;
    let mut out = Vec::new();
    for d in docs {
        let api_version = d["apiVersion"].as_str().unwrap_or_default();
        let kind = d["kind"].as_str().unwrap_or_default();
        let name = d["metadata"]["name"]
            .as_str()
            .ok_or_else(|| Error::Invalid(format!("{kind} without metadata.name")))?;
        let plural = plural(kind)
            .ok_or_else(|| Error::Invalid(format!("{kind} `{name}`: not a kind mcnet applies")))?;
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
        let ar = ApiResource {
            group: group.into(),
            version: version.into(),
            api_version: api_version.into(),
            kind: kind.into(),
            plural: plural.into(),
        };
        let ns = d["metadata"]["namespace"].as_str();
        let api: Api<DynamicObject> = match ns {
            Some(ns) => Api::namespaced_with(client.clone(), ns, &ar),
            None => Api::all_with(client.clone(), &ar),
        };
        let obj: DynamicObject = serde_json::from_value(d.clone())
            .map_err(|e| Error::Invalid(format!("{kind} `{name}`: {e}")))?;
        api.patch(
            name,
            &PatchParams::apply("mcnet").force(),
            &Patch::Apply(&obj),
        )
        .await
        .map_err(|e| Error::kube(format!("apply {kind} `{name}`"), e))?;
        out.push((
            kind.to_string(),
            ns.map_or(name.to_string(), |ns| format!("{ns}/{name}")),
        ));
    }
    Ok(out)
}

/// [`apply`] with the client a kubeconfig file describes.
pub async fn apply_with_kubeconfig(
    path: &std::path::Path,
    docs: &[Value],
) -> Result<Vec<(String, String)>> {
    let kc = kube::config::Kubeconfig::read_from(path)
        .map_err(|e| Error::kube(format!("kubeconfig `{}`", path.display()), e))?;
    let cfg = kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
        .await
        .map_err(|e| Error::kube(format!("kubeconfig `{}`", path.display()), e))?;
    let client = kube::Client::try_from(cfg).map_err(|e| Error::kube("client", e))?;
    apply(client, docs).await
}
