//! Reply, reply all and forward from the portal (issue 15 item 5).
//!
//! `GET /messages/{id}/{idx}/{reply|reply-all|forward}` shows the form:
//! the fixed recipients (or an address field for a forward), a text, files
//! up to `portal.max_upload`. `POST` to the same path composes the mail
//! ([`sealpost_secure::reply::compose`]) and hands it to the same intake
//! as SMTP mail ([`Intake::accept`]): external recipients only by secure
//! delivery, the Sent copy and the original's `replied_at` in the same
//! commit. A kind the definition does not allow is refused with 403 by
//! the server, whatever the page showed; a message that is not the
//! recipient's own, or no longer live, gets the same 404 as a made-up id.

use std::{fmt, sync::Arc, time::SystemTime};

use arc_swap::ArcSwap;
use axum::{
    extract::{DefaultBodyLimit, Multipart, Path, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Redirect, Response},
    routing::{MethodRouter, get},
};
use sealpost_intake::{Intake, PortalReply, Submission};
use sealpost_policy::{DefinitionDraft, DefinitionId, EmailAddress, PolicySet};
use sealpost_secure::reply::{
    Attachment, ComposedReply, Original, ReplyError, ReplyInput, ReplyKind, compose,
};
use sealpost_store::{ClientInfo, PortalSent, QueueId, Store, StoreError, portal::Access};

use super::{Client, PortalState, session::RecipientSession};

/// Room in a posted form beyond `max_upload`: field names, boundaries,
/// the token, the typed addresses.
const FORM_MARGIN: usize = 1 << 20;

/// What a reply needs of the original, behind the portal's one narrow
/// capability: the opened content, the envelope, and the rules of the
/// definition that applied to this recipient.
#[derive(Debug, Clone)]
pub struct OriginalMessage {
    /// As the vault opened it.
    pub content: Vec<u8>,
    pub sender: Option<EmailAddress>,
    /// Every envelope recipient, the replying one included.
    pub recipients: Vec<EmailAddress>,
    /// The replying recipient's own address (the reply's From).
    pub recipient: EmailAddress,
    pub definition: DefinitionId,
    /// Its rules; the default definition's if it was deleted since,
    /// `None` if there is none (nothing is allowed then).
    pub rules: Option<DefinitionDraft>,
}

/// Reads an original for a reply. Callers check ownership first
/// (`PortalStore::mailbox_message`); this answers by id alone.
#[async_trait::async_trait]
pub trait Originals: Send + Sync + fmt::Debug + 'static {
    async fn original(&self, id: &QueueId, idx: u32) -> Result<OriginalMessage, StoreError>;
}

/// [`Originals`] from the queue store (which opens sealed content) and
/// the live policy snapshot.
pub struct StoreOriginals {
    pub store: Arc<dyn Store>,
    pub policy: Arc<ArcSwap<PolicySet>>,
}

impl fmt::Debug for StoreOriginals {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreOriginals").finish_non_exhaustive()
    }
}

#[async_trait::async_trait]
impl Originals for StoreOriginals {
    async fn original(&self, id: &QueueId, idx: u32) -> Result<OriginalMessage, StoreError> {
        let message = self.store.message(id).await?;
        let recipients = self.store.recipients(id).await?;
        let own = recipients
            .iter()
            .find(|r| r.idx == idx)
            .ok_or_else(|| StoreError::NotFound(id.clone()))?;
        let definition = own
            .secure
            .as_ref()
            .ok_or_else(|| StoreError::NotFound(id.clone()))?
            .definition;
        let recipient =
            EmailAddress::parse(&own.address).map_err(|_| StoreError::NotFound(id.clone()))?;
        let content = self.store.load_body(id).await?;
        let policy = self.policy.load();
        let rules = policy
            .definition(definition)
            .or_else(|| policy.default_definition())
            .map(|d| d.settings.clone());
        Ok(OriginalMessage {
            content,
            sender: EmailAddress::parse(&message.sender).ok(),
            recipients: recipients
                .iter()
                .filter_map(|r| EmailAddress::parse(&r.address).ok())
                .collect(),
            recipient,
            definition,
            rules,
        })
    }
}

/// What the reply routes reach.
#[derive(Clone)]
pub struct Replies {
    pub intake: Arc<Intake>,
    pub originals: Arc<dyn Originals>,
}

