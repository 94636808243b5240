//! # mcnet-cloud
//!
//! mcnet's cross-cloud layer.
//!
//! - [`gslb`]: global server load balancing over DNS: an authoritative
//!   responder answering from active health checks, with failover,
//!   weighted, latency and geo (EDNS Client Subnet) policies, and
//!   Prometheus metrics;
//! - [`probe`]: SLO probes (connection success and rate, latency
//!   percentiles, throughput, loss) judged against the ADR's success metrics.
//!
//! Status: the connectivity providers (the embedded `sim` cloud, AWS,
//! Megaport, Azure, GCP) and the plan/apply reconciler are not implemented
//! yet.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod connect;
pub mod gslb;
pub mod lock;
pub mod probe;
