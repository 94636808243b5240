//! Running a plan: the DAG of steps ([`super::dag`]), bounded concurrency, waiting out
//! asynchronous states, and retries with backoff and jitter.

use crate::error::Chain;
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::dag::{steps, topo_order, Phase};
use super::plan::{Action, Plan};
use super::provider::{ErrorKind, ProviderError, Refs, ResourceProvider};
use super::resource::{Observed, Owner, ResourceState, Scope};

/// Retry policy for throttling and transient errors: exponential backoff
/// with jitter (each delay is drawn from the upper half of its window).
#[derive(Clone, Debug)]
pub struct Retry {
    /// Attempts per call, the first included.
    pub attempts: u32,
    /// First backoff window.
    pub base: Duration,
    /// Largest backoff window.
    pub cap: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Retry {
            attempts: 8,
            base: Duration::from_millis(100),
            cap: Duration::from_secs(5),
        }
    }
}

impl Retry {
    /// The delay before attempt `n` (1-based count of failures so far).
    pub fn delay(&self, n: u32, jitter: f64) -> Duration {
        let window = self
            .base
            .saturating_mul(1u32 << n.saturating_sub(1).min(16))
            .min(self.cap);
        window.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0))
    }
}

/// How to run a plan.
#[derive(Clone, Debug)]
pub struct ApplyOptions {
    /// Steps in flight at once.
    pub concurrency: usize,
    /// Retries of throttled and transient calls.
    pub retry: Retry,
    /// How long to wait for a resource to become ready (or gone).
    pub wait_timeout: Duration,
    /// First interval between state polls; it doubles up to 2 s.
    pub poll: Duration,
}

impl Default for ApplyOptions {
    fn default() -> Self {
        ApplyOptions {
            concurrency: 4,
            retry: Retry::default(),
            wait_timeout: Duration::from_secs(600),
            poll: Duration::from_millis(100),
        }
    }
}

/// Progress of an apply, for a progress bar or a log.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum ApplyEvent {
    /// A step began.
    Started {
        /// Action index.
        action: usize,
        /// Logical id.
        resource: String,
        /// Which half.
        phase: Phase,
    },
    /// A call failed and will be retried.
    Retrying {
        /// Logical id.
        resource: String,
        /// Failures so far.
        attempt: u32,
        /// The error.
        error: String,
    },
    /// Waiting for an asynchronous state.
    Waiting {
        /// Logical id.
        resource: String,
        /// The cloud's status.
        status: String,
    },
    /// A step finished.
    Finished {
        /// Action index.
        action: usize,
        /// Logical id.
        resource: String,
        /// Which half.
        phase: Phase,
    },
    /// A step failed for good.
    Failed {
        /// Logical id.
        resource: String,
        /// The error.
        error: String,
    },
    /// A step did not run because something it needs failed.
    Skipped {
        /// Logical id.
        resource: String,
    },
}

/// A failed action.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Failure {
    /// Action index.
    pub action: usize,
    /// Logical id.
    pub resource: String,
    /// The error, naming the provider, operation and resource.
    pub error: String,
    /// Its classification.
    pub kind: ErrorKind,
}

/// What an apply did.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplyReport {
    /// Steps planned.
    pub steps: usize,
    /// Steps completed.
    pub completed: usize,
    /// Calls retried after throttling or transient errors.
    pub retries: u32,
    /// Actions that failed.
    pub failed: Vec<Failure>,
    /// Logical ids not attempted because a dependency failed.
    pub skipped: Vec<String>,
    /// Wall time, seconds.
    pub seconds: f64,
}

impl ApplyReport {
    /// Whether every step completed.
    pub fn ok(&self) -> bool {
        self.failed.is_empty() && self.skipped.is_empty() && self.completed == self.steps
    }
}

/// The providers an apply may use, by scope.
#[derive(Clone, Debug, Default)]
pub struct Providers(pub BTreeMap<Scope, Arc<dyn ResourceProvider>>);

impl Providers {
    /// Adds a provider for its scope.
    pub fn with(mut self, p: Arc<dyn ResourceProvider>) -> Providers {
        self.0.insert(p.scope(), p);
        self
    }

