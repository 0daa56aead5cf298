//! Opening a message (issue 15, item 4; the print view of item 5; the
//! read receipt of item 6): the message page, its sandboxed frame, its
//! `cid:` images, attachment downloads, the print view, and the read /
//! unread and delete buttons.
//!
//! Every route starts with [`PortalStore::mailbox_message`], which answers
//! `NotFound` for a message that is not the signed-in address's exactly as
//! for one that does not exist, so another recipient's ids get the same
//! 404 page as made-up ones. A message whose access ended (expired or
//! recalled) gets a notice and never its content. Content comes through
//! [`MessageContent`] (opens one message, ownership already checked) and
//! the definition's rules through [`DefinitionLookup`]: the portal holds
//! neither the `AdminStore` nor the policy.
//!
//! [`PortalStore::mailbox_message`]: sealpost_store::PortalStore::mailbox_message

use std::{collections::HashMap, sync::Arc, time::SystemTime};

use arc_swap::ArcSwap;
use axum::{
    Form,
    extract::{FromRequestParts, Path, Query, State},
    http::{HeaderMap, HeaderValue, StatusCode, header, request::Parts},
    response::{IntoResponse, Redirect, Response},
};
use sealpost_policy::{DefinitionDraft, DefinitionId, EmailAddress, PolicySet};
use sealpost_secure::plan::{self, Opening, SecureSettings};
use sealpost_store::{
    QueueId, SecureStore, Store, StoreError,
    portal::{Access, MailboxRow},
};
use serde::{Deserialize, Serialize};

use super::{
    PortalState,
    account::when,
    session::RecipientSession,
    view::{
        FRAME_SANDBOX, MessageView, PartIndex, attachment_headers, frame_document, frame_headers,
        part_contents,
    },
};

/// Opens the stored content of one message (headers and body, in clear).
/// The caller has already checked that the signed-in address owns it.
#[async_trait::async_trait]
pub trait MessageContent: Send + Sync + std::fmt::Debug + 'static {
    async fn open(&self, id: &QueueId) -> Result<Vec<u8>, StoreError>;
}

/// [`MessageContent`] from the mail store (which unseals with the vault).
#[derive(Debug)]
pub struct StoreContent(pub Arc<dyn Store>);

#[async_trait::async_trait]
impl MessageContent for StoreContent {
    async fn open(&self, id: &QueueId) -> Result<Vec<u8>, StoreError> {
        self.0.load_body(id).await
    }
}

/// The definition a secure recipient's message was sent under, from the
/// live policy, and the recording of its openings (with the read receipt
/// where that definition asks for one).
#[async_trait::async_trait]
pub trait DefinitionLookup: Send + Sync + std::fmt::Debug + 'static {
    /// The settings of definition `id` in the live policy; `None` when it
    /// is unknown (deleted since): callers then allow the least (hide the
    /// subject, no print, no reply).
    fn definition(&self, id: DefinitionId) -> Option<DefinitionDraft>;

    /// Records an opening (first and last opened, read) and, at the first
    /// one, commits the read receipt with it. Returns whether it was the
    /// first.
    async fn opened(&self, id: &QueueId, idx: u32, at: SystemTime) -> Result<bool, StoreError>;
}

/// [`DefinitionLookup`] from the secure store and the live policy.
pub struct LiveDefinitions {
    pub secure: Arc<dyn SecureStore>,
    pub policy: Arc<ArcSwap<PolicySet>>,
    /// For the read receipt's headers.
    pub settings: SecureSettings,
}

impl std::fmt::Debug for LiveDefinitions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveDefinitions").finish_non_exhaustive()
    }
}

#[async_trait::async_trait]
impl DefinitionLookup for LiveDefinitions {
    fn definition(&self, id: DefinitionId) -> Option<DefinitionDraft> {
        self.policy
            .load()
            .definition(id)
            .map(|d| d.settings.clone())
    }

