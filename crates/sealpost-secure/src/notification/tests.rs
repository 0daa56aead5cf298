use mail_parser::{Address, MessageParser};

use super::*;

fn with_part(part: TemplatePart, source: &str) -> NotificationTemplate {
    let mut template = NotificationTemplate::builtin();
    match part {
        TemplatePart::Subject => template.subject = source.to_owned(),
        TemplatePart::Text => template.text = source.to_owned(),
        TemplatePart::Html => template.html = source.to_owned(),
    }
    template
}

fn headers() -> MailHeaders<'static> {
    MailHeaders {
        from_name: "Secure Messaging",
        from_address: "secure@gateway.example.com",
        to: "bob.jones@partner.example",
        message_id_domain: "gateway.example.com",
        date: time::macros::datetime!(2026-11-12 09:30 UTC),
    }
}

/// Every line ends with CRLF and is at most 998 octets (RFC 5322 §2.1.1).
fn assert_wire_format(mail: &[u8]) {
    assert!(mail.ends_with(b"\r\n"));
    for line in mail.split(|&b| b == b'\n') {
        assert!(line.len() <= 999, "line of {} octets", line.len());
    }
    for (i, &b) in mail.iter().enumerate() {
        if b == b'\n' {
            assert!(i > 0 && mail[i - 1] == b'\r', "bare LF at {i}");
        }
        if b == b'\r' {
            assert_eq!(mail.get(i + 1), Some(&b'\n'), "bare CR at {i}");
        }
    }
}

fn first_address(address: Option<&Address<'_>>) -> (Option<String>, String) {
    let addr = address.and_then(|a| a.first()).expect("an address");
    (
        addr.name().map(str::to_owned),
        addr.address().unwrap_or_default().to_owned(),
    )
}

#[test]
fn builtin_is_valid() {
    NotificationTemplate::builtin().check().unwrap();
}

#[test]
fn builtin_renders_the_sample() {
    let vars = NotificationVars::sample();
    let rendered = render(&NotificationTemplate::builtin(), &vars).unwrap();
    assert_eq!(rendered.subject, "Secure message: Q3 figures for review");
    for part in [&rendered.text, &rendered.html] {
        assert!(part.contains("Alice Martin"), "{part}");
        assert!(part.contains("alice.martin@example.com"));
        assert!(part.contains("Q3 figures for review"));
        assert!(part.contains("12 December 2026"));
        assert!(part.contains("bob.jones@partner.example"));
        assert!(part.contains("do not forward"));
        assert!(part.contains("password"));
        assert!(part.contains("secure.example.com"));
    }
    assert!(rendered.text.contains(&vars.portal_link));
    assert_eq!(rendered.html.matches(&vars.portal_link).count(), 2);
    assert!(
        rendered
            .html
            .contains(&format!("<a href=\"{}\"", vars.portal_link))
    );
    assert!(!rendered.text.contains("\n\n\n"), "{}", rendered.text);
}

#[test]
fn builtin_loads_nothing_remote() {
    let html = NotificationTemplate::builtin().html;
    for needle in ["<img", "<link", "<script", "url(", "@import", "src="] {
        assert!(!html.contains(needle), "{needle}");
    }
}

#[test]
fn builtin_without_expiry() {
    let vars = NotificationVars::sample().with_expiry(None);
    let rendered = render(&NotificationTemplate::builtin(), &vars).unwrap();
    for part in [&rendered.text, &rendered.html] {
        assert!(part.contains("does not expire"));
        assert!(!part.contains("2026"));
    }
}

#[test]
fn hidden_subject_is_never_shown() {
    let vars = NotificationVars {
        subject: HIDDEN_SUBJECT.to_owned(),
        subject_hidden: true,
        ..NotificationVars::sample()
    };
    let rendered = render(&NotificationTemplate::builtin(), &vars).unwrap();
    assert_eq!(rendered.subject, "Secure message from Alice Martin");
    for part in [&rendered.subject, &rendered.text, &rendered.html] {
        assert!(!part.contains("Q3"));
    }
}

#[test]
fn html_escapes_values() {
    let vars = NotificationVars {
        subject: "<script>alert(1)</script> & more".to_owned(),
        sender_name: "\"Evil\" <b>".to_owned(),
        ..NotificationVars::sample()
    };
    let rendered = render(&NotificationTemplate::builtin(), &vars).unwrap();
    assert!(!rendered.html.contains("<script>"));
    assert!(!rendered.html.contains("<b>"));
    assert!(
        rendered
            .html
            .contains("&lt;script&gt;alert(1)&lt;/script&gt; &amp; more")
    );
    assert!(rendered.html.contains("&quot;Evil&quot; &lt;b&gt;"));
    // Text parts are not HTML.
    assert!(rendered.text.contains("<script>alert(1)</script> & more"));
    assert!(rendered.subject.contains("<script>"));
}

