//! The reconciler behind `mcnet operator`: each `Topology` object is
//! validated, planned and applied through mcnet's reconciler, its status
//! and events say what happened, a finalizer destroys what it owns when it
//! is deleted, and only the replica holding the Lease changes anything.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event as KubeEvent, EventType, Recorder, Reporter};
use kube::runtime::finalizer::{finalizer, Event as Finalizer};
use kube::runtime::{watcher, Controller};
use kube::{Api, Client, Resource, ResourceExt};
use mcnet_core::metrics::prometheus_client::metrics::counter::Counter;
use mcnet_core::metrics::prometheus_client::metrics::family::Family;
use mcnet_core::metrics::prometheus_client::metrics::gauge::Gauge;
use mcnet_core::metrics::Registry;
use mcnet_core::reconcile::{self, ApplyOptions, Op, Owner, Providers, Scope};
use serde_json::json;

use super::lease::Leadership;
use super::resource::{Condition, DriftEntry, PlanSummary, Topology, TopologyStatus};

/// The finalizer the operator puts on every `Topology` it applies.
pub const FINALIZER: &str = "mcnet.io/cloud-resources";

/// Why a reconcile failed; it is retried with backoff.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OperatorError {
    /// The Kubernetes API refused or could not be reached.
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// A provider could not be built or observed.
    #[error("topology `{topology}`: {source}")]
    Provider {
        /// The Topology object.
        topology: String,
        /// The provider's error.
        #[source]
        source: reconcile::ProviderError,
    },
    /// Some actions of the apply failed.
    #[error("topology `{topology}`: {failed} action(s) failed, first: {first}")]
    Apply {
        /// The Topology object.
        topology: String,
        /// How many failed.
        failed: usize,
        /// The first failure, naming the provider, operation and resource.
        first: String,
    },
    /// The topology could not be turned into resources.
    #[error("topology `{topology}`: {message}")]
    Desired {
        /// The Topology object.
        topology: String,
        /// What was wrong.
        message: String,
    },
    /// Adding or removing the finalizer failed.
    #[error("finalizer: {0}")]
    Finalizer(String),
}

/// Builds the providers for a topology: the embedded sim on a state
/// directory, or the real clouds.
pub type ProviderSource = Arc<
    dyn Fn(&mcnet_core::topology::Topology) -> Result<Providers, reconcile::ProviderError>
        + Send
        + Sync,
>;

/// Requeue delays after failures: `base`, doubling per consecutive
/// failure of the same object, at most `max`.
#[derive(Clone, Copy, Debug)]
pub struct Backoff {
    /// The first delay.
    pub base: Duration,
    /// The longest delay.
    pub max: Duration,
}

impl Backoff {
    /// The delay after `failures` consecutive failures (1 or more).
    pub fn delay(&self, failures: u32) -> Duration {
        let factor = 1u32 << failures.saturating_sub(1).min(16);
        self.base.saturating_mul(factor).min(self.max)
    }
}

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff {
            base: Duration::from_secs(5),
            max: Duration::from_secs(300),
        }
    }
}

/// The operator's metrics.
#[derive(Clone, Debug, Default)]
pub struct OperatorMetrics {
    reconciles: Family<Vec<(String, String)>, Counter>,
    leader: Gauge,
    resources: Family<Vec<(String, String)>, Gauge>,
}

impl OperatorMetrics {
    /// Registers `mcnet_operator_reconciles_total{result}`,
    /// `mcnet_operator_leader` and `mcnet_operator_resources{topology}`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "mcnet_operator_reconciles",
            "Topology reconciles by result (applied, unchanged, invalid, error, destroyed, standby).",
            self.reconciles.clone(),
        );
        registry.register(
            "mcnet_operator_leader",
            "1 while this replica holds the leader Lease.",
            self.leader.clone(),
        );
        registry.register(
            "mcnet_operator_resources",
            "Cloud resources each Topology owns, after its last reconcile.",
            self.resources.clone(),
        );
    }

    fn count(&self, result: &str) {
        self.reconciles
            .get_or_create(&vec![("result".into(), result.into())])
            .inc();
    }
}

/// What every reconcile shares.
pub struct Context {
    client: Client,
    providers: ProviderSource,
    leadership: Leadership,
    recorder: Recorder,
    backoff: Backoff,
    failures: Mutex<HashMap<String, u32>>,
    /// How often an unchanged Topology is planned again, to find drift.
    pub resync: Duration,
    /// The operator's metrics.
    pub metrics: OperatorMetrics,
    apply: ApplyOptions,
}

