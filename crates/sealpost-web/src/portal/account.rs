//! Getting in: the first visit through a notification link, sign-in and
//! sign-out, the forgotten password and its reset (issue 15, items 1-2).
//!
//! Nothing here tells whether an address has an account: sign-in answers
//! the same words, status and (argon2 either way) time for an unknown
//! address, a wrong password and a locked account; the forgotten-password
//! and new-link forms answer the same page whether or not a mail left.
//! Every POST passes the CSRF guard of [`super::session`], and those that
//! test a password or ask for a mail count against the client IP's limit.

use std::time::{Duration, SystemTime};

use axum::{
    Form,
    extract::{Path, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Redirect, Response},
};
use sealpost_policy::EmailAddress;
use sealpost_store::portal::{
    AccountKey, CsrfSecret, LinkPurpose, NewLink, NewSession, PasswordHash as StoredHash,
    Registration, RegistrationProof, SessionHash,
};
use sealpost_vault::PortalToken;
use serde::{Deserialize, Serialize};

use super::{
    Client, PortalState,
    mail::{self, MailKind},
    not_found,
    session::{RecipientSession, cookie_headers},
};
use crate::auth::{
    forms::NewSessionParts,
    password::{self, Password},
    sign_in::{self, Credentials, Outcome},
};

/// A page with the pre-session cookie set when the request had none.
fn with_cookie(mut response: Response, cookie: Option<HeaderValue>) -> Response {
    if let Some(cookie) = cookie {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    response
}

impl PortalState {
    /// The answer to a form whose CSRF check failed.
    pub(super) fn refused(&self) -> Response {
        let t = self.words();
        self.page(
            "notice.html",
            StatusCode::FORBIDDEN,
            minijinja::context! { title => t.form_expired_title, text => t.form_expired_text },
        )
    }

    /// Counts a password or mail request against the client's IP.
    /// What every form posted before sign-in passes first: its CSRF token
    /// and origin (403 otherwise), then the client's rate limit (429).
    /// Returns the refusal, if any.
    fn refuse_form(&self, headers: &HeaderMap, csrf: &str, client: &Client) -> Option<Response> {
        if self.check_form(headers, Some(csrf)).is_err() {
            return Some(self.refused());
        }
        self.over_limit(client)
    }

    fn over_limit(&self, client: &Client) -> Option<Response> {
        let wait = self.inner.deps.rate_limit.check(client.ip).err()?;
        let t = self.words();
        let mut response = self.page(
            "notice.html",
            StatusCode::TOO_MANY_REQUESTS,
            minijinja::context! { title => t.too_many_title, text => t.too_many_text },
        );
        let secs = wait.as_secs().max(1).to_string();
        if let Ok(v) = HeaderValue::from_str(&secs) {
            response.headers_mut().insert(header::RETRY_AFTER, v);
        }
        Some(response)
    }

    /// Starts a session for `account` (a new id, whatever the request
    /// carried, and the old one ended) and redirects to `to`.
    async fn start_session(
        &self,
        account: AccountKey,
        headers: &HeaderMap,
        client: &Client,
        to: &str,
    ) -> Response {
        if let Some(old) = self.cookie().read(cookie_headers(headers)) {
            let _ = self
                .store()
                .end_session(SessionHash(old.storage_key()))
                .await;
        }
        let parts = NewSessionParts::generate(headers);
        let made = self
            .store()
            .create_session(NewSession {
                id: SessionHash(parts.id.storage_key()),
                account,
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
            self.inner.guard.set_session(&parts.id),
        )
    }

    pub(super) fn failed(&self, error: &dyn std::fmt::Display) -> Response {
        tracing::error!(error = %error, "portal request failed");
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            self.words().something_failed,
        )
            .into_response()
    }

    /// Whether `password` signs in to `account` under the lockout. A
    /// locked account is checked against the fallback hash (never its
    /// own), so argon2 runs in every case and time tells nothing; a
    /// wrong password on an unlocked account is counted in the store.
    async fn check_password(&self, account: Option<&AccountKey>, password: Password) -> bool {
        let now = SystemTime::now();
        let stored = match account {
            Some(key) => match self.store().account(key).await {
                Ok(found) => found,
                Err(e) => {
                    tracing::error!(error = %e, "reading a portal account failed");
                    None
                }
            },
            None => None,
        };
        let credentials = stored.as_ref().map(|a| {
            Credentials::new(
                a.password_hash.as_str(),
                a.failed_sign_ins,
                a.last_failure_at,
            )
        });
        let outcome = sign_in::check(
            credentials.as_ref(),
            password,
            &self.settings().backoff,
            now,
        )
        .await;
        metrics::counter!("sealpost_portal_sign_ins_total", "result" => outcome.as_str())
            .increment(1);
        if outcome == Outcome::Failed
            && let Some(a) = &stored
            && let Err(e) = self.store().record_failed_sign_in(&a.key, now).await
        {
            tracing::error!(error = %e, "counting a failed sign-in failed");
        }
        outcome == Outcome::Ok
    }

    /// The words that count against a new password: the address, its
    /// local part, the sender and the organisation.
    fn strength_inputs(&self, account: &AccountKey, sender: Option<&str>) -> Vec<String> {
        let address = account.as_str().to_owned();
        let mut inputs = vec![address.clone()];
        if let Some((local, domain)) = address.rsplit_once('@') {
            inputs.push(local.to_owned());
            inputs.push(domain.to_owned());
        }
        if let Some(sender) = sender.filter(|s| !s.is_empty()) {
            inputs.push(sender.to_owned());
            if let Some((local, domain)) = sender.rsplit_once('@') {
                inputs.push(local.to_owned());
                inputs.push(domain.to_owned());
            }
        }
        inputs.push(self.settings().hostname.clone());
        inputs.push(self.branding().branding.product_name.clone());
        inputs
    }

    /// A new password, checked (same twice, long and strong enough) and
    /// hashed, or the refusal to show.
    async fn new_password(
        &self,
        form: &PasswordForm,
        inputs: &[String],
    ) -> Result<StoredHash, String> {
        let password = Password::new(form.password.clone());
        if form.password != form.confirm {
            return Err(self.words().passwords_differ.to_owned());
        }
        let inputs: Vec<&str> = inputs.iter().map(String::as_str).collect();
        password::check_strength(&password, &inputs)
            .map_err(|weak| self.words().weak_password(&weak))?;
        password::hash_blocking(password)
            .await
            .map(|h| StoredHash::new(h.as_phc().to_owned()))
            .map_err(|e| {
                tracing::error!(error = %e, "hashing a new password failed");
                self.words().something_failed.to_owned()
            })
    }

    /// Mails a link of `kind` to `account`; failures are logged, never shown.
    async fn mail_link(&self, kind: MailKind, account: &AccountKey, link: &str, ttl: Duration) {
        let Ok(to) = EmailAddress::parse(account.as_str()) else {
            return;
        };
        let settings = self.settings();
        let mail = mail::build(
            kind,
            &self.inner.mail_words,
            &to,
            link,
            &when(SystemTime::now() + ttl),
            &self.branding().branding.product_name,
            &settings.hostname,
        );
        if let Err(e) = self.inner.deps.outbox.send(mail).await {
            tracing::error!(error = %e, "queueing a portal mail failed");
        }
    }
}

/// A time in words, in UTC: "12 December 2026, 14:30 UTC".
pub(super) fn when(at: SystemTime) -> String {
    let at = time::OffsetDateTime::from(at);
    let format = time::macros::format_description!(
        "[day padding:none] [month repr:long] [year], [hour]:[minute] UTC"
    );
    at.format(&format).unwrap_or_default()
}

#[derive(Debug, Deserialize)]
pub(super) struct SignInForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
}

