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

use sealpost_policy::{DefinitionId, EmailAddress, PolicyId};
use sealpost_vault::WrappedKey;

use crate::{
    ClientInfo, DsnReturn, LeasedMessage, LeasedRecipient, MessageKind, MessageRecord, NewMessage,
    NotificationTarget, Notify, OutcomeKind, QueueId, QueueStats, RecipientOutcome,
    RecipientRecord, RecipientStatus, SecureRecord, SecureTrigger, StoreError,
    model::{from_millis, route_text, to_millis},
};

/// A message's content as it is committed: sealed by the vault.
#[derive(Debug)]
pub(super) struct SealedContent {
    pub key: WrappedKey,
    /// The sealed bytes, or `None` when they are already durable in the
    /// spool (the row then stores no blob).
    pub inline: Option<Vec<u8>>,
    /// The plaintext's length.
    pub size: u64,
}

/// Inserts one message, its recipients and its secure-delivery records.
/// The message's own `content` is ignored: `sealed` is what is stored.
pub(super) fn insert_message(
    conn: &Connection,
    m: &NewMessage,
    sealed: &SealedContent,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO messages (id, received_at, sender, client_ip, client_name, helo, protocol,
            size, body_8bit, smtputf8, env_id, ret, kind, expires_at, content, spooled,
            key_version, wrapped_key, subject, parent_id, smtp_account)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16,
            ?17, ?18, ?19, ?20, ?21)",
    )?
    .execute(params![
        m.id.as_str(),
        to_millis(m.received_at),
        m.sender.as_ref().map_or("", EmailAddress::as_str),
        m.client.ip.to_string(),
        m.client.name.as_deref(),
        m.client.helo.as_deref(),
        m.client.protocol.as_str(),
        sealed.size as i64,
        m.body_8bit,
        m.smtputf8,
        m.env_id.as_deref(),
        m.ret.map(|r| match r {
            DsnReturn::Full => "FULL",
            DsnReturn::Headers => "HDRS",
        }),
        m.kind.as_str(),
        to_millis(m.expires_at),
        sealed.inline.as_deref(),
        sealed.inline.is_none(),
        sealed.key.version,
        sealed.key.bytes.as_slice(),
        m.subject.as_deref(),
        m.parent.as_ref().map(QueueId::as_str),
        m.smtp_account.as_ref().map(|a| a.as_str()),
    ])?;
    let mut insert_recipient = conn.prepare_cached(
        "INSERT INTO recipients (message_id, idx, address, orcpt, notify, route, policy_id,
            status, next_attempt_at, updated_at, lease_owner, lease_until)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9, ?10, ?11)",
    )?;
    for (idx, r) in m.recipients.iter().enumerate() {
        let status = RecipientStatus::for_route(&r.decision.route);
        // Handed over to a worker (see crate::handoff): queued recipients
        // are leased to it from the start.
        let claim = m
            .claim
            .as_ref()
            .filter(|_| status == RecipientStatus::Queued);
        insert_recipient.execute(params![
            m.id.as_str(),
            idx as i64,
            r.address.as_str(),
            r.orcpt.as_deref(),
            r.notify.bits(),
            route_text(&r.decision.route),
            r.decision.policy.map(|p| p.0),
            status.as_str(),
            to_millis(m.received_at),
            claim.map(|c| c.owner.as_str()),
            claim.map_or(0, |c| to_millis(c.until)),
        ])?;
    }
    count_hits(conn, m)?;
    super::dashboard::count_accepted(conn, m)?;
    if let Some(sent) = &m.portal_sent {
        insert_sent(conn, m, sent)?;
    }
    if !m.secure.is_empty() {
        let mut insert_secure = conn.prepare_cached(
            "INSERT INTO secure_recipients (message_id, idx, token_hash, definition_id, trigger,
                notification_id, expires_at, match_key, received_at, tls_or_portal)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )?;
        for s in &m.secure {
            // The portal finds an address's messages by this key.
            let match_key = m
                .recipients
                .get(s.idx as usize)
                .ok_or_else(|| {
                    StoreError::Corrupt(format!(
                        "secure recipient {} of {} not among its recipients",
                        s.idx, m.id
                    ))
                })?
                .address
                .match_key();
            insert_secure.execute(params![
                m.id.as_str(),
                s.idx,
                s.token_hash.as_slice(),
                s.definition.0,
                s.trigger.as_str(),
                s.notification.as_ref().map(QueueId::as_str),
                to_millis(s.expires_at),
                match_key,
                to_millis(m.received_at),
                s.tls_or_portal,
            ])?;
        }
    }
    Ok(())
}

