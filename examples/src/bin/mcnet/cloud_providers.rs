//! The real providers, by scope.

use std::sync::Arc;

use anyhow::bail;
use mcnet_core::reconcile::{ResourceProvider, Scope};

use crate::cloud_cmd::Common;

/// The real provider for `scope`.
pub fn real(scope: Scope, _c: &Common) -> anyhow::Result<Arc<dyn ResourceProvider>> {
    bail!("the {scope} provider is not available yet; use --provider sim")
}
