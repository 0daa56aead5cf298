//! The template editor's preview: the notification a recipient would get,
//! rendered by the same function as `POST /api/v1/definitions/{id}/preview`
//! ([`render_preview`]) from the form as it stands.
//!
//! The HTML part is an administrator's markup, so it is never put into a
//! console page: it is kept here for a few minutes under a random key and
//! served alone to a sandboxed `<iframe>`, with a policy of its own (no
//! script, nothing loaded from elsewhere, inline styles allowed as in a
//! mail reader, framed by the console only). That shows it as a recipient's
//! mail program would, where `srcdoc` would inherit the console's policy
//! and drop the template's inline styles.

use std::{
    collections::VecDeque,
    sync::Mutex,
    time::{Duration, Instant},
};

use axum::{
    extract::{Path, State},
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use sealpost_policy::{Definition, Invalid};
use serde::Serialize;

use super::{ConsoleState, SignedIn};
use crate::api::definitions::{render_preview, template_error};

/// Previews kept at once; older ones are dropped first.
const KEPT: usize = 64;
/// How long a preview's frame can be loaded.
const KEPT_FOR: Duration = Duration::from_secs(15 * 60);

/// The policy of a preview frame: the template's own inline styles and
/// inline images, nothing else; a sandbox even if opened on its own.
const FRAME_CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; \
     sandbox; base-uri 'none'; form-action 'none'; frame-ancestors 'self'";

/// The `sandbox` attribute of the preview's `<iframe>`: no script, no
/// forms, no same-origin access.
pub(super) const FRAME_SANDBOX: &str = "";

/// Rendered HTML parts waiting for their frame to load.
#[derive(Debug, Default)]
pub(super) struct Frames {
    recent: Mutex<VecDeque<Frame>>,
}

#[derive(Debug)]
struct Frame {
    key: String,
    html: String,
    at: Instant,
}

impl Frames {
    /// Keeps `html`; returns the key its frame is loaded by.
    fn keep(&self, html: String) -> String {
        let mut bytes = [0u8; 16];
        getrandom::fill(&mut bytes).expect("the system's random source");
        let key = hex::encode(bytes);
        let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        recent.retain(|f| f.at.elapsed() < KEPT_FOR);
        while recent.len() >= KEPT {
            recent.pop_front();
        }
        recent.push_back(Frame {
            key: key.clone(),
            html,
            at: Instant::now(),
        });
        key
    }

    fn get(&self, key: &str) -> Option<String> {
        let recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        recent
            .iter()
            .find(|f| f.key == key && f.at.elapsed() < KEPT_FOR)
            .map(|f| f.html.clone())
    }
}

/// What the editor shows under the form.
#[derive(Debug, Serialize)]
pub(super) struct Preview {
    subject: String,
    text: String,
    /// Where the frame loads the HTML part from.
    frame_src: String,
    sandbox: &'static str,
}

impl ConsoleState {
    /// Renders `definition`'s notification with sample values.
    ///
    /// # Errors
    /// The template's problem as the API names it
    /// (`notification_template.PART`, with the line).
    pub(super) fn notification_preview(&self, definition: &Definition) -> Result<Preview, Invalid> {
        let rendered = render_preview(definition).map_err(|e| {
            let e = template_error(&e);
            Invalid::new(e.field.unwrap_or_default(), "invalid_template", e.message)
        })?;
        let key = self.inner.previews.keep(rendered.html);
        Ok(Preview {
            subject: rendered.subject,
            text: rendered.text,
            frame_src: format!("/console/definitions/preview/{key}"),
            sandbox: FRAME_SANDBOX,
        })
    }
}

/// The HTML part of a preview, alone, for its sandboxed frame.
pub(super) async fn frame(
    State(state): State<ConsoleState>,
    _signed_in: SignedIn,
    Path(key): Path<String>,
) -> Response {
    let Some(html) = state.inner.previews.get(&key) else {
        return (
            StatusCode::NOT_FOUND,
            "This preview has expired: press Preview again.",
        )
            .into_response();
    };
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            ),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(FRAME_CSP),
            ),
            (
                header::X_FRAME_OPTIONS,
                HeaderValue::from_static("SAMEORIGIN"),
            ),
        ],
        html,
    )
        .into_response()
}
