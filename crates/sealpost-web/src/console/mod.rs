//! The administration console (issue 16) on the admin listener, under
//! `/console`: administrators sign in with a name and a password, not an
//! API key.
//!
//! Built from the same parts as the portal ([`crate::auth`]): argon2id
//! passwords checked under the lockout ([`crate::auth::sign_in`]), a
//! per-client-IP rate limit, sessions kept hashed in the store (any node
//! serves any request) with a `__Host-` cookie of the console's own name,
//! CSRF tokens bound to the session (or, before sign-in, to a pre-session
//! cookie) and the `Origin` check on every form, and the portal's strict
//! headers. A one-time password (from `sealpost admin create`, a reset or
//! the first start) must be replaced before any other page opens.
//!
//! - [`session`]: who is signed in ([`SignedIn`]), and the form guards.
//! - [`account`]: sign-in, sign-out and the password form.
//! - [`home`]: the dashboard, the first page after sign-in.
//! - [`chart`]: the dashboard's small charts, as inline SVG.
//! - [`nav`]: the navigation, from the route table.
//! - [`tracking`]: message tracking: search, a message, recall and expiry.
//! - [`second_step`]: the code after the password, with two-step sign-in on.
//! - [`totp`]: turning two-step sign-in on and off, and its reset.
//! - [`home`]: the overview.
//! - [`administrators`]: administrators and API keys (super admins).
//! - [`audit`]: the audit log.
//! - [`policies`]: Administration | Gateway | Policies.
//! - [`policy_form`], [`policy_edit`]: the Secure Messaging policy form
//!   (new, edit, duplicate, delete, enable and disable) and its pickers.
//! - [`policy_test`]: which policy applies to a message, and why.
//! - [`domains`]: internal domains.
//! - [`queue`]: the relay queue (depth, retry now, bounce, delete).
//! - [`branding`]: the portal's branding.
//! - [`definitions`], [`definition_form`], [`definition_edit`],
//!   [`notification_preview`]: Secure Messaging definitions and the
//!   notification template editor with its preview.
//! - [`groups`], [`group_form`], [`group_edit`], [`group_import`]: profile
//!   groups and the CSV import of members.
//! - [`directory`], [`directory_import`]: the directory and its CSV import
//!   as a background job; [`upload`] reads an uploaded file.
//! - [`listing`]: what the policy, definition and group lists share:
//!   search, sort by column, and pages of 50, all on the server.

mod account;
mod administrators;
mod audit;
mod branding;
mod chart;
#[cfg(test)]
mod config_tests;
mod definition_edit;
mod definition_form;
mod definitions;
mod directory;
mod directory_import;
mod domains;
mod group_edit;
mod group_form;
mod group_import;
mod groups;
mod home;
mod listing;
mod nav;
mod notification_preview;
mod policies;
mod policy_edit;
mod policy_form;
mod policy_test;
#[cfg(test)]
mod policy_tests;
mod queue;
mod second_step;
mod session;
#[cfg(test)]
mod tests;
mod totp;
mod tracking;
mod upload;

pub use session::SignedIn;

use std::{num::NonZeroU32, sync::Arc};

use axum::{
    Router,
    extract::{DefaultBodyLimit, FromRequestParts, State},
    http::{HeaderValue, StatusCode, header},
    middleware,
    response::{Html, IntoResponse, Response},
    routing::{MethodRouter, get, post},
};
use minijinja::{AutoEscape, Environment};
use sealpost_store::{AdminStore, ConsoleStore, Role, SecureStore, portal::SessionLimits};
use serde::Serialize;

use crate::{
    PolicyService,
    auth::{
        forms::Guard,
        limit::{Backoff, IpRateLimit},
        origin::{BadOrigin, PublicOrigin},
        session::SessionCookie,
    },
    branding::BrandingService,
    portal::{client, headers},
};

/// What the console is told at start.
#[derive(Debug, Clone)]
pub struct ConsoleSettings {
    /// The admin listener as browsers reach it (`http://localhost:8081`):
    /// forms must come from this origin.
    pub url: String,
    pub sessions: SessionLimits,
    pub backoff: Backoff,
    /// TLS and trusted proxies of the admin listener.
    pub reach: client::Reach,
    /// `vault.retention`: a new expiry set in tracking never passes
    /// received + retention (the store refuses it; the form says so).
    pub retention: std::time::Duration,
}

