//! Administration | Gateway | Queue (issue 16, item 2): the depth per next
//! hop, and the waiting recipients with their last error and next attempt,
//! filtered, sorted and paged on the server. Super admins and tracking
//! admins retry now, bounce or delete them, one (a row's buttons) or many
//! (the checked rows), through the same controls as `/api/v1/queue`; the
//! route table refuses the action to other roles, whose page has no
//! buttons. A recipient being delivered at that moment is left alone and
//! the page says so.

use std::collections::HashMap;

use axum::{
    Form,
    extract::{Query, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Redirect, Response},
};
use sealpost_queue::QueueControl;
use sealpost_store::queue_admin::{QueueAction, QueueQuery, QueueSort, QueuedRecipient, Selection};
use serde::Serialize;

use super::{ConsoleState, SignedIn, home};
use crate::api::queue::{parse_key, parse_list_query, run};

/// Recipients on a page.
const PAGE: usize = 50;

/// The page's own query parameters (the outcome of the last action), kept
/// apart from the listing's.
const OUTCOME_KEYS: [&str; 4] = ["action", "done", "busy", "gone"];

#[derive(Debug, Serialize)]
struct HopRow {
    hop: String,
    queued: u64,
    deferred: u64,
    in_delivery: u64,
    oldest: String,
    next_attempt: String,
    domains: Vec<DomainRow>,
}

#[derive(Debug, Serialize)]
struct DomainRow {
    domain: String,
    queued: u64,
    deferred: u64,
    href: String,
}

#[derive(Debug, Serialize)]
struct RecipientRow {
    id: String,
    recipient: String,
    sender: String,
    subject: String,
    received: String,
    attempts: u32,
    last_error: String,
    next_attempt: String,
    in_delivery: bool,
}

/// A moment as the console shows it: `2026-12-06 09:00:00` (UTC).
fn shown_time(t: std::time::SystemTime) -> String {
    sealpost_store::rfc3339(t)
        .replace('T', " ")
        .replace('Z', "")
}

fn row(r: QueuedRecipient) -> RecipientRow {
    RecipientRow {
        id: r.key.to_string(),
        recipient: r.address,
        sender: if r.sender.is_empty() {
            "<>".into()
        } else {
            r.sender
        },
        subject: r.subject.unwrap_or_default(),
        received: shown_time(r.received_at),
        attempts: r.attempts,
        last_error: r.last_reply.unwrap_or_default(),
        next_attempt: shown_time(r.next_attempt_at),
        in_delivery: r.in_delivery,
    }
}

/// The listing's query as a query string (`k=v&…`, without `offset`
/// unless given): what links and the action's redirect keep.
fn query_string(q: &QueueQuery, offset: Option<usize>) -> String {
    let f = &q.filter;
    let mut pairs: Vec<(&str, String)> = Vec::new();
    for (k, v) in [
        ("domain", &f.domain),
        ("sender", &f.sender),
        ("recipient", &f.recipient),
    ] {
        if let Some(v) = v {
            pairs.push((k, v.clone()));
        }
    }
    if f.deferred_only {
        pairs.push(("deferred", "true".into()));
    }
    if q.sort != QueueSort::default() {
        pairs.push(("sort", q.sort.as_str().into()));
    }
    if q.descending {
        pairs.push(("order", "desc".into()));
    }
    if let Some(o) = offset.filter(|o| *o > 0) {
        pairs.push(("offset", o.to_string()));
    }
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", percent_encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// What a query value keeps unencoded: RFC 3986's unreserved characters.
const QUERY_VALUE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

fn percent_encode(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, QUERY_VALUE).to_string()
}

fn href(query: &str) -> String {
    if query.is_empty() {
        "/console/queue".into()
    } else {
        format!("/console/queue?{query}")
    }
}

/// A sortable column: its link (the other order when it is the current
/// one) and its `aria-sort`.
#[derive(Debug, Serialize)]
struct SortLink {
    href: String,
    aria: &'static str,
}

fn sort_links(q: &QueueQuery) -> HashMap<&'static str, SortLink> {
    QueueSort::ALL
        .into_iter()
        .map(|sort| {
            let current = q.sort == sort;
            let next = QueueQuery {
                sort,
                descending: current && !q.descending,
                offset: 0,
                ..q.clone()
            };
            let aria = match (current, q.descending) {
                (false, _) => "none",
                (true, false) => "ascending",
                (true, true) => "descending",
            };
            (
                sort.as_str(),
                SortLink {
                    href: href(&query_string(&next, None)),
                    aria,
                },
            )
        })
        .collect()
}

