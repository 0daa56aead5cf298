//! Delivery by MX lookup against a real (loopback) DNS server: preference
//! order with fallback, implicit MX, null MX, NXDOMAIN, DNS failures.

use sealpost_store::RecipientStatus;
use serde_json::json;

use crate::helpers::*;

#[test]
fn mx_resolution_drives_delivery_and_bounces() {
    let sink = Sink::start(&[]);
    let senders = Sink::start(&[]);
    let dns = DnsServer::start(
        &json!({
            // mx1 is preferred but nothing listens on 127.0.0.3: fall back to mx2.
            "ext.example": {"MX": [[10, "mx1.ext.example"], [20, "mx2.ext.example"]]},
            "mx1.ext.example": {"A": ["127.0.0.3"]},
            "mx2.ext.example": {"A": ["127.0.0.1"]},
            // No MX: the domain is its own mail host (RFC 5321 §5.1).
            "implicit.example": {"A": ["127.0.0.1"]},
            // RFC 7505: takes no mail.
            "nullmx.example": {"MX": [[0, "."]]},
            // MX host that does not resolve: a DNS problem that may be fixed.
            "dangling.example": {"MX": [[10, "nowhere.dangling.example"]]},
            "dangling.example.sub": {"A": ["127.0.0.1"]},
            // We (gw.test) are the best MX: delivering would loop back.
            "loop.example": {"MX": [[10, "gw.test"], [20, "mx2.ext.example"]]},
            "gw.test": {"A": ["127.0.0.1"]}
        }),
        &["--servfail", "^broken\\.example$"],
    );
    let gw = TestGateway::start(&format!(
        "[domains]\ninternal = [\"corp.example\"]\n[relay]\ndns_servers = [\"127.0.0.1:{}\"]\nmx_port = {}\ninternal_next_hop = \"{}\"\nretry_schedule = [\"1h\"]",
        dns.port,
        sink.port,
        senders.addr()
    ));
    let mut c = Raw::connect(gw.smtp);
    c.cmd("EHLO client.example", "250");
    c.cmd("MAIL FROM:<alice@corp.example>", "250");
    for rcpt in [
        "bob@ext.example",
        "carol@implicit.example",
        "dave@nullmx.example",
        "erin@nxdomain.example",
        "frank@broken.example",
        "grace@dangling.example",
        "heidi@loop.example",
    ] {
        c.cmd(&format!("RCPT TO:<{rcpt}>"), "250");
    }
    c.cmd("DATA", "354");
    c.send(b"Subject: by MX\r\n\r\nhello\r\n.\r\n");
    let id = queue_id(&c.expect("250"));
    c.cmd("QUIT", "221");

    let rcpts = gw.recipients_when(&id, "every recipient attempted", |r| r.attempts >= 1);
    let by = |addr: &str| rcpts.iter().find(|r| r.address == addr).unwrap().clone();
    assert_eq!(
        by("bob@ext.example").status,
        RecipientStatus::Delivered,
        "{:?}",
        by("bob@ext.example")
    );
    assert_eq!(
        by("carol@implicit.example").status,
        RecipientStatus::Delivered,
        "{:?}",
        by("carol@implicit.example")
    );
    let dave = by("dave@nullmx.example");
    assert_eq!(dave.status, RecipientStatus::Failed);
    assert!(
        dave.last_reply
            .as_deref()
            .unwrap()
            .starts_with("556 5.1.10"),
        "{dave:?}"
    );
    let heidi = by("heidi@loop.example");
    assert_eq!(heidi.status, RecipientStatus::Failed);
    assert!(
        heidi
            .last_reply
            .as_deref()
            .unwrap()
            .starts_with("554 5.4.6"),
        "{heidi:?}"
    );
    let erin = by("erin@nxdomain.example");
    assert_eq!(erin.status, RecipientStatus::Failed);
    assert!(
        erin.last_reply.as_deref().unwrap().starts_with("550 5.1.2"),
        "{erin:?}"
    );
    for deferred in ["frank@broken.example", "grace@dangling.example"] {
        let r = by(deferred);
        assert_eq!(
            r.status,
            RecipientStatus::Queued,
            "DNS trouble is temporary: {r:?}"
        );
        assert!(
            r.last_reply.as_deref().unwrap().starts_with("451 4.4.3"),
            "{r:?}"
        );
    }

    let delivered = sink.wait_for(2);
    let mut got: Vec<String> = delivered.iter().flat_map(|m| m.rcpt_tos.clone()).collect();
    got.sort();
    assert_eq!(got, vec!["bob@ext.example", "carol@implicit.example"]);
    let reports = senders.wait_for(1);
    let all: String = reports.iter().map(Received::text).collect();
    assert!(
        all.contains("Final-Recipient: rfc822; dave@nullmx.example")
            && all.contains("Status: 5.1.10"),
        "{all}"
    );
}
