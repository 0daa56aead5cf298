//! The SQL of the queue's administrative side ([`crate::queue_admin`]):
//! depth per domain, the paged listing, and retry now, delete, claim and
//! bounce on a selection of waiting recipients.
//!
//! A selection is resolved inside the action's own transaction, and every
//! change is guarded by `status = 'queued' AND lease_until <= now`: a
//! recipient a worker leased in between is reported as in delivery, never
//! changed under the worker.

use std::{
    collections::{BTreeMap, BTreeSet},
    time::SystemTime,
};

use rusqlite::{Connection, OptionalExtension, Row, ToSql, params};
use serde_json::{Value, json};

use super::{
    SqliteStore, audit,
    queue::{self, Destroyed, SentCopy},
    secure::contains_pattern,
};
use crate::{
    LeasedMessage, LeasedRecipient, NewMessage, QueueId, StoreError,
    audit::{Actor, Change},
    model::{from_millis, rfc3339, to_millis},
    queue_admin::{
        AUDIT_OBJECT, ActionReport, BOUNCED_REPLY, DELETED_REPLY, DomainDepth, QueueAction,
        QueueAdminStore, QueueFilter, QueuePage, QueueQuery, QueueSort, QueuedRecipient,
        RecipientKey, Selection,
    },
};

/// The recipient's domain: the text after the last `@`, lower case.
/// (`rtrim` with every character but `@` strips back to the last `@`.)
const DOMAIN: &str =
    "lower(substr(r.address, length(rtrim(r.address, replace(r.address, '@', ''))) + 1))";

/// Largest page of a listing.
const MAX_PAGE: usize = 500;

/// The `WHERE` conditions of a filter (after `r.status = 'queued'`), with
/// their arguments appended to `args`.
fn filter_sql(filter: &QueueFilter, args: &mut Vec<Box<dyn ToSql>>) -> String {
    let mut sql = String::new();
    if let Some(domain) = &filter.domain {
        args.push(Box::new(domain.trim().to_ascii_lowercase()));
        sql.push_str(&format!(" AND {DOMAIN} = ?{}", args.len()));
    }
    if let Some(sender) = &filter.sender {
        args.push(Box::new(contains_pattern(sender)));
        sql.push_str(&format!(" AND m.sender LIKE ?{} ESCAPE '\\'", args.len()));
    }
    if let Some(recipient) = &filter.recipient {
        args.push(Box::new(contains_pattern(recipient)));
        sql.push_str(&format!(" AND r.address LIKE ?{} ESCAPE '\\'", args.len()));
    }
    if filter.deferred_only {
        sql.push_str(" AND r.attempts > 0");
    }
    sql
}

fn arg_refs(args: &[Box<dyn ToSql>]) -> Vec<&dyn ToSql> {
    args.iter().map(AsRef::as_ref).collect()
}

fn queue_id(text: &str) -> Result<QueueId, StoreError> {
    QueueId::parse(text).ok_or_else(|| StoreError::Corrupt(format!("queue id {text:?}")))
}

pub(super) fn depth(conn: &Connection, now: SystemTime) -> Result<Vec<DomainDepth>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {DOMAIN} AS domain, COUNT(*), SUM(r.attempts > 0), SUM(r.lease_until > ?1),
                MIN(m.received_at), MIN(r.next_attempt_at)
         FROM recipients r JOIN messages m ON m.id = r.message_id
         WHERE r.status = 'queued'
         GROUP BY domain ORDER BY COUNT(*) DESC, domain"
    ))?;
    let mut rows = stmt.query([to_millis(now)])?;
    let mut depths = Vec::new();
    while let Some(row) = rows.next()? {
        depths.push(DomainDepth {
            domain: row.get(0)?,
            queued: row.get::<_, i64>(1)? as u64,
            deferred: row.get::<_, i64>(2)? as u64,
            in_delivery: row.get::<_, i64>(3)? as u64,
            oldest: row.get::<_, Option<i64>>(4)?.map(from_millis),
            next_attempt: row.get::<_, Option<i64>>(5)?.map(from_millis),
        });
    }
    Ok(depths)
}