impl fmt::Debug for Replies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Replies")
            .field("originals", &self.originals)
            .finish_non_exhaustive()
    }
}

/// The three routes, each `GET` (the form) and `POST` (send), the body
/// bounded to `max_upload` and a margin.
pub(super) fn routes(max_upload: u64) -> [(&'static str, MethodRouter<PortalState>); 3] {
    let limit = usize::try_from(max_upload)
        .unwrap_or(usize::MAX)
        .saturating_add(FORM_MARGIN);
    let route = |kind: ReplyKind| {
        get(move |state, session, path| form(state, session, path, kind))
            .post(move |state, session, headers, client, path, multipart| {
                send(state, session, headers, client, path, multipart, kind)
            })
            .layer(DefaultBodyLimit::max(limit))
    };
    [
        ("/messages/{id}/{idx}/reply", route(ReplyKind::Reply)),
        ("/messages/{id}/{idx}/reply-all", route(ReplyKind::ReplyAll)),
        ("/messages/{id}/{idx}/forward", route(ReplyKind::Forward)),
    ]
}

/// The original as this recipient may answer it, or the response that
/// ends the request (404 not theirs or not live, 403 kind not allowed).
struct Context {
    id: QueueId,
    idx: u32,
    original: OriginalMessage,
    rules: DefinitionDraft,
}

async fn context(
    state: &PortalState,
    session: &RecipientSession,
    (id, idx): (String, u32),
    kind: ReplyKind,
) -> Result<Context, Response> {
    let not_found = || async { super::not_found(State(state.clone())).await };
    let Some(id) = QueueId::parse(&id) else {
        return Err(not_found().await);
    };
    match state
        .store()
        .mailbox_message(&session.account, &id, idx, SystemTime::now())
        .await
    {
        Ok(row) if row.access == Access::Live => {}
        Ok(_) | Err(StoreError::NotFound(_)) => return Err(not_found().await),
        Err(e) => return Err(state.failed(&e)),
    }
    let original = match state.replies().originals.original(&id, idx).await {
        Ok(original) => original,
        Err(StoreError::NotFound(_)) => return Err(not_found().await),
        Err(e) => return Err(state.failed(&e)),
    };
    let rules = original.rules.clone().unwrap_or_else(|| DefinitionDraft {
        allow_reply: false,
        allow_reply_all: false,
        allow_forward: false,
        ..DefinitionDraft::default_definition()
    });
    if !kind.allowed_by(&rules) {
        let t = state.words();
        return Err(state.page(
            "notice.html",
            StatusCode::FORBIDDEN,
            minijinja::context! { title => t.reply_not_allowed_title, text => t.reply_not_allowed_text },
        ));
    }
    Ok(Context {
        id,
        idx,
        original,
        rules,
    })
}

impl PortalState {
    fn replies(&self) -> &Replies {
        &self.inner.deps.replies
    }
}

/// What the form shows again after an error.
#[derive(Default)]
struct Typed {
    body: String,
    to: String,
    quote: bool,
}

fn path_of(kind: ReplyKind) -> &'static str {
    match kind {
        ReplyKind::Reply => "reply",
        ReplyKind::ReplyAll => "reply-all",
        ReplyKind::Forward => "forward",
    }
}

/// The fixed recipients the form shows (compose decides the same way).
fn fixed_recipients(kind: ReplyKind, original: &OriginalMessage) -> Vec<String> {
    let own = original.recipient.as_str().to_ascii_lowercase();
    let mut out: Vec<String> = Vec::new();
    let mut add = |a: &EmailAddress| {
        let text = a.as_str().to_owned();
        if text.to_ascii_lowercase() != own && !out.iter().any(|o| o.eq_ignore_ascii_case(&text)) {
            out.push(text);
        }
    };
    match kind {
        ReplyKind::Reply => original.sender.iter().for_each(&mut add),
        ReplyKind::ReplyAll => {
            original.sender.iter().for_each(&mut add);
            original.recipients.iter().for_each(&mut add);
        }
        ReplyKind::Forward => {}
    }
    out
}

