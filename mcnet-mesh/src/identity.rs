//! Workload identity: a trust anchor, a per-cluster issuer, and workload
//! certificates carrying both Linkerd's identity name and a SPIFFE id.
//!
//! Lifetimes follow Linkerd's defaults: a workload certificate lives 24 h,
//! widened by a 20 s clock-skew allowance at both ends; an issuer 1 year.
//! The trust anchor lives 10 years (Linkerd sets no default; its docs
//! suggest a long-lived one). Every key is ECDSA P-256. Unlike Linkerd's own
//! issuer, which puts only the DNS name in the leaf, mcnet adds the SPIFFE
//! id as a URI SAN; Linkerd's proxy verifies either.

use std::fmt;
use std::fs;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType, PKCS_ECDSA_P256_SHA256,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::{Error, Result};

/// Workload certificate lifetime (Linkerd's `issuanceLifetime`).
pub const WORKLOAD_LIFETIME: Duration = Duration::from_secs(24 * 3600);
/// Clock-skew allowance: certificates start this long before they are issued.
pub const CLOCK_SKEW_ALLOWANCE: Duration = Duration::from_secs(20);
/// Issuer lifetime.
pub const ISSUER_LIFETIME: Duration = Duration::from_secs(365 * 24 * 3600);
/// Trust anchor lifetime.
pub const ANCHOR_LIFETIME: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// A workload's identity: service account and namespace in a trust domain.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WorkloadId {
    /// Namespace.
    pub namespace: String,
    /// Service account.
    pub service_account: String,
    /// Trust domain (`cluster.local`).
    pub trust_domain: String,
}

fn dns_label_ok(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

impl WorkloadId {
    /// A workload identity, checked: namespace and service account are DNS
    /// labels, the trust domain a DNS name.
    pub fn new(namespace: &str, service_account: &str, trust_domain: &str) -> Result<WorkloadId> {
        for (field, v) in [
            ("namespace", namespace),
            ("service account", service_account),
        ] {
            if !dns_label_ok(v) {
                return Err(Error::Invalid(format!(
                    "{field} `{v}` is not a DNS label (lowercase letters, digits and `-`, at most 63)"
                )));
            }
        }
        if trust_domain.is_empty() || !trust_domain.split('.').all(dns_label_ok) {
            return Err(Error::Invalid(format!(
                "trust domain `{trust_domain}` is not a DNS name"
            )));
        }
        Ok(WorkloadId {
            namespace: namespace.into(),
            service_account: service_account.into(),
            trust_domain: trust_domain.into(),
        })
    }

    /// Linkerd's identity name: `<sa>.<ns>.serviceaccount.identity.linkerd.<td>`.
    pub fn linkerd_name(&self) -> String {
        format!(
            "{}.{}.serviceaccount.identity.linkerd.{}",
            self.service_account, self.namespace, self.trust_domain
        )
    }

    /// The SPIFFE id: `spiffe://<td>/ns/<ns>/sa/<sa>`.
    pub fn spiffe_id(&self) -> String {
        format!(
            "spiffe://{}/ns/{}/sa/{}",
            self.trust_domain, self.namespace, self.service_account
        )
    }
}

impl fmt::Display for WorkloadId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.linkerd_name())
    }
}

/// A PEM private key that never shows itself in `Debug` or `Display`.
#[derive(Clone)]
pub struct SecretKey(String);

impl SecretKey {
    /// The PEM text: only for writing it out or loading it into TLS.
    pub fn expose_pem(&self) -> &str {
        &self.0
    }

    fn key_pair(&self) -> Result<KeyPair> {
        KeyPair::from_pem(&self.0).map_err(|e| Error::Crypto(format!("private key: {e}")))
    }

    /// The key as rustls wants it.
    pub fn to_der(&self) -> Result<PrivateKeyDer<'static>> {
        let kp = self.key_pair()?;
        Ok(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
            kp.serialize_der(),
        )))
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(<redacted>)")
    }
}

/// A certificate (PEM) and its private key.
#[derive(Clone, Debug)]
pub struct CertAndKey {
    /// Certificate, PEM.
    pub cert_pem: String,
    /// Private key.
    pub key: SecretKey,
}

