//! `/api/v1/queue`: the relay queue (issue 16, item 2). Its depth per next
//! hop, the waiting recipients (paged, sorted, filtered), and retry now,
//! bounce and delete, on one recipient or in bulk (listed ids, or every
//! recipient a filter matches).
//!
//! Reading is for every role; acting for super admins and tracking admins
//! ([`QueueOperator`]). A recipient a worker is delivering at that moment
//! is left alone and listed as `in_delivery`. Each action commits with its
//! audit entries; see `sealpost_queue::control`.

use std::collections::HashMap;

use axum::{
    Json,
    extract::{Query, State},
};
use sealpost_queue::control::{HopDepth, QueueSummary};
use sealpost_store::queue_admin::{
    ActionReport, DomainDepth, QueueAction, QueueFilter, QueueQuery, QueueSort, QueuedRecipient,
    RecipientKey, Selection,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{ApiError, ApiJson, ApiPath, ApiResult, ApiState, extract::QueueOperator};
use crate::auth::Caller;

/// Most ids one bulk action takes.
pub const MAX_BULK_IDS: usize = 1000;
/// Most recipients one filtered action acts on (the rest are counted in
/// `remaining`; repeat to go on).
pub const MAX_FILTERED: usize = 10_000;

pub(super) fn routes(router: OpenApiRouter<ApiState>) -> OpenApiRouter<ApiState> {
    router
        .routes(routes!(summary))
        .routes(routes!(list))
        .routes(routes!(retry_one))
        .routes(routes!(bounce_one))
        .routes(routes!(delete_one))
        .routes(routes!(retry_bulk))
        .routes(routes!(bounce_bulk))
        .routes(routes!(delete_bulk))
}

fn field_error(field: &str, code: &str, message: impl Into<String>) -> ApiError {
    let mut e = ApiError::bad_request(code, message);
    e.field = Some(field.to_owned());
    e
}

/// Parses a recipient id (`<queue id>.<n>`), naming `field` if it is bad.
pub(crate) fn parse_key(field: &str, text: &str) -> ApiResult<RecipientKey> {
    RecipientKey::parse(text).ok_or_else(|| {
        field_error(
            field,
            "invalid_id",
            format!(
                "{:?} is not a queued recipient id: the queue id (16 hex digits), a dot and the \
                 recipient's number, as in 0190F3A2B4C5D6E7.0",
                sealpost_policy::text::one_line(text, 80)
            ),
        )
    })
}

/// One destination domain's share of the queue.
#[derive(Debug, Serialize, ToSchema)]
struct DomainView {
    domain: String,
    queued: u64,
    deferred: u64,
    in_delivery: u64,
    /// When the oldest waiting message was received (RFC 3339).
    oldest: Option<String>,
    next_attempt: Option<String>,
}

/// The queue towards one next hop.
#[derive(Debug, Serialize, ToSchema)]
struct HopView {
    /// `host:port` of a configured next hop, or `MX of <domain>`.
    next_hop: String,
    /// Recipients waiting (including those deferred and in delivery).
    queued: u64,
    /// Of them, those that failed at least one attempt.
    deferred: u64,
    /// Of them, those being delivered right now.
    in_delivery: u64,
    oldest: Option<String>,
    next_attempt: Option<String>,
    domains: Vec<DomainView>,
}

/// The queue's depth per next hop.
#[derive(Debug, Serialize, ToSchema)]
struct SummaryView {
    queued: u64,
    deferred: u64,
    in_delivery: u64,
    next_hops: Vec<HopView>,
}

fn time(t: Option<std::time::SystemTime>) -> Option<String> {
    t.map(sealpost_store::rfc3339)
}

fn domain_view(d: DomainDepth) -> DomainView {
    DomainView {
        domain: d.domain,
        queued: d.queued,
        deferred: d.deferred,
        in_delivery: d.in_delivery,
        oldest: time(d.oldest),
        next_attempt: time(d.next_attempt),
    }
}

fn hop_view(h: HopDepth) -> HopView {
    HopView {
        next_hop: h.hop,
        queued: h.queued,
        deferred: h.deferred,
        in_delivery: h.in_delivery,
        oldest: time(h.oldest),
        next_attempt: time(h.next_attempt),
        domains: h.domains.into_iter().map(domain_view).collect(),
    }
}

fn summary_view(s: QueueSummary) -> SummaryView {
    SummaryView {
        queued: s.queued,
        deferred: s.deferred,
        in_delivery: s.in_delivery,
        next_hops: s.hops.into_iter().map(hop_view).collect(),
    }
}

/// The queue's depth per next hop and destination domain.
#[utoipa::path(get, path = "/queue", tag = "queue",
    responses((status = 200, body = SummaryView)))]
