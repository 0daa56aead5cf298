//! The SQL of the console's administrators ([`ConsoleStore`]); their
//! sessions and failure counters are [`sessions`] in [`Realm::Console`].
//!
//! Each write is one job of the writer, so a check and the change it
//! guards (the last super admin, a name taken) are one transaction.

use std::time::SystemTime;

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::{
    SqliteStore, audit,
    sessions::{self, Realm},
    totp,
};
use crate::{
    Role, StoreError,
    audit::{Actor, Change},
    console::{
        AdminName, AdminSession, AdminTotp, Administrator, ConsoleStore, NewAdminSession,
        NewAdministrator, PendingSignIn, RecoveryCodeHash, TotpOff, TotpSecret,
    },
    model::{from_millis, to_millis},
    portal::{PasswordHash, SessionHash, SessionLimits},
};

const COLUMNS: &str = "name, role, password_hash, must_change_password, created_at,
     password_changed_at, failed_sign_ins, last_failure_at, last_sign_in_at,
     (SELECT enabled FROM admin_totp t WHERE t.admin_name = admin_accounts.name) IS 1";

fn administrator(row: &Row<'_>) -> Result<Administrator, StoreError> {
    let role: String = row.get(1)?;
    Ok(Administrator {
        name: AdminName::stored(row.get(0)?),
        role: Role::parse(&role)
            .ok_or_else(|| StoreError::Corrupt(format!("administrator role {role:?}")))?,
        password: PasswordHash::new(row.get(2)?),
        must_change_password: row.get(3)?,
        created_at: from_millis(row.get(4)?),
        password_changed_at: from_millis(row.get(5)?),
        failed_sign_ins: row.get(6)?,
        last_failure_at: row.get::<_, Option<i64>>(7)?.map(from_millis),
        last_sign_in_at: row.get::<_, Option<i64>>(8)?.map(from_millis),
        totp: row.get(9)?,
    })
}

pub(super) fn find(
    conn: &Connection,
    name: &AdminName,
) -> Result<Option<Administrator>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM admin_accounts WHERE name = ?1"
    ))?;
    let mut rows = stmt.query([name.as_str()])?;
    rows.next()?.map(administrator).transpose()
}

fn create(conn: &Connection, a: &NewAdministrator) -> Result<bool, StoreError> {
    let now = to_millis(a.now);
    Ok(conn
        .prepare_cached(
            "INSERT INTO admin_accounts (name, role, password_hash, must_change_password,
                 created_at, password_changed_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?5) ON CONFLICT (name) DO NOTHING",
        )?
        .execute(params![
            a.name.as_str(),
            a.role.as_str(),
            a.password.as_str(),
            a.must_change_password,
            now
        ])?
        > 0)
}

/// Whether `name` is the only super admin.
fn last_super_admin(conn: &Connection, name: &AdminName) -> Result<bool, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT role = 'super_admin' AND (SELECT COUNT(*) FROM admin_accounts
                                              WHERE role = 'super_admin') = 1
             FROM admin_accounts WHERE name = ?1",
        )?
        .query_row([name.as_str()], |row| row.get(0))
        .optional()?
        .unwrap_or(false))
}

/// An administrator as the audit log shows one (never the hash).
fn audit_doc(a: &Administrator) -> serde_json::Value {
    serde_json::json!({
        "name": a.name.as_str(),
        "role": a.role.as_str(),
        "must_change_password": a.must_change_password,
    })
}

fn record(
    conn: &Connection,
    actor: &Actor,
    action: &str,
    name: &AdminName,
    before: Option<&Administrator>,
) -> Result<(), StoreError> {
    let after = find(conn, name)?;
    let entry = Change::new(
        action,
        "administrator",
        Some(name.to_string()),
        before.map(audit_doc),
        after.as_ref().map(audit_doc),
    );
    audit::record(conn, actor, SystemTime::now(), &entry)
}

fn remove(conn: &Connection, name: &AdminName) -> Result<Result<bool, StoreError>, StoreError> {
    if last_super_admin(conn, name)? {
        return Ok(Err(StoreError::Refused(format!(
            "{name} is the last super admin; make another administrator super admin first"
        ))));
    }
    Ok(Ok(conn
        .prepare_cached("DELETE FROM admin_accounts WHERE name = ?1")?
        .execute([name.as_str()])?
        > 0))
}

#[async_trait::async_trait]
impl ConsoleStore for SqliteStore {
    async fn create_administrator(
        &self,
        admin: NewAdministrator,
        actor: Actor,
    ) -> Result<bool, StoreError> {
        self.writer
            .write(true, move |conn, _| {
                let created = create(conn, &admin)?;
                if created {
                    record(conn, &actor, "create", &admin.name, None)?;
                }
                Ok(created)
            })
            .await
    }

