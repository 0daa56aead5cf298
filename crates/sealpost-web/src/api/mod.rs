//! REST API v1 (`/api/v1`), described by an OpenAPI document generated from
//! the handlers (`GET /api/v1/openapi.json`).
//!
//! Every request is authenticated by an API key ([`crate::auth::api_key`]).
//! Bodies are JSON with unknown fields refused; every error is a JSON body
//! with a stable `code`, a `message` and, when one field is at fault, its
//! path in `field`.
//!
//! # Layout
//! One file per resource, each with its handlers and a `routes` function:
//! [`internal_domains`], [`directory`], [`groups`], [`definitions`],
//! [`policies`], [`policy_test`], [`api_keys`], [`config`] (the whole
//! configuration as one document), [`messages`] (tracking, recall,
//! expiry), [`queue`] (depth, retry now, bounce, delete) and [`branding`]
//! (the portal's). Errors are in [`error`], the extractors that shape them in
//! [`extract`].

mod api_keys;
mod audit;
mod branding;
mod config;
pub(crate) mod definitions;
mod directory;
mod error;
mod extract;
mod groups;
mod internal_domains;
mod keys;
mod messages;
mod policies;
pub(crate) mod policy_test;
pub(crate) mod queue;
mod smtp_accounts;

use axum::{Json, http::StatusCode};
use sealpost_policy::PolicyDocument;
use sealpost_store::{AdminStore, SecureStore};
use std::sync::Arc;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use crate::PolicyService;

pub use config::complete_document;
pub use error::ApiError;
pub use extract::{ApiJson, ApiPatch, ApiPath, ApiReplace, Replacement, parse_json};

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
    /// The relay queue's controls (depth, retry now, bounce, delete).
    pub queue: sealpost_queue::QueueControl,
    /// The portal's branding, shared with the console.
    pub branding: Arc<crate::branding::BrandingService>,
    /// The accounts applications submit mail with.
    pub smtp_accounts: Arc<dyn sealpost_store::smtp_accounts::SmtpAccountStore>,
    /// Online master key rotation (`/keys`).
    pub keys: Arc<crate::key_rotation::KeyRotation>,
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
        description = "Secure Messaging policies, definitions, groups, directory and internal domains, message tracking (recall, expiry), the relay queue (retry now, bounce, delete) and the portal's branding."
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
    let (router, openapi) = routes().split_for_parts();
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

/// Every resource's routes, each under its body limit: most take JSON of
/// ordinary size; the bulk ones (CSV import, whole configuration, groups
/// of many addresses) take up to [`MAX_BULK_BODY`].
fn routes() -> OpenApiRouter<ApiState> {
    let mut json = OpenApiRouter::with_openapi(ApiDoc::openapi());
    for routes in [
        internal_domains::routes,
        directory::routes,
        definitions::routes,
        policies::routes,
        policy_test::routes,
        api_keys::routes,
        audit::routes,
        messages::routes,
        queue::routes,
        branding::routes,
        smtp_accounts::routes,
        keys::routes,
    ] {
        json = routes(json);
    }
    let json = json.layer(axum::extract::DefaultBodyLimit::max(MAX_JSON_BODY));
    let mut bulk = OpenApiRouter::new();
    for routes in [directory::bulk_routes, groups::routes, config::routes] {
        bulk = routes(bulk);
    }
    let bulk = bulk.layer(axum::extract::DefaultBodyLimit::max(MAX_BULK_BODY));
    json.merge(bulk)
}

type ApiResult<T> = Result<T, ApiError>;

/// The stored policy configuration, as one document.
async fn document(state: &ApiState) -> ApiResult<PolicyDocument> {
    Ok(state.admin.load_config().await?)
}

/// A `201 Created` with `body`.
fn created<T: serde::Serialize>(body: T) -> axum::response::Response {
    use axum::response::IntoResponse;
    (StatusCode::CREATED, Json(body)).into_response()
}
