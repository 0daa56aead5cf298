//! The administrators of the console (issue 16, item 1): people who sign
//! in with a name and a password, each with one of the API's roles, and
//! their sessions.
//!
//! Like the portal's, every piece of this state (accounts, failure
//! counters, sessions) is in the store, so any node can serve the console.
//! A new administrator gets a one-time password that must be replaced at
//! the first sign-in; a password set by someone else (a reset) is one-time
//! too. Setting a password ends every session of the administrator. The
//! last super admin cannot be removed: someone must be able to manage the
//! others. An administrator may add a second step to sign-in ([`totp`]):
//! a password reset leaves it as it is; it is reset on its own.

pub mod totp;

use std::{fmt, time::SystemTime};

pub use totp::{
    AdminTotp, PENDING_ATTEMPTS, PENDING_SIGN_IN_FOR, PendingSignIn, RecoveryCodeHash, TotpOff,
    TotpSecret,
};

use crate::{
    Role, StoreError,
    audit::Actor,
    portal::{CsrfSecret, PasswordHash, SESSION_TOUCHED_EVERY, SessionHash, SessionLimits},
};

/// An administrator's sign-in name: 1 to 64 characters of lower-case
/// letters, digits, `.`, `_`, `-` and `@` (so an address works), compared
/// in lower case.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AdminName(String);

/// Longest administrator name.
pub const MAX_ADMIN_NAME: usize = 64;

impl AdminName {
    /// # Errors
    /// A sentence saying what a name may be.
    pub fn parse(text: &str) -> Result<AdminName, String> {
        let name = text.trim().to_ascii_lowercase();
        let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@');
        if name.is_empty() || name.len() > MAX_ADMIN_NAME || !name.chars().all(allowed) {
            return Err(format!(
                "{:?} is not an administrator name: use 1 to {MAX_ADMIN_NAME} letters, digits, \
                 '.', '_', '-' or '@'",
                sealpost_policy::text::one_line(text, 80)
            ));
        }
        Ok(AdminName(name))
    }

    /// A name read back from the store (checked when it was written).
    pub(crate) fn stored(name: String) -> AdminName {
        AdminName(name)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AdminName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An administrator as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Administrator {
    pub name: AdminName,
    pub role: Role,
    pub password: PasswordHash,
    /// The password is one-time: the next sign-in must replace it.
    pub must_change_password: bool,
    pub created_at: SystemTime,
    pub password_changed_at: SystemTime,
    /// Failed sign-ins since the last success (the lockout reads them).
    pub failed_sign_ins: u32,
    pub last_failure_at: Option<SystemTime>,
    pub last_sign_in_at: Option<SystemTime>,
    /// Sign-in asks for a TOTP code after the password.
    pub totp: bool,
}

/// A new administrator.
#[derive(Debug, Clone)]
pub struct NewAdministrator {
    pub name: AdminName,
    pub role: Role,
    pub password: PasswordHash,
    pub must_change_password: bool,
    pub now: SystemTime,
}

/// A live console session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminSession {
    pub name: AdminName,
    pub csrf: CsrfSecret,
    pub client_ip: String,
    pub user_agent: String,
    pub created_at: SystemTime,
    pub last_seen_at: SystemTime,
}

impl AdminSession {
    /// Whether this request should note the session's activity.
    pub fn needs_touch(&self, now: SystemTime) -> bool {
        now.duration_since(self.last_seen_at)
            .is_ok_and(|age| age >= SESSION_TOUCHED_EVERY)
    }
}

/// A session made at sign-in.
#[derive(Debug, Clone)]
pub struct NewAdminSession {
    pub id: SessionHash,
    pub name: AdminName,
    pub csrf: CsrfSecret,
    pub client_ip: std::net::IpAddr,
    pub user_agent: String,
    pub now: SystemTime,
}

/// The console's storage boundary.
#[async_trait::async_trait]
pub trait ConsoleStore: Send + Sync + fmt::Debug + 'static {
    /// Stores a new administrator (and the audit entry by `actor`); false
    /// when the name is taken.
    async fn create_administrator(
        &self,
        admin: NewAdministrator,
        actor: Actor,
    ) -> Result<bool, StoreError>;

    /// The administrator with this name, if any.
    async fn administrator(&self, name: &AdminName) -> Result<Option<Administrator>, StoreError>;

    /// Every administrator, by name.
    async fn administrators(&self) -> Result<Vec<Administrator>, StoreError>;

    /// Sets an administrator's password (one-time if `must_change`: a
    /// reset, else their own change) and ends every session of theirs but
    /// `keep` (the session that changed its own password), recording it;
    /// false when there is no such administrator.
    async fn set_administrator_password(
        &self,
        name: &AdminName,
        password: PasswordHash,
        must_change: bool,
        keep: Option<SessionHash>,
        now: SystemTime,
        actor: Actor,
    ) -> Result<bool, StoreError>;

    /// Gives an administrator another role (at their next request); false
    /// when there is none. [`StoreError::Refused`] for taking the role of
    /// the last super admin.
    async fn set_administrator_role(
        &self,
        name: &AdminName,
        role: Role,
        actor: Actor,
    ) -> Result<bool, StoreError>;

