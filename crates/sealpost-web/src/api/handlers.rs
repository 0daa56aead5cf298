//! The `/api/v1` endpoints of the policy configuration.

use std::{net::IpAddr, time::SystemTime};

use axum::{
    Json,
    body::Bytes,
    extract::{Query, State},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use sealpost_policy::{
    DefinitionDraft, DefinitionEntry, DefinitionId, EmailAddress, Explanation, GroupDraft,
    GroupEntry, GroupId, PolicyDocument, PolicyDraft, PolicyEntry, PolicyId, PolicyStatus,
    PolicyType, UserDraft,
};
use sealpost_store::ConfigChange;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{ApiError, ApiJson, ApiPatch, ApiPath, ApiReplace, ApiState, Caller};

pub(super) fn routes(router: OpenApiRouter<ApiState>) -> OpenApiRouter<ApiState> {
    router
        .routes(routes!(list_internal_domains, add_internal_domain))
        .routes(routes!(remove_internal_domain))
        .routes(routes!(list_users, put_user))
        .routes(routes!(get_user, delete_user))
        .routes(routes!(list_definitions, create_definition))
        .routes(routes!(
            get_definition,
            update_definition,
            patch_definition,
            delete_definition
        ))
        .routes(routes!(list_policies, create_policy))
        .routes(routes!(
            get_policy,
            update_policy,
            patch_policy,
            delete_policy
        ))
        .routes(routes!(policy_test))
        .routes(routes!(list_api_keys))
        .routes(routes!(revoke_api_key))
}

/// The endpoints that take bulk bodies (CSV import, whole configuration,
/// groups of many addresses), under a larger body limit.
pub(super) fn bulk_routes(router: OpenApiRouter<ApiState>) -> OpenApiRouter<ApiState> {
    router
        .routes(routes!(import_users))
        .routes(routes!(list_groups, create_group))
        .routes(routes!(get_group, update_group, patch_group, delete_group))
        .routes(routes!(export_config, import_config))
}

type ApiResult<T> = Result<T, ApiError>;

async fn document(state: &ApiState) -> ApiResult<PolicyDocument> {
    Ok(state.admin.load_config().await?)
}

fn created<T: Serialize>(body: T) -> Response {
    (StatusCode::CREATED, Json(body)).into_response()
}

// ---- internal domains ----

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
    caller: Caller,
    State(state): State<ApiState>,
    ApiJson(body): ApiJson<NewInternalDomain>,
) -> ApiResult<Response> {
    caller.require_policy_edit()?;
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
        .change(ConfigChange::AddInternalDomain(pattern.to_string()))
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
    caller: Caller,
    State(state): State<ApiState>,
    ApiPath(domain): ApiPath<String>,
) -> ApiResult<StatusCode> {
    caller.require_policy_edit()?;
    state
        .policy
        .change(ConfigChange::RemoveInternalDomain(domain))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- directory ----

/// Lists directory users.
#[utoipa::path(get, path = "/directory/users", tag = "directory",
    responses((status = 200, body = Vec<UserDraft>)))]
async fn list_users(
    _caller: Caller,
    State(state): State<ApiState>,
) -> ApiResult<Json<Vec<UserDraft>>> {
    Ok(Json(document(&state).await?.users))
}

/// Creates or replaces a directory user (keyed by address).
#[utoipa::path(post, path = "/directory/users", tag = "directory", request_body = UserDraft,
    responses((status = 201, body = UserDraft), (status = 422, body = ApiError)))]
async fn put_user(
    caller: Caller,
    State(state): State<ApiState>,
    ApiJson(user): ApiJson<UserDraft>,
) -> ApiResult<Response> {
    caller.require_policy_edit()?;
    let normalized = sealpost_policy::DirectoryUser::from_draft(&user)?.to_draft();
    state.policy.change(ConfigChange::PutUser(user)).await?;
    Ok(created(normalized))
}

/// One directory user.
#[utoipa::path(get, path = "/directory/users/{address}", tag = "directory",
    params(("address" = String, Path)),
    responses((status = 200, body = UserDraft), (status = 404, body = ApiError)))]
