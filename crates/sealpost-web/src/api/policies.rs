//! `/policies`: the policies that decide, per recipient, between relay and
//! secure delivery. A change applies from the next message.

use super::extract::PolicyEditor;
use std::time::SystemTime;

use axum::{
    Json,
    extract::{Query, State},
    http::StatusCode,
    response::Response,
};
use sealpost_policy::{PolicyDraft, PolicyEntry, PolicyId, PolicyStatus, PolicyType};
use sealpost_store::ConfigChange;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    ApiError, ApiJson, ApiPatch, ApiPath, ApiReplace, ApiResult, ApiState, Replacement, created,
    document,
};
use crate::auth::Caller;

pub(super) fn routes(router: OpenApiRouter<ApiState>) -> OpenApiRouter<ApiState> {
    router
        .routes(routes!(list_policies, create_policy))
        .routes(routes!(preview_policy))
        .routes(routes!(
            get_policy,
            update_policy,
            patch_policy,
            delete_policy
        ))
}

impl Replacement for PolicyDraft {
    // `type` has one value, `bidirectional` must be false and
    // `definition_id` is checked against `action`: each has a safe default.
    const REQUIRED: &'static [&'static str] = &[
        "narrative",
        "action",
        "from",
        "to",
        "enabled",
        "starts_at",
        "ends_at",
        "override",
        "source_ips",
    ];
    const NULLABLE: &'static [&'static str] = &["starts_at", "ends_at"];
    const NAME: &'static str = "policy";
}

/// A policy with its id and current status.
#[derive(Debug, Serialize, ToSchema)]
struct PolicyView {
    id: PolicyId,
    status: PolicyStatus,
    #[serde(flatten)]
    policy: PolicyDraft,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct PolicyFilter {
    /// Only policies of this type.
    #[serde(rename = "type")]
    policy_type: Option<PolicyType>,
    /// Only policies with this status now.
    status: Option<PolicyStatus>,
}

fn view(entry: PolicyEntry, now: SystemTime) -> ApiResult<PolicyView> {
    let policy = sealpost_policy::Policy::from_draft(entry.id, &entry.policy)?;
    Ok(PolicyView {
        id: entry.id,
        status: policy.status(now),
        policy: entry.policy,
    })
}

/// Lists policies, optionally by type and status.
#[utoipa::path(get, path = "/policies", tag = "policies", params(PolicyFilter),
    responses((status = 200, body = Vec<PolicyView>), (status = 400, body = ApiError)))]
async fn list_policies(
    _caller: Caller,
    State(state): State<ApiState>,
    filter: Result<Query<PolicyFilter>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<Vec<PolicyView>>> {
    let Query(filter) =
        filter.map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))?;
    let now = SystemTime::now();
    let mut out = Vec::new();
    for entry in document(&state).await?.policies {
        let v = view(entry, now)?;
        if filter
            .policy_type
            .is_some_and(|t| t != v.policy.policy_type)
            || filter.status.is_some_and(|s| s != v.status)
        {
            continue;
        }
        out.push(v);
    }
    Ok(Json(out))
}

/// Creates a policy. It applies from the next message.
#[utoipa::path(post, path = "/policies", tag = "policies", request_body = PolicyDraft,
    responses((status = 201, body = PolicyView), (status = 422, body = ApiError)))]
async fn create_policy(
    PolicyEditor(caller): PolicyEditor,
    State(state): State<ApiState>,
    ApiJson(policy): ApiJson<PolicyDraft>,
) -> ApiResult<Response> {
    // Field checks first, so a bad policy is refused with its own field
    // names before any reference is looked up.
    sealpost_policy::Policy::from_draft(PolicyId(0), &policy)?;
    let id = state
        .policy
        .change(caller.actor(), ConfigChange::CreatePolicy(policy.clone()))
        .await?
        .unwrap_or_default();
    Ok(created(view(
        PolicyEntry {
            id: PolicyId(id),
            policy,
        },
        SystemTime::now(),
    )?))
}

/// One policy.
#[utoipa::path(get, path = "/policies/{id}", tag = "policies", params(("id" = i64, Path)),
    responses((status = 200, body = PolicyView), (status = 404, body = ApiError)))]
async fn get_policy(
    _caller: Caller,
    State(state): State<ApiState>,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<PolicyView>> {
    let entry = document(&state)
        .await?
        .policies
        .into_iter()
        .find(|p| p.id.0 == id)
        .ok_or_else(|| ApiError::not_found(format!("policy {id} not found")))?;
    Ok(Json(view(entry, SystemTime::now())?))
}

/// Replaces a policy. The change applies from the next message. Every field
/// but `type`, `bidirectional` and `definition_id` (for `no_action`) is
/// required (`null` for an open date); PATCH changes some fields.
#[utoipa::path(put, path = "/policies/{id}", tag = "policies", params(("id" = i64, Path)),
    request_body = PolicyDraft,
    responses((status = 200, body = PolicyView), (status = 400, body = ApiError), (status = 404, body = ApiError), (status = 422, body = ApiError)))]
