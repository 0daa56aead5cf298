//! The mailbox (issue 15 item 3): Inbox, Sent and Deleted on one list
//! page, with search over sender (recipients, in Sent) and subject, keyset
//! paging, and the list's own actions: mark read or unread, delete,
//! restore (each a POST with the session's CSRF token).
//!
//! The subject is listed and searched in every folder. A definition's
//! `hide_subject` keeps the subject out of the *notification* (mail that
//! may be read by anyone with the mailbox); a signed-in recipient reads the
//! subject on the message page anyway, so the list shows it too. The store
//! searches `messages.subject` and [`MailboxRow`] carries no definition, so
//! hiding it here would need a per-row policy lookup for no protection.

use std::time::{Duration, SystemTime};

use axum::{
    Form,
    extract::{Path, Query, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Redirect, Response},
};
use sealpost_store::{
    QueueId, StoreError,
    portal::{Access, Folder, MailboxCursor, MailboxQuery, MailboxRow},
};
use serde::{Deserialize, Serialize};

use super::{PortalState, account::when, session::RecipientSession};

/// Rows on one page.
pub(super) const PAGE: usize = 50;
/// A message that expires within this is marked "expires soon".
const EXPIRES_SOON: Duration = Duration::from_secs(2 * 86400);
/// Longest search text taken.
const MAX_SEARCH: usize = 200;

#[derive(Debug, Deserialize, Default)]
pub(super) struct ListQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    after: String,
    /// A notice to show after an action: `sent`, `restored`, `refused`.
    #[serde(default)]
    done: String,
}

#[derive(Serialize)]
struct Row {
    /// `None` for a message whose content is gone (expired, recalled).
    href: Option<String>,
    /// The path of the list actions: `/mailbox/{id}/{idx}`.
    action: String,
    who: String,
    subject: Option<String>,
    date: String,
    unread: bool,
    attachments: bool,
    expires_soon: bool,
    ended: bool,
}

fn folder_name(folder: Folder) -> &'static str {
    match folder {
        Folder::Inbox => "inbox",
        Folder::Sent => "sent",
        Folder::Deleted => "deleted",
    }
}

/// A cursor as the `after` query value: `millis.id.idx`.
fn encode_cursor(c: &MailboxCursor) -> String {
    let millis = c
        .received_at
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    format!("{millis}.{}.{}", c.message, c.idx)
}

fn decode_cursor(text: &str) -> Option<MailboxCursor> {
    let mut parts = text.splitn(3, '.');
    let millis: u64 = parts.next()?.parse().ok()?;
    let message = QueueId::parse(parts.next()?)?;
    let idx = parts.next()?.parse().ok()?;
    Some(MailboxCursor {
        received_at: SystemTime::UNIX_EPOCH + Duration::from_millis(millis),
        message,
        idx,
    })
}

pub(super) async fn inbox(
    state: State<PortalState>,
    session: RecipientSession,
    query: Query<ListQuery>,
) -> Response {
    list(state, session, query, Folder::Inbox).await
}

pub(super) async fn sent(
    state: State<PortalState>,
    session: RecipientSession,
    query: Query<ListQuery>,
) -> Response {
    list(state, session, query, Folder::Sent).await
}

pub(super) async fn deleted(
    state: State<PortalState>,
    session: RecipientSession,
    query: Query<ListQuery>,
) -> Response {
    list(state, session, query, Folder::Deleted).await
}

