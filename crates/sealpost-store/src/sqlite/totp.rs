//! The SQL of administrators' two-step sign-in ([`crate::console::totp`]):
//! the sealed secret, recovery code hashes, the replay guard and pending
//! sign-ins.
//!
//! The secret is sealed with the store's vault like message content (the
//! same format, so `keys rotate` re-wraps it, see [`rewrap_all`]), bound
//! to the administrator's name: a sealed secret copied to another row does
//! not open. It is sealed and opened outside the writer's transaction.

use std::time::SystemTime;

use rusqlite::{Connection, OptionalExtension, params};
use sealpost_vault::{Vault, WrappedKey};

use super::{audit, console};
use crate::{
    StoreError,
    audit::{Actor, Change},
    console::{
        AdminName, AdminTotp, PENDING_ATTEMPTS, PENDING_SIGN_IN_FOR, PendingSignIn,
        RecoveryCodeHash, TotpSecret,
    },
    model::{from_millis, to_millis},
    portal::SessionHash,
};

use super::portal::millis_before;

/// What the vault's seal binds the secret to.
fn context(name: &AdminName) -> Vec<u8> {
    let mut context = b"sealpost admin totp\0".to_vec();
    context.extend_from_slice(name.as_str().as_bytes());
    context
}

/// A secret sealed for one administrator.
pub(super) struct Sealed {
    key: WrappedKey,
    bytes: Vec<u8>,
}

pub(super) fn seal(vault: &Vault, name: &AdminName, secret: &TotpSecret) -> Sealed {
    let (key, bytes) = vault.seal(&context(name), secret.expose().to_vec());
    Sealed { key, bytes }
}

/// A row of `admin_totp`, the secret still sealed.
pub(super) struct Row {
    sealed: Sealed,
    pub(super) enabled: bool,
    created_at: SystemTime,
    enabled_at: Option<SystemTime>,
    last_step: Option<u64>,
    recovery_codes_left: u32,
}

impl Row {
    /// Opens the secret.
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] when it does not open (a missing master key
    /// version, tampering): the administrator cannot pass the second step
    /// until a super admin resets it.
    pub(super) fn open(self, vault: &Vault, name: &AdminName) -> Result<AdminTotp, StoreError> {
        let secret = vault
            .open(&context(name), &self.sealed.key, self.sealed.bytes)
            .map_err(|e| StoreError::Corrupt(format!("the TOTP secret of {name}: {e}")))?;
        Ok(AdminTotp {
            secret: TotpSecret::new(secret),
            enabled: self.enabled,
            created_at: self.created_at,
            enabled_at: self.enabled_at,
            last_step: self.last_step,
            recovery_codes_left: self.recovery_codes_left,
        })
    }
}

pub(super) fn find(conn: &Connection, name: &AdminName) -> Result<Option<Row>, StoreError> {
    conn.prepare_cached(
        "SELECT key_version, wrapped_key, sealed_secret, enabled, created_at, enabled_at,
                last_step,
                (SELECT COUNT(*) FROM admin_recovery_codes r
                 WHERE r.admin_name = t.admin_name AND r.used_at IS NULL)
         FROM admin_totp t WHERE admin_name = ?1",
    )?
    .query_row([name.as_str()], |row| {
        Ok(Row {
            sealed: Sealed {
                key: WrappedKey {
                    version: row.get::<_, i64>(0)? as u32,
                    bytes: row.get(1)?,
                },
                bytes: row.get(2)?,
            },
            enabled: row.get(3)?,
            created_at: from_millis(row.get(4)?),
            enabled_at: row.get::<_, Option<i64>>(5)?.map(from_millis),
            last_step: row.get::<_, Option<i64>>(6)?.map(|s| s as u64),
            recovery_codes_left: row.get(7)?,
        })
    })
    .optional()
    .map_err(StoreError::from)
}

