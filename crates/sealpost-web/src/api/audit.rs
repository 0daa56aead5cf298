//! `/audit`: the audit log, newest first, filtered and paged (issue 16,
//! item 3). Read by super admins and read-only administrators (auditors);
//! nothing here, or anywhere, edits it.

use axum::{
    Json,
    extract::{Query, State},
};
use sealpost_store::audit::{ActorKind, AuditEntry, AuditQuery};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{ApiError, ApiResult, ApiState, extract::Auditor, messages::parse_time};

pub(super) fn routes(router: OpenApiRouter<ApiState>) -> OpenApiRouter<ApiState> {
    router.routes(routes!(list_audit))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct AuditParams {
    /// RFC 3339: entries at or after.
    since: Option<String>,
    /// RFC 3339: entries before.
    until: Option<String>,
    /// administrator, api_key, cli or system.
    actor_kind: Option<String>,
    /// Part of the actor's name.
    actor: Option<String>,
    /// policy, definition, group, directory_user, directory_users,
    /// internal_domain, configuration, api_key or administrator.
    object_kind: Option<String>,
    object_id: Option<String>,
    /// The `next` of the previous page.
    before: Option<i64>,
    /// 1 to 500; 100 when absent.
    limit: Option<usize>,
}

/// A page of entries.
#[derive(Debug, Serialize, ToSchema)]
struct AuditPage {
    #[schema(value_type = Vec<Object>)]
    entries: Vec<AuditEntry>,
    /// Pass as `before` for the next page; null on the last page.
    next: Option<i64>,
}

fn field_error(field: &str, code: &'static str, message: String) -> ApiError {
    let mut e = ApiError::bad_request(code, message);
    e.field = Some(field.to_owned());
    e
}

/// Reads the audit log (super_admin and read_only).
#[utoipa::path(get, path = "/audit", tag = "audit", params(AuditParams),
    responses((status = 200, body = AuditPage), (status = 400, body = ApiError), (status = 403, body = ApiError)))]
async fn list_audit(
    _: Auditor,
    State(state): State<ApiState>,
    query: Result<Query<AuditParams>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<AuditPage>> {
    let Query(q) = query.map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(field_error(
            "limit",
            "invalid_limit",
            "limit must be from 1 to 500".into(),
        ));
    }
    let actor_kind = match q.actor_kind.as_deref().filter(|k| !k.is_empty()) {
        None => None,
        Some(k) => Some(ActorKind::parse(k).ok_or_else(|| {
            field_error(
                "actor_kind",
                "invalid_actor_kind",
                format!("{k:?}: use administrator, api_key, cli or system"),
            )
        })?),
    };
    let query = AuditQuery {
        since: q
            .since
            .as_deref()
            .map(|t| parse_time("since", t))
            .transpose()?,
        until: q
            .until
            .as_deref()
            .map(|t| parse_time("until", t))
            .transpose()?,
        actor_kind,
        actor: q.actor,
        object_kind: q.object_kind,
        object_id: q.object_id,
        before_id: q.before,
        limit: limit + 1,
    };
    let mut entries = state.admin.audit(query).await?;
    let next = if entries.len() > limit {
        entries.truncate(limit);
        entries.last().map(|e| e.id)
    } else {
        None
    };
    Ok(Json(AuditPage { entries, next }))
}