pub(super) fn list(
    conn: &Connection,
    query: &QueueQuery,
    now: SystemTime,
) -> Result<QueuePage, StoreError> {
    let mut args: Vec<Box<dyn ToSql>> = Vec::new();
    let conditions = filter_sql(&query.filter, &mut args);
    let from = format!(
        "FROM recipients r JOIN messages m ON m.id = r.message_id
         WHERE r.status = 'queued'{conditions}"
    );
    let total: i64 = conn
        .prepare_cached(&format!("SELECT COUNT(*) {from}"))?
        .query_row(arg_refs(&args).as_slice(), |row| row.get(0))?;
    let column = match query.sort {
        QueueSort::NextAttempt => "r.next_attempt_at",
        QueueSort::Received => "m.received_at",
        QueueSort::Attempts => "r.attempts",
        QueueSort::Recipient => "r.address",
        QueueSort::Sender => "m.sender",
        QueueSort::Domain => "domain",
    };
    let dir = if query.descending { "DESC" } else { "ASC" };
    args.push(Box::new(query.limit.clamp(1, MAX_PAGE) as i64));
    let limit = args.len();
    args.push(Box::new(query.offset.min(i64::MAX as usize) as i64));
    let offset = args.len();
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT r.message_id, r.idx, r.address, {DOMAIN} AS domain, m.sender, m.kind, m.subject,
                m.size, m.received_at, r.attempts, r.last_reply, r.last_attempt_at,
                r.next_attempt_at, r.lease_until
         {from}
         ORDER BY {column} {dir}, r.message_id {dir}, r.idx {dir} LIMIT ?{limit} OFFSET ?{offset}"
    ))?;
    let mut rows = stmt.query(arg_refs(&args).as_slice())?;
    let now = to_millis(now);
    let mut recipients = Vec::new();
    while let Some(row) = rows.next()? {
        recipients.push(queued_recipient(row, now)?);
    }
    Ok(QueuePage {
        recipients,
        total: total as u64,
    })
}

fn queued_recipient(row: &Row<'_>, now: i64) -> Result<QueuedRecipient, StoreError> {
    let id: String = row.get("message_id")?;
    Ok(QueuedRecipient {
        key: RecipientKey {
            message: queue_id(&id)?,
            idx: row.get("idx")?,
        },
        address: row.get("address")?,
        domain: row.get("domain")?,
        sender: row.get("sender")?,
        kind: queue::parse_kind(&row.get::<_, String>("kind")?)?,
        subject: row.get("subject")?,
        size: row.get::<_, i64>("size")? as u64,
        received_at: from_millis(row.get("received_at")?),
        attempts: row.get("attempts")?,
        last_reply: row.get("last_reply")?,
        last_attempt_at: row
            .get::<_, Option<i64>>("last_attempt_at")?
            .map(from_millis),
        next_attempt_at: from_millis(row.get("next_attempt_at")?),
        in_delivery: row.get::<_, i64>("lease_until")? > now,
    })
}

/// A selection resolved against the queue as it is in this transaction:
/// the recipients free to act on, and the report of the rest.
fn resolve(
    conn: &Connection,
    selection: &Selection,
    now: SystemTime,
) -> Result<(Vec<RecipientKey>, ActionReport), StoreError> {
    let now = to_millis(now);
    let mut free = Vec::new();
    let mut report = ActionReport::default();
    match selection {
        Selection::Keys(keys) => {
            let mut state = conn.prepare_cached(
                "SELECT lease_until FROM recipients
                 WHERE message_id = ?1 AND idx = ?2 AND status = 'queued'",
            )?;
            let mut seen = BTreeSet::new();
            for key in keys {
                if !seen.insert(key) {
                    continue;
                }
                let lease: Option<i64> = state
                    .query_row(params![key.message.as_str(), key.idx], |row| row.get(0))
                    .optional()?;
                match lease {
                    None => report.not_queued.push(key.clone()),
                    Some(until) if until > now => report.in_delivery.push(key.clone()),
                    Some(_) => free.push(key.clone()),
                }
            }
        }
        Selection::Filter { filter, limit } => {
            let mut args: Vec<Box<dyn ToSql>> = Vec::new();
            let conditions = filter_sql(filter, &mut args);
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT r.message_id, r.idx, r.lease_until
                 FROM recipients r JOIN messages m ON m.id = r.message_id
                 WHERE r.status = 'queued'{conditions}
                 ORDER BY r.next_attempt_at, r.message_id, r.idx"
            ))?;
            let mut rows = stmt.query(arg_refs(&args).as_slice())?;
            while let Some(row) = rows.next()? {
                let key = RecipientKey {
                    message: queue_id(&row.get::<_, String>(0)?)?,
                    idx: row.get(1)?,
                };
                if row.get::<_, i64>(2)? > now {
                    report.in_delivery.push(key);
                } else if free.len() < *limit {
                    free.push(key);
                } else {
                    report.remaining += 1;
                }
            }
        }
    }
    Ok((free, report))
}

