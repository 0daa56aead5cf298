use super::*;

use mail_parser::{MessageParser, MimeHeaders};

fn addr(a: &str) -> EmailAddress {
    EmailAddress::parse(a).unwrap()
}

fn original() -> Original {
    Original {
        sender: Some(addr("alice@corp.example")),
        recipients: vec![
            addr("bob@partner.example"),
            addr("Carol@Corp.example"),
            addr("carol@corp.example"),
            addr("ALICE@corp.example"),
            addr("dave@other.example"),
        ],
        message_id: Some("<orig-1@corp.example>".into()),
        references: Some("<root@corp.example>\r\n <mid@corp.example> junk <bad id@x>".into()),
        subject: "Q3 contract".into(),
        quote: None,
        date: None,
    }
}

fn definition() -> DefinitionDraft {
    DefinitionDraft {
        allow_forward: true,
        ..DefinitionDraft::default_definition()
    }
}

fn input<'a>(
    kind: ReplyKind,
    definition: &'a DefinitionDraft,
    from: &'a EmailAddress,
    original: &'a Original,
) -> ReplyInput<'a> {
    ReplyInput {
        kind,
        definition,
        from,
        original,
        forward_to: &[],
        body: "Thanks,\nBob",
        attachments: Vec::new(),
        max_upload: 1 << 20,
        hostname: "gw.corp.example",
        now: time::macros::datetime!(2026-12-06 10:00 UTC),
    }
}

fn strs(v: &[EmailAddress]) -> Vec<&str> {
    v.iter().map(EmailAddress::as_str).collect()
}

#[test]
fn reply_goes_to_the_sender_with_threading_headers() {
    let (d, from, o) = (definition(), addr("bob@partner.example"), original());
    let r = compose(input(ReplyKind::Reply, &d, &from, &o)).unwrap();
    assert_eq!(strs(&r.recipients), ["alice@corp.example"]);
    assert_eq!(r.sender, from);
    assert_eq!(r.subject, "Re: Q3 contract");
    assert!(r.message_id.ends_with("@gw.corp.example"));
    let text = String::from_utf8(r.content.clone()).unwrap();
    assert!(text.contains("From: <bob@partner.example>\r\n"), "{text}");
    assert!(
        text.contains("In-Reply-To: <orig-1@corp.example>\r\n"),
        "{text}"
    );
    assert!(
        text.contains(
            "References: <root@corp.example> <mid@corp.example> <orig-1@corp.example>\r\n"
        ),
        "junk and a malformed id are dropped: {text}"
    );
    let parsed = MessageParser::new().parse(&r.content).unwrap();
    assert_eq!(parsed.body_text(0).unwrap(), "Thanks,\r\nBob\r\n");
    assert_eq!(parsed.message_id(), Some(r.message_id.as_str()));
}

#[test]
fn reply_all_leaves_out_the_replying_recipient_and_duplicates() {
    let (d, from, o) = (definition(), addr("BOB@partner.example"), original());
    let r = compose(input(ReplyKind::ReplyAll, &d, &from, &o)).unwrap();
    assert_eq!(
        strs(&r.recipients),
        [
            "alice@corp.example",
            "Carol@corp.example",
            "dave@other.example"
        ]
    );
    let text = String::from_utf8(r.content).unwrap();
    assert!(
        text.contains("To: <alice@corp.example>\r\nCc: <Carol@corp.example>,"),
        "{text}"
    );
}

#[test]
fn forward_parses_the_typed_addresses() {
    let (d, from, o) = (definition(), addr("bob@partner.example"), original());
    let typed = ["eve@x.example, <Eve@X.example>; frank@y.example".to_owned()];
    let mut i = input(ReplyKind::Forward, &d, &from, &o);
    i.forward_to = &typed;
    let r = compose(i).unwrap();
    assert_eq!(strs(&r.recipients), ["eve@x.example", "frank@y.example"]);
    assert_eq!(r.subject, "Fwd: Q3 contract");

    let bad = ["eve@x.example not-an-address".to_owned()];
    let mut i = input(ReplyKind::Forward, &d, &from, &o);
    i.forward_to = &bad;
    assert_eq!(
        compose(i).unwrap_err(),
        ReplyError::InvalidAddress("not-an-address".into())
    );
    let mut i = input(ReplyKind::Forward, &d, &from, &o);
    i.forward_to = &[];
    assert_eq!(compose(i).unwrap_err(), ReplyError::NoRecipient);
}

