//! Sessions of the portal and the console: a random 256-bit id that only
//! the browser holds (the store keeps its SHA-256), the cookie that carries
//! it, and when a session has expired. Pure: the caller passes `now` and
//! keeps the sessions in the store, so any node can serve any request.

use std::time::{Duration, SystemTime};

use ring::digest;

use super::{origin::PublicOrigin, secret::Secret};

/// The session cookie's name. The `__Host-` prefix makes browsers refuse
/// it unless it is `Secure`, has `Path=/` and no `Domain`, so a sibling
/// host or a plain-HTTP page cannot plant one (session fixation).
pub const COOKIE_NAME: &str = "__Host-sealpost_session";

/// The cookie's name when served over plain HTTP on localhost (the quick
/// start): browsers refuse a `__Host-` cookie without `Secure`, and a
/// `Secure` cookie would not come back over `http://` from every client.
pub const PLAIN_COOKIE_NAME: &str = "sealpost_session";

/// The pre-session cookie: a random value that the CSRF token of a form
/// shown before sign-in (sign-in, first visit, forgotten password) is
/// bound to, as a session's forms are bound to the session id.
pub const FORM_COOKIE_NAME: &str = "__Host-sealpost_form";
/// The pre-session cookie over plain HTTP on localhost.
pub const PLAIN_FORM_COOKIE_NAME: &str = "sealpost_form";

/// The console's cookies, in the order of the portal's above. Browsers
/// keep cookies per host, not per port, so the console (on the admin
/// listener) and the portal on one host need names of their own, or a
/// sign-in to one would replace the other's cookie.
pub const CONSOLE_COOKIE_NAMES: [&str; 4] = [
    "__Host-sealpost_console",
    "sealpost_console",
    "__Host-sealpost_console_form",
    "sealpost_console_form",
];

/// How long a pre-session cookie lives: a form left open longer is
/// reloaded.
pub const FORM_COOKIE_MAX_AGE: u64 = 3600;

/// A session id: 32 random bytes, shown to the browser as 64 hex digits.
/// Never logged; the store keeps only [`storage_key`](Self::storage_key).
#[derive(Debug, Clone)]
pub struct SessionId(Secret<[u8; 32]>);

impl SessionId {
    /// A new random id (at sign-in, always a new one: an id set before
    /// sign-in is never kept).
    ///
    /// # Panics
    /// If the operating system has no random source.
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).expect("the OS random source is available");
        SessionId(Secret::new(bytes))
    }

    /// Reads an id from a cookie value: exactly 64 lower-case hex digits.
    pub fn parse(text: &str) -> Option<Self> {
        if text.len() != 64 || !text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return None;
        }
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(text, &mut bytes).ok()?;
        Some(SessionId(Secret::new(bytes)))
    }

    /// What the store keys the session by: SHA-256 of the id, so a copy of
    /// the database holds no usable session.
    pub fn storage_key(&self) -> [u8; 32] {
        let d = digest::digest(&digest::SHA256, self.0.expose());
        let mut key = [0u8; 32];
        key.copy_from_slice(d.as_ref());
        key
    }

    /// The raw id, for deriving the session's CSRF token.
    pub(super) fn bytes(&self) -> &[u8; 32] {
        self.0.expose()
    }

    /// The id as the cookie carries it (64 hex digits).
    pub(crate) fn cookie_value(&self) -> String {
        hex::encode(self.0.expose())
    }
}

/// How the session cookie is written and read for one public origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionCookie {
    secure: bool,
    /// The pre-session cookie rather than the session's.
    form: bool,
    /// The console's names rather than the portal's.
    console: bool,
}

impl SessionCookie {
    /// `Secure` and `__Host-` everywhere except plain `http://` on a
    /// loopback host. (An `http://` URL on another host still gets
    /// `Secure`: the cookie then never comes back, which fails closed.)
    pub fn for_origin(origin: &PublicOrigin) -> Self {
        SessionCookie {
            secure: origin.is_https() || !origin.is_loopback(),
            form: false,
            console: false,
        }
    }

    /// The console's cookie for the same origin (names of its own).
    pub fn console(self) -> Self {
        SessionCookie {
            console: true,
            ..self
        }
    }

    /// The pre-session cookie for the same origin: same flags, its own
    /// name, and a `Max-Age` of [`FORM_COOKIE_MAX_AGE`].
    pub fn form(self) -> Self {
        SessionCookie { form: true, ..self }
    }

