//! The SQLite implementation of [`Store`], the embedded default.
//!
//! One process owns the database (an exclusive lock file proves it). Every
//! write goes through one writer thread ([`writer`]) that batches
//! concurrent requests into a single transaction: one fsync makes a whole
//! batch of accepted messages durable (group commit). Reads run on a small
//! pool of connections on tokio's blocking threads ([`readers`]). The SQL
//! itself is in [`queue`].

mod admin;
mod audit;
mod branding;
mod config_writes;
mod console;
mod dashboard;
pub(super) mod envelopes;
mod portal;
mod queue;
mod queue_admin;
mod readers;
mod secure;
mod sessions;
mod smtp_accounts;
mod totp;
mod writer;

use std::{
    collections::HashSet,
    path::Path,
    sync::Arc,
    time::{Duration, SystemTime},
};

use rusqlite::{Connection, OpenFlags, OptionalExtension, config::DbConfig};

use sealpost_policy::PolicyDocument;
use sealpost_vault::{TokenHash, Vault, WrappedKey};

use crate::{
    AdminStore, ApiKeyInfo, ApiKeyRecord, Changed, ConfigChange, ConfigCheck, Dashboard, ExtendTo,
    KeyUsage, Leased, LeasedMessage, MessageDetail, MessageFilter, MessageRecord, NewMessage,
    NotificationTarget, QueueId, QueueStats, RecallOutcome, RecipientOutcome, RecipientRecord,
    SecureAccess, SecureStore, Store, StoreError, TrackedMessage, VerifyBatch,
    audit::{Actor, AuditEntry, AuditQuery, Change},
    private,
    spool::Spool,
};
use queue::SealedContent;
use readers::Readers;
use writer::Writer;

/// Contents larger than this go to a spool file instead of the row.
const DEFAULT_INLINE_LIMIT: usize = 1024 * 1024;

/// Schema migrations, applied in order; `PRAGMA user_version` records how
/// many have run.
const MIGRATIONS: &[&str] = &[
    include_str!("schema_v1.sql"),
    include_str!("schema_v2.sql"),
    include_str!("schema_v3.sql"),
    include_str!("schema_v4.sql"),
    include_str!("schema_v5.sql"),
    include_str!("schema_v6.sql"),
    include_str!("schema_v7.sql"),
    include_str!("schema_v8.sql"),
    include_str!("schema_v9.sql"),
    include_str!("schema_v10.sql"),
    include_str!("schema_v11.sql"),
    include_str!("schema_v12.sql"),
    include_str!("schema_v13.sql"),
    include_str!("schema_v14.sql"),
    include_str!("schema_v15.sql"),
    include_str!("schema_v16.sql"),
    include_str!("schema_v17.sql"),
    include_str!("schema_v18.sql"),
    include_str!("schema_v19.sql"),
    include_str!("schema_v20.sql"),
    include_str!("schema_v21.sql"),
];

/// Contents larger than this are sealed and opened on a blocking thread.
const BLOCKING_SEAL: usize = 256 * 1024;

/// How long a connection waits for a lock held by another connection of
/// this process (a checkpoint, say) before it reports the database busy.
const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// The first schema version with the policy configuration tables; every
/// migration after it leaves them as they are (a migration that changes
/// them must raise this, so `config check` never misreads an old one).
const CONFIG_SINCE: i64 = 2;

/// The policy configuration of a database, as [`SqliteStore::read_config`]
/// found it.
#[derive(Debug, Clone)]
pub enum StoredConfig {
    /// The database has this version's schema, or an older one whose
    /// configuration tables are the same.
    Current(PolicyDocument),
    /// The database has schema version `found`, this sealpost `expected`:
    /// an older one is migrated by the next `serve`, a newer one was
    /// written by a newer sealpost. Its configuration was not read.
    OtherSchema { found: i64, expected: i64 },
}

