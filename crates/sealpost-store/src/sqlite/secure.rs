//! The SQL of secure delivery: tracking searches, the lifecycle of secure
//! recipients (expiry, recall, extension), portal tokens, and the master
//! key versions the vault has used.

use std::{
    collections::BTreeSet,
    time::{Duration, SystemTime},
};

use rusqlite::{Connection, OptionalExtension, ToSql, params};

use sealpost_vault::{Keyring, TokenHash, Vault, WrappedKey};

use super::queue::{
    Destroyed, MESSAGE_COLUMNS, SentCopy, destroy_unneeded_content, message_record, parse_status,
    recipients, secure_record,
};
use crate::{
    ExtendTo, KeyUsage, MessageDetail, MessageFilter, QueueId, RecallOutcome, RecipientRecord,
    SecureAccess, StoreError, TrackedMessage, VerifyBatch,
    model::{from_millis, to_millis},
};

/// Largest page of a tracking search.
pub const MAX_PAGE: usize = 500;

/// A LIKE pattern matching `text` anywhere, with LIKE's own wildcards
/// escaped (`ESCAPE '\'`).
pub(super) fn contains_pattern(text: &str) -> String {
    let mut pattern = String::with_capacity(text.len() + 2);
    pattern.push('%');
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

pub(super) fn search(
    conn: &Connection,
    filter: &MessageFilter,
) -> Result<Vec<TrackedMessage>, StoreError> {
    let mut sql = format!("SELECT {MESSAGE_COLUMNS} FROM messages m WHERE 1 = 1");
    let mut args: Vec<Box<dyn ToSql>> = Vec::new();
    if !filter.all_kinds {
        sql.push_str(" AND m.kind = 'mail'");
    }
    if let Some(from) = &filter.from {
        sql.push_str(" AND m.sender LIKE ? ESCAPE '\\'");
        args.push(Box::new(contains_pattern(from)));
    }
    if let Some(subject) = &filter.subject {
        sql.push_str(" AND m.subject LIKE ? ESCAPE '\\'");
        args.push(Box::new(contains_pattern(subject)));
    }
    if let Some(to) = &filter.to {
        sql.push_str(
            " AND EXISTS (SELECT 1 FROM recipients r WHERE r.message_id = m.id
                AND r.address LIKE ? ESCAPE '\\')",
        );
        args.push(Box::new(contains_pattern(to)));
    }
    if let Some(status) = filter.status {
        sql.push_str(
            " AND EXISTS (SELECT 1 FROM recipients r WHERE r.message_id = m.id AND r.status = ?)",
        );
        args.push(Box::new(status.as_str()));
    }
    if let Some(since) = filter.since {
        sql.push_str(" AND m.received_at >= ?");
        args.push(Box::new(to_millis(since)));
    }
    if let Some(until) = filter.until {
        sql.push_str(" AND m.received_at < ?");
        args.push(Box::new(to_millis(until)));
    }
    let (beyond, order) = if filter.oldest_first {
        (">", "ASC")
    } else {
        ("<", "DESC")
    };
    if let Some(after) = &filter.after {
        sql.push_str(&format!(
            " AND (m.received_at, m.id) {beyond} (SELECT received_at, id FROM messages WHERE id = ?)"
        ));
        args.push(Box::new(after.as_str().to_owned()));
    }
    sql.push_str(&format!(
        " ORDER BY m.received_at {order}, m.id {order} LIMIT ?"
    ));
    args.push(Box::new(filter.limit.clamp(1, MAX_PAGE) as i64));

    let mut stmt = conn.prepare(&sql)?;
    let params: Vec<&dyn ToSql> = args.iter().map(AsRef::as_ref).collect();
    let mut rows = stmt.query(params.as_slice())?;
    let mut found = Vec::new();
    while let Some(row) = rows.next()? {
        found.push(message_record(row)?);
    }
    let mut by_message = recipients_of(conn, found.iter().map(|m| &m.id))?;
    Ok(found
        .into_iter()
        .map(|message| TrackedMessage {
            recipients: by_message.remove(&message.id).unwrap_or_default(),
            message,
        })
        .collect())
}

