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
pub mod store;
pub mod tls;
pub mod x509;

use std::path::Path;

/// Errors of the mesh layer. Messages never contain key material.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Bad input: names the object and the problem.
    #[error("{0}")]
    Invalid(String),
    /// Certificate generation, parsing or verification failed.
    #[error("crypto: {context}")]
    Crypto {
        /// What was being done (`private key`, `server config`).
        context: String,
        /// The library's error, when there is one.
        #[source]
        source: Option<BoxError>,
    },
    /// A file or socket operation failed.
    #[error("{context}")]
    Io {
        /// The path or address and the operation.
        context: String,
        /// The operating system's error, when there is one.
        #[source]
        source: Option<std::io::Error>,
    },
    /// A Kubernetes API call or kubeconfig failed.
    #[error("kubernetes: {context}")]
    Kube {
        /// The call or file (`apply Link \`east\``).
        context: String,
        /// kube-rs's error.
        #[source]
        source: BoxError,
    },
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

/// A boxed error from a library mcnet-mesh builds on (rcgen, rustls, kube).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

impl Error {
    fn io(path: &Path, e: std::io::Error) -> Error {
        Error::io_at(path.display().to_string(), e)
    }

    fn io_at(context: impl Into<String>, e: std::io::Error) -> Error {
        Error::Io {
            context: context.into(),
            source: Some(e),
        }
    }

    fn crypto(context: impl Into<String>, e: impl Into<BoxError>) -> Error {
        Error::Crypto {
            context: context.into(),
            source: Some(e.into()),
        }
    }

    fn kube(context: impl Into<String>, e: impl Into<BoxError>) -> Error {
        Error::Kube {
            context: context.into(),
            source: e.into(),
        }
    }
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
