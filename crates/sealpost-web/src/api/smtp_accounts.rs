//! `/smtp-accounts`: the accounts applications submit mail with (issue 17,
//! item 1), super_admin only. A password is made by sealpost and shown
//! once, in the answer that creates or resets it; only its argon2id hash
//! is stored. Every change is audited (object `smtp_account`).

use std::time::SystemTime;

use axum::{Json, extract::State, http::StatusCode, response::Response};
use sealpost_policy::Invalid;
use sealpost_store::{
    portal::PasswordHash,
    smtp_accounts::{NewSmtpAccount, SmtpAccount, SmtpAccountName, parse_senders},
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{ApiError, ApiJson, ApiPath, ApiResult, ApiState, created, extract::SuperAdmin};
use crate::auth::password;

/// Messages an hour an account may send unless told.
const DEFAULT_RATE: u32 = 1000;
/// Most messages an hour an account may be given.
const MAX_RATE: u32 = 1_000_000;

pub(super) fn routes(router: OpenApiRouter<ApiState>) -> OpenApiRouter<ApiState> {
    router
        .routes(routes!(list_accounts, create_account))
        .routes(routes!(get_account, update_account, delete_account))
        .routes(routes!(reset_password))
}

/// An SMTP account as shown (never the hash).
#[derive(Debug, Serialize, ToSchema)]
struct AccountView {
    name: String,
    /// Addresses and domains (`*.domain` for subdomains too) it may send as.
    senders: Vec<String>,
    rate_per_hour: u32,
    /// RFC 3339.
    created_at: String,
    password_changed_at: String,
    /// RFC 3339, to the minute; absent if never used.
    #[serde(skip_serializing_if = "Option::is_none")]
    last_used_at: Option<String>,
}

impl From<SmtpAccount> for AccountView {
    fn from(a: SmtpAccount) -> Self {
        AccountView {
            name: a.name.to_string(),
            senders: a.senders,
            rate_per_hour: a.rate_per_hour,
            created_at: sealpost_store::rfc3339(a.created_at),
            password_changed_at: sealpost_store::rfc3339(a.password_changed_at),
            last_used_at: a.last_used_at.map(sealpost_store::rfc3339),
        }
    }
}

/// An account with its new password, shown this once.
#[derive(Debug, Serialize, ToSchema)]
struct WithPassword {
    #[serde(flatten)]
    account: AccountView,
    /// The password: shown only now.
    password: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct NewAccount {
    name: String,
    senders: Vec<String>,
    /// Default 1000.
    #[serde(default)]
    rate_per_hour: Option<u32>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct AccountChange {
    #[serde(default)]
    senders: Option<Vec<String>>,
    #[serde(default)]
    rate_per_hour: Option<u32>,
}

fn rate(rate: Option<u32>) -> Result<u32, Invalid> {
    match rate.unwrap_or(DEFAULT_RATE) {
        r @ 1..=MAX_RATE => Ok(r),
        _ => Err(Invalid::new(
            "rate_per_hour",
            "out_of_range",
            format!("rate_per_hour must be from 1 to {MAX_RATE}"),
        )),
    }
}

fn name(text: &str) -> ApiResult<SmtpAccountName> {
    SmtpAccountName::parse(text).map_err(|_| not_found(text))
}

fn not_found(name: &str) -> ApiError {
    ApiError::not_found(format!("there is no SMTP account named {name:?}"))
}

async fn new_password() -> ApiResult<(String, PasswordHash)> {
    let (password, hashed) = password::one_time_with_hash().await.map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("cannot hash a password: {e}"),
        )
    })?;
    Ok((
        password.expose().to_owned(),
        PasswordHash::new(hashed.as_phc().to_owned()),
    ))
}

/// Lists SMTP accounts.
#[utoipa::path(get, path = "/smtp-accounts", tag = "smtp-accounts",
    responses((status = 200, body = Vec<AccountView>), (status = 403, body = ApiError)))]
async fn list_accounts(
    _: SuperAdmin,
    State(state): State<ApiState>,
) -> ApiResult<Json<Vec<AccountView>>> {
    let all = state.smtp_accounts.smtp_accounts().await?;
    Ok(Json(all.into_iter().map(AccountView::from).collect()))
}

/// Creates an account; its password is in the answer, shown only now.
#[utoipa::path(post, path = "/smtp-accounts", tag = "smtp-accounts", request_body = NewAccount,
    responses((status = 201, body = WithPassword), (status = 409, body = ApiError), (status = 422, body = ApiError)))]
