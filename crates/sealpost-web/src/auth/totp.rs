//! Second-step codes of a sign-in: TOTP (RFC 6238: HMAC-SHA-1, 6 digits,
//! 30-second steps, one step of skew either way) and one-time recovery
//! codes. Pure: the caller passes `now` and keeps the state (the secret,
//! the last step accepted, the recovery code hashes) in its store.
//!
//! `check` returns the matched time step rather than a yes: the caller
//! accepts a step only once (RFC 6238 §5.2), so a code seen over a
//! shoulder or replayed within its 90-second window is refused.

use std::time::{SystemTime, UNIX_EPOCH};

use sealpost_store::console::{RecoveryCodeHash, TotpSecret};
use totp_rs::{Builder, Totp};

/// Bytes of a new secret: 160 bits, RFC 4226's recommendation for SHA-1.
const SECRET_LEN: usize = 20;

/// How many recovery codes an enrolment gives.
pub const RECOVERY_CODES: usize = 10;

/// Characters of a recovery code, without its dashes: 16 from 31 letters
/// and digits without look-alikes, about 79 bits, so a fast hash is
/// enough to keep them (nobody guesses 2^79).
const RECOVERY_LEN: usize = 16;
const RECOVERY_ALPHABET: &[u8; 31] = b"abcdefghjkmnpqrstuvwxyz23456789";

/// A new random secret.
///
/// # Panics
/// If the operating system has no random source.
pub fn new_secret() -> TotpSecret {
    let mut bytes = vec![0u8; SECRET_LEN];
    getrandom::fill(&mut bytes).expect("the OS random source is available");
    TotpSecret::new(bytes)
}

fn totp(secret: &TotpSecret, issuer: &str, account: &str) -> Totp {
    // The RFC's parameters (SHA-1, 6 digits, 30 s, skew 1) are the
    // builder's defaults; `build_noncompliant` skips only the secret
    // length check, which our 20 bytes pass anyway, and cannot fail on
    // an issuer or account with a ':' (the URI escapes them).
    Builder::new()
        .with_secret(secret.expose().to_vec())
        .with_issuer(Some(issuer.replace(':', " ")))
        .with_account_name(account.replace(':', " "))
        .build_noncompliant()
}

