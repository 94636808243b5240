//! Controller mode's Kubernetes objects: the operator's service account,
//! the RBAC it needs and nothing more, and a Deployment of two replicas
//! that elect a leader; the node agent's DaemonSet. Built from k8s-openapi's types.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{DaemonSet, DaemonSetSpec, Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{
    Affinity, Capabilities, Container, ContainerPort, EmptyDirVolumeSource, EnvVar, EnvVarSource,
    HTTPGetAction, HostPathVolumeSource, Namespace, ObjectFieldSelector, PodAffinityTerm,
    PodAntiAffinity, PodSecurityContext, PodSpec, PodTemplateSpec, Probe, ResourceRequirements,
    SeccompProfile, SecurityContext, ServiceAccount, TCPSocketAction, Toleration, Volume,
    VolumeMount, WeightedPodAffinityTerm,
};
use k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::{json, Value};

/// One rendered file.
#[derive(Clone, Debug, PartialEq)]
pub struct ManifestFile {
    /// Its path in a cluster's directory (`operator/rbac.yaml`).
    pub path: String,
    /// Whether its documents are custom resources (checked against their
    /// CRDs) rather than built-in objects.
    pub custom: bool,
    /// The objects.
    pub documents: Vec<Value>,
}

fn file(path: &str, custom: bool, documents: Vec<Value>) -> ManifestFile {
    ManifestFile {
        path: path.into(),
        custom,
        documents,
    }
}

/// Where and how the operator runs.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct OperatorManifestOptions {
    /// Its namespace (and the Lease's).
    pub namespace: String,
    /// The container image holding the `mcnet` binary.
    pub image: String,
    /// The port of `/metrics`.
    pub metrics_port: u16,
    /// The cluster's own ranges (pods, services), which the operator's
    /// egress to the outside excludes.
    pub cluster_cidrs: Vec<String>,
}

impl Default for OperatorManifestOptions {
    fn default() -> Self {
        OperatorManifestOptions {
            namespace: "mcnet-system".into(),
            image: concat!("mcnet:", env!("CARGO_PKG_VERSION")).into(),
            metrics_port: 9464,
            cluster_cidrs: Vec::new(),
        }
    }
}

const NAME: &str = "mcnet-operator";

fn meta(name: &str, namespace: Option<&str>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        namespace: namespace.map(Into::into),
        labels: Some(labels()),
        ..ObjectMeta::default()
    }
}

fn labels() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".to_string(), NAME.to_string()),
        ("app.kubernetes.io/part-of".to_string(), "mcnet".to_string()),
    ])
}

fn rule(groups: &[&str], resources: &[&str], verbs: &[&str], names: &[&str]) -> PolicyRule {
    let list = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    PolicyRule {
        api_groups: Some(list(groups)),
        resources: Some(list(resources)),
        verbs: list(verbs),
        resource_names: (!names.is_empty()).then(|| list(names)),
        ..PolicyRule::default()
    }
}

fn value<T: serde::Serialize>(kind: &str, api_version: &str, o: &T) -> Value {
    let mut v = serde_json::to_value(o).unwrap_or(Value::Null);
    v["apiVersion"] = api_version.into();
    v["kind"] = kind.into();
    v
}