/// Stores a new enrolment, replacing one not yet confirmed.
pub(super) fn start(
    conn: &Connection,
    name: &AdminName,
    sealed: &Sealed,
    now: SystemTime,
) -> Result<Result<bool, StoreError>, StoreError> {
    if console::find(conn, name)?.is_none() {
        return Ok(Ok(false));
    }
    if find(conn, name)?.is_some_and(|t| t.enabled) {
        return Ok(Err(StoreError::Refused(format!(
            "two-step sign-in is already on for {name}; turn it off first"
        ))));
    }
    conn.prepare_cached(
        "INSERT OR REPLACE INTO admin_totp
             (admin_name, enabled, key_version, wrapped_key, sealed_secret, created_at)
         VALUES (?1, 0, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![
        name.as_str(),
        sealed.key.version,
        sealed.key.bytes,
        sealed.bytes,
        to_millis(now)
    ])?;
    Ok(Ok(true))
}

/// Turns an enrolment on with its recovery codes.
pub(super) fn enable(
    conn: &Connection,
    name: &AdminName,
    step: u64,
    recovery: &[RecoveryCodeHash],
    now: SystemTime,
) -> Result<bool, StoreError> {
    let enabled = conn
        .prepare_cached(
            "UPDATE admin_totp SET enabled = 1, enabled_at = ?2, last_step = ?3
             WHERE admin_name = ?1 AND enabled = 0",
        )?
        .execute(params![name.as_str(), to_millis(now), step as i64])?
        > 0;
    if enabled {
        replace_recovery_codes(conn, name, recovery)?;
    }
    Ok(enabled)
}

fn replace_recovery_codes(
    conn: &Connection,
    name: &AdminName,
    recovery: &[RecoveryCodeHash],
) -> Result<(), StoreError> {
    conn.prepare_cached("DELETE FROM admin_recovery_codes WHERE admin_name = ?1")?
        .execute([name.as_str()])?;
    let mut insert = conn.prepare_cached(
        "INSERT OR IGNORE INTO admin_recovery_codes (admin_name, code_hash) VALUES (?1, ?2)",
    )?;
    for code in recovery {
        insert.execute(params![name.as_str(), code.0.as_slice()])?;
    }
    Ok(())
}

pub(super) fn accept_step(
    conn: &Connection,
    name: &AdminName,
    step: u64,
) -> Result<bool, StoreError> {
    Ok(conn
        .prepare_cached(
            "UPDATE admin_totp SET last_step = ?2
             WHERE admin_name = ?1 AND enabled = 1 AND (last_step IS NULL OR last_step < ?2)",
        )?
        .execute(params![name.as_str(), step as i64])?
        > 0)
}

pub(super) fn use_recovery_code(
    conn: &Connection,
    name: &AdminName,
    code: &RecoveryCodeHash,
    now: SystemTime,
) -> Result<bool, StoreError> {
    Ok(conn
        .prepare_cached(
            "UPDATE admin_recovery_codes SET used_at = ?3
             WHERE admin_name = ?1 AND code_hash = ?2 AND used_at IS NULL
               AND EXISTS (SELECT 1 FROM admin_totp t
                           WHERE t.admin_name = ?1 AND t.enabled = 1)",
        )?
        .execute(params![name.as_str(), code.0.as_slice(), to_millis(now)])?
        > 0)
}

/// Removes the TOTP of `name` (its recovery codes go with it).
pub(super) fn remove(conn: &Connection, name: &AdminName) -> Result<bool, StoreError> {
    Ok(conn
        .prepare_cached("DELETE FROM admin_totp WHERE admin_name = ?1")?
        .execute([name.as_str()])?
        > 0)
}

/// What the audit log shows of an administrator's TOTP: whether it is on
/// and how many recovery codes are left, never the secret or the codes.
pub(super) fn audit_doc(
    conn: &Connection,
    name: &AdminName,
) -> Result<Option<serde_json::Value>, StoreError> {
    let Some(admin) = console::find(conn, name)? else {
        return Ok(None);
    };
    let row = find(conn, name)?;
    Ok(Some(serde_json::json!({
        "name": admin.name.as_str(),
        "totp": row.as_ref().is_some_and(|t| t.enabled),
        "recovery_codes_left": row.filter(|t| t.enabled).map_or(0, |t| t.recovery_codes_left),
    })))
}

pub(super) fn record(
    conn: &Connection,
    actor: &Actor,
    action: &str,
    name: &AdminName,
    before: Option<serde_json::Value>,
) -> Result<(), StoreError> {
    let after = audit_doc(conn, name)?;
    let entry = Change::new(
        action,
        "administrator",
        Some(name.to_string()),
        before,
        after,
    );
    audit::record(conn, actor, SystemTime::now(), &entry)
}

pub(super) fn create_pending(
    conn: &Connection,
    id: &SessionHash,
    name: &AdminName,
    now: SystemTime,
) -> Result<(), StoreError> {
    // Abandoned ones go here, so the table stays as small as the sign-ins
    // of the last five minutes.
    purge_pending(conn, now)?;
    conn.prepare_cached(
        "INSERT INTO admin_pending_sign_ins (id_hash, admin_name, created_at) VALUES (?1, ?2, ?3)",
    )?
    .execute(params![id.0.as_slice(), name.as_str(), to_millis(now)])?;
    Ok(())
}

pub(super) fn find_pending(
    conn: &Connection,
    id: &SessionHash,
    now: SystemTime,
) -> Result<Option<PendingSignIn>, StoreError> {
    conn.prepare_cached(
        "SELECT admin_name, created_at, attempts FROM admin_pending_sign_ins
         WHERE id_hash = ?1 AND created_at > ?2 AND attempts < ?3",
    )?
    .query_row(
        params![
            id.0.as_slice(),
            millis_before(now, PENDING_SIGN_IN_FOR),
            PENDING_ATTEMPTS
        ],
        |row| {
            Ok(PendingSignIn {
                name: AdminName::stored(row.get(0)?),
                created_at: from_millis(row.get(1)?),
                attempts: row.get(2)?,
            })
        },
    )
    .optional()
    .map_err(StoreError::from)
}

pub(super) fn fail_pending(conn: &Connection, id: &SessionHash) -> Result<u32, StoreError> {
    Ok(conn
        .prepare_cached(
            "UPDATE admin_pending_sign_ins SET attempts = attempts + 1 WHERE id_hash = ?1
             RETURNING attempts",
        )?
        .query_row([id.0.as_slice()], |row| row.get(0))
        .optional()?
        .unwrap_or(PENDING_ATTEMPTS))
}

pub(super) fn end_pending(conn: &Connection, id: &SessionHash) -> Result<bool, StoreError> {
    Ok(conn
        .prepare_cached("DELETE FROM admin_pending_sign_ins WHERE id_hash = ?1")?
        .execute([id.0.as_slice()])?
        > 0)
}

pub(super) fn purge_pending(conn: &Connection, now: SystemTime) -> Result<usize, StoreError> {
    Ok(conn
        .prepare_cached("DELETE FROM admin_pending_sign_ins WHERE created_at <= ?1")?
        .execute([millis_before(now, PENDING_SIGN_IN_FOR)])?)
}

/// Re-wraps every TOTP secret's key to the vault's current master key
/// version (a handful of rows: all at once). Returns how many, and the
/// names whose secret did not open.
pub(super) fn rewrap_all(
    conn: &Connection,
    vault: &Vault,
) -> Result<(usize, Vec<(String, String)>), StoreError> {
    let current = vault.keyring().current().version();
    let rows: Vec<(String, i64, Vec<u8>)> = conn
        .prepare_cached(
            "SELECT admin_name, key_version, wrapped_key FROM admin_totp WHERE key_version <> ?1",
        )?
        .query_map([current], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?
        .collect::<Result<_, _>>()?;
    let mut done = 0;
    let mut failures = Vec::new();
    for (name, version, bytes) in rows {
        let key = WrappedKey {
            version: version as u32,
            bytes,
        };
        match vault.rewrap(&context(&AdminName::stored(name.clone())), &key) {
            Ok(new) => {
                conn.prepare_cached(
                    "UPDATE admin_totp SET key_version = ?2, wrapped_key = ?3 WHERE admin_name = ?1",
                )?
                .execute(params![name, new.version, new.bytes])?;
                done += 1;
            }
            Err(e) => failures.push((name, e.to_string())),
        }
    }
    Ok((done, failures))
}

/// Master key versions TOTP secrets are sealed with, and how many each.
pub(super) fn key_versions(conn: &Connection) -> Result<Vec<(u32, u64)>, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT key_version, COUNT(*) FROM admin_totp GROUP BY key_version ORDER BY key_version",
        )?
        .query_map([], |row| {
            Ok((row.get::<_, i64>(0)? as u32, row.get::<_, i64>(1)? as u64))
        })?
        .collect::<Result<_, _>>()?)
}
