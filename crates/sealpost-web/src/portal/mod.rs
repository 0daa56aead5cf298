//! The recipients' portal (SPEC §6): the web side of a notification's
//! link, where a recipient of secure mail signs in, reads and answers.
//!
//! It has a listener of its own (`portal.listen`), never the admin one,
//! and its state ([`PortalState`]) holds only what a recipient may reach:
//! no `AdminStore`, no API keys, nothing of the policy configuration.
//! Pages are rendered on the server from the templates beside this file;
//! every word they show is in [`words`]; every response carries the
//! headers of [`headers`]; no asset comes from another host.

mod account;
pub mod client;
mod folders;
pub mod headers;
pub mod listener;
pub mod mail;
pub mod message;
mod reply;
mod session;
pub mod view;
pub mod words;

use std::{sync::Arc, time::Duration};

use axum::{
    Router,
    extract::{MatchedPath, Request, State},
    http::{HeaderValue, StatusCode, header},
    middleware::{self, Next},
    response::{Html, IntoResponse, Redirect, Response},
    routing::{get, post},
};
use minijinja::{AutoEscape, Environment};
use sealpost_store::PortalStore;
use serde::Serialize;

use crate::auth::{
    forms::Guard,
    limit::{Backoff, IpRateLimit},
    origin::{BadOrigin, PublicOrigin},
    session::{SessionCookie, Timeouts},
};
pub use crate::branding::Branding;
use crate::branding::LiveBranding;
pub use client::{Client, Reach};
pub use mail::{Outbox, QueueOutbox, SystemMail};
pub use message::{DefinitionLookup, LiveDefinitions, MessageContent, StoreContent};
pub use reply::{OriginalMessage, Originals, Replies, StoreOriginals};
pub use session::RecipientSession;
use words::{MailWords, Words};

/// What the portal is configured with.
#[derive(Debug, Clone)]
pub struct PortalSettings {
    /// Where recipients reach the portal (`portal.url`), no trailing slash.
    pub url: String,
    pub reach: Reach,
    /// The configuration file's branding: what the portal shows unless
    /// administrators stored other values ([`PortalDeps::branding`]).
    pub branding: Branding,
    /// The gateway's host name: system mails come from its postmaster and
    /// it counts against a new password (the organisation's name).
    pub hostname: String,
    /// How long a notification link registers (`portal.registration_link_ttl`).
    pub registration_link_ttl: Duration,
    /// How long a mailed reset link works (`portal.reset_link_ttl`).
    pub reset_link_ttl: Duration,
    /// `portal.session_idle` and `portal.session_absolute`.
    pub sessions: Timeouts,
    /// The per-account lockout schedule.
    pub backoff: Backoff,
    /// `portal.max_upload`: a reply's text and files together, in bytes.
    pub max_upload: u64,
}

impl Default for PortalSettings {
    fn default() -> Self {
        PortalSettings {
            url: "http://localhost:8082".into(),
            reach: Reach::default(),
            branding: Branding::default(),
            hostname: "localhost".into(),
            registration_link_ttl: Duration::from_secs(7 * 86400),
            reset_link_ttl: Duration::from_secs(30 * 60),
            sessions: Timeouts {
                idle: Duration::from_secs(30 * 60),
                absolute: Duration::from_secs(12 * 3600),
            },
            backoff: Backoff::default(),
            max_upload: 25 * 1024 * 1024,
        }
    }
}

/// What the portal's handlers reach beyond their settings: the portal's
/// side of the store (never the `AdminStore`), the outbox for its two
/// system mails, the opening of one message's content and its
/// definition's rules, and the per-client-IP limit on password and link
/// requests.
#[derive(Clone)]
pub struct PortalDeps {
    pub store: Arc<dyn PortalStore>,
    pub outbox: Arc<dyn Outbox>,
    pub rate_limit: Arc<IpRateLimit>,
    /// Opens a message the caller checked is the recipient's.
    pub content: Arc<dyn MessageContent>,
    /// The definition of a (message, recipient) from the live policy, and
    /// the recording of openings with their read receipt.
    pub definitions: Arc<dyn DefinitionLookup>,
    /// The intake and the originals, for replies and forwards.
    pub replies: Replies,
    /// The live branding, shared with the console on this node (it reads
    /// the stored branding, never writes it); `None`: the settings'
    /// branding, fixed.
    pub branding: Option<Arc<LiveBranding>>,
}