/// The SQLite store. Cheap to clone; all clones share one writer.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    /// An exclusive lock on `<database>.lock`, held for the life of the
    /// store: a SQLite database belongs to one process at a time.
    _lock: Option<Arc<std::fs::File>>,
    readers: Arc<Readers>,
    writer: Writer,
    spool: Arc<Spool>,
    /// Seals every content before it is written and opens it when read:
    /// nothing of a message is stored in plaintext (SPEC §8).
    vault: Arc<Vault>,
    inline_limit: usize,
    /// The policy configuration as last committed, so a change to one
    /// object is checked without reading the whole configuration again
    /// (see `config_writes.rs`).
    config_cache: config_writes::ConfigCache,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `db_path` with its spool
    /// directory, applies migrations, releases leases left by a previous
    /// process and removes orphaned spool files.
    ///
    /// The vault's keyring is checked against the key versions the
    /// database has used (a wrong key file is refused here, before any
    /// mail is sealed with it), and content stored by a version before the
    /// vault is sealed.
    ///
    /// # Errors
    /// [`StoreError`] when the file is in use by another process, cannot
    /// be opened or migrated, or the keyring does not fit the database.
    pub async fn open(
        db_path: &Path,
        spool_dir: &Path,
        vault: Arc<Vault>,
    ) -> Result<Self, StoreError> {
        let db_path = db_path.to_owned();
        let spool_dir = spool_dir.to_owned();
        tokio::task::spawn_blocking(move || Self::open_blocking(&db_path, &spool_dir, false, vault))
            .await
            .map_err(|e| StoreError::Unavailable(format!("opening the database: {e}")))?
    }

    /// Opens the database beside a running gateway, for administration
    /// commands (`sealpost apikey create`): no exclusive lock, and none of
    /// the start-up recovery that only the owning process may do (lease
    /// release, spool sweep). Use it only for the configuration and API
    /// keys, never for the mail queue.
    ///
    /// It has no master key (a throwaway one), so it can neither read nor
    /// write message content.
    ///
    /// # Errors
    /// [`StoreError`] when the database cannot be opened or migrated.
    pub async fn open_shared(db_path: &Path, spool_dir: &Path) -> Result<Self, StoreError> {
        let db_path = db_path.to_owned();
        let spool_dir = spool_dir.to_owned();
        tokio::task::spawn_blocking(move || {
            Self::open_blocking(&db_path, &spool_dir, true, Arc::new(Vault::ephemeral()))
        })
        .await
        .map_err(|e| StoreError::Unavailable(format!("opening the database: {e}")))?
    }

    fn open_blocking(
        db_path: &Path,
        spool_dir: &Path,
        shared: bool,
        vault: Arc<Vault>,
    ) -> Result<Self, StoreError> {
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
        if !shared {
            create_private(db_path)?;
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
                vault,
                inline_limit: DEFAULT_INLINE_LIMIT,
                config_cache: Default::default(),
            });
        }

        let tightened = spool.restrict()?;
        if tightened > 0 {
            tracing::info!(
                files = tightened,
                "made the spool directory and files private (0700 and 0600)"
            );
        }
        secure::check_keyring(&conn, &vault)?;
        let sealed = seal_unsealed(&conn, &spool, &vault)?;
        if sealed > 0 {
            tracing::info!(
                messages = sealed,
                "sealed message contents stored before the vault existed"
            );
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
            vault,
            inline_limit: DEFAULT_INLINE_LIMIT,
            config_cache: Default::default(),
        })
    }

    /// Reads the stored policy configuration without changing anything:
    /// a read-only connection, no lock (a gateway may be running), no
    /// migration, no default definition inserted, no database created
    /// (SQLite may create the `-wal` and `-shm` files a WAL database has
    /// while open, owned like the database). For `sealpost config check`.
    /// Blocking.
    ///
    /// # Errors
    /// [`StoreError`] when the file does not exist, is not a database, or
    /// its configuration cannot be read.
    pub fn read_config(db_path: &Path) -> Result<StoredConfig, StoreError> {
        let conn = Connection::open_with_flags(
            db_path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        let found: i64 = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
        let expected = MIGRATIONS.len() as i64;
        // The configuration tables came with version 2 and no migration
        // since has changed them, so a database the next `serve` will
        // migrate is read as it is: a check before an upgrade is the one
        // that matters most.
        if !(CONFIG_SINCE..=expected).contains(&found) {
            return Ok(StoredConfig::OtherSchema { found, expected });
        }
        Ok(StoredConfig::Current(admin::load_document(&conn)?))
    }

    /// Opens the store named by a `sqlite://path` URL (or a bare path).
    pub async fn open_url(
        url: &str,
        spool_dir: &Path,
        vault: Arc<Vault>,
    ) -> Result<Self, StoreError> {
        Self::open(&Self::path_of_url(url), spool_dir, vault).await
    }

    /// Seals and commits a message durably; `alone`: commit on this
    /// thread when the writer is free (see [`Store::accept_alone`]).
    async fn accept_with(
        &self,
        mut message: NewMessage,
        alone: bool,
    ) -> Result<QueueId, StoreError> {
        let id = message.id.clone();

        let mut written = Vec::with_capacity(1 + message.attached.len());
        let mut all = Vec::with_capacity(1 + message.attached.len());
        let attached = std::mem::take(&mut message.attached);
        for mut m in std::iter::once(message).chain(attached) {
            match self.seal(&mut m).await {
                Ok(sealed) => {
                    written.push((m.id.clone(), sealed.inline.is_none()));
                    all.push((m, sealed));
                }
                Err(e) => {
                    self.forget_spooled(&written);
                    return Err(e);
                }
            }
        }
        let insert = move |conn: &Connection, _: &mut writer::Effects| {
            for (m, sealed) in &all {
                queue::insert_message(conn, m, sealed)?;
            }
            Ok(())
        };
        let result = if alone {
            self.writer.write_inline(true, insert).await
        } else {
            self.writer.write(true, insert).await
        };
        match result {
            Ok(()) => Ok(id),
            Err(e) => {
                self.forget_spooled(&written);
                Err(e)
            }
        }
    }

    /// Seals a message's content (taking it out of the message); a
    /// content too large for the row goes to the spool, durably.
    async fn seal(&self, message: &mut NewMessage) -> Result<SealedContent, StoreError> {
        let content = std::mem::take(&mut message.content);
        let size = content.len() as u64;
        let context = message.id.as_str().as_bytes().to_vec();
        let (key, sealed) = if content.len() > BLOCKING_SEAL {
            let vault = self.vault.clone();
            tokio::task::spawn_blocking(move || vault.seal(&context, content))
                .await
                .map_err(|e| StoreError::Unavailable(format!("sealing: {e}")))?
        } else {
            self.vault.seal(&context, content)
        };
        if size as usize > self.inline_limit {
            self.spool.write_durable(&message.id, sealed).await?;
            Ok(SealedContent {
                key,
                inline: None,
                size,
            })
        } else {
            Ok(SealedContent {
                key,
                inline: Some(sealed),
                size,
            })
        }
    }

    /// Opens the inline contents of leased messages, off the writer
    /// thread. One that does not open is left without content: the worker
    /// asks load_body, which reports why, and the lease runs out (never
    /// garbage sent).
    async fn open_leased(
        &self,
        leased: Vec<(LeasedMessage, Option<WrappedKey>)>,
    ) -> Vec<LeasedMessage> {
        let mut messages = Vec::with_capacity(leased.len());
        for (mut message, key) in leased {
            if let (Some(sealed), Some(key)) = (message.content.take(), key) {
                match self.open_sealed(&message.id, key, sealed).await {
                    Ok(content) => message.content = Some(content),
                    Err(e) => {
                        tracing::error!(queue_id = %message.id, error = %e, "stored content does not open")
                    }
                }
            }
            messages.push(message);
        }
        messages
    }

    /// Opens a sealed content.
    async fn open_sealed(
        &self,
        id: &QueueId,
        key: WrappedKey,
        sealed: Vec<u8>,
    ) -> Result<Vec<u8>, StoreError> {
        let context = id.as_str().as_bytes().to_vec();
        let result = if sealed.len() > BLOCKING_SEAL {
            let vault = self.vault.clone();
            tokio::task::spawn_blocking(move || vault.open(&context, &key, sealed))
                .await
                .map_err(|e| StoreError::Unavailable(format!("opening: {e}")))?
        } else {
            self.vault.open(&context, &key, sealed)
        };
        result.map_err(|e| StoreError::Vault(id.clone(), e))
    }

    /// Removes the spool files of contents that were written but whose
    /// commit failed.
    fn forget_spooled(&self, sealed: &[(QueueId, bool)]) {
        for (id, spooled) in sealed {
            if *spooled {
                self.spool.remove(id);
            }
        }
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
    // Destroyed content (expiry, recall, delivered relay copies) is zeroed
    // in the pages SQLite writes anyway: the wrapped key in the row goes,
    // so the ciphertext left in freed overflow pages opens with nothing.
    conn.pragma_update(None, "secure_delete", "FAST")?;
    if read_only {
        conn.pragma_update(None, "query_only", true)?;
        // Readers map the file instead of copying each page into their
        // cache: a tracking search that matches almost nothing walks the
        // whole index of a week's mail (80 MB at a million messages).
        conn.pragma_update(None, "mmap_size", 1i64 << 30)?;
    }
    Ok(conn)
}

/// The database file and the files SQLite keeps beside it.
const SIDE_FILES: [&str; 4] = ["", "-wal", "-shm", "-journal"];

/// Creates the database file 0600 before SQLite opens it, and takes group
/// and other permissions away from an existing one and its side files.
/// SQLite gives the WAL, shared-memory and journal files the mode of the
/// database file, so this keeps them private too.
fn create_private(db_path: &Path) -> Result<(), StoreError> {
    private::file_options()
        .write(true)
        .create(true)
        .truncate(false)
        .open(db_path)?;
    let mut tightened = Vec::new();
    for suffix in SIDE_FILES {
        let mut name = db_path.as_os_str().to_owned();
        name.push(suffix);
        if private::restrict(Path::new(&name))? {
            tightened.push(Path::new(&name).display().to_string());
        }
    }
    if !tightened.is_empty() {
        tracing::info!(files = ?tightened, "made database files private (0600)");
    }
    Ok(())
}

/// Takes the exclusive lock beside the database file.
fn lock_database(db_path: &Path) -> Result<std::fs::File, StoreError> {
    if let Some(dir) = db_path.parent().filter(|d| !d.as_os_str().is_empty()) {
        private::create_dir(dir)?;
    }
    let mut name = db_path.as_os_str().to_owned();
    name.push(".lock");
    let file = private::file_options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&name)?;
    private::restrict(Path::new(&name))?;
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

/// Applies the migrations the database has not had, each in its own
/// transaction.
///
/// Foreign keys are off meanwhile (SQLite ignores the pragma inside a
/// transaction): a migration that rebuilds a table drops the old one, and
/// with them on that drop would cascade into the rows that refer to it.
/// Each migration must leave every reference whole, which is checked
/// before it commits.
fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
    if version as usize >= MIGRATIONS.len() {
        return Ok(());
    }
    conn.pragma_update(None, "foreign_keys", false)?;
    let result = apply_migrations(conn, version as usize);
    conn.pragma_update(None, "foreign_keys", true)?;
    result
}

