//! Relaying: real clients in, real sinks out, contents intact, relay
//! control by source address.

use sealpost_store::RecipientStatus;

use crate::helpers::*;

/// `smtp.busy_poll`: a lone client's session makes the SMTP thread poll
/// after its replies on a one-worker runtime; `0`, or a runtime with more
/// workers, turns that off.
#[test]
fn a_lone_client_is_busy_polled_on_one_worker_unless_turned_off() {
    let sink = Sink::start(&[]);
    let cases = [("", 1, true), ("busy_poll = 0", 1, false), ("", 2, false)];
    for (n, (smtp, workers, polls)) in cases.into_iter().enumerate() {
        let gw = TestGateway::start_with_workers(
            tempfile::tempdir().unwrap(),
            &format!("[smtp]\n{smtp}\n[relay]\nnext_hop = \"{}\"", sink.addr()),
            workers,
        );
        let (ok, out) = swaks(
            gw.smtp,
            &["--from", "alice@corp.example", "--to", "bob@ext.example"],
        );
        assert!(ok, "{out}");
        let rounds = gw.busy_poll.rounds();
        assert_eq!(
            rounds > 0,
            polls,
            "[smtp] {smtp:?}, {workers} worker(s): {rounds} rounds polled"
        );
        assert_eq!(sink.wait_for(n + 1).len(), n + 1);
        gw.stop();
    }
}

#[test]
fn swaks_message_is_relayed_intact_and_tracked() {
    let sink = Sink::start(&[]);
    let gw = TestGateway::start(&format!("[relay]\nnext_hop = \"{}\"", sink.addr()));
    let (ok, out) = swaks(
        gw.smtp,
        &[
            "--from",
            "alice@corp.example",
            "--to",
            "bob@ext.example",
            "--header",
            "Subject: quarterly numbers",
            "--body",
            "first line\n.a line that starts with a dot\nlast line",
        ],
    );
    assert!(ok, "{out}");
    let id = queue_id(&out);
    let received = sink.wait_for(1);
    assert_eq!(received.len(), 1);
    let m = &received[0];
    assert_eq!(m.mail_from, "alice@corp.example");
    assert_eq!(m.rcpt_tos, vec!["bob@ext.example"]);
    let text = m.text();
    assert!(
        text.starts_with("Received: from "),
        "our trace header comes first:\n{text}"
    );
    assert!(
        text.contains(&format!("by gw.test (sealpost) with ESMTP id {id}")),
        "{text}"
    );
    assert!(text.contains("Subject: quarterly numbers"));
    assert_eq!(
        String::from_utf8_lossy(m.body())
            .replace("\r\n", "\n")
            .trim_end(),
        "first line\n.a line that starts with a dot\nlast line"
    );
    let rcpts = gw.recipients_when(&id, "delivery recorded", |r| {
        r.status == RecipientStatus::Delivered
    });
    assert_eq!(rcpts[0].route, "relay");
    assert_eq!(rcpts[0].policy, None, "no policy decided it");
    assert!(rcpts[0].last_reply.as_deref().unwrap().starts_with("250"));
    let record = gw.block_on(gw.store.message(&id)).unwrap();
    assert!(
        !record.has_content,
        "content is purged once every recipient is final"
    );
}

#[test]
fn internal_and_external_recipients_take_their_own_next_hops() {
    let external = Sink::start(&[]);
    let internal = Sink::start(&[]);
    let gw = TestGateway::start(&format!(
        "[domains]\ninternal = [\"corp.example\"]\n[relay]\nnext_hop = \"{}\"\ninternal_next_hop = \"{}\"",
        external.addr(),
        internal.addr()
    ));
    let (ok, out) = swaks(
        gw.smtp,
        &[
            "--from",
            "alice@corp.example",
            "--to",
            "x@ext.example,y@ext.example,carol@corp.example",
        ],
    );
    assert!(ok, "{out}");
    let ext = external.wait_for(1);
    let int = internal.wait_for(1);
    let mut ext_rcpts = ext[0].rcpt_tos.clone();
    ext_rcpts.sort();
    assert_eq!(
        ext_rcpts,
        vec!["x@ext.example", "y@ext.example"],
        "one transaction for both"
    );
    assert_eq!(int[0].rcpt_tos, vec!["carol@corp.example"]);
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert_eq!(external.messages().len(), 1, "each copy exactly once");
    assert_eq!(internal.messages().len(), 1);
}

