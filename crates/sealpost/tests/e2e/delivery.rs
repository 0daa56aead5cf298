//! The queue against failing peers: retries, bounces (RFC 3464 DSNs),
//! expiry, restarts, and storage failures.

use std::time::Duration;

use mail_parser::{MessageParser, MimeHeaders};
use sealpost_store::RecipientStatus;

use crate::helpers::*;

/// A gateway whose internal domain is `corp.example`, delivering external
/// mail to `next_hop` and internal mail (the senders' reports) to the sink
/// it returns; `extra` is more `[relay]` TOML, `\n`-separated.
fn gateway_with_senders(next_hop: &str, extra: &str) -> (Sink, TestGateway) {
    let senders = Sink::start(&[]);
    let gw = TestGateway::start(&format!(
        "[domains]\ninternal = [\"corp.example\"]\n[relay]\nnext_hop = \"{next_hop}\"\ninternal_next_hop = \"{}\"{extra}",
        senders.addr()
    ));
    (senders, gw)
}

/// The delivery-status part of a DSN, as text.
fn delivery_status(dsn: &Received) -> String {
    let text = dsn.text();
    let start = text
        .find("Content-Type: message/delivery-status")
        .expect("a delivery-status part");
    text[start..].to_owned()
}

#[test]
fn soft_failure_is_retried_and_delivered_once() {
    let port = free_port();
    let soft = PostfixSink::start(port, &["-r", "RCPT"]);
    let gw = TestGateway::start(&format!(
        "[relay]\nnext_hop = \"127.0.0.1:{port}\"\nretry_schedule = [\"1s\"]"
    ));
    let (ok, out) = swaks(
        gw.smtp,
        &["--from", "alice@corp.example", "--to", "bob@ext.example"],
    );
    assert!(ok, "{out}");
    let id = queue_id(&out);
    let deferred = gw.recipients_when(&id, "a deferral", |r| r.attempts >= 1);
    assert_eq!(deferred[0].status, RecipientStatus::Queued);
    assert!(
        deferred[0].last_reply.as_deref().unwrap().starts_with('4'),
        "{deferred:?}"
    );

    drop(soft);
    let sink = Sink::start_on(port, &[]);
    let done = gw.recipients_when(&id, "delivery after retry", |r| {
        r.status == RecipientStatus::Delivered
    });
    assert!(done[0].attempts >= 2);
    sink.wait_for(1);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(sink.messages().len(), 1, "delivered exactly once");
}

#[test]
fn hard_failure_bounces_with_an_rfc3464_report() {
    let port = free_port();
    let _hard = PostfixSink::start(port, &["-f", "RCPT"]);
    let (senders, gw) = gateway_with_senders(&format!("127.0.0.1:{port}"), "");
    let mut c = Raw::connect(gw.smtp);
    c.cmd("EHLO client.example", "250");
    c.cmd(
        "MAIL FROM:<alice@corp.example> RET=HDRS ENVID=env+2D42",
        "250",
    );
    c.cmd(
        "RCPT TO:<bob@ext.example> NOTIFY=FAILURE ORCPT=rfc822;Bob@ext.example",
        "250",
    );
    c.cmd("DATA", "354");
    c.send(b"From: alice@corp.example\r\nSubject: will bounce\r\n\r\nBODY-MARKER-7731\r\n.\r\n");
    let id = queue_id(&c.expect("250"));
    c.cmd("QUIT", "221");

    let failed = gw.recipients_when(&id, "a permanent failure", |r| {
        r.status == RecipientStatus::Failed
    });
    assert!(
        failed[0].last_reply.as_deref().unwrap().starts_with('5'),
        "{failed:?}"
    );
    let dsn = &senders.wait_for(1)[0];
    assert_eq!(dsn.mail_from, "<>", "reports come from the null sender");
    assert_eq!(dsn.rcpt_tos, vec!["alice@corp.example"]);
    let parsed = MessageParser::new()
        .parse(&dsn.content)
        .expect("the DSN parses as MIME");
    let ct = parsed.content_type().expect("content type");
    assert_eq!(ct.ctype(), "multipart");
    assert_eq!(ct.subtype(), Some("report"));
    assert_eq!(ct.attribute("report-type"), Some("delivery-status"));
    let status = delivery_status(dsn);
    for field in [
        "Reporting-MTA: dns; gw.test",
        "Original-Envelope-Id: env-42",
        "Final-Recipient: rfc822; bob@ext.example",
        "Original-Recipient: rfc822; Bob@ext.example",
        "Action: failed",
        "Status: 5.",
        "Diagnostic-Code: smtp; 5",
    ] {
        assert!(status.contains(field), "missing {field:?} in\n{status}");
    }
    let text = dsn.text();
    assert!(
        text.contains("Content-Type: text/rfc822-headers"),
        "RET=HDRS returns headers only"
    );
    assert!(text.contains("Subject: will bounce"));
    assert!(
        !text.contains("BODY-MARKER-7731"),
        "RET=HDRS must not return the body"
    );
}

