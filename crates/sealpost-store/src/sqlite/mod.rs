//! The SQLite implementation of [`Store`], the embedded default.
//!
//! One process owns the database. Reads go through a small pool; every
//! write goes through one writer task ([`writer`]) that batches concurrent
//! requests into a single transaction: one fsync makes a whole batch of
//! accepted messages durable (group commit).

mod writer;

use std::{
    collections::HashSet,
    path::Path,
    sync::Arc,
    time::{Duration, SystemTime},
};

use sqlx::{
    ConnectOptions, Row,
    sqlite::{
        SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
        SqliteSynchronous,
    },
};
use tokio::sync::{mpsc, oneshot};

use crate::{
    LeasedMessage, MessageRecord, NewMessage, QueueId, QueueStats, RecipientOutcome,
    RecipientRecord, RecipientStatus, Store, StoreError, model::from_millis, spool::Spool,
};
use sealpost_policy::PolicyId;
use writer::{Job, Op, OpResult};

/// Contents larger than this go to a spool file instead of the row.
const DEFAULT_INLINE_LIMIT: usize = 1024 * 1024;

/// Schema migrations, applied in order; `PRAGMA user_version` records how
/// many have run.
const MIGRATIONS: &[&str] = &[include_str!("schema_v1.sql")];

/// The SQLite store. Cheap to clone; all clones share one writer.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    /// An exclusive lock on `<database>.lock`, held for the life of the
    /// store: a SQLite database belongs to one process at a time.
    _lock: Arc<std::fs::File>,
    read: SqlitePool,
    writer: mpsc::Sender<Job>,
    spool: Arc<Spool>,
    inline_limit: usize,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `db_path` with its spool
    /// directory, applies migrations and removes orphaned spool files.
    ///
    /// # Errors
    /// [`StoreError`] when the file cannot be opened or migrated.
    pub async fn open(db_path: &Path, spool_dir: &Path) -> Result<Self, StoreError> {
        let lock = lock_database(db_path)?;
        let options = SqliteConnectOptions::new()
            .filename(db_path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: in WAL mode every commit fsyncs the WAL before it
            // returns. This is what lets the SMTP session answer 250 only
            // once the message is on stable storage. The writer lowers it
            // to NORMAL for batches that accept nothing (see
            // `writer::needs_fsync`).
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(30))
            .disable_statement_logging();
        let mut conn: SqliteConnection = options.connect().await?;
        migrate(&mut conn).await?;

        let spool = Arc::new(Spool::open(spool_dir)?);
        let referenced: HashSet<String> =
            sqlx::query_scalar("SELECT id FROM messages WHERE spooled = 1 AND has_content = 1")
                .fetch_all(&mut conn)
                .await?
                .into_iter()
                .collect();
        // The lock proves no other process uses this database, so every
        // lease in it belongs to a process that is gone (killed or crashed
        // mid-batch). Release them now rather than wait for them to expire:
        // those recipients are due again at once (at-least-once delivery).
        let released = sqlx::query("UPDATE recipients SET lease_owner = NULL, lease_until = 0 WHERE lease_owner IS NOT NULL")
            .execute(&mut conn)
            .await?
            .rows_affected();
        if released > 0 {
            tracing::info!(
                recipients = released,
                "released queue leases left by a previous process"
            );
        }
        let swept = spool.sweep(&referenced)?;
        if swept > 0 {
            tracing::info!(
                files = swept,
                "removed spool files left by an interrupted accept"
            );
        }

        let read = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await?;
        let (tx, rx) = mpsc::channel(1024);
        tokio::spawn(writer::run(conn, rx, spool.clone()));
        Ok(SqliteStore {
            _lock: Arc::new(lock),
            read,
            writer: tx,
            spool,
            inline_limit: DEFAULT_INLINE_LIMIT,
        })
    }

    /// Opens the store named by a `sqlite://path` URL (or a bare path).
    pub async fn open_url(url: &str, spool_dir: &Path) -> Result<Self, StoreError> {
        let path = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .unwrap_or(url);
        Self::open(Path::new(path), spool_dir).await
    }

    async fn submit(&self, op: Op) -> Result<OpResult, StoreError> {
        let (reply, rx) = oneshot::channel();
        self.writer
            .send(Job { op, reply })
            .await
            .map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }
}

/// Takes the exclusive lock beside the database file.
fn lock_database(db_path: &Path) -> Result<std::fs::File, StoreError> {
    if let Some(dir) = db_path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut name = db_path.as_os_str().to_owned();
    name.push(".lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&name)?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(StoreError::Unavailable(format!(
            "{} is in use by another sealpost process (lock {})",
            db_path.display(),
            Path::new(&name).display()
        ))),
        Err(std::fs::TryLockError::Error(e)) => Err(e.into()),
    }
}

async fn migrate(conn: &mut SqliteConnection) -> Result<(), StoreError> {
    let version: i64 = sqlx::query_scalar("PRAGMA user_version")
        .fetch_one(&mut *conn)
        .await?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        let mut tx = sqlx::Connection::begin(&mut *conn).await?;
        sqlx::raw_sql(*sql).execute(&mut *tx).await?;
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "PRAGMA user_version = {}",
            i + 1
        )))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        tracing::info!(version = i + 1, "applied database migration");
    }
    Ok(())
}