/// The files `mcnet render` writes for the operator, as (path, documents):
/// `operator/crd.yaml`, `operator/rbac.yaml` and `operator/deployment.yaml`
/// (its namespace is in [`agent_manifests`], which every cluster gets).
pub fn manifests(o: &OperatorManifestOptions) -> Vec<ManifestFile> {
    let ns = o.namespace.as_str();
    let subject = Subject {
        kind: "ServiceAccount".into(),
        name: NAME.into(),
        namespace: Some(ns.into()),
        ..Subject::default()
    };
    // The Topology objects, their status and finalizers, and events: all
    // it needs across the cluster.
    let cluster_role = ClusterRole {
        metadata: meta(NAME, None),
        rules: Some(vec![
            rule(
                &["mcnet.io"],
                &["topologies"],
                &["get", "list", "watch", "patch", "update"],
                &[],
            ),
            rule(
                &["mcnet.io"],
                &["topologies/status"],
                &["get", "patch", "update"],
                &[],
            ),
            rule(&["mcnet.io"], &["topologies/finalizers"], &["update"], &[]),
            rule(&["events.k8s.io"], &["events"], &["create", "patch"], &[]),
        ]),
        ..ClusterRole::default()
    };
    let cluster_binding = ClusterRoleBinding {
        metadata: meta(NAME, None),
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "ClusterRole".into(),
            name: NAME.into(),
        },
        subjects: Some(vec![subject.clone()]),
    };
    // Its own Lease only (create cannot be limited by name).
    let lease_role = Role {
        metadata: meta("mcnet-operator-leader-election", Some(ns)),
        rules: Some(vec![
            rule(
                &["coordination.k8s.io"],
                &["leases"],
                &["get", "update"],
                &[NAME],
            ),
            rule(&["coordination.k8s.io"], &["leases"], &["create"], &[]),
        ]),
    };
    let lease_binding = RoleBinding {
        metadata: meta("mcnet-operator-leader-election", Some(ns)),
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "Role".into(),
            name: "mcnet-operator-leader-election".into(),
        },
        subjects: Some(vec![subject]),
    };
    let field = |path: &str| EnvVarSource {
        field_ref: Some(ObjectFieldSelector {
            field_path: path.into(),
            ..ObjectFieldSelector::default()
        }),
        ..EnvVarSource::default()
    };
    let container = Container {
        name: "operator".into(),
        image: Some(o.image.clone()),
        args: Some(vec![
            "operator".into(),
            "--state".into(),
            "/var/lib/mcnet".into(),
            "--metrics".into(),
            format!("0.0.0.0:{}", o.metrics_port),
        ]),
        env: Some(vec![
            EnvVar {
                name: "POD_NAME".into(),
                value_from: Some(field("metadata.name")),
                ..EnvVar::default()
            },
            EnvVar {
                name: "POD_NAMESPACE".into(),
                value_from: Some(field("metadata.namespace")),
                ..EnvVar::default()
            },
        ]),
        ports: Some(vec![ContainerPort {
            name: Some("metrics".into()),
            container_port: i32::from(o.metrics_port),
            ..ContainerPort::default()
        }]),
        readiness_probe: Some(Probe {
            tcp_socket: Some(TCPSocketAction {
                port: IntOrString::String("metrics".into()),
                ..TCPSocketAction::default()
            }),
            period_seconds: Some(10),
            ..Probe::default()
        }),
        resources: Some(ResourceRequirements {
            requests: Some(BTreeMap::from([
                ("cpu".to_string(), Quantity("50m".into())),
                ("memory".to_string(), Quantity("64Mi".into())),
            ])),
            limits: Some(BTreeMap::from([(
                "memory".to_string(),
                Quantity("256Mi".into()),
            )])),
            ..ResourceRequirements::default()
        }),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            run_as_non_root: Some(true),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".into()]),
                ..Capabilities::default()
            }),
            ..SecurityContext::default()
        }),
        volume_mounts: Some(vec![VolumeMount {
            name: "state".into(),
            mount_path: "/var/lib/mcnet".into(),
            ..VolumeMount::default()
        }]),
        ..Container::default()
    };
    let selector = BTreeMap::from([("app.kubernetes.io/name".to_string(), NAME.to_string())]);
    let deployment = Deployment {
        metadata: meta(NAME, Some(ns)),
        spec: Some(DeploymentSpec {
            replicas: Some(2),
            selector: LabelSelector {
                match_labels: Some(selector.clone()),
                ..LabelSelector::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels()),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    service_account_name: Some(NAME.into()),
                    containers: vec![container],
                    security_context: Some(PodSecurityContext {
                        run_as_non_root: Some(true),
                        run_as_user: Some(65532),
                        seccomp_profile: Some(SeccompProfile {
                            type_: "RuntimeDefault".into(),
                            ..SeccompProfile::default()
                        }),
                        ..PodSecurityContext::default()
                    }),
                    // The two replicas on different nodes where possible.
                    affinity: Some(Affinity {
                        pod_anti_affinity: Some(PodAntiAffinity {
                            preferred_during_scheduling_ignored_during_execution: Some(vec![
                                WeightedPodAffinityTerm {
                                    weight: 100,
                                    pod_affinity_term: PodAffinityTerm {
                                        label_selector: Some(LabelSelector {
                                            match_labels: Some(selector),
                                            ..LabelSelector::default()
                                        }),
                                        topology_key: "kubernetes.io/hostname".into(),
                                        ..PodAffinityTerm::default()
                                    },
                                },
                            ]),
                            ..PodAntiAffinity::default()
                        }),
                        ..Affinity::default()
                    }),
                    // The embedded simulated cloud's state; the real
                    // providers keep theirs in the clouds' ownership tags.
                    volumes: Some(vec![Volume {
                        name: "state".into(),
                        empty_dir: Some(EmptyDirVolumeSource::default()),
                        ..Volume::default()
                    }]),
                    ..PodSpec::default()
                }),
            },
            ..DeploymentSpec::default()
        }),
        ..Deployment::default()
    };
    let account = ServiceAccount {
        metadata: meta(NAME, Some(ns)),
        ..ServiceAccount::default()
    };
    // Zero trust for the operator's pods: DNS, and HTTPS to the API
    // server and the clouds' APIs (addresses outside the cluster, which the
    // lint is told it accepts); nothing in (the kubelet's probes come from
    // the node).
    let namespace = Namespace {
        metadata: ObjectMeta {
            name: Some(ns.into()),
            labels: Some(BTreeMap::from([
                ("kubernetes.io/metadata.name".to_string(), ns.to_string()),
                ("app.kubernetes.io/part-of".to_string(), "mcnet".to_string()),
            ])),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    };
    let egress = json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "mcnet-operator-egress", "namespace": ns,
                     "labels": {mcnet_core::policy::model::LINT_ALLOW_LABEL: "world-open"}},
        "spec": {
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": NAME}},
            "policyTypes": ["Egress"],
            "egress": [{
                "to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": o.cluster_cidrs}}],
                "ports": [{"protocol": "TCP", "port": 443}, {"protocol": "TCP", "port": 6443}]
            }]
        }
    });
    vec![
        file(
            "operator/crd.yaml",
            false,
            vec![value(
                "CustomResourceDefinition",
                "apiextensions.k8s.io/v1",
                &super::crd(),
            )],
        ),
        file(
            "operator/namespace.yaml",
            false,
            vec![
                value("Namespace", "v1", &namespace),
                mcnet_core::policy::generate::default_deny(ns),
                mcnet_core::policy::generate::allow_dns(ns),
                egress,
            ],
        ),
        file(
            "operator/rbac.yaml",
            false,
            vec![
                value("ServiceAccount", "v1", &account),
                value("ClusterRole", "rbac.authorization.k8s.io/v1", &cluster_role),
                value(
                    "ClusterRoleBinding",
                    "rbac.authorization.k8s.io/v1",
                    &cluster_binding,
                ),
                value("Role", "rbac.authorization.k8s.io/v1", &lease_role),
                value(
                    "RoleBinding",
                    "rbac.authorization.k8s.io/v1",
                    &lease_binding,
                ),
            ],
        ),
        file(
            "operator/deployment.yaml",
            false,
            vec![value("Deployment", "apps/v1", &deployment)],
        ),
    ]
}

