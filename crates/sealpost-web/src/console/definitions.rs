//! Administration | Secure Messaging definitions: the list (what each one
//! lets a recipient do, its expiry, how many policies apply it; searched,
//! sorted and paged on the server through [`super::listing`]), making one
//! the default, and deleting one.
//!
//! Every change goes through the same [`PolicyService`](crate::PolicyService)
//! as `/api/v1/definitions`, so the store's rules refuse what they refuse
//! there (the default is never deleted, nor a definition a policy
//! applies) and each change is audited. The form is in
//! [`super::definition_edit`].

use std::cmp::Ordering;

use axum::{
    Form,
    extract::{Path, Query, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Redirect, Response},
};
use sealpost_policy::{DefinitionEntry, DefinitionId, PolicyDocument};
use sealpost_store::{ConfigChange, StoreError};
use serde::{Deserialize, Serialize};

use super::{ConsoleState, SignedIn, home, listing::ListQuery};

#[derive(Debug, Serialize)]
struct DefinitionRow {
    id: i64,
    name: String,
    description: String,
    is_default: bool,
    expiry: String,
    /// Days readable; none never expires.
    #[serde(skip)]
    expiry_days: Option<u32>,
    reply: bool,
    reply_all: bool,
    forward: bool,
    print: bool,
    manual_use: bool,
    custom_template: bool,
    used_by: usize,
}

/// A definition id from the path; anything else is a page that does not
/// exist.
pub(super) fn definition_id(text: &str) -> Option<DefinitionId> {
    text.parse().ok().filter(|id| *id > 0).map(DefinitionId)
}

/// The narratives of the policies that apply `id`.
pub(super) fn used_by(doc: &PolicyDocument, id: DefinitionId) -> Vec<String> {
    doc.policies
        .iter()
        .filter(|p| p.policy.definition_id == Some(id))
        .map(|p| {
            if p.policy.narrative.is_empty() {
                format!("#{}", p.id.0)
            } else {
                p.policy.narrative.clone()
            }
        })
        .collect()
}

pub(super) fn expiry_text(days: Option<u32>) -> String {
    match days {
        None => "never".to_owned(),
        Some(1) => "1 day".to_owned(),
        Some(n) => format!("{n} days"),
    }
}

fn row(doc: &PolicyDocument, d: &DefinitionEntry) -> DefinitionRow {
    let s = &d.definition;
    DefinitionRow {
        id: d.id.0,
        name: s.name.clone(),
        description: s.description.clone(),
        is_default: d.is_default,
        expiry: expiry_text(s.expiry_days),
        expiry_days: s.expiry_days,
        reply: s.allow_reply,
        reply_all: s.allow_reply_all,
        forward: s.allow_forward,
        print: s.allow_print,
        manual_use: s.manual_use,
        custom_template: s.notification_template.is_some(),
        used_by: used_by(doc, d.id).len(),
    }
}

/// The list's sortable columns, `(key, header)`.
const SORTS: [(&str, &str); 5] = [
    ("name", "Name"),
    ("expiry", "Expiry"),
    ("may", "Recipient may"),
    ("used_by", "Used by"),
    ("id", "Id"),
];

impl DefinitionRow {
    /// How many of reply, reply all, forward and print it allows.
    fn allows(&self) -> usize {
        [self.reply, self.reply_all, self.forward, self.print]
            .into_iter()
            .filter(|on| *on)
            .count()
    }
}

/// Compares two rows by column `by`, ascending: names in any case, the
/// expiry shortest first (never last), what the recipient may do the
/// fewest permissions first, used by the fewest policies first.
fn compare(by: &str, a: &DefinitionRow, b: &DefinitionRow) -> Ordering {
    match by {
        "name" => a.name.to_lowercase().cmp(&b.name.to_lowercase()),
        "expiry" => {
            let days = |r: &DefinitionRow| r.expiry_days.map_or(u64::MAX, u64::from);
            days(a).cmp(&days(b))
        }
        "may" => a.allows().cmp(&b.allows()),
        "used_by" => a.used_by.cmp(&b.used_by),
        _ => a.id.cmp(&b.id),
    }
}

/// A form of one button: its token only.
#[derive(Debug, Default, Deserialize)]
pub(super) struct PlainForm {
    #[serde(default)]
    pub(super) csrf: String,
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct Done {
    #[serde(default)]
    saved: Option<i64>,
    #[serde(default)]
    deleted: Option<String>,
    #[serde(default)]
    default: Option<i64>,
}

impl ConsoleState {
    pub(super) fn definition_not_found(&self, signed_in: &SignedIn) -> Response {
        self.page(
            "notice.html",
            StatusCode::NOT_FOUND,
            minijinja::context! {
                title => "No such definition",
                text => "This Secure Messaging definition does not exist. It may have been deleted.",
                action_href => "/console/definitions",
                action_label => "Back to the definitions",
                admin => home::admin_view(&signed_in.admin),
                csrf => signed_in.csrf.as_str(),
            },
        )
    }

