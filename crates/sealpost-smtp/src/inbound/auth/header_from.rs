//! The header From of a submitted message, read for the sender check: an
//! authenticated client may put only its account's senders there.
//!
//! Strict on purpose: a message must have exactly one From field, and
//! every address in it (a list, or a group's members) is checked, so a
//! second field or a second address cannot carry a forged sender past the
//! first. Pure.

use mail_parser::MessageParser;
use sealpost_policy::EmailAddress;

/// The From field as found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderFrom {
    /// No From field, or one without any address.
    Missing,
    /// More than one From field (RFC 5322 §3.6 allows one).
    Several,
    /// An address that does not parse as a mailbox.
    Invalid(String),
    /// Every address of the one From field.
    Addresses(Vec<EmailAddress>),
}

/// Reads the From field of `content` (header and body, CRLF line ends;
/// lines before it such as our own Received field are fine).
pub fn header_from(content: &[u8]) -> HeaderFrom {
    let header = match memchr::memmem::find(content, b"\r\n\r\n") {
        Some(end) => &content[..end + 2],
        None => content,
    };
    let mut fields: Vec<&[u8]> = Vec::new();
    let mut start: Option<usize> = None;
    let mut pos = 0;
    // Field boundaries: a line that does not begin with white space
    // starts a field; continuation lines belong to the one before.
    while pos < header.len() {
        let end = memchr::memchr(b'\n', &header[pos..]).map_or(header.len(), |i| pos + i + 1);
        let line = &header[pos..end];
        let continues = matches!(line.first(), Some(b' ' | b'\t'));
        if !continues {
            if let Some(s) = start.take() {
                fields.push(&header[s..pos]);
            }
            if line.len() >= 5 && line[..5].eq_ignore_ascii_case(b"from:") {
                start = Some(pos);
            } else if let Some(colon) = line.iter().position(|&b| b == b':') {
                // `From :` (obsolete syntax, white space before the colon).
                let name = line[..colon].trim_ascii_end();
                if name.eq_ignore_ascii_case(b"from") {
                    start = Some(pos);
                }
            }
        }
        pos = end;
    }
    if let Some(s) = start {
        fields.push(&header[s..]);
    }
    let field = match fields.as_slice() {
        [] => return HeaderFrom::Missing,
        [one] => *one,
        _ => return HeaderFrom::Several,
    };
    let mut raw = field.to_vec();
    if !raw.ends_with(b"\n") {
        raw.extend_from_slice(b"\r\n");
    }
    raw.extend_from_slice(b"\r\n");
    let Some(message) = MessageParser::new().parse_headers(&raw) else {
        return HeaderFrom::Missing;
    };
    let Some(from) = message.from() else {
        return HeaderFrom::Missing;
    };
    let mut addresses = Vec::new();
    for addr in from.iter() {
        match addr.address() {
            Some(text) => match EmailAddress::parse(text) {
                Ok(a) => addresses.push(a),
                Err(_) => return HeaderFrom::Invalid(text.chars().take(200).collect()),
            },
            None => {
                return HeaderFrom::Invalid(
                    addr.name().unwrap_or_default().chars().take(200).collect(),
                );
            }
        }
    }
    if addresses.is_empty() {
        HeaderFrom::Missing
    } else {
        HeaderFrom::Addresses(addresses)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs(content: &str) -> Vec<String> {
        match header_from(content.as_bytes()) {
            HeaderFrom::Addresses(a) => a.iter().map(ToString::to_string).collect(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_one_from_field_gives_all_its_addresses() {
        assert_eq!(
            addrs(
                "Received: x\r\nFrom: App <app@corp.example>\r\nTo: b@x.example\r\n\r\nFrom: not@header.example\r\n"
            ),
            ["app@corp.example"]
        );
        assert_eq!(
            addrs("from: a@corp.example,\r\n\t\"B\" <b@evil.example>\r\n\r\nbody"),
            ["a@corp.example", "b@evil.example"]
        );
        assert_eq!(
            addrs("From: team: a@corp.example, b@corp.example;\r\n\r\n"),
            ["a@corp.example", "b@corp.example"]
        );
        assert_eq!(addrs("From : a@corp.example\r\n\r\n"), ["a@corp.example"]);
    }

    #[test]
    fn missing_several_or_invalid_from_is_told_apart() {
        assert_eq!(
            header_from(b"To: b@x.example\r\n\r\nFrom: a@b.example\r\n"),
            HeaderFrom::Missing
        );
        assert_eq!(header_from(b"From:\r\n\r\n"), HeaderFrom::Missing);
        assert_eq!(
            header_from(b"From: a@corp.example\r\nFrom: ceo@corp.example\r\n\r\n"),
            HeaderFrom::Several
        );
        assert!(matches!(
            header_from(b"From: not an address\r\n\r\n"),
            HeaderFrom::Invalid(_) | HeaderFrom::Missing
        ));
        // A field whose name only starts with From is another field.
        assert_eq!(
            header_from(b"From-Extra: x\r\nFrom: a@corp.example\r\n\r\n"),
            HeaderFrom::Addresses(vec![EmailAddress::parse("a@corp.example").unwrap()])
        );
    }
}