impl ConsoleSettings {
    /// Sessions of 30 minutes idle and 12 hours at most, the portal's
    /// lockout, no proxies.
    pub fn new(url: String) -> Self {
        ConsoleSettings {
            url,
            sessions: SessionLimits {
                idle: std::time::Duration::from_secs(30 * 60),
                absolute: std::time::Duration::from_secs(12 * 3600),
            },
            backoff: Backoff::default(),
            reach: client::Reach::default(),
            retention: std::time::Duration::from_secs(30 * 86400),
        }
    }
}

/// What console handlers share.
#[derive(Clone)]
pub struct ConsoleState {
    inner: Arc<Inner>,
    /// The relay queue's controls, shared with the API
    /// ([`ConsoleState::with_queue`]); without them the queue page says
    /// it is not available.
    queue: Option<sealpost_queue::QueueControl>,
}

struct Inner {
    settings: ConsoleSettings,
    store: Arc<dyn ConsoleStore>,
    /// API keys, the audit log and reading the policy configuration.
    admin: Arc<dyn AdminStore>,
    /// Message tracking, recall and expiry, and the dashboard's figures:
    /// the store calls the API's `/messages` makes.
    secure: Arc<dyn SecureStore>,
    /// The policy configuration's one writer and live snapshot, shared
    /// with the API: every change is checked, audited and applied alike.
    policy: Arc<PolicyService>,
    /// The portal's branding, shared with the API (and this node's portal).
    branding: Arc<BrandingService>,
    /// The console's session cookie and form checks.
    guard: Guard,
    /// Password posts (sign-in, password change) per client IP.
    rate_limit: IpRateLimit,
    pages: Environment<'static>,
    asset_version: String,
    /// Directory imports running or finished on this node.
    imports: directory_import::Jobs,
    /// Rendered notification previews waiting for their frame.
    previews: notification_preview::Frames,
}

impl std::fmt::Debug for ConsoleState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsoleState")
            .field("settings", &self.inner.settings)
            .finish_non_exhaustive()
    }
}

const TEMPLATES: &[(&str, &str)] = &[
    ("layout.html", include_str!("templates/layout.html")),
    ("sign_in.html", include_str!("templates/sign_in.html")),
    ("password.html", include_str!("templates/password.html")),
    ("home.html", include_str!("templates/home.html")),
    ("notice.html", include_str!("templates/notice.html")),
    (
        "administrators.html",
        include_str!("templates/administrators.html"),
    ),
    ("api_keys.html", include_str!("templates/api_keys.html")),
    ("secret.html", include_str!("templates/secret.html")),
    ("audit.html", include_str!("templates/audit.html")),
    (
        "policy_types.html",
        include_str!("templates/policy_types.html"),
    ),
    ("policies.html", include_str!("templates/policies.html")),
    ("pager.html", include_str!("templates/pager.html")),
    ("domains.html", include_str!("templates/domains.html")),
    (
        "policy_form.html",
        include_str!("templates/policy_form.html"),
    ),
    ("lookup.html", include_str!("templates/lookup.html")),
    (
        "policy_test.html",
        include_str!("templates/policy_test.html"),
    ),
    (
        "policy_delete.html",
        include_str!("templates/policy_delete.html"),
    ),
    ("queue.html", include_str!("templates/queue.html")),
    ("tracking.html", include_str!("templates/tracking.html")),
    (
        "tracking_message.html",
        include_str!("templates/tracking_message.html"),
    ),
    ("account.html", include_str!("templates/account.html")),
    ("totp_enrol.html", include_str!("templates/totp_enrol.html")),
    (
        "recovery_codes.html",
        include_str!("templates/recovery_codes.html"),
    ),
    (
        "sign_in_code.html",
        include_str!("templates/sign_in_code.html"),
    ),
    ("branding.html", include_str!("templates/branding.html")),
    (
        "confirm_delete.html",
        include_str!("templates/confirm_delete.html"),
    ),
    (
        "definitions.html",
        include_str!("templates/definitions.html"),
    ),
    (
        "definition_form.html",
        include_str!("templates/definition_form.html"),
    ),
    ("groups.html", include_str!("templates/groups.html")),
    ("group_form.html", include_str!("templates/group_form.html")),
    ("directory.html", include_str!("templates/directory.html")),
    (
        "directory_user.html",
        include_str!("templates/directory_user.html"),
    ),
    (
        "directory_import.html",
        include_str!("templates/directory_import.html"),
    ),
];

