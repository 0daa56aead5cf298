use proptest::prelude::*;

use super::*;

const TAG: &str = "[secure]";

fn message(header: &str) -> Vec<u8> {
    format!("{header}\r\nHello,\r\nX-Sealpost-Secure: in the body\r\nSubject: [secure] body\r\n")
        .into_bytes()
}

fn rewritten(header: &str, tag: Option<&str>) -> String {
    String::from_utf8(rewrite(message(header), tag)).unwrap()
}

fn body() -> &'static str {
    "\r\nHello,\r\nX-Sealpost-Secure: in the body\r\nSubject: [secure] body\r\n"
}

#[test]
fn remove_tag_takes_one_adjacent_space() {
    assert_eq!(remove_tag("[secure] Q3 figures", TAG), "Q3 figures");
    assert_eq!(remove_tag("Re: [SECURE] x", TAG), "Re: x");
    assert_eq!(remove_tag("Q3 figures [Secure]", TAG), "Q3 figures");
    assert_eq!(remove_tag("[secure]", TAG), "");
    assert_eq!(remove_tag("a[secure]b", TAG), "ab");
    assert_eq!(remove_tag("[secure] [secure] twice", TAG), "[secure] twice");
    assert_eq!(remove_tag("no tag", TAG), "no tag");
    assert_eq!(remove_tag("anything", ""), "anything");
    assert_eq!(
        remove_tag("Überweisung [sicher] ok", "[SICHER]"),
        "Überweisung ok"
    );
}

#[test]
fn inspect_reads_the_first_of_each_field() {
    let content = message(
        "Received: from x\r\n\tby y\r\nFrom: =?utf-8?Q?J=C3=B6rg?= M <j@example.com>\r\n\
         Subject: Re: [SECURE]\r\n  Q3\r\nX-Sealpost-Secure:  Legal \r\n\
         X-Sealpost-Secure: second\r\nSubject: later\r\n",
    );
    let facts = inspect(&content, TAG);
    // mail-parser collapses the whitespace of a fold.
    assert_eq!(facts.subject.as_deref(), Some("Re: [SECURE] Q3"));
    assert_eq!(facts.from_name.as_deref(), Some("Jörg M"));
    assert_eq!(facts.requested_definition.as_deref(), Some("Legal"));
    assert!(facts.has_tag);
    assert!(!inspect(&content, "").has_tag);
}

#[test]
fn inspect_without_fields() {
    let facts = inspect(b"From: a@example.com\r\nX-Sealpost-Secure:\r\n\r\n", TAG);
    assert_eq!(facts.subject, None);
    assert_eq!(facts.from_name, None);
    assert_eq!(facts.requested_definition.as_deref(), Some(""));
    assert!(!facts.has_tag);
    assert_eq!(inspect(b"", TAG), HeaderFacts::default());
    // The body is not the header.
    assert_eq!(
        inspect(&message("To: b@x\r\n"), TAG),
        HeaderFacts::default()
    );
}

#[test]
fn inspect_decodes_an_encoded_tag() {
    let content = message("Subject: =?utf-8?Q?=5BSecure=5D_caf=C3=A9?=\r\n");
    let facts = inspect(&content, TAG);
    assert_eq!(facts.subject.as_deref(), Some("[Secure] café"));
    assert!(facts.has_tag);
}

#[test]
fn tag_at_start_middle_and_end() {
    let cases = [
        (
            "Subject: [secure] Q3 figures\r\n",
            "Subject: Q3 figures\r\n",
        ),
        ("Subject: Re: [SECURE] x\r\n", "Subject: Re: x\r\n"),
        (
            "Subject: Q3 figures [Secure]\r\n",
            "Subject: Q3 figures\r\n",
        ),
        ("subject:[secure]\r\n", "subject:\r\n"),
    ];
    for (header, expected) in cases {
        let out = rewritten(
            &format!("From: a@example.com\r\n{header}To: b@x\r\n"),
            Some(TAG),
        );
        assert_eq!(
            out,
            format!("From: a@example.com\r\n{expected}To: b@x\r\n{}", body())
        );
    }
}

#[test]
fn only_the_first_subject_is_rewritten() {
    let out = rewritten("Subject: [secure] a\r\nSubject: [secure] b\r\n", Some(TAG));
    assert!(out.starts_with("Subject: a\r\nSubject: [secure] b\r\n\r\n"));
}

