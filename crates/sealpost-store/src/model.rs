//! The records the store keeps: messages, their recipients, and the queue
//! state of each recipient.

use std::{
    fmt,
    net::IpAddr,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use sealpost_policy::{Decision, EmailAddress, PolicyId, Route};

/// A message's queue id: 16 upper-case hex digits, random, shown in the
/// `250` reply and every log line about the message.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QueueId(String);

impl QueueId {
    /// A fresh random id.
    pub fn generate() -> Self {
        let mut bytes = [0u8; 8];
        getrandom::fill(&mut bytes).expect("the OS random source is available");
        QueueId(format!("{:016X}", u64::from_be_bytes(bytes)))
    }

    /// Parses an id as shown in replies and logs.
    pub fn parse(text: &str) -> Option<Self> {
        (text.len() == 16 && text.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| QueueId(text.to_ascii_uppercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for QueueId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Who handed us the message (after XFORWARD, if trusted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientInfo {
    pub ip: IpAddr,
    /// Reverse DNS name, or the XFORWARD NAME.
    pub name: Option<String>,
    /// The EHLO/HELO argument.
    pub helo: Option<String>,
    /// `SMTP`, `ESMTP`, `ESMTPS`, … (RFC 3848), or the XFORWARD PROTO.
    pub protocol: String,
}

/// RFC 3461 `RET`: how much of the message a failure DSN returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DsnReturn {
    Full,
    Headers,
}

/// RFC 3461 `NOTIFY` of one recipient, as bit flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Notify(u8);

impl Notify {
    pub const SUCCESS: u8 = 1;
    pub const FAILURE: u8 = 2;
    pub const DELAY: u8 = 4;
    pub const NEVER: u8 = 8;

    pub fn from_bits(bits: u8) -> Self {
        Notify(bits & 0x0f)
    }
    pub fn bits(self) -> u8 {
        self.0
    }
    /// Whether the sender wants a report when this recipient fails. With no
    /// NOTIFY parameter the default is FAILURE (RFC 3461 §4.1).
    pub fn on_failure(self) -> bool {
        self.0 == 0 || self.0 & Self::FAILURE != 0
    }
    pub fn on_success(self) -> bool {
        self.0 & Self::SUCCESS != 0
    }
}

/// Whether the message is ordinary mail or a report we generated (a
/// report never causes another report).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKind {
    Mail,
    Dsn,
}

/// A message about to be committed.
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub id: QueueId,
    pub received_at: SystemTime,
    /// Envelope sender; `None` is the null sender `<>`.
    pub sender: Option<EmailAddress>,
    pub client: ClientInfo,
    /// The message as stored: our Received header, then the client's data,
    /// dot-unstuffed, CRLF line ends.
    pub content: Vec<u8>,
    /// BODY=8BITMIME was declared (or 8-bit octets were seen).
    pub body_8bit: bool,
    /// SMTPUTF8 was requested.
    pub smtputf8: bool,
    pub env_id: Option<String>,
    pub ret: Option<DsnReturn>,
    /// When the queue gives up on recipients still not delivered.
    pub expires_at: SystemTime,
    pub kind: MessageKind,
    pub recipients: Vec<NewRecipient>,
}

/// One recipient of a message about to be committed, with its routing.
#[derive(Debug, Clone)]
pub struct NewRecipient {
    pub address: EmailAddress,
    /// RFC 3461 ORCPT, kept verbatim (`rfc822;user@example.com`).
    pub orcpt: Option<String>,
    pub notify: Notify,
    pub decision: Decision,
}

/// Where a recipient stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecipientStatus {
    /// Waiting for (another) relay attempt.
    Queued,
    /// Accepted by the next hop.
    Delivered,
    /// Permanently failed or expired; a DSN was sent if asked for.
    Failed,
    /// Selected for secure delivery and held until the vault takes it; never
    /// relayed.
    Held,
}

impl RecipientStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RecipientStatus::Queued => "queued",
            RecipientStatus::Delivered => "delivered",
            RecipientStatus::Failed => "failed",
            RecipientStatus::Held => "held",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "queued" => RecipientStatus::Queued,
            "delivered" => RecipientStatus::Delivered,
            "failed" => RecipientStatus::Failed,
            "held" => RecipientStatus::Held,
            _ => return None,
        })
    }

    /// The initial status for a routing decision.
    pub fn for_route(route: &Route) -> Self {
        match route {
            Route::Relay => RecipientStatus::Queued,
            Route::Secure { .. } => RecipientStatus::Held,
        }
    }
}

