//! The SQL of [`crate::smtp_accounts`]: each write and its audit entry are
//! one job of the writer.

use std::time::SystemTime;

use rusqlite::{Connection, Row, params};

use super::{SqliteStore, audit};
use crate::{
    StoreError,
    audit::{Actor, Change},
    model::{from_millis, to_millis},
    portal::PasswordHash,
    smtp_accounts::{NewSmtpAccount, SmtpAccount, SmtpAccountName, SmtpAccountStore},
};

const COLUMNS: &str =
    "name, senders, rate_per_hour, created_at, password_changed_at, last_used_at, password_hash";

fn account(row: &Row<'_>) -> Result<(SmtpAccount, PasswordHash), StoreError> {
    let senders: String = row.get(1)?;
    Ok((
        SmtpAccount {
            name: SmtpAccountName::stored(row.get(0)?),
            senders: serde_json::from_str(&senders)
                .map_err(|e| StoreError::Corrupt(format!("smtp account senders: {e}")))?,
            rate_per_hour: row.get(2)?,
            created_at: from_millis(row.get(3)?),
            password_changed_at: from_millis(row.get(4)?),
            last_used_at: row.get::<_, Option<i64>>(5)?.map(from_millis),
        },
        PasswordHash::new(row.get(6)?),
    ))
}

fn find(
    conn: &Connection,
    name: &SmtpAccountName,
) -> Result<Option<(SmtpAccount, PasswordHash)>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM smtp_accounts WHERE name = ?1"
    ))?;
    let mut rows = stmt.query([name.as_str()])?;
    rows.next()?.map(account).transpose()
}

/// The audit document of an account: never its hash.
fn audit_doc(a: &SmtpAccount) -> serde_json::Value {
    serde_json::json!({
        "name": a.name,
        "senders": a.senders,
        "rate_per_hour": a.rate_per_hour,
        "password_changed_at": crate::rfc3339(a.password_changed_at),
    })
}

/// Runs `change` on the account `name` and records it with the account
/// before and after; the change says whether anything changed.
fn audited(
    conn: &Connection,
    actor: &Actor,
    action: &str,
    name: &SmtpAccountName,
    change: impl FnOnce(&Connection) -> Result<bool, StoreError>,
) -> Result<bool, StoreError> {
    let before = find(conn, name)?.map(|(a, _)| a);
    if !change(conn)? {
        return Ok(false);
    }
    let after = find(conn, name)?.map(|(a, _)| a);
    let entry = Change::new(
        action,
        "smtp_account",
        Some(name.to_string()),
        before.as_ref().map(audit_doc),
        after.as_ref().map(audit_doc),
    );
    audit::record(conn, actor, SystemTime::now(), &entry)?;
    Ok(true)
}

fn senders_json(senders: &[String]) -> Result<String, StoreError> {
    serde_json::to_string(senders).map_err(|e| StoreError::Corrupt(e.to_string()))
}

#[async_trait::async_trait]
impl SmtpAccountStore for SqliteStore {
    async fn create_smtp_account(
        &self,
        a: NewSmtpAccount,
        actor: Actor,
    ) -> Result<bool, StoreError> {
        let senders = senders_json(&a.senders)?;
        self.writer
            .write(true, move |conn, _| {
                audited(conn, &actor, "create", &a.name, |conn| {
                    let now = to_millis(a.now);
                    Ok(conn
                        .prepare_cached(
                            "INSERT INTO smtp_accounts (name, password_hash, senders, rate_per_hour,
                                 created_at, password_changed_at)
                             VALUES (?1, ?2, ?3, ?4, ?5, ?5) ON CONFLICT (name) DO NOTHING",
                        )?
                        .execute(params![
                            a.name.as_str(),
                            a.password.as_str(),
                            senders,
                            a.rate_per_hour,
                            now
                        ])?
                        > 0)
                })
            })
            .await
    }

    async fn smtp_accounts(&self) -> Result<Vec<SmtpAccount>, StoreError> {
        self.readers
            .read(|conn| {
                let mut stmt = conn.prepare_cached(&format!(
                    "SELECT {COLUMNS} FROM smtp_accounts ORDER BY name"
                ))?;
                let mut rows = stmt.query([])?;
                let mut all = Vec::new();
                while let Some(row) = rows.next()? {
                    all.push(account(row)?.0);
                }
                Ok(all)
            })
            .await
    }

    async fn smtp_account(
        &self,
        name: &SmtpAccountName,
    ) -> Result<Option<(SmtpAccount, PasswordHash)>, StoreError> {
        let name = name.clone();
        self.readers.read_point(move |conn| find(conn, &name)).await
    }

    async fn update_smtp_account(
        &self,
        name: &SmtpAccountName,
        senders: Vec<String>,
        rate_per_hour: u32,
        actor: Actor,
    ) -> Result<bool, StoreError> {
        let name = name.clone();
        let senders = senders_json(&senders)?;
        self.writer
            .write(true, move |conn, _| {
                audited(conn, &actor, "update", &name, |conn| {
                    Ok(conn
                        .prepare_cached(
                            "UPDATE smtp_accounts SET senders = ?2, rate_per_hour = ?3 WHERE name = ?1",
                        )?
                        .execute(params![name.as_str(), senders, rate_per_hour])?
                        > 0)
                })
            })
            .await
    }

    async fn set_smtp_password(
        &self,
        name: &SmtpAccountName,
        password: PasswordHash,
        now: SystemTime,
        actor: Actor,
    ) -> Result<bool, StoreError> {
        let name = name.clone();
        self.writer
            .write(true, move |conn, _| {
                audited(conn, &actor, "reset_password", &name, |conn| {
                    Ok(conn
                        .prepare_cached(
                            "UPDATE smtp_accounts SET password_hash = ?2, password_changed_at = ?3
                             WHERE name = ?1",
                        )?
                        .execute(params![name.as_str(), password.as_str(), to_millis(now)])?
                        > 0)
                })
            })
            .await
    }

    async fn remove_smtp_account(
        &self,
        name: &SmtpAccountName,
        actor: Actor,
    ) -> Result<bool, StoreError> {
        let name = name.clone();
        self.writer
            .write(true, move |conn, _| {
                audited(conn, &actor, "delete", &name, |conn| {
                    Ok(conn
                        .prepare_cached("DELETE FROM smtp_accounts WHERE name = ?1")?
                        .execute([name.as_str()])?
                        > 0)
                })
            })
            .await
    }

    async fn touch_smtp_account(
        &self,
        name: &SmtpAccountName,
        at: SystemTime,
    ) -> Result<(), StoreError> {
        let name = name.clone();
        // To the minute: a busy account writes once a minute, not per AUTH.
        let minute = to_millis(at) / 60_000 * 60_000;
        self.writer
            .write(false, move |conn, _| {
                conn.prepare_cached(
                    "UPDATE smtp_accounts SET last_used_at = ?2
                     WHERE name = ?1 AND (last_used_at IS NULL OR last_used_at < ?2)",
                )?
                .execute(params![name.as_str(), minute])?;
                Ok(())
            })
            .await
    }
}
