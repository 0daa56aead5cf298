//! TLS-or-portal (issue 17, item 4): a definition with
//! `delivery = "tls_or_portal"` gives a secure recipient the message itself
//! when its next hop offers TLS that verifies, and the portal notification
//! otherwise; tracking says which.

use serde_json::{Value, json};

use crate::{
    helpers::*,
    policy_api::call,
    secure::send,
    tls_policy::{TestCa, tls_sink},
};

/// The tracking record (API) of `address` in message `id`, once its
/// secure recipient is notified.
fn secure_of(gw: &TestGateway, id: &str, address: &str) -> Value {
    wait_for(
        std::time::Duration::from_secs(20),
        &format!("{address} notified"),
        || {
            let (code, m) = call(gw, "GET", &format!("/messages/{id}"), &Value::Null);
            assert_eq!(code, 200, "{m}");
            let r = m["recipients"]
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["address"] == address)
                .cloned()
                .unwrap();
            (!r["secure"]["notified_at"].is_null()).then(|| r["secure"].clone())
        },
    )
}

#[test]
fn tls_or_portal_sends_the_message_over_verified_tls_and_the_notification_otherwise() {
    let port = free_port();
    let ca = TestCa::new();
    let verified = tls_sink(
        &format!("127.0.0.3:{port}"),
        &ca.leaf("mx", &["mx.partner.example"]),
    );
    let unverified = tls_sink(
        &format!("127.0.0.2:{port}"),
        &ca.self_signed("self", &["mx.selfsigned.example"]),
    );
    let plain = Sink::start_at(&format!("127.0.0.4:{port}"), &[]);
    let internal = Sink::start(&[]);
    let dns = DnsServer::start(
        &json!({
            "mx.partner.example": {"A": ["127.0.0.3"]},
            "mx.selfsigned.example": {"A": ["127.0.0.2"]},
            "mx.plain.example": {"A": ["127.0.0.4"]},
            "partner.example": {"MX": [[10, "mx.partner.example"]]},
            "selfsigned.example": {"MX": [[10, "mx.selfsigned.example"]]},
            "plain.example": {"MX": [[10, "mx.plain.example"]]},
            "portalonly.example": {"MX": [[10, "mx.partner.example"]]}
        }),
        &[],
    );
    let gw = TestGateway::start(&format!(
        r#"
        [domains]
        internal = ["corp.example"]
        [relay]
        internal_next_hop = "{}"
        dns_servers = ["127.0.0.1:{}"]
        mx_port = {port}
        tls_ca_file = "{}"
        [portal]
        url = "https://secure.corp.example"
        "#,
        internal.addr(),
        dns.port,
        ca.ca_file.display()
    ));
    let (code, d) = call(
        &gw,
        "POST",
        "/definitions",
        &json!({"name": "Partners", "delivery": "tls_or_portal"}),
    );
    assert_eq!(code, 201, "{d}");
    assert_eq!(d["delivery"], "tls_or_portal", "{d}");
    let tls_or_portal = d["id"].as_i64().unwrap();
    let (code, d) = call(&gw, "POST", "/definitions", &json!({"name": "Portal"}));
    assert_eq!(code, 201, "{d}");
    assert_eq!(d["delivery"], "portal", "the default: {d}");
    let portal = d["id"].as_i64().unwrap();
    for (domain, definition) in [
        ("partner.example", tls_or_portal),
        ("selfsigned.example", tls_or_portal),
        ("plain.example", tls_or_portal),
        ("portalonly.example", portal),
    ] {
        let (code, p) = call(
            &gw,
            "POST",
            "/policies",
            &json!({
                "action": "apply_definition", "definition_id": definition,
                "from": {"kind": "internal"},
                "to": {"kind": "domain", "value": domain},
            }),
        );
        assert_eq!(code, 201, "{p}");
    }
    let secret = "the confidential figures are 4711";
    let id = send(
        &gw,
        "alice@corp.example",
        &[
            "bob@partner.example",
            "carol@selfsigned.example",
            "dave@plain.example",
            "erin@portalonly.example",
        ],
        &["--header", "Subject: Q3", "--body", secret],
    )
    .to_string();

    // Verified TLS: the message itself, over TLS.
    let bob = secure_of(&gw, &id, "bob@partner.example");
    assert_eq!(bob["delivery"], "tls_or_portal", "{bob}");
    assert_eq!(bob["delivered_as"], "message", "{bob}");
    let reply = bob["delivered_reply"].as_str().unwrap();
    assert!(
        reply.starts_with("delivered over verified TLS to mx.partner.example[127.0.0.3:"),
        "{reply}"
    );
    let to_bob: Vec<Received> = verified
        .messages()
        .into_iter()
        .filter(|m| m.rcpt_tos.iter().any(|r| r == "bob@partner.example"))
        .collect();
    assert_eq!(to_bob.len(), 1, "the message alone, no notification too");
    assert!(to_bob[0].tls);
    assert!(to_bob[0].text().contains(secret), "{}", to_bob[0].text());
    assert!(to_bob[0].text().contains("Subject: Q3"));

    // A certificate that does not verify, and no TLS at all: only the
    // notification, never the content.
    for (address, sink) in [
        ("carol@selfsigned.example", &unverified),
        ("dave@plain.example", &plain),
    ] {
        let s = secure_of(&gw, &id, address);
        assert_eq!(s["delivered_as"], "notification", "{address}: {s}");
        let got: Vec<Received> = sink
            .messages()
            .into_iter()
            .filter(|m| m.rcpt_tos.iter().any(|r| r == address))
            .collect();
        assert_eq!(got.len(), 1, "{address}: one notification");
        let text = crate::secure::decoded_text(&got[0].content);
        assert!(
            !got[0].text().contains(secret),
            "{address}: {}",
            got[0].text()
        );
        assert!(!text.contains(secret), "{address}: {text}");
        assert!(
            text.contains("https://secure.corp.example/open/"),
            "{address}: {text}"
        );
    }

    // A portal definition: the notification, although TLS would verify.
    let erin = secure_of(&gw, &id, "erin@portalonly.example");
    assert_eq!(erin["delivery"], "portal", "{erin}");
    assert!(erin["delivered_as"].is_null(), "{erin}");
    let to_erin: Vec<Received> = verified
        .messages()
        .into_iter()
        .filter(|m| m.rcpt_tos.iter().any(|r| r == "erin@portalonly.example"))
        .collect();
    assert_eq!(to_erin.len(), 1);
    assert!(!to_erin[0].text().contains(secret));
}