/// A portal reply's Sent row and the original's `replied_at`. Scoped by
/// the account's match key: a reply can only mark (and be filed against)
/// a message its author received.
fn insert_sent(
    conn: &Connection,
    m: &NewMessage,
    sent: &crate::PortalSent,
) -> Result<(), StoreError> {
    let at = to_millis(m.received_at);
    let replied = conn
        .prepare_cached(
            "UPDATE secure_recipients SET replied_at = ?4
             WHERE message_id = ?1 AND idx = ?2 AND match_key = ?3",
        )?
        .execute(params![
            sent.original.as_str(),
            sent.idx,
            sent.account.as_str(),
            at
        ])?;
    if replied == 0 {
        return Err(StoreError::NotFound(sent.original.clone()));
    }
    let recipients = m
        .recipients
        .iter()
        .map(|r| r.address.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    conn.prepare_cached(
        "INSERT INTO portal_sent (message_id, account_key, original_id, original_idx, sent_at,
            recipients, keep_until)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6,
             (SELECT expires_at FROM secure_recipients WHERE message_id = ?3 AND idx = ?4))",
    )?
    .execute(params![
        m.id.as_str(),
        sent.account.as_str(),
        sent.original.as_str(),
        sent.idx,
        at,
        recipients
    ])?;
    conn.prepare_cached("UPDATE messages SET has_attachments = ?2 WHERE id = ?1")?
        .execute(params![m.id.as_str(), sent.has_attachments])?;
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
) -> Result<Vec<(LeasedMessage, Option<WrappedKey>)>, StoreError> {
    let mut by_message: BTreeMap<String, Vec<LeasedRecipient>> = BTreeMap::new();
    {
        let mut claim = conn.prepare_cached(
            "UPDATE recipients SET lease_owner = ?1, lease_until = ?2
             WHERE (message_id, idx) IN (
                 SELECT message_id, idx FROM recipients
                 WHERE status = 'queued' AND next_attempt_at <= ?3 AND lease_until <= ?3
                 ORDER BY next_attempt_at LIMIT ?4)
             RETURNING message_id, idx, address, orcpt, notify, attempts, delay_warned_at",
        )?;
        let mut rows = claim.query(params![
            owner,
            to_millis(until),
            to_millis(now),
            limit as i64
        ])?;
        while let Some(row) = rows.next()? {
            let recipient = leased_recipient(row)?;
            by_message
                .entry(row.get("message_id")?)
                .or_default()
                .push(recipient);
        }
    }
    leased_messages(conn, by_message)
}

/// Extends `owner`'s leases on `recipients` to `until` and returns those
/// another owner holds now (see [`crate::Store::renew_leases`]). A queued
/// recipient whose lease was released (no owner) is taken back: its
/// delivery is still running here.
pub(super) fn renew_leases(
    conn: &Connection,
    owner: &str,
    recipients: &[(QueueId, u32)],
    until: SystemTime,
) -> Result<Vec<(QueueId, u32)>, StoreError> {
    let mut renew = conn.prepare_cached(
        "UPDATE recipients SET lease_owner = ?3, lease_until = ?4
         WHERE message_id = ?1 AND idx = ?2 AND status = 'queued'
           AND (lease_owner = ?3 OR lease_owner IS NULL)",
    )?;
    let mut queued = conn.prepare_cached(
        "SELECT EXISTS (SELECT 1 FROM recipients
             WHERE message_id = ?1 AND idx = ?2 AND status = 'queued')",
    )?;
    let mut lost = Vec::new();
    for (id, idx) in recipients {
        let renewed = renew.execute(params![id.as_str(), idx, owner, to_millis(until)])?;
        if renewed == 0 && queued.query_row(params![id.as_str(), idx], |row| row.get(0))? {
            lost.push((id.clone(), *idx));
        }
    }
    Ok(lost)
}

