//! `/api/v1/messages`: message tracking, recall and expiry.
//!
//! Tracking shows each recipient's route, the policy that decided it and,
//! for secure delivery, the record the portal keeps (notified, opened,
//! read, replied, expired or recalled). Recall and extension act on the
//! vault: a recall destroys the content (key and ciphertext) and keeps the
//! metadata.

use super::extract::MessageEditor;
use std::time::SystemTime;

use axum::{
    Json,
    extract::{Query, State},
};
use sealpost_store::{
    ExtendTo, MessageFilter, QueueId, RecallOutcome, RecipientRecord, RecipientStatus,
    TrackedMessage,
};
use serde::{Deserialize, Serialize};
use time::{OffsetDateTime, format_description::well_known::Rfc3339};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{ApiError, ApiJson, ApiPath, ApiResult, ApiState};
use crate::auth::Caller;

/// Most ids one bulk recall takes.
const MAX_BULK_RECALL: usize = 1000;

pub(super) fn routes(router: OpenApiRouter<ApiState>) -> OpenApiRouter<ApiState> {
    router
        .routes(routes!(list_messages))
        .routes(routes!(get_message))
        .routes(routes!(recall_message))
        .routes(routes!(extend_message))
        .routes(routes!(bulk_recall))
}

pub(super) fn parse_time(field: &str, text: &str) -> ApiResult<SystemTime> {
    OffsetDateTime::parse(text, &Rfc3339)
        .map(SystemTime::from)
        .map_err(|_| {
            let mut e = ApiError::bad_request(
                "invalid_time",
                format!("{text:?} is not an RFC 3339 time such as 2026-12-01T09:00:00Z"),
            );
            e.field = Some(field.to_owned());
            e
        })
}

fn parse_id(text: &str) -> ApiResult<QueueId> {
    QueueId::parse(text).ok_or_else(|| {
        ApiError::bad_request(
            "invalid_id",
            format!("{text:?} is not a queue id (16 hex digits, as in the 250 reply)"),
        )
    })
}

/// A message as tracking shows it.
#[derive(Debug, Serialize, ToSchema)]
struct MessageView {
    /// The queue id (as in the `250` reply and the logs).
    id: String,
    /// RFC 3339.
    received_at: String,
    /// The envelope sender; empty for `<>`.
    sender: String,
    subject: Option<String>,
    size: u64,
    /// `mail`, `dsn` or `notification`.
    kind: &'static str,
    /// For a notification, receipt or DSN: the message it is about.
    parent: Option<String>,
    /// Whether the (sealed) content is still stored.
    has_content: bool,
    /// The SMTP account the client authenticated as on a submission
    /// listener; absent for mail relayed from `smtp.relay_networks` and
    /// for mail sealpost made.
    #[serde(skip_serializing_if = "Option::is_none")]
    smtp_account: Option<String>,
    recipients: Vec<RecipientView>,
}

/// One recipient's tracking record.
#[derive(Debug, Serialize, ToSchema)]
struct RecipientView {
    address: String,
    /// queued, delivered, failed, secure, expired, recalled or deleted.
    status: &'static str,
    /// `relay` or `secure:<definition id>`.
    route: String,
    /// The deciding policy; null when none matched (or the sender asked).
    policy_id: Option<i64>,
    attempts: u32,
    last_reply: Option<String>,
    last_attempt_at: Option<String>,
    /// Present for secure delivery.
    secure: Option<SecureView>,
    /// What the recipient did in the portal; present for secure delivery.
    portal: Option<PortalView>,
}

/// A secure recipient's portal events, read with the tracking record.
#[derive(Debug, Serialize, ToSchema)]
struct PortalView {
    /// When this recipient's notification link registered the portal
    /// account; null when it did not (the account may have been made
    /// through another message's link).
    registered_at: Option<String>,
    first_opened_at: Option<String>,
    last_opened_at: Option<String>,
    /// The recipient's read flag (set on opening; the recipient may mark
    /// it unread again).
    read: bool,
    /// The latest reply or forward from the portal.
    replied_at: Option<String>,
    /// When the recipient moved it to the Deleted folder; null while in
    /// the Inbox (a restore clears it).
    deleted_at: Option<String>,
    /// Queue ids of the recipient's portal replies and forwards of this
    /// message, oldest first; each is tracked as a message of its own.
    replies: Vec<String>,
}

