//! Two-step sign-in on an administrator's own account page.
//!
//! Turning it on: sealpost makes a secret and shows it (a QR code drawn
//! as inline SVG, the base32 key and the `otpauth://` URI); it is on only once a right
//! code from the app comes back, and then ten recovery codes are shown,
//! once (the store keeps their hashes). Turning it off takes the password
//! or a code. A super admin resets another administrator's (a lost
//! phone, [`super::administrators`]); a password reset leaves it on, on
//! purpose: the two factors are reset separately (`sealpost admin
//! reset-totp NAME` on the gateway).
//! Every switch is in the audit log, never the secret.

use std::time::SystemTime;

use axum::{
    Form,
    extract::State,
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Redirect, Response},
};
use sealpost_store::{
    StoreError,
    console::{AdminName, TotpOff},
};
use serde::Deserialize;

use super::{ConsoleState, SignedIn, home};
use crate::{
    auth::{
        password::Password,
        totp::{self, Code},
    },
    portal::client::Client,
};

/// How a second-step code was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Accepted {
    Totp,
    /// A recovery code, now spent.
    Recovery,
}

impl ConsoleState {
    /// The issuer an authenticator app lists the account under:
    /// `sealpost` and the console's host.
    fn issuer(&self) -> String {
        let url = &self.settings().url;
        let host = url
            .split_once("://")
            .map_or(url.as_str(), |(_, rest)| rest)
            .split(['/', ':'])
            .next()
            .unwrap_or_default();
        format!("sealpost {host}")
    }

    /// Checks a second-step code of `name` (TOTP on): a TOTP code whose
    /// time step was not used before, or an unused recovery code (spent
    /// here). `None` for a wrong, replayed or spent code; the caller
    /// counts the failure.
    pub(super) async fn take_code(
        &self,
        name: &AdminName,
        text: &str,
        now: SystemTime,
    ) -> Result<Option<Accepted>, StoreError> {
        match Code::parse(text) {
            None => Ok(None),
            Some(Code::Recovery(hash)) => Ok(self
                .store()
                .use_admin_recovery_code(name, hash, now)
                .await?
                .then_some(Accepted::Recovery)),
            Some(Code::Totp(code)) => {
                let Some(stored) = self.store().admin_totp(name).await? else {
                    return Ok(None);
                };
                if !stored.enabled {
                    return Ok(None);
                }
                let Some(step) = totp::check(&stored.secret, &code, now) else {
                    return Ok(None);
                };
                Ok(self
                    .store()
                    .accept_admin_totp_step(name, step)
                    .await?
                    .then_some(Accepted::Totp))
            }
        }
    }

    async fn account_page(
        &self,
        signed_in: &SignedIn,
        status: StatusCode,
        error: Option<&str>,
        notice: Option<&str>,
    ) -> Response {
        let totp = match self.store().admin_totp(&signed_in.admin.name).await {
            Ok(t) => t.filter(|t| t.enabled),
            Err(e) => return self.failed(&e),
        };
        self.page(
            "account.html",
            status,
            minijinja::context! {
                admin => home::admin_view(&signed_in.admin),
                csrf => signed_in.csrf.as_str(),
                totp => totp.is_some(),
                recovery_codes_left => totp.map_or(0, |t| t.recovery_codes_left),
                error,
                notice,
            },
        )
    }

    async fn enrol_page(
        &self,
        signed_in: &SignedIn,
        status: StatusCode,
        error: Option<&str>,
    ) -> Response {
        let pending = match self.store().admin_totp(&signed_in.admin.name).await {
            Ok(Some(t)) if !t.enabled => t,
            Ok(_) => return Redirect::to("/console/account").into_response(),
            Err(e) => return self.failed(&e),
        };
        let name = signed_in.admin.name.as_str();
        let uri = totp::otpauth_uri(&pending.secret, &self.issuer(), name);
        self.page(
            "totp_enrol.html",
            status,
            minijinja::context! {
                admin => home::admin_view(&signed_in.admin),
                csrf => signed_in.csrf.as_str(),
                secret => totp::base32(&pending.secret),
                // Built from module coordinates only: nothing to escape.
                qr => qr_svg(&uri).map(minijinja::Value::from_safe_string),
                uri,
                error,
            },
        )
    }
}

/// `text` as a QR code in inline SVG (no image file, no script: the
/// page's CSP stands), or `None` if it does not fit one.
fn qr_svg(text: &str) -> Option<String> {
    use qrcodegen::{QrCode, QrCodeEcc};
    let qr = QrCode::encode_text(text, QrCodeEcc::Medium).ok()?;
    let size = qr.size();
    // Four modules of quiet zone, as scanners expect.
    let border = 4;
    let mut path = String::new();
    for y in 0..size {
        for x in 0..size {
            if qr.get_module(x, y) {
                path.push_str(&format!("M{},{}h1v1h-1z", x + border, y + border));
            }
        }
    }
    let side = size + 2 * border;
    Some(format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {side} {side}\" \
         width=\"200\" height=\"200\" role=\"img\" aria-labelledby=\"qr-label\" \
         shape-rendering=\"crispEdges\"><title id=\"qr-label\">QR code of the \
         otpauth address below</title><rect width=\"100%\" height=\"100%\" fill=\"#fff\"/>\
         <path d=\"{path}\" fill=\"#000\"/></svg>"
    ))
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct Done {
    #[serde(default)]
    done: Option<String>,
}

