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

/// What a [`DirWatch`] did after the files of its directory changed.
#[derive(Debug)]
#[non_exhaustive]
pub enum DirEvent {
    /// The new certificate, key and bundle are live for new handshakes.
    Reloaded,
    /// The new files were not consistent (or not readable); the identity
    /// in use is unchanged.
    Rejected(crate::Error),
}

/// Keeps a [`TlsIdentity`] in step with an [`IdentityDir`]: when the
/// directory's files change (written in place, replaced, or the symbolic
/// link swap of a Kubernetes Secret volume), they are loaded and checked
/// together and, if consistent, replace certificate, key and bundle at
/// once. Anything inconsistent leaves all three as they were. The watch
/// stops when dropped.
///
/// ```no_run
/// # async fn f(identity: mcnet_mesh::tls::TlsIdentity) {
/// use mcnet_mesh::store::IdentityDir;
/// use mcnet_mesh::rotation::{DirEvent, DirWatch};
/// use std::time::Duration;
///
/// let dir = IdentityDir::new("/var/run/mcnet/identity");
/// let _watch = DirWatch::spawn(dir, identity, Duration::from_millis(500), |event| match event {
///     DirEvent::Reloaded => println!("identity reloaded"),
///     DirEvent::Rejected(e) => eprintln!("kept the old identity: {e}"),
///     _ => {}
/// });
/// # }
/// ```
///
/// [`IdentityDir`]: crate::store::IdentityDir
pub struct DirWatch {
    task: JoinHandle<()>,
}

impl DirWatch {
    /// Checks `dir` every `every` (at least 10 ms) and reports each reload
    /// attempt to `on_event`. Must be called within a tokio runtime.
    pub fn spawn(
        dir: crate::store::IdentityDir,
        identity: TlsIdentity,
        every: Duration,
        mut on_event: impl FnMut(DirEvent) + Send + 'static,
    ) -> DirWatch {
        let every = every.max(Duration::from_millis(10));
        // The files as they are now, before the task first runs: a change
        // made right after `spawn` returns is a change.
        let mut seen = dir.stamp();
        let task = tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let now = dir.stamp();
                if now == seen {
                    continue;
                }
                seen = now;
                let loaded = dir.load().and_then(|(c, b)| identity.replace(c, b));
                match loaded {
                    Ok(()) => {
                        tracing::info!(dir = %dir.path().display(), "identity reloaded");
                        on_event(DirEvent::Reloaded);
                    }
                    Err(e) => {
                        tracing::warn!(dir = %dir.path().display(), "identity reload rejected: {e}");
                        on_event(DirEvent::Rejected(e));
                    }
                }
            }
        });
        DirWatch { task }
    }
}

impl Drop for DirWatch {
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
