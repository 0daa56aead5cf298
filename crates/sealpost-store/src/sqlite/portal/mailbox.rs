//! An address's mailbox: its secure recipients, found by match key, as
//! folders with search and keyset paging, and the per-message changes a
//! recipient may make. Every statement is scoped by the match key.

use std::time::SystemTime;

use rusqlite::{Connection, Row, ToSql, params};
use sealpost_policy::DefinitionId;

use super::queue_id;
use crate::{
    QueueId, StoreError,
    model::{from_millis, to_millis},
    portal::{Access, AccountKey, Folder, MailboxPage, MailboxQuery, MailboxRow},
    sqlite::secure::contains_pattern,
};

/// Largest mailbox page.
const MAX_PAGE: usize = 500;

/// The columns of a mailbox row; `?1` is the account's match key.
const MAILBOX_QUERY: &str = "SELECT s.message_id, s.idx, m.sender, m.subject, s.received_at,
        s.expires_at, s.is_read, m.has_attachments, r.status, s.ended_at, s.deleted_at,
        s.definition_id, s.last_opened_at
     FROM secure_recipients s
     JOIN messages m ON m.id = s.message_id
     JOIN recipients r ON r.message_id = s.message_id AND r.idx = s.idx
     WHERE s.match_key = ?1";

#[cfg(test)]
pub(in crate::sqlite) fn mailbox_query_for_tests() -> &'static str {
    MAILBOX_QUERY
}

fn mailbox_row(row: &Row<'_>, now: i64) -> Result<MailboxRow, StoreError> {
    let message: String = row.get(0)?;
    let expires: i64 = row.get(5)?;
    let status: String = row.get(8)?;
    let ended: Option<i64> = row.get(9)?;
    let access = if status == "recalled" {
        Access::Recalled
    } else if ended.is_some() || expires <= now {
        Access::Expired
    } else {
        Access::Live
    };
    Ok(MailboxRow {
        message: queue_id(&message)?,
        idx: row.get(1)?,
        sender: row.get(2)?,
        subject: row.get(3)?,
        received_at: from_millis(row.get(4)?),
        expires_at: from_millis(expires),
        read: row.get(6)?,
        has_attachments: row.get(7)?,
        access,
        deleted_at: row.get::<_, Option<i64>>(10)?.map(from_millis),
        recipients: None,
        definition: Some(DefinitionId(row.get(11)?)),
        last_opened_at: row.get::<_, Option<i64>>(12)?.map(from_millis),
    })
}

