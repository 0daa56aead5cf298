//! The SQLite implementation of [`Store`], the embedded default.
//!
//! One process owns the database (an exclusive lock file proves it). Every
//! write goes through one writer thread ([`writer`]) that batches
//! concurrent requests into a single transaction: one fsync makes a whole
//! batch of accepted messages durable (group commit). Reads run on a small
//! pool of connections on tokio's blocking threads ([`readers`]). The SQL
//! itself is in [`queue`].

mod admin;
mod queue;
mod readers;
mod writer;

use std::{collections::HashSet, path::Path, sync::Arc, time::SystemTime};

use rusqlite::{Connection, OpenFlags, config::DbConfig};

use sealpost_policy::PolicyDocument;

use crate::{
    AdminStore, ApiKeyInfo, ApiKeyRecord, Changed, ConfigChange, ConfigCheck, Leased,
    MessageRecord, NewMessage, QueueId, QueueStats, RecipientOutcome, RecipientRecord, Store,
    StoreError, spool::Spool,
};
use readers::Readers;
use writer::Writer;

/// Contents larger than this go to a spool file instead of the row.
const DEFAULT_INLINE_LIMIT: usize = 1024 * 1024;

/// Schema migrations, applied in order; `PRAGMA user_version` records how
/// many have run.
const MIGRATIONS: &[&str] = &[include_str!("schema_v1.sql"), include_str!("schema_v2.sql")];

/// How long a connection waits for a lock held by another connection of
/// this process (a checkpoint, say) before it reports the database busy.
const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// The SQLite store. Cheap to clone; all clones share one writer.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    /// An exclusive lock on `<database>.lock`, held for the life of the
    /// store: a SQLite database belongs to one process at a time.
    _lock: Option<Arc<std::fs::File>>,
    readers: Arc<Readers>,
    writer: Writer,
    spool: Arc<Spool>,
    inline_limit: usize,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `db_path` with its spool
    /// directory, applies migrations, releases leases left by a previous
    /// process and removes orphaned spool files.
    ///
    /// # Errors
    /// [`StoreError`] when the file is in use by another process, or
    /// cannot be opened or migrated.
    pub async fn open(db_path: &Path, spool_dir: &Path) -> Result<Self, StoreError> {
        let db_path = db_path.to_owned();
        let spool_dir = spool_dir.to_owned();
        tokio::task::spawn_blocking(move || Self::open_blocking(&db_path, &spool_dir, false))
            .await
            .map_err(|e| StoreError::Unavailable(format!("opening the database: {e}")))?
    }

    /// Opens the database beside a running gateway, for administration
    /// commands (`sealpost apikey create`): no exclusive lock, and none of
    /// the start-up recovery that only the owning process may do (lease
    /// release, spool sweep). Use it only for the configuration and API
    /// keys, never for the mail queue.
    ///
    /// # Errors
    /// [`StoreError`] when the database cannot be opened or migrated.
    pub async fn open_shared(db_path: &Path, spool_dir: &Path) -> Result<Self, StoreError> {
        let db_path = db_path.to_owned();
        let spool_dir = spool_dir.to_owned();
        tokio::task::spawn_blocking(move || Self::open_blocking(&db_path, &spool_dir, true))
            .await
            .map_err(|e| StoreError::Unavailable(format!("opening the database: {e}")))?
    }

    fn open_blocking(db_path: &Path, spool_dir: &Path, shared: bool) -> Result<Self, StoreError> {
        let lock = if shared {
            None
        } else {
            Some(Arc::new(lock_database(db_path)?))
        };
        if shared && !db_path.exists() {
            return Err(StoreError::Unavailable(format!(
                "{} does not exist; start `sealpost serve` once to create it (or check database.url and the directory you run this in)",
                db_path.display()
            )));
        }
        let mut conn = connect(db_path, false)?;
        if shared {
            // Beside a running gateway: never migrate under it.
            let version: i64 = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
            if version != MIGRATIONS.len() as i64 {
                return Err(StoreError::Unavailable(format!(
                    "{} is at schema version {version}, this sealpost expects {}; run `sealpost serve` of this version once first",
                    db_path.display(),
                    MIGRATIONS.len()
                )));
            }
        } else {
            migrate(&mut conn)?;
        }
        admin::ensure_default_definition(&conn)?;
        let spool = Arc::new(Spool::open(spool_dir)?);
        if shared {
            let readers = Arc::new(Readers::new(db_path.to_owned()));
            let writer = Writer::start(conn, spool.clone())?;
            return Ok(SqliteStore {
                _lock: None,
                readers,
                writer,
                spool,
                inline_limit: DEFAULT_INLINE_LIMIT,
            });
        }

        let referenced: HashSet<String> = queue::spooled_ids(&conn)?.into_iter().collect();
        // The lock proves no other process uses this database, so every
        // lease in it belongs to a process that is gone (killed or crashed
        // mid-batch). Release them now rather than wait for them to expire:
        // those recipients are due again at once (at-least-once delivery).
        let released = queue::release_all_leases(&conn)?;
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

        let readers = Arc::new(Readers::new(db_path.to_owned()));
        let writer = Writer::start(conn, spool.clone())?;
        Ok(SqliteStore {
            _lock: lock,
            readers,
            writer,
            spool,
            inline_limit: DEFAULT_INLINE_LIMIT,
        })
    }

    /// Opens the store named by a `sqlite://path` URL (or a bare path).
    pub async fn open_url(url: &str, spool_dir: &Path) -> Result<Self, StoreError> {
        Self::open(&Self::path_of_url(url), spool_dir).await
    }

    /// The file a `sqlite://path` URL (or a bare path) names.
    pub fn path_of_url(url: &str) -> std::path::PathBuf {
        let path = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .unwrap_or(url);
        std::path::PathBuf::from(path)
    }
}