fn apply_migrations(conn: &mut Connection, from: usize) -> Result<(), StoreError> {
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(from) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        if i + 1 == portal::MATCH_KEYS_SINCE {
            portal::fill_match_keys(&tx)?;
        }
        let broken: Option<String> = tx
            .query_row("PRAGMA foreign_key_check", [], |row| row.get(0))
            .optional()?;
        if let Some(table) = broken {
            return Err(StoreError::Corrupt(format!(
                "migration to schema version {} leaves rows of {table} referring to nothing",
                i + 1
            )));
        }
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
        tracing::info!(version = i + 1, "applied database migration");
    }
    Ok(())
}

#[async_trait::async_trait]
impl Store for SqliteStore {
    async fn accept(&self, message: NewMessage) -> Result<QueueId, StoreError> {
        self.accept_with(message, false).await
    }

    async fn accept_alone(&self, message: NewMessage) -> Result<QueueId, StoreError> {
        self.accept_with(message, true).await
    }

    async fn lease_due(
        &self,
        owner: &str,
        now: SystemTime,
        lease_until: SystemTime,
        limit: usize,
    ) -> Result<Leased, StoreError> {
        let owner = owner.to_owned();
        let (leased, next_due) = self
            .writer
            .write(false, move |conn, _| {
                Ok((
                    queue::lease(conn, &owner, now, lease_until, limit)?,
                    queue::next_due(conn)?,
                ))
            })
            .await?;
        Ok(Leased {
            messages: self.open_leased(leased).await,
            next_due,
        })
    }