async fn summary(_caller: Caller, State(state): State<ApiState>) -> ApiResult<Json<SummaryView>> {
    Ok(Json(summary_view(state.queue.summary().await?)))
}

/// A waiting recipient.
#[derive(Debug, Serialize, ToSchema)]
struct QueuedView {
    /// `<queue id>.<n>`: what the actions take.
    id: String,
    /// The message's queue id.
    message_id: String,
    recipient: String,
    domain: String,
    /// The envelope sender; empty for `<>`.
    sender: String,
    /// `mail`, `dsn` or `notification`.
    kind: &'static str,
    subject: Option<String>,
    size: u64,
    received_at: String,
    attempts: u32,
    /// The last attempt's reply (the deferral's reason).
    last_error: Option<String>,
    last_attempt_at: Option<String>,
    next_attempt_at: String,
    /// A worker is delivering it right now; actions leave it alone.
    in_delivery: bool,
}

fn queued_view(r: QueuedRecipient) -> QueuedView {
    QueuedView {
        id: r.key.to_string(),
        message_id: r.key.message.to_string(),
        recipient: r.address,
        domain: r.domain,
        sender: r.sender,
        kind: r.kind.as_str(),
        subject: r.subject,
        size: r.size,
        received_at: sealpost_store::rfc3339(r.received_at),
        attempts: r.attempts,
        last_error: r.last_reply,
        last_attempt_at: time(r.last_attempt_at),
        next_attempt_at: sealpost_store::rfc3339(r.next_attempt_at),
        in_delivery: r.in_delivery,
    }
}

/// Which waiting recipients, in what order. Text filters match a part,
/// ignoring case; `domain` the whole recipient domain.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // Documents the query; `list` parses it by hand to name bad fields.
struct ListQuery {
    /// The recipients' domain.
    domain: Option<String>,
    /// Part of the envelope sender.
    sender: Option<String>,
    /// Part of the recipient address.
    recipient: Option<String>,
    /// Only recipients that failed at least one attempt (default false).
    deferred: Option<bool>,
    /// next_attempt (default), received, attempts, recipient, sender or domain.
    sort: Option<String>,
    /// asc (default) or desc.
    order: Option<String>,
    /// Rows to skip (default 0).
    offset: Option<usize>,
    /// Page size, 1 to 500 (default 50).
    limit: Option<usize>,
}

/// A page of waiting recipients.
#[derive(Debug, Serialize, ToSchema)]
struct ListView {
    recipients: Vec<QueuedView>,
    /// How many match in all.
    total: u64,
    offset: usize,
    limit: usize,
}

/// A query string's filters, order and page, each bad value refused
/// naming its field. Shared with the console's page.
pub(crate) fn parse_list_query(
    pairs: &HashMap<String, String>,
    default_limit: usize,
) -> ApiResult<QueueQuery> {
    const KNOWN: [&str; 8] = [
        "domain",
        "sender",
        "recipient",
        "deferred",
        "sort",
        "order",
        "offset",
        "limit",
    ];
    let mut keys: Vec<&String> = pairs.keys().collect();
    keys.sort();
    if let Some(unknown) = keys.iter().find(|k| !KNOWN.contains(&k.as_str())) {
        return Err(field_error(
            unknown,
            "unknown_parameter",
            format!("unknown query parameter; use {}", KNOWN.join(", ")),
        ));
    }
    let text = |name: &str| {
        pairs
            .get(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    let number = |name: &str, default: usize| -> ApiResult<usize> {
        match text(name) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|_| {
                field_error(
                    name,
                    "invalid_number",
                    format!("{v:?} is not a whole number"),
                )
            }),
        }
    };
    let deferred_only = match text("deferred").as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(field_error(
                "deferred",
                "invalid_bool",
                format!("{other:?}: use true or false"),
            ));
        }
    };
    let sort = match text("sort") {
        None => QueueSort::default(),
        Some(s) => QueueSort::parse(&s).ok_or_else(|| {
            let names: Vec<_> = QueueSort::ALL.iter().map(|s| s.as_str()).collect();
            field_error(
                "sort",
                "invalid_sort",
                format!("{s:?}: sort by {}", names.join(", ")),
            )
        })?,
    };
    let descending = match text("order").as_deref() {
        None | Some("asc") => false,
        Some("desc") => true,
        Some(other) => {
            return Err(field_error(
                "order",
                "invalid_order",
                format!("{other:?}: use asc or desc"),
            ));
        }
    };
    let limit = number("limit", default_limit)?;
    if !(1..=500).contains(&limit) {
        return Err(field_error(
            "limit",
            "invalid_limit",
            "limit must be from 1 to 500",
        ));
    }
    Ok(QueueQuery {
        filter: QueueFilter {
            domain: text("domain").map(|d| d.to_ascii_lowercase()),
            sender: text("sender"),
            recipient: text("recipient"),
            deferred_only,
        },
        sort,
        descending,
        offset: number("offset", 0)?,
        limit,
    })
}

