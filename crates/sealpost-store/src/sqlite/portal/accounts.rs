//! Accounts and their sign-in failure counters, sessions, and one-time
//! links (password reset, fresh registration).

use std::time::{Duration, SystemTime};

use rusqlite::{Connection, OptionalExtension, params};

use sealpost_vault::TokenHash;

use super::{
    millis_before, queue_id,
    sessions::{self, Realm},
};
use crate::{
    StoreError,
    model::{from_millis, to_millis},
    portal::{
        Account, AccountKey, LinkPurpose, NewLink, OneTimeLink, PasswordHash, Purged, Registration,
        RegistrationLink, RegistrationProof, SessionHash, SessionLimits,
    },
};

fn account_exists(conn: &Connection, key: &str) -> Result<bool, StoreError> {
    Ok(conn
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM portal_accounts WHERE key = ?1)")?
        .query_row([key], |row| row.get(0))?)
}

pub(super) fn registration_link(
    conn: &Connection,
    token: &TokenHash,
) -> Result<Option<RegistrationLink>, StoreError> {
    conn.prepare_cached(
        "SELECT s.message_id, s.idx, s.match_key, s.registered_at, m.received_at,
                EXISTS (SELECT 1 FROM portal_accounts a WHERE a.key = s.match_key)
         FROM secure_recipients s JOIN messages m ON m.id = s.message_id
         WHERE s.token_hash = ?1",
    )?
    .query_row([token.0.as_slice()], |row| {
        Ok((
            row.get::<_, String>(0)?,
            row.get(1)?,
            row.get(2)?,
            row.get::<_, Option<i64>>(3)?,
            row.get(4)?,
            row.get(5)?,
        ))
    })
    .optional()?
    .map(|(message, idx, key, registered, issued, exists)| {
        Ok(RegistrationLink {
            account: AccountKey::stored(key),
            message: queue_id(&message)?,
            idx,
            issued_at: from_millis(issued),
            registered_at: registered.map(from_millis),
            account_exists: exists,
        })
    })
    .transpose()
}

pub(super) fn register(
    conn: &Connection,
    proof: &RegistrationProof,
    password: &PasswordHash,
    link_ttl: Duration,
    now: SystemTime,
) -> Result<Registration, StoreError> {
    let at = to_millis(now);
    let key = match proof {
        RegistrationProof::PortalToken(token) => {
            let Some((key, registered, received)) = conn
                .prepare_cached(
                    "SELECT s.match_key, s.registered_at, m.received_at
                     FROM secure_recipients s JOIN messages m ON m.id = s.message_id
                     WHERE s.token_hash = ?1",
                )?
                .query_row([token.0.as_slice()], |row| {
                    Ok((
                        row.get::<_, String>(0)?,
                        row.get::<_, Option<i64>>(1)?,
                        row.get::<_, i64>(2)?,
                    ))
                })
                .optional()?
            else {
                return Ok(Registration::UnknownLink);
            };
            if registered.is_some() {
                return Ok(Registration::Used);
            }
            if received <= millis_before(now, link_ttl) {
                return Ok(Registration::Expired);
            }
            if account_exists(conn, &key)? {
                return Ok(Registration::AccountExists);
            }
            // The token's own secure recipient is the message the address
            // must have had: no further check needed.
            conn.prepare_cached(
                "UPDATE secure_recipients SET registered_at = ?2 WHERE token_hash = ?1",
            )?
            .execute(params![token.0.as_slice(), at])?;
            key
        }
        RegistrationProof::Link(token) => {
            let Some((key, expires, used)) = conn
                .prepare_cached(
                    "SELECT match_key, expires_at, used_at FROM portal_links
                     WHERE token_hash = ?1 AND purpose = 'register'",
                )?
                .query_row([token.0.as_slice()], |row| {
                    Ok((
                        row.get::<_, String>(0)?,
                        row.get::<_, i64>(1)?,
                        row.get::<_, Option<i64>>(2)?,
                    ))
                })
                .optional()?
            else {
                return Ok(Registration::UnknownLink);
            };
            if used.is_some() {
                return Ok(Registration::Used);
            }
            if expires <= at {
                return Ok(Registration::Expired);
            }
            if account_exists(conn, &key)? {
                return Ok(Registration::AccountExists);
            }
            let has_message: bool = conn
                .prepare_cached(
                    "SELECT EXISTS (SELECT 1 FROM secure_recipients WHERE match_key = ?1)",
                )?
                .query_row([&key], |row| row.get(0))?;
            if !has_message {
                return Ok(Registration::NoMessage);
            }
            conn.prepare_cached("UPDATE portal_links SET used_at = ?2 WHERE token_hash = ?1")?
                .execute(params![token.0.as_slice(), at])?;
            key
        }
    };
    conn.prepare_cached(
        "INSERT INTO portal_accounts (key, password_hash, created_at, password_changed_at)
         VALUES (?1, ?2, ?3, ?3)",
    )?
    .execute(params![key, password.as_str(), at])?;
    Ok(Registration::Created(Account {
        key: AccountKey::stored(key),
        password_hash: password.clone(),
        created_at: from_millis(at),
        password_changed_at: from_millis(at),
        failed_sign_ins: 0,
        last_failure_at: None,
    }))
}

