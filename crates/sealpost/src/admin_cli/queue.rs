//! `sealpost queue`: the relay queue through the running gateway's API
//! (`/api/v1/queue`): its depth per next hop, the waiting recipients, and
//! retry now, bounce and delete, by recipient id or by filter.

use serde_json::{Value, json};

use super::{ADDRESS, Outcome, SHORT, call, column, fail, query_value, shown, table, usage};
use crate::api_client::ApiClient;

/// Longest error shown in a listing.
const ERROR: usize = 100;

/// Which waiting recipients (the filters of `list` and of bulk actions).
#[derive(Debug, Default)]
pub struct QueueFilter {
    pub domain: Option<String>,
    pub sender: Option<String>,
    pub recipient: Option<String>,
    pub deferred: bool,
}

impl QueueFilter {
    fn is_empty(&self) -> bool {
        self.domain.is_none() && self.sender.is_none() && self.recipient.is_none() && !self.deferred
    }
}

/// `sealpost queue summary`: the depth per next hop and domain.
pub fn summary(api: &ApiClient) -> Outcome {
    let summary = call(api, "GET", "/queue", None, 200)?;
    let mut rows = Vec::new();
    let count = |v: &Value| v.as_u64().unwrap_or(0).to_string();
    for hop in summary["next_hops"].as_array().into_iter().flatten() {
        for domain in hop["domains"].as_array().into_iter().flatten() {
            rows.push(vec![
                shown(&hop["next_hop"], ADDRESS),
                shown(&domain["domain"], ADDRESS),
                count(&domain["queued"]),
                count(&domain["deferred"]),
                count(&domain["in_delivery"]),
                shown(&domain["oldest"], SHORT),
                shown(&domain["next_attempt"], SHORT),
            ]);
        }
    }
    println!(
        "{} recipient(s) queued, {} deferred, {} in delivery",
        count(&summary["queued"]),
        count(&summary["deferred"]),
        count(&summary["in_delivery"])
    );
    if !rows.is_empty() {
        table(
            &[
                column("NEXT HOP", ADDRESS),
                column("DOMAIN", ADDRESS),
                column("QUEUED", 12),
                column("DEFERRED", 12),
                column("IN DELIVERY", 12),
                column("OLDEST", SHORT),
                column("NEXT ATTEMPT", SHORT),
            ],
            &rows,
        );
    }
    Ok(())
}

/// The order of `sealpost queue list`.
#[derive(Debug, Default)]
pub struct ListOrder {
    pub sort: Option<String>,
    pub descending: bool,
    pub limit: usize,
}

/// `sealpost queue list`: waiting recipients with their last error and
/// next attempt, following pages up to `limit`.
pub fn list(api: &ApiClient, filter: &QueueFilter, order: &ListOrder) -> Outcome {
    let mut query = Vec::new();
    for (name, value) in [
        ("domain", &filter.domain),
        ("sender", &filter.sender),
        ("recipient", &filter.recipient),
        ("sort", &order.sort),
    ] {
        if let Some(v) = value {
            query.push(format!("{name}={}", query_value(v)));
        }
    }
    if filter.deferred {
        query.push("deferred=true".into());
    }
    if order.descending {
        query.push("order=desc".into());
    }
    let mut rows = Vec::new();
    let mut total = 0;
    // Bounded: each page is at most 500 rows, and we stop at `limit`.
    for _ in 0..=(order.limit / 500 + 1) {
        let want = (order.limit - rows.len()).clamp(1, 500);
        let mut q = query.clone();
        q.push(format!("limit={want}"));
        q.push(format!("offset={}", rows.len()));
        let page = call(
            api,
            "GET",
            &format!("/queue/recipients?{}", q.join("&")),
            None,
            200,
        )?;
        total = page["total"].as_u64().unwrap_or(0);
        let got = page["recipients"].as_array().map_or(0, Vec::len);
        for r in page["recipients"].as_array().into_iter().flatten() {
            let state = if r["in_delivery"] == json!(true) {
                "in delivery".to_owned()
            } else {
                r["attempts"].to_string()
            };
            rows.push(vec![
                shown(&r["id"], SHORT),
                shown(&r["recipient"], ADDRESS),
                shown(&r["sender"], ADDRESS),
                state,
                shown(&r["next_attempt_at"], SHORT),
                shown(&r["last_error"], ERROR),
            ]);
        }
        if got < want || rows.len() >= order.limit {
            break;
        }
    }
    table(
        &[
            column("ID", SHORT),
            column("RECIPIENT", ADDRESS),
            column("SENDER", ADDRESS),
            column("ATTEMPTS", 12),
            column("NEXT ATTEMPT", SHORT),
            column("LAST ERROR", ERROR),
        ],
        &rows,
    );
    if (rows.len() as u64) < total {
        println!(
            "({} of {total} shown; narrow with --domain, --sender, --recipient or raise --limit)",
            rows.len()
        );
    }
    Ok(())
}

/// `sealpost queue retry|bounce|delete`: by ids, or every waiting
/// recipient the filter matches (`--all-deferred` is `deferred`).
pub fn act(api: &ApiClient, action: &str, ids: &[String], filter: &QueueFilter) -> Outcome {
    let body = match (ids.is_empty(), filter.is_empty()) {
        (false, true) => json!({ "ids": ids }),
        (true, false) => json!({ "filter": {
            "domain": filter.domain,
            "sender": filter.sender,
            "recipient": filter.recipient,
            "deferred": filter.deferred,
        }}),
        (false, false) => {
            return Err(usage(
                "name recipient ids or give a filter (--all-deferred, --domain, --sender, \
                 --recipient), not both",
            ));
        }
        (true, true) => {
            return Err(usage(
                "name recipient ids (as `sealpost queue list` shows them) or give a filter: \
                 --all-deferred, --domain, --sender or --recipient",
            ));
        }
    };
    let body = serde_json::to_vec(&body).unwrap_or_default();
    let result = call(
        api,
        "POST",
        &format!("/queue/{action}"),
        Some(("application/json", &body)),
        200,
    )?;
    let ids_of = |name: &str| -> Vec<String> {
        result[name]
            .as_array()
            .into_iter()
            .flatten()
            .map(|id| shown(id, SHORT))
            .collect()
    };
    let (done, in_delivery, not_queued) =
        (ids_of("done"), ids_of("in_delivery"), ids_of("not_queued"));
    let verb = match action {
        "retry" => "retried now (a worker tries them at once)",
        "bounce" => "bounced (each sender gets a delivery status notification)",
        _ => "deleted (no report sent)",
    };
    println!("{} recipient(s) {verb}", done.len());
    for id in &done {
        println!("  {id}");
    }
    if !in_delivery.is_empty() {
        println!(
            "{} recipient(s) left alone: being delivered right now (try again shortly): {}",
            in_delivery.len(),
            in_delivery.join(", ")
        );
    }
    let remaining = result["remaining"].as_u64().unwrap_or(0);
    if remaining > 0 {
        println!("{remaining} more recipient(s) match; run the command again for them");
    }
    if !not_queued.is_empty() {
        return Err(fail(format!(
            "not waiting in the queue (delivered, failed, or no such recipient): {}",
            not_queued.join(", ")
        )));
    }
    if !ids.is_empty() && !in_delivery.is_empty() {
        return Err(fail(
            "some recipients were being delivered and were left alone",
        ));
    }
    Ok(())
}