    async fn administrator(&self, name: &AdminName) -> Result<Option<Administrator>, StoreError> {
        let name = name.clone();
        self.readers.read_point(move |conn| find(conn, &name)).await
    }

    async fn administrators(&self) -> Result<Vec<Administrator>, StoreError> {
        self.readers
            .read(|conn| {
                let mut stmt = conn.prepare_cached(&format!(
                    "SELECT {COLUMNS} FROM admin_accounts ORDER BY name"
                ))?;
                let mut rows = stmt.query([])?;
                let mut all = Vec::new();
                while let Some(row) = rows.next()? {
                    all.push(administrator(row)?);
                }
                Ok(all)
            })
            .await
    }

    async fn set_administrator_password(
        &self,
        name: &AdminName,
        password: PasswordHash,
        must_change: bool,
        keep: Option<SessionHash>,
        now: SystemTime,
        actor: Actor,
    ) -> Result<bool, StoreError> {
        let name = name.clone();
        self.writer
            .write(true, move |conn, _| {
                let before = find(conn, &name)?;
                let changed =
                    conn.prepare_cached(
                        "UPDATE admin_accounts SET password_hash = ?2, must_change_password = ?3,
                             password_changed_at = ?4, failed_sign_ins = 0, last_failure_at = NULL
                         WHERE name = ?1",
                    )?
                    .execute(params![
                        name.as_str(),
                        password.as_str(),
                        must_change,
                        to_millis(now)
                    ])? > 0;
                if changed {
                    sessions::end_all(conn, Realm::Console, name.as_str(), keep.as_ref())?;
                    let action = if must_change {
                        "reset_password"
                    } else {
                        "change_password"
                    };
                    record(conn, &actor, action, &name, before.as_ref())?;
                }
                Ok(changed)
            })
            .await
    }

    async fn set_administrator_role(
        &self,
        name: &AdminName,
        role: Role,
        actor: Actor,
    ) -> Result<bool, StoreError> {
        let name = name.clone();
        self.writer
            .write(true, move |conn, _| {
                if role != Role::SuperAdmin && last_super_admin(conn, &name)? {
                    return Ok(Err(StoreError::Refused(format!(
                        "{name} is the last super admin; make another administrator super admin first"
                    ))));
                }
                let before = find(conn, &name)?;
                let changed = conn
                    .prepare_cached("UPDATE admin_accounts SET role = ?2 WHERE name = ?1")?
                    .execute(params![name.as_str(), role.as_str()])?
                    > 0;
                if changed {
                    record(conn, &actor, "set_role", &name, before.as_ref())?;
                }
                Ok(Ok(changed))
            })
            .await?
    }

    async fn remove_administrator(
        &self,
        name: &AdminName,
        actor: Actor,
    ) -> Result<bool, StoreError> {
        let name = name.clone();
        self.writer
            .write(true, move |conn, _| {
                let before = find(conn, &name)?;
                let removed = remove(conn, &name)?;
                if let Ok(true) = removed {
                    record(conn, &actor, "delete", &name, before.as_ref())?;
                }
                Ok(removed)
            })
            .await?
    }

    async fn record_failed_admin_sign_in(
        &self,
        name: &AdminName,
        now: SystemTime,
    ) -> Result<Option<u32>, StoreError> {
        let name = name.clone();
        // Not durable, as for recipients: an fsync per guess would let a
        // brute force load the disk.
        self.writer
            .write(false, move |conn, _| {
                sessions::record_failure(conn, Realm::Console, name.as_str(), now)
            })
            .await
    }

    async fn create_admin_session(&self, s: NewAdminSession) -> Result<(), StoreError> {
        self.writer
            .write(true, move |conn, _| {
                let created = sessions::create(
                    conn,
                    Realm::Console,
                    &sessions::NewRow {
                        id: &s.id,
                        account: s.name.as_str(),
                        csrf: &s.csrf,
                        client_ip: s.client_ip,
                        user_agent: &s.user_agent,
                        now: s.now,
                    },
                )?;
                if !created {
                    return Ok(Err(StoreError::NoSuch(format!("administrator {}", s.name))));
                }
                conn.prepare_cached(
                    "UPDATE admin_accounts SET last_sign_in_at = ?2 WHERE name = ?1",
                )?
                .execute(params![s.name.as_str(), to_millis(s.now)])?;
                Ok(Ok(()))
            })
            .await?
    }

    async fn admin_session(
        &self,
        id: SessionHash,
        limits: SessionLimits,
        now: SystemTime,
    ) -> Result<Option<AdminSession>, StoreError> {
        let row = self
            .readers
            .read_point(move |conn| sessions::find(conn, Realm::Console, &id, limits, now))
            .await?;
        Ok(row.map(|r| AdminSession {
            name: AdminName::stored(r.account),
            csrf: r.csrf,
            client_ip: r.client_ip,
            user_agent: r.user_agent,
            created_at: r.created_at,
            last_seen_at: r.last_seen_at,
        }))
    }