/// Lists waiting recipients with their last error and next attempt.
#[utoipa::path(get, path = "/queue/recipients", tag = "queue", params(ListQuery),
    responses((status = 200, body = ListView), (status = 400, body = ApiError)))]
async fn list(
    _caller: Caller,
    State(state): State<ApiState>,
    query: Result<Query<HashMap<String, String>>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<ListView>> {
    let Query(pairs) = query.map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))?;
    let query = parse_list_query(&pairs, 50)?;
    let (offset, limit) = (query.offset, query.limit);
    let page = state.queue.list(query).await?;
    Ok(Json(ListView {
        recipients: page.recipients.into_iter().map(queued_view).collect(),
        total: page.total,
        offset,
        limit,
    }))
}

/// What an action did.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ActionView {
    /// retry, bounce or delete.
    action: &'static str,
    /// The recipients it acted on.
    done: Vec<String>,
    /// Recipients being delivered at that moment, left alone.
    in_delivery: Vec<String>,
    /// Named recipients not waiting in the queue (delivered, failed, or
    /// no such recipient).
    not_queued: Vec<String>,
    /// For a filter: matching recipients beyond the 10,000 acted on.
    remaining: u64,
}

fn action_view(action: QueueAction, r: ActionReport) -> ActionView {
    let ids = |keys: Vec<RecipientKey>| keys.iter().map(ToString::to_string).collect();
    ActionView {
        action: action.as_str(),
        done: ids(r.done),
        in_delivery: ids(r.in_delivery),
        not_queued: ids(r.not_queued),
        remaining: r.remaining,
    }
}

/// Runs `action` through the queue's controls. Shared with the console.
pub(crate) async fn run(
    action: QueueAction,
    queue: &sealpost_queue::QueueControl,
    selection: Selection,
    actor: sealpost_store::audit::Actor,
) -> Result<ActionReport, sealpost_store::StoreError> {
    match action {
        QueueAction::Retry => queue.retry_now(selection, actor).await,
        QueueAction::Bounce => queue.bounce(selection, actor).await,
        QueueAction::Delete => queue.delete(selection, actor).await,
    }
}

async fn act_on_one(
    action: QueueAction,
    caller: Caller,
    state: ApiState,
    id: &str,
) -> ApiResult<Json<ActionView>> {
    let key = parse_key("id", id)?;
    let report = run(
        action,
        &state.queue,
        Selection::Keys(vec![key.clone()]),
        caller.actor(),
    )
    .await?;
    if !report.not_queued.is_empty() {
        return Err(ApiError::not_found(format!(
            "recipient {key} is not waiting in the queue (delivered, failed, or no such recipient)"
        )));
    }
    if !report.in_delivery.is_empty() {
        return Err(ApiError::new(
            axum::http::StatusCode::CONFLICT,
            "in_delivery",
            format!(
                "recipient {key} is being delivered right now and was left alone; try again \
                 once the attempt is over"
            ),
        ));
    }
    tracing::info!(recipient = %key, by = %caller.key_id, action = action.as_str(), done = report.done.len(), "queue action");
    Ok(Json(action_view(action, report)))
}

/// Makes one recipient due now: a worker tries it at once.
#[utoipa::path(post, path = "/queue/recipients/{id}/retry", tag = "queue", params(("id" = String, Path)),
    responses((status = 200, body = ActionView), (status = 400, body = ApiError), (status = 403, body = ApiError), (status = 404, body = ApiError), (status = 409, body = ApiError)))]
