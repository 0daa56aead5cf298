//! The TLS a next hop gets, decided once per delivery, and connecting
//! under it.
//!
//! [`TlsContext::for_hop`] combines `relay.tls_policy` and MTA-STS (an
//! explicit policy entry wins over MTA-STS); [`TlsContext::connect`]
//! opens a session at that level and refuses, with the reason, one that
//! falls short, before any mail is sent over it.

use std::sync::Arc;

use super::{
    OutboundConfig,
    client::{Client, ClientError},
    lookup::{Lookup, NextHop, Target},
    mta_sts::{MtaSts, StsMode, StsPolicy},
    tls_policy::{TlsLevel, TlsPolicy},
    verify,
};

/// What one next hop must get.
#[derive(Debug, Clone)]
pub struct HopTls {
    pub level: TlsLevel,
    /// What asked for the level, for replies and logs: "relay.tls_policy
    /// for example.com", "the MTA-STS policy of example.com".
    pub source: String,
    /// An MTA-STS policy in `enforce` mode: only MX hosts it names.
    pub enforced_mx: Option<StsPolicy>,
    /// An MTA-STS policy in `testing` mode: mismatches are logged only.
    pub testing_mx: Option<StsPolicy>,
}

/// The client configurations and the MTA-STS cache. One per gateway.
#[derive(Debug)]
pub struct TlsContext {
    policy: TlsPolicy,
    /// `may`/`encrypt`: any certificate; `None` when
    /// `relay.opportunistic_tls = false` (then `may` means `none`).
    any: Option<Arc<rustls::ClientConfig>>,
    /// `encrypt` even when opportunistic TLS is off.
    encrypt: Arc<rustls::ClientConfig>,
    /// `verify`: chain and name checked.
    verifying: Arc<rustls::ClientConfig>,
    mta_sts: Option<MtaSts>,
}

impl TlsContext {
    pub fn new(config: &OutboundConfig) -> Self {
        let roots = verify::load_roots(config.tls_ca_file.as_deref()).unwrap_or_else(|e| {
            // `config check` reports this before start; here it fails
            // closed: `verify` trusts the system roots only.
            tracing::error!(error = %e, "relay.tls_ca_file unusable; verify trusts the system roots only");
            verify::load_roots(None).unwrap_or_else(|_| rustls::RootCertStore::empty())
        });
        let verifying = verify::verifying_config(Arc::new(roots));
        let encrypt = super::opportunistic_tls_config();
        TlsContext {
            policy: config.tls_policy.clone(),
            any: config.opportunistic_tls.then(|| encrypt.clone()),
            encrypt,
            mta_sts: config.mta_sts.then(|| {
                let sts = MtaSts::new(verifying.clone(), config.mta_sts_port);
                match &config.mta_sts_cache {
                    Some(file) => sts.with_cache_file(file.clone()),
                    None => sts,
                }
            }),
            verifying,
        }
    }

    /// The TLS `hop` must get. An explicit `relay.tls_policy` entry wins;
    /// else, for MX delivery with `relay.mta_sts` on, the domain's MTA-STS
    /// policy (`enforce`: `verify` and only the MX hosts it names); else
    /// the default level.
    pub async fn for_hop(&self, hop: &NextHop, lookup: &Lookup) -> HopTls {
        let key = TlsPolicy::key(hop);
        if let Some(level) = self.policy.entry(key) {
            return HopTls {
                level,
                source: format!("relay.tls_policy for {key}"),
                enforced_mx: None,
                testing_mx: None,
            };
        }
        let default = HopTls {
            level: self.policy.default,
            source: "the default of relay.tls_policy".into(),
            enforced_mx: None,
            testing_mx: None,
        };
        let (Some(sts), NextHop::Mx(domain)) = (&self.mta_sts, hop) else {
            return default;
        };
        match sts.policy(domain, lookup).await {
            Some(p) if p.mode == StsMode::Enforce => HopTls {
                level: TlsLevel::Verify,
                source: format!("the MTA-STS policy of {domain}"),
                enforced_mx: Some(p),
                testing_mx: None,
            },
            Some(p) if p.mode == StsMode::Testing => HopTls {
                testing_mx: Some(p),
                ..default
            },
            _ => default,
        }
    }

    /// `targets` without the MX hosts an enforced MTA-STS policy does not
    /// name (RFC 8461 §4.1); a `testing` policy's mismatches are logged.
    pub fn allowed(&self, hop: &HopTls, domain: &str, targets: Vec<Target>) -> Vec<Target> {
        if let Some(p) = &hop.testing_mx {
            for t in targets.iter().filter(|t| !p.allows_mx(&t.name)) {
                tracing::warn!(%domain, mx = %t.name, "MTA-STS (testing): MX host not named by the policy; delivering anyway");
            }
        }
        match &hop.enforced_mx {
            Some(p) => targets
                .into_iter()
                .filter(|t| p.allows_mx(&t.name))
                .collect(),
            None => targets,
        }
    }

    /// Opens a session with `target` at `hop.level`.
    ///
    /// # Errors
    /// The reply to record (`451 4.4.1` for a connection problem, `451
    /// 4.7.5` for a session that does not meet the level). At `may`, a
    /// failed handshake is retried in clear (as Postfix does: the level
    /// asked for no more); at `encrypt` and `verify` it is not.
    pub async fn connect(
        &self,
        target: &Target,
        config: &OutboundConfig,
        hop: &HopTls,
    ) -> Result<Client, String> {
        let tls = match hop.level {
            TlsLevel::None => None,
            TlsLevel::May => self.any.as_ref(),
            TlsLevel::Encrypt => Some(&self.encrypt),
            TlsLevel::Verify => Some(&self.verifying),
        };
        let connected = match Client::connect(target, config, tls).await {
            Err(ClientError::Tls(server, why)) if hop.level == TlsLevel::May => {
                tracing::info!(%server, why = %super::delivery::log_text(&why), "STARTTLS failed; retrying in plaintext");
                Client::connect(target, config, None).await
            }
            Err(ClientError::Tls(server, why)) => {
                return Err(format!(
                    "451 4.7.5 TLS ({}) required by {} but TLS with {server} failed: {why}",
                    hop.level, hop.source
                ));
            }
            other => other,
        };
        let client = connected.map_err(|e| format!("451 4.4.1 {e}"))?;
        if hop.level.requires_tls() && !client.tls {
            let reply = format!(
                "451 4.7.5 TLS ({}) required by {} but {} did not offer STARTTLS",
                hop.level, hop.source, client.server
            );
            tokio::spawn(client.quit());
            return Err(reply);
        }
        Ok(client)
    }
}