impl Context {
    /// A context that applies through `providers` while `leadership` holds.
    pub fn new(
        client: Client,
        providers: ProviderSource,
        leadership: Leadership,
        instance: &str,
    ) -> Context {
        let reporter = Reporter {
            controller: "mcnet-operator".into(),
            instance: Some(instance.into()),
        };
        Context {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            providers,
            leadership,
            backoff: Backoff::default(),
            failures: Mutex::new(HashMap::new()),
            resync: Duration::from_secs(300),
            metrics: OperatorMetrics::default(),
            apply: ApplyOptions::default(),
        }
    }

    /// The same with other requeue delays.
    pub fn with_backoff(mut self, backoff: Backoff) -> Context {
        self.backoff = backoff;
        self
    }

    /// The same with other apply options (concurrency, retries, waits).
    pub fn with_apply_options(mut self, apply: ApplyOptions) -> Context {
        self.apply = apply;
        self
    }
}

fn now() -> String {
    Timestamp::now().to_string()
}

/// Reconciles one `Topology`: nothing unless this replica leads; else the
/// finalizer first, then apply (or, when it is being deleted, destroy).
pub async fn reconcile(obj: Arc<Topology>, ctx: Arc<Context>) -> Result<Action, OperatorError> {
    ctx.metrics.leader.set(i64::from(ctx.leadership.holds()));
    if !ctx.leadership.holds() {
        ctx.metrics.count("standby");
        return Ok(Action::requeue(Duration::from_secs(5)));
    }
    let api: Api<Topology> = Api::all(ctx.client.clone());
    let name = obj.name_any();
    let result = finalizer(&api, FINALIZER, obj, |event| async {
        match event {
            Finalizer::Apply(o) => apply(&o, &ctx).await,
            Finalizer::Cleanup(o) => destroy(&o, &ctx).await,
        }
    })
    .await;
    let action = match result {
        Ok(a) => a,
        Err(
            kube::runtime::finalizer::Error::ApplyFailed(e)
            | kube::runtime::finalizer::Error::CleanupFailed(e),
        ) => return Err(e),
        Err(e) => return Err(OperatorError::Finalizer(e.to_string())),
    };
    ctx.failures
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&name);
    Ok(action)
}

/// After a failed reconcile: requeue with exponential backoff per object.
pub fn error_policy(obj: Arc<Topology>, err: &OperatorError, ctx: Arc<Context>) -> Action {
    let name = obj.name_any();
    let n = {
        let mut f = ctx.failures.lock().unwrap_or_else(|e| e.into_inner());
        let n = f.entry(name.clone()).or_insert(0);
        *n = n.saturating_add(1);
        *n
    };
    let delay = ctx.backoff.delay(n);
    tracing::warn!(topology = %name, error = %err, failures = n, requeue_s = delay.as_secs_f64(), "reconcile failed");
    Action::requeue(delay)
}

fn condition(obj: &Topology, type_: &str, ok: bool, reason: &str, message: String) -> Condition {
    let status = if ok { "True" } else { "False" };
    // The transition time moves only when the status does.
    let since = obj
        .status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == type_))
        .filter(|c| c.status == status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or_else(now);
    Condition {
        type_: type_.into(),
        status: status.into(),
        reason: reason.into(),
        message,
        last_transition_time: since,
        observed_generation: obj.metadata.generation,
    }
}

async fn patch_status(
    ctx: &Context,
    obj: &Topology,
    status: &TopologyStatus,
) -> Result<(), OperatorError> {
    let api: Api<Topology> = Api::all(ctx.client.clone());
    api.patch_status(
        &obj.name_any(),
        &PatchParams::default(),
        &Patch::Merge(json!({ "status": status })),
    )
    .await?;
    Ok(())
}

async fn publish(
    ctx: &Context,
    obj: &Topology,
    type_: EventType,
    reason: &str,
    action: &str,
    note: String,
) {
    let ev = KubeEvent {
        type_,
        reason: reason.into(),
        note: Some(note.chars().take(1000).collect()),
        action: action.into(),
        secondary: None,
    };
    // An event that cannot be written is logged, never a failed reconcile.
    if let Err(e) = ctx.recorder.publish(&ev, &obj.object_ref(&())).await {
        tracing::warn!(topology = %obj.name_any(), error = %e, "cannot publish event");
    }
}

fn scopes() -> std::collections::BTreeSet<Scope> {
    Scope::ALL.into_iter().collect()
}

