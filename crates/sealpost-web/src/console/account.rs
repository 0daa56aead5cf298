//! Signing in to the console, signing out, and choosing a password.
//!
//! Sign-in checks the password under the lockout (the same rule as the
//! portal's, [`crate::auth::sign_in`]), starts a session with a new id
//! whatever the request carried (an id planted before sign-in is never
//! kept) and sends an administrator with a one-time password to the
//! password form. With two-step sign-in on, a right password leads to the
//! second step ([`super::second_step`]) instead of a session. Every form
//! is refused without its CSRF token and our origin; password posts count
//! against the client's rate limit.

use std::time::SystemTime;

use axum::{
    Form,
    extract::State,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Redirect, Response},
};
use sealpost_store::{
    console::{AdminName, NewAdminSession},
    portal::{CsrfSecret, SessionHash},
};
use serde::Deserialize;

use super::{ConsoleState, SignedIn, home};
use crate::{
    auth::{
        forms::NewSessionParts,
        password::{self, Password},
        sign_in::{self, Credentials, Outcome},
    },
    portal::client::Client,
};

/// The sign-in refusal: the same words whatever went wrong.
const SIGN_IN_FAILED: &str = "That name and password do not match an administrator, or there were \
     too many attempts. Check them, or wait a few minutes and try again.";

pub(super) fn with_cookie(mut response: Response, cookie: Option<HeaderValue>) -> Response {
    if let Some(cookie) = cookie {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    response
}

impl ConsoleState {
    /// The 429 page when `client` is over the password rate limit.
    fn over_limit(&self, client: &Client) -> Option<Response> {
        let wait = self.inner.rate_limit.check(client.ip).err()?;
        let mut response = self.page(
            "notice.html",
            StatusCode::TOO_MANY_REQUESTS,
            minijinja::context! {
                title => "Too many attempts",
                text => "Wait a minute, then try again.",
                action_href => "/console/sign-in",
                action_label => "Back to sign-in",
                admin => (),
            },
        );
        if let Ok(v) = HeaderValue::from_str(&wait.as_secs().max(1).to_string()) {
            response.headers_mut().insert(header::RETRY_AFTER, v);
        }
        Some(response)
    }

    /// The refusal of a form posted before sign-in (its CSRF token or
    /// origin is wrong, or the client is over the rate limit), if any.
    pub(super) fn refuse_guess_before_sign_in(
        &self,
        headers: &HeaderMap,
        csrf: &str,
        client: &Client,
    ) -> Option<Response> {
        if self.inner.guard.check_form(headers, Some(csrf)).is_err() {
            return Some(self.refused());
        }
        self.over_limit(client)
    }

    /// The refusal of a form in a session that checks a password or code
    /// (its CSRF token or origin is wrong, or the client is over the rate
    /// limit), if any.
    pub(super) fn refuse_guess(
        &self,
        signed_in: &SignedIn,
        headers: &HeaderMap,
        csrf: &str,
        client: &Client,
    ) -> Option<Response> {
        self.refuse_form(signed_in, headers, csrf)
            .or_else(|| self.over_limit(client))
    }

    /// Whether `password` signs in as `name`; a failure is counted.
    pub(super) async fn check_password(
        &self,
        name: Option<&AdminName>,
        password: Password,
    ) -> bool {
        let now = SystemTime::now();
        let stored = match name {
            Some(name) => self.store().administrator(name).await.unwrap_or_else(|e| {
                tracing::error!(error = %e, "reading an administrator failed");
                None
            }),
            None => None,
        };
        let credentials = stored
            .as_ref()
            .map(|a| Credentials::new(a.password.as_str(), a.failed_sign_ins, a.last_failure_at));
        let outcome = sign_in::check(
            credentials.as_ref(),
            password,
            &self.settings().backoff,
            now,
        )
        .await;
        metrics::counter!("sealpost_console_sign_ins_total", "result" => outcome.as_str())
            .increment(1);
        if outcome == Outcome::Failed
            && let Some(a) = &stored
        {
            self.count_failure(&a.name).await;
        }
        outcome == Outcome::Ok
    }

    /// Counts a failed sign-in (a wrong password or second-step code)
    /// toward `name`'s lockout.
    pub(super) async fn count_failure(&self, name: &AdminName) {
        if let Err(e) = self
            .store()
            .record_failed_admin_sign_in(name, SystemTime::now())
            .await
        {
            tracing::error!(error = %e, "counting a failed console sign-in failed");
        }
    }

    /// Starts a session for `name` (a new id; the request's old one ended)
    /// and redirects to `to`.
    pub(super) async fn start_session(
        &self,
        name: AdminName,
        headers: &HeaderMap,
        client: &Client,
        to: &str,
    ) -> Response {
        let guard = &self.inner.guard;
        if let Some(old) = guard.session_id(headers) {
            let _ = self
                .store()
                .end_admin_session(SessionHash(old.storage_key()))
                .await;
        }
        let parts = NewSessionParts::generate(headers);
        let made = self
            .store()
            .create_admin_session(NewAdminSession {
                id: SessionHash(parts.id.storage_key()),
                name,
                csrf: CsrfSecret(parts.csrf),
                client_ip: client.ip,
                user_agent: parts.user_agent,
                now: SystemTime::now(),
            })
            .await;
        if let Err(e) = made {
            return self.failed(&e);
        }
        with_cookie(
            Redirect::to(to).into_response(),
            guard.set_session(&parts.id),
        )
    }

    fn sign_in_form(&self, headers: &HeaderMap, name: &str, error: Option<&str>) -> Response {
        let (csrf, cookie) = self.inner.guard.form_key(headers);
        let page = self.page(
            "sign_in.html",
            StatusCode::OK,
            minijinja::context! { csrf => csrf.as_str(), name, error, admin => () },
        );
        with_cookie(page, cookie)
    }

    fn password_form(
        &self,
        signed_in: &SignedIn,
        error: Option<&str>,
        status: StatusCode,
    ) -> Response {
        self.page(
            "password.html",
            status,
            minijinja::context! {
                admin => home::admin_view(&signed_in.admin),
                csrf => signed_in.csrf.as_str(),
                forced => signed_in.admin.must_change_password,
                error,
            },
        )
    }
}

pub(super) async fn sign_in_page(
    State(state): State<ConsoleState>,
    headers: HeaderMap,
) -> Response {
    if state.signed_in(&headers).await.is_some() {
        return Redirect::to("/console").into_response();
    }
    state.sign_in_form(&headers, "", None)
}

#[derive(Debug, Deserialize)]
pub(super) struct SignInForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    password: String,
}

