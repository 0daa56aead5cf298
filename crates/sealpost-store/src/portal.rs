//! The recipient portal's side of the store: accounts, sign-in failure
//! counters, sessions, one-time links and the mailbox of an address.
//!
//! Every piece of portal state lives here, never only in one process's
//! memory, so several nodes can serve one portal. Nothing here holds
//! plaintext content or a password: only a password's PHC hash, and only
//! hashes of session ids and link tokens (a database copy opens nothing).
//! Policy (password strength, back-off, link and session lifetimes) is the
//! caller's; the store applies the limits it is given atomically.

use std::{
    fmt,
    time::{Duration, SystemTime},
};

use sealpost_policy::{DefinitionId, EmailAddress};
use sealpost_vault::TokenHash;

use crate::{QueueId, StoreError};

/// A portal account's key: the address's match key (ASCII letters of the
/// local part lower-cased, the domain in ASCII), so `Bob@X.example` and
/// `bob@x.example` are one account. Built only from a parsed address.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AccountKey(String);

impl AccountKey {
    pub fn of(address: &EmailAddress) -> Self {
        AccountKey(address.match_key())
    }

    /// A key read back from the store (it was built by [`AccountKey::of`]).
    pub(crate) fn stored(key: String) -> Self {
        AccountKey(key)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AccountKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A password hash as a PHC string (`$argon2id$v=19$...`), made by the
/// caller. Redacted in `Debug`: a hash can still be attacked offline.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHash(String);

impl PasswordHash {
    pub fn new(phc: String) -> Self {
        PasswordHash(phc)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PasswordHash(..)")
    }
}

/// SHA-256 of a session id. The id itself is only in the cookie, so a
/// database copy cannot be used to take over a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SessionHash(pub [u8; 32]);

/// A session's CSRF secret: forms carry a token derived from it. Redacted
/// in `Debug`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct CsrfSecret(pub [u8; 32]);

impl fmt::Debug for CsrfSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CsrfSecret(..)")
    }
}

/// A portal account with its sign-in failure counters (the caller's
/// back-off policy reads them with the account, in one lookup).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub key: AccountKey,
    pub password_hash: PasswordHash,
    pub created_at: SystemTime,
    pub password_changed_at: SystemTime,
    /// Failed sign-ins since the last successful one.
    pub failed_sign_ins: u32,
    pub last_failure_at: Option<SystemTime>,
}

/// What proves the mailbox at registration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegistrationProof {
    /// The portal token of one of the address's secure recipients (the
    /// notification link): single use, valid for the registration TTL from
    /// the message's receipt.
    PortalToken(TokenHash),
    /// A fresh registration link ([`LinkPurpose::Register`]) mailed to the
    /// address: single use, valid until its own expiry.
    Link(TokenHash),
}

/// How a registration ended. Only `Created` changed anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Registration {
    Created(Account),
    /// No secure recipient (or register link) has this token.
    UnknownLink,
    /// The link already registered an account.
    Used,
    /// The link is past its validity.
    Expired,
    /// The address already has an account (the caller asks for the
    /// password instead).
    AccountExists,
    /// No secure message was ever sent to the address.
    NoMessage,
}

/// What the notification link is, for the first-visit page: whose it is,
/// when it was issued (the caller's TTL starts there) and whether it can
/// still register.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrationLink {
    pub account: AccountKey,
    pub message: QueueId,
    pub idx: u32,
    /// The message's receipt, when the notification link was made.
    pub issued_at: SystemTime,
    /// When this link registered the account, if it did.
    pub registered_at: Option<SystemTime>,
    /// Whether the address has an account (by this link or another).
    pub account_exists: bool,
}

/// A new session, made at sign-in (or registration).
#[derive(Debug, Clone)]
pub struct NewSession {
    pub id: SessionHash,
    pub account: AccountKey,
    pub csrf: CsrfSecret,
    pub client_ip: std::net::IpAddr,
    /// Cut to [`MAX_USER_AGENT`] bytes by the store.
    pub user_agent: String,
    pub now: SystemTime,
}

