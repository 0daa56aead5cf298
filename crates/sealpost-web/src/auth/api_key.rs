//! API keys: `Authorization: Bearer sp_<id>_<secret>`.
//!
//! A key is shown once, when it is created; the store keeps its id, role
//! and a SHA-256 hash of its 256-bit random secret (a slow password hash
//! buys nothing for a secret of that strength). Every request looks the key
//! up afresh, so a new or revoked key takes effect at once.
//!
//! Nothing here knows the API's error format: refusals are typed
//! ([`KeyRefused`], [`Forbidden`]) and `api/` gives them their wire form.

use std::sync::Arc;

use axum::http::HeaderValue;
use ring::digest;
use sealpost_store::{AdminStore, ApiKeyRecord, Role, StoreError};

/// A newly created key: the text to hand to the operator (shown once) and
/// the record to store.
#[derive(Debug)]
pub struct NewApiKey {
    pub token: String,
    pub record: ApiKeyRecord,
}

/// Creates a key with `role`.
///
/// # Panics
/// If the operating system has no random source.
pub fn generate_api_key(role: Role, name: &str) -> NewApiKey {
    let mut id = [0u8; 6];
    let mut secret = [0u8; 32];
    getrandom::fill(&mut id).expect("the OS random source is available");
    getrandom::fill(&mut secret).expect("the OS random source is available");
    let id = hex::encode(id);
    let secret = hex::encode(secret);
    NewApiKey {
        token: format!("sp_{id}_{secret}"),
        record: ApiKeyRecord {
            secret_hash: hash(&secret),
            id,
            role,
            name: name.to_owned(),
            last_used_at: None,
        },
    }
}

fn hash(secret: &str) -> Vec<u8> {
    digest::digest(&digest::SHA256, secret.as_bytes())
        .as_ref()
        .to_vec()
}

/// The caller of an API request, authenticated by its key.
#[derive(Debug, Clone)]
pub struct Caller {
    pub key_id: String,
    pub role: Role,
    /// The key's name, for the audit log.
    pub key_name: String,
    /// Where the request came from, when the listener says.
    pub client_ip: Option<std::net::IpAddr>,
}

impl Caller {
    /// Who this caller is in the audit log.
    pub fn actor(&self) -> sealpost_store::audit::Actor {
        sealpost_store::audit::Actor::api_key(&self.key_id, &self.key_name, self.client_ip)
    }

    /// Refuses callers that are not super administrators.
    ///
    /// # Errors
    /// [`Forbidden`] for any other role.
    pub fn require_super_admin(&self) -> Result<(), Forbidden> {
        if self.role == Role::SuperAdmin {
            Ok(())
        } else {
            Err(Forbidden(format!(
                "role {} may not manage API keys",
                self.role.as_str()
            )))
        }
    }

    /// Refuses callers whose role may not recall messages or extend them.
    ///
    /// # Errors
    /// [`Forbidden`] for a role without that right.
    pub fn require_message_edit(&self) -> Result<(), Forbidden> {
        if self.role.may_manage_messages() {
            Ok(())
        } else {
            Err(Forbidden(format!(
                "role {} may not recall messages or change their expiry",
                self.role.as_str()
            )))
        }
    }

    /// Refuses callers whose role may not retry, bounce or delete queued
    /// recipients (the roles that manage messages may).
    ///
    /// # Errors
    /// [`Forbidden`] for a role without that right.
    pub fn require_queue_action(&self) -> Result<(), Forbidden> {
        if self.role.may_manage_messages() {
            Ok(())
        } else {
            Err(Forbidden(format!(
                "role {} may not retry, bounce or delete queued recipients",
                self.role.as_str()
            )))
        }
    }

    /// Refuses callers who may not read the audit log (super admins and
    /// read-only auditors may).
    ///
    /// # Errors
    /// [`Forbidden`] for a role without that right.
    pub fn require_audit_read(&self) -> Result<(), Forbidden> {
        if matches!(self.role, Role::SuperAdmin | Role::ReadOnly) {
            Ok(())
        } else {
            Err(Forbidden(format!(
                "role {} may not read the audit log",
                self.role.as_str()
            )))
        }
    }

