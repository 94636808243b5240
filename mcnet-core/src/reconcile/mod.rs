//! Reconciling a topology with the clouds: the provider traits, the desired
//! state, the planner and the apply engine.
//!
//! The flow is [`desired()`] (what the topology asks for) → observe (what
//! each [`ResourceProvider`] reports the owner has) → [`plan()`] (a DAG of
//! create, update, replace and delete actions) → `apply()` (feature `apply`). Every
//! resource carries ownership tags ([`Owner::tags`]), so a re-plan after an
//! apply is empty, a manual change shows as drift, and an interrupted apply
//! converges when run again.
//!
//! ```
//! use std::collections::BTreeSet;
//! use mcnet_core::reconcile::{desired, plan, Op, Scope};
//! use mcnet_core::topology::Topology;
//!
//! let t = Topology::from_str_strict(r#"
//! apiVersion: mcnet.io/v1alpha1
//! kind: Topology
//! metadata: {name: demo}
//! spec:
//!   providers: [{name: aws, kind: aws, regions: [us-east-1]}]
//!   networks:
//!     - {name: a, provider: aws, region: us-east-1, cidrs: [10.0.0.0/16]}
//! "#).unwrap();
//! let scopes = BTreeSet::from([Scope::Aws]);
//! let want = desired(&t, &scopes).unwrap();
//! // Nothing exists yet: create the network and its route table.
//! let p = plan("demo", &scopes, &want, &[]);
//! assert_eq!(p.count(Op::Create), 2);
//! assert_eq!(p.actions[1].depends_on, vec![0]);
//! ```

mod action;
#[cfg(feature = "apply")]
mod apply;
mod dag;
mod desired;
mod id;
#[cfg(feature = "metrics")]
mod metered;
mod plan;
mod provider;
mod resource;

#[cfg(feature = "apply")]
pub use apply::{apply, ApplyEvent, ApplyOptions, ApplyReport, Failure, Providers, Retry};
pub use dag::Phase;
pub use desired::desired;
pub use id::{CloudId, ParseIdError, ResourceId};
#[cfg(feature = "metrics")]
pub use metered::{CloudMetrics, Metered};
pub use plan::{plan, Action, Cause, Op, Plan};
pub use provider::{
    ConnectivityProvider, ErrorKind, InterconnectProvider, ProviderError, Quote, Refs,
    ResourceProvider,
};
pub use resource::{
    Desired, FieldChange, Observed, Owner, ResourceKind, ResourceState, Scope, Spec, VxcBgp,
    TAG_ID, TAG_MANAGED_BY, TAG_TOPOLOGY,
};

use serde::Serialize;

/// One difference between the topology and what exists.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DriftItem {
    /// Logical id.
    pub resource: String,
    /// Kind.
    pub kind: ResourceKind,
    /// Provider scope.
    pub provider: Scope,
    /// The cloud id, when the resource exists.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cloud_id: Option<CloudId>,
    /// What is wrong.
    pub status: DriftStatus,
    /// Changed fields: `from` is what exists, `to` what the topology says.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<FieldChange>,
    /// What `apply` would do about it.
    pub repair: Op,
}

/// What drifted about one resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum DriftStatus {
    /// It does not exist.
    Missing,
    /// Fields differ.
    Changed,
    /// It is still settling.
    Pending,
    /// It failed.
    Failed,
    /// A second copy exists.
    Duplicate,
    /// Owned by the topology but no longer in it.
    Unmanaged,
}

impl std::fmt::Display for DriftStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(match self {
            DriftStatus::Missing => "missing",
            DriftStatus::Changed => "changed",
            DriftStatus::Pending => "pending",
            DriftStatus::Failed => "failed",
            DriftStatus::Duplicate => "duplicate",
            DriftStatus::Unmanaged => "unmanaged",
        })
    }
}

/// The drift a plan implies: every resource that differs from the topology.
/// Replacements forced only by another replacement are left out, since
/// they are consequences, not drift.
pub fn drift(p: &Plan) -> Vec<DriftItem> {
    p.actions
        .iter()
        .filter(|a| a.cause != Cause::DependencyReplaced)
        .map(|a| DriftItem {
            resource: a.resource.to_string(),
            kind: a.kind,
            provider: a.provider,
            cloud_id: a.cloud_id.clone(),
            status: match a.cause {
                Cause::Missing => DriftStatus::Missing,
                Cause::Pending => DriftStatus::Pending,
                Cause::Failed | Cause::RefersToDuplicate => DriftStatus::Failed,
                Cause::Changed | Cause::DependencyReplaced => DriftStatus::Changed,
                Cause::Duplicate => DriftStatus::Duplicate,
                Cause::Unmanaged => DriftStatus::Unmanaged,
            },
            changes: a.changes.clone(),
            repair: a.op,
        })
        .collect()
}