#[test]
fn a_kind_the_definition_forbids_is_refused() {
    let from = addr("bob@partner.example");
    let o = original();
    for (kind, definition) in [
        (
            ReplyKind::Reply,
            DefinitionDraft {
                allow_reply: false,
                ..definition()
            },
        ),
        (
            ReplyKind::ReplyAll,
            DefinitionDraft {
                allow_reply_all: false,
                ..definition()
            },
        ),
        (ReplyKind::Forward, DefinitionDraft::default_definition()),
    ] {
        assert_eq!(
            compose(input(kind, &definition, &from, &o)).unwrap_err(),
            ReplyError::NotAllowed(kind)
        );
    }
}

#[test]
fn the_null_sender_cannot_be_replied_to() {
    let (d, from) = (definition(), addr("bob@partner.example"));
    let o = Original {
        sender: None,
        ..original()
    };
    assert_eq!(
        compose(input(ReplyKind::Reply, &d, &from, &o)).unwrap_err(),
        ReplyError::NoRecipient
    );
}

#[test]
fn prefixes_are_not_doubled_and_subjects_stay_one_line() {
    assert_eq!(subject(ReplyKind::Reply, "RE: x"), "RE: x");
    assert_eq!(subject(ReplyKind::Forward, "Fw: x"), "Fw: x");
    assert_eq!(subject(ReplyKind::Forward, "Re: x"), "Fwd: Re: x");
    assert_eq!(subject(ReplyKind::Reply, "a\r\nBcc: x"), "Re: a Bcc: x");
}

#[test]
fn references_are_bounded_to_the_root_and_the_latest() {
    let refs: String = (0..50).map(|i| format!("<r{i}@x> ")).collect();
    let (d, from) = (definition(), addr("bob@partner.example"));
    let o = Original {
        references: Some(refs),
        ..original()
    };
    let r = compose(input(ReplyKind::Reply, &d, &from, &o)).unwrap();
    let parsed = MessageParser::new().parse(&r.content).unwrap();
    let ids: Vec<String> = parsed
        .references()
        .as_text_list()
        .unwrap()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(ids.len(), MAX_REFERENCES);
    assert_eq!(ids[0], "r0@x");
    assert_eq!(ids[MAX_REFERENCES - 2], "r49@x");
    assert_eq!(ids[MAX_REFERENCES - 1], "orig-1@corp.example");
}

#[test]
fn attachments_round_trip_with_safe_names_and_76_character_lines() {
    let (d, from, o) = (definition(), addr("bob@partner.example"), original());
    let pdf: Vec<u8> = (0..=255u8).cycle().take(5000).collect();
    let mut i = input(ReplyKind::Reply, &d, &from, &o);
    i.attachments = vec![
        Attachment {
            name: "../../etc/\"contract\".pdf".into(),
            content_type: "application/pdf; x=1".into(),
            bytes: pdf.clone(),
        },
        Attachment {
            name: "Résumé été 2026 — version finale très longue.txt".repeat(2),
            content_type: "not a type\r\nX-Evil: 1".into(),
            bytes: b"hello".to_vec(),
        },
    ];
    let r = compose(i).unwrap();
    assert!(r.has_attachments);
    let text = String::from_utf8(r.content.clone()).unwrap();
    assert!(!text.contains("X-Evil"), "{text}");
    for line in text.split("\r\n") {
        assert!(line.len() <= 78, "{} octets: {line}", line.len());
    }
    let parsed = MessageParser::new().parse(&r.content).unwrap();
    let files: Vec<_> = parsed.attachments().collect();
    assert_eq!(files.len(), 2);
    assert_eq!(files[0].attachment_name(), Some("_contract_.pdf"));
    assert_eq!(files[0].contents(), pdf.as_slice());
    assert_eq!(files[0].content_type().unwrap().ctype(), "application");
    assert_eq!(
        files[1].attachment_name(),
        Some(
            sanitize_file_name(&"Résumé été 2026 — version finale très longue.txt".repeat(2))
                .as_str()
        )
    );
    assert_eq!(files[1].contents(), b"hello");
    assert_eq!(
        files[1].content_type().unwrap().subtype(),
        Some("octet-stream")
    );
}