#[test]
fn folded_subject_is_unfolded_and_refolded() {
    let words = "word ".repeat(30);
    let header = format!("Subject: {words}\r\n [secure]\r\n {words}\r\n");
    let out = rewritten(&header, Some(TAG));
    let end = header_end(out.as_bytes());
    let facts = inspect(out.as_bytes(), TAG);
    assert!(!facts.has_tag);
    // The words survive; how mail-parser reads the whitespace of a fold
    // differs between the two foldings.
    let original = inspect(&message(&header), TAG).subject.unwrap();
    let words = |s: &str| s.split_whitespace().map(str::to_owned).collect::<Vec<_>>();
    assert_eq!(
        words(&facts.subject.unwrap()),
        words(&remove_tag(&original, TAG))
    );
    for line in out[..end].split("\r\n") {
        assert!(line.len() <= FOLD_AT, "{line:?}");
    }
}

#[test]
fn encoded_subject_is_reencoded() {
    let header = "Subject: =?iso-8859-1?Q?R=E9sum=E9?= =?utf-8?B?W3NlY3VyZV0=?= du\r\n mois\r\n";
    let out = rewritten(header, Some(TAG));
    let end = header_end(out.as_bytes());
    assert!(out[..end].contains("=?UTF-8?Q?"), "{out}");
    assert!(out.ends_with(body()));
    let facts = inspect(out.as_bytes(), TAG);
    assert_eq!(facts.subject.as_deref(), Some("Résumédu mois"));
}

#[test]
fn long_encoded_subject_folds_between_characters() {
    let subject = format!("[secure] {}", "Ünïcödé ✓ ".repeat(40));
    let mut header = String::from("Subject:");
    for word in encoded_words(&subject) {
        header.push_str(&format!(" {word}\r\n"));
    }
    let out = rewritten(&header, Some(TAG));
    let end = header_end(out.as_bytes());
    for line in out[..end].split("\r\n") {
        assert!(line.len() <= FOLD_AT, "{line:?}");
    }
    assert_eq!(
        inspect(out.as_bytes(), TAG).subject.unwrap(),
        remove_tag(&subject, TAG)
    );
}

#[test]
fn encoded_words_round_trip() {
    for text in [
        "",
        "a_b=c?d",
        "tab\there",
        "ÄÖÜ 日本語 🎉",
        "\r\nX-Injected: 1",
    ] {
        let header = format!("Subject: {}\r\n\r\n", encoded_words(text).join("\r\n "));
        assert!(!header.contains("\r\nX-Injected"));
        let facts = inspect(header.as_bytes(), TAG);
        assert_eq!(facts.subject.unwrap_or_default(), text);
    }
}

#[test]
fn control_header_is_always_removed() {
    let header = "Received: from a\r\nX-Sealpost-Secure: Legal\r\n\tcontinued\r\n  again\r\n\
                  Subject: hi\r\nx-sealpost-SECURE :other\r\nX-Sealpost-Secure-Note: kept\r\n\
                  X-SEALPOST-SECURE:\r\nTo: b@x\r\n";
    let out = rewritten(header, None);
    assert_eq!(
        out,
        format!(
            "Received: from a\r\nSubject: hi\r\nX-Sealpost-Secure-Note: kept\r\nTo: b@x\r\n{}",
            body()
        )
    );
}

#[test]
fn control_header_and_tag_together() {
    let out = rewritten(
        "X-Sealpost-Secure: Legal\r\nSubject: [secure] Q3\r\n",
        Some(TAG),
    );
    assert_eq!(out, format!("Subject: Q3\r\n{}", body()));
}

#[test]
fn header_only_in_the_body_is_not_touched() {
    let content = message("From: a@example.com\r\nSubject: plain\r\n");
    let ptr = content.as_ptr();
    let expected = content.clone();
    let out = rewrite(content, Some(TAG));
    assert_eq!(out, expected);
    assert_eq!(out.as_ptr(), ptr, "the same Vec comes back");
}

#[test]
fn unchanged_content_is_returned_as_is() {
    let cases: [&[u8]; 6] = [
        b"",
        b"no header block at all",
        b"\r\n\r\nX-Sealpost-Secure: body only\r\n",
        b"Subject: untagged\r\nX-Sealpost-Secure-Other: x\r\n",
        b"Subject: \xff\xfe [secur\r\n",
        b" X-Sealpost-Secure: a stray continuation line\r\n",
    ];
    for content in cases {
        let owned = content.to_vec();
        let ptr = owned.as_ptr();
        let out = rewrite(owned, Some(TAG));
        assert_eq!(out, content);
        assert_eq!(out.as_ptr(), ptr);
    }
}