impl CertAndKey {
    /// The certificate, DER.
    pub fn cert_der(&self) -> Result<CertificateDer<'static>> {
        pem_certs(&self.cert_pem)?
            .into_iter()
            .next()
            .ok_or_else(|| Error::Invalid("no certificate in PEM".into()))
    }
}

/// Parses every certificate of a PEM text.
pub fn pem_certs(pem: &str) -> Result<Vec<CertificateDer<'static>>> {
    use rustls::pki_types::pem::PemObject;
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Error::Invalid(format!("PEM certificates: {e:?}")))
}

fn dn(cn: &str) -> DistinguishedName {
    let mut d = DistinguishedName::new();
    d.push(DnType::CommonName, cn);
    d
}

fn validity(p: &mut CertificateParams, lifetime: Duration, skew: Duration) {
    let now = SystemTime::now();
    p.not_before = (now - skew).into();
    p.not_after = (now + lifetime).into();
}

fn crypto(e: rcgen::Error) -> Error {
    Error::Crypto(e.to_string())
}

fn ca_params(cn: &str, lifetime: Duration, path_len: u8) -> CertificateParams {
    let mut p = CertificateParams::default();
    p.distinguished_name = dn(cn);
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(path_len));
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    p.use_authority_key_identifier_extension = true;
    validity(&mut p, lifetime, CLOCK_SKEW_ALLOWANCE);
    p
}

/// A trust anchor: the root every cluster of a mesh trusts.
#[derive(Clone, Debug)]
pub struct TrustAnchor {
    /// Certificate and key.
    pub ca: CertAndKey,
}

impl TrustAnchor {
    /// A new self-signed anchor `root.linkerd.<td>`, valid for `lifetime`.
    pub fn generate(trust_domain: &str, lifetime: Duration) -> Result<TrustAnchor> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(crypto)?;
        let p = ca_params(&format!("root.linkerd.{trust_domain}"), lifetime, 1);
        let cert = p.self_signed(&key).map_err(crypto)?;
        Ok(TrustAnchor {
            ca: CertAndKey {
                cert_pem: cert.pem(),
                key: SecretKey(key.serialize_pem()),
            },
        })
    }

    /// A new issuer signed by this anchor: `identity.linkerd.<td>`.
    pub fn issue_issuer(&self, trust_domain: &str, lifetime: Duration) -> Result<IssuerCa> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(crypto)?;
        let p = ca_params(&format!("identity.linkerd.{trust_domain}"), lifetime, 0);
        let signer = self.signer()?;
        let cert = p.signed_by(&key, &signer).map_err(crypto)?;
        Ok(IssuerCa {
            ca: CertAndKey {
                cert_pem: cert.pem(),
                key: SecretKey(key.serialize_pem()),
            },
            trust_domain: trust_domain.into(),
            clock_skew: CLOCK_SKEW_ALLOWANCE,
        })
    }

    fn signer(&self) -> Result<Issuer<'static, KeyPair>> {
        Issuer::from_ca_cert_pem(&self.ca.cert_pem, self.ca.key.key_pair()?).map_err(crypto)
    }
}

/// A per-cluster issuer: signs workload certificates.
#[derive(Clone, Debug)]
pub struct IssuerCa {
    /// Certificate and key.
    pub ca: CertAndKey,
    /// Trust domain of the identities it issues.
    pub trust_domain: String,
    /// Clock-skew allowance added at both ends of a certificate's validity
    /// ([`CLOCK_SKEW_ALLOWANCE`] unless changed).
    pub clock_skew: Duration,
}

/// A workload certificate chain and key.
#[derive(Clone, Debug)]
pub struct WorkloadCert {
    /// Whose certificate it is.
    pub id: WorkloadId,
    /// Leaf then issuer, PEM.
    pub chain_pem: String,
    /// The leaf's key.
    pub key: SecretKey,
    /// When it was issued.
    pub issued_at: SystemTime,
    /// When it expires.
    pub not_after: SystemTime,
}

