//! The inbox: where a signed-in recipient lands. Minimal for now (one
//! page of the newest live messages); search, paging and the other
//! folders come with the mailbox work.

use std::time::SystemTime;

use axum::{extract::State, http::StatusCode, response::Response};
use sealpost_store::portal::{Folder, MailboxQuery};
use serde::Serialize;

use super::{PortalState, account::when, session::RecipientSession};

/// Rows shown on the page.
const PAGE: usize = 100;

#[derive(Serialize)]
struct Row {
    href: String,
    sender: String,
    subject: Option<String>,
    date: String,
    unread: bool,
}

pub(super) async fn inbox(State(state): State<PortalState>, session: RecipientSession) -> Response {
    let page = state
        .store()
        .mailbox(
            &session.account,
            MailboxQuery {
                folder: Folder::Inbox,
                search: None,
                include_ended: false,
                after: None,
                limit: PAGE,
            },
            SystemTime::now(),
        )
        .await;
    let page = match page {
        Ok(page) => page,
        Err(e) => return state.failed(&e),
    };
    let rows: Vec<Row> = page
        .rows
        .into_iter()
        .map(|r| Row {
            href: format!("/messages/{}/{}", r.message, r.idx),
            sender: r.sender,
            subject: r.subject.filter(|s| !s.trim().is_empty()),
            date: when(r.received_at),
            unread: !r.read,
        })
        .collect();
    state.page(
        "inbox.html",
        StatusCode::OK,
        minijinja::context! {
            rows,
            address => session.account.as_str(),
            csrf => session.csrf.as_str(),
        },
    )
}
