//! Issue 14, secure delivery fails closed: notifications to IDN domains,
//! and notifications that fail for good.
//!
//! A notification goes from `<>`, so its bounce reaches nobody: tracking
//! must show the failure, and a sender who asked for receipts hears who
//! could not be notified.

use std::{process::Command, time::Duration};

use serde_json::{Value, json};

use crate::{
    helpers::*,
    policy_api::call,
    secure::{decoded_text, gateway, secure_policy, send},
};

/// The tracking JSON of `id` once `done` holds for it.
fn tracked_when(gw: &TestGateway, id: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    wait_for(Duration::from_secs(20), what, || {
        let (code, m) = call(gw, "GET", &format!("/messages/{id}"), &Value::Null);
        assert_eq!(code, 200, "{m}");
        done(&m).then_some(m)
    })
}

/// The headers of a mail as received (before the first empty line).
fn head(m: &Received) -> &[u8] {
    let c = &m.content;
    &c[..c
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(c.len())]
}

#[test]
fn issue_14_a_notification_to_a_u_label_domain_goes_in_a_label_form() {
    let internal = Sink::start(&[]);
    let external = Sink::start(&["--no-smtputf8"]);
    let gw = gateway(&internal, &external, "");
    secure_policy(&gw, "bücher.example", json!({"name": "IDN"}));
    // The client must ask for SMTPUTF8 to name a U-label recipient.
    let script = format!(
        r#"
import smtplib
msg = b"From: alice@corp.example\r\nTo: bob@xn--bcher-kva.example\r\nSubject: Katalog\r\n\r\nthe list\r\n"
with smtplib.SMTP("127.0.0.1", {port}) as s:
    s.ehlo("client.example")
    s.command_encoding = "utf-8"
    code, reply = s.docmd("MAIL FROM:<alice@corp.example> SMTPUTF8")
    assert code == 250, reply
    code, reply = s.docmd("RCPT TO:<bob@bücher.example>")
    assert code == 250, reply
    code, reply = s.data(msg)
    assert code == 250, reply
    print(reply.decode())
"#,
        port = gw.smtp.port()
    );
    let (ok, out) = python(&script);
    assert!(ok, "{out}");
    let id = queue_id(&out);

    let got = external.wait_for(1);
    let notification = &got[0];
    assert_eq!(notification.rcpt_tos, ["bob@xn--bcher-kva.example"]);
    assert_eq!(notification.mail_from, "<>");
    assert!(
        !notification.mail_options.iter().any(|o| o == "SMTPUTF8"),
        "{:?}",
        notification.mail_options
    );
    let head = head(notification);
    assert!(head.is_ascii(), "{}", String::from_utf8_lossy(head));
    assert!(
        String::from_utf8_lossy(head).contains("bob@xn--bcher-kva.example"),
        "the To header names the A-label form"
    );
    assert!(decoded_text(&notification.content).contains("Katalog"));

    let m = tracked_when(&gw, id.as_str(), "notified", |m| {
        m["recipients"][0]["secure"]["notified_at"].is_string()
    });
    let secure = &m["recipients"][0]["secure"];
    assert_eq!(m["recipients"][0]["address"], "bob@bücher.example");
    assert!(secure["notification_failed_at"].is_null(), "{m}");
    assert!(secure["notification_error"].is_null(), "{m}");
}

#[test]
fn issue_14_a_notification_that_fails_for_good_is_tracked_and_told_to_the_sender() {
    let internal = Sink::start(&[]);
    let external = Sink::start(&["--permfail-rcpt", "^<?(p1|q1)@"]);
    let gw = gateway(&internal, &external, "");
    secure_policy(&gw, "quiet.example", json!({"name": "Quiet"}));
    secure_policy(
        &gw,
        "partner.example",
        json!({"name": "Legal", "sender_receipt": true}),
    );

    // Without sender receipts: tracked, and nobody is mailed.
    let quiet = send(
        &gw,
        "alice@corp.example",
        &["q1@quiet.example"],
        &["--header", "Subject: no receipt"],
    );
    let m = tracked_when(&gw, quiet.as_str(), "the failure flag", |m| {
        m["recipients"][0]["secure"]["notification_failed_at"].is_string()
    });
    let secure = &m["recipients"][0]["secure"];
    assert!(secure["notified_at"].is_null());
    assert!(
        secure["notification_error"]
            .as_str()
            .is_some_and(|e| e.starts_with("550 5.1.1")),
        "{m}"
    );
    assert_eq!(m["recipients"][0]["status"], "secure", "still readable");
    let out = Command::new(env!("CARGO_BIN_EXE_sealpost"))
        .args(["messages", "list", "--to", "q1@"])
        .env("SEALPOST_API_ADDR", gw.admin.to_string())
        .env("SEALPOST_API_KEY", gw.api_key.clone().unwrap())
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(
        listed.contains("q1@quiet.example (secure, not notified)"),
        "{listed}"
    );

    // With sender receipts: the receipt, then the notice naming p1 only.
    let id = send(
        &gw,
        "alice@corp.example",
        &["p1@partner.example", "p2@partner.example"],
        &["--header", "Subject: Q3 contract"],
    );
    let got = internal.wait_for(2);
    let notice = got
        .iter()
        .find(|m| decoded_text(&m.content).contains("could not be sent the notification"))
        .unwrap_or_else(|| panic!("the sender's notice among {got:?}"));
    assert_eq!(notice.mail_from, "<>");
    assert_eq!(notice.rcpt_tos, ["alice@corp.example"]);
    assert!(
        notice
            .text()
            .contains("Subject: Recipients not notified: Q3 contract"),
        "{}",
        notice.text()
    );
    let text = decoded_text(&notice.content);
    assert!(
        text.contains("p1@partner.example (the reply was: 550 5.1.1"),
        "{text}"
    );
    assert!(
        !text.contains("p2@partner.example"),
        "p2 was notified: {text}"
    );
    assert!(!text.contains("q1@"), "{text}");

    let m = tracked_when(&gw, id.as_str(), "flag and notified", |m| {
        m["recipients"][0]["secure"]["notification_failed_at"].is_string()
            && m["recipients"][1]["secure"]["notified_at"].is_string()
    });
    assert!(m["recipients"][0]["secure"]["notified_at"].is_null());
    assert!(m["recipients"][1]["secure"]["notification_failed_at"].is_null());
    let (_, all) = call(&gw, "GET", "/messages?all=true&limit=50", &Value::Null);
    assert!(
        all["messages"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["parent"] == id.as_str()
                && n["recipients"][0]["address"] == "alice@corp.example"
                && n["recipients"][0]["status"] == "delivered"),
        "the notice is tracked under the message: {all}"
    );

    // Nothing more: no notice for the quiet definition, no loop.
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(internal.messages().len(), 2, "the receipt and one notice");
    let metrics = Command::new(require("curl"))
        .args(["-s", &format!("http://{}/metrics", gw.admin)])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&metrics.stdout).contains("sealpost_notification_failed_total"),
        "the failure is counted"
    );
}
