//! The real providers, by scope: wiring to `mcnet_cloud::connect::real`.

use std::sync::Arc;

use mcnet_cloud::connect::real::{provider_for, ProviderEnv};
use mcnet_core::reconcile::{ResourceProvider, Scope};
use mcnet_core::topology::Topology;

use crate::cloud_cmd::Common;

/// The real provider for `scope`, for the parts of `t` it covers.
pub async fn real(
    scope: Scope,
    c: &Common,
    t: &Topology,
) -> anyhow::Result<Arc<dyn ResourceProvider>> {
    let env = ProviderEnv::default().with_aws_endpoint(c.aws_endpoint.clone());
    Ok(provider_for(scope, t, &env).await?)
}
