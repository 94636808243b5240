//! The `Topology` custom resource (`mcnet.io/v1alpha1`): the topology file
//! itself, as a cluster-scoped Kubernetes object with a status.

use std::collections::BTreeMap;

use kube::CustomResource;
use mcnet_core::topology::{Metadata, TopologySpec};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The topology a `Topology` object asks for: exactly the `spec` of a
/// topology file, so that `kubectl apply -f adr-003.yaml` creates it.
///
/// The resource is cluster-scoped: its name is the topology's name, which
/// every cloud resource carries as its ownership tag, so two objects can
/// never claim the same resources from two namespaces.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "mcnet.io",
    version = "v1alpha1",
    kind = "Topology",
    plural = "topologies",
    shortname = "mtopo",
    status = "TopologyStatus",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"Resources","type":"integer","jsonPath":".status.resourceCount"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
pub struct TopologyObjectSpec {
    /// The topology file's `spec`.
    #[serde(flatten)]
    pub topology: TopologySpec,
}

impl Topology {
    /// The topology model this object describes: its name is the object's.
    pub fn model(&self) -> mcnet_core::topology::Topology {
        mcnet_core::topology::Topology {
            api_version: "mcnet.io/v1alpha1".into(),
            kind: "Topology".into(),
            metadata: Metadata {
                name: self.metadata.name.clone().unwrap_or_default(),
                labels: self.metadata.labels.clone().unwrap_or_default(),
            },
            spec: self.spec.topology.clone(),
        }
    }
}

/// What the operator last did and found, for `kubectl describe` and
/// `kubectl get topologies`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TopologyStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready` (applied, and a re-plan is empty) and `Drifted` (the last
    /// reconcile found and repaired changes made outside mcnet).
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// The last plan that changed something.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_plan: Option<PlanSummary>,
    /// What the last reconcile found changed outside mcnet (and repaired).
    #[serde(default)]
    pub drift: Vec<DriftEntry>,
    /// Each resource's cloud id, by mcnet's logical id (`vpc/aws-vpc`).
    #[serde(default)]
    pub resources: BTreeMap<String, String>,
    /// How many resources exist for this topology.
    #[serde(default)]
    pub resource_count: u32,
}

/// A status condition, as Kubernetes' `metav1.Condition`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// `Ready` or `Drifted`.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// A CamelCase reason (`Applied`, `Invalid`, `ProviderError`, ...).
    pub reason: String,
    /// What happened, for a person.
    pub message: String,
    /// When `status` last changed (RFC 3339).
    pub last_transition_time: String,
    /// The generation the condition was set for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// A plan, summarised.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PlanSummary {
    /// When it was applied (RFC 3339).
    pub applied_at: String,
    /// Resources created.
    pub create: u32,
    /// Resources changed in place.
    pub update: u32,
    /// Resources replaced.
    pub replace: u32,
    /// Resources deleted.
    pub delete: u32,
    /// The first 100 actions, as `create vpc/aws-vpc`.
    #[serde(default)]
    pub actions: Vec<String>,
}

/// One change made outside mcnet, found by a reconcile.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DriftEntry {
    /// The resource's logical id.
    pub id: String,
    /// What differed, for a person.
    pub change: String,
}
