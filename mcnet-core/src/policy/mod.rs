//! The policy engine: Kubernetes NetworkPolicy and Cilium
//! (Clusterwide)NetworkPolicy with upstream semantics, compiled to numeric
//! identities and a per-identity map state, with explained verdicts.
//!
//! The flow: manifests ([`Manifests::load`]) → [`Compiled::new`] →
//! [`Compiled::eval`] / [`analysis`] (matrix, diff, lint) — and
//! [`generate`] for default-deny and intent-based policies.
//!
//! ```
//! use mcnet_core::policy::{Compiled, Manifests, Proto, Query, QueryEndpoint, Decision};
//!
//! let m = Manifests::parse_str(r#"
//! - {apiVersion: v1, kind: Pod, metadata: {name: a, namespace: x, labels: {app: a}}, status: {podIP: 10.0.0.1}}
//! - {apiVersion: v1, kind: Pod, metadata: {name: b, namespace: x, labels: {app: b}}, status: {podIP: 10.0.0.2}}
//! - apiVersion: networking.k8s.io/v1
//!   kind: NetworkPolicy
//!   metadata: {name: deny-all, namespace: x}
//!   spec: {podSelector: {}, policyTypes: [Ingress]}
//! "#).unwrap();
//! let c = Compiled::new(&m);
//! let pod = |p: &str| QueryEndpoint { pod: Some(p.into()), ip: None };
//! let out = c.eval(&Query::l4(pod("x/a"), pod("x/b"), 80, Proto::Tcp)).unwrap();
//! assert_eq!(out.verdict, Decision::Deny);
//! assert!(out.explanation.contains("NetworkPolicy x/deny-all"));
//! ```

pub mod analysis;
pub mod compile;
pub mod dns;
pub mod eval;
pub mod generate;
mod identity;
pub mod kafka;
pub mod load;
pub mod model;
mod raw;
#[cfg(any(test, feature = "test-util"))]
pub mod reference;
pub mod replay;
pub mod selector;

pub use compile::{Compiled, NumericIdentity, PolicyKey, Verdict};
pub use eval::{
    Decision, DnsRequest, HttpRequest, L7Request, Outcome, Query, QueryEndpoint, Resolved, RuleName,
};
pub use kafka::KafkaRequest;
pub use load::{manifest_files, LoadOptions, Manifests};
pub use model::Proto;
