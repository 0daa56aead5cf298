//! RFC 5322 and MIME bytes, written by hand: the notifications' shape
//! (`multipart/alternative` with a UTF-8 text/plain and text/html part,
//! each quoted-printable, [`write`]) and the pieces the portal's replies
//! are made of ([`crate::reply`]: header fields, quoted-printable text,
//! base64 attachments in 76-character lines).
//!
//! Written here rather than with mail-builder 0.5, which writes
//! quoted-printable lines of 77 octets (RFC 2045 §6.7 allows 76),
//! encoded-words of any length (RFC 2047 §2 allows 75), and copies control
//! characters into the body. Here: header lines are folded to 78 octets
//! (an address longer than that is not folded), encoded-words are at most
//! 75 characters and never split a character, quoted-printable lines are
//! at most 76 octets and a soft break never splits an `=XX` escape or a
//! character, and the bodies carry no control character but tab and line
//! ends. Pure, and never fails.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

/// The longest header line written (RFC 5322 §2.1.1), CRLF not counted.
const MAX_LINE: usize = 78;

/// The longest encoded-word (RFC 2047 §2).
const MAX_ENCODED_WORD: usize = 75;

/// The longest quoted-printable line, soft break included (RFC 2045 §6.7).
const MAX_QP_LINE: usize = 76;

/// `=?UTF-8?B?` and `?=` around the base64 of an encoded-word.
const ENCODED_WORD_OVERHEAD: usize = "=?UTF-8?B??=".len();

/// The longest base64 line of a body part (RFC 2045 §6.8).
const MAX_BASE64_LINE: usize = 76;

/// What goes into the mail. Header values are one line already (the
/// caller's `one_line`); the bodies may hold any text.
#[derive(Debug)]
pub(crate) struct Mail<'a> {
    /// The display name of From; empty for none.
    pub(crate) from_name: &'a str,
    /// Addresses without spaces, controls or angle brackets.
    pub(crate) from_address: &'a str,
    pub(crate) to: &'a str,
    pub(crate) subject: &'a str,
    pub(crate) date: time::OffsetDateTime,
    /// `local@domain`, without the angle brackets; the local part is hex.
    pub(crate) message_id: &'a str,
    /// One more header field, already valid (e.g. `X-Sealpost-Notification`).
    pub(crate) extra: Option<(&'a str, &'a str)>,
    pub(crate) text: &'a str,
    pub(crate) html: &'a str,
}

/// The mail as bytes, with CRLF line ends.
pub(crate) fn write(mail: &Mail<'_>) -> Vec<u8> {
    let mut out = String::with_capacity(mail.text.len() + mail.html.len() + 2048);
    let mut from = Vec::new();
    if !mail.from_name.is_empty() && mail.from_name != mail.from_address {
        from = phrase(mail.from_name, room_after("From"));
    }
    from.push(format!("<{}>", mail.from_address));
    header(&mut out, "From", &from);
    header(&mut out, "To", &[format!("<{}>", mail.to)]);
    header(
        &mut out,
        "Subject",
        &unstructured(mail.subject, room_after("Subject")),
    );
    header(&mut out, "Date", &[date(mail.date)]);
    header(&mut out, "Message-ID", &[format!("<{}>", mail.message_id)]);
    header(&mut out, "MIME-Version", &["1.0".to_owned()]);
    header(&mut out, "Auto-Submitted", &["auto-generated".to_owned()]);
    if let Some((name, value)) = mail.extra {
        header(&mut out, name, &[value.to_owned()]);
    }
    // Quoted-printable never writes `=_` (`=` is always `=3D` or a soft
    // break), so a boundary that starts with it cannot occur in a part.
    let local = mail.message_id.split('@').next().unwrap_or_default();
    let boundary = format!("=_{local}");
    header(
        &mut out,
        "Content-Type",
        &[
            "multipart/alternative;".to_owned(),
            format!("boundary=\"{boundary}\""),
        ],
    );
    out.push_str("\r\n");
    for (kind, body) in [("plain", mail.text), ("html", mail.html)] {
        let _ = write!(
            out,
            "--{boundary}\r\nContent-Type: text/{kind}; charset=utf-8\r\n\
             Content-Transfer-Encoding: quoted-printable\r\n\r\n"
        );
        quoted_printable(body, &mut out);
        out.push_str("\r\n");
    }
    let _ = write!(out, "--{boundary}--\r\n");
    out.into_bytes()
}

/// Room for the first token of a field: `Name: ` leaves the rest of
/// [`MAX_LINE`].
pub(crate) fn room_after(name: &str) -> usize {
    MAX_LINE.saturating_sub(name.len() + 2)
}