/// A message whose recipients a worker has leased.
#[derive(Debug, Clone)]
pub struct LeasedMessage {
    pub id: QueueId,
    pub received_at: SystemTime,
    pub sender: Option<EmailAddress>,
    /// Who handed it to us (passed on with XFORWARD where the next hop
    /// offers it).
    pub client: ClientInfo,
    pub size: u64,
    pub body_8bit: bool,
    pub smtputf8: bool,
    pub env_id: Option<String>,
    pub ret: Option<DsnReturn>,
    pub expires_at: SystemTime,
    pub kind: MessageKind,
    pub recipients: Vec<LeasedRecipient>,
    /// The content, when it is stored inline (read in the same query as the
    /// lease, sparing a round trip per message); `None` when it is in a
    /// spool file: read it with [`crate::Store::load_body`].
    pub content: Option<Vec<u8>>,
}

/// One leased recipient.
#[derive(Debug, Clone)]
pub struct LeasedRecipient {
    pub idx: u32,
    pub address: EmailAddress,
    pub orcpt: Option<String>,
    pub notify: Notify,
    /// Attempts made before this one.
    pub attempts: u32,
}

/// The result of one delivery attempt for one recipient.
#[derive(Debug, Clone)]
pub struct RecipientOutcome {
    pub message: QueueId,
    pub idx: u32,
    pub attempted_at: SystemTime,
    pub result: OutcomeKind,
    /// The remote reply or our diagnostic, for tracking and DSNs.
    pub reply: String,
}

/// How an attempt ended for a recipient.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutcomeKind {
    Delivered,
    Deferred { retry_at: SystemTime },
    Failed,
}

/// Recipient counts per status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueStats {
    pub queued: u64,
    /// Queued recipients that have failed at least one attempt.
    pub deferred: u64,
    pub held: u64,
    pub delivered: u64,
    pub failed: u64,
}

/// The tracking view of one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecipientRecord {
    pub idx: u32,
    pub address: String,
    pub status: RecipientStatus,
    /// `relay` or `secure:<definition>`.
    pub route: String,
    pub policy: Option<PolicyId>,
    pub attempts: u32,
    pub last_reply: Option<String>,
}

/// The stored metadata of one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageRecord {
    pub id: QueueId,
    pub sender: String,
    pub client_ip: String,
    pub size: u64,
    pub kind: MessageKind,
    /// Whether content is still stored (it is purged once every recipient
    /// reached a final status).
    pub has_content: bool,
}

/// Milliseconds since the Unix epoch, the store's time unit.
pub(crate) fn to_millis(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

pub(crate) fn from_millis(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64)
}

pub(crate) fn route_text(route: &Route) -> String {
    match route {
        Route::Relay => "relay".to_owned(),
        Route::Secure { definition } => format!("secure:{}", definition.0),
    }
}

/// What [`crate::Store::lease_due`] claimed, and when more work falls due.
#[derive(Debug, Default)]
pub struct Leased {
    pub messages: Vec<LeasedMessage>,
    /// The earliest time a queued recipient (including the ones just
    /// leased, at their lease's end) becomes due; `None`: nothing queued.
    pub next_due: Option<SystemTime>,
}

impl Leased {
    /// How many recipients were claimed.
    pub fn recipients(&self) -> usize {
        self.messages.iter().map(|m| m.recipients.len()).sum()
    }
}

impl std::ops::Deref for Leased {
    type Target = [LeasedMessage];
    fn deref(&self) -> &[LeasedMessage] {
        &self.messages
    }
}