impl WorkloadCert {
    /// Loads a certificate chain (leaf first) and its key, as written by
    /// `mcnet mesh cert issue`; the identity comes from the leaf's SPIFFE id.
    pub fn from_pem(chain_pem: &str, key_pem: &str) -> Result<WorkloadCert> {
        let chain = pem_certs(chain_pem)?;
        let leaf = chain
            .first()
            .ok_or_else(|| Error::Invalid("tls.crt holds no certificate".into()))?;
        let (_, c) = x509_parser::parse_x509_certificate(leaf)
            .map_err(|e| Error::Invalid(format!("tls.crt: {e}")))?;
        let ids = crate::tls::identities_of(leaf)?;
        let spiffe = ids
            .iter()
            .find_map(|i| i.strip_prefix("spiffe://"))
            .ok_or_else(|| Error::Invalid("tls.crt has no SPIFFE id".into()))?;
        let parts: Vec<&str> = spiffe.split('/').collect();
        let id = match parts.as_slice() {
            [td, "ns", ns, "sa", sa] => WorkloadId::new(ns, sa, td)?,
            _ => {
                return Err(Error::Invalid(format!(
                    "`spiffe://{spiffe}` is not a workload id"
                )))
            }
        };
        KeyPair::from_pem(key_pem).map_err(|e| Error::Crypto(format!("tls.key: {e}")))?;
        let at = |t: i64| SystemTime::UNIX_EPOCH + Duration::from_secs(t.max(0) as u64);
        let not_before = at(c.validity().not_before.timestamp());
        let not_after = at(c.validity().not_after.timestamp());
        Ok(WorkloadCert {
            id,
            chain_pem: chain_pem.into(),
            key: SecretKey(key_pem.into()),
            issued_at: (not_before + CLOCK_SKEW_ALLOWANCE).min(not_after),
            not_after,
        })
    }

    /// When it should be renewed: at 70% of its lifetime, as Linkerd's proxy does.
    pub fn renew_at(&self) -> SystemTime {
        let life = self
            .not_after
            .duration_since(self.issued_at)
            .unwrap_or_default();
        self.issued_at + life.mul_f64(0.7)
    }
}

impl TrustAnchor {
    /// Loads an anchor from its certificate and key (PEM).
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<TrustAnchor> {
        KeyPair::from_pem(key_pem).map_err(|e| Error::Crypto(format!("anchor key: {e}")))?;
        pem_certs(cert_pem)?;
        Ok(TrustAnchor {
            ca: CertAndKey {
                cert_pem: cert_pem.into(),
                key: SecretKey(key_pem.into()),
            },
        })
    }
}

/// The trust domain an issuer certificate names (`identity.linkerd.<td>`).
pub fn issuer_trust_domain(cert_pem: &str) -> Result<String> {
    let der = pem_certs(cert_pem)?;
    let first = der
        .first()
        .ok_or_else(|| Error::Invalid("issuer.crt holds no certificate".into()))?;
    let (_, c) = x509_parser::parse_x509_certificate(first)
        .map_err(|e| Error::Invalid(format!("issuer.crt: {e}")))?;
    let cn = c
        .subject()
        .iter_common_name()
        .next()
        .and_then(|n| n.as_str().ok())
        .unwrap_or_default()
        .to_string();
    cn.strip_prefix("identity.linkerd.")
        .map(String::from)
        .ok_or_else(|| {
            Error::Invalid(format!(
                "issuer.crt's common name `{cn}` is not `identity.linkerd.<trust-domain>`"
            ))
        })
}

impl IssuerCa {
    /// Loads an issuer from its certificate and key (PEM).
    pub fn from_pem(cert_pem: &str, key_pem: &str, trust_domain: &str) -> Result<IssuerCa> {
        let _ =
            KeyPair::from_pem(key_pem).map_err(|e| Error::Crypto(format!("issuer key: {e}")))?;
        pem_certs(cert_pem)?;
        Ok(IssuerCa {
            ca: CertAndKey {
                cert_pem: cert_pem.into(),
                key: SecretKey(key_pem.into()),
            },
            trust_domain: trust_domain.into(),
            clock_skew: CLOCK_SKEW_ALLOWANCE,
        })
    }