/// A recipient's document in the audit log.
fn recipient_doc(conn: &Connection, key: &RecipientKey) -> Result<Option<Value>, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT r.address, m.sender, r.status, r.attempts, r.next_attempt_at, r.last_reply,
                    r.last_attempt_at
             FROM recipients r JOIN messages m ON m.id = r.message_id
             WHERE r.message_id = ?1 AND r.idx = ?2",
        )?
        .query_row(params![key.message.as_str(), key.idx], |row| {
            Ok(json!({
                "message": key.message.as_str(),
                "recipient": row.get::<_, String>(0)?,
                "sender": row.get::<_, String>(1)?,
                "status": row.get::<_, String>(2)?,
                "attempts": row.get::<_, i64>(3)?,
                "next_attempt_at": rfc3339(from_millis(row.get(4)?)),
                "last_reply": row.get::<_, Option<String>>(5)?,
                "last_attempt_at": row.get::<_, Option<i64>>(6)?.map(|t| rfc3339(from_millis(t))),
            }))
        })
        .optional()?)
}

/// Applies `change` to one recipient between its before and after
/// documents, and records the entry. `change` returns the rows it updated
/// (0: the guard refused, nothing recorded).
fn audited(
    conn: &Connection,
    key: &RecipientKey,
    action: QueueAction,
    actor: &Actor,
    now: SystemTime,
    change: impl FnOnce() -> Result<usize, StoreError>,
) -> Result<bool, StoreError> {
    let before = recipient_doc(conn, key)?;
    if change()? == 0 {
        return Ok(false);
    }
    let after = recipient_doc(conn, key)?;
    let entry = Change::new(
        action.as_str(),
        AUDIT_OBJECT,
        Some(key.to_string()),
        before,
        after,
    );
    audit::record(conn, actor, now, &entry)?;
    Ok(true)
}

pub(super) fn retry_now(
    conn: &Connection,
    selection: &Selection,
    now: SystemTime,
    actor: &Actor,
) -> Result<ActionReport, StoreError> {
    let (free, mut report) = resolve(conn, selection, now)?;
    let mut update = conn.prepare_cached(
        "UPDATE recipients SET next_attempt_at = ?3, updated_at = ?3
         WHERE message_id = ?1 AND idx = ?2 AND status = 'queued' AND lease_until <= ?3",
    )?;
    for key in free {
        let done = audited(conn, &key, QueueAction::Retry, actor, now, || {
            Ok(update.execute(params![key.message.as_str(), key.idx, to_millis(now)])?)
        })?;
        if done {
            report.done.push(key);
        }
    }
    Ok(report)
}

/// Marks the secure recipient a notification announces as not notified,
/// with `why` (a deleted or bounced notification never reaches them).
fn not_notified(
    conn: &Connection,
    message: &QueueId,
    now: SystemTime,
    why: &str,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "UPDATE secure_recipients SET notify_failed_at = ?2, notify_error = ?3
         WHERE notification_id = ?1 AND notified_at IS NULL AND notify_failed_at IS NULL
           AND EXISTS (SELECT 1 FROM messages WHERE id = ?1 AND kind = 'notification')",
    )?
    .execute(params![message.as_str(), to_millis(now), why])?;
    Ok(())
}