#[test]
fn no_header_block_split() {
    let out = rewrite(
        b"Subject: [secure] x\r\nX-Sealpost-Secure: y".to_vec(),
        Some(TAG),
    );
    assert_eq!(out, b"Subject: x\r\n");
    let out = rewrite(b"Subject: [secure] x".to_vec(), Some(TAG));
    assert_eq!(out, b"Subject: x");
}

#[test]
fn bare_lf_and_raw_bytes() {
    let out = rewrite(
        b"X-Sealpost-Secure: a\n b\nSubject: \xe9t\xe9 [secure]\n\nbody\n".to_vec(),
        Some(TAG),
    );
    assert_eq!(out, b"Subject: \xe9t\xe9\n\nbody\n");
}

#[test]
fn huge_header_block() {
    let mut content = "Received: from somewhere\r\n".repeat(100_000).into_bytes();
    content.extend_from_slice(b"Subject: [secure] ");
    content.extend(std::iter::repeat_n(b'x', 1 << 20));
    content.extend_from_slice(b"\r\nX-Sealpost-Secure: Legal\r\n\r\nbody\r\n");
    let facts = inspect(&content, TAG);
    assert!(facts.has_tag);
    assert_eq!(facts.requested_definition.as_deref(), Some("Legal"));
    let out = rewrite(content.clone(), Some(TAG));
    assert_eq!(
        out.len(),
        content.len() - "[secure] ".len() - "X-Sealpost-Secure: Legal\r\n".len()
    );
    assert!(out.ends_with(b"xxx\r\n\r\nbody\r\n"));
}

/// Pieces of header blocks, good and broken, that the properties below
/// shuffle together.
fn fragment() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(b"X-Sealpost-Secure: confidential\r\n".to_vec()),
        Just(b"x-sealpost-SECURE \t:a\r\n b\r\n".to_vec()),
        Just(b"X-Sealpost-Secure".to_vec()),
        Just(b"Subject: [secure] Q3 figures\r\n".to_vec()),
        Just(b"Subject: =?utf-8?Q?=5Bsecure=5D_caf=C3=A9?=\r\n".to_vec()),
        Just(b"Subject: =?utf-8?B?".to_vec()),
        Just(b"From: \"A [secure]\" <a@example.com>\r\n".to_vec()),
        Just(b" continued\r\n".to_vec()),
        Just(b"\t[SECURE]".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b"\n".to_vec()),
        Just(b"\r".to_vec()),
        Just(b":".to_vec()),
        "[ -~]{0,100}".prop_map(String::into_bytes),
        proptest::collection::vec(any::<u8>(), 0..16),
    ]
}

fn content() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(fragment(), 0..24).prop_map(|parts| parts.concat()),
        proptest::collection::vec(any::<u8>(), 0..256),
    ]
}

fn tag() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        Just(None),
        Just(Some(TAG.to_owned())),
        Just(Some(String::new())),
        Just(Some("é".to_owned())),
        "[a-z\\[\\] ]{1,3}".prop_map(Some),
    ]
}

proptest! {
    #[test]
    fn rewrite_keeps_the_body_and_drops_the_control_field(content in content(), tag in tag()) {
        let _ = inspect(&content, tag.as_deref().unwrap_or(""));
        let end = header_end(&content);
        let tail = content[end..].to_vec();
        let out = rewrite(content.clone(), tag.as_deref());

        prop_assert!(out.ends_with(&tail));
        let out_end = header_end(&out);
        prop_assert_eq!(out_end, out.len() - tail.len());
        let header = &out[..out_end];
        prop_assert!(chunks(header).all(|c| !c.is(header, CONTROL_FIELD)));
        prop_assert!(!has_control_field(header));
        prop_assert_eq!(inspect(&out, "").requested_definition, None);
        if tag.is_none() && !has_control_field(&content[..end]) {
            prop_assert_eq!(out, content);
        }
    }
}

#[test]
fn inspect_reads_the_first_from_address_as_written() {
    let facts = inspect(
        b"Received: from x\r\nSubject: x\r\nFrom: \"Alice A.\" <Alice@Corp.Example>\r\n\r\nFrom: body@not.this\r\n",
        "[secure]",
    );
    assert_eq!(facts.from_address.as_deref(), Some("Alice@Corp.Example"));
    assert_eq!(facts.from_name.as_deref(), Some("Alice A."));
    assert!(
        inspect(b"Subject: none\r\n\r\nbody", "")
            .from_address
            .is_none()
    );
}