/// The secure-delivery record of a recipient.
#[derive(Debug, Serialize, ToSchema)]
struct SecureView {
    definition_id: i64,
    /// `policy`, `header` (X-Sealpost-Secure) or `subject_tag`.
    trigger: &'static str,
    /// The queue id of the notification mail.
    notification_id: Option<String>,
    expires_at: String,
    notified_at: Option<String>,
    /// The notification failed for good (refused, or given up on): the
    /// recipient was never told of the message.
    notification_failed_at: Option<String>,
    /// The reply the notification failed with.
    notification_error: Option<String>,
    /// `portal`, or `tls_or_portal` (fixed at acceptance by the
    /// definition's `delivery`).
    delivery: &'static str,
    /// For `tls_or_portal`, once delivered: `message` (the message itself
    /// went over verified TLS) or `notification` (the portal notification
    /// went, TLS not verified).
    delivered_as: Option<String>,
    /// For `tls_or_portal`: the next hop's reply to what was delivered,
    /// e.g. "delivered over verified TLS to mx.example.com[192.0.2.7]:25: 250 ...".
    delivered_reply: Option<String>,
    first_opened_at: Option<String>,
    last_opened_at: Option<String>,
    read: bool,
    replied_at: Option<String>,
    /// When it expired or was recalled.
    ended_at: Option<String>,
}

fn recipient_view(r: RecipientRecord) -> RecipientView {
    RecipientView {
        address: r.address,
        status: r.status.as_str(),
        route: r.route,
        policy_id: r.policy.map(|p| p.0),
        attempts: r.attempts,
        last_reply: r.last_reply,
        last_attempt_at: r.last_attempt_at.map(sealpost_store::rfc3339),
        portal: r.secure.as_ref().map(|s| PortalView {
            registered_at: s.registered_at.map(sealpost_store::rfc3339),
            first_opened_at: s.first_opened_at.map(sealpost_store::rfc3339),
            last_opened_at: s.last_opened_at.map(sealpost_store::rfc3339),
            read: s.read,
            replied_at: s.replied_at.map(sealpost_store::rfc3339),
            deleted_at: s.deleted_at.map(sealpost_store::rfc3339),
            replies: s.replies.iter().map(ToString::to_string).collect(),
        }),
        secure: r.secure.map(|s| SecureView {
            definition_id: s.definition.0,
            trigger: s.trigger.as_str(),
            notification_id: s.notification.map(|n| n.to_string()),
            expires_at: sealpost_store::rfc3339(s.expires_at),
            notified_at: s.notified_at.map(sealpost_store::rfc3339),
            notification_failed_at: s.notify_failed_at.map(sealpost_store::rfc3339),
            notification_error: s.notify_error,
            delivery: if s.tls_or_portal {
                "tls_or_portal"
            } else {
                "portal"
            },
            delivered_as: s.delivered_as,
            delivered_reply: s.delivered_reply,
            first_opened_at: s.first_opened_at.map(sealpost_store::rfc3339),
            last_opened_at: s.last_opened_at.map(sealpost_store::rfc3339),
            read: s.read,
            replied_at: s.replied_at.map(sealpost_store::rfc3339),
            ended_at: s.ended_at.map(sealpost_store::rfc3339),
        }),
    }
}

fn message_view(t: TrackedMessage) -> MessageView {
    let m = t.message;
    MessageView {
        id: m.id.to_string(),
        received_at: sealpost_store::rfc3339(m.received_at),
        sender: m.sender,
        subject: m.subject,
        size: m.size,
        kind: m.kind.as_str(),
        parent: m.parent.map(|p| p.to_string()),
        has_content: m.has_content,
        smtp_account: m.smtp_account,
        recipients: t.recipients.into_iter().map(recipient_view).collect(),
    }
}

/// A tracking search. Text filters match part of the value, ignoring case.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct MessageQuery {
    /// Part of the envelope sender.
    from: Option<String>,
    /// Part of a recipient address.
    to: Option<String>,
    /// Part of the subject.
    subject: Option<String>,
    /// Messages with a recipient in this status: queued, delivered,
    /// failed, secure, expired, recalled, deleted.
    status: Option<String>,
    /// Received at or after (RFC 3339).
    since: Option<String>,
    /// Received before (RFC 3339).
    until: Option<String>,
    /// The `next` of the previous page.
    after: Option<String>,
    /// Page size, 1 to 500 (default 50).
    limit: Option<usize>,
    /// Include notifications, receipts and DSNs (default false).
    all: Option<bool>,
    /// `newest` (default) or `oldest` first; `after` continues in it.
    order: Option<String>,
}