pub(super) async fn sign_in(
    State(state): State<ConsoleState>,
    client: axum::Extension<Client>,
    headers: HeaderMap,
    Form(form): Form<SignInForm>,
) -> Response {
    if let Some(refused) = state.refuse_guess_before_sign_in(&headers, &form.csrf, &client) {
        return refused;
    }
    let name = AdminName::parse(&form.name).ok();
    if state
        .check_password(name.as_ref(), Password::new(form.password))
        .await
        && let Some(name) = name
    {
        return state.after_password(name, &headers, &client).await;
    }
    let shown: String = form.name.trim().chars().take(64).collect();
    state.sign_in_form(&headers, &shown, Some(SIGN_IN_FAILED))
}

#[derive(Debug, Deserialize)]
pub(super) struct CsrfOnly {
    #[serde(default)]
    csrf: String,
}

pub(super) async fn sign_out(
    State(state): State<ConsoleState>,
    signed_in: SignedIn,
    headers: HeaderMap,
    Form(form): Form<CsrfOnly>,
) -> Response {
    if state
        .inner
        .guard
        .check_session_form(&headers, &signed_in.id, Some(&form.csrf))
        .is_err()
    {
        return state.refused();
    }
    if let Err(e) = state
        .store()
        .end_admin_session(SessionHash(signed_in.id.storage_key()))
        .await
    {
        return state.failed(&e);
    }
    with_cookie(
        Redirect::to("/console/sign-in").into_response(),
        state.inner.guard.clear_session(),
    )
}

pub(super) async fn password_page(
    State(state): State<ConsoleState>,
    signed_in: SignedIn,
) -> Response {
    state.password_form(&signed_in, None, StatusCode::OK)
}

#[derive(Debug, Deserialize)]
pub(super) struct PasswordForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    current: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    confirm: String,
}

/// Words of a refused password, for administrators (English: the console
/// is not translated).
fn weak_words(weak: &password::WeakPassword) -> String {
    crate::portal::words::Words::ENGLISH.weak_password(weak)
}

pub(super) async fn change_password(
    State(state): State<ConsoleState>,
    signed_in: SignedIn,
    client: axum::Extension<Client>,
    headers: HeaderMap,
    Form(form): Form<PasswordForm>,
) -> Response {
    if let Some(refused) = state.refuse_guess(&signed_in, &headers, &form.csrf, &client) {
        return refused;
    }
    let refuse =
        |text: &str| state.password_form(&signed_in, Some(text), StatusCode::UNPROCESSABLE_ENTITY);
    let name = signed_in.admin.name.clone();
    if !state
        .check_password(Some(&name), Password::new(form.current.clone()))
        .await
    {
        return refuse("Your current password is not right.");
    }
    if form.password != form.confirm {
        return refuse("The two new passwords are not the same. Type them again.");
    }
    if form.password == form.current {
        return refuse("Choose a password other than the current one.");
    }
    let new = Password::new(form.password);
    if let Err(weak) = password::check_strength(&new, &[name.as_str(), "sealpost", "console"]) {
        return refuse(&weak_words(&weak));
    }
    let hashed = match password::hash_blocking(new).await {
        Ok(h) => h,
        Err(e) => return state.failed(&e),
    };
    let changed = state
        .store()
        .set_administrator_password(
            &name,
            sealpost_store::portal::PasswordHash::new(hashed.as_phc().to_owned()),
            false,
            Some(SessionHash(signed_in.id.storage_key())),
            SystemTime::now(),
            signed_in.actor(),
        )
        .await;
    match changed {
        Ok(true) => Redirect::to("/console?done=password").into_response(),
        Ok(false) => Redirect::to("/console/sign-in").into_response(),
        Err(e) => state.failed(&e),
    }
}