/// `25 MiB`, `300 KiB`, `900 bytes`.
pub(super) fn human_size(bytes: u64) -> String {
    const KIB: u64 = 1024;
    const MIB: u64 = KIB * KIB;
    if bytes >= MIB && bytes.is_multiple_of(MIB) {
        format!("{} MiB", bytes / MIB)
    } else if bytes >= MIB {
        format!("{:.1} MiB", bytes as f64 / MIB as f64)
    } else if bytes >= KIB {
        format!("{} KiB", bytes / KIB)
    } else {
        format!("{bytes} bytes")
    }
}

fn render(
    state: &PortalState,
    session: &RecipientSession,
    ctx: &Context,
    kind: ReplyKind,
    typed: &Typed,
    status: StatusCode,
    error: Option<String>,
) -> Response {
    let t = state.words();
    let parsed = Original::from_content(&ctx.original.content, None, Vec::new());
    let title = match kind {
        ReplyKind::Reply => t.reply_title,
        ReplyKind::ReplyAll => t.reply_all_title,
        ReplyKind::Forward => t.forward_title,
    };
    state.page(
        "reply.html",
        status,
        minijinja::context! {
            title,
            action => format!("/messages/{}/{}/{}", ctx.id, ctx.idx, path_of(kind)),
            back => format!("/messages/{}/{}", ctx.id, ctx.idx),
            forward => kind == ReplyKind::Forward,
            recipients => fixed_recipients(kind, &ctx.original),
            subject => parsed.subject,
            quote_text => parsed.quote,
            quote => typed.quote,
            body => typed.body,
            to => typed.to,
            max_upload => human_size(state.settings().max_upload),
            error,
            folder => "",
            csrf => session.csrf.as_str(),
        },
    )
}

async fn form(
    State(state): State<PortalState>,
    session: RecipientSession,
    Path(path): Path<(String, u32)>,
    kind: ReplyKind,
) -> Response {
    match context(&state, &session, path, kind).await {
        Ok(ctx) => render(
            &state,
            &session,
            &ctx,
            kind,
            &Typed {
                quote: true,
                ..Typed::default()
            },
            StatusCode::OK,
            None,
        ),
        Err(response) => response,
    }
}

/// The posted form, read whole (the body limit bounds it).
#[derive(Default)]
struct Posted {
    csrf: String,
    typed: Typed,
    attachments: Vec<Attachment>,
}

enum ReadError {
    TooLarge,
    Malformed,
}

async fn read_form(mut multipart: Multipart) -> Result<Posted, ReadError> {
    let mut posted = Posted::default();
    let fail = |e: axum::extract::multipart::MultipartError| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ReadError::TooLarge
        } else {
            ReadError::Malformed
        }
    };
    while let Some(field) = multipart.next_field().await.map_err(fail)? {
        let name = field.name().unwrap_or_default().to_owned();
        match name.as_str() {
            "attachments" => {
                let file_name = field.file_name().unwrap_or_default().to_owned();
                let content_type = field
                    .content_type()
                    .unwrap_or("application/octet-stream")
                    .to_owned();
                let bytes = field.bytes().await.map_err(fail)?;
                // A file input left empty still sends a nameless, empty part.
                if !(file_name.is_empty() && bytes.is_empty()) {
                    posted.attachments.push(Attachment {
                        name: file_name,
                        content_type,
                        bytes: bytes.to_vec(),
                    });
                }
            }
            "csrf" | "body" | "to" | "quote" => {
                let text = field.text().await.map_err(fail)?;
                match name.as_str() {
                    "csrf" => posted.csrf = text,
                    "body" => posted.typed.body = text,
                    "to" => posted.typed.to = text,
                    _ => posted.typed.quote = true,
                }
            }
            _ => {}
        }
    }
    Ok(posted)
}

fn error_text(state: &PortalState, error: &ReplyError) -> String {
    let t = state.words();
    match error {
        ReplyError::TooLarge { .. } => t.reply_too_large.to_owned(),
        ReplyError::InvalidAddress(a) => format!("{} {a}", t.reply_bad_address),
        ReplyError::NoRecipient => t.reply_no_recipient.to_owned(),
        ReplyError::TooManyRecipients => t.reply_too_many.to_owned(),
        ReplyError::NotAllowed(_) => t.reply_not_allowed_text.to_owned(),
    }
}

