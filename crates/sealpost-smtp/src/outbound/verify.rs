//! Certificate verification for the `verify` TLS level and MTA-STS.
//!
//! The trusted roots are the system's bundle (the first of the usual
//! files that exists) plus `relay.tls_ca_file`. rustls/webpki checks the
//! chain and the name; the name given is the host we connect to (the MX
//! host name, RFC 7672 §3.2.2, or the configured next hop), with wildcards
//! only as a whole left-most label (RFC 6125 §6.4.3).

use std::{path::Path, sync::Arc};

use rustls::{
    RootCertStore,
    pki_types::{CertificateDer, pem::PemObject},
};

/// Where distributions keep the system's CA bundle (Debian/Ubuntu,
/// Fedora/RHEL, Alpine/macOS-style).
const SYSTEM_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
];

/// The roots `verify` trusts: the system bundle, if one is found, and the
/// certificates of `ca_file`.
///
/// # Errors
/// `ca_file` cannot be read or holds no usable certificate.
pub fn load_roots(ca_file: Option<&Path>) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    if let Some(bundle) = SYSTEM_BUNDLES.iter().map(Path::new).find(|p| p.exists()) {
        match read_certificates(bundle) {
            Ok(certs) => {
                roots.add_parsable_certificates(certs);
            }
            Err(e) => tracing::warn!(error = %e, "cannot read the system CA bundle"),
        }
    }
    if let Some(path) = ca_file {
        let certs = read_certificates(path)?;
        let (added, _) = roots.add_parsable_certificates(certs);
        if added == 0 {
            return Err(format!(
                "{}: holds no usable CA certificate (expected PEM \"BEGIN CERTIFICATE\" blocks)",
                path.display()
            ));
        }
    }
    Ok(roots)
}

fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let pem = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: not PEM certificates: {e}", path.display()))
}

/// A client configuration that verifies the server's chain against
/// `roots` and its name against the one the connection is made for.
pub fn verifying_config(roots: Arc<RootCertStore>) -> Arc<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ca_file_must_hold_certificates() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "no certificates here\n").unwrap();
        let e = load_roots(Some(&empty)).unwrap_err();
        assert!(e.contains("no usable CA certificate"), "{e}");
        let missing = dir.path().join("missing.pem");
        assert!(
            load_roots(Some(&missing))
                .unwrap_err()
                .contains("missing.pem")
        );
    }
}
