//! The RFC 5321 limits and error replies, with their enhanced codes.

use std::time::Duration;

use crate::helpers::*;

fn gateway(extra: &str) -> (Sink, TestGateway) {
    let sink = Sink::start(&[]);
    let gw = TestGateway::start(&format!("[relay]\nnext_hop = \"{}\"\n{extra}", sink.addr()));
    (sink, gw)
}

#[test]
fn command_order_is_enforced() {
    let (_sink, gw) = gateway("");
    let mut c = Raw::connect(gw.smtp);
    c.cmd("MAIL FROM:<a@corp.example>", "503 5.5.1");
    c.cmd("EHLO client.example", "250");
    c.cmd("RCPT TO:<b@ext.example>", "503 5.5.1");
    c.cmd("DATA", "503 5.5.1");
    c.cmd("MAIL FROM:<a@corp.example>", "250 2.1.0");
    c.cmd("MAIL FROM:<a@corp.example>", "503 5.5.1");
    // DATA before any RCPT is out of order; after only refused ones there
    // is nobody to deliver to.
    c.cmd("DATA", "503 5.5.1");
    c.cmd("RCPT TO:<a..b@ext.example>", "5");
    c.cmd("DATA", "554 5.5.1");
    c.cmd("RSET", "250 2.0.0");
    c.cmd("FROBNICATE", "500 5.5.1");
    c.cmd("VRFY bob", "252 2.5.0");
    c.cmd("BDAT 10 LAST", "502 5.5.1");
    c.cmd("NOOP", "250 2.0.0");
    c.cmd("QUIT", "221 2.0.0");
}

#[test]
fn bad_addresses_are_refused_with_the_right_codes() {
    let (_sink, gw) = gateway("");
    let mut c = Raw::connect(gw.smtp);
    c.cmd("EHLO client.example", "250");
    // Syntax errors the command parser catches get 501, addresses that
    // parse but are not valid mailboxes get 553; both with the X.1.7
    // (sender) or X.1.3 (recipient) enhanced code.
    let bad = |c: &mut Raw, line: &str, status: &str| {
        let r = c.cmd(line, "5");
        assert!(
            (r.starts_with("501 ") || r.starts_with("553 ")) && r[4..].starts_with(status),
            "{line}: {r}"
        );
    };
    bad(&mut c, "MAIL FROM:<not-an-address>", "5.1.7");
    bad(&mut c, "MAIL FROM:<a@-bad-.example>", "5.1.7");
    c.cmd("MAIL FROM:no-brackets@corp.example", "501");
    c.cmd("MAIL FROM:<jörg@corp.example>", "553 5.6.7");
    c.cmd("MAIL FROM:<a@corp.example>", "250");
    bad(&mut c, "RCPT TO:<a..b@ext.example>", "5.1.3");
    bad(&mut c, "RCPT TO:<@ext.example>", "5.");
    bad(&mut c, "RCPT TO:<user@bad_domain!>", "5.1.3");
    bad(&mut c, "RCPT TO:<x@[300.1.2.3]>", "5.1.3");
    c.cmd("RCPT TO:<ünï@ext.example>", "553 5.6.7");
    c.cmd("RCPT TO:<ok@ext.example> NOTIFY=SOMETIMES", "501 5.5.4");
    c.cmd("RCPT TO:<ok@ext.example>", "250 2.1.5");
    c.cmd("QUIT", "221");
}

#[test]
fn parameters_we_never_offered_get_555() {
    let (sink, gw) = gateway("");
    let mut c = Raw::connect(gw.smtp);
    c.cmd("EHLO client.example", "250");
    // Accepting one of these and dropping it would break its promise: a
    // REQUIRETLS message must never be relayed in clear (RFC 8689).
    for line in [
        "MAIL FROM:<a@corp.example> REQUIRETLS",
        "MAIL FROM:<a@corp.example> BODY=BINARYMIME",
        "MAIL FROM:<a@corp.example> AUTH=<>",
        "MAIL FROM:<a@corp.example> HOLDFOR=600",
        "MAIL FROM:<a@corp.example> MT-PRIORITY=3",
    ] {
        c.cmd(line, "555 5.5.4");
    }
    c.cmd(
        "MAIL FROM:<a@corp.example> BODY=7BIT SIZE=100 RET=HDRS ENVID=x1",
        "250 2.1.0",
    );
    c.cmd(
        "RCPT TO:<b@ext.example> RRVS=2030-01-01T00:00:00Z",
        "555 5.5.4",
    );
    // NEVER stands alone (RFC 3461 §4.1).
    c.cmd("RCPT TO:<b@ext.example> NOTIFY=NEVER,SUCCESS", "501 5.5.4");
    c.cmd("RCPT TO:<b@ext.example> NOTIFY=NEVER", "250 2.1.5");
    c.cmd("DATA", "354");
    c.send(b"Subject: plain\r\n\r\nok\r\n.\r\n");
    c.expect("250 2.0.0");
    let got = sink.wait_for(1);
    assert_eq!(got[0].rcpt_tos, ["b@ext.example"]);
}