    async fn renew_leases(
        &self,
        owner: &str,
        recipients: Vec<(QueueId, u32)>,
        lease_until: SystemTime,
    ) -> Result<Vec<(QueueId, u32)>, StoreError> {
        let owner = owner.to_owned();
        self.writer
            .write(false, move |conn, _| {
                queue::renew_leases(conn, &owner, &recipients, lease_until)
            })
            .await
    }

    async fn load_body(&self, id: &QueueId) -> Result<Vec<u8>, StoreError> {
        let key = id.clone();
        let (sealed, key) = match self
            .readers
            .read_point(move |conn| queue::load_body(conn, &key))
            .await?
        {
            queue::Body::Inline(sealed, key) => (sealed, key),
            queue::Body::Spooled(key) => (self.spool.read(id).await?, key),
        };
        self.open_sealed(id, key, sealed).await
    }

    async fn record(
        &self,
        outcomes: Vec<RecipientOutcome>,
        dsns: Vec<NewMessage>,
    ) -> Result<Vec<QueueId>, StoreError> {
        let mut sealed = Vec::with_capacity(dsns.len());
        let mut written = Vec::new();
        for mut dsn in dsns {
            match self.seal(&mut dsn).await {
                Ok(content) => {
                    written.push((dsn.id.clone(), content.inline.is_none()));
                    sealed.push((dsn, content));
                }
                Err(e) => {
                    self.forget_spooled(&written);
                    return Err(e);
                }
            }
        }
        let result = self
            .writer
            .write(false, move |conn, effects| {
                effects
                    .purged
                    .extend(queue::record_outcomes(conn, &outcomes)?);
                for (dsn, content) in &sealed {
                    queue::insert_message(conn, dsn, content)?;
                }
                Ok(sealed.iter().map(|(dsn, _)| dsn.id.clone()).collect())
            })
            .await;
        if result.is_err() {
            self.forget_spooled(&written);
        }
        result
    }