const CONSOLE_CSS: &str = include_str!("static/console.css");

impl ConsoleState {
    /// Parses the templates.
    ///
    /// # Errors
    /// [`BadOrigin`] when `settings.url` is not an http(s) URL.
    ///
    /// # Panics
    /// When a built-in template does not parse: a build defect, caught by
    /// this module's tests.
    pub fn new(
        settings: ConsoleSettings,
        store: Arc<dyn ConsoleStore>,
        admin: Arc<dyn AdminStore>,
        secure: Arc<dyn SecureStore>,
        policy: Arc<PolicyService>,
        branding: Arc<BrandingService>,
    ) -> Result<Self, BadOrigin> {
        let origin = PublicOrigin::parse(&settings.url)?;
        let cookie = SessionCookie::for_origin(&origin).console();
        let guard = Guard::new(origin, cookie);
        let mut pages = Environment::new();
        pages.set_auto_escape_callback(|_| AutoEscape::Html);
        pages.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
        for &(name, source) in TEMPLATES {
            pages
                .add_template(name, source)
                .unwrap_or_else(|e| panic!("built-in console template {name}: {e}"));
        }
        nav::register(&mut pages, &routes());
        let digest = ring::digest::digest(&ring::digest::SHA256, CONSOLE_CSS.as_bytes());
        let asset_version = hex::encode(&digest.as_ref()[..6]);
        Ok(ConsoleState {
            inner: Arc::new(Inner {
                settings,
                store,
                admin,
                secure,
                policy,
                branding,
                guard,
                // Ten password posts at once, then one every 6 seconds.
                rate_limit: IpRateLimit::new(
                    NonZeroU32::new(10).expect("non-zero"),
                    NonZeroU32::new(10).expect("non-zero"),
                ),
                pages,
                asset_version,
                imports: directory_import::Jobs::default(),
                previews: notification_preview::Frames::default(),
            }),
            queue: None,
        })
    }

    /// Connects the queue page to the relay queue's controls.
    #[must_use]
    pub fn with_queue(mut self, queue: sealpost_queue::QueueControl) -> Self {
        self.queue = Some(queue);
        self
    }

    fn store(&self) -> &dyn ConsoleStore {
        self.inner.store.as_ref()
    }

    fn admin_store(&self) -> &dyn AdminStore {
        self.inner.admin.as_ref()
    }

    fn secure(&self) -> &dyn SecureStore {
        self.inner.secure.as_ref()
    }

    fn policy(&self) -> &PolicyService {
        &self.inner.policy
    }

    fn branding(&self) -> &BrandingService {
        &self.inner.branding
    }

    fn settings(&self) -> &ConsoleSettings {
        &self.inner.settings
    }

    /// Forgets clients the per-IP limiter no longer limits.
    pub fn forget_idle_clients(&self) {
        self.inner.rate_limit.forget_idle();
    }

    /// Renders a page with `values` (and the asset version).
    fn page(&self, name: &str, status: StatusCode, values: impl Serialize) -> Response {
        let ctx = minijinja::context! {
            asset_version => self.inner.asset_version,
            nav_current => nav::section_of(name),
            ..minijinja::Value::from_serialize(values)
        };
        match self
            .inner
            .pages
            .get_template(name)
            .and_then(|t| t.render(ctx))
        {
            Ok(html) => (status, Html(html)).into_response(),
            Err(e) => {
                tracing::error!(page = name, error = %e, "console page failed to render");
                (StatusCode::INTERNAL_SERVER_ERROR, "Something went wrong.").into_response()
            }
        }
    }

