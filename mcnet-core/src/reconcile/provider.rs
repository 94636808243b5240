//! The provider traits: what a cloud or the Megaport fabric must do for the
//! planner. Implementations live in `mcnet-cloud` (the embedded simulator,
//! AWS, Megaport, Azure, GCP).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;

use super::resource::{Desired, Observed, Owner, ResourceKind, Scope, Spec};

/// How a provider call failed, which decides whether the planner retries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum ErrorKind {
    /// Rate limited: retry with backoff.
    Throttled,
    /// Timed out or a 5xx: retry, after checking whether the call took effect.
    Transient,
    /// The resource does not exist (any more).
    NotFound,
    /// The request conflicts with the current state (already exists, in use).
    Conflict,
    /// A quota or limit was reached.
    Quota,
    /// The request itself is wrong (bad CIDR, unsupported speed).
    Invalid,
    /// Credentials are missing or refused.
    Auth,
    /// Something needed comes from outside the providers in use.
    Unresolved,
}

impl ErrorKind {
    /// Whether the planner retries this kind of failure.
    pub fn retryable(self) -> bool {
        matches!(self, ErrorKind::Throttled | ErrorKind::Transient)
    }
}

/// A failed provider call.
///
/// The cloud SDK's or HTTP client's own error, when there is one, is the
/// [`source`](std::error::Error::source) (shared, so the error stays
/// `Clone`); downcast it for details the classification does not carry.
#[derive(Clone, Debug, thiserror::Error)]
#[error("{scope} {operation}: {message}")]
#[non_exhaustive]
pub struct ProviderError {
    /// Which provider.
    pub scope: Scope,
    /// Classification.
    pub kind: ErrorKind,
    /// The API operation (`CreateVpc`, `buy VXC`).
    pub operation: String,
    /// The cloud's code, if it gave one (`VpcLimitExceeded`).
    pub code: Option<String>,
    /// What went wrong, naming the resource.
    pub message: String,
    /// The underlying error (the SDK's, the HTTP client's, the file system's).
    #[source]
    pub source: Option<Arc<dyn std::error::Error + Send + Sync + 'static>>,
}

impl ProviderError {
    /// A new error.
    pub fn new(
        scope: Scope,
        kind: ErrorKind,
        operation: impl Into<String>,
        message: impl Into<String>,
    ) -> ProviderError {
        ProviderError {
            scope,
            kind,
            operation: operation.into(),
            code: None,
            message: message.into(),
            source: None,
        }
    }

    /// With the underlying error as the source.
    pub fn with_source(
        mut self,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> ProviderError {
        self.source = Some(Arc::new(source));
        self
    }

    /// With the cloud's error code.
    pub fn with_code(mut self, code: impl Into<String>) -> ProviderError {
        self.code = Some(code.into());
        self
    }
}

/// The already-existing resources a create or update refers to, by logical
/// id, so a provider can turn references into cloud ids and read outputs
/// such as a service key.
#[derive(Clone, Copy)]
pub struct Refs<'a> {
    scope: Scope,
    known: &'a BTreeMap<String, Observed>,
}

impl<'a> Refs<'a> {
    /// Wraps a map of logical id → observed resource.
    pub fn new(scope: Scope, known: &'a BTreeMap<String, Observed>) -> Refs<'a> {
        Refs { scope, known }
    }

    /// The observed resource behind a logical id.
    pub fn get(&self, id: &str) -> Result<&'a Observed, ProviderError> {
        self.known.get(id).ok_or_else(|| {
            ProviderError::new(
                self.scope,
                ErrorKind::Unresolved,
                "resolve",
                format!("`{id}` does not exist yet (apply its provider first)"),
            )
        })
    }

    /// The cloud id behind a logical id.
    pub fn cloud_id(&self, id: &str) -> Result<&'a str, ProviderError> {
        self.get(id).map(|o| o.cloud_id.as_str())
    }

    /// An output (`serviceKey`) of a referenced resource.
    pub fn output(&self, id: &str, key: &str) -> Result<&'a str, ProviderError> {
        let o = self.get(id)?;
        o.outputs.get(key).map(String::as_str).ok_or_else(|| {
            ProviderError::new(
                self.scope,
                ErrorKind::Unresolved,
                "resolve",
                format!("`{id}` has no `{key}` yet"),
            )
        })
    }

    /// A copy of `spec` with every reference turned into a cloud id.
    pub fn to_cloud(&self, spec: &Spec) -> Result<Spec, ProviderError> {
        let mut missing = None;
        let mut out = spec.clone();
        out.map_refs(|r| match self.known.get(r) {
            Some(o) => o.cloud_id.to_string(),
            None => {
                missing.get_or_insert_with(|| r.to_string());
                r.to_string()
            }
        });
        match missing {
            Some(id) => Err(self.get(&id).unwrap_err()),
            None => Ok(out),
        }
    }
}

/// What every provider does: observe the resources an owner has, and create,
/// update and delete them one at a time. Calls must be idempotent with
/// respect to the ownership tags: a create that times out may have happened,
/// and the planner looks before it retries.
#[async_trait]
pub trait ResourceProvider: Send + Sync + fmt::Debug {
    /// Where this provider acts.
    fn scope(&self) -> Scope;

    /// The resource kinds it manages.
    fn kinds(&self) -> &'static [ResourceKind];

    /// Every resource `owner` has here, with its current state. Costs one
    /// list call per kind, not one per resource.
    async fn observe(&self, owner: &Owner) -> Result<Vec<Observed>, ProviderError>;

    /// Creates `r`, tagged for `owner`. Returns as soon as the cloud has
    /// accepted it; the state may still be pending.
    async fn create(
        &self,
        owner: &Owner,
        r: &Desired,
        refs: Refs<'_>,
    ) -> Result<Observed, ProviderError>;

    /// Changes `current` in place to match `r` (only [`ResourceKind::mutable_fields`]
    /// differ), or completes a pending step such as accepting a peering.
    async fn update(
        &self,
        owner: &Owner,
        r: &Desired,
        current: &Observed,
        refs: Refs<'_>,
    ) -> Result<Observed, ProviderError>;

    /// Deletes `current`. Deleting something already gone succeeds.
    async fn delete(&self, current: &Observed) -> Result<(), ProviderError>;

    /// The resource's current state, or `None` once it is gone.
    async fn refresh(&self, current: &Observed) -> Result<Option<Observed>, ProviderError>;

    /// Finds the resource for `r` if it exists (after a create timed out).
    /// The default observes everything; providers may look it up directly.
    async fn lookup(&self, owner: &Owner, r: &Desired) -> Result<Option<Observed>, ProviderError> {
        Ok(self
            .observe(owner)
            .await?
            .into_iter()
            .find(|o| o.id == r.id))
    }

    /// API calls made so far (for metrics and the no-op plan benchmark).
    fn api_calls(&self) -> u64;
}

/// A cloud's connectivity: networks, subnets, peerings, route tables and
/// routes, transit gateways, VPN and interconnect gateways, and private
/// endpoints.
pub trait ConnectivityProvider: ResourceProvider {}

/// A price quoted by an interconnect provider.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Quote {
    /// Monthly rate.
    pub monthly_rate: f64,
    /// ISO currency.
    pub currency: String,
}

/// An interconnect fabric (Megaport): Cloud Routers and VXCs, with
/// validation and pricing before anything is bought.
#[async_trait]
pub trait InterconnectProvider: ResourceProvider {
    /// Checks an order without buying it and returns its price.
    async fn validate(&self, r: &Desired, refs: Refs<'_>) -> Result<Quote, ProviderError>;
}
