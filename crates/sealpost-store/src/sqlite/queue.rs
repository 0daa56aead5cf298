//! The SQL of the mail path: messages, their recipients and queue state.
//!
//! Plain synchronous functions on a connection; the writer thread and the
//! read pool call them. Statements are prepared once per connection and
//! cached, so one row costs one step of a prepared statement.

use std::{
    collections::{BTreeMap, BTreeSet},
    time::SystemTime,
};

use rusqlite::{Connection, OptionalExtension, Row, params};

use sealpost_policy::{EmailAddress, PolicyId};

use crate::{
    ClientInfo, DsnReturn, LeasedMessage, LeasedRecipient, MessageKind, MessageRecord, NewMessage,
    Notify, OutcomeKind, QueueId, QueueStats, RecipientOutcome, RecipientRecord, RecipientStatus,
    StoreError,
    model::{from_millis, route_text, to_millis},
};

/// Inserts one message and its recipients. `spooled`: the content is
/// already durable in the spool, so the row stores no blob.
pub(super) fn insert_message(
    conn: &Connection,
    m: &NewMessage,
    spooled: bool,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO messages (id, received_at, sender, client_ip, client_name, helo, protocol,
            size, body_8bit, smtputf8, env_id, ret, kind, expires_at, content, spooled)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
    )?
    .execute(params![
        m.id.as_str(),
        to_millis(m.received_at),
        m.sender.as_ref().map_or("", EmailAddress::as_str),
        m.client.ip.to_string(),
        m.client.name.as_deref(),
        m.client.helo.as_deref(),
        m.client.protocol.as_str(),
        m.content.len() as i64,
        m.body_8bit,
        m.smtputf8,
        m.env_id.as_deref(),
        m.ret.map(|r| match r {
            DsnReturn::Full => "FULL",
            DsnReturn::Headers => "HDRS",
        }),
        kind_text(m.kind),
        to_millis(m.expires_at),
        (!spooled).then_some(m.content.as_slice()),
        spooled,
    ])?;
    let mut insert_recipient = conn.prepare_cached(
        "INSERT INTO recipients (message_id, idx, address, orcpt, notify, route, policy_id,
            status, next_attempt_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9)",
    )?;
    for (idx, r) in m.recipients.iter().enumerate() {
        insert_recipient.execute(params![
            m.id.as_str(),
            idx as i64,
            r.address.as_str(),
            r.orcpt.as_deref(),
            r.notify.bits(),
            route_text(&r.decision.route),
            r.decision.policy.map(|p| p.0),
            RecipientStatus::for_route(&r.decision.route).as_str(),
            to_millis(m.received_at),
        ])?;
    }
    Ok(())
}

/// Claims up to `limit` due recipients until `until`, grouped by message
/// and with each message's metadata (and inline content).
pub(super) fn lease(
    conn: &Connection,
    owner: &str,
    now: SystemTime,
    until: SystemTime,
    limit: usize,
) -> Result<Vec<LeasedMessage>, StoreError> {
    let mut by_message: BTreeMap<String, Vec<LeasedRecipient>> = BTreeMap::new();
    {
        let mut claim = conn.prepare_cached(
            "UPDATE recipients SET lease_owner = ?1, lease_until = ?2
             WHERE rowid IN (
                 SELECT rowid FROM recipients
                 WHERE status = 'queued' AND next_attempt_at <= ?3 AND lease_until <= ?3
                 ORDER BY next_attempt_at LIMIT ?4)
             RETURNING message_id, idx, address, orcpt, notify, attempts",
        )?;
        let mut rows = claim.query(params![
            owner,
            to_millis(until),
            to_millis(now),
            limit as i64
        ])?;
        while let Some(row) = rows.next()? {
            let address: String = row.get("address")?;
            let recipient = LeasedRecipient {
                idx: row.get("idx")?,
                address: EmailAddress::parse(&address)
                    .map_err(|e| StoreError::Corrupt(format!("stored address {address:?}: {e}")))?,
                orcpt: row.get("orcpt")?,
                notify: Notify::from_bits(row.get("notify")?),
                attempts: row.get("attempts")?,
            };
            by_message
                .entry(row.get("message_id")?)
                .or_default()
                .push(recipient);
        }
    }
    let mut select = conn.prepare_cached(
        "SELECT id, received_at, sender, client_ip, client_name, helo, protocol, size,
                body_8bit, smtputf8, env_id, ret, expires_at, kind, content
         FROM messages WHERE id = ?1",
    )?;
    let mut leased = Vec::with_capacity(by_message.len());
    for (id, mut recipients) in by_message {
        recipients.sort_by_key(|r| r.idx);
        let message = select
            .query_row([&id], |row| Ok(leased_message(row, recipients)))
            .optional()?
            .ok_or_else(|| StoreError::Corrupt(format!("recipients of missing message {id}")))??;
        leased.push(message);
    }
    Ok(leased)
}