    /// Refuses callers whose role may not change the policy configuration.
    ///
    /// # Errors
    /// [`Forbidden`] for a role without that right.
    pub fn require_policy_edit(&self) -> Result<(), Forbidden> {
        if self.role.may_edit_policy() {
            Ok(())
        } else {
            Err(Forbidden(format!(
                "role {} may not change the policy configuration",
                self.role.as_str()
            )))
        }
    }
}

/// An authenticated caller whose role does not allow the request; the
/// text says which right is missing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forbidden(pub String);

/// Why a request's API key was not accepted.
#[derive(Debug)]
pub enum KeyRefused {
    /// No `Authorization` header.
    Missing,
    /// An `Authorization` header that is not `Bearer <token>`.
    NotBearer,
    /// A bearer token that is not `sp_<id>_<secret>`.
    Malformed,
    /// No such key, or a wrong secret (the same answer for both).
    Unknown,
    /// The store could not be asked.
    Store(StoreError),
}

impl KeyRefused {
    /// The text a client is shown (never for [`KeyRefused::Store`], whose
    /// cause goes to the log).
    pub fn message(&self) -> &'static str {
        match self {
            KeyRefused::Missing => "missing Authorization: Bearer <api key>",
            KeyRefused::NotBearer => "expected Authorization: Bearer <api key>",
            KeyRefused::Malformed => "malformed API key",
            KeyRefused::Unknown | KeyRefused::Store(_) => "unknown API key",
        }
    }
}

/// Authenticates a request by its `Authorization` header against the keys
/// in `admin`.
///
/// # Errors
/// [`KeyRefused`] saying what was wrong with the header or the key.
pub async fn authenticate(
    admin: &Arc<dyn AdminStore>,
    authorization: Option<&HeaderValue>,
) -> Result<Caller, KeyRefused> {
    let header = authorization.ok_or(KeyRefused::Missing)?;
    let token = header
        .to_str()
        .ok()
        .and_then(|h| h.strip_prefix("Bearer "))
        .ok_or(KeyRefused::NotBearer)?
        .trim();
    let (id, secret) = token
        .strip_prefix("sp_")
        .and_then(|rest| rest.split_once('_'))
        .ok_or(KeyRefused::Malformed)?;
    let record = admin
        .api_key(id)
        .await
        .map_err(KeyRefused::Store)?
        .ok_or(KeyRefused::Unknown)?;
    // Comparing digests of a 256-bit secret: how long the comparison
    // takes tells an attacker nothing about the secret itself.
    if hash(secret) != record.secret_hash {
        return Err(KeyRefused::Unknown);
    }
    // Note the use, at most once a minute per key, off the request's
    // path: the write must never slow or fail the request.
    let now = std::time::SystemTime::now();
    let stale = record.last_used_at.is_none_or(|t| {
        now.duration_since(t)
            .is_ok_and(|d| d >= std::time::Duration::from_secs(60))
    });
    if stale {
        let admin = admin.clone();
        let id = record.id.clone();
        tokio::spawn(async move {
            if let Err(e) = admin.touch_api_key(&id, now).await {
                tracing::warn!(key = %id, error = %e, "could not record API key use");
            }
        });
    }
    Ok(Caller {
        key_id: record.id,
        role: record.role,
        key_name: record.name,
        client_ip: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_random_and_only_their_hash_is_kept() {
        let a = generate_api_key(Role::ReadOnly, "ci");
        let b = generate_api_key(Role::ReadOnly, "ci");
        assert_ne!(a.token, b.token);
        assert!(a.token.starts_with(&format!("sp_{}_", a.record.id)));
        let secret = a.token.rsplit('_').next().unwrap();
        assert_eq!(secret.len(), 64);
        assert_eq!(a.record.secret_hash, hash(secret));
        assert!(
            !a.record
                .secret_hash
                .windows(8)
                .any(|w| secret.as_bytes().windows(8).any(|s| s == w))
        );
    }
}