/// Opens one connection with the settings every connection of the store
/// shares. `read_only` connections refuse writes (`query_only`).
fn connect(db_path: &Path, read_only: bool) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(
        db_path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.set_prepared_statement_cache_capacity(64);
    // The query planner's stability guarantee: plans do not depend on bound
    // values. Without it (the bundled SQLite has STAT4), every new binding
    // of an indexed range re-prepares the statement, which was 7% of the
    // writer's CPU in the one-session benchmark.
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // FULL: in WAL mode every commit fsyncs the WAL before it returns. This
    // is what lets the SMTP session answer 250 only once the message is on
    // stable storage. The writer lowers it to NORMAL for batches that
    // accept nothing (see `writer::needs_fsync`).
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", true)?;
    if read_only {
        conn.pragma_update(None, "query_only", true)?;
    }
    Ok(conn)
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

fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
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
        let result = self
            .writer
            .write(true, move |conn, _| {
                queue::insert_message(conn, &message, spooled)
            })
            .await;
        match result {
            Ok(()) => Ok(id),
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
    ) -> Result<Leased, StoreError> {
        let owner = owner.to_owned();
        self.writer
            .write(false, move |conn, _| {
                Ok(Leased {
                    messages: queue::lease(conn, &owner, now, lease_until, limit)?,
                    next_due: queue::next_due(conn)?,
                })
            })
            .await
    }

    async fn load_body(&self, id: &QueueId) -> Result<Vec<u8>, StoreError> {
        let key = id.clone();
        match self
            .readers
            .read(move |conn| queue::load_body(conn, &key))
            .await?
        {
            queue::Body::Inline(content) => Ok(content),
            queue::Body::Spooled => Ok(self.spool.read(id).await?),
        }
    }

    async fn record(
        &self,
        outcomes: Vec<RecipientOutcome>,
        dsns: Vec<NewMessage>,
    ) -> Result<Vec<QueueId>, StoreError> {
        self.writer
            .write(false, move |conn, effects| {
                effects.purged = queue::record_outcomes(conn, &outcomes)?;
                for dsn in &dsns {
                    queue::insert_message(conn, dsn, false)?;
                }
                Ok(dsns.iter().map(|dsn| dsn.id.clone()).collect())
            })
            .await
    }

    async fn next_due(&self) -> Result<Option<SystemTime>, StoreError> {
        self.readers.read(queue::next_due).await
    }

    async fn queue_stats(&self) -> Result<QueueStats, StoreError> {
        self.readers.read(queue::queue_stats).await
    }

    async fn recipients(&self, id: &QueueId) -> Result<Vec<RecipientRecord>, StoreError> {
        let id = id.clone();
        self.readers
            .read(move |conn| queue::recipients(conn, &id))
            .await
    }

    async fn message(&self, id: &QueueId) -> Result<MessageRecord, StoreError> {
        let id = id.clone();
        self.readers
            .read(move |conn| queue::message(conn, &id))
            .await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.readers
            .read(|conn| Ok(conn.query_row("SELECT 1", [], |_| Ok(()))?))
            .await
    }
}

#[async_trait::async_trait]
impl AdminStore for SqliteStore {
    async fn load_config(&self) -> Result<PolicyDocument, StoreError> {
        self.readers.read(admin::load_document).await
    }

    async fn change_config(
        &self,
        change: ConfigChange,
        mut check: ConfigCheck,
    ) -> Result<Changed, StoreError> {
        self.writer
            .write(true, move |conn, _| {
                let id = admin::apply_change(conn, &change)?;
                let document = admin::load_document(conn)?;
                let set = check(&document).map_err(StoreError::Rejected)?;
                Ok(Changed { id, set })
            })
            .await
    }

    async fn create_api_key(&self, key: ApiKeyRecord) -> Result<(), StoreError> {
        self.writer
            .write(true, move |conn, _| admin::insert_api_key(conn, &key))
            .await
    }

    async fn api_key(&self, id: &str) -> Result<Option<ApiKeyRecord>, StoreError> {
        let id = id.to_owned();
        self.readers
            .read(move |conn| admin::api_key(conn, &id))
            .await
    }

    async fn list_api_keys(&self) -> Result<Vec<ApiKeyInfo>, StoreError> {
        self.readers.read(admin::list_api_keys).await
    }

    async fn revoke_api_key(&self, id: &str) -> Result<bool, StoreError> {
        let id = id.to_owned();
        self.writer
            .write(true, move |conn, _| admin::revoke_api_key(conn, &id))
            .await
    }

    async fn touch_api_key(&self, id: &str, at: SystemTime) -> Result<(), StoreError> {
        let id = id.to_owned();
        let at = crate::model::to_millis(at);
        self.writer
            .write(false, move |conn, _| admin::touch_api_key(conn, &id, at))
            .await
    }

    async fn has_api_keys(&self) -> Result<bool, StoreError> {
        self.readers
            .read(|conn| {
                Ok(
                    conn.query_row("SELECT EXISTS (SELECT 1 FROM api_keys)", [], |row| {
                        row.get(0)
                    })?,
                )
            })
            .await
    }
}

#[cfg(test)]
mod tests;
