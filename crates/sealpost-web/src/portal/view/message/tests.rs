use super::*;

fn eml(text: &str) -> Vec<u8> {
    text.replace('\n', "\r\n").into_bytes()
}

#[test]
fn alternative_gives_both_bodies_and_clean_headers() {
    let raw = eml(concat!(
        "From: \"Alice \\\"Boss\\\" \u{202e}Smith\" <alice@example.com>\n",
        "To: bob@example.net, \"Carol\" <carol@example.net>\n",
        "Cc: dave@example.org\n",
        "Date: Tue, 1 Jul 2025 10:20:30 +0200\n",
        "Subject: =?UTF-8?B?UTMgY29udHJhY3QKQmNjOiBldmls?=\n",
        "MIME-Version: 1.0\n",
        "Content-Type: multipart/alternative; boundary=b1\n",
        "\n",
        "--b1\n",
        "Content-Type: text/plain; charset=utf-8\n",
        "\n",
        "Hello Bob\n",
        "--b1\n",
        "Content-Type: text/html; charset=utf-8\n",
        "\n",
        "<p>Hello <b>Bob</b></p>\n",
        "--b1--\n",
    ));
    let view = MessageView::parse(&raw);
    assert_eq!(view.from.len(), 1);
    assert_eq!(view.from[0].name.as_deref(), Some("Alice \"Boss\" Smith"));
    assert_eq!(view.from[0].address, "alice@example.com");
    assert_eq!(
        view.to.iter().map(ToString::to_string).collect::<Vec<_>>(),
        ["bob@example.net", "Carol <carol@example.net>"]
    );
    assert_eq!(view.cc[0].address, "dave@example.org");
    assert_eq!(view.date.as_deref(), Some("Tue, 1 Jul 2025 10:20:30 +0200"));
    // An encoded newline cannot forge a header line on the page.
    assert_eq!(view.subject, "Q3 contract Bcc: evil");
    assert_eq!(view.text.as_deref().map(str::trim_end), Some("Hello Bob"));
    assert_eq!(
        view.html.as_deref().map(str::trim_end),
        Some("<p>Hello <b>Bob</b></p>")
    );
    assert!(view.attachments.is_empty());
    let clean = view.sanitised_html("/m/1", false).unwrap();
    assert_eq!(clean.html.trim_end(), "<p>Hello <b>Bob</b></p>");
}

#[test]
fn text_only_has_no_html_and_html_only_no_text() {
    let view = MessageView::parse(&eml("Subject: t\n\nplain body\n"));
    assert_eq!(view.text.as_deref(), Some("plain body\r\n"));
    assert_eq!(view.html, None);
    let view = MessageView::parse(&eml(
        "Subject: h\nContent-Type: text/html\n\n<i>only html</i>\n",
    ));
    assert_eq!(view.text, None);
    assert!(view.html.unwrap().contains("<i>only html</i>"));
}

const MIXED: &str = concat!(
    "From: a@example.com\n",
    "Subject: files\n",
    "Content-Type: multipart/mixed; boundary=outer\n",
    "\n",
    "--outer\n",
    "Content-Type: multipart/related; boundary=rel\n",
    "\n",
    "--rel\n",
    "Content-Type: text/html\n",
    "\n",
    "<p>logo: <img src=\"cid:logo@x\"> tracker: <img src=\"https://t.example/p.gif\"></p>\n",
    "--rel\n",
    "Content-Type: image/png\n",
    "Content-ID: <logo@x>\n",
    "Content-Transfer-Encoding: base64\n",
    "\n",
    "iVBORw0KGgo=\n",
    "--rel--\n",
    "--outer\n",
    "Content-Type: application/pdf; name=\"Q3 report.pdf\"\n",
    "Content-Disposition: attachment; filename=\"Q3 report.pdf\"\n",
    "Content-Transfer-Encoding: base64\n",
    "\n",
    "JVBERi0xLjQK\n",
    "--outer\n",
    "Content-Type: text/plain\n",
    "Content-Disposition: attachment; filename*=UTF-8''..%2F..%2Fetc%2Fpasswd\n",
    "\n",
    "root:x:0:0\n",
    "--outer\n",
    "Content-Type: application/octet-stream\n",
    "Content-Disposition: attachment; filename=\"=?UTF-8?B?R3LDvMOfZQ0KLmV4ZQ==?=\"\n",
    "Content-Transfer-Encoding: base64\n",
    "\n",
    "AAEC\n",
    "--outer\n",
    "Content-Type: image/jpeg\n",
    "Content-Transfer-Encoding: base64\n",
    "\n",
    "/9j/\n",
    "--outer--\n",
);

