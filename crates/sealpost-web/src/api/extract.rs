//! The extractors that shape the API's errors: a path parameter, a JSON
//! body (field at fault named), a PUT body that must carry every field
//! without a safe default, a PATCH body (JSON merge patch), and the API key
//! of the caller. Each refuses with an [`ApiError`], never axum's own text.

use axum::{
    body::Bytes,
    extract::{FromRequest, FromRequestParts, Request, rejection::BytesRejection},
    http::{StatusCode, header, request::Parts},
};
use serde::{Serialize, de::DeserializeOwned};

use super::{ApiError, ApiState, MAX_BULK_BODY, MAX_JSON_BODY};
use crate::auth::{Caller, api_key};

impl FromRequestParts<ApiState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, ApiError> {
        let authorization = parts.headers.get(header::AUTHORIZATION);
        let mut caller = api_key::authenticate(&state.admin, authorization).await?;
        caller.client_ip = parts
            .extensions
            .get::<axum::extract::ConnectInfo<crate::portal::listener::Peer>>()
            .map(|c| c.0.0.ip());
        Ok(caller)
    }
}

/// Callers of a role rule, refused with 403 while the request's head is
/// read, before its body is: a denied request never gets as far as a body
/// error, and the handler cannot forget the check. Each wraps the
/// authenticated [`Caller`].
macro_rules! role_extractor {
    ($(#[$doc:meta])* $name:ident, $check:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone)]
        // Some handlers need only the check, not the caller.
        #[allow(dead_code)]
        pub struct $name(pub Caller);

        impl FromRequestParts<ApiState> for $name {
            type Rejection = ApiError;

            async fn from_request_parts(
                parts: &mut Parts,
                state: &ApiState,
            ) -> Result<Self, ApiError> {
                let caller = Caller::from_request_parts(parts, state).await?;
                caller.$check()?;
                Ok($name(caller))
            }
        }
    };
}

role_extractor!(
    /// May change the policy configuration (super_admin, policy_admin).
    PolicyEditor,
    require_policy_edit
);
role_extractor!(
    /// May recall messages and change their expiry (super_admin,
    /// tracking_admin).
    MessageEditor,
    require_message_edit
);
role_extractor!(
    /// May retry, bounce and delete queued recipients (super_admin,
    /// tracking_admin).
    QueueOperator,
    require_queue_action
);
role_extractor!(
    /// A super admin (API keys).
    SuperAdmin,
    require_super_admin
);
role_extractor!(
    /// May read the audit log (super_admin, read_only).
    Auditor,
    require_audit_read
);

/// A path parameter, with a JSON error when it does not parse.
#[derive(Debug)]
pub struct ApiPath<T>(pub T);

impl<T, S> axum::extract::FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(v)| ApiPath(v))
            .map_err(|e| ApiError::bad_request("invalid_path", e.body_text()))
    }
}

/// A JSON body, parsed with the path of any bad field reported.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let json_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                let mime = v.split(';').next().unwrap_or("").trim();
                mime.eq_ignore_ascii_case("application/json")
            });
        if !json_type {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as Content-Type: application/json",
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(body_error)?;
        parse_json(&bytes).map(ApiJson)
    }
}

pub(crate) fn body_error(e: BytesRejection) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!(
                "the body is too large (limits: {MAX_JSON_BODY} bytes; {MAX_BULK_BODY} for imports, groups and /config)"
            ),
        )
    } else {
        ApiError::bad_request("bad_body", e.body_text())
    }
}

/// A type whose PUT is a full replacement: the body must carry each field
/// that has no safe default, since filling one in would silently change
/// what the administrator did not mean to change (a definition's
/// `manual_use`, a policy's `enabled` or source IP ranges, a group's
/// members). Partial updates are PATCH ([`ApiPatch`]).
pub trait Replacement: DeserializeOwned {
    /// The top-level fields a PUT must carry.
    const REQUIRED: &'static [&'static str];
    /// Those of [`REQUIRED`](Self::REQUIRED) that may be null. In a whole
    /// configuration document (`PUT /config`) one left out is null, since
    /// the TOML an export is kept in has no null.
    const NULLABLE: &'static [&'static str] = &[];
    /// What the type is called in messages ("definition").
    const NAME: &'static str;
}

/// A PUT body: JSON carrying every field [`Replacement::REQUIRED`] names
/// (`null` where a field may be empty); a missing one is a 400
/// `missing_field` naming it, never a default.
#[derive(Debug)]
pub struct ApiReplace<T>(pub T);

impl<T: Replacement, S: Send + Sync> FromRequest<S> for ApiReplace<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let ApiJson(value) = ApiJson::<serde_json::Value>::from_request(req, state).await?;
        let missing: Vec<&str> = match value.as_object() {
            Some(object) => T::REQUIRED
                .iter()
                .copied()
                .filter(|f| !object.contains_key(*f))
                .collect(),
            None => Vec::new(),
        };
        if let Some(first) = missing.first() {
            return Err(ApiError {
                status: StatusCode::BAD_REQUEST,
                code: "missing_field".to_owned(),
                message: format!(
                    "PUT replaces the whole {}, so it must carry every field; missing: {}. \
                     Send the full object (as GET shows it, without the read-only `id`, \
                     `is_default` and `status`; null where a field may be empty), or use \
                     PATCH to change only some fields",
                    T::NAME,
                    missing.join(", ")
                ),
                field: Some((*first).to_owned()),
            });
        }
        from_value(value).map(ApiReplace)
    }
}

/// A PATCH body: a JSON merge patch (RFC 7396), sent as
/// `application/merge-patch+json` or `application/json`. Members replace
/// those of the stored object and nested objects merge; unlike RFC 7396,
/// `null` sets a field to null (its meaning for nullable fields such as
/// `expiry_days`, "never") instead of removing it, since every field of
/// these objects is always present.
#[derive(Debug)]
pub struct ApiPatch(pub serde_json::Map<String, serde_json::Value>);