#[derive(Serialize)]
struct SignInValues<'a> {
    error: Option<&'a str>,
    email: &'a str,
    csrf: &'a str,
}

pub(super) async fn sign_in_page(State(state): State<PortalState>, headers: HeaderMap) -> Response {
    if state.current_session(&headers).await.is_some() {
        return Redirect::to("/inbox").into_response();
    }
    let (csrf, cookie) = state.form_key(&headers);
    let page = state.page(
        "sign_in.html",
        StatusCode::OK,
        SignInValues {
            error: None,
            email: "",
            csrf: csrf.as_str(),
        },
    );
    with_cookie(page, cookie)
}

pub(super) async fn sign_in(
    State(state): State<PortalState>,
    client: axum::Extension<Client>,
    headers: HeaderMap,
    Form(form): Form<SignInForm>,
) -> Response {
    if let Some(refused) = state.refuse_form(&headers, &form.csrf, &client) {
        return refused;
    }
    let account = EmailAddress::parse(form.email.trim())
        .ok()
        .map(|a| AccountKey::of(&a));
    if state
        .check_password(account.as_ref(), Password::new(form.password))
        .await
        && let Some(account) = account
    {
        return state
            .start_session(account, &headers, &client, "/inbox")
            .await;
    }
    let (csrf, cookie) = state.form_key(&headers);
    let page = state.page(
        "sign_in.html",
        StatusCode::OK,
        SignInValues {
            error: Some(state.words().sign_in_failed),
            email: form.email.trim(),
            csrf: csrf.as_str(),
        },
    );
    with_cookie(page, cookie)
}

