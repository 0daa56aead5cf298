//! Policy test (issue 16, item 2): from, to, header From, client IP and
//! time → the explanation table: each policy, whether it matched and why
//! not, the override step, the ranking and the winner. Decided by the live
//! snapshot through the same [`TestMessage`] as `POST /api/v1/policy-test`;
//! nothing is sent or stored. A GET form, so a result can be linked.

use std::{collections::BTreeMap, time::SystemTime};

use axum::{
    extract::{Query, State},
    http::StatusCode,
    response::Response,
};
use sealpost_policy::{Direction, Invalid, PolicySet};
use serde::{Deserialize, Serialize};
use time::{OffsetDateTime, PrimitiveDateTime};

use super::{ConsoleState, SignedIn, home};
use crate::api::policy_test::TestMessage;

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(default)]
pub(super) struct TestForm {
    from: String,
    to: String,
    header_from: String,
    ip: String,
    /// `YYYY-MM-DDTHH:MM` (a `datetime-local` field), UTC; empty: now.
    at: String,
}

#[derive(Debug, Serialize)]
struct Row {
    id: i64,
    narrative: String,
    from: String,
    to: String,
    override_: bool,
    matched: bool,
    why_not: Option<String>,
    /// 1 for the winner, 2 for the next...; none when not a candidate.
    rank: Option<usize>,
    winner: bool,
}

fn parse_at(text: &str) -> Result<Option<SystemTime>, Invalid> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let formats = [
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]"),
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]"),
        time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]"),
    ];
    formats
        .iter()
        .find_map(|f| PrimitiveDateTime::parse(text, f).ok())
        .map(|t| Some(SystemTime::from(t.assume_utc())))
        .ok_or_else(|| {
            Invalid::new(
                "at",
                "invalid_time",
                format!("{text:?} is not a time: write it as YYYY-MM-DDTHH:MM (UTC)"),
            )
        })
}

fn direction_text(d: Direction) -> &'static str {
    match d {
        Direction::InternalToExternal => {
            "Internal sender, external recipient: Secure Messaging policies apply."
        }
        Direction::NullSender => {
            "The null sender (a bounce): always relayed; the verdicts below say which conditions would hold."
        }
        Direction::ExternalSender => {
            "The sender is not internal: always relayed; the verdicts below say which conditions would hold."
        }
        Direction::InternalRecipient => {
            "The recipient is internal: always relayed; the verdicts below say which conditions would hold."
        }
    }
}

/// Each verdict with its policy as the snapshot that decided holds it.
fn rows(set: &PolicySet, explanation: &sealpost_policy::Explanation) -> Vec<Row> {
    let group_name = |id| set.group_name(id).map(str::to_owned);
    explanation
        .verdicts
        .iter()
        .map(|v| {
            let p = set.policy(v.policy);
            Row {
                id: v.policy.0,
                narrative: p.map(|p| p.narrative.clone()).unwrap_or_default(),
                from: p
                    .map(|p| p.from.describe_with(Some(p.from_basis), group_name))
                    .unwrap_or_default(),
                to: p
                    .map(|p| p.to.describe_with(None, group_name))
                    .unwrap_or_default(),
                override_: p.is_some_and(|p| p.override_),
                matched: v.matched,
                why_not: v.mismatch.as_ref().map(ToString::to_string),
                rank: explanation
                    .ranking
                    .iter()
                    .position(|r| *r == v.policy)
                    .map(|i| i + 1),
                winner: explanation.winner == Some(v.policy),
            }
        })
        .collect()
}

pub(super) async fn page(
    State(state): State<ConsoleState>,
    signed_in: SignedIn,
    Query(form): Query<TestForm>,
) -> Response {
    let asked = !form.to.trim().is_empty() || !form.from.trim().is_empty();
    let message = if asked {
        Some(parse_at(&form.at).and_then(|at| {
            TestMessage::parse(
                &form.from,
                &form.to,
                Some(&form.header_from),
                Some(&form.ip),
                at,
            )
        }))
    } else {
        None
    };
    let (status, error, result) = match message {
        None => (StatusCode::OK, None, None),
        Some(Err(e)) => (StatusCode::UNPROCESSABLE_ENTITY, Some(e), None),
        Some(Ok(message)) => {
            // The explanation, the names and the table all come from one
            // snapshot: the one that decides mail now.
            let set = state.policy().snapshot();
            let explanation = message.explain(&set);
            let definition = explanation
                .definition
                .and_then(|d| set.definition(d))
                .map(|d| d.name().to_owned());
            let result = minijinja::context! {
                route => explanation.route,
                direction => direction_text(explanation.direction),
                override_applied => explanation.override_applied,
                winner => explanation.winner.map(|w| w.0),
                definition,
                at => sealpost_store::rfc3339(message.at),
                rows => rows(&set, &explanation),
            };
            (StatusCode::OK, None, Some(result))
        }
    };
    let errors: BTreeMap<&str, &str> = error
        .as_ref()
        .map(|e| (e.field.as_str(), e.message.as_str()))
        .into_iter()
        .collect();
    state.page(
        "policy_test.html",
        status,
        minijinja::context! {
            admin => home::admin_view(&signed_in.admin),
            csrf => signed_in.csrf.as_str(),
            form,
            errors,
            result,
            now => OffsetDateTime::now_utc().format(time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]")).unwrap_or_default(),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_utc_minutes() {
        let t = parse_at("2026-12-06T10:30").unwrap().unwrap();
        assert_eq!(sealpost_store::rfc3339(t), "2026-12-06T10:30:00Z");
        assert!(parse_at("").unwrap().is_none());
        assert_eq!(parse_at("tomorrow").unwrap_err().field, "at");
    }
}
