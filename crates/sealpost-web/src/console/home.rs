//! The dashboard (issue 16, item 4): what an administrator sees first.
//! Mail relayed and secured today and over 14 days, the queue, bounces,
//! the policies that decided most recipients, portal sign-ins and unread
//! secure messages, as small server-drawn charts ([`super::chart`]) with
//! the numbers in text. Every figure comes from one store call
//! ([`sealpost_store::SecureStore::dashboard`]); policy names come from
//! the live policy snapshot, which is in memory.

use std::time::SystemTime;

use axum::{
    extract::{Query, State},
    http::StatusCode,
    response::Response,
};
use minijinja::Value;
use sealpost_store::{
    Dashboard,
    console::Administrator,
    dashboard::{DASHBOARD_DAYS, TrafficDay},
};
use serde::{Deserialize, Serialize};

use super::{
    ConsoleState, SignedIn,
    chart::{self, Column, Series},
};

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

const WEEKDAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// `Sun 6 Dec` and `6` for a day's midnight (UTC).
fn day_labels(day: SystemTime) -> (String, String) {
    let t = time::OffsetDateTime::from(day);
    let weekday = WEEKDAYS[usize::from(t.weekday().number_days_from_monday())];
    let month = MONTHS[usize::from(u8::from(t.month()) - 1)];
    (
        format!("{weekday} {} {month}", t.day()),
        t.day().to_string(),
    )
}

/// One day as the table under the charts shows it.
#[derive(Debug, Serialize)]
struct DayRow {
    day: String,
    relayed: u64,
    secured: u64,
    bounced: u64,
    sign_ins: u64,
}

#[derive(Debug, Serialize)]
struct PolicyRow {
    id: i64,
    name: String,
    hits: u64,
    bar: Value,
}

#[derive(Debug, Default, Serialize)]
struct Totals {
    relayed: u64,
    secured: u64,
    bounced: u64,
    sign_ins: u64,
}

fn totals<'a>(days: impl Iterator<Item = &'a TrafficDay>) -> Totals {
    days.fold(Totals::default(), |mut t, d| {
        t.relayed += d.relayed;
        t.secured += d.secured;
        t.bounced += d.bounced;
        t.sign_ins += d.sign_ins;
        t
    })
}

const RELAYED: Series = Series {
    name: "relayed",
    class: "relayed",
};
const SECURED: Series = Series {
    name: "secured",
    class: "secured",
};
const SIGN_INS: Series = Series {
    name: "sign-ins",
    class: "sign-ins",
};

/// The page's values from the store's figures.
fn dashboard_view(state: &ConsoleState, dash: &Dashboard) -> Value {
    let labelled: Vec<(String, String, &TrafficDay)> = dash
        .days
        .iter()
        .map(|d| {
            let (long, short) = day_labels(d.day);
            (long, short, d)
        })
        .collect();
    let today = totals(dash.today().into_iter());
    let fortnight = totals(dash.days.iter());
    let traffic = chart::stacked_columns(
        "traffic",
        &format!("Recipients relayed and secured per day, last {DASHBOARD_DAYS} days"),
        &format!(
            "Today {} relayed and {} secured; over {DASHBOARD_DAYS} days {} relayed and {} secured.",
            today.relayed, today.secured, fortnight.relayed, fortnight.secured
        ),
        &[RELAYED, SECURED],
        &labelled
            .iter()
            .map(|(long, short, d)| Column {
                label: short.clone(),
                title: long.clone(),
                values: vec![d.relayed, d.secured],
            })
            .collect::<Vec<_>>(),
    );
    let sign_ins = chart::stacked_columns(
        "sign-ins",
        &format!("Portal sign-ins per day, last {DASHBOARD_DAYS} days"),
        &format!(
            "Today {}; over {DASHBOARD_DAYS} days {}.",
            today.sign_ins, fortnight.sign_ins
        ),
        &[SIGN_INS],
        &labelled
            .iter()
            .map(|(long, short, d)| Column {
                label: short.clone(),
                title: long.clone(),
                values: vec![d.sign_ins],
            })
            .collect::<Vec<_>>(),
    );
    let snapshot = state.policy().snapshot();
    let most = dash.top_policies.first().map_or(0, |p| p.hits);
    let policies: Vec<PolicyRow> = dash
        .top_policies
        .iter()
        .map(|p| PolicyRow {
            id: p.policy.0,
            name: snapshot
                .policies()
                .iter()
                .find(|q| q.id == p.policy)
                .map(|q| q.narrative.trim().to_owned())
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| format!("Policy {}", p.policy.0)),
            hits: p.hits,
            bar: Value::from_safe_string(chart::bar(p.hits, most)),
        })
        .collect();
    let read = dash.secure_live.saturating_sub(dash.secure_unread);
    minijinja::context! {
        days => DASHBOARD_DAYS,
        today,
        fortnight,
        traffic => Value::from_safe_string(traffic),
        sign_ins => Value::from_safe_string(sign_ins),
        rows => labelled.iter().rev().map(|(long, _, d)| DayRow {
            day: long.clone(),
            relayed: d.relayed,
            secured: d.secured,
            bounced: d.bounced,
            sign_ins: d.sign_ins,
        }).collect::<Vec<_>>(),
        queued => dash.queued,
        deferred => dash.deferred,
        policies,
        secure_live => dash.secure_live,
        secure_unread => dash.secure_unread,
        secure_read => read,
        unread_bar => Value::from_safe_string(chart::split(&[
            (dash.secure_unread, "unread"),
            (read, "read"),
        ])),
        queue_bar => Value::from_safe_string(chart::split(&[
            (dash.deferred, "deferred"),
            (dash.queued.saturating_sub(dash.deferred), "waiting"),
        ])),
    }
}

pub(super) async fn overview(
    State(state): State<ConsoleState>,
    signed_in: SignedIn,
    Query(done): Query<Done>,
) -> Response {
    let notice = (done.done.as_deref() == Some("password")).then_some("Your password is changed.");
    let dash = match state.secure().dashboard(SystemTime::now()).await {
        Ok(dash) => dash,
        Err(e) => return state.failed(&e),
    };
    state.page(
        "home.html",
        StatusCode::OK,
        minijinja::context! {
            admin => admin_view(&signed_in.admin),
            csrf => signed_in.csrf.as_str(),
            notice,
            dash => dashboard_view(&state, &dash),
        },
    )
}
