//! Identity material on disk and in memory, with no fail-open path: a
//! reload swaps certificate, key and trust bundle together or not at all,
//! and key files are created 0600 from the first byte whatever was left
//! lying around at the temporary names.

use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};

use std::time::{Duration, SystemTime};

use mcnet_mesh::identity::{
    IssuerCa, TrustAnchor, TrustBundle, WorkloadCert, WorkloadId, ANCHOR_LIFETIME, ISSUER_LIFETIME,
    WORKLOAD_LIFETIME,
};
use mcnet_mesh::store::{write_file, write_key, IdentityDir};
use mcnet_mesh::tls::TlsIdentity;

const TD: &str = "cluster.local";

struct Pki {
    anchor: TrustAnchor,
    issuer: IssuerCa,
}

impl Pki {
    fn new() -> Pki {
        let anchor = TrustAnchor::generate(TD, ANCHOR_LIFETIME).unwrap();
        let issuer = anchor.issue_issuer(TD, ISSUER_LIFETIME).unwrap();
        Pki { anchor, issuer }
    }

    fn bundle(&self) -> TrustBundle {
        TrustBundle::new(&self.anchor.ca.cert_pem)
    }

    fn cert(&self, sa: &str) -> WorkloadCert {
        let id = WorkloadId::new("linkerd-multicluster", sa, TD).unwrap();
        self.issuer.issue(&id, WORKLOAD_LIFETIME).unwrap()
    }
}