/// Writes `Name:` and the tokens, each after a space, folding before a
/// token that would take the line past [`MAX_LINE`].
pub(crate) fn header(out: &mut String, name: &str, tokens: &[String]) {
    out.push_str(name);
    out.push(':');
    let mut len = name.len() + 1;
    let mut first = true;
    for token in tokens {
        if !first && len + 1 + token.len() > MAX_LINE {
            out.push_str("\r\n");
            len = 0;
        }
        out.push(' ');
        out.push_str(token);
        len += 1 + token.len();
        first = false;
    }
    out.push_str("\r\n");
}

/// An unstructured value (a Subject) as tokens: its words when it is
/// printable ASCII whose words fit on a line, else encoded-words.
pub(crate) fn unstructured(value: &str, first_room: usize) -> Vec<String> {
    let plain = value.bytes().all(|b| b == b' ' || b.is_ascii_graphic());
    match plain_words(value, first_room, |w| plain && !w.is_empty()) {
        Some(words) => words,
        None => encoded_words(value, first_room),
    }
}

/// A display name as tokens: its words when each is RFC 5322 `atext`,
/// else encoded-words (a comma, quote or non-ASCII letter, for instance).
pub(crate) fn phrase(name: &str, first_room: usize) -> Vec<String> {
    let is_atext = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~".contains(&b);
    match plain_words(name, first_room, |w| {
        !w.is_empty() && w.bytes().all(is_atext)
    }) {
        Some(words) => words,
        None => encoded_words(name, first_room),
    }
}

/// `value` split at single spaces, when every word passes `ok`, none could
/// be read as an encoded-word, and each fits on its line.
fn plain_words(value: &str, first_room: usize, ok: impl Fn(&str) -> bool) -> Option<Vec<String>> {
    if value.contains("=?") {
        return None;
    }
    let words: Vec<&str> = value.split(' ').collect();
    let fits = |i: usize, w: &str| w.len() <= if i == 0 { first_room } else { MAX_LINE - 1 };
    words
        .iter()
        .enumerate()
        .all(|(i, w)| ok(w) && fits(i, w))
        .then(|| words.into_iter().map(str::to_owned).collect())
}

/// `value` as RFC 2047 `B` encoded-words of whole characters, the first
/// fitting in `first_room`, the others on lines of their own; readers join
/// adjacent encoded-words without the space between them.
fn encoded_words(value: &str, first_room: usize) -> Vec<String> {
    // Base64 writes 4 characters for each 3 bytes.
    let capacity = |room: usize| {
        let b64 = room
            .min(MAX_ENCODED_WORD)
            .saturating_sub(ENCODED_WORD_OVERHEAD)
            / 4
            * 4;
        (b64 / 4 * 3).max(4)
    };
    let mut words = Vec::new();
    let mut chunk = String::new();
    let mut cap = capacity(first_room);
    for c in value.chars() {
        if chunk.len() + c.len_utf8() > cap {
            words.push(encoded_word(&chunk));
            chunk.clear();
            cap = capacity(MAX_LINE - 1);
        }
        chunk.push(c);
    }
    if !chunk.is_empty() {
        words.push(encoded_word(&chunk));
    }
    words
}

fn encoded_word(text: &str) -> String {
    format!("=?UTF-8?B?{}?=", base64(text.as_bytes()))
}