#[test]
fn subject_is_one_bounded_line() {
    let template = with_part(
        TemplatePart::Subject,
        "  Hello\r\nBcc: x@evil.example\t{{ subject }}\x07 ",
    );
    let vars = NotificationVars {
        subject: format!("a\nb{}", "x".repeat(400)),
        ..NotificationVars::sample()
    };
    let rendered = render(&template, &vars).unwrap();
    assert!(
        rendered
            .subject
            .starts_with("Hello Bcc: x@evil.example a b")
    );
    assert!(!rendered.subject.contains(['\r', '\n', '\t', '\x07']));
    assert_eq!(rendered.subject.chars().count(), MAX_SUBJECT_CHARS);
    assert!(rendered.subject.ends_with(sealpost_policy::text::ELLIPSIS));
}

#[test]
fn syntax_error_names_part_and_line() {
    let template = with_part(TemplatePart::Html, "<p>\n{{ subject }}\n{% if %}\n");
    let err = template.check().unwrap_err();
    assert_eq!(err.part, TemplatePart::Html);
    assert_eq!(err.line, Some(3));
    assert!(
        err.to_string()
            .starts_with("html template, line 3: syntax error"),
        "{err}"
    );
}

#[test]
fn unknown_filter_names_part_and_line() {
    let template = with_part(TemplatePart::Text, "a\nb\n{{ subject|foo }}");
    let err = template.check().unwrap_err();
    assert_eq!((err.part, err.line), (TemplatePart::Text, Some(3)));
    assert!(err.message.contains("unknown filter"), "{err}");
}

#[test]
fn undefined_variable_is_an_error() {
    let template = with_part(TemplatePart::Subject, "Secure: {{ subjcet }}");
    let err = template.check().unwrap_err();
    assert_eq!((err.part, err.line), (TemplatePart::Subject, Some(1)));
    assert_eq!(
        err.to_string(),
        "subject template, line 1: undefined value: no variable named `subjcet`"
    );

    // Only reached without an expiry: check() renders both ways.
    let template = with_part(
        TemplatePart::Text,
        "{% if expires %}{{ expires }}{% else %}\n{{ expiry_date }}{% endif %}",
    );
    let err = template.check().unwrap_err();
    assert_eq!((err.part, err.line), (TemplatePart::Text, Some(2)));
}

#[test]
fn every_variable_is_defined() {
    let source = "{{ sender }}{{ sender_name }}{{ subject }}{{ subject_hidden }}\
                  {{ recipient }} {{ portal_link }} {{ expires }}{{ expires_at }}\
                  {{ definition }}{{ organisation }}";
    let template = with_part(TemplatePart::Text, source);
    template.check().unwrap();
    let rendered = render(&template, &NotificationVars::sample()).unwrap();
    assert!(rendered.text.contains("2026-12-12T00:00:00Z"));
}

#[test]
fn huge_output_is_refused() {
    let template = with_part(
        TemplatePart::Html,
        "{% for i in range(100000) %}{% for j in range(100000) %}{{ portal_link }}\
         {% endfor %}{% endfor %}",
    );
    let err = template.check().unwrap_err();
    assert_eq!((err.part, err.line), (TemplatePart::Html, None));
    assert!(err.message.contains("256 KiB"), "{err}");

    let template = with_part(TemplatePart::Subject, "{{ 'x' * 300000 }}");
    assert!(template.check().unwrap_err().message.contains("256 KiB"));
}

#[test]
fn a_template_that_loops_without_output_runs_out_of_fuel() {
    let template = with_part(
        TemplatePart::Text,
        "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
    );
    let err = template.check().unwrap_err();
    assert_eq!(err.part, TemplatePart::Text);
    assert!(err.message.contains("fuel"), "{err}");
}

#[test]
fn includes_find_nothing() {
    let template = with_part(TemplatePart::Html, "{% include 'text' %}");
    let err = template.check().unwrap_err();
    assert_eq!(err.part, TemplatePart::Html);
}