/// Destroys the content of each of `messages` that no recipient needs any
/// more; spooled ones are added to `purged`.
fn destroy_unneeded(
    conn: &Connection,
    messages: &BTreeSet<QueueId>,
    now: SystemTime,
    purged: &mut Vec<QueueId>,
) -> Result<(), StoreError> {
    for id in messages {
        let sent = SentCopy::Kept {
            now: to_millis(now),
        };
        if queue::destroy_unneeded_content(conn, id, sent)? == Destroyed::Spooled {
            purged.push(id.clone());
        }
    }
    Ok(())
}

pub(super) fn delete(
    conn: &Connection,
    selection: &Selection,
    now: SystemTime,
    actor: &Actor,
    purged: &mut Vec<QueueId>,
) -> Result<ActionReport, StoreError> {
    let (free, mut report) = resolve(conn, selection, now)?;
    let mut update = conn.prepare_cached(
        "UPDATE recipients SET status = 'deleted', last_reply = ?4, lease_owner = NULL,
             lease_until = 0, updated_at = ?3
         WHERE message_id = ?1 AND idx = ?2 AND status = 'queued' AND lease_until <= ?3",
    )?;
    let mut touched = BTreeSet::new();
    for key in free {
        let done = audited(conn, &key, QueueAction::Delete, actor, now, || {
            Ok(update.execute(params![
                key.message.as_str(),
                key.idx,
                to_millis(now),
                DELETED_REPLY
            ])?)
        })?;
        if done {
            not_notified(
                conn,
                &key.message,
                now,
                "notification deleted by an administrator",
            )?;
            touched.insert(key.message.clone());
            report.done.push(key);
        }
    }
    destroy_unneeded(conn, &touched, now, purged)?;
    Ok(report)
}

/// Leased messages with their keys, and the report of a claim.
type Claimed = (
    Vec<(LeasedMessage, Option<sealpost_vault::WrappedKey>)>,
    ActionReport,
);

pub(super) fn claim(
    conn: &Connection,
    selection: &Selection,
    owner: &str,
    now: SystemTime,
    until: SystemTime,
) -> Result<Claimed, StoreError> {
    let (free, mut report) = resolve(conn, selection, now)?;
    let mut lease = conn.prepare_cached(
        "UPDATE recipients SET lease_owner = ?3, lease_until = ?4
         WHERE message_id = ?1 AND idx = ?2 AND status = 'queued' AND lease_until <= ?5
         RETURNING idx, address, orcpt, notify, attempts, delay_warned_at",
    )?;
    let mut by_message: BTreeMap<String, Vec<LeasedRecipient>> = BTreeMap::new();
    for key in free {
        let claimed = lease
            .query_row(
                params![
                    key.message.as_str(),
                    key.idx,
                    owner,
                    to_millis(until),
                    to_millis(now)
                ],
                |row| Ok(queue::leased_recipient(row)),
            )
            .optional()?
            .transpose()?;
        if let Some(recipient) = claimed {
            by_message
                .entry(key.message.to_string())
                .or_default()
                .push(recipient);
            report.done.push(key);
        }
    }
    for recipients in by_message.values_mut() {
        recipients.sort_by_key(|r| r.idx);
    }
    Ok((queue::leased_messages(conn, by_message)?, report))
}

/// Fails claimed recipients for good and records it. The outer result is
/// the database's; the inner one a refusal (a lost claim), which changes
/// nothing and must not roll back the other jobs of a group commit.
pub(super) fn bounce_claimed(
    conn: &Connection,
    owner: &str,
    keys: &[RecipientKey],
    now: SystemTime,
    actor: &Actor,
    purged: &mut Vec<QueueId>,
) -> Result<Result<(), StoreError>, StoreError> {
    let mut held = conn.prepare_cached(
        "SELECT EXISTS (SELECT 1 FROM recipients
             WHERE message_id = ?1 AND idx = ?2 AND status = 'queued' AND lease_owner = ?3)",
    )?;
    for key in keys {
        let still: bool = held.query_row(params![key.message.as_str(), key.idx, owner], |row| {
            row.get(0)
        })?;
        if !still {
            return Ok(Err(StoreError::Refused(format!(
                "recipient {key} is no longer held for the bounce (its claim ran out); nothing \
                 was bounced, try again"
            ))));
        }
    }
    let mut update = conn.prepare_cached(
        "UPDATE recipients SET status = 'failed', last_reply = ?4, lease_owner = NULL,
             lease_until = 0, updated_at = ?3
         WHERE message_id = ?1 AND idx = ?2 AND status = 'queued' AND lease_owner = ?5",
    )?;
    let mut touched = BTreeSet::new();
    for key in keys {
        audited(conn, key, QueueAction::Bounce, actor, now, || {
            Ok(update.execute(params![
                key.message.as_str(),
                key.idx,
                to_millis(now),
                BOUNCED_REPLY,
                owner
            ])?)
        })?;
        not_notified(conn, &key.message, now, BOUNCED_REPLY)?;
        touched.insert(key.message.clone());
    }
    destroy_unneeded(conn, &touched, now, purged)?;
    Ok(Ok(()))
}

