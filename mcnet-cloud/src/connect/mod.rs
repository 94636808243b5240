//! Connectivity providers for the planner in `mcnet_core::reconcile`: the
//! embedded simulator (always), and the real clouds behind features.

#[cfg(feature = "aws")]
pub mod aws;
pub mod sim;

pub use sim::{SimCloud, SimConfig, SimProvider};