#[test]
fn self_recursion_is_stopped() {
    let template = with_part(
        TemplatePart::Text,
        "{% macro m(n) %}{{ m(n + 1) }}{% endmacro %}{{ m(0) }}",
    );
    assert!(template.check().is_err());
}

#[test]
fn template_round_trips_through_json() {
    let template = NotificationTemplate::builtin();
    let json = serde_json::to_string(&template).unwrap();
    assert_eq!(
        serde_json::from_str::<NotificationTemplate>(&json).unwrap(),
        template
    );
    let err = TemplateError {
        part: TemplatePart::Html,
        line: Some(3),
        message: "unknown filter".to_owned(),
    };
    assert_eq!(
        serde_json::to_value(&err).unwrap(),
        serde_json::json!({"part": "html", "line": 3, "message": "unknown filter"})
    );
    assert_eq!(err.to_string(), "html template, line 3: unknown filter");
}

#[test]
fn human_dates_are_utc() {
    let at = time::macros::datetime!(2026-12-12 23:30 -02:00);
    assert_eq!(human_date(at), "13 December 2026");
    let vars = NotificationVars::sample().with_expiry(Some(at));
    assert_eq!(vars.expires_at.as_deref(), Some("2026-12-13T01:30:00Z"));
}

#[test]
fn mail_parses_back() {
    let vars = NotificationVars {
        subject: "Überweisung für Q3 ✓".to_owned(),
        ..NotificationVars::sample()
    };
    let rendered = render(&NotificationTemplate::builtin(), &vars).unwrap();
    let mail = build_mail(&rendered, &headers());
    assert_wire_format(&mail);

    let message = MessageParser::new().parse(&mail).unwrap();
    assert_eq!(
        message.subject(),
        Some("Secure message: Überweisung für Q3 ✓")
    );
    assert_eq!(
        first_address(message.from()),
        (
            Some("Secure Messaging".to_owned()),
            "secure@gateway.example.com".to_owned()
        )
    );
    assert_eq!(
        first_address(message.to()),
        (None, "bob.jones@partner.example".to_owned())
    );
    let lf = |s: &str| s.replace("\r\n", "\n").trim_end().to_owned();
    assert_eq!(lf(&message.body_text(0).unwrap()), lf(&rendered.text));
    assert_eq!(lf(&message.body_html(0).unwrap()), lf(&rendered.html));
    assert_eq!(
        message.header_raw("Auto-Submitted").map(str::trim),
        Some("auto-generated")
    );
    assert_eq!(
        message.header_raw("X-Sealpost-Notification").map(str::trim),
        Some("1")
    );
    assert_eq!(
        message.header_raw("MIME-Version").map(str::trim),
        Some("1.0")
    );
    let id = message.message_id().unwrap();
    assert!(id.ends_with("@gateway.example.com"), "{id}");
    assert_eq!(id.len(), 32 + "@gateway.example.com".len());
    assert_eq!(
        message.date().map(|d| d.to_timestamp()),
        Some(headers().date.unix_timestamp())
    );
    let text = String::from_utf8_lossy(&mail);
    assert!(text.contains("multipart/alternative"));
}

#[test]
fn message_ids_differ() {
    let rendered = render(
        &NotificationTemplate::builtin(),
        &NotificationVars::sample(),
    )
    .unwrap();
    let a = build_mail(&rendered, &headers());
    let b = build_mail(&rendered, &headers());
    let id = |m: &[u8]| {
        MessageParser::new()
            .parse(m)
            .and_then(|m| m.message_id().map(str::to_owned))
    };
    assert_ne!(id(&a), id(&b));
}

#[test]
fn hostile_header_values_stay_in_their_field() {
    let rendered = Rendered {
        subject: "hi\r\nBcc: victim@example.com".to_owned(),
        text: "line\rwith a bare CR\r\nand a very long line ".repeat(100),
        html: "<p>x</p>".to_owned(),
    };
    let headers = MailHeaders {
        from_name: &format!("Name\r\nBcc: victim@example.com {}", "ü".repeat(500)),
        from_address: "a@example.com>\r\nBcc: victim@example.com",
        to: "b@example.com\r\n",
        message_id_domain: "gate way>\r\n.example",
        ..headers()
    };
    let mail = build_mail(&rendered, &headers);
    assert_wire_format(&mail);
    let message = MessageParser::new().parse(&mail).unwrap();
    assert!(message.bcc().is_none());
    assert_eq!(message.subject(), Some("hi Bcc: victim@example.com"));
    assert!(message.message_id().unwrap().ends_with("@gateway.example"));
}