#[test]
fn notify_never_and_the_null_sender_get_no_report() {
    let port = free_port();
    let _hard = PostfixSink::start(port, &["-f", "RCPT"]);
    let (senders, gw) = gateway_with_senders(&format!("127.0.0.1:{port}"), "");
    let mut c = Raw::connect(gw.smtp);
    c.cmd("EHLO client.example", "250");
    let quiet = queue_id(&c.transaction(
        "<alice@corp.example>",
        &["<bob@ext.example> NOTIFY=NEVER"],
        b"Subject: quiet\r\n\r\nx\r\n",
    ));
    let null = queue_id(&c.transaction(
        "<>",
        &["<bob@ext.example>"],
        b"Subject: a bounce that bounces\r\n\r\nx\r\n",
    ));
    c.cmd("QUIT", "221");
    gw.recipients_when(&quiet, "failure", |r| r.status == RecipientStatus::Failed);
    gw.recipients_when(&null, "failure", |r| r.status == RecipientStatus::Failed);
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        senders.messages().is_empty(),
        "no report was asked for or possible"
    );
}

#[test]
fn queue_lifetime_expiry_bounces_with_delayed_status() {
    let closed = free_port(); // nothing listens here
    let (senders, gw) = gateway_with_senders(
        &format!("127.0.0.1:{closed}"),
        "\nretry_schedule = [\"1s\"]\nqueue_lifetime = \"3s\"",
    );
    let (ok, out) = swaks(
        gw.smtp,
        &["--from", "alice@corp.example", "--to", "bob@ext.example"],
    );
    assert!(ok, "{out}");
    let id = queue_id(&out);
    let failed = gw.recipients_when(&id, "expiry", |r| r.status == RecipientStatus::Failed);
    assert!(
        failed[0].attempts >= 2,
        "retried before giving up: {failed:?}"
    );
    assert!(
        failed[0]
            .last_reply
            .as_deref()
            .unwrap()
            .contains("relay.queue_lifetime")
    );
    let status = delivery_status(&senders.wait_for(1)[0]);
    assert!(status.contains("Action: failed"), "{status}");
    assert!(
        status.contains("Status: 4.4."),
        "a timeout is reported with its 4.4.x status:\n{status}"
    );
}

#[test]
fn queue_survives_a_restart() {
    let port = free_port();
    let gw = TestGateway::start(&format!(
        "[relay]\nnext_hop = \"127.0.0.1:{port}\"\nretry_schedule = [\"1s\"]"
    ));
    let (ok, out) = swaks(
        gw.smtp,
        &[
            "--from",
            "alice@corp.example",
            "--to",
            "bob@ext.example",
            "--body",
            "survives",
        ],
    );
    assert!(ok, "{out}");
    let id = queue_id(&out);
    gw.recipients_when(&id, "a failed attempt", |r| r.attempts >= 1);
    let dir = gw.stop();

    let sink = Sink::start_on(port, &[]);
    let gw = TestGateway::start_in(
        dir,
        &format!("[relay]\nnext_hop = \"127.0.0.1:{port}\"\nretry_schedule = [\"1s\"]"),
    );
    gw.recipients_when(&id, "delivery after restart", |r| {
        r.status == RecipientStatus::Delivered
    });
    let m = &sink.wait_for(1)[0];
    assert!(m.text().contains("survives"));
}

