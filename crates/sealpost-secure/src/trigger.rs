//! Sender triggers (SPEC §4.2): the subject tag and `X-Sealpost-Secure`.
//!
//! This module only reads and rewrites the header block of a raw message;
//! whether a request is honoured (internal sender, a definition that allows
//! it) is decided by the caller. `X-Sealpost-Secure` is an instruction to
//! this gateway, so [`rewrite`] removes it from every message, whoever sent
//! it. The body is never read or changed, and no input makes this panic.
//!
//! The header block is every line before the first empty line (`CRLF CRLF`;
//! a bare `LF` line end is tolerated), or the whole message when there is
//! no empty line.

use std::ops::Range;

use mail_parser::MessageParser;

/// The field a sender uses to name a definition.
const CONTROL_FIELD: &[u8] = b"X-Sealpost-Secure";

/// Lines written by [`rewrite`] are folded before this many octets where
/// the text allows it (RFC 5322 §2.1.1 recommends 78).
const FOLD_AT: usize = 78;

/// At most this many characters of encoded text per RFC 2047 encoded-word,
/// so `Subject: ` plus one word stays within [`FOLD_AT`].
const MAX_ENCODED_TEXT: usize = 56;

/// What the header block says, read once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderFacts {
    /// The Subject, decoded (RFC 2047), unfolded; None when absent.
    pub subject: Option<String>,
    /// The display name of the first From address, decoded; None when
    /// absent or empty.
    pub from_name: Option<String>,
    /// The address of the first From address, as written (the policy
    /// engine's "header From" basis parses it); None when absent.
    pub from_address: Option<String>,
    /// The first `X-Sealpost-Secure` value, trimmed (may be empty); None
    /// when absent.
    pub requested_definition: Option<String>,
    /// The Subject contains the tag (ASCII case-insensitive); false when the
    /// tag is empty.
    pub has_tag: bool,
}

/// Reads the Subject, the From display name and the requested definition
/// from the first field of each kind.
pub fn inspect(content: &[u8], tag: &str) -> HeaderFacts {
    let header = &content[..header_end(content)];
    let mut facts = HeaderFacts::default();
    let mut from_seen = false;
    for chunk in chunks(header) {
        let Some(name) = chunk.name(header) else {
            continue;
        };
        let value = chunk.value(header);
        if facts.subject.is_none() && name.eq_ignore_ascii_case(b"Subject") {
            facts.subject = Some(decode_unstructured(value));
        } else if !from_seen && name.eq_ignore_ascii_case(b"From") {
            from_seen = true;
            (facts.from_name, facts.from_address) = from_party(value);
        } else if facts.requested_definition.is_none() && name.eq_ignore_ascii_case(CONTROL_FIELD) {
            let value = unfold(value);
            facts.requested_definition = Some(String::from_utf8_lossy(&value).trim().to_owned());
        }
    }
    facts.has_tag = facts
        .subject
        .as_deref()
        .is_some_and(|s| find_tag(s.as_bytes(), tag.as_bytes()).is_some());
    facts
}

/// Rewrites the header block: every `X-Sealpost-Secure` field (any case,
/// with its continuation lines) is removed, always, so it never reaches
/// anyone. With `strip_tag`, the first occurrence of the tag is removed from
/// the first Subject as [`remove_tag`] does; a Subject that held RFC 2047
/// encoded-words is written back as UTF-8 encoded-words, any other keeps its
/// bytes (refolded at whitespace). The body is never touched, and `content`
/// comes back as it was when there is nothing to change.
pub fn rewrite(content: Vec<u8>, strip_tag: Option<&str>) -> Vec<u8> {
    let end = header_end(&content);
    let header = &content[..end];
    let has_control = has_control_field(header);
    let subject = strip_tag.and_then(|tag| untagged_subject(header, tag));
    if !has_control && subject.is_none() {
        return content;
    }
    let mut out = Vec::with_capacity(content.len() + 64);
    for chunk in chunks(header) {
        if chunk.is(header, CONTROL_FIELD) {
            continue;
        }
        match &subject {
            Some((start, field)) if *start == chunk.range.start => out.extend_from_slice(field),
            _ => out.extend_from_slice(&header[chunk.range]),
        }
    }
    out.extend_from_slice(&content[end..]);
    out
}

/// The subject text with the tag removed as [`rewrite`] does (for the stored
/// metadata): the first occurrence, ASCII case-insensitive, together with
/// the space after it, or else the space before it.
pub fn remove_tag(subject: &str, tag: &str) -> String {
    match remove_tag_bytes(subject.as_bytes(), tag.as_bytes()) {
        // A match of a whole `str` starts and ends on character boundaries,
        // so this is valid UTF-8; the lossy path only avoids a panic.
        Some(bytes) => String::from_utf8(bytes)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
        None => subject.to_owned(),
    }
}