#[test]
fn receipt_parses_back() {
    let entries = [
        ReceiptEntry {
            recipient: "bob.jones@partner.example".to_owned(),
            definition: "default".to_owned(),
            expires: Some("12 December 2026".to_owned()),
        },
        ReceiptEntry {
            recipient: "carol@other.example".to_owned(),
            definition: "Legal <hold>".to_owned(),
            expires: None,
        },
    ];
    let headers = MailHeaders {
        to: "alice.martin@example.com",
        ..headers()
    };
    let mail = build_receipt("Q3 <figures>\r\nBcc: x@y", None, &entries, &headers);
    assert_wire_format(&mail);

    let message = MessageParser::new().parse(&mail).unwrap();
    assert_eq!(
        message.subject(),
        Some("Delivered securely: Q3 <figures> Bcc: x@y")
    );
    assert!(message.bcc().is_none());
    assert_eq!(
        first_address(message.to()),
        (None, "alice.martin@example.com".to_owned())
    );
    assert_eq!(
        message.header_raw("Auto-Submitted").map(str::trim),
        Some("auto-generated")
    );
    let text = message.body_text(0).unwrap();
    assert!(text.contains("\"Q3 <figures> Bcc: x@y\" was delivered securely"));
    assert!(text.contains(
        "bob.jones@partner.example (definition \"default\", readable until 12 December 2026)"
    ));
    assert!(text.contains("carol@other.example (definition \"Legal <hold>\", does not expire)"));
    let html = message.body_html(0).unwrap();
    assert!(html.contains("Q3 &lt;figures&gt;"));
    assert!(html.contains("Legal &lt;hold&gt;"));
    assert!(!html.contains("<figures>") && !html.contains("<hold>"));
}

#[test]
fn receipt_without_entries() {
    let mail = build_receipt("", None, &[], &headers());
    assert_wire_format(&mail);
    let message = MessageParser::new().parse(&mail).unwrap();
    assert!(message.body_text(0).unwrap().contains("(none)"));
}

#[test]
fn the_link_must_be_in_both_bodies_and_never_in_the_subject() {
    let err = with_part(TemplatePart::Text, "Hello {{ recipient }}")
        .check()
        .unwrap_err();
    assert_eq!(err.part, TemplatePart::Text);
    assert!(err.message.contains("portal_link"), "{err}");
    let err = with_part(TemplatePart::Html, "<p>{{ subject }}</p>")
        .check()
        .unwrap_err();
    assert_eq!(err.part, TemplatePart::Html);
    let err = with_part(TemplatePart::Subject, "Open {{ portal_link }}")
        .check()
        .unwrap_err();
    assert_eq!(err.part, TemplatePart::Subject);
    assert!(format!("{:?}", NotificationVars::sample()).contains("<redacted>"));
    assert!(!format!("{:?}", NotificationVars::sample()).contains("https://"));
}

/// Sample values with a link shaped like a real one (a 64-hex-digit token)
/// and a sender other than the sample's.
fn real_vars() -> (NotificationVars, String) {
    let token = "0123456789abcdef".repeat(4);
    let vars = NotificationVars {
        sender: "carol@corp.example".to_owned(),
        sender_name: "Carol".to_owned(),
        portal_link: format!("https://secure.example.com/open/{token}"),
        ..NotificationVars::sample()
    };
    (vars, token)
}

/// The notification as plan.rs sends it, parsed: (subject, text, html).
fn sent(template: &NotificationTemplate, vars: &NotificationVars) -> (String, String, String) {
    let compiled = template.compile().unwrap();
    let mail = build_notification(Ok(&compiled), vars, &headers());
    let message = MessageParser::new().parse(&mail).unwrap();
    (
        message.subject().unwrap_or_default().to_owned(),
        message.body_text(0).unwrap().into_owned(),
        message.body_html(0).unwrap().into_owned(),
    )
}