/// The messages of leased recipients (message id → its recipients), with
/// each message's metadata, inline content and key.
pub(super) fn leased_messages(
    conn: &Connection,
    by_message: BTreeMap<String, Vec<LeasedRecipient>>,
) -> Result<Vec<(LeasedMessage, Option<WrappedKey>)>, StoreError> {
    let mut select = conn.prepare_cached(
        "SELECT id, received_at, sender, client_ip, client_name, helo, protocol, size,
                body_8bit, smtputf8, env_id, ret, expires_at, kind, content,
                key_version, wrapped_key
         FROM messages WHERE id = ?1",
    )?;
    let mut leased = Vec::with_capacity(by_message.len());
    for (id, mut recipients) in by_message {
        recipients.sort_by_key(|r| r.idx);
        let message = select
            .query_row([&id], |row| {
                Ok(leased_message(row, recipients).and_then(|m| Ok((m, wrapped_key(row)?))))
            })
            .optional()?
            .ok_or_else(|| StoreError::Corrupt(format!("recipients of missing message {id}")))??;
        leased.push(message);
    }
    Ok(leased)
}

/// A leased recipient from a row of `idx, address, orcpt, notify, attempts,
/// delay_warned_at`.
pub(super) fn leased_recipient(row: &Row<'_>) -> Result<LeasedRecipient, StoreError> {
    let address: String = row.get("address")?;
    Ok(LeasedRecipient {
        idx: row.get("idx")?,
        address: EmailAddress::parse(&address)
            .map_err(|e| StoreError::Corrupt(format!("stored address {address:?}: {e}")))?,
        orcpt: row.get("orcpt")?,
        notify: Notify::from_bits(row.get("notify")?),
        attempts: row.get("attempts")?,
        delay_warned: row.get::<_, Option<i64>>("delay_warned_at")?.is_some(),
    })
}

