//! The records the store keeps: messages, their recipients, and the queue
//! state of each recipient.

use std::{
    fmt,
    net::IpAddr,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use sealpost_policy::{Decision, DefinitionId, EmailAddress, PolicyId, Route};

/// A message's queue id: 16 upper-case hex digits, shown in the `250`
/// reply and every log line about the message.
///
/// Ids grow with time: the milliseconds since the Unix epoch (44 bits,
/// enough until the year 2527), then a 20-bit sequence number of this
/// process that starts at a random value. Every index keyed by the id
/// (the messages' and their recipients') then takes new rows at its right
/// edge, so the pages one commit writes are shared by the messages in it
/// instead of one random page each. Ids are names, not secrets: nothing
/// is granted to whoever knows one.
///
/// Unique within one process only. Gateways sharing one database (the
/// PostgreSQL scale-out) will need a node part in the id; until then a
/// clash is refused by the primary key, and the client is told `451` and
/// sends again.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QueueId(String);

/// The sequence part of the next [`QueueId`] (only its low 20 bits count).
static SEQUENCE: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
static SEQUENCE_START: std::sync::Once = std::sync::Once::new();

impl QueueId {
    /// A fresh id, unique within this process: two ids of one millisecond
    /// differ in their sequence number, which wraps only after 2^20 ids.
    pub fn generate() -> Self {
        SEQUENCE_START.call_once(|| {
            let mut bytes = [0u8; 4];
            getrandom::fill(&mut bytes).expect("the OS random source is available");
            SEQUENCE.store(
                u32::from_be_bytes(bytes),
                std::sync::atomic::Ordering::Relaxed,
            );
        });
        let millis = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64)
            & ((1 << 44) - 1);
        let sequence = SEQUENCE.fetch_add(1, std::sync::atomic::Ordering::Relaxed) & 0xF_FFFF;
        QueueId(format!("{:016X}", millis << 20 | u64::from(sequence)))
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
    /// Whether the sender wants a report when this recipient is delayed.
    /// With no NOTIFY parameter the MTA may send one (RFC 3461 §4.1), and
    /// we do, as Postfix does with its `delay_warning_time`.
    pub fn on_delay(self) -> bool {
        self.0 == 0 || self.0 & Self::DELAY != 0
    }
}

/// Whether the message is ordinary mail or one we generated (a report
/// never causes another report).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKind {
    Mail,
    Dsn,
    /// A secure recipient's notification, a sender's receipt, or the
    /// sender's notice of secure recipients who could not be notified.
    Notification,
}

impl MessageKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MessageKind::Mail => "mail",
            MessageKind::Dsn => "dsn",
            MessageKind::Notification => "notification",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "mail" => MessageKind::Mail,
            "dsn" => MessageKind::Dsn,
            "notification" => MessageKind::Notification,
            _ => return None,
        })
    }
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
    /// The subject, for tracking (the sender's subject tag removed).
    pub subject: Option<String>,
    /// For a notification or receipt: the message it is about.
    pub parent: Option<QueueId>,
    /// The recipients given secure delivery (their `recipients` entries
    /// have a secure route), with their portal tokens' hashes.
    pub secure: Vec<NewSecureRecipient>,
    /// Mails this message causes, committed in the same transaction:
    /// the secure recipients' notifications and the sender's receipt.
    pub attached: Vec<NewMessage>,
    /// Set when the message is handed straight to a delivery worker: its
    /// queued recipients are stored leased to it ([`crate::handoff`]).
    pub claim: Option<crate::handoff::Claim>,
    /// For a portal reply: its place in the author's Sent folder, and the
    /// original to mark replied, committed with it.
    pub portal_sent: Option<PortalSent>,
    /// The SMTP account that submitted it (AUTH on a submission listener),
    /// shown in tracking; policies do not look at it.
    pub smtp_account: Option<crate::smtp_accounts::SmtpAccountName>,
}

/// A portal reply's record, committed with the reply: the row of its
/// author's Sent folder, and `replied_at` on the original. The original
/// must be the author's own (its secure recipient `idx` has the account's
/// match key); otherwise the whole commit is refused with
/// [`crate::StoreError::NotFound`], as for a message that does not exist.
#[derive(Debug, Clone)]
pub struct PortalSent {
    pub account: crate::portal::AccountKey,
    /// The message replied to (or forwarded) ...
    pub original: QueueId,
    /// ... as its secure recipient `idx` received it.
    pub idx: u32,
    /// For the folder's attachment marker.
    pub has_attachments: bool,
}

impl NewMessage {
    /// A message with no tracking extras: no subject, no parent, no secure
    /// recipients, nothing attached.
    #[allow(clippy::too_many_arguments)]
    pub fn plain(
        id: QueueId,
        received_at: SystemTime,
        sender: Option<EmailAddress>,
        client: ClientInfo,
        content: Vec<u8>,
        expires_at: SystemTime,
        kind: MessageKind,
        recipients: Vec<NewRecipient>,
    ) -> Self {
        NewMessage {
            id,
            received_at,
            sender,
            client,
            content,
            body_8bit: false,
            smtputf8: false,
            env_id: None,
            ret: None,
            expires_at,
            kind,
            recipients,
            subject: None,
            parent: None,
            secure: Vec::new(),
            attached: Vec::new(),
            claim: None,
            portal_sent: None,
            smtp_account: None,
        }
    }
}