    /// A change refused, with the reason and the way back.
    pub(super) fn not_changed(
        &self,
        signed_in: &SignedIn,
        title: &str,
        text: &str,
        back: &str,
    ) -> Response {
        self.page(
            "notice.html",
            StatusCode::UNPROCESSABLE_ENTITY,
            minijinja::context! {
                title,
                text,
                action_href => back,
                action_label => "Back",
                admin => home::admin_view(&signed_in.admin),
                csrf => signed_in.csrf.as_str(),
            },
        )
    }
}

/// The list of definitions: searched by name and description, sorted by
/// a column, a page at a time.
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
    let name_of = |id: i64| {
        doc.definitions
            .iter()
            .find(|d| d.id.0 == id)
            .map(|d| d.definition.name.clone())
            .unwrap_or_else(|| format!("#{id}"))
    };
    let notice = if let Some(id) = done.saved {
        Some(format!(
            "Definition “{}” is saved. It applies from the next message.",
            name_of(id)
        ))
    } else if let Some(id) = done.default {
        Some(format!("“{}” is now the default definition.", name_of(id)))
    } else {
        done.deleted
            .map(|name| format!("Definition “{name}” is deleted."))
    };
    let listing = query.listing("/console/definitions", &SORTS, Vec::new());
    let mut rows: Vec<DefinitionRow> = doc
        .definitions
        .iter()
        .filter(|d| listing.matches(&[&d.definition.name, &d.definition.description]))
        .map(|d| row(&doc, d))
        .collect();
    listing.sort_rows(&mut rows, |r| r.id, compare);
    let (shown, pager) = listing.page(rows);
    state.page(
        "definitions.html",
        StatusCode::OK,
        minijinja::context! {
            admin => home::admin_view(&signed_in.admin),
            csrf => signed_in.csrf.as_str(),
            may_edit => signed_in.admin.role.may_edit_policy(),
            definitions => shown,
            notice,
            ..pager
        },
    )
}

/// Makes a definition the default.
pub(super) async fn make_default(
    State(state): State<ConsoleState>,
    signed_in: SignedIn,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<PlainForm>,
) -> Response {
    if let Some(refused) = state.refuse_form(&signed_in, &headers, &form.csrf) {
        return refused;
    }
    let Some(id) = definition_id(&id) else {
        return state.definition_not_found(&signed_in);
    };
    match state
        .policy()
        .change(signed_in.actor(), ConfigChange::MakeDefaultDefinition(id))
        .await
    {
        Ok(_) => Redirect::to(&format!("/console/definitions?default={}", id.0)).into_response(),
        Err(StoreError::NoSuch(_)) => state.definition_not_found(&signed_in),
        Err(StoreError::Rejected(e)) => state.not_changed(
            &signed_in,
            "The default was not changed",
            &e.message,
            "/console/definitions",
        ),
        Err(e) => state.failed(&e),
    }
}

/// Asks before deleting, or says why it cannot be.
pub(super) async fn delete_page(
    State(state): State<ConsoleState>,
    signed_in: SignedIn,
    Path(id): Path<String>,
) -> Response {
    let doc = match state.config().await {
        Ok(doc) => doc,
        Err(page) => return page,
    };
    let Some(entry) = definition_id(&id).and_then(|id| doc.definitions.iter().find(|d| d.id == id))
    else {
        return state.definition_not_found(&signed_in);
    };
    let users = used_by(&doc, entry.id);
    state.page(
        "confirm_delete.html",
        StatusCode::OK,
        minijinja::context! {
            admin => home::admin_view(&signed_in.admin),
            csrf => signed_in.csrf.as_str(),
            title => format!("Delete definition “{}”?", entry.definition.name),
            crumb => "Secure Messaging definitions",
            crumb_href => "/console/definitions",
            action => format!("/console/definitions/{}/delete", entry.id.0),
            cancel => format!("/console/definitions/{}", entry.id.0),
            blocked => if entry.is_default {
                Some("This is the default definition: it cannot be deleted. Make another definition the default first.".to_owned())
            } else if !users.is_empty() {
                Some(format!(
                    "Policies apply this definition: {}. Change or delete them first.",
                    users.join(", ")
                ))
            } else {
                None
            },
            text => "Policies can no longer apply it. Messages already sent with it keep their settings.",
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
    let Some(id) = definition_id(&id) else {
        return state.definition_not_found(&signed_in);
    };
    let name = state
        .policy()
        .snapshot()
        .definition(id)
        .map(|d| d.name().to_owned())
        .unwrap_or_default();
    match state
        .policy()
        .change(signed_in.actor(), ConfigChange::RemoveDefinition(id))
        .await
    {
        Ok(_) => Redirect::to(&format!(
            "/console/definitions?deleted={}",
            super::encoded(&name)
        ))
        .into_response(),
        Err(StoreError::NoSuch(_)) => state.definition_not_found(&signed_in),
        Err(StoreError::Rejected(e)) => {
            // The store's reason; a policy still applying it is named.
            let doc = state.config().await.unwrap_or_default();
            let users = used_by(&doc, id);
            let text = if users.is_empty() {
                e.message
            } else {
                format!(
                    "Policies apply this definition: {}. Change or delete them first. ({})",
                    users.join(", "),
                    e.message
                )
            };
            state.not_changed(
                &signed_in,
                "The definition was not deleted",
                &text,
                &format!("/console/definitions/{}", id.0),
            )
        }
        Err(e) => state.failed(&e),
    }
}