/// The row's wrapped message key (`None` once the content is destroyed).
fn wrapped_key(row: &Row<'_>) -> Result<Option<WrappedKey>, StoreError> {
    let version: Option<i64> = row.get("key_version")?;
    let bytes: Option<Vec<u8>> = row.get("wrapped_key")?;
    Ok(match (version, bytes) {
        (Some(version), Some(bytes)) => Some(WrappedKey {
            version: u32::try_from(version)
                .map_err(|_| StoreError::Corrupt(format!("key version {version}")))?,
            bytes,
        }),
        _ => None,
    })
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

pub(super) fn parse_kind(kind: &str) -> Result<MessageKind, StoreError> {
    MessageKind::parse(kind)
        .ok_or_else(|| StoreError::Corrupt(format!("unknown message kind {kind:?}")))
}

/// Records delivery outcomes, ends their leases, and purges the content of
/// every message no recipient needs any more. Returns the ids whose spool
/// files can be removed once this commit is durable.
pub(super) fn record_outcomes(
    conn: &Connection,
    outcomes: &[RecipientOutcome],
) -> Result<Vec<QueueId>, StoreError> {
    // Only a queued recipient takes an outcome, except that a delivery
    // which happened stands even if the recipient was recalled meanwhile.
    let mut update = conn.prepare_cached(
        "UPDATE recipients SET status = ?3, attempts = attempts + 1,
             next_attempt_at = COALESCE(?4, next_attempt_at), lease_owner = NULL, lease_until = 0,
             last_attempt_at = ?5, last_reply = ?6, updated_at = ?5,
             delay_warned_at = CASE WHEN ?7 THEN COALESCE(delay_warned_at, ?5)
                                    ELSE delay_warned_at END
         WHERE message_id = ?1 AND idx = ?2 AND (status = 'queued' OR ?3 = 'delivered')",
    )?;
    // A delivered notification is the secure recipient's "notified"; a
    // TLS-or-portal one also records which of the two went.
    let mut notified = conn.prepare_cached(
        "UPDATE secure_recipients SET notified_at = ?2,
             delivered_as = CASE WHEN tls_or_portal = 1 THEN ?3 END,
             delivered_reply = CASE WHEN tls_or_portal = 1 THEN ?4 END
         WHERE notification_id = ?1 AND notified_at IS NULL",
    )?;
    // A notification that failed for good: the recipient was never told,
    // and nobody hears of the bounce (the null sender), so tracking must.
    let mut not_notified = conn.prepare_cached(
        "UPDATE secure_recipients SET notify_failed_at = ?2, notify_error = ?3
         WHERE notification_id = ?1 AND notified_at IS NULL AND notify_failed_at IS NULL",
    )?;
    for o in outcomes {
        let (status, next) = match o.result {
            OutcomeKind::Delivered => (RecipientStatus::Delivered, None),
            OutcomeKind::Failed => (RecipientStatus::Failed, None),
            OutcomeKind::Deferred { retry_at } => {
                (RecipientStatus::Queued, Some(to_millis(retry_at)))
            }
        };
        let changed = update.execute(params![
            o.message.as_str(),
            o.idx,
            status.as_str(),
            next,
            to_millis(o.attempted_at),
            o.reply,
            o.delay_warned,
        ])?;
        if changed > 0 && o.result == OutcomeKind::Failed && !o.notification {
            super::dashboard::count_bounced(conn, &o.message)?;
        }
        match o.result {
            OutcomeKind::Delivered if o.notification => {
                notified.execute(params![
                    o.message.as_str(),
                    to_millis(o.attempted_at),
                    if o.direct { "message" } else { "notification" },
                    o.reply
                ])?;
            }
            OutcomeKind::Failed if o.notification => {
                not_notified.execute(params![
                    o.message.as_str(),
                    to_millis(o.attempted_at),
                    o.reply
                ])?;
            }
            _ => {}
        }
    }
    let touched: BTreeSet<&QueueId> = outcomes.iter().map(|o| &o.message).collect();
    let now = outcomes
        .iter()
        .map(|o| to_millis(o.attempted_at))
        .max()
        .unwrap_or(0);
    let mut spooled = Vec::new();
    for id in touched {
        if destroy_unneeded_content(conn, id, SentCopy::Kept { now })? == Destroyed::Spooled {
            spooled.push(id.clone());
        }
    }
    Ok(spooled)
}

/// The secure recipients `notifications` announce, with their message's
/// sender and subject. A notification already recorded as delivered or
/// failed is left out, so a repeated outcome (a lease that ran out while
/// the attempt went on) finds nothing new to report.
pub(super) fn notification_targets(
    conn: &Connection,
    notifications: &[QueueId],
) -> Result<Vec<NotificationTarget>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT s.notification_id, s.message_id, s.idx, r.address, s.definition_id,
                m.sender, m.subject, s.tls_or_portal
         FROM secure_recipients s
         JOIN recipients r ON r.message_id = s.message_id AND r.idx = s.idx
         JOIN messages m ON m.id = s.message_id
         WHERE s.notification_id = ?1 AND s.notified_at IS NULL AND s.notify_failed_at IS NULL",
    )?;
    let queue_id = |id: String| {
        QueueId::parse(&id).ok_or_else(|| StoreError::Corrupt(format!("queue id {id:?}")))
    };
    let mut targets = Vec::new();
    for notification in notifications {
        let mut rows = stmt.query([notification.as_str()])?;
        while let Some(row) = rows.next()? {
            let sender: String = row.get("sender")?;
            targets.push(NotificationTarget {
                notification: queue_id(row.get("notification_id")?)?,
                message: queue_id(row.get("message_id")?)?,
                idx: row.get("idx")?,
                recipient: row.get("address")?,
                definition: DefinitionId(row.get("definition_id")?),
                sender: match sender.as_str() {
                    "" => None,
                    s => {
                        Some(EmailAddress::parse(s).map_err(|e| {
                            StoreError::Corrupt(format!("stored sender {s:?}: {e}"))
                        })?)
                    }
                },
                subject: row.get("subject")?,
                tls_or_portal: row.get("tls_or_portal")?,
            });
        }
    }
    Ok(targets)
}