async fn get_user(
    _caller: Caller,
    State(state): State<ApiState>,
    ApiPath(address): ApiPath<String>,
) -> ApiResult<Json<UserDraft>> {
    let address = EmailAddress::parse(address.trim())
        .map_err(|_| ApiError::not_found(format!("directory user {address} not found")))?;
    state
        .policy
        .snapshot()
        .user(&address)
        .map(|u| Json(u.to_draft()))
        .ok_or_else(|| ApiError::not_found(format!("directory user {address} not found")))
}

/// Deletes a directory user.
#[utoipa::path(delete, path = "/directory/users/{address}", tag = "directory",
    params(("address" = String, Path)),
    responses((status = 204), (status = 404, body = ApiError)))]
async fn delete_user(
    caller: Caller,
    State(state): State<ApiState>,
    ApiPath(address): ApiPath<String>,
) -> ApiResult<StatusCode> {
    caller.require_policy_edit()?;
    state
        .policy
        .change(ConfigChange::RemoveUser(address))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Serialize, ToSchema)]
struct Imported {
    imported: usize,
}

/// Imports directory users from CSV (`text/csv`): a header row with
/// `address`, optionally `display_name`, and any other columns as
/// attributes. One commit: all rows or none.
#[utoipa::path(post, path = "/directory/users/import", tag = "directory",
    request_body(content = String, content_type = "text/csv"),
    responses((status = 200, body = Imported), (status = 422, body = ApiError)))]
async fn import_users(
    caller: Caller,
    State(state): State<ApiState>,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> ApiResult<Json<Imported>> {
    caller.require_policy_edit()?;
    let body = body.map_err(super::body_error)?;
    let text = std::str::from_utf8(&body)
        .map_err(|_| ApiError::bad_request("invalid_utf8", "the CSV file is not valid UTF-8"))?;
    let users = crate::csv::parse_users(text)?;
    let imported = users.len();
    state
        .policy
        .change(ConfigChange::ImportUsers(users))
        .await?;
    Ok(Json(Imported { imported }))
}

// ---- groups ----

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
    caller: Caller,
    State(state): State<ApiState>,
    ApiJson(group): ApiJson<GroupDraft>,
) -> ApiResult<Response> {
    caller.require_policy_edit()?;
    let id = state
        .policy
        .change(ConfigChange::CreateGroup(group.clone()))
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
    caller: Caller,
    State(state): State<ApiState>,
    ApiPath(id): ApiPath<i64>,
    ApiReplace(group): ApiReplace<GroupDraft>,
) -> ApiResult<Json<GroupEntry>> {
    caller.require_policy_edit()?;
    state
        .policy
        .change(ConfigChange::UpdateGroup(GroupId(id), group.clone()))
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
    caller: Caller,
    State(state): State<ApiState>,
    ApiPath(id): ApiPath<i64>,
    patch: ApiPatch,
) -> ApiResult<Json<GroupEntry>> {
    caller.require_policy_edit()?;
    let (_, entry) = state
        .policy
        .change_with(move |document| {
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
    caller: Caller,
    State(state): State<ApiState>,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<StatusCode> {
    caller.require_policy_edit()?;
    state
        .policy
        .change(ConfigChange::RemoveGroup(GroupId(id)))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- definitions ----

/// Lists Secure Messaging definitions.
#[utoipa::path(get, path = "/definitions", tag = "definitions",
    responses((status = 200, body = Vec<DefinitionEntry>)))]
async fn list_definitions(
    _caller: Caller,
    State(state): State<ApiState>,
) -> ApiResult<Json<Vec<DefinitionEntry>>> {
    Ok(Json(document(&state).await?.definitions))
}

/// Creates a Secure Messaging definition.
#[utoipa::path(post, path = "/definitions", tag = "definitions", request_body = DefinitionDraft,
    responses((status = 201, body = DefinitionEntry), (status = 422, body = ApiError)))]