/// Where the header block ends: the start of the first empty line, or the
/// end of `content` when there is none.
pub(crate) fn header_end(content: &[u8]) -> usize {
    let mut pos = 0;
    while pos < content.len() {
        let end = line_end(content, pos);
        if matches!(&content[pos..end], b"\r\n" | b"\n") {
            return pos;
        }
        pos = end;
    }
    content.len()
}

/// The end of the line starting at `pos`, past its `LF`.
fn line_end(buf: &[u8], pos: usize) -> usize {
    memchr::memchr(b'\n', &buf[pos..]).map_or(buf.len(), |i| pos + i + 1)
}

fn is_wsp(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// One line that does not start with whitespace, with the continuation
/// lines after it: a header field, or a stray line kept as it is.
struct Chunk {
    range: Range<usize>,
    /// The first `:` of the first line, when there is one.
    colon: Option<usize>,
}

impl Chunk {
    /// The field name, without whitespace before the colon (obsolete
    /// syntax); None for a stray line.
    fn name<'h>(&self, header: &'h [u8]) -> Option<&'h [u8]> {
        let colon = self.colon?;
        let name = &header[self.range.start..colon];
        let end = name.iter().rposition(|&b| !is_wsp(b))? + 1;
        // A leading continuation line is no field.
        (!is_wsp(name[0])).then_some(&name[..end])
    }

    /// Everything after the colon, line breaks included.
    fn value<'h>(&self, header: &'h [u8]) -> &'h [u8] {
        self.colon
            .map_or(&[][..], |colon| &header[colon + 1..self.range.end])
    }

    fn is(&self, header: &[u8], name: &[u8]) -> bool {
        self.name(header)
            .is_some_and(|n| n.eq_ignore_ascii_case(name))
    }
}

/// Splits the header block into chunks; every byte is in exactly one.
fn chunks(header: &[u8]) -> impl Iterator<Item = Chunk> + '_ {
    let mut pos = 0;
    std::iter::from_fn(move || {
        if pos >= header.len() {
            return None;
        }
        let start = pos;
        let first_end = line_end(header, pos);
        let colon = memchr::memchr(b':', &header[start..first_end]).map(|i| start + i);
        pos = first_end;
        while pos < header.len() && is_wsp(header[pos]) {
            pos = line_end(header, pos);
        }
        Some(Chunk {
            range: start..pos,
            colon,
        })
    })
}

/// The quick check: does any line of the header block start an
/// `X-Sealpost-Secure` field? One `memchr` pass over the line ends.
fn has_control_field(header: &[u8]) -> bool {
    std::iter::once(0)
        .chain(memchr::memchr_iter(b'\n', header).map(|i| i + 1))
        .any(|start| {
            let line = &header[start..];
            let Some(rest) = line
                .get(..CONTROL_FIELD.len())
                .filter(|name| name.eq_ignore_ascii_case(CONTROL_FIELD))
                .map(|_| &line[CONTROL_FIELD.len()..])
            else {
                return false;
            };
            rest.iter().find(|&&b| !is_wsp(b)) == Some(&b':')
        })
}

/// The first Subject field rewritten without the tag, and where it starts;
/// None when there is no Subject or it does not contain the tag.
fn untagged_subject(header: &[u8], tag: &str) -> Option<(usize, Vec<u8>)> {
    if tag.is_empty() {
        return None;
    }
    let chunk = chunks(header).find(|c| c.is(header, b"Subject"))?;
    let colon = chunk.colon?;
    let value = chunk.value(header);
    let line_end: &[u8] = if value.ends_with(b"\r\n") {
        b"\r\n"
    } else if value.ends_with(b"\n") {
        b"\n"
    } else {
        b""
    };
    // Folds use the message's own line end.
    let fold: &[u8] = if line_end == b"\n" { b"\n" } else { b"\r\n" };

    let mut field = header[chunk.range.start..=colon].to_vec();
    if memchr::memmem::find(value, b"=?").is_some() {
        let decoded = decode_unstructured(value);
        let text = remove_tag_bytes(decoded.as_bytes(), tag.as_bytes())?;
        let text = String::from_utf8_lossy(&text);
        for (i, word) in encoded_words(&text).iter().enumerate() {
            if i > 0 {
                field.extend_from_slice(fold);
            }
            field.push(b' ');
            field.extend_from_slice(word.as_bytes());
        }
    } else {
        let text = remove_tag_bytes(&unfold(value), tag.as_bytes())?;
        fold_into(&mut field, &text, fold);
    }
    field.extend_from_slice(line_end);
    Some((chunk.range.start, field))
}

