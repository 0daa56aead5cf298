//! Who is signed in to the console.
//!
//! [`SignedIn`] is the extractor of every signed-in page: the session
//! cookie (the console's own name), the session in the store within its
//! timeouts, its activity noted once a minute, and the administrator as
//! stored now (a role changed or an account removed counts at the next
//! request). Anyone else is sent to sign in. An administrator whose
//! password is one-time is sent to the password form from every page
//! but that form and sign-out.

use std::time::SystemTime;

use axum::{
    extract::FromRequestParts,
    http::{HeaderMap, header, request::Parts},
    response::{IntoResponse, Redirect, Response},
};
use sealpost_store::{
    audit::Actor,
    console::Administrator,
    portal::{SessionHash, SessionLimits},
};

use super::ConsoleState;
use crate::auth::{
    csrf::{self, CsrfToken},
    session::SessionId,
};

/// A signed-in administrator, for handlers of signed-in pages.
#[derive(Debug, Clone)]
pub struct SignedIn {
    pub admin: Administrator,
    pub id: SessionId,
    /// The token this session's forms carry.
    pub csrf: CsrfToken,
    /// Where the request came from (for the audit log).
    pub client_ip: std::net::IpAddr,
}

impl SignedIn {
    /// Who this administrator is in the audit log.
    pub fn actor(&self) -> Actor {
        Actor::administrator(&self.admin.name, self.client_ip)
    }
}

/// The paths a one-time password still opens.
const WHILE_ONE_TIME: [&str; 2] = ["/console/password", "/console/sign-out"];

impl ConsoleState {
    pub(super) fn limits(&self) -> SessionLimits {
        self.settings().sessions
    }

    /// The signed-in administrator a request's cookie names, if any.
    pub(super) async fn signed_in(&self, headers: &HeaderMap) -> Option<SignedIn> {
        let id = self.inner.guard.session_id(headers)?;
        let hash = SessionHash(id.storage_key());
        let now = SystemTime::now();
        let session = match self.store().admin_session(hash, self.limits(), now).await {
            Ok(found) => found?,
            Err(e) => {
                tracing::error!(error = %e, "looking up a console session failed");
                return None;
            }
        };
        if session.needs_touch(now)
            && let Err(e) = self
                .store()
                .touch_admin_session(hash, self.limits(), now)
                .await
        {
            tracing::warn!(error = %e, "noting a console session's activity failed");
        }
        let admin = match self.store().administrator(&session.name).await {
            Ok(found) => found?,
            Err(e) => {
                tracing::error!(error = %e, "reading an administrator failed");
                return None;
            }
        };
        Some(SignedIn {
            admin,
            csrf: csrf::token(&id),
            id,
            client_ip: std::net::IpAddr::from([127, 0, 0, 1]),
        })
    }
}

impl FromRequestParts<ConsoleState> for SignedIn {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &ConsoleState,
    ) -> Result<Self, Self::Rejection> {
        let Some(mut signed_in) = state.signed_in(&parts.headers).await else {
            let mut response = Redirect::to("/console/sign-in").into_response();
            if state.inner.guard.session_id(&parts.headers).is_some()
                && let Some(clear) = state.inner.guard.clear_session()
            {
                response.headers_mut().insert(header::SET_COOKIE, clear);
            }
            return Err(response);
        };
        if let Some(client) = parts.extensions.get::<crate::portal::client::Client>() {
            signed_in.client_ip = client.ip;
        }
        let path = parts.uri.path();
        if signed_in.admin.must_change_password && !WHILE_ONE_TIME.contains(&path) {
            return Err(Redirect::to("/console/password").into_response());
        }
        Ok(signed_in)
    }
}
