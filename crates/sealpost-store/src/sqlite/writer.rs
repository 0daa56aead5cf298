//! The single writer of the SQLite store, with group commit.
//!
//! SQLite admits one writer at a time, and each durable commit costs an
//! fsync. Rather than let sessions queue for the lock and pay one fsync
//! each, every write is sent here as a [`Job`]: the task takes whatever jobs
//! are waiting (up to [`MAX_BATCH`]), applies them in one transaction,
//! commits once, and only then answers every job. A job is never answered
//! `Ok` before the commit that contains it has returned.
//!
//! Statements are few per job (every statement is a round trip to the
//! SQLite worker thread, and context switches, not SQL, were the measured
//! cost): no savepoints on the fast path, and outcomes and purges travel as
//! JSON arrays so a whole chunk is one statement each.

use std::{collections::BTreeSet, sync::Arc, time::SystemTime};

use sqlx::{Row, sqlite::SqliteConnection};
use tokio::sync::{mpsc, oneshot};

use sealpost_policy::EmailAddress;

use crate::{
    ClientInfo, DsnReturn, LeasedMessage, LeasedRecipient, MessageKind, NewMessage, Notify,
    OutcomeKind, QueueId, RecipientOutcome, RecipientStatus, StoreError,
    model::{from_millis, route_text, to_millis},
    spool::Spool,
};

/// Most jobs in one transaction; bounds the latency a batch adds.
const MAX_BATCH: usize = 256;

/// One write request and where to send its result.
#[derive(Debug)]
pub(super) struct Job {
    pub op: Op,
    pub reply: oneshot::Sender<Result<OpResult, StoreError>>,
}

#[derive(Debug)]
pub(super) enum Op {
    Accept {
        message: Box<NewMessage>,
        /// The content is already durable in the spool; store no blob.
        spooled: bool,
    },
    Lease {
        owner: String,
        now: SystemTime,
        until: SystemTime,
        limit: usize,
    },
    Record {
        outcomes: Vec<RecipientOutcome>,
        dsns: Vec<NewMessage>,
    },
}

#[derive(Debug)]
pub(super) enum OpResult {
    Accepted,
    Leased(Vec<LeasedMessage>),
    Recorded(Vec<QueueId>),
}

/// Runs until every sender is dropped.
pub(super) async fn run(
    mut conn: SqliteConnection,
    mut rx: mpsc::Receiver<Job>,
    spool: Arc<Spool>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut state = WriterState {
        synchronous_full: true,
        pending_removals: Vec::new(),
    };
    while let Some(first) = rx.recv().await {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        commit_batch(&mut conn, &mut batch, &spool, &mut state).await;
    }
}

/// What the writer remembers between batches.
struct WriterState {
    /// The connection's current `PRAGMA synchronous` (FULL or NORMAL).
    synchronous_full: bool,
    /// Spool files whose purge was committed without an fsync: removed
    /// only after the next fsync'd commit, so a crash can never leave a row
    /// that points at a deleted file.
    pending_removals: Vec<QueueId>,
}

/// Only a batch that accepts mail needs its own fsync: that is the `250`
/// promise. Leases and delivery outcomes commit without one (`synchronous
/// = NORMAL`; in WAL mode the log is still written in order and fsync'd by
/// the next FULL commit or checkpoint). A crash can lose such a commit
/// and nothing more: a lost lease is released at the next start, a lost
/// outcome means the recipient is delivered again (at-least-once).
fn needs_fsync(batch: &[Job]) -> bool {
    batch.iter().any(|job| matches!(job.op, Op::Accept { .. }))
}

async fn commit_batch(
    conn: &mut SqliteConnection,
    batch: &mut Vec<Job>,
    spool: &Spool,
    state: &mut WriterState,
) {
    let full = needs_fsync(batch);
    if full != state.synchronous_full {
        let pragma = if full {
            "PRAGMA synchronous = FULL"
        } else {
            "PRAGMA synchronous = NORMAL"
        };
        if let Err(e) = exec(conn, pragma).await {
            fail_all(batch, &e);
            return;
        }
        state.synchronous_full = full;
    }
    // Fast path: every job in one transaction. If any job fails, undo the
    // whole batch and run each job in a transaction of its own, so one bad
    // job never takes its neighbours down and never half-commits.
    let mut purged = Vec::new();
    let results = match run_jobs(conn, batch, &mut purged).await {
        Ok(results) => results,
        Err(e) => {
            tracing::warn!(error = %e, jobs = batch.len(), "batch failed; retrying its jobs one by one");
            purged.clear();
            let mut results = Vec::with_capacity(batch.len());
            for job in batch.iter_mut() {
                let mut own_purged = Vec::new();
                let result = run_jobs(conn, std::slice::from_mut(job), &mut own_purged)
                    .await
                    .and_then(|mut r| r.pop().expect("one result per job"));
                if result.is_ok() {
                    purged.append(&mut own_purged);
                }
                results.push(result);
            }
            results
        }
    };
    state.pending_removals.append(&mut purged);
    if full {
        // Everything committed so far is on stable storage now, including
        // the purges of earlier NORMAL batches: their files can go. A crash
        // before this leaves orphans for the next start's sweep.
        for id in state.pending_removals.drain(..) {
            spool.remove(&id);
        }
    }
    for (job, result) in batch.drain(..).zip(results) {
        let _ = job.reply.send(result);
    }
}

