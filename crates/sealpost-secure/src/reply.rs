//! A portal recipient's reply, reply all or forward, composed as the mail
//! that enters the intake: who it goes to (as the definition allows), the
//! threading headers, the text and the attachments, as RFC 5322 bytes.
//!
//! Pure: the caller passes the original's facts, the time and our host
//! name, and hands the result to `sealpost_intake` (which seals it and
//! forces secure delivery for every external recipient). The MIME is
//! written with [`crate::mime`], under the same line limits as the
//! notifications.

use std::fmt::Write as _;

use sealpost_policy::{DefinitionDraft, EmailAddress, text::one_line};

use crate::mime;

/// The longest subject written, in characters.
const MAX_SUBJECT_CHARS: usize = 250;

/// The most Message-IDs kept in `References`: the first (the thread's
/// root) and the latest ones, as RFC 5322 §3.6.4 suggests when trimming.
const MAX_REFERENCES: usize = 20;

/// The longest Message-ID taken from the original (RFC 5322 lines are at
/// most 998 octets; a longer id is not one we thread on).
const MAX_MESSAGE_ID: usize = 250;

/// The longest attachment file name kept, in characters.
const MAX_FILE_NAME: usize = 120;

/// The most recipients a forward may name.
pub const MAX_FORWARD_RECIPIENTS: usize = 50;

/// What the recipient does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyKind {
    /// To the original's sender.
    Reply,
    /// To the sender and every other recipient of the original.
    ReplyAll,
    /// To addresses the recipient types.
    Forward,
}

impl ReplyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ReplyKind::Reply => "reply",
            ReplyKind::ReplyAll => "reply all",
            ReplyKind::Forward => "forward",
        }
    }

    /// Whether the definition lets its recipients do this.
    pub fn allowed_by(self, definition: &DefinitionDraft) -> bool {
        match self {
            ReplyKind::Reply => definition.allow_reply,
            ReplyKind::ReplyAll => definition.allow_reply_all,
            ReplyKind::Forward => definition.allow_forward,
        }
    }
}

/// The original message, as far as a reply needs it.
#[derive(Debug, Clone, Default)]
pub struct Original {
    /// The envelope sender; `None`: the null sender (nobody to reply to).
    pub sender: Option<EmailAddress>,
    /// Every envelope recipient of the original, the replying one
    /// included (reply all leaves it out).
    pub recipients: Vec<EmailAddress>,
    /// The raw `Message-ID` header value, if any.
    pub message_id: Option<String>,
    /// The raw `References` header value, if any.
    pub references: Option<String>,
    /// The subject as the recipient saw it.
    pub subject: String,
    /// The original's text, quoted below the reply when given (the portal
    /// offers it; the caller leaves it out for a definition that hides
    /// the subject, or when the recipient unticks it).
    pub quote: Option<String>,
    /// The original's Date, for the quote's attribution line.
    pub date: Option<String>,
}

impl Original {
    /// The original's facts from its content (as the vault opened it) and
    /// its envelope; `quote` is its text part (the portal decides whether
    /// to keep it).
    pub fn from_content(
        content: &[u8],
        sender: Option<EmailAddress>,
        recipients: Vec<EmailAddress>,
    ) -> Self {
        let parsed = mail_parser::MessageParser::new().parse_headers(content);
        let Some(message) = parsed else {
            return Original {
                sender,
                recipients,
                ..Original::default()
            };
        };
        let body = mail_parser::MessageParser::new().parse(content);
        Original {
            sender,
            recipients,
            message_id: message.header_raw("Message-ID").map(str::to_owned),
            references: message.header_raw("References").map(str::to_owned),
            subject: message.subject().unwrap_or_default().to_owned(),
            quote: body
                .as_ref()
                .and_then(|b| b.body_text(0))
                .map(|t| t.into_owned()),
            date: message.date().map(|d| d.to_rfc822()),
        }
    }
}

/// A file the recipient attached.
#[derive(Debug, Clone)]
pub struct Attachment {
    /// As the browser sent it; sanitised before it is written.
    pub name: String,
    /// As the browser sent it; anything not `type/subtype` becomes
    /// `application/octet-stream`.
    pub content_type: String,
    pub bytes: Vec<u8>,
}

/// Everything [`compose`] needs.
#[derive(Debug, Clone)]
pub struct ReplyInput<'a> {
    pub kind: ReplyKind,
    /// The definition that applied to the original for this recipient:
    /// it says which kinds are allowed.
    pub definition: &'a DefinitionDraft,
    /// The replying recipient: the reply's From and envelope sender.
    pub from: &'a EmailAddress,
    pub original: &'a Original,
    /// For [`ReplyKind::Forward`]: the addresses typed, unparsed.
    pub forward_to: &'a [String],
    /// The text the recipient wrote.
    pub body: &'a str,
    pub attachments: Vec<Attachment>,
    /// `portal.max_upload`: the body and attachments together, in bytes.
    pub max_upload: u64,
    /// Our host name, the right-hand side of the Message-ID.
    pub hostname: &'a str,
    pub now: time::OffsetDateTime,
}