fn leased_message(
    row: &Row<'_>,
    recipients: Vec<LeasedRecipient>,
) -> Result<LeasedMessage, StoreError> {
    let id: String = row.get("id")?;
    let sender: String = row.get("sender")?;
    let client_ip: String = row.get("client_ip")?;
    Ok(LeasedMessage {
        id: QueueId::parse(&id).ok_or_else(|| StoreError::Corrupt(format!("queue id {id:?}")))?,
        received_at: from_millis(row.get("received_at")?),
        sender: if sender.is_empty() {
            None
        } else {
            Some(
                EmailAddress::parse(&sender)
                    .map_err(|e| StoreError::Corrupt(format!("stored sender {sender:?}: {e}")))?,
            )
        },
        client: ClientInfo {
            ip: client_ip
                .parse()
                .map_err(|_| StoreError::Corrupt(format!("stored client ip {client_ip:?}")))?,
            name: row.get("client_name")?,
            helo: row.get("helo")?,
            protocol: row.get("protocol")?,
        },
        size: row.get::<_, i64>("size")? as u64,
        body_8bit: row.get("body_8bit")?,
        smtputf8: row.get("smtputf8")?,
        env_id: row.get("env_id")?,
        ret: match row.get::<_, Option<String>>("ret")?.as_deref() {
            Some("FULL") => Some(DsnReturn::Full),
            Some("HDRS") => Some(DsnReturn::Headers),
            _ => None,
        },
        expires_at: from_millis(row.get("expires_at")?),
        kind: parse_kind(&row.get::<_, String>("kind")?)?,
        recipients,
        content: row.get("content")?,
    })
}

fn kind_text(kind: MessageKind) -> &'static str {
    match kind {
        MessageKind::Mail => "mail",
        MessageKind::Dsn => "dsn",
    }
}

fn parse_kind(kind: &str) -> Result<MessageKind, StoreError> {
    match kind {
        "mail" => Ok(MessageKind::Mail),
        "dsn" => Ok(MessageKind::Dsn),
        other => Err(StoreError::Corrupt(format!(
            "unknown message kind {other:?}"
        ))),
    }
}

/// Records delivery outcomes, ends their leases, and purges the content of
/// every message no recipient needs any more. Returns the ids whose spool
/// files can be removed once this commit is durable.
pub(super) fn record_outcomes(
    conn: &Connection,
    outcomes: &[RecipientOutcome],
) -> Result<Vec<QueueId>, StoreError> {
    let mut update = conn.prepare_cached(
        "UPDATE recipients SET status = ?3, attempts = attempts + 1,
             next_attempt_at = COALESCE(?4, next_attempt_at), lease_owner = NULL, lease_until = 0,
             last_attempt_at = ?5, last_reply = ?6, updated_at = ?5
         WHERE message_id = ?1 AND idx = ?2",
    )?;
    for o in outcomes {
        let (status, next) = match o.result {
            OutcomeKind::Delivered => (RecipientStatus::Delivered, None),
            OutcomeKind::Failed => (RecipientStatus::Failed, None),
            OutcomeKind::Deferred { retry_at } => {
                (RecipientStatus::Queued, Some(to_millis(retry_at)))
            }
        };
        update.execute(params![
            o.message.as_str(),
            o.idx,
            status.as_str(),
            next,
            to_millis(o.attempted_at),
            o.reply,
        ])?;
    }
    let touched: BTreeSet<&QueueId> = outcomes.iter().map(|o| &o.message).collect();
    let mut purge = conn.prepare_cached(
        "UPDATE messages SET content = NULL, has_content = 0
         WHERE id = ?1 AND has_content = 1 AND NOT EXISTS (
             SELECT 1 FROM recipients WHERE message_id = ?1 AND status IN ('queued', 'held'))
         RETURNING spooled",
    )?;
    let mut spooled = Vec::new();
    for id in touched {
        if let Some(true) = purge
            .query_row([id.as_str()], |row| row.get::<_, bool>(0))
            .optional()?
        {
            spooled.push(id.clone());
        }
    }
    Ok(spooled)
}

