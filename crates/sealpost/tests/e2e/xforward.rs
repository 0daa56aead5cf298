//! XFORWARD: trusted only from smtp.xforward_hosts; its ADDR becomes the
//! message's client address.

use crate::helpers::*;

#[test]
fn trusted_host_forwards_the_original_client() {
    let sink = Sink::start(&[]);
    let gw = TestGateway::start(&format!(
        "[smtp]\nxforward_hosts = [\"127.0.0.1/32\"]\n[relay]\nnext_hop = \"{}\"",
        sink.addr()
    ));
    let mut c = Raw::connect(gw.smtp);
    let ehlo = c.cmd("EHLO postfix.corp.example", "250");
    assert!(ehlo.contains("XFORWARD NAME ADDR PROTO HELO"), "{ehlo}");
    c.cmd(
        "XFORWARD NAME=ws12.corp.example ADDR=192.0.2.7 PROTO=ESMTP",
        "250",
    );
    c.cmd("XFORWARD HELO=ws12.corp.example", "250");
    c.cmd("XFORWARD ADDR=not-an-ip", "501 5.5.4");
    c.cmd("MAIL FROM:<alice@corp.example>", "250");
    c.cmd("XFORWARD ADDR=192.0.2.8", "503 5.5.1");
    c.cmd("RCPT TO:<bob@ext.example>", "250");
    c.cmd("DATA", "354");
    c.send(b"Subject: filtered\r\n\r\nx\r\n.\r\n");
    let id = queue_id(&c.expect("250"));
    // The attributes end with the transaction.
    let second = queue_id(&c.transaction(
        "<alice@corp.example>",
        &["<bob@ext.example>"],
        b"Subject: direct\r\n\r\nx\r\n",
    ));
    c.cmd("QUIT", "221");
    let record = gw.block_on(gw.store.message(&id)).unwrap();
    assert_eq!(record.client_ip, "192.0.2.7");
    let record = gw.block_on(gw.store.message(&second)).unwrap();
    assert_eq!(record.client_ip, "127.0.0.1");
    sink.wait_for(2);
}

#[test]
fn untrusted_hosts_cannot_forward() {
    let gw = TestGateway::start("[smtp]\nxforward_hosts = [\"127.0.0.1/32\"]");
    let mut c = Raw::connect_from(gw.smtp, Some("127.0.0.2"));
    let ehlo = c.cmd("EHLO sneaky.example", "250");
    assert!(!ehlo.contains("XFORWARD"), "{ehlo}");
    c.cmd("XFORWARD ADDR=10.0.0.1", "550 5.7.0");
}

#[test]
fn the_original_client_is_forwarded_to_a_next_hop_that_offers_xforward() {
    // Two gateways in a row: `second` trusts XFORWARD from loopback (like
    // Postfix's re-injection service), `first` is where the client connects.
    let sink = Sink::start(&[]);
    let second = TestGateway::start(&format!(
        "[smtp]\nxforward_hosts = [\"127.0.0.1/32\"]\n[relay]\nnext_hop = \"{}\"",
        sink.addr()
    ));
    let first = TestGateway::start(&format!("[relay]\nnext_hop = \"{}\"", second.smtp));
    let (ok, out) = swaks(
        first.smtp,
        &[
            "--local-interface",
            "127.0.0.2",
            "--ehlo",
            "ws12.corp.example",
            "--from",
            "alice@corp.example",
            "--to",
            "bob@ext.example",
        ],
    );
    assert!(ok, "{out}");
    let m = &sink.wait_for(1)[0];
    let second_id = {
        let text = m.text();
        // The newest Received header (first line) is the second gateway's.
        let at = text.find(" id ").unwrap();
        sealpost_store::QueueId::parse(&text[at + 4..at + 20]).unwrap()
    };
    let record = second.block_on(second.store.message(&second_id)).unwrap();
    assert_eq!(
        record.client_ip, "127.0.0.2",
        "the first gateway forwarded its client's address"
    );
}
