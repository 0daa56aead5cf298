//! Administration | Profile groups: the list (members, nested groups,
//! which policies name each group; searched, sorted and paged on the
//! server through [`super::listing`]) and deleting a group.
//!
//! Changes go through the same [`PolicyService`](crate::PolicyService) as
//! `/api/v1/groups`, so the store refuses what it refuses there (a group a
//! policy or another group still names) and each change is audited. The
//! form is in [`super::group_edit`], the CSV import in
//! [`super::group_import`].

use std::cmp::Ordering;

use axum::{
    Form,
    extract::{Path, Query, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Redirect, Response},
};
use sealpost_policy::{GroupId, PartyDraft, PartyKind, PolicyDocument};
use sealpost_store::{ConfigChange, StoreError};
use serde::{Deserialize, Serialize};

use super::{ConsoleState, SignedIn, definitions::PlainForm, encoded, home, listing::ListQuery};

#[derive(Debug, Serialize)]
struct GroupRow {
    id: i64,
    name: String,
    description: String,
    addresses: usize,
    domains: usize,
    groups: Vec<String>,
    used_by: usize,
}

/// A group id from the path.
pub(super) fn group_id(text: &str) -> Option<GroupId> {
    text.parse().ok().filter(|id| *id > 0).map(GroupId)
}

/// What names group `id`: policies by narrative, groups by name.
pub(super) fn named_by(doc: &PolicyDocument, id: GroupId) -> Vec<String> {
    let mut out: Vec<String> = doc
        .policies
        .iter()
        .filter(|p| names_group(&p.policy.from, id) || names_group(&p.policy.to, id))
        .map(|p| format!("policy “{}”", p.policy.narrative))
        .collect();
    out.extend(
        doc.groups
            .iter()
            .filter(|g| g.group.groups.contains(&id))
            .map(|g| format!("group “{}”", g.group.name)),
    );
    out
}

/// The list's sortable columns, `(key, header)`.
const SORTS: [(&str, &str); 6] = [
    ("name", "Name"),
    ("addresses", "Addresses"),
    ("domains", "Domains"),
    ("groups", "Contains groups"),
    ("used_by", "Policies"),
    ("id", "Id"),
];

/// Compares two rows by column `by`, ascending: names in any case, the
/// contained groups by their names as listed (none first), counts
/// smallest first.
fn compare(by: &str, a: &GroupRow, b: &GroupRow) -> Ordering {
    let text = |a: &str, b: &str| a.to_lowercase().cmp(&b.to_lowercase());
    match by {
        "name" => text(&a.name, &b.name),
        "addresses" => a.addresses.cmp(&b.addresses),
        "domains" => a.domains.cmp(&b.domains),
        "groups" => text(&a.groups.join(", "), &b.groups.join(", ")),
        "used_by" => a.used_by.cmp(&b.used_by),
        _ => a.id.cmp(&b.id),
    }
}