/// The composed mail and its envelope.
#[derive(Debug, Clone)]
pub struct ComposedReply {
    /// The whole mail, CRLF line ends.
    pub content: Vec<u8>,
    /// The envelope sender: the replying recipient.
    pub sender: EmailAddress,
    /// The envelope recipients, de-duplicated, in header order.
    pub recipients: Vec<EmailAddress>,
    /// `local@host`, without angle brackets.
    pub message_id: String,
    /// The subject as written (one line).
    pub subject: String,
    /// The header holds a UTF-8 address: SMTPUTF8 is needed.
    pub smtputf8: bool,
    pub has_attachments: bool,
}

/// Why a reply cannot be composed. The web layer maps
/// [`ReplyError::NotAllowed`] to 403 and the others to a form error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    /// The definition does not allow this kind.
    #[error("this message does not allow {}", .0.as_str())]
    NotAllowed(ReplyKind),
    /// Nobody to send to: the original had the null sender, or a forward
    /// named no address.
    #[error("there is nobody to send this to")]
    NoRecipient,
    /// A typed address does not parse.
    #[error("{0:?} is not a valid email address")]
    InvalidAddress(String),
    /// More forward addresses than [`MAX_FORWARD_RECIPIENTS`].
    #[error("at most {MAX_FORWARD_RECIPIENTS} addresses")]
    TooManyRecipients,
    /// The text and attachments exceed `max_upload`.
    #[error("{size} bytes is more than the {max} allowed")]
    TooLarge { size: u64, max: u64 },
}

/// Composes the reply.
///
/// # Errors
/// [`ReplyError`]; nothing is composed then.
pub fn compose(input: ReplyInput<'_>) -> Result<ComposedReply, ReplyError> {
    if !input.kind.allowed_by(input.definition) {
        return Err(ReplyError::NotAllowed(input.kind));
    }
    let size = input.body.len() as u64
        + input
            .attachments
            .iter()
            .map(|a| a.bytes.len() as u64)
            .sum::<u64>();
    if size > input.max_upload {
        return Err(ReplyError::TooLarge {
            size,
            max: input.max_upload,
        });
    }
    let (to, cc) = addressees(&input)?;
    let original = input.original;
    let subject = subject(input.kind, &original.subject);
    let message_id = mime::message_id(input.hostname);
    let parent = original
        .message_id
        .as_deref()
        .and_then(|v| msg_ids(v).into_iter().next_back());
    let mut references: Vec<String> = original
        .references
        .as_deref()
        .map(msg_ids)
        .unwrap_or_default();
    if let Some(parent) = parent.as_ref().filter(|p| !references.contains(p)) {
        references.push(parent.clone());
    }
    if references.len() > MAX_REFERENCES {
        references.drain(1..references.len() - (MAX_REFERENCES - 1));
    }

    let mut out = String::with_capacity(input.body.len() + size as usize * 4 / 3 + 4096);
    let bracket = |a: &EmailAddress| format!("<{}>", a.with_ascii_domain());
    mime::header(&mut out, "From", &[bracket(input.from)]);
    mime::header(&mut out, "To", &address_tokens(&to, bracket));
    if !cc.is_empty() {
        mime::header(&mut out, "Cc", &address_tokens(&cc, bracket));
    }
    mime::header(
        &mut out,
        "Subject",
        &mime::unstructured(&subject, mime::room_after("Subject")),
    );
    mime::header(&mut out, "Date", &[mime::date(input.now)]);
    mime::header(&mut out, "Message-ID", &[format!("<{message_id}>")]);
    if let Some(parent) = &parent {
        mime::header(&mut out, "In-Reply-To", std::slice::from_ref(parent));
    }
    if !references.is_empty() {
        mime::header(&mut out, "References", &references);
    }
    mime::header(&mut out, "MIME-Version", &["1.0".to_owned()]);
    let text = text(&input);
    let text_part = "Content-Type: text/plain; charset=utf-8\r\n\
                     Content-Transfer-Encoding: quoted-printable\r\n";
    if input.attachments.is_empty() {
        out.push_str(text_part);
        out.push_str("\r\n");
        mime::quoted_printable(&text, &mut out);
        out.push_str("\r\n");
    } else {
        // Neither quoted-printable nor base64 writes `=_`, so no part can
        // hold the boundary.
        let boundary = format!("=_{}", message_id.split('@').next().unwrap_or_default());
        mime::header(
            &mut out,
            "Content-Type",
            &[
                "multipart/mixed;".to_owned(),
                format!("boundary=\"{boundary}\""),
            ],
        );
        let _ = write!(out, "\r\n--{boundary}\r\n{text_part}\r\n");
        mime::quoted_printable(&text, &mut out);
        out.push_str("\r\n");
        for a in &input.attachments {
            let _ = write!(out, "--{boundary}\r\n");
            mime::header(&mut out, "Content-Type", &[content_type(&a.content_type)]);
            mime::header(
                &mut out,
                "Content-Disposition",
                &std::iter::once("attachment;".to_owned())
                    .chain(file_name_parameter(&a.name))
                    .collect::<Vec<_>>(),
            );
            out.push_str("Content-Transfer-Encoding: base64\r\n\r\n");
            mime::base64_lines(&a.bytes, &mut out);
        }
        let _ = write!(out, "--{boundary}--\r\n");
    }
    let smtputf8 = !out.is_ascii();
    Ok(ComposedReply {
        content: out.into_bytes(),
        sender: input.from.clone(),
        recipients: to.into_iter().chain(cc).collect(),
        message_id,
        subject,
        smtputf8,
        has_attachments: !input.attachments.is_empty(),
    })
}