    /// The cookie's name.
    pub fn name(&self) -> &'static str {
        let i = match (self.secure, self.form) {
            (true, false) => 0,
            (false, false) => 1,
            (true, true) => 2,
            (false, true) => 3,
        };
        if self.console {
            CONSOLE_COOKIE_NAMES[i]
        } else {
            [
                COOKIE_NAME,
                PLAIN_COOKIE_NAME,
                FORM_COOKIE_NAME,
                PLAIN_FORM_COOKIE_NAME,
            ][i]
        }
    }

    /// The `Set-Cookie` value that hands `id` to the browser: a browser
    /// session cookie (the server enforces the timeouts), `HttpOnly` so no
    /// script reads it, `SameSite=Strict` so no other site's page sends it.
    pub fn set(&self, id: &SessionId) -> String {
        if self.form {
            self.header(
                &id.cookie_value(),
                &format!("; Max-Age={FORM_COOKIE_MAX_AGE}"),
            )
        } else {
            self.header(&id.cookie_value(), "")
        }
    }

    /// The `Set-Cookie` value that removes the cookie (sign-out, expiry).
    pub fn clear(&self) -> String {
        self.header("", "; Max-Age=0")
    }

    fn header(&self, value: &str, extra: &str) -> String {
        let secure = if self.secure { "; Secure" } else { "" };
        format!(
            "{}={value}; Path=/{secure}; HttpOnly; SameSite=Strict{extra}",
            self.name()
        )
    }

    /// The session id in a request's `Cookie` headers, if there is exactly
    /// one cookie of this name and it is a well-formed id. Two of the same
    /// name (one planted beside ours) are refused rather than guessed at.
    pub fn read<'a>(&self, cookie_headers: impl IntoIterator<Item = &'a str>) -> Option<SessionId> {
        let mut found = None;
        for header in cookie_headers {
            for pair in header.split(';') {
                let Some((name, value)) = pair.trim().split_once('=') else {
                    continue;
                };
                if name == self.name() {
                    if found.is_some() {
                        return None;
                    }
                    found = Some(value.trim_matches('"'));
                }
            }
        }
        SessionId::parse(found?)
    }
}

/// How long a session lives: `portal.session_idle` and its absolute limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Without a request for this long, the session ends.
    pub idle: Duration,
    /// However active, the session ends this long after sign-in.
    pub absolute: Duration,
}

/// Where a session stands at a given moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionState {
    /// In use; it ends at `expires_at` unless a request comes first.
    Live { expires_at: SystemTime },
    /// No request for the idle timeout.
    IdleExpired,
    /// Past the absolute timeout since sign-in.
    AbsoluteExpired,
}

