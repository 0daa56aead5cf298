//! Whatever a sender puts in the Subject and the From display name, the
//! notification built as plan.rs builds it is well-formed MIME with
//! exactly its own header fields, clean bodies that carry the link, and
//! lines and encoded-words within RFC 2045/2047 limits (issue 14).

use mail_parser::MessageParser;
use proptest::prelude::*;

use super::*;
use crate::trigger;

const LINK: &str = "https://secure.example.com/open/0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// Characters that break text: C0 and C1 controls, line ends, bidi
/// overrides, zero-width characters.
fn nasty_char() -> impl Strategy<Value = char> {
    prop_oneof![
        prop::sample::select(vec![
            '\0', '\t', '\n', '\r', '\x0b', '\x0c', '\x1b', '\x7f', '\u{85}', '\u{9b}', '\u{2028}',
            '\u{202e}', '\u{200b}', '\u{feff}', '=', '?', '"', '<', '>', ' ',
        ]),
        any::<char>(),
        prop::char::range('a', 'z'),
    ]
}

/// Text a sender may have written or an encoded-word may decode to: any
/// Unicode, heavy on controls and line ends, sometimes near 100 KB.
fn hostile_text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => any::<String>(),
        4 => prop::collection::vec(nasty_char(), 0..300).prop_map(|c| c.into_iter().collect()),
        1 => (1usize..100_000, nasty_char()).prop_map(|(n, c)| {
            let mut s = "Wörter ".repeat(n / 8);
            s.insert(s.len() / 2, c);
            s.push_str("\r\nBcc: victim@example.com");
            s
        }),
    ]
}

/// A header value as written on the wire: plain words, or RFC 2047
/// encoded-words (B or Q) of any bytes, CR, LF, NUL and ESC included.
fn wire_value() -> impl Strategy<Value = String> {
    let word = prop_oneof![
        "[ -~]{0,40}".prop_map(|s| s.replace("\r", "").replace('\n', "")),
        prop::collection::vec(any::<u8>(), 0..60)
            .prop_map(|b| { format!("=?UTF-8?B?{}?=", crate::mime::base64(&b)) }),
        prop::collection::vec(
            prop::sample::select(vec![0u8, 0x0d, 0x0a, 0x1b, 0x0b, 0x0c, b'a', 0xc3, 0xa9]),
            0..40
        )
        .prop_map(|b| {
            let q: String = b.iter().map(|b| format!("={b:02X}")).collect();
            format!("=?utf-8?q?{q}?=")
        }),
    ];
    prop::collection::vec(word, 1..4).prop_map(|w| w.join(" "))
}

/// A subject or display name: hostile text as such, or what the trigger
/// reader decodes from a hostile header.
fn subject_and_name() -> impl Strategy<Value = (String, String)> {
    let direct = (hostile_text(), hostile_text());
    let decoded = (wire_value(), wire_value()).prop_map(|(subject, name)| {
        let raw =
            format!("Subject: {subject}\r\nFrom: {name} <alice@corp.example>\r\n\r\nbody\r\n");
        let facts = trigger::inspect(raw.as_bytes(), "[secure]");
        (
            facts.subject.unwrap_or_default(),
            facts.from_name.unwrap_or_default(),
        )
    });
    prop_oneof![direct, decoded]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn any_subject_and_display_name_give_a_clean_well_formed_notification(
        (subject, name) in subject_and_name()
    ) {
        // As plan.rs: the display name, or the address when there is none.
        let sender = "alice@corp.example";
        let sender_name = if name.trim().is_empty() { sender.to_owned() } else { name };
        let vars = NotificationVars {
            sender: sender.to_owned(),
            sender_name: sender_name.clone(),
            subject,
            portal_link: LINK.to_owned(),
            ..NotificationVars::sample()
        };
        let headers = MailHeaders {
            from_name: &sender_name,
            from_address: sender,
            to: "bob.jones@partner.example",
            message_id_domain: "gateway.example.com",
            date: time::macros::datetime!(2026-11-12 09:30 UTC),
        };
        let compiled = crate::plan::template_of(None).compile().unwrap();
        let mail = build_notification(Ok(&compiled), &vars, &headers);

        let message = MessageParser::new().parse(&mail).expect("parses as MIME");
        let names: Vec<&str> = message.root_part().headers().iter().map(|h| h.name()).collect();
        prop_assert_eq!(names, [
            "From", "To", "Subject", "Date", "Message-ID", "MIME-Version",
            "Auto-Submitted", "X-Sealpost-Notification", "Content-Type",
        ]);
        let expected = render(&NotificationTemplate::builtin(), &vars).unwrap();
        prop_assert_eq!(message.subject(), Some(expected.subject.as_str()));

        prop_assert_eq!(message.text_body_count(), 1);
        prop_assert_eq!(message.html_body_count(), 1);
        let text = message.body_text(0).unwrap();
        let html = message.body_html(0).unwrap();
        for body in [&text, &html] {
            prop_assert!(body.contains(LINK));
            let bad = body
                .replace("\r\n", "\n")
                .chars()
                .find(|&c| c != '\n' && sealpost_policy::text::is_hidden(c));
            prop_assert_eq!(bad, None, "a control in the body");
        }

        let raw = std::str::from_utf8(&mail).expect("ASCII");
        prop_assert!(raw.is_ascii());
        let (head, body) = raw.split_once("\r\n\r\n").expect("a header block");
        for line in head.split("\r\n") {
            prop_assert!(line.len() <= 78, "header line of {}: {}", line.len(), line);
        }
        for line in body.split("\r\n") {
            prop_assert!(line.len() <= 76, "body line of {}: {}", line.len(), line);
        }
        for word in head.split([' ', '\r', '\n']).filter(|w| w.starts_with("=?")) {
            prop_assert!(word.len() <= 75 && word.ends_with("?="), "encoded-word {}", word);
        }
        prop_assert!(!raw.contains("\r\nBcc:"));
    }
}