#[derive(Debug, Deserialize)]
pub(super) struct CsrfOnly {
    #[serde(default)]
    csrf: String,
}

pub(super) async fn sign_out(
    State(state): State<PortalState>,
    session: RecipientSession,
    headers: HeaderMap,
    Form(form): Form<CsrfOnly>,
) -> Response {
    if state
        .check_session_form(&headers, &session, Some(&form.csrf))
        .is_err()
    {
        return state.refused();
    }
    if let Err(e) = state
        .store()
        .end_session(SessionHash(session.id.storage_key()))
        .await
    {
        return state.failed(&e);
    }
    let mut response = Redirect::to("/sign-in").into_response();
    if let Ok(v) = HeaderValue::from_str(&state.cookie().clear()) {
        response.headers_mut().insert(header::SET_COOKIE, v);
    }
    response
}

#[derive(Debug, Deserialize)]
pub(super) struct PasswordForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    confirm: String,
}

/// What the first-visit page shows about the message.
#[derive(Serialize, Default)]
struct MessageFacts {
    sender: String,
    subject: Option<String>,
    subject_hidden: bool,
    expires: Option<String>,
}

/// Which form the link page shows.
#[derive(Serialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum OpenMode {
    /// No account yet: choose a password.
    Choose,
    /// An account exists: enter the password.
    Returning,
    /// The link may no longer register: offer a new one.
    Expired,
}

/// What a `/open/{token}` link is.
enum Link {
    /// A notification link (a secure recipient's portal token).
    Notification(sealpost_store::portal::RegistrationLink),
    /// A mailed registration link ([`LinkPurpose::Register`]).
    Fresh(AccountKey),
}

impl PortalState {
    async fn find_link(&self, token: &PortalToken) -> Result<Option<Link>, Response> {
        let hash = token.hash();
        match self.store().registration_link(hash).await {
            Ok(Some(link)) => return Ok(Some(Link::Notification(link))),
            Ok(None) => {}
            Err(e) => return Err(self.failed(&e)),
        }
        match self.store().link(hash, SystemTime::now()).await {
            Ok(Some(l)) if l.purpose == LinkPurpose::Register => Ok(Some(Link::Fresh(l.account))),
            Ok(_) => Ok(None),
            Err(e) => Err(self.failed(&e)),
        }
    }

