//! A stored message read for display: headers, bodies, attachments and
//! inline images, all bounded and cleaned, from bytes nobody vouched for.
//!
//! Parsing is mail-parser's; it accepts anything and never panics. What it
//! cannot parse at all becomes an empty view, not an error: the page then
//! shows the message's frame with nothing in it rather than a 500.

use std::collections::BTreeMap;
use std::fmt;

use mail_parser::{Address, Message, MessageParser, MimeHeaders, PartType};
use sealpost_policy::text::one_line;
use serde::Serialize;

use super::names::{file_extension_for, safe_file_name};
use super::sanitise::{SanitisedHtml, sanitise};

/// How many addresses of one header are shown; a header with thousands
/// would only bloat the page (replying uses the stored envelope, not this).
const MAX_LISTED: usize = 100;
const MAX_NAME: usize = 100;
const MAX_ADDRESS: usize = 254;
const MAX_SUBJECT: usize = 300;
const MAX_CONTENT_TYPE: usize = 100;

/// Which MIME part of the message: the position mail-parser gives it. The
/// download and inline routes carry it in their paths; it means nothing
/// without the message, and [`part_contents`] serves only parts that the
/// view lists, never a body or a multipart container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct PartIndex(u32);

impl PartIndex {
    /// Reads the index from a path segment.
    pub fn parse(segment: &str) -> Option<Self> {
        if segment.is_empty() || !segment.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        segment.parse().ok().map(PartIndex)
    }
}

impl fmt::Display for PartIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// One address of a header, each half a clean bounded line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mailbox {
    pub name: Option<String>,
    pub address: String,
}

impl fmt::Display for Mailbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            Some(name) if self.address.is_empty() => f.write_str(name),
            Some(name) => write!(f, "{name} <{}>", self.address),
            None => f.write_str(&self.address),
        }
    }
}

/// An attachment as the page lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Attachment {
    /// Safe to show and to save under: see [`safe_file_name`].
    pub name: String,
    /// Decoded size in bytes.
    pub size: usize,
    /// `type/subtype`, lower case, as the sender declared it (not trusted:
    /// downloads decide their own `Content-Type`).
    pub content_type: String,
    pub index: PartIndex,
}

/// What the message page shows of one message.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct MessageView {
    pub from: Vec<Mailbox>,
    pub to: Vec<Mailbox>,
    pub cc: Vec<Mailbox>,
    /// RFC 5322 form, re-rendered from the parsed date (never the raw
    /// header), or `None` when absent or unreadable.
    pub date: Option<String>,
    /// Seconds since the epoch, for sorting and local formatting.
    pub timestamp: Option<i64>,
    pub subject: String,
    /// The plain-text body, as written (the template escapes it).
    pub text: Option<String>,
    /// The HTML body as the sender wrote it: only ever shown through
    /// [`MessageView::sanitised_html`].
    pub html: Option<String>,
    pub attachments: Vec<Attachment>,
    /// `Content-ID` (without angle brackets) → its part, for raster images
    /// that are not marked as attachments.
    pub inline: BTreeMap<String, PartIndex>,
}

impl MessageView {
    /// Reads a raw RFC 5322 message. Never fails: what cannot be read is
    /// left empty.
    pub fn parse(raw: &[u8]) -> MessageView {
        match MessageParser::default().parse(raw) {
            Some(message) => from_message(&message),
            None => MessageView::default(),
        }
    }

    /// The HTML body, sanitised; `inline_base` is the portal path the
    /// inline images are served under (`{inline_base}/inline/{index}`).
    pub fn sanitised_html(&self, inline_base: &str, allow_remote: bool) -> Option<SanitisedHtml> {
        let html = self.html.as_deref()?;
        Some(sanitise(html, &self.inline, inline_base, allow_remote))
    }

    /// The listed attachment or inline image at `index`, if there is one.
    pub fn attachment(&self, index: PartIndex) -> Option<&Attachment> {
        self.attachments.iter().find(|a| a.index == index)
    }
}

