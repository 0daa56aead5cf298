//! The SMTP accounts as the submission listeners check them
//! ([`sealpost_smtp::inbound::auth::SmtpAccounts`]), over the store.
//!
//! The argon2id check runs on the blocking pool (tens of milliseconds of
//! CPU and 19 MiB each), never on the SMTP runtime's threads, and at most
//! one per CPU at a time: a flood of logins waits its turn instead of
//! taking the memory of hundreds of parallel hashes. An unknown name is
//! checked against a fixed hash, so it takes as long as a wrong password.
//!
//! Applications often connect and log in for every message. A password
//! verified in the last [`VERIFIED_FOR`] is not hashed again while the
//! account's stored hash is the same one (as Dovecot's auth cache does):
//! the account is still read from the store at every AUTH, so a removed
//! account or a new password takes effect at once, and only the exact
//! password that matched, as an HMAC under a key made at start, is kept.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant, SystemTime},
};

use ring::hmac;

use sealpost_smtp::inbound::auth::{SmtpAccounts, sasl::Credentials};
use sealpost_store::{
    StoreError,
    smtp_accounts::{SmtpAccount, SmtpAccountName, SmtpAccountStore},
};
use sealpost_web::auth::password::{Password, PasswordHash, verify_blocking};
use tokio::sync::Semaphore;

/// How long a verified password is taken without hashing it again.
pub const VERIFIED_FOR: Duration = Duration::from_secs(300);

/// Most accounts remembered as recently verified.
const MAX_VERIFIED: usize = 10_000;

/// A password verified against one stored hash, and when.
struct Verified {
    phc: String,
    digest: hmac::Tag,
    at: Instant,
}

/// [`SmtpAccounts`] over the store.
pub struct StoreAccounts {
    store: Arc<dyn SmtpAccountStore>,
    /// Recently verified passwords, per account (see the module doc).
    verified: Mutex<HashMap<SmtpAccountName, Verified>>,
    /// The key of their HMACs, made at start, never stored.
    key: hmac::Key,
    /// One argon2 check per CPU at a time.
    hashing: Semaphore,
    /// The minute each account's last use was last written: one write a
    /// minute per account at most, however often it logs in.
    touched: Mutex<HashMap<SmtpAccountName, u64>>,
}

impl StoreAccounts {
    pub fn new(store: Arc<dyn SmtpAccountStore>) -> Self {
        let cpus = std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get);
        let key = hmac::Key::generate(hmac::HMAC_SHA256, &ring::rand::SystemRandom::new())
            .expect("the OS random source is available");
        StoreAccounts {
            store,
            verified: Mutex::new(HashMap::new()),
            key,
            hashing: Semaphore::new(cpus),
            touched: Mutex::new(HashMap::new()),
        }
    }
}

impl std::fmt::Debug for StoreAccounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreAccounts").finish_non_exhaustive()
    }
}

impl StoreAccounts {
    fn digest(&self, password: &str) -> hmac::Tag {
        hmac::sign(&self.key, password.as_bytes())
    }

    /// Whether `password` matched this very stored hash lately.
    fn recently_verified(&self, name: &SmtpAccountName, phc: &str, password: &str) -> bool {
        let verified = self
            .verified
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        verified.get(name).is_some_and(|v| {
            v.phc == phc
                && v.at.elapsed() < VERIFIED_FOR
                && hmac::verify(&self.key, password.as_bytes(), v.digest.as_ref()).is_ok()
        })
    }

    fn remember(&self, name: &SmtpAccountName, phc: &str, password: &str) {
        let mut verified = self
            .verified
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if verified.len() >= MAX_VERIFIED {
            verified.retain(|_, v| v.at.elapsed() < VERIFIED_FOR);
        }
        if verified.len() < MAX_VERIFIED {
            verified.insert(
                name.clone(),
                Verified {
                    phc: phc.to_owned(),
                    digest: self.digest(password),
                    at: Instant::now(),
                },
            );
        }
    }
}

