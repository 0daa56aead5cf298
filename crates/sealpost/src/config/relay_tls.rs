//! The TLS keys of `[relay]`: `tls_policy`, `tls_ca_file`, `mta_sts` and
//! `mta_sts_port`, parsed into what the outbound side uses.
//!
//! `relay.tls_policy` is a table of destination → level (`none`, `may`,
//! `encrypt`, `verify`); the key `"*"` sets the default (`may`). The older
//! `relay.opportunistic_tls = false` still turns STARTTLS off for `may`;
//! it contradicts a stronger `"*"`, which is reported.

use std::{collections::BTreeMap, path::PathBuf};

use sealpost_smtp::outbound::{TlsLevel, TlsPolicy, verify};

use super::{ConfigError, err};

/// The parsed keys.
#[derive(Debug, Clone, Default)]
pub struct RelayTls {
    pub policy: TlsPolicy,
    pub ca_file: Option<PathBuf>,
    pub mta_sts: bool,
    pub mta_sts_port: u16,
}

/// Parses the keys; problems go to `errors`, each with its key's path.
pub(super) fn parse(
    policy: Option<BTreeMap<String, String>>,
    ca_file: Option<String>,
    mta_sts: Option<bool>,
    mta_sts_port: Option<u16>,
    opportunistic_tls: Option<bool>,
    errors: &mut Vec<ConfigError>,
) -> RelayTls {
    let mut default = TlsLevel::May;
    let mut entries = Vec::new();
    for (key, value) in policy.unwrap_or_default() {
        let path = format!("relay.tls_policy.{key:?}");
        let level = match TlsLevel::parse(&value) {
            Ok(l) => l,
            Err(e) => {
                errors.push(err(path, e));
                continue;
            }
        };
        if key == "*" {
            default = level;
        } else {
            entries.push((key, level));
        }
    }
    if opportunistic_tls == Some(false) && default > TlsLevel::May {
        errors.push(err(
            "relay.opportunistic_tls",
            format!(
                "false contradicts relay.tls_policy.\"*\" = {default:?}; remove relay.opportunistic_tls \
                 (relay.tls_policy replaces it)",
                default = default.as_str()
            ),
        ));
    }
    let policy = match TlsPolicy::new(default, entries.iter().cloned()) {
        Ok(p) => p,
        Err(e) => {
            // Name the first bad key.
            let bad = entries
                .iter()
                .find(|(k, _)| TlsPolicy::new(default, [(k.clone(), TlsLevel::May)]).is_err())
                .map_or_else(String::new, |(k, _)| format!(".{k:?}"));
            errors.push(err(format!("relay.tls_policy{bad}"), e));
            TlsPolicy::new(default, []).unwrap_or_default()
        }
    };
    let ca_file = ca_file.map(PathBuf::from);
    if let Some(path) = &ca_file
        && let Err(e) = verify::load_roots(Some(path))
    {
        errors.push(err("relay.tls_ca_file", e));
    }
    let mta_sts_port = match mta_sts_port {
        Some(0) => {
            errors.push(err("relay.mta_sts_port", "must be a port from 1 to 65535"));
            443
        }
        Some(p) => p,
        None => 443,
    };
    RelayTls {
        policy,
        ca_file,
        mta_sts: mta_sts.unwrap_or(false),
        mta_sts_port,
    }
}

#[cfg(test)]
mod tests {
    use sealpost_smtp::outbound::{NextHop, TlsLevel};

    fn load(text: &str, env: &[(&str, &str)]) -> Result<super::super::Config, Vec<String>> {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), text).unwrap();
        let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string()));
        super::super::load(Some(f.path()), env)
            .map_err(|e| e.0.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn tls_policy_entries_default_and_environment() {
        let c = load(
            "[relay]\ntls_policy = { \"bank.example\" = \"verify\", \"*\" = \"encrypt\" }\n",
            &[],
        )
        .unwrap();
        let level = |d: &str| c.relay.tls.policy.level(&NextHop::Mx(d.into()));
        assert_eq!(level("bank.example"), TlsLevel::Verify);
        assert_eq!(level("other.example"), TlsLevel::Encrypt);
        assert!(!c.relay.tls.mta_sts);
        assert_eq!(c.relay.tls.mta_sts_port, 443);
        // Defaults: may, no CA file.
        let c = load("", &[]).unwrap();
        assert_eq!(c.relay.tls.policy.default, TlsLevel::May);
        assert!(c.relay.tls.ca_file.is_none());
        // The environment sets the table inline.
        let c = load(
            "",
            &[
                ("SEALPOST_RELAY_TLS_POLICY", "{ \"x.example\" = \"none\" }"),
                ("SEALPOST_RELAY_MTA_STS", "true"),
            ],
        )
        .unwrap();
        assert_eq!(
            c.relay.tls.policy.level(&NextHop::Mx("x.example".into())),
            TlsLevel::None
        );
        assert!(c.relay.tls.mta_sts);
    }

    #[test]
    fn bad_tls_keys_are_named() {
        let e = load(
            "[relay]\nopportunistic_tls = false\ntls_ca_file = \"/nonexistent/ca.pem\"\nmta_sts_port = 0\n[relay.tls_policy]\n\"a.example\" = \"strict\"\n\"bad key\" = \"verify\"\n\"*\" = \"verify\"\n",
            &[],
        )
        .unwrap_err()
        .join("\n");
        for path in [
            "relay.tls_policy.\"a.example\":",
            "relay.tls_policy.\"bad key\":",
            "relay.opportunistic_tls:",
            "relay.tls_ca_file:",
            "relay.mta_sts_port:",
        ] {
            assert!(e.contains(path), "{path} missing from:\n{e}");
        }
    }
}
