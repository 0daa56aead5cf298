//! Administration | Gateway | Policies (issue 16, item 2; the walk-through's
//! steps 1-2): the policy types, then the Secure Messaging list with each
//! policy's narrative, from, to, definition, validity status and override,
//! filtered by status. Every role may look; changing comes with the policy
//! form.

use std::time::SystemTime;

use axum::{
    extract::{Query, State},
    http::StatusCode,
    response::Response,
};
use sealpost_policy::{
    Action, AddressBasis, Party, Policy, PolicyDocument, PolicyStatus, PolicyType,
};
use serde::{Deserialize, Serialize};

use super::{ConsoleState, SignedIn, home};

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
}

fn status_text(s: PolicyStatus) -> &'static str {
    match s {
        PolicyStatus::Active => "active",
        PolicyStatus::Future => "future",
        PolicyStatus::Expired => "expired",
        PolicyStatus::Disabled => "disabled",
    }
}

/// A side of a policy in words, with a profile group by its name.
fn side(doc: &PolicyDocument, party: &Party, basis: Option<AddressBasis>) -> String {
    party.describe_with(basis, |id| {
        doc.groups
            .iter()
            .find(|g| g.id == id)
            .map(|g| g.group.name.clone())
    })
}

fn row(doc: &PolicyDocument, p: &Policy, now: SystemTime) -> PolicyRow {
    let definition = match p.action {
        Action::ApplyDefinition(id) => doc
            .definitions
            .iter()
            .find(|d| d.id == id)
            .map_or_else(|| format!("#{}", id.0), |d| d.definition.name.clone()),
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
        from: side(doc, &p.from, Some(p.from_basis)),
        to: side(doc, &p.to, None),
        definition,
        status: status_text(p.status(now)),
        range,
        override_: p.override_,
    }
}

impl ConsoleState {
    /// The stored Secure Messaging policies, validated, with the document
    /// their names come from.
    async fn secure_policies(&self) -> Result<(PolicyDocument, Vec<Policy>), Response> {
        let doc = self
            .admin_store()
            .load_config()
            .await
            .map_err(|e| self.failed(&e))?;
        let policies = doc
            .policies
            .iter()
            .filter(|e| e.policy.policy_type == PolicyType::SecureMessaging)
            .filter_map(|e| Policy::from_draft(e.id, &e.policy).ok())
            .collect();
        Ok((doc, policies))
    }
}

pub(super) async fn types(State(state): State<ConsoleState>, signed_in: SignedIn) -> Response {
    let (_, policies) = match state.secure_policies().await {
        Ok(found) => found,
        Err(page) => return page,
    };
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

#[derive(Debug, Default, Deserialize)]
pub(super) struct ListQuery {
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

pub(super) async fn list(
    State(state): State<ConsoleState>,
    signed_in: SignedIn,
    Query(query): Query<ListQuery>,
) -> Response {
    let (doc, policies) = match state.secure_policies().await {
        Ok(found) => found,
        Err(page) => return page,
    };
    let now = SystemTime::now();
    let wanted = ["active", "future", "expired", "disabled"]
        .into_iter()
        .find(|s| *s == query.status);
    let mut rows: Vec<PolicyRow> = policies
        .iter()
        .map(|p| row(&doc, p, now))
        .filter(|r| wanted.is_none_or(|w| r.status == w))
        .collect();
    rows.sort_by_key(|r| r.id);
    state.page(
        "policies.html",
        StatusCode::OK,
        minijinja::context! {
            admin => home::admin_view(&signed_in.admin),
            csrf => signed_in.csrf.as_str(),
            policies => rows,
            may_edit => signed_in.admin.role.may_edit_policy(),
            notice => match (query.saved, query.deleted) {
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
            ],
        },
    )
}
