//! What a plan is made of: actions, their operations and causes. The
//! planner ([`super::plan()`]) produces them and the DAG ([`super::dag`])
//! orders them.

use serde::Serialize;

use super::id::{CloudId, ResourceId};
use super::resource::{Desired, FieldChange, Observed, ResourceKind, Scope};

/// What an action does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Op {
    /// Create a missing resource.
    Create,
    /// Change a resource in place, or finish a pending step.
    Update,
    /// Delete and create again (a field that cannot change in place changed).
    Replace,
    /// Delete a resource the topology no longer asks for, or a duplicate.
    Delete,
}

impl Op {
    pub(super) fn symbol(self) -> &'static str {
        match self {
            Op::Create => "+",
            Op::Update => "~",
            Op::Replace => "-/+",
            Op::Delete => "-",
        }
    }
}

/// One planned action.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Action {
    /// Index in [`Plan::actions`](super::Plan::actions).
    pub index: usize,
    /// What to do.
    pub op: Op,
    /// Logical id.
    pub resource: ResourceId,
    /// Kind.
    pub kind: ResourceKind,
    /// Provider scope.
    pub provider: Scope,
    /// The cloud id acted on (update, replace, delete).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cloud_id: Option<CloudId>,
    /// Why, for people.
    pub reason: String,
    /// Why, for programs.
    pub cause: Cause,
    /// Field changes (update, replace).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<FieldChange>,
    /// Actions that must finish first.
    pub depends_on: Vec<usize>,
    /// The target shape (create, update, replace).
    #[serde(skip)]
    pub desired: Option<Desired>,
    /// What exists now (update, replace, delete).
    #[serde(skip)]
    pub current: Option<Observed>,
}

/// Why an action is planned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Cause {
    /// The resource does not exist.
    Missing,
    /// Fields differ from the topology.
    Changed,
    /// The resource is still settling (an asynchronous state).
    Pending,
    /// The resource failed and is re-created.
    Failed,
    /// It refers to a duplicate that is deleted.
    RefersToDuplicate,
    /// Something it refers to through a fixed field is replaced.
    DependencyReplaced,
    /// A second copy of a resource (two applies raced).
    Duplicate,
    /// Owned by the topology but no longer in it.
    Unmanaged,
}
