//! Rotation without downtime: workload certificates renewed before they
//! expire, and trust-anchor rollover with an overlap in which both anchors
//! are trusted.
//!
//! A rollover runs in three steps over every member of the mesh:
//!
//! 1. every bundle trusts the old and the new anchor;
//! 2. issuers are replaced by ones signed by the new anchor, and every
//!    workload certificate is reissued (it now chains to the new anchor,
//!    which every peer already trusts);
//! 3. the old anchor leaves the bundles.
//!
//! At no step does a peer present a chain the other side does not trust.

use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::identity::{IssuerCa, TrustAnchor, WorkloadCert};
use crate::tls::TlsIdentity;
use crate::Result;

/// An issuer shared by the renewals that use it, replaceable during a rollover.
#[derive(Clone, Debug)]
pub struct SharedIssuer(Arc<RwLock<IssuerCa>>);

impl SharedIssuer {
    /// Shares an issuer.
    pub fn new(issuer: IssuerCa) -> SharedIssuer {
        SharedIssuer(Arc::new(RwLock::new(issuer)))
    }

    /// Issues a certificate for the same workload as `old`.
    pub fn reissue(&self, old: &WorkloadCert, lifetime: Duration) -> Result<WorkloadCert> {
        self.0
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .issue(&old.id, lifetime)
    }

    /// Replaces the issuer.
    pub fn replace(&self, issuer: IssuerCa) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = issuer;
    }

    /// The current issuer.
    pub fn get(&self) -> IssuerCa {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// A running renewal: renews at 70% of each certificate's lifetime, or now on request.
#[derive(Debug)]
pub struct Renewal {
    now: Arc<Notify>,
    task: JoinHandle<()>,
}

impl Renewal {
    /// Keeps `identity`'s certificate renewed from `issuer`, each new one
    /// living `lifetime`.
    pub fn spawn(identity: TlsIdentity, issuer: SharedIssuer, lifetime: Duration) -> Renewal {
        let now = Arc::new(Notify::new());
        let wake = now.clone();
        let task = tokio::spawn(async move {
            loop {
                let cert = identity.cert();
                let wait = cert
                    .renew_at()
                    .duration_since(SystemTime::now())
                    .unwrap_or_default();
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = wake.notified() => {}
                }
                match issuer
                    .reissue(&cert, lifetime)
                    .and_then(|c| identity.set_cert(c))
                {
                    Ok(()) => tracing::info!(id = %cert.id, "workload certificate renewed"),
                    Err(e) => {
                        tracing::warn!(id = %cert.id, "renewal failed: {e}; retrying in 1 s");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
        });
        Renewal { now, task }
    }

    /// Renews now (and then on schedule again).
    pub fn renew_now(&self) {
        self.now.notify_one();
    }
}

impl Drop for Renewal {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One member of a rollover: a workload's live identity and the issuer that renews it.
#[derive(Clone, Debug)]
pub struct Member {
    /// The live identity.
    pub identity: TlsIdentity,
    /// Its issuer.
    pub issuer: SharedIssuer,
}

/// Rolls every member over to `new_anchor` (see the module docs): trust
/// both, reissue issuers and certificates under the new anchor, then drop
/// the old anchors. `settle` is awaited between the steps, so that peers
/// elsewhere can catch up (zero in a single process).
pub async fn rollover(
    members: &[Member],
    new_anchor: &TrustAnchor,
    issuer_lifetime: Duration,
    cert_lifetime: Duration,
    settle: Duration,
) -> Result<()> {
    // 1. Trust both.
    let old: Vec<_> = members.iter().map(|m| m.identity.bundle()).collect();
    for m in members {
        let mut b = m.identity.bundle();
        b.add(&new_anchor.ca.cert_pem);
        m.identity.set_bundle(b)?;
    }
    tokio::time::sleep(settle).await;
    // 2. New issuers, new certificates.
    let mut replaced: Vec<SharedIssuer> = Vec::new();
    for m in members {
        if !replaced.iter().any(|r| Arc::ptr_eq(&r.0, &m.issuer.0)) {
            let td = m.issuer.get().trust_domain;
            let mut next = new_anchor.issue_issuer(&td, issuer_lifetime)?;
            next.clock_skew = m.issuer.get().clock_skew;
            m.issuer.replace(next);
            replaced.push(m.issuer.clone());
        }
        let c = m.issuer.reissue(&m.identity.cert(), cert_lifetime)?;
        m.identity.set_cert(c)?;
    }
    tokio::time::sleep(settle).await;
    // 3. Drop the old anchors.
    for (m, old_bundle) in members.iter().zip(old) {
        let mut b = m.identity.bundle();
        for a in crate::identity::TrustBundle::from_pem(&old_bundle.pem())?.anchors() {
            if *a != new_anchor.ca.cert_pem {
                b.remove(a);
            }
        }
        m.identity.set_bundle(b)?;
    }
    Ok(())
}
