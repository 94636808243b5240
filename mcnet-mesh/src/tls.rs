//! The mTLS transport: connectors that present a workload certificate and
//! verify the peer against the trust bundle, with hot-swappable
//! certificates and bundles (renewal and rollover without a restart), and
//! typed handshake failures.

use std::sync::{Arc, Mutex, RwLock};

use rustls::client::danger::ServerCertVerifier;
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::{ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{CertificateError, ClientConfig, ServerConfig};
use tokio::net::TcpStream;
use tokio_rustls::{client, server, TlsAcceptor, TlsConnector};

use crate::identity::{TrustBundle, WorkloadCert};
pub use crate::x509::identities_of;
use crate::x509::pem_certs;
use crate::{Error, Result};

/// Why a handshake failed, as the gateway counts it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum HandshakeFailure {
    /// The peer spoke something other than TLS.
    Plaintext,
    /// The peer presented no certificate.
    NoCertificate,
    /// The peer's certificate does not chain to a trusted anchor.
    Untrusted,
    /// The peer's certificate has expired (or is not yet valid).
    Expired,
    /// The peer's certificate does not name the expected identity.
    WrongIdentity,
    /// Any other TLS failure.
    Other,
    /// The connection failed (closed, reset) during the handshake.
    Io,
    /// The handshake did not finish within the gateway's handshake timeout.
    Timeout,
}

impl HandshakeFailure {
    /// A stable label (`plaintext`, `untrusted`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            HandshakeFailure::Plaintext => "plaintext",
            HandshakeFailure::NoCertificate => "no_certificate",
            HandshakeFailure::Untrusted => "untrusted",
            HandshakeFailure::Expired => "expired",
            HandshakeFailure::WrongIdentity => "wrong_identity",
            HandshakeFailure::Other => "tls_error",
            HandshakeFailure::Io => "io",
            HandshakeFailure::Timeout => "timeout",
        }
    }

    /// Every reason.
    pub const ALL: [HandshakeFailure; 8] = [
        HandshakeFailure::Plaintext,
        HandshakeFailure::NoCertificate,
        HandshakeFailure::Untrusted,
        HandshakeFailure::Expired,
        HandshakeFailure::WrongIdentity,
        HandshakeFailure::Other,
        HandshakeFailure::Io,
        HandshakeFailure::Timeout,
    ];

    /// Classifies a handshake error.
    pub fn classify(e: &std::io::Error) -> HandshakeFailure {
        let Some(tls) = e.get_ref().and_then(|x| x.downcast_ref::<rustls::Error>()) else {
            return HandshakeFailure::Io;
        };
        match tls {
            rustls::Error::InvalidMessage(_) => HandshakeFailure::Plaintext,
            rustls::Error::NoCertificatesPresented => HandshakeFailure::NoCertificate,
            rustls::Error::InvalidCertificate(c) => match c {
                CertificateError::Expired
                | CertificateError::ExpiredContext { .. }
                | CertificateError::NotValidYet
                | CertificateError::NotValidYetContext { .. } => HandshakeFailure::Expired,
                CertificateError::UnknownIssuer | CertificateError::BadSignature => {
                    HandshakeFailure::Untrusted
                }
                CertificateError::NotValidForName
                | CertificateError::NotValidForNameContext { .. } => {
                    HandshakeFailure::WrongIdentity
                }
                _ => HandshakeFailure::Other,
            },
            rustls::Error::AlertReceived(a) => match a {
                rustls::AlertDescription::CertificateExpired => HandshakeFailure::Expired,
                rustls::AlertDescription::UnknownCA => HandshakeFailure::Untrusted,
                rustls::AlertDescription::CertificateRequired => HandshakeFailure::NoCertificate,
                rustls::AlertDescription::BadCertificate => HandshakeFailure::WrongIdentity,
                _ => HandshakeFailure::Other,
            },
            _ => HandshakeFailure::Other,
        }
    }
}

impl std::fmt::Display for HandshakeFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// aws-lc-rs, TLS 1.3 suites only, AES-128-GCM first (what the peers of a
/// mesh negotiate between themselves). aws-lc's AES-GCM uses VAES and
/// AVX-512 where the CPU has them, which moves a gateway's bulk throughput
/// well past ring's AES-NI code. Key exchange stays classical (X25519, then
/// the NIST curves), as with ring.
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    use rustls::crypto::aws_lc_rs::{cipher_suite as cs, kx_group as kx};
    Arc::new(rustls::crypto::CryptoProvider {
        cipher_suites: vec![
            cs::TLS13_AES_128_GCM_SHA256,
            cs::TLS13_AES_256_GCM_SHA384,
            cs::TLS13_CHACHA20_POLY1305_SHA256,
        ],
        kx_groups: vec![kx::X25519, kx::SECP256R1, kx::SECP384R1],
        ..rustls::crypto::aws_lc_rs::default_provider()
    })
}