/// The recipients of several messages, in one query.
fn recipients_of<'a>(
    conn: &Connection,
    ids: impl Iterator<Item = &'a QueueId>,
) -> Result<std::collections::HashMap<QueueId, Vec<RecipientRecord>>, StoreError> {
    let ids: Vec<&str> = ids.map(QueueId::as_str).collect();
    let mut by_message: std::collections::HashMap<QueueId, Vec<RecipientRecord>> =
        std::collections::HashMap::new();
    if ids.is_empty() {
        return Ok(by_message);
    }
    let list = serde_json::to_string(&ids).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT r.message_id, {} WHERE r.message_id IN (SELECT value FROM json_each(?1))
         ORDER BY r.message_id, r.idx",
        super::queue::RECIPIENT_QUERY
    ))?;
    let mut rows = stmt.query([list])?;
    while let Some(row) = rows.next()? {
        let id: String = row.get("message_id")?;
        let id =
            QueueId::parse(&id).ok_or_else(|| StoreError::Corrupt(format!("queue id {id:?}")))?;
        by_message
            .entry(id)
            .or_default()
            .push(super::queue::recipient_record(row)?);
    }
    Ok(by_message)
}

pub(super) fn tracked(conn: &Connection, id: &QueueId) -> Result<TrackedMessage, StoreError> {
    Ok(TrackedMessage {
        message: super::queue::message(conn, id)?,
        recipients: recipients(conn, id)?,
    })
}

/// A message, its recipients and the mails made about it, in one read
/// transaction.
pub(super) fn detail(conn: &Connection, id: &QueueId) -> Result<MessageDetail, StoreError> {
    let tx = conn.unchecked_transaction()?;
    let tracked = tracked(&tx, id)?;
    let related = {
        let mut stmt = tx.prepare_cached(&format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE parent_id = ?1
             ORDER BY received_at, id"
        ))?;
        let mut rows = stmt.query([id.as_str()])?;
        let mut related = Vec::new();
        while let Some(row) = rows.next()? {
            related.push(message_record(row)?);
        }
        related
    };
    tx.finish()?;
    Ok(MessageDetail { tracked, related })
}

/// Recalls one message; `None` when it does not exist.
pub(super) fn recall(
    conn: &Connection,
    id: &QueueId,
    now: SystemTime,
    spooled: &mut Vec<QueueId>,
) -> Result<Option<RecallOutcome>, StoreError> {
    let exists: bool = conn
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM messages WHERE id = ?1 AND kind = 'mail')")?
        .query_row([id.as_str()], |row| row.get(0))?;
    if !exists {
        return Ok(None);
    }
    let now = to_millis(now);
    conn.prepare_cached(
        "UPDATE secure_recipients SET ended_at = ?2 WHERE message_id = ?1 AND ended_at IS NULL",
    )?
    .execute(params![id.as_str(), now])?;
    let recalled = conn
        .prepare_cached(
            "UPDATE recipients SET status = 'recalled', last_reply = 'recalled by the sender',
                 updated_at = ?2
             WHERE message_id = ?1 AND status = 'secure'",
        )?
        .execute(params![id.as_str(), now])?;
    // Relay copies and notifications not yet delivered are cancelled: a
    // recall means the sender wants the message gone.
    let cancelled = conn
        .prepare_cached(
            "UPDATE recipients SET status = 'recalled',
                 last_reply = 'delivery cancelled: the message was recalled',
                 lease_owner = NULL, lease_until = 0, updated_at = ?2
             WHERE message_id = ?1 AND status = 'queued'",
        )?
        .execute(params![id.as_str(), now])?;
    let children: Vec<String> = conn
        .prepare_cached("SELECT id FROM messages WHERE parent_id = ?1")?
        .query_map([id.as_str()], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    for child in children {
        let child = QueueId::parse(&child)
            .ok_or_else(|| StoreError::Corrupt(format!("queue id {child:?}")))?;
        conn.prepare_cached(
            "UPDATE recipients SET status = 'recalled',
                 last_reply = 'notification cancelled: the message was recalled',
                 lease_owner = NULL, lease_until = 0, updated_at = ?2
             WHERE message_id = ?1 AND status = 'queued'",
        )?
        .execute(params![child.as_str(), now])?;
        if destroy_unneeded_content(conn, &child, SentCopy::Ignored)? == Destroyed::Spooled {
            spooled.push(child);
        }
    }
    let destroyed = match destroy_unneeded_content(conn, id, SentCopy::Ignored)? {
        Destroyed::No => false,
        Destroyed::Inline => true,
        Destroyed::Spooled => {
            spooled.push(id.clone());
            true
        }
    };
    Ok(Some(RecallOutcome {
        id: id.clone(),
        recalled,
        cancelled,
        destroyed,
    }))
}

