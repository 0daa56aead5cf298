//! 8-bit content for a next hop without 8BITMIME (RFC 6152 §3).
//!
//! Such a server may only be sent 7-bit data, so each MIME part whose body
//! holds 8-bit octets is re-encoded, quoted-printable for text and base64
//! for anything else, and its `Content-Transfer-Encoding` header changed to
//! say so; multiparts and attached messages are walked into, and nothing
//! that is already 7-bit is touched. What cannot be made 7-bit (8-bit
//! octets in a header, which needs SMTPUTF8; a part that claims an encoding
//! its octets break; nesting past [`MAX_DEPTH`]) is refused, and the
//! delivery bounces it rather than send 8-bit.
//!
//! The conversion must come before a DKIM signature, which would not
//! survive it: [`SevenBit`] is the converted (and re-signed) form, made by
//! the queue only when a next hop without 8BITMIME first needs it. Pure:
//! no I/O.

use std::sync::{Arc, OnceLock};

/// Deepest MIME nesting converted (multiparts and attached messages).
const MAX_DEPTH: usize = 32;

/// Longest encoded line, CRLF excluded (RFC 2045 §6.7, §6.8).
const MAX_ENCODED_LINE: usize = 76;

/// Why a message cannot be made 7-bit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unconvertible {
    #[error("8-bit octets in a header (the message needs SMTPUTF8)")]
    EightBitHeader,
    #[error("8-bit octets in a part encoded as {0}")]
    BrokenEncoding(String),
    #[error("a multipart body without its boundary")]
    NoBoundary,
    #[error("MIME structure nested deeper than {MAX_DEPTH} levels")]
    TooDeep,
}

impl Unconvertible {
    /// The reply a recipient of such a message gets (RFC 3463 5.6.3:
    /// conversion required but not supported).
    pub fn reply(&self, server: &str) -> String {
        format!(
            "554 5.6.3 {server} does not support 8BITMIME and the message cannot be made 7-bit: {self}"
        )
    }
}

/// A message's 7-bit form, made once, when a next hop without 8BITMIME
/// first needs it (most messages never do).
pub struct SevenBit {
    make: Box<dyn Fn() -> Result<Vec<u8>, Unconvertible> + Send + Sync>,
    made: OnceLock<Result<Arc<Vec<u8>>, Unconvertible>>,
}

impl SevenBit {
    /// `make` converts (see [`to_seven_bit`]) and signs the result.
    pub fn new(make: impl Fn() -> Result<Vec<u8>, Unconvertible> + Send + Sync + 'static) -> Self {
        SevenBit {
            make: Box::new(make),
            made: OnceLock::new(),
        }
    }

    /// The 7-bit form, made on the first call.
    pub fn get(&self) -> Result<Arc<Vec<u8>>, Unconvertible> {
        self.made
            .get_or_init(|| (self.make)().map(Arc::new))
            .clone()
    }
}

impl std::fmt::Debug for SevenBit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SevenBit")
            .field("made", &self.made.get().is_some())
            .finish_non_exhaustive()
    }
}

/// `message` (headers and body, CRLF line ends) with every 8-bit part
/// re-encoded in 7 bits. A message without 8-bit octets comes back as it
/// was.
///
/// # Errors
/// [`Unconvertible`] when some of it cannot be 7-bit.
pub fn to_seven_bit(message: &[u8]) -> Result<Vec<u8>, Unconvertible> {
    if message.is_ascii() {
        return Ok(message.to_vec());
    }
    let mut out = Vec::with_capacity(message.len() + message.len() / 4);
    entity(message, true, &mut out, 0)?;
    Ok(out)
}

/// One MIME entity (the message, a part, or an attached message) into
/// `out`, converted.
fn entity(bytes: &[u8], top: bool, out: &mut Vec<u8>, depth: usize) -> Result<(), Unconvertible> {
    if bytes.is_ascii() {
        out.extend_from_slice(bytes);
        return Ok(());
    }
    if depth > MAX_DEPTH {
        return Err(Unconvertible::TooDeep);
    }
    let (headers, body) = split_entity(bytes);
    if !headers.is_ascii() {
        return Err(Unconvertible::EightBitHeader);
    }
    let fields = Fields::parse(headers);
    let (kind, boundary) = fields.content_type();
    let encoding = fields
        .get("content-transfer-encoding")
        .map(|v| v.trim().to_ascii_lowercase());
    if kind.starts_with("multipart/")
        && let Some(boundary) = boundary
    {
        write_headers(&fields, out, Rewrite::SevenBitIdentity);
        out.extend_from_slice(b"\r\n");
        return multipart(body, boundary.as_bytes(), out, depth);
    }
    if kind == "message/rfc822" || kind == "message/global" {
        write_headers(&fields, out, Rewrite::SevenBitIdentity);
        out.extend_from_slice(b"\r\n");
        return entity(body, false, out, depth + 1);
    }
    match encoding.as_deref() {
        None | Some("7bit" | "8bit" | "binary") => {}
        Some(other) => return Err(Unconvertible::BrokenEncoding(other.to_owned())),
    }
    let text = kind.starts_with("text/");
    let cte = if text { "quoted-printable" } else { "base64" };
    write_headers(&fields, out, Rewrite::Encoding { cte, top });
    out.extend_from_slice(b"\r\n");
    if text {
        quoted_printable(body, out);
    } else {
        base64(body, out);
    }
    Ok(())
}

