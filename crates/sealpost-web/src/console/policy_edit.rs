//! New, edit, duplicate, delete, enable and disable a Secure Messaging
//! policy (the walk-through's steps 3-9).
//!
//! The form works without script: its Lookup buttons post the form as it
//! stands to the same address, which answers with a searchable picker that
//! carries every typed field along; picking posts back and the form returns
//! with the choice filled in. "Save and Exit" checks the draft with the
//! API's rules ([`PolicyForm::checked_draft`]) and commits it through the
//! same [`PolicyService`](crate::PolicyService) as `/api/v1/policies`, so
//! it is audited and applies from the next message. A refusal comes back
//! with the API's message next to the box at fault and nothing saved.

use std::collections::BTreeMap;

use axum::{
    Form,
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Redirect, Response},
};
use sealpost_policy::{Invalid, PolicyDocument, PolicyDraft, PolicyEntry, PolicyId, PolicyType};
use sealpost_store::{ConfigChange, StoreError};
use serde::{Deserialize, Serialize};

use super::{
    ConsoleState, SignedIn, home,
    policy_form::{KINDS, PolicyForm, Side, slot},
};

/// Where the form posts: a new policy, or an existing one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Target {
    New,
    Existing(PolicyId),
}

impl Target {
    fn action(self) -> String {
        match self {
            Target::New => "/console/policies/secure-messaging/new".to_owned(),
            Target::Existing(id) => format!("/console/policies/{}", id.0),
        }
    }
}

/// How the form page is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    New,
    Duplicate,
    Edit,
}

/// What the form page shows besides the fields' values.
struct Shown<'a> {
    target: Target,
    mode: Mode,
    form: &'a PolicyForm,
    /// A refusal, shown next to its box.
    error: Option<&'a Invalid>,
    /// What Preview impact found.
    impact: Option<&'a crate::impact::Impact>,
}

impl<'a> Shown<'a> {
    fn new(target: Target, mode: Mode, form: &'a PolicyForm) -> Self {
        Shown {
            target,
            mode,
            form,
            error: None,
            impact: None,
        }
    }

    /// The form refused for `e`, shown next to its box.
    fn refused(self, e: &'a Invalid) -> Self {
        Shown {
            error: Some(e),
            ..self
        }
    }
}

#[derive(Debug, Serialize)]
struct Choice {
    value: String,
    label: String,
    detail: String,
}

#[derive(Debug, Serialize)]
struct Named {
    id: String,
    name: Option<String>,
}

/// A policy id from the path; anything else is a page that does not exist.
fn policy_id(text: &str) -> Option<PolicyId> {
    text.parse().ok().filter(|id| *id > 0).map(PolicyId)
}

fn secure_policy(doc: &PolicyDocument, id: PolicyId) -> Option<&PolicyEntry> {
    doc.policies
        .iter()
        .find(|p| p.id == id && p.policy.policy_type == PolicyType::SecureMessaging)
}

fn definition_name(doc: &PolicyDocument, id: &str) -> Option<String> {
    let id: i64 = id.trim().parse().ok()?;
    doc.definitions
        .iter()
        .find(|d| d.id.0 == id)
        .map(|d| d.definition.name.clone())
}

fn group_name(doc: &PolicyDocument, form: &PolicyForm, side: Side) -> Option<String> {
    let id = form.group(side)?;
    doc.groups
        .iter()
        .find(|g| g.id == id)
        .map(|g| g.group.name.clone())
}

fn matches(q: &str, texts: &[&str]) -> bool {
    let q = q.trim().to_lowercase();
    q.is_empty() || texts.iter().any(|t| t.to_lowercase().contains(&q))
}

/// The API's message, with the line of a source IP range at fault (the
/// form has one range per line; the API names them from 0).
fn shown_message(e: &Invalid) -> String {
    let line = e
        .field
        .rsplit_once("source_ips[")
        .and_then(|(_, rest)| rest.strip_suffix(']'))
        .and_then(|i| i.parse::<usize>().ok());
    match line {
        Some(i) => format!("Line {}: {}", i + 1, e.message),
        None => e.message.clone(),
    }
}

/// Most choices a picker lists; a search narrows the rest.
const PICKER_LIMIT: usize = 50;

