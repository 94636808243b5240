//! Connectivity providers for the planner in `mcnet_core::reconcile`: the
//! embedded simulator (always), and the real clouds behind features.

#[cfg(feature = "aws")]
pub mod aws;
#[cfg(feature = "megaport")]
pub mod megaport;
pub mod sim;

pub use sim::{SimCloud, SimConfig, SimProvider};