    fn get(&self, s: Scope) -> Result<&Arc<dyn ResourceProvider>, ProviderError> {
        self.0.get(&s).ok_or_else(|| {
            ProviderError::new(
                s,
                ErrorKind::Unresolved,
                "select",
                format!("no {s} provider is configured"),
            )
        })
    }

    /// Observes every configured provider. A reference one provider could
    /// not name (`unmanaged:<cloud id>`) is named here when another
    /// provider owns that cloud id: a VXC a cloud resource waits on.
    pub async fn observe(&self, owner: &Owner) -> Result<Vec<Observed>, ProviderError> {
        let mut all = Vec::new();
        for p in self.0.values() {
            all.extend(p.observe(owner).await?);
        }
        let names: BTreeMap<String, String> = all
            .iter()
            .map(|o| (o.cloud_id.to_string(), o.id.to_string()))
            .collect();
        for o in &mut all {
            o.spec.map_refs(
                |r| match r.strip_prefix("unmanaged:").and_then(|c| names.get(c)) {
                    Some(id) => id.clone(),
                    None => r.to_string(),
                },
            );
        }
        Ok(all)
    }

    /// API calls made so far across providers.
    pub fn api_calls(&self) -> u64 {
        self.0.values().map(|p| p.api_calls()).sum()
    }
}

type Events = Arc<dyn Fn(&ApplyEvent) + Send + Sync>;

struct Ctx {
    owner: Owner,
    providers: Providers,
    known: Mutex<BTreeMap<String, Observed>>,
    opts: ApplyOptions,
    events: Events,
    retries: Mutex<u32>,
    seed: Mutex<u64>,
}