    async fn facts(&self, link: &Link) -> MessageFacts {
        let Link::Notification(link) = link else {
            return MessageFacts::default();
        };
        let Ok(row) = self
            .store()
            .mailbox_message(&link.account, &link.message, link.idx, SystemTime::now())
            .await
        else {
            return MessageFacts::default();
        };
        // Unknown or unreadable: show nothing.
        let hidden = self.rules_of(&row).is_none_or(|d| d.hide_subject);
        MessageFacts {
            sender: row.sender,
            subject: if hidden { None } else { row.subject },
            subject_hidden: hidden,
            expires: Some(when(row.expires_at)),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn open_form(
        &self,
        status: StatusCode,
        token: &str,
        mode: OpenMode,
        account: &AccountKey,
        facts: &MessageFacts,
        error: Option<&str>,
        headers: &HeaderMap,
    ) -> Response {
        let (csrf, cookie) = self.form_key(headers);
        let page = self.page(
            "open.html",
            status,
            minijinja::context! {
                token, mode, error, facts,
                address => account.as_str(),
                csrf => csrf.as_str(),
            },
        );
        with_cookie(page, cookie)
    }
}

fn expired(link: &Link, ttl: Duration, now: SystemTime) -> bool {
    match link {
        Link::Notification(l) => l.issued_at + ttl <= now,
        Link::Fresh(_) => false,
    }
}

fn mode(link: &Link, ttl: Duration, now: SystemTime) -> OpenMode {
    match link {
        Link::Notification(l) if l.account_exists => OpenMode::Returning,
        l if expired(l, ttl, now) => OpenMode::Expired,
        _ => OpenMode::Choose,
    }
}

fn account_of(link: &Link) -> &AccountKey {
    match link {
        Link::Notification(l) => &l.account,
        Link::Fresh(a) => a,
    }
}

/// Where a link leads once it has proved the password.
fn target(link: &Link) -> String {
    match link {
        Link::Notification(l) => format!("/messages/{}/{}", l.message, l.idx),
        Link::Fresh(_) => "/inbox".to_owned(),
    }
}

pub(super) async fn open_page(
    State(state): State<PortalState>,
    Path(token_text): Path<String>,
    headers: HeaderMap,
) -> Response {
    let Some(token) = PortalToken::parse(&token_text) else {
        return not_found(State(state)).await;
    };
    let link = match state.find_link(&token).await {
        Ok(Some(link)) => link,
        Ok(None) => return not_found(State(state)).await,
        Err(response) => return response,
    };
    let mode = mode(
        &link,
        state.settings().registration_link_ttl,
        SystemTime::now(),
    );
    // Already signed in as this address: straight to the message.
    if mode == OpenMode::Returning
        && let Some(session) = state.current_session(&headers).await
        && &session.account == account_of(&link)
    {
        return Redirect::to(&target(&link)).into_response();
    }
    let facts = state.facts(&link).await;
    state.open_form(
        StatusCode::OK,
        token.as_str(),
        mode,
        account_of(&link),
        &facts,
        None,
        &headers,
    )
}

pub(super) async fn open_submit(
    State(state): State<PortalState>,
    Path(token_text): Path<String>,
    client: axum::Extension<Client>,
    headers: HeaderMap,
    Form(form): Form<PasswordForm>,
) -> Response {
    if let Some(refused) = state.refuse_form(&headers, &form.csrf, &client) {
        return refused;
    }
    let Some(token) = PortalToken::parse(&token_text) else {
        return not_found(State(state)).await;
    };
    let link = match state.find_link(&token).await {
        Ok(Some(link)) => link,
        Ok(None) => return not_found(State(state)).await,
        Err(response) => return response,
    };
    let now = SystemTime::now();
    let ttl = state.settings().registration_link_ttl;
    let account = account_of(&link).clone();
    let mode = mode(&link, ttl, now);
    match mode {
        OpenMode::Returning => {
            if state
                .check_password(Some(&account), Password::new(form.password))
                .await
            {
                return state
                    .start_session(account, &headers, &client, &target(&link))
                    .await;
            }
            let facts = state.facts(&link).await;
            let error = state.words().sign_in_failed;
            state.open_form(
                StatusCode::OK,
                token.as_str(),
                mode,
                &account,
                &facts,
                Some(error),
                &headers,
            )
        }
        OpenMode::Expired => open_page(State(state), Path(token_text), headers).await,
        OpenMode::Choose => {
            let facts = state.facts(&link).await;
            let inputs = state.strength_inputs(&account, Some(&facts.sender));
            let hash = match state.new_password(&form, &inputs).await {
                Ok(hash) => hash,
                Err(message) => {
                    return state.open_form(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        token.as_str(),
                        mode,
                        &account,
                        &facts,
                        Some(&message),
                        &headers,
                    );
                }
            };
            let proof = match &link {
                Link::Notification(_) => RegistrationProof::PortalToken(token.hash()),
                Link::Fresh(_) => RegistrationProof::Link(token.hash()),
            };
            match state.store().register(proof, hash, ttl, now).await {
                Ok(Registration::Created(created)) => {
                    metrics::counter!("sealpost_portal_registrations_total").increment(1);
                    state
                        .start_session(created.key, &headers, &client, &target(&link))
                        .await
                }
                // Registered meanwhile (another tab, another link): ask
                // for the password; expired: offer a new link.
                Ok(Registration::Used | Registration::AccountExists | Registration::Expired) => {
                    open_page(State(state), Path(token_text), headers).await
                }
                Ok(Registration::UnknownLink | Registration::NoMessage) => {
                    not_found(State(state)).await
                }
                Err(e) => state.failed(&e),
            }
        }
    }
}

/// An expired notification link asks for a new one: mailed only when a
/// live secure message waits and no account exists, the same page either
/// way.
pub(super) async fn renew(
    State(state): State<PortalState>,
    Path(token_text): Path<String>,
    client: axum::Extension<Client>,
    headers: HeaderMap,
    Form(form): Form<CsrfOnly>,
) -> Response {
    if let Some(refused) = state.refuse_form(&headers, &form.csrf, &client) {
        return refused;
    }
    let Some(token) = PortalToken::parse(&token_text) else {
        return not_found(State(state)).await;
    };
    let link = match state.find_link(&token).await {
        Ok(Some(Link::Notification(link))) => link,
        Ok(_) => return not_found(State(state)).await,
        Err(response) => return response,
    };
    let now = SystemTime::now();
    let ttl = state.settings().registration_link_ttl;
    if !link.account_exists && link.issued_at + ttl <= now {
        let fresh = PortalToken::generate();
        let stored = state
            .store()
            .create_link(
                NewLink {
                    token: fresh.hash(),
                    purpose: LinkPurpose::Register,
                    account: link.account.clone(),
                    expires_at: now + ttl,
                },
                now,
            )
            .await;
        match stored {
            Ok(true) => {
                let url = format!("{}/open/{}", state.settings().url, fresh.as_str());
                state
                    .mail_link(MailKind::Register, &link.account, &url, ttl)
                    .await;
            }
            Ok(false) => {}
            Err(e) => return state.failed(&e),
        }
    }
    let t = state.words();
    state.page(
        "notice.html",
        StatusCode::OK,
        minijinja::context! { title => t.new_link_sent_title, text => t.new_link_sent_text },
    )
}

#[derive(Debug, Deserialize)]
pub(super) struct EmailForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    email: String,
}

pub(super) async fn forgot_page(State(state): State<PortalState>, headers: HeaderMap) -> Response {
    let (csrf, cookie) = state.form_key(&headers);
    let page = state.page(
        "forgot.html",
        StatusCode::OK,
        minijinja::context! { csrf => csrf.as_str() },
    );
    with_cookie(page, cookie)
}

pub(super) async fn forgot_submit(
    State(state): State<PortalState>,
    client: axum::Extension<Client>,
    headers: HeaderMap,
    Form(form): Form<EmailForm>,
) -> Response {
    if let Some(refused) = state.refuse_form(&headers, &form.csrf, &client) {
        return refused;
    }
    if let Ok(address) = EmailAddress::parse(form.email.trim()) {
        let account = AccountKey::of(&address);
        let now = SystemTime::now();
        let ttl = state.settings().reset_link_ttl;
        let token = PortalToken::generate();
        let stored = state
            .store()
            .create_link(
                NewLink {
                    token: token.hash(),
                    purpose: LinkPurpose::Reset,
                    account: account.clone(),
                    expires_at: now + ttl,
                },
                now,
            )
            .await;
        match stored {
            Ok(true) => {
                let url = format!("{}/reset/{}", state.settings().url, token.as_str());
                state.mail_link(MailKind::Reset, &account, &url, ttl).await;
            }
            Ok(false) => {}
            Err(e) => return state.failed(&e),
        }
    }
    let t = state.words();
    state.page(
        "notice.html",
        StatusCode::OK,
        minijinja::context! { title => t.forgot_sent_title, text => t.forgot_sent_text },
    )
}

impl PortalState {
    fn reset_invalid(&self) -> Response {
        let t = self.words();
        self.page(
            "notice.html",
            StatusCode::NOT_FOUND,
            minijinja::context! {
                title => t.reset_invalid_title, text => t.reset_invalid_text,
                action_href => "/forgot-password", action_label => t.ask_again,
            },
        )
    }