impl std::fmt::Debug for PortalDeps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PortalDeps")
            .field("store", &self.store)
            .field("outbox", &self.outbox)
            .finish_non_exhaustive()
    }
}

/// What portal handlers share: only what a recipient may reach.
#[derive(Clone)]
pub struct PortalState {
    inner: Arc<Inner>,
}

struct Inner {
    settings: PortalSettings,
    deps: PortalDeps,
    /// The session cookie for the portal's origin and the form checks.
    guard: Guard,
    mail_words: MailWords,
    pages: Environment<'static>,
    /// The branding to render with, following the store.
    branding: Arc<LiveBranding>,
    /// A hash of the built-in assets; with the branding's tag it
    /// cache-busts `/static/*`.
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
const TEMPLATES: [(&str, &str); 13] = [
    ("layout.html", include_str!("templates/layout.html")),
    ("sign_in.html", include_str!("templates/sign_in.html")),
    ("not_found.html", include_str!("templates/not_found.html")),
    ("notice.html", include_str!("templates/notice.html")),
    ("open.html", include_str!("templates/open.html")),
    ("forgot.html", include_str!("templates/forgot.html")),
    ("reset.html", include_str!("templates/reset.html")),
    ("message.html", include_str!("templates/message.html")),
    ("print.html", include_str!("templates/print.html")),
    ("ended.html", include_str!("templates/ended.html")),
    // Mailbox and replies (issue 15 items 3 and 5).
    ("folder.html", include_str!("templates/folder.html")),
    (
        "folders_nav.html",
        include_str!("templates/folders_nav.html"),
    ),
    ("reply.html", include_str!("templates/reply.html")),
];

const PORTAL_CSS: &str = include_str!("static/portal.css");

impl PortalState {
    /// Forgets clients the per-IP limiter no longer limits (the listener
    /// calls this every minute).
    pub fn forget_idle_clients(&self) {
        self.inner.deps.rate_limit.forget_idle();
    }

    /// Parses the templates and prepares the branded assets.
    ///
    /// # Errors
    /// [`BadOrigin`] when `settings.url` is not an http(s) URL.
    ///
    /// # Panics
    /// When a built-in template does not parse: a build defect, caught by
    /// this module's tests.
    pub fn new(settings: PortalSettings, deps: PortalDeps) -> Result<Self, BadOrigin> {
        let origin = PublicOrigin::parse(&settings.url)?;
        let cookie = SessionCookie::for_origin(&origin);
        let mut pages = Environment::new();
        pages.set_auto_escape_callback(|_| AutoEscape::Html);
        pages.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
        for (name, source) in TEMPLATES {
            pages
                .add_template(name, source)
                .unwrap_or_else(|e| panic!("built-in template {name}: {e}"));
        }
        let asset_version = asset_version(&[PORTAL_CSS.as_bytes()]);
        let branding = deps
            .branding
            .clone()
            .unwrap_or_else(|| Arc::new(LiveBranding::fixed(settings.branding.clone())));
        Ok(PortalState {
            inner: Arc::new(Inner {
                settings,
                deps,
                guard: Guard::new(origin, cookie),
                mail_words: MailWords::ENGLISH,
                pages,
                branding,
                asset_version,
                words: Words::ENGLISH,
            }),
        })
    }

    fn store(&self) -> &dyn PortalStore {
        self.inner.deps.store.as_ref()
    }

    fn settings(&self) -> &PortalSettings {
        &self.inner.settings
    }

    /// The branding to render with now.
    fn branding(&self) -> Arc<crate::branding::Resolved> {
        self.inner.branding.current()
    }

    fn words(&self) -> &Words {
        &self.inner.words
    }

