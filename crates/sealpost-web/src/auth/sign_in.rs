//! The password check of a sign-in, the same for recipients and
//! administrators: the lockout first, then argon2 in every case, so the
//! time taken tells an attacker neither whether the account exists nor
//! whether it is locked. The caller looks the account up and counts a
//! failure in its store (where every node sees it).

use std::time::SystemTime;

use super::{
    limit::Backoff,
    password::{self, Password, PasswordHash},
};

/// What a sign-in checks of a stored account.
#[derive(Debug, Clone)]
pub struct Credentials {
    /// `None` when the stored hash does not parse (never signs in).
    pub hash: Option<PasswordHash>,
    pub failed_sign_ins: u32,
    pub last_failure_at: Option<SystemTime>,
}

impl Credentials {
    /// From a stored PHC string and failure counters.
    pub fn new(phc: &str, failed_sign_ins: u32, last_failure_at: Option<SystemTime>) -> Self {
        Credentials {
            hash: PasswordHash::parse(phc).ok(),
            failed_sign_ins,
            last_failure_at,
        }
    }
}

/// How a password check ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    /// A wrong password (or no such account): the caller counts it.
    Failed,
    /// The account is in its back-off; the password was not compared.
    Locked,
}

impl Outcome {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Failed => "failed",
            Outcome::Locked => "locked",
        }
    }
}

/// Checks `password` against `stored` (`None`: no such account) under
/// `backoff` at `now`. A locked account is checked against the fallback
/// hash, never its own.
pub async fn check(
    stored: Option<&Credentials>,
    password: Password,
    backoff: &Backoff,
    now: SystemTime,
) -> Outcome {
    let locked = stored.is_some_and(|c| {
        backoff
            .check(c.failed_sign_ins, c.last_failure_at, now)
            .is_err()
    });
    let hash = stored.filter(|_| !locked).and_then(|c| c.hash.clone());
    let matches = password::verify_blocking(password, hash).await;
    match (matches, locked) {
        (true, _) => Outcome::Ok,
        (false, true) => Outcome::Locked,
        (false, false) => Outcome::Failed,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn a_right_password_signs_in_until_the_lockout_and_a_wrong_one_fails() {
        let phc = password::hash(&Password::new("granite-lantern-orbit-meadow")).unwrap();
        let now = SystemTime::now();
        let fresh = Credentials::new(phc.as_phc(), 0, None);
        let backoff = Backoff::default();
        let right = || Password::new("granite-lantern-orbit-meadow");
        assert_eq!(
            check(Some(&fresh), right(), &backoff, now).await,
            Outcome::Ok
        );
        assert_eq!(
            check(Some(&fresh), Password::new("nope"), &backoff, now).await,
            Outcome::Failed
        );
        assert_eq!(check(None, right(), &backoff, now).await, Outcome::Failed);
        // Six failures a second ago: locked, even with the right password.
        let locked = Credentials::new(phc.as_phc(), 6, Some(now - Duration::from_secs(1)));
        assert_eq!(
            check(Some(&locked), right(), &backoff, now).await,
            Outcome::Locked
        );
        // An unreadable hash never signs in.
        let broken = Credentials::new("not a hash", 0, None);
        assert_eq!(
            check(Some(&broken), right(), &backoff, now).await,
            Outcome::Failed
        );
    }
}