    async fn opened(&self, id: &QueueId, idx: u32, at: SystemTime) -> Result<bool, StoreError> {
        let tracked = self.secure.tracked(id).await?;
        let recipient = tracked
            .recipients
            .iter()
            .find(|r| r.idx == idx)
            .ok_or_else(|| StoreError::NotFound(id.clone()))?;
        let secure = recipient
            .secure
            .as_ref()
            .ok_or_else(|| StoreError::NotFound(id.clone()))?;
        let receipt = if secure.first_opened_at.is_none() {
            let sender = EmailAddress::parse(&tracked.message.sender).ok();
            plan::read_receipt(
                &self.policy.load(),
                &self.settings,
                &Opening {
                    message: id,
                    sender: sender.as_ref(),
                    subject: tracked.message.subject.as_deref(),
                    recipient: &recipient.address,
                    definition: secure.definition,
                    at,
                },
            )
        } else {
            None
        };
        self.secure.mark_opened(id, idx, at, receipt).await
    }
}

/// What the settings allow when the definition is unknown: nothing.
fn allows(definition: Option<&DefinitionDraft>) -> Allows {
    definition.map_or(Allows::default(), |d| Allows {
        reply: d.allow_reply,
        reply_all: d.allow_reply_all,
        forward: d.allow_forward,
        print: d.allow_print,
    })
}

#[derive(Debug, Default, Clone, Copy, Serialize)]
struct Allows {
    reply: bool,
    reply_all: bool,
    forward: bool,
    print: bool,
}

/// A message of the signed-in address, found by the path's segments:
/// one it received (`/messages/{id}/{idx}`) or one of its replies
/// (`/sent/{id}`).
struct Found {
    id: QueueId,
    idx: u32,
    row: MailboxRow,
    /// The path its page and parts hang under.
    base: String,
    sent: bool,
}

/// The message a route names, found for the signed-in session: a
/// received one under `/messages/{id}/{idx}`, a reply of the account's
/// under `/sent/{id}`; and the part `{n}` where the route has one. Routes
/// of either kind share their handlers. Anything not the session's is the
/// same 404 page as an unknown path; an ended message is its notice.
pub(super) struct Named {
    session: RecipientSession,
    found: Found,
    part: Option<String>,
}

impl Named {
    fn part(&self) -> &str {
        self.part.as_deref().unwrap_or_default()
    }
}

impl FromRequestParts<PortalState> for Named {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &PortalState,
    ) -> Result<Self, Self::Rejection> {
        let session = RecipientSession::from_request_parts(parts, state).await?;
        let Ok(Path(mut segments)) =
            Path::<HashMap<String, String>>::from_request_parts(parts, state).await
        else {
            return Err(state.not_found_page());
        };
        let id = segments.remove("id").unwrap_or_default();
        let found = match segments.remove("idx") {
            Some(idx) => state.find_live(&session, (id, idx)).await?,
            None => state.find_sent(&session, id).await?,
        };
        Ok(Named {
            session,
            found,
            part: segments.remove("n"),
        })
    }
}

impl PortalState {
    fn content(&self) -> &dyn MessageContent {
        self.inner.deps.content.as_ref()
    }

    pub(super) fn definitions(&self) -> &dyn DefinitionLookup {
        self.inner.deps.definitions.as_ref()
    }

    /// The rules of the definition a received message was sent under;
    /// `None` (allow the least) when it is unknown.
    pub(super) fn rules_of(&self, row: &MailboxRow) -> Option<DefinitionDraft> {
        row.definition
            .and_then(|id| self.definitions().definition(id))
    }

