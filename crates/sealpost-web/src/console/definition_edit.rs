//! New and edit a Secure Messaging definition, with the notification
//! template editor and its preview.
//!
//! "Save" commits the form's draft through the same
//! [`PolicyService`](crate::PolicyService) as `/api/v1/definitions`: the
//! store's rules and the template checks (it must render and carry the
//! portal link) refuse what they refuse there, the refusal comes back next
//! to its box with nothing saved, and a saved change is audited and
//! applies from the next message. "Preview" posts the form as it stands
//! and shows the notification a recipient would get under the editor,
//! with a template's error next to its part; nothing is saved.

use std::collections::BTreeMap;

use axum::{
    Form,
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Redirect, Response},
};
use sealpost_policy::{Definition, DefinitionId, Invalid, PolicyDocument};
use sealpost_secure::notification::NotificationTemplate;
use sealpost_store::{ConfigChange, StoreError};

use super::{
    ConsoleState, SignedIn,
    definition_form::{DefinitionForm, slot},
    definitions::{definition_id, used_by},
    home,
    notification_preview::Preview,
};

/// Where the form posts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    New,
    Existing(DefinitionId),
}

impl Target {
    fn action(self) -> String {
        match self {
            Target::New => "/console/definitions/new".to_owned(),
            Target::Existing(id) => format!("/console/definitions/{}", id.0),
        }
    }
}

/// What the page shows besides the fields.
struct Shown<'a> {
    target: Target,
    form: &'a DefinitionForm,
    error: Option<&'a Invalid>,
    preview: Option<&'a Preview>,
}

impl ConsoleState {
    fn definition_page(
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
            preview,
        } = shown;
        let errors: BTreeMap<&str, &str> = error
            .map(|e| (slot(&e.field), e.message.as_str()))
            .into_iter()
            .collect();
        let entry = match target {
            Target::Existing(id) => doc.definitions.iter().find(|d| d.id == id),
            Target::New => None,
        };
        let builtin = NotificationTemplate::builtin();
        self.page(
            "definition_form.html",
            status,
            minijinja::context! {
                admin => home::admin_view(&signed_in.admin),
                csrf => signed_in.csrf.as_str(),
                title => if entry.is_some() { "Secure Messaging definition" } else { "New Secure Messaging definition" },
                definition_id => entry.map(|d| d.id.0),
                is_default => entry.is_some_and(|d| d.is_default),
                used_by => entry.map(|d| used_by(doc, d.id)).unwrap_or_default(),
                action => target.action(),
                may_edit => signed_in.admin.role.may_edit_policy(),
                max_expiry => self.policy().max_expiry_days(),
                form,
                errors,
                preview,
                builtin,
            },
        )
    }

    async fn definition_post(
        &self,
        signed_in: SignedIn,
        headers: &HeaderMap,
        target: Target,
        mut form: DefinitionForm,
    ) -> Response {
        if let Some(refused) = self.refuse_form(&signed_in, headers, &form.csrf) {
            return refused;
        }
        let doc = match self.config().await {
            Ok(doc) => doc,
            Err(page) => return page,
        };
        let stored = match target {
            Target::Existing(id) => match doc.definitions.iter().find(|d| d.id == id) {
                Some(d) => Some(d),
                None => return self.definition_not_found(&signed_in),
            },
            Target::New => None,
        };
        let step = std::mem::take(&mut form.step);
        let refuse = |e: &Invalid| {
            self.definition_page(
                &signed_in,
                &doc,
                StatusCode::UNPROCESSABLE_ENTITY,
                Shown {
                    target,
                    form: &form,
                    error: Some(e),
                    preview: None,
                },
            )
        };
        let draft = match form.draft() {
            Ok(d) => d,
            Err(e) => return refuse(&e),
        };
        if step == "preview" {
            // The draft checked by the API's rules, then rendered as the
            // preview endpoint renders a definition.
            let id = stored.map_or(DefinitionId(0), |d| d.id);
            let is_default = stored.is_some_and(|d| d.is_default);
            let preview =
                Definition::from_draft(id, is_default, &draft, self.policy().max_expiry_days())
                    .and_then(|definition| self.notification_preview(&definition));
            return match preview {
                Ok(preview) => self.definition_page(
                    &signed_in,
                    &doc,
                    StatusCode::OK,
                    Shown {
                        target,
                        form: &form,
                        error: None,
                        preview: Some(&preview),
                    },
                ),
                Err(e) => refuse(&e),
            };
        }
        let change = match target {
            Target::New => ConfigChange::CreateDefinition(draft),
            Target::Existing(id) => ConfigChange::UpdateDefinition(id, draft),
        };
        match self.policy().change(signed_in.actor(), change).await {
            Ok(created) => {
                let id = match target {
                    Target::Existing(id) => id.0,
                    Target::New => created.unwrap_or_default(),
                };
                Redirect::to(&format!("/console/definitions?saved={id}")).into_response()
            }
            Err(StoreError::Rejected(e)) => refuse(&e),
            Err(StoreError::NoSuch(_)) => self.definition_not_found(&signed_in),
            Err(e) => self.failed(&e),
        }
    }
}

/// A new definition's form.
pub(super) async fn new_form(State(state): State<ConsoleState>, signed_in: SignedIn) -> Response {
    let doc = match state.config().await {
        Ok(doc) => doc,
        Err(page) => return page,
    };
    let form = DefinitionForm::new_definition();
    state.definition_page(
        &signed_in,
        &doc,
        StatusCode::OK,
        Shown {
            target: Target::New,
            form: &form,
            error: None,
            preview: None,
        },
    )
}

pub(super) async fn new_post(
    State(state): State<ConsoleState>,
    signed_in: SignedIn,
    headers: HeaderMap,
    Form(form): Form<DefinitionForm>,
) -> Response {
    state
        .definition_post(signed_in, &headers, Target::New, form)
        .await
}

/// A definition's form: to edit for policy editors, to read for others.
pub(super) async fn edit_form(
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
    let form = DefinitionForm::from_draft(&entry.definition);
    state.definition_page(
        &signed_in,
        &doc,
        StatusCode::OK,
        Shown {
            target: Target::Existing(entry.id),
            form: &form,
            error: None,
            preview: None,
        },
    )
}

pub(super) async fn edit_post(
    State(state): State<ConsoleState>,
    signed_in: SignedIn,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<DefinitionForm>,
) -> Response {
    let Some(id) = definition_id(&id) else {
        return state.definition_not_found(&signed_in);
    };
    state
        .definition_post(signed_in, &headers, Target::Existing(id), form)
        .await
}
