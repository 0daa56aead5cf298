//! The SQL of the policy configuration and API keys.

use rusqlite::{Connection, OptionalExtension, params};
use serde::{Serialize, de::DeserializeOwned};

use sealpost_policy::{
    DefinitionDraft, DefinitionEntry, DefinitionId, DirectoryUser, DomainPattern, GroupEntry,
    GroupId, PolicyDocument, PolicyEntry, PolicyId,
};

use crate::{
    StoreError,
    admin::{ApiKeyInfo, ApiKeyRecord, ConfigChange, Role},
    config_edit::{NextIds, default_definition_kept, duplicate_domain, internal_domain, missing},
    model::{from_millis, to_millis},
};

fn now() -> i64 {
    to_millis(std::time::SystemTime::now())
}

fn to_json<T: Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn from_json<T: DeserializeOwned>(what: &str, text: &str) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("stored {what}: {e}")))
}

/// Creates the default definition if there is none (a new database).
pub(super) fn ensure_default_definition(conn: &Connection) -> Result<(), StoreError> {
    let doc = to_json(&DefinitionDraft::default_definition())?;
    conn.execute(
        "INSERT INTO definitions (is_default, doc, updated_at)
         SELECT 1, ?1, ?2 WHERE NOT EXISTS (SELECT 1 FROM definitions WHERE is_default = 1)",
        params![doc, now()],
    )?;
    Ok(())
}

pub(super) fn load_document(conn: &Connection) -> Result<PolicyDocument, StoreError> {
    let mut doc = PolicyDocument::default();
    let mut stmt = conn.prepare_cached("SELECT pattern FROM internal_domains ORDER BY pattern")?;
    doc.internal_domains = stmt
        .query_map([], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    let mut stmt = conn.prepare_cached("SELECT doc FROM directory_users ORDER BY key")?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        doc.users
            .push(from_json("user", &row.get::<_, String>(0)?)?);
    }
    let mut stmt = conn.prepare_cached("SELECT id, doc FROM profile_groups ORDER BY id")?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        doc.groups.push(GroupEntry {
            id: GroupId(row.get(0)?),
            group: from_json("group", &row.get::<_, String>(1)?)?,
        });
    }
    let mut stmt =
        conn.prepare_cached("SELECT id, is_default, doc FROM definitions ORDER BY id")?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        doc.definitions.push(DefinitionEntry {
            id: DefinitionId(row.get(0)?),
            is_default: row.get(1)?,
            definition: from_json("definition", &row.get::<_, String>(2)?)?,
        });
    }
    let mut stmt = conn.prepare_cached("SELECT id, doc FROM policies ORDER BY id")?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        doc.policies.push(PolicyEntry {
            id: PolicyId(row.get(0)?),
            policy: from_json("policy", &row.get::<_, String>(1)?)?,
        });
    }
    Ok(doc)
}