/// What a picker offers for `target`, searched by `q`.
fn choices(doc: &PolicyDocument, target: &str, q: &str) -> Vec<Choice> {
    let mut out: Vec<Choice> = match target {
        "definition" => doc
            .definitions
            .iter()
            .filter(|d| matches(q, &[&d.definition.name, &d.definition.description]))
            .map(|d| Choice {
                value: d.id.0.to_string(),
                label: d.definition.name.clone(),
                detail: format!(
                    "{}{}",
                    if d.is_default { "Default. " } else { "" },
                    d.definition.description
                ),
            })
            .collect(),
        "from_group" | "to_group" => doc
            .groups
            .iter()
            .filter(|g| matches(q, &[&g.group.name, &g.group.description]))
            .map(|g| Choice {
                value: g.id.0.to_string(),
                label: g.group.name.clone(),
                detail: format!(
                    "{} addresses, {} domains, {} groups. {}",
                    g.group.addresses.len(),
                    g.group.domains.len(),
                    g.group.groups.len(),
                    g.group.description
                ),
            })
            .collect(),
        "from_attribute" | "to_attribute" => {
            // Each attribute = value pair the directory holds, with how
            // many users have it.
            let mut pairs: BTreeMap<(String, String), usize> = BTreeMap::new();
            for user in &doc.users {
                for (name, value) in &user.attributes {
                    *pairs
                        .entry((name.to_lowercase(), value.clone()))
                        .or_default() += 1;
                }
            }
            pairs
                .into_iter()
                .filter(|((n, v), _)| matches(q, &[n, v]))
                .map(|((name, value), users)| Choice {
                    value: format!("{name}={value}"),
                    label: format!("{name} = {value}"),
                    detail: format!(
                        "{users} directory user{}",
                        if users == 1 { "" } else { "s" }
                    ),
                })
                .collect()
        }
        _ => Vec::new(),
    };
    out.truncate(PICKER_LIMIT + 1);
    out
}

fn picker_title(target: &str) -> &'static str {
    match target {
        "definition" => "Choose a Secure Messaging definition",
        "from_group" => "Choose the senders' profile group",
        "to_group" => "Choose the recipients' profile group",
        "from_attribute" => "Choose the senders' address attribute",
        "to_attribute" => "Choose the recipients' address attribute",
        _ => "Choose",
    }
}

const PICKER_TARGETS: [&str; 5] = [
    "definition",
    "from_group",
    "to_group",
    "from_attribute",
    "to_attribute",
];

impl ConsoleState {
    pub(super) async fn config(&self) -> Result<PolicyDocument, Response> {
        self.admin_store()
            .load_config()
            .await
            .map_err(|e| self.failed(&e))
    }

    /// The policy form, with `error` next to its box.
    fn policy_form_page(
        &self,
        signed_in: &SignedIn,
        doc: &PolicyDocument,
        status: StatusCode,
        shown: Shown<'_>,
    ) -> Response {
        let Shown {
            target,
            mode,
            form,
            error,
            impact,
        } = shown;
        let errors: BTreeMap<&str, String> = error
            .map(|e| (slot(&e.field), shown_message(e)))
            .into_iter()
            .collect();
        let title = match mode {
            Mode::New => "New Secure Messaging policy",
            Mode::Duplicate => "Duplicate a Secure Messaging policy",
            Mode::Edit => "Secure Messaging policy",
        };
        self.page(
            "policy_form.html",
            status,
            minijinja::context! {
                admin => home::admin_view(&signed_in.admin),
                csrf => signed_in.csrf.as_str(),
                title,
                editing => matches!(target, Target::Existing(_)),
                policy_id => match target { Target::Existing(id) => Some(id.0), Target::New => None },
                action => target.action(),
                may_edit => signed_in.admin.role.may_edit_policy(),
                form,
                kinds => KINDS.iter().map(|(v, l)| minijinja::context! { value => v, label => l }).collect::<Vec<_>>(),
                definition => Named { id: form.definition.clone(), name: definition_name(doc, &form.definition) },
                from_group => group_name(doc, form, Side::From),
                to_group => group_name(doc, form, Side::To),
                errors,
                impact,
            },
        )
    }