#[test]
fn postmaster_without_a_domain() {
    let sink = Sink::start(&[]);
    let gw = TestGateway::start(&format!(
        "[relay]\nnext_hop = \"{0}\"\ninternal_next_hop = \"{0}\"\n\
         [domains]\ninternal = [\"*.corp.example\", \"corp.example\"]\n",
        sink.addr()
    ));
    let mut c = Raw::connect(gw.smtp);
    c.cmd("EHLO client.example", "250");
    // A reverse path is a mailbox or null: a bare postmaster is neither,
    // and must not pass for <> (whose DSNs are never sent).
    c.cmd("MAIL FROM:<postmaster>", "553 5.1.7");
    // RFC 5321 §4.5.1: a bare postmaster recipient must be accepted; it is
    // the postmaster of the first internal domain (`*.corp.example` covers
    // corp.example itself).
    let reply = c.transaction(
        "<a@ext.example>",
        &["<Postmaster>"],
        b"Subject: hello postmaster\r\n\r\nhi\r\n",
    );
    assert!(reply.starts_with("250 2.0.0"), "{reply}");
    assert_eq!(sink.wait_for(1)[0].rcpt_tos, ["postmaster@corp.example"]);

    // With no internal domain there is nobody to give it to.
    let (_sink, bare) = gateway("");
    let mut c = Raw::connect(bare.smtp);
    c.cmd("EHLO client.example", "250");
    c.cmd("MAIL FROM:<a@corp.example>", "250");
    c.cmd("RCPT TO:<postmaster>", "550 5.1.1");
}

#[test]
fn a_client_that_never_reads_its_replies_is_dropped() {
    let (_sink, gw) = gateway("[smtp]\nidle_timeout = \"1s\"");
    let mut c = Raw::connect(gw.smtp);
    c.cmd("EHLO client.example", "250");
    // NOOPs, never reading a reply: once both sides' buffers are full the
    // gateway's write cannot finish, and after the idle timeout it gives
    // up and closes, which fails our next write.
    let chunk = "NOOP\r\n".repeat(10_000);
    // Bounded: a gateway that never gives up makes this write time out,
    // which is a failure below, not a pass.
    c.stream_mut()
        .set_write_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let started = std::time::Instant::now();
    let mut failed = None;
    for _ in 0..2_000 {
        if let Err(e) = std::io::Write::write_all(c.stream_mut(), chunk.as_bytes()) {
            failed = Some(e);
            break;
        }
    }
    let e = failed.expect("the gateway kept a connection whose client never reads");
    assert!(
        !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
        "our write timed out: the gateway never closed ({e})"
    );
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "closed only after {:?} ({e})",
        started.elapsed()
    );
}

#[test]
fn bare_lf_and_over_long_lines_count_as_errors() {
    let (_sink, gw) = gateway("");
    let mut c = Raw::connect(gw.smtp);
    for _ in 0..10 {
        c.send(b"NOOP\n");
        c.expect("500 5.5.2");
    }
    for _ in 0..9 {
        c.cmd(&format!("NOOP {}", "x".repeat(5000)), "500 5.5.2");
    }
    c.send(b"\n");
    c.expect("500 5.5.2");
    c.expect("421 4.7.0");
    assert!(c.closed());
}

#[test]
fn command_line_limit_and_bare_lf_in_commands() {
    let (_sink, gw) = gateway("");
    let mut c = Raw::connect(gw.smtp);
    c.cmd("EHLO client.example", "250");
    c.cmd(&format!("NOOP {}", "x".repeat(600)), "500 5.5.2");
    c.cmd(&format!("NOOP {}", "x".repeat(5000)), "500 5.5.2");
    c.send(b"NOOP\n");
    c.expect("500 5.5.2");
    // MAIL may carry long DSN parameters (RFC 3461 allows 100 more octets).
    let env_id = "e".repeat(100);
    c.cmd(
        &format!(
            "MAIL FROM:<{}@corp.example> ENVID={env_id} RET=FULL",
            "a".repeat(60)
        ),
        "250",
    );
    c.cmd("NOOP", "250");
}

