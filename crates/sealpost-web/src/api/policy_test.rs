//! `/policy-test`: which policy applies to a message, and why, decided by
//! the live snapshot without sending anything.

use std::{net::IpAddr, time::SystemTime};

use axum::{Json, extract::State};
use sealpost_policy::{EmailAddress, Explanation, Invalid};
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

fn address(field: &str, text: &str) -> Result<EmailAddress, Invalid> {
    EmailAddress::parse(text.trim()).map_err(|e| {
        Invalid::new(
            field,
            "invalid_address",
            format!("{text:?} is not a valid email address: {e}"),
        )
    })
}

/// A test message's fields, parsed: what the API and the console's policy
/// test page both decide on.
#[derive(Debug, Clone)]
pub(crate) struct TestMessage {
    pub(crate) from: Option<EmailAddress>,
    pub(crate) to: EmailAddress,
    pub(crate) header_from: Option<EmailAddress>,
    pub(crate) ip: IpAddr,
    pub(crate) at: SystemTime,
}

impl TestMessage {
    /// Parses the fields as typed; an empty or `<>` sender is the null
    /// sender, no IP is 127.0.0.1, no time is now.
    ///
    /// # Errors
    /// [`Invalid`] naming the field (`from`, `to`, `header_from`, `ip`).
    pub(crate) fn parse(
        from: &str,
        to: &str,
        header_from: Option<&str>,
        ip: Option<&str>,
        at: Option<SystemTime>,
    ) -> Result<Self, Invalid> {
        let from = match from.trim() {
            "" | "<>" => None,
            text => Some(address("from", text)?),
        };
        let to = address("to", to)?;
        let header_from = header_from
            .filter(|h| !h.trim().is_empty())
            .map(|h| address("header_from", h))
            .transpose()?;
        let ip = match ip.map(str::trim).filter(|i| !i.is_empty()) {
            None => IpAddr::from([127, 0, 0, 1]),
            Some(text) => text.parse().map_err(|_| {
                Invalid::new("ip", "invalid_ip", format!("{text:?} is not an IP address"))
            })?,
        };
        Ok(TestMessage {
            from,
            to,
            header_from,
            ip,
            at: at.unwrap_or_else(SystemTime::now),
        })
    }

    /// Every policy's verdict on this message under `set`.
    pub(crate) fn explain(&self, set: &sealpost_policy::PolicySet) -> Explanation {
        sealpost_policy::explain(
            set,
            &sealpost_policy::DecisionInput {
                envelope_from: self.from.as_ref(),
                header_from: self.header_from.as_ref(),
                recipient: &self.to,
                client_ip: self.ip,
                now: self.at,
            },
        )
    }
}

/// Explains which policy applies to a message, and why.
#[utoipa::path(post, path = "/policy-test", tag = "policies", request_body = PolicyTest,
    responses((status = 200, body = Explanation), (status = 422, body = ApiError)))]
async fn policy_test(
    _caller: Caller,
    State(state): State<ApiState>,
    ApiJson(test): ApiJson<PolicyTest>,
) -> ApiResult<Json<Explanation>> {
    let message = TestMessage::parse(
        &test.from,
        &test.to,
        test.header_from.as_deref(),
        test.ip.as_deref(),
        test.at.map(SystemTime::from),
    )?;
    Ok(Json(message.explain(&state.policy.snapshot())))
}