/// Issue 14: a link printed only for the sample values passes the check
/// when saved; the real notification falls back to the built-in template.
#[test]
fn issue_14_a_conditional_link_falls_back_to_the_builtin_template() {
    let conditional =
        r#"{% if sender == "alice.martin@example.com" %}{{ portal_link }}{% endif %}"#;
    for part in [TemplatePart::Text, TemplatePart::Html] {
        let template = with_part(part, conditional);
        template.check().expect("the sample values print the link");
        let (vars, _) = real_vars();
        let rendered = template.compile().unwrap().render(&vars).unwrap();
        assert_eq!(
            check_rendered(&rendered, &vars.portal_link)
                .unwrap_err()
                .part(),
            part
        );

        let (_, text, html) = sent(&template, &vars);
        let builtin = render(&NotificationTemplate::builtin(), &vars).unwrap();
        let lf = |s: &str| s.replace("\r\n", "\n").trim_end().to_owned();
        assert_eq!(lf(&text), lf(&builtin.text), "the built-in text");
        assert_eq!(lf(&html), lf(&builtin.html), "the built-in html");
        assert!(text.contains(&vars.portal_link), "{text}");
        assert!(html.contains(&format!("href=\"{}\"", vars.portal_link)));
    }
}

/// Issue 14: no filter or slice of `portal_link` puts the token in the
/// Subject: the subject part never sees it, and the save-time check refuses
/// a subject that reads `portal_link` at all.
#[test]
fn issue_14_no_subject_template_can_carry_the_token() {
    for source in [
        "{{ portal_link|upper }}",
        "{{ portal_link[-40:] }}",
        "{{ portal_link|reverse }}",
        "{{ portal_link[::2] }}",
        "{{ portal_link|join(' ') }}",
        "{% set l = portal_link %}{{ l|lower }}",
    ] {
        let template = with_part(TemplatePart::Subject, source);
        let err = template.check().expect_err(source);
        assert_eq!(err.part, TemplatePart::Subject, "{source}");
        assert!(err.message.contains("portal_link"), "{err}");

        let (vars, token) = real_vars();
        let (subject, text, html) = sent(&template, &vars);
        let folded: String = subject
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .collect::<String>()
            .to_lowercase();
        for piece in [&token[..8], &token[30..38], &token[56..]] {
            let reversed: String = piece.chars().rev().collect();
            assert!(!folded.contains(piece), "{source}: {subject}");
            assert!(!folded.contains(&reversed), "{source}: {subject}");
        }
        assert!(!folded.contains(&token.chars().step_by(2).collect::<String>()[..8]));
        assert!(text.contains(&vars.portal_link), "{source}");
        assert!(html.contains(&vars.portal_link), "{source}");
    }
}

#[test]
fn check_rendered_finds_a_missing_link_and_a_token_in_the_subject() {
    let (vars, token) = real_vars();
    let link = vars.portal_link.clone();
    let good = render(&NotificationTemplate::builtin(), &vars).unwrap();
    check_rendered(&good, &link).unwrap();
    let with = |subject: &str, text: &str, html: &str| Rendered {
        subject: subject.to_owned(),
        text: text.to_owned(),
        html: html.to_owned(),
    };
    let html = format!("<a href=\"{link}\">open</a>");
    let upper = token.to_uppercase();
    let reversed: String = token.chars().rev().collect();
    let spaced: String = token[20..32].chars().flat_map(|c| [c, ' ']).collect();
    for subject in [&upper[..], &token[40..48], &reversed[3..11], &spaced] {
        assert_eq!(
            check_rendered(&with(subject, &link, &html), &link),
            Err(Unsendable::TokenInSubject),
            "{subject}"
        );
    }
    check_rendered(&with(&token[40..47], &link, &html), &link).unwrap();
    let cases = [
        (format!("{link}x"), html.clone(), Unsendable::NoLinkInText),
        (
            link[..link.len() - 1].to_owned(),
            html.clone(),
            Unsendable::NoLinkInText,
        ),
        (
            link.clone(),
            format!("<!-- {html} -->"),
            Unsendable::NoLinkInHtml,
        ),
        (
            link.clone(),
            format!("<!-- {html}"),
            Unsendable::NoLinkInHtml,
        ),
        (link.clone(), String::new(), Unsendable::NoLinkInHtml),
    ];
    for (text, html, problem) in cases {
        assert_eq!(
            check_rendered(&with("Hi", &text, &html), &link),
            Err(problem),
            "{text} {html}"
        );
    }
    let escaped = "https://x.example/open/a&b";
    check_rendered(
        &with("Hi", escaped, "<a href=\"https://x.example/open/a&amp;b\">"),
        escaped,
    )
    .unwrap();
}

#[test]
fn a_template_that_does_not_parse_falls_back_too() {
    let (vars, _) = real_vars();
    let err = with_part(TemplatePart::Text, "{{ broken")
        .compile()
        .unwrap_err();
    let mail = build_notification(Err(&err), &vars, &headers());
    let message = MessageParser::new().parse(&mail).unwrap();
    assert!(message.body_text(0).unwrap().contains(&vars.portal_link));
    assert!(message.body_html(0).unwrap().contains(&vars.portal_link));
}