#[test]
fn too_many_recipients_gets_452_and_the_rest_is_delivered() {
    let (sink, gw) = gateway("[smtp]\nmax_recipients = 3");
    let mut c = Raw::connect(gw.smtp);
    c.cmd("EHLO client.example", "250");
    c.cmd("MAIL FROM:<a@corp.example>", "250");
    for i in 0..3 {
        c.cmd(&format!("RCPT TO:<r{i}@ext.example>"), "250");
    }
    c.cmd("RCPT TO:<r3@ext.example>", "452 4.5.3");
    c.cmd("DATA", "354");
    c.send(b"Subject: three\r\n\r\nx\r\n.\r\n");
    c.expect("250 2.0.0");
    assert_eq!(sink.wait_for(1)[0].rcpt_tos.len(), 3);
}

#[test]
fn size_limits_get_552() {
    let (sink, gw) = gateway("[smtp]\nmax_message_size = \"10KiB\"");
    let mut c = Raw::connect(gw.smtp);
    let ehlo = c.cmd("EHLO client.example", "250");
    assert!(ehlo.contains("SIZE 10240"), "{ehlo}");
    c.cmd("MAIL FROM:<a@corp.example> SIZE=20000", "552 5.3.4");
    c.cmd("MAIL FROM:<a@corp.example> SIZE=5000", "250");
    c.cmd("RCPT TO:<b@ext.example>", "250");
    c.cmd("DATA", "354");
    for _ in 0..200 {
        c.send(&[b'y'; 98]);
        c.send(b"\r\n");
    }
    c.send(b".\r\n");
    c.expect("552 5.3.4");
    // The session goes on and a message within limits passes.
    let reply = c.transaction(
        "<a@corp.example>",
        &["<b@ext.example>"],
        b"Subject: small\r\n\r\nfits\r\n",
    );
    assert!(reply.starts_with("250 2.0.0"), "{reply}");
    let got = sink.wait_for(1);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        sink.messages().len(),
        1,
        "the oversized message was not relayed: {got:?}"
    );
}

#[test]
fn text_line_over_1000_octets_is_refused_after_the_data() {
    let (sink, gw) = gateway("");
    let mut c = Raw::connect(gw.smtp);
    c.cmd("EHLO client.example", "250");
    c.cmd("MAIL FROM:<a@corp.example>", "250");
    c.cmd("RCPT TO:<b@ext.example>", "250");
    c.cmd("DATA", "354");
    c.send(b"Subject: long\r\n\r\n");
    c.send(&[b'z'; 1200]);
    c.send(b"\r\nmore\r\n.\r\n");
    c.expect("500 5.5.2");
    c.cmd("NOOP", "250");
    std::thread::sleep(Duration::from_millis(500));
    assert!(sink.messages().is_empty());
}

#[test]
fn idle_clients_get_421() {
    let (_sink, gw) = gateway("[smtp]\nidle_timeout = \"1s\"");
    let mut c = Raw::connect(gw.smtp);
    c.cmd("EHLO client.example", "250");
    c.expect("421 4.4.2");
    assert!(c.closed());
}

#[test]
fn too_many_errors_close_the_session() {
    let (_sink, gw) = gateway("");
    let mut c = Raw::connect(gw.smtp);
    for _ in 0..19 {
        c.cmd("BOGUS", "500");
    }
    c.send(b"BOGUS\r\n");
    c.expect("500");
    c.expect("421 4.7.0");
    assert!(c.closed());
}

#[test]
fn mail_loops_are_refused() {
    let (sink, gw) = gateway("");
    let mut c = Raw::connect(gw.smtp);
    c.cmd("EHLO client.example", "250");
    let mut data = String::new();
    for i in 0..60 {
        data.push_str(&format!(
            "Received: from hop{i}.example by hop{}.example; Fri, 27 Nov 2026 00:00:00 +0000\r\n",
            i + 1
        ));
    }
    data.push_str("Subject: looping\r\n\r\nround and round\r\n");
    let reply = c.transaction("<a@corp.example>", &["<b@ext.example>"], data.as_bytes());
    assert!(reply.starts_with("554 5.4.6"), "{reply}");
    std::thread::sleep(Duration::from_millis(300));
    assert!(sink.messages().is_empty());
}

#[test]
fn shutdown_says_421_to_waiting_sessions() {
    let (_sink, gw) = gateway("");
    let mut c = Raw::connect(gw.smtp);
    c.cmd("EHLO client.example", "250");
    c.cmd("MAIL FROM:<a@corp.example>", "250");
    let stopper = std::thread::spawn(move || gw.stop());
    c.expect("421 4.3.2");
    assert!(c.closed());
    stopper.join().unwrap();
}