/// `GET /console/account`: the administrator's own account.
pub(super) async fn account(
    State(state): State<ConsoleState>,
    signed_in: SignedIn,
    axum::extract::Query(done): axum::extract::Query<Done>,
) -> Response {
    let notice = match done.done.as_deref() {
        Some("totp-off") => Some("Two-step sign-in is off."),
        Some("recovery") => Some(
            "You signed in with a recovery code; it cannot be used again. When few are left, \
             turn two-step sign-in off and on again for a new set.",
        ),
        _ => None,
    };
    state
        .account_page(&signed_in, StatusCode::OK, None, notice)
        .await
}

#[derive(Debug, Deserialize)]
pub(super) struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

/// `POST /console/account/totp/start`: a new secret, not on yet.
pub(super) async fn start(
    State(state): State<ConsoleState>,
    signed_in: SignedIn,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Response {
    if let Some(refused) = state.refuse_form(&signed_in, &headers, &form.csrf) {
        return refused;
    }
    let started = state
        .store()
        .start_admin_totp(&signed_in.admin.name, totp::new_secret(), SystemTime::now())
        .await;
    match started {
        Ok(true) => Redirect::to("/console/account/totp").into_response(),
        Ok(false) => Redirect::to("/console/sign-in").into_response(),
        Err(StoreError::Refused(why)) => {
            state
                .account_page(&signed_in, StatusCode::CONFLICT, Some(&why), None)
                .await
        }
        Err(e) => state.failed(&e),
    }
}

/// `GET /console/account/totp`: the secret to add to an app, and the form
/// for its first code.
pub(super) async fn enrol(State(state): State<ConsoleState>, signed_in: SignedIn) -> Response {
    state.enrol_page(&signed_in, StatusCode::OK, None).await
}

#[derive(Debug, Deserialize)]
pub(super) struct CodeForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    code: String,
}

/// `POST /console/account/totp`: the first code; right, and TOTP is on
/// and the recovery codes are shown, once.
pub(super) async fn confirm(
    State(state): State<ConsoleState>,
    signed_in: SignedIn,
    client: axum::Extension<Client>,
    headers: HeaderMap,
    Form(form): Form<CodeForm>,
) -> Response {
    if let Some(refused) = state.refuse_guess(&signed_in, &headers, &form.csrf, &client) {
        return refused;
    }
    let name = &signed_in.admin.name;
    let now = SystemTime::now();
    let pending = match state.store().admin_totp(name).await {
        Ok(Some(t)) if !t.enabled => t,
        Ok(_) => return Redirect::to("/console/account").into_response(),
        Err(e) => return state.failed(&e),
    };
    let Some(step) = totp::check(&pending.secret, &form.code, now) else {
        return state
            .enrol_page(
                &signed_in,
                StatusCode::UNPROCESSABLE_ENTITY,
                Some("That code is not right. Check the app's clock and enter the code it shows now."),
            )
            .await;
    };
    let codes = totp::recovery_codes();
    let hashes = codes
        .iter()
        .filter_map(|c| totp::recovery_hash(c))
        .collect();
    match state
        .store()
        .enable_admin_totp(name, step, hashes, now, signed_in.actor())
        .await
    {
        Ok(true) => state.page(
            "recovery_codes.html",
            StatusCode::OK,
            minijinja::context! {
                admin => home::admin_view(&signed_in.admin),
                csrf => signed_in.csrf.as_str(),
                codes,
            },
        ),
        Ok(false) => Redirect::to("/console/account").into_response(),
        Err(e) => state.failed(&e),
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct OffForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    code: String,
}

/// `POST /console/account/totp/off`: with the password, or a code.
pub(super) async fn turn_off(
    State(state): State<ConsoleState>,
    signed_in: SignedIn,
    client: axum::Extension<Client>,
    headers: HeaderMap,
    Form(form): Form<OffForm>,
) -> Response {
    if let Some(refused) = state.refuse_guess(&signed_in, &headers, &form.csrf, &client) {
        return refused;
    }
    let name = &signed_in.admin.name;
    let proven = if !form.password.is_empty() {
        state
            .check_password(Some(name), Password::new(form.password))
            .await
    } else if state.locked(name).await {
        // A stolen session may not guess codes past the lockout either.
        false
    } else {
        match state.take_code(name, &form.code, SystemTime::now()).await {
            Ok(Some(_)) => true,
            Ok(None) => {
                state.count_failure(name).await;
                false
            }
            Err(e) => return state.failed(&e),
        }
    };
    if !proven {
        return state
            .account_page(
                &signed_in,
                StatusCode::UNPROCESSABLE_ENTITY,
                Some("That password or code is not right; two-step sign-in stays on."),
                None,
            )
            .await;
    }
    match state
        .store()
        .disable_admin_totp(name, TotpOff::Disabled, signed_in.actor())
        .await
    {
        Ok(_) => Redirect::to("/console/account?done=totp-off").into_response(),
        Err(e) => state.failed(&e),
    }
}