struct Configs {
    cert: WorkloadCert,
    bundle: TrustBundle,
    server: Arc<ServerConfig>,
    client: Arc<ClientConfig>,
}

struct Shared {
    live: RwLock<Configs>,
    /// Held by whoever is replacing the material, so that a replacement
    /// built from the current certificate or bundle is not lost to another.
    writer: Mutex<()>,
}

/// A workload's live TLS identity: its certificate and trust bundle, both
/// replaceable while connections run. New handshakes use the new material;
/// established connections are not touched.
///
/// Certificate, key and bundle are replaced together or not at all
/// ([`TlsIdentity::replace`]): a replacement is checked in full and its TLS
/// configurations built before anything changes.
#[derive(Clone)]
pub struct TlsIdentity {
    inner: Arc<Shared>,
}

impl std::fmt::Debug for TlsIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let g = self.read();
        f.debug_struct("TlsIdentity")
            .field("id", &g.cert.id.linkerd_name())
            .field("anchors", &g.bundle.len())
            .finish()
    }
}

/// Checks that a certificate, its key and a trust bundle can serve
/// together: the key is the leaf's, and the chain verifies against the
/// bundle now (as a client certificate, or, for a certificate meant only
/// for servers, as a server certificate for its own Linkerd name).
pub fn check_identity(cert: &WorkloadCert, bundle: &TrustBundle) -> Result<()> {
    let chain = pem_certs(&cert.chain_pem)?;
    let (leaf, intermediates) = chain
        .split_first()
        .ok_or_else(|| Error::Invalid("the certificate chain holds no certificate".into()))?;
    cert.key.check_matches(leaf, "the private key")?;
    if bundle.is_empty() {
        return Err(Error::Invalid(
            "the trust bundle holds no certificate".into(),
        ));
    }
    let roots = Arc::new(bundle.root_store()?);
    let now = UnixTime::now();
    let crypto = |e: rustls::Error| Error::crypto("certificate verification", e);
    let as_client = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider())
        .build()
        .map_err(|e| Error::crypto("certificate verifier", e))?
        .verify_client_cert(leaf, intermediates, now)
        .map(|_| ());
    let verified = match as_client {
        Err(rustls::Error::InvalidCertificate(
            CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. },
        )) => {
            let name = ServerName::try_from(cert.id.linkerd_name())
                .map_err(|e| Error::Invalid(format!("`{}`: {e}", cert.id)))?;
            WebPkiServerVerifier::builder_with_provider(roots, provider())
                .build()
                .map_err(|e| Error::crypto("certificate verifier", e))?
                .verify_server_cert(leaf, intermediates, &name, &[], now)
                .map(|_| ())
        }
        other => other,
    };
    verified.map_err(|e| match e {
        rustls::Error::InvalidCertificate(why) => Error::Invalid(format!(
            "the certificate of `{}` does not verify against the trust bundle ({} anchor{}): {why:?}",
            cert.id,
            bundle.len(),
            if bundle.len() == 1 { "" } else { "s" }
        )),
        other => crypto(other),
    })
}

fn build(cert: &WorkloadCert, bundle: &TrustBundle) -> Result<(ServerConfig, ClientConfig)> {
    let chain = pem_certs(&cert.chain_pem)?;
    let roots = Arc::new(bundle.root_store()?);
    let tls = |e: rustls::Error| Error::crypto("TLS configuration", e);
    let verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider())
        .build()
        .map_err(|e| Error::crypto("certificate verifier", e))?;
    let server = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(tls)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain.clone(), cert.key.to_der()?)
        .map_err(tls)?;
    let client = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(tls)?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, cert.key.to_der()?)
        .map_err(tls)?;
    Ok((server, client))
}

impl TlsIdentity {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Configs> {
        self.inner.live.read().unwrap_or_else(|p| p.into_inner())
    }

    /// A live identity from a certificate and a bundle. The key must be the
    /// certificate's; the chain is not verified here (tests build
    /// identities with expired or foreign certificates on purpose), but
    /// every replacement's is.
    pub fn new(cert: WorkloadCert, bundle: TrustBundle) -> Result<TlsIdentity> {
        if let Some(leaf) = pem_certs(&cert.chain_pem)?.first() {
            cert.key.check_matches(leaf, "the private key")?;
        }
        let (server, client) = build(&cert, &bundle)?;
        Ok(TlsIdentity {
            inner: Arc::new(Shared {
                live: RwLock::new(Configs {
                    cert,
                    bundle,
                    server: Arc::new(server),
                    client: Arc::new(client),
                }),
                writer: Mutex::new(()),
            }),
        })
    }

