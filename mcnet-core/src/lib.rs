//! # mcnet-core
//!
//! The pure domain of mcnet, an SDK for multi-cloud Kubernetes networking:
//! the typed [`topology`] (validation, IPAM, path and failure analysis,
//! diagrams) and the [`policy`] engine (Kubernetes NetworkPolicy and
//! CiliumNetworkPolicy semantics, compiled to identities, with explained
//! verdicts).
//!
//! It also holds the [`reconcile`] planner and the provider traits that
//! cloud providers implement; applying a plan needs a tokio runtime (for
//! timers and tasks). Beyond that the crate does no I/O of its own: no
//! cloud SDKs, no Kubernetes client, no eBPF. Other mcnet crates build on it.
//!
//! ## Getting started
//!
//! ```
//! use mcnet_core::topology::{validate_str, paths};
//!
//! let yaml = r#"
//! apiVersion: mcnet.io/v1alpha1
//! kind: Topology
//! metadata: {name: demo}
//! spec:
//!   providers: [{name: aws, kind: aws, regions: [us-east-1]}]
//!   networks:
//!     - {name: a, provider: aws, region: us-east-1, cidrs: [10.0.0.0/16]}
//!     - {name: b, provider: aws, region: us-east-1, cidrs: [10.0.128.0/17]}
//!   peerings: [{name: a-b, kind: vpc-peering, networks: [a, b]}]
//! "#;
//! let report = validate_str(yaml);
//! assert!(!report.valid);
//! assert_eq!(report.errors[0].code, "cidr.overlap");
//! assert!(report.errors[0].message.contains("network `a`"));
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod cost;
pub mod diag;
pub mod error;
pub mod input;
#[cfg(feature = "metrics")]
pub mod metrics;
pub mod monitoring;
pub mod policy;
pub mod reach;
pub mod reconcile;
#[cfg(feature = "render")]
pub mod render;
pub mod testing;
pub mod topology;

pub use diag::{Diagnostic, Report, Severity};

// The README's library example, run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
mod readme {}
pub use error::{Error, Result};