    async fn touch_admin_session(
        &self,
        id: SessionHash,
        limits: SessionLimits,
        now: SystemTime,
    ) -> Result<bool, StoreError> {
        self.writer
            .write(false, move |conn, _| {
                sessions::touch(conn, Realm::Console, &id, limits, now)
            })
            .await
    }

    async fn end_admin_session(&self, id: SessionHash) -> Result<bool, StoreError> {
        self.writer
            .write(true, move |conn, _| {
                sessions::end(conn, Realm::Console, &id)
            })
            .await
    }

    async fn purge_admin_sessions(
        &self,
        limits: SessionLimits,
        now: SystemTime,
    ) -> Result<usize, StoreError> {
        self.writer
            .write(false, move |conn, _| {
                totp::purge_pending(conn, now)?;
                sessions::purge(conn, Realm::Console, limits, now)
            })
            .await
    }

    async fn start_admin_totp(
        &self,
        name: &AdminName,
        secret: TotpSecret,
        now: SystemTime,
    ) -> Result<bool, StoreError> {
        let sealed = totp::seal(&self.vault, name, &secret);
        let name = name.clone();
        self.writer
            .write(true, move |conn, _| totp::start(conn, &name, &sealed, now))
            .await?
    }

    async fn admin_totp(&self, name: &AdminName) -> Result<Option<AdminTotp>, StoreError> {
        let owner = name.clone();
        let Some(row) = self
            .readers
            .read_point(move |conn| totp::find(conn, &owner))
            .await?
        else {
            return Ok(None);
        };
        row.open(&self.vault, name).map(Some)
    }

    async fn enable_admin_totp(
        &self,
        name: &AdminName,
        step: u64,
        recovery: Vec<RecoveryCodeHash>,
        now: SystemTime,
        actor: Actor,
    ) -> Result<bool, StoreError> {
        let name = name.clone();
        self.writer
            .write(true, move |conn, _| {
                let before = totp::audit_doc(conn, &name)?;
                let enabled = totp::enable(conn, &name, step, &recovery, now)?;
                if enabled {
                    totp::record(conn, &actor, "enable_totp", &name, before)?;
                }
                Ok(enabled)
            })
            .await
    }

    async fn accept_admin_totp_step(
        &self,
        name: &AdminName,
        step: u64,
    ) -> Result<bool, StoreError> {
        let name = name.clone();
        self.writer
            .write(true, move |conn, _| totp::accept_step(conn, &name, step))
            .await
    }

    async fn use_admin_recovery_code(
        &self,
        name: &AdminName,
        code: RecoveryCodeHash,
        now: SystemTime,
    ) -> Result<bool, StoreError> {
        let name = name.clone();
        self.writer
            .write(true, move |conn, _| {
                totp::use_recovery_code(conn, &name, &code, now)
            })
            .await
    }

    async fn disable_admin_totp(
        &self,
        name: &AdminName,
        why: TotpOff,
        actor: Actor,
    ) -> Result<bool, StoreError> {
        let name = name.clone();
        self.writer
            .write(true, move |conn, _| {
                let before = totp::audit_doc(conn, &name)?;
                let was_on = totp::find(conn, &name)?.is_some_and(|t| t.enabled);
                let removed = totp::remove(conn, &name)?;
                if was_on {
                    totp::record(conn, &actor, why.action(), &name, before)?;
                }
                Ok(removed)
            })
            .await
    }

    async fn create_admin_pending_sign_in(
        &self,
        id: SessionHash,
        name: &AdminName,
        now: SystemTime,
    ) -> Result<(), StoreError> {
        let name = name.clone();
        self.writer
            .write(true, move |conn, _| {
                totp::create_pending(conn, &id, &name, now)
            })
            .await
    }

    async fn admin_pending_sign_in(
        &self,
        id: SessionHash,
        now: SystemTime,
    ) -> Result<Option<PendingSignIn>, StoreError> {
        self.readers
            .read_point(move |conn| totp::find_pending(conn, &id, now))
            .await
    }

    async fn fail_admin_pending_sign_in(&self, id: SessionHash) -> Result<u32, StoreError> {
        self.writer
            .write(false, move |conn, _| totp::fail_pending(conn, &id))
            .await
    }

    async fn end_admin_pending_sign_in(&self, id: SessionHash) -> Result<bool, StoreError> {
        self.writer
            .write(true, move |conn, _| totp::end_pending(conn, &id))
            .await
    }
}