    async fn reset_account(&self, token_text: &str) -> Option<(PortalToken, AccountKey)> {
        let token = PortalToken::parse(token_text)?;
        match self.store().link(token.hash(), SystemTime::now()).await {
            Ok(Some(l)) if l.purpose == LinkPurpose::Reset => Some((token, l.account)),
            Ok(_) => None,
            Err(e) => {
                tracing::error!(error = %e, "reading a reset link failed");
                None
            }
        }
    }

    fn reset_form(
        &self,
        status: StatusCode,
        token: &str,
        account: &AccountKey,
        error: Option<&str>,
        headers: &HeaderMap,
    ) -> Response {
        let (csrf, cookie) = self.form_key(headers);
        let page = self.page(
            "reset.html",
            status,
            minijinja::context! {
                token, error, address => account.as_str(), csrf => csrf.as_str(),
            },
        );
        with_cookie(page, cookie)
    }
}

pub(super) async fn reset_page(
    State(state): State<PortalState>,
    Path(token_text): Path<String>,
    headers: HeaderMap,
) -> Response {
    match state.reset_account(&token_text).await {
        Some((token, account)) => {
            state.reset_form(StatusCode::OK, token.as_str(), &account, None, &headers)
        }
        None => state.reset_invalid(),
    }
}

pub(super) async fn reset_submit(
    State(state): State<PortalState>,
    Path(token_text): Path<String>,
    client: axum::Extension<Client>,
    headers: HeaderMap,
    Form(form): Form<PasswordForm>,
) -> Response {
    if let Some(refused) = state.refuse_form(&headers, &form.csrf, &client) {
        return refused;
    }
    let Some((token, account)) = state.reset_account(&token_text).await else {
        return state.reset_invalid();
    };
    let inputs = state.strength_inputs(&account, None);
    let hash = match state.new_password(&form, &inputs).await {
        Ok(hash) => hash,
        Err(message) => {
            return state.reset_form(
                StatusCode::UNPROCESSABLE_ENTITY,
                token.as_str(),
                &account,
                Some(&message),
                &headers,
            );
        }
    };
    // One commit: the link used, the password set, every session ended.
    match state
        .store()
        .reset_password(token.hash(), hash, SystemTime::now())
        .await
    {
        Ok(Some(account)) => {
            state
                .start_session(account, &headers, &client, "/inbox")
                .await
        }
        Ok(None) => state.reset_invalid(),
        Err(e) => state.failed(&e),
    }
}