async fn create_definition(
    caller: Caller,
    State(state): State<ApiState>,
    ApiJson(definition): ApiJson<DefinitionDraft>,
) -> ApiResult<Response> {
    caller.require_policy_edit()?;
    let id = state
        .policy
        .change(ConfigChange::CreateDefinition(definition.clone()))
        .await?
        .unwrap_or_default();
    Ok(created(DefinitionEntry {
        id: DefinitionId(id),
        is_default: false,
        definition,
    }))
}

/// One Secure Messaging definition.
#[utoipa::path(get, path = "/definitions/{id}", tag = "definitions", params(("id" = i64, Path)),
    responses((status = 200, body = DefinitionEntry), (status = 404, body = ApiError)))]
async fn get_definition(
    _caller: Caller,
    State(state): State<ApiState>,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<DefinitionEntry>> {
    document(&state)
        .await?
        .definitions
        .into_iter()
        .find(|d| d.id.0 == id)
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("definition {id} not found")))
}

/// Replaces a Secure Messaging definition. Every field is required (a
/// missing one is refused, never defaulted); PATCH changes some fields.
#[utoipa::path(put, path = "/definitions/{id}", tag = "definitions", params(("id" = i64, Path)),
    request_body = DefinitionDraft,
    responses((status = 200, body = DefinitionEntry), (status = 400, body = ApiError), (status = 404, body = ApiError), (status = 422, body = ApiError)))]
async fn update_definition(
    caller: Caller,
    State(state): State<ApiState>,
    ApiPath(id): ApiPath<i64>,
    ApiReplace(definition): ApiReplace<DefinitionDraft>,
) -> ApiResult<Json<DefinitionEntry>> {
    caller.require_policy_edit()?;
    state
        .policy
        .change(ConfigChange::UpdateDefinition(
            DefinitionId(id),
            definition.clone(),
        ))
        .await?;
    let is_default = state
        .policy
        .snapshot()
        .definition(DefinitionId(id))
        .is_some_and(|d| d.is_default);
    Ok(Json(DefinitionEntry {
        id: DefinitionId(id),
        is_default,
        definition,
    }))
}

/// Changes some fields of a Secure Messaging definition: the body is a
/// merge patch (`{"expiry_days": 14}`) applied to the stored definition.
#[utoipa::path(patch, path = "/definitions/{id}", tag = "definitions", params(("id" = i64, Path)),
    request_body(content = Object, content_type = "application/merge-patch+json"),
    responses((status = 200, body = DefinitionEntry), (status = 400, body = ApiError), (status = 404, body = ApiError), (status = 422, body = ApiError)))]
async fn patch_definition(
    caller: Caller,
    State(state): State<ApiState>,
    ApiPath(id): ApiPath<i64>,
    patch: ApiPatch,
) -> ApiResult<Json<DefinitionEntry>> {
    caller.require_policy_edit()?;
    let (_, entry) = state
        .policy
        .change_with(move |document| {
            let current = document
                .definitions
                .iter()
                .find(|d| d.id.0 == id)
                .ok_or_else(|| ApiError::not_found(format!("definition {id} not found")))?;
            let definition: DefinitionDraft = patch.apply(&current.definition, &[])?;
            let entry = DefinitionEntry {
                id: current.id,
                is_default: current.is_default,
                definition: definition.clone(),
            };
            Ok((
                ConfigChange::UpdateDefinition(current.id, definition),
                entry,
            ))
        })
        .await?;
    Ok(Json(entry))
}

/// Deletes a Secure Messaging definition (never the default, and not
/// while a policy applies it).
#[utoipa::path(delete, path = "/definitions/{id}", tag = "definitions", params(("id" = i64, Path)),
    responses((status = 204), (status = 404, body = ApiError), (status = 422, body = ApiError)))]