    fn picker_page(
        &self,
        signed_in: &SignedIn,
        doc: &PolicyDocument,
        target: Target,
        form: &PolicyForm,
        picking: &str,
    ) -> Response {
        let mut found = choices(doc, picking, &form.q);
        let more = found.len() > PICKER_LIMIT;
        found.truncate(PICKER_LIMIT);
        self.page(
            "lookup.html",
            StatusCode::OK,
            minijinja::context! {
                admin => home::admin_view(&signed_in.admin),
                csrf => signed_in.csrf.as_str(),
                title => picker_title(picking),
                picking,
                action => target.action(),
                hidden => form.hidden_fields(),
                q => form.q.as_str(),
                choices => found,
                more,
            },
        )
    }

    /// One post of the form: a lookup, a pick, or Save and Exit.
    async fn policy_form_post(
        &self,
        signed_in: SignedIn,
        headers: &HeaderMap,
        target: Target,
        mut form: PolicyForm,
    ) -> Response {
        if let Some(refused) = self.refuse_form(&signed_in, headers, &form.csrf) {
            return refused;
        }
        let doc = match self.config().await {
            Ok(doc) => doc,
            Err(page) => return page,
        };
        if let Target::Existing(id) = target
            && secure_policy(&doc, id).is_none()
        {
            return self.policy_not_found(&signed_in);
        }
        let mode = match target {
            Target::New => Mode::New,
            Target::Existing(_) => Mode::Edit,
        };
        let step = std::mem::take(&mut form.step);
        if let Some(picking) = step.strip_prefix("lookup:") {
            if let Some(picking) = PICKER_TARGETS.iter().find(|t| **t == picking) {
                return self.picker_page(&signed_in, &doc, target, &form, picking);
            }
        } else if let Some(pick) = step.strip_prefix("pick:") {
            if let Some((picking, value)) = pick.split_once(':') {
                form.pick(picking, value);
            }
        } else if step == "save" {
            return self
                .save_policy(&signed_in, &doc, target, mode, &form)
                .await;
        } else if step == "preview" {
            return self
                .preview_policy(&signed_in, &doc, target, mode, &form)
                .await;
        }
        self.policy_form_page(
            &signed_in,
            &doc,
            StatusCode::OK,
            Shown::new(target, mode, &form),
        )
    }

    async fn save_policy(
        &self,
        signed_in: &SignedIn,
        doc: &PolicyDocument,
        target: Target,
        mode: Mode,
        form: &PolicyForm,
    ) -> Response {
        let refuse = |e: &Invalid| {
            let shown = Shown::new(target, mode, form).refused(e);
            self.policy_form_page(signed_in, doc, StatusCode::UNPROCESSABLE_ENTITY, shown)
        };
        let draft = match form.checked_draft() {
            Ok(d) => d,
            Err(e) => return refuse(&e),
        };
        let change = match target {
            Target::New => ConfigChange::CreatePolicy(draft),
            Target::Existing(id) => ConfigChange::UpdatePolicy(id, draft),
        };
        match self.policy().change(signed_in.actor(), change).await {
            Ok(created) => {
                let id = match target {
                    Target::Existing(id) => id.0,
                    Target::New => created.unwrap_or_default(),
                };
                Redirect::to(&format!("/console/policies/secure-messaging?saved={id}"))
                    .into_response()
            }
            Err(StoreError::Rejected(e)) => refuse(&e),
            Err(StoreError::NoSuch(_)) => self.policy_not_found(signed_in),
            Err(e) => self.failed(&e),
        }
    }

    /// Preview impact: the draft replayed over the last days of mail,
    /// shown under the form; nothing is saved.
    async fn preview_policy(
        &self,
        signed_in: &SignedIn,
        doc: &PolicyDocument,
        target: Target,
        mode: Mode,
        form: &PolicyForm,
    ) -> Response {
        use crate::impact::{self, PreviewError, PreviewRequest};
        let refuse = |e: &Invalid| {
            let shown = Shown::new(target, mode, form).refused(e);
            self.policy_form_page(signed_in, doc, StatusCode::UNPROCESSABLE_ENTITY, shown)
        };
        let days = match form.preview_days.trim() {
            "" => impact::DEFAULT_DAYS,
            text => match text.parse::<u32>() {
                Ok(d) if (1..=impact::MAX_DAYS).contains(&d) => d,
                _ => {
                    return refuse(&Invalid::new(
                        "preview_days",
                        "out_of_range",
                        format!("days must be a number from 1 to {}", impact::MAX_DAYS),
                    ));
                }
            },
        };
        let draft = match form.draft() {
            Ok(d) => d,
            Err(e) => return refuse(&e),
        };
        let request = PreviewRequest {
            draft,
            replaces: match target {
                Target::Existing(id) => Some(id),
                Target::New => None,
            },
            days,
            sample: impact::DEFAULT_SAMPLE,
        };
        match impact::preview(self.policy(), self.admin_store(), request).await {
            Ok(found) => self.policy_form_page(
                signed_in,
                doc,
                StatusCode::OK,
                Shown {
                    impact: Some(&found),
                    ..Shown::new(target, mode, form)
                },
            ),
            Err(PreviewError::Invalid(e)) => refuse(&e),
            Err(PreviewError::NoSuchPolicy(_)) => self.policy_not_found(signed_in),
            Err(PreviewError::Store(e)) => self.failed(&e),
        }
    }