fn fail_all(batch: &mut Vec<Job>, error: &StoreError) {
    tracing::error!(error = %error, jobs = batch.len(), "database commit failed");
    for job in batch.drain(..) {
        let _ = job
            .reply
            .send(Err(StoreError::Unavailable(error.to_string())));
    }
}

/// Runs `jobs` in one transaction: all commit, or none (the error says
/// why). Returns each job's result.
async fn run_jobs(
    conn: &mut SqliteConnection,
    jobs: &mut [Job],
    purged: &mut Vec<QueueId>,
) -> Result<Vec<Result<OpResult, StoreError>>, StoreError> {
    exec(conn, "BEGIN IMMEDIATE").await?;
    // All accepts of the batch in one go (the common case under load),
    // then the other jobs in order.
    let accepts: Vec<(&NewMessage, bool)> = jobs
        .iter()
        .filter_map(|job| match &job.op {
            Op::Accept { message, spooled } => Some((&**message, *spooled)),
            _ => None,
        })
        .collect();
    if let Err(e) = insert_messages(conn, &accepts).await {
        let _ = exec(conn, "ROLLBACK").await;
        return Err(e);
    }
    let mut results = Vec::with_capacity(jobs.len());
    for job in jobs.iter_mut() {
        if matches!(job.op, Op::Accept { .. }) {
            results.push(Ok(OpResult::Accepted));
            continue;
        }
        match apply(conn, &mut job.op, purged).await {
            Ok(r) => results.push(Ok(r)),
            Err(e) => {
                let _ = exec(conn, "ROLLBACK").await;
                return Err(e);
            }
        }
    }
    if let Err(e) = exec(conn, "COMMIT").await {
        let _ = exec(conn, "ROLLBACK").await;
        return Err(e);
    }
    Ok(results)
}

async fn exec(conn: &mut SqliteConnection, sql: &'static str) -> Result<(), StoreError> {
    sqlx::query(sql).execute(&mut *conn).await?;
    Ok(())
}

async fn apply(
    conn: &mut SqliteConnection,
    op: &mut Op,
    purged: &mut Vec<QueueId>,
) -> Result<OpResult, StoreError> {
    match op {
        Op::Accept { message, spooled } => {
            insert_messages(conn, &[(message, *spooled)]).await?;
            Ok(OpResult::Accepted)
        }
        Op::Lease {
            owner,
            now,
            until,
            limit,
        } => lease(conn, owner, *now, *until, *limit)
            .await
            .map(OpResult::Leased),
        Op::Record { outcomes, dsns } => {
            record_outcomes(conn, outcomes).await?;
            let touched: BTreeSet<&str> = outcomes.iter().map(|o| o.message.as_str()).collect();
            purged.extend(purge_if_done(conn, &touched).await?);
            let mut ids = Vec::with_capacity(dsns.len());
            for dsn in dsns.iter() {
                insert_message(conn, dsn, false).await?;
                ids.push(dsn.id.clone());
            }
            Ok(OpResult::Recorded(ids))
        }
    }
}

/// Rows per multi-row INSERT of messages: few statement variants for the
/// prepared-statement cache, far below SQLite's bind-parameter limit.
const INSERT_ROWS: usize = 16;

/// Inserts one message and its recipients.
pub(super) async fn insert_message(
    conn: &mut SqliteConnection,
    m: &NewMessage,
    spooled: bool,
) -> Result<(), StoreError> {
    insert_messages(conn, &[(m, spooled)]).await
}