/// Issue 14: a U-label domain in the To (or From) header of a mail that
/// travels without SMTPUTF8 is written as A-labels when the local part is
/// ASCII; a non-ASCII local part keeps the address as it is.
#[test]
fn issue_14_idn_addresses_in_headers_take_the_a_label_form() {
    let headers = MailHeaders {
        from_address: "alice@bücher.example",
        to: "bob@bücher.example",
        ..headers()
    };
    let rendered = Rendered {
        subject: "a secure message".to_owned(),
        text: "open it".to_owned(),
        html: "<p>open it</p>".to_owned(),
    };
    let mail = build_mail(&rendered, &headers);
    let head = &mail[..mail.windows(4).position(|w| w == b"\r\n\r\n").unwrap()];
    assert!(
        head.is_ascii(),
        "{}",
        String::from_utf8_lossy(head).escape_default()
    );
    let message = MessageParser::new().parse(&mail).unwrap();
    assert_eq!(first_address(message.to()).1, "bob@xn--bcher-kva.example");
    assert_eq!(
        first_address(message.from()).1,
        "alice@xn--bcher-kva.example"
    );
    let utf8 = MailHeaders {
        to: "jörg@bücher.example",
        ..headers
    };
    let mail = build_receipt("x", None, &[], &utf8);
    let message = MessageParser::new().parse(&mail).unwrap();
    assert_eq!(first_address(message.to()).1, "jörg@bücher.example");
}

#[test]
fn unnotified_names_each_recipient_and_reason_safely() {
    let entries = [
        UnnotifiedEntry {
            recipient: "bob@bücher.example".to_owned(),
            reason: "550 5.1.1 <bob@xn--bcher-kva.example>:\r\nno <such> user".to_owned(),
        },
        UnnotifiedEntry {
            recipient: "carol@other.example".to_owned(),
            reason: "421 gave up\u{202E}evil".to_owned(),
        },
    ];
    let headers = MailHeaders {
        to: "alice@corp.example",
        ..headers()
    };
    let mail = build_unnotified("Q3 <figures>\r\nBcc: x@y", &entries, &headers);
    assert_wire_format(&mail);
    let message = MessageParser::new().parse(&mail).unwrap();
    assert_eq!(
        message.subject(),
        Some("Recipients not notified: Q3 <figures> Bcc: x@y")
    );
    assert!(message.bcc().is_none());
    assert_eq!(
        message.header_raw("Auto-Submitted").map(str::trim),
        Some("auto-generated")
    );
    let text = message.body_text(0).unwrap();
    assert!(text.contains("\"Q3 <figures> Bcc: x@y\" is kept for secure delivery"));
    assert!(
        text.contains(
            "bob@bücher.example (the reply was: 550 5.1.1 <bob@xn--bcher-kva.example>: no <such> user)"
        ),
        "{text}"
    );
    assert!(text.contains("carol@other.example (the reply was: 421 gave upevil)"));
    let html = message.body_html(0).unwrap();
    assert!(html.contains("no &lt;such&gt; user"), "{html}");
    assert!(!html.contains("<such>") && !html.contains("<figures>"));
}

#[test]
fn read_receipt_says_who_opened_what_and_when_in_fixed_words() {
    let headers = MailHeaders {
        to: "alice.martin@example.com",
        ..headers()
    };
    let mail = build_read_receipt(
        "bob@partner.example\r\nBcc: x@y",
        "Q3 <contract>\r\nCc: z@y",
        time::macros::datetime!(2026-12-06 10:05 UTC),
        &headers,
    );
    assert_wire_format(&mail);
    let message = MessageParser::new().parse(&mail).unwrap();
    assert_eq!(message.subject(), Some("Read: Q3 <contract> Cc: z@y"));
    assert!(message.bcc().is_none() && message.cc().is_none());
    assert_eq!(
        message.body_text(0).unwrap().lines().next(),
        Some(
            "bob@partner.example Bcc: x@y opened 'Q3 <contract> Cc: z@y' at 6 December 2026, 10:05 UTC."
        )
    );
    let html = message.body_html(0).unwrap();
    assert!(html.contains("Q3 &lt;contract&gt;") && !html.contains("<contract>"));
    assert!(!String::from_utf8_lossy(&mail).contains("/open/"));
}
