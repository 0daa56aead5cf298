//! `/branding`: the portal's branding (issue 16, item 2), the values
//! stored over the configuration file's `[portal]` keys. Changes go
//! through the same [`BrandingService`](crate::branding::BrandingService)
//! as the console's form, so both refuse the same input alike; the portal
//! on every node shows a change within a second, without a restart.

use axum::{Json, extract::State};
use base64::Engine;
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{ApiError, ApiJson, ApiResult, ApiState, extract::PolicyEditor};
use crate::{
    auth::Caller,
    branding::{BrandingDraft, BrandingError, LogoChange},
};
use sealpost_store::branding::BrandingRecord;

pub(super) fn routes(router: OpenApiRouter<ApiState>) -> OpenApiRouter<ApiState> {
    router.routes(routes!(get_branding, put_branding))
}

/// A logo, described (its bytes are served by the portal, `/static/logo`).
#[derive(Debug, Serialize, ToSchema)]
struct LogoInfo {
    /// `image/png`, `image/jpeg` or `image/svg+xml` (sniffed from the bytes).
    content_type: String,
    bytes: usize,
}

/// What the portal shows now: the stored values over the file's.
#[derive(Debug, Serialize, ToSchema)]
struct EffectiveBranding {
    product_name: String,
    accent_color: String,
    disclaimer: Option<String>,
    support_contact: Option<String>,
    logo: Option<LogoInfo>,
}

/// The stored branding; each `null` is the configuration file's value.
#[derive(Debug, Serialize, ToSchema)]
struct BrandingDoc {
    /// Raised by every change (0: never changed here).
    version: u64,
    product_name: Option<String>,
    /// `#rrggbb`.
    accent_color: Option<String>,
    disclaimer: Option<String>,
    support_contact: Option<String>,
    logo: Option<LogoInfo>,
    effective: EffectiveBranding,
}

/// A new branding. Text fields absent, `null` or empty fall back to the
/// configuration file's value.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct BrandingUpdate {
    /// At most 60 characters.
    #[serde(default)]
    product_name: Option<String>,
    /// `#rrggbb`.
    #[serde(default)]
    accent_color: Option<String>,
    /// At most 2000 characters; line breaks kept.
    #[serde(default)]
    disclaimer: Option<String>,
    /// At most 200 characters (an address or a phone number).
    #[serde(default)]
    support_contact: Option<String>,
    /// The logo, base64: a PNG, JPEG or SVG (without script) of at most
    /// 512 KiB. `null` removes the stored logo; absent keeps it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, format = Byte)]
    logo: Option<Option<String>>,
}

/// `Some(None)` for an explicit `null`, so an absent field stays `None`.
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

fn doc(state: &ApiState, record: BrandingRecord) -> BrandingDoc {
    let live = state.branding.live();
    let effective = crate::branding::resolve(live.defaults(), &record);
    let stored = record.branding;
    BrandingDoc {
        version: record.version,
        product_name: stored.product_name,
        accent_color: stored.accent_color,
        disclaimer: stored.disclaimer,
        support_contact: stored.support_contact,
        logo: stored.logo.map(|l| LogoInfo {
            bytes: l.bytes.len(),
            content_type: l.content_type,
        }),
        effective: EffectiveBranding {
            product_name: effective.product_name,
            accent_color: effective.accent_color,
            disclaimer: effective.disclaimer,
            support_contact: effective.support_contact,
            logo: effective.logo.map(|(bytes, content_type)| LogoInfo {
                bytes: bytes.len(),
                content_type: content_type.to_owned(),
            }),
        },
    }
}

impl From<BrandingError> for ApiError {
    fn from(e: BrandingError) -> Self {
        match e {
            BrandingError::Invalid(invalid) => invalid.into(),
            BrandingError::Store(e) => e.into(),
        }
    }
}

/// The portal's branding: what is stored, and what the portal shows.
#[utoipa::path(get, path = "/branding", tag = "branding",
    responses((status = 200, body = BrandingDoc), (status = 401, body = ApiError)))]
async fn get_branding(
    _caller: Caller,
    State(state): State<ApiState>,
) -> ApiResult<Json<BrandingDoc>> {
    let record = state.branding.stored().await?;
    Ok(Json(doc(&state, record)))
}

/// Replaces the portal's branding; the portal shows it within a second,
/// on every node.
#[utoipa::path(put, path = "/branding", tag = "branding",
    request_body = BrandingUpdate,
    responses((status = 200, body = BrandingDoc), (status = 422, body = ApiError),
        (status = 403, body = ApiError)))]
async fn put_branding(
    PolicyEditor(caller): PolicyEditor,
    State(state): State<ApiState>,
    ApiJson(body): ApiJson<BrandingUpdate>,
) -> ApiResult<Json<BrandingDoc>> {
    let logo = match body.logo {
        None => LogoChange::Keep,
        Some(None) => LogoChange::Remove,
        Some(Some(text)) => LogoChange::Replace(
            base64::engine::general_purpose::STANDARD
                .decode(text.trim())
                .map_err(|_| {
                    ApiError::from(sealpost_policy::Invalid::new(
                        "logo",
                        "invalid_base64",
                        "the logo must be the image's bytes in base64",
                    ))
                })?,
        ),
    };
    let draft = BrandingDraft {
        product_name: body.product_name,
        accent_color: body.accent_color,
        disclaimer: body.disclaimer,
        support_contact: body.support_contact,
        logo,
    };
    let record = state.branding.change(draft, caller.actor()).await?;
    Ok(Json(doc(&state, record)))
}