async fn list(
    State(state): State<PortalState>,
    session: RecipientSession,
    Query(query): Query<ListQuery>,
    folder: Folder,
) -> Response {
    let now = SystemTime::now();
    let search: String = query.q.trim().chars().take(MAX_SEARCH).collect();
    let after = decode_cursor(&query.after);
    let page = state
        .store()
        .mailbox(
            &session.account,
            MailboxQuery {
                folder,
                search: (!search.is_empty()).then(|| search.clone()),
                include_ended: folder == Folder::Sent,
                after: after.clone(),
                limit: PAGE,
            },
            now,
        )
        .await;
    let page = match page {
        Ok(page) => page,
        Err(e) => return state.failed(&e),
    };
    let rows: Vec<Row> = page.rows.into_iter().map(|r| row(r, folder, now)).collect();
    let name = folder_name(folder);
    let older = page.next.as_ref().map(|c| {
        let mut href = format!("/{name}?after={}", encode_cursor(c));
        if !search.is_empty() {
            href.push_str("&q=");
            href.push_str(
                &percent_encoding::utf8_percent_encode(&search, percent_encoding::NON_ALPHANUMERIC)
                    .to_string(),
            );
        }
        href
    });
    let w = state.words();
    let notice = match query.done.as_str() {
        "sent" => Some(w.reply_sent_notice),
        "restored" => Some(w.restored_notice),
        _ => None,
    };
    let error = (query.done == "refused").then_some(w.restore_refused);
    let (title, empty, search_label) = match folder {
        Folder::Inbox => (w.inbox_title, w.inbox_empty, w.search_label),
        Folder::Sent => (w.sent_title, w.sent_empty, w.search_sent_label),
        Folder::Deleted => (w.deleted_title, w.deleted_empty, w.search_label),
    };
    state.page(
        "folder.html",
        StatusCode::OK,
        minijinja::context! {
            rows,
            folder => name,
            title,
            empty,
            search_label,
            q => search,
            paged => after.is_some(),
            older,
            notice,
            error,
            address => session.account.as_str(),
            csrf => session.csrf.as_str(),
        },
    )
}

fn row(r: MailboxRow, folder: Folder, now: SystemTime) -> Row {
    let live = r.access == Access::Live;
    Row {
        href: live.then(|| match folder {
            Folder::Sent => format!("/sent/{}", r.message),
            _ => format!("/messages/{}/{}", r.message, r.idx),
        }),
        action: format!("/mailbox/{}/{}", r.message, r.idx),
        who: match folder {
            Folder::Sent => r.recipients.unwrap_or_default(),
            _ => r.sender,
        },
        subject: r.subject.filter(|s| !s.trim().is_empty()),
        date: when(r.received_at),
        unread: folder != Folder::Sent && !r.read,
        attachments: r.has_attachments == Some(true),
        expires_soon: live
            && folder != Folder::Sent
            && r.expires_at.duration_since(now).unwrap_or_default() < EXPIRES_SOON,
        ended: !live,
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct ActionForm {
    #[serde(default)]
    csrf: String,
}

/// What a list action does.
#[derive(Debug, Clone, Copy)]
pub(super) enum Action {
    Read,
    Unread,
    Delete,
    Restore,
}

async fn act(
    state: PortalState,
    session: RecipientSession,
    headers: HeaderMap,
    (id, idx): (String, u32),
    form: ActionForm,
    action: Action,
) -> Response {
    if state
        .check_session_form(&headers, &session, Some(&form.csrf))
        .is_err()
    {
        return state.refused();
    }
    let Some(id) = QueueId::parse(&id) else {
        return super::not_found(State(state)).await;
    };
    let store = state.store();
    let now = SystemTime::now();
    let account = &session.account;
    let (result, back) = match action {
        Action::Read => (store.mark_read(account, &id, idx, true).await, "/inbox"),
        Action::Unread => (store.mark_read(account, &id, idx, false).await, "/inbox"),
        Action::Delete => (store.delete_message(account, &id, idx, now).await, "/inbox"),
        Action::Restore => (
            store.restore_message(account, &id, idx, now).await,
            "/deleted?done=restored",
        ),
    };
    match result {
        Ok(()) => Redirect::to(back).into_response(),
        Err(StoreError::NotFound(_)) => super::not_found(State(state)).await,
        Err(StoreError::Refused(_)) => Redirect::to("/deleted?done=refused").into_response(),
        Err(e) => state.failed(&e),
    }
}

macro_rules! action_handler {
    ($name:ident, $action:expr) => {
        pub(super) async fn $name(
            State(state): State<PortalState>,
            session: RecipientSession,
            headers: HeaderMap,
            Path(path): Path<(String, u32)>,
            Form(form): Form<ActionForm>,
        ) -> Response {
            act(state, session, headers, path, form, $action).await
        }
    };
}

action_handler!(mark_read, Action::Read);
action_handler!(mark_unread, Action::Unread);
action_handler!(delete, Action::Delete);
action_handler!(restore, Action::Restore);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_survives_the_query_string_and_junk_is_no_cursor() {
        let c = MailboxCursor {
            received_at: SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_123),
            message: QueueId::generate(),
            idx: 3,
        };
        assert_eq!(decode_cursor(&encode_cursor(&c)), Some(c));
        assert_eq!(decode_cursor(""), None);
        assert_eq!(decode_cursor("12.nope.1"), None);
        assert_eq!(decode_cursor("x.y.z"), None);
    }
}
