//! Two-step sign-in of administrators (TOTP, RFC 6238): what the store
//! keeps of it. The shared secret is handed in and out in the clear
//! ([`TotpSecret`], redacted in `Debug`) and sealed by the store's vault
//! at rest; recovery codes only as hashes ([`RecoveryCodeHash`]); a
//! [`PendingSignIn`] is the state between a right password and a right
//! code. Generating and checking codes is the web crate's (`auth::totp`).

use std::{
    fmt,
    time::{Duration, SystemTime},
};

use super::AdminName;

/// How long a pending sign-in waits for its code.
pub const PENDING_SIGN_IN_FOR: Duration = Duration::from_secs(5 * 60);

/// Wrong codes a pending sign-in takes before it ends (the password must
/// be given again); each also counts toward the account's lockout.
pub const PENDING_ATTEMPTS: u32 = 5;

/// A TOTP shared secret (the raw bytes, 20 for SHA-1). Never in `Debug`,
/// overwritten when dropped (best effort).
#[derive(Clone, PartialEq, Eq)]
pub struct TotpSecret(Vec<u8>);

impl TotpSecret {
    pub fn new(bytes: Vec<u8>) -> Self {
        TotpSecret(bytes)
    }

    /// The bytes, for computing codes only.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TotpSecret(..)")
    }
}

impl Drop for TotpSecret {
    fn drop(&mut self) {
        self.0.fill(0);
        std::hint::black_box(&mut self.0);
    }
}

/// SHA-256 of a normalised recovery code.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct RecoveryCodeHash(pub [u8; 32]);

impl fmt::Debug for RecoveryCodeHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RecoveryCodeHash(..)")
    }
}

/// An administrator's TOTP as stored, the secret opened.
#[derive(Debug, Clone)]
pub struct AdminTotp {
    pub secret: TotpSecret,
    /// False while enrolment waits for its first right code.
    pub enabled: bool,
    pub created_at: SystemTime,
    pub enabled_at: Option<SystemTime>,
    /// The last time step accepted: it and every earlier one are refused.
    pub last_step: Option<u64>,
    /// Recovery codes not used yet.
    pub recovery_codes_left: u32,
}

/// Why TOTP is turned off, for the audit log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TotpOff {
    /// By the administrator themself.
    Disabled,
    /// By a super admin or the CLI (a lost device).
    Reset,
}

impl TotpOff {
    pub fn action(self) -> &'static str {
        match self {
            TotpOff::Disabled => "disable_totp",
            TotpOff::Reset => "reset_totp",
        }
    }
}

/// A sign-in whose password was right, waiting for the code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingSignIn {
    pub name: AdminName,
    pub created_at: SystemTime,
    /// Wrong codes so far.
    pub attempts: u32,
}