async fn retry_one(
    QueueOperator(caller): QueueOperator,
    State(state): State<ApiState>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<ActionView>> {
    act_on_one(QueueAction::Retry, caller, state, &id).await
}

/// Fails one recipient for good, "bounced by an administrator"; the
/// sender gets a DSN.
#[utoipa::path(post, path = "/queue/recipients/{id}/bounce", tag = "queue", params(("id" = String, Path)),
    responses((status = 200, body = ActionView), (status = 400, body = ApiError), (status = 403, body = ApiError), (status = 404, body = ApiError), (status = 409, body = ApiError)))]
async fn bounce_one(
    QueueOperator(caller): QueueOperator,
    State(state): State<ApiState>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<ActionView>> {
    act_on_one(QueueAction::Bounce, caller, state, &id).await
}

/// Drops one recipient from the queue, without a report to the sender.
#[utoipa::path(post, path = "/queue/recipients/{id}/delete", tag = "queue", params(("id" = String, Path)),
    responses((status = 200, body = ActionView), (status = 400, body = ApiError), (status = 403, body = ApiError), (status = 404, body = ApiError), (status = 409, body = ApiError)))]
async fn delete_one(
    QueueOperator(caller): QueueOperator,
    State(state): State<ApiState>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<ActionView>> {
    act_on_one(QueueAction::Delete, caller, state, &id).await
}

/// Which recipients a filter selects (at least one criterion).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct FilterBody {
    /// The recipients' domain.
    domain: Option<String>,
    /// Part of the envelope sender.
    sender: Option<String>,
    /// Part of the recipient address.
    recipient: Option<String>,
    /// Only recipients that failed at least one attempt.
    deferred: Option<bool>,
}

/// The recipients of a bulk action: `ids` or `filter`, not both.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct BulkBody {
    /// Recipient ids (`<queue id>.<n>`), 1 to 1000.
    ids: Option<Vec<String>>,
    /// Every waiting recipient matching (up to 10,000 per request).
    filter: Option<FilterBody>,
}

fn selection(body: BulkBody) -> ApiResult<Selection> {
    match (body.ids, body.filter) {
        (Some(ids), None) => {
            if ids.is_empty() || ids.len() > MAX_BULK_IDS {
                return Err(field_error(
                    "ids",
                    "invalid_ids",
                    format!("ids must list 1 to {MAX_BULK_IDS} recipient ids"),
                ));
            }
            let keys = ids
                .iter()
                .enumerate()
                .map(|(i, id)| parse_key(&format!("ids[{i}]"), id))
                .collect::<ApiResult<Vec<_>>>()?;
            Ok(Selection::Keys(keys))
        }
        (None, Some(f)) => {
            let clean =
                |v: Option<String>| v.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
            let filter = QueueFilter {
                domain: clean(f.domain).map(|d| d.to_ascii_lowercase()),
                sender: clean(f.sender),
                recipient: clean(f.recipient),
                deferred_only: f.deferred.unwrap_or(false),
            };
            if !filter.narrows() {
                return Err(field_error(
                    "filter",
                    "empty_filter",
                    "a filter needs at least one of domain, sender, recipient or deferred: true \
                     (to act on every deferred recipient, send {\"deferred\": true})",
                ));
            }
            Ok(Selection::Filter {
                filter,
                limit: MAX_FILTERED,
            })
        }
        (Some(_), Some(_)) => Err(field_error(
            "filter",
            "ids_and_filter",
            "give either ids or filter, not both",
        )),
        (None, None) => Err(field_error(
            "ids",
            "missing_field",
            "give ids (a list of recipient ids) or filter",
        )),
    }
}

async fn act_on_many(
    action: QueueAction,
    caller: Caller,
    state: ApiState,
    body: BulkBody,
) -> ApiResult<Json<ActionView>> {
    let selection = selection(body)?;
    let report = run(action, &state.queue, selection, caller.actor()).await?;
    tracing::info!(by = %caller.key_id, action = action.as_str(), done = report.done.len(), in_delivery = report.in_delivery.len(), "bulk queue action");
    Ok(Json(action_view(action, report)))
}

/// Makes many recipients due now (ids or a filter).
#[utoipa::path(post, path = "/queue/retry", tag = "queue", request_body = BulkBody,
    responses((status = 200, body = ActionView), (status = 400, body = ApiError), (status = 403, body = ApiError)))]
