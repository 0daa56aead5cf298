//! Administration | Directory: the users policies match on (address,
//! display name, attributes), listed a page at a time, sorted and searched
//! on the server from the live snapshot; adding, editing and deleting one.
//!
//! Changes go through the same [`PolicyService`](crate::PolicyService) as
//! `/api/v1/directory/users` (`PutUser`, `RemoveUser`), so a user is
//! checked by the API's rules ([`DirectoryUser::from_draft`]), audited,
//! and applies from the next message. The CSV import is in
//! [`super::directory_import`].

use std::collections::{BTreeMap, HashMap};

use axum::{
    Form,
    extract::{Path, Query, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Redirect, Response},
};
use sealpost_policy::{DirectoryUser, EmailAddress, Invalid, UserDraft};
use sealpost_store::{ConfigChange, StoreError};
use serde::{Deserialize, Serialize};

use super::{ConsoleState, SignedIn, definitions::PlainForm, encoded, home};

/// Users on one page of the list.
const PAGE_SIZE: usize = 50;

/// The list's query: search, sort and page.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct ListQuery {
    q: String,
    /// `address` (default) or `name`.
    sort: String,
    /// `asc` (default) or `desc`.
    dir: String,
    /// From 1; anything else is the first page.
    page: String,
    saved: Option<String>,
    deleted: Option<String>,
}

#[derive(Debug, Serialize)]
struct UserRow {
    address: String,
    /// The address as a path segment.
    href: String,
    display_name: String,
    attributes: Vec<String>,
}

fn row(u: &DirectoryUser) -> UserRow {
    let address = u.address.to_string();
    UserRow {
        href: format!("/console/directory/users/{}", encoded(&address)),
        address,
        display_name: u.display_name.clone(),
        attributes: u
            .attributes
            .iter()
            .map(|(k, v)| format!("{k} = {v}"))
            .collect(),
    }
}

fn matches(u: &DirectoryUser, q: &str) -> bool {
    q.is_empty()
        || u.address.to_string().to_lowercase().contains(q)
        || u.display_name.to_lowercase().contains(q)
        || u.attributes
            .iter()
            .any(|(k, v)| k.contains(q) || v.to_lowercase().contains(q))
}

/// A link to the list with `query` and some of it changed.
fn list_href(q: &str, sort: &str, dir: &str, page: usize) -> String {
    format!(
        "/console/directory?q={}&sort={sort}&dir={dir}&page={page}",
        encoded(q)
    )
}

/// The list, searched, sorted and paged.
pub(super) async fn list(
    State(state): State<ConsoleState>,
    signed_in: SignedIn,
    Query(query): Query<ListQuery>,
) -> Response {
    let snapshot = state.policy().snapshot();
    let q = query.q.trim().to_lowercase();
    let sort = if query.sort == "name" {
        "name"
    } else {
        "address"
    };
    let dir = if query.dir == "desc" { "desc" } else { "asc" };
    let mut found: Vec<&DirectoryUser> = snapshot.users().filter(|u| matches(u, &q)).collect();
    let total_users = snapshot.users().count();
    match sort {
        "name" => found.sort_by_cached_key(|u| {
            (
                u.display_name.to_lowercase(),
                u.address.to_string().to_lowercase(),
            )
        }),
        _ => found.sort_by_cached_key(|u| u.address.to_string().to_lowercase()),
    }
    if dir == "desc" {
        found.reverse();
    }
    let pages = found.len().div_ceil(PAGE_SIZE).max(1);
    let page = query
        .page
        .trim()
        .parse::<usize>()
        .unwrap_or(1)
        .clamp(1, pages);
    let rows: Vec<UserRow> = found
        .iter()
        .skip((page - 1) * PAGE_SIZE)
        .take(PAGE_SIZE)
        .map(|u| row(u))
        .collect();
    let notice = match (&query.saved, &query.deleted) {
        (Some(a), _) => Some(format!(
            "{a} is saved in the directory. It applies from the next message."
        )),
        (None, Some(a)) => Some(format!("{a} is deleted from the directory.")),
        _ => None,
    };
    let other = |d: &str| if d == "asc" { "desc" } else { "asc" };
    let sort_href = |by: &str| {
        let d = if by == sort { other(dir) } else { "asc" };
        list_href(&query.q, by, d, 1)
    };
    state.page(
        "directory.html",
        StatusCode::OK,
        minijinja::context! {
            admin => home::admin_view(&signed_in.admin),
            csrf => signed_in.csrf.as_str(),
            may_edit => signed_in.admin.role.may_edit_policy(),
            users => rows,
            q => query.q.trim(),
            sort,
            dir,
            page,
            pages,
            found => found.len(),
            total_users,
            first => (page - 1) * PAGE_SIZE + 1,
            last => ((page - 1) * PAGE_SIZE + PAGE_SIZE).min(found.len()),
            sort_address => sort_href("address"),
            sort_name => sort_href("name"),
            prev_href => (page > 1).then(|| list_href(&query.q, sort, dir, page - 1)),
            next_href => (page < pages).then(|| list_href(&query.q, sort, dir, page + 1)),
            notice,
            jobs => state.inner.imports.recent(),
        },
    )
}