/// To and Cc: reply → the sender; reply all → the sender, Cc every other
/// recipient but the one replying; forward → the typed addresses. Each
/// address once, compared by match key (case-insensitive).
fn addressees(
    input: &ReplyInput<'_>,
) -> Result<(Vec<EmailAddress>, Vec<EmailAddress>), ReplyError> {
    let mut seen = std::collections::HashSet::new();
    seen.insert(input.from.match_key());
    let mut once = |a: &EmailAddress| seen.insert(a.match_key());
    let original = input.original;
    let mut to = Vec::new();
    let mut cc = Vec::new();
    match input.kind {
        ReplyKind::Reply | ReplyKind::ReplyAll => {
            let sender = original.sender.as_ref().ok_or(ReplyError::NoRecipient)?;
            // Replying to oneself (a message one sent oneself) still goes
            // to that address.
            once(sender);
            to.push(sender.clone());
            if input.kind == ReplyKind::ReplyAll {
                cc.extend(original.recipients.iter().filter(|a| once(a)).cloned());
            }
        }
        ReplyKind::Forward => {
            let typed: Vec<&str> = input
                .forward_to
                .iter()
                .flat_map(|s| s.split([',', ';', ' ', '\n', '\r', '\t']))
                .map(|s| s.trim().trim_start_matches('<').trim_end_matches('>'))
                .filter(|s| !s.is_empty())
                .collect();
            if typed.len() > MAX_FORWARD_RECIPIENTS {
                return Err(ReplyError::TooManyRecipients);
            }
            for t in typed {
                let a = EmailAddress::parse(t)
                    .map_err(|_| ReplyError::InvalidAddress(one_line(t, 100)))?;
                if once(&a) {
                    to.push(a);
                }
            }
        }
    }
    if to.is_empty() {
        return Err(ReplyError::NoRecipient);
    }
    Ok((to, cc))
}

/// Addresses as header tokens, a comma after each but the last.
fn address_tokens(
    addresses: &[EmailAddress],
    bracket: impl Fn(&EmailAddress) -> String,
) -> Vec<String> {
    let last = addresses.len().saturating_sub(1);
    addresses
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let mut t = bracket(a);
            if i < last {
                t.push(',');
            }
            t
        })
        .collect()
}

/// `Re: subject` or `Fwd: subject`, one line, the prefix not doubled.
fn subject(kind: ReplyKind, original: &str) -> String {
    let original = one_line(original, MAX_SUBJECT_CHARS);
    let lower = original.to_ascii_lowercase();
    let (prefix, already) = match kind {
        ReplyKind::Reply | ReplyKind::ReplyAll => ("Re: ", lower.starts_with("re:")),
        ReplyKind::Forward => (
            "Fwd: ",
            lower.starts_with("fwd:") || lower.starts_with("fw:"),
        ),
    };
    if already {
        original
    } else {
        one_line(&format!("{prefix}{original}"), MAX_SUBJECT_CHARS)
    }
}

