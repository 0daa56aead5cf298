//! The tracking changes: recall one message, change its expiry, recall
//! the messages ticked on a results page. Each is a POST form checked for
//! its CSRF token and origin, by the store calls the API's `/messages`
//! makes, audited with the administrator as actor. The route table lets
//! only super and tracking admins reach these handlers.

use std::time::SystemTime;

use axum::{
    body::Bytes,
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Redirect, Response},
};
use sealpost_store::{ExtendTo, QueueId, StoreError};
use time::{
    PrimitiveDateTime, format_description::well_known::Rfc3339, macros::format_description,
};

use super::{Outcome, filters::Filters, form, message::Forms};
use crate::console::{ConsoleState, SignedIn};

/// Most messages one bulk recall takes (as the API's).
const MAX_BULK_RECALL: usize = 1000;

fn body_pairs(body: &Bytes) -> Vec<(String, String)> {
    form::pairs(&String::from_utf8_lossy(body))
}

/// A new expiry as typed: `2026-12-20T17:00` (a `datetime-local` field),
/// with seconds or a space, or RFC 3339; without an offset it is UTC.
fn parse_expiry(text: &str) -> Option<SystemTime> {
    let text = text.trim();
    if let Ok(t) = time::OffsetDateTime::parse(text, &Rfc3339) {
        return Some(t.into());
    }
    let text = text.replacen(' ', "T", 1);
    [
        format_description!("[year]-[month]-[day]T[hour]:[minute]"),
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]"),
    ]
    .iter()
    .find_map(|f| PrimitiveDateTime::parse(&text, f).ok())
    .map(|t| t.assume_utc().into())
}