/// What [`destroy_unneeded_content`] did.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Destroyed {
    /// Content is still needed (or was already gone).
    No,
    /// Row content and key cleared.
    Inline,
    /// Key cleared; the spool file is to be removed after the commit.
    Spooled,
}

/// Whether a portal reply's copy in its author's Sent folder counts as a
/// need for its content.
#[derive(Debug, Clone, Copy)]
pub(super) enum SentCopy {
    /// It does until its `keep_until` (delivery outcomes, expiry).
    Kept { now: i64 },
    /// It does not (a recall ends every copy).
    Ignored,
}

/// Destroys a message's content, key and ciphertext, once no recipient
/// needs it: every relay recipient is final, no secure recipient is live
/// and, for a portal reply, its author's Sent copy has run out (unless
/// `sent` says to ignore it). The metadata (message and recipient rows)
/// stays for tracking.
pub(super) fn destroy_unneeded_content(
    conn: &Connection,
    id: &QueueId,
    sent: SentCopy,
) -> Result<Destroyed, StoreError> {
    let kept_after = match sent {
        SentCopy::Kept { now } => now,
        SentCopy::Ignored => i64::MAX,
    };
    let spooled: Option<bool> = conn
        .prepare_cached(
            "UPDATE messages SET content = NULL, wrapped_key = NULL, has_content = 0
             WHERE id = ?1 AND has_content = 1 AND NOT EXISTS (
                 SELECT 1 FROM recipients WHERE message_id = ?1 AND status IN ('queued', 'secure'))
               AND NOT EXISTS (
                 SELECT 1 FROM portal_sent WHERE message_id = ?1 AND keep_until > ?2)
             RETURNING spooled",
        )?
        .query_row(params![id.as_str(), kept_after], |row| row.get(0))
        .optional()?;
    Ok(match spooled {
        None => Destroyed::No,
        Some(false) => Destroyed::Inline,
        Some(true) => Destroyed::Spooled,
    })
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

/// What [`load_body`] found in the row: where the sealed content is, and
/// the key it opens with.
pub(super) enum Body {
    Inline(Vec<u8>, WrappedKey),
    Spooled(WrappedKey),
}

pub(super) fn load_body(conn: &Connection, id: &QueueId) -> Result<Body, StoreError> {
    let row = conn
        .prepare_cached(
            "SELECT content, spooled, has_content, key_version, wrapped_key
             FROM messages WHERE id = ?1",
        )?
        .query_row([id.as_str()], |row| {
            Ok((
                row.get::<_, Option<Vec<u8>>>(0)?,
                row.get::<_, bool>(1)?,
                row.get::<_, bool>(2)?,
                wrapped_key(row),
            ))
        })
        .optional()?;
    match row {
        None | Some((_, _, false, _)) => Err(StoreError::NotFound(id.clone())),
        Some((content, spooled, true, key)) => {
            let Some(key) = key? else {
                return Err(StoreError::Corrupt(format!("message {id} has no key")));
            };
            match (content, spooled) {
                (_, true) => Ok(Body::Spooled(key)),
                (Some(content), false) => Ok(Body::Inline(content, key)),
                (None, false) => Err(StoreError::Corrupt(format!("message {id} has no content"))),
            }
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
    let (queued, deferred, secure) = conn
        .prepare_cached(
            "SELECT
               (SELECT COUNT(*) FROM recipients WHERE status = 'queued'),
               (SELECT COUNT(*) FROM recipients WHERE status = 'queued' AND attempts > 0),
               (SELECT COUNT(*) FROM recipients WHERE status = 'secure')",
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
        secure: secure as u64,
        ..QueueStats::default()
    })
}

pub(super) fn recipients(
    conn: &Connection,
    id: &QueueId,
) -> Result<Vec<RecipientRecord>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {RECIPIENT_QUERY} WHERE r.message_id = ?1 ORDER BY r.idx"
    ))?;
    let mut rows = stmt.query([id.as_str()])?;
    let mut records = Vec::new();
    while let Some(row) = rows.next()? {
        records.push(recipient_record(row)?);
    }
    Ok(records)
}

