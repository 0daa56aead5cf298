//! SMTP accounts (issue 17, item 1): applications that cannot sit in
//! `smtp.relay_networks` submit mail with a name and a password. Each
//! account names the sender addresses or domains it may use in `MAIL FROM`
//! and the header From, and how many messages an hour it may send. Only an
//! argon2id hash of the password is stored; every change is audited
//! (object `smtp_account`, never the hash).

use std::{fmt, time::SystemTime};

use sealpost_policy::{DomainPattern, EmailAddress, Invalid};
use serde::Serialize;

use crate::{StoreError, audit::Actor, portal::PasswordHash};

/// Most sender rules on one account.
const MAX_SENDERS: usize = 1000;

/// An account's name: lower case, 1-64 of `a-z 0-9 . _ - @ +`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct SmtpAccountName(String);

impl SmtpAccountName {
    /// # Errors
    /// [`Invalid`] on the field `name` saying what is allowed.
    pub fn parse(text: &str) -> Result<Self, Invalid> {
        let name = text.trim().to_ascii_lowercase();
        let ok = (1..=64).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-@+".contains(&b))
            && !name.starts_with('.')
            && !name.ends_with('.');
        if ok {
            Ok(SmtpAccountName(name))
        } else {
            Err(Invalid::new(
                "name",
                "invalid_name",
                format!(
                    "{text:?} is not an account name: use 1 to 64 of a-z, 0-9, '.', '_', '-', '@', '+'"
                ),
            ))
        }
    }

    /// A name read back from the store.
    pub(crate) fn stored(name: String) -> Self {
        SmtpAccountName(name)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SmtpAccountName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The senders an account may use: addresses (`app@corp.example`) and
/// domains (`corp.example`, `*.corp.example` for subdomains too), each
/// checked and written in its normal form.
///
/// # Errors
/// [`Invalid`] on `senders[i]`, or on `senders` when there are none or too
/// many.
pub fn parse_senders(senders: &[String]) -> Result<Vec<String>, Invalid> {
    if senders.is_empty() {
        return Err(Invalid::new(
            "senders",
            "missing_senders",
            "an account needs at least one sender address or domain",
        ));
    }
    if senders.len() > MAX_SENDERS {
        return Err(Invalid::new(
            "senders",
            "too_many",
            format!("at most {MAX_SENDERS} senders"),
        ));
    }
    let mut out: Vec<String> = Vec::with_capacity(senders.len());
    for (i, s) in senders.iter().enumerate() {
        let s = s.trim();
        let normal = if s.contains('@') {
            EmailAddress::parse(s)
                .map(|a| a.to_string())
                .map_err(|e| format!("{s:?} is not a valid email address: {e}"))
        } else {
            DomainPattern::parse(s)
                .map(|d| d.to_string())
                .map_err(|e| format!("{s:?} is not a valid domain or *.domain pattern: {e}"))
        }
        .map_err(|m| Invalid::new(format!("senders[{i}]"), "invalid_sender", m))?;
        if !out.contains(&normal) {
            out.push(normal);
        }
    }
    Ok(out)
}

/// An account as listed (never the hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpAccount {
    pub name: SmtpAccountName,
    pub senders: Vec<String>,
    pub rate_per_hour: u32,
    pub created_at: SystemTime,
    pub password_changed_at: SystemTime,
    pub last_used_at: Option<SystemTime>,
}

impl SmtpAccount {
    /// Whether the account may use `address` in `MAIL FROM` or the header
    /// From: it is one of its addresses (compared as the policy engine
    /// compares them), or in one of its domains. Others get `553 5.7.1`.
    pub fn may_send_as(&self, address: &EmailAddress) -> bool {
        let key = address.match_key();
        let domain = address.domain_str().to_ascii_lowercase();
        self.senders.iter().any(|rule| {
            if rule.contains('@') {
                EmailAddress::parse(rule).is_ok_and(|a| a.match_key() == key)
            } else {
                DomainPattern::parse(rule).is_ok_and(|d| d.matches(&domain))
            }
        })
    }
}

/// A new account.
#[derive(Debug, Clone)]
pub struct NewSmtpAccount {
    pub name: SmtpAccountName,
    /// Checked by [`parse_senders`].
    pub senders: Vec<String>,
    pub rate_per_hour: u32,
    pub password: PasswordHash,
    pub now: SystemTime,
}

/// The storage of SMTP accounts.
#[async_trait::async_trait]
pub trait SmtpAccountStore: Send + Sync + fmt::Debug + 'static {
    /// Creates an account (audited); false when the name is taken.
    async fn create_smtp_account(
        &self,
        account: NewSmtpAccount,
        actor: Actor,
    ) -> Result<bool, StoreError>;

