//! `/config`: the whole policy configuration as one document, exported or
//! replaced at once. A replacement is checked as a whole (nothing changes
//! if any object is refused) and must carry every section and every field
//! without a safe default, as a `PUT` of one object must.

use super::extract::PolicyEditor;
use axum::{Json, extract::State, http::StatusCode};
use sealpost_policy::PolicyDocument;
use sealpost_store::ConfigChange;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{ApiError, ApiJson, ApiResult, ApiState, Replacement, document};
use crate::auth::Caller;

/// The configuration routes; they take bulk bodies.
pub(super) fn routes(router: OpenApiRouter<ApiState>) -> OpenApiRouter<ApiState> {
    router.routes(routes!(export_config, import_config))
}

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
    PolicyEditor(caller): PolicyEditor,
    State(state): State<ApiState>,
    ApiJson(mut doc): ApiJson<serde_json::Value>,
) -> ApiResult<Json<PolicyDocument>> {
    complete_document(&mut doc)?;
    let doc: PolicyDocument = super::extract::from_value(doc)?;
    state.policy.compile(&doc)?;
    state
        .policy
        .change(caller.actor(), ConfigChange::Replace(doc))
        .await?;
    Ok(Json(document(&state).await?))
}

/// The sections of a whole configuration document. `PUT /config` replaces
/// everything, so each must be present: a section left out would delete
/// every object in it.
const DOCUMENT_SECTIONS: [&str; 5] = [
    "internal_domains",
    "users",
    "groups",
    "definitions",
    "policies",
];

/// Checks a whole configuration document (`PUT /config`) the way
/// [`ApiReplace`] checks one object: every section present, and in every
/// object each field that has no safe default; a nullable field left out
/// becomes null (the document's TOML form cannot write null).
///
/// # Errors
/// A 400 `missing_field` naming the first field left out, e.g.
/// `definitions[2].manual_use`.
pub fn complete_document(document: &mut serde_json::Value) -> Result<(), ApiError> {
    let Some(object) = document.as_object_mut() else {
        return Ok(()); // the parse names the type error
    };
    if let Some(section) = DOCUMENT_SECTIONS.iter().find(|s| !object.contains_key(**s)) {
        return Err(missing(
            section,
            format!(
                "PUT /config replaces the whole configuration, so every section must be \
                 present; a missing `{section}` would delete all of it. Send an empty list \
                 for none"
            ),
        ));
    }
    fn entries<T: Replacement>(
        object: &mut serde_json::Map<String, serde_json::Value>,
        section: &str,
    ) -> Result<(), ApiError> {
        let Some(serde_json::Value::Array(items)) = object.get_mut(section) else {
            return Ok(());
        };
        for (i, item) in items.iter_mut().enumerate() {
            let Some(entry) = item.as_object_mut() else {
                continue;
            };
            for field in T::REQUIRED {
                if entry.contains_key(*field) {
                    continue;
                }
                if T::NULLABLE.contains(field) {
                    entry.insert((*field).to_owned(), serde_json::Value::Null);
                } else {
                    return Err(missing(
                        &format!("{section}[{i}].{field}"),
                        format!(
                            "PUT /config replaces every {}, so each must carry every field; \
                             `{field}` is missing from {section}[{i}] (export the configuration \
                             to see the full form)",
                            T::NAME
                        ),
                    ));
                }
            }
        }
        Ok(())
    }
    entries::<sealpost_policy::UserDraft>(object, "users")?;
    entries::<sealpost_policy::GroupDraft>(object, "groups")?;
    entries::<sealpost_policy::DefinitionDraft>(object, "definitions")?;
    entries::<sealpost_policy::PolicyDraft>(object, "policies")
}

fn missing(field: &str, message: String) -> ApiError {
    ApiError {
        status: StatusCode::BAD_REQUEST,
        code: "missing_field".to_owned(),
        message,
        field: Some(field.to_owned()),
    }
}