/// The `<id>` tokens of a Message-ID or References value, in order:
/// printable ASCII with an `@`, bounded. Anything else in the value
/// (comments, folding, junk) is dropped, so nothing the original's sender
/// wrote reaches our header but well-formed ids.
fn msg_ids(value: &str) -> Vec<String> {
    let mut ids = Vec::new();
    let mut rest = value;
    while let Some(start) = rest.find('<') {
        rest = &rest[start + 1..];
        let Some(end) = rest.find(['>', '<']) else {
            break;
        };
        let id = &rest[..end];
        if rest[end..].starts_with('>')
            && id.contains('@')
            && id.len() <= MAX_MESSAGE_ID
            && id.bytes().all(|b| b.is_ascii_graphic())
        {
            ids.push(format!("<{id}>"));
        }
        rest = &rest[end..];
    }
    if ids.len() > MAX_REFERENCES {
        ids.drain(1..ids.len() - (MAX_REFERENCES - 1));
    }
    ids
}

/// The text part: what the recipient wrote, then the original quoted
/// (`> ` per line under an attribution line, or the forwarded block).
fn text(input: &ReplyInput<'_>) -> String {
    let mut text = input.body.replace("\r\n", "\n");
    let original = input.original;
    let Some(quote) = &original.quote else {
        return text;
    };
    let sender = original
        .sender
        .as_ref()
        .map_or_else(String::new, ToString::to_string);
    let date = original.date.as_deref().map(|d| one_line(d, 100));
    if !text.ends_with('\n') {
        text.push('\n');
    }
    match input.kind {
        ReplyKind::Reply | ReplyKind::ReplyAll => {
            let _ = match &date {
                Some(date) => writeln!(text, "\nOn {date}, {sender} wrote:"),
                None => writeln!(text, "\n{sender} wrote:"),
            };
            for line in quote.replace("\r\n", "\n").lines() {
                let _ = writeln!(text, ">{}{line}", if line.is_empty() { "" } else { " " });
            }
        }
        ReplyKind::Forward => {
            let _ = writeln!(
                text,
                "\n---------- Forwarded message ----------\nFrom: {sender}\nSubject: {}",
                one_line(&original.subject, MAX_SUBJECT_CHARS)
            );
            if let Some(date) = &date {
                let _ = writeln!(text, "Date: {date}");
            }
            text.push('\n');
            text.push_str(&quote.replace("\r\n", "\n"));
        }
    }
    text
}

/// `type/subtype` when the browser's value is one (parameters dropped),
/// else `application/octet-stream`.
fn content_type(given: &str) -> String {
    let essence = given.split(';').next().unwrap_or_default().trim();
    let token = |s: &str| {
        !s.is_empty()
            && s.len() <= 100
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
    };
    match essence.split_once('/') {
        Some((t, s)) if token(t) && token(s) => essence.to_ascii_lowercase(),
        _ => "application/octet-stream".to_owned(),
    }
}

/// A file name a mail reader can save safely: no path, no control
/// character, no quote, no leading dot, bounded; `attachment` when
/// nothing is left.
pub fn sanitize_file_name(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or_default();
    let cleaned: String = base
        .chars()
        .map(|c| {
            if c.is_control() || matches!(c, '"' | '<' | '>' | ':' | '|' | '?' | '*') {
                '_'
            } else {
                c
            }
        })
        .take(MAX_FILE_NAME)
        .collect();
    let cleaned = one_line(&cleaned, MAX_FILE_NAME);
    let cleaned = cleaned
        .trim_start_matches(['.', ' '])
        .trim_end_matches(['.', ' ']);
    if cleaned.is_empty() {
        "attachment".to_owned()
    } else {
        cleaned.to_owned()
    }
}

/// The `filename` parameter as header tokens: quoted when it is plain
/// ASCII, else RFC 2231 percent-encoded UTF-8, in continuations short
/// enough to fold (`filename*0*=utf-8''…; filename*1*=…`).
fn file_name_parameter(name: &str) -> Vec<String> {
    let name = sanitize_file_name(name);
    if name.bytes().all(|b| b == b' ' || b.is_ascii_graphic()) && !name.contains('\\') {
        return vec![format!("filename=\"{name}\"")];
    }
    let mut segments = vec![String::new()];
    for c in name.chars() {
        let mut unit = String::new();
        let mut buf = [0u8; 4];
        for b in c.encode_utf8(&mut buf).bytes() {
            if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
                unit.push(char::from(b));
            } else {
                let _ = write!(unit, "%{b:02X}");
            }
        }
        // A character's escapes stay in one segment.
        if segments.last().is_some_and(|s| s.len() + unit.len() > 40) {
            segments.push(String::new());
        }
        if let Some(last) = segments.last_mut() {
            last.push_str(&unit);
        }
    }
    let last = segments.len() - 1;
    segments
        .iter()
        .enumerate()
        .map(|(i, seg)| {
            let charset = if i == 0 { "utf-8''" } else { "" };
            let end = if i < last { ";" } else { "" };
            format!("filename*{i}*={charset}{seg}{end}")
        })
        .collect()
}

#[cfg(test)]
mod tests;
