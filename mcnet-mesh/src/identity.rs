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

use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType, PKCS_ECDSA_P256_SHA256,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::x509::pem_certs;
use crate::{Error, Result};

/// Workload certificate lifetime (Linkerd's `issuanceLifetime`).
pub const WORKLOAD_LIFETIME: Duration = Duration::from_secs(24 * 3600);
/// Clock-skew allowance: certificates start this long before they are issued.
pub const CLOCK_SKEW_ALLOWANCE: Duration = Duration::from_secs(20);
/// Issuer lifetime.
pub const ISSUER_LIFETIME: Duration = Duration::from_secs(365 * 24 * 3600);
/// Trust anchor lifetime.
pub const ANCHOR_LIFETIME: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
/// The longest lifetime anything here issues: 100 years (36500 days).
/// Longer ones are refused with [`Error::Validity`]: nothing in a mesh
/// should live that long, and it keeps every validity window far inside
/// what X.509 can say (GeneralizedTime ends with the year 9999).
pub const MAX_LIFETIME: Duration = Duration::from_secs(36500 * 24 * 3600);

/// 0000-01-01T00:00:00Z and 9999-12-31T23:59:59Z, in seconds from the Unix
/// epoch: the first and last instants an X.509 validity can carry.
const X509_FIRST: i64 = -62_167_219_200;
const X509_LAST: i64 = 253_402_300_799;

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

/// Checks that `trust_domain` is a DNS name (labels of lowercase letters,
/// digits and `-`).
pub fn check_trust_domain(trust_domain: &str) -> Result<()> {
    if trust_domain.is_empty() || !trust_domain.split('.').all(dns_label_ok) {
        return Err(Error::Invalid(format!(
            "trust domain `{trust_domain}` is not a DNS name"
        )));
    }
    Ok(())
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
        check_trust_domain(trust_domain)?;
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
        KeyPair::from_pem(&self.0).map_err(|e| Error::crypto("private key", e))
    }

    /// Checks that this is the private key of `cert`'s public key; `what`
    /// names the key in the error (`tls.key`, `issuer key`).
    pub fn check_matches(&self, cert: &CertificateDer<'_>, what: &str) -> Result<()> {
        let kp = KeyPair::from_pem(&self.0).map_err(|e| Error::crypto(what, e))?;
        let (_, c) = x509_parser::parse_x509_certificate(cert)
            .map_err(|e| Error::Invalid(format!("{what}'s certificate: {e}")))?;
        if c.public_key().subject_public_key.data.as_ref() != kp.public_key_raw() {
            let subject = c
                .subject()
                .iter_common_name()
                .next()
                .and_then(|n| n.as_str().ok())
                .unwrap_or("-")
                .to_string();
            return Err(Error::Invalid(format!(
                "{what} does not match the certificate of `{subject}`"
            )));
        }
        Ok(())
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

fn dn(cn: &str) -> DistinguishedName {
    let mut d = DistinguishedName::new();
    d.push(DnType::CommonName, cn);
    d
}

fn validity_error(what: &str, problem: String) -> Error {
    Error::Validity {
        what: what.into(),
        problem,
    }
}

/// The window of a certificate issued now for `lifetime`, starting `before`
/// early and ending `after` late: checked, never overflowing.
fn window(
    what: &str,
    lifetime: Duration,
    before: Duration,
    after: Duration,
) -> Result<(SystemTime, SystemTime)> {
    if lifetime > MAX_LIFETIME {
        return Err(validity_error(
            what,
            format!(
                "a lifetime of {}s is longer than the largest accepted, {}d (100 years)",
                lifetime.as_secs(),
                MAX_LIFETIME.as_secs() / 86400
            ),
        ));
    }
    let now = SystemTime::now();
    let not_before = now.checked_sub(before);
    let not_after = now.checked_add(lifetime).and_then(|t| t.checked_add(after));
    match (not_before, not_after) {
        (Some(b), Some(a)) => Ok((b, a)),
        _ => Err(validity_error(
            what,
            format!(
                "a lifetime of {}s with a clock-skew allowance of {}s is out of range",
                lifetime.as_secs(),
                before.max(after).as_secs()
            ),
        )),
    }
}

/// Seconds from the Unix epoch, negative before it (saturating).
fn unix_secs(t: SystemTime) -> i64 {
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_secs()).map_or(i64::MIN, |s| -s),
    }
}

/// Sets a certificate's validity, refusing what X.509 cannot carry (before
/// the year 0 or after 9999) or an inverted window.
fn set_validity(
    p: &mut CertificateParams,
    what: &str,
    not_before: SystemTime,
    not_after: SystemTime,
) -> Result<()> {
    for (field, t) in [("not before", not_before), ("not after", not_after)] {
        if !(X509_FIRST..=X509_LAST).contains(&unix_secs(t)) {
            return Err(validity_error(
                what,
                format!("{field} is outside what X.509 can carry (the years 0 to 9999)"),
            ));
        }
    }
    if not_before > not_after {
        return Err(validity_error(
            what,
            "not before is later than not after".into(),
        ));
    }
    p.not_before = not_before.into();
    p.not_after = not_after.into();
    Ok(())
}