pub(super) fn group_name(doc: &PolicyDocument, id: GroupId) -> String {
    doc.groups
        .iter()
        .find(|g| g.id == id)
        .map_or_else(|| format!("#{}", id.0), |g| g.group.name.clone())
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct Done {
    #[serde(default)]
    saved: Option<i64>,
    #[serde(default)]
    deleted: Option<String>,
}

impl ConsoleState {
    pub(super) fn group_not_found(&self, signed_in: &SignedIn) -> Response {
        self.page(
            "notice.html",
            StatusCode::NOT_FOUND,
            minijinja::context! {
                title => "No such profile group",
                text => "This profile group does not exist. It may have been deleted.",
                action_href => "/console/groups",
                action_label => "Back to the profile groups",
                admin => home::admin_view(&signed_in.admin),
                csrf => signed_in.csrf.as_str(),
            },
        )
    }
}

/// The list of groups: searched by name and description, sorted by a
/// column, a page at a time.
pub(super) async fn list(
    State(state): State<ConsoleState>,
    signed_in: SignedIn,
    Query(done): Query<Done>,
    Query(query): Query<ListQuery>,
) -> Response {
    let doc = match state.config().await {
        Ok(doc) => doc,
        Err(page) => return page,
    };
    let notice = match (done.saved, done.deleted) {
        (Some(id), _) => Some(format!(
            "Profile group “{}” is saved. It applies from the next message.",
            group_name(&doc, GroupId(id))
        )),
        (None, Some(name)) => Some(format!("Profile group “{name}” is deleted.")),
        (None, None) => None,
    };
    let listing = query.listing("/console/groups", &SORTS, Vec::new());
    let mut rows: Vec<GroupRow> = doc
        .groups
        .iter()
        .filter(|g| listing.matches(&[&g.group.name, &g.group.description]))
        .map(|g| GroupRow {
            id: g.id.0,
            name: g.group.name.clone(),
            description: g.group.description.clone(),
            addresses: g.group.addresses.len(),
            domains: g.group.domains.len(),
            groups: g
                .group
                .groups
                .iter()
                .map(|m| group_name(&doc, *m))
                .collect(),
            used_by: doc
                .policies
                .iter()
                .filter(|p| names_group(&p.policy.from, g.id) || names_group(&p.policy.to, g.id))
                .count(),
        })
        .collect();
    listing.sort_rows(&mut rows, |r| r.id, compare);
    let (shown, pager) = listing.page(rows);
    state.page(
        "groups.html",
        StatusCode::OK,
        minijinja::context! {
            admin => home::admin_view(&signed_in.admin),
            csrf => signed_in.csrf.as_str(),
            may_edit => signed_in.admin.role.may_edit_policy(),
            groups => shown,
            notice,
            ..pager
        },
    )
}

/// Asks before deleting, or says what still names the group.
pub(super) async fn delete_page(
    State(state): State<ConsoleState>,
    signed_in: SignedIn,
    Path(id): Path<String>,
) -> Response {
    let doc = match state.config().await {
        Ok(doc) => doc,
        Err(page) => return page,
    };
    let Some(entry) = group_id(&id).and_then(|id| doc.groups.iter().find(|g| g.id == id)) else {
        return state.group_not_found(&signed_in);
    };
    let users = named_by(&doc, entry.id);
    state.page(
        "confirm_delete.html",
        StatusCode::OK,
        minijinja::context! {
            admin => home::admin_view(&signed_in.admin),
            csrf => signed_in.csrf.as_str(),
            title => format!("Delete profile group “{}”?", entry.group.name),
            crumb => "Profile groups",
            crumb_href => "/console/groups",
            action => format!("/console/groups/{}/delete", entry.id.0),
            cancel => format!("/console/groups/{}", entry.id.0),
            blocked => (!users.is_empty()).then(|| format!(
                "It is still named by {}. Change those first.",
                users.join(", ")
            )),
            text => "Policies can no longer name it.",
        },
    )
}

pub(super) async fn delete(
    State(state): State<ConsoleState>,
    signed_in: SignedIn,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<PlainForm>,
) -> Response {
    if let Some(refused) = state.refuse_form(&signed_in, &headers, &form.csrf) {
        return refused;
    }
    let Some(id) = group_id(&id) else {
        return state.group_not_found(&signed_in);
    };
    let doc = match state.config().await {
        Ok(doc) => doc,
        Err(page) => return page,
    };
    let name = group_name(&doc, id);
    match state
        .policy()
        .change(signed_in.actor(), ConfigChange::RemoveGroup(id))
        .await
    {
        Ok(_) => {
            Redirect::to(&format!("/console/groups?deleted={}", encoded(&name))).into_response()
        }
        Err(StoreError::NoSuch(_)) => state.group_not_found(&signed_in),
        Err(StoreError::Rejected(e)) => {
            let users = named_by(&doc, id);
            let text = if users.is_empty() {
                e.message
            } else {
                format!(
                    "It is still named by {}. Change those first. ({})",
                    users.join(", "),
                    e.message
                )
            };
            state.not_changed(
                &signed_in,
                "The profile group was not deleted",
                &text,
                &format!("/console/groups/{}", id.0),
            )
        }
        Err(e) => state.failed(&e),
    }
}

/// Whether a policy's side names group `id`.
fn names_group(party: &PartyDraft, id: GroupId) -> bool {
    party.kind == PartyKind::Group && party.group_id == Some(id)
}