async fn update_policy(
    PolicyEditor(caller): PolicyEditor,
    State(state): State<ApiState>,
    ApiPath(id): ApiPath<i64>,
    ApiReplace(policy): ApiReplace<PolicyDraft>,
) -> ApiResult<Json<PolicyView>> {
    sealpost_policy::Policy::from_draft(PolicyId(id), &policy)?;
    state
        .policy
        .change(
            caller.actor(),
            ConfigChange::UpdatePolicy(PolicyId(id), policy.clone()),
        )
        .await?;
    Ok(Json(view(
        PolicyEntry {
            id: PolicyId(id),
            policy,
        },
        SystemTime::now(),
    )?))
}

/// Changes some fields of a policy: the body is a merge patch
/// (`{"enabled": false}`) applied to the stored policy; `from` and `to`
/// are replaced whole. The change applies from the next message.
#[utoipa::path(patch, path = "/policies/{id}", tag = "policies", params(("id" = i64, Path)),
    request_body(content = Object, content_type = "application/merge-patch+json"),
    responses((status = 200, body = PolicyView), (status = 400, body = ApiError), (status = 404, body = ApiError), (status = 422, body = ApiError)))]
async fn patch_policy(
    PolicyEditor(caller): PolicyEditor,
    State(state): State<ApiState>,
    ApiPath(id): ApiPath<i64>,
    patch: ApiPatch,
) -> ApiResult<Json<PolicyView>> {
    let (_, policy) = state
        .policy
        .change_with::<_, ApiError, _>(caller.actor(), move |document| {
            let current = document
                .policies
                .iter()
                .find(|p| p.id.0 == id)
                .ok_or_else(|| ApiError::not_found(format!("policy {id} not found")))?;
            let policy: PolicyDraft = patch.apply(&current.policy, &["from", "to"])?;
            sealpost_policy::Policy::from_draft(current.id, &policy)?;
            Ok((
                ConfigChange::UpdatePolicy(current.id, policy.clone()),
                policy,
            ))
        })
        .await?;
    Ok(Json(view(
        PolicyEntry {
            id: PolicyId(id),
            policy,
        },
        SystemTime::now(),
    )?))
}

/// Deletes a policy.
#[utoipa::path(delete, path = "/policies/{id}", tag = "policies", params(("id" = i64, Path)),
    responses((status = 204), (status = 404, body = ApiError)))]
async fn delete_policy(
    PolicyEditor(caller): PolicyEditor,
    State(state): State<ApiState>,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<StatusCode> {
    state
        .policy
        .change(caller.actor(), ConfigChange::RemovePolicy(PolicyId(id)))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A draft to preview: the policy as it would be saved, and for an edit
/// the policy it replaces.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct PreviewBody {
    policy: PolicyDraft,
    /// The id of the policy being edited; absent for a new policy.
    #[serde(default)]
    replaces: Option<i64>,
    /// Days of accepted mail to replay (1-90, default 7).
    #[serde(default)]
    days: Option<u32>,
    /// Changed recipients to list (0-200, default 20).
    #[serde(default)]
    sample: Option<usize>,
}

/// Previews a draft policy's impact: replays the envelopes of the last
/// `days` days of accepted mail through the policies with the draft
/// applied, and counts the messages and recipients that would change route
/// (relay ↔ secure), by domain, with a sample. Nothing is stored.
#[utoipa::path(post, path = "/policies/preview", tag = "policies", request_body = PreviewBody,
    responses((status = 200, body = crate::impact::Impact), (status = 400, body = ApiError),
        (status = 404, body = ApiError), (status = 422, body = ApiError)))]
async fn preview_policy(
    PolicyEditor(_caller): PolicyEditor,
    State(state): State<ApiState>,
    ApiJson(body): ApiJson<PreviewBody>,
) -> ApiResult<Json<crate::impact::Impact>> {
    use crate::impact::{self, PreviewError, PreviewRequest};
    let days = body.days.unwrap_or(impact::DEFAULT_DAYS);
    if !(1..=impact::MAX_DAYS).contains(&days) {
        return Err(sealpost_policy::Invalid::new(
            "days",
            "out_of_range",
            format!("days must be from 1 to {}", impact::MAX_DAYS),
        )
        .into());
    }
    let sample = body.sample.unwrap_or(impact::DEFAULT_SAMPLE);
    if sample > 200 {
        return Err(sealpost_policy::Invalid::new(
            "sample",
            "out_of_range",
            "sample must be at most 200",
        )
        .into());
    }
    let request = PreviewRequest {
        draft: body.policy,
        replaces: body.replaces.map(PolicyId),
        days,
        sample,
    };
    match impact::preview(&state.policy, state.admin.as_ref(), request).await {
        Ok(found) => Ok(Json(found)),
        Err(PreviewError::Invalid(e)) => Err(e.within("policy").into()),
        Err(PreviewError::NoSuchPolicy(id)) => {
            Err(ApiError::not_found(format!("policy {id} not found")))
        }
        Err(PreviewError::Store(e)) => Err(e.into()),
    }
}
