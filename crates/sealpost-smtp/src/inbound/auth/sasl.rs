//! SASL as RFC 4954 carries it over SMTP: the `AUTH` command line, the
//! base64 client responses (`*` cancels), and the two mechanisms offered,
//! PLAIN (RFC 4616) and LOGIN (draft-murchison-sasl-login).
//!
//! Pure: bytes in, credentials or a typed error out. No I/O, no password
//! checks; [`super`] drives the dialogue and verifies.

use std::fmt;

use base64::{Engine, engine::general_purpose::STANDARD};

/// The mechanisms offered (in EHLO: `AUTH PLAIN LOGIN`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    Plain,
    Login,
}

impl Mechanism {
    /// The EHLO keyword's value.
    pub const OFFERED: &'static str = "PLAIN LOGIN";

    /// A mechanism name as the client wrote it (case-insensitive).
    pub fn parse(name: &str) -> Option<Self> {
        if name.eq_ignore_ascii_case("PLAIN") {
            Some(Mechanism::Plain)
        } else if name.eq_ignore_ascii_case("LOGIN") {
            Some(Mechanism::Login)
        } else {
            None
        }
    }
}

/// A password as the client sent it. Never logged: `Debug` hides it.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    pub fn new(text: impl Into<String>) -> Self {
        Password(text.into())
    }

    /// The text, for the hash check only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(..)")
    }
}

/// What a client proved it knows: an account name and a password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The authentication identity, as sent (the account name).
    pub name: String,
    pub password: Password,
}

/// Why a SASL exchange ended without credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SaslError {
    /// The client answered `*` (RFC 4954 §4: the server replies 501).
    #[error("authentication cancelled by the client")]
    Cancelled,
    /// A response was not valid base64 (`501 5.5.2`).
    #[error("a client response is not valid base64")]
    BadBase64,
    /// The decoded response is not what the mechanism expects (no
    /// `authzid NUL authcid NUL passwd` for PLAIN, not UTF-8, empty parts).
    #[error("a client response is malformed for the mechanism")]
    Malformed,
    /// PLAIN asked to act as someone else (an authzid other than the
    /// authcid); sealpost authorizes no account to act as another.
    #[error("acting as another identity is not allowed")]
    OtherIdentity,
}

/// A parsed `AUTH` command (the text after the verb).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthCommand {
    pub mechanism: Option<Mechanism>,
    /// The mechanism name as given, for the log of an unknown one.
    pub mechanism_name: String,
    /// The initial response (RFC 4954 §4), still base64; `=` is an empty
    /// one. `None` when the client sent none.
    pub initial: Option<String>,
}

/// Parses the arguments of `AUTH` (the text after the verb, CRLF
/// included or not).
///
/// # Errors
/// `None` when there is no mechanism or more than one argument follows it.
pub fn parse_command(args: &[u8]) -> Option<AuthCommand> {
    let text = std::str::from_utf8(args).ok()?;
    let mut words = text.split_ascii_whitespace();
    let name = words.next()?;
    let initial = words.next().map(str::to_owned);
    if words.next().is_some() {
        return None;
    }
    Some(AuthCommand {
        mechanism: Mechanism::parse(name),
        mechanism_name: name
            .chars()
            .filter(char::is_ascii_graphic)
            .take(32)
            .collect(),
        initial,
    })
}

/// Decodes one client response: a line of base64, `=` for an empty one
/// in the initial response, or `*` to cancel.
///
/// # Errors
/// [`SaslError::Cancelled`] for `*`, [`SaslError::BadBase64`] otherwise.
pub fn decode_response(line: &[u8]) -> Result<Vec<u8>, SaslError> {
    let line = line.trim_ascii();
    match line {
        b"*" => Err(SaslError::Cancelled),
        b"=" => Ok(Vec::new()),
        _ => STANDARD.decode(line).map_err(|_| SaslError::BadBase64),
    }
}

/// The base64 of a server challenge (for `334`).
pub fn encode_challenge(text: &str) -> String {
    STANDARD.encode(text)
}