    /// Every account, by name.
    async fn smtp_accounts(&self) -> Result<Vec<SmtpAccount>, StoreError>;

    /// One account and its password hash (for AUTH).
    async fn smtp_account(
        &self,
        name: &SmtpAccountName,
    ) -> Result<Option<(SmtpAccount, PasswordHash)>, StoreError>;

    /// Replaces the senders and the rate (audited); false when there is no
    /// such account.
    async fn update_smtp_account(
        &self,
        name: &SmtpAccountName,
        senders: Vec<String>,
        rate_per_hour: u32,
        actor: Actor,
    ) -> Result<bool, StoreError>;

    /// Sets a new password hash (audited); false when there is no such
    /// account.
    async fn set_smtp_password(
        &self,
        name: &SmtpAccountName,
        password: PasswordHash,
        now: SystemTime,
        actor: Actor,
    ) -> Result<bool, StoreError>;

    /// Deletes an account (audited); false when there was none.
    async fn remove_smtp_account(
        &self,
        name: &SmtpAccountName,
        actor: Actor,
    ) -> Result<bool, StoreError>;

    /// Notes a successful AUTH at `at` (to the minute, as API keys do).
    async fn touch_smtp_account(
        &self,
        name: &SmtpAccountName,
        at: SystemTime,
    ) -> Result<(), StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_senders_are_checked_once() {
        assert_eq!(
            SmtpAccountName::parse(" CRM-App ").unwrap().as_str(),
            "crm-app"
        );
        for bad in ["", ".x", "a b", "x".repeat(65).as_str(), "naïve"] {
            assert_eq!(
                SmtpAccountName::parse(bad).unwrap_err().field,
                "name",
                "{bad:?}"
            );
        }
        let s = parse_senders(&[
            "App@Corp.Example".into(),
            "*.corp.example".into(),
            "corp.example".into(),
            "corp.example".into(),
        ])
        .unwrap();
        assert_eq!(s.len(), 3, "{s:?}");
        assert_eq!(parse_senders(&[]).unwrap_err().field, "senders");
        let e = parse_senders(&["ok.example".into(), "not a domain".into()]).unwrap_err();
        assert_eq!((e.field.as_str(), e.code), ("senders[1]", "invalid_sender"));
    }

    #[test]
    fn an_account_sends_as_its_addresses_and_domains_only() {
        let account = SmtpAccount {
            name: SmtpAccountName::parse("crm").unwrap(),
            senders: parse_senders(&["CRM@corp.example".into(), "*.shop.example".into()]).unwrap(),
            rate_per_hour: 10,
            created_at: SystemTime::UNIX_EPOCH,
            password_changed_at: SystemTime::UNIX_EPOCH,
            last_used_at: None,
        };
        let may = |a: &str| account.may_send_as(&EmailAddress::parse(a).unwrap());
        assert!(may("crm@corp.example") && may("crm@CORP.example"));
        assert!(!may("ceo@corp.example"), "another address of the domain");
        assert!(may("orders@shop.example") && may("eu@mail.shop.example"));
        assert!(!may("x@shop.example.evil"));
    }
}