async fn create_account(
    SuperAdmin(caller): SuperAdmin,
    State(state): State<ApiState>,
    ApiJson(body): ApiJson<NewAccount>,
) -> ApiResult<Response> {
    let account_name = SmtpAccountName::parse(&body.name)?;
    let senders = parse_senders(&body.senders)?;
    let rate_per_hour = rate(body.rate_per_hour)?;
    let (password, hash) = new_password().await?;
    let made = state
        .smtp_accounts
        .create_smtp_account(
            NewSmtpAccount {
                name: account_name.clone(),
                senders,
                rate_per_hour,
                password: hash,
                now: SystemTime::now(),
            },
            caller.actor(),
        )
        .await?;
    if !made {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "name_taken",
            format!("there is already an SMTP account named {account_name}"),
        ));
    }
    let (account, _) = state
        .smtp_accounts
        .smtp_account(&account_name)
        .await?
        .ok_or_else(|| not_found(account_name.as_str()))?;
    Ok(created(WithPassword {
        account: account.into(),
        password,
    }))
}

/// One account.
#[utoipa::path(get, path = "/smtp-accounts/{name}", tag = "smtp-accounts", params(("name" = String, Path)),
    responses((status = 200, body = AccountView), (status = 404, body = ApiError)))]
async fn get_account(
    _: SuperAdmin,
    State(state): State<ApiState>,
    ApiPath(text): ApiPath<String>,
) -> ApiResult<Json<AccountView>> {
    let n = name(&text)?;
    let (account, _) = state
        .smtp_accounts
        .smtp_account(&n)
        .await?
        .ok_or_else(|| not_found(&text))?;
    Ok(Json(account.into()))
}

/// Changes an account's senders or rate (the fields given).
#[utoipa::path(patch, path = "/smtp-accounts/{name}", tag = "smtp-accounts", params(("name" = String, Path)),
    request_body = AccountChange,
    responses((status = 200, body = AccountView), (status = 404, body = ApiError), (status = 422, body = ApiError)))]
async fn update_account(
    SuperAdmin(caller): SuperAdmin,
    State(state): State<ApiState>,
    ApiPath(text): ApiPath<String>,
    ApiJson(body): ApiJson<AccountChange>,
) -> ApiResult<Json<AccountView>> {
    let n = name(&text)?;
    let (current, _) = state
        .smtp_accounts
        .smtp_account(&n)
        .await?
        .ok_or_else(|| not_found(&text))?;
    let senders = match &body.senders {
        Some(s) => parse_senders(s)?,
        None => current.senders,
    };
    let rate_per_hour = match body.rate_per_hour {
        Some(r) => rate(Some(r))?,
        None => current.rate_per_hour,
    };
    if !state
        .smtp_accounts
        .update_smtp_account(&n, senders, rate_per_hour, caller.actor())
        .await?
    {
        return Err(not_found(&text));
    }
    let (account, _) = state
        .smtp_accounts
        .smtp_account(&n)
        .await?
        .ok_or_else(|| not_found(&text))?;
    Ok(Json(account.into()))
}

/// Deletes an account: it can no longer authenticate.
#[utoipa::path(delete, path = "/smtp-accounts/{name}", tag = "smtp-accounts", params(("name" = String, Path)),
    responses((status = 204), (status = 404, body = ApiError)))]
async fn delete_account(
    SuperAdmin(caller): SuperAdmin,
    State(state): State<ApiState>,
    ApiPath(text): ApiPath<String>,
) -> ApiResult<StatusCode> {
    let n = name(&text)?;
    if state
        .smtp_accounts
        .remove_smtp_account(&n, caller.actor())
        .await?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(not_found(&text))
    }
}

/// Gives an account a new password, in the answer, shown only now; the
/// old one stops working at once.
#[utoipa::path(post, path = "/smtp-accounts/{name}/password", tag = "smtp-accounts", params(("name" = String, Path)),
    responses((status = 200, body = WithPassword), (status = 404, body = ApiError)))]
async fn reset_password(
    SuperAdmin(caller): SuperAdmin,
    State(state): State<ApiState>,
    ApiPath(text): ApiPath<String>,
) -> ApiResult<Json<WithPassword>> {
    let n = name(&text)?;
    let (password, hash) = new_password().await?;
    if !state
        .smtp_accounts
        .set_smtp_password(&n, hash, SystemTime::now(), caller.actor())
        .await?
    {
        return Err(not_found(&text));
    }
    let (account, _) = state
        .smtp_accounts
        .smtp_account(&n)
        .await?
        .ok_or_else(|| not_found(&text))?;
    Ok(Json(WithPassword {
        account: account.into(),
        password,
    }))
}