    /// The row of `{id}/{idx}` if it is the session's; the 404 page for
    /// anything else (malformed, unknown, someone else's).
    async fn find(
        &self,
        session: &RecipientSession,
        (id, idx): (String, String),
    ) -> Result<Found, Response> {
        let (Some(id), Some(idx)) = (
            QueueId::parse(&id),
            PartIndex::parse(&idx).and_then(|_| idx.parse::<u32>().ok()),
        ) else {
            return Err(self.not_found_page());
        };
        match self
            .store()
            .mailbox_message(&session.account, &id, idx, SystemTime::now())
            .await
        {
            Ok(row) => Ok(Found {
                base: format!("/messages/{id}/{idx}"),
                id,
                idx,
                row,
                sent: false,
            }),
            Err(StoreError::NotFound(_)) => Err(self.not_found_page()),
            Err(e) => Err(self.failed(&e)),
        }
    }

    /// [`Self::find`], then a notice instead of anything of a message
    /// whose access ended.
    async fn find_live(
        &self,
        session: &RecipientSession,
        path: (String, String),
    ) -> Result<Found, Response> {
        let found = self.find(session, path).await?;
        match found.row.access {
            Access::Live => Ok(found),
            access => Err(self.ended(access, &found.row)),
        }
    }

    /// The account's reply `{id}` if its content is still stored; the 404
    /// page for anything else, the notice for an ended one.
    async fn find_sent(&self, session: &RecipientSession, id: String) -> Result<Found, Response> {
        let Some(id) = QueueId::parse(&id) else {
            return Err(self.not_found_page());
        };
        let row = match self.store().sent_message(&session.account, &id).await {
            Ok(row) => row,
            Err(StoreError::NotFound(_)) => return Err(self.not_found_page()),
            Err(e) => return Err(self.failed(&e)),
        };
        match row.access {
            Access::Live => Ok(Found {
                base: format!("/sent/{id}"),
                id,
                idx: 0,
                row,
                sent: true,
            }),
            access => Err(self.ended(access, &row)),
        }
    }

    fn not_found_page(&self) -> Response {
        self.page("not_found.html", StatusCode::NOT_FOUND, ())
    }

    fn ended(&self, access: Access, row: &MailboxRow) -> Response {
        let t = self.words();
        let (title, text) = match access {
            Access::Recalled => (t.recalled_title, t.recalled_text),
            _ => (t.expired_title, t.expired_text),
        };
        self.page(
            "ended.html",
            StatusCode::GONE,
            minijinja::context! {
                title, text,
                sender => row.sender,
                subject => row.subject.as_deref().filter(|s| !s.trim().is_empty()),
                ended => when(row.expires_at.min(SystemTime::now())),
                expired => matches!(access, Access::Expired),
            },
        )
    }

    /// For a part's route (`…/{n}` under a found message): the part index
    /// and the opened message; the same 404 as any unknown path otherwise.
    async fn open_part(
        &self,
        found: &Found,
        n: &str,
    ) -> Result<(PartIndex, Arc<Vec<u8>>, MessageView), Response> {
        let n = PartIndex::parse(n).ok_or_else(|| self.not_found_page())?;
        let (raw, view) = self.open_view(&found.id).await?;
        Ok((n, raw, view))
    }

    /// The opened content, parsed: a small message right here, a large
    /// one (megabytes of MIME) off the runtime.
    async fn open_view(&self, id: &QueueId) -> Result<(Arc<Vec<u8>>, MessageView), Response> {
        let raw = match self.content().open(id).await {
            Ok(raw) => Arc::new(raw),
            Err(e) => return Err(self.failed(&e)),
        };
        if raw.len() <= PARSE_IN_PLACE {
            let view = MessageView::parse(&raw);
            return Ok((raw, view));
        }
        let parsed = raw.clone();
        let span = tracing::Span::current();
        match tokio::task::spawn_blocking(move || span.in_scope(|| MessageView::parse(&parsed)))
            .await
        {
            Ok(view) => Ok((raw, view)),
            Err(e) => Err(self.failed(&e)),
        }
    }
}

/// Messages up to this size are parsed on the request's own task: tens of
/// microseconds, less than handing the work to a blocking thread and back.
const PARSE_IN_PLACE: usize = 64 * 1024;

#[derive(Debug, Default, Deserialize)]
pub(super) struct RemoteQuery {
    #[serde(default)]
    remote: Option<String>,
}