#[test]
fn no_open_relay_outside_relay_networks() {
    let external = Sink::start(&[]);
    let internal = Sink::start(&[]);
    let gw = TestGateway::start(&format!(
        "[smtp]\nrelay_networks = [\"127.0.0.1/32\"]\n[domains]\ninternal = [\"corp.example\"]\n[relay]\nnext_hop = \"{}\"\ninternal_next_hop = \"{}\"",
        external.addr(),
        internal.addr()
    ));
    // swaks from 127.0.0.2, outside relay_networks: refused.
    let (ok, out) = swaks(
        gw.smtp,
        &[
            "--local-interface",
            "127.0.0.2",
            "--from",
            "spam@elsewhere.example",
            "--to",
            "victim@ext.example",
        ],
    );
    assert!(!ok);
    assert!(out.contains("550 5.7.1"), "{out}");

    // The same client may still send to an internal domain, and an
    // external recipient in the same transaction is refused alone.
    let mut c = Raw::connect_from(gw.smtp, Some("127.0.0.2"));
    c.cmd("EHLO outside.example", "250");
    c.cmd("MAIL FROM:<someone@elsewhere.example>", "250 2.1.0");
    c.cmd("RCPT TO:<victim@ext.example>", "550 5.7.1");
    c.cmd("RCPT TO:<carol@corp.example>", "250 2.1.5");
    c.cmd("DATA", "354");
    c.send(b"Subject: inbound\r\n\r\nhello\r\n.\r\n");
    c.expect("250 2.0.0");
    c.cmd("QUIT", "221");
    let int = internal.wait_for(1);
    assert_eq!(int[0].rcpt_tos, vec!["carol@corp.example"]);
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert!(
        external.messages().is_empty(),
        "nothing was relayed outside"
    );
}

#[test]
fn smtputf8_and_8bit_from_smtplib() {
    let sink = Sink::start(&[]);
    let gw = TestGateway::start(&format!("[relay]\nnext_hop = \"{}\"", sink.addr()));
    let script = format!(
        r#"
import smtplib
msg = "From: jörg@bücher.example\r\nTo: ünï@exämple.test\r\nSubject: grüße\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nZürich — 東京\r\n".encode()
with smtplib.SMTP("127.0.0.1", {port}) as s:
    s.ehlo("client.example")
    refused = s.sendmail("jörg@bücher.example", ["ünï@exämple.test"], msg, mail_options=["SMTPUTF8", "BODY=8BITMIME"])
    assert not refused, refused
print("sent")
"#,
        port = gw.smtp.port()
    );
    let (ok, out) = python(&script);
    assert!(ok, "{out}");
    let m = &sink.wait_for(1)[0];
    assert_eq!(m.mail_from, "jörg@bücher.example");
    assert_eq!(m.rcpt_tos, vec!["ünï@exämple.test"]);
    assert!(
        m.mail_options.iter().any(|o| o == "SMTPUTF8"),
        "{:?}",
        m.mail_options
    );
    assert!(
        m.mail_options.iter().any(|o| o == "BODY=8BITMIME"),
        "{:?}",
        m.mail_options
    );
    assert!(m.text().contains("with UTF8SMTP id"), "{}", m.text());
    assert_eq!(String::from_utf8_lossy(m.body()), "Zürich — 東京\r\n");
}

#[test]
fn null_sender_and_pipelining() {
    let sink = Sink::start(&[]);
    let gw = TestGateway::start(&format!("[relay]\nnext_hop = \"{}\"", sink.addr()));
    let mut c = Raw::connect(gw.smtp);
    // The whole envelope in one write, as a PIPELINING client may.
    c.send(b"EHLO client.example\r\nMAIL FROM:<>\r\nRCPT TO:<a@ext.example>\r\nRCPT TO:<b@ext.example>\r\nDATA\r\n");
    let ehlo = c.expect("250-gw.test");
    assert!(
        ehlo.contains("PIPELINING") && ehlo.contains("8BITMIME") && ehlo.contains("SMTPUTF8"),
        "{ehlo}"
    );
    assert!(
        ehlo.contains("ENHANCEDSTATUSCODES") && ehlo.contains("STARTTLS") && ehlo.contains("DSN"),
        "{ehlo}"
    );
    assert!(
        !ehlo.contains("XFORWARD"),
        "XFORWARD is offered only to smtp.xforward_hosts"
    );
    c.expect("250 2.1.0");
    c.expect("250 2.1.5");
    c.expect("250 2.1.5");
    c.expect("354");
    c.send(b"Subject: bounce-like\r\n\r\nbody\r\n.\r\nRSET\r\nNOOP\r\nQUIT\r\n");
    c.expect("250 2.0.0 Ok: queued as");
    c.expect("250");
    c.expect("250");
    c.expect("221");
    let m = &sink.wait_for(1)[0];
    assert_eq!(m.mail_from, "<>", "the null sender is relayed as <>");
    assert_eq!(m.rcpt_tos.len(), 2);
}

#[test]
fn outbound_connections_are_reused_between_batches() {
    let sink = Sink::start(&[]);
    let gw = TestGateway::start(&format!("[relay]\nnext_hop = \"{}\"", sink.addr()));
    for n in 1..=3 {
        let (ok, out) = swaks(
            gw.smtp,
            &["--from", "alice@corp.example", "--to", "bob@ext.example"],
        );
        assert!(ok, "{out}");
        sink.wait_for(n);
    }
    let peers: Vec<String> = sink.messages().into_iter().map(|m| m.peer).collect();
    assert!(!peers[0].is_empty());
    assert!(
        peers.iter().all(|p| p == &peers[0]),
        "one connection carried all three batches: {peers:?}"
    );
}