    fn policy_not_found(&self, signed_in: &SignedIn) -> Response {
        self.page(
            "notice.html",
            StatusCode::NOT_FOUND,
            minijinja::context! {
                title => "No such policy",
                text => "This Secure Messaging policy does not exist. It may have been deleted.",
                action_href => "/console/policies/secure-messaging",
                action_label => "Back to the policies",
                admin => home::admin_view(&signed_in.admin),
                csrf => signed_in.csrf.as_str(),
            },
        )
    }

    /// Loads `id` for a page about it, or the page to show instead.
    async fn stored_policy(
        &self,
        signed_in: &SignedIn,
        id: &str,
    ) -> Result<(PolicyDocument, PolicyId, PolicyDraft), Response> {
        let doc = self.config().await?;
        let Some(id) = policy_id(id) else {
            return Err(self.policy_not_found(signed_in));
        };
        let Some(entry) = secure_policy(&doc, id) else {
            return Err(self.policy_not_found(signed_in));
        };
        let draft = entry.policy.clone();
        Ok((doc, id, draft))
    }
}

/// Step 3: New Policy.
pub(super) async fn new_form(State(state): State<ConsoleState>, signed_in: SignedIn) -> Response {
    let doc = match state.config().await {
        Ok(doc) => doc,
        Err(page) => return page,
    };
    let default = doc.definitions.iter().find(|d| d.is_default).map(|d| d.id);
    let form = PolicyForm::new_policy(default);
    state.policy_form_page(
        &signed_in,
        &doc,
        StatusCode::OK,
        Shown::new(Target::New, Mode::New, &form),
    )
}

pub(super) async fn new_post(
    State(state): State<ConsoleState>,
    signed_in: SignedIn,
    headers: HeaderMap,
    Form(form): Form<PolicyForm>,
) -> Response {
    state
        .policy_form_post(signed_in, &headers, Target::New, form)
        .await
}

/// A policy's form: to edit for policy editors, to read for the others.
pub(super) async fn edit_form(
    State(state): State<ConsoleState>,
    signed_in: SignedIn,
    Path(id): Path<String>,
) -> Response {
    let (doc, id, draft) = match state.stored_policy(&signed_in, &id).await {
        Ok(found) => found,
        Err(page) => return page,
    };
    state.policy_form_page(
        &signed_in,
        &doc,
        StatusCode::OK,
        Shown::new(
            Target::Existing(id),
            Mode::Edit,
            &PolicyForm::from_draft(&draft),
        ),
    )
}

pub(super) async fn edit_post(
    State(state): State<ConsoleState>,
    signed_in: SignedIn,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<PolicyForm>,
) -> Response {
    let Some(id) = policy_id(&id) else {
        return state.policy_not_found(&signed_in);
    };
    state
        .policy_form_post(signed_in, &headers, Target::Existing(id), form)
        .await
}

/// A new policy's form filled in from an existing one.
pub(super) async fn duplicate(
    State(state): State<ConsoleState>,
    signed_in: SignedIn,
    Path(id): Path<String>,
) -> Response {
    let (doc, _, draft) = match state.stored_policy(&signed_in, &id).await {
        Ok(found) => found,
        Err(page) => return page,
    };
    let mut form = PolicyForm::from_draft(&draft);
    form.narrative = format!("Copy of {}", draft.narrative);
    state.policy_form_page(
        &signed_in,
        &doc,
        StatusCode::OK,
        Shown::new(Target::New, Mode::Duplicate, &form),
    )
}