async fn send(
    State(state): State<PortalState>,
    session: RecipientSession,
    headers: HeaderMap,
    axum::Extension(client): axum::Extension<Client>,
    Path(path): Path<(String, u32)>,
    multipart: Multipart,
    kind: ReplyKind,
) -> Response {
    let ctx = match context(&state, &session, path, kind).await {
        Ok(ctx) => ctx,
        Err(response) => return response,
    };
    let posted = match read_form(multipart).await {
        Ok(posted) => posted,
        Err(ReadError::TooLarge) => {
            // Nothing changes; the form says why (its CSRF token is the
            // page's own, so this needs no check).
            let text = state.words().reply_too_large.to_owned();
            return render(
                &state,
                &session,
                &ctx,
                kind,
                &Typed {
                    quote: true,
                    ..Typed::default()
                },
                StatusCode::PAYLOAD_TOO_LARGE,
                Some(text),
            );
        }
        Err(ReadError::Malformed) => return StatusCode::BAD_REQUEST.into_response(),
    };
    if state
        .check_session_form(&headers, &session, Some(&posted.csrf))
        .is_err()
    {
        return state.refused();
    }
    let Posted {
        typed, attachments, ..
    } = posted;
    let composed = {
        let original = &ctx.original;
        let mut facts = Original::from_content(
            &original.content,
            original.sender.clone(),
            original.recipients.clone(),
        );
        if !typed.quote {
            facts.quote = None;
        }
        let forward_to: Vec<String> = if kind == ReplyKind::Forward {
            typed
                .to
                .split([',', ';', '\n'])
                .map(str::trim)
                .filter(|a| !a.is_empty())
                .map(str::to_owned)
                .collect()
        } else {
            Vec::new()
        };
        let rules = ctx.rules.clone();
        let from = original.recipient.clone();
        let body = typed.body.clone();
        let max_upload = state.settings().max_upload;
        let hostname = state.settings().hostname.clone();
        // MIME building of up to max_upload bytes: off the runtime.
        tokio::task::spawn_blocking(move || {
            compose(ReplyInput {
                kind,
                definition: &rules,
                from: &from,
                original: &facts,
                forward_to: &forward_to,
                body: &body,
                attachments,
                max_upload,
                hostname: &hostname,
                now: time::OffsetDateTime::now_utc(),
            })
        })
        .await
    };
    let composed: ComposedReply = match composed {
        Ok(Ok(composed)) => composed,
        Ok(Err(ReplyError::NotAllowed(_))) => {
            return StatusCode::FORBIDDEN.into_response();
        }
        Ok(Err(e)) => {
            let status = if matches!(e, ReplyError::TooLarge { .. }) {
                StatusCode::PAYLOAD_TOO_LARGE
            } else {
                StatusCode::UNPROCESSABLE_ENTITY
            };
            let text = error_text(&state, &e);
            return render(&state, &session, &ctx, kind, &typed, status, Some(text));
        }
        Err(e) => return state.failed(&e),
    };
    let has_attachments = composed.has_attachments;
    let submission = Submission::portal(
        composed,
        PortalReply {
            definition: ctx.original.definition,
            sent: PortalSent {
                account: session.account.clone(),
                original: ctx.id.clone(),
                idx: ctx.idx,
                has_attachments,
            },
        },
        ClientInfo {
            ip: client.ip,
            name: None,
            helo: None,
            protocol: if client.over_tls { "HTTPS" } else { "HTTP" }.to_owned(),
        },
        SystemTime::now(),
    );
    match state.replies().intake.accept(submission, false).await {
        Ok(accepted) => {
            tracing::info!(reply = %accepted.id, original = %ctx.id, kind = kind.as_str(), "portal reply accepted");
            accepted.release();
            metrics::counter!("sealpost_portal_replies_total", "kind" => path_of(kind))
                .increment(1);
            Redirect::to("/sent?done=sent").into_response()
        }
        Err(e) => {
            tracing::error!(error = %e, original = %ctx.id, "portal reply refused by the intake");
            let text = state.words().reply_failed.to_owned();
            render(
                &state,
                &session,
                &ctx,
                kind,
                &typed,
                StatusCode::SERVICE_UNAVAILABLE,
                Some(text),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(human_size(25 * 1024 * 1024), "25 MiB");
        assert_eq!(human_size(1536 * 1024), "1.5 MiB");
        assert_eq!(human_size(2048), "2 KiB");
        assert_eq!(human_size(900), "900 bytes");
    }
}
