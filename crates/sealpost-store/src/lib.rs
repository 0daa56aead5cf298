//! Durable storage for sealpost.
//!
//! [`Store`] is the one boundary between the mail path and the database:
//! the SMTP session commits accepted messages through it, the queue leases
//! due recipients and records delivery outcomes through it. Every state the
//! gateway needs to survive a crash lives behind this trait, never only in
//! one process's memory, so a PostgreSQL implementation can serve several
//! nodes without redesign.
//!
//! Work is claimed as *leases that expire*: a worker that dies mid-delivery
//! simply lets its lease run out and another picks the recipient up again
//! (delivery is at-least-once; a duplicate is possible, a loss is not).

pub mod admin;
pub mod audit;
pub mod branding;
pub mod config_edit;
pub mod console;
pub mod dashboard;
pub mod envelopes;
pub mod handoff;
mod model;
pub mod portal;
pub mod private;
pub mod queue_admin;
pub mod secure;
pub mod smtp_accounts;
mod spool;
pub mod sqlite;

use std::time::SystemTime;

pub use admin::{AdminStore, ApiKeyInfo, ApiKeyRecord, Changed, ConfigChange, ConfigCheck, Role};
pub use branding::{BrandingReader, BrandingStore};
pub use console::ConsoleStore;
pub use dashboard::Dashboard;
pub use model::*;
pub use portal::PortalStore;
pub use queue_admin::QueueAdminStore;
pub use secure::SecureStore;
pub use sqlite::{SqliteStore, StoredConfig};

/// What can go wrong talking to storage. Every variant maps to a
/// temporary SMTP failure (`451 4.3.0`) at the edge: a message is never
/// acknowledged unless its commit succeeded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] rusqlite::Error),
    #[error("spool file error: {0}")]
    Io(#[from] std::io::Error),
    #[error("stored data is inconsistent: {0}")]
    Corrupt(String),
    #[error("message {0} not found")]
    NotFound(QueueId),
    /// A configuration object that does not exist, e.g. `policy 7`.
    #[error("{0} not found")]
    NoSuch(String),
    /// A configuration change refused by validation; nothing was stored.
    #[error("{0}")]
    Rejected(sealpost_policy::Invalid),
    /// A request the stored state does not allow (extending an expired
    /// message, say); nothing was changed.
    #[error("{0}")]
    Refused(String),
    /// Stored content that does not open: a wrong master key, a missing
    /// key version, or tampering. Never answered with partial content.
    #[error("sealed content of {0} does not open: {1}")]
    Vault(QueueId, sealpost_vault::VaultError),
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
    #[error("the store is shutting down")]
    Closed,
}

/// The storage boundary of the mail path.
#[async_trait::async_trait]
pub trait Store: Send + Sync + std::fmt::Debug + 'static {
    /// Commits a message, its recipients and their routing durably, and
    /// returns its queue id. Returns only after the data is on stable
    /// storage (fsync'd), so the caller may answer `250`.
    ///
    /// # Cancel safety
    /// Not cancel safe in the useful sense: if the future is dropped the
    /// commit may still happen, and the id is lost to the caller. The SMTP
    /// session never races it against anything.
    async fn accept(&self, message: NewMessage) -> Result<QueueId, StoreError>;

    /// [`Store::accept`] for a caller that knows no other acceptance is
    /// under way in this process (one SMTP transaction open). Nothing would
    /// share a group commit with it, so a store may commit on the calling
    /// thread instead of handing the work to a writer and waiting to be
    /// woken; it blocks that thread for the commit. Same promise as
    /// `accept`.
    async fn accept_alone(&self, message: NewMessage) -> Result<QueueId, StoreError> {
        self.accept(message).await
    }

    /// Claims up to `limit` due recipients (status queued, retry time
    /// reached, no live lease) until `lease_until`, grouped by message, and
    /// says when the next queued recipient falls due (so a worker that got
    /// less than `limit` can sleep until then without asking again).
    ///
    /// # Cancel safety
    /// If dropped after the claim committed, the lease simply expires.
    async fn lease_due(
        &self,
        owner: &str,
        now: SystemTime,
        lease_until: SystemTime,
        limit: usize,
    ) -> Result<Leased, StoreError>;

    /// Extends `owner`'s leases on `recipients` (message id and recipient
    /// index) to `lease_until`, for a delivery that is still running, and
    /// returns the recipients it no longer holds: still queued but claimed
    /// by another owner since the lease ran out. The caller must not record
    /// an outcome for those (the new holder's attempt decides). A recipient
    /// that is no longer queued is not "lost": recording handles it.
    ///
    /// The default keeps nothing: for stores whose leases never expire.
    ///
    /// # Cancel safety
    /// Cancel safe: if dropped, the renewal may or may not have committed,
    /// and the lease runs until whichever end it has.
    async fn renew_leases(
        &self,
        owner: &str,
        recipients: Vec<(QueueId, u32)>,
        lease_until: SystemTime,
    ) -> Result<Vec<(QueueId, u32)>, StoreError> {
        let _ = (owner, recipients, lease_until);
        Ok(Vec::new())
    }

    /// Reads a message's stored content (headers and body).
    async fn load_body(&self, id: &QueueId) -> Result<Vec<u8>, StoreError>;

    /// Records delivery outcomes and enqueues the DSNs they caused, in one
    /// commit, so a bounce is never lost nor sent for a recipient whose
    /// failure was not recorded.
    async fn record(
        &self,
        outcomes: Vec<RecipientOutcome>,
        dsns: Vec<NewMessage>,
    ) -> Result<Vec<QueueId>, StoreError>;

    /// The secure recipients the given notifications announce, with their
    /// message's sender and subject, leaving out notifications already
    /// recorded as delivered or failed. The queue reads this before it
    /// records a notification's permanent failure, to tell the sender in
    /// the same commit ([`Store::record`]).
    async fn notification_targets(
        &self,
        notifications: Vec<QueueId>,
    ) -> Result<Vec<NotificationTarget>, StoreError>;

    /// The earliest retry time of any queued recipient, for the scheduler's
    /// sleep.
    async fn next_due(&self) -> Result<Option<SystemTime>, StoreError>;

    /// Counts of recipients per status, for metrics and the health check.
    async fn queue_stats(&self) -> Result<QueueStats, StoreError>;

    /// The tracking view of one message's recipients.
    async fn recipients(&self, id: &QueueId) -> Result<Vec<RecipientRecord>, StoreError>;

    /// The stored metadata of one message.
    async fn message(&self, id: &QueueId) -> Result<MessageRecord, StoreError>;

    /// Checks that the database answers.
    async fn ping(&self) -> Result<(), StoreError>;
}