const AGENT: &str = "mcnet-agent";

/// The node agent's files, as (path, documents): `agent/rbac.yaml` (read
/// access to the watched kinds, nothing else) and `agent/daemonset.yaml`.
///
/// The DaemonSet runs on every node in the host's network namespace (it
/// attaches to the pods' host-side interfaces), with only the capabilities
/// the datapath needs: `BPF` and `PERFMON` to load the programs and use
/// their maps, `NET_ADMIN` to attach them and route the L7 proxy's
/// connections, `SYS_RESOURCE` for locked memory on older kernels. Not
/// privileged; the host's bpffs is mounted for pinned maps.
pub fn agent_manifests(o: &OperatorManifestOptions) -> Vec<ManifestFile> {
    // Beside the CNI's own agents: a node component, not an application.
    let ns = "kube-system";
    let agent_labels = || {
        BTreeMap::from([
            ("app.kubernetes.io/name".to_string(), AGENT.to_string()),
            ("app.kubernetes.io/part-of".to_string(), "mcnet".to_string()),
        ])
    };
    let meta = |name: &str, namespace: Option<&str>| ObjectMeta {
        name: Some(name.into()),
        namespace: namespace.map(Into::into),
        labels: Some(agent_labels()),
        ..ObjectMeta::default()
    };
    let read = ["get", "list", "watch"];
    let role = ClusterRole {
        metadata: meta(AGENT, None),
        rules: Some(vec![
            rule(&[""], &["pods", "namespaces"], &read, &[]),
            rule(&["networking.k8s.io"], &["networkpolicies"], &read, &[]),
            rule(
                &["cilium.io"],
                &["ciliumnetworkpolicies", "ciliumclusterwidenetworkpolicies"],
                &read,
                &[],
            ),
        ]),
        ..ClusterRole::default()
    };
    let binding = ClusterRoleBinding {
        metadata: meta(AGENT, None),
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "ClusterRole".into(),
            name: AGENT.into(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: AGENT.into(),
            namespace: Some(ns.into()),
            ..Subject::default()
        }]),
    };
    let account = ServiceAccount {
        metadata: meta(AGENT, Some(ns)),
        ..ServiceAccount::default()
    };
    let container = Container {
        name: "agent".into(),
        image: Some(o.image.clone()),
        args: Some(vec![
            "agent".into(),
            "--pin-dir".into(),
            "/sys/fs/bpf/mcnet".into(),
            "--health".into(),
            "127.0.0.1:9876".into(),
        ]),
        env: Some(vec![EnvVar {
            name: "NODE_NAME".into(),
            value_from: Some(EnvVarSource {
                field_ref: Some(ObjectFieldSelector {
                    field_path: "spec.nodeName".into(),
                    ..ObjectFieldSelector::default()
                }),
                ..EnvVarSource::default()
            }),
            ..EnvVar::default()
        }]),
        readiness_probe: Some(Probe {
            http_get: Some(HTTPGetAction {
                host: Some("127.0.0.1".into()),
                path: Some("/readyz".into()),
                port: IntOrString::Int(9876),
                ..HTTPGetAction::default()
            }),
            period_seconds: Some(5),
            ..Probe::default()
        }),
        liveness_probe: Some(Probe {
            http_get: Some(HTTPGetAction {
                host: Some("127.0.0.1".into()),
                path: Some("/livez".into()),
                port: IntOrString::Int(9876),
                ..HTTPGetAction::default()
            }),
            period_seconds: Some(10),
            failure_threshold: Some(6),
            ..Probe::default()
        }),
        security_context: Some(SecurityContext {
            privileged: Some(false),
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            capabilities: Some(Capabilities {
                add: Some(
                    ["BPF", "PERFMON", "NET_ADMIN", "SYS_RESOURCE"]
                        .map(String::from)
                        .to_vec(),
                ),
                drop: Some(vec!["ALL".into()]),
            }),
            ..SecurityContext::default()
        }),
        volume_mounts: Some(vec![VolumeMount {
            name: "bpffs".into(),
            mount_path: "/sys/fs/bpf".into(),
            ..VolumeMount::default()
        }]),
        ..Container::default()
    };
    let selector = BTreeMap::from([("app.kubernetes.io/name".to_string(), AGENT.to_string())]);
    let daemonset = DaemonSet {
        metadata: meta(AGENT, Some(ns)),
        spec: Some(DaemonSetSpec {
            selector: LabelSelector {
                match_labels: Some(selector),
                ..LabelSelector::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(agent_labels()),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    service_account_name: Some(AGENT.into()),
                    host_network: Some(true),
                    dns_policy: Some("ClusterFirstWithHostNet".into()),
                    priority_class_name: Some("system-node-critical".into()),
                    tolerations: Some(vec![Toleration {
                        operator: Some("Exists".into()),
                        ..Toleration::default()
                    }]),
                    containers: vec![container],
                    volumes: Some(vec![Volume {
                        name: "bpffs".into(),
                        host_path: Some(HostPathVolumeSource {
                            path: "/sys/fs/bpf".into(),
                            type_: Some("Directory".into()),
                        }),
                        ..Volume::default()
                    }]),
                    ..PodSpec::default()
                }),
            },
            ..DaemonSetSpec::default()
        }),
        ..DaemonSet::default()
    };
    vec![
        file(
            "agent/rbac.yaml",
            false,
            vec![
                value("ServiceAccount", "v1", &account),
                value("ClusterRole", "rbac.authorization.k8s.io/v1", &role),
                value(
                    "ClusterRoleBinding",
                    "rbac.authorization.k8s.io/v1",
                    &binding,
                ),
            ],
        ),
        file(
            "agent/daemonset.yaml",
            false,
            vec![value("DaemonSet", "apps/v1", &daemonset)],
        ),
    ]
}

/// A sample of the operator's pod for `mcnet policy matrix` and `lint`
/// (a rendering's `preview/`), at `ip` in the cluster's pod range.
pub fn operator_preview_pod(o: &OperatorManifestOptions, ip: std::net::IpAddr) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": format!("{NAME}-0"), "namespace": o.namespace, "labels": labels()},
        "spec": {"containers": [{"name": "operator", "ports": [{"name": "metrics", "containerPort": o.metrics_port, "protocol": "TCP"}]}]},
        "status": {"podIP": ip.to_string()}
    })
}