fn crypto(e: rcgen::Error) -> Error {
    Error::crypto("certificate", e)
}

fn ca_params(cn: &str, lifetime: Duration, path_len: u8) -> Result<CertificateParams> {
    let mut p = CertificateParams::default();
    p.distinguished_name = dn(cn);
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(path_len));
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    p.use_authority_key_identifier_extension = true;
    let (not_before, not_after) = window(cn, lifetime, CLOCK_SKEW_ALLOWANCE, Duration::ZERO)?;
    set_validity(&mut p, cn, not_before, not_after)?;
    Ok(p)
}

/// A trust anchor: the root every cluster of a mesh trusts.
#[derive(Clone, Debug)]
pub struct TrustAnchor {
    /// Certificate and key.
    pub ca: CertAndKey,
}

impl TrustAnchor {
    /// A new self-signed anchor `root.linkerd.<td>`, valid for `lifetime`
    /// (at most [`MAX_LIFETIME`]).
    pub fn generate(trust_domain: &str, lifetime: Duration) -> Result<TrustAnchor> {
        check_trust_domain(trust_domain)?;
        let p = ca_params(&format!("root.linkerd.{trust_domain}"), lifetime, 1)?;
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(crypto)?;
        let cert = p.self_signed(&key).map_err(crypto)?;
        Ok(TrustAnchor {
            ca: CertAndKey {
                cert_pem: cert.pem(),
                key: SecretKey(key.serialize_pem()),
            },
        })
    }

