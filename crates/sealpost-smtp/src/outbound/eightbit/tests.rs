//! The 7-bit conversion, checked by decoding the result with mail-parser.

use mail_parser::{MessageParser, MimeHeaders};

use super::*;

fn parse(bytes: &[u8]) -> mail_parser::Message<'_> {
    MessageParser::default().parse(bytes).expect("parses")
}

/// Every line of `bytes` is 7-bit and at most 998 octets (RFC 5321).
fn assert_seven_bit(bytes: &[u8]) {
    assert!(bytes.is_ascii(), "{}", String::from_utf8_lossy(bytes));
    for line in bytes.split(|&b| b == b'\n') {
        assert!(line.len() <= 1000);
    }
}

#[test]
fn a_plain_8bit_text_message_becomes_quoted_printable_and_decodes_back() {
    let text = "Grüße aus Köln — naïve café.\r\n= sign, trailing space \r\n\
                a very long line "
        .to_owned()
        + &"é".repeat(60)
        + "\r\n";
    let message = format!(
        "From: a@corp.example\r\nSubject: hi\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Content-Transfer-Encoding: 8bit\r\nMIME-Version: 1.0\r\n\r\n{text}"
    );
    let out = to_seven_bit(message.as_bytes()).unwrap();
    assert_seven_bit(&out);
    let s = String::from_utf8(out.clone()).unwrap();
    assert!(
        s.contains("Content-Transfer-Encoding: quoted-printable\r\n"),
        "{s}"
    );
    assert!(!s.contains("8bit"), "{s}");
    assert!(s.contains("trailing space=20\r\n"), "{s}");
    assert_eq!(parse(&out).body_text(0).unwrap(), text);
}

#[test]
fn a_message_without_mime_headers_gets_them() {
    let out = to_seven_bit("Subject: x\r\n\r\nÄpfel\r\n".as_bytes()).unwrap();
    assert_seven_bit(&out);
    let s = String::from_utf8(out).unwrap();
    assert_eq!(
        s,
        "Subject: x\r\nMIME-Version: 1.0\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n=C3=84pfel\r\n"
    );
}

#[test]
fn only_the_8bit_parts_of_a_multipart_are_reencoded() {
    let binary: Vec<u8> = (0u8..=255).chain(0u8..=255).collect();
    let mut message = "From: a@corp.example\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\npreamble\r\n\
--b1\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\nplain ascii\r\n\
--b1\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n<p>Grüße</p>\r\n\
--b1\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=x.bin\r\n\r\n"
        .as_bytes()
        .to_vec();
    message.extend_from_slice(&binary);
    message.extend_from_slice(b"\r\n--b1--\r\nepilogue\r\n");
    let out = to_seven_bit(&message).unwrap();
    assert_seven_bit(&out);
    let s = String::from_utf8(out.clone()).unwrap();
    // The ASCII part is untouched, byte for byte.
    assert!(
        s.contains(
            "--b1\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\nplain ascii\r\n--b1\r\n"
        ),
        "{s}"
    );
    let parsed = parse(&out);
    assert_eq!(parsed.attachments().count(), 1);
    assert_eq!(parsed.attachment(0).unwrap().contents(), &binary[..]);
    assert_eq!(parsed.body_text(0).unwrap().trim(), "plain ascii");
    let html = parsed
        .parts
        .iter()
        .find(|p| {
            p.content_type()
                .is_some_and(|c| c.subtype() == Some("html"))
        })
        .unwrap();
    assert_eq!(html.content_transfer_encoding(), Some("quoted-printable"));
    assert_eq!(html.text_contents().unwrap().trim(), "<p>Grüße</p>");
}

#[test]
fn an_attached_message_is_converted_inside() {
    let message = "From: a@corp.example\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=outer\r\n\r\n\
--outer\r\nContent-Type: message/rfc822\r\nContent-Transfer-Encoding: 8bit\r\n\r\n\
Subject: inner\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nInnen: ü\r\n\
--outer--\r\n";
    let out = to_seven_bit(message.as_bytes()).unwrap();
    assert_seven_bit(&out);
    let s = String::from_utf8(out.clone()).unwrap();
    assert!(
        s.contains("Content-Type: message/rfc822\r\nContent-Transfer-Encoding: 7bit\r\n"),
        "{s}"
    );
    let parsed = parse(&out);
    let inner = parsed
        .attachment(0)
        .unwrap()
        .message()
        .expect("an attached message");
    assert_eq!(inner.body_text(0).unwrap().trim(), "Innen: ü");
}

#[test]
fn what_cannot_be_7bit_is_refused() {
    assert_eq!(
        to_seven_bit("Subject: Grüße\r\n\r\nbody\r\n".as_bytes()),
        Err(Unconvertible::EightBitHeader)
    );
    assert_eq!(
        to_seven_bit(
            "Subject: x\r\nContent-Transfer-Encoding: base64\r\n\r\nnot base64: ü\r\n".as_bytes()
        ),
        Err(Unconvertible::BrokenEncoding("base64".into()))
    );
    assert_eq!(
        to_seven_bit(
            "Content-Type: multipart/mixed; boundary=zz\r\n\r\nno delimiter: ü\r\n".as_bytes()
        ),
        Err(Unconvertible::NoBoundary)
    );
    let mut deep = String::new();
    for _ in 0..40 {
        deep.push_str("Content-Type: message/rfc822\r\n\r\n");
    }
    deep.push_str("Subject: x\r\n\r\nü\r\n");
    assert_eq!(to_seven_bit(deep.as_bytes()), Err(Unconvertible::TooDeep));
    assert!(
        Unconvertible::EightBitHeader
            .reply("mx")
            .starts_with("554 5.6.3 ")
    );
}

#[test]
fn seven_bit_mail_is_left_alone_and_made_once() {
    let ascii = b"Subject: x\r\n\r\nplain\r\n";
    assert_eq!(to_seven_bit(ascii).unwrap(), ascii);
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = calls.clone();
    let lazy = SevenBit::new(move || {
        counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        to_seven_bit("Subject: x\r\n\r\nü\r\n".as_bytes())
    });
    assert_eq!(calls.load(std::sync::atomic::Ordering::Relaxed), 0);
    let a = lazy.get().unwrap();
    let b = lazy.get().unwrap();
    assert!(Arc::ptr_eq(&a, &b));
    assert_eq!(calls.load(std::sync::atomic::Ordering::Relaxed), 1);
}