/// The longest user agent kept with a session; it is only shown to the
/// user ("signed in from ..."), and a client must not grow the table.
pub const MAX_USER_AGENT: usize = 256;

/// A live session as looked up by its hashed id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub account: AccountKey,
    pub csrf: CsrfSecret,
    pub client_ip: String,
    pub user_agent: String,
    pub created_at: SystemTime,
    /// To the minute: [`PortalStore::touch_session`] writes at most once
    /// a minute.
    pub last_seen_at: SystemTime,
}

/// How often a session's last-seen time is written. Reading a page must
/// not cost a write each time (a write waits for the one writer), and the
/// idle timeout is counted in tens of minutes.
pub const SESSION_TOUCHED_EVERY: Duration = Duration::from_secs(60);

/// How often repeated openings of one message are written to tracking
/// (last opened). The first opening, and an opening of a message marked
/// unread, are always written.
pub const OPENING_RECORDED_EVERY: Duration = Duration::from_secs(60);

impl Session {
    /// Whether this request should note the session's activity: its
    /// last-seen time is [`SESSION_TOUCHED_EVERY`] old.
    pub fn needs_touch(&self, now: SystemTime) -> bool {
        now.duration_since(self.last_seen_at)
            .is_ok_and(|age| age >= SESSION_TOUCHED_EVERY)
    }
}

/// How long sessions may live; the caller's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionLimits {
    /// Ended after this long without a request (`portal.session_idle`).
    pub idle: Duration,
    /// Ended this long after sign-in, however busy.
    pub absolute: Duration,
}

/// What a one-time link is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkPurpose {
    /// A forgotten password: needs an account.
    Reset,
    /// A fresh registration link, after the notification link expired:
    /// needs a live secure message and no account.
    Register,
}

impl LinkPurpose {
    pub fn as_str(self) -> &'static str {
        match self {
            LinkPurpose::Reset => "reset",
            LinkPurpose::Register => "register",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "reset" => LinkPurpose::Reset,
            "register" => LinkPurpose::Register,
            _ => return None,
        })
    }
}

/// A one-time link to store; only its token's hash is kept.
#[derive(Debug, Clone)]
pub struct NewLink {
    pub token: TokenHash,
    pub purpose: LinkPurpose,
    pub account: AccountKey,
    pub expires_at: SystemTime,
}

/// A one-time link that is still usable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OneTimeLink {
    pub purpose: LinkPurpose,
    pub account: AccountKey,
    pub created_at: SystemTime,
    pub expires_at: SystemTime,
}

/// Expired sessions and links removed by [`PortalStore::purge_expired`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Purged {
    pub sessions: usize,
    pub links: usize,
}

/// A mailbox folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Folder {
    /// The address's secure messages it has not deleted.
    Inbox,
    /// The recipient's replies and forwards, as committed with them
    /// ([`crate::PortalSent`]). A row's `message` is the reply, `idx` 0,
    /// `sender` the author, `recipients` whom it went to; search covers
    /// recipients and subject; Sent rows are never deleted by the
    /// recipient.
    Sent,
    /// Moved there by the recipient; restorable until the message expires.
    Deleted,
}

/// Where a page of a mailbox starts: after this row, newest first. A row
/// is ordered by (received, message id, index), so pages neither skip nor
/// repeat rows when mail arrives between two requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailboxCursor {
    pub received_at: SystemTime,
    pub message: QueueId,
    pub idx: u32,
}

/// One page of a folder.
#[derive(Debug, Clone)]
pub struct MailboxQuery {
    pub folder: Folder,
    /// Text that the sender or the subject contains (any case).
    pub search: Option<String>,
    /// Also list messages whose access ended (expired or recalled) but
    /// whose metadata is kept, so the page can say so.
    pub include_ended: bool,
    pub after: Option<MailboxCursor>,
    /// At most this many rows (clamped to 1..=500).
    pub limit: usize,
}