/// The secret as authenticator apps take it typed: base32 without
/// padding, in groups of four.
pub fn base32(secret: &TotpSecret) -> String {
    let plain = totp(secret, "", "").secret().to_base32();
    plain
        .as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The `otpauth://totp/…` URI an app scans or takes pasted.
pub fn otpauth_uri(secret: &TotpSecret, issuer: &str, account: &str) -> String {
    totp(secret, issuer, account)
        .to_url()
        .unwrap_or_else(|_| String::from("otpauth://totp/"))
}

fn seconds(now: SystemTime) -> u64 {
    now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The time step `code` is right for at `now` (this step, the one before
/// or the one after), if any. Spaces in the code are ignored.
pub fn check(secret: &TotpSecret, code: &str, now: SystemTime) -> Option<u64> {
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    totp(secret, "", "").check(&code, seconds(now))
}

/// The code at `now` (tests, and nothing else: a server never needs to
/// show one).
pub fn code_at(secret: &TotpSecret, now: SystemTime) -> String {
    totp(secret, "", "").generate(seconds(now)).to_string()
}

/// What a person typed at the second step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Code {
    /// Six digits from the app.
    Totp(String),
    /// A recovery code, as its hash.
    Recovery(RecoveryCodeHash),
}

impl Code {
    /// Six digits are a TOTP code; 16 letters and digits (dashes, spaces
    /// and case ignored) a recovery code; anything else is no code.
    pub fn parse(text: &str) -> Option<Code> {
        let compact: String = text
            .chars()
            .filter(|c| !c.is_whitespace() && *c != '-')
            .collect::<String>()
            .to_ascii_lowercase();
        if compact.len() == 6 && compact.bytes().all(|b| b.is_ascii_digit()) {
            return Some(Code::Totp(compact));
        }
        recovery_hash(&compact).map(Code::Recovery)
    }
}

/// The hash of a recovery code (normalised: no dashes or spaces, lower
/// case), or `None` when it cannot be one.
pub fn recovery_hash(text: &str) -> Option<RecoveryCodeHash> {
    let compact: String = text
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .collect::<String>()
        .to_ascii_lowercase();
    if compact.len() != RECOVERY_LEN || !compact.bytes().all(|b| RECOVERY_ALPHABET.contains(&b)) {
        return None;
    }
    let digest = ring::digest::digest(&ring::digest::SHA256, compact.as_bytes());
    Some(RecoveryCodeHash(
        digest.as_ref().try_into().expect("SHA-256 is 32 bytes"),
    ))
}

/// A new set of recovery codes (`xxxx-xxxx-xxxx-xxxx`), to show once.
///
/// # Panics
/// If the operating system has no random source.
pub fn recovery_codes() -> Vec<String> {
    (0..RECOVERY_CODES).map(|_| recovery_code()).collect()
}

fn recovery_code() -> String {
    let mut text = String::with_capacity(RECOVERY_LEN + 3);
    let mut filled = 0;
    while filled < RECOVERY_LEN {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).expect("the OS random source is available");
        // Rejection sampling: 248 = 8 × 31, so every character is as likely.
        for b in bytes.into_iter().filter(|&b| b < 248) {
            if filled == RECOVERY_LEN {
                break;
            }
            if filled > 0 && filled % 4 == 0 {
                text.push('-');
            }
            text.push(char::from(RECOVERY_ALPHABET[usize::from(b % 31)]));
            filled += 1;
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// RFC 6238 appendix B, SHA-1 (the last 6 of its 8 digits).
    #[test]
    fn codes_are_rfc_6238s() {
        let secret = TotpSecret::new(b"12345678901234567890".to_vec());
        let at = |s: u64| UNIX_EPOCH + Duration::from_secs(s);
        assert_eq!(code_at(&secret, at(59)), "287082");
        assert_eq!(code_at(&secret, at(1_111_111_109)), "081804");
        assert_eq!(code_at(&secret, at(2_000_000_000)), "279037");
        assert_eq!(check(&secret, "287082", at(59)), Some(1));
        assert_eq!(
            check(&secret, "287 082", at(59 + 30)),
            Some(1),
            "one step late"
        );
        assert_eq!(
            check(&secret, "287082", at(59 + 60)),
            None,
            "two steps late"
        );
        assert_eq!(check(&secret, "28708", at(59)), None);
        assert_eq!(check(&secret, "abcdef", at(59)), None);
    }

    #[test]
    fn the_uri_and_base32_name_the_secret_for_an_app() {
        let secret = TotpSecret::new(b"12345678901234567890".to_vec());
        assert_eq!(base32(&secret), "GEZD GNBV GY3T QOJQ GEZD GNBV GY3T QOJQ");
        let uri = otpauth_uri(&secret, "sealpost gw.example", "ann");
        assert!(
            uri.starts_with("otpauth://totp/sealpost%20gw.example:ann?"),
            "{uri}"
        );
        assert!(
            uri.contains("secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"),
            "{uri}"
        );
        assert!(!format!("{secret:?}").contains("1234"));
    }

    #[test]
    fn recovery_codes_are_new_unambiguous_and_parse_however_typed() {
        let codes = recovery_codes();
        assert_eq!(codes.len(), RECOVERY_CODES);
        let mut unique = codes.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), RECOVERY_CODES);
        for code in &codes {
            assert_eq!(code.len(), 19, "{code}");
            assert!(!code.contains(['0', 'o', '1', 'l', 'i']), "{code}");
            let hash = recovery_hash(code).unwrap();
            let shouted = code.to_uppercase().replace('-', " ");
            assert_eq!(Code::parse(&shouted), Some(Code::Recovery(hash)));
        }
        assert_eq!(Code::parse(" 123 456 "), Some(Code::Totp("123456".into())));
        assert_eq!(Code::parse("12345"), None);
        assert_eq!(Code::parse("not-a-code"), None);
    }
}