#[async_trait::async_trait]
impl SmtpAccounts for StoreAccounts {
    async fn verify(&self, credentials: Credentials) -> Result<Option<SmtpAccount>, StoreError> {
        let found = match SmtpAccountName::parse(&credentials.name) {
            Ok(name) => self.store.smtp_account(&name).await?,
            Err(_) => None,
        };
        if let Some((account, stored)) = &found
            && self.recently_verified(
                &account.name,
                stored.as_str(),
                credentials.password.expose(),
            )
        {
            return Ok(found.map(|(a, _)| a));
        }
        let (account, hash) = match found {
            Some((account, stored)) => {
                let hash = PasswordHash::parse(stored.as_str()).ok();
                if hash.is_none() {
                    tracing::error!(account = %account.name, "the stored password hash of this SMTP account is malformed; AUTH refused");
                }
                (Some(account), hash)
            }
            None => (None, None),
        };
        let _turn = self.hashing.acquire().await;
        // A malformed hash checks against the fallback and fails, as an
        // unknown name does.
        let phc = hash.as_ref().map(|h| h.as_phc().to_owned());
        let matches = verify_blocking(Password::new(credentials.password.expose()), hash).await
            && phc.is_some();
        if let (true, Some(account), Some(phc)) = (matches, &account, &phc) {
            self.remember(&account.name, phc, credentials.password.expose());
        }
        Ok(account.filter(|_| matches))
    }

    async fn used(&self, name: &SmtpAccountName, at: SystemTime) {
        let minute = at
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() / 60);
        {
            let mut touched = self
                .touched
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if touched.get(name).is_some_and(|&m| m >= minute) {
                return;
            }
            touched.insert(name.clone(), minute);
        }
        if let Err(e) = self.store.touch_smtp_account(name, at).await {
            tracing::warn!(account = %name, error = %e, "cannot record the SMTP account's last use");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sealpost_smtp::inbound::auth::sasl::Password as SaslPassword;
    use sealpost_store::{SqliteStore, audit::Actor, smtp_accounts::NewSmtpAccount};

    #[tokio::test]
    async fn the_right_password_of_an_existing_account_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(
            SqliteStore::open(
                &dir.path().join("db.sqlite"),
                &dir.path().join("spool"),
                Arc::new(sealpost_vault::Vault::ephemeral()),
            )
            .await
            .unwrap(),
        );
        let hash =
            sealpost_web::auth::password::hash(&Password::new("Tangerine-Orbit-42")).unwrap();
        let name = SmtpAccountName::parse("crm").unwrap();
        store
            .create_smtp_account(
                NewSmtpAccount {
                    name: name.clone(),
                    senders: vec!["corp.example".into()],
                    rate_per_hour: 10,
                    password: sealpost_store::portal::PasswordHash::new(hash.as_phc().to_owned()),
                    now: SystemTime::now(),
                },
                Actor::system("test"),
            )
            .await
            .unwrap();
        let accounts = StoreAccounts::new(store.clone());
        let try_ = |n: &str, p: &str| Credentials {
            name: n.into(),
            password: SaslPassword::new(p),
        };
        let ok = accounts
            .verify(try_("CRM", "Tangerine-Orbit-42"))
            .await
            .unwrap();
        assert_eq!(ok.unwrap().name, name);
        assert!(
            accounts
                .verify(try_("crm", "tangerine-orbit-42"))
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            accounts
                .verify(try_("nobody", "Tangerine-Orbit-42"))
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            accounts
                .verify(try_("not a name", "x"))
                .await
                .unwrap()
                .is_none()
        );
        // Verified again without hashing; a new password ends that at once.
        assert!(accounts.recently_verified(&name, hash.as_phc(), "Tangerine-Orbit-42"));
        assert!(!accounts.recently_verified(&name, hash.as_phc(), "Tangerine-Orbit-43"));
        let new = sealpost_web::auth::password::hash(&Password::new("Walrus-Mosaic-7")).unwrap();
        store
            .set_smtp_password(
                &name,
                sealpost_store::portal::PasswordHash::new(new.as_phc().to_owned()),
                SystemTime::now(),
                Actor::system("test"),
            )
            .await
            .unwrap();
        assert!(
            accounts
                .verify(try_("crm", "Tangerine-Orbit-42"))
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            accounts
                .verify(try_("crm", "Walrus-Mosaic-7"))
                .await
                .unwrap()
                .is_some()
        );
        accounts.used(&name, SystemTime::now()).await;
        let (account, _) = store.smtp_account(&name).await.unwrap().unwrap();
        assert!(account.last_used_at.is_some());
    }
}