/// How a recipient came to get secure delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecureTrigger {
    /// A Secure Messaging policy selected it.
    Policy,
    /// The sender named a definition in `X-Sealpost-Secure`.
    Header,
    /// The sender put the subject tag in the subject.
    SubjectTag,
    /// A recipient's reply from the portal: secure for every external
    /// recipient, whatever the policies say.
    PortalReply,
}

impl SecureTrigger {
    pub fn as_str(self) -> &'static str {
        match self {
            SecureTrigger::Policy => "policy",
            SecureTrigger::Header => "header",
            SecureTrigger::SubjectTag => "subject_tag",
            SecureTrigger::PortalReply => "portal_reply",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "policy" => SecureTrigger::Policy,
            "header" => SecureTrigger::Header,
            "subject_tag" => SecureTrigger::SubjectTag,
            "portal_reply" => SecureTrigger::PortalReply,
            _ => return None,
        })
    }
}

/// A recipient given secure delivery, as committed at acceptance.
#[derive(Debug, Clone)]
pub struct NewSecureRecipient {
    /// Index into [`NewMessage::recipients`].
    pub idx: u32,
    /// SHA-256 of the portal token in the notification.
    pub token_hash: [u8; 32],
    pub definition: DefinitionId,
    pub trigger: SecureTrigger,
    /// The queue id of the notification (among [`NewMessage::attached`]).
    pub notification: Option<QueueId>,
    /// The content stays readable until then.
    pub expires_at: SystemTime,
    /// The definition said `delivery = "tls_or_portal"`: the notification
    /// job may carry the message itself over verified TLS instead.
    pub tls_or_portal: bool,
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
    /// Given secure delivery: kept in the vault, never relayed; the
    /// recipient reads it in the portal.
    Secure,
    /// Secure delivery whose expiry passed; the content is destroyed.
    Expired,
    /// Secure delivery recalled by the sender or an administrator (or a
    /// relay delivery cancelled by the recall); the content is destroyed.
    Recalled,
    /// Taken out of the queue by an administrator, without a report to
    /// the sender.
    Deleted,
}

impl RecipientStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RecipientStatus::Queued => "queued",
            RecipientStatus::Delivered => "delivered",
            RecipientStatus::Failed => "failed",
            RecipientStatus::Secure => "secure",
            RecipientStatus::Expired => "expired",
            RecipientStatus::Recalled => "recalled",
            RecipientStatus::Deleted => "deleted",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "queued" => RecipientStatus::Queued,
            "delivered" => RecipientStatus::Delivered,
            "failed" => RecipientStatus::Failed,
            "secure" => RecipientStatus::Secure,
            "expired" => RecipientStatus::Expired,
            "recalled" => RecipientStatus::Recalled,
            "deleted" => RecipientStatus::Deleted,
            _ => return None,
        })
    }

    /// The initial status for a routing decision.
    pub fn for_route(route: &Route) -> Self {
        match route {
            Route::Relay => RecipientStatus::Queued,
            Route::Secure { .. } => RecipientStatus::Secure,
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
    /// Its sender was already sent a delay warning about it
    /// (`relay.delay_warning`).
    pub delay_warned: bool,
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
    /// The message is a notification: its delivery marks the secure
    /// recipient it announces as notified, its permanent failure marks it
    /// as not notified (with `reply`).
    pub notification: bool,
    /// A TLS-or-portal notification job delivered as the message itself
    /// over verified TLS (not the notification).
    pub direct: bool,
    /// A delay warning about this recipient is queued with this outcome:
    /// it is marked as warned in the same commit, so it gets only one.
    pub delay_warned: bool,
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
    /// Recipients whose secure delivery is live.
    pub secure: u64,
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
    pub last_attempt_at: Option<SystemTime>,
    /// The secure-delivery record, for a recipient given secure delivery.
    pub secure: Option<SecureRecord>,
}

/// The tracking record of one secure recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecureRecord {
    pub definition: DefinitionId,
    pub trigger: SecureTrigger,
    pub notification: Option<QueueId>,
    pub expires_at: SystemTime,
    /// The notification reached the next hop.
    pub notified_at: Option<SystemTime>,
    /// The notification failed for good (refused, or given up on at the
    /// end of the queue lifetime): the recipient was never told.
    pub notify_failed_at: Option<SystemTime>,
    /// The reply (or our diagnostic) the notification failed with.
    pub notify_error: Option<String>,
    /// Marked TLS-or-portal at acceptance.
    pub tls_or_portal: bool,
    /// For a TLS-or-portal recipient reached: `message` (the message
    /// itself over verified TLS) or `notification`.
    pub delivered_as: Option<String>,
    /// The next hop's reply to what was delivered, and where it went.
    pub delivered_reply: Option<String>,
    pub first_opened_at: Option<SystemTime>,
    pub last_opened_at: Option<SystemTime>,
    pub read: bool,
    pub replied_at: Option<SystemTime>,
    /// When it expired or was recalled.
    pub ended_at: Option<SystemTime>,
    /// When this recipient's notification link registered the portal
    /// account (`None`: it did not; the account may come from another link).
    pub registered_at: Option<SystemTime>,
    /// When the recipient moved it to the portal's Deleted folder (`None`:
    /// in the Inbox).
    pub deleted_at: Option<SystemTime>,
    /// The recipient's portal replies and forwards of it, oldest first.
    pub replies: Vec<QueueId>,
}

