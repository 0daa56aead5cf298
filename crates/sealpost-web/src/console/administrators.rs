//! Administrators and API keys, managed by super admins (issue 16, items
//! 1 and 2): create an administrator (a one-time password, shown once),
//! give one a new one-time password (two-step sign-in stays), reset one's
//! two-step sign-in, change a role, remove one; create and
//! revoke API keys (the key shown once). The route table lets only super
//! admins reach these ([`super::routes`]); every form checks its CSRF
//! token; the store refuses what would leave no super admin.

use axum::{
    Form,
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Redirect, Response},
};
use sealpost_store::{
    Role, StoreError,
    console::{AdminName, TotpOff},
};
use serde::{Deserialize, Serialize};

use super::{ConsoleState, SignedIn, home};
use crate::auth::{generate_api_key, password};

/// The roles, for the pages' pickers.
fn roles() -> Vec<&'static str> {
    Role::ALL.iter().map(|r| r.as_str()).collect()
}

impl ConsoleState {
    /// The 403 page for what `signed_in`'s role may not do.
    pub(super) fn forbidden(&self, signed_in: &SignedIn, text: &str) -> Response {
        self.page(
            "notice.html",
            StatusCode::FORBIDDEN,
            minijinja::context! {
                title => "Not for your role",
                text => format!("{text} You are {}.", signed_in.admin.role.as_str()),
                action_href => "/console",
                action_label => "Back to the overview",
                admin => home::admin_view(&signed_in.admin),
                csrf => signed_in.csrf.as_str(),
            },
        )
    }

    /// The refusal of a form whose CSRF token or origin is wrong.
    pub(super) fn refuse_form(
        &self,
        signed_in: &SignedIn,
        headers: &HeaderMap,
        csrf: &str,
    ) -> Option<Response> {
        self.inner
            .guard
            .check_session_form(headers, &signed_in.id, Some(csrf))
            .err()
            .map(|_| self.refused())
    }

    async fn administrators_page(
        &self,
        signed_in: &SignedIn,
        status: StatusCode,
        name: &str,
        error: Option<String>,
    ) -> Response {
        let administrators: Vec<_> = match self.store().administrators().await {
            Ok(all) => all.iter().map(home::admin_view).collect(),
            Err(e) => return self.failed(&e),
        };
        self.page(
            "administrators.html",
            status,
            minijinja::context! {
                admin => home::admin_view(&signed_in.admin),
                csrf => signed_in.csrf.as_str(),
                administrators,
                roles => roles(),
                name,
                error,
            },
        )
    }

    /// A secret shown once (a one-time password, an API key).
    fn secret_page(
        &self,
        signed_in: &SignedIn,
        title: &str,
        text: &str,
        secret: &str,
        back: &str,
    ) -> Response {
        self.page(
            "secret.html",
            StatusCode::OK,
            minijinja::context! {
                admin => home::admin_view(&signed_in.admin),
                csrf => signed_in.csrf.as_str(),
                title, text, secret,
                back_href => back,
                back_label => "Done",
            },
        )
    }
}

pub(super) async fn list(State(state): State<ConsoleState>, signed_in: SignedIn) -> Response {
    state
        .administrators_page(&signed_in, StatusCode::OK, "", None)
        .await
}

#[derive(Debug, Deserialize)]
pub(super) struct NewAdminForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    role: String,
}