#[test]
fn mixed_with_attachments_and_an_inline_image() {
    let raw = eml(MIXED);
    let view = MessageView::parse(&raw);
    let names: Vec<_> = view.attachments.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(
        names,
        ["Q3 report.pdf", "passwd", "Grüße .exe", "attachment-4.jpg"]
    );
    let pdf = &view.attachments[0];
    assert_eq!(pdf.content_type, "application/pdf");
    assert_eq!(pdf.size, 9);
    assert_eq!(part_contents(&raw, pdf.index).unwrap(), b"%PDF-1.4\n");
    assert_eq!(view.attachments[2].size, 3);

    let logo = view.inline["logo@x"];
    assert_eq!(part_contents(&raw, logo).unwrap(), b"\x89PNG\r\n\x1a\n");
    let clean = view.sanitised_html("/m/7", false).unwrap();
    assert!(
        clean
            .html
            .contains(&format!(r#"<img src="/m/7/inline/{logo}">"#)),
        "{}",
        clean.html
    );
    assert_eq!(clean.blocked_remote, 1);
    assert!(!clean.html.contains("t.example"));
    let remote = view.sanitised_html("/m/7", true).unwrap();
    assert!(remote.html.contains(r#"src="https://t.example/p.gif""#));
}

#[test]
fn only_listed_parts_can_be_downloaded() {
    let raw = eml(MIXED);
    let view = MessageView::parse(&raw);
    let listed: Vec<PartIndex> = view
        .attachments
        .iter()
        .map(|a| a.index)
        .chain(view.inline.values().copied())
        .collect();
    for i in 0..20 {
        let index = PartIndex::parse(&i.to_string()).unwrap();
        assert_eq!(
            part_contents(&raw, index).is_some(),
            listed.contains(&index),
            "part {i}"
        );
    }
    assert_eq!(PartIndex::parse("-1"), None);
    assert_eq!(PartIndex::parse("+1"), None);
    assert_eq!(PartIndex::parse(""), None);
    assert_eq!(PartIndex::parse("99999999999"), None);
}

#[test]
fn eight_bit_headers_and_body() {
    let raw = b"From: J\xc3\xbcrgen <j@example.de>\r\nSubject: Gr\xc3\xbc\xc3\x9fe\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nSch\xc3\xb6ne Gr\xc3\xbc\xc3\x9fe\r\n";
    let view = MessageView::parse(raw);
    assert_eq!(view.from[0].name.as_deref(), Some("Jürgen"));
    assert_eq!(view.subject, "Grüße");
    assert_eq!(view.text.as_deref(), Some("Schöne Grüße\r\n"));
}

#[test]
fn broken_mime_never_panics() {
    let cases: Vec<Vec<u8>> = vec![
        Vec::new(),
        b"\r\n\r\n".to_vec(),
        b"garbage without headers".to_vec(),
        vec![0xff; 300],
        eml(
            "Content-Type: multipart/mixed; boundary=x\n\n--x\nContent-Type: text/html\n\n<p>unterminated",
        ),
        eml("Content-Type: multipart/mixed\n\nno boundary at all\n"),
        eml("Content-Type: multipart/mixed; boundary=\"\"\n\n--\n--\n"),
        eml("Content-Type: text/plain\nContent-Transfer-Encoding: base64\n\n!!!not base64!!!\n"),
        eml("Content-Type: text/plain\nContent-Transfer-Encoding: quoted-printable\n\n=ZZ=\n=\n"),
        eml("Subject: =?UTF-8?B?broken?=\nFrom: <<<>>>\nTo: ,,,@,\nDate: yesterday\n\nx"),
        eml(&format!(
            "Content-Type: multipart/mixed; boundary=a\n\n{}",
            "--a\nContent-Type: multipart/mixed; boundary=a\n\n".repeat(200)
        )),
        eml("Content-Type: message/rfc822\n\nContent-Type: message/rfc822\n\n"),
    ];
    for raw in cases {
        let view = MessageView::parse(&raw);
        let _ = view.sanitised_html("/m/1", false);
        for i in 0..5 {
            let _ = part_contents(&raw, PartIndex(i));
        }
    }
    let view = MessageView::parse(&eml("Date: yesterday\n\nx"));
    assert_eq!(view.date, None);
}

#[test]
fn nameless_attachments_are_numbered_with_an_extension() {
    let raw = eml(concat!(
        "Content-Type: multipart/mixed; boundary=b\n\n",
        "--b\nContent-Type: text/plain\n\nbody\n",
        "--b\nContent-Type: application/pdf\nContent-Disposition: attachment\n\nx\n",
        "--b\nContent-Type: message/rfc822\n\nSubject: inner\n\ninner body\n",
        "--b\nContent-Type: application/x-thing\nContent-Disposition: attachment; filename=\"\\u0000\"\n\ny\n",
        "--b--\n",
    ));
    let view = MessageView::parse(&raw);
    let names: Vec<_> = view.attachments.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names[0], "attachment-1.pdf");
    assert_eq!(names[1], "attachment-2.eml");
    assert_eq!(view.attachments[1].content_type, "message/rfc822");
}