    /// Replaces the certificate (with its key) and the trust bundle in one
    /// step. Everything is checked first ([`check_identity`]: the key is
    /// the certificate's, the chain verifies against the new bundle now)
    /// and the new TLS configurations built; only then are they swapped in,
    /// together. On error nothing changes: the old certificate, key and
    /// bundle stay in force.
    pub fn replace(&self, cert: WorkloadCert, bundle: TrustBundle) -> Result<()> {
        let _writer = self.lock_writer();
        self.install(cert, bundle)
    }

    fn lock_writer(&self) -> std::sync::MutexGuard<'_, ()> {
        self.inner.writer.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Checks and builds, then swaps; the caller holds the writer lock.
    fn install(&self, cert: WorkloadCert, bundle: TrustBundle) -> Result<()> {
        check_identity(&cert, &bundle)?;
        let (server, client) = build(&cert, &bundle)?;
        let next = Configs {
            cert,
            bundle,
            server: Arc::new(server),
            client: Arc::new(client),
        };
        *self.inner.live.write().unwrap_or_else(|p| p.into_inner()) = next;
        Ok(())
    }

    /// Replaces the certificate (renewal), keeping the bundle: as
    /// [`TlsIdentity::replace`], so a certificate that does not verify
    /// against the current bundle is refused.
    pub fn set_cert(&self, cert: WorkloadCert) -> Result<()> {
        let _writer = self.lock_writer();
        let bundle = self.bundle();
        self.install(cert, bundle)
    }

    /// Replaces the trust bundle (rollover), keeping the certificate: as
    /// [`TlsIdentity::replace`], so a bundle the current certificate does
    /// not verify against is refused.
    pub fn set_bundle(&self, bundle: TrustBundle) -> Result<()> {
        let _writer = self.lock_writer();
        let cert = self.cert();
        self.install(cert, bundle)
    }

    /// The current certificate.
    pub fn cert(&self) -> WorkloadCert {
        self.read().cert.clone()
    }

    /// The current bundle.
    pub fn bundle(&self) -> TrustBundle {
        self.read().bundle.clone()
    }

    fn server_config(&self) -> Arc<ServerConfig> {
        self.read().server.clone()
    }

    fn client_config(&self) -> Arc<ClientConfig> {
        self.read().client.clone()
    }

    /// Accepts an mTLS connection: the client must present a certificate
    /// chaining to the bundle. Returns the stream and the client's identities.
    pub async fn accept(
        &self,
        tcp: TcpStream,
    ) -> std::result::Result<(server::TlsStream<TcpStream>, Vec<String>), HandshakeFailure> {
        let acceptor = TlsAcceptor::from(self.server_config());
        let tls = acceptor
            .accept(tcp)
            .await
            .map_err(|e| HandshakeFailure::classify(&e))?;
        let ids = tls
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|c| c.first())
            .map(identities_of)
            .transpose()
            .map_err(|_| HandshakeFailure::Other)?
            .unwrap_or_default();
        Ok((tls, ids))
    }

    /// Connects to a server that must prove `server_identity` (its Linkerd
    /// name, also sent as SNI), presenting this workload's certificate.
    pub async fn connect(
        &self,
        tcp: TcpStream,
        server_identity: &str,
    ) -> std::result::Result<client::TlsStream<TcpStream>, HandshakeFailure> {
        let name = ServerName::try_from(server_identity.to_string())
            .map_err(|_| HandshakeFailure::WrongIdentity)?;
        TlsConnector::from(self.client_config())
            .connect(name, tcp)
            .await
            .map_err(|e| HandshakeFailure::classify(&e))
    }
}

/// Which identities may reach a server port, modelled on Linkerd's Server,
/// MeshTLSAuthentication and AuthorizationPolicy.
#[derive(Clone, Debug, Default)]
pub struct Authorization {
    /// Per-port rules; a port without a rule falls back to `default`.
    pub servers: Vec<ServerAuthz>,
    /// The policy for ports no Server names.
    pub default: DefaultPolicy,
    /// Audit: log a violation and let it through.
    pub audit: bool,
}

/// A Server (a port) with the MeshTLSAuthentication identities its
/// AuthorizationPolicy requires.
#[derive(Clone, Debug)]
pub struct ServerAuthz {
    /// Server name.
    pub name: String,
    /// Port.
    pub port: u16,
    /// Allowed identities: exact Linkerd names or SPIFFE ids, `*` for any
    /// authenticated client, or `*.<suffix>` for any name ending in `.<suffix>`.
    pub identities: Vec<String>,
}

