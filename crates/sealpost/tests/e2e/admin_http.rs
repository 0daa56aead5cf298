//! The admin listener's health check and metrics, with a real HTTP client.

use std::process::Command;

use crate::helpers::*;

fn curl(url: &str) -> (u16, String) {
    let out = Command::new(require("curl"))
        .args(["-s", "-w", "\n%{http_code}", url])
        .output()
        .expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap();
    (code.parse().unwrap(), body.to_owned())
}

#[test]
fn health_metrics_and_json_404() {
    let sink = Sink::start(&[]);
    let gw = TestGateway::start(&format!("[relay]\nnext_hop = \"{}\"", sink.addr()));
    let (ok, out) = swaks(
        gw.smtp,
        &["--from", "a@corp.example", "--to", "b@ext.example"],
    );
    assert!(ok, "{out}");
    let mut c = Raw::connect(gw.smtp);
    c.cmd("EHLO x.example", "250");
    c.cmd("MAIL FROM:<a@corp.example>", "250");
    c.cmd("RCPT TO:<bad..address@ext.example>", "5");
    sink.wait_for(1);

    let (code, body) = curl(&format!("http://{}/health", gw.admin));
    assert_eq!(code, 200);
    let health: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(health["status"], "ok");
    assert_eq!(health["database"], "ok");
    assert!(health["queue"]["queued"].is_u64());

    let wanted = [
        "sealpost_smtp_messages_accepted_total",
        "sealpost_smtp_rejected_total{reason=\"bad_address\"}",
        "sealpost_delivery_delivered_total",
        "sealpost_smtp_accept_seconds",
    ];
    let metrics = wait_for(std::time::Duration::from_secs(10), "metrics", || {
        let (code, body) = curl(&format!("http://{}/metrics", gw.admin));
        (code == 200 && wanted.iter().all(|w| body.contains(w))).then_some(body)
    });
    assert!(metrics.contains("# TYPE sealpost_smtp_messages_accepted_total counter"));

    let (code, body) = curl(&format!("http://{}/no/such/thing", gw.admin));
    assert_eq!(code, 404);
    let err: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(err["code"], "not_found");
}
