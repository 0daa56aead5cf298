//! Message tracking in the console (issue 16, item 2): the search
//! (`/console/tracking`), a message's page (`/console/tracking/{id}`) and
//! the changes, recall, expiry and bulk recall ([`actions`]).
//!
//! Built on the store calls of `/api/v1/messages` (search, detail, recall,
//! extend), so the console and the API show and change the same records,
//! audited alike with the administrator as actor. Every role reads; the
//! route table lets only super and tracking admins change, and the pages
//! hide the buttons from the others.
//!
//! - [`filters`]: the search form, checked field by field.
//! - [`views`]: records as the pages show them.
//! - [`message`]: a message's page.
//! - [`actions`]: recall, extend, bulk recall.

pub(super) mod actions;
mod filters;
mod form;
pub(super) mod message;
mod views;

use axum::{
    extract::{RawQuery, State},
    http::StatusCode,
    response::Response,
};
use serde::Serialize;

use super::{ConsoleState, SignedIn, home};
use filters::{FieldErrors, Filters, PAGE_SIZES, STATUSES};

/// What a search page shows besides the results.
#[derive(Debug, Default, Serialize)]
struct Outcome {
    /// After a bulk recall.
    notice: Option<String>,
    /// A bulk recall refused (no message ticked, not confirmed).
    bulk_error: Option<String>,
}

impl ConsoleState {
    async fn tracking_page(
        &self,
        signed_in: &SignedIn,
        filters: Filters,
        outcome: Outcome,
        status: StatusCode,
    ) -> Response {
        let (rows, errors, next, status) = match filters.parse() {
            Err(errors) => (Vec::new(), *errors, None, StatusCode::UNPROCESSABLE_ENTITY),
            Ok(filter) => {
                let limit = filter.limit;
                let found = match self.secure().search(filter).await {
                    Ok(found) => found,
                    Err(e) => return self.failed(&e),
                };
                let next = (found.len() == limit)
                    .then(|| found.last().map(|t| t.message.id.to_string()))
                    .flatten();
                let rows: Vec<_> = found.iter().map(views::row).collect();
                (rows, FieldErrors::default(), next, status)
            }
        };
        let query = filters.query();
        let with = |extra: String| {
            if query.is_empty() {
                format!("/console/tracking?{extra}")
            } else {
                format!("/console/tracking?{query}&{extra}")
            }
        };
        let next = next.map(|id| with(format!("after={id}")));
        let first = (!filters.after.is_empty()).then(|| {
            if query.is_empty() {
                "/console/tracking".to_owned()
            } else {
                format!("/console/tracking?{query}")
            }
        });
        self.page(
            "tracking.html",
            status,
            minijinja::context! {
                admin => home::admin_view(&signed_in.admin),
                csrf => signed_in.csrf.as_str(),
                may_manage => signed_in.admin.role.may_manage_messages(),
                page_size => filters.page_size(),
                q => filters,
                query,
                errors,
                statuses => STATUSES,
                page_sizes => PAGE_SIZES,
                rows,
                next,
                first,
                outcome,
            },
        )
    }
}

/// `GET /console/tracking`: the search form and a page of results.
pub(in crate::console) async fn search(
    State(state): State<ConsoleState>,
    signed_in: SignedIn,
    RawQuery(query): RawQuery,
) -> Response {
    let pairs = form::pairs(query.as_deref().unwrap_or(""));
    let notice = form::first(&pairs, "recalled")
        .and_then(|n| n.parse::<usize>().ok())
        .map(|n| match n {
            1 => "1 message recalled.".to_owned(),
            n => format!("{n} messages recalled."),
        });
    state
        .tracking_page(
            &signed_in,
            Filters::from_pairs(&pairs),
            Outcome {
                notice,
                bulk_error: None,
            },
            StatusCode::OK,
        )
        .await
}