/// Extends a message's live secure deliveries. The outer result is the
/// database's; the inner one the answer (a refusal is not a database
/// failure, so it must not roll back the other jobs of a group commit).
pub(super) fn extend(
    conn: &Connection,
    id: &QueueId,
    to: ExtendTo,
    retention: Duration,
    now: SystemTime,
) -> Result<Result<SystemTime, StoreError>, StoreError> {
    let no_live = || {
        StoreError::Refused(format!(
            "{id} has no live secure delivery (it expired, was recalled, or was relayed)"
        ))
    };
    let Some(received) = conn
        .prepare_cached("SELECT received_at FROM messages WHERE id = ?1 AND kind = 'mail'")?
        .query_row([id.as_str()], |row| row.get::<_, i64>(0))
        .optional()?
    else {
        return Ok(Err(StoreError::NotFound(id.clone())));
    };
    let until = match to {
        ExtendTo::Until(until) => until,
        ExtendTo::Days(days) => {
            let current: Option<i64> = conn
                .prepare_cached(
                    "SELECT MAX(expires_at) FROM secure_recipients
                     WHERE message_id = ?1 AND ended_at IS NULL",
                )?
                .query_row([id.as_str()], |row| row.get(0))?;
            let Some(current) = current else {
                return Ok(Err(no_live()));
            };
            from_millis(current) + Duration::from_secs(u64::from(days) * 86400)
        }
    };
    let latest = from_millis(received) + retention;
    if until > latest {
        return Ok(Err(StoreError::Refused(format!(
            "the expiry may not pass vault.retention: {id} can be kept until {} at the latest",
            crate::model::rfc3339(latest)
        ))));
    }
    if until <= now {
        return Ok(Err(StoreError::Refused(
            "the new expiry is in the past; to end access now, recall the message".into(),
        )));
    }
    let changed = conn
        .prepare_cached(
            "UPDATE secure_recipients SET expires_at = ?2 WHERE message_id = ?1 AND ended_at IS NULL",
        )?
        .execute(params![id.as_str(), to_millis(until)])?;
    if changed == 0 {
        return Ok(Err(no_live()));
    }
    Ok(Ok(until))
}

