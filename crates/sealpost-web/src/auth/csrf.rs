//! Cross-site request forgery: every state-changing request of the portal
//! and the console carries a token bound to its session and comes from our
//! own origin. Pure: the caller passes the session and the headers.
//!
//! The token is HMAC-SHA256 keyed by the session id (which only the browser
//! holds) over a fixed label: any node can check it without a key of its
//! own or a stored token, it changes when the id does (sign-in), and it
//! does not reveal the id. It goes in forms, never in a URL.
//!
//! The origin check reads `Origin`, then `Sec-Fetch-Site`, then `Referer`.
//! A page sent with `Referrer-Policy: no-referrer` makes browsers send
//! `Origin: null` on its form posts, so pages with forms should say
//! `same-origin` (which still sends nothing to other sites); the
//! `Sec-Fetch-Site` fallback covers a `null` origin from current browsers.

use ring::hmac;

use super::{origin::PublicOrigin, session::SessionId};

/// What the token signs; a new label gives every session new tokens.
const LABEL: &[u8] = b"sealpost csrf token v1";

/// A session's CSRF token, as 64 hex digits for a hidden form field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsrfToken(String);

impl CsrfToken {
    /// The token's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Why a state-changing request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CsrfRefused {
    /// The form carried no token.
    #[error("the form carried no CSRF token")]
    MissingToken,
    /// The token is not this session's.
    #[error("the CSRF token does not belong to this session")]
    WrongToken,
    /// `Origin`, `Sec-Fetch-Site` or `Referer` names another site.
    #[error("the request came from another site")]
    ForeignOrigin,
    /// None of the headers that say where a request came from.
    #[error("the request does not say where it came from")]
    UnknownOrigin,
}

fn key(session: &SessionId) -> hmac::Key {
    hmac::Key::new(hmac::HMAC_SHA256, session.bytes())
}

/// The CSRF token of `session`.
pub fn token(session: &SessionId) -> CsrfToken {
    CsrfToken(hex::encode(hmac::sign(&key(session), LABEL).as_ref()))
}

/// Checks a presented token against `session`, in constant time (`ring`
/// compares the tags with `constant_time::verify_slices_are_equal`).
///
/// # Errors
/// [`CsrfRefused::MissingToken`] or [`CsrfRefused::WrongToken`].
pub fn check_token(session: &SessionId, presented: Option<&str>) -> Result<(), CsrfRefused> {
    let presented = presented
        .filter(|t| !t.is_empty())
        .ok_or(CsrfRefused::MissingToken)?;
    let tag = hex::decode(presented.trim()).map_err(|_| CsrfRefused::WrongToken)?;
    hmac::verify(&key(session), LABEL, &tag).map_err(|_| CsrfRefused::WrongToken)
}

/// The headers of a request that say where it came from.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestSource<'a> {
    /// `Origin`.
    pub origin: Option<&'a str>,
    /// `Sec-Fetch-Site` (set by the browser; a page cannot forge it).
    pub sec_fetch_site: Option<&'a str>,
    /// `Referer`.
    pub referer: Option<&'a str>,
}

/// Checks that a state-changing request comes from `expected`. The first of
/// these present decides: an `Origin` other than `null` must be ours;
/// `Sec-Fetch-Site` must be `same-origin`; a `Referer` must be on our
/// origin. A request with none of them is refused.
///
/// # Errors
/// [`CsrfRefused::ForeignOrigin`] or [`CsrfRefused::UnknownOrigin`].
pub fn check_origin(
    expected: &PublicOrigin,
    request: RequestSource<'_>,
) -> Result<(), CsrfRefused> {
    let verdict = |ours: bool| {
        if ours {
            Ok(())
        } else {
            Err(CsrfRefused::ForeignOrigin)
        }
    };
    if let Some(origin) = request.origin.map(str::trim).filter(|o| *o != "null") {
        return verdict(expected.matches(origin));
    }
    if let Some(site) = request.sec_fetch_site {
        return verdict(site.trim().eq_ignore_ascii_case("same-origin"));
    }
    if let Some(referer) = request.referer {
        return verdict(expected.matches(referer));
    }
    Err(CsrfRefused::UnknownOrigin)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_passes_for_its_own_session_only() {
        let session = SessionId::generate();
        let t = token(&session);
        assert_eq!(t.as_str().len(), 64);
        assert_eq!(token(&session), t, "stable for the session's life");
        check_token(&session, Some(t.as_str())).unwrap();
        let other = SessionId::generate();
        assert_ne!(token(&other), t);
        assert_eq!(
            check_token(&other, Some(t.as_str())),
            Err(CsrfRefused::WrongToken)
        );
    }

    #[test]
    fn missing_altered_or_malformed_tokens_are_refused() {
        let session = SessionId::generate();
        let t = token(&session).as_str().to_owned();
        assert_eq!(check_token(&session, None), Err(CsrfRefused::MissingToken));
        assert_eq!(
            check_token(&session, Some("")),
            Err(CsrfRefused::MissingToken)
        );
        let flipped = format!("{}{}", &t[..63], if t.ends_with('0') { '1' } else { '0' });
        assert_eq!(
            check_token(&session, Some(&flipped)),
            Err(CsrfRefused::WrongToken)
        );
        assert_eq!(
            check_token(&session, Some(&t[..62])),
            Err(CsrfRefused::WrongToken)
        );
        assert_eq!(
            check_token(&session, Some("not hex at all")),
            Err(CsrfRefused::WrongToken)
        );
        // The token is not the session id, nor its stored hash.
        assert_ne!(t, hex::encode(session.bytes()));
        assert_ne!(t, hex::encode(session.storage_key()));
    }

    fn check(
        origin: Option<&str>,
        site: Option<&str>,
        referer: Option<&str>,
    ) -> Result<(), CsrfRefused> {
        let expected = PublicOrigin::parse("https://portal.example.com").unwrap();
        check_origin(
            &expected,
            RequestSource {
                origin,
                sec_fetch_site: site,
                referer,
            },
        )
    }

    #[test]
    fn our_origin_passes() {
        check(Some("https://portal.example.com"), None, None).unwrap();
        check(
            Some("https://portal.example.com"),
            Some("same-origin"),
            None,
        )
        .unwrap();
        check(Some("null"), Some("same-origin"), None).unwrap();
        check(None, None, Some("https://portal.example.com/m/42")).unwrap();
    }

    #[test]
    fn a_foreign_origin_is_refused_whatever_else_is_said() {
        let foreign = Err(CsrfRefused::ForeignOrigin);
        assert_eq!(check(Some("https://evil.example"), None, None), foreign);
        assert_eq!(
            check(
                Some("https://evil.example"),
                Some("same-origin"),
                Some("https://portal.example.com/")
            ),
            foreign
        );
        assert_eq!(
            check(Some("http://portal.example.com"), None, None),
            foreign
        );
        assert_eq!(check(Some("null"), Some("cross-site"), None), foreign);
        assert_eq!(check(Some("null"), Some("same-site"), None), foreign);
        assert_eq!(
            check(
                None,
                None,
                Some("https://evil.example/?https://portal.example.com")
            ),
            foreign
        );
    }

    #[test]
    fn a_request_that_does_not_say_where_it_came_from_is_refused() {
        assert_eq!(check(None, None, None), Err(CsrfRefused::UnknownOrigin));
        assert_eq!(
            check(Some("null"), None, None),
            Err(CsrfRefused::UnknownOrigin)
        );
    }
}