    fn failed(&self, error: &dyn std::fmt::Display) -> Response {
        tracing::error!(error = %error, "console request failed");
        (StatusCode::INTERNAL_SERVER_ERROR, "Something went wrong.").into_response()
    }

    /// A form refused for its CSRF token or origin.
    fn refused(&self) -> Response {
        self.page(
            "notice.html",
            StatusCode::FORBIDDEN,
            minijinja::context! {
                title => "This form has expired",
                text => "For your safety the form was not accepted. Load the page again and repeat what you did.",
                action_href => "/console",
                action_label => "Back to the console",
                admin => (),
            },
        )
    }
}

/// `text` as one component of a URL (a path segment or a query value).
pub(super) fn encoded(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC).to_string()
}

async fn console_css() -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("text/css")),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=31536000, immutable"),
            ),
        ],
        CONSOLE_CSS,
    )
        .into_response()
}

async fn not_found(State(state): State<ConsoleState>) -> Response {
    state.page(
        "notice.html",
        StatusCode::NOT_FOUND,
        minijinja::context! {
            title => "Not found",
            text => "There is no such page in the console.",
            action_href => "/console",
            action_label => "Back to the console",
            admin => (),
        },
    )
}

/// Who may use a console route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Access {
    /// Anyone: sign-in and the stylesheet.
    Public,
    /// Any signed-in administrator (the page may show less by role).
    SignedIn,
    /// Signed-in administrators of these roles only; anyone else 403.
    Roles(&'static [Role]),
}

/// Super admins only.
const SUPER_ADMINS: &[Role] = &[Role::SuperAdmin];
/// Who may change the policy configuration.
const POLICY_EDITORS: &[Role] = &[Role::SuperAdmin, Role::PolicyAdmin];
/// Who reads the audit log.
const AUDITORS: &[Role] = &[Role::SuperAdmin, Role::ReadOnly];
/// Who retries, bounces and deletes queued recipients (the API's
/// message managers).
const QUEUE_OPERATORS: &[Role] = &[Role::SuperAdmin, Role::TrackingAdmin];
/// Who recalls messages and changes their expiry (as the API's
/// `MessageEditor`).
const MESSAGE_EDITORS: &[Role] = &[Role::SuperAdmin, Role::TrackingAdmin];

/// One console route: the router is built from these alone, so no route
/// exists without its rule, and the rule is enforced here, before the
/// handler, not by hiding links.
pub(super) struct Route {
    pub(super) path: &'static str,
    /// The methods it answers, for the table test.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(super) methods: &'static [&'static str],
    pub(super) access: Access,
    handler: MethodRouter<ConsoleState>,
}

fn route(
    path: &'static str,
    methods: &'static [&'static str],
    access: Access,
    handler: MethodRouter<ConsoleState>,
) -> Route {
    Route {
        path,
        methods,
        access,
        handler,
    }
}

