//! Submission with AUTH (issue 17, item 1) end to end: swaks with
//! `--auth PLAIN` and `--auth LOGIN` over STARTTLS (`-tls`) and implicit
//! TLS (`--tlsc`) against the submission listeners, delivering to an
//! aiosmtpd sink; Python's smtplib and raw sockets for the protocol edges
//! (AUTH before TLS, SASL errors, the null sender, the rate limit).

use std::{net::SocketAddr, time::Duration};

use serde_json::json;

use crate::{helpers::*, policy_api::call};

/// A gateway with both submission listeners, relaying to `sink`, with
/// quick brakes: 3 failures lock an account name for 3 s.
fn gateway(sink: &Sink) -> TestGateway {
    TestGateway::start(&format!(
        r#"
        [smtp]
        submission_listen = ["127.0.0.1:0"]
        submission_tls_listen = ["127.0.0.1:0"]
        auth_failure_delay = "50ms"
        auth_failure_delay_max = "200ms"
        auth_lockout_failures = 3
        auth_lockout_ip_failures = 50
        auth_lockout_time = "3s"
        [relay]
        next_hop = "{}"
        "#,
        sink.addr()
    ))
}

/// Creates an SMTP account through the API; returns its password.
fn account(gw: &TestGateway, name: &str, senders: &[&str], rate: u32) -> String {
    let (code, made) = call(
        gw,
        "POST",
        "/smtp-accounts",
        &json!({"name": name, "senders": senders, "rate_per_hour": rate}),
    );
    assert_eq!(code, 201, "{made}");
    made["password"].as_str().unwrap().to_owned()
}

/// swaks submitting as `user` over STARTTLS (`tls = "-tls"`) or implicit
/// TLS (`"--tlsc"`).
fn submit(
    server: SocketAddr,
    tls: &str,
    mechanism: &str,
    user: &str,
    password: &str,
    from: &str,
    extra: &[&str],
) -> (bool, String) {
    let mut args = vec![
        tls,
        "--auth",
        mechanism,
        "--auth-user",
        user,
        "--auth-password",
        password,
        "--from",
        from,
        "--to",
        "bob@partner.example",
    ];
    args.extend_from_slice(extra);
    swaks(server, &args)
}