pub(super) fn expire_due(
    conn: &Connection,
    now: SystemTime,
    limit: usize,
    spooled: &mut Vec<QueueId>,
) -> Result<usize, StoreError> {
    let now = to_millis(now);
    let ended: Vec<(String, i64)> = conn
        .prepare_cached(
            "UPDATE secure_recipients SET ended_at = ?1
             WHERE rowid IN (SELECT rowid FROM secure_recipients
                             WHERE ended_at IS NULL AND expires_at <= ?1 LIMIT ?2)
             RETURNING message_id, idx",
        )?
        .query_map(params![now, limit as i64], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })?
        .collect::<Result<_, _>>()?;
    let mut expire = conn.prepare_cached(
        "UPDATE recipients SET status = 'expired', updated_at = ?3
         WHERE message_id = ?1 AND idx = ?2 AND status = 'secure'",
    )?;
    let mut touched = BTreeSet::new();
    for (message, idx) in &ended {
        expire.execute(params![message, idx, now])?;
        touched.insert(message.clone());
    }
    // Portal replies whose Sent copy ran out: forgotten by the index,
    // their content destroyed unless a recipient still needs it.
    let kept: Vec<String> = conn
        .prepare_cached(
            "UPDATE portal_sent SET keep_until = NULL
             WHERE message_id IN (SELECT message_id FROM portal_sent
                                  WHERE keep_until IS NOT NULL AND keep_until <= ?1 LIMIT ?2)
             RETURNING message_id",
        )?
        .query_map(params![now, limit as i64], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    touched.extend(kept);
    for message in touched {
        let id = QueueId::parse(&message)
            .ok_or_else(|| StoreError::Corrupt(format!("queue id {message:?}")))?;
        if destroy_unneeded_content(conn, &id, SentCopy::Kept { now })? == Destroyed::Spooled {
            spooled.push(id);
        }
    }
    Ok(ended.len())
}

pub(super) fn secure_by_token(
    conn: &Connection,
    token: &TokenHash,
) -> Result<Option<SecureAccess>, StoreError> {
    let mut stmt = conn.prepare_cached(concat!(
        "SELECT s.*, r.address, r.status, ",
        super::queue::replies_column!(),
        " FROM secure_recipients s
         JOIN recipients r ON r.message_id = s.message_id AND r.idx = s.idx
         WHERE s.token_hash = ?1"
    ))?;
    let mut rows = stmt.query([token.0.as_slice()])?;
    let Some(row) = rows.next()? else {
        return Ok(None);
    };
    let message: String = row.get("message_id")?;
    let status: String = row.get("status")?;
    Ok(Some(SecureAccess {
        message: QueueId::parse(&message)
            .ok_or_else(|| StoreError::Corrupt(format!("queue id {message:?}")))?,
        idx: row.get("idx")?,
        recipient: row.get("address")?,
        status: parse_status(&status)?,
        record: secure_record(row)?
            .ok_or_else(|| StoreError::Corrupt("secure record without definition".into()))?,
    }))
}

/// Updates one secure recipient; the inner result is NotFound when there
/// is none (see [`extend`] for why it is inner).
pub(super) fn update_secure(
    conn: &Connection,
    sql: &str,
    id: &QueueId,
    idx: u32,
    value: i64,
) -> Result<Result<(), StoreError>, StoreError> {
    let changed = conn
        .prepare_cached(sql)?
        .execute(params![id.as_str(), idx, value])?;
    Ok(if changed == 0 {
        Err(StoreError::NotFound(id.clone()))
    } else {
        Ok(())
    })
}

/// Records an opening; the inner result says whether it was the first
/// (read and written in the writer's one transaction, so two openings at
/// once cannot both be first), or NotFound.
pub(super) fn mark_opened(
    conn: &Connection,
    id: &QueueId,
    idx: u32,
    at: i64,
) -> Result<Result<bool, StoreError>, StoreError> {
    let before: Option<Option<i64>> = conn
        .prepare_cached(
            "SELECT first_opened_at FROM secure_recipients WHERE message_id = ?1 AND idx = ?2",
        )?
        .query_row(params![id.as_str(), idx], |row| row.get(0))
        .optional()?;
    let Some(before) = before else {
        return Ok(Err(StoreError::NotFound(id.clone())));
    };
    conn.prepare_cached(
        "UPDATE secure_recipients
         SET first_opened_at = COALESCE(first_opened_at, ?3), last_opened_at = ?3, is_read = 1
         WHERE message_id = ?1 AND idx = ?2",
    )?
    .execute(params![id.as_str(), idx, at])?;
    Ok(Ok(before.is_none()))
}
pub(super) const SET_READ: &str =
    "UPDATE secure_recipients SET is_read = ?3 WHERE message_id = ?1 AND idx = ?2";