/// Fails the Ready condition with `reason`, and says so in an event.
async fn not_ready(
    ctx: &Context,
    obj: &Topology,
    reason: &str,
    message: String,
) -> Result<(), OperatorError> {
    let mut status = obj.status.clone().unwrap_or_default();
    status.observed_generation = obj.metadata.generation;
    status.conditions.retain(|c| c.type_ != "Ready");
    status
        .conditions
        .push(condition(obj, "Ready", false, reason, message.clone()));
    publish(ctx, obj, EventType::Warning, reason, "Reconcile", message).await;
    patch_status(ctx, obj, &status).await
}

async fn apply(obj: &Topology, ctx: &Context) -> Result<Action, OperatorError> {
    let name = obj.name_any();
    let model = obj.model();
    let report = mcnet_core::topology::validate::validate(&model);
    if !report.valid {
        let first: Vec<String> = report
            .errors
            .iter()
            .take(5)
            .map(ToString::to_string)
            .collect();
        not_ready(
            ctx,
            obj,
            "Invalid",
            format!("{} error(s): {}", report.errors.len(), first.join("; ")),
        )
        .await?;
        ctx.metrics.count("invalid");
        // Nothing to retry until the object changes.
        return Ok(Action::await_change());
    }
    let model = match mcnet_core::topology::ipam::allocate(&model) {
        Ok(t) => t,
        Err(problems) => {
            let first: Vec<String> = problems.iter().take(5).map(ToString::to_string).collect();
            not_ready(ctx, obj, "Invalid", format!("IPAM: {}", first.join("; "))).await?;
            ctx.metrics.count("invalid");
            return Ok(Action::await_change());
        }
    };
    let result = apply_valid(obj, &model, ctx).await;
    if let Err(e) = &result {
        ctx.metrics.count("error");
        let reason = match e {
            OperatorError::Apply { .. } => "ApplyFailed",
            _ => "ProviderError",
        };
        not_ready(ctx, obj, reason, e.to_string()).await?;
        tracing::warn!(topology = %name, error = %e, "apply failed");
    }
    result
}