/// Headers (each line with its CRLF) and body of an entity. No blank line:
/// all headers; a leading blank line: no headers.
fn split_entity(bytes: &[u8]) -> (&[u8], &[u8]) {
    if let Some(rest) = bytes.strip_prefix(b"\r\n") {
        return (&[], rest);
    }
    match memchr::memmem::find(bytes, b"\r\n\r\n") {
        Some(i) => (&bytes[..i + 2], &bytes[i + 4..]),
        None => (bytes, &[]),
    }
}

/// A header block as its fields, each with its raw lines (folding kept).
struct Fields<'a> {
    raw: Vec<&'a [u8]>,
}

impl<'a> Fields<'a> {
    fn parse(headers: &'a [u8]) -> Self {
        let mut raw: Vec<&'a [u8]> = Vec::new();
        let mut start = 0;
        let mut pos = 0;
        while pos < headers.len() {
            let end = memchr::memchr(b'\n', &headers[pos..]).map_or(headers.len(), |i| pos + i + 1);
            let next_folds = matches!(headers.get(end), Some(b' ' | b'\t'));
            if !next_folds {
                raw.push(&headers[start..end]);
                start = end;
            }
            pos = end;
        }
        Fields { raw }
    }

    fn name(field: &[u8]) -> &[u8] {
        let colon = memchr::memchr(b':', field).unwrap_or(field.len());
        field[..colon].trim_ascii()
    }

    /// The unfolded value of the first field named `name`.
    fn get(&self, name: &str) -> Option<String> {
        self.raw
            .iter()
            .find(|f| Self::name(f).eq_ignore_ascii_case(name.as_bytes()))
            .map(|f| {
                let colon = memchr::memchr(b':', f).map_or(f.len(), |i| i + 1);
                String::from_utf8_lossy(&f[colon..])
                    .replace(['\r', '\n'], "")
                    .trim()
                    .to_owned()
            })
    }

    fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// The lower-cased `type/subtype` (RFC 2045 default `text/plain`) and
    /// the `boundary` parameter.
    fn content_type(&self) -> (String, Option<String>) {
        let Some(value) = self.get("content-type") else {
            return ("text/plain".into(), None);
        };
        let mut params = value.split(';');
        let kind = params.next().unwrap_or("").trim().to_ascii_lowercase();
        let boundary = params.find_map(|p| {
            let (name, value) = p.split_once('=')?;
            name.trim()
                .eq_ignore_ascii_case("boundary")
                .then(|| value.trim().trim_matches('"').to_owned())
                .filter(|b| !b.is_empty())
        });
        (kind, boundary)
    }
}