    /// A workload certificate for `id`, valid for `lifetime`, widened by
    /// [`CLOCK_SKEW_ALLOWANCE`] at both ends (as Linkerd issues them), for
    /// both server and client use.
    pub fn issue(&self, id: &WorkloadId, lifetime: Duration) -> Result<WorkloadCert> {
        // As Linkerd's identity controller: the skew allowance widens both ends.
        let now = SystemTime::now();
        self.issue_valid(id, now - self.clock_skew, now + lifetime + self.clock_skew)
    }

    /// A workload certificate valid from `not_before` to `not_after` (for
    /// tools and tests that need an exact window, e.g. an expired one).
    pub fn issue_valid(
        &self,
        id: &WorkloadId,
        not_before: SystemTime,
        not_after: SystemTime,
    ) -> Result<WorkloadCert> {
        if id.trust_domain != self.trust_domain {
            return Err(Error::Invalid(format!(
                "identity `{id}` is not in this issuer's trust domain `{}`",
                self.trust_domain
            )));
        }
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(crypto)?;
        let mut p = CertificateParams::default();
        p.distinguished_name = dn(&id.linkerd_name());
        p.subject_alt_names = vec![
            SanType::DnsName(id.linkerd_name().try_into().map_err(crypto)?),
            SanType::URI(id.spiffe_id().try_into().map_err(crypto)?),
        ];
        p.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        p.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        p.use_authority_key_identifier_extension = true;
        p.not_before = not_before.into();
        p.not_after = not_after.into();
        let signer =
            Issuer::from_ca_cert_pem(&self.ca.cert_pem, self.ca.key.key_pair()?).map_err(crypto)?;
        let cert = p.signed_by(&key, &signer).map_err(crypto)?;
        Ok(WorkloadCert {
            id: id.clone(),
            chain_pem: format!("{}{}", cert.pem(), self.ca.cert_pem),
            key: SecretKey(key.serialize_pem()),
            issued_at: (not_before + self.clock_skew).min(not_after),
            not_after,
        })
    }
}

/// The anchors a workload trusts. During a rollover it holds the old and
/// the new one, so that certificates chaining to either are accepted.
#[derive(Clone, Debug, Default)]
pub struct TrustBundle {
    anchors_pem: Vec<String>,
}

impl TrustBundle {
    /// A bundle of one anchor.
    pub fn new(anchor_pem: &str) -> TrustBundle {
        TrustBundle {
            anchors_pem: vec![anchor_pem.to_string()],
        }
    }

    /// Parses a PEM bundle (one or more certificates).
    pub fn from_pem(pem: &str) -> Result<TrustBundle> {
        let n = pem_certs(pem)?.len();
        if n == 0 {
            return Err(Error::Invalid(
                "the trust bundle holds no certificate".into(),
            ));
        }
        let mut out = TrustBundle::default();
        for block in pem.split_inclusive("-----END CERTIFICATE-----") {
            let start = block.find("-----BEGIN CERTIFICATE-----");
            if let Some(s) = start {
                out.anchors_pem.push(format!("{}\n", block[s..].trim_end()));
            }
        }
        Ok(out)
    }

    /// Adds an anchor (the start of a rollover).
    pub fn add(&mut self, anchor_pem: &str) {
        if !self.anchors_pem.iter().any(|a| a == anchor_pem) {
            self.anchors_pem.push(anchor_pem.to_string());
        }
    }

    /// Removes an anchor (the end of a rollover).
    pub fn remove(&mut self, anchor_pem: &str) {
        self.anchors_pem.retain(|a| a != anchor_pem);
    }

    /// The anchors, PEM, concatenated.
    pub fn pem(&self) -> String {
        self.anchors_pem.concat()
    }

    /// The anchors as a rustls root store.
    pub fn root_store(&self) -> Result<rustls::RootCertStore> {
        let mut roots = rustls::RootCertStore::empty();
        for a in &self.anchors_pem {
            for c in pem_certs(a)? {
                roots
                    .add(c)
                    .map_err(|e| Error::Invalid(format!("trust anchor: {e}")))?;
            }
        }
        Ok(roots)
    }

    /// Each anchor, PEM.
    pub fn anchors(&self) -> &[String] {
        &self.anchors_pem
    }