/// A page of messages, newest (or oldest) first.
#[derive(Debug, Serialize, ToSchema)]
struct MessagePage {
    messages: Vec<MessageView>,
    /// Pass as `after` for the next page; null on the last page.
    next: Option<String>,
}

/// Searches messages.
#[utoipa::path(get, path = "/messages", tag = "messages", params(MessageQuery),
    responses((status = 200, body = MessagePage), (status = 400, body = ApiError)))]
async fn list_messages(
    _caller: Caller,
    State(state): State<ApiState>,
    query: Result<Query<MessageQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<MessagePage>> {
    let Query(q) = query.map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))?;
    let limit = q.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        let mut e = ApiError::bad_request("invalid_limit", "limit must be from 1 to 500");
        e.field = Some("limit".into());
        return Err(e);
    }
    let status = match q.status.as_deref() {
        None => None,
        Some(s) => Some(RecipientStatus::parse(s).ok_or_else(|| {
            let mut e = ApiError::bad_request(
                "invalid_status",
                format!(
                    "{s:?}: use queued, delivered, failed, secure, expired, recalled or deleted"
                ),
            );
            e.field = Some("status".into());
            e
        })?),
    };
    let oldest_first = match q.order.as_deref() {
        None | Some("newest") => false,
        Some("oldest") => true,
        Some(other) => {
            let mut e =
                ApiError::bad_request("invalid_order", format!("{other:?}: use newest or oldest"));
            e.field = Some("order".into());
            return Err(e);
        }
    };
    let filter = MessageFilter {
        from: q.from.filter(|s| !s.is_empty()),
        to: q.to.filter(|s| !s.is_empty()),
        subject: q.subject.filter(|s| !s.is_empty()),
        status,
        since: q
            .since
            .as_deref()
            .map(|t| parse_time("since", t))
            .transpose()?,
        until: q
            .until
            .as_deref()
            .map(|t| parse_time("until", t))
            .transpose()?,
        all_kinds: q.all.unwrap_or(false),
        oldest_first,
        after: q.after.as_deref().map(parse_id).transpose()?,
        limit,
    };
    let found = state.secure.search(filter).await?;
    let next = (found.len() == limit)
        .then(|| found.last().map(|t| t.message.id.to_string()))
        .flatten();
    Ok(Json(MessagePage {
        messages: found.into_iter().map(message_view).collect(),
        next,
    }))
}

/// One message with its recipients' tracking records.
#[utoipa::path(get, path = "/messages/{id}", tag = "messages", params(("id" = String, Path)),
    responses((status = 200, body = MessageView), (status = 404, body = ApiError)))]
async fn get_message(
    _caller: Caller,
    State(state): State<ApiState>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<MessageView>> {
    let id = parse_id(&id)?;
    Ok(Json(message_view(state.secure.tracked(&id).await?)))
}

/// What a recall did.
#[derive(Debug, Serialize, ToSchema)]
struct RecallView {
    id: String,
    /// Secure recipients whose access ended.
    recalled: usize,
    /// Deliveries (relay copies, notifications) still queued and now cancelled.
    cancelled: usize,
    /// Whether the content was destroyed.
    content_destroyed: bool,
}

fn recall_view(o: RecallOutcome) -> RecallView {
    RecallView {
        id: o.id.to_string(),
        recalled: o.recalled,
        cancelled: o.cancelled,
        content_destroyed: o.destroyed,
    }
}

/// Recalls a message: secure recipients see "recalled by the sender",
/// queued deliveries are cancelled, the content is destroyed.
#[utoipa::path(post, path = "/messages/{id}/recall", tag = "messages", params(("id" = String, Path)),
    responses((status = 200, body = RecallView), (status = 403, body = ApiError), (status = 404, body = ApiError)))]