#[test]
fn the_upload_limit_counts_text_and_attachments() {
    let (d, from, o) = (definition(), addr("bob@partner.example"), original());
    let mut i = input(ReplyKind::Reply, &d, &from, &o);
    i.max_upload = 100;
    i.attachments = vec![Attachment {
        name: "a.bin".into(),
        content_type: "application/octet-stream".into(),
        bytes: vec![0; 90],
    }];
    assert_eq!(
        compose(i).unwrap_err(),
        ReplyError::TooLarge {
            size: 90 + "Thanks,\nBob".len() as u64,
            max: 100
        }
    );
}

#[test]
fn the_original_is_quoted_when_given() {
    let (d, from) = (definition(), addr("bob@partner.example"));
    let o = Original {
        quote: Some("Line one\r\n\r\nLine two".into()),
        date: Some("Fri, 4 Dec 2026 09:00:00 +0000".into()),
        ..original()
    };
    let r = compose(input(ReplyKind::Reply, &d, &from, &o)).unwrap();
    let parsed = MessageParser::new().parse(&r.content).unwrap();
    assert_eq!(
        parsed.body_text(0).unwrap(),
        "Thanks,\r\nBob\r\n\r\nOn Fri, 4 Dec 2026 09:00:00 +0000, alice@corp.example wrote:\r\n\
         > Line one\r\n>\r\n> Line two\r\n\r\n"
    );
}

#[test]
fn file_names_lose_paths_controls_and_leading_dots() {
    assert_eq!(sanitize_file_name("C:\\x\\..\\.bashrc"), "bashrc");
    assert_eq!(sanitize_file_name("a\u{0}b\r\nc.txt"), "a_b__c.txt");
    assert_eq!(sanitize_file_name("..."), "attachment");
    assert_eq!(sanitize_file_name(&"x".repeat(500)).len(), MAX_FILE_NAME);
}

#[test]
fn the_original_is_read_from_its_content() {
    let content = b"Message-ID: <m1@corp.example>\r\nReferences: <r0@corp.example>\r\n\
        Subject: =?UTF-8?Q?Q3_r=C3=A9sum=C3=A9?=\r\nDate: Fri, 4 Dec 2026 09:00:00 +0000\r\n\
        \r\nHello Bob\r\n";
    let o = Original::from_content(content, Some(addr("alice@corp.example")), Vec::new());
    assert_eq!(o.subject, "Q3 résumé");
    assert_eq!(o.quote.as_deref(), Some("Hello Bob\r\n"));
    assert!(o.date.as_deref().unwrap().contains("4 Dec 2026"));
    let (d, from) = (definition(), addr("bob@partner.example"));
    let r = compose(input(ReplyKind::Reply, &d, &from, &o)).unwrap();
    let text = String::from_utf8(r.content).unwrap();
    assert!(
        text.contains("In-Reply-To: <m1@corp.example>\r\n"),
        "{text}"
    );
    assert!(
        text.contains("References: <r0@corp.example> <m1@corp.example>\r\n"),
        "{text}"
    );
}

#[test]
fn the_parent_is_not_repeated_in_references() {
    let (d, from) = (definition(), addr("bob@partner.example"));
    let o = Original {
        references: Some("<orig-1@corp.example> <root@corp.example>".into()),
        ..original()
    };
    let r = compose(input(ReplyKind::Reply, &d, &from, &o)).unwrap();
    let text = String::from_utf8(r.content).unwrap();
    assert!(
        text.contains("References: <orig-1@corp.example> <root@corp.example>\r\n"),
        "{text}"
    );
}