async fn delete_definition(
    caller: Caller,
    State(state): State<ApiState>,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<StatusCode> {
    caller.require_policy_edit()?;
    state
        .policy
        .change(ConfigChange::RemoveDefinition(DefinitionId(id)))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- policies ----

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
    caller: Caller,
    State(state): State<ApiState>,
    ApiJson(policy): ApiJson<PolicyDraft>,
) -> ApiResult<Response> {
    caller.require_policy_edit()?;
    // Field checks first, so a bad policy is refused with its own field
    // names before any reference is looked up.
    sealpost_policy::Policy::from_draft(PolicyId(0), &policy)?;
    let id = state
        .policy
        .change(ConfigChange::CreatePolicy(policy.clone()))
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
    caller: Caller,
    State(state): State<ApiState>,
    ApiPath(id): ApiPath<i64>,
    ApiReplace(policy): ApiReplace<PolicyDraft>,
) -> ApiResult<Json<PolicyView>> {
    caller.require_policy_edit()?;
    sealpost_policy::Policy::from_draft(PolicyId(id), &policy)?;
    state
        .policy
        .change(ConfigChange::UpdatePolicy(PolicyId(id), policy.clone()))
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
    caller: Caller,
    State(state): State<ApiState>,
    ApiPath(id): ApiPath<i64>,
    patch: ApiPatch,
) -> ApiResult<Json<PolicyView>> {
    caller.require_policy_edit()?;
    let (_, policy) = state
        .policy
        .change_with(move |document| {
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
    caller: Caller,
    State(state): State<ApiState>,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<StatusCode> {
    caller.require_policy_edit()?;
    state
        .policy
        .change(ConfigChange::RemovePolicy(PolicyId(id)))
        .await?;
    Ok(StatusCode::NO_CONTENT)
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

// ---- API keys ----

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

fn rfc3339(t: SystemTime) -> String {
    sealpost_store::rfc3339(t)
}

/// Lists API keys (super_admin only).
#[utoipa::path(get, path = "/api-keys", tag = "api-keys",
    responses((status = 200, body = Vec<ApiKeyView>), (status = 403, body = ApiError)))]
async fn list_api_keys(
    caller: Caller,
    State(state): State<ApiState>,
) -> ApiResult<Json<Vec<ApiKeyView>>> {
    caller.require_super_admin()?;
    let keys = state.admin.list_api_keys().await?;
    Ok(Json(
        keys.into_iter()
            .map(|k| ApiKeyView {
                id: k.id,
                role: k.role.as_str().to_owned(),
                name: k.name,
                created_at: rfc3339(k.created_at),
                last_used_at: k.last_used_at.map(rfc3339),
            })
            .collect(),
    ))
}

/// Revokes an API key at once (super_admin only).
#[utoipa::path(delete, path = "/api-keys/{id}", tag = "api-keys", params(("id" = String, Path)),
    responses((status = 204), (status = 403, body = ApiError), (status = 404, body = ApiError)))]
async fn revoke_api_key(
    caller: Caller,
    State(state): State<ApiState>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<StatusCode> {
    caller.require_super_admin()?;
    if state.admin.revoke_api_key(&id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("API key {id} not found")))
    }
}

// ---- the whole configuration ----

/// Exports the whole policy configuration as one document.
#[utoipa::path(get, path = "/config", tag = "config",
    responses((status = 200, body = PolicyDocument)))]
async fn export_config(
    _caller: Caller,
    State(state): State<ApiState>,
) -> ApiResult<Json<PolicyDocument>> {
    Ok(Json(document(&state).await?))
}

/// Replaces the whole policy configuration with a document (as exported).
/// Validated as a whole; nothing changes if any object is refused. Every
/// section and every field without a safe default must be present (a
/// nullable one left out is null), as for a `PUT` of one object.
#[utoipa::path(put, path = "/config", tag = "config", request_body = PolicyDocument,
    responses((status = 200, body = PolicyDocument), (status = 400, body = ApiError), (status = 422, body = ApiError)))]
async fn import_config(
    caller: Caller,
    State(state): State<ApiState>,
    ApiJson(mut doc): ApiJson<serde_json::Value>,
) -> ApiResult<Json<PolicyDocument>> {
    caller.require_policy_edit()?;
    super::complete_document(&mut doc)?;
    let doc: PolicyDocument = super::from_value(doc)?;
    state.policy.compile(&doc)?;
    state.policy.change(ConfigChange::Replace(doc)).await?;
    Ok(Json(document(&state).await?))
}
