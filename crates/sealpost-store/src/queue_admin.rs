//! The queue as administrators see and steer it (issue 16, item 2): how
//! many recipients wait per destination domain, the waiting recipients
//! themselves (paged, sorted, filtered), and three actions on a set of
//! them: retry now, bounce (a permanent failure with a DSN to the sender)
//! and delete (dropped silently).
//!
//! Every action leaves alone a recipient a delivery worker holds a live
//! lease on: it is being delivered right now, and its outcome will be
//! recorded whatever the administrator does. Such recipients are reported
//! back as `in_delivery`, never half-handled. Each action commits with its
//! audit entries (one per recipient, with the recipient before and after)
//! in one transaction.
//!
//! A bounce needs a DSN, which the queue builds (`sealpost-queue`), from
//! the message's content, outside the store. So a bounce *claims* its
//! recipients first, with a short lease of its own exactly as a worker
//! does ([`QueueAdminStore::claim`]), and then records the failures and
//! the DSNs in one commit ([`QueueAdminStore::bounce_claimed`]), which
//! refuses if any claim was lost. A bounce interrupted between the two
//! leaves nothing behind but a lease that runs out.

use std::{
    fmt,
    time::{Duration, SystemTime},
};

use crate::{LeasedMessage, MessageKind, NewMessage, QueueId, Store, StoreError, audit::Actor};

/// One recipient of one message, as the queue names it: `<queue id>.<n>`
/// (`0190F3A2B4C5D6E7.0`), `n` counting the message's recipients from 0.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RecipientKey {
    pub message: QueueId,
    pub idx: u32,
}

impl RecipientKey {
    /// Parses `<queue id>.<n>`.
    pub fn parse(text: &str) -> Option<RecipientKey> {
        let (id, idx) = text.trim().split_once('.')?;
        if idx.is_empty() || !idx.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Some(RecipientKey {
            message: QueueId::parse(id)?,
            idx: idx.parse().ok()?,
        })
    }
}

impl fmt::Display for RecipientKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.message, self.idx)
    }
}

/// The queue towards one destination domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainDepth {
    /// The recipients' domain, lower case.
    pub domain: String,
    /// Recipients waiting (status queued), including those below.
    pub queued: u64,
    /// Of them, those that failed at least one attempt.
    pub deferred: u64,
    /// Of them, those a worker holds a live lease on.
    pub in_delivery: u64,
    /// When the oldest waiting message was received.
    pub oldest: Option<SystemTime>,
    /// The earliest next attempt.
    pub next_attempt: Option<SystemTime>,
}

/// Which waiting recipients. Text filters match a part, without case;
/// `domain` matches the whole recipient domain.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueFilter {
    pub domain: Option<String>,
    pub sender: Option<String>,
    pub recipient: Option<String>,
    /// Only recipients that failed at least one attempt.
    pub deferred_only: bool,
}

impl QueueFilter {
    /// Whether the filter selects anything less than the whole queue.
    pub fn narrows(&self) -> bool {
        self.domain.is_some()
            || self.sender.is_some()
            || self.recipient.is_some()
            || self.deferred_only
    }
}

/// The order of a queue listing (then by queue id and recipient).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum QueueSort {
    #[default]
    NextAttempt,
    Received,
    Attempts,
    Recipient,
    Sender,
    Domain,
}

impl QueueSort {
    pub const ALL: [QueueSort; 6] = [
        QueueSort::NextAttempt,
        QueueSort::Received,
        QueueSort::Attempts,
        QueueSort::Recipient,
        QueueSort::Sender,
        QueueSort::Domain,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            QueueSort::NextAttempt => "next_attempt",
            QueueSort::Received => "received",
            QueueSort::Attempts => "attempts",
            QueueSort::Recipient => "recipient",
            QueueSort::Sender => "sender",
            QueueSort::Domain => "domain",
        }
    }

    pub fn parse(text: &str) -> Option<QueueSort> {
        QueueSort::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

/// A page of a queue listing.
#[derive(Debug, Clone, Default)]
pub struct QueueQuery {
    pub filter: QueueFilter,
    pub sort: QueueSort,
    pub descending: bool,
    /// Rows to skip.
    pub offset: usize,
    /// Rows to return (1 to 500).
    pub limit: usize,
}

/// A waiting recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedRecipient {
    pub key: RecipientKey,
    pub address: String,
    pub domain: String,
    /// The envelope sender; empty for `<>`.
    pub sender: String,
    pub kind: MessageKind,
    pub subject: Option<String>,
    pub size: u64,
    pub received_at: SystemTime,
    pub attempts: u32,
    pub last_reply: Option<String>,
    pub last_attempt_at: Option<SystemTime>,
    pub next_attempt_at: SystemTime,
    /// A worker holds a live lease on it: it is being delivered now.
    pub in_delivery: bool,
}

/// A page of waiting recipients and how many match in all.
#[derive(Debug, Clone, Default)]
pub struct QueuePage {
    pub recipients: Vec<QueuedRecipient>,
    pub total: u64,
}