pub(super) const MARK_REPLIED: &str =
    "UPDATE secure_recipients SET replied_at = ?3 WHERE message_id = ?1 AND idx = ?2";

pub(super) fn key_usage(conn: &Connection) -> Result<Vec<KeyUsage>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT key_version, COUNT(*) FROM messages
         WHERE wrapped_key IS NOT NULL GROUP BY key_version ORDER BY key_version",
    )?;
    let usage = stmt
        .query_map([], |row| {
            Ok(KeyUsage {
                version: row.get::<_, i64>(0)? as u32,
                messages: row.get::<_, i64>(1)? as u64,
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(usage)
}

/// Re-wraps a batch of message keys to the vault's current version.
pub(super) fn rewrap_batch(
    conn: &Connection,
    vault: &Vault,
    after: Option<&QueueId>,
    limit: usize,
) -> Result<VerifyBatch, StoreError> {
    let current = vault.keyring().current().version();
    let rows: Vec<(String, i64, Vec<u8>)> = conn
        .prepare_cached(
            "SELECT id, key_version, wrapped_key FROM messages
             WHERE wrapped_key IS NOT NULL AND key_version <> ?1 AND id > ?2
             ORDER BY id LIMIT ?3",
        )?
        .query_map(
            params![current, after.map_or("", QueueId::as_str), limit as i64],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )?
        .collect::<Result<_, _>>()?;
    let mut update = conn.prepare_cached(
        "UPDATE messages SET key_version = ?2, wrapped_key = ?3 WHERE id = ?1 AND key_version = ?4",
    )?;
    let mut batch = VerifyBatch::default();
    for (id, version, bytes) in &rows {
        let queue_id =
            QueueId::parse(id).ok_or_else(|| StoreError::Corrupt(format!("queue id {id:?}")))?;
        let key = WrappedKey {
            version: *version as u32,
            bytes: bytes.clone(),
        };
        match vault.rewrap(id.as_bytes(), &key) {
            Ok(new) => {
                update.execute(params![id, new.version, new.bytes, version])?;
                batch.checked += 1;
            }
            Err(e) => batch.failures.push((queue_id, e.to_string())),
        }
    }
    batch.next = (rows.len() == limit)
        .then(|| rows.last().and_then(|(id, _, _)| QueueId::parse(id)))
        .flatten();
    if batch.next.is_none() {
        // The last batch also re-wraps the administrators' TOTP secrets,
        // sealed in the same format (a handful of rows).
        let (done, failures) = super::totp::rewrap_all(conn, vault)?;
        batch.checked += done;
        for (name, why) in failures {
            tracing::warn!(administrator = %name, error = %why, "a TOTP secret did not re-wrap; reset it with `sealpost admin reset-totp`");
        }
    }
    Ok(batch)
}

/// Ids (in order, after `after`) of messages that still have content.
pub(super) fn content_ids(
    conn: &Connection,
    after: Option<&QueueId>,
    limit: usize,
) -> Result<Vec<QueueId>, StoreError> {
    let ids: Vec<String> = conn
        .prepare_cached(
            "SELECT id FROM messages WHERE has_content = 1 AND id > ?1 ORDER BY id LIMIT ?2",
        )?
        .query_map(
            params![after.map_or("", QueueId::as_str), limit as i64],
            |row| row.get(0),
        )?
        .collect::<Result<_, _>>()?;
    ids.iter()
        .map(|id| QueueId::parse(id).ok_or_else(|| StoreError::Corrupt(format!("queue id {id:?}"))))
        .collect()
}

/// Checks the keyring against the key versions this database knows:
/// every version the keyring has must match the check value recorded
/// when it was first used, and every version a stored message key is
/// wrapped with must be in the keyring. New versions are recorded.
pub(super) fn check_keyring(conn: &Connection, vault: &Vault) -> Result<(), StoreError> {
    let keyring = vault.keyring();
    let new = unknown_key_versions(
        conn,
        &keyring,
        "vault.master_key_file (or SEALPOST_MASTER_KEY) holds a different key under that \
         version; restore the right key file",
    )?;
    for usage in key_usage(conn)? {
        if keyring.get(usage.version).is_none() {
            return Err(StoreError::Unavailable(format!(
                "{} stored message(s) are sealed with master key version {}, which the keyring \
                 does not hold; add that version back to vault.master_key_file (or \
                 SEALPOST_MASTER_KEY)",
                usage.messages, usage.version
            )));
        }
    }
    for (version, secrets) in super::totp::key_versions(conn)? {
        if keyring.get(version).is_none() {
            // Not refused: only these administrators' second step fails,
            // and a super admin (or `sealpost admin reset-totp`) resets it.
            tracing::warn!(
                version,
                secrets,
                "administrators' TOTP secrets are sealed with a master key version the keyring \
                 does not hold; they cannot pass two-step sign-in until it is reset"
            );
        }
    }
    // Only a keyring that passed every check is recorded (a wrong key file
    // must not leave its versions behind).
    let tx = conn.unchecked_transaction()?;
    let now = to_millis(SystemTime::now());
    for (version, check) in new {
        tx.execute(
            "INSERT INTO vault_keys (version, check_value, added_at) VALUES (?1, ?2, ?3)",
            params![version, check.as_slice(), now],
        )?;
    }
    tx.commit()?;
    Ok(())
}

/// Records the check value of every keyring version the database does not
/// know yet (inside the caller's transaction): an online rotation's new
/// version, before mail is re-wrapped to it.
///
/// # Errors
/// A version recorded with another key's check value.
pub(super) fn record_key_versions(conn: &Connection, vault: &Vault) -> Result<(), StoreError> {
    let keyring = vault.keyring();
    let now = to_millis(SystemTime::now());
    for (version, check) in unknown_key_versions(
        conn,
        &keyring,
        "the database recorded another key under that version number; a new key needs a new number",
    )? {
        conn.execute(
            "INSERT INTO vault_keys (version, check_value, added_at) VALUES (?1, ?2, ?3)",
            params![version, check.as_slice(), now],
        )?;
    }
    Ok(())
}

/// The keyring's versions this database has not recorded yet, with their
/// check values, after checking that every version it has recorded is
/// the same key (a mismatch is refused; `fix` says what to do).
fn unknown_key_versions(
    conn: &Connection,
    keyring: &Keyring,
    fix: &str,
) -> Result<Vec<(u32, Vec<u8>)>, StoreError> {
    let mut new = Vec::new();
    for version in keyring.versions() {
        let check = keyring
            .check_value(version)
            .expect("versions() lists only present keys");
        let known: Option<Vec<u8>> = conn
            .query_row(
                "SELECT check_value FROM vault_keys WHERE version = ?1",
                [version],
                |row| row.get(0),
            )
            .optional()?;
        match known {
            Some(known) if known != check.as_slice() => {
                return Err(StoreError::Unavailable(format!(
                    "master key version {version} is not the key this database was sealed \
                     with: {fix}"
                )));
            }
            Some(_) => {}
            None => new.push((version, check.to_vec())),
        }
    }
    Ok(new)
}

/// The highest master key version this database has recorded.
pub(super) fn highest_key_version(conn: &Connection) -> Result<u32, StoreError> {
    let v: Option<i64> = conn.query_row("SELECT MAX(version) FROM vault_keys", [], |r| r.get(0))?;
    Ok(v.map_or(0, |v| u32::try_from(v).unwrap_or(u32::MAX)))
}