/// A directory under the temporary directory, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Scratch {
        let p = std::env::temp_dir().join(format!(
            "mcnet-mesh-{tag}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Scratch(p)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn a_bundle_the_certificate_does_not_chain_to_is_refused_and_nothing_changes() {
    let (ours, theirs) = (Pki::new(), Pki::new());
    let cert = ours.cert("linkerd-gateway");
    let id = TlsIdentity::new(cert.clone(), ours.bundle()).unwrap();
    let err = id.set_bundle(theirs.bundle()).unwrap_err();
    assert!(err.to_string().contains("trust bundle"), "{err}");
    assert_eq!(
        id.bundle().pem(),
        ours.bundle().pem(),
        "old bundle in force"
    );
    assert_eq!(
        id.cert().chain_pem,
        cert.chain_pem,
        "old certificate in force"
    );
}

/// A certificate whose key is another one's.
fn with_key_of(cert: &WorkloadCert, other: &WorkloadCert) -> WorkloadCert {
    WorkloadCert {
        key: other.key.clone(),
        ..cert.clone()
    }
}

#[test]
fn a_new_bundle_with_a_mismatched_key_leaves_the_old_bundle_and_certificate() {
    let (ours, next) = (Pki::new(), Pki::new());
    let cert = ours.cert("linkerd-gateway");
    let id = TlsIdentity::new(cert.clone(), ours.bundle()).unwrap();
    let next_cert = next.cert("linkerd-gateway");
    let unchanged = |id: &TlsIdentity| {
        assert_eq!(
            id.bundle().pem(),
            ours.bundle().pem(),
            "old bundle in force"
        );
        assert_eq!(
            id.cert().chain_pem,
            cert.chain_pem,
            "old certificate in force"
        );
        assert_eq!(id.cert().key.expose_pem(), cert.key.expose_pem());
    };
    // The reload of issue 16: the new bundle, the old certificate, a key
    // that is neither's. Refused as a whole.
    let err = id
        .replace(with_key_of(&cert, &next_cert), next.bundle())
        .unwrap_err();
    assert!(err.to_string().contains("does not match"), "{err}");
    assert!(!err.to_string().contains("PRIVATE KEY"), "{err}");
    unchanged(&id);
    // The new certificate with the wrong key, and the new bundle.
    assert!(id
        .replace(with_key_of(&next_cert, &cert), next.bundle())
        .is_err());
    unchanged(&id);
    // A consistent certificate and key that do not chain to the new bundle.
    let err = id.replace(cert.clone(), next.bundle()).unwrap_err();
    assert!(err.to_string().contains("trust bundle"), "{err}");
    unchanged(&id);
    // An expired certificate under the right bundle.
    let now = SystemTime::now();
    let expired = ours
        .issuer
        .issue_valid(
            &cert.id,
            now - Duration::from_secs(7200),
            now - Duration::from_secs(3600),
        )
        .unwrap();
    assert!(id.set_cert(expired).is_err());
    assert!(id.set_cert(next_cert.clone()).is_err(), "foreign chain");
    assert!(
        id.set_bundle(TrustBundle::default()).is_err(),
        "empty bundle"
    );
    unchanged(&id);
    // Everything consistent: all three change together.
    id.replace(next_cert.clone(), next.bundle()).unwrap();
    assert_eq!(id.bundle().pem(), next.bundle().pem());
    assert_eq!(id.cert().chain_pem, next_cert.chain_pem);
    // Renewal and rollover keep working through the same checks.
    let mut both = next.bundle();
    both.add(&ours.anchor.ca.cert_pem);
    id.set_bundle(both).unwrap();
    id.set_cert(ours.cert("linkerd-gateway")).unwrap();
    id.set_bundle(ours.bundle()).unwrap();
}

#[test]
fn an_identity_directory_loads_certificate_key_and_bundle_together() {
    let d = Scratch::new("dir");
    let (ours, next) = (Pki::new(), Pki::new());
    let put = |name: &str, text: &str| write_file(&d.0.join(name), text.as_bytes(), 0o644);
    let cert = ours.cert("linkerd-gateway");
    put("tls.crt", &cert.chain_pem).unwrap();
    write_key(&d.0.join("tls.key"), &cert.key).unwrap();
    put("ca.crt", &ours.anchor.ca.cert_pem).unwrap();
    let dir = IdentityDir::new(&d.0);
    let (c, b) = dir.load().unwrap();
    assert_eq!(c.chain_pem, cert.chain_pem);
    assert_eq!(b.pem(), ours.bundle().pem());
    let id = TlsIdentity::new(c, b).unwrap();
    let reload = |id: &TlsIdentity| dir.load().and_then(|(c, b)| id.replace(c, b));

    // A new bundle and a key that does not match tls.crt.
    let stamp = dir.stamp();
    let next_cert = next.cert("linkerd-gateway");
    put("ca.crt", &next.anchor.ca.cert_pem).unwrap();
    write_key(&d.0.join("tls.key"), &next_cert.key).unwrap();
    assert_ne!(dir.stamp(), stamp, "the change is seen");
    let err = reload(&id).unwrap_err();
    assert!(err.to_string().contains("tls.key does not match"), "{err}");
    assert_eq!(
        id.bundle().pem(),
        ours.bundle().pem(),
        "old bundle in force"
    );
    assert_eq!(
        id.cert().chain_pem,
        cert.chain_pem,
        "old certificate in force"
    );

    // A missing or unreadable file leaves everything too.
    put("tls.crt", "not a certificate").unwrap();
    assert!(reload(&id).is_err());
    std::fs::remove_file(d.0.join("ca.crt")).unwrap();
    assert!(reload(&id).is_err());
    assert_eq!(id.bundle().pem(), ours.bundle().pem());

    // The matching certificate and the bundle arrive: all three swap.
    put("tls.crt", &next_cert.chain_pem).unwrap();
    put("ca.crt", &next.anchor.ca.cert_pem).unwrap();
    let stamp = dir.stamp();
    reload(&id).unwrap();
    assert_eq!(id.bundle().pem(), next.bundle().pem());
    assert_eq!(id.cert().chain_pem, next_cert.chain_pem);
    assert_eq!(dir.stamp(), stamp, "loading changes nothing on disk");
}

#[test]
fn keys_are_0600_whatever_sits_at_the_old_temporary_names() {
    let d = Scratch::new("keys");
    let pid = std::process::id();
    let key = Pki::new().cert("linkerd-gateway").key;
    // A world-readable file where the old code put its temporary file...
    let plain = d.0.join(format!(".tls.key.tmp-{pid}"));
    std::fs::write(&plain, "planted").unwrap();
    std::fs::set_permissions(&plain, std::fs::Permissions::from_mode(0o644)).unwrap();
    write_key(&d.0.join("tls.key"), &key).unwrap();
    assert_eq!(mode(&d.0.join("tls.key")), 0o600);
    assert_eq!(
        std::fs::read_to_string(d.0.join("tls.key")).unwrap(),
        key.expose_pem()
    );
    // ...and a symlink to somebody else's file: never written through.
    let target = d.0.join("victim");
    std::fs::write(&target, "untouched").unwrap();
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o644)).unwrap();
    let link = d.0.join(format!(".issuer.key.tmp-{pid}"));
    symlink(&target, &link).unwrap();
    write_key(&d.0.join("issuer.key"), &key).unwrap();
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "untouched");
    assert_eq!(mode(&target), 0o644);
    let written = std::fs::symlink_metadata(d.0.join("issuer.key")).unwrap();
    assert!(written.file_type().is_file(), "a regular file, not a link");
    assert_eq!(mode(&d.0.join("issuer.key")), 0o600);
    // No temporary file is left behind.
    let left: Vec<String> = std::fs::read_dir(&d.0)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp-") && !n.ends_with(&format!("-{pid}")))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn directories_the_writer_creates_are_0700() {
    let d = Scratch::new("dirs");
    let key = Pki::new().cert("linkerd-gateway").key;
    write_key(&d.0.join("new/deeper/tls.key"), &key).unwrap();
    assert_eq!(mode(&d.0.join("new")), 0o700);
    assert_eq!(mode(&d.0.join("new/deeper")), 0o700);
    assert_eq!(mode(&d.0.join("new/deeper/tls.key")), 0o600);
    // An existing directory is left as it is.
    std::fs::set_permissions(&d.0, std::fs::Permissions::from_mode(0o750)).unwrap();
    write_file(&d.0.join("ca.crt"), b"x", 0o644).unwrap();
    assert_eq!(mode(&d.0), 0o750);
}