/// The user form, as typed.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub(super) struct UserForm {
    #[serde(skip_serializing)]
    csrf: String,
    address: String,
    display_name: String,
    /// One `name = value` per line.
    attributes: String,
}

impl UserForm {
    fn from_draft(u: &UserDraft) -> Self {
        UserForm {
            address: u.address.clone(),
            display_name: u.display_name.clone(),
            attributes: u
                .attributes
                .iter()
                .map(|(k, v)| format!("{k} = {v}"))
                .collect::<Vec<_>>()
                .join("\n"),
            ..UserForm::default()
        }
    }

    /// The draft; the API's rules check it after.
    fn draft(&self) -> Result<UserDraft, Invalid> {
        let mut attributes = BTreeMap::new();
        for (i, line) in self.attributes.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let Some((name, value)) = line.split_once(['=', ':']) else {
                return Err(Invalid::new(
                    "attributes",
                    "invalid_attribute",
                    format!("line {}: write an attribute as name = value", i + 1),
                ));
            };
            if attributes
                .insert(name.trim().to_owned(), value.trim().to_owned())
                .is_some()
            {
                return Err(Invalid::new(
                    "attributes",
                    "duplicate",
                    format!("line {}: attribute {:?} is given twice", i + 1, name.trim()),
                ));
            }
        }
        Ok(UserDraft {
            address: self.address.trim().to_owned(),
            display_name: self.display_name.clone(),
            attributes,
        })
    }
}

/// Where a refusal is shown.
fn slot(field: &str) -> &'static str {
    match field.split(['.', '[']).next().unwrap_or_default() {
        "address" => "address",
        "display_name" => "display_name",
        "attributes" => "attributes",
        _ => "form",
    }
}

impl ConsoleState {
    fn user_page(
        &self,
        signed_in: &SignedIn,
        status: StatusCode,
        existing: Option<&str>,
        form: &UserForm,
        error: Option<&Invalid>,
    ) -> Response {
        let errors: HashMap<&str, &str> = error
            .map(|e| (slot(&e.field), e.message.as_str()))
            .into_iter()
            .collect();
        self.page(
            "directory_user.html",
            status,
            minijinja::context! {
                admin => home::admin_view(&signed_in.admin),
                csrf => signed_in.csrf.as_str(),
                title => if existing.is_some() { "Directory user" } else { "New directory user" },
                existing,
                action => existing.map_or_else(
                    || "/console/directory/new".to_owned(),
                    |a| format!("/console/directory/users/{}", encoded(a)),
                ),
                delete_href => existing.map(|a| format!("/console/directory/users/{}/delete", encoded(a))),
                may_edit => signed_in.admin.role.may_edit_policy(),
                form,
                errors,
            },
        )
    }

    fn user_not_found(&self, signed_in: &SignedIn) -> Response {
        self.page(
            "notice.html",
            StatusCode::NOT_FOUND,
            minijinja::context! {
                title => "No such directory user",
                text => "This address is not in the directory. It may have been deleted.",
                action_href => "/console/directory",
                action_label => "Back to the directory",
                admin => home::admin_view(&signed_in.admin),
                csrf => signed_in.csrf.as_str(),
            },
        )
    }

    /// The stored user at `address`, if any.
    fn stored_user(&self, address: &str) -> Option<UserDraft> {
        let address = EmailAddress::parse(address.trim()).ok()?;
        self.policy()
            .snapshot()
            .user(&address)
            .map(|u| u.to_draft())
    }