/// Asks before deleting.
pub(super) async fn delete_page(
    State(state): State<ConsoleState>,
    signed_in: SignedIn,
    Path(id): Path<String>,
) -> Response {
    let (_, id, draft) = match state.stored_policy(&signed_in, &id).await {
        Ok(found) => found,
        Err(page) => return page,
    };
    state.page(
        "policy_delete.html",
        StatusCode::OK,
        minijinja::context! {
            admin => home::admin_view(&signed_in.admin),
            csrf => signed_in.csrf.as_str(),
            id => id.0,
            narrative => draft.narrative,
        },
    )
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct PlainForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    enabled: String,
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
    let Some(id) = policy_id(&id) else {
        return state.policy_not_found(&signed_in);
    };
    match state
        .policy()
        .change(signed_in.actor(), ConfigChange::RemovePolicy(id))
        .await
    {
        Ok(_) => Redirect::to(&format!(
            "/console/policies/secure-messaging?deleted={}",
            id.0
        ))
        .into_response(),
        Err(StoreError::NoSuch(_)) => state.policy_not_found(&signed_in),
        Err(e) => state.failed(&e),
    }
}

/// Enables or disables a policy from the list (`enabled=true|false`).
pub(super) async fn set_enabled(
    State(state): State<ConsoleState>,
    signed_in: SignedIn,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<PlainForm>,
) -> Response {
    if let Some(refused) = state.refuse_form(&signed_in, &headers, &form.csrf) {
        return refused;
    }
    let Some(id) = policy_id(&id) else {
        return state.policy_not_found(&signed_in);
    };
    let enabled = form.enabled == "true";
    let result = state
        .policy()
        .change_with::<_, StoreError, _>(signed_in.actor(), move |doc| {
            let entry = secure_policy(doc, id)
                .ok_or_else(|| StoreError::NoSuch(format!("policy {}", id.0)))?;
            let mut draft = entry.policy.clone();
            draft.enabled = enabled;
            Ok((ConfigChange::UpdatePolicy(id, draft), ()))
        })
        .await;
    match result {
        Ok(_) => Redirect::to("/console/policies/secure-messaging").into_response(),
        Err(StoreError::NoSuch(_)) => state.policy_not_found(&signed_in),
        Err(StoreError::Rejected(e)) => state.page(
            "notice.html",
            StatusCode::UNPROCESSABLE_ENTITY,
            minijinja::context! {
                title => "The policy was not changed",
                text => e.message,
                action_href => format!("/console/policies/{}", id.0),
                action_label => "Open the policy",
                admin => home::admin_view(&signed_in.admin),
                csrf => signed_in.csrf.as_str(),
            },
        ),
        Err(e) => state.failed(&e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sealpost_policy::{DefinitionDraft, DefinitionEntry, DefinitionId, UserDraft};

    #[test]
    fn pickers_search_names_and_descriptions_and_attribute_pairs() {
        let def = |id, name: &str| DefinitionEntry {
            id: DefinitionId(id),
            is_default: id == 1,
            definition: serde_json::from_value::<DefinitionDraft>(
                serde_json::json!({"name": name, "description": "for lawyers"}),
            )
            .unwrap(),
        };
        let user = |a: &str, dept: &str| UserDraft {
            address: a.into(),
            display_name: String::new(),
            attributes: [("Department".to_owned(), dept.to_owned())].into(),
        };
        let doc = PolicyDocument {
            definitions: vec![def(1, "Default"), def(2, "Legal hold")],
            users: vec![
                user("a@corp.example", "Legal"),
                user("b@corp.example", "Legal"),
                user("c@corp.example", "Sales"),
            ],
            ..PolicyDocument::default()
        };
        let names = |c: Vec<Choice>| c.into_iter().map(|c| c.label).collect::<Vec<_>>();
        assert_eq!(names(choices(&doc, "definition", "hold")), ["Legal hold"]);
        assert_eq!(names(choices(&doc, "definition", "LAWYERS")).len(), 2);
        let attrs = choices(&doc, "to_attribute", "leg");
        assert_eq!(attrs.len(), 1);
        assert_eq!(attrs[0].value, "department=Legal");
        assert_eq!(attrs[0].detail, "2 directory users");
        assert!(choices(&doc, "nothing", "").is_empty());
    }
}