#[tokio::test]
async fn a_directory_watch_swaps_on_a_consistent_change_and_reports_a_bad_one() {
    use mcnet_mesh::rotation::{DirEvent, DirWatch};
    let d = Scratch::new("watch");
    let (ours, next) = (Pki::new(), Pki::new());
    let put = |name: &str, text: &str| write_file(&d.0.join(name), text.as_bytes(), 0o644);
    let cert = ours.cert("linkerd-gateway");
    put("tls.crt", &cert.chain_pem).unwrap();
    write_key(&d.0.join("tls.key"), &cert.key).unwrap();
    put("ca.crt", &ours.anchor.ca.cert_pem).unwrap();
    let dir = IdentityDir::new(&d.0);
    let (c, b) = dir.load().unwrap();
    let id = TlsIdentity::new(c, b).unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let _watch = DirWatch::spawn(dir, id.clone(), Duration::from_millis(10), move |e| {
        let _ = tx.send(e);
    });
    async fn next_event(rx: &mut tokio::sync::mpsc::UnboundedReceiver<DirEvent>) -> DirEvent {
        tokio::time::timeout(Duration::from_secs(30), rx.recv())
            .await
            .expect("the watch reported the change")
            .unwrap()
    }

    // A certificate from another anchor, with its key but the old bundle.
    let foreign = next.cert("linkerd-gateway");
    write_key(&d.0.join("tls.key"), &foreign.key).unwrap();
    put("tls.crt", &foreign.chain_pem).unwrap();
    match next_event(&mut rx).await {
        DirEvent::Rejected(_) => {}
        other => panic!("an inconsistent directory was loaded: {other:?}"),
    }
    assert_eq!(
        id.cert().chain_pem,
        cert.chain_pem,
        "old certificate in force"
    );

    // The bundle arrives: now all three are consistent and swap. (The
    // two earlier writes may have been seen in one check or two.)
    put("ca.crt", &next.anchor.ca.cert_pem).unwrap();
    loop {
        match next_event(&mut rx).await {
            DirEvent::Reloaded => break,
            DirEvent::Rejected(_) => {
                assert_eq!(id.cert().chain_pem, cert.chain_pem);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(id.cert().chain_pem, foreign.chain_pem);
    assert_eq!(id.bundle().pem(), next.bundle().pem());
}
