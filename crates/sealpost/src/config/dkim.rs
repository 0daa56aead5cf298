//! `[dkim]`: the domains sealpost signs mail for, and whether relayed mail
//! is signed too.
//!
//! TOML cannot make `dkim` both an array of tables (`[[dkim]]`) and a
//! table holding `sign_relayed`, so the keys are `[[dkim.key]]` entries
//! beside `sign_relayed` in `[dkim]`. Each key file is read and checked
//! here, so `sealpost config check` names a missing or unusable key by its
//! path (`dkim.key[0].key_file`) before the gateway starts.

use std::{path::PathBuf, sync::Arc};

use serde::Deserialize;

use sealpost_policy::Domain;
use sealpost_secure::dkim::{Algorithm, DomainKey, Signer};

use super::{ConfigError, err};

/// `[dkim]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DkimSection {
    pub sign_relayed: Option<bool>,
    pub key: Vec<DkimKeySection>,
}

/// One `[[dkim.key]]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DkimKeySection {
    pub domain: Option<String>,
    pub selector: Option<String>,
    pub key_file: Option<String>,
    pub algorithm: Option<String>,
}

/// `[dkim]`, parsed: the keys loaded.
#[derive(Debug, Clone, Default)]
pub struct DkimConfig {
    /// Signs the mail sealpost writes with the key of its From's domain;
    /// shared by everything that writes mail.
    pub signer: Arc<Signer>,
    /// Also sign relayed mail whose header From is in a signing domain
    /// (`dkim.sign_relayed`, default false: most senders sign their own).
    pub sign_relayed: bool,
    /// The key files, for `config check` and the logs.
    pub keys: Vec<DkimKeyConfig>,
}

/// One key as configured.
#[derive(Debug, Clone)]
pub struct DkimKeyConfig {
    pub domain: Domain,
    pub selector: String,
    pub key_file: PathBuf,
    pub algorithm: Algorithm,
}

/// Parses `[dkim]`, reading every key file; problems go to `errors`, each
/// with its key's path.
pub(super) fn build(section: DkimSection, errors: &mut Vec<ConfigError>) -> DkimConfig {
    let mut keys = Vec::new();
    let mut loaded = Vec::new();
    for (i, entry) in section.key.into_iter().enumerate() {
        let path = |key: &str| format!("dkim.key[{i}].{key}");
        let domain = match entry.domain.as_deref().map(Domain::parse) {
            Some(Ok(d)) if keys.iter().any(|k: &DkimKeyConfig| k.domain == d) => {
                errors.push(err(path("domain"), format!("{d}: has a key already")));
                None
            }
            Some(Ok(d)) if d.as_str().starts_with('[') => {
                errors.push(err(path("domain"), "must be a domain name"));
                None
            }
            Some(Ok(d)) => Some(d),
            Some(Err(e)) => {
                errors.push(err(path("domain"), e.to_string()));
                None
            }
            None => {
                errors.push(err(path("domain"), "is required"));
                None
            }
        };
        let selector = match entry.selector {
            Some(s) if valid_selector(&s) => Some(s),
            Some(s) => {
                errors.push(err(
                    path("selector"),
                    format!("{s:?}: must be dot-separated labels of letters, digits and hyphens"),
                ));
                None
            }
            None => {
                errors.push(err(path("selector"), "is required"));
                None
            }
        };
        let algorithm = match entry.algorithm.as_deref().map(Algorithm::parse) {
            None => Some(Algorithm::default()),
            Some(Ok(a)) => Some(a),
            Some(Err(m)) => {
                errors.push(err(path("algorithm"), m));
                None
            }
        };
        let Some(key_file) = entry.key_file.map(PathBuf::from) else {
            errors.push(err(
                path("key_file"),
                "is required (make one with `sealpost dkim keygen`)",
            ));
            continue;
        };
        let (Some(domain), Some(selector), Some(algorithm)) = (domain, selector, algorithm) else {
            continue;
        };
        let pem = match std::fs::read(&key_file) {
            Ok(p) => p,
            Err(e) => {
                errors.push(err(
                    path("key_file"),
                    format!("cannot read {}: {e}", key_file.display()),
                ));
                continue;
            }
        };
        match DomainKey::from_pem(domain.as_str(), &selector, algorithm, &pem) {
            Ok(k) => loaded.push(k),
            Err(e) => {
                errors.push(err(
                    path("key_file"),
                    format!("{}: {e}", key_file.display()),
                ));
                continue;
            }
        }
        keys.push(DkimKeyConfig {
            domain,
            selector,
            key_file,
            algorithm,
        });
    }
    DkimConfig {
        signer: Arc::new(Signer::new(loaded)),
        sign_relayed: section.sign_relayed.unwrap_or(false),
        keys,
    }
}

