//! TLS to RESET: the system's trusted roots, plus the certificates of a PEM
//! bundle (`reset.ca_file`) for a private CA, a corporate proxy or a staging
//! RESET. Built once per process, not per connection: each build parses the
//! system's CA bundle.

use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{file}: cannot read: {reason}")]
    Read { file: String, reason: String },
    #[error("{file}: {reason}")]
    Certificates { file: String, reason: String },
    #[error("cannot set up TLS: {0}")]
    Setup(String),
}

/// The certificates of a PEM bundle, each one checked.
pub fn certificates(pem: &[u8]) -> Result<Vec<native_tls::Certificate>, String> {
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    let text = std::str::from_utf8(pem).map_err(|_| "is not PEM text".to_string())?;
    let mut found = Vec::new();
    for (i, block) in text.split(BEGIN).skip(1).enumerate() {
        let certificate = format!("{BEGIN}{block}");
        let parsed = native_tls::Certificate::from_pem(certificate.as_bytes())
            .map_err(|e| format!("certificate {} of the bundle cannot be read: {e}", i + 1))?;
        found.push(parsed);
    }
    if found.is_empty() {
        return Err("holds no PEM certificate (-----BEGIN CERTIFICATE-----)".into());
    }
    Ok(found)
}

/// The TLS settings of every connection to RESET: the system's roots, and
/// those of `ca_file` when given.
pub fn connector(ca_file: Option<&Path>) -> Result<native_tls::TlsConnector, TlsError> {
    let mut builder = native_tls::TlsConnector::builder();
    if let Some(path) = ca_file {
        let file = path.display().to_string();
        let pem = std::fs::read(path).map_err(|e| TlsError::Read {
            file: file.clone(),
            reason: e.to_string(),
        })?;
        for certificate in
            certificates(&pem).map_err(|reason| TlsError::Certificates { file, reason })?
        {
            builder.add_root_certificate(certificate);
        }
    }
    builder.build().map_err(|e| TlsError::Setup(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bundle_without_certificates_or_with_a_broken_one_is_refused() {
        let refusal = |pem: &[u8]| certificates(pem).err().unwrap_or_default();
        assert!(refusal(b"").contains("no PEM certificate"));
        assert!(refusal(b"\xff\xfe").contains("not PEM"));
        let broken = b"-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n";
        assert!(refusal(broken).contains("certificate 1"));
    }

    #[test]
    fn a_missing_ca_file_names_the_file() {
        let e = connector(Some(Path::new("/nonexistent/ca.pem"))).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("/nonexistent/ca.pem: cannot read"),
            "{e}"
        );
    }
}
