//! Who is signed in, and the CSRF guard of every form.
//!
//! [`RecipientSession`] is the extractor every signed-in page takes: it
//! reads the session cookie, finds the session in the store (so any node
//! can serve it), enforces the idle and absolute timeouts, notes the
//! activity (once a minute at most) and otherwise redirects to sign-in.
//! Its forms carry the token bound to the session id; forms shown before
//! sign-in carry one bound to a pre-session cookie. Both checks, and the
//! `Origin` check, are the [`Guard`] the console shares.

use std::time::SystemTime;

use axum::{
    extract::FromRequestParts,
    http::{HeaderMap, HeaderValue, header, request::Parts},
    response::{IntoResponse, Redirect, Response},
};
use sealpost_store::portal::{AccountKey, SessionHash, SessionLimits};

use super::PortalState;
use crate::auth::{
    csrf::{self, CsrfRefused, CsrfToken},
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
        self.inner.guard.cookie()
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

    /// The pre-session key of a request (and its `Set-Cookie` if new).
    pub(super) fn form_key(&self, headers: &HeaderMap) -> (CsrfToken, Option<HeaderValue>) {
        self.inner.guard.form_key(headers)
    }

    /// The CSRF check of a form posted before sign-in.
    pub(super) fn check_form(
        &self,
        headers: &HeaderMap,
        token: Option<&str>,
    ) -> Result<(), CsrfRefused> {
        self.inner.guard.check_form(headers, token)
    }

    /// The CSRF check of a form posted in a session.
    pub(super) fn check_session_form(
        &self,
        headers: &HeaderMap,
        session: &RecipientSession,
        token: Option<&str>,
    ) -> Result<(), CsrfRefused> {
        self.inner
            .guard
            .check_session_form(headers, &session.id, token)
    }
}

pub(super) use crate::auth::forms::cookie_headers;

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
