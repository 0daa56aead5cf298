//! `/internal-domains`: the domains whose addresses count as internal. Those
//! from the configuration file (`domains.internal`) are listed read-only
//! beside those managed here.

use super::extract::PolicyEditor;
use axum::{Json, extract::State, http::StatusCode, response::Response};
use sealpost_store::ConfigChange;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{ApiError, ApiJson, ApiPath, ApiResult, ApiState, created, document};
use crate::auth::Caller;

pub(super) fn routes(router: OpenApiRouter<ApiState>) -> OpenApiRouter<ApiState> {
    router
        .routes(routes!(list_internal_domains, add_internal_domain))
        .routes(routes!(remove_internal_domain))
}

/// An internal domain and where it is configured.
#[derive(Debug, Serialize, ToSchema)]
struct InternalDomain {
    /// `corp.example` or `*.corp.example`.
    domain: String,
    /// `api` (managed here) or `config` (the configuration file's
    /// `domains.internal`; read-only here).
    source: &'static str,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct NewInternalDomain {
    domain: String,
}

/// Lists internal domains.
#[utoipa::path(get, path = "/internal-domains", tag = "internal-domains",
    responses((status = 200, body = Vec<InternalDomain>), (status = 401, body = ApiError)))]
async fn list_internal_domains(
    _caller: Caller,
    State(state): State<ApiState>,
) -> ApiResult<Json<Vec<InternalDomain>>> {
    let mut list: Vec<InternalDomain> = state
        .policy
        .file_domains()
        .iter()
        .map(|d| InternalDomain {
            domain: d.to_string(),
            source: "config",
        })
        .collect();
    list.extend(
        document(&state)
            .await?
            .internal_domains
            .into_iter()
            .map(|d| InternalDomain {
                domain: d,
                source: "api",
            }),
    );
    Ok(Json(list))
}

/// Adds an internal domain.
#[utoipa::path(post, path = "/internal-domains", tag = "internal-domains",
    request_body = NewInternalDomain,
    responses((status = 201, body = InternalDomain), (status = 422, body = ApiError)))]
async fn add_internal_domain(
    PolicyEditor(caller): PolicyEditor,
    State(state): State<ApiState>,
    ApiJson(body): ApiJson<NewInternalDomain>,
) -> ApiResult<Response> {
    let pattern = sealpost_policy::DomainPattern::parse(&body.domain).map_err(|e| {
        ApiError::from(sealpost_policy::Invalid::new(
            "domain",
            "invalid_domain",
            format!(
                "{:?} is not a valid domain or *.domain pattern: {e}",
                body.domain
            ),
        ))
    })?;
    state
        .policy
        .change(
            caller.actor(),
            ConfigChange::AddInternalDomain(pattern.to_string()),
        )
        .await?;
    Ok(created(InternalDomain {
        domain: pattern.to_string(),
        source: "api",
    }))
}

/// Removes an internal domain managed through the API.
#[utoipa::path(delete, path = "/internal-domains/{domain}", tag = "internal-domains",
    params(("domain" = String, Path, description = "The domain or *.domain pattern")),
    responses((status = 204), (status = 404, body = ApiError)))]
async fn remove_internal_domain(
    PolicyEditor(caller): PolicyEditor,
    State(state): State<ApiState>,
    ApiPath(domain): ApiPath<String>,
) -> ApiResult<StatusCode> {
    state
        .policy
        .change(caller.actor(), ConfigChange::RemoveInternalDomain(domain))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