pub(super) fn mailbox(
    conn: &Connection,
    key: &AccountKey,
    query: &MailboxQuery,
    now: SystemTime,
) -> Result<MailboxPage, StoreError> {
    let deleted = match query.folder {
        Folder::Inbox => false,
        Folder::Deleted => true,
        Folder::Sent => return sent(conn, key, query),
    };
    let now = to_millis(now);
    let mut sql = String::from(MAILBOX_QUERY);
    let mut args: Vec<Box<dyn ToSql>> = vec![Box::new(key.as_str().to_owned())];
    let mut arg = |sql: &mut String, fragment: &str, value: Box<dyn ToSql>| {
        args.push(value);
        sql.push_str(&fragment.replace('#', &format!("?{}", args.len())));
    };
    sql.push_str(if deleted {
        " AND s.deleted_at IS NOT NULL"
    } else {
        " AND s.deleted_at IS NULL"
    });
    if !query.include_ended {
        arg(
            &mut sql,
            " AND s.ended_at IS NULL AND s.expires_at > #",
            Box::new(now),
        );
    }
    if let Some(text) = query.search.as_deref().filter(|t| !t.is_empty()) {
        arg(
            &mut sql,
            " AND (m.sender LIKE # ESCAPE '\\'",
            Box::new(contains_pattern(text)),
        );
        arg(
            &mut sql,
            " OR m.subject LIKE # ESCAPE '\\')",
            Box::new(contains_pattern(text)),
        );
    }
    if let Some(after) = &query.after {
        arg(
            &mut sql,
            " AND (s.received_at, s.message_id, s.idx) < (#",
            Box::new(to_millis(after.received_at)),
        );
        arg(&mut sql, ", #", Box::new(after.message.as_str().to_owned()));
        arg(&mut sql, ", #)", Box::new(after.idx));
    }
    let limit = query.limit.clamp(1, MAX_PAGE);
    // One row more than the page: whether it exists says if a next page
    // does, so the last page never links to an empty one.
    arg(
        &mut sql,
        " ORDER BY s.received_at DESC, s.message_id DESC, s.idx DESC LIMIT #",
        Box::new(limit as i64 + 1),
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let params: Vec<&dyn ToSql> = args.iter().map(AsRef::as_ref).collect();
    let mut rows = stmt.query(params.as_slice())?;
    let mut page = MailboxPage::default();
    while let Some(row) = rows.next()? {
        page.rows.push(mailbox_row(row, now)?);
    }
    if page.rows.len() > limit {
        page.rows.truncate(limit);
        page.next = page.rows.last().map(MailboxRow::cursor);
    }
    Ok(page)
}

/// The Sent folder: the account's portal replies, newest first. A reply
/// is readable while its content is stored (relay recipients pending or a
/// secure recipient live); after that the row stays, marked expired.
/// The columns of a Sent row; `?1` is the account's match key.
/// A Sent copy is readable until `keep_until` (the answered message's
/// expiry), which the expiry job clears when it has passed.
const SENT_QUERY: &str = "SELECT p.message_id, m.sender, m.subject, p.sent_at,
        COALESCE(p.keep_until, m.expires_at),
        m.has_attachments, m.wrapped_key IS NOT NULL, p.recipients
     FROM portal_sent p JOIN messages m ON m.id = p.message_id
     WHERE p.account_key = ?1";

/// A reply is readable while its content is stored.
fn sent_row(row: &Row<'_>) -> Result<MailboxRow, StoreError> {
    let message: String = row.get(0)?;
    let stored: bool = row.get(6)?;
    Ok(MailboxRow {
        message: queue_id(&message)?,
        idx: 0,
        sender: row.get(1)?,
        subject: row.get(2)?,
        received_at: from_millis(row.get(3)?),
        expires_at: from_millis(row.get(4)?),
        read: true,
        has_attachments: row.get(5)?,
        access: if stored {
            Access::Live
        } else {
            Access::Expired
        },
        deleted_at: None,
        recipients: Some(row.get(7)?),
        definition: None,
        last_opened_at: None,
    })
}

/// One reply of the account's Sent folder; `NotFound` for anyone else's.
pub(super) fn sent_message(
    conn: &Connection,
    key: &AccountKey,
    id: &QueueId,
) -> Result<MailboxRow, StoreError> {
    let mut stmt = conn.prepare_cached(&format!("{SENT_QUERY} AND p.message_id = ?2"))?;
    let mut rows = stmt.query(params![key.as_str(), id.as_str()])?;
    match rows.next()? {
        Some(row) => sent_row(row),
        None => Err(StoreError::NotFound(id.clone())),
    }
}

fn sent(
    conn: &Connection,
    key: &AccountKey,
    query: &MailboxQuery,
) -> Result<MailboxPage, StoreError> {
    let mut sql = String::from(SENT_QUERY);
    let mut args: Vec<Box<dyn ToSql>> = vec![Box::new(key.as_str().to_owned())];
    let mut arg = |sql: &mut String, fragment: &str, value: Box<dyn ToSql>| {
        args.push(value);
        sql.push_str(&fragment.replace('#', &format!("?{}", args.len())));
    };
    if !query.include_ended {
        sql.push_str(" AND m.wrapped_key IS NOT NULL");
    }
    if let Some(text) = query.search.as_deref().filter(|t| !t.is_empty()) {
        arg(
            &mut sql,
            " AND (p.recipients LIKE # ESCAPE '\\'",
            Box::new(contains_pattern(text)),
        );
        arg(
            &mut sql,
            " OR m.subject LIKE # ESCAPE '\\')",
            Box::new(contains_pattern(text)),
        );
    }
    if let Some(after) = &query.after {
        arg(
            &mut sql,
            " AND (p.sent_at, p.message_id) < (#",
            Box::new(to_millis(after.received_at)),
        );
        arg(
            &mut sql,
            ", #)",
            Box::new(after.message.as_str().to_owned()),
        );
    }
    let limit = query.limit.clamp(1, MAX_PAGE);
    arg(
        &mut sql,
        " ORDER BY p.sent_at DESC, p.message_id DESC LIMIT #",
        Box::new(limit as i64 + 1),
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let params: Vec<&dyn ToSql> = args.iter().map(AsRef::as_ref).collect();
    let mut rows = stmt.query(params.as_slice())?;
    let mut page = MailboxPage::default();
    while let Some(row) = rows.next()? {
        page.rows.push(sent_row(row)?);
    }
    if page.rows.len() > limit {
        page.rows.truncate(limit);
        page.next = page.rows.last().map(MailboxRow::cursor);
    }
    Ok(page)
}

pub(super) fn mailbox_message(
    conn: &Connection,
    key: &AccountKey,
    id: &QueueId,
    idx: u32,
    now: SystemTime,
) -> Result<MailboxRow, StoreError> {
    let now = to_millis(now);
    let mut stmt = conn.prepare_cached(&format!(
        "{MAILBOX_QUERY} AND s.message_id = ?2 AND s.idx = ?3"
    ))?;
    let mut rows = stmt.query(params![key.as_str(), id.as_str(), idx])?;
    match rows.next()? {
        Some(row) => mailbox_row(row, now),
        None => Err(StoreError::NotFound(id.clone())),
    }
}

/// Updates one message of the address; the inner result is NotFound when
/// it is not theirs (or does not exist). `?1..?3`: id, index, match key.
pub(super) fn update_own(
    conn: &Connection,
    sql: &str,
    key: &AccountKey,
    id: &QueueId,
    idx: u32,
    value: Option<i64>,
) -> Result<Result<(), StoreError>, StoreError> {
    let changed =
        conn.prepare_cached(sql)?
            .execute(params![id.as_str(), idx, key.as_str(), value])?;
    Ok(if changed == 0 {
        Err(StoreError::NotFound(id.clone()))
    } else {
        Ok(())
    })
}

pub(super) const SET_READ: &str = "UPDATE secure_recipients SET is_read = ?4
     WHERE message_id = ?1 AND idx = ?2 AND match_key = ?3";
pub(super) const DELETE: &str = "UPDATE secure_recipients SET deleted_at = COALESCE(deleted_at, ?4)
     WHERE message_id = ?1 AND idx = ?2 AND match_key = ?3";
const RESTORE: &str = "UPDATE secure_recipients SET deleted_at = ?4
     WHERE message_id = ?1 AND idx = ?2 AND match_key = ?3";

pub(super) fn restore_message(
    conn: &Connection,
    key: &AccountKey,
    id: &QueueId,
    idx: u32,
    now: SystemTime,
) -> Result<Result<(), StoreError>, StoreError> {
    let row = match mailbox_message(conn, key, id, idx, now) {
        Ok(row) => row,
        Err(e @ StoreError::NotFound(_)) => return Ok(Err(e)),
        Err(e) => return Err(e),
    };
    if row.access != Access::Live {
        return Ok(Err(StoreError::Refused(format!(
            "{id} can no longer be restored: its access ended"
        ))));
    }
    update_own(conn, RESTORE, key, id, idx, None)
}
