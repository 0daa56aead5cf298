//! Portal branding (`/console/branding`, issue 16 item 2): every field of
//! the portal's look, the logo uploaded here, stored over the
//! configuration file's values and applied on every node without a
//! restart. Super and policy admins edit (the route table's rule); the
//! others read. The form goes through the API's [`BrandingService`], so
//! a field at fault is named with the API's message, next to the field.

use axum::{
    extract::{Multipart, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Redirect, Response},
};
use sealpost_policy::Invalid;
use sealpost_store::branding::StoredBranding;
use serde::{Deserialize, Serialize};

use super::{ConsoleState, POLICY_EDITORS, SignedIn, home};
use crate::branding::{
    BrandingDraft, BrandingError, LogoChange, MAX_DISCLAIMER, MAX_PRODUCT_NAME, MAX_SUPPORT_CONTACT,
};

/// The form's text fields, as stored or as typed.
#[derive(Debug, Default, Serialize)]
struct Fields {
    product_name: String,
    accent_color: String,
    disclaimer: String,
    support_contact: String,
}

impl Fields {
    fn stored(b: &StoredBranding) -> Self {
        let text = |v: &Option<String>| v.clone().unwrap_or_default();
        Fields {
            product_name: text(&b.product_name),
            accent_color: text(&b.accent_color),
            disclaimer: text(&b.disclaimer),
            support_contact: text(&b.support_contact),
        }
    }
}

impl ConsoleState {
    /// The branding page with `fields` in the form and `error` beside its
    /// field.
    async fn branding_page(
        &self,
        signed_in: &SignedIn,
        status: StatusCode,
        fields: Option<Fields>,
        error: Option<Invalid>,
        saved: bool,
    ) -> Response {
        let record = match self.branding().stored().await {
            Ok(r) => r,
            Err(e) => return self.failed(&e),
        };
        let live = self.branding().live();
        let defaults = live.defaults();
        let effective = crate::branding::resolve(defaults, &record);
        let fields = fields.unwrap_or_else(|| Fields::stored(&record.branding));
        let stored_logo = record
            .branding
            .logo
            .as_ref()
            .map(|l| format!("{}, {} bytes", l.content_type, l.bytes.len()));
        self.page(
            "branding.html",
            status,
            minijinja::context! {
                admin => home::admin_view(&signed_in.admin),
                csrf => signed_in.csrf.as_str(),
                may_edit => POLICY_EDITORS.contains(&signed_in.admin.role),
                fields,
                defaults => minijinja::context! {
                    product_name => defaults.product_name,
                    accent_color => defaults.accent_color,
                    disclaimer => defaults.disclaimer,
                    support_contact => defaults.support_contact,
                    has_logo => defaults.logo.is_some(),
                },
                effective => minijinja::context! {
                    product_name => effective.product_name,
                    accent_color => effective.accent_color,
                    has_logo => effective.logo.is_some(),
                },
                stored_logo,
                version => record.version,
                logo_tag => live.current().tag.clone(),
                error_field => error.as_ref().map(|e| e.field.clone()),
                error => error.map(|e| e.message),
                saved,
                max => minijinja::context! {
                    product_name => MAX_PRODUCT_NAME,
                    disclaimer => MAX_DISCLAIMER,
                    support_contact => MAX_SUPPORT_CONTACT,
                },
            },
        )
    }
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct Saved {
    #[serde(default)]
    saved: Option<String>,
}

/// `GET /console/branding`.
pub(super) async fn page(
    State(state): State<ConsoleState>,
    signed_in: SignedIn,
    axum::extract::Query(saved): axum::extract::Query<Saved>,
) -> Response {
    state
        .branding_page(
            &signed_in,
            StatusCode::OK,
            None,
            None,
            saved.saved.is_some(),
        )
        .await
}

/// `GET /console/branding/logo`: the logo the portal shows now, for the
/// preview (served as the portal serves it).
pub(super) async fn logo(State(state): State<ConsoleState>, _signed_in: SignedIn) -> Response {
    let resolved = state.branding().live().current();
    match &resolved.branding.logo {
        Some((bytes, content_type)) => crate::portal::logo_response(bytes.clone(), content_type),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// What the multipart form carried.
#[derive(Default)]
struct Posted {
    csrf: String,
    fields: Fields,
    upload: Option<Vec<u8>>,
    remove_logo: bool,
}

/// Reads the form; `Err` with the logo's error when the body is too large.
async fn read(mut multipart: Multipart) -> Result<Posted, Invalid> {
    let mut posted = Posted::default();
    let fail = |e: axum::extract::multipart::MultipartError| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Invalid::new(
                "logo",
                "logo_too_large",
                format!(
                    "the upload is too large; a logo is at most {} bytes",
                    crate::branding::logo::MAX_LOGO_BYTES
                ),
            )
        } else {
            Invalid::new(
                "",
                "malformed_form",
                "the form did not arrive whole; send it again",
            )
        }
    };
    while let Some(field) = multipart.next_field().await.map_err(fail)? {
        let name = field.name().unwrap_or_default().to_owned();
        if name == "logo" {
            let bytes = field.bytes().await.map_err(fail)?;
            // A file input left empty still sends an empty part.
            if !bytes.is_empty() {
                posted.upload = Some(bytes.to_vec());
            }
            continue;
        }
        let text = field.text().await.map_err(fail)?;
        match name.as_str() {
            "csrf" => posted.csrf = text,
            "product_name" => posted.fields.product_name = text,
            "accent_color" => posted.fields.accent_color = text,
            "disclaimer" => posted.fields.disclaimer = text,
            "support_contact" => posted.fields.support_contact = text,
            "remove_logo" => posted.remove_logo = true,
            _ => {}
        }
    }
    Ok(posted)
}

/// `POST /console/branding` (super and policy admins).
pub(super) async fn save(
    State(state): State<ConsoleState>,
    signed_in: SignedIn,
    headers: HeaderMap,
    multipart: Multipart,
) -> Response {
    let posted = match read(multipart).await {
        Ok(p) => p,
        Err(invalid) => {
            // Nothing changes; the token is checked before anything would.
            return state
                .branding_page(
                    &signed_in,
                    StatusCode::PAYLOAD_TOO_LARGE,
                    None,
                    Some(invalid),
                    false,
                )
                .await;
        }
    };
    if let Some(refused) = state.refuse_form(&signed_in, &headers, &posted.csrf) {
        return refused;
    }
    let logo = match (posted.upload, posted.remove_logo) {
        (Some(bytes), _) => LogoChange::Replace(bytes),
        (None, true) => LogoChange::Remove,
        (None, false) => LogoChange::Keep,
    };
    let f = &posted.fields;
    let draft = BrandingDraft {
        product_name: Some(f.product_name.clone()),
        accent_color: Some(f.accent_color.clone()),
        disclaimer: Some(f.disclaimer.clone()),
        support_contact: Some(f.support_contact.clone()),
        logo,
    };
    match state.branding().change(draft, signed_in.actor()).await {
        Ok(_) => Redirect::to("/console/branding?saved=1").into_response(),
        Err(BrandingError::Invalid(invalid)) => {
            state
                .branding_page(
                    &signed_in,
                    StatusCode::UNPROCESSABLE_ENTITY,
                    Some(posted.fields),
                    Some(invalid),
                    false,
                )
                .await
        }
        Err(BrandingError::Store(e)) => state.failed(&e),
    }
}