pub(super) fn account(conn: &Connection, key: &AccountKey) -> Result<Option<Account>, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT password_hash, created_at, password_changed_at, failed_sign_ins,
                    last_failure_at
             FROM portal_accounts WHERE key = ?1",
        )?
        .query_row([key.as_str()], |row| {
            Ok(Account {
                key: key.clone(),
                password_hash: PasswordHash::new(row.get(0)?),
                created_at: from_millis(row.get(1)?),
                password_changed_at: from_millis(row.get(2)?),
                failed_sign_ins: row.get(3)?,
                last_failure_at: row.get::<_, Option<i64>>(4)?.map(from_millis),
            })
        })
        .optional()?)
}

/// Whether the address may be sent a link of this purpose now.
fn link_allowed(
    conn: &Connection,
    purpose: LinkPurpose,
    key: &str,
    now: i64,
) -> Result<bool, StoreError> {
    let exists = account_exists(conn, key)?;
    Ok(match purpose {
        LinkPurpose::Reset => exists,
        LinkPurpose::Register => {
            !exists
                && conn
                    .prepare_cached(
                        "SELECT EXISTS (SELECT 1 FROM secure_recipients
                         WHERE match_key = ?1 AND ended_at IS NULL AND expires_at > ?2)",
                    )?
                    .query_row(params![key, now], |row| row.get(0))?
        }
    })
}

pub(super) fn create_link(
    conn: &Connection,
    link: &NewLink,
    now: SystemTime,
) -> Result<bool, StoreError> {
    let now = to_millis(now);
    if !link_allowed(conn, link.purpose, link.account.as_str(), now)? {
        return Ok(false);
    }
    conn.prepare_cached(
        "INSERT INTO portal_links (token_hash, purpose, match_key, created_at, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![
        link.token.0.as_slice(),
        link.purpose.as_str(),
        link.account.as_str(),
        now,
        to_millis(link.expires_at),
    ])?;
    Ok(true)
}

pub(super) fn link(
    conn: &Connection,
    token: &TokenHash,
    now: SystemTime,
) -> Result<Option<OneTimeLink>, StoreError> {
    let row = conn
        .prepare_cached(
            "SELECT purpose, match_key, created_at, expires_at FROM portal_links
             WHERE token_hash = ?1 AND used_at IS NULL AND expires_at > ?2",
        )?
        .query_row(params![token.0.as_slice(), to_millis(now)], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get(1)?,
                row.get(2)?,
                row.get(3)?,
            ))
        })
        .optional()?;
    row.map(|(purpose, key, created, expires)| {
        Ok(OneTimeLink {
            purpose: LinkPurpose::parse(&purpose)
                .ok_or_else(|| StoreError::Corrupt(format!("link purpose {purpose:?}")))?,
            account: AccountKey::stored(key),
            created_at: from_millis(created),
            expires_at: from_millis(expires),
        })
    })
    .transpose()
}

/// Uses a link: the one statement both reads and marks it, so two
/// requests racing with one link cannot both get its address.
pub(super) fn consume_link(
    conn: &Connection,
    token: &TokenHash,
    purpose: LinkPurpose,
    now: SystemTime,
) -> Result<Option<AccountKey>, StoreError> {
    Ok(conn
        .prepare_cached(
            "UPDATE portal_links SET used_at = ?3
             WHERE token_hash = ?1 AND purpose = ?2 AND used_at IS NULL AND expires_at > ?3
             RETURNING match_key",
        )?
        .query_row(
            params![token.0.as_slice(), purpose.as_str(), to_millis(now)],
            |row| row.get(0),
        )
        .optional()?
        .map(AccountKey::stored))
}

pub(super) fn reset_password(
    conn: &Connection,
    token: &TokenHash,
    password: &PasswordHash,
    now: SystemTime,
) -> Result<Option<AccountKey>, StoreError> {
    let Some(key) = consume_link(conn, token, LinkPurpose::Reset, now)? else {
        return Ok(None);
    };
    let changed = conn
        .prepare_cached(
            "UPDATE portal_accounts SET password_hash = ?2, password_changed_at = ?3,
                 failed_sign_ins = 0, last_failure_at = NULL
             WHERE key = ?1",
        )?
        .execute(params![key.as_str(), password.as_str(), to_millis(now)])?;
    if changed == 0 {
        return Ok(None);
    }
    end_sessions(conn, &key, None)?;
    Ok(Some(key))
}

pub(super) fn end_sessions(
    conn: &Connection,
    key: &AccountKey,
    keep: Option<&SessionHash>,
) -> Result<usize, StoreError> {
    sessions::end_all(conn, Realm::Portal, key.as_str(), keep)
}

pub(super) fn purge_expired(
    conn: &Connection,
    limits: SessionLimits,
    now: SystemTime,
) -> Result<Purged, StoreError> {
    let sessions = sessions::purge(conn, Realm::Portal, limits, now)?;
    let links = conn
        .prepare_cached("DELETE FROM portal_links WHERE expires_at <= ?1 OR used_at IS NOT NULL")?
        .execute([to_millis(now)])?;
    Ok(Purged { sessions, links })
}
