//! `/api-keys`: listing and revoking API keys (super_admin only). Keys are
//! created by the CLI (`sealpost apikey create`), which alone shows the
//! secret; see [`crate::auth::api_key`].

use super::extract::SuperAdmin;
use axum::{Json, extract::State, http::StatusCode};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{ApiError, ApiPath, ApiResult, ApiState};

pub(super) fn routes(router: OpenApiRouter<ApiState>) -> OpenApiRouter<ApiState> {
    router
        .routes(routes!(list_api_keys))
        .routes(routes!(revoke_api_key))
}

/// An API key as listed (the secret is never shown again).
#[derive(Debug, Serialize, ToSchema)]
struct ApiKeyView {
    id: String,
    role: String,
    name: String,
    /// RFC 3339.
    created_at: String,
    /// RFC 3339, to the minute; absent if never used.
    #[serde(skip_serializing_if = "Option::is_none")]
    last_used_at: Option<String>,
}

/// Lists API keys (super_admin only).
#[utoipa::path(get, path = "/api-keys", tag = "api-keys",
    responses((status = 200, body = Vec<ApiKeyView>), (status = 403, body = ApiError)))]
async fn list_api_keys(
    _: SuperAdmin,
    State(state): State<ApiState>,
) -> ApiResult<Json<Vec<ApiKeyView>>> {
    let keys = state.admin.list_api_keys().await?;
    Ok(Json(
        keys.into_iter()
            .map(|k| ApiKeyView {
                id: k.id,
                role: k.role.as_str().to_owned(),
                name: k.name,
                created_at: sealpost_store::rfc3339(k.created_at),
                last_used_at: k.last_used_at.map(sealpost_store::rfc3339),
            })
            .collect(),
    ))
}

/// Revokes an API key at once (super_admin only).
#[utoipa::path(delete, path = "/api-keys/{id}", tag = "api-keys", params(("id" = String, Path)),
    responses((status = 204), (status = 403, body = ApiError), (status = 404, body = ApiError)))]
async fn revoke_api_key(
    SuperAdmin(caller): SuperAdmin,
    State(state): State<ApiState>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<StatusCode> {
    if state.admin.revoke_api_key(&id, caller.actor()).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("API key {id} not found")))
    }
}