/// The decoded bytes of the attachment or inline image at `index`, or
/// `None` for any other part (a body, a container, a made-up index).
pub fn part_contents(raw: &[u8], index: PartIndex) -> Option<Vec<u8>> {
    let message = MessageParser::default().parse(raw)?;
    let view = from_message(&message);
    let listed = view.attachments.iter().any(|a| a.index == index)
        || view.inline.values().any(|&i| i == index);
    if !listed {
        return None;
    }
    let part = message.parts.get(index.0 as usize)?;
    Some(part.contents().to_vec())
}

fn from_message(message: &Message<'_>) -> MessageView {
    let mut view = MessageView {
        from: mailboxes(message.from()),
        to: mailboxes(message.to()),
        cc: mailboxes(message.cc()),
        date: message.date().map(|d| d.to_rfc822()),
        timestamp: message.date().map(|d| d.to_timestamp()),
        subject: one_line(message.subject().unwrap_or_default(), MAX_SUBJECT),
        text: bodies(message, &message.text_body, false),
        html: bodies(message, &message.html_body, true),
        ..MessageView::default()
    };
    for &id in &message.attachments {
        let Some(part) = message.parts.get(id as usize) else {
            continue;
        };
        let index = PartIndex(id);
        let content_type = content_type(part);
        let disposition_attachment = part
            .content_disposition()
            .is_some_and(|cd| cd.ctype().eq_ignore_ascii_case("attachment"));
        if let Some(cid) = part.content_id()
            && !disposition_attachment
            && super::sanitise::is_inline_image_type(&content_type)
        {
            let cid = cid.trim().trim_start_matches('<').trim_end_matches('>');
            if !cid.is_empty() {
                view.inline.entry(cid.to_owned()).or_insert(index);
                continue;
            }
        }
        let number = view.attachments.len() + 1;
        let fallback = format!("attachment-{number}.{}", file_extension_for(&content_type));
        view.attachments.push(Attachment {
            name: safe_file_name(part.attachment_name(), &fallback),
            size: part.contents().len(),
            content_type,
            index,
        });
    }
    view
}

/// The declared `type/subtype`, lower case and one bounded line; a nested
/// message without a Content-Type is still `message/rfc822`.
fn content_type(part: &mail_parser::MessagePart<'_>) -> String {
    let declared = part.content_type().map(|ct| match ct.subtype() {
        Some(sub) => format!("{}/{}", ct.ctype(), sub),
        None => ct.ctype().to_owned(),
    });
    let fallback = match part.body {
        PartType::Message(_) => "message/rfc822",
        PartType::Text(_) => "text/plain",
        PartType::Html(_) => "text/html",
        _ => "application/octet-stream",
    };
    let ct = one_line(declared.as_deref().unwrap_or(fallback), MAX_CONTENT_TYPE);
    if ct.contains('/') && !ct.contains(' ') {
        ct.to_ascii_lowercase()
    } else {
        fallback.to_owned()
    }
}

/// The body parts of one kind joined; only parts really of that kind (a
/// text-only message lists its text part as the HTML body too, converted,
/// which the portal does not want).
fn bodies(message: &Message<'_>, ids: &[u32], html: bool) -> Option<String> {
    let texts: Vec<&str> = ids
        .iter()
        .filter_map(|&id| message.parts.get(id as usize))
        .filter_map(|part| match (&part.body, html) {
            (PartType::Html(s), true) | (PartType::Text(s), false) => Some(s.as_ref()),
            _ => None,
        })
        .collect();
    if texts.is_empty() {
        None
    } else {
        Some(texts.join(if html { "\n<hr>\n" } else { "\n\n" }))
    }
}

fn mailboxes(address: Option<&Address<'_>>) -> Vec<Mailbox> {
    let Some(address) = address else {
        return Vec::new();
    };
    address
        .iter()
        .take(MAX_LISTED)
        .map(|addr| Mailbox {
            name: addr
                .name()
                .map(|n| one_line(n, MAX_NAME))
                .filter(|n| !n.is_empty()),
            address: one_line(addr.address().unwrap_or_default(), MAX_ADDRESS),
        })
        .filter(|m| m.name.is_some() || !m.address.is_empty())
        .collect()
}

#[cfg(test)]
mod tests;
