//! `/directory/users`: the directory of users (address, display name,
//! attributes) that policies match on, one at a time or imported from CSV
//! in one commit.

use super::extract::PolicyEditor;
use axum::{Json, body::Bytes, extract::State, http::StatusCode, response::Response};
use sealpost_policy::{EmailAddress, UserDraft};
use sealpost_store::ConfigChange;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{ApiError, ApiJson, ApiPath, ApiResult, ApiState, Replacement, created, document};
use crate::auth::Caller;

pub(super) fn routes(router: OpenApiRouter<ApiState>) -> OpenApiRouter<ApiState> {
    router
        .routes(routes!(list_users, put_user))
        .routes(routes!(get_user, delete_user))
}

/// The CSV import, which takes a bulk body.
pub(super) fn bulk_routes(router: OpenApiRouter<ApiState>) -> OpenApiRouter<ApiState> {
    router.routes(routes!(import_users))
}

/// A user in a whole configuration document (`PUT /config`).
impl Replacement for UserDraft {
    const REQUIRED: &'static [&'static str] = &["address", "display_name", "attributes"];
    const NAME: &'static str = "directory user";
}

/// Lists directory users.
#[utoipa::path(get, path = "/directory/users", tag = "directory",
    responses((status = 200, body = Vec<UserDraft>)))]
async fn list_users(
    _caller: Caller,
    State(state): State<ApiState>,
) -> ApiResult<Json<Vec<UserDraft>>> {
    Ok(Json(document(&state).await?.users))
}

/// Creates or replaces a directory user (keyed by address).
#[utoipa::path(post, path = "/directory/users", tag = "directory", request_body = UserDraft,
    responses((status = 201, body = UserDraft), (status = 422, body = ApiError)))]
async fn put_user(
    PolicyEditor(caller): PolicyEditor,
    State(state): State<ApiState>,
    ApiJson(user): ApiJson<UserDraft>,
) -> ApiResult<Response> {
    let normalized = sealpost_policy::DirectoryUser::from_draft(&user)?.to_draft();
    state
        .policy
        .change(caller.actor(), ConfigChange::PutUser(user))
        .await?;
    Ok(created(normalized))
}

/// One directory user.
#[utoipa::path(get, path = "/directory/users/{address}", tag = "directory",
    params(("address" = String, Path)),
    responses((status = 200, body = UserDraft), (status = 404, body = ApiError)))]
async fn get_user(
    _caller: Caller,
    State(state): State<ApiState>,
    ApiPath(address): ApiPath<String>,
) -> ApiResult<Json<UserDraft>> {
    let address = EmailAddress::parse(address.trim())
        .map_err(|_| ApiError::not_found(format!("directory user {address} not found")))?;
    state
        .policy
        .snapshot()
        .user(&address)
        .map(|u| Json(u.to_draft()))
        .ok_or_else(|| ApiError::not_found(format!("directory user {address} not found")))
}

/// Deletes a directory user.
#[utoipa::path(delete, path = "/directory/users/{address}", tag = "directory",
    params(("address" = String, Path)),
    responses((status = 204), (status = 404, body = ApiError)))]
async fn delete_user(
    PolicyEditor(caller): PolicyEditor,
    State(state): State<ApiState>,
    ApiPath(address): ApiPath<String>,
) -> ApiResult<StatusCode> {
    state
        .policy
        .change(caller.actor(), ConfigChange::RemoveUser(address))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Serialize, ToSchema)]
struct Imported {
    imported: usize,
}

/// Imports directory users from CSV (`text/csv`): a header row with
/// `address`, optionally `display_name`, and any other columns as
/// attributes. Checked as a whole (one bad row refuses all, nothing is
/// stored), then written in batches of 200 users, each its own short
/// commit, so mail is not held up by a large import.
#[utoipa::path(post, path = "/directory/users/import", tag = "directory",
    request_body(content = String, content_type = "text/csv"),
    responses((status = 200, body = Imported), (status = 422, body = ApiError)))]
async fn import_users(
    PolicyEditor(caller): PolicyEditor,
    State(state): State<ApiState>,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> ApiResult<Json<Imported>> {
    let body = body.map_err(super::extract::body_error)?;
    // Parsed on a blocking thread: a 100,000-row file takes long enough to
    // stall the SMTP sessions sharing this runtime thread.
    let users = tokio::task::spawn_blocking(move || {
        let text = std::str::from_utf8(&body).map_err(|_| {
            ApiError::bad_request("invalid_utf8", "the CSV file is not valid UTF-8")
        })?;
        crate::csv::parse_users(text)
    })
    .await
    .map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("the CSV import stopped: {e}"),
        )
    })??;
    let imported = users.len();
    state
        .policy
        .change(caller.actor(), ConfigChange::ImportUsers(users))
        .await?;
    Ok(Json(Imported { imported }))
}