/// How [`write_headers`] changes a header block.
enum Rewrite {
    /// A multipart or message: an `8bit` or `binary` identity becomes
    /// `7bit`, as its contents now are.
    SevenBitIdentity,
    /// A leaf re-encoded as `cte`; the top-level entity of a message that
    /// had no MIME header gets `MIME-Version: 1.0` too.
    Encoding { cte: &'static str, top: bool },
}

fn write_headers(fields: &Fields<'_>, out: &mut Vec<u8>, rewrite: Rewrite) {
    for field in &fields.raw {
        if Fields::name(field).eq_ignore_ascii_case(b"content-transfer-encoding") {
            continue;
        }
        out.extend_from_slice(field);
        if !field.ends_with(b"\n") {
            out.extend_from_slice(b"\r\n");
        }
    }
    match rewrite {
        Rewrite::SevenBitIdentity => {
            if fields.has("content-transfer-encoding") {
                out.extend_from_slice(b"Content-Transfer-Encoding: 7bit\r\n");
            }
        }
        Rewrite::Encoding { cte, top } => {
            if top && !fields.has("mime-version") {
                out.extend_from_slice(b"MIME-Version: 1.0\r\n");
            }
            out.extend_from_slice(format!("Content-Transfer-Encoding: {cte}\r\n").as_bytes());
        }
    }
}

/// A multipart body: the delimiter lines and the CRLFs before them are
/// kept as they are, each part between them converted; 8-bit octets in the
/// preamble and epilogue (which readers ignore) become `?`.
fn multipart(
    body: &[u8],
    boundary: &[u8],
    out: &mut Vec<u8>,
    depth: usize,
) -> Result<(), Unconvertible> {
    // (line start, line end after its LF, closing delimiter)
    let mut delimiters: Vec<(usize, usize, bool)> = Vec::new();
    let mut pos = 0;
    while pos < body.len() {
        let end = memchr::memchr(b'\n', &body[pos..]).map_or(body.len(), |i| pos + i + 1);
        let line = &body[pos..end];
        if let Some(rest) = line
            .strip_prefix(b"--")
            .and_then(|l| l.strip_prefix(boundary))
        {
            let close = rest.starts_with(b"--");
            let padding = if close { &rest[2..] } else { rest };
            if padding.iter().all(|b| b.is_ascii_whitespace()) {
                delimiters.push((pos, end, close));
                if close {
                    break;
                }
            }
        }
        pos = end;
    }
    let Some(&(first, _, _)) = delimiters.first() else {
        return Err(Unconvertible::NoBoundary);
    };
    sanitize(&body[..first], out);
    for (k, &(start, end, close)) in delimiters.iter().enumerate() {
        out.extend_from_slice(&body[start..end]);
        if close {
            sanitize(&body[end..], out);
            return Ok(());
        }
        // The part runs to the CRLF before the next delimiter (which
        // belongs to that delimiter), or to the end of an unclosed body.
        let next = delimiters.get(k + 1).map(|d| d.0);
        let part_end = match next {
            Some(n) if n >= end + 2 && &body[n - 2..n] == b"\r\n" => n - 2,
            Some(n) => n,
            None => body.len(),
        };
        let next = next.unwrap_or(body.len());
        entity(&body[end..part_end], false, out, depth + 1)?;
        out.extend_from_slice(&body[part_end..next]);
    }
    Ok(())
}

fn sanitize(bytes: &[u8], out: &mut Vec<u8>) {
    out.extend(bytes.iter().map(|&b| if b.is_ascii() { b } else { b'?' }));
}

/// Quoted-printable (RFC 2045 §6.7) of a text body: its CRLFs stay hard
/// line breaks; `=`, octets outside printable ASCII (tab and space kept
/// except at a line's end) are `=XX`; lines are soft-broken under 76.
fn quoted_printable(body: &[u8], out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut lines = body.split(|&b| b == b'\n').peekable();
    while let Some(line) = lines.next() {
        let last = lines.peek().is_none();
        let (line, crlf) = match line.strip_suffix(b"\r") {
            Some(l) => (l, true),
            None => (line, false),
        };
        let mut width = 0;
        for (i, &b) in line.iter().enumerate() {
            let at_end = i + 1 == line.len();
            let literal =
                (b == b' ' || b == b'\t') && !at_end || (33..=126).contains(&b) && b != b'=';
            let len = if literal { 1 } else { 3 };
            // Room for the soft break's "=".
            if width + len > MAX_ENCODED_LINE - 1 {
                out.extend_from_slice(b"=\r\n");
                width = 0;
            }
            if literal {
                out.push(b);
            } else {
                out.extend_from_slice(&[b'=', HEX[(b >> 4) as usize], HEX[(b & 15) as usize]]);
            }
            width += len;
        }
        if !last {
            // A bare LF (not in mail we accepted) is kept as a line break.
            out.extend_from_slice(b"\r\n");
        } else if crlf {
            // A lone CR at the very end: encoded, not a line break.
            out.extend_from_slice(b"=0D");
        }
    }
}

/// Base64 (RFC 2045 §6.8) in lines of 76, each ended by CRLF.
fn base64(body: &[u8], out: &mut Vec<u8>) {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for line in body.chunks(MAX_ENCODED_LINE / 4 * 3) {
        for chunk in line.chunks(3) {
            let n = (u32::from(chunk[0]) << 16)
                | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
                | u32::from(*chunk.get(2).unwrap_or(&0));
            out.push(ALPHABET[(n >> 18) as usize & 63]);
            out.push(ALPHABET[(n >> 12) as usize & 63]);
            out.push(if chunk.len() > 1 {
                ALPHABET[(n >> 6) as usize & 63]
            } else {
                b'='
            });
            out.push(if chunk.len() > 2 {
                ALPHABET[n as usize & 63]
            } else {
                b'='
            });
        }
        out.extend_from_slice(b"\r\n");
    }
}

#[cfg(test)]
mod tests;
