//! Leader election over a `coordination.k8s.io/v1` Lease, so that of the
//! operator's replicas only one applies.
//!
//! A replica holds the lease while its `renewTime` is younger than
//! `leaseDurationSeconds`; it renews well before that, and another replica
//! takes the lease over only once it has expired. Every write carries the
//! `resourceVersion` it read, so of two replicas racing for an expired
//! lease the API server accepts one and answers the other `409 Conflict`.
//!
//! A replica counts itself leader until `lease duration` after the moment
//! it *sent* its last successful renewal, by its own monotonic clock: never
//! later than the expiry another replica computes from the `renewTime`
//! written, so the two can never both believe they lead (given clocks
//! that advance at the same rate; the lease duration is the margin).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};

/// Leader election settings.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct LeaseConfig {
    /// The Lease's namespace.
    pub namespace: String,
    /// The Lease's name.
    pub name: String,
    /// This replica's identity (its pod name), written as `holderIdentity`.
    pub identity: String,
    /// How long a lease lasts without renewal (`leaseDurationSeconds`).
    pub lease_duration: Duration,
    /// How often the holder renews, and others try to acquire.
    pub retry_period: Duration,
}

impl LeaseConfig {
    /// Kubernetes' usual timings: 15 s leases, tried every 2 s.
    pub fn new(namespace: &str, name: &str, identity: &str) -> LeaseConfig {
        LeaseConfig {
            namespace: namespace.into(),
            name: name.into(),
            identity: identity.into(),
            lease_duration: Duration::from_secs(15),
            retry_period: Duration::from_secs(2),
        }
    }

    /// The same, with other timings (the lease duration is whole seconds,
    /// at least one).
    pub fn with_timings(mut self, lease_duration: Duration, retry_period: Duration) -> LeaseConfig {
        self.lease_duration = Duration::from_secs(lease_duration.as_secs().max(1));
        self.retry_period = retry_period;
        self
    }
}

/// Whether this replica leads now; cheap to clone and to ask.
#[derive(Clone, Debug, Default)]
pub struct Leadership {
    until: Arc<Mutex<Option<Instant>>>,
}

impl Leadership {
    /// A replica that always leads (a single instance, or tests).
    pub fn always() -> Leadership {
        Leadership {
            until: Arc::new(Mutex::new(Some(
                Instant::now() + Duration::from_secs(100 * 365 * 86_400),
            ))),
        }
    }

    /// Whether the lease is held now.
    pub fn holds(&self) -> bool {
        let until = *self.until.lock().unwrap_or_else(|e| e.into_inner());
        until.is_some_and(|u| Instant::now() < u)
    }

    fn set(&self, until: Option<Instant>) {
        *self.until.lock().unwrap_or_else(|e| e.into_inner()) = until;
    }
}

/// One replica's side of the election.
#[derive(Clone)]
pub struct LeaderElector {
    api: Api<Lease>,
    config: LeaseConfig,
    leadership: Leadership,
}

impl LeaderElector {
    /// An elector for `config`'s Lease.
    pub fn new(client: Client, config: LeaseConfig) -> LeaderElector {
        LeaderElector {
            api: Api::namespaced(client, &config.namespace),
            config,
            leadership: Leadership::default(),
        }
    }

    /// What the reconciler asks before it changes anything.
    pub fn leadership(&self) -> Leadership {
        self.leadership.clone()
    }

    /// One round: acquire the lease if it is free or expired, renew it if
    /// held. Returns whether this replica leads afterwards. An API error
    /// leaves leadership to expire on its own.
    pub async fn try_acquire_or_renew(&self) -> Result<bool, kube::Error> {
        let sent = Instant::now();
        let now = Timestamp::now();
        let me = &self.config.identity;
        let seconds = self.config.lease_duration.as_secs() as i32;
        let current = match self.api.get_opt(&self.config.name).await? {
            Some(l) => l,
            None => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.config.name.clone()),
                        namespace: Some(self.config.namespace.clone()),
                        ..ObjectMeta::default()
                    },
                    spec: Some(LeaseSpec {
                        holder_identity: Some(me.clone()),
                        lease_duration_seconds: Some(seconds),
                        acquire_time: Some(MicroTime(now)),
                        renew_time: Some(MicroTime(now)),
                        lease_transitions: Some(0),
                        ..LeaseSpec::default()
                    }),
                };
                return self.write(self.api.create(&PostParams::default(), &lease).await, sent);
            }
        };
        let spec = current.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.clone().unwrap_or_default();
        let held_by_me = holder == *me;
        let expired = match (&spec.renew_time, spec.lease_duration_seconds) {
            (Some(MicroTime(renewed)), Some(d)) => {
                *renewed + SignedDuration::from_secs(i64::from(d.max(0))) < now
            }
            // A lease without a renewal time or duration is no one's.
            _ => true,
        };
        if !held_by_me && !holder.is_empty() && !expired {
            self.leadership.set(None);
            return Ok(false);
        }
        let mut next = current.clone();
        let transitions = spec.lease_transitions.unwrap_or(0);
        next.spec = Some(LeaseSpec {
            holder_identity: Some(me.clone()),
            lease_duration_seconds: Some(seconds),
            acquire_time: if held_by_me {
                spec.acquire_time.clone()
            } else {
                Some(MicroTime(now))
            },
            renew_time: Some(MicroTime(now)),
            lease_transitions: Some(if held_by_me {
                transitions
            } else {
                transitions + 1
            }),
            ..spec
        });
        // `current`'s resourceVersion makes this a compare-and-swap.
        let name = self.config.name.clone();
        self.write(
            self.api.replace(&name, &PostParams::default(), &next).await,
            sent,
        )
    }

    fn write(&self, r: Result<Lease, kube::Error>, sent: Instant) -> Result<bool, kube::Error> {
        match r {
            Ok(_) => {
                self.leadership.set(Some(sent + self.config.lease_duration));
                Ok(true)
            }
            // Someone else wrote first: they lead.
            Err(kube::Error::Api(s)) if s.is_conflict() || s.is_already_exists() => {
                self.leadership.set(None);
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// Tries every `retry_period` until the process ends.
    pub async fn run(self) {
        loop {
            match self.try_acquire_or_renew().await {
                Ok(leads) => tracing::debug!(leads, lease = %self.config.name, "leader election"),
                Err(e) => {
                    tracing::warn!(error = %e, lease = %self.config.name, "leader election: cannot reach the Lease")
                }
            }
            tokio::time::sleep(self.config.retry_period).await;
        }
    }
}