async fn apply_valid(
    obj: &Topology,
    model: &mcnet_core::topology::Topology,
    ctx: &Context,
) -> Result<Action, OperatorError> {
    let name = obj.name_any();
    let provider_err = |source| OperatorError::Provider {
        topology: name.clone(),
        source,
    };
    let providers = (ctx.providers)(model).map_err(provider_err)?;
    let owner = Owner {
        topology: name.clone(),
    };
    let scopes = scopes();
    let want = reconcile::desired(model, &scopes).map_err(|e| OperatorError::Desired {
        topology: name.clone(),
        message: e.to_string(),
    })?;
    let have = providers.observe(&owner).await.map_err(provider_err)?;
    let plan = reconcile::plan(&name, &scopes, &want, &have);

    // Drift is a difference from what was already applied at this
    // generation; a new or changed object's differences are its plan.
    let previous = obj.status.clone().unwrap_or_default();
    let was_ready = previous.observed_generation == obj.metadata.generation
        && previous
            .conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True");
    let drift: Vec<DriftEntry> = if was_ready {
        reconcile::drift(&plan)
            .into_iter()
            .map(|d| DriftEntry {
                change: format!(
                    "{:?}{}",
                    d.status,
                    d.changes
                        .iter()
                        .map(|c| format!("; {}: {} -> {}", c.field, c.from, c.to))
                        .collect::<String>()
                ),
                id: d.resource,
            })
            .collect()
    } else {
        Vec::new()
    };

    let mut status = previous.clone();
    status.observed_generation = obj.metadata.generation;
    if !plan.is_empty() {
        let events = Arc::new(|_: &reconcile::ApplyEvent| {});
        let report = reconcile::apply(&plan, &owner, &providers, &ctx.apply, events).await;
        if !report.ok() {
            let first = report
                .failed
                .first()
                .map(|f| f.error.clone())
                .or_else(|| report.skipped.first().map(|s| format!("{s} skipped")))
                .unwrap_or_default();
            return Err(OperatorError::Apply {
                topology: name,
                failed: report.failed.len().max(report.skipped.len()),
                first,
            });
        }
        let op = |o: Op| plan.count(o) as u32;
        status.last_plan = Some(PlanSummary {
            applied_at: now(),
            create: op(Op::Create),
            update: op(Op::Update),
            replace: op(Op::Replace),
            delete: op(Op::Delete),
            actions: plan
                .actions
                .iter()
                .take(100)
                .map(|a| {
                    format!(
                        "{} {}",
                        serde_json::to_value(a.op)
                            .ok()
                            .and_then(|v| v.as_str().map(String::from))
                            .unwrap_or_default(),
                        a.resource
                    )
                })
                .collect(),
        });
    }
    // What exists now, and whether anything is still to do.
    let now_have = providers.observe(&owner).await.map_err(provider_err)?;
    let left = reconcile::plan(&name, &scopes, &want, &now_have);
    status.resources = now_have
        .iter()
        .map(|o| (o.id.to_string(), o.cloud_id.to_string()))
        .collect::<BTreeMap<_, _>>();
    status.resource_count = status.resources.len() as u32;
    status.drift = drift.clone();
    let settled = left.is_empty();
    let message = if settled {
        format!("{} resource(s) as the topology asks", status.resource_count)
    } else {
        format!("{} action(s) still pending after apply", left.actions.len())
    };
    status
        .conditions
        .retain(|c| c.type_ != "Ready" && c.type_ != "Drifted");
    status.conditions.push(condition(
        obj,
        "Ready",
        settled,
        if settled { "Applied" } else { "Pending" },
        message.clone(),
    ));
    status.conditions.push(condition(
        obj,
        "Drifted",
        !drift.is_empty(),
        if drift.is_empty() {
            "NoDrift"
        } else {
            "DriftRepaired"
        },
        if drift.is_empty() {
            "nothing changed outside mcnet".into()
        } else {
            format!(
                "{} resource(s) changed outside mcnet, repaired: {}",
                drift.len(),
                drift
                    .iter()
                    .map(|d| d.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        },
    ));
    patch_status(ctx, obj, &status).await?;
    ctx.metrics
        .resources
        .get_or_create(&vec![("topology".into(), name.clone())])
        .set(i64::from(status.resource_count));
    if !drift.is_empty() {
        publish(
            ctx,
            obj,
            EventType::Warning,
            "DriftRepaired",
            "Apply",
            status
                .conditions
                .last()
                .map(|c| c.message.clone())
                .unwrap_or_default(),
        )
        .await;
    }
    if !plan.is_empty() {
        ctx.metrics.count("applied");
        publish(
            ctx,
            obj,
            EventType::Normal,
            "Applied",
            "Apply",
            format!("{} action(s) applied; {message}", plan.actions.len()),
        )
        .await;
    } else {
        ctx.metrics.count("unchanged");
    }
    Ok(if settled {
        Action::requeue(ctx.resync)
    } else {
        Action::requeue(Duration::from_secs(10))
    })
}

async fn destroy(obj: &Topology, ctx: &Context) -> Result<Action, OperatorError> {
    let name = obj.name_any();
    let provider_err = |source| OperatorError::Provider {
        topology: name.clone(),
        source,
    };
    let model = obj.model();
    let providers = (ctx.providers)(&model).map_err(provider_err)?;
    let owner = Owner {
        topology: name.clone(),
    };
    let scopes = scopes();
    let have = providers.observe(&owner).await.map_err(provider_err)?;
    let plan = reconcile::plan(&name, &scopes, &[], &have);
    if !plan.is_empty() {
        let events = Arc::new(|_: &reconcile::ApplyEvent| {});
        let report = reconcile::apply(&plan, &owner, &providers, &ctx.apply, events).await;
        if !report.ok() {
            ctx.metrics.count("error");
            let first = report
                .failed
                .first()
                .map(|f| f.error.clone())
                .unwrap_or_default();
            let e = OperatorError::Apply {
                topology: name,
                failed: report.failed.len().max(report.skipped.len()),
                first,
            };
            publish(
                ctx,
                obj,
                EventType::Warning,
                "DestroyFailed",
                "Destroy",
                e.to_string(),
            )
            .await;
            return Err(e);
        }
    }
    ctx.metrics.count("destroyed");
    ctx.metrics
        .resources
        .get_or_create(&vec![("topology".into(), name.clone())])
        .set(0);
    publish(
        ctx,
        obj,
        EventType::Normal,
        "Destroyed",
        "Destroy",
        format!("{} resource(s) deleted", plan.count(Op::Delete)),
    )
    .await;
    Ok(Action::await_change())
}

/// Runs the controller for every `Topology` until the process ends; only
/// reconciles of the replica that holds `ctx`'s leadership change anything.
pub async fn run(ctx: Arc<Context>) {
    let api: Api<Topology> = Api::all(ctx.client.clone());
    Controller::new(api, watcher::Config::default())
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx)
        .for_each(|r| async move {
            match r {
                Ok((o, _)) => tracing::debug!(topology = %o.name, "reconciled"),
                Err(e) => tracing::debug!(error = %e, "reconcile"),
            }
        })
        .await;
}