/// Applies one change; returns the id of a created object.
///
/// A created object gets the id in `next`, the one the change was checked
/// with in memory ([`crate::config_edit::apply`]).
pub(super) fn apply_change(
    conn: &Connection,
    change: &ConfigChange,
    next: NextIds,
) -> Result<Option<i64>, StoreError> {
    let t = now();
    match change {
        ConfigChange::AddInternalDomain(pattern) => {
            let parsed = internal_domain("domain", pattern)?;
            let added = conn.execute(
                "INSERT OR IGNORE INTO internal_domains (pattern, created_at) VALUES (?1, ?2)",
                params![parsed.to_string(), t],
            )?;
            if added == 0 {
                return Err(duplicate_domain(&parsed));
            }
            Ok(None)
        }
        ConfigChange::RemoveInternalDomain(pattern) => {
            let canonical = DomainPattern::parse(pattern)
                .map(|p| p.to_string())
                .unwrap_or_else(|_| pattern.clone());
            match conn.execute(
                "DELETE FROM internal_domains WHERE pattern = ?1",
                [&canonical],
            )? {
                0 => Err(missing("internal domain", pattern)),
                _ => Ok(None),
            }
        }
        ConfigChange::PutUser(draft) => {
            put_user(conn, draft, t)?;
            Ok(None)
        }
        ConfigChange::ImportUsers(drafts) => {
            for (i, draft) in drafts.iter().enumerate() {
                put_user(conn, draft, t).map_err(|e| match e {
                    StoreError::Rejected(invalid) => {
                        StoreError::Rejected(invalid.within(&format!("[{i}]")))
                    }
                    other => other,
                })?;
            }
            Ok(Some(drafts.len() as i64))
        }
        ConfigChange::RemoveUser(address) => {
            let key = sealpost_policy::EmailAddress::parse(address.trim())
                .map(|a| a.match_key())
                .map_err(|_| missing("directory user", address))?;
            match conn.execute("DELETE FROM directory_users WHERE key = ?1", [&key])? {
                0 => Err(missing("directory user", address)),
                _ => Ok(None),
            }
        }
        ConfigChange::CreateGroup(draft) => {
            conn.execute(
                "INSERT INTO profile_groups (id, doc, updated_at) VALUES (?1, ?2, ?3)",
                params![next.group, to_json(draft)?, t],
            )?;
            Ok(Some(conn.last_insert_rowid()))
        }
        ConfigChange::UpdateGroup(id, draft) => {
            update(conn, "profile_groups", "group", id.0, &to_json(draft)?, t)
        }
        ConfigChange::RemoveGroup(id) => remove(conn, "profile_groups", "group", id.0),
        ConfigChange::CreateDefinition(draft) => {
            conn.execute(
                "INSERT INTO definitions (id, is_default, doc, updated_at) VALUES (?1, 0, ?2, ?3)",
                params![next.definition, to_json(draft)?, t],
            )?;
            Ok(Some(conn.last_insert_rowid()))
        }
        ConfigChange::UpdateDefinition(id, draft) => {
            update(conn, "definitions", "definition", id.0, &to_json(draft)?, t)
        }
        ConfigChange::RemoveDefinition(id) => {
            let is_default: Option<bool> = conn
                .query_row(
                    "SELECT is_default FROM definitions WHERE id = ?1",
                    [id.0],
                    |row| row.get(0),
                )
                .optional()?;
            match is_default {
                None => Err(missing("definition", id.0)),
                Some(true) => Err(default_definition_kept()),
                Some(false) => remove(conn, "definitions", "definition", id.0),
            }
        }
        ConfigChange::MakeDefaultDefinition(id) => {
            let exists: Option<i64> = conn
                .query_row("SELECT id FROM definitions WHERE id = ?1", [id.0], |row| {
                    row.get(0)
                })
                .optional()?;
            if exists.is_none() {
                return Err(missing("definition", id.0));
            }
            // Two statements: there is never a moment with two defaults.
            conn.execute(
                "UPDATE definitions SET is_default = 0, updated_at = ?1 WHERE is_default = 1 AND id <> ?2",
                params![t, id.0],
            )?;
            conn.execute(
                "UPDATE definitions SET is_default = 1, updated_at = ?1 WHERE id = ?2",
                params![t, id.0],
            )?;
            Ok(None)
        }
        ConfigChange::CreatePolicy(draft) => {
            conn.execute(
                "INSERT INTO policies (id, doc, created_at, updated_at) VALUES (?1, ?2, ?3, ?3)",
                params![next.policy, to_json(draft)?, t],
            )?;
            Ok(Some(conn.last_insert_rowid()))
        }
        ConfigChange::UpdatePolicy(id, draft) => {
            update(conn, "policies", "policy", id.0, &to_json(draft)?, t)
        }
        ConfigChange::RemovePolicy(id) => remove(conn, "policies", "policy", id.0),
        ConfigChange::Replace(doc) => {
            conn.execute_batch(
                "DELETE FROM internal_domains; DELETE FROM directory_users;
                 DELETE FROM profile_groups; DELETE FROM definitions; DELETE FROM policies;",
            )?;
            for (i, d) in doc.internal_domains.iter().enumerate() {
                // Stored in canonical form, as AddInternalDomain does, so
                // a later DELETE finds it; duplicates collapse.
                let parsed = internal_domain(format!("internal_domains[{i}]"), d)?;
                conn.execute(
                    "INSERT OR IGNORE INTO internal_domains (pattern, created_at) VALUES (?1, ?2)",
                    params![parsed.to_string(), t],
                )?;
            }
            for (i, u) in doc.users.iter().enumerate() {
                put_user(conn, u, t).map_err(|e| match e {
                    StoreError::Rejected(invalid) => {
                        StoreError::Rejected(invalid.within(&format!("users[{i}]")))
                    }
                    other => other,
                })?;
            }
            for g in &doc.groups {
                conn.execute(
                    "INSERT INTO profile_groups (id, doc, updated_at) VALUES (?1, ?2, ?3)",
                    params![g.id.0, to_json(&g.group)?, t],
                )?;
            }
            for d in &doc.definitions {
                conn.execute(
                    "INSERT INTO definitions (id, is_default, doc, updated_at) VALUES (?1, ?2, ?3, ?4)",
                    params![d.id.0, d.is_default, to_json(&d.definition)?, t],
                )?;
            }
            for p in &doc.policies {
                conn.execute(
                    "INSERT INTO policies (id, doc, created_at, updated_at) VALUES (?1, ?2, ?3, ?3)",
                    params![p.id.0, to_json(&p.policy)?, t],
                )?;
            }
            Ok(None)
        }
    }
}