/// `POST /console/tracking/{id}/recall` (`confirm` ticked).
pub(in crate::console) async fn recall(
    State(state): State<ConsoleState>,
    signed_in: SignedIn,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let pairs = body_pairs(&body);
    let csrf = form::first(&pairs, "csrf").unwrap_or("");
    if let Some(refused) = state.refuse_form(&signed_in, &headers, csrf) {
        return refused;
    }
    let Some(queue_id) = QueueId::parse(&id) else {
        return state.no_message(&signed_in, &id);
    };
    if form::first(&pairs, "confirm") != Some("yes") {
        let forms = Forms {
            confirm_error: Some(
                "Tick the box to confirm: a recall destroys the content for good.".into(),
            ),
            ..Forms::default()
        };
        return state
            .message_page(
                &signed_in,
                &id,
                None,
                forms,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await;
    }
    let outcome = match state
        .secure()
        .recall(vec![queue_id.clone()], SystemTime::now(), signed_in.actor())
        .await
    {
        Ok(mut outcomes) => outcomes.pop(),
        Err(e) => return state.failed(&e),
    };
    let Some(outcome) = outcome else {
        return state.no_message(&signed_in, &id);
    };
    tracing::info!(queue_id = %queue_id, by = %signed_in.admin.name, recalled = outcome.recalled,
        cancelled = outcome.cancelled, "message recalled in the console");
    metrics::counter!("sealpost_secure_recalled_total").increment(outcome.recalled as u64);
    Redirect::to(&format!("/console/tracking/{queue_id}?done=recalled")).into_response()
}

/// `POST /console/tracking/{id}/extend` (`expires_at`, UTC).
pub(in crate::console) async fn extend(
    State(state): State<ConsoleState>,
    signed_in: SignedIn,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let pairs = body_pairs(&body);
    let csrf = form::first(&pairs, "csrf").unwrap_or("");
    if let Some(refused) = state.refuse_form(&signed_in, &headers, csrf) {
        return refused;
    }
    let Some(queue_id) = QueueId::parse(&id) else {
        return state.no_message(&signed_in, &id);
    };
    let typed = form::first(&pairs, "expires_at").unwrap_or("").to_owned();
    let refuse = |error: String| Forms {
        expires_at: Some(typed.clone()),
        expires_error: Some(error),
        ..Forms::default()
    };
    let Some(until) = parse_expiry(&typed) else {
        let forms = refuse(format!(
            "{:?} is not a date and time such as 2026-12-20T17:00 (UTC).",
            sealpost_policy::text::one_line(&typed, 40)
        ));
        return state
            .message_page(
                &signed_in,
                &id,
                None,
                forms,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await;
    };
    let result = state
        .secure()
        .extend(
            &queue_id,
            ExtendTo::Until(until),
            state.settings().retention,
            SystemTime::now(),
            signed_in.actor(),
        )
        .await;
    match result {
        Ok(set) => {
            tracing::info!(queue_id = %queue_id, by = %signed_in.admin.name,
                expires_at = %sealpost_store::rfc3339(set), "expiry changed in the console");
            Redirect::to(&format!("/console/tracking/{queue_id}?done=extended")).into_response()
        }
        Err(StoreError::Refused(why)) => {
            let mut why = why;
            if let Some(first) = why.get(..1) {
                why = first.to_uppercase() + &why[1..];
            }
            state
                .message_page(
                    &signed_in,
                    &id,
                    None,
                    refuse(format!("{why}.")),
                    StatusCode::CONFLICT,
                )
                .await
        }
        Err(StoreError::NotFound(_)) => state.no_message(&signed_in, &id),
        Err(e) => state.failed(&e),
    }
}

/// `POST /console/tracking/recall`: the ticked `ids` of a results page,
/// `confirm`, and `back` (the search to return to).
pub(in crate::console) async fn bulk_recall(
    State(state): State<ConsoleState>,
    signed_in: SignedIn,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let pairs = body_pairs(&body);
    let csrf = form::first(&pairs, "csrf").unwrap_or("");
    if let Some(refused) = state.refuse_form(&signed_in, &headers, csrf) {
        return refused;
    }
    let back = Filters::from_pairs(&form::pairs(form::first(&pairs, "back").unwrap_or("")));
    let mut ids: Vec<QueueId> = Vec::new();
    let mut bad = None;
    for (_, text) in pairs.iter().filter(|(k, _)| k == "ids") {
        match QueueId::parse(text) {
            Some(id) if !ids.contains(&id) => ids.push(id),
            Some(_) => {}
            None => bad = Some(text.clone()),
        }
    }
    let error = if let Some(bad) = bad {
        Some(format!(
            "{:?} is not a queue id; nothing was recalled.",
            sealpost_policy::text::one_line(&bad, 40)
        ))
    } else if ids.is_empty() {
        Some("Tick the messages to recall first.".to_owned())
    } else if ids.len() > MAX_BULK_RECALL {
        Some(format!(
            "At most {MAX_BULK_RECALL} messages at once; nothing was recalled."
        ))
    } else if form::first(&pairs, "confirm") != Some("yes") {
        Some("Tick the box to confirm: a recall destroys the content for good.".to_owned())
    } else {
        None
    };
    if let Some(error) = error {
        return state
            .tracking_page(
                &signed_in,
                back,
                Outcome {
                    notice: None,
                    bulk_error: Some(error),
                },
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await;
    }
    let outcomes = match state
        .secure()
        .recall(ids, SystemTime::now(), signed_in.actor())
        .await
    {
        Ok(outcomes) => outcomes,
        Err(e) => return state.failed(&e),
    };
    tracing::info!(by = %signed_in.admin.name, messages = outcomes.len(), "bulk recall in the console");
    metrics::counter!("sealpost_secure_recalled_total")
        .increment(outcomes.iter().map(|o| o.recalled as u64).sum());
    let query = back.query();
    let sep = if query.is_empty() { "" } else { "&" };
    Redirect::to(&format!(
        "/console/tracking?{query}{sep}recalled={}",
        outcomes.len()
    ))
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiries_parse_as_utc() {
        let t = parse_expiry("2026-12-20T17:00").unwrap();
        assert_eq!(sealpost_store::rfc3339(t), "2026-12-20T17:00:00Z");
        assert_eq!(
            parse_expiry("2026-12-20 17:00:30"),
            Some(t + std::time::Duration::from_secs(30))
        );
        assert_eq!(parse_expiry("2026-12-20T18:00:00+01:00"), Some(t));
        assert_eq!(parse_expiry("20.12.2026"), None);
        assert_eq!(parse_expiry(""), None);
    }
}