/// A selector is a dot-atom of DNS labels (RFC 6376 §3.1).
pub(crate) fn valid_selector(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.split('.').all(|label| {
            !label.is_empty()
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

#[cfg(test)]
mod tests {
    use sealpost_secure::dkim::GeneratedKey;

    use crate::config::load;

    fn load_text(text: &str) -> Result<crate::config::Config, Vec<String>> {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), text).unwrap();
        load(Some(f.path()), std::iter::empty())
            .map_err(|e| e.0.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn keys_are_loaded_and_relayed_mail_is_not_signed_by_default() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("corp.pem");
        let generated =
            GeneratedKey::generate(sealpost_secure::dkim::Algorithm::Ed25519Sha256).unwrap();
        std::fs::write(&key, generated.pem).unwrap();
        let config = load_text(&format!(
            "[[dkim.key]]\ndomain = \"Corp.Example\"\nselector = \"s1\"\n\
             key_file = {:?}\nalgorithm = \"ed25519-sha256\"\n",
            key.display().to_string()
        ))
        .unwrap();
        assert!(!config.dkim.sign_relayed);
        assert_eq!(config.dkim.keys.len(), 1);
        assert_eq!(config.dkim.keys[0].domain.as_str(), "corp.example");
        assert!(!config.dkim.signer.is_empty());
        let none = load_text("").unwrap();
        assert!(none.dkim.signer.is_empty() && !none.dkim.sign_relayed);
        let relayed = load_text("[dkim]\nsign_relayed = true\n").unwrap();
        assert!(relayed.dkim.sign_relayed);
    }

    #[test]
    fn each_problem_is_named_by_its_key_path() {
        let dir = tempfile::tempdir().unwrap();
        let rsa_path = dir.path().join("rsa.pem");
        let ed = GeneratedKey::generate(sealpost_secure::dkim::Algorithm::Ed25519Sha256).unwrap();
        std::fs::write(&rsa_path, ed.pem).unwrap();
        let missing = dir.path().join("missing.pem");
        let errors = load_text(&format!(
            r#"
            [[dkim.key]]
            domain = "corp.example"
            selector = "s1"
            key_file = {missing:?}
            [[dkim.key]]
            domain = "other.example"
            selector = "s1"
            key_file = {rsa:?}
            algorithm = "rsa-sha1"
            [[dkim.key]]
            domain = "third.example"
            selector = "bad selector"
            [[dkim.key]]
            domain = "fourth.example"
            selector = "s1"
            key_file = {rsa:?}
            "#,
            missing = missing.display().to_string(),
            rsa = rsa_path.display().to_string(),
        ))
        .unwrap_err();
        let joined = errors.join("\n");
        for expected in [
            "dkim.key[0].key_file: cannot read",
            "dkim.key[1].algorithm: \"rsa-sha1\": expected",
            "dkim.key[2].selector:",
            "dkim.key[2].key_file: is required",
            // An Ed25519 key where RSA is configured (the default).
            "dkim.key[3].key_file:",
        ] {
            assert!(
                joined.contains(expected),
                "{expected} missing from:\n{joined}"
            );
        }
        let unknown = load_text("[[dkim.key]]\ndomain = \"a.example\"\nkeyfile = \"x\"\n")
            .unwrap_err()
            .join("\n");
        assert!(unknown.contains("dkim.key"), "{unknown}");
    }
}