/// Whether a message can still be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Live,
    /// Its expiry passed (whether or not the expiry job has run yet).
    Expired,
    /// The sender or an administrator recalled it.
    Recalled,
}

/// One message of a mailbox: metadata only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailboxRow {
    pub message: QueueId,
    pub idx: u32,
    /// The envelope sender; empty for the null sender.
    pub sender: String,
    pub subject: Option<String>,
    pub received_at: SystemTime,
    pub expires_at: SystemTime,
    pub read: bool,
    /// `None`: not known (not recorded at acceptance yet).
    pub has_attachments: Option<bool>,
    pub access: Access,
    pub deleted_at: Option<SystemTime>,
    /// Sent rows only: the addresses the reply went to, `, `-joined.
    pub recipients: Option<String>,
    /// Received rows only: the definition the message was sent under.
    pub definition: Option<DefinitionId>,
    /// Received rows only: when the recipient last opened it (written at
    /// most once a minute, see [`OPENING_RECORDED_EVERY`]).
    pub last_opened_at: Option<SystemTime>,
}

impl MailboxRow {
    /// Whether opening this message now should be written to tracking:
    /// never opened, marked unread since, or last opened
    /// [`OPENING_RECORDED_EVERY`] ago.
    pub fn opening_due(&self, now: SystemTime) -> bool {
        !self.read
            || self.last_opened_at.is_none_or(|last| {
                now.duration_since(last)
                    .is_ok_and(|age| age >= OPENING_RECORDED_EVERY)
            })
    }

    pub fn cursor(&self) -> MailboxCursor {
        MailboxCursor {
            received_at: self.received_at,
            message: self.message.clone(),
            idx: self.idx,
        }
    }
}

/// A page of a folder, and where the next one starts (`None`: last page).
#[derive(Debug, Clone, Default)]
pub struct MailboxPage {
    pub rows: Vec<MailboxRow>,
    pub next: Option<MailboxCursor>,
}

