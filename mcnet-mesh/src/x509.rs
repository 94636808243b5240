//! X.509 reading shared by the identity and TLS modules: certificates
//! from PEM, and the names a certificate carries.

use rustls::pki_types::CertificateDer;

use crate::{Error, Result};

/// Parses every certificate of a PEM text.
pub fn pem_certs(pem: &str) -> Result<Vec<CertificateDer<'static>>> {
    use rustls::pki_types::pem::PemObject;
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Error::Invalid(format!("PEM certificates: {e:?}")))
}

/// The identities a certificate names: its DNS SANs (Linkerd names) and
/// URI SANs (SPIFFE ids).
pub fn identities_of(cert: &CertificateDer<'_>) -> Result<Vec<String>> {
    use x509_parser::extensions::GeneralName;
    let (_, c) = x509_parser::parse_x509_certificate(cert)
        .map_err(|e| Error::Invalid(format!("peer certificate: {e}")))?;
    let mut out = Vec::new();
    if let Ok(Some(san)) = c.subject_alternative_name() {
        for n in &san.value.general_names {
            match n {
                GeneralName::DNSName(d) => out.push(d.to_string()),
                GeneralName::URI(u) => out.push(u.to_string()),
                _ => {}
            }
        }
    }
    Ok(out)
}
