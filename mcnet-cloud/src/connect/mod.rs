//! Connectivity providers for the planner in `mcnet_core::reconcile`: the
//! embedded simulator (always), and the real clouds behind features.

#[cfg(feature = "aws")]
pub mod aws;
#[cfg(feature = "azure")]
pub mod azure;
#[cfg(feature = "gcp")]
pub mod gcp;
#[cfg(feature = "megaport")]
pub mod megaport;
pub mod real;
#[cfg(any(feature = "azure", feature = "gcp", feature = "megaport"))]
mod rest;
pub mod sim;

pub use sim::{SimCloud, SimConfig, SimProvider};
