//! Secure delivery end to end: a policy (or the sender) selects an
//! external recipient, whose mail server then receives only a notification
//! with a portal link; the link's token resolves, through the store, to the
//! right message; internal and other external recipients receive the
//! original. Then the lifecycle: tracking, recall, extension and expiry
//! through the API and the CLI.

use std::{
    process::Command,
    time::{Duration, SystemTime},
};

use serde_json::{Value, json};

use sealpost_store::{QueueId, RecipientStatus};
use sealpost_vault::PortalToken;

use crate::{
    helpers::*,
    policy_api::{auth, call},
};

const BIN: &str = env!("CARGO_BIN_EXE_sealpost");

/// A gateway with corp.example internal (delivered to `internal`) and
/// every other domain relayed to `external`.
pub(crate) fn gateway(internal: &Sink, external: &Sink, extra: &str) -> TestGateway {
    TestGateway::start(&format!(
        "[domains]\ninternal = [\"corp.example\"]\n[relay]\nnext_hop = \"{}\"\ninternal_next_hop = \"{}\"\n[portal]\nurl = \"https://secure.corp.example\"\n{extra}",
        external.addr(),
        internal.addr()
    ))
}

/// Creates a definition and a policy sending mail to `domain` through it;
/// returns (definition id, policy id).
pub(crate) fn secure_policy(gw: &TestGateway, domain: &str, definition: Value) -> (i64, i64) {
    let (code, d) = call(gw, "POST", "/definitions", &definition);
    assert_eq!(code, 201, "{d}");
    let def = d["id"].as_i64().unwrap();
    let (code, p) = call(
        gw,
        "POST",
        "/policies",
        &json!({
            "action": "apply_definition", "definition_id": def,
            "from": {"kind": "internal"},
            "to": {"kind": "domain", "value": domain},
        }),
    );
    assert_eq!(code, 201, "{p}");
    (def, p["id"].as_i64().unwrap())
}

pub(crate) fn send(gw: &TestGateway, from: &str, to: &[&str], extra: &[&str]) -> QueueId {
    let mut args = vec!["--from", from, "--to"];
    let to = to.join(",");
    args.push(&to);
    args.extend_from_slice(extra);
    let (ok, out) = swaks(gw.smtp, &args);
    assert!(ok, "{out}");
    queue_id(&out)
}

/// The portal token in a notification's link.
pub(crate) fn token_in(text: &str) -> PortalToken {
    let at = text
        .find("https://secure.corp.example/open/")
        .unwrap_or_else(|| panic!("no portal link in:\n{text}"));
    let start = at + "https://secure.corp.example/open/".len();
    PortalToken::parse(&text[start..start + 64]).expect("a 64-hex-digit token")
}

pub(crate) fn decoded_text(content: &[u8]) -> String {
    let message = mail_parser::MessageParser::default()
        .parse(content)
        .expect("parses");
    let mut text = String::new();
    for i in 0..message.text_body_count() {
        text.push_str(&message.body_text(i).unwrap_or_default());
    }
    for i in 0..message.html_body_count() {
        text.push_str(&message.body_html(i).unwrap_or_default());
    }
    text
}