pub(super) async fn create(
    State(state): State<ConsoleState>,
    signed_in: SignedIn,
    headers: HeaderMap,
    Form(form): Form<NewAdminForm>,
) -> Response {
    if let Some(refused) = state.refuse_form(&signed_in, &headers, &form.csrf) {
        return refused;
    }
    let refuse = |error: String| {
        state.administrators_page(
            &signed_in,
            StatusCode::UNPROCESSABLE_ENTITY,
            &form.name,
            Some(error),
        )
    };
    let name = match AdminName::parse(&form.name) {
        Ok(name) => name,
        Err(e) => return refuse(e).await,
    };
    let Some(role) = Role::parse(&form.role) else {
        return refuse(format!("{:?} is not a role", form.role)).await;
    };
    let (one_time, hashed) = match password::one_time_with_hash().await {
        Ok(pair) => pair,
        Err(e) => return state.failed(&e),
    };
    let created = state
        .store()
        .create_administrator(
            sealpost_store::console::NewAdministrator {
                name: name.clone(),
                role,
                password: sealpost_store::portal::PasswordHash::new(hashed.as_phc().to_owned()),
                must_change_password: true,
                now: std::time::SystemTime::now(),
            },
            signed_in.actor(),
        )
        .await;
    match created {
        Ok(true) => state.secret_page(
            &signed_in,
            &format!("{name} can sign in"),
            &format!(
                "Give {name} ({}) this one-time password by a safe way; they choose their own at the first sign-in.",
                role.as_str()
            ),
            one_time.expose(),
            "/console/administrators",
        ),
        Ok(false) => refuse(format!("There is already an administrator named {name}.")).await,
        Err(e) => state.failed(&e),
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

#[derive(Debug, Deserialize)]
pub(super) struct RoleForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    role: String,
}

/// The administrator a path names, or the page saying there is none.
async fn named(
    state: &ConsoleState,
    signed_in: &SignedIn,
    text: &str,
) -> Result<AdminName, Response> {
    match AdminName::parse(text) {
        Ok(name) => Ok(name),
        Err(e) => Err(state
            .administrators_page(signed_in, StatusCode::NOT_FOUND, "", Some(e))
            .await),
    }
}

/// After a change: back to the list, or the list with why it failed.
async fn outcome(
    state: &ConsoleState,
    signed_in: &SignedIn,
    name: &AdminName,
    result: Result<bool, StoreError>,
) -> Response {
    match result {
        Ok(true) => Redirect::to("/console/administrators").into_response(),
        Ok(false) => {
            state
                .administrators_page(
                    signed_in,
                    StatusCode::NOT_FOUND,
                    "",
                    Some(format!("There is no administrator named {name}.")),
                )
                .await
        }
        Err(StoreError::Refused(why)) => {
            state
                .administrators_page(signed_in, StatusCode::CONFLICT, "", Some(why))
                .await
        }
        Err(e) => state.failed(&e),
    }
}

pub(super) async fn set_role(
    State(state): State<ConsoleState>,
    signed_in: SignedIn,
    headers: HeaderMap,
    Path(name): Path<String>,
    Form(form): Form<RoleForm>,
) -> Response {
    if let Some(refused) = state.refuse_form(&signed_in, &headers, &form.csrf) {
        return refused;
    }
    let name = match named(&state, &signed_in, &name).await {
        Ok(name) => name,
        Err(page) => return page,
    };
    let Some(role) = Role::parse(&form.role) else {
        return state
            .administrators_page(
                &signed_in,
                StatusCode::UNPROCESSABLE_ENTITY,
                "",
                Some(format!("{:?} is not a role", form.role)),
            )
            .await;
    };
    let result = state
        .store()
        .set_administrator_role(&name, role, signed_in.actor())
        .await;
    outcome(&state, &signed_in, &name, result).await
}

pub(super) async fn reset(
    State(state): State<ConsoleState>,
    signed_in: SignedIn,
    headers: HeaderMap,
    Path(name): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Response {
    if let Some(refused) = state.refuse_form(&signed_in, &headers, &form.csrf) {
        return refused;
    }
    let name = match named(&state, &signed_in, &name).await {
        Ok(name) => name,
        Err(page) => return page,
    };
    let (one_time, hashed) = match password::one_time_with_hash().await {
        Ok(pair) => pair,
        Err(e) => return state.failed(&e),
    };
    let reset = state
        .store()
        .set_administrator_password(
            &name,
            sealpost_store::portal::PasswordHash::new(hashed.as_phc().to_owned()),
            true,
            None,
            std::time::SystemTime::now(),
            signed_in.actor(),
        )
        .await;
    // Two-step sign-in stays as it is: the factors are reset apart
    // (`super::totp::reset`).
    let keeps_totp = match state.store().administrator(&name).await {
        Ok(found) => found.is_some_and(|a| a.totp),
        Err(e) => return state.failed(&e),
    };
    let totp_note = if keeps_totp {
        " Their two-step sign-in stays on: they still need their app's code (or a recovery code); reset it too if the device is lost."
    } else {
        ""
    };
    match reset {
        Ok(true) => state.secret_page(
            &signed_in,
            &format!("A new one-time password for {name}"),
            &format!("{name}'s sessions have ended. Give them this one-time password by a safe way; they choose their own at the next sign-in.{totp_note}"),
            one_time.expose(),
            "/console/administrators",
        ),
        other => outcome(&state, &signed_in, &name, other).await,
    }
}

pub(super) async fn remove(
    State(state): State<ConsoleState>,
    signed_in: SignedIn,
    headers: HeaderMap,
    Path(name): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Response {
    if let Some(refused) = state.refuse_form(&signed_in, &headers, &form.csrf) {
        return refused;
    }
    let name = match named(&state, &signed_in, &name).await {
        Ok(name) => name,
        Err(page) => return page,
    };
    let result = state
        .store()
        .remove_administrator(&name, signed_in.actor())
        .await;
    outcome(&state, &signed_in, &name, result).await
}

#[derive(Debug, Serialize)]
struct KeyView {
    id: String,
    role: &'static str,
    name: String,
    created: String,
    last_used: Option<String>,
}

impl ConsoleState {
    async fn api_keys_page(
        &self,
        signed_in: &SignedIn,
        status: StatusCode,
        error: Option<String>,
    ) -> Response {
        let keys: Vec<KeyView> = match self.admin_store().list_api_keys().await {
            Ok(keys) => keys
                .into_iter()
                .map(|k| KeyView {
                    id: k.id,
                    role: k.role.as_str(),
                    name: sealpost_policy::text::one_line(&k.name, 100),
                    created: sealpost_store::rfc3339(k.created_at),
                    last_used: k.last_used_at.map(sealpost_store::rfc3339),
                })
                .collect(),
            Err(e) => return self.failed(&e),
        };
        self.page(
            "api_keys.html",
            status,
            minijinja::context! {
                admin => home::admin_view(&signed_in.admin),
                csrf => signed_in.csrf.as_str(),
                keys,
                roles => roles(),
                error,
            },
        )
    }
}

pub(super) async fn api_keys(State(state): State<ConsoleState>, signed_in: SignedIn) -> Response {
    state.api_keys_page(&signed_in, StatusCode::OK, None).await
}

#[derive(Debug, Deserialize)]
pub(super) struct NewKeyForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    role: String,
}

pub(super) async fn create_api_key(
    State(state): State<ConsoleState>,
    signed_in: SignedIn,
    headers: HeaderMap,
    Form(form): Form<NewKeyForm>,
) -> Response {
    if let Some(refused) = state.refuse_form(&signed_in, &headers, &form.csrf) {
        return refused;
    }
    let Some(role) = Role::parse(&form.role) else {
        return state
            .api_keys_page(
                &signed_in,
                StatusCode::UNPROCESSABLE_ENTITY,
                Some(format!("{:?} is not a role", form.role)),
            )
            .await;
    };
    let name: String = form.name.trim().chars().take(100).collect();
    let key = generate_api_key(role, &name);
    if let Err(e) = state
        .admin_store()
        .create_api_key(key.record, signed_in.actor())
        .await
    {
        return state.failed(&e);
    }
    state.secret_page(
        &signed_in,
        "A new API key",
        &format!(
            "Use it as 'Authorization: Bearer <key>' with the REST API; its role is {}.",
            role.as_str()
        ),
        &key.token,
        "/console/api-keys",
    )
}

pub(super) async fn revoke_api_key(
    State(state): State<ConsoleState>,
    signed_in: SignedIn,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Response {
    if let Some(refused) = state.refuse_form(&signed_in, &headers, &form.csrf) {
        return refused;
    }
    match state
        .admin_store()
        .revoke_api_key(&id, signed_in.actor())
        .await
    {
        Ok(true) => Redirect::to("/console/api-keys").into_response(),
        Ok(false) => {
            state
                .api_keys_page(
                    &signed_in,
                    StatusCode::NOT_FOUND,
                    Some("There is no such key.".into()),
                )
                .await
        }
        Err(e) => state.failed(&e),
    }
}

/// `POST /console/administrators/{name}/totp-reset`: turns another
/// administrator's two-step sign-in off, for a lost device (audited as
/// `reset_totp`); they sign in with the password alone until they turn
/// it on again.
pub(super) async fn reset_totp(
    State(state): State<ConsoleState>,
    signed_in: SignedIn,
    headers: HeaderMap,
    Path(name): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Response {
    if let Some(refused) = state.refuse_form(&signed_in, &headers, &form.csrf) {
        return refused;
    }
    let name = match named(&state, &signed_in, &name).await {
        Ok(name) => name,
        Err(page) => return page,
    };
    let reset = state
        .store()
        .disable_admin_totp(&name, TotpOff::Reset, signed_in.actor())
        .await;
    match reset {
        Ok(_) => Redirect::to("/console/administrators").into_response(),
        Err(e) => state.failed(&e),
    }
}