async fn retry_bulk(
    QueueOperator(caller): QueueOperator,
    State(state): State<ApiState>,
    ApiJson(body): ApiJson<BulkBody>,
) -> ApiResult<Json<ActionView>> {
    act_on_many(QueueAction::Retry, caller, state, body).await
}

/// Bounces many recipients (ids or a filter); each sender gets a DSN.
#[utoipa::path(post, path = "/queue/bounce", tag = "queue", request_body = BulkBody,
    responses((status = 200, body = ActionView), (status = 400, body = ApiError), (status = 403, body = ApiError)))]
async fn bounce_bulk(
    QueueOperator(caller): QueueOperator,
    State(state): State<ApiState>,
    ApiJson(body): ApiJson<BulkBody>,
) -> ApiResult<Json<ActionView>> {
    act_on_many(QueueAction::Bounce, caller, state, body).await
}

/// Deletes many recipients (ids or a filter), without reports.
#[utoipa::path(post, path = "/queue/delete", tag = "queue", request_body = BulkBody,
    responses((status = 200, body = ActionView), (status = 400, body = ApiError), (status = 403, body = ApiError)))]
async fn delete_bulk(
    QueueOperator(caller): QueueOperator,
    State(state): State<ApiState>,
    ApiJson(body): ApiJson<BulkBody>,
) -> ApiResult<Json<ActionView>> {
    act_on_many(QueueAction::Delete, caller, state, body).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(pairs: &[(&str, &str)]) -> ApiResult<QueueQuery> {
        let pairs = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        parse_list_query(&pairs, 50)
    }

    #[test]
    fn a_listing_query_parses_with_defaults_and_names_each_bad_field() {
        let q = parse(&[]).unwrap();
        assert_eq!(
            (q.sort, q.descending, q.offset, q.limit),
            (QueueSort::NextAttempt, false, 0, 50)
        );
        let q = parse(&[
            ("domain", " Partner.Example "),
            ("sender", ""),
            ("deferred", "true"),
            ("sort", "attempts"),
            ("order", "desc"),
            ("offset", "100"),
            ("limit", "500"),
        ])
        .unwrap();
        assert_eq!(q.filter.domain.as_deref(), Some("partner.example"));
        assert_eq!(q.filter.sender, None, "empty means no filter");
        assert!(q.filter.deferred_only && q.descending);
        assert_eq!((q.sort, q.offset, q.limit), (QueueSort::Attempts, 100, 500));
        for (pairs, field) in [
            (&[("sort", "size")][..], "sort"),
            (&[("order", "sideways")][..], "order"),
            (&[("limit", "501")][..], "limit"),
            (&[("limit", "ten")][..], "limit"),
            (&[("offset", "-1")][..], "offset"),
            (&[("deferred", "yes")][..], "deferred"),
            (&[("status", "queued")][..], "status"),
        ] {
            let e = parse(pairs).unwrap_err();
            assert_eq!(e.field.as_deref(), Some(field), "{pairs:?}: {e:?}");
            assert_eq!(e.status, axum::http::StatusCode::BAD_REQUEST);
        }
    }

    #[test]
    fn a_bulk_body_names_ids_or_a_filter_never_both_never_nothing() {
        let key = "0190F3A2B4C5D6E7.1";
        let body = |ids: Option<Vec<&str>>, filter: Option<FilterBody>| BulkBody {
            ids: ids.map(|v| v.into_iter().map(str::to_owned).collect()),
            filter,
        };
        let filter = |deferred: Option<bool>| FilterBody {
            domain: Some("  ".into()),
            sender: None,
            recipient: None,
            deferred,
        };
        assert!(matches!(
            selection(body(Some(vec![key]), None)),
            Ok(Selection::Keys(k)) if k.len() == 1
        ));
        assert!(matches!(
            selection(body(None, Some(filter(Some(true))))),
            Ok(Selection::Filter { filter, limit: MAX_FILTERED }) if filter.deferred_only && filter.domain.is_none()
        ));
        for (b, field) in [
            (body(None, None), "ids"),
            (body(Some(vec![]), None), "ids"),
            (body(Some(vec![key, "0190F3A2B4C5D6E7"]), None), "ids[1]"),
            (body(None, Some(filter(None))), "filter"),
            (body(Some(vec![key]), Some(filter(Some(true)))), "filter"),
        ] {
            let e = selection(b).unwrap_err();
            assert_eq!(e.field.as_deref(), Some(field), "{e:?}");
        }
    }
}