/// The portal replies to secure recipient `s`, `,`-joined, as a column
/// named `replies` (one indexed lookup in `portal_sent`, in the same query).
macro_rules! replies_column {
    () => {
        "(SELECT group_concat(p.message_id, ',' ORDER BY p.sent_at, p.message_id) \
         FROM portal_sent p WHERE p.original_id = s.message_id AND p.original_idx = s.idx) \
         AS replies"
    };
}
pub(super) use replies_column;

/// The columns and joins [`recipient_record`] reads, up to the WHERE.
pub(super) const RECIPIENT_QUERY: &str = concat!(
    "r.idx, r.address, r.status, r.route, r.policy_id, \
     r.attempts, r.last_reply, r.last_attempt_at, s.definition_id, s.trigger, s.notification_id, \
     s.expires_at, s.notified_at, s.notify_failed_at, s.notify_error, s.first_opened_at, \
     s.tls_or_portal, s.delivered_as, s.delivered_reply, \
     s.last_opened_at, s.is_read, s.replied_at, s.ended_at, s.registered_at, s.deleted_at, ",
    replies_column!(),
    " FROM recipients r
     LEFT JOIN secure_recipients s ON s.message_id = r.message_id AND s.idx = r.idx"
);

/// A recipient row (joined with its secure record, if any).
pub(super) fn recipient_record(row: &Row<'_>) -> Result<RecipientRecord, StoreError> {
    let status: String = row.get("status")?;
    Ok(RecipientRecord {
        idx: row.get("idx")?,
        address: row.get("address")?,
        status: parse_status(&status)?,
        route: row.get("route")?,
        policy: row.get::<_, Option<i64>>("policy_id")?.map(PolicyId),
        attempts: row.get("attempts")?,
        last_reply: row.get("last_reply")?,
        last_attempt_at: row
            .get::<_, Option<i64>>("last_attempt_at")?
            .map(from_millis),
        secure: secure_record(row)?,
    })
}

pub(super) fn parse_status(status: &str) -> Result<RecipientStatus, StoreError> {
    RecipientStatus::parse(status)
        .ok_or_else(|| StoreError::Corrupt(format!("unknown status {status:?}")))
}

/// The secure-delivery columns of a joined row (`None` for a relay
/// recipient). The row needs the `replies` column (`replies_column!`).
pub(super) fn secure_record(row: &Row<'_>) -> Result<Option<SecureRecord>, StoreError> {
    let Some(definition) = row.get::<_, Option<i64>>("definition_id")? else {
        return Ok(None);
    };
    let trigger: String = row.get("trigger")?;
    let time = |name: &str| -> rusqlite::Result<Option<SystemTime>> {
        Ok(row.get::<_, Option<i64>>(name)?.map(from_millis))
    };
    Ok(Some(SecureRecord {
        definition: DefinitionId(definition),
        trigger: SecureTrigger::parse(&trigger)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown trigger {trigger:?}")))?,
        notification: row
            .get::<_, Option<String>>("notification_id")?
            .and_then(|id| QueueId::parse(&id)),
        expires_at: from_millis(row.get("expires_at")?),
        notified_at: time("notified_at")?,
        notify_failed_at: time("notify_failed_at")?,
        notify_error: row.get("notify_error")?,
        tls_or_portal: row.get("tls_or_portal")?,
        delivered_as: row.get("delivered_as")?,
        delivered_reply: row.get("delivered_reply")?,
        first_opened_at: time("first_opened_at")?,
        last_opened_at: time("last_opened_at")?,
        read: row.get("is_read")?,
        replied_at: time("replied_at")?,
        ended_at: time("ended_at")?,
        registered_at: time("registered_at")?,
        deleted_at: time("deleted_at")?,
        replies: row
            .get::<_, Option<String>>("replies")?
            .unwrap_or_default()
            .split(',')
            .filter(|id| !id.is_empty())
            .map(|id| {
                QueueId::parse(id).ok_or_else(|| StoreError::Corrupt(format!("queue id {id:?}")))
            })
            .collect::<Result<_, _>>()?,
    }))
}