    async fn notification_targets(
        &self,
        notifications: Vec<QueueId>,
    ) -> Result<Vec<NotificationTarget>, StoreError> {
        self.readers
            .read(move |conn| queue::notification_targets(conn, &notifications))
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
        check: ConfigCheck,
        actor: Actor,
    ) -> Result<Changed, StoreError> {
        self.change_config_outside_writer(change, check, actor)
            .await
    }

    async fn create_api_key(&self, key: ApiKeyRecord, actor: Actor) -> Result<(), StoreError> {
        self.writer
            .write(true, move |conn, _| {
                admin::insert_api_key(conn, &key)?;
                let entry = Change::new(
                    "create",
                    "api_key",
                    Some(key.id.clone()),
                    None,
                    Some(serde_json::json!({ "id": key.id, "role": key.role.as_str(), "name": key.name })),
                );
                audit::record(conn, &actor, SystemTime::now(), &entry)
            })
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

    async fn revoke_api_key(&self, id: &str, actor: Actor) -> Result<bool, StoreError> {
        let id = id.to_owned();
        self.writer
            .write(true, move |conn, _| {
                let before = admin::api_key(conn, &id)?;
                if !admin::revoke_api_key(conn, &id)? {
                    return Ok(false);
                }
                let entry = Change::new(
                    "delete",
                    "api_key",
                    Some(id.clone()),
                    before.map(|k| {
                        serde_json::json!({ "id": k.id, "role": k.role.as_str(), "name": k.name })
                    }),
                    None,
                );
                audit::record(conn, &actor, SystemTime::now(), &entry)?;
                Ok(true)
            })
            .await
    }

    async fn audit(&self, query: AuditQuery) -> Result<Vec<AuditEntry>, StoreError> {
        self.readers
            .read(move |conn| audit::read(conn, &query))
            .await
    }

    async fn envelopes(
        &self,
        query: crate::envelopes::EnvelopeQuery,
    ) -> Result<crate::envelopes::EnvelopePage, StoreError> {
        self.readers
            .read(move |conn| envelopes::page(conn, &query))
            .await
    }

    async fn policy_hits(
        &self,
        since: SystemTime,
    ) -> Result<std::collections::HashMap<sealpost_policy::PolicyId, u64>, StoreError> {
        let day = crate::model::to_millis(since).div_euclid(86_400_000);
        self.readers
            .read(move |conn| queue::policy_hits(conn, day))
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

#[async_trait::async_trait]
impl SecureStore for SqliteStore {
    async fn search(&self, filter: MessageFilter) -> Result<Vec<TrackedMessage>, StoreError> {
        self.readers
            .read(move |conn| secure::search(conn, &filter))
            .await
    }

    async fn tracked(&self, id: &QueueId) -> Result<TrackedMessage, StoreError> {
        let id = id.clone();
        self.readers
            .read(move |conn| secure::tracked(conn, &id))
            .await
    }

    async fn detail(&self, id: &QueueId) -> Result<MessageDetail, StoreError> {
        let id = id.clone();
        self.readers
            .read(move |conn| secure::detail(conn, &id))
            .await
    }

    async fn dashboard(&self, now: SystemTime) -> Result<Dashboard, StoreError> {
        self.readers
            .read(move |conn| dashboard::dashboard(conn, now))
            .await
    }

    async fn recall(
        &self,
        ids: Vec<QueueId>,
        now: SystemTime,
        actor: Actor,
    ) -> Result<Vec<RecallOutcome>, StoreError> {
        self.writer
            .write(true, move |conn, effects| {
                let mut outcomes = Vec::with_capacity(ids.len());
                for id in &ids {
                    if let Some(outcome) = secure::recall(conn, id, now, &mut effects.purged)? {
                        let entry = Change::new(
                            "recall",
                            "message",
                            Some(id.to_string()),
                            None,
                            Some(serde_json::json!({
                                "recalled": outcome.recalled,
                                "cancelled": outcome.cancelled,
                                "destroyed": outcome.destroyed,
                            })),
                        );
                        audit::record(conn, &actor, now, &entry)?;
                        outcomes.push(outcome);
                    }
                }
                Ok(outcomes)
            })
            .await
    }

    async fn extend(
        &self,
        id: &QueueId,
        to: ExtendTo,
        retention: Duration,
        now: SystemTime,
        actor: Actor,
    ) -> Result<SystemTime, StoreError> {
        let id = id.clone();
        self.writer
            .write(true, move |conn, _| {
                let extended = secure::extend(conn, &id, to, retention, now)?;
                if let Ok(until) = &extended {
                    let entry = Change::new(
                        "extend",
                        "message",
                        Some(id.to_string()),
                        None,
                        Some(serde_json::json!({ "expires_at": crate::rfc3339(*until) })),
                    );
                    audit::record(conn, &actor, now, &entry)?;
                }
                Ok(extended)
            })
            .await?
    }

    async fn expire_due(&self, now: SystemTime, limit: usize) -> Result<usize, StoreError> {
        self.writer
            .write(true, move |conn, effects| {
                secure::expire_due(conn, now, limit, &mut effects.purged)
            })
            .await
    }

    async fn secure_by_token(&self, token: TokenHash) -> Result<Option<SecureAccess>, StoreError> {
        self.readers
            .read(move |conn| secure::secure_by_token(conn, &token))
            .await
    }

    async fn mark_opened(
        &self,
        id: &QueueId,
        idx: u32,
        at: SystemTime,
        read_receipt: Option<NewMessage>,
    ) -> Result<bool, StoreError> {
        let id = id.clone();
        let at = crate::model::to_millis(at);
        // Sealed before the write, like any accepted message; dropped
        // unused when this is not the first opening.
        let receipt = match read_receipt {
            Some(mut m) => {
                let sealed = self.seal(&mut m).await?;
                Some((m, sealed))
            }
            None => None,
        };
        let spooled: Vec<(QueueId, bool)> = receipt
            .iter()
            .map(|(m, s)| (m.id.clone(), s.inline.is_none()))
            .collect();
        // Without a receipt a lost opening time costs nothing, so no
        // fsync; with one, the receipt is queued mail and must be durable.
        let result = self
            .writer
            .write(receipt.is_some(), move |conn, _| {
                let first = match secure::mark_opened(conn, &id, idx, at)? {
                    Ok(first) => first,
                    Err(e) => return Ok(Err(e)),
                };
                if let (true, Some((m, sealed))) = (first, &receipt) {
                    queue::insert_message(conn, m, sealed)?;
                }
                Ok(Ok(first))
            })
            .await
            .and_then(|r| r);
        if !matches!(result, Ok(true)) {
            self.forget_spooled(&spooled);
        }
        result
    }

    async fn set_read(&self, id: &QueueId, idx: u32, read: bool) -> Result<(), StoreError> {
        let id = id.clone();
        self.writer
            .write(false, move |conn, _| {
                secure::update_secure(conn, secure::SET_READ, &id, idx, i64::from(read))
            })
            .await?
    }

    async fn mark_replied(&self, id: &QueueId, idx: u32, at: SystemTime) -> Result<(), StoreError> {
        let id = id.clone();
        let at = crate::model::to_millis(at);
        self.writer
            .write(true, move |conn, _| {
                secure::update_secure(conn, secure::MARK_REPLIED, &id, idx, at)
            })
            .await?
    }

    async fn key_usage(&self) -> Result<Vec<KeyUsage>, StoreError> {
        self.readers.read(secure::key_usage).await
    }

    async fn highest_key_version(&self) -> Result<u32, StoreError> {
        self.readers.read(secure::highest_key_version).await
    }

    async fn record_key_rotation(
        &self,
        actor: Actor,
        action: &str,
        version: u32,
        detail: serde_json::Value,
    ) -> Result<(), StoreError> {
        let vault = self.vault.clone();
        let entry = Change::new(
            action,
            "master_key",
            Some(version.to_string()),
            None,
            Some(detail),
        );
        self.writer
            .write(true, move |conn, _| {
                secure::record_key_versions(conn, &vault)?;
                audit::record(conn, &actor, SystemTime::now(), &entry)
            })
            .await
    }

    async fn rewrap_batch(
        &self,
        after: Option<QueueId>,
        limit: usize,
    ) -> Result<VerifyBatch, StoreError> {
        let vault = self.vault.clone();
        self.writer
            .write(true, move |conn, _| {
                secure::rewrap_batch(conn, &vault, after.as_ref(), limit)
            })
            .await
    }

    async fn verify_batch(
        &self,
        after: Option<QueueId>,
        limit: usize,
    ) -> Result<VerifyBatch, StoreError> {
        let ids = self
            .readers
            .read(move |conn| secure::content_ids(conn, after.as_ref(), limit))
            .await?;
        let mut batch = VerifyBatch {
            next: (ids.len() == limit).then(|| ids.last().cloned()).flatten(),
            ..VerifyBatch::default()
        };
        for id in ids {
            match self.load_body(&id).await {
                Ok(_) => batch.checked += 1,
                // Destroyed between the listing and now: nothing to check.
                Err(StoreError::NotFound(_)) => {}
                Err(e) => {
                    batch.checked += 1;
                    batch.failures.push((id, e.to_string()));
                }
            }
        }
        Ok(batch)
    }
}

/// Seals contents stored in plaintext by a version before the vault (no
/// wrapped key). Runs at open, before anything else touches the rows.
///
/// A spooled content is sealed into `<id>.sealed` first; the row's key is
/// committed; then the sealed file replaces the plaintext one. A crash
/// before the commit leaves the row unsealed (done again next time, the
/// stray file replaced); a crash after it leaves a `.sealed` file that the
/// next start moves into place before anything reads it.
fn seal_unsealed(conn: &Connection, spool: &Spool, vault: &Vault) -> Result<usize, StoreError> {
    for (id, sealed_path) in spool.sealed_leftovers()? {
        let has_key: bool = conn
            .query_row(
                "SELECT wrapped_key IS NOT NULL FROM messages WHERE id = ?1 AND spooled = 1",
                [id.as_str()],
                |row| row.get(0),
            )
            .optional()?
            .unwrap_or(false);
        if has_key {
            spool.install_sealed(&id, &sealed_path)?;
        } else {
            std::fs::remove_file(&sealed_path)?;
        }
    }
    let rows: Vec<(String, Option<Vec<u8>>, bool)> = conn
        .prepare(
            "SELECT id, content, spooled FROM messages WHERE has_content = 1 AND wrapped_key IS NULL",
        )?
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?
        .collect::<Result<_, _>>()?;
    if rows.is_empty() {
        return Ok(0);
    }
    // The plaintext rows being replaced are zeroed, overflow pages too.
    conn.pragma_update(None, "secure_delete", true)?;
    for (id, content, spooled) in &rows {
        let queue_id =
            QueueId::parse(id).ok_or_else(|| StoreError::Corrupt(format!("queue id {id:?}")))?;
        let plain = match (content, spooled) {
            (_, true) => spool.read_blocking(&queue_id)?,
            (Some(content), false) => content.clone(),
            (None, false) => continue,
        };
        let (key, sealed) = vault.seal(id.as_bytes(), plain);
        if *spooled {
            let sealed_path = spool.write_sealed_beside(&queue_id, &sealed)?;
            conn.execute(
                "UPDATE messages SET key_version = ?2, wrapped_key = ?3 WHERE id = ?1",
                rusqlite::params![id, key.version, key.bytes],
            )?;
            spool.install_sealed(&queue_id, &sealed_path)?;
        } else {
            conn.execute(
                "UPDATE messages SET content = ?2, key_version = ?3, wrapped_key = ?4 WHERE id = ?1",
                rusqlite::params![id, sealed, key.version, key.bytes],
            )?;
        }
    }
    conn.pragma_update(None, "secure_delete", "FAST")?;
    // Old plaintext pages may remain in the WAL until it is reused.
    conn.pragma_update(None, "wal_checkpoint", "TRUNCATE")?;
    Ok(rows.len())
}

#[cfg(test)]
mod tests;
