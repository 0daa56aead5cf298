//! New and edit a profile group: name, description, member addresses and
//! domains, and the other groups it contains.
//!
//! "Save" commits the draft through the same
//! [`PolicyService`](crate::PolicyService) as `/api/v1/groups`: a bad
//! address, a bad domain or a loop of groups is refused with the API's
//! message next to its box and nothing saved; a saved change is audited
//! and applies from the next message.

use std::collections::BTreeMap;

use axum::{
    Form,
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Redirect, Response},
};
use sealpost_policy::{GroupId, Invalid, PolicyDocument};
use sealpost_store::{ConfigChange, StoreError};
use serde::Serialize;

use super::{
    ConsoleState, SignedIn,
    group_form::{GroupForm, slot},
    group_import::Report,
    groups::{group_id, named_by},
    home,
};

/// Where the form posts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Target {
    New,
    Existing(GroupId),
}

impl Target {
    fn action(self) -> String {
        match self {
            Target::New => "/console/groups/new".to_owned(),
            Target::Existing(id) => format!("/console/groups/{}", id.0),
        }
    }
}

/// Another group, offered as a member.
#[derive(Debug, Serialize)]
struct Candidate {
    id: i64,
    name: String,
    description: String,
    checked: bool,
    /// It contains this group (directly or through others): ticking it
    /// would make a loop, which saving refuses.
    contains_this: bool,
}

/// Whether group `outer` contains `inner`, directly or through others.
fn contains(doc: &PolicyDocument, outer: GroupId, inner: GroupId) -> bool {
    let mut seen = vec![outer];
    let mut i = 0;
    // Bounded: each group is looked at once.
    while i < seen.len() {
        let at = seen[i];
        i += 1;
        for m in doc
            .groups
            .iter()
            .filter(|g| g.id == at)
            .flat_map(|g| &g.group.groups)
        {
            if *m == inner {
                return true;
            }
            if !seen.contains(m) {
                seen.push(*m);
            }
        }
    }
    false
}

/// What the page shows besides the fields.
pub(super) struct Shown<'a> {
    pub(super) target: Target,
    pub(super) form: &'a GroupForm,
    pub(super) error: Option<&'a Invalid>,
    /// What a CSV import of members did.
    pub(super) report: Option<&'a Report>,
}

impl ConsoleState {
    pub(super) fn group_page(
        &self,
        signed_in: &SignedIn,
        doc: &PolicyDocument,
        status: StatusCode,
        shown: Shown<'_>,
    ) -> Response {
        let Shown {
            target,
            form,
            error,
            report,
        } = shown;
        let errors: BTreeMap<&str, String> = error.map(slot).into_iter().collect();
        let own = match target {
            Target::Existing(id) => Some(id),
            Target::New => None,
        };
        let candidates: Vec<Candidate> = doc
            .groups
            .iter()
            .filter(|g| Some(g.id) != own)
            .map(|g| Candidate {
                id: g.id.0,
                name: g.group.name.clone(),
                description: g.group.description.clone(),
                checked: form.has_member_group(g.id.0),
                contains_this: own.is_some_and(|own| contains(doc, g.id, own)),
            })
            .collect();
        self.page(
            "group_form.html",
            status,
            minijinja::context! {
                admin => home::admin_view(&signed_in.admin),
                csrf => signed_in.csrf.as_str(),
                title => if own.is_some() { "Profile group" } else { "New profile group" },
                group_id => own.map(|id| id.0),
                named_by => own.map(|id| named_by(doc, id)).unwrap_or_default(),
                action => target.action(),
                may_edit => signed_in.admin.role.may_edit_policy(),
                form,
                candidates,
                errors,
                report,
            },
        )
    }

    async fn group_post(
        &self,
        signed_in: SignedIn,
        headers: &HeaderMap,
        target: Target,
        form: GroupForm,
    ) -> Response {
        if let Some(refused) = self.refuse_form(&signed_in, headers, &form.csrf) {
            return refused;
        }
        let doc = match self.config().await {
            Ok(doc) => doc,
            Err(page) => return page,
        };
        if let Target::Existing(id) = target
            && !doc.groups.iter().any(|g| g.id == id)
        {
            return self.group_not_found(&signed_in);
        }
        let refuse = |e: &Invalid| {
            self.group_page(
                &signed_in,
                &doc,
                StatusCode::UNPROCESSABLE_ENTITY,
                Shown {
                    target,
                    form: &form,
                    error: Some(e),
                    report: None,
                },
            )
        };
        let draft = match form.draft() {
            Ok(d) => d,
            Err(e) => return refuse(&e),
        };
        let change = match target {
            Target::New => ConfigChange::CreateGroup(draft),
            Target::Existing(id) => ConfigChange::UpdateGroup(id, draft),
        };
        match self.policy().change(signed_in.actor(), change).await {
            Ok(created) => {
                let id = match target {
                    Target::Existing(id) => id.0,
                    Target::New => created.unwrap_or_default(),
                };
                Redirect::to(&format!("/console/groups?saved={id}")).into_response()
            }
            Err(StoreError::Rejected(e)) => refuse(&e),
            Err(StoreError::NoSuch(_)) => self.group_not_found(&signed_in),
            Err(e) => self.failed(&e),
        }
    }
}

pub(super) async fn new_form(State(state): State<ConsoleState>, signed_in: SignedIn) -> Response {
    let doc = match state.config().await {
        Ok(doc) => doc,
        Err(page) => return page,
    };
    state.group_page(
        &signed_in,
        &doc,
        StatusCode::OK,
        Shown {
            target: Target::New,
            form: &GroupForm::default(),
            error: None,
            report: None,
        },
    )
}

pub(super) async fn new_post(
    State(state): State<ConsoleState>,
    signed_in: SignedIn,
    headers: HeaderMap,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Response {
    state
        .group_post(
            signed_in,
            &headers,
            Target::New,
            GroupForm::from_pairs(pairs),
        )
        .await
}

/// A group's form: to edit for policy editors, to read for the others.
pub(super) async fn edit_form(
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
    state.group_page(
        &signed_in,
        &doc,
        StatusCode::OK,
        Shown {
            target: Target::Existing(entry.id),
            form: &GroupForm::from_draft(&entry.group),
            error: None,
            report: None,
        },
    )
}

pub(super) async fn edit_post(
    State(state): State<ConsoleState>,
    signed_in: SignedIn,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Response {
    let Some(id) = group_id(&id) else {
        return state.group_not_found(&signed_in);
    };
    state
        .group_post(
            signed_in,
            &headers,
            Target::Existing(id),
            GroupForm::from_pairs(pairs),
        )
        .await
}