/// Every console route with its rule. Full paths rather than a nested
/// router: the one-time password guard of [`SignedIn`] reads the path as
/// the browser sent it.
pub(super) fn routes() -> Vec<Route> {
    use Access::{Public, Roles, SignedIn as Any};
    const GET: &[&str] = &["GET"];
    const POST: &[&str] = &["POST"];
    const BOTH: &[&str] = &["GET", "POST"];
    vec![
        route("/console", GET, Any, get(home::overview)),
        route(
            "/console/sign-in",
            BOTH,
            Public,
            get(account::sign_in_page).post(account::sign_in),
        ),
        route(
            "/console/sign-in/code",
            BOTH,
            Public,
            get(second_step::code_page).post(second_step::check_code),
        ),
        route("/console/sign-out", POST, Any, post(account::sign_out)),
        route("/console/account", GET, Any, get(totp::account)),
        route(
            "/console/account/totp",
            BOTH,
            Any,
            get(totp::enrol).post(totp::confirm),
        ),
        route("/console/account/totp/start", POST, Any, post(totp::start)),
        route("/console/account/totp/off", POST, Any, post(totp::turn_off)),
        route(
            "/console/password",
            BOTH,
            Any,
            get(account::password_page).post(account::change_password),
        ),
        route(
            "/console/administrators",
            BOTH,
            Roles(SUPER_ADMINS),
            get(administrators::list).post(administrators::create),
        ),
        route(
            "/console/administrators/{name}/role",
            POST,
            Roles(SUPER_ADMINS),
            post(administrators::set_role),
        ),
        route(
            "/console/administrators/{name}/reset",
            POST,
            Roles(SUPER_ADMINS),
            post(administrators::reset),
        ),
        route(
            "/console/administrators/{name}/totp-reset",
            POST,
            Roles(SUPER_ADMINS),
            post(administrators::reset_totp),
        ),
        route(
            "/console/administrators/{name}/remove",
            POST,
            Roles(SUPER_ADMINS),
            post(administrators::remove),
        ),
        route(
            "/console/api-keys",
            BOTH,
            Roles(SUPER_ADMINS),
            get(administrators::api_keys).post(administrators::create_api_key),
        ),
        route(
            "/console/api-keys/{id}/revoke",
            POST,
            Roles(SUPER_ADMINS),
            post(administrators::revoke_api_key),
        ),
        route("/console/audit", GET, Roles(AUDITORS), get(audit::page)),
        route("/console/policies", GET, Any, get(policies::types)),
        route(
            "/console/policies/secure-messaging",
            GET,
            Any,
            get(policies::list),
        ),
        route(
            "/console/policies/secure-messaging/new",
            BOTH,
            Roles(POLICY_EDITORS),
            get(policy_edit::new_form).post(policy_edit::new_post),
        ),
        route(
            "/console/policies/{id}",
            GET,
            Any,
            get(policy_edit::edit_form),
        ),
        route(
            "/console/policies/{id}",
            POST,
            Roles(POLICY_EDITORS),
            post(policy_edit::edit_post),
        ),
        route(
            "/console/policies/{id}/duplicate",
            GET,
            Roles(POLICY_EDITORS),
            get(policy_edit::duplicate),
        ),
        route(
            "/console/policies/{id}/delete",
            BOTH,
            Roles(POLICY_EDITORS),
            get(policy_edit::delete_page).post(policy_edit::delete),
        ),
        route(
            "/console/policies/{id}/enabled",
            POST,
            Roles(POLICY_EDITORS),
            post(policy_edit::set_enabled),
        ),
        route("/console/policy-test", GET, Any, get(policy_test::page)),
        route("/console/tracking", GET, Any, get(tracking::search)),
        route(
            "/console/tracking/recall",
            POST,
            Roles(MESSAGE_EDITORS),
            post(tracking::actions::bulk_recall),
        ),
        route(
            "/console/tracking/{id}",
            GET,
            Any,
            get(tracking::message::page),
        ),
        route(
            "/console/tracking/{id}/recall",
            POST,
            Roles(MESSAGE_EDITORS),
            post(tracking::actions::recall),
        ),
        route(
            "/console/tracking/{id}/extend",
            POST,
            Roles(MESSAGE_EDITORS),
            post(tracking::actions::extend),
        ),
        route("/console/domains", GET, Any, get(domains::list)),
        route(
            "/console/domains",
            POST,
            Roles(POLICY_EDITORS),
            post(domains::add),
        ),
        route(
            "/console/domains/remove",
            POST,
            Roles(POLICY_EDITORS),
            post(domains::remove),
        ),
        route("/console/queue", GET, Any, get(queue::page)),
        route(
            "/console/queue/action",
            POST,
            Roles(QUEUE_OPERATORS),
            post(queue::act),
        ),
        route("/console/branding", GET, Any, get(branding::page)),
        route(
            "/console/branding",
            POST,
            Roles(POLICY_EDITORS),
            post(branding::save),
        ),
        route("/console/branding/logo", GET, Any, get(branding::logo)),
        route("/console/definitions", GET, Any, get(definitions::list)),
        route(
            "/console/definitions/new",
            BOTH,
            Roles(POLICY_EDITORS),
            get(definition_edit::new_form).post(definition_edit::new_post),
        ),
        route(
            "/console/definitions/{id}",
            GET,
            Any,
            get(definition_edit::edit_form),
        ),
        route(
            "/console/definitions/{id}",
            POST,
            Roles(POLICY_EDITORS),
            post(definition_edit::edit_post),
        ),
        route(
            "/console/definitions/{id}/default",
            POST,
            Roles(POLICY_EDITORS),
            post(definitions::make_default),
        ),
        route(
            "/console/definitions/{id}/delete",
            BOTH,
            Roles(POLICY_EDITORS),
            get(definitions::delete_page).post(definitions::delete),
        ),
        route(
            "/console/definitions/preview/{key}",
            GET,
            Any,
            get(notification_preview::frame),
        ),
        route("/console/groups", GET, Any, get(groups::list)),
        route(
            "/console/groups/new",
            BOTH,
            Roles(POLICY_EDITORS),
            get(group_edit::new_form).post(group_edit::new_post),
        ),
        route("/console/groups/{id}", GET, Any, get(group_edit::edit_form)),
        route(
            "/console/groups/{id}",
            POST,
            Roles(POLICY_EDITORS),
            post(group_edit::edit_post),
        ),
        route(
            "/console/groups/{id}/delete",
            BOTH,
            Roles(POLICY_EDITORS),
            get(groups::delete_page).post(groups::delete),
        ),
        route(
            "/console/groups/{id}/import",
            POST,
            Roles(POLICY_EDITORS),
            post(group_import::import).layer(DefaultBodyLimit::max(upload::MAX_UPLOAD)),
        ),
        route("/console/directory", GET, Any, get(directory::list)),
        route(
            "/console/directory/new",
            BOTH,
            Roles(POLICY_EDITORS),
            get(directory::new_form).post(directory::new_post),
        ),
        route(
            "/console/directory/users/{address}",
            GET,
            Any,
            get(directory::edit_form),
        ),
        route(
            "/console/directory/users/{address}",
            POST,
            Roles(POLICY_EDITORS),
            post(directory::edit_post),
        ),
        route(
            "/console/directory/users/{address}/delete",
            BOTH,
            Roles(POLICY_EDITORS),
            get(directory::delete_page).post(directory::delete),
        ),
        route(
            "/console/directory/import",
            POST,
            Roles(POLICY_EDITORS),
            post(directory_import::start).layer(DefaultBodyLimit::max(upload::MAX_UPLOAD)),
        ),
        route(
            "/console/directory/import/{job}",
            GET,
            Any,
            get(directory_import::progress),
        ),
        route("/console/static/console.css", GET, Public, get(console_css)),
        route("/console/{*rest}", GET, Public, get(not_found)),
    ]
}

