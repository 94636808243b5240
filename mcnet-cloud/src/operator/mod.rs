//! Controller mode (feature `operator`): mcnet on Kubernetes.
//!
//! - [`Topology`] is the custom resource (`mcnet.io/v1alpha1`, cluster-
//!   scoped): a topology file's `spec`, with a status of conditions, the
//!   last plan, drift and each resource's cloud id. [`crd()`] is its
//!   CustomResourceDefinition, generated from the Rust types.
//! - [`controller`] reconciles every `Topology` through mcnet's planner and
//!   apply engine, with a finalizer that destroys what a deleted object
//!   owned, exponential requeue after provider errors, events and status
//!   conditions, and Prometheus metrics.
//! - [`lease`] elects one leader among the operator's replicas with a
//!   `coordination.k8s.io/v1` Lease; the others stand by.

pub mod controller;
pub mod lease;
mod manifests;
mod resource;

pub use controller::{
    error_policy, reconcile, Backoff, Context, OperatorError, OperatorMetrics, ProviderSource,
    FINALIZER,
};
pub use lease::{LeaderElector, Leadership, LeaseConfig};
pub use manifests::{
    agent_manifests, manifests, operator_preview_pod, ManifestFile, OperatorManifestOptions,
};
pub use resource::{
    Condition, DriftEntry, PlanSummary, Topology, TopologyObjectSpec, TopologyStatus,
};

use kube::CustomResourceExt;

/// The `Topology` CustomResourceDefinition.
pub fn crd(
) -> k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition {
    Topology::crd()
}

pub use kube;

use std::sync::Arc;

use mcnet_core::metrics::Registry;

/// Runs the operator until the process is signalled: leader election on
/// `lease`, and the controller for every `Topology`, applying through
/// `providers` while this replica leads. Its metrics are registered in
/// `registry` before this returns its future's first poll.
pub fn start(
    client: kube::Client,
    providers: ProviderSource,
    lease: LeaseConfig,
    registry: &mut Registry,
) -> impl std::future::Future<Output = ()> {
    let instance = lease.identity.clone();
    let elector = LeaderElector::new(client.clone(), lease);
    let ctx = Arc::new(Context::new(
        client,
        providers,
        elector.leadership(),
        &instance,
    ));
    ctx.metrics.register(registry);
    run(ctx, elector)
}

async fn run(ctx: Arc<Context>, elector: LeaderElector) {
    let election = tokio::spawn(elector.run());
    controller::run(ctx).await;
    election.abort();
}