#[test]
fn a_mixed_message_gives_one_delivery_one_relay_and_one_notification() {
    let internal = Sink::start(&[]);
    let external = Sink::start(&[]);
    let gw = gateway(&internal, &external, "");
    let (def, pid) = secure_policy(
        &gw,
        "partner.example",
        json!({"name": "Legal", "expiry_days": 14, "sender_receipt": true}),
    );
    let marker = "MARKER-7f3a9c-do-not-leak";
    let id = send(
        &gw,
        "alice@corp.example",
        &["bob@corp.example", "x@other.example", "p1@partner.example"],
        &[
            "--header",
            "Subject: Q3 contract",
            "--header",
            "From: Alice Anders <alice@corp.example>",
            "--body",
            &format!("the figures: {marker}"),
        ],
    );

    // Internal: the original to bob, and the sender's receipt to alice.
    let got = internal.wait_for(2);
    let original = got
        .iter()
        .find(|m| m.rcpt_tos == ["bob@corp.example"])
        .expect("bob's copy");
    assert!(original.text().contains(marker));
    let receipt = got
        .iter()
        .find(|m| m.rcpt_tos == ["alice@corp.example"])
        .expect("the sender's receipt");
    assert_eq!(receipt.mail_from, "<>", "a receipt has the null sender");
    let receipt_text = decoded_text(&receipt.content);
    assert!(
        receipt_text.contains("p1@partner.example"),
        "{receipt_text}"
    );
    assert!(!receipt_text.contains(marker));

    // External: the original to x, only a notification to p1.
    let got = external.wait_for(2);
    std::thread::sleep(Duration::from_millis(500));
    let got_all = external.messages();
    assert_eq!(got_all.len(), 2, "exactly one relay and one notification");
    let relayed = got
        .iter()
        .find(|m| m.rcpt_tos == ["x@other.example"])
        .expect("x's copy");
    assert!(relayed.text().contains(marker));
    let notification = got
        .iter()
        .find(|m| m.rcpt_tos == ["p1@partner.example"])
        .expect("p1's notification");
    assert!(
        !notification.text().contains(marker),
        "a notification never carries the content"
    );
    assert_eq!(
        notification.mail_from, "<>",
        "notifications have the null sender"
    );
    let parsed = mail_parser::MessageParser::default()
        .parse(&notification.content)
        .unwrap();
    assert_eq!(parsed.text_body_count(), 1);
    assert_eq!(parsed.html_body_count(), 1);
    let text = decoded_text(&notification.content);
    assert!(text.contains("Q3 contract"), "the subject is shown: {text}");
    assert!(text.contains("Alice Anders"), "{text}");
    assert!(!text.contains(marker));
    let token = token_in(&text);

    // The token resolves, through the store, to this message and recipient,
    // and the content opens to the original.
    let access = gw
        .block_on(gw.secure.secure_by_token(token.hash()))
        .unwrap()
        .expect("the token resolves");
    assert_eq!(access.message, id);
    assert_eq!(access.recipient, "p1@partner.example");
    assert_eq!(access.status, RecipientStatus::Secure);
    let content = gw.block_on(gw.store.load_body(&id)).unwrap();
    assert!(String::from_utf8_lossy(&content).contains(marker));
    let other = PortalToken::generate();
    assert!(
        gw.block_on(gw.secure.secure_by_token(other.hash()))
            .unwrap()
            .is_none()
    );

    // Tracking through the API: decision, policy, notified.
    let tracked = wait_for(Duration::from_secs(20), "notified", || {
        let (code, m) = call(&gw, "GET", &format!("/messages/{id}"), &Value::Null);
        assert_eq!(code, 200, "{m}");
        m["recipients"][2]["secure"]["notified_at"]
            .is_string()
            .then_some(m)
    });
    assert_eq!(tracked["subject"], "Q3 contract");
    let p1 = &tracked["recipients"][2];
    assert_eq!(p1["status"], "secure");
    assert_eq!(p1["route"], format!("secure:{def}"));
    assert_eq!(p1["policy_id"], pid);
    assert_eq!(p1["secure"]["trigger"], "policy");
    assert_eq!(p1["secure"]["read"], false);
    assert!(p1["secure"]["first_opened_at"].is_null());
    let expires = p1["secure"]["expires_at"].as_str().unwrap();
    assert!(is_days_ahead(expires, 14), "{expires}");
    assert_eq!(tracked["recipients"][0]["status"], "delivered");
    assert_eq!(tracked["recipients"][1]["status"], "delivered");

    // The store records the recipient's reading (the portal's part).
    gw.block_on(gw.secure.mark_opened(&id, 2, SystemTime::now(), None))
        .unwrap();
    let (_, m) = call(&gw, "GET", &format!("/messages/{id}"), &Value::Null);
    assert_eq!(m["recipients"][2]["secure"]["read"], true);
    assert!(m["recipients"][2]["secure"]["first_opened_at"].is_string());
}