impl<S: Send + Sync> FromRequest<S> for ApiPatch {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let patch_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                let mime = v.split(';').next().unwrap_or("").trim();
                mime.eq_ignore_ascii_case("application/merge-patch+json")
                    || mime.eq_ignore_ascii_case("application/json")
            });
        if !patch_type {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the patch as Content-Type: application/merge-patch+json (RFC 7396)",
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(body_error)?;
        match parse_json::<serde_json::Value>(&bytes)? {
            serde_json::Value::Object(map) => Ok(ApiPatch(map)),
            _ => Err(ApiError::bad_request(
                "invalid_patch",
                "a merge patch is a JSON object of the fields to change",
            )),
        }
    }
}

impl ApiPatch {
    /// Applies the patch to `current` and parses the result as `T`,
    /// naming the field at fault. The members named in `whole` are
    /// replaced, not merged: a policy's condition (`from`, `to`) is one
    /// choice, and merging one kind into another would leave the old
    /// kind's fields behind.
    ///
    /// # Errors
    /// A 400 when the patched object is not a valid `T`.
    pub fn apply<C: Serialize, T: DeserializeOwned>(
        &self,
        current: &C,
        whole: &[&str],
    ) -> Result<T, ApiError> {
        let mut target = serde_json::to_value(current).map_err(|e| {
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
        })?;
        if let serde_json::Value::Object(object) = &mut target {
            for key in whole {
                if let Some(value) = self.0.get(*key) {
                    object.insert((*key).to_owned(), value.clone());
                }
            }
        }
        merge_patch(&mut target, &serde_json::Value::Object(self.0.clone()));
        from_value(target)
    }
}

/// Merges `patch` into `target` as RFC 7396 §2 does, except that a `null`
/// member is set rather than removed (see [`ApiPatch`]).
fn merge_patch(target: &mut serde_json::Value, patch: &serde_json::Value) {
    match (target, patch) {
        (serde_json::Value::Object(object), serde_json::Value::Object(patch)) => {
            for (key, value) in patch {
                match object.get_mut(key) {
                    Some(member) => merge_patch(member, value),
                    None => {
                        object.insert(key.clone(), value.clone());
                    }
                }
            }
        }
        (target, patch) => *target = patch.clone(),
    }
}

/// Parses a JSON value as `T`, naming the field at fault.
pub(crate) fn from_value<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, ApiError> {
    let bytes = serde_json::to_vec(&value)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?;
    parse_json(&bytes)
}

/// Parses JSON, naming the field at fault.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let code = if inner.is_syntax() || inner.is_eof() {
            "malformed_json"
        } else {
            "invalid_field"
        };
        ApiError {
            status: StatusCode::BAD_REQUEST,
            code: code.to_owned(),
            message: inner.to_string(),
            field: (path != ".").then_some(path),
        }
    })?;
    de.end()
        .map_err(|e| ApiError::bad_request("malformed_json", e.to_string()))?;
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn patched<C: Serialize>(
        current: &C,
        patch: serde_json::Value,
        whole: &[&str],
    ) -> serde_json::Value {
        let serde_json::Value::Object(map) = patch else {
            panic!("an object")
        };
        ApiPatch(map)
            .apply::<C, serde_json::Value>(current, whole)
            .unwrap()
    }

    #[test]
    fn a_patch_merges_objects_sets_nulls_and_replaces_whole_members() {
        let current = json!({"a": 1, "b": {"x": 1, "y": 2}, "c": [1, 2], "d": 5});
        assert_eq!(
            patched(
                &current,
                json!({"a": 2, "b": {"y": 3}, "c": [3], "d": null}),
                &[]
            ),
            json!({"a": 2, "b": {"x": 1, "y": 3}, "c": [3], "d": null})
        );
        assert_eq!(
            patched(&current, json!({"b": {"y": 3}, "e": true}), &["b"]),
            json!({"a": 1, "b": {"y": 3}, "c": [1, 2], "d": 5, "e": true})
        );
    }

    /// The fields a PUT requires are real fields, so a renamed field
    /// cannot make every PUT fail.
    #[test]
    fn required_put_fields_exist() {
        fn fields<T: Serialize>(sample: &T) -> Vec<String> {
            serde_json::to_value(sample)
                .unwrap()
                .as_object()
                .unwrap()
                .keys()
                .cloned()
                .collect()
        }
        let definition = fields(&sealpost_policy::DefinitionDraft::default_definition());
        for f in <sealpost_policy::DefinitionDraft as Replacement>::REQUIRED {
            assert!(definition.contains(&f.to_string()), "{f}");
        }
        assert_eq!(
            definition.len(),
            <sealpost_policy::DefinitionDraft as Replacement>::REQUIRED.len(),
            "every definition field is required"
        );
        let policy: sealpost_policy::PolicyDraft = serde_json::from_value(json!({
            "action": "no_action", "from": {"kind": "everyone"}, "to": {"kind": "everyone"},
            "starts_at": "2026-01-01T00:00:00Z", "ends_at": "2027-01-01T00:00:00Z",
        }))
        .unwrap();
        let policy = fields(&policy);
        for f in <sealpost_policy::PolicyDraft as Replacement>::REQUIRED {
            assert!(policy.contains(&f.to_string()), "{f}");
        }
        let group: sealpost_policy::GroupDraft =
            serde_json::from_value(json!({"name": "g"})).unwrap();
        let group = fields(&group);
        for f in <sealpost_policy::GroupDraft as Replacement>::REQUIRED {
            assert!(group.contains(&f.to_string()), "{f}");
        }
    }
}