/// Refuses a request whose administrator's role is not in `roles`: sign-in
/// for no session, the 403 page for the wrong role.
async fn require_role(
    State((state, roles)): State<(ConsoleState, &'static [Role])>,
    request: axum::extract::Request,
    next: middleware::Next,
) -> Response {
    let (mut parts, body) = request.into_parts();
    let signed_in = match SignedIn::from_request_parts(&mut parts, &state).await {
        Ok(signed_in) => signed_in,
        Err(refusal) => return refusal,
    };
    if !roles.contains(&signed_in.admin.role) {
        return state.forbidden(&signed_in, "Your role may not open this page or do this.");
    }
    next.run(axum::extract::Request::from_parts(parts, body))
        .await
}

/// The console's routes, under `/console`, with the portal's security
/// headers and client identification.
pub fn router(state: ConsoleState) -> Router {
    let reach = Arc::new(state.inner.settings.reach.clone());
    let mut router = Router::new();
    for r in routes() {
        let handler = match r.access {
            Access::Roles(roles) => r.handler.route_layer(middleware::from_fn_with_state(
                (state.clone(), roles),
                require_role,
            )),
            Access::Public | Access::SignedIn => r.handler,
        };
        router = router.route(r.path, handler);
    }
    router
        .with_state(state)
        .layer(middleware::from_fn(headers::secure_headers))
        .layer(middleware::from_fn_with_state(reach, client::identify))
}