    /// Renders a page with the shared values (`t`, `brand`,
    /// `asset_version`) and the page's own.
    fn page(&self, name: &str, status: StatusCode, values: impl Serialize) -> Response {
        let inner = &self.inner;
        let resolved = self.branding();
        let brand = &resolved.branding;
        let ctx = minijinja::context! {
            t => inner.words,
            brand => minijinja::context! {
                product_name => brand.product_name,
                has_logo => brand.logo.is_some(),
                disclaimer => brand.disclaimer,
                support_contact => brand.support_contact,
            },
            asset_version => format!("{}{}", inner.asset_version, resolved.tag),
            ..minijinja::Value::from_serialize(values)
        };
        match inner.pages.get_template(name).and_then(|t| t.render(ctx)) {
            Ok(html) => (status, Html(html)).into_response(),
            Err(e) => {
                tracing::error!(page = name, error = %e, "portal page failed to render");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    self.words().something_failed,
                )
                    .into_response()
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
    let mut router = Router::new();
    // Mailbox folders, their list actions, reply / reply all / forward
    // (issue 15 items 3 and 5).
    router = router
        .route("/inbox", get(folders::inbox))
        .route("/sent", get(folders::sent))
        .route("/deleted", get(folders::deleted))
        .route("/mailbox/{id}/{idx}/read", post(folders::mark_read))
        .route("/mailbox/{id}/{idx}/unread", post(folders::mark_unread))
        .route("/mailbox/{id}/{idx}/delete", post(folders::delete))
        .route("/mailbox/{id}/{idx}/restore", post(folders::restore));
    for (path, route) in reply::routes(state.inner.settings.max_upload) {
        router = router.route(path, route);
    }
    router
        .route("/", get(|| async { Redirect::to("/sign-in") }))
        .route(
            "/sign-in",
            get(account::sign_in_page).post(account::sign_in),
        )
        .route("/sign-out", post(account::sign_out))
        .route(
            "/open/{token}",
            get(account::open_page).post(account::open_submit),
        )
        .route("/open/{token}/renew", post(account::renew))
        .route(
            "/forgot-password",
            get(account::forgot_page).post(account::forgot_submit),
        )
        .route(
            "/reset/{token}",
            get(account::reset_page).post(account::reset_submit),
        )
        // Opening a message (issue 15 items 4-6).
        .route("/messages/{id}/{idx}", get(message::page))
        .route("/messages/{id}/{idx}/frame", get(message::frame))
        .route("/messages/{id}/{idx}/inline/{n}", get(message::inline))
        .route(
            "/messages/{id}/{idx}/attachments/{n}",
            get(message::attachment),
        )
        .route("/messages/{id}/{idx}/print", get(message::print))
        .route("/messages/{id}/{idx}/read", post(message::mark_read))
        .route("/messages/{id}/{idx}/delete", post(message::delete))
        // A reply read back from Sent.
        .route("/sent/{id}", get(message::page))
        .route("/sent/{id}/frame", get(message::frame))
        .route("/sent/{id}/inline/{n}", get(message::inline))
        .route("/sent/{id}/attachments/{n}", get(message::attachment))
        .route("/static/print.js", get(message::print_js))
        .route("/static/portal.css", get(portal_css))
        .route("/static/theme.css", get(theme_css))
        .route("/static/logo", get(logo))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            follow_branding,
        ))
        .with_state(state)
        .layer(middleware::from_fn(headers::secure_headers))
        .layer(middleware::from_fn_with_state(reach, client::identify))
        .layer(middleware::from_fn(record_latency))
}

/// Brings the branding up to the store's before the request is served
/// (a version check at most once a second; see [`LiveBranding`]).
async fn follow_branding(
    State(state): State<PortalState>,
    request: Request,
    next: Next,
) -> Response {
    state.inner.branding.refresh().await;
    next.run(request).await
}

/// `sealpost_portal_request_duration_seconds{route,status}`: the route's
/// pattern, never the path (which may hold a token).
async fn record_latency(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    metrics::histogram!(
        "sealpost_portal_request_duration_seconds",
        "route" => route,
        "status" => response.status().as_u16().to_string(),
    )
    .record(started.elapsed().as_secs_f64());
    response
}

pub(crate) async fn not_found(State(state): State<PortalState>) -> Response {
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
    asset(
        "text/css; charset=utf-8",
        state.branding().theme_css.clone(),
    )
}

/// The logo. An SVG is served sandboxed: were one with script to get
/// past the upload's check and be opened directly, it runs nothing.
async fn logo(State(state): State<PortalState>) -> Response {
    let resolved = state.branding();
    match &resolved.branding.logo {
        Some((bytes, content_type)) => logo_response(bytes.clone(), content_type),
        None => not_found(State(state)).await,
    }
}

/// A logo as an asset, SVG under `Content-Security-Policy: sandbox`.
pub(crate) fn logo_response(bytes: Vec<u8>, content_type: &'static str) -> Response {
    let mut response = asset(content_type, bytes);
    if content_type == "image/svg+xml" {
        response.headers_mut().insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("sandbox; default-src 'none'; style-src 'unsafe-inline'"),
        );
    }
    response
}

#[cfg(test)]
pub(crate) mod tests;
