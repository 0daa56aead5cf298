//! The HTTP side of sealpost, served on the administration listener
//! (`admin.listen`): the health check, Prometheus metrics, the REST API
//! v1 ([`api`]) and the administrators' [`console`]. The recipients'
//! [`portal`] has a listener of its own and never shares this one.
//!
//! # Layout
//! - [`api`]: the REST API, one file per resource.
//! - [`auth`]: who is asking (API keys; sessions, CSRF, passwords and
//!   rate limits for the portal and the console).
//! - [`console`]: the administrators' pages under `/console`.
//! - [`policy_service`]: the live policy snapshot and the single writer of
//!   the policy configuration, shared by every face that edits it.
//! - [`portal`]: the recipients' pages, on the portal listener; its state
//!   holds only what a recipient may reach.

pub mod api;
pub mod auth;
pub mod branding;
pub mod console;
mod csv;
pub mod impact;
pub mod key_rotation;
pub mod listener;
pub mod policy_service;
pub mod portal;

pub use policy_service::{FileRules, PolicyService, template_problems};

use std::sync::Arc;

use axum::{
    Json, Router,
    extract::State,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use metrics_exporter_prometheus::PrometheusHandle;
use sealpost_store::Store;
use serde::Serialize;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// What handlers share.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub api: api::ApiState,
    /// Renders the process's metrics in the Prometheus text format.
    pub metrics: PrometheusHandle,
    pub console: console::ConsoleState,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

/// The application's routes, without a socket (tests call it directly).
pub fn router(state: AppState) -> Router {
    let api = api::router(state.api.clone());
    let console = console::router(state.console.clone());
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .with_state(state)
        .nest("/api/v1", api)
        .merge(console)
        .fallback(not_found)
}

/// Serves `router(state)` on `listener` until `shutdown`, over TLS when
/// `tls` is given (`admin.tls_cert`).
///
/// # Errors
/// When the server fails (not per request).
pub async fn serve(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    state: AppState,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    // The console's per-IP limiter remembers every client it has seen;
    // forget the ones whose budget is full again.
    let (console, stop) = (state.console.clone(), shutdown.clone());
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(std::time::Duration::from_secs(60)) => {
                    console.forget_idle_clients();
                }
            }
        }
    });
    listener::serve(listener, tls, router(state), shutdown, "admin").await
}

/// The JSON error body every endpoint uses.
#[derive(Debug, Serialize)]
pub struct ApiError {
    pub code: &'static str,
    pub message: String,
}

#[derive(Debug, Serialize)]
struct Health {
    status: &'static str,
    database: String,
    queue: Option<QueueHealth>,
}

#[derive(Debug, Serialize)]
struct QueueHealth {
    queued: u64,
    deferred: u64,
    secure: u64,
}

async fn health(State(state): State<AppState>) -> Response {
    let ping = state.store.ping().await;
    let stats = state.store.queue_stats().await.ok();
    let (code, status, database) = match ping {
        Ok(()) => (StatusCode::OK, "ok", "ok".to_owned()),
        Err(e) => {
            tracing::error!(error = %e, "health check: database unavailable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "unavailable".to_owned(),
            )
        }
    };
    let body = Health {
        status,
        database,
        queue: stats.map(|s| QueueHealth {
            queued: s.queued,
            deferred: s.deferred,
            secure: s.secure,
        }),
    };
    (code, Json(body)).into_response()
}

async fn metrics(State(state): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}

async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(ApiError {
            code: "not_found",
            message: "no such endpoint".into(),
        }),
    )
        .into_response()
}
