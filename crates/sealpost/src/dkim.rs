//! `sealpost dkim keygen`: a signing key for one domain and selector, and
//! the DNS record that publishes its public half.
//!
//! The key file is created 0600 and never overwritten: replacing a key
//! that DNS still publishes would break every signature until the record
//! follows, so a new key takes a new selector (or a deliberate `rm`).

use std::{io::Write as _, path::Path};

use anyhow::Context as _;

use sealpost_policy::Domain;
use sealpost_secure::dkim::{Algorithm, GeneratedKey};

use crate::config::valid_selector;

/// Generates a key for `selector._domainkey.domain`, writes it to `out`
/// and returns the TXT record to publish.
///
/// # Errors
/// A bad domain, selector or algorithm; `out` exists or cannot be written.
pub fn keygen(domain: &str, selector: &str, algorithm: &str, out: &Path) -> anyhow::Result<String> {
    let domain = Domain::parse(domain).map_err(|e| anyhow::anyhow!("--domain {domain:?}: {e}"))?;
    anyhow::ensure!(
        valid_selector(selector),
        "--selector {selector:?}: must be dot-separated labels of letters, digits and hyphens"
    );
    let algorithm = Algorithm::parse(algorithm).map_err(|m| anyhow::anyhow!("--algorithm {m}"))?;
    let key = GeneratedKey::generate(algorithm)?;
    let mut options = std::fs::OpenOptions::new();
    // create_new: refuses an existing file (and a symlink planted there)
    // atomically; 0600 from the first byte, not chmod after writing.
    options.write(true).create_new(true);
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(out).with_context(|| {
        if out.exists() {
            format!(
                "{} exists; a new key takes a new selector (or remove the file first)",
                out.display()
            )
        } else {
            format!("cannot create {}", out.display())
        }
    })?;
    file.write_all(key.pem.as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", out.display()))?;
    Ok(key.txt_record(domain.as_str(), selector))
}
