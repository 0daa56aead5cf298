//! The SQL of signed-in sessions and sign-in failure counters, shared by
//! the two kinds of people who sign in: recipients in the portal and
//! administrators in the console. Each [`Realm`] has its own tables (a
//! portal session can never name an administrator), with the same
//! columns; the rules (timeouts, one write a minute, failures cleared by a
//! sign-in) are written once, here.

use std::time::SystemTime;

use rusqlite::{Connection, OptionalExtension, params};

use super::portal::millis_before;
use crate::{
    StoreError,
    model::{from_millis, to_millis},
    portal::{CsrfSecret, MAX_USER_AGENT, SESSION_TOUCHED_EVERY, SessionHash, SessionLimits},
};

/// Who signs in, and so which tables hold their accounts and sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Realm {
    /// Recipients: `portal_accounts` (keyed by match key), `portal_sessions`.
    Portal,
    /// Administrators: `admin_accounts` (keyed by name), `admin_sessions`.
    Console,
}

impl Realm {
    /// (accounts table, its key column, sessions table, its account column)
    fn tables(self) -> (&'static str, &'static str, &'static str, &'static str) {
        match self {
            Realm::Portal => ("portal_accounts", "key", "portal_sessions", "account_key"),
            Realm::Console => ("admin_accounts", "name", "admin_sessions", "admin_name"),
        }
    }
}

/// A session row as stored; each realm turns it into its own type.
#[derive(Debug)]
pub(super) struct SessionRow {
    pub account: String,
    pub csrf: CsrfSecret,
    pub client_ip: String,
    pub user_agent: String,
    pub created_at: SystemTime,
    pub last_seen_at: SystemTime,
}

/// What a new session is made of.
pub(super) struct NewRow<'a> {
    pub id: &'a SessionHash,
    pub account: &'a str,
    pub csrf: &'a CsrfSecret,
    pub client_ip: std::net::IpAddr,
    pub user_agent: &'a str,
    pub now: SystemTime,
}

/// Cuts a user agent to [`MAX_USER_AGENT`] bytes at a character boundary.
fn bounded(user_agent: &str) -> &str {
    let mut end = user_agent.len().min(MAX_USER_AGENT);
    while !user_agent.is_char_boundary(end) {
        end -= 1;
    }
    &user_agent[..end]
}

/// Forgets the account's sign-in failures; false when there is no such
/// account.
pub(super) fn clear_failures(
    conn: &Connection,
    realm: Realm,
    account: &str,
) -> Result<bool, StoreError> {
    let (accounts, key, _, _) = realm.tables();
    Ok(conn
        .prepare_cached(&format!(
            "UPDATE {accounts} SET failed_sign_ins = 0, last_failure_at = NULL WHERE {key} = ?1"
        ))?
        .execute([account])?
        > 0)
}

/// Counts one failed sign-in; the new count, `None` for no such account.
/// One statement reads and bumps it, so failures counted at once by
/// several nodes all count.
pub(super) fn record_failure(
    conn: &Connection,
    realm: Realm,
    account: &str,
    now: SystemTime,
) -> Result<Option<u32>, StoreError> {
    let (accounts, key, _, _) = realm.tables();
    Ok(conn
        .prepare_cached(&format!(
            "UPDATE {accounts}
             SET failed_sign_ins = failed_sign_ins + 1, last_failure_at = ?2
             WHERE {key} = ?1 RETURNING failed_sign_ins"
        ))?
        .query_row(params![account, to_millis(now)], |row| row.get(0))
        .optional()?)
}

/// Makes a session at sign-in, which also clears the failures; false when
/// the account does not exist.
pub(super) fn create(conn: &Connection, realm: Realm, s: &NewRow<'_>) -> Result<bool, StoreError> {
    if !clear_failures(conn, realm, s.account)? {
        return Ok(false);
    }
    let (_, _, sessions, column) = realm.tables();
    conn.prepare_cached(&format!(
        "INSERT INTO {sessions} (id_hash, {column}, csrf_secret, client_ip, user_agent,
             created_at, last_seen_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)"
    ))?
    .execute(params![
        s.id.0.as_slice(),
        s.account,
        s.csrf.0.as_slice(),
        s.client_ip.to_string(),
        bounded(s.user_agent),
        to_millis(s.now),
    ])?;
    Ok(true)
}