    async fn save_user(
        &self,
        signed_in: SignedIn,
        headers: &HeaderMap,
        existing: Option<String>,
        mut form: UserForm,
    ) -> Response {
        if let Some(refused) = self.refuse_form(&signed_in, headers, &form.csrf) {
            return refused;
        }
        if let Some(address) = &existing {
            if self.stored_user(address).is_none() {
                return self.user_not_found(&signed_in);
            }
            // The address is the key: an edit keeps it.
            form.address.clone_from(address);
        }
        let refuse = |e: &Invalid| {
            self.user_page(
                &signed_in,
                StatusCode::UNPROCESSABLE_ENTITY,
                existing.as_deref(),
                &form,
                Some(e),
            )
        };
        let draft = match form.draft() {
            Ok(d) => d,
            Err(e) => return refuse(&e),
        };
        // The API's rules, to name the address before anything else.
        let user = match DirectoryUser::from_draft(&draft) {
            Ok(u) => u,
            Err(e) => return refuse(&e),
        };
        if existing.is_none() && self.policy().snapshot().user(&user.address).is_some() {
            return refuse(&Invalid::new(
                "address",
                "duplicate",
                format!(
                    "{} is already in the directory: open it from the list to edit it",
                    user.address
                ),
            ));
        }
        match self
            .policy()
            .change(signed_in.actor(), ConfigChange::PutUser(draft))
            .await
        {
            Ok(_) => Redirect::to(&format!(
                "/console/directory?saved={}",
                encoded(user.address.as_ref())
            ))
            .into_response(),
            Err(StoreError::Rejected(e)) => refuse(&e),
            Err(e) => self.failed(&e),
        }
    }
}

pub(super) async fn new_form(State(state): State<ConsoleState>, signed_in: SignedIn) -> Response {
    state.user_page(&signed_in, StatusCode::OK, None, &UserForm::default(), None)
}

pub(super) async fn new_post(
    State(state): State<ConsoleState>,
    signed_in: SignedIn,
    headers: HeaderMap,
    Form(form): Form<UserForm>,
) -> Response {
    state.save_user(signed_in, &headers, None, form).await
}

pub(super) async fn edit_form(
    State(state): State<ConsoleState>,
    signed_in: SignedIn,
    Path(address): Path<String>,
) -> Response {
    let Some(user) = state.stored_user(&address) else {
        return state.user_not_found(&signed_in);
    };
    state.user_page(
        &signed_in,
        StatusCode::OK,
        Some(&user.address),
        &UserForm::from_draft(&user),
        None,
    )
}

pub(super) async fn edit_post(
    State(state): State<ConsoleState>,
    signed_in: SignedIn,
    headers: HeaderMap,
    Path(address): Path<String>,
    Form(form): Form<UserForm>,
) -> Response {
    let existing = state.stored_user(&address).map(|u| u.address);
    let Some(existing) = existing else {
        return state.user_not_found(&signed_in);
    };
    state
        .save_user(signed_in, &headers, Some(existing), form)
        .await
}

pub(super) async fn delete_page(
    State(state): State<ConsoleState>,
    signed_in: SignedIn,
    Path(address): Path<String>,
) -> Response {
    let Some(user) = state.stored_user(&address) else {
        return state.user_not_found(&signed_in);
    };
    let href = format!("/console/directory/users/{}", encoded(&user.address));
    state.page(
        "confirm_delete.html",
        StatusCode::OK,
        minijinja::context! {
            admin => home::admin_view(&signed_in.admin),
            csrf => signed_in.csrf.as_str(),
            title => format!("Delete {} from the directory?", user.address),
            crumb => "Directory",
            crumb_href => "/console/directory",
            action => format!("{href}/delete"),
            cancel => href,
            blocked => None::<String>,
            text => "Policies that select by address attribute no longer match this address.",
        },
    )
}

pub(super) async fn delete(
    State(state): State<ConsoleState>,
    signed_in: SignedIn,
    headers: HeaderMap,
    Path(address): Path<String>,
    Form(form): Form<PlainForm>,
) -> Response {
    if let Some(refused) = state.refuse_form(&signed_in, &headers, &form.csrf) {
        return refused;
    }
    match state
        .policy()
        .change(signed_in.actor(), ConfigChange::RemoveUser(address.clone()))
        .await
    {
        Ok(_) => Redirect::to(&format!(
            "/console/directory?deleted={}",
            encoded(address.trim())
        ))
        .into_response(),
        Err(StoreError::NoSuch(_)) => state.user_not_found(&signed_in),
        Err(StoreError::Rejected(e)) => state.not_changed(
            &signed_in,
            "The user was not deleted",
            &e.message,
            "/console/directory",
        ),
        Err(e) => state.failed(&e),
    }
}