/// The columns [`message_record`] reads.
pub(super) const MESSAGE_COLUMNS: &str = "id, received_at, sender, client_ip, subject, size, kind, \
     parent_id, has_content, key_version, smtp_account";

pub(super) fn message_record(row: &Row<'_>) -> Result<MessageRecord, StoreError> {
    let id: String = row.get("id")?;
    let kind: String = row.get("kind")?;
    Ok(MessageRecord {
        id: QueueId::parse(&id).ok_or_else(|| StoreError::Corrupt(format!("queue id {id:?}")))?,
        received_at: from_millis(row.get("received_at")?),
        sender: row.get("sender")?,
        client_ip: row.get("client_ip")?,
        subject: row.get("subject")?,
        size: row.get::<_, i64>("size")? as u64,
        kind: parse_kind(&kind)?,
        parent: row
            .get::<_, Option<String>>("parent_id")?
            .and_then(|id| QueueId::parse(&id)),
        has_content: row.get("has_content")?,
        key_version: row
            .get::<_, Option<i64>>("key_version")?
            .and_then(|v| u32::try_from(v).ok()),
        smtp_account: row.get("smtp_account")?,
    })
}

pub(super) fn message(conn: &Connection, id: &QueueId) -> Result<MessageRecord, StoreError> {
    conn.prepare_cached(&format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = ?1"
    ))?
    .query_row([id.as_str()], |row| Ok(message_record(row)))
    .optional()?
    .ok_or_else(|| StoreError::NotFound(id.clone()))?
}

/// Adds the message's recipients to their deciding policies' count for
/// the day (schema v13); mail no policy decided writes nothing.
fn count_hits(conn: &Connection, m: &NewMessage) -> Result<(), StoreError> {
    let mut by_policy: Vec<(i64, i64)> = Vec::new();
    for r in &m.recipients {
        if let Some(p) = r.decision.policy {
            match by_policy.iter_mut().find(|(id, _)| *id == p.0) {
                Some((_, n)) => *n += 1,
                None => by_policy.push((p.0, 1)),
            }
        }
    }
    if by_policy.is_empty() {
        return Ok(());
    }
    let day = to_millis(m.received_at).div_euclid(86_400_000);
    let mut upsert = conn.prepare_cached(
        "INSERT INTO policy_hits (policy_id, day, recipients) VALUES (?1, ?2, ?3)
         ON CONFLICT (day, policy_id) DO UPDATE SET recipients = recipients + excluded.recipients",
    )?;
    for (policy, n) in by_policy {
        upsert.execute(params![policy, day, n])?;
    }
    Ok(())
}

/// Recipients per policy from `day` on.
pub(super) fn policy_hits(
    conn: &Connection,
    day: i64,
) -> Result<std::collections::HashMap<sealpost_policy::PolicyId, u64>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT policy_id, SUM(recipients) FROM policy_hits WHERE day >= ?1 GROUP BY policy_id",
    )?;
    let rows = stmt.query_map([day], |r| {
        Ok((
            sealpost_policy::PolicyId(r.get(0)?),
            u64::try_from(r.get::<_, i64>(1)?).unwrap_or(0),
        ))
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}
