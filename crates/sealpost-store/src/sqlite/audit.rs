//! The SQL of the audit log: one row per change, written by the change's
//! own writer job, read newest first with filters and keyset paging.

use rusqlite::{Connection, ToSql, params};

use crate::{
    StoreError,
    audit::{Actor, ActorKind, AuditEntry, AuditQuery, Change},
    model::{from_millis, to_millis},
};

/// Largest page of entries.
const MAX_PAGE: usize = 500;

/// Records `change` by `actor` at `at`; call inside the change's
/// transaction.
pub(super) fn record(
    conn: &Connection,
    actor: &Actor,
    at: std::time::SystemTime,
    change: &Change,
) -> Result<(), StoreError> {
    let text = |v: &Option<serde_json::Value>| v.as_ref().map(serde_json::Value::to_string);
    conn.prepare_cached(
        "INSERT INTO audit_log (at, actor_kind, actor, client_ip, action, object_kind,
             object_id, before, after)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?
    .execute(params![
        to_millis(at),
        actor.kind.as_str(),
        actor.name,
        actor.client_ip.map(|ip| ip.to_string()),
        change.action,
        change.object_kind,
        change.object_id,
        text(&change.before),
        text(&change.after),
    ])?;
    Ok(())
}

/// The entries `query` selects, newest first.
pub(super) fn read(conn: &Connection, query: &AuditQuery) -> Result<Vec<AuditEntry>, StoreError> {
    let mut sql = String::from(
        "SELECT id, at, actor_kind, actor, client_ip, action, object_kind, object_id, before, after
         FROM audit_log WHERE 1 = 1",
    );
    let mut args: Vec<Box<dyn ToSql>> = Vec::new();
    let mut arg = |sql: &mut String, fragment: &str, value: Box<dyn ToSql>| {
        args.push(value);
        sql.push_str(&fragment.replace('#', &format!("?{}", args.len())));
    };
    if let Some(t) = query.since {
        arg(&mut sql, " AND at >= #", Box::new(to_millis(t)));
    }
    if let Some(t) = query.until {
        arg(&mut sql, " AND at < #", Box::new(to_millis(t)));
    }
    if let Some(kind) = query.actor_kind {
        arg(&mut sql, " AND actor_kind = #", Box::new(kind.as_str()));
    }
    if let Some(actor) = query.actor.as_deref().filter(|a| !a.is_empty()) {
        arg(
            &mut sql,
            " AND actor LIKE # ESCAPE '\\'",
            Box::new(super::secure::contains_pattern(actor)),
        );
    }
    if let Some(kind) = query.object_kind.as_deref().filter(|k| !k.is_empty()) {
        arg(&mut sql, " AND object_kind = #", Box::new(kind.to_owned()));
    }
    if let Some(id) = query.object_id.as_deref().filter(|i| !i.is_empty()) {
        arg(&mut sql, " AND object_id = #", Box::new(id.to_owned()));
    }
    if let Some(before) = query.before_id {
        arg(&mut sql, " AND id < #", Box::new(before));
    }
    let limit = query.limit.clamp(1, MAX_PAGE) as i64;
    arg(&mut sql, " ORDER BY id DESC LIMIT #", Box::new(limit));
    let mut stmt = conn.prepare_cached(&sql)?;
    let params: Vec<&dyn ToSql> = args.iter().map(AsRef::as_ref).collect();
    let mut rows = stmt.query(params.as_slice())?;
    let mut entries = Vec::new();
    let json = |text: Option<String>| -> Result<Option<serde_json::Value>, StoreError> {
        text.map(|t| {
            serde_json::from_str(&t)
                .map_err(|e| StoreError::Corrupt(format!("audit document: {e}")))
        })
        .transpose()
    };
    while let Some(row) = rows.next()? {
        let kind: String = row.get(2)?;
        let ip: Option<String> = row.get(4)?;
        let action: String = row.get(5)?;
        let object_kind: String = row.get(6)?;
        entries.push(AuditEntry {
            id: row.get(0)?,
            at: from_millis(row.get(1)?),
            actor: Actor {
                kind: ActorKind::parse(&kind)
                    .ok_or_else(|| StoreError::Corrupt(format!("audit actor kind {kind:?}")))?,
                name: row.get(3)?,
                client_ip: ip.and_then(|ip| ip.parse().ok()),
            },
            change: Change {
                action,
                object_kind,
                object_id: row.get(7)?,
                before: json(row.get(8)?)?,
                after: json(row.get(9)?)?,
            },
        });
    }
    Ok(entries)
}