    /// Removes an administrator and their sessions; false when there was
    /// none. [`StoreError::Refused`] for the last super admin.
    async fn remove_administrator(
        &self,
        name: &AdminName,
        actor: Actor,
    ) -> Result<bool, StoreError>;

    /// Counts a failed sign-in; the new count, `None` for no such name.
    async fn record_failed_admin_sign_in(
        &self,
        name: &AdminName,
        now: SystemTime,
    ) -> Result<Option<u32>, StoreError>;

    /// Makes a session at sign-in: clears the failures and notes the
    /// sign-in. [`StoreError::NoSuch`] when the administrator is gone.
    async fn create_admin_session(&self, session: NewAdminSession) -> Result<(), StoreError>;

    /// The session with this id if it is within `limits`.
    async fn admin_session(
        &self,
        id: SessionHash,
        limits: SessionLimits,
        now: SystemTime,
    ) -> Result<Option<AdminSession>, StoreError>;

    /// Notes activity (at most once a minute); whether it wrote.
    async fn touch_admin_session(
        &self,
        id: SessionHash,
        limits: SessionLimits,
        now: SystemTime,
    ) -> Result<bool, StoreError>;

    /// Ends one session (sign-out); false when there was none.
    async fn end_admin_session(&self, id: SessionHash) -> Result<bool, StoreError>;

    /// Deletes the sessions past their limits, and pending sign-ins past
    /// [`PENDING_SIGN_IN_FOR`]; how many sessions.
    async fn purge_admin_sessions(
        &self,
        limits: SessionLimits,
        now: SystemTime,
    ) -> Result<usize, StoreError>;

    // Two-step sign-in (see [`totp`]).

    /// Starts (or starts again) an enrolment: `secret` is stored, sealed,
    /// not yet on. Nothing is audited until it is confirmed. False when
    /// there is no such administrator; [`StoreError::Refused`] when TOTP
    /// is already on.
    async fn start_admin_totp(
        &self,
        name: &AdminName,
        secret: TotpSecret,
        now: SystemTime,
    ) -> Result<bool, StoreError>;

    /// The administrator's TOTP with its secret opened, if any.
    async fn admin_totp(&self, name: &AdminName) -> Result<Option<AdminTotp>, StoreError>;

    /// Turns a started enrolment on, its first code at time step `step`,
    /// with these recovery codes, and records it; false when there is no
    /// enrolment waiting (none, or already on).
    async fn enable_admin_totp(
        &self,
        name: &AdminName,
        step: u64,
        recovery: Vec<RecoveryCodeHash>,
        now: SystemTime,
        actor: Actor,
    ) -> Result<bool, StoreError>;

    /// Accepts time step `step` once: false when it is not after the last
    /// one accepted (a replayed code) or TOTP is not on. Atomic, so two
    /// nodes never accept the same code.
    async fn accept_admin_totp_step(&self, name: &AdminName, step: u64)
    -> Result<bool, StoreError>;

    /// Spends a recovery code; false when it is unknown or already used.
    async fn use_admin_recovery_code(
        &self,
        name: &AdminName,
        code: RecoveryCodeHash,
        now: SystemTime,
    ) -> Result<bool, StoreError>;

    /// Turns TOTP off (an enrolment in progress too), recording it when
    /// it was on; false when there was nothing to turn off.
    async fn disable_admin_totp(
        &self,
        name: &AdminName,
        why: TotpOff,
        actor: Actor,
    ) -> Result<bool, StoreError>;

    /// Notes a pending sign-in under `id` (the hash of a fresh cookie).
    async fn create_admin_pending_sign_in(
        &self,
        id: SessionHash,
        name: &AdminName,
        now: SystemTime,
    ) -> Result<(), StoreError>;

    /// The pending sign-in under `id`, if younger than
    /// [`PENDING_SIGN_IN_FOR`] and with attempts left.
    async fn admin_pending_sign_in(
        &self,
        id: SessionHash,
        now: SystemTime,
    ) -> Result<Option<PendingSignIn>, StoreError>;

    /// Counts a wrong code against the pending sign-in; the attempts so
    /// far (it ends at [`PENDING_ATTEMPTS`]).
    async fn fail_admin_pending_sign_in(&self, id: SessionHash) -> Result<u32, StoreError>;

    /// Ends a pending sign-in (it became a session, or was abandoned).
    async fn end_admin_pending_sign_in(&self, id: SessionHash) -> Result<bool, StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_lower_case_and_limited() {
        assert_eq!(AdminName::parse(" Alice ").unwrap().as_str(), "alice");
        assert_eq!(
            AdminName::parse("ops.team@corp.example").unwrap().as_str(),
            "ops.team@corp.example"
        );
        for bad in ["", "a b", "ä", "x/y", &"a".repeat(65)] {
            let e = AdminName::parse(bad).unwrap_err();
            assert!(e.contains("is not an administrator name"), "{bad}: {e}");
        }
        assert!(AdminName::parse(&"a".repeat(64)).is_ok());
    }
}