/// PLAIN's one message: `[authzid] NUL authcid NUL passwd` (RFC 4616 §2).
///
/// # Errors
/// [`SaslError::Malformed`] for anything else, [`SaslError::OtherIdentity`]
/// for an authzid that is not the authcid.
pub fn plain(decoded: &[u8]) -> Result<Credentials, SaslError> {
    let mut parts = decoded.split(|&b| b == 0);
    let (Some(authzid), Some(authcid), Some(passwd), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(SaslError::Malformed);
    };
    let text = |b: &[u8]| {
        std::str::from_utf8(b)
            .map(str::to_owned)
            .map_err(|_| SaslError::Malformed)
    };
    let (authzid, name, password) = (text(authzid)?, text(authcid)?, text(passwd)?);
    if name.is_empty() || password.is_empty() {
        return Err(SaslError::Malformed);
    }
    if !authzid.is_empty() && !authzid.eq_ignore_ascii_case(&name) {
        return Err(SaslError::OtherIdentity);
    }
    Ok(Credentials {
        name,
        password: Password::new(password),
    })
}

/// One of LOGIN's two answers (the user name, then the password): UTF-8
/// text, not empty.
///
/// # Errors
/// [`SaslError::Malformed`].
pub fn login_field(decoded: Vec<u8>) -> Result<String, SaslError> {
    match String::from_utf8(decoded) {
        Ok(s) if !s.is_empty() => Ok(s),
        _ => Err(SaslError::Malformed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &[u8]) -> Vec<u8> {
        STANDARD.encode(s).into_bytes()
    }

    #[test]
    fn the_command_names_a_mechanism_and_maybe_an_initial_response() {
        let c = parse_command(b" plain AGFwcABzZWNyZXQ=\r\n").unwrap();
        assert_eq!(c.mechanism, Some(Mechanism::Plain));
        assert_eq!(c.initial.as_deref(), Some("AGFwcABzZWNyZXQ="));
        let c = parse_command(b" LOGIN\r\n").unwrap();
        assert_eq!((c.mechanism, c.initial), (Some(Mechanism::Login), None));
        let c = parse_command(b" CRAM-MD5\r\n").unwrap();
        assert_eq!(c.mechanism, None);
        assert_eq!(c.mechanism_name, "CRAM-MD5");
        assert_eq!(parse_command(b"\r\n"), None);
        assert_eq!(parse_command(b" PLAIN a b\r\n"), None);
    }

    #[test]
    fn responses_decode_or_cancel_or_are_refused() {
        assert_eq!(decode_response(&b64(b"hello")).unwrap(), b"hello");
        assert_eq!(decode_response(b"=").unwrap(), b"");
        assert_eq!(decode_response(b"*\r\n"), Err(SaslError::Cancelled));
        assert_eq!(decode_response(b"not base64!"), Err(SaslError::BadBase64));
        assert_eq!(decode_response(b"YWJj="), Err(SaslError::BadBase64));
        assert_eq!(encode_challenge("Username:"), "VXNlcm5hbWU6");
    }

    #[test]
    fn plain_takes_authzid_authcid_and_password() {
        let c = plain(b"\0app\0s3cret pass").unwrap();
        assert_eq!(c.name, "app");
        assert_eq!(c.password.expose(), "s3cret pass");
        // An authzid naming the same identity is fine.
        assert_eq!(plain(b"APP\0app\0pw").unwrap().name, "app");
        assert_eq!(plain(b"admin\0app\0pw"), Err(SaslError::OtherIdentity));
        for bad in [
            &b"app\0pw"[..],
            b"\0\0pw",
            b"\0app\0",
            b"\0app\0pw\0more",
            b"\0\xff\0pw",
            b"",
        ] {
            assert_eq!(plain(bad), Err(SaslError::Malformed), "{bad:?}");
        }
    }

    #[test]
    fn login_fields_are_non_empty_text() {
        assert_eq!(login_field(b"app".to_vec()).unwrap(), "app");
        assert_eq!(login_field(Vec::new()), Err(SaslError::Malformed));
        assert_eq!(login_field(vec![0xff]), Err(SaslError::Malformed));
    }

    #[test]
    fn passwords_stay_out_of_debug_output() {
        let c = plain(b"\0app\0Tangerine-42").unwrap();
        assert!(!format!("{c:?}").contains("Tangerine"));
    }
}
