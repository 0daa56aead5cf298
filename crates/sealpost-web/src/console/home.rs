//! The console's overview: who is signed in, and for a super admin the
//! way to administrators and API keys. (The dashboard of issue 16 item 4
//! grows here.)

use axum::{
    extract::{Query, State},
    http::StatusCode,
    response::Response,
};
use sealpost_store::console::Administrator;
use serde::{Deserialize, Serialize};

use super::{ConsoleState, SignedIn};

/// An administrator as pages show one (never the hash).
#[derive(Debug, Serialize)]
pub(super) struct AdminView {
    name: String,
    role: &'static str,
    last_sign_in: Option<String>,
    password: &'static str,
    /// Two-step sign-in is on.
    totp: bool,
}

pub(super) fn admin_view(a: &Administrator) -> AdminView {
    AdminView {
        name: a.name.to_string(),
        role: a.role.as_str(),
        last_sign_in: a.last_sign_in_at.map(sealpost_store::rfc3339),
        password: if a.must_change_password {
            "one-time"
        } else {
            "set"
        },
        totp: a.totp,
    }
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct Done {
    #[serde(default)]
    done: Option<String>,
}

pub(super) async fn overview(
    State(state): State<ConsoleState>,
    signed_in: SignedIn,
    Query(done): Query<Done>,
) -> Response {
    let notice = (done.done.as_deref() == Some("password")).then_some("Your password is changed.");
    state.page(
        "home.html",
        StatusCode::OK,
        minijinja::context! {
            admin => admin_view(&signed_in.admin),
            csrf => signed_in.csrf.as_str(),
            notice,
        },
    )
}