impl RemoteQuery {
    fn allowed(&self) -> bool {
        self.remote.as_deref() == Some("1")
    }
}

#[derive(Serialize)]
struct AttachmentRow {
    name: String,
    size: String,
    content_type: String,
    href: String,
}

/// A size in words: "512 bytes", "14 KB", "2.4 MB".
fn size_words(bytes: usize, t: &super::words::Words) -> String {
    const K: usize = 1024;
    #[allow(clippy::cast_precision_loss)] // sizes are far below 2^52
    let mb = bytes as f64 / (K * K) as f64;
    if bytes < K {
        format!("{bytes} {}", t.size_bytes)
    } else if bytes < K * K {
        format!("{} {}", bytes.div_ceil(K), t.size_kb)
    } else {
        format!("{mb:.1} {}", t.size_mb)
    }
}

/// The message's own date in words (UTC), else when we received it.
fn date_of(view: &MessageView, row: &MailboxRow) -> String {
    let at = view
        .timestamp
        .and_then(|t| u64::try_from(t).ok())
        .map_or(row.received_at, |t| {
            SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(t)
        });
    when(at)
}

fn people(list: &[super::view::Mailbox]) -> String {
    list.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The message page, of a received message or of a reply in Sent.
#[tracing::instrument(skip_all, fields(message = %named.found.id, idx = named.found.idx))]
pub(super) async fn page(
    State(state): State<PortalState>,
    named: Named,
    Query(query): Query<RemoteQuery>,
) -> Response {
    show(&state, &named.session, named.found, &query).await
}

async fn show(
    state: &PortalState,
    session: &RecipientSession,
    found: Found,
    query: &RemoteQuery,
) -> Response {
    let definition = state.rules_of(&found.row);
    let (_, view) = match state.open_view(&found.id).await {
        Ok(opened) => opened,
        Err(response) => return response,
    };
    let now = SystemTime::now();
    // Reloading an open message within a minute writes nothing; a reply
    // read back is no opening.
    if !found.sent
        && found.row.opening_due(now)
        && let Err(e) = state.definitions().opened(&found.id, found.idx, now).await
    {
        tracing::error!(error = %e, "recording a portal opening failed");
    }
    metrics::counter!("sealpost_portal_views_total").increment(1);
    let t = *state.words();
    let remote = query.allowed();
    let blocked = if remote {
        0
    } else {
        view.sanitised_html(&found.base, false)
            .map_or(0, |h| h.blocked_remote)
    };
    let base = &found.base;
    let attachments: Vec<AttachmentRow> = view
        .attachments
        .iter()
        .map(|a| AttachmentRow {
            name: a.name.clone(),
            size: size_words(a.size, &t),
            content_type: a.content_type.clone(),
            href: format!("{base}/attachments/{}", a.index),
        })
        .collect();
    let allows = allows(definition.as_ref());
    let subject = Some(view.subject.clone())
        .filter(|s| !s.trim().is_empty())
        .or_else(|| found.row.subject.clone());
    state.page(
        "message.html",
        StatusCode::OK,
        minijinja::context! {
            base,
            csrf => session.csrf.as_str(),
            address => session.account.as_str(),
            from => if view.from.is_empty() { found.row.sender.clone() } else { people(&view.from) },
            to => people(&view.to),
            cc => people(&view.cc),
            date => date_of(&view, &found.row),
            expires => when(found.row.expires_at),
            subject,
            attachments,
            has_html => view.html.is_some(),
            text => if view.html.is_none() { view.text.clone() } else { None },
            frame_src => format!("{base}/frame{}", if remote { "?remote=1" } else { "" }),
            sandbox => FRAME_SANDBOX,
            blocked,
            remote_href => format!("{base}?remote=1"),
            allows,
            deleted => found.row.deleted_at.is_some(),
            sent => found.sent,
        },
    )
}

#[tracing::instrument(skip_all, fields(message = %named.found.id, idx = named.found.idx))]
pub(super) async fn frame(
    State(state): State<PortalState>,
    named: Named,
    Query(query): Query<RemoteQuery>,
) -> Response {
    frame_of(&state, &named.found, &query).await
}

async fn frame_of(state: &PortalState, found: &Found, query: &RemoteQuery) -> Response {
    let (_, view) = match state.open_view(&found.id).await {
        Ok(opened) => opened,
        Err(response) => return response,
    };
    let remote = query.allowed();
    let Some(html) = view.sanitised_html(&found.base, remote) else {
        return state.not_found_page();
    };
    (frame_headers(remote), frame_document(&html.html)).into_response()
}

/// The bytes of a part the view lists, parsed off the runtime.
async fn part(state: &PortalState, raw: Arc<Vec<u8>>, n: PartIndex) -> Result<Vec<u8>, Response> {
    match tokio::task::spawn_blocking(move || part_contents(&raw, n)).await {
        Ok(Some(bytes)) => Ok(bytes),
        Ok(None) => Err(state.not_found_page()),
        Err(e) => Err(state.failed(&e)),
    }
}

#[tracing::instrument(skip_all, fields(message = %named.found.id, idx = named.found.idx))]
pub(super) async fn inline(State(state): State<PortalState>, named: Named) -> Response {
    inline_of(&state, &named.found, named.part()).await
}

/// A `cid:` image of the message, as the type it declares.
async fn inline_of(state: &PortalState, found: &Found, n: &str) -> Response {
    let (n, raw, view) = match state.open_part(found, n).await {
        Ok(opened) => opened,
        Err(response) => return response,
    };
    if !view.inline.values().any(|&i| i == n) {
        return state.not_found_page();
    }
    // The part's declared type, which the view checked is an image type
    // it lists; anything else is refused rather than sniffed.
    let typed = tokio::task::spawn_blocking(move || {
        use mail_parser::MimeHeaders;
        let message = mail_parser::MessageParser::default().parse(raw.as_slice())?;
        let part = message.parts.get(n.to_string().parse::<usize>().ok()?)?;
        let declared = part
            .content_type()
            .and_then(|ct| ct.subtype().map(|s| format!("{}/{s}", ct.ctype())))?
            .to_ascii_lowercase();
        let content_type = match declared.as_str() {
            "image/png" => "image/png",
            "image/gif" => "image/gif",
            "image/webp" => "image/webp",
            "image/jpeg" | "image/jpg" => "image/jpeg",
            _ => return None,
        };
        Some((content_type, part.contents().to_vec()))
    })
    .await;
    let (content_type, bytes) = match typed {
        Ok(Some(typed)) => typed,
        Ok(None) => return state.not_found_page(),
        Err(e) => return state.failed(&e),
    };
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    (headers, bytes).into_response()
}

#[tracing::instrument(skip_all, fields(message = %named.found.id, idx = named.found.idx))]
pub(super) async fn attachment(State(state): State<PortalState>, named: Named) -> Response {
    attachment_of(&state, &named.found, named.part()).await
}

/// An attachment the view lists, as a download.
async fn attachment_of(state: &PortalState, found: &Found, n: &str) -> Response {
    let (n, raw, view) = match state.open_part(found, n).await {
        Ok(opened) => opened,
        Err(response) => return response,
    };
    let Some(listed) = view.attachment(n).cloned() else {
        return state.not_found_page();
    };
    let bytes = match part(state, raw, n).await {
        Ok(bytes) => bytes,
        Err(response) => return response,
    };
    metrics::counter!("sealpost_portal_downloads_total").increment(1);
    let mut headers = attachment_headers(&listed.name, &listed.content_type);
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    (headers, bytes).into_response()
}

#[tracing::instrument(skip_all, fields(message = %path.0, idx = %path.1))]
pub(super) async fn print(
    State(state): State<PortalState>,
    session: RecipientSession,
    Path(path): Path<(String, String)>,
) -> Response {
    let found = match state.find_live(&session, path).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let definition = state.rules_of(&found.row);
    if !allows(definition.as_ref()).print {
        let t = state.words();
        return state.page(
            "notice.html",
            StatusCode::FORBIDDEN,
            minijinja::context! {
                title => t.print_refused_title,
                text => t.print_refused_text,
                action_href => found.base,
                action_label => t.back_to_message,
            },
        );
    }
    let (_, view) = match state.open_view(&found.id).await {
        Ok(opened) => opened,
        Err(response) => return response,
    };
    // Inline images are the portal's own; remote content never.
    let html = view.sanitised_html(&found.base, false).map(|h| h.html);
    state.page(
        "print.html",
        StatusCode::OK,
        minijinja::context! {
            base => found.base,
            from => if view.from.is_empty() { found.row.sender.clone() } else { people(&view.from) },
            to => people(&view.to),
            cc => people(&view.cc),
            date => date_of(&view, &found.row),
            subject => Some(view.subject.clone()).filter(|s| !s.trim().is_empty()),
            text => if html.is_none() { view.text.clone() } else { None },
            html,
            attachments => view.attachments.iter().map(|a| a.name.clone()).collect::<Vec<_>>(),
        },
    )
}

#[derive(Debug, Deserialize)]
pub(super) struct ActionForm {
    #[serde(default)]
    csrf: String,
    /// For `/read`: `1` read, `0` unread.
    #[serde(default)]
    read: Option<String>,
}

#[tracing::instrument(skip_all, fields(message = %path.0, idx = %path.1))]
pub(super) async fn mark_read(
    State(state): State<PortalState>,
    session: RecipientSession,
    headers: HeaderMap,
    Path(path): Path<(String, String)>,
    Form(form): Form<ActionForm>,
) -> Response {
    if state
        .check_session_form(&headers, &session, Some(&form.csrf))
        .is_err()
    {
        return state.refused();
    }
    let found = match state.find(&session, path).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let read = form.read.as_deref() != Some("0");
    match state
        .store()
        .mark_read(&session.account, &found.id, found.idx, read)
        .await
    {
        // Unread: back to the inbox (staying would open it again).
        Ok(()) if read => Redirect::to(&found.base).into_response(),
        Ok(()) => Redirect::to("/inbox").into_response(),
        Err(StoreError::NotFound(_)) => state.not_found_page(),
        Err(e) => state.failed(&e),
    }
}

#[tracing::instrument(skip_all, fields(message = %path.0, idx = %path.1))]
pub(super) async fn delete(
    State(state): State<PortalState>,
    session: RecipientSession,
    headers: HeaderMap,
    Path(path): Path<(String, String)>,
    Form(form): Form<ActionForm>,
) -> Response {
    if state
        .check_session_form(&headers, &session, Some(&form.csrf))
        .is_err()
    {
        return state.refused();
    }
    let found = match state.find(&session, path).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    match state
        .store()
        .delete_message(&session.account, &found.id, found.idx, SystemTime::now())
        .await
    {
        Ok(()) => Redirect::to("/inbox").into_response(),
        Err(StoreError::NotFound(_)) => state.not_found_page(),
        Err(e) => state.failed(&e),
    }
}

/// `/static/print.js`: the print view's button (no inline script).
pub(super) async fn print_js() -> Response {
    super::asset(
        "text/javascript; charset=utf-8",
        "document.getElementById('print-now')\
         .addEventListener('click', function () { window.print(); });\n",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_words() {
        let t = super::super::words::Words::ENGLISH;
        assert_eq!(size_words(0, &t), "0 bytes");
        assert_eq!(size_words(1023, &t), "1023 bytes");
        assert_eq!(size_words(1024, &t), "1 KB");
        assert_eq!(size_words(1025, &t), "2 KB");
        assert_eq!(size_words(2_500_000, &t), "2.4 MB");
    }
}