    /// A new issuer signed by this anchor: `identity.linkerd.<td>`, valid
    /// for `lifetime` (at most [`MAX_LIFETIME`]).
    pub fn issue_issuer(&self, trust_domain: &str, lifetime: Duration) -> Result<IssuerCa> {
        check_trust_domain(trust_domain)?;
        let p = ca_params(&format!("identity.linkerd.{trust_domain}"), lifetime, 0)?;
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(crypto)?;
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
        let ids = crate::x509::identities_of(leaf)?;
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
        let key = SecretKey(key_pem.into());
        key.check_matches(leaf, "tls.key")?;
        let at = |t: i64| {
            SystemTime::UNIX_EPOCH
                .checked_add(Duration::from_secs(t.max(0).unsigned_abs()))
                .unwrap_or(SystemTime::UNIX_EPOCH)
        };
        let not_before = at(c.validity().not_before.timestamp());
        let not_after = at(c.validity().not_after.timestamp());
        Ok(WorkloadCert {
            id,
            chain_pem: chain_pem.into(),
            key,
            issued_at: start_of(not_before, CLOCK_SKEW_ALLOWANCE, not_after),
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

/// When a certificate valid from `not_before` was issued: `skew` later, but
/// not after `not_after`.
fn start_of(not_before: SystemTime, skew: Duration, not_after: SystemTime) -> SystemTime {
    not_before
        .checked_add(skew)
        .unwrap_or(not_after)
        .min(not_after)
}

/// The first certificate of `cert_pem`, whose key `key` must be.
fn check_pair(cert_pem: &str, key: &SecretKey, what: &str) -> Result<()> {
    let first = pem_certs(cert_pem)?
        .into_iter()
        .next()
        .ok_or_else(|| Error::Invalid(format!("{what}: no certificate in PEM")))?;
    key.check_matches(&first, what)
}

impl TrustAnchor {
    /// Loads an anchor from its certificate and key (PEM); the key must be
    /// the certificate's.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<TrustAnchor> {
        let key = SecretKey(key_pem.into());
        check_pair(cert_pem, &key, "anchor key")?;
        Ok(TrustAnchor {
            ca: CertAndKey {
                cert_pem: cert_pem.into(),
                key,
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
    /// Loads an issuer from its certificate and key (PEM); the key must be
    /// the certificate's, the trust domain a DNS name.
    pub fn from_pem(cert_pem: &str, key_pem: &str, trust_domain: &str) -> Result<IssuerCa> {
        check_trust_domain(trust_domain)?;
        let key = SecretKey(key_pem.into());
        check_pair(cert_pem, &key, "issuer key")?;
        Ok(IssuerCa {
            ca: CertAndKey {
                cert_pem: cert_pem.into(),
                key,
            },
            trust_domain: trust_domain.into(),
            clock_skew: CLOCK_SKEW_ALLOWANCE,
        })
    }

    /// A workload certificate for `id`, valid for `lifetime` (at most
    /// [`MAX_LIFETIME`]), widened by the clock-skew allowance at both ends
    /// (as Linkerd issues them), for both server and client use.
    pub fn issue(&self, id: &WorkloadId, lifetime: Duration) -> Result<WorkloadCert> {
        // As Linkerd's identity controller: the skew allowance widens both ends.
        let (not_before, not_after) = window(
            &format!("workload certificate for {id}"),
            lifetime,
            self.clock_skew,
            self.clock_skew,
        )?;
        self.issue_valid(id, not_before, not_after)
    }

    /// A workload certificate valid from `not_before` to `not_after` (for
    /// tools and tests that need an exact window, e.g. an expired one). A
    /// window X.509 cannot carry, or an inverted one, is refused.
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
        let mut p = CertificateParams::default();
        set_validity(
            &mut p,
            &format!("workload certificate for {id}"),
            not_before,
            not_after,
        )?;
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(crypto)?;
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
        let signer =
            Issuer::from_ca_cert_pem(&self.ca.cert_pem, self.ca.key.key_pair()?).map_err(crypto)?;
        let cert = p.signed_by(&key, &signer).map_err(crypto)?;
        Ok(WorkloadCert {
            id: id.clone(),
            chain_pem: format!("{}{}", cert.pem(), self.ca.cert_pem),
            key: SecretKey(key.serialize_pem()),
            issued_at: start_of(not_before, self.clock_skew, not_after),
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
        let ids = crate::x509::identities_of(&pem_certs(&w.chain_pem).unwrap()[0]).unwrap();
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

    #[test]
    fn lifetimes_past_the_maximum_or_x509_are_refused_not_panicking() {
        let a = TrustAnchor::generate("cluster.local", ANCHOR_LIFETIME).unwrap();
        let mut i = a.issue_issuer("cluster.local", ISSUER_LIFETIME).unwrap();
        let id = WorkloadId::new("production", "frontend", "cluster.local").unwrap();
        for lifetime in [
            Duration::MAX,
            Duration::from_secs(u64::MAX),
            MAX_LIFETIME + Duration::from_secs(1),
        ] {
            for err in [
                i.issue(&id, lifetime).unwrap_err(),
                a.issue_issuer("cluster.local", lifetime).unwrap_err(),
                TrustAnchor::generate("cluster.local", lifetime).unwrap_err(),
            ] {
                assert!(matches!(err, Error::Validity { .. }), "{err:?}");
                assert!(err.to_string().contains("36500d"), "{err}");
            }
        }
        // The maximum itself is issued, and says so.
        let w = i.issue(&id, MAX_LIFETIME).unwrap();
        let life = w.not_after.duration_since(w.issued_at).unwrap();
        assert_eq!(life, MAX_LIFETIME + i.clock_skew);
        a.issue_issuer("cluster.local", MAX_LIFETIME).unwrap();
        // A skew allowance that overflows, and windows X.509 cannot carry.
        i.clock_skew = Duration::MAX;
        assert!(matches!(
            i.issue(&id, WORKLOAD_LIFETIME),
            Err(Error::Validity { .. })
        ));
        i.clock_skew = CLOCK_SKEW_ALLOWANCE;
        let now = SystemTime::now();
        let year = Duration::from_secs(365 * 86400);
        for (nb, na) in [
            (now, now + year * 8000),                    // past 9999
            (SystemTime::UNIX_EPOCH - year * 2000, now), // before the year 0
            (now, now - Duration::from_secs(1)),         // inverted
        ] {
            assert!(
                matches!(i.issue_valid(&id, nb, na), Err(Error::Validity { .. })),
                "{nb:?} {na:?}"
            );
        }
    }

    #[test]
    fn keys_must_be_their_certificates() {
        let a = TrustAnchor::generate("cluster.local", ANCHOR_LIFETIME).unwrap();
        let b = TrustAnchor::generate("cluster.local", ANCHOR_LIFETIME).unwrap();
        let i = a.issue_issuer("cluster.local", ISSUER_LIFETIME).unwrap();
        let id = WorkloadId::new("production", "frontend", "cluster.local").unwrap();
        let w = i.issue(&id, WORKLOAD_LIFETIME).unwrap();
        let other = i.issue(&id, WORKLOAD_LIFETIME).unwrap();
        assert!(WorkloadCert::from_pem(&w.chain_pem, w.key.expose_pem()).is_ok());
        let err = WorkloadCert::from_pem(&w.chain_pem, other.key.expose_pem()).unwrap_err();
        assert!(err.to_string().contains("tls.key does not match"), "{err}");
        assert!(!err.to_string().contains("PRIVATE KEY"), "{err}");
        assert!(TrustAnchor::from_pem(&a.ca.cert_pem, b.ca.key.expose_pem()).is_err());
        assert!(
            IssuerCa::from_pem(&i.ca.cert_pem, a.ca.key.expose_pem(), "cluster.local").is_err()
        );
        assert!(IssuerCa::from_pem(&i.ca.cert_pem, i.ca.key.expose_pem(), "Bad..td").is_err());
    }
}