/// Linkerd's default access policies for ports without a Server.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DefaultPolicy {
    /// Deny everything.
    #[default]
    Deny,
    /// Any client with a mesh identity.
    AllAuthenticated,
}

/// The outcome of an authorization.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthzDecision {
    /// Whether the connection may proceed.
    pub allowed: bool,
    /// Whether it violated the policy (true also when audit lets it through).
    pub violation: bool,
    /// Why.
    pub reason: String,
}

fn matches(pattern: &str, id: &str) -> bool {
    match pattern.strip_prefix("*.") {
        _ if pattern == "*" => true,
        Some(suffix) => id.len() > suffix.len() + 1 && id.ends_with(&format!(".{suffix}")),
        None => pattern == id,
    }
}

impl Authorization {
    /// Allows exactly `identities` on every port (what `mcnet mesh gateway --allow` builds).
    pub fn allow_only(identities: Vec<String>) -> Authorization {
        Authorization {
            servers: Vec::new(),
            default: DefaultPolicy::Deny,
            audit: false,
        }
        .with_any_port(identities)
    }

    fn with_any_port(mut self, identities: Vec<String>) -> Authorization {
        self.servers.push(ServerAuthz {
            name: "*".into(),
            port: 0,
            identities,
        });
        self
    }

    /// Decides whether a client with `peer` identities may reach `port`.
    pub fn authorize(&self, port: u16, peer: &[String]) -> AuthzDecision {
        let rules: Vec<&ServerAuthz> = self
            .servers
            .iter()
            .filter(|s| s.port == port || s.port == 0)
            .collect();
        let (allowed, reason) = if peer.is_empty() {
            (false, "the client has no mesh identity".to_string())
        } else if rules.is_empty() {
            match self.default {
                DefaultPolicy::Deny => (false, format!("no Server for port {port}; default deny")),
                DefaultPolicy::AllAuthenticated => (
                    true,
                    format!("no Server for port {port}; all-authenticated"),
                ),
            }
        } else {
            match rules.iter().find(|s| {
                s.identities
                    .iter()
                    .any(|p| peer.iter().any(|id| matches(p, id)))
            }) {
                Some(s) => (true, format!("authorized by Server `{}`", s.name)),
                None => (
                    false,
                    format!(
                        "identity {} is not authorized on port {port}",
                        peer.first().map(String::as_str).unwrap_or("-")
                    ),
                ),
            }
        };
        AuthzDecision {
            allowed: allowed || self.audit,
            violation: !allowed,
            reason: if !allowed && self.audit {
                format!("audit: {reason} (let through)")
            } else {
                reason
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorization_matches_exact_wildcard_and_spiffe() {
        let fe = "frontend.production.serviceaccount.identity.linkerd.cluster.local".to_string();
        let spiffe = "spiffe://cluster.local/ns/production/sa/frontend".to_string();
        let a = Authorization {
            servers: vec![ServerAuthz {
                name: "api-http".into(),
                port: 8080,
                identities: vec![fe.clone()],
            }],
            ..Authorization::default()
        };
        assert!(a.authorize(8080, std::slice::from_ref(&fe)).allowed);
        assert!(
            !a.authorize(
                8080,
                &["x.production.serviceaccount.identity.linkerd.cluster.local".into()]
            )
            .allowed
        );
        assert!(
            !a.authorize(9090, std::slice::from_ref(&fe)).allowed,
            "default deny"
        );
        assert!(!a.authorize(8080, &[]).allowed);
        let by_spiffe = Authorization::allow_only(vec![spiffe.clone()]);
        assert!(by_spiffe.authorize(1, &[fe.clone(), spiffe]).allowed);
        let wildcard = Authorization::allow_only(vec![
            "*.production.serviceaccount.identity.linkerd.cluster.local".into(),
        ]);
        assert!(wildcard.authorize(1, std::slice::from_ref(&fe)).allowed);
        assert!(
            !wildcard
                .authorize(
                    1,
                    &["a.staging.serviceaccount.identity.linkerd.cluster.local".into()]
                )
                .allowed
        );
        let audit = Authorization {
            audit: true,
            ..Authorization::allow_only(vec!["nobody".into()])
        };
        let d = audit.authorize(1, std::slice::from_ref(&fe));
        assert!(d.allowed && d.violation, "{d:?}");
        let all = Authorization {
            default: DefaultPolicy::AllAuthenticated,
            ..Authorization::default()
        };
        assert!(all.authorize(5, std::slice::from_ref(&fe)).allowed);
    }
}