    /// How many anchors it holds.
    pub fn len(&self) -> usize {
        self.anchors_pem.len()
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.anchors_pem.is_empty()
    }
}

/// Writes a file atomically (temporary file, then rename), with `mode`.
pub fn write_file(path: &Path, contents: &[u8], mode: u32) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .map_err(|e| Error::io(&tmp, e))?;
    f.write_all(contents)
        .and_then(|_| f.sync_all())
        .map_err(|e| Error::io(&tmp, e))?;
    fs::rename(&tmp, path).map_err(|e| {
        let _ = fs::remove_file(&tmp);
        Error::io(path, e)
    })
}

/// Writes a private key: mode 0600.
pub fn write_key(path: &Path, key: &SecretKey) -> Result<()> {
    write_file(path, key.expose_pem().as_bytes(), 0o600)
}

/// Reads a file, naming it in the error.
pub fn read_file(path: &Path) -> Result<String> {
    fs::read_to_string(path).map_err(|e| Error::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_have_both_names() {
        let id = WorkloadId::new("production", "frontend", "cluster.local").unwrap();
        assert_eq!(
            id.linkerd_name(),
            "frontend.production.serviceaccount.identity.linkerd.cluster.local"
        );
        assert_eq!(
            id.spiffe_id(),
            "spiffe://cluster.local/ns/production/sa/frontend"
        );
        assert!(WorkloadId::new("Prod", "x", "cluster.local").is_err());
        assert!(WorkloadId::new("p", "", "cluster.local").is_err());
        assert!(WorkloadId::new("p", "x", "bad..domain").is_err());
    }

    #[test]
    fn keys_are_redacted() {
        let a = TrustAnchor::generate("cluster.local", ANCHOR_LIFETIME).unwrap();
        let shown = format!("{a:?}");
        assert!(!shown.contains("PRIVATE KEY"), "{shown}");
        assert!(shown.contains("redacted"));
    }

    #[test]
    fn workload_certificates_carry_linkerd_and_spiffe_names() {
        let a = TrustAnchor::generate("cluster.local", ANCHOR_LIFETIME).unwrap();
        let i = a.issue_issuer("cluster.local", ISSUER_LIFETIME).unwrap();
        let id = WorkloadId::new("production", "frontend", "cluster.local").unwrap();
        let w = i.issue(&id, WORKLOAD_LIFETIME).unwrap();
        let ids = crate::tls::identities_of(&pem_certs(&w.chain_pem).unwrap()[0]).unwrap();
        assert!(ids.contains(&id.linkerd_name()));
        assert!(ids.contains(&id.spiffe_id()));
        assert_eq!(
            pem_certs(&w.chain_pem).unwrap().len(),
            2,
            "leaf then issuer"
        );
        // Lifetime: 24 h, widened by the 20 s allowance at both ends.
        let chain = pem_certs(&w.chain_pem).unwrap();
        let (_, leaf) = x509_parser::parse_x509_certificate(&chain[0]).unwrap();
        let nb = leaf.validity().not_before.timestamp();
        let na = leaf.validity().not_after.timestamp();
        assert!((na - nb - (24 * 3600 + 40)).abs() <= 1, "{}", na - nb);
        let other = WorkloadId::new("production", "frontend", "other.local").unwrap();
        assert!(i.issue(&other, WORKLOAD_LIFETIME).is_err());
    }

    #[test]
    fn bundles_hold_several_anchors() {
        let a = TrustAnchor::generate("cluster.local", ANCHOR_LIFETIME).unwrap();
        let b = TrustAnchor::generate("cluster.local", ANCHOR_LIFETIME).unwrap();
        let mut bundle = TrustBundle::new(&a.ca.cert_pem);
        bundle.add(&b.ca.cert_pem);
        bundle.add(&b.ca.cert_pem);
        assert_eq!(bundle.len(), 2);
        let parsed = TrustBundle::from_pem(&bundle.pem()).unwrap();
        assert_eq!(parsed.len(), 2);
        assert_eq!(parsed.root_store().unwrap().len(), 2);
        bundle.remove(&a.ca.cert_pem);
        assert_eq!(bundle.pem(), b.ca.cert_pem);
    }
}
