//! `/keys`: online master key rotation (super_admin only; issue 17, item
//! 6). `POST /keys/rotate` adds a master key version (or resumes an
//! unfinished rotation) and re-wraps every message key in the background;
//! `GET /keys/rotation` reports its progress. See
//! [`crate::key_rotation`].

use axum::{Json, extract::State, http::StatusCode};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{ApiError, ApiResult, ApiState, extract::SuperAdmin};
use crate::key_rotation::{RotationError, RotationStatus};

pub(super) fn routes(router: OpenApiRouter<ApiState>) -> OpenApiRouter<ApiState> {
    router.routes(routes!(rotate)).routes(routes!(rotation))
}

impl From<RotationError> for ApiError {
    fn from(e: RotationError) -> Self {
        match e {
            RotationError::Running => {
                ApiError::new(StatusCode::CONFLICT, "rotation_running", e.to_string())
            }
            RotationError::KeysFromEnvironment { .. } => {
                ApiError::new(StatusCode::CONFLICT, "keys_from_environment", e.to_string())
            }
            RotationError::KeyFile { .. } => {
                tracing::error!(error = %e, "key rotation");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "key_file",
                    "the new master key could not be written to vault.master_key_file; nothing changed (see the gateway's log)",
                )
            }
            RotationError::Store(e) => e.into(),
        }
    }
}

/// Adds a master key version, seals new mail with it at once and
/// re-wraps every stored message key in the background; resumes an
/// unfinished rotation instead when message keys are still on an older
/// version (super_admin only). Answers `202` with the progress.
#[utoipa::path(post, path = "/keys/rotate", tag = "keys",
    responses((status = 202, body = RotationStatus), (status = 403, body = ApiError),
        (status = 409, body = ApiError)))]
async fn rotate(
    SuperAdmin(caller): SuperAdmin,
    State(state): State<ApiState>,
) -> ApiResult<(StatusCode, Json<RotationStatus>)> {
    let status = state.keys.start(caller.actor()).await?;
    Ok((StatusCode::ACCEPTED, Json(status)))
}

/// The progress of the current or last key rotation: `state` (idle,
/// running, complete, failed), `version`, `done` of `total` message keys
/// (super_admin only).
#[utoipa::path(get, path = "/keys/rotation", tag = "keys",
    responses((status = 200, body = RotationStatus), (status = 403, body = ApiError)))]
async fn rotation(_: SuperAdmin, State(state): State<ApiState>) -> Json<RotationStatus> {
    Json(state.keys.status())
}