/// The secure recipient a notification announces the message to, with
/// what the sender's "could not notify" mail needs
/// ([`crate::Store::notification_targets`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotificationTarget {
    /// The notification's queue id.
    pub notification: QueueId,
    /// The message it announces.
    pub message: QueueId,
    pub idx: u32,
    /// The secure recipient, as the message's envelope had it.
    pub recipient: String,
    /// The definition that applied.
    pub definition: DefinitionId,
    /// The message's envelope sender; `None` for the null sender.
    pub sender: Option<EmailAddress>,
    /// The message's subject, for tracking (the subject tag removed).
    pub subject: Option<String>,
    /// Marked TLS-or-portal at acceptance.
    pub tls_or_portal: bool,
}

/// The stored metadata of one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageRecord {
    pub id: QueueId,
    pub received_at: SystemTime,
    pub sender: String,
    pub client_ip: String,
    pub subject: Option<String>,
    pub size: u64,
    pub kind: MessageKind,
    /// For a notification or receipt: the message it is about.
    pub parent: Option<QueueId>,
    /// Whether content is still stored. It is destroyed (key and
    /// ciphertext) once no recipient needs it: every relay recipient
    /// final and every secure recipient expired or recalled.
    pub has_content: bool,
    /// The master key version its content is sealed with.
    pub key_version: Option<u32>,
    /// The SMTP account that submitted it, if one did (AUTH).
    pub smtp_account: Option<String>,
}

/// A message with its recipients: what tracking shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackedMessage {
    pub message: MessageRecord,
    pub recipients: Vec<RecipientRecord>,
}

/// A message's tracking record with the mails sealpost made about it
/// (notifications, receipts, notices): what the console's message page
/// shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageDetail {
    pub tracked: TrackedMessage,
    /// Messages whose parent is this one, oldest first.
    pub related: Vec<MessageRecord>,
}

/// A tracking search. Text filters match a part, without case.
#[derive(Debug, Clone, Default)]
pub struct MessageFilter {
    pub from: Option<String>,
    pub to: Option<String>,
    pub subject: Option<String>,
    /// Messages with at least one recipient in this status.
    pub status: Option<RecipientStatus>,
    pub since: Option<SystemTime>,
    pub until: Option<SystemTime>,
    /// Include notifications, receipts and DSNs (default: mail only).
    pub all_kinds: bool,
    /// Oldest first instead of newest first.
    pub oldest_first: bool,
    /// Continue after this message (in the order asked for): the last one
    /// of the previous page.
    pub after: Option<QueueId>,
    pub limit: usize,
}

/// A new expiry for a message's secure deliveries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExtendTo {
    /// This many days past the latest current expiry.
    Days(u32),
    /// This moment.
    Until(SystemTime),
}

/// What a recall did to one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecallOutcome {
    pub id: QueueId,
    /// Secure recipients whose access ended.
    pub recalled: usize,
    /// Relay recipients still queued whose delivery was cancelled.
    pub cancelled: usize,
    /// Whether the content was destroyed by this recall.
    pub destroyed: bool,
}

/// The message and recipient a portal token opens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecureAccess {
    pub message: QueueId,
    pub idx: u32,
    pub recipient: String,
    pub status: RecipientStatus,
    pub record: SecureRecord,
}

/// Message keys per master key version (for rotation progress).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyUsage {
    pub version: u32,
    pub messages: u64,
}

/// One step of checking that stored contents open.
#[derive(Debug, Clone, Default)]
pub struct VerifyBatch {
    pub checked: usize,
    /// Messages whose content did not open, with the reason.
    pub failures: Vec<(QueueId, String)>,
    /// Where the next batch starts; `None`: done.
    pub next: Option<QueueId>,
}

/// Milliseconds since the Unix epoch, the store's time unit.
pub(crate) fn to_millis(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A time as RFC 3339 (UTC, whole seconds): the one way every API view,
/// notification and CLI table writes a moment, through `time`'s formatter.
pub fn rfc3339(t: SystemTime) -> String {
    time::OffsetDateTime::from(t)
        .replace_nanosecond(0)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
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