#[async_trait::async_trait]
impl QueueAdminStore for SqliteStore {
    async fn queue_depth(&self, now: SystemTime) -> Result<Vec<DomainDepth>, StoreError> {
        self.readers.read(move |conn| depth(conn, now)).await
    }

    async fn queued(&self, query: QueueQuery, now: SystemTime) -> Result<QueuePage, StoreError> {
        self.readers.read(move |conn| list(conn, &query, now)).await
    }

    async fn retry_now(
        &self,
        selection: Selection,
        now: SystemTime,
        actor: Actor,
    ) -> Result<ActionReport, StoreError> {
        self.writer
            .write(true, move |conn, _| {
                retry_now(conn, &selection, now, &actor)
            })
            .await
    }

    async fn delete_queued(
        &self,
        selection: Selection,
        now: SystemTime,
        actor: Actor,
    ) -> Result<ActionReport, StoreError> {
        self.writer
            .write(true, move |conn, effects| {
                delete(conn, &selection, now, &actor, &mut effects.purged)
            })
            .await
    }

    async fn claim(
        &self,
        selection: Selection,
        owner: &str,
        now: SystemTime,
        until: SystemTime,
    ) -> Result<(Vec<LeasedMessage>, ActionReport), StoreError> {
        let owner = owner.to_owned();
        let (leased, report) = self
            .writer
            .write(false, move |conn, _| {
                claim(conn, &selection, &owner, now, until)
            })
            .await?;
        Ok((self.open_leased(leased).await, report))
    }

    async fn bounce_claimed(
        &self,
        owner: &str,
        recipients: Vec<RecipientKey>,
        reports: Vec<NewMessage>,
        now: SystemTime,
        actor: Actor,
    ) -> Result<Vec<QueueId>, StoreError> {
        let mut sealed = Vec::with_capacity(reports.len());
        let mut written = Vec::new();
        for mut report in reports {
            match self.seal(&mut report).await {
                Ok(content) => {
                    written.push((report.id.clone(), content.inline.is_none()));
                    sealed.push((report, content));
                }
                Err(e) => {
                    self.forget_spooled(&written);
                    return Err(e);
                }
            }
        }
        let owner = owner.to_owned();
        let result = self
            .writer
            .write(true, move |conn, effects| {
                if let Err(refused) =
                    bounce_claimed(conn, &owner, &recipients, now, &actor, &mut effects.purged)?
                {
                    return Ok(Err(refused));
                }
                for (report, content) in &sealed {
                    queue::insert_message(conn, report, content)?;
                }
                Ok(Ok(sealed.iter().map(|(r, _)| r.id.clone()).collect()))
            })
            .await
            .and_then(|inner| inner);
        if result.is_err() {
            self.forget_spooled(&written);
        }
        result
    }

    async fn release_claim(
        &self,
        owner: &str,
        recipients: Vec<RecipientKey>,
    ) -> Result<(), StoreError> {
        let owner = owner.to_owned();
        self.writer
            .write(false, move |conn, _| {
                let mut release = conn.prepare_cached(
                    "UPDATE recipients SET lease_owner = NULL, lease_until = 0
                     WHERE message_id = ?1 AND idx = ?2 AND lease_owner = ?3",
                )?;
                for key in &recipients {
                    release.execute(params![key.message.as_str(), key.idx, owner])?;
                }
                Ok(())
            })
            .await
    }
}