/// The portal's storage boundary. Times are the caller's `now`; the store
/// has no clock.
///
/// Every per-message call takes the account and answers
/// [`StoreError::NotFound`] for a message that is not that address's,
/// the same as for one that does not exist (SPEC §8: a recipient reads
/// only their own messages).
#[async_trait::async_trait]
pub trait PortalStore: Send + Sync + std::fmt::Debug + 'static {
    /// The notification link's registration state, by its portal token.
    async fn registration_link(
        &self,
        token: TokenHash,
    ) -> Result<Option<RegistrationLink>, StoreError>;

    /// Creates the account the proof's address may have, consuming the
    /// proof, in one transaction: a link registers at most once, an
    /// address has at most one account, and only an address some secure
    /// message was sent to gets one. A portal token older than `link_ttl`
    /// (from the message's receipt) is refused.
    async fn register(
        &self,
        proof: RegistrationProof,
        password: PasswordHash,
        link_ttl: Duration,
        now: SystemTime,
    ) -> Result<Registration, StoreError>;

    /// The account with its failure counters, if the address has one.
    async fn account(&self, account: &AccountKey) -> Result<Option<Account>, StoreError>;

    /// Counts a failed sign-in atomically (concurrent nodes each count)
    /// and returns the new count; `None` (nothing stored) for an address
    /// without an account.
    async fn record_failed_sign_in(
        &self,
        account: &AccountKey,
        now: SystemTime,
    ) -> Result<Option<u32>, StoreError>;

    /// Starts a session after a successful sign-in and clears the
    /// account's failure counter in the same commit (a session is only
    /// ever made for a proven password or link). [`StoreError::NoSuch`]
    /// when the account does not exist.
    async fn create_session(&self, session: NewSession) -> Result<(), StoreError>;

    /// The session with this hashed id, if it exists and is within
    /// `limits` at `now`.
    async fn session(
        &self,
        id: SessionHash,
        limits: SessionLimits,
        now: SystemTime,
    ) -> Result<Option<Session>, StoreError>;

    /// Notes activity on a session still within `limits` (an ended one is
    /// never revived). Writes only when the stored time is a minute old or
    /// more (a page load must not cost a commit); returns whether it wrote.
    async fn touch_session(
        &self,
        id: SessionHash,
        limits: SessionLimits,
        now: SystemTime,
    ) -> Result<bool, StoreError>;

    /// Ends one session (sign-out); false when there was none.
    async fn end_session(&self, id: SessionHash) -> Result<bool, StoreError>;

    /// Ends every session of the account but `keep` (after a password
    /// change); returns how many ended.
    async fn end_other_sessions(
        &self,
        account: &AccountKey,
        keep: Option<SessionHash>,
    ) -> Result<usize, StoreError>;

    /// Stores a one-time link if its address qualifies: for a reset, the
    /// account exists; for a registration, a live secure message exists
    /// and no account does. Returns whether it was stored (the caller
    /// mails it only then and answers the same either way).
    async fn create_link(&self, link: NewLink, now: SystemTime) -> Result<bool, StoreError>;

    /// A link still unused and unexpired, without using it (for the page
    /// that shows the form; mail scanners fetch links too).
    async fn link(
        &self,
        token: TokenHash,
        now: SystemTime,
    ) -> Result<Option<OneTimeLink>, StoreError>;

    /// Uses a link of this purpose: returns its address once, and only
    /// before its expiry.
    async fn consume_link(
        &self,
        token: TokenHash,
        purpose: LinkPurpose,
        now: SystemTime,
    ) -> Result<Option<AccountKey>, StoreError>;

    /// A password reset in one commit: uses the reset link, sets the
    /// password, clears the failure counter and ends every session of the
    /// account. `None` when the link is unknown, used or expired.
    async fn reset_password(
        &self,
        token: TokenHash,
        password: PasswordHash,
        now: SystemTime,
    ) -> Result<Option<AccountKey>, StoreError>;

    /// Removes sessions past `limits` and links past their expiry (used
    /// ones included).
    async fn purge_expired(
        &self,
        limits: SessionLimits,
        now: SystemTime,
    ) -> Result<Purged, StoreError>;

    /// A page of one folder of the address's mailbox, newest first.
    async fn mailbox(
        &self,
        account: &AccountKey,
        query: MailboxQuery,
        now: SystemTime,
    ) -> Result<MailboxPage, StoreError>;

    /// One message of the address's mailbox (before opening it).
    async fn mailbox_message(
        &self,
        account: &AccountKey,
        id: &QueueId,
        idx: u32,
        now: SystemTime,
    ) -> Result<MailboxRow, StoreError>;

    /// One reply of the account's Sent folder (before opening it);
    /// `NotFound` for a message that is not the account's reply.
    async fn sent_message(
        &self,
        account: &AccountKey,
        id: &QueueId,
    ) -> Result<MailboxRow, StoreError>;

    /// Marks one message of the address read or unread.
    async fn mark_read(
        &self,
        account: &AccountKey,
        id: &QueueId,
        idx: u32,
        read: bool,
    ) -> Result<(), StoreError>;

    /// Moves one message of the address to Deleted (again: no change).
    async fn delete_message(
        &self,
        account: &AccountKey,
        id: &QueueId,
        idx: u32,
        now: SystemTime,
    ) -> Result<(), StoreError>;

    /// Moves one message of the address back to the Inbox;
    /// [`StoreError::Refused`] once its access ended.
    async fn restore_message(
        &self,
        account: &AccountKey,
        id: &QueueId,
        idx: u32,
        now: SystemTime,
    ) -> Result<(), StoreError>;
}