impl Timeouts {
    /// Whether a session created at `created` and last used at `last_seen`
    /// is live at `now`. It expires at the instant a limit is reached. A
    /// `last_seen` ahead of `now` (another node's clock) counts as `now`.
    pub fn state(
        &self,
        created: SystemTime,
        last_seen: SystemTime,
        now: SystemTime,
    ) -> SessionState {
        let since = |t: SystemTime| now.duration_since(t).unwrap_or(Duration::ZERO);
        if since(created) >= self.absolute {
            return SessionState::AbsoluteExpired;
        }
        if since(last_seen) >= self.idle {
            return SessionState::IdleExpired;
        }
        let last_seen = last_seen.min(now);
        SessionState::Live {
            expires_at: (last_seen + self.idle).min(created + self.absolute),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin(url: &str) -> PublicOrigin {
        PublicOrigin::parse(url).unwrap()
    }

    #[test]
    fn ids_are_random_hex_and_stored_only_as_their_hash() {
        let a = SessionId::generate();
        let b = SessionId::generate();
        assert_ne!(a.cookie_value(), b.cookie_value());
        assert_eq!(a.cookie_value().len(), 64);
        assert_ne!(a.storage_key(), *a.bytes());
        assert_ne!(a.storage_key(), b.storage_key());
        let again = SessionId::parse(&a.cookie_value()).unwrap();
        assert_eq!(again.storage_key(), a.storage_key());
        assert!(!format!("{a:?}").contains(&a.cookie_value()[..16]));
    }

    #[test]
    fn malformed_ids_are_refused() {
        let good = SessionId::generate().cookie_value();
        for bad in [
            String::new(),
            good[..63].to_owned(),
            format!("{good}0"),
            good.to_uppercase(),
            format!("{}g", &good[..63]),
        ] {
            assert!(SessionId::parse(&bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn the_cookie_is_host_prefixed_secure_http_only_and_strict() {
        let cookie = SessionCookie::for_origin(&origin("https://portal.example.com"));
        let id = SessionId::parse(&"ab".repeat(32)).unwrap();
        assert_eq!(
            cookie.set(&id),
            format!(
                "__Host-sealpost_session={}; Path=/; Secure; HttpOnly; SameSite=Strict",
                "ab".repeat(32)
            )
        );
        assert_eq!(
            cookie.clear(),
            "__Host-sealpost_session=; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=0"
        );
        assert!(!cookie.set(&id).contains("Domain"));
    }

    #[test]
    fn secure_is_left_off_only_for_plain_http_on_localhost() {
        let id = SessionId::parse(&"cd".repeat(32)).unwrap();
        for url in [
            "http://localhost:8082",
            "http://127.0.0.1:8082",
            "http://[::1]:8082",
        ] {
            let cookie = SessionCookie::for_origin(&origin(url));
            assert_eq!(
                cookie.set(&id),
                format!(
                    "sealpost_session={}; Path=/; HttpOnly; SameSite=Strict",
                    "cd".repeat(32)
                ),
                "{url}"
            );
        }
        for url in [
            "https://localhost:8443",
            "http://portal.example.com",
            "http://10.1.2.3",
        ] {
            let cookie = SessionCookie::for_origin(&origin(url));
            assert!(
                cookie.set(&id).starts_with("__Host-sealpost_session="),
                "{url}"
            );
            assert!(cookie.set(&id).contains("; Secure;"), "{url}");
        }
    }

    #[test]
    fn the_cookie_is_read_back_and_only_by_its_exact_name() {
        let cookie = SessionCookie::for_origin(&origin("https://portal.example.com"));
        let id = SessionId::generate();
        let value = id.cookie_value();
        let read = cookie
            .read([format!("theme=dark; __Host-sealpost_session={value}; x=1").as_str()])
            .unwrap();
        assert_eq!(read.storage_key(), id.storage_key());
        // Split across headers (HTTP/2) is fine.
        assert!(
            cookie
                .read(["theme=dark", &format!("__Host-sealpost_session={value}")])
                .is_some()
        );
        // The unprefixed name is not ours when the prefix is in force.
        assert!(
            cookie
                .read([format!("sealpost_session={value}").as_str()])
                .is_none()
        );
        // Two of ours: one was planted; trust neither.
        let other = SessionId::generate().cookie_value();
        assert!(
            cookie
                .read([
                    format!("__Host-sealpost_session={value}; __Host-sealpost_session={other}")
                        .as_str()
                ])
                .is_none()
        );
        assert!(cookie.read(["__Host-sealpost_session=nothex"]).is_none());
        assert!(cookie.read(std::iter::empty()).is_none());
    }

    #[test]
    fn idle_and_absolute_timeouts_end_sessions_at_the_boundary() {
        let t = |s: u64| SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000 + s);
        let limits = Timeouts {
            idle: Duration::from_secs(30 * 60),
            absolute: Duration::from_secs(12 * 3600),
        };
        let created = t(0);
        // Just used: live until the idle limit.
        assert_eq!(
            limits.state(created, t(100), t(100)),
            SessionState::Live {
                expires_at: t(100 + 1800)
            }
        );
        // One second before the idle limit, and at it.
        assert!(matches!(
            limits.state(created, t(100), t(100 + 1799)),
            SessionState::Live { .. }
        ));
        assert_eq!(
            limits.state(created, t(100), t(100 + 1800)),
            SessionState::IdleExpired
        );
        // Near the absolute limit, the absolute limit is the expiry.
        let late = 12 * 3600 - 60;
        assert_eq!(
            limits.state(created, t(late), t(late)),
            SessionState::Live {
                expires_at: t(12 * 3600)
            }
        );
        assert!(matches!(
            limits.state(created, t(late), t(12 * 3600 - 1)),
            SessionState::Live { .. }
        ));
        assert_eq!(
            limits.state(created, t(late), t(12 * 3600)),
            SessionState::AbsoluteExpired
        );
        // Both passed: absolute wins.
        assert_eq!(
            limits.state(created, t(0), t(13 * 3600)),
            SessionState::AbsoluteExpired
        );
        // A last use stamped ahead of this node's clock is taken as now.
        assert_eq!(
            limits.state(created, t(200), t(100)),
            SessionState::Live {
                expires_at: t(100 + 1800)
            }
        );
    }
}
