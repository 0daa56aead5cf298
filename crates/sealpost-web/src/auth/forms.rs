//! The guard of every form of the portal and the console: the session
//! cookie of one public origin, and the CSRF checks.
//!
//! A form posted in a session carries the token bound to the session id.
//! Forms shown before sign-in (sign-in, first visit, forgotten password)
//! have no session to bind a token to, and a token bound to nothing would
//! let another site post them (login CSRF: signing a victim into the
//! attacker's account). They get a pre-session cookie instead: 32 random
//! bytes, `HttpOnly`, `SameSite=Strict`, `__Host-` where the session cookie
//! is, one hour; the form's token is the same HMAC keyed by that value.
//! Another site can neither read the cookie nor compute the token, and
//! every POST also passes the `Origin` check.

use axum::http::{HeaderMap, HeaderValue, header};

use super::{
    csrf::{self, CsrfRefused, CsrfToken, RequestSource},
    origin::PublicOrigin,
    session::{SessionCookie, SessionId},
};

/// The session cookie and the form checks of one face at one origin.
#[derive(Debug, Clone)]
pub struct Guard {
    origin: PublicOrigin,
    cookie: SessionCookie,
}

/// The values of a request's `Cookie` headers.
pub fn cookie_headers(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
}

impl Guard {
    pub fn new(origin: PublicOrigin, cookie: SessionCookie) -> Self {
        Guard { origin, cookie }
    }

    /// The session cookie.
    pub fn cookie(&self) -> SessionCookie {
        self.cookie
    }

    /// The session id a request's cookie carries, if well-formed.
    pub fn session_id(&self, headers: &HeaderMap) -> Option<SessionId> {
        self.cookie.read(cookie_headers(headers))
    }

    /// The `Set-Cookie` that hands a new session's id to the browser.
    pub fn set_session(&self, id: &SessionId) -> Option<HeaderValue> {
        HeaderValue::from_str(&self.cookie.set(id)).ok()
    }

    /// The `Set-Cookie` that removes the session cookie.
    pub fn clear_session(&self) -> Option<HeaderValue> {
        HeaderValue::from_str(&self.cookie.clear()).ok()
    }

    /// The pre-session key of a request: the cookie's value if it has a
    /// well-formed one, else a new value and the `Set-Cookie` to send.
    pub fn form_key(&self, headers: &HeaderMap) -> (CsrfToken, Option<HeaderValue>) {
        let cookie = self.cookie.form();
        match cookie.read(cookie_headers(headers)) {
            Some(id) => (csrf::token(&id), None),
            None => {
                let id = SessionId::generate();
                let set = HeaderValue::from_str(&cookie.set(&id)).ok();
                (csrf::token(&id), set)
            }
        }
    }

    /// The pre-session cookie's id, if the request has a well-formed one.
    pub fn form_id(&self, headers: &HeaderMap) -> Option<SessionId> {
        self.cookie.form().read(cookie_headers(headers))
    }

    /// A new pre-session id and the `Set-Cookie` that hands it over, for
    /// state bound to this browser before sign-in ends (the console's
    /// second step): never an id the request carried, which another page
    /// could have planted.
    pub fn new_form_id(&self) -> (SessionId, Option<HeaderValue>) {
        let id = SessionId::generate();
        let set = HeaderValue::from_str(&self.cookie.form().set(&id)).ok();
        (id, set)
    }

    /// The check of a form posted before sign-in.
    ///
    /// # Errors
    /// Why it is refused.
    pub fn check_form(&self, headers: &HeaderMap, token: Option<&str>) -> Result<(), CsrfRefused> {
        self.check_origin(headers)?;
        let key = self
            .cookie
            .form()
            .read(cookie_headers(headers))
            .ok_or(CsrfRefused::MissingToken)?;
        csrf::check_token(&key, token)
    }

    /// The check of a form posted in the session `id`.
    ///
    /// # Errors
    /// Why it is refused.
    pub fn check_session_form(
        &self,
        headers: &HeaderMap,
        id: &SessionId,
        token: Option<&str>,
    ) -> Result<(), CsrfRefused> {
        self.check_origin(headers)?;
        csrf::check_token(id, token)
    }

    fn check_origin(&self, headers: &HeaderMap) -> Result<(), CsrfRefused> {
        let get = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
        csrf::check_origin(
            &self.origin,
            RequestSource {
                origin: get(header::ORIGIN),
                sec_fetch_site: get(header::HeaderName::from_static("sec-fetch-site")),
                referer: get(header::REFERER),
            },
        )
    }
}

/// What a new session is made of besides its owner: a fresh id (never the
/// one a request carried), its CSRF secret, and the client's user agent
/// cut to what the store keeps.
pub struct NewSessionParts {
    pub id: SessionId,
    pub csrf: [u8; 32],
    pub user_agent: String,
}

impl std::fmt::Debug for NewSessionParts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewSessionParts")
            .field("user_agent", &self.user_agent)
            .finish_non_exhaustive()
    }
}

impl NewSessionParts {
    /// # Panics
    /// If the operating system has no random source.
    pub fn generate(headers: &HeaderMap) -> Self {
        let mut csrf = [0u8; 32];
        getrandom::fill(&mut csrf).expect("the OS random source is available");
        NewSessionParts {
            id: SessionId::generate(),
            csrf,
            user_agent: headers
                .get(header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .chars()
                .take(sealpost_store::portal::MAX_USER_AGENT)
                .collect(),
        }
    }
}
