//! REST API v1 (`/api/v1`), described by an OpenAPI document generated from
//! the handlers (`GET /api/v1/openapi.json`).
//!
//! Every request is authenticated by an API key ([`auth`]). Bodies are JSON
//! with unknown fields refused; every error is a JSON body with a stable
//! `code`, a `message` and, when one field is at fault, its path in
//! `field`.

pub mod auth;
mod handlers;
mod messages;
mod service;

use axum::{
    Json,
    body::Bytes,
    extract::{FromRequest, Request, rejection::BytesRejection},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use sealpost_policy::Invalid;
use sealpost_store::{AdminStore, SecureStore, StoreError};
use serde::{Serialize, de::DeserializeOwned};
use std::sync::Arc;
use utoipa::{OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;

pub use auth::{Caller, NewApiKey, generate_api_key};
pub use service::PolicyService;

/// Largest JSON body accepted, in bytes.
pub const MAX_JSON_BODY: usize = 1024 * 1024;
/// Largest bulk body accepted (CSV import, whole configuration, a group),
/// in bytes.
pub const MAX_BULK_BODY: usize = 64 * 1024 * 1024;

/// What API handlers share.
#[derive(Clone)]
pub struct ApiState {
    pub admin: Arc<dyn AdminStore>,
    pub policy: Arc<PolicyService>,
    /// Message tracking, recall and expiry.
    pub secure: Arc<dyn SecureStore>,
    /// `vault.retention`: no expiry may pass received + retention.
    pub retention: std::time::Duration,
}

impl std::fmt::Debug for ApiState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiState").finish_non_exhaustive()
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "sealpost administration API",
        version = "1",
        description = "Secure Messaging policies, definitions, groups, directory and internal domains, and message tracking (recall, expiry)."
    ),
    servers((url = "/api/v1")),
    modifiers(&BearerAuth),
    security(("api_key" = []))
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("An API key from `sealpost apikey create`."))
                    .build(),
            ),
        );
    }
}

/// The `/api/v1` routes and the OpenAPI document describing them.
pub fn router(state: ApiState) -> axum::Router {
    let json = handlers::routes(OpenApiRouter::with_openapi(ApiDoc::openapi()));
    let json = messages::routes(json).layer(axum::extract::DefaultBodyLimit::max(MAX_JSON_BODY));
    let bulk = handlers::bulk_routes(OpenApiRouter::new())
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BULK_BODY));
    let (router, openapi) = json.merge(bulk).split_for_parts();
    let openapi = Arc::new(openapi);
    router
        .route(
            "/openapi.json",
            axum::routing::get(move || {
                let doc = openapi.clone();
                async move { Json(doc.as_ref().clone()) }
            }),
        )
        .fallback(|| async { ApiError::not_found("no such API endpoint") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this endpoint does not take that method",
            )
        })
        .with_state(state)
}

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

/// A path parameter, with a JSON error when it does not parse.
#[derive(Debug)]
pub struct ApiPath<T>(pub T);

impl<T, S> axum::extract::FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(v)| ApiPath(v))
            .map_err(|e| ApiError::bad_request("invalid_path", e.body_text()))
    }
}

/// A JSON body, parsed with the path of any bad field reported.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let json_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                let mime = v.split(';').next().unwrap_or("").trim();
                mime.eq_ignore_ascii_case("application/json")
            });
        if !json_type {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as Content-Type: application/json",
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(body_error)?;
        parse_json(&bytes).map(ApiJson)
    }
}

pub(crate) fn body_error(e: BytesRejection) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!(
                "the body is too large (limits: {MAX_JSON_BODY} bytes; {MAX_BULK_BODY} for imports, groups and /config)"
            ),
        )
    } else {
        ApiError::bad_request("bad_body", e.body_text())
    }
}

/// Parses JSON, naming the field at fault.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let code = if inner.is_syntax() || inner.is_eof() {
            "malformed_json"
        } else {
            "invalid_field"
        };
        ApiError {
            status: StatusCode::BAD_REQUEST,
            code: code.to_owned(),
            message: inner.to_string(),
            field: (path != ".").then_some(path),
        }
    })?;
    de.end()
        .map_err(|e| ApiError::bad_request("malformed_json", e.to_string()))?;
    Ok(value)
}
