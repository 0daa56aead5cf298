//! `/policy-test`: which policy applies to a message, and why, decided by
//! the live snapshot without sending anything.

use std::{net::IpAddr, time::SystemTime};

use axum::{Json, extract::State};
use sealpost_policy::{EmailAddress, Explanation};
use serde::Deserialize;
use time::OffsetDateTime;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{ApiError, ApiJson, ApiResult, ApiState};
use crate::auth::Caller;

pub(super) fn routes(router: OpenApiRouter<ApiState>) -> OpenApiRouter<ApiState> {
    router.routes(routes!(policy_test))
}

/// A message to test the policies against.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct PolicyTest {
    /// Envelope sender; empty for the null sender.
    from: String,
    to: String,
    header_from: Option<String>,
    /// Client IP (default 127.0.0.1).
    ip: Option<String>,
    /// When (RFC 3339; default now).
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    at: Option<OffsetDateTime>,
}

fn address(field: &str, text: &str) -> ApiResult<EmailAddress> {
    EmailAddress::parse(text.trim()).map_err(|e| {
        sealpost_policy::Invalid::new(
            field,
            "invalid_address",
            format!("{text:?} is not a valid email address: {e}"),
        )
        .into()
    })
}

/// Explains which policy applies to a message, and why.
#[utoipa::path(post, path = "/policy-test", tag = "policies", request_body = PolicyTest,
    responses((status = 200, body = Explanation), (status = 422, body = ApiError)))]
async fn policy_test(
    _caller: Caller,
    State(state): State<ApiState>,
    ApiJson(test): ApiJson<PolicyTest>,
) -> ApiResult<Json<Explanation>> {
    let from = match test.from.trim() {
        "" | "<>" => None,
        text => Some(address("from", text)?),
    };
    let to = address("to", &test.to)?;
    let header_from = test
        .header_from
        .as_deref()
        .map(|h| address("header_from", h))
        .transpose()?;
    let ip: IpAddr = match test.ip.as_deref() {
        None => IpAddr::from([127, 0, 0, 1]),
        Some(text) => text.trim().parse().map_err(|_| {
            ApiError::from(sealpost_policy::Invalid::new(
                "ip",
                "invalid_ip",
                format!("{text:?} is not an IP address"),
            ))
        })?,
    };
    let now = test
        .at
        .map(SystemTime::from)
        .unwrap_or_else(SystemTime::now);
    let set = state.policy.snapshot();
    Ok(Json(sealpost_policy::explain(
        &set,
        &sealpost_policy::DecisionInput {
            envelope_from: from.as_ref(),
            header_from: header_from.as_ref(),
            recipient: &to,
            client_ip: ip,
            now,
        },
    )))
}
