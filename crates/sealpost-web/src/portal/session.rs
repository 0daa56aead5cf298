//! Who is signed in, and the CSRF guard of every form.
//!
//! [`RecipientSession`] is the extractor every signed-in page takes: it
//! reads the session cookie, finds the session in the store (so any node
//! can serve it), enforces the idle and absolute timeouts, notes the
//! activity (once a minute at most) and otherwise redirects to sign-in. Its forms carry the
//! token bound to the session id ([`crate::auth::csrf`]).
//!
//! Forms shown before sign-in (sign-in, first visit, forgotten password,
//! reset) have no session to bind a token to, and a token bound to
//! nothing would let another site post them (login CSRF: signing a victim
//! into the attacker's account). They get a pre-session cookie instead:
//! 32 random bytes, `HttpOnly`, `SameSite=Strict`, `__Host-` where the
//! session cookie is, one hour; the form's token is the same HMAC keyed by
//! that value. Another site can neither read the cookie nor compute the
//! token, and every POST also passes the `Origin` check.

use std::time::SystemTime;

use axum::{
    extract::FromRequestParts,
    http::{HeaderMap, HeaderValue, header, request::Parts},
    response::{IntoResponse, Redirect, Response},
};
use sealpost_store::portal::{AccountKey, SessionHash, SessionLimits};

use super::PortalState;
use crate::auth::{
    csrf::{self, CsrfRefused, CsrfToken, RequestSource},
    session::{SessionCookie, SessionId},
};

/// A signed-in recipient, for handlers of signed-in pages.
#[derive(Debug, Clone)]
pub struct RecipientSession {
    pub account: AccountKey,
    pub id: SessionId,
    /// The token this session's forms carry.
    pub csrf: CsrfToken,
}

impl PortalState {
    pub(super) fn limits(&self) -> SessionLimits {
        let t = self.settings().sessions;
        SessionLimits {
            idle: t.idle,
            absolute: t.absolute,
        }
    }

    pub(super) fn cookie(&self) -> SessionCookie {
        self.inner.cookie
    }

    /// The live session a request's cookie names, if any.
    pub(super) async fn current_session(&self, headers: &HeaderMap) -> Option<RecipientSession> {
        let id = self.cookie().read(cookie_headers(headers))?;
        let hash = SessionHash(id.storage_key());
        let now = SystemTime::now();
        let session = match self.store().session(hash, self.limits(), now).await {
            Ok(found) => found?,
            Err(e) => {
                tracing::error!(error = %e, "looking up a portal session failed");
                return None;
            }
        };
        // The session's row says whether it is due: most requests then
        // cost no write at all.
        if session.needs_touch(now)
            && let Err(e) = self.store().touch_session(hash, self.limits(), now).await
        {
            tracing::warn!(error = %e, "noting a portal session's activity failed");
        }
        Some(RecipientSession {
            account: session.account,
            csrf: csrf::token(&id),
            id,
        })
    }

    /// The pre-session key of a request: the cookie's value if it has a
    /// well-formed one, else a new value and the `Set-Cookie` to send.
    pub(super) fn form_key(&self, headers: &HeaderMap) -> (CsrfToken, Option<HeaderValue>) {
        let cookie = self.cookie().form();
        match cookie.read(cookie_headers(headers)) {
            Some(id) => (csrf::token(&id), None),
            None => {
                let id = SessionId::generate();
                let set = HeaderValue::from_str(&cookie.set(&id)).ok();
                (csrf::token(&id), set)
            }
        }
    }

    /// The CSRF check of a form posted before sign-in.
    pub(super) fn check_form(
        &self,
        headers: &HeaderMap,
        token: Option<&str>,
    ) -> Result<(), CsrfRefused> {
        self.check_origin(headers)?;
        let key = self
            .cookie()
            .form()
            .read(cookie_headers(headers))
            .ok_or(CsrfRefused::MissingToken)?;
        csrf::check_token(&key, token)
    }

    /// The CSRF check of a form posted in a session.
    pub(super) fn check_session_form(
        &self,
        headers: &HeaderMap,
        session: &RecipientSession,
        token: Option<&str>,
    ) -> Result<(), CsrfRefused> {
        self.check_origin(headers)?;
        csrf::check_token(&session.id, token)
    }

    fn check_origin(&self, headers: &HeaderMap) -> Result<(), CsrfRefused> {
        let get = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
        csrf::check_origin(
            &self.inner.origin,
            RequestSource {
                origin: get(header::ORIGIN),
                sec_fetch_site: get(header::HeaderName::from_static("sec-fetch-site")),
                referer: get(header::REFERER),
            },
        )
    }
}

pub(super) fn cookie_headers(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
}

impl FromRequestParts<PortalState> for RecipientSession {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &PortalState,
    ) -> Result<Self, Self::Rejection> {
        match state.current_session(&parts.headers).await {
            Some(session) => Ok(session),
            None => {
                let mut response = Redirect::to("/sign-in").into_response();
                if state
                    .cookie()
                    .read(cookie_headers(&parts.headers))
                    .is_some()
                    && let Ok(clear) = HeaderValue::from_str(&state.cookie().clear())
                {
                    response.headers_mut().insert(header::SET_COOKIE, clear);
                }
                Err(response)
            }
        }
    }
}