#[async_trait::async_trait]
impl Store for SqliteStore {
    async fn accept(&self, mut message: NewMessage) -> Result<QueueId, StoreError> {
        let id = message.id.clone();
        let spooled = message.content.len() > self.inline_limit;
        if spooled {
            let content = std::mem::take(&mut message.content);
            self.spool.write_durable(&id, content).await?;
        }
        match self
            .submit(Op::Accept {
                message: Box::new(message),
                spooled,
            })
            .await
        {
            Ok(_) => Ok(id),
            Err(e) => {
                if spooled {
                    self.spool.remove(&id);
                }
                Err(e)
            }
        }
    }

    async fn lease_due(
        &self,
        owner: &str,
        now: SystemTime,
        lease_until: SystemTime,
        limit: usize,
    ) -> Result<Vec<LeasedMessage>, StoreError> {
        match self
            .submit(Op::Lease {
                owner: owner.to_owned(),
                now,
                until: lease_until,
                limit,
            })
            .await?
        {
            OpResult::Leased(messages) => Ok(messages),
            other => Err(StoreError::Corrupt(format!(
                "unexpected writer result {other:?}"
            ))),
        }
    }

    async fn load_body(&self, id: &QueueId) -> Result<Vec<u8>, StoreError> {
        let row = sqlx::query("SELECT content, spooled, has_content FROM messages WHERE id = ?1")
            .bind(id.as_str())
            .fetch_optional(&self.read)
            .await?
            .ok_or_else(|| StoreError::NotFound(id.clone()))?;
        if row.get::<i64, _>("has_content") == 0 {
            return Err(StoreError::NotFound(id.clone()));
        }
        if row.get::<i64, _>("spooled") != 0 {
            return Ok(self.spool.read(id).await?);
        }
        row.get::<Option<Vec<u8>>, _>("content")
            .ok_or_else(|| StoreError::Corrupt(format!("message {id} has no content")))
    }

    async fn record(
        &self,
        outcomes: Vec<RecipientOutcome>,
        dsns: Vec<NewMessage>,
    ) -> Result<Vec<QueueId>, StoreError> {
        match self.submit(Op::Record { outcomes, dsns }).await? {
            OpResult::Recorded(ids) => Ok(ids),
            other => Err(StoreError::Corrupt(format!(
                "unexpected writer result {other:?}"
            ))),
        }
    }

    async fn next_due(&self) -> Result<Option<SystemTime>, StoreError> {
        let due: Option<i64> = sqlx::query_scalar(
            "SELECT MIN(MAX(next_attempt_at, lease_until)) FROM recipients WHERE status = 'queued'",
        )
        .fetch_one(&self.read)
        .await?;
        Ok(due.map(from_millis))
    }

    async fn queue_stats(&self) -> Result<QueueStats, StoreError> {
        let row = sqlx::query(
            "SELECT
               (SELECT COUNT(*) FROM recipients WHERE status = 'queued') AS queued,
               (SELECT COUNT(*) FROM recipients WHERE status = 'queued' AND attempts > 0) AS deferred,
               (SELECT COUNT(*) FROM recipients WHERE status = 'held') AS held",
        )
        .fetch_one(&self.read)
        .await?;
        Ok(QueueStats {
            queued: row.get::<i64, _>("queued") as u64,
            deferred: row.get::<i64, _>("deferred") as u64,
            held: row.get::<i64, _>("held") as u64,
            ..QueueStats::default()
        })
    }

    async fn recipients(&self, id: &QueueId) -> Result<Vec<RecipientRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT idx, address, status, route, policy_id, attempts, last_reply
             FROM recipients WHERE message_id = ?1 ORDER BY idx",
        )
        .bind(id.as_str())
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|row| {
                let status: String = row.get("status");
                Ok(RecipientRecord {
                    idx: row.get::<i64, _>("idx") as u32,
                    address: row.get("address"),
                    status: RecipientStatus::parse(&status)
                        .ok_or_else(|| StoreError::Corrupt(format!("unknown status {status:?}")))?,
                    route: row.get("route"),
                    policy: row.get::<Option<i64>, _>("policy_id").map(PolicyId),
                    attempts: row.get::<i64, _>("attempts") as u32,
                    last_reply: row.get("last_reply"),
                })
            })
            .collect()
    }

    async fn message(&self, id: &QueueId) -> Result<MessageRecord, StoreError> {
        let row = sqlx::query(
            "SELECT sender, client_ip, size, kind, has_content FROM messages WHERE id = ?1",
        )
        .bind(id.as_str())
        .fetch_optional(&self.read)
        .await?
        .ok_or_else(|| StoreError::NotFound(id.clone()))?;
        Ok(MessageRecord {
            id: id.clone(),
            sender: row.get("sender"),
            client_ip: row.get("client_ip"),
            size: row.get::<i64, _>("size") as u64,
            kind: writer::parse_kind(row.get("kind"))?,
            has_content: row.get::<i64, _>("has_content") != 0,
        })
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.read).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
