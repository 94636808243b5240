//! Cloud-API metrics: [`Metered`] wraps any provider and records, per
//! provider and operation, how many calls the planner made, how many failed
//! and why, how long they took, and how many cloud API requests they cost.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `mcnet_cloud_operations_total` | counter | `provider`, `operation` |
//! | `mcnet_cloud_operation_errors_total` | counter | `provider`, `operation`, `kind` |
//! | `mcnet_cloud_operation_duration_seconds` | histogram | `provider`, `operation` |
//! | `mcnet_cloud_api_requests_total` | counter | `provider` |
//!
//! `operation` is one of `observe`, `create`, `update`, `delete`,
//! `refresh`, `lookup`; `kind` is an [`ErrorKind`] (`throttled`, ...).

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use super::provider::{ErrorKind, ProviderError, Refs, ResourceProvider};
use super::resource::{Desired, Observed, Owner, ResourceKind, Scope};

type Labels = Vec<(String, String)>;

fn new_histogram() -> Histogram {
    // 1 ms to about 65 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

/// The cloud-API metric families, shared by every [`Metered`] provider.
#[derive(Debug, Clone)]
pub struct CloudMetrics {
    operations: Family<Labels, Counter>,
    errors: Family<Labels, Counter>,
    duration: Family<Labels, Histogram, fn() -> Histogram>,
    requests: Family<Labels, Counter>,
}

impl Default for CloudMetrics {
    fn default() -> Self {
        CloudMetrics {
            operations: Family::default(),
            errors: Family::default(),
            duration: Family::new_with_constructor(new_histogram),
            requests: Family::default(),
        }
    }
}

impl CloudMetrics {
    /// New, empty families.
    pub fn new() -> CloudMetrics {
        CloudMetrics::default()
    }

    /// Registers the families in `registry` (names as in the module docs).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "mcnet_cloud_operations",
            "Provider operations the planner ran",
            self.operations.clone(),
        );
        registry.register(
            "mcnet_cloud_operation_errors",
            "Provider operations that failed, by error kind",
            self.errors.clone(),
        );
        registry.register(
            "mcnet_cloud_operation_duration_seconds",
            "Time a provider operation took, retries inside the provider included",
            self.duration.clone(),
        );
        registry.register(
            "mcnet_cloud_api_requests",
            "Cloud API requests the providers made",
            self.requests.clone(),
        );
    }

    /// Wraps `inner` so its calls are recorded here.
    pub fn wrap(&self, inner: Arc<dyn ResourceProvider>) -> Arc<dyn ResourceProvider> {
        let seen = inner.api_calls();
        Arc::new(Metered {
            inner,
            metrics: self.clone(),
            seen: std::sync::atomic::AtomicU64::new(seen),
        })
    }

    /// Calls recorded for `provider` and `operation` so far.
    pub fn operations(&self, provider: Scope, operation: &str) -> u64 {
        self.operations
            .get_or_create(&labels(provider, operation))
            .get()
    }

    /// Errors of `kind` recorded for `provider` and `operation` so far.
    pub fn errors(&self, provider: Scope, operation: &str, kind: ErrorKind) -> u64 {
        let mut l = labels(provider, operation);
        l.push(("kind".into(), kind_name(kind)));
        self.errors.get_or_create(&l).get()
    }
}

fn labels(provider: Scope, operation: &str) -> Labels {
    vec![
        ("provider".into(), provider.as_str().into()),
        ("operation".into(), operation.into()),
    ]
}

fn kind_name(kind: ErrorKind) -> String {
    serde_json::to_value(kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// A provider whose calls are recorded in [`CloudMetrics`].
#[derive(Debug)]
pub struct Metered {
    inner: Arc<dyn ResourceProvider>,
    metrics: CloudMetrics,
    /// The inner provider's API-call count already recorded.
    seen: std::sync::atomic::AtomicU64,
}

impl Metered {
    fn record<T>(&self, operation: &str, start: Instant, r: &Result<T, ProviderError>) {
        let scope = self.inner.scope();
        let l = labels(scope, operation);
        self.metrics.operations.get_or_create(&l).inc();
        self.metrics
            .duration
            .get_or_create(&l)
            .observe(start.elapsed().as_secs_f64());
        if let Err(e) = r {
            let mut l = l;
            l.push(("kind".into(), kind_name(e.kind)));
            self.metrics.errors.get_or_create(&l).inc();
        }
        let now = self.inner.api_calls();
        let before = self
            .seen
            .fetch_max(now, std::sync::atomic::Ordering::Relaxed);
        if now > before {
            self.metrics
                .requests
                .get_or_create(&vec![("provider".into(), scope.as_str().into())])
                .inc_by(now - before);
        }
    }
}

#[async_trait]
impl ResourceProvider for Metered {
    fn scope(&self) -> Scope {
        self.inner.scope()
    }

    fn kinds(&self) -> &'static [ResourceKind] {
        self.inner.kinds()
    }

    async fn observe(&self, owner: &Owner) -> Result<Vec<Observed>, ProviderError> {
        let start = Instant::now();
        let r = self.inner.observe(owner).await;
        self.record("observe", start, &r);
        r
    }

    async fn create(
        &self,
        owner: &Owner,
        r: &Desired,
        refs: Refs<'_>,
    ) -> Result<Observed, ProviderError> {
        let start = Instant::now();
        let out = self.inner.create(owner, r, refs).await;
        self.record("create", start, &out);
        out
    }

    async fn update(
        &self,
        owner: &Owner,
        r: &Desired,
        current: &Observed,
        refs: Refs<'_>,
    ) -> Result<Observed, ProviderError> {
        let start = Instant::now();
        let out = self.inner.update(owner, r, current, refs).await;
        self.record("update", start, &out);
        out
    }

    async fn delete(&self, current: &Observed) -> Result<(), ProviderError> {
        let start = Instant::now();
        let out = self.inner.delete(current).await;
        self.record("delete", start, &out);
        out
    }

    async fn refresh(&self, current: &Observed) -> Result<Option<Observed>, ProviderError> {
        let start = Instant::now();
        let out = self.inner.refresh(current).await;
        self.record("refresh", start, &out);
        out
    }

    async fn lookup(&self, owner: &Owner, r: &Desired) -> Result<Option<Observed>, ProviderError> {
        let start = Instant::now();
        let out = self.inner.lookup(owner, r).await;
        self.record("lookup", start, &out);
        out
    }

    fn api_calls(&self) -> u64 {
        self.inner.api_calls()
    }
}
