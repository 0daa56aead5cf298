//! `/definitions`: Secure Messaging definitions (what a recipient may do,
//! expiry, receipts, the notification template) and the preview of a
//! definition's notification.

use super::extract::PolicyEditor;
use axum::{Json, extract::State, http::StatusCode, response::Response};
use sealpost_policy::{DefinitionDraft, DefinitionEntry, DefinitionId, TemplateDraft};
use sealpost_secure::notification::{self, NotificationVars, Rendered};
use sealpost_store::ConfigChange;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    ApiError, ApiJson, ApiPatch, ApiPath, ApiReplace, ApiResult, ApiState, Replacement, created,
    document,
};
use crate::auth::Caller;

pub(super) fn routes(router: OpenApiRouter<ApiState>) -> OpenApiRouter<ApiState> {
    router
        .routes(routes!(list_definitions, create_definition))
        .routes(routes!(
            get_definition,
            update_definition,
            patch_definition,
            delete_definition
        ))
        .routes(routes!(preview_definition))
        .routes(routes!(make_default_definition))
}

impl Replacement for DefinitionDraft {
    const REQUIRED: &'static [&'static str] = &[
        "name",
        "description",
        "allow_reply",
        "allow_reply_all",
        "allow_forward",
        "allow_print",
        "expiry_days",
        "read_receipt",
        "sender_receipt",
        "manual_use",
        "hide_subject",
        "notification_template",
        "delivery",
    ];
    const NULLABLE: &'static [&'static str] = &["expiry_days", "notification_template"];
    const NAME: &'static str = "definition";
}

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
    PolicyEditor(caller): PolicyEditor,
    State(state): State<ApiState>,
    ApiJson(definition): ApiJson<DefinitionDraft>,
) -> ApiResult<Response> {
    let id = state
        .policy
        .change(
            caller.actor(),
            ConfigChange::CreateDefinition(definition.clone()),
        )
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
    PolicyEditor(caller): PolicyEditor,
    State(state): State<ApiState>,
    ApiPath(id): ApiPath<i64>,
    ApiReplace(definition): ApiReplace<DefinitionDraft>,
) -> ApiResult<Json<DefinitionEntry>> {
    state
        .policy
        .change(
            caller.actor(),
            ConfigChange::UpdateDefinition(DefinitionId(id), definition.clone()),
        )
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
    PolicyEditor(caller): PolicyEditor,
    State(state): State<ApiState>,
    ApiPath(id): ApiPath<i64>,
    patch: ApiPatch,
) -> ApiResult<Json<DefinitionEntry>> {
    let (_, entry) = state
        .policy
        .change_with::<_, ApiError, _>(caller.actor(), move |document| {
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
    PolicyEditor(caller): PolicyEditor,
    State(state): State<ApiState>,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<StatusCode> {
    state
        .policy
        .change(
            caller.actor(),
            ConfigChange::RemoveDefinition(DefinitionId(id)),
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A template to try (parts left out come from the definition, then the
/// built-in template).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct PreviewBody {
    template: Option<TemplateDraft>,
}

/// The rendered notification.
#[derive(Debug, Serialize, ToSchema)]
struct PreviewView {
    subject: String,
    text: String,
    html: String,
}

/// Renders a definition's notification template with sample data. A
/// template in the body is tried instead (nothing is saved); template
/// errors are 422 naming the part and line.
#[utoipa::path(post, path = "/definitions/{id}/preview", tag = "definitions", params(("id" = i64, Path)),
    request_body = PreviewBody,
    responses((status = 200, body = PreviewView), (status = 404, body = ApiError), (status = 422, body = ApiError)))]
async fn preview_definition(
    _caller: Caller,
    State(state): State<ApiState>,
    ApiPath(id): ApiPath<i64>,
    body: axum::body::Bytes,
) -> ApiResult<Json<PreviewView>> {
    let body: PreviewBody = if body.iter().all(u8::is_ascii_whitespace) {
        PreviewBody::default()
    } else {
        super::parse_json(&body)?
    };
    let snapshot = state.policy.snapshot();
    let mut definition = snapshot
        .definition(DefinitionId(id))
        .cloned()
        .ok_or_else(|| ApiError::not_found(format!("definition {id} not found")))?;
    if let Some(tried) = body.template {
        let saved = definition
            .settings
            .notification_template
            .take()
            .unwrap_or_default();
        definition.settings.notification_template = Some(TemplateDraft {
            subject: tried.subject.or(saved.subject),
            text: tried.text.or(saved.text),
            html: tried.html.or(saved.html),
        });
    }
    let Rendered {
        subject,
        text,
        html,
    } = render_preview(&definition).map_err(|e| template_error(&e))?;
    Ok(Json(PreviewView {
        subject,
        text,
        html,
    }))
}

/// The notification `definition` sends, rendered with sample values: what
/// the preview endpoint answers and the console's template editor shows.
///
/// # Errors
/// The template's first problem (a part that does not parse or render, a
/// missing portal link), naming the part and line.
pub(crate) fn render_preview(
    definition: &sealpost_policy::Definition,
) -> Result<Rendered, notification::TemplateError> {
    let template = sealpost_secure::plan::template_of(Some(definition));
    let mut vars = NotificationVars::sample();
    vars.definition = definition.name().to_owned();
    if definition.settings.hide_subject {
        vars.subject = notification::HIDDEN_SUBJECT.to_owned();
        vars.subject_hidden = true;
    }
    if definition.settings.expiry_days.is_none() {
        vars = vars.with_expiry(None);
    }
    template
        .check()
        .and_then(|()| notification::render(&template, &vars))
}

/// Makes a Secure Messaging definition the default: the one applied when
/// no other is named (the one before stays, no longer the default).
#[utoipa::path(post, path = "/definitions/{id}/default", tag = "definitions", params(("id" = i64, Path)),
    responses((status = 200, body = DefinitionEntry), (status = 404, body = ApiError)))]
async fn make_default_definition(
    PolicyEditor(caller): PolicyEditor,
    State(state): State<ApiState>,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<DefinitionEntry>> {
    state
        .policy
        .change(
            caller.actor(),
            ConfigChange::MakeDefaultDefinition(DefinitionId(id)),
        )
        .await?;
    let definition = state
        .policy
        .snapshot()
        .definition(DefinitionId(id))
        .map(|d| d.settings.clone())
        .ok_or_else(|| ApiError::not_found(format!("definition {id} not found")))?;
    Ok(Json(DefinitionEntry {
        id: DefinitionId(id),
        is_default: true,
        definition,
    }))
}

/// A template error as the API reports it.
pub(crate) fn template_error(e: &notification::TemplateError) -> ApiError {
    ApiError {
        status: axum::http::StatusCode::UNPROCESSABLE_ENTITY,
        code: "invalid_template".into(),
        message: e.to_string(),
        field: Some(format!("notification_template.{}", e.part)),
    }
}