#[derive(Debug, Serialize)]
struct SortOption {
    value: &'static str,
    label: &'static str,
    current: bool,
}

/// The choices of the filter form's "Sort by" (the column headers sort
/// too; this works where they are hidden, on a phone).
fn sort_options(current: QueueSort) -> Vec<SortOption> {
    QueueSort::ALL
        .into_iter()
        .map(|sort| SortOption {
            value: sort.as_str(),
            label: match sort {
                QueueSort::NextAttempt => "next attempt",
                QueueSort::Received => "received",
                QueueSort::Attempts => "attempts",
                QueueSort::Recipient => "recipient",
                QueueSort::Sender => "sender",
                QueueSort::Domain => "domain",
            },
            current: sort == current,
        })
        .collect()
}

/// What the last action did, from the redirect's counts (numbers only:
/// nothing a link could inject).
fn outcome_text(pairs: &HashMap<String, String>) -> Option<String> {
    let action = QueueAction::parse(pairs.get("action")?)?;
    let count = |k: &str| {
        pairs
            .get(k)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let verb = match action {
        QueueAction::Retry => "retried now",
        QueueAction::Bounce => "bounced (the senders get a delivery report)",
        QueueAction::Delete => "deleted (no report sent)",
    };
    let mut text = format!("{} recipient(s) {verb}.", count("done"));
    if count("busy") > 0 {
        text.push_str(&format!(
            " {} left alone: being delivered right now.",
            count("busy")
        ));
    }
    if count("gone") > 0 {
        text.push_str(&format!(
            " {} no longer waiting in the queue.",
            count("gone")
        ));
    }
    Some(text)
}

impl ConsoleState {
    fn queue(&self) -> Option<&QueueControl> {
        self.queue.as_ref()
    }

    fn queue_unavailable(&self, signed_in: &SignedIn) -> Response {
        self.page(
            "notice.html",
            StatusCode::SERVICE_UNAVAILABLE,
            minijinja::context! {
                title => "The queue is not available here",
                text => "This console is not connected to the relay queue.",
                action_href => "/console",
                action_label => "Back to the overview",
                admin => home::admin_view(&signed_in.admin),
                csrf => signed_in.csrf.as_str(),
            },
        )
    }
}

pub(super) async fn page(
    State(state): State<ConsoleState>,
    signed_in: SignedIn,
    Query(mut pairs): Query<HashMap<String, String>>,
) -> Response {
    let Some(queue) = state.queue() else {
        return state.queue_unavailable(&signed_in);
    };
    let notice = outcome_text(&pairs);
    for k in OUTCOME_KEYS {
        pairs.remove(k);
    }
    let (query, error) = match parse_list_query(&pairs, PAGE) {
        Ok(q) => (q, None),
        Err(e) => (
            QueueQuery {
                limit: PAGE,
                ..QueueQuery::default()
            },
            Some(match e.field {
                Some(field) => format!("{field}: {}", e.message),
                None => e.message,
            }),
        ),
    };
    let summary = match queue.summary().await {
        Ok(s) => s,
        Err(e) => return state.failed(&e),
    };
    let listing = match queue.list(query.clone()).await {
        Ok(p) => p,
        Err(e) => return state.failed(&e),
    };
    let hops: Vec<HopRow> = summary
        .hops
        .into_iter()
        .map(|h| HopRow {
            hop: h.hop,
            queued: h.queued,
            deferred: h.deferred,
            in_delivery: h.in_delivery,
            oldest: h.oldest.map(shown_time).unwrap_or_default(),
            next_attempt: h.next_attempt.map(shown_time).unwrap_or_default(),
            domains: h
                .domains
                .into_iter()
                .map(|d| DomainRow {
                    href: href(&format!("domain={}", percent_encode(&d.domain))),
                    domain: d.domain,
                    queued: d.queued,
                    deferred: d.deferred,
                })
                .collect(),
        })
        .collect();
    let shown = listing.recipients.len();
    let newer = (query.offset > 0).then(|| {
        href(&query_string(
            &query,
            Some(query.offset.saturating_sub(PAGE)),
        ))
    });
    let older = ((query.offset + shown) < listing.total as usize)
        .then(|| href(&query_string(&query, Some(query.offset + PAGE))));
    let f = &query.filter;
    state.page(
        "queue.html",
        if error.is_some() {
            StatusCode::UNPROCESSABLE_ENTITY
        } else {
            StatusCode::OK
        },
        minijinja::context! {
            admin => home::admin_view(&signed_in.admin),
            csrf => signed_in.csrf.as_str(),
            may_act => signed_in.admin.role.may_manage_messages(),
            totals => minijinja::context! {
                queued => summary.queued,
                deferred => summary.deferred,
                in_delivery => summary.in_delivery,
            },
            hops,
            recipients => listing.recipients.into_iter().map(row).collect::<Vec<_>>(),
            total => listing.total,
            first => if shown == 0 { 0 } else { query.offset + 1 },
            last => query.offset + shown,
            newer,
            older,
            sort => sort_links(&query),
            keep => query_string(&query, Some(query.offset)),
            sort_options => sort_options(query.sort),
            q => minijinja::context! {
                descending => query.descending,
                domain => f.domain.clone().unwrap_or_default(),
                sender => f.sender.clone().unwrap_or_default(),
                recipient => f.recipient.clone().unwrap_or_default(),
                deferred => f.deferred_only,
            },
            notice,
            error,
        },
    )
}

/// A queue action from the page: `action` (the bulk buttons) with the
/// checked `id`s, or `one` (a row's button: `retry:<id>`); `keep` is the
/// listing to go back to.
pub(super) async fn act(
    State(state): State<ConsoleState>,
    signed_in: SignedIn,
    headers: HeaderMap,
    Form(fields): Form<Vec<(String, String)>>,
) -> Response {
    let field = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    if let Some(refused) = state.refuse_form(&signed_in, &headers, field("csrf").unwrap_or("")) {
        return refused;
    }
    let Some(queue) = state.queue() else {
        return state.queue_unavailable(&signed_in);
    };
    let (action, ids): (Option<QueueAction>, Vec<&str>) = match field("one") {
        Some(one) => match one.split_once(':') {
            Some((action, id)) => (QueueAction::parse(action), vec![id]),
            None => (None, Vec::new()),
        },
        None => (
            field("action").and_then(QueueAction::parse),
            fields
                .iter()
                .filter(|(k, _)| k == "id")
                .map(|(_, v)| v.as_str())
                .collect(),
        ),
    };
    // The listing to go back to, rebuilt from its parsed form: nothing
    // of the posted text reaches the redirect's Location as it was sent.
    let keep = field("keep")
        .and_then(|k| format!("/?{k}").parse::<axum::http::Uri>().ok())
        .and_then(|uri| Query::<HashMap<String, String>>::try_from_uri(&uri).ok())
        .and_then(|Query(pairs)| parse_list_query(&pairs, PAGE).ok())
        .map(|q| query_string(&q, Some(q.offset)))
        .unwrap_or_default();
    let keep = keep.as_str();
    let back = |extra: &str| {
        let query = [keep, extra]
            .into_iter()
            .filter(|p| !p.is_empty())
            .collect::<Vec<_>>()
            .join("&");
        href(&query)
    };
    let Some(action) = action else {
        return bad_request(&state, &signed_in, "Choose retry, bounce or delete.");
    };
    if ids.is_empty() {
        return bad_request(
            &state,
            &signed_in,
            "Tick at least one recipient, then choose the action.",
        );
    }
    if ids.len() > crate::api::queue::MAX_BULK_IDS {
        return bad_request(&state, &signed_in, "Too many recipients at once.");
    }
    let mut keys = Vec::with_capacity(ids.len());
    for id in ids {
        match parse_key("id", id) {
            Ok(key) => keys.push(key),
            Err(e) => return bad_request(&state, &signed_in, &e.message),
        }
    }
    match run(action, queue, Selection::Keys(keys), signed_in.actor()).await {
        Ok(report) => {
            tracing::info!(by = %signed_in.admin.name, action = action.as_str(), done = report.done.len(), in_delivery = report.in_delivery.len(), "queue action from the console");
            Redirect::to(&back(&format!(
                "action={}&done={}&busy={}&gone={}",
                action.as_str(),
                report.done.len(),
                report.in_delivery.len(),
                report.not_queued.len()
            )))
            .into_response()
        }
        Err(e) => state.failed(&e),
    }
}

fn bad_request(state: &ConsoleState, signed_in: &SignedIn, text: &str) -> Response {
    state.page(
        "notice.html",
        StatusCode::BAD_REQUEST,
        minijinja::context! {
            title => "Nothing was done",
            text,
            action_href => "/console/queue",
            action_label => "Back to the queue",
            admin => home::admin_view(&signed_in.admin),
            csrf => signed_in.csrf.as_str(),
        },
    )
}
