//! The recipients' portal (SPEC §6): the web side of a notification's
//! link, where a recipient of secure mail signs in, reads and answers.
//!
//! It has a listener of its own (`portal.listen`), never the admin one,
//! and its state ([`PortalState`]) holds only what a recipient may reach:
//! no `AdminStore`, no API keys, nothing of the policy configuration.
//! Pages are rendered on the server from the templates beside this file;
//! every word they show is in [`words`]; every response carries the
//! headers of [`headers`]; no asset comes from another host.

pub mod client;
pub mod headers;
pub mod listener;
pub mod view;
pub mod words;

use std::sync::Arc;

use axum::{
    Router,
    extract::State,
    http::{HeaderValue, StatusCode, header},
    middleware,
    response::{Html, IntoResponse, Redirect, Response},
    routing::get,
};
use minijinja::{AutoEscape, Environment};
use serde::Serialize;

pub use client::{Client, Reach};
use words::Words;

/// How the portal looks and who runs it (`[portal]` branding keys).
#[derive(Debug, Clone)]
pub struct Branding {
    pub product_name: String,
    /// The logo's bytes and content type, read once at start.
    pub logo: Option<(Vec<u8>, &'static str)>,
    /// `#rrggbb`, checked by the configuration.
    pub accent_color: String,
    pub disclaimer: Option<String>,
    pub support_contact: Option<String>,
}

impl Default for Branding {
    fn default() -> Self {
        Branding {
            product_name: "Secure messages".into(),
            logo: None,
            accent_color: "#1d4ed8".into(),
            disclaimer: None,
            support_contact: None,
        }
    }
}

/// What the portal is configured with.
#[derive(Debug, Clone, Default)]
pub struct PortalSettings {
    /// Where recipients reach the portal (`portal.url`), no trailing slash.
    pub url: String,
    pub reach: Reach,
    pub branding: Branding,
}

/// What portal handlers share: only what a recipient may reach.
#[derive(Clone)]
pub struct PortalState {
    inner: Arc<Inner>,
}

struct Inner {
    settings: PortalSettings,
    pages: Environment<'static>,
    /// `:root { --accent: … }`, built once from the branding.
    theme_css: String,
    /// Changes whenever the assets may have: cache-busts `/static/*`.
    asset_version: String,
    words: Words,
}

impl std::fmt::Debug for PortalState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PortalState")
            .field("settings", &self.inner.settings)
            .finish_non_exhaustive()
    }
}

/// The templates, parsed once at start.
const TEMPLATES: [(&str, &str); 3] = [
    ("layout.html", include_str!("templates/layout.html")),
    ("sign_in.html", include_str!("templates/sign_in.html")),
    ("not_found.html", include_str!("templates/not_found.html")),
];

const PORTAL_CSS: &str = include_str!("static/portal.css");

impl PortalState {
    /// Parses the templates and prepares the branded assets.
    ///
    /// # Panics
    /// When a built-in template does not parse: a build defect, caught by
    /// this module's tests.
    pub fn new(settings: PortalSettings) -> Self {
        let mut pages = Environment::new();
        pages.set_auto_escape_callback(|_| AutoEscape::Html);
        pages.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
        for (name, source) in TEMPLATES {
            pages
                .add_template(name, source)
                .unwrap_or_else(|e| panic!("built-in template {name}: {e}"));
        }
        let theme_css = format!(
            ":root {{ --accent: {}; }}\n",
            settings.branding.accent_color
        );
        let asset_version = asset_version(&[
            PORTAL_CSS.as_bytes(),
            theme_css.as_bytes(),
            settings
                .branding
                .logo
                .as_ref()
                .map_or(&[][..], |(bytes, _)| bytes.as_slice()),
        ]);
        PortalState {
            inner: Arc::new(Inner {
                settings,
                pages,
                theme_css,
                asset_version,
                words: Words::ENGLISH,
            }),
        }
    }

    /// Renders a page with the shared values (`t`, `brand`,
    /// `asset_version`) and the page's own.
    fn page(&self, name: &str, status: StatusCode, values: impl Serialize) -> Response {
        let inner = &self.inner;
        let brand = &inner.settings.branding;
        let ctx = minijinja::context! {
            t => inner.words,
            brand => minijinja::context! {
                product_name => brand.product_name,
                has_logo => brand.logo.is_some(),
                disclaimer => brand.disclaimer,
                support_contact => brand.support_contact,
            },
            asset_version => inner.asset_version,
            ..minijinja::Value::from_serialize(values)
        };
        match inner.pages.get_template(name).and_then(|t| t.render(ctx)) {
            Ok(html) => (status, Html(html)).into_response(),
            Err(e) => {
                tracing::error!(page = name, error = %e, "portal page failed to render");
                (StatusCode::INTERNAL_SERVER_ERROR, "Something went wrong.").into_response()
            }
        }
    }
}

/// A short hash of the assets, so their URLs change when they do and they
/// can be cached for long.
fn asset_version(parts: &[&[u8]]) -> String {
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    for part in parts {
        context.update(part);
    }
    context
        .finish()
        .as_ref()
        .iter()
        .take(6)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The portal's routes, without a socket (tests call it directly; the
/// listener adds the client's address).
pub fn router(state: PortalState) -> Router {
    let reach = Arc::new(state.inner.settings.reach.clone());
    Router::new()
        .route("/", get(|| async { Redirect::to("/sign-in") }))
        .route("/sign-in", get(sign_in_page))
        .route("/static/portal.css", get(portal_css))
        .route("/static/theme.css", get(theme_css))
        .route("/static/logo", get(logo))
        .fallback(not_found)
        .with_state(state)
        .layer(middleware::from_fn(headers::secure_headers))
        .layer(middleware::from_fn_with_state(reach, client::identify))
}

#[derive(Serialize)]
struct SignInValues<'a> {
    error: Option<&'a str>,
    email: &'a str,
}

async fn sign_in_page(State(state): State<PortalState>) -> Response {
    state.page(
        "sign_in.html",
        StatusCode::OK,
        SignInValues {
            error: None,
            email: "",
        },
    )
}

async fn not_found(State(state): State<PortalState>) -> Response {
    state.page("not_found.html", StatusCode::NOT_FOUND, ())
}

/// A public, versioned asset: cacheable for a year.
fn asset(content_type: &'static str, body: impl IntoResponse) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    response
}

async fn portal_css() -> Response {
    asset("text/css; charset=utf-8", PORTAL_CSS)
}

async fn theme_css(State(state): State<PortalState>) -> Response {
    asset("text/css; charset=utf-8", state.inner.theme_css.clone())
}

async fn logo(State(state): State<PortalState>) -> Response {
    match &state.inner.settings.branding.logo {
        Some((bytes, content_type)) => asset(content_type, bytes.clone()),
        None => not_found(State(state)).await,
    }
}

#[cfg(test)]
mod tests;
