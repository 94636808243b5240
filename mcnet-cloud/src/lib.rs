//! # mcnet-cloud
//!
//! mcnet's cross-cloud layer.
//!
//! - [`connect`]: the providers behind `mcnet_core::reconcile`'s
//!   plan/apply/drift: the embedded simulated cloud ([`connect::sim`],
//!   always built, the default backend) and the real clouds behind
//!   features (`aws` through aws-sdk-ec2, `megaport`, `azure` and `gcp` over
//!   their REST APIs); [`connect::real::provider_for`] builds one from a
//!   topology and the environment;
//! - [`lock`]: the advisory lock that serialises writers of one state
//!   directory;
//! - `gslb` (feature `gslb`): global server load balancing over DNS: an authoritative
//!   responder answering from active health checks, with failover,
//!   weighted, latency and geo (EDNS Client Subnet) policies, and
//!   Prometheus metrics;
//! - `probe` (feature `probe`): SLO probes (connection success and rate, latency
//!   percentiles, throughput, loss) judged against the ADR's success metrics.
//!
//! Every fallible call returns its module's error; [`Error`] gathers them
//! for callers that handle all of them in one place.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod connect;
#[cfg(feature = "gslb")]
pub mod gslb;
pub mod lock;
#[cfg(feature = "operator")]
pub mod operator;
#[cfg(feature = "probe")]
pub mod probe;

/// Any error of this crate: each variant is its module's error, shown and
/// chained as that error is.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A provider call failed.
    #[error(transparent)]
    Provider(#[from] mcnet_core::reconcile::ProviderError),
    /// The state directory's lock could not be taken.
    #[error(transparent)]
    Lock(#[from] lock::LockError),
    /// A lock wait (`--lock-timeout`) that does not parse.
    #[error(transparent)]
    Wait(#[from] lock::WaitError),
    /// GSLB configuration or serving failed.
    #[cfg(feature = "gslb")]
    #[error(transparent)]
    Gslb(#[from] gslb::Error),
    /// Reading or validating input failed.
    #[error(transparent)]
    Core(#[from] mcnet_core::Error),
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