pub(crate) fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for group in bytes.chunks(3) {
        let n = group
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= group.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Appends `text` as quoted-printable with CRLF line ends (none after the
/// last line). CR, LF and CRLF all end a line; control characters other
/// than tab are dropped.
pub(crate) fn quoted_printable(text: &str, out: &mut String) {
    let text = text.replace("\r\n", "\n").replace('\r', "\n");
    for (i, line) in text.split('\n').enumerate() {
        if i > 0 {
            out.push_str("\r\n");
        }
        let mut len = 0;
        let mut chars = line
            .chars()
            .filter(|&c| c == '\t' || !c.is_control())
            .peekable();
        let mut unit = String::with_capacity(12);
        while let Some(c) = chars.next() {
            let last = chars.peek().is_none();
            unit.clear();
            match c {
                // Whitespace at the end of a line is encoded: transports
                // may strip it (RFC 2045 §6.7 rule 3).
                ' ' | '\t' if last => {
                    let _ = write!(unit, "={:02X}", c as u8);
                }
                ' ' | '\t' => unit.push(c),
                c if c.is_ascii_graphic() && c != '=' => unit.push(c),
                c => {
                    let mut buf = [0u8; 4];
                    for b in c.encode_utf8(&mut buf).bytes() {
                        let _ = write!(unit, "={b:02X}");
                    }
                }
            }
            // Keep room for the soft break's `=` unless this ends the line.
            let limit = if last { MAX_QP_LINE } else { MAX_QP_LINE - 1 };
            if len + unit.len() > limit {
                out.push_str("=\r\n");
                len = 0;
            }
            out.push_str(&unit);
            len += unit.len();
        }
    }
}

/// A date as RFC 5322 wants it, in UTC.
pub(crate) fn date(at: time::OffsetDateTime) -> String {
    at.to_offset(time::UtcOffset::UTC)
        .format(&time::format_description::well_known::Rfc2822)
        .unwrap_or_default()
}

/// Appends `bytes` as base64 in lines of at most 76 characters, CRLF after
/// each line (RFC 2045 §6.8).
pub(crate) fn base64_lines(bytes: &[u8], out: &mut String) {
    // 57 bytes make exactly 76 characters.
    for chunk in bytes.chunks(MAX_BASE64_LINE / 4 * 3) {
        out.push_str(&base64(chunk));
        out.push_str("\r\n");
    }
}

/// `random@domain` (no angle brackets): 128 random bits in hex, on
/// `domain` cut to the characters a host name has.
pub(crate) fn message_id(domain: &str) -> String {
    let domain: String = domain
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-'))
        .collect();
    let domain = if domain.is_empty() {
        "localhost"
    } else {
        &domain
    };
    let mut random = [0u8; 16];
    if getrandom::fill(&mut random).is_err() {
        // Unique is what a Message-ID needs: the time and a counter are
        // that, if not unpredictable.
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = time::OffsetDateTime::now_utc().unix_timestamp_nanos();
        random[..8].copy_from_slice(&(nanos as u64).to_be_bytes());
        random[8..].copy_from_slice(&COUNTER.fetch_add(1, Ordering::Relaxed).to_be_bytes());
    }
    let local = random.iter().fold(String::with_capacity(32), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    });
    format!("{local}@{domain}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn qp(text: &str) -> String {
        let mut out = String::new();
        quoted_printable(text, &mut out);
        out
    }

    #[test]
    fn base64_lines_are_76_characters_and_decode() {
        let bytes: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        let mut out = String::new();
        base64_lines(&bytes, &mut out);
        let lines: Vec<&str> = out.split_terminator("\r\n").collect();
        assert!(lines[..lines.len() - 1].iter().all(|l| l.len() == 76));
        assert!(lines.last().unwrap().len() <= 76);
        assert_eq!(lines.concat(), base64(&bytes));
    }

    #[test]
    fn base64_matches_rfc_4648() {
        for (input, want) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(input.as_bytes()), want);
        }
    }

    #[test]
    fn quoted_printable_lines_stay_within_76_octets() {
        let encoded = qp(&format!(
            "{}\n{}é\n{} \nend\t",
            "a".repeat(200),
            "b".repeat(74),
            "c".repeat(80)
        ));
        for line in encoded.split("\r\n") {
            assert!(line.len() <= MAX_QP_LINE, "{} octets: {line}", line.len());
        }
        // 74 b and é (=C3=A9) need 80 octets: a soft break before é, not
        // inside its escapes.
        assert!(
            encoded.contains(&format!("{}=\r\n=C3=A9\r\n", "b".repeat(74))),
            "{encoded}"
        );
        assert!(encoded.contains("c=20\r\nend=09"), "{encoded}");
        assert_eq!(qp("a\r\nb\rc\x00\x1b[1m\x0bd=e"), "a\r\nb\r\nc[1md=3De");
        assert_eq!(
            qp(&"x".repeat(76)),
            "x".repeat(76),
            "a last unit may use the 76th octet"
        );
    }

    #[test]
    fn encoded_words_are_at_most_75_characters_and_whole_characters() {
        let name = "Ü€😀 x".repeat(40);
        let words = encoded_words(&name, room_after("From"));
        assert!("From: ".len() + words[0].len() <= MAX_LINE);
        for word in &words {
            assert!(word.len() <= MAX_ENCODED_WORD, "{word}");
        }
        let decoded: String = words
            .iter()
            .map(|w| {
                let raw = format!("Subject: {w}\r\n\r\n");
                let parsed = mail_parser::MessageParser::new()
                    .parse(raw.as_bytes())
                    .unwrap();
                parsed.subject().unwrap().to_owned()
            })
            .collect();
        assert_eq!(decoded, name, "each word decodes on its own");
    }

    #[test]
    fn plain_headers_stay_plain() {
        assert_eq!(
            unstructured("Secure message: Q3", 69),
            ["Secure", "message:", "Q3"]
        );
        assert_eq!(phrase("Alice Martin", 72), ["Alice", "Martin"]);
        assert!(phrase("Martin, Alice", 72)[0].starts_with("=?UTF-8?B?"));
        assert!(unstructured("a =?x?q?y?= b", 69)[0].starts_with("=?UTF-8?B?"));
        assert!(unstructured(&"x".repeat(70), 69)[0].starts_with("=?UTF-8?B?"));
        assert!(unstructured("", 69).is_empty());
    }
}