/// The session `id` if it is within `limits` at `now`.
pub(super) fn find(
    conn: &Connection,
    realm: Realm,
    id: &SessionHash,
    limits: SessionLimits,
    now: SystemTime,
) -> Result<Option<SessionRow>, StoreError> {
    let (_, _, sessions, column) = realm.tables();
    let row = conn
        .prepare_cached(&format!(
            "SELECT {column}, csrf_secret, client_ip, user_agent, created_at, last_seen_at
             FROM {sessions}
             WHERE id_hash = ?1 AND last_seen_at > ?2 AND created_at > ?3"
        ))?
        .query_row(
            params![
                id.0.as_slice(),
                millis_before(now, limits.idle),
                millis_before(now, limits.absolute)
            ],
            |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, Vec<u8>>(1)?,
                    row.get(2)?,
                    row.get(3)?,
                    row.get(4)?,
                    row.get(5)?,
                ))
            },
        )
        .optional()?;
    row.map(|(account, csrf, client_ip, user_agent, created, seen)| {
        Ok(SessionRow {
            account,
            csrf: CsrfSecret(
                csrf.try_into()
                    .map_err(|_| StoreError::Corrupt("CSRF secret of a session".into()))?,
            ),
            client_ip,
            user_agent,
            created_at: from_millis(created),
            last_seen_at: from_millis(seen),
        })
    })
    .transpose()
}

/// Notes activity on a session still within `limits`, at most once per
/// [`SESSION_TOUCHED_EVERY`]; whether it wrote.
pub(super) fn touch(
    conn: &Connection,
    realm: Realm,
    id: &SessionHash,
    limits: SessionLimits,
    now: SystemTime,
) -> Result<bool, StoreError> {
    let (_, _, sessions, _) = realm.tables();
    Ok(conn
        .prepare_cached(&format!(
            "UPDATE {sessions} SET last_seen_at = ?2
             WHERE id_hash = ?1 AND last_seen_at <= ?3 AND last_seen_at > ?4 AND created_at > ?5"
        ))?
        .execute(params![
            id.0.as_slice(),
            to_millis(now),
            millis_before(now, SESSION_TOUCHED_EVERY),
            millis_before(now, limits.idle),
            millis_before(now, limits.absolute)
        ])?
        > 0)
}

/// Ends one session; false when there was none.
pub(super) fn end(conn: &Connection, realm: Realm, id: &SessionHash) -> Result<bool, StoreError> {
    let (_, _, sessions, _) = realm.tables();
    Ok(conn
        .prepare_cached(&format!("DELETE FROM {sessions} WHERE id_hash = ?1"))?
        .execute([id.0.as_slice()])?
        > 0)
}

/// Ends every session of `account` but `keep`; how many ended.
pub(super) fn end_all(
    conn: &Connection,
    realm: Realm,
    account: &str,
    keep: Option<&SessionHash>,
) -> Result<usize, StoreError> {
    let (_, _, sessions, column) = realm.tables();
    Ok(conn
        .prepare_cached(&format!(
            "DELETE FROM {sessions} WHERE {column} = ?1 AND id_hash IS NOT ?2"
        ))?
        .execute(params![account, keep.map(|k| k.0.to_vec())])?)
}

/// Deletes the sessions past their idle or absolute limit; how many.
pub(super) fn purge(
    conn: &Connection,
    realm: Realm,
    limits: SessionLimits,
    now: SystemTime,
) -> Result<usize, StoreError> {
    let (_, _, sessions, _) = realm.tables();
    Ok(conn
        .prepare_cached(&format!(
            "DELETE FROM {sessions} WHERE last_seen_at <= ?1 OR created_at <= ?2"
        ))?
        .execute(params![
            millis_before(now, limits.idle),
            millis_before(now, limits.absolute)
        ])?)
}