/// Inserts messages and all their recipients with as few statements as
/// possible: messages up to [`INSERT_ROWS`] per statement, recipients in
/// one statement (as a JSON array).
pub(super) async fn insert_messages(
    conn: &mut SqliteConnection,
    messages: &[(&NewMessage, bool)],
) -> Result<(), StoreError> {
    for chunk in messages.chunks(INSERT_ROWS) {
        let rows = vec!["(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"; chunk.len()].join(", ");
        let sql = format!(
            "INSERT INTO messages (id, received_at, sender, client_ip, client_name, helo, protocol,
                size, body_8bit, smtputf8, env_id, ret, kind, expires_at, content, spooled)
             VALUES {rows}"
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (m, spooled) in chunk {
            query = query
                .bind(m.id.as_str())
                .bind(to_millis(m.received_at))
                .bind(m.sender.as_ref().map_or("", EmailAddress::as_str))
                .bind(m.client.ip.to_string())
                .bind(m.client.name.as_deref())
                .bind(m.client.helo.as_deref())
                .bind(m.client.protocol.as_str())
                .bind(m.content.len() as i64)
                .bind(m.body_8bit)
                .bind(m.smtputf8)
                .bind(m.env_id.as_deref())
                .bind(m.ret.map(|r| match r {
                    DsnReturn::Full => "FULL",
                    DsnReturn::Headers => "HDRS",
                }))
                .bind(match m.kind {
                    MessageKind::Mail => "mail",
                    MessageKind::Dsn => "dsn",
                })
                .bind(to_millis(m.expires_at))
                .bind((!*spooled).then_some(m.content.as_slice()))
                .bind(*spooled);
        }
        query.execute(&mut *conn).await?;
    }
    let recipients: Vec<serde_json::Value> = messages
        .iter()
        .flat_map(|(m, _)| {
            m.recipients.iter().enumerate().map(|(idx, r)| {
                serde_json::json!({
                    "m": m.id.as_str(),
                    "i": idx,
                    "a": r.address.as_str(),
                    "o": r.orcpt,
                    "n": r.notify.bits(),
                    "r": route_text(&r.decision.route),
                    "p": r.decision.policy.map(|p| p.0),
                    "s": RecipientStatus::for_route(&r.decision.route).as_str(),
                    "t": to_millis(m.received_at),
                })
            })
        })
        .collect();
    if !recipients.is_empty() {
        sqlx::query(
            "INSERT INTO recipients (message_id, idx, address, orcpt, notify, route, policy_id,
                status, next_attempt_at, updated_at)
             SELECT value ->> '$.m', value ->> '$.i', value ->> '$.a', value ->> '$.o',
                    value ->> '$.n', value ->> '$.r', value ->> '$.p', value ->> '$.s',
                    value ->> '$.t', value ->> '$.t'
             FROM json_each(?1)",
        )
        .bind(serde_json::Value::Array(recipients).to_string())
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

async fn lease(
    conn: &mut SqliteConnection,
    owner: &str,
    now: SystemTime,
    until: SystemTime,
    limit: usize,
) -> Result<Vec<LeasedMessage>, StoreError> {
    let now = to_millis(now);
    let rows = sqlx::query(
        "UPDATE recipients SET lease_owner = ?1, lease_until = ?2
         WHERE rowid IN (
             SELECT rowid FROM recipients
             WHERE status = 'queued' AND next_attempt_at <= ?3 AND lease_until <= ?3
             ORDER BY next_attempt_at LIMIT ?4)
         RETURNING message_id, idx, address, orcpt, notify, attempts",
    )
    .bind(owner)
    .bind(to_millis(until))
    .bind(now)
    .bind(limit as i64)
    .fetch_all(&mut *conn)
    .await?;
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let mut by_message: std::collections::BTreeMap<String, Vec<LeasedRecipient>> =
        Default::default();
    for row in &rows {
        let address: String = row.get("address");
        let recipient = LeasedRecipient {
            idx: row.get::<i64, _>("idx") as u32,
            address: EmailAddress::parse(&address)
                .map_err(|e| StoreError::Corrupt(format!("stored address {address:?}: {e}")))?,
            orcpt: row.get("orcpt"),
            notify: Notify::from_bits(row.get::<i64, _>("notify") as u8),
            attempts: row.get::<i64, _>("attempts") as u32,
        };
        by_message
            .entry(row.get("message_id"))
            .or_default()
            .push(recipient);
    }
    let ids: Vec<&String> = by_message.keys().collect();
    let ids_json = serde_json::to_string(&ids).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let messages = sqlx::query(
        "SELECT id, received_at, sender, client_ip, client_name, helo, protocol, size, body_8bit, smtputf8, env_id, ret,
                expires_at, kind, content
         FROM messages WHERE id IN (SELECT value FROM json_each(?1))",
    )
    .bind(ids_json)
    .fetch_all(&mut *conn)
    .await?;
    let mut leased = Vec::with_capacity(messages.len());
    for row in messages {
        let id: String = row.get("id");
        let mut recipients = by_message.remove(&id).unwrap_or_default();
        recipients.sort_by_key(|r| r.idx);
        let sender: String = row.get("sender");
        let client_ip: String = row.get("client_ip");
        leased.push(LeasedMessage {
            id: QueueId::parse(&id)
                .ok_or_else(|| StoreError::Corrupt(format!("queue id {id:?}")))?,
            received_at: from_millis(row.get("received_at")),
            sender: if sender.is_empty() {
                None
            } else {
                Some(
                    EmailAddress::parse(&sender).map_err(|e| {
                        StoreError::Corrupt(format!("stored sender {sender:?}: {e}"))
                    })?,
                )
            },
            client: ClientInfo {
                ip: client_ip
                    .parse()
                    .map_err(|_| StoreError::Corrupt(format!("stored client ip {client_ip:?}")))?,
                name: row.get("client_name"),
                helo: row.get("helo"),
                protocol: row.get("protocol"),
            },
            size: row.get::<i64, _>("size") as u64,
            body_8bit: row.get("body_8bit"),
            smtputf8: row.get("smtputf8"),
            env_id: row.get("env_id"),
            ret: match row.get::<Option<String>, _>("ret").as_deref() {
                Some("FULL") => Some(DsnReturn::Full),
                Some("HDRS") => Some(DsnReturn::Headers),
                _ => None,
            },
            expires_at: from_millis(row.get("expires_at")),
            kind: parse_kind(row.get("kind"))?,
            recipients,
            content: row.get("content"),
        });
    }
    Ok(leased)
}

pub(super) fn parse_kind(kind: String) -> Result<MessageKind, StoreError> {
    match kind.as_str() {
        "mail" => Ok(MessageKind::Mail),
        "dsn" => Ok(MessageKind::Dsn),
        other => Err(StoreError::Corrupt(format!(
            "unknown message kind {other:?}"
        ))),
    }
}

/// Records every outcome with one statement: the outcomes travel as a
/// JSON array (`json_each`), so a chunk costs one round trip to SQLite
/// however many recipients it has.
async fn record_outcomes(
    conn: &mut SqliteConnection,
    outcomes: &[RecipientOutcome],
) -> Result<(), StoreError> {
    if outcomes.is_empty() {
        return Ok(());
    }
    let rows: Vec<serde_json::Value> = outcomes
        .iter()
        .map(|o| {
            let (status, next) = match o.result {
                OutcomeKind::Delivered => (RecipientStatus::Delivered, None),
                OutcomeKind::Failed => (RecipientStatus::Failed, None),
                OutcomeKind::Deferred { retry_at } => {
                    (RecipientStatus::Queued, Some(to_millis(retry_at)))
                }
            };
            serde_json::json!({
                "m": o.message.as_str(),
                "i": o.idx,
                "s": status.as_str(),
                "n": next,
                "a": to_millis(o.attempted_at),
                "r": o.reply,
            })
        })
        .collect();
    sqlx::query(
        "UPDATE recipients SET status = o.s, attempts = attempts + 1,
             next_attempt_at = COALESCE(o.n, next_attempt_at), lease_owner = NULL, lease_until = 0,
             last_attempt_at = o.a, last_reply = o.r, updated_at = o.a
         FROM (SELECT value ->> '$.m' AS m, value ->> '$.i' AS i, value ->> '$.s' AS s,
                      value ->> '$.n' AS n, value ->> '$.a' AS a, value ->> '$.r' AS r
               FROM json_each(?1)) AS o
         WHERE recipients.message_id = o.m AND recipients.idx = o.i",
    )
    .bind(serde_json::Value::Array(rows).to_string())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Drops the content of every message in `ids` that no recipient still
/// needs. Returns the ids whose spool files can be removed.
async fn purge_if_done(
    conn: &mut SqliteConnection,
    ids: &BTreeSet<&str>,
) -> Result<Vec<QueueId>, StoreError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let ids_json = serde_json::to_string(ids).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let rows = sqlx::query(
        "UPDATE messages SET content = NULL, has_content = 0
         WHERE id IN (SELECT value FROM json_each(?1)) AND has_content = 1 AND NOT EXISTS (
             SELECT 1 FROM recipients WHERE message_id = messages.id AND status IN ('queued', 'held'))
         RETURNING id, spooled",
    )
    .bind(ids_json)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .iter()
        .filter(|r| r.get::<i64, _>("spooled") != 0)
        .filter_map(|r| QueueId::parse(&r.get::<String, _>("id")))
        .collect())
}
