//! Administration | Gateway | Policies (issue 16, item 2; the walk-through's
//! steps 1-2): the policy types, then the Secure Messaging list with each
//! policy's narrative, from, to, definition, validity status and override,
//! filtered by status. Every role may look; changing comes with the policy
//! form.

use std::{cmp::Ordering, sync::Arc, time::SystemTime};

use axum::{
    extract::{Query, State},
    http::StatusCode,
    response::Response,
};
use sealpost_policy::{Action, AddressBasis, Party, Policy, PolicySet, PolicyStatus};
use serde::{Deserialize, Serialize};

use super::{ConsoleState, SignedIn, home, listing::ListQuery};

#[derive(Debug, Serialize)]
struct PolicyRow {
    id: i64,
    narrative: String,
    from: String,
    to: String,
    definition: String,
    status: &'static str,
    range: Option<String>,
    #[serde(rename = "override")]
    override_: bool,
    /// Recipients it decided in the last [`HITS_DAYS`] days.
    hits: u64,
}

/// The window of the list's hit counts.
const HITS_DAYS: u64 = 30;

fn status_text(s: PolicyStatus) -> &'static str {
    match s {
        PolicyStatus::Active => "active",
        PolicyStatus::Future => "future",
        PolicyStatus::Expired => "expired",
        PolicyStatus::Disabled => "disabled",
    }
}

/// A side of a policy in words, with a profile group by its name.
fn side(set: &PolicySet, party: &Party, basis: Option<AddressBasis>) -> String {
    party.describe_with(basis, |id| set.group_name(id).map(str::to_owned))
}

fn row(set: &PolicySet, p: &Policy, now: SystemTime, hits: u64) -> PolicyRow {
    let definition = match p.action {
        Action::ApplyDefinition(id) => set
            .definition(id)
            .map_or_else(|| format!("#{}", id.0), |d| d.name().to_owned()),
        Action::NoAction => "take no action".to_owned(),
    };
    let date = |t: SystemTime| sealpost_store::rfc3339(t)[..10].to_owned();
    let range = match (p.validity.starts, p.validity.ends) {
        (None, None) => None,
        (Some(s), None) => Some(format!("from {}", date(s))),
        (None, Some(e)) => Some(format!("until {}", date(e))),
        (Some(s), Some(e)) => Some(format!("{} to {}", date(s), date(e))),
    };
    PolicyRow {
        id: p.id.0,
        narrative: p.narrative.clone(),
        from: side(set, &p.from, Some(p.from_basis)),
        to: side(set, &p.to, None),
        definition,
        status: status_text(p.status(now)),
        range,
        override_: p.override_,
        hits,
    }
}

impl ConsoleState {
    /// The Secure Messaging policies as the gateway applies them now: the
    /// live snapshot, checked and parsed when it was made (every change
    /// through the console or the API swaps it before answering), so a
    /// list of 10,000 policies costs no database read or parsing.
    fn secure_policies(&self) -> Arc<PolicySet> {
        self.policy().snapshot()
    }
}

pub(super) async fn types(State(state): State<ConsoleState>, signed_in: SignedIn) -> Response {
    let set = state.secure_policies();
    let policies = set.policies();
    let now = SystemTime::now();
    state.page(
        "policy_types.html",
        StatusCode::OK,
        minijinja::context! {
            admin => home::admin_view(&signed_in.admin),
            csrf => signed_in.csrf.as_str(),
            total => policies.len(),
            active => policies.iter().filter(|p| p.status(now) == PolicyStatus::Active).count(),
        },
    )
}

/// The list's own filter and notices; the search, sort and page are a
/// [`ListQuery`].
#[derive(Debug, Default, Deserialize)]
pub(super) struct PolicyFilter {
    #[serde(default)]
    status: String,
    /// A policy just saved or deleted, for the notice.
    #[serde(default)]
    saved: Option<i64>,
    #[serde(default)]
    deleted: Option<i64>,
}

#[derive(Debug, Serialize)]
struct StatusChoice {
    value: &'static str,
    label: &'static str,
}

const SORTS: [(&str, &str); 8] = [
    ("narrative", "Narrative"),
    ("from", "From"),
    ("to", "To"),
    ("definition", "Definition"),
    ("status", "Validity"),
    ("override", "Override"),
    ("hits", "Hits (30 days)"),
    ("id", "Id"),
];

/// Compares two rows by column `by`, ascending.
fn compare(by: &str, a: &PolicyRow, b: &PolicyRow) -> Ordering {
    let text = |a: &str, b: &str| a.to_lowercase().cmp(&b.to_lowercase());
    match by {
        "narrative" => text(&a.narrative, &b.narrative),
        "from" => text(&a.from, &b.from),
        "to" => text(&a.to, &b.to),
        "definition" => text(&a.definition, &b.definition),
        "status" => a.status.cmp(b.status),
        "override" => a.override_.cmp(&b.override_),
        "hits" => a.hits.cmp(&b.hits),
        _ => a.id.cmp(&b.id),
    }
}

pub(super) async fn list(
    State(state): State<ConsoleState>,
    signed_in: SignedIn,
    Query(filter): Query<PolicyFilter>,
    Query(query): Query<ListQuery>,
) -> Response {
    let set = state.secure_policies();
    let policies = set.policies();
    let now = SystemTime::now();
    let hits = match state
        .admin_store()
        .policy_hits(now - std::time::Duration::from_secs(HITS_DAYS * 86_400))
        .await
    {
        Ok(hits) => hits,
        Err(e) => return state.failed(&e),
    };
    let wanted = ["active", "future", "expired", "disabled"]
        .into_iter()
        .find(|s| *s == filter.status);
    let listing = query.listing(
        "/console/policies/secure-messaging",
        &SORTS,
        vec![("status", wanted.unwrap_or("").to_owned())],
    );
    let mut rows: Vec<PolicyRow> = policies
        .iter()
        .map(|p| row(&set, p, now, hits.get(&p.id).copied().unwrap_or(0)))
        .filter(|r| wanted.is_none_or(|w| r.status == w))
        .filter(|r| listing.matches(&[&r.narrative, &r.from, &r.to, &r.definition]))
        .collect();
    listing.sort_rows(&mut rows, |r| r.id, compare);
    let (shown, pager) = listing.page(rows);
    let status_href = |s: &str| listing.url(&[("status", s.to_owned()), ("page", String::new())]);
    state.page(
        "policies.html",
        StatusCode::OK,
        minijinja::context! {
            admin => home::admin_view(&signed_in.admin),
            csrf => signed_in.csrf.as_str(),
            policies => shown,
            may_edit => signed_in.admin.role.may_edit_policy(),
            notice => match (filter.saved, filter.deleted) {
                (Some(id), _) => Some(format!("Policy #{id} is saved. It applies from the next message.")),
                (None, Some(id)) => Some(format!("Policy #{id} is deleted.")),
                (None, None) => None,
            },
            status => wanted.unwrap_or(""),
            statuses => [
                StatusChoice { value: "", label: "All" },
                StatusChoice { value: "active", label: "Active" },
                StatusChoice { value: "future", label: "Future" },
                StatusChoice { value: "expired", label: "Expired" },
                StatusChoice { value: "disabled", label: "Disabled" },
            ].into_iter().map(|c| minijinja::context! { label => c.label, value => c.value, href => status_href(c.value) }).collect::<Vec<_>>(),
            ..pager
        },
    )
}