impl Ctx {
    fn jitter(&self) -> f64 {
        let mut s = self.seed.lock().unwrap_or_else(|p| p.into_inner());
        // xorshift64*: jitter needs spread, not secrecy.
        *s ^= *s >> 12;
        *s ^= *s << 25;
        *s ^= *s >> 27;
        (s.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    }

    fn snapshot(&self) -> BTreeMap<String, Observed> {
        self.known.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn record(&self, o: Observed) {
        self.known
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(o.id.to_string(), o);
    }

    async fn backoff(&self, resource: &str, attempt: u32, e: &ProviderError) {
        *self.retries.lock().unwrap_or_else(|p| p.into_inner()) += 1;
        (self.events)(&ApplyEvent::Retrying {
            resource: resource.to_string(),
            attempt,
            error: Chain(e).to_string(),
        });
        tokio::time::sleep(self.opts.retry.delay(attempt, self.jitter())).await;
    }

    /// Runs `call` until it succeeds, fails for good, or has used every
    /// attempt, backing off after each throttled or transient failure.
    async fn retrying<T, F, Fut>(&self, resource: &str, mut call: F) -> Result<T, ProviderError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, ProviderError>>,
    {
        let mut failures = 0;
        loop {
            match call().await {
                Err(e) if e.kind.retryable() && failures + 1 < self.opts.retry.attempts.max(1) => {
                    failures += 1;
                    self.backoff(resource, failures, &e).await;
                }
                done => return done,
            }
        }
    }

    /// Polls until `o` is ready (or, with `gone`, until it no longer exists).
    async fn wait(
        &self,
        p: &dyn ResourceProvider,
        mut o: Observed,
        gone: bool,
    ) -> Result<Observed, ProviderError> {
        let start = Instant::now();
        let mut every = self.opts.poll;
        let mut failures = 0;
        loop {
            let status = match (&o.state, gone) {
                (ResourceState::Ready, false) => return Ok(o),
                (ResourceState::Failed(s), false) => {
                    return Err(ProviderError::new(
                        o.scope,
                        ErrorKind::Conflict,
                        "wait",
                        format!("{} ({}) failed: {s}", o.id, o.cloud_id),
                    ))
                }
                (ResourceState::Pending(s), _) => s.clone(),
                (_, true) => "deleting".to_string(),
            };
            if start.elapsed() > self.opts.wait_timeout {
                return Err(ProviderError::new(
                    o.scope,
                    ErrorKind::Transient,
                    "wait",
                    format!(
                        "{} ({}) still {status} after {:?}",
                        o.id, o.cloud_id, self.opts.wait_timeout
                    ),
                ));
            }
            (self.events)(&ApplyEvent::Waiting {
                resource: o.id.to_string(),
                status,
            });
            tokio::time::sleep(every).await;
            every = (every * 2).min(Duration::from_secs(2));
            match p.refresh(&o).await {
                Ok(Some(next)) => o = next,
                Ok(None) if gone => return Ok(o),
                Ok(None) => {
                    return Err(ProviderError::new(
                        o.scope,
                        ErrorKind::NotFound,
                        "wait",
                        format!("{} ({}) disappeared while becoming ready", o.id, o.cloud_id),
                    ))
                }
                Err(e) if e.kind.retryable() && failures + 1 < self.opts.retry.attempts => {
                    failures += 1;
                    self.backoff(o.id.as_str(), failures, &e).await;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// Updates `cur` to `d`, retrying throttled and transient failures.
async fn update(
    ctx: &Ctx,
    p: &dyn ResourceProvider,
    a: &Action,
    d: &super::resource::Desired,
    cur: &Observed,
) -> Result<Observed, ProviderError> {
    ctx.retrying(a.resource.as_str(), || async {
        let known = ctx.snapshot();
        p.update(&ctx.owner, d, cur, Refs::new(a.provider, &known))
            .await
    })
    .await
}

async fn run_step(ctx: Arc<Ctx>, a: Action, phase: Phase) -> Result<(), ProviderError> {
    let p = ctx.providers.get(a.provider)?.clone();
    match phase {
        Phase::Create => {
            let d = a.desired.as_ref().expect("a create has a desired shape");
            let (created, adopted) = ctx
                .retrying(a.resource.as_str(), || async {
                    let known = ctx.snapshot();
                    match p.create(&ctx.owner, d, Refs::new(a.provider, &known)).await {
                        Ok(o) => Ok((o, false)),
                        // A timed-out create may have happened: look before retrying.
                        Err(e) if e.kind == ErrorKind::Transient => {
                            match p.lookup(&ctx.owner, d).await {
                                Ok(Some(o)) => Ok((o, true)),
                                _ => Err(e),
                            }
                        }
                        Err(e) => Err(e),
                    }
                })
                .await?;
            // Adopted: finish what the lost call left half done (a peering
            // not yet accepted).
            let created = if adopted
                && (created.state != ResourceState::Ready || !d.spec.diff(&created.spec).is_empty())
            {
                update(&ctx, p.as_ref(), &a, d, &created).await?
            } else {
                created
            };
            let ready = ctx.wait(p.as_ref(), created, false).await?;
            ctx.record(ready);
        }
        Phase::Update => {
            let d = a.desired.as_ref().expect("an update has a desired shape");
            let cur = a.current.clone().expect("an update has a current resource");
            let updated = update(&ctx, p.as_ref(), &a, d, &cur).await?;
            let ready = ctx.wait(p.as_ref(), updated, false).await?;
            ctx.record(ready);
        }
        Phase::Delete => {
            let cur = a.current.clone().expect("a delete has a current resource");
            ctx.retrying(a.resource.as_str(), || async {
                match p.delete(&cur).await {
                    Err(e) if e.kind == ErrorKind::NotFound => Ok(()),
                    other => other,
                }
            })
            .await?;
            ctx.wait(p.as_ref(), cur.clone(), true).await?;
            let mut known = ctx.known.lock().unwrap_or_else(|p| p.into_inner());
            if known
                .get(cur.id.as_str())
                .is_some_and(|k| k.cloud_id == cur.cloud_id)
            {
                known.remove(cur.id.as_str());
            }
        }
    }
    Ok(())
}

/// Runs `plan` with at most `opts.concurrency` steps in flight. A failed
/// step skips what depends on it; independent steps go on. Every created
/// resource carries the owner's tags, so a re-plan after any failure (or a
/// killed process) picks up exactly where this one stopped.
pub async fn apply(
    plan: &Plan,
    owner: &Owner,
    providers: &Providers,
    opts: &ApplyOptions,
    events: Events,
) -> ApplyReport {
    let start = Instant::now();
    let steps = steps(&plan.actions);
    let mut report = ApplyReport {
        steps: steps.len(),
        ..ApplyReport::default()
    };
    let order = topo_order(&steps);
    if order.len() < steps.len() {
        let stuck: Vec<String> = (0..steps.len())
            .filter(|i| !order.contains(i))
            .map(|i| plan.actions[steps[i].action].resource.to_string())
            .collect();
        report.failed.push(Failure {
            action: steps[0].action,
            resource: stuck[0].clone(),
            error: format!(
                "the plan has a dependency cycle through {}",
                stuck.join(", ")
            ),
            kind: ErrorKind::Invalid,
        });
        return report;
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let seed = (now ^ u64::from(std::process::id())).wrapping_add(0x9e37_79b9_7f4a_7c15) | 1;
    let ctx = Arc::new(Ctx {
        owner: owner.clone(),
        providers: providers.clone(),
        known: Mutex::new(plan.known.clone()),
        opts: opts.clone(),
        events,
        retries: Mutex::new(0),
        seed: Mutex::new(seed),
    });

    let mut indeg: Vec<usize> = steps.iter().map(|s| s.after.len()).collect();
    let mut succ: Vec<Vec<usize>> = vec![vec![]; steps.len()];
    for (i, s) in steps.iter().enumerate() {
        for &p in &s.after {
            succ[p].push(i);
        }
    }
    let mut dead = vec![false; steps.len()];
    let mut ready: VecDeque<usize> = (0..steps.len()).filter(|&i| indeg[i] == 0).collect();
    let mut running = tokio::task::JoinSet::new();
    loop {
        while running.len() < opts.concurrency.max(1) {
            let Some(s) = ready.pop_front() else { break };
            let a = plan.actions[steps[s].action].clone();
            let phase = steps[s].phase;
            (ctx.events)(&ApplyEvent::Started {
                action: a.index,
                resource: a.resource.to_string(),
                phase,
            });
            let c = Arc::clone(&ctx);
            running.spawn(async move { (s, run_step(c, a, phase).await) });
        }
        let Some(joined) = running.join_next().await else {
            break;
        };
        let (s, result) = match joined {
            Ok(r) => r,
            Err(e) => {
                // A panicking provider: nothing else can be attributed.
                report.failed.push(Failure {
                    action: 0,
                    resource: "(provider task)".into(),
                    error: Chain(&e).to_string(),
                    kind: ErrorKind::Transient,
                });
                continue;
            }
        };
        let a = &plan.actions[steps[s].action];
        match result {
            Ok(()) => {
                report.completed += 1;
                (ctx.events)(&ApplyEvent::Finished {
                    action: a.index,
                    resource: a.resource.to_string(),
                    phase: steps[s].phase,
                });
                for &n in &succ[s] {
                    indeg[n] -= 1;
                    if indeg[n] == 0 && !dead[n] {
                        ready.push_back(n);
                    }
                }
            }
            Err(e) => {
                (ctx.events)(&ApplyEvent::Failed {
                    resource: a.resource.to_string(),
                    error: Chain(&e).to_string(),
                });
                report.failed.push(Failure {
                    action: a.index,
                    resource: a.resource.to_string(),
                    error: Chain(&e).to_string(),
                    kind: e.kind,
                });
                let mut stack = succ[s].clone();
                while let Some(n) = stack.pop() {
                    if !dead[n] {
                        dead[n] = true;
                        let r = plan.actions[steps[n].action].resource.to_string();
                        (ctx.events)(&ApplyEvent::Skipped {
                            resource: r.clone(),
                        });
                        if !report.skipped.contains(&r) {
                            report.skipped.push(r);
                        }
                        stack.extend(succ[n].iter().copied());
                    }
                }
            }
        }
    }
    report.retries = *ctx.retries.lock().unwrap_or_else(|p| p.into_inner());
    report.seconds = start.elapsed().as_secs_f64();
    report
}
