//! The API's one error type and its wire form: a status, a stable `code`,
//! a `message` and the `field` at fault, as JSON. Every refusal from below
//! (an invalid object, the store, an API key, a role) becomes one here, and
//! a store failure's cause goes to the log, never to the client.

use axum::{
    Json,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use sealpost_policy::Invalid;
use sealpost_store::StoreError;
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::api_key::{Forbidden, KeyRefused};

/// An API error: status, stable code, message, offending field.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ApiError {
    #[serde(skip)]
    pub status: StatusCode,
    /// Stable, machine-readable: branch on this, not on `message`.
    pub code: String,
    pub message: String,
    /// The path of the field at fault, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code: code.to_owned(),
            message: message.into(),
            field: None,
        }
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }
    pub fn bad_request(code: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }
}

impl From<Invalid> for ApiError {
    fn from(e: Invalid) -> Self {
        ApiError {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: e.code.to_owned(),
            message: e.message,
            field: (!e.field.is_empty()).then_some(e.field),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Rejected(invalid) => invalid.into(),
            StoreError::NoSuch(what) => ApiError::not_found(format!("{what} not found")),
            StoreError::NotFound(id) => ApiError::not_found(format!("message {id} not found")),
            StoreError::Refused(why) => ApiError::new(StatusCode::CONFLICT, "refused", why),
            other => {
                tracing::error!(error = %other, "API request failed in the store");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "store_unavailable",
                    "the database is unavailable; try again",
                )
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status;
        let mut response = (status, Json(self)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}

impl From<KeyRefused> for ApiError {
    fn from(e: KeyRefused) -> Self {
        match e {
            KeyRefused::Store(e) => e.into(),
            other => ApiError::unauthorized(other.message()),
        }
    }
}

impl From<Forbidden> for ApiError {
    fn from(Forbidden(message): Forbidden) -> Self {
        ApiError::forbidden(message)
    }
}
