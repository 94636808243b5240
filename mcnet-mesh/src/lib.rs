//! # mcnet-mesh
//!
//! mcnet's service-mesh layer, compatible with Linkerd:
//!
//! - [`identity`]: a trust anchor, per-cluster issuers and workload
//!   certificates naming both the Linkerd identity and the SPIFFE id, with
//!   keys that never reach logs and are written 0600;
//! - [`tls`]: mTLS connectors over tokio + rustls with live renewal and
//!   trust-bundle rollover, typed handshake failures, and an authorization
//!   policy modelled on Linkerd's Server / AuthorizationPolicy /
//!   MeshTLSAuthentication (with an audit mode);
//! - [`rotation`]: automatic renewal before expiry and anchor rollover with overlap;
//! - [`gateway`]: the cross-cluster gateway (4143) with its probe and
//!   metrics (4191);
//! - [`multicluster`]: Linkerd multicluster resources (Link, the gateway
//!   Service, remote-access credentials), the service mirror's output, and
//!   the trust checks to run before linking two clusters.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod gateway;
pub mod identity;
pub mod multicluster;
pub mod rotation;
pub mod tls;

use std::path::Path;

/// Errors of the mesh layer. Messages never contain key material.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Bad input: names the object and the problem.
    #[error("{0}")]
    Invalid(String),
    /// Certificate generation or parsing failed.
    #[error("crypto: {0}")]
    Crypto(String),
    /// A file or socket operation failed.
    #[error("{0}")]
    Io(String),
    /// A Kubernetes API call failed.
    #[error("kubernetes: {0}")]
    Kube(String),
    /// A lifetime or validity window that a certificate cannot carry: longer
    /// than [`identity::MAX_LIFETIME`], or past what `SystemTime` or X.509
    /// validity can represent.
    #[error("{what}: {problem}")]
    Validity {
        /// The certificate (`workload certificate for <id>`, `issuer`, ...).
        what: String,
        /// What is wrong, with the largest accepted value.
        problem: String,
    },
}

impl Error {
    fn io(path: &Path, e: std::io::Error) -> Error {
        Error::Io(format!("{}: {e}", path.display()))
    }
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