fn metrics(gw: &TestGateway) -> String {
    let out = std::process::Command::new(require("curl"))
        .args(["-s", &format!("http://{}/metrics", gw.admin)])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn auth_count(metrics: &str, result: &str) -> u64 {
    let key = format!("sealpost_smtp_auth_total{{result=\"{result}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&key))
        .map_or(0, |v| v.trim().parse().unwrap())
}

/// Python's smtplib over STARTTLS on `server`, running `body` with `s`
/// connected, TLS started and EHLO given; prints what `body` prints.
fn smtplib(server: SocketAddr, body: &str) -> (bool, String) {
    python(&format!(
        r#"
import smtplib, ssl, base64
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
s = smtplib.SMTP("{}", {}, timeout=20)
s.ehlo("client.test")
s.starttls(context=ctx)
s.ehlo("client.test")
def b64(t): return base64.b64encode(t.encode()).decode()
{body}
"#,
        server.ip(),
        server.port()
    ))
}

#[test]
fn auth_plain_and_login_over_starttls_and_implicit_tls_deliver_and_tracking_names_the_account() {
    let sink = Sink::start(&[]);
    let gw = gateway(&sink);
    let password = account(&gw, "crm", &["crm@corp.example", "*.shop.example"], 100);

    let (ok, t) = submit(
        gw.submission[0],
        "-tls",
        "PLAIN",
        "crm",
        &password,
        "crm@corp.example",
        &[],
    );
    assert!(ok, "PLAIN over STARTTLS:\n{t}");
    assert!(t.contains("235 2.7.0"), "{t}");
    assert!(
        t.contains("AUTH PLAIN LOGIN"),
        "offered after STARTTLS:\n{t}"
    );
    let plain_id = queue_id(&t);
    let (ok, t) = submit(
        gw.submission_tls[0],
        "--tlsc",
        "LOGIN",
        "CRM",
        &password,
        "orders@eu.shop.example",
        &[],
    );
    assert!(ok, "LOGIN over implicit TLS:\n{t}");
    let login_id = queue_id(&t);
    let (ok, t) = submit(
        gw.submission_tls[0],
        "--tlsc",
        "PLAIN",
        "crm",
        &password,
        "crm@corp.example",
        &[],
    );
    assert!(ok, "PLAIN over implicit TLS:\n{t}");
    let (ok, t) = submit(
        gw.submission[0],
        "-tls",
        "LOGIN",
        "crm",
        &password,
        "crm@corp.example",
        &[],
    );
    assert!(ok, "LOGIN over STARTTLS:\n{t}");

    // Relayed to the external recipient, marked as authenticated submission.
    let got = sink.wait_for(4);
    assert!(got.iter().all(|m| m.rcpt_tos == ["bob@partner.example"]));
    assert!(
        got[0].text().contains("with ESMTPSA id"),
        "{}",
        got[0].text()
    );

    for id in [&plain_id, &login_id] {
        let (code, m) = call(&gw, "GET", &format!("/messages/{id}"), &json!(null));
        assert_eq!(code, 200, "{m}");
        assert_eq!(m["smtp_account"], "crm", "{m}");
    }
    // Mail relayed from relay_networks carries no account.
    let (ok, t) = swaks(
        gw.smtp,
        &["--from", "a@corp.example", "--to", "bob@partner.example"],
    );
    assert!(ok, "{t}");
    let (_, m) = call(
        &gw,
        "GET",
        &format!("/messages/{}", queue_id(&t)),
        &json!(null),
    );
    assert!(m.get("smtp_account").is_none(), "{m}");

    let (_, a) = call(&gw, "GET", "/smtp-accounts/crm", &json!(null));
    assert!(a["last_used_at"].is_string(), "last use recorded: {a}");
    assert!(auth_count(&metrics(&gw), "ok") >= 4);
}

#[test]
fn auth_only_after_tls_on_submission_and_never_on_port_25() {
    let sink = Sink::start(&[]);
    let gw = gateway(&sink);
    let password = account(&gw, "app", &["app@corp.example"], 100);
    let creds = base64_plain("app", &password);

    // Submission before TLS: STARTTLS offered, AUTH not, and refused.
    let mut raw = Raw::connect(gw.submission[0]);
    let ehlo = raw.cmd("EHLO client.test", "250");
    assert!(
        ehlo.contains("STARTTLS") && !ehlo.contains("AUTH"),
        "{ehlo}"
    );
    assert!(
        raw.cmd(&format!("AUTH PLAIN {creds}"), "538")
            .contains("5.7.11")
    );
    // relay_networks (127.0.0.0/8 here) grants nothing on submission.
    assert!(
        raw.cmd("MAIL FROM:<app@corp.example>", "530")
            .contains("5.7.0")
    );
    raw.cmd("QUIT", "221");

    // Port 25: AUTH neither offered (before or after TLS) nor accepted.
    let mut raw = Raw::connect(gw.smtp);
    let ehlo = raw.cmd("EHLO client.test", "250");
    assert!(!ehlo.contains("AUTH"), "{ehlo}");
    assert!(
        raw.cmd(&format!("AUTH PLAIN {creds}"), "502")
            .contains("5.5.1")
    );
    raw.cmd("QUIT", "221");
    let (ok, t) = submit(
        gw.smtp,
        "-tls",
        "PLAIN",
        "app",
        &password,
        "app@corp.example",
        &[],
    );
    assert!(!ok, "{t}");
    assert!(!t.contains("AUTH PLAIN") && !t.contains(" AUTH"), "{t}");

    // Implicit TLS: AUTH offered from the first EHLO, no STARTTLS.
    let (ok, t) = swaks(gw.submission_tls[0], &["--tlsc", "--quit-after", "EHLO"]);
    assert!(ok, "{t}");
    assert!(
        t.contains("AUTH PLAIN LOGIN") && !t.contains("STARTTLS"),
        "{t}"
    );

    // SASL edges over TLS (RFC 4954): bad base64, cancel, unknown
    // mechanism, PLAIN with an initial response, LOGIN challenge by
    // challenge, AUTH again once authenticated.
    let (ok, out) = smtplib(
        gw.submission[0],
        &format!(
            r#"
print("bad64", s.docmd("AUTH", "PLAIN !!!notbase64"))
print("cancel1", s.docmd("AUTH", "LOGIN"))
print("cancel2", s.docmd("*"))
print("plain-cancel1", s.docmd("AUTH", "PLAIN"))
print("plain-cancel2", s.docmd("*"))
print("unknown", s.docmd("AUTH", "CRAM-MD5"))
print("login1", s.docmd("AUTH", "LOGIN " + b64("app")))
print("login2", s.docmd(b64("{password}")))
print("again", s.docmd("AUTH", "PLAIN " + b64("\x00app\x00{password}")))
print("mailauth", s.docmd("MAIL", "FROM:<app@corp.example> AUTH=<>"))
"#
        ),
    );
    assert!(ok, "{out}");
    for (label, want) in [
        ("bad64", "(501, b'5.5.2"),
        ("cancel1", "(334, b'VXNlcm5hbWU6')"),
        ("cancel2", "(501, b'5.7.0"),
        ("plain-cancel1", "(334, b'')"),
        ("plain-cancel2", "(501, b'5.7.0"),
        ("unknown", "(504, b'5.5.4"),
        ("login1", "(334, b'UGFzc3dvcmQ6')"),
        ("login2", "(235, b'2.7.0"),
        ("again", "(503, b'5.5.1"),
        // RFC 4954 §5: where AUTH is offered, MAIL takes AUTH=.
        ("mailauth", "(250, b'2.1.0"),
    ] {
        let line = out
            .lines()
            .find(|l| l.starts_with(&format!("{label} ")))
            .unwrap_or_else(|| panic!("{label} in {out}"));
        assert!(line.contains(want), "{label}: {line}\n{out}");
    }
}

#[test]
fn bad_passwords_get_535_then_a_lockout_that_refuses_even_the_right_one_then_ends() {
    let sink = Sink::start(&[]);
    let gw = gateway(&sink);
    let password = account(&gw, "app", &["app@corp.example"], 100);
    let before = metrics(&gw);
    for i in 0..3 {
        let (ok, t) = submit(
            gw.submission[0],
            "-tls",
            "PLAIN",
            "app",
            "wrong-password",
            "app@corp.example",
            &[],
        );
        assert!(!ok && t.contains("535 5.7.8"), "failure {i}:\n{t}");
    }
    // Locked: the right password is not even checked.
    for (server, tls, mechanism) in [
        (gw.submission[0], "-tls", "PLAIN"),
        (gw.submission_tls[0], "--tlsc", "LOGIN"),
    ] {
        let (ok, t) = submit(
            server,
            tls,
            mechanism,
            "app",
            &password,
            "app@corp.example",
            &[],
        );
        assert!(!ok && t.contains("454 4.7.0"), "locked:\n{t}");
    }
    let after = metrics(&gw);
    assert_eq!(
        auth_count(&after, "failed") - auth_count(&before, "failed"),
        3
    );
    assert_eq!(
        auth_count(&after, "locked") - auth_count(&before, "locked"),
        2
    );
    // Another account is not locked by app's failures.
    let other = account(&gw, "other", &["other@corp.example"], 100);
    let (ok, t) = submit(
        gw.submission[0],
        "-tls",
        "PLAIN",
        "other",
        &other,
        "other@corp.example",
        &[],
    );
    assert!(ok, "{t}");
    // The lockout (3 s here) ends.
    std::thread::sleep(Duration::from_millis(3200));
    let (ok, t) = submit(
        gw.submission[0],
        "-tls",
        "PLAIN",
        "app",
        &password,
        "app@corp.example",
        &[],
    );
    assert!(ok, "after the lockout:\n{t}");
    sink.wait_for(2);
}

#[test]
fn an_account_sends_only_as_its_senders_and_within_its_rate() {
    let sink = Sink::start(&[]);
    let gw = gateway(&sink);
    let password = account(&gw, "crm", &["crm@corp.example"], 3);

    // MAIL FROM another address: 553 5.7.1 at MAIL.
    let (ok, t) = submit(
        gw.submission[0],
        "-tls",
        "PLAIN",
        "crm",
        &password,
        "ceo@corp.example",
        &[],
    );
    assert!(!ok && t.contains("553 5.7.1"), "{t}");
    // A forged header From: 553 5.7.1 at the end of DATA, nothing stored.
    let (ok, t) = submit(
        gw.submission[0],
        "-tls",
        "PLAIN",
        "crm",
        &password,
        "crm@corp.example",
        &["--header", "From: CEO <ceo@corp.example>"],
    );
    assert!(!ok && t.contains("553 5.7.1"), "{t}");
    assert!(!t.contains("queued as"), "{t}");
    // A second From address, or a second From field, is no way around it.
    let (ok, t) = submit(
        gw.submission_tls[0],
        "--tlsc",
        "LOGIN",
        "crm",
        &password,
        "crm@corp.example",
        &["--header", "From: crm@corp.example, ceo@corp.example"],
    );
    assert!(!ok && t.contains("553 5.7.1"), "{t}");
    let (code, list) = call(&gw, "GET", "/messages", &json!(null));
    assert_eq!(code, 200, "{list}");
    let listed = list["messages"]
        .as_array()
        .or(list.as_array())
        .map_or(0, Vec::len);
    assert_eq!(listed, 0, "nothing stored: {list}");

    // The null sender, then the rate: 3 an hour, the fourth MAIL gets 450.
    let (ok, out) = smtplib(
        gw.submission[0],
        &format!(
            r#"
print("auth", s.docmd("AUTH", "PLAIN " + b64("\x00crm\x00{password}")))
print("null", s.docmd("MAIL", "FROM:<>"))
msg = "From: crm@corp.example\r\nTo: bob@partner.example\r\nSubject: rate\r\n\r\nhi\r\n"
for i in range(3):
    s.sendmail("crm@corp.example", ["bob@partner.example"], msg)
    print("sent", i)
print("over", s.docmd("MAIL", "FROM:<crm@corp.example>"))
"#
        ),
    );
    assert!(ok, "{out}");
    assert!(out.contains("null (553, b'5.7.1"), "{out}");
    assert!(out.contains("sent 2"), "{out}");
    assert!(out.contains("over (450, b'4.7.1"), "{out}");
    let got = sink.wait_for(3);
    assert_eq!(got.len(), 3);
    assert!(got.iter().all(|m| m.mail_from == "crm@corp.example"));
}

fn base64_plain(user: &str, password: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{password}"))
}
