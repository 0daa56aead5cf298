//! The recipients' portal on its own listener (issue 15): served over plain
//! HTTP on loopback or over TLS with the operator's certificate, every
//! response with the portal's security headers, and notification links
//! pointing at it.

use std::process::Command;

use crate::helpers::*;

/// `curl -i` of `url`: (status, headers lower-cased, body).
fn fetch(url: &str, extra: &[&str]) -> (u16, String, String) {
    let out = Command::new(require("curl"))
        .args(["-s", "-i", "--max-time", "10"])
        .args(extra)
        .arg(url)
        .output()
        .expect("curl runs");
    assert!(out.status.success(), "curl {url}: {out:?}");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, head.to_ascii_lowercase(), body.to_owned())
}

#[test]
fn the_portal_has_its_own_listener_with_strict_headers() {
    let gw = TestGateway::start("");
    assert_ne!(gw.portal, gw.admin, "never the admin listener");
    let (status, head, body) = fetch(&format!("http://{}/sign-in", gw.portal), &[]);
    assert_eq!(status, 200, "{head}");
    assert!(
        body.contains("<form method=\"post\" action=\"/sign-in\""),
        "{body}"
    );
    for header in [
        "content-security-policy: default-src 'none'",
        "referrer-policy: no-referrer",
        "x-content-type-options: nosniff",
        "cache-control: no-store",
    ] {
        assert!(head.contains(header), "{header} in {head}");
    }
    assert!(
        !head.contains("strict-transport-security"),
        "plain HTTP: {head}"
    );
    // The admin API is not reachable through the portal.
    let (status, _, _) = fetch(&format!("http://{}/api/v1/policies", gw.portal), &[]);
    assert_eq!(status, 404);
}

#[test]
fn the_portal_serves_tls_with_the_operators_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let pair = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let (cert, key) = (dir.path().join("portal.pem"), dir.path().join("portal.key"));
    std::fs::write(&cert, pair.cert.pem()).unwrap();
    std::fs::write(&key, pair.signing_key.serialize_pem()).unwrap();
    let gw = TestGateway::start(&format!(
        "[portal]\nlisten = \"127.0.0.1:0\"\nurl = \"https://localhost\"\ntls_cert = \"{}\"\ntls_key = \"{}\"\n",
        cert.display(),
        key.display()
    ));
    let url = format!("https://localhost:{}/sign-in", gw.portal.port());
    let resolve = format!("localhost:{}:127.0.0.1", gw.portal.port());
    let (status, head, _) = fetch(
        &url,
        &["--cacert", cert.to_str().unwrap(), "--resolve", &resolve],
    );
    assert_eq!(status, 200, "{head}");
    assert!(
        head.contains("strict-transport-security: max-age="),
        "{head}"
    );
    // Plain HTTP on the TLS port gets nothing.
    let out = Command::new(require("curl"))
        .args([
            "-s",
            "--max-time",
            "5",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
        ])
        .arg(format!("http://127.0.0.1:{}/sign-in", gw.portal.port()))
        .output()
        .unwrap();
    assert_ne!(String::from_utf8_lossy(&out.stdout), "200");
}