fn put_user(
    conn: &Connection,
    draft: &sealpost_policy::UserDraft,
    t: i64,
) -> Result<(), StoreError> {
    let user = DirectoryUser::from_draft(draft).map_err(StoreError::Rejected)?;
    conn.prepare_cached(
        "INSERT INTO directory_users (key, doc, updated_at) VALUES (?1, ?2, ?3)
         ON CONFLICT (key) DO UPDATE SET doc = excluded.doc, updated_at = excluded.updated_at",
    )?
    .execute(params![
        user.address.match_key(),
        to_json(&user.to_draft())?,
        t
    ])?;
    Ok(())
}

fn update(
    conn: &Connection,
    table: &'static str,
    kind: &str,
    id: i64,
    doc: &str,
    t: i64,
) -> Result<Option<i64>, StoreError> {
    let sql = format!("UPDATE {table} SET doc = ?1, updated_at = ?2 WHERE id = ?3");
    match conn.execute(&sql, params![doc, t, id])? {
        0 => Err(missing(kind, id)),
        _ => Ok(None),
    }
}

fn remove(
    conn: &Connection,
    table: &'static str,
    kind: &str,
    id: i64,
) -> Result<Option<i64>, StoreError> {
    let sql = format!("DELETE FROM {table} WHERE id = ?1");
    match conn.execute(&sql, [id])? {
        0 => Err(missing(kind, id)),
        _ => Ok(None),
    }
}

pub(super) fn insert_api_key(conn: &Connection, key: &ApiKeyRecord) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO api_keys (id, secret_hash, role, name, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![key.id, key.secret_hash, key.role.as_str(), key.name, now()],
    )?;
    Ok(())
}

pub(super) fn api_key(conn: &Connection, id: &str) -> Result<Option<ApiKeyRecord>, StoreError> {
    let row = conn
        .prepare_cached("SELECT secret_hash, role, name, last_used_at FROM api_keys WHERE id = ?1")?
        .query_row([id], |row| {
            Ok((
                row.get::<_, Vec<u8>>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, String>(2)?,
                row.get::<_, Option<i64>>(3)?,
            ))
        })
        .optional()?;
    row.map(|(secret_hash, role, name, last_used)| {
        Ok(ApiKeyRecord {
            id: id.to_owned(),
            secret_hash,
            role: parse_role(&role)?,
            name,
            last_used_at: last_used.map(from_millis),
        })
    })
    .transpose()
}

fn parse_role(role: &str) -> Result<Role, StoreError> {
    Role::parse(role).ok_or_else(|| StoreError::Corrupt(format!("unknown role {role:?}")))
}

pub(super) fn list_api_keys(conn: &Connection) -> Result<Vec<ApiKeyInfo>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, role, name, created_at, last_used_at FROM api_keys ORDER BY created_at, id",
    )?;
    let mut rows = stmt.query([])?;
    let mut keys = Vec::new();
    while let Some(row) = rows.next()? {
        keys.push(ApiKeyInfo {
            id: row.get(0)?,
            role: parse_role(&row.get::<_, String>(1)?)?,
            name: row.get(2)?,
            created_at: from_millis(row.get(3)?),
            last_used_at: row.get::<_, Option<i64>>(4)?.map(from_millis),
        });
    }
    Ok(keys)
}

pub(super) fn revoke_api_key(conn: &Connection, id: &str) -> Result<bool, StoreError> {
    Ok(conn.execute("DELETE FROM api_keys WHERE id = ?1", [id])? > 0)
}

pub(super) fn touch_api_key(conn: &Connection, id: &str, at: i64) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE api_keys SET last_used_at = ?2 WHERE id = ?1",
        params![id, at],
    )?;
    Ok(())
}
