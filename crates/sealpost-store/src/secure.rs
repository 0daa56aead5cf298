//! The vault side of the store: secure recipients, their lifecycle
//! (expiry, recall, extension), message tracking and master-key rotation.
//!
//! Kept apart from [`crate::Store`] (the mail path) because it is driven
//! by administrators, the portal and background jobs rather than by SMTP
//! sessions and delivery workers.

use std::time::{Duration, SystemTime};

use sealpost_vault::TokenHash;

use crate::{
    Dashboard, ExtendTo, KeyUsage, MessageDetail, MessageFilter, NewMessage, QueueId,
    RecallOutcome, SecureAccess, StoreError, TrackedMessage, VerifyBatch, audit::Actor,
};

/// Tracking, lifecycle and key rotation.
#[async_trait::async_trait]
pub trait SecureStore: Send + Sync + std::fmt::Debug + 'static {
    /// Messages matching a tracking search, newest first, each with its
    /// recipients.
    async fn search(&self, filter: MessageFilter) -> Result<Vec<TrackedMessage>, StoreError>;

    /// One message with its recipients.
    async fn tracked(&self, id: &QueueId) -> Result<TrackedMessage, StoreError>;

    /// One message with its recipients and the mails made about it
    /// (notifications, receipts), read together.
    async fn detail(&self, id: &QueueId) -> Result<MessageDetail, StoreError>;

    /// The dashboard's figures for the [`crate::dashboard::DASHBOARD_DAYS`]
    /// UTC days up to the one `now` falls in, read in one transaction.
    async fn dashboard(&self, now: SystemTime) -> Result<Dashboard, StoreError>;

    /// Recalls messages: every live secure recipient's access ends
    /// (`recalled`), relay recipients and notifications still queued are
    /// cancelled, and the content (key and ciphertext) is destroyed. The
    /// metadata stays. Ids that name no message are absent from the
    /// result.
    async fn recall(
        &self,
        ids: Vec<QueueId>,
        now: SystemTime,
        actor: Actor,
    ) -> Result<Vec<RecallOutcome>, StoreError>;

    /// Moves the expiry of a message's live secure recipients (read and
    /// written in one transaction). Refused ([`StoreError::Refused`]) past
    /// `received + retention`, in the past, or when no secure recipient is
    /// live. Returns the expiry set.
    async fn extend(
        &self,
        id: &QueueId,
        to: ExtendTo,
        retention: Duration,
        now: SystemTime,
        actor: Actor,
    ) -> Result<SystemTime, StoreError>;

    /// Ends up to `limit` secure recipients whose expiry has passed, lets
    /// up to `limit` portal replies' Sent copies run out the same way, and
    /// destroys the content nobody needs any more. Returns how many
    /// recipients ended.
    async fn expire_due(&self, now: SystemTime, limit: usize) -> Result<usize, StoreError>;

    /// The message and recipient a portal token opens, if any.
    async fn secure_by_token(&self, token: TokenHash) -> Result<Option<SecureAccess>, StoreError>;

    /// Records that a secure recipient opened the message (first and last
    /// opening; marks it read) and returns whether this was its first
    /// opening. `read_receipt` (built by the caller when the definition
    /// asks for one) is committed with it only at the first opening, in
    /// the same transaction: the sender gets exactly one receipt, however
    /// often and on however many nodes the message is opened.
    async fn mark_opened(
        &self,
        id: &QueueId,
        idx: u32,
        at: SystemTime,
        read_receipt: Option<NewMessage>,
    ) -> Result<bool, StoreError>;

    /// Sets a secure recipient's read/unread flag.
    async fn set_read(&self, id: &QueueId, idx: u32, read: bool) -> Result<(), StoreError>;

    /// Records that a secure recipient replied.
    async fn mark_replied(&self, id: &QueueId, idx: u32, at: SystemTime) -> Result<(), StoreError>;

    /// How many stored message keys each master key version wraps.
    async fn key_usage(&self) -> Result<Vec<KeyUsage>, StoreError>;

    /// The highest master key version the database has recorded (a new
    /// version must be numbered above it).
    async fn highest_key_version(&self) -> Result<u32, StoreError>;

    /// Re-wraps up to `limit` message keys not on the current master key
    /// version, after `after` in id order, in one durable commit. Returns
    /// how many were re-wrapped, those that failed (with why), and where
    /// to go on (`None`: done).
    async fn rewrap_batch(
        &self,
        after: Option<QueueId>,
        limit: usize,
    ) -> Result<VerifyBatch, StoreError>;

    /// Records a step of an online key rotation with its audit entry by
    /// `actor` (`action`: `rotate` when a version was added, `resume`,
    /// `rewrapped` when done; `detail` goes in the entry), in one commit
    /// with the check value of every keyring version not yet recorded, so
    /// a restart with a key file lacking the new version is refused.
    ///
    /// # Errors
    /// A keyring version whose key differs from the one recorded under it.
    async fn record_key_rotation(
        &self,
        actor: Actor,
        action: &str,
        version: u32,
        detail: serde_json::Value,
    ) -> Result<(), StoreError>;

    /// Opens up to `limit` stored contents after `after` in id order and
    /// reports those that do not open.
    async fn verify_batch(
        &self,
        after: Option<QueueId>,
        limit: usize,
    ) -> Result<VerifyBatch, StoreError>;
}
