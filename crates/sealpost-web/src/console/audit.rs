//! The audit log in the console (issue 16, item 3): every change, newest
//! first, filtered by object, who and dates, with each object's document
//! before and after. For super admins and read-only administrators
//! (auditors), as `GET /api/v1/audit` (the route table enforces it).

use std::time::{Duration, SystemTime};

use axum::{
    extract::{Query, State},
    http::StatusCode,
    response::Response,
};
use sealpost_store::audit::{AuditEntry, AuditQuery};
use serde::{Deserialize, Serialize};

use super::{ConsoleState, SignedIn, home};

/// Entries on a page.
const PAGE: usize = 50;

const OBJECT_KINDS: [&str; 11] = [
    "policy",
    "definition",
    "group",
    "directory_user",
    "directory_users",
    "internal_domain",
    "configuration",
    "api_key",
    "administrator",
    "message",
    "queued_recipient",
];

#[derive(Debug, Default, Deserialize, Serialize)]
pub(super) struct Filters {
    #[serde(default)]
    object_kind: String,
    #[serde(default)]
    actor: String,
    /// `YYYY-MM-DD`, UTC.
    #[serde(default)]
    since: String,
    #[serde(default)]
    until: String,
    #[serde(default, skip_serializing)]
    before: Option<i64>,
}

#[derive(Debug, Serialize)]
struct EntryView {
    at: String,
    actor: String,
    actor_kind: &'static str,
    client_ip: Option<String>,
    action: String,
    object_kind: String,
    object_id: Option<String>,
    before: Option<String>,
    after: Option<String>,
}

fn view(e: &AuditEntry) -> EntryView {
    let pretty = |v: &Option<serde_json::Value>| {
        v.as_ref()
            .map(|v| serde_json::to_string_pretty(v).unwrap_or_default())
    };
    EntryView {
        at: sealpost_store::rfc3339(e.at)
            .replace('T', " ")
            .replace('Z', ""),
        actor: e.actor.name.clone(),
        actor_kind: e.actor.kind.as_str(),
        client_ip: e.actor.client_ip.map(|ip| ip.to_string()),
        action: e.change.action.clone(),
        object_kind: e.change.object_kind.clone(),
        object_id: e.change.object_id.clone(),
        before: pretty(&e.change.before),
        after: pretty(&e.change.after),
    }
}

/// A `YYYY-MM-DD` date as the start of that day (UTC).
fn day(text: &str) -> Option<SystemTime> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let date = time::Date::parse(text, &format).ok()?;
    Some(SystemTime::from(date.midnight().assume_utc()))
}

pub(super) async fn page(
    State(state): State<ConsoleState>,
    signed_in: SignedIn,
    Query(filters): Query<Filters>,
) -> Response {
    let mut error = None;
    let mut date = |text: &str, field: &str| -> Option<SystemTime> {
        if text.is_empty() {
            return None;
        }
        let parsed = day(text);
        if parsed.is_none() {
            error = Some(format!(
                "{field}: {text:?} is not a date such as 2026-12-01."
            ));
        }
        parsed
    };
    let since = date(&filters.since, "From");
    // "Until" includes that whole day.
    let until = date(&filters.until, "Until").map(|t| t + Duration::from_secs(86400));
    let query = AuditQuery {
        since,
        until,
        actor_kind: None,
        actor: Some(filters.actor.clone()).filter(|a| !a.trim().is_empty()),
        object_kind: Some(filters.object_kind.clone())
            .filter(|k| OBJECT_KINDS.contains(&k.as_str())),
        object_id: None,
        before_id: filters.before,
        limit: PAGE + 1,
    };
    let mut entries = match state.admin_store().audit(query).await {
        Ok(entries) => entries,
        Err(e) => return state.failed(&e),
    };
    let older = (entries.len() > PAGE).then(|| {
        entries.truncate(PAGE);
        let last = entries.last().map_or(0, |e| e.id);
        let keep = query_pairs(&filters);
        format!("/console/audit?{keep}before={last}")
    });
    state.page(
        "audit.html",
        if error.is_some() {
            StatusCode::UNPROCESSABLE_ENTITY
        } else {
            StatusCode::OK
        },
        minijinja::context! {
            admin => home::admin_view(&signed_in.admin),
            csrf => signed_in.csrf.as_str(),
            entries => entries.iter().map(view).collect::<Vec<_>>(),
            object_kinds => OBJECT_KINDS,
            q => filters,
            older,
            error,
        },
    )
}

/// The filters as query pairs (each followed by `&`), for the next page.
fn query_pairs(f: &Filters) -> String {
    let mut out = String::new();
    for (k, v) in [
        ("object_kind", &f.object_kind),
        ("actor", &f.actor),
        ("since", &f.since),
        ("until", &f.until),
    ] {
        if !v.is_empty() {
            out.push_str(k);
            out.push('=');
            out.push_str(&percent_encode(v));
            out.push('&');
        }
    }
    out
}

fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
