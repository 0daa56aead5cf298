//! The server certificate for STARTTLS.
//!
//! Operators name a certificate and key (`smtp.tls_cert`, `smtp.tls_key`);
//! without them, a self-signed pair for `server.hostname` is generated in
//! `<data_dir>/tls/` on first start and reused afterwards, so the embedded
//! default offers encryption from the first message. Like everything in
//! the data directory, the generated files are 0600 in a 0700 directory.

use std::{
    io::Write,
    path::{Path, PathBuf},
    sync::Arc,
};

use anyhow::{Context, bail};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use tokio_rustls::TlsAcceptor;

use sealpost_store::private;

use crate::config::Config;

/// Where the certificate came from, for the start-up banner.
#[derive(Debug, Clone)]
pub enum CertificateSource {
    Configured(PathBuf),
    Generated(PathBuf),
    Existing(PathBuf),
}

/// Builds the TLS acceptor, generating a self-signed pair if needed.
///
/// # Errors
/// Unreadable or mismatched certificate and key, with the file named.
pub fn acceptor(config: &Config) -> anyhow::Result<(TlsAcceptor, CertificateSource)> {
    let (cert, key, source) = match &config.smtp.tls {
        Some((c, k)) => (
            c.clone(),
            k.clone(),
            CertificateSource::Configured(c.clone()),
        ),
        None => {
            let dir = config.data_dir.join("tls");
            let (c, k) = (dir.join("cert.pem"), dir.join("key.pem"));
            if c.exists() && k.exists() {
                // Generated 0755 and 0644 (the certificate) by earlier
                // versions.
                for path in [&dir, &c, &k] {
                    private::restrict(path)
                        .with_context(|| format!("restricting {}", path.display()))?;
                }
                (c.clone(), k, CertificateSource::Existing(c))
            } else {
                generate(&dir, &c, &k, &config.hostname)?;
                (c.clone(), k, CertificateSource::Generated(c))
            }
        }
    };
    Ok((load(&cert, &key, "smtp", &[])?, source))
}

fn generate(dir: &Path, cert: &Path, key: &Path, hostname: &str) -> anyhow::Result<()> {
    private::create_dir(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut names = vec![hostname.to_owned()];
    if hostname != "localhost" {
        names.push("localhost".to_owned());
    }
    let pair = rcgen::generate_simple_self_signed(names)
        .context("generating a self-signed certificate")?;
    for (path, pem) in [
        (key, pair.signing_key.serialize_pem()),
        (cert, pair.cert.pem()),
    ] {
        // A leftover file keeps its mode when truncated: restrict it too.
        private::file_options()
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
            .and_then(|mut f| f.write_all(pem.as_bytes()))
            .and_then(|()| private::restrict(path).map(drop))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    tracing::info!(cert = %cert.display(), "generated a self-signed TLS certificate");
    Ok(())
}

/// An acceptor for the certificate chain and key in PEM files; `section`
/// names the configuration keys in errors (`smtp.tls_cert`, ...), `alpn`
/// the protocols offered (empty for SMTP).
///
/// # Errors
/// Unreadable or mismatched files, named with their keys.
pub fn load(cert: &Path, key: &Path, section: &str, alpn: &[&[u8]]) -> anyhow::Result<TlsAcceptor> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .with_context(|| {
            format!(
                "reading certificate {} ({section}.tls_cert)",
                cert.display()
            )
        })?
        .collect::<Result<_, _>>()
        .with_context(|| {
            format!(
                "parsing certificate {} ({section}.tls_cert)",
                cert.display()
            )
        })?;
    if certs.is_empty() {
        bail!(
            "{} ({section}.tls_cert) contains no PEM certificate",
            cert.display()
        );
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("reading private key {} ({section}.tls_key)", key.display()))?;
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .context("TLS protocol versions")?
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .with_context(|| {
        format!("certificate and key do not match ({section}.tls_cert, {section}.tls_key)")
    })?;
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(TlsAcceptor::from(Arc::new(config)))
}