/// Whether an RFC 3339 time from the API is `days` from now, give or take
/// five minutes (the message was received moments ago).
fn is_days_ahead(text: &str, days: u64) -> bool {
    let at = humantime::parse_rfc3339(text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
    let want = SystemTime::now() + Duration::from_secs(days * 86400);
    let diff = match at.duration_since(want) {
        Ok(d) => d,
        Err(e) => e.duration(),
    };
    diff < Duration::from_secs(300)
}

#[test]
fn the_sender_can_ask_by_header_or_subject_tag_only_from_inside_and_only_where_allowed() {
    let internal = Sink::start(&[]);
    let external = Sink::start(&[]);
    let gw = gateway(&internal, &external, "");
    let (code, d) = call(
        &gw,
        "POST",
        "/definitions",
        &json!({"name": "Confidential", "manual_use": true, "hide_subject": true}),
    );
    assert_eq!(code, 201, "{d}");
    let confidential = d["id"].as_i64().unwrap();

    // 1. Header from an internal sender, naming a manual definition: x gets
    // a notification (subject hidden); bob's copy has no trigger header.
    let id = send(
        &gw,
        "alice@corp.example",
        &["x@other.example", "bob@corp.example"],
        &[
            "--header",
            "Subject: merger plans",
            "--header",
            "X-Sealpost-Secure: confidential",
        ],
    );
    let bob = internal.wait_for(1);
    assert!(
        !bob[0]
            .text()
            .to_ascii_lowercase()
            .contains("x-sealpost-secure")
    );
    assert!(bob[0].text().contains("Subject: merger plans"));
    let notice = external.wait_for(1);
    assert_eq!(notice[0].rcpt_tos, ["x@other.example"]);
    let text = decoded_text(&notice[0].content);
    assert!(!text.contains("merger plans"), "hide_subject: {text}");
    assert!(!notice[0].text().contains("merger plans"));
    let r = gw.block_on(gw.store.recipients(&id)).unwrap();
    assert_eq!(r[0].route, format!("secure:{confidential}"));
    assert_eq!(r[0].policy, None, "no policy: the sender asked");
    assert_eq!(
        r[0].secure.as_ref().unwrap().trigger,
        sealpost_store::SecureTrigger::Header
    );

    // 2. Subject tag from an internal sender: the default definition; the
    // tag is gone from the stored subject and from bob's copy.
    let id = send(
        &gw,
        "alice@corp.example",
        &["y@other.example", "bob@corp.example"],
        &["--header", "Subject: [SECURE] payroll"],
    );
    let bob = internal.wait_for(2);
    assert!(
        bob[1].text().contains("Subject: payroll\r\n"),
        "{}",
        bob[1].text()
    );
    let notice = external.wait_for(2);
    assert_eq!(notice[1].rcpt_tos, ["y@other.example"]);
    assert!(decoded_text(&notice[1].content).contains("payroll"));
    let (_, m) = call(&gw, "GET", &format!("/messages/{id}"), &Value::Null);
    assert_eq!(m["subject"], "payroll");
    assert_eq!(m["recipients"][0]["secure"]["trigger"], "subject_tag");
    assert_eq!(
        m["recipients"][0]["route"], "secure:1",
        "the default definition"
    );

    // A definition that cannot be used: see fail_closed.rs.

    // 4. An external sender: header and tag ignored (bob gets the original,
    // tag kept, header removed).
    send(
        &gw,
        "mallory@outside.example",
        &["bob@corp.example"],
        &[
            "--header",
            "X-Sealpost-Secure: Confidential",
            "--header",
            "Subject: [secure] hello",
        ],
    );
    let bob = internal.wait_for(3);
    assert!(bob[2].text().contains("Subject: [secure] hello"));
    assert!(
        !bob[2]
            .text()
            .to_ascii_lowercase()
            .contains("x-sealpost-secure")
    );
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(external.messages().len(), 2, "no notification for it");
}

#[test]
fn recall_extend_and_expiry_destroy_content_and_keep_tracking() {
    let internal = Sink::start(&[]);
    let external = Sink::start(&[]);
    let gw = gateway(
        &internal,
        &external,
        "[vault]\nexpiry_interval = \"1s\"\nretention = \"30d\"",
    );
    secure_policy(
        &gw,
        "partner.example",
        json!({"name": "Legal", "expiry_days": 7}),
    );
    let first = send(
        &gw,
        "alice@corp.example",
        &["p1@partner.example"],
        &["--header", "Subject: to recall"],
    );
    let second = send(
        &gw,
        "alice@corp.example",
        &["p2@partner.example"],
        &["--header", "Subject: to expire"],
    );
    external.wait_for(2);

    // Recall through the API with a read-only key: refused.
    let out = Command::new(BIN)
        .args(["apikey", "create", "--role", "read_only", "--config"])
        .arg(gw.data_dir().join("sealpost.toml"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let read_only = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let (code, err) = crate::policy_api::api(
        &gw,
        "POST",
        &format!("/messages/{first}/recall"),
        Some(b""),
        &[&format!("Authorization: Bearer {read_only}")],
    );
    assert_eq!(code, 403, "{err}");

    // Recall through the CLI.
    let out = Command::new(BIN)
        .args(["messages", "recall", first.as_str()])
        .env("SEALPOST_API_ADDR", gw.admin.to_string())
        .env("SEALPOST_API_KEY", gw.api_key.clone().unwrap())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("destroyed"));
    let record = gw.block_on(gw.store.message(&first)).unwrap();
    assert!(!record.has_content, "content destroyed");
    assert_eq!(
        record.subject.as_deref(),
        Some("to recall"),
        "metadata kept"
    );
    assert!(matches!(
        gw.block_on(gw.store.load_body(&first)),
        Err(sealpost_store::StoreError::NotFound(_))
    ));
    let (_, m) = call(&gw, "GET", &format!("/messages/{first}"), &Value::Null);
    assert_eq!(m["recipients"][0]["status"], "recalled");
    assert!(m["recipients"][0]["secure"]["ended_at"].is_string());
    assert_eq!(m["has_content"], false);
    // Recalling again changes nothing; extending a recalled one is refused.
    let (code, err) = call(
        &gw,
        "POST",
        &format!("/messages/{first}/extend"),
        &json!({"days": 3}),
    );
    assert_eq!(
        (code, err["code"].as_str()),
        (409, Some("refused")),
        "{err}"
    );

    // Extend: by days, then past retention (refused), then to 2 s from now
    // so the expiry job (every 1 s) ends it.
    let (code, e) = call(
        &gw,
        "POST",
        &format!("/messages/{second}/extend"),
        &json!({"days": 3}),
    );
    assert_eq!(code, 200, "{e}");
    assert!(is_days_ahead(e["expires_at"].as_str().unwrap(), 10));
    let (code, err) = call(
        &gw,
        "POST",
        &format!("/messages/{second}/extend"),
        &json!({"days": 40}),
    );
    assert_eq!(code, 409, "{err}");
    assert!(
        err["message"].as_str().unwrap().contains("vault.retention"),
        "{err}"
    );
    let (code, err) = call(
        &gw,
        "POST",
        &format!("/messages/{second}/extend"),
        &json!({"days": 3, "expires_at": "2030-01-01T00:00:00Z"}),
    );
    assert_eq!(
        (code, err["code"].as_str()),
        (422, Some("invalid_extension"))
    );
    let (code, err) = call(&gw, "POST", "/messages/NOTANID/extend", &json!({"days": 3}));
    assert_eq!((code, err["code"].as_str()), (400, Some("invalid_id")));
    let soon = humantime_in(Duration::from_secs(2));
    let (code, e) = call(
        &gw,
        "POST",
        &format!("/messages/{second}/extend"),
        &json!({"expires_at": soon}),
    );
    assert_eq!(code, 200, "{e}");
    let r = gw.recipients_when(&second, "expired by the job", |r| {
        r.status == RecipientStatus::Expired
    });
    assert!(r[0].secure.as_ref().unwrap().ended_at.is_some());
    let record = gw.block_on(gw.store.message(&second)).unwrap();
    assert!(!record.has_content);
    assert_eq!(record.subject.as_deref(), Some("to expire"));

    // Search: by status, subject, recipient; bulk recall reports unknown ids.
    let (_, page) = call(&gw, "GET", "/messages?status=expired", &Value::Null);
    let ids: Vec<&str> = page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [second.as_str()]);
    let (_, page) = call(
        &gw,
        "GET",
        "/messages?subject=RECALL&to=p1%40",
        &Value::Null,
    );
    assert_eq!(page["messages"][0]["id"], first.as_str());
    let (code, err) = call(&gw, "GET", "/messages?status=lost", &Value::Null);
    assert_eq!((code, err["field"].as_str()), (400, Some("status")));
    let list_ids = |query: &str| -> Vec<String> {
        let (code, page) = call(&gw, "GET", &format!("/messages{query}"), &Value::Null);
        assert_eq!(code, 200, "{page}");
        page["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let mut newest = list_ids("");
    newest.reverse();
    assert!(newest.len() > 1);
    assert_eq!(list_ids("?order=oldest"), newest);
    let (code, err) = call(&gw, "GET", "/messages?order=sideways", &Value::Null);
    assert_eq!((code, err["field"].as_str()), (400, Some("order")), "{err}");
    let (code, bulk) = call(
        &gw,
        "POST",
        "/messages/recall",
        &json!({"ids": [second.as_str(), "0000000000000000"]}),
    );
    assert_eq!(code, 200, "{bulk}");
    assert_eq!(bulk["not_found"], json!(["0000000000000000"]));
    let (code, err) = call(&gw, "POST", "/messages/recall", &json!({"ids": []}));
    assert_eq!((code, err["field"].as_str()), (400, Some("ids")), "{err}");
    let (code, err) = call(
        &gw,
        "POST",
        "/messages/recall",
        &json!({"ids": [second.as_str(), "not-an-id"]}),
    );
    assert_eq!(
        (code, err["field"].as_str()),
        (400, Some("ids[1]")),
        "{err}"
    );
    let (code, err) = call(&gw, "POST", "/messages/recall", &json!({"id": "x"}));
    assert_eq!(
        (code, err["code"].as_str()),
        (400, Some("invalid_field")),
        "{err}"
    );
    let (code, err) = call(&gw, "GET", "/messages?limit=0", &Value::Null);
    assert_eq!((code, err["field"].as_str()), (400, Some("limit")), "{err}");
    let (code, err) = call(&gw, "GET", "/messages?since=yesterday", &Value::Null);
    assert_eq!((code, err["field"].as_str()), (400, Some("since")), "{err}");
    let (code, _) = call(&gw, "GET", "/messages/0000000000000000", &Value::Null);
    assert_eq!(code, 404);
    let out = Command::new(BIN)
        .args(["messages", "list", "--status", "recalled"])
        .env("SEALPOST_API_ADDR", gw.admin.to_string())
        .env("SEALPOST_API_KEY", gw.api_key.clone().unwrap())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains(first.as_str()));
    let _ = auth;
}

/// An RFC 3339 time `after` from now (UTC, seconds).
fn humantime_in(after: Duration) -> String {
    humantime::format_rfc3339_seconds(SystemTime::now() + after).to_string()
}

#[test]
fn templates_are_checked_when_saved_and_previewed_with_sample_data() {
    let internal = Sink::start(&[]);
    let external = Sink::start(&[]);
    let gw = gateway(&internal, &external, "");
    let (code, err) = call(
        &gw,
        "POST",
        "/definitions",
        &json!({"name": "Broken", "notification_template": {"html": "<p>{{ portal_link }</p>"}}),
    );
    assert_eq!(code, 422, "{err}");
    assert_eq!(err["code"], "invalid_template");
    assert!(
        err["field"]
            .as_str()
            .unwrap()
            .ends_with("notification_template.html"),
        "{err}"
    );
    let (code, err) = call(
        &gw,
        "POST",
        "/definitions",
        &json!({"name": "Typo", "notification_template": {"text": "Open {{ portal_lnk }}"}}),
    );
    assert_eq!(code, 422, "undefined variables are errors: {err}");

    let (code, d) = call(
        &gw,
        "POST",
        "/definitions",
        &json!({"name": "Branded", "notification_template": {"subject": "Secure mail from {{ sender_name }}"}}),
    );
    assert_eq!(code, 201, "{d}");
    let id = d["id"].as_i64().unwrap();
    let (code, p) = call(
        &gw,
        "POST",
        &format!("/definitions/{id}/preview"),
        &json!({}),
    );
    assert_eq!(code, 200, "{p}");
    assert!(
        p["subject"]
            .as_str()
            .unwrap()
            .starts_with("Secure mail from "),
        "{p}"
    );
    assert!(
        p["html"].as_str().unwrap().contains("href="),
        "the built-in HTML part"
    );
    let (code, p) = call(
        &gw,
        "POST",
        &format!("/definitions/{id}/preview"),
        &json!({"template": {"text": "Hi {{ recipient }}: <{{ portal_link }}>", "html": "<b>{{ subject }}</b> <a href=\"{{ portal_link }}\">open</a>"}}),
    );
    assert_eq!(code, 200, "{p}");
    assert!(p["text"].as_str().unwrap().starts_with("Hi "));
    let (code, err) = call(
        &gw,
        "POST",
        &format!("/definitions/{id}/preview"),
        &json!({"template": {"text": "{% for %}"}}),
    );
    assert_eq!(
        (code, err["code"].as_str()),
        (422, Some("invalid_template")),
        "{err}"
    );
    let (code, _) = call(&gw, "POST", "/definitions/999/preview", &json!({}));
    assert_eq!(code, 404);
}

/// Issue 14: a template that prints the link only for the sample values is
/// accepted when saved, yet its notification goes out with the link (the
/// built-in template); and a Subject and From name whose encoded-words
/// decode to ESC, NUL and CRLF give a notification with clean bodies and
/// lines and encoded-words within RFC 2045/2047 limits.
#[test]
fn issue_14_every_notification_has_its_link_and_clean_bodies() {
    let internal = Sink::start(&[]);
    let external = Sink::start(&[]);
    let gw = gateway(&internal, &external, "");
    let conditional =
        r#"{% if sender == "alice.martin@example.com" %}{{ portal_link }}{% endif %}"#;
    secure_policy(
        &gw,
        "partner.example",
        json!({"name": "Conditional", "notification_template": {"text": conditional}}),
    );
    secure_policy(&gw, "other-partner.example", json!({"name": "Plain"}));
    let subject = "=?UTF-8?Q?Q3_=1B[31m=00red=0D=0ABcc:_victim@example.com?=";
    let name = format!(
        "=?UTF-8?Q?{}?=",
        "M=C3=BCller,_J=C3=BCrgen_=1B[2J".repeat(12)
    );
    send(
        &gw,
        "alice@corp.example",
        &["p1@partner.example", "p2@other-partner.example"],
        &[
            "--header",
            &format!("Subject: {subject}"),
            "--header",
            &format!("From: {name} <alice@corp.example>"),
        ],
    );

    let got = external.wait_for(2);
    for to in ["p1@partner.example", "p2@other-partner.example"] {
        let notification = got
            .iter()
            .find(|m| m.rcpt_tos == [to])
            .unwrap_or_else(|| panic!("{to}'s notification"));
        let parsed = mail_parser::MessageParser::default()
            .parse(&notification.content)
            .unwrap();
        assert!(parsed.bcc().is_none());
        let text = parsed.body_text(0).unwrap();
        let html = parsed.body_html(0).unwrap();
        assert!(
            text.contains("The message is not attached to this email"),
            "{to}: the built-in text: {text}"
        );
        let token = token_in(&text);
        assert_eq!(token_in(&html), token, "{to}: the same link in the html");
        let access = gw
            .block_on(gw.secure.secure_by_token(token.hash()))
            .unwrap()
            .expect("the link's token resolves");
        assert_eq!(access.recipient, to);
        for body in [&text, &html] {
            let body = body.replace("\r\n", "\n");
            assert!(
                !body.chars().any(|c| c != '\n' && c.is_control()),
                "{to}: a control character in {body:?}"
            );
            assert!(
                body.contains("Q3 [31mred Bcc: victim@example.com"),
                "{body}"
            );
            assert!(!body.contains("\nBcc:"), "{body}");
            assert!(body.contains("Müller, Jürgen [2JMüller"), "{body}");
        }

        let raw = notification.text();
        let (head, body) = raw.split_once("\r\n\r\n").unwrap();
        // Only the fields the gateway wrote (a relay may prepend trace fields).
        let from = head
            .match_indices("From: ")
            .find(|(at, _)| *at == 0 || head[..*at].ends_with("\r\n"))
            .expect("a From field");
        for line in head[from.0..].split("\r\n") {
            assert!(
                line.len() <= 78,
                "{to}: header line of {}: {line}",
                line.len()
            );
        }
        for line in body.split("\r\n") {
            assert!(
                line.len() <= 76,
                "{to}: body line of {}: {line}",
                line.len()
            );
        }
        let words: Vec<&str> = head
            .split([' ', '\r', '\n'])
            .filter(|w| w.starts_with("=?"))
            .collect();
        assert!(
            words.len() > 2,
            "{to}: the name and subject are encoded: {head}"
        );
        for word in words {
            assert!(
                word.len() <= 75,
                "{to}: encoded-word of {}: {word}",
                word.len()
            );
        }
    }
}