async fn recall_message(
    MessageEditor(caller): MessageEditor,
    State(state): State<ApiState>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<RecallView>> {
    let id = parse_id(&id)?;
    let mut outcomes = state
        .secure
        .recall(vec![id.clone()], SystemTime::now(), caller.actor())
        .await?;
    let outcome = outcomes
        .pop()
        .ok_or_else(|| ApiError::not_found(format!("message {id} not found")))?;
    tracing::info!(queue_id = %id, by = %caller.key_id, recalled = outcome.recalled, cancelled = outcome.cancelled, "message recalled");
    metrics::counter!("sealpost_secure_recalled_total").increment(outcome.recalled as u64);
    Ok(Json(recall_view(outcome)))
}

/// Many messages to recall.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct BulkRecall {
    /// Queue ids, at most 1000.
    ids: Vec<String>,
}

/// What a bulk recall did.
#[derive(Debug, Serialize, ToSchema)]
struct BulkRecallView {
    recalled: Vec<RecallView>,
    /// Ids that name no message.
    not_found: Vec<String>,
}

/// Recalls many messages at once (one commit).
#[utoipa::path(post, path = "/messages/recall", tag = "messages", request_body = BulkRecall,
    responses((status = 200, body = BulkRecallView), (status = 400, body = ApiError), (status = 403, body = ApiError)))]
async fn bulk_recall(
    MessageEditor(caller): MessageEditor,
    State(state): State<ApiState>,
    ApiJson(body): ApiJson<BulkRecall>,
) -> ApiResult<Json<BulkRecallView>> {
    if body.ids.is_empty() || body.ids.len() > MAX_BULK_RECALL {
        let mut e = ApiError::bad_request(
            "invalid_ids",
            format!("ids must list 1 to {MAX_BULK_RECALL} queue ids"),
        );
        e.field = Some("ids".into());
        return Err(e);
    }
    let mut ids = Vec::with_capacity(body.ids.len());
    for (i, text) in body.ids.iter().enumerate() {
        let id = parse_id(text).map_err(|mut e| {
            e.field = Some(format!("ids[{i}]"));
            e
        })?;
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    let outcomes = state
        .secure
        .recall(ids.clone(), SystemTime::now(), caller.actor())
        .await?;
    let not_found = ids
        .iter()
        .filter(|id| !outcomes.iter().any(|o| &o.id == *id))
        .map(ToString::to_string)
        .collect();
    tracing::info!(by = %caller.key_id, messages = outcomes.len(), "bulk recall");
    metrics::counter!("sealpost_secure_recalled_total")
        .increment(outcomes.iter().map(|o| o.recalled as u64).sum());
    Ok(Json(BulkRecallView {
        recalled: outcomes.into_iter().map(recall_view).collect(),
        not_found,
    }))
}

/// A new expiry: `days` more than the current one, or an exact time.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ExtendBody {
    /// Days to add to the current expiry (1 to 3650).
    days: Option<u32>,
    /// The new expiry (RFC 3339).
    expires_at: Option<String>,
}

/// The expiry now in force.
#[derive(Debug, Serialize, ToSchema)]
struct ExtendView {
    id: String,
    expires_at: String,
}

/// Moves the expiry of a message's secure delivery (never past
/// `vault.retention` after receipt).
#[utoipa::path(post, path = "/messages/{id}/extend", tag = "messages", params(("id" = String, Path)),
    request_body = ExtendBody,
    responses((status = 200, body = ExtendView), (status = 404, body = ApiError), (status = 409, body = ApiError), (status = 422, body = ApiError)))]
async fn extend_message(
    MessageEditor(caller): MessageEditor,
    State(state): State<ApiState>,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<ExtendBody>,
) -> ApiResult<Json<ExtendView>> {
    let id = parse_id(&id)?;
    let to = match (body.days, body.expires_at.as_deref()) {
        (Some(days), None) if (1..=3650).contains(&days) => ExtendTo::Days(days),
        (None, Some(text)) => ExtendTo::Until(parse_time("expires_at", text)?),
        _ => {
            return Err(ApiError {
                status: axum::http::StatusCode::UNPROCESSABLE_ENTITY,
                code: "invalid_extension".into(),
                message: "give either days (1 to 3650) or expires_at (RFC 3339)".into(),
                field: None,
            });
        }
    };
    let set = state
        .secure
        .extend(&id, to, state.retention, SystemTime::now(), caller.actor())
        .await?;
    tracing::info!(queue_id = %id, by = %caller.key_id, expires_at = %sealpost_store::rfc3339(set), "expiry extended");
    Ok(Json(ExtendView {
        id: id.to_string(),
        expires_at: sealpost_store::rfc3339(set),
    }))
}