/// Removes the line breaks of a folded value (RFC 5322 §2.2.3), including
/// the one that ends the field.
fn unfold(value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len());
    let mut rest = value;
    while let Some(i) = memchr::memchr(b'\n', rest) {
        let line = &rest[..i];
        out.extend_from_slice(line.strip_suffix(b"\r").unwrap_or(line));
        rest = &rest[i + 1..];
    }
    out.extend_from_slice(rest);
    out
}

/// Appends `text` to a field whose line so far is `field`, breaking before
/// whitespace where a line would pass [`FOLD_AT`]. Text without whitespace
/// cannot be folded; it was no longer than one line of the original.
fn fold_into(field: &mut Vec<u8>, text: &[u8], fold: &[u8]) {
    let mut line_len = field.len();
    let prefix_len = line_len;
    let mut start = 0;
    while start < text.len() {
        // One piece: leading whitespace, then up to the next whitespace.
        let mut end = start;
        while end < text.len() && is_wsp(text[end]) {
            end += 1;
        }
        while end < text.len() && !is_wsp(text[end]) {
            end += 1;
        }
        let piece = &text[start..end];
        let breakable = is_wsp(piece[0]) && piece.iter().any(|&b| !is_wsp(b));
        if breakable && line_len > prefix_len && line_len + piece.len() > FOLD_AT {
            field.extend_from_slice(fold);
            line_len = 0;
        }
        field.extend_from_slice(piece);
        line_len += piece.len();
        start = end;
    }
}

/// Decodes an unstructured value (RFC 2047 encoded-words, folding) the way
/// mail-parser reads a Subject.
fn decode_unstructured(value: &[u8]) -> String {
    parse_as(b"Subject:", value, |m| m.subject().map(str::to_owned)).unwrap_or_default()
}

/// The decoded display name and the address of the first address of a
/// From value.
fn from_party(value: &[u8]) -> (Option<String>, Option<String>) {
    parse_as(b"From:", value, |m| {
        let first = m.from()?.first()?;
        let name = first
            .name()
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(str::to_owned);
        Some((name, first.address().map(str::to_owned)))
    })
    .unwrap_or((None, None))
}

/// Parses one field on its own, so the rest of the header cannot change
/// how it is read.
fn parse_as<T>(
    name: &[u8],
    value: &[u8],
    read: impl FnOnce(&mail_parser::Message<'_>) -> Option<T>,
) -> Option<T> {
    let mut raw = Vec::with_capacity(name.len() + value.len() + 4);
    raw.extend_from_slice(name);
    raw.extend_from_slice(value);
    if !raw.ends_with(b"\n") {
        raw.extend_from_slice(b"\r\n");
    }
    raw.extend_from_slice(b"\r\n");
    MessageParser::new()
        .parse_headers(&raw)
        .and_then(|m| read(&m))
}

/// The first ASCII case-insensitive occurrence of `tag`; never for an empty
/// tag.
fn find_tag(haystack: &[u8], tag: &[u8]) -> Option<usize> {
    if tag.is_empty() {
        return None;
    }
    haystack
        .windows(tag.len())
        .position(|w| w.eq_ignore_ascii_case(tag))
}

/// `text` without the first occurrence of `tag` and one adjacent space or
/// tab (the one after it, else the one before); None when it is absent.
fn remove_tag_bytes(text: &[u8], tag: &[u8]) -> Option<Vec<u8>> {
    let at = find_tag(text, tag)?;
    let (mut start, mut end) = (at, at + tag.len());
    if text.get(end).copied().is_some_and(is_wsp) {
        end += 1;
    } else if at > 0 && is_wsp(text[at - 1]) {
        start -= 1;
    }
    let mut out = Vec::with_capacity(text.len() - (end - start));
    out.extend_from_slice(&text[..start]);
    out.extend_from_slice(&text[end..]);
    Some(out)
}

/// `text` as RFC 2047 `Q` encoded-words in UTF-8, split between characters
/// (never inside one), each short enough to fit a folded line.
fn encoded_words(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut current = String::new();
    let mut buf = [0u8; 4];
    for c in text.chars() {
        let mut encoded = String::new();
        match c {
            ' ' => encoded.push('_'),
            // Printable ASCII may stand for itself in an unstructured field,
            // except the encoded-word delimiters (RFC 2047 §4.2, §5(1)).
            '!'..='~' if !matches!(c, '=' | '?' | '_') => encoded.push(c),
            _ => {
                for b in c.encode_utf8(&mut buf).bytes() {
                    encoded.push_str(&format!("={b:02X}"));
                }
            }
        }
        if !current.is_empty() && current.len() + encoded.len() > MAX_ENCODED_TEXT {
            words.push(format!("=?UTF-8?Q?{current}?="));
            current.clear();
        }
        current.push_str(&encoded);
    }
    if !current.is_empty() {
        words.push(format!("=?UTF-8?Q?{current}?="));
    }
    words
}

#[cfg(test)]
mod tests;