/// Releases every lease; see [`super::SqliteStore::open`] for why.
pub(super) fn release_all_leases(conn: &Connection) -> Result<usize, StoreError> {
    Ok(conn.execute(
        "UPDATE recipients SET lease_owner = NULL, lease_until = 0 WHERE lease_owner IS NOT NULL",
        [],
    )?)
}

/// Ids of messages whose content lives in a spool file.
pub(super) fn spooled_ids(conn: &Connection) -> Result<Vec<String>, StoreError> {
    let mut stmt = conn.prepare("SELECT id FROM messages WHERE spooled = 1 AND has_content = 1")?;
    let ids = stmt
        .query_map([], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    Ok(ids)
}

/// What [`load_body`] found in the row.
pub(super) enum Body {
    Inline(Vec<u8>),
    Spooled,
}

pub(super) fn load_body(conn: &Connection, id: &QueueId) -> Result<Body, StoreError> {
    let row = conn
        .prepare_cached("SELECT content, spooled, has_content FROM messages WHERE id = ?1")?
        .query_row([id.as_str()], |row| {
            Ok((
                row.get::<_, Option<Vec<u8>>>(0)?,
                row.get::<_, bool>(1)?,
                row.get::<_, bool>(2)?,
            ))
        })
        .optional()?;
    match row {
        None | Some((_, _, false)) => Err(StoreError::NotFound(id.clone())),
        Some((_, true, true)) => Ok(Body::Spooled),
        Some((Some(content), false, true)) => Ok(Body::Inline(content)),
        Some((None, false, true)) => {
            Err(StoreError::Corrupt(format!("message {id} has no content")))
        }
    }
}

pub(super) fn next_due(conn: &Connection) -> Result<Option<SystemTime>, StoreError> {
    let due: Option<i64> = conn
        .prepare_cached(
            "SELECT MIN(MAX(next_attempt_at, lease_until)) FROM recipients WHERE status = 'queued'",
        )?
        .query_row([], |row| row.get(0))?;
    Ok(due.map(from_millis))
}

pub(super) fn queue_stats(conn: &Connection) -> Result<QueueStats, StoreError> {
    let (queued, deferred, held) = conn
        .prepare_cached(
            "SELECT
               (SELECT COUNT(*) FROM recipients WHERE status = 'queued'),
               (SELECT COUNT(*) FROM recipients WHERE status = 'queued' AND attempts > 0),
               (SELECT COUNT(*) FROM recipients WHERE status = 'held')",
        )?
        .query_row([], |row| {
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, i64>(1)?,
                row.get::<_, i64>(2)?,
            ))
        })?;
    Ok(QueueStats {
        queued: queued as u64,
        deferred: deferred as u64,
        held: held as u64,
        ..QueueStats::default()
    })
}

pub(super) fn recipients(
    conn: &Connection,
    id: &QueueId,
) -> Result<Vec<RecipientRecord>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT idx, address, status, route, policy_id, attempts, last_reply
         FROM recipients WHERE message_id = ?1 ORDER BY idx",
    )?;
    let mut rows = stmt.query([id.as_str()])?;
    let mut records = Vec::new();
    while let Some(row) = rows.next()? {
        let status: String = row.get("status")?;
        records.push(RecipientRecord {
            idx: row.get("idx")?,
            address: row.get("address")?,
            status: RecipientStatus::parse(&status)
                .ok_or_else(|| StoreError::Corrupt(format!("unknown status {status:?}")))?,
            route: row.get("route")?,
            policy: row.get::<_, Option<i64>>("policy_id")?.map(PolicyId),
            attempts: row.get("attempts")?,
            last_reply: row.get("last_reply")?,
        });
    }
    Ok(records)
}

pub(super) fn message(conn: &Connection, id: &QueueId) -> Result<MessageRecord, StoreError> {
    conn.prepare_cached(
        "SELECT sender, client_ip, size, kind, has_content FROM messages WHERE id = ?1",
    )?
    .query_row([id.as_str()], |row| {
        Ok((
            row.get::<_, String>(0)?,
            row.get::<_, String>(1)?,
            row.get::<_, i64>(2)?,
            row.get::<_, String>(3)?,
            row.get::<_, bool>(4)?,
        ))
    })
    .optional()?
    .ok_or_else(|| StoreError::NotFound(id.clone()))
    .and_then(|(sender, client_ip, size, kind, has_content)| {
        Ok(MessageRecord {
            id: id.clone(),
            sender,
            client_ip,
            size: size as u64,
            kind: parse_kind(&kind)?,
            has_content,
        })
    })
}
