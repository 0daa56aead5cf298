//! The second step of a sign-in with two-step sign-in on: after a right
//! password the browser holds a pending sign-in, not a session, bound to
//! a fresh pre-session cookie (never one the request carried) and kept in
//! the store (any node serves the next request) for five minutes.
//!
//! The code is a TOTP code (its time step accepted once: a replay is
//! refused) or a recovery code (spent). A wrong code counts toward the
//! account's lockout like a wrong password, and the client's rate limit;
//! a pending sign-in ends after five wrong codes, so the password must
//! come again. A locked account's code is not checked (nor counted), as
//! a locked account's password is not. Only a right code starts the
//! session, with a new id.

use std::time::SystemTime;

use axum::{
    Form,
    extract::State,
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Redirect, Response},
};
use sealpost_store::{
    console::{AdminName, PENDING_ATTEMPTS, PendingSignIn},
    portal::SessionHash,
};
use serde::Deserialize;

use super::{ConsoleState, account::with_cookie, totp::Accepted};
use crate::portal::client::Client;

/// The refusal of a code: the same words for wrong, replayed or spent
/// codes and a locked account.
const CODE_FAILED: &str = "That code is not right, or there were too many attempts. Enter the \
     code your app shows now, or one of your recovery codes.";

const PATH: &str = "/console/sign-in/code";

impl ConsoleState {
    /// After a right password: a session, or with two-step sign-in on, a
    /// pending sign-in and the code form.
    pub(super) async fn after_password(
        &self,
        name: AdminName,
        headers: &HeaderMap,
        client: &Client,
    ) -> Response {
        let admin = match self.store().administrator(&name).await {
            Ok(Some(a)) => a,
            Ok(None) => return Redirect::to("/console/sign-in").into_response(),
            Err(e) => return self.failed(&e),
        };
        if !admin.totp {
            return self.start_session(name, headers, client, "/console").await;
        }
        let (id, cookie) = self.inner.guard.new_form_id();
        if let Err(e) = self
            .store()
            .create_admin_pending_sign_in(SessionHash(id.storage_key()), &name, SystemTime::now())
            .await
        {
            return self.failed(&e);
        }
        with_cookie(Redirect::to(PATH).into_response(), cookie)
    }

    /// The pending sign-in a request's pre-session cookie names, with its
    /// key in the store.
    async fn pending(&self, headers: &HeaderMap) -> Option<(SessionHash, PendingSignIn)> {
        let id = self.inner.guard.form_id(headers)?;
        let hash = SessionHash(id.storage_key());
        match self
            .store()
            .admin_pending_sign_in(hash, SystemTime::now())
            .await
        {
            Ok(found) => found.map(|p| (hash, p)),
            Err(e) => {
                tracing::error!(error = %e, "reading a pending console sign-in failed");
                None
            }
        }
    }

    fn code_form(&self, headers: &HeaderMap, error: Option<&str>) -> Response {
        let (csrf, cookie) = self.inner.guard.form_key(headers);
        let page = self.page(
            "sign_in_code.html",
            StatusCode::OK,
            minijinja::context! { csrf => csrf.as_str(), error, admin => () },
        );
        with_cookie(page, cookie)
    }

    /// Whether `name` is in its lockout now.
    pub(super) async fn locked(&self, name: &AdminName) -> bool {
        match self.store().administrator(name).await {
            Ok(Some(a)) => self
                .settings()
                .backoff
                .check(a.failed_sign_ins, a.last_failure_at, SystemTime::now())
                .is_err(),
            Ok(None) => true,
            Err(e) => {
                tracing::error!(error = %e, "reading an administrator failed");
                true
            }
        }
    }
}

/// `GET /console/sign-in/code`.
pub(super) async fn code_page(State(state): State<ConsoleState>, headers: HeaderMap) -> Response {
    if state.pending(&headers).await.is_none() {
        return Redirect::to("/console/sign-in").into_response();
    }
    state.code_form(&headers, None)
}

#[derive(Debug, Deserialize)]
pub(super) struct CodeForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    code: String,
}

/// `POST /console/sign-in/code`.
pub(super) async fn check_code(
    State(state): State<ConsoleState>,
    client: axum::Extension<Client>,
    headers: HeaderMap,
    Form(form): Form<CodeForm>,
) -> Response {
    if let Some(refused) = state.refuse_guess_before_sign_in(&headers, &form.csrf, &client) {
        return refused;
    }
    let Some((hash, pending)) = state.pending(&headers).await else {
        return Redirect::to("/console/sign-in").into_response();
    };
    let name = pending.name;
    // Locked: the code is not compared, nor counted (as for a password).
    let locked = state.locked(&name).await;
    let accepted = if locked {
        None
    } else {
        match state.take_code(&name, &form.code, SystemTime::now()).await {
            Ok(accepted) => accepted,
            Err(e) => return state.failed(&e),
        }
    };
    let result = match (&accepted, locked) {
        (Some(_), _) => "ok",
        (None, true) => "locked",
        (None, false) => "failed",
    };
    metrics::counter!("sealpost_console_second_steps_total", "result" => result).increment(1);
    let Some(accepted) = accepted else {
        if !locked {
            state.count_failure(&name).await;
        }
        let attempts = state
            .store()
            .fail_admin_pending_sign_in(hash)
            .await
            .unwrap_or(PENDING_ATTEMPTS);
        if attempts >= PENDING_ATTEMPTS {
            let _ = state.store().end_admin_pending_sign_in(hash).await;
            return Redirect::to("/console/sign-in").into_response();
        }
        return state.code_form(&headers, Some(CODE_FAILED));
    };
    let to = if accepted == Accepted::Recovery {
        tracing::info!(administrator = %name, "console sign-in with a recovery code");
        "/console/account?done=recovery"
    } else {
        "/console"
    };
    if let Err(e) = state.store().end_admin_pending_sign_in(hash).await {
        return state.failed(&e);
    }
    state.start_session(name, &headers, &client, to).await
}