#[test]
fn storage_failure_answers_451_and_loses_nothing_acknowledged() {
    // Hold deliveries back so we can inspect what was stored.
    let gw = TestGateway::start("[relay]\nnext_hop = \"127.0.0.1:1\"\nretry_schedule = [\"1h\"]");
    let spool = gw.data_dir().join("spool");
    let big = format!(
        "Subject: big\r\n\r\n{}",
        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\r\n".repeat(40_000)
    );
    let send = |c: &mut Raw, body: &str| {
        c.transaction(
            "<alice@corp.example>",
            &["<bob@ext.example>"],
            body.as_bytes(),
        )
    };
    let mut c = Raw::connect(gw.smtp);
    c.cmd("EHLO client.example", "250");
    let first = send(&mut c, &big);
    assert!(first.starts_with("250 2.0.0"), "{first}");

    // Large contents go to the spool directory: make it unusable.
    std::fs::rename(&spool, gw.data_dir().join("spool.away")).unwrap();
    std::fs::write(&spool, b"not a directory").unwrap();
    let failed = send(&mut c, &big);
    assert!(
        failed.starts_with("451 4.3.0"),
        "a storage failure is a temporary failure, never 250: {failed}"
    );
    let small = send(&mut c, "Subject: small\r\n\r\nstill fine\r\n");
    assert!(
        small.starts_with("250 2.0.0"),
        "the session and the database carry on: {small}"
    );
    c.cmd("QUIT", "221");

    // What was acknowledged is stored and readable.
    std::fs::remove_file(&spool).unwrap();
    std::fs::rename(gw.data_dir().join("spool.away"), &spool).unwrap();
    let first_id = queue_id(&first);
    let content = gw.block_on(gw.store.load_body(&first_id)).unwrap();
    assert!(content.len() > 2_000_000);
}

#[test]
fn notify_success_through_a_hop_without_dsn_gets_a_relayed_report() {
    let external = Sink::start(&[]); // aiosmtpd: no DSN extension
    let (senders, gw) = gateway_with_senders(&external.addr(), "");
    let mut c = Raw::connect(gw.smtp);
    c.cmd("EHLO client.example", "250");
    c.cmd("MAIL FROM:<alice@corp.example> ENVID=track-1", "250");
    c.cmd("RCPT TO:<bob@ext.example> NOTIFY=SUCCESS,FAILURE", "250");
    c.cmd("RCPT TO:<carol@ext.example>", "250");
    c.cmd("DATA", "354");
    c.send(b"Subject: tell me when it's out\r\n\r\nSECRET-BODY-55\r\n.\r\n");
    c.expect("250");
    c.cmd("QUIT", "221");
    external.wait_for(1);
    let report = &senders.wait_for(1)[0];
    let status = delivery_status(report);
    assert!(
        status.contains("Final-Recipient: rfc822; bob@ext.example"),
        "{status}"
    );
    assert!(
        status.contains("Action: relayed") && status.contains("Status: 2.0.0"),
        "{status}"
    );
    assert!(
        !status.contains("carol"),
        "carol asked for nothing:\n{status}"
    );
    assert!(
        !report.text().contains("SECRET-BODY-55"),
        "a success report carries headers only"
    );
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(senders.messages().len(), 1);
}

#[test]
fn a_message_over_the_next_hops_size_limit_fails_without_being_sent() {
    let small = Sink::start(&["--max-size", "2000"]);
    let gw = TestGateway::start(&format!("[relay]\nnext_hop = \"{}\"", small.addr()));
    let body = vec!["x".repeat(70); 60].join("\n");
    let (ok, out) = swaks(
        gw.smtp,
        &[
            "--from",
            "alice@corp.example",
            "--to",
            "bob@ext.example",
            "--body",
            &body,
        ],
    );
    assert!(ok, "{out}");
    let failed = gw.recipients_when(&queue_id(&out), "a permanent failure", |r| {
        r.status == RecipientStatus::Failed
    });
    assert!(
        failed[0]
            .last_reply
            .as_deref()
            .unwrap()
            .starts_with("552 5.3.4"),
        "{failed:?}"
    );
    assert!(small.messages().is_empty());
}
