//! `/groups`: profile groups of addresses, domains and other groups that
//! policies name. A group may hold many addresses, so its bodies are bulk.

use super::extract::PolicyEditor;
use axum::{Json, extract::State, http::StatusCode, response::Response};
use sealpost_policy::{GroupDraft, GroupEntry, GroupId};
use sealpost_store::ConfigChange;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    ApiError, ApiJson, ApiPatch, ApiPath, ApiReplace, ApiResult, ApiState, Replacement, created,
    document,
};
use crate::auth::Caller;

/// The group routes; they take bulk bodies.
pub(super) fn routes(router: OpenApiRouter<ApiState>) -> OpenApiRouter<ApiState> {
    router
        .routes(routes!(list_groups, create_group))
        .routes(routes!(get_group, update_group, patch_group, delete_group))
}

impl Replacement for GroupDraft {
    const REQUIRED: &'static [&'static str] =
        &["name", "description", "addresses", "domains", "groups"];
    const NAME: &'static str = "group";
}

/// Lists profile groups.
#[utoipa::path(get, path = "/groups", tag = "groups", responses((status = 200, body = Vec<GroupEntry>)))]
async fn list_groups(
    _caller: Caller,
    State(state): State<ApiState>,
) -> ApiResult<Json<Vec<GroupEntry>>> {
    Ok(Json(document(&state).await?.groups))
}

/// Creates a profile group.
#[utoipa::path(post, path = "/groups", tag = "groups", request_body = GroupDraft,
    responses((status = 201, body = GroupEntry), (status = 422, body = ApiError)))]
async fn create_group(
    PolicyEditor(caller): PolicyEditor,
    State(state): State<ApiState>,
    ApiJson(group): ApiJson<GroupDraft>,
) -> ApiResult<Response> {
    let id = state
        .policy
        .change(caller.actor(), ConfigChange::CreateGroup(group.clone()))
        .await?
        .unwrap_or_default();
    Ok(created(GroupEntry {
        id: GroupId(id),
        group,
    }))
}

/// One profile group.
#[utoipa::path(get, path = "/groups/{id}", tag = "groups", params(("id" = i64, Path)),
    responses((status = 200, body = GroupEntry), (status = 404, body = ApiError)))]
async fn get_group(
    _caller: Caller,
    State(state): State<ApiState>,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<GroupEntry>> {
    document(&state)
        .await?
        .groups
        .into_iter()
        .find(|g| g.id.0 == id)
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("group {id} not found")))
}

/// Replaces a profile group. Every field is required (an omitted member
/// list would empty the group); PATCH changes some fields.
#[utoipa::path(put, path = "/groups/{id}", tag = "groups", params(("id" = i64, Path)),
    request_body = GroupDraft,
    responses((status = 200, body = GroupEntry), (status = 400, body = ApiError), (status = 404, body = ApiError), (status = 422, body = ApiError)))]
async fn update_group(
    PolicyEditor(caller): PolicyEditor,
    State(state): State<ApiState>,
    ApiPath(id): ApiPath<i64>,
    ApiReplace(group): ApiReplace<GroupDraft>,
) -> ApiResult<Json<GroupEntry>> {
    state
        .policy
        .change(
            caller.actor(),
            ConfigChange::UpdateGroup(GroupId(id), group.clone()),
        )
        .await?;
    Ok(Json(GroupEntry {
        id: GroupId(id),
        group,
    }))
}

/// Changes some fields of a profile group: the body is a merge patch
/// applied to the stored group (a member list given replaces the list).
#[utoipa::path(patch, path = "/groups/{id}", tag = "groups", params(("id" = i64, Path)),
    request_body(content = Object, content_type = "application/merge-patch+json"),
    responses((status = 200, body = GroupEntry), (status = 400, body = ApiError), (status = 404, body = ApiError), (status = 422, body = ApiError)))]
async fn patch_group(
    PolicyEditor(caller): PolicyEditor,
    State(state): State<ApiState>,
    ApiPath(id): ApiPath<i64>,
    patch: ApiPatch,
) -> ApiResult<Json<GroupEntry>> {
    let (_, entry) = state
        .policy
        .change_with::<_, ApiError, _>(caller.actor(), move |document| {
            let current = document
                .groups
                .iter()
                .find(|g| g.id.0 == id)
                .ok_or_else(|| ApiError::not_found(format!("group {id} not found")))?;
            let group: GroupDraft = patch.apply(&current.group, &[])?;
            let entry = GroupEntry {
                id: current.id,
                group: group.clone(),
            };
            Ok((ConfigChange::UpdateGroup(current.id, group), entry))
        })
        .await?;
    Ok(Json(entry))
}

/// Deletes a profile group (refused while a policy or group uses it).
#[utoipa::path(delete, path = "/groups/{id}", tag = "groups", params(("id" = i64, Path)),
    responses((status = 204), (status = 404, body = ApiError), (status = 422, body = ApiError)))]
async fn delete_group(
    PolicyEditor(caller): PolicyEditor,
    State(state): State<ApiState>,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<StatusCode> {
    state
        .policy
        .change(caller.actor(), ConfigChange::RemoveGroup(GroupId(id)))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