/// The recipients an action is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// These recipients.
    Keys(Vec<RecipientKey>),
    /// Every waiting recipient the filter matches, at most `limit`.
    Filter { filter: QueueFilter, limit: usize },
}

/// What an action did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ActionReport {
    /// The recipients it acted on.
    pub done: Vec<RecipientKey>,
    /// Recipients being delivered right now (a live lease), left alone.
    pub in_delivery: Vec<RecipientKey>,
    /// Named recipients that are not waiting in the queue (delivered,
    /// failed, secure, or no such recipient).
    pub not_queued: Vec<RecipientKey>,
    /// For a filter: waiting recipients that matched beyond its limit.
    pub remaining: u64,
}

/// What an administrative action does to a recipient, in the audit log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueAction {
    Retry,
    Bounce,
    Delete,
}

impl QueueAction {
    pub fn as_str(self) -> &'static str {
        match self {
            QueueAction::Retry => "retry",
            QueueAction::Bounce => "bounce",
            QueueAction::Delete => "delete",
        }
    }

    pub fn parse(text: &str) -> Option<QueueAction> {
        [QueueAction::Retry, QueueAction::Bounce, QueueAction::Delete]
            .into_iter()
            .find(|a| a.as_str() == text)
    }
}

/// The `last_reply` a bounced recipient is left with (and its DSN says).
pub const BOUNCED_REPLY: &str = "550 5.0.0 bounced by an administrator";
/// The `last_reply` a deleted recipient is left with.
pub const DELETED_REPLY: &str = "deleted by an administrator (no report sent)";

/// How long a bounce's claim lasts. The DSNs are built in between, which
/// takes milliseconds; a bounce that dies meanwhile frees its recipients
/// this soon.
pub const CLAIM_FOR: Duration = Duration::from_secs(120);

/// The audit log's name for the object of a queue action.
pub const AUDIT_OBJECT: &str = "queued_recipient";

/// The queue's administrative side of the store.
#[async_trait::async_trait]
pub trait QueueAdminStore: Store {
    /// The waiting recipients per destination domain, most first.
    async fn queue_depth(&self, now: SystemTime) -> Result<Vec<DomainDepth>, StoreError>;

    /// A page of waiting recipients.
    async fn queued(&self, query: QueueQuery, now: SystemTime) -> Result<QueuePage, StoreError>;

    /// Makes the selected recipients due now (their next attempt is `now`),
    /// and records it.
    async fn retry_now(
        &self,
        selection: Selection,
        now: SystemTime,
        actor: Actor,
    ) -> Result<ActionReport, StoreError>;

    /// Drops the selected recipients without a report (status `deleted`),
    /// destroys the content of messages no recipient needs any more, and
    /// records it. A deleted notification marks its secure recipient as
    /// not notified.
    async fn delete_queued(
        &self,
        selection: Selection,
        now: SystemTime,
        actor: Actor,
    ) -> Result<ActionReport, StoreError>;

    /// Leases the selected recipients to `owner` until `until`, as a
    /// worker's lease would, and returns them grouped by message (with
    /// inline content opened; spooled content is read with
    /// [`Store::load_body`]). `done` lists the claimed recipients.
    ///
    /// # Cancel safety
    /// If dropped after the claim committed, the lease simply expires.
    async fn claim(
        &self,
        selection: Selection,
        owner: &str,
        now: SystemTime,
        until: SystemTime,
    ) -> Result<(Vec<LeasedMessage>, ActionReport), StoreError>;

    /// Records claimed recipients as failed ([`BOUNCED_REPLY`]), commits
    /// the DSNs (and senders' notices) that report it, destroys contents
    /// no longer needed, and writes the audit entries, in one commit.
    /// [`StoreError::Refused`], with nothing changed, when a recipient is
    /// no longer leased to `owner`.
    async fn bounce_claimed(
        &self,
        owner: &str,
        recipients: Vec<RecipientKey>,
        reports: Vec<NewMessage>,
        now: SystemTime,
        actor: Actor,
    ) -> Result<Vec<QueueId>, StoreError>;

    /// Gives up a claim that will not be used (the recipients become due
    /// again as they were).
    async fn release_claim(
        &self,
        owner: &str,
        recipients: Vec<RecipientKey>,
    ) -> Result<(), StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recipient_keys_round_trip_and_refuse_junk() {
        let key = RecipientKey::parse("0190f3a2b4c5d6e7.12").unwrap();
        assert_eq!(key.to_string(), "0190F3A2B4C5D6E7.12");
        assert_eq!(key.idx, 12);
        for bad in [
            "",
            "0190F3A2B4C5D6E7",
            "0190F3A2B4C5D6E7.",
            "0190F3A2B4C5D6E7.-1",
            "0190F3A2B4C5D6E7.+1",
            "0190F3A2B4C5.1",
            "x.1",
            "0190F3A2B4C5D6E7.99999999999",
        ] {
            assert_eq!(RecipientKey::parse(bad), None, "{bad}");
        }
    }
}
