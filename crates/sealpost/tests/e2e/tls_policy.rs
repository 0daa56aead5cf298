//! Outbound TLS policy (`relay.tls_policy`, `relay.tls_ca_file`) and
//! MTA-STS (`relay.mta_sts`) against real TLS sinks: one with a
//! self-signed certificate, one with a certificate from a test CA, one
//! without STARTTLS, all found by MX lookups on a loopback DNS server.

use std::{
    io::{BufRead, BufReader, Write},
    net::TcpListener,
    path::PathBuf,
    sync::Arc,
    time::Duration,
};

use sealpost_store::{RecipientRecord, RecipientStatus};
use serde_json::json;

use crate::helpers::*;

/// A CA made for the test, and leaf certificates it signs.
pub struct TestCa {
    pub dir: tempfile::TempDir,
    pub ca_file: PathBuf,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
}

impl TestCa {
    pub fn new() -> TestCa {
        let dir = tempfile::tempdir().unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "sealpost test CA");
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        let cert = params.self_signed(&key).unwrap();
        let ca_file = dir.path().join("test-root-ca.pem");
        std::fs::write(&ca_file, cert.pem()).unwrap();
        TestCa {
            dir,
            ca_file,
            issuer: rcgen::Issuer::new(params, key),
        }
    }

    /// A certificate for `names` signed by the CA: (cert file, key file).
    pub fn leaf(&self, file: &str, names: &[&str]) -> (PathBuf, PathBuf) {
        let key = rcgen::KeyPair::generate().unwrap();
        let params =
            rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let (c, k) = (
            self.dir.path().join(format!("{file}.pem")),
            self.dir.path().join(format!("{file}.key")),
        );
        std::fs::write(&c, cert.pem()).unwrap();
        std::fs::write(&k, key.serialize_pem()).unwrap();
        (c, k)
    }

    /// A self-signed certificate for `names`.
    pub fn self_signed(&self, file: &str, names: &[&str]) -> (PathBuf, PathBuf) {
        let pair = rcgen::generate_simple_self_signed(
            names.iter().map(|n| n.to_string()).collect::<Vec<_>>(),
        )
        .unwrap();
        let (c, k) = (
            self.dir.path().join(format!("{file}.pem")),
            self.dir.path().join(format!("{file}.key")),
        );
        std::fs::write(&c, pair.cert.pem()).unwrap();
        std::fs::write(&k, pair.signing_key.serialize_pem()).unwrap();
        (c, k)
    }
}

/// A sink offering STARTTLS with `pair` on `listen`.
pub fn tls_sink(listen: &str, pair: &(PathBuf, PathBuf)) -> Sink {
    Sink::start_at(
        listen,
        &[
            "--tls-cert",
            pair.0.to_str().unwrap(),
            "--tls-key",
            pair.1.to_str().unwrap(),
        ],
    )
}

/// Sends one message from alice@corp.example to `rcpts` and returns the
/// recipients once each was attempted.
fn send_and_attempt(gw: &TestGateway, rcpts: &[&str]) -> Vec<RecipientRecord> {
    let mut c = Raw::connect(gw.smtp);
    c.cmd("EHLO client.example", "250");
    let rcpts: Vec<String> = rcpts.iter().map(|r| format!("<{r}>")).collect();
    let rcpts: Vec<&str> = rcpts.iter().map(String::as_str).collect();
    let reply = c.transaction(
        "<alice@corp.example>",
        &rcpts,
        b"Subject: policy\r\n\r\nthe secret body\r\n",
    );
    let id = queue_id(&reply);
    c.cmd("QUIT", "221");
    gw.recipients_when(&id, "every recipient attempted", |r| r.attempts >= 1)
}

fn by<'a>(rcpts: &'a [RecipientRecord], address: &str) -> &'a RecipientRecord {
    rcpts.iter().find(|r| r.address == address).unwrap()
}

/// The messages a sink got for `rcpt`.
fn got(sink: &Sink, rcpt: &str) -> Vec<Received> {
    sink.messages()
        .into_iter()
        .filter(|m| m.rcpt_tos.iter().any(|r| r == rcpt))
        .collect()
}

#[test]
fn tls_levels_encrypt_verify_and_none_are_kept_per_destination() {
    let port = free_port();
    let ca = TestCa::new();
    let self_signed = tls_sink(
        &format!("127.0.0.2:{port}"),
        &ca.self_signed("self", &["mx.self.example"]),
    );
    let ca_signed = tls_sink(
        &format!("127.0.0.3:{port}"),
        &ca.leaf("ca", &["mx.ca.example"]),
    );
    let plain = Sink::start_at(&format!("127.0.0.4:{port}"), &[]);
    let dns = DnsServer::start(
        &json!({
            "mx.self.example": {"A": ["127.0.0.2"]},
            "mx.ca.example": {"A": ["127.0.0.3"]},
            // The CA-signed sink under a name its certificate does not carry.
            "alias.other.example": {"A": ["127.0.0.3"]},
            "mx.plain.example": {"A": ["127.0.0.4"]},
            "self-encrypt.example": {"MX": [[10, "mx.self.example"]]},
            "self-verify.example": {"MX": [[10, "mx.self.example"]]},
            "ca-encrypt.example": {"MX": [[10, "mx.ca.example"]]},
            "ca-verify.example": {"MX": [[10, "mx.ca.example"]]},
            "ca-none.example": {"MX": [[10, "mx.ca.example"]]},
            "wrong-name.example": {"MX": [[10, "alias.other.example"]]},
            "plain-encrypt.example": {"MX": [[10, "mx.plain.example"]]},
            "plain-may.example": {"MX": [[10, "mx.plain.example"]]}
        }),
        &[],
    );
    let gw = TestGateway::start(&format!(
        r#"
        [relay]
        dns_servers = ["127.0.0.1:{}"]
        mx_port = {port}
        retry_schedule = ["1h"]
        tls_ca_file = "{}"
        [relay.tls_policy]
        "self-encrypt.example" = "encrypt"
        "self-verify.example" = "verify"
        "ca-encrypt.example" = "encrypt"
        "ca-verify.example" = "verify"
        "ca-none.example" = "none"
        "wrong-name.example" = "verify"
        "plain-encrypt.example" = "encrypt"
        "#,
        dns.port,
        ca.ca_file.display()
    ));
    let rcpts = send_and_attempt(
        &gw,
        &[
            "a@self-encrypt.example",
            "b@self-verify.example",
            "c@ca-encrypt.example",
            "d@ca-verify.example",
            "e@ca-none.example",
            "f@wrong-name.example",
            "g@plain-encrypt.example",
            "h@plain-may.example",
        ],
    );
    let delivered = |a: &str| {
        let r = by(&rcpts, a);
        assert_eq!(r.status, RecipientStatus::Delivered, "{a}: {r:?}");
    };
    let deferred = |a: &str, why: &str| {
        let r = by(&rcpts, a);
        assert_eq!(r.status, RecipientStatus::Queued, "{a}: {r:?}");
        let reply = r.last_reply.as_deref().unwrap_or_default();
        assert!(
            reply.starts_with("451 4.7.5 TLS (") && reply.contains(why),
            "{a}: {reply}"
        );
    };
    // encrypt: any certificate, but TLS.
    delivered("a@self-encrypt.example");
    delivered("c@ca-encrypt.example");
    assert!(got(&self_signed, "a@self-encrypt.example")[0].tls);
    assert!(got(&ca_signed, "c@ca-encrypt.example")[0].tls);
    // verify: the CA's certificate for the MX host's name.
    delivered("d@ca-verify.example");
    assert!(got(&ca_signed, "d@ca-verify.example")[0].tls);
    deferred(
        "b@self-verify.example",
        "required by relay.tls_policy for self-verify.example but TLS with mx.self.example",
    );
    let b = by(&rcpts, "b@self-verify.example");
    assert!(
        b.last_reply.as_deref().unwrap().contains("UnknownIssuer"),
        "{b:?}"
    );
    deferred("f@wrong-name.example", "alias.other.example");
    let f = by(&rcpts, "f@wrong-name.example");
    assert!(
        f.last_reply
            .as_deref()
            .unwrap()
            .contains("certificate not valid for name"),
        "{f:?}"
    );
    // encrypt to a host without STARTTLS: deferred, and nothing in clear.
    deferred("g@plain-encrypt.example", "did not offer STARTTLS");
    assert!(got(&plain, "g@plain-encrypt.example").is_empty());
    assert!(got(&self_signed, "b@self-verify.example").is_empty());
    assert!(got(&ca_signed, "f@wrong-name.example").is_empty());
    // none: no STARTTLS although offered; may: in clear when not offered.
    delivered("e@ca-none.example");
    assert!(!got(&ca_signed, "e@ca-none.example")[0].tls);
    delivered("h@plain-may.example");
    assert!(!got(&plain, "h@plain-may.example")[0].tls);
}

/// A deferral by policy ends, like any other, in a DSN that gives the
/// reason once the queue lifetime is over.
#[test]
fn a_policy_deferral_bounces_with_its_reason_when_the_message_expires() {
    let plain = Sink::start(&[]);
    // On another loopback address: the policy below names 127.0.0.1.
    let senders = Sink::start_at("127.0.0.2:0", &[]);
    let gw = TestGateway::start(&format!(
        r#"
        [domains]
        internal = ["corp.example"]
        [relay]
        next_hop = "{}"
        internal_next_hop = "127.0.0.2:{}"
        queue_lifetime = "3s"
        tls_policy = {{ "127.0.0.1" = "encrypt" }}
        "#,
        plain.addr(),
        senders.port
    ));
    let mut c = Raw::connect(gw.smtp);
    c.cmd("EHLO client.example", "250");
    let id = queue_id(&c.transaction(
        "<alice@corp.example>",
        &["<bob@ext.example>"],
        b"Subject: must be encrypted\r\n\r\nthe secret body\r\n",
    ));
    c.cmd("QUIT", "221");
    let r = gw.recipients_when(&id, "the recipient failed", |r| {
        r.status == RecipientStatus::Failed
    });
    assert!(
        r[0].last_reply
            .as_deref()
            .unwrap()
            .contains("required by relay.tls_policy for 127.0.0.1"),
        "{r:?}"
    );
    let dsn = &senders.wait_for(1)[0];
    assert!(
        dsn.text().contains("did not offer STARTTLS"),
        "{}",
        dsn.text()
    );
    assert!(plain.messages().is_empty(), "nothing was sent in clear");
}

/// An HTTPS server on loopback answering `GET /.well-known/mta-sts.txt`
/// with the policy for the Host asked (by name); for tests of MTA-STS.
fn policy_server(
    pair: &(PathBuf, PathBuf),
    policies: Vec<(&'static str, &'static str)>,
) -> (u16, Arc<std::sync::atomic::AtomicUsize>) {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&pair.0)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let key = PrivateKeyDer::from_pem_file(&pair.1).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = Arc::new(
        rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap(),
    );
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let fetches = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = fetches.clone();
    std::thread::spawn(move || {
        for tcp in listener.incoming().take(100) {
            let Ok(mut tcp) = tcp else { continue };
            let _ = tcp.set_read_timeout(Some(Duration::from_secs(5)));
            let Ok(conn) = rustls::ServerConnection::new(config.clone()) else {
                continue;
            };
            let mut tls = rustls::StreamOwned::new(conn, &mut tcp);
            let mut reader = BufReader::new(&mut tls);
            let mut host = String::new();
            let mut line = String::new();
            for _ in 0..50 {
                line.clear();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(h) = line.to_ascii_lowercase().strip_prefix("host:") {
                    host = h.trim().to_owned();
                }
            }
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let body = policies.iter().find(|(h, _)| *h == host).map(|(_, p)| *p);
            let response = match body {
                Some(p) => format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{p}",
                    p.len()
                ),
                None => "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_owned(),
            };
            let _ = tls.write_all(response.as_bytes());
            tls.conn.send_close_notify();
            let _ = tls.flush();
        }
    });
    (port, fetches)
}

#[test]
fn mta_sts_enforce_means_verify_and_named_mx_hosts_testing_only_logs() {
    let port = free_port();
    let ca = TestCa::new();
    let self_signed = tls_sink(
        &format!("127.0.0.2:{port}"),
        &ca.self_signed("self", &["mx.self.example"]),
    );
    let ca_signed = tls_sink(
        &format!("127.0.0.3:{port}"),
        &ca.leaf("ca", &["mx.ca.example"]),
    );
    let https = ca.leaf(
        "https",
        &[
            "mta-sts.good.example",
            "mta-sts.badcert.example",
            "mta-sts.unnamed.example",
            "mta-sts.testing.example",
            "mta-sts.override.example",
        ],
    );
    let enforce_ca = "version: STSv1\nmode: enforce\nmx: *.ca.example\nmax_age: 86400\n";
    let enforce_self = "version: STSv1\nmode: enforce\nmx: mx.self.example\nmax_age: 86400\n";
    let enforce_elsewhere =
        "version: STSv1\nmode: enforce\nmx: mx.elsewhere.example\nmax_age: 86400\n";
    let testing = "version: STSv1\nmode: testing\nmx: mx.elsewhere.example\nmax_age: 86400\n";
    let (https_port, fetches) = policy_server(
        &https,
        vec![
            ("mta-sts.good.example", enforce_ca),
            ("mta-sts.badcert.example", enforce_self),
            ("mta-sts.unnamed.example", enforce_elsewhere),
            ("mta-sts.testing.example", testing),
            ("mta-sts.override.example", enforce_self),
        ],
    );
    let record = json!({"TXT": ["v=STSv1; id=20261206"]});
    let web = json!({"A": ["127.0.0.1"]});
    let dns = DnsServer::start(
        &json!({
            "mx.self.example": {"A": ["127.0.0.2"]},
            "mx.ca.example": {"A": ["127.0.0.3"]},
            "good.example": {"MX": [[10, "mx.ca.example"]]},
            "_mta-sts.good.example": record,
            "mta-sts.good.example": web,
            "badcert.example": {"MX": [[10, "mx.self.example"]]},
            "_mta-sts.badcert.example": record,
            "mta-sts.badcert.example": web,
            "unnamed.example": {"MX": [[10, "mx.ca.example"]]},
            "_mta-sts.unnamed.example": record,
            "mta-sts.unnamed.example": web,
            "testing.example": {"MX": [[10, "mx.self.example"]]},
            "_mta-sts.testing.example": record,
            "mta-sts.testing.example": web,
            "override.example": {"MX": [[10, "mx.self.example"]]},
            "_mta-sts.override.example": record,
            "mta-sts.override.example": web,
            "nopolicy.example": {"MX": [[10, "mx.self.example"]]}
        }),
        &[],
    );
    let config = format!(
        r#"
        [relay]
        dns_servers = ["127.0.0.1:{}"]
        mx_port = {port}
        retry_schedule = ["1h"]
        tls_ca_file = "{}"
        mta_sts = true
        mta_sts_port = {https_port}
        tls_policy = {{ "override.example" = "encrypt" }}
        "#,
        dns.port,
        ca.ca_file.display()
    );
    let gw = TestGateway::start(&config);
    let rcpts = send_and_attempt(
        &gw,
        &[
            "a@good.example",
            "b@badcert.example",
            "c@unnamed.example",
            "d@testing.example",
            "e@override.example",
            "f@nopolicy.example",
        ],
    );
    let status = |a: &str| by(&rcpts, a).status;
    let reply = |a: &str| by(&rcpts, a).last_reply.clone().unwrap_or_default();
    // enforce: verified TLS to an MX host the policy names.
    assert_eq!(status("a@good.example"), RecipientStatus::Delivered);
    assert!(got(&ca_signed, "a@good.example")[0].tls);
    // enforce: a certificate that does not verify defers, with the reason.
    assert_eq!(status("b@badcert.example"), RecipientStatus::Queued);
    assert!(
        reply("b@badcert.example").contains("required by the MTA-STS policy of badcert.example"),
        "{}",
        reply("b@badcert.example")
    );
    assert!(got(&self_signed, "b@badcert.example").is_empty());
    // enforce: no MX host named by the policy.
    assert_eq!(status("c@unnamed.example"), RecipientStatus::Queued);
    assert!(
        reply("c@unnamed.example").starts_with(
            "451 4.7.5 none of the MX hosts of unnamed.example is named by the MTA-STS policy"
        ),
        "{}",
        reply("c@unnamed.example")
    );
    assert!(got(&ca_signed, "c@unnamed.example").is_empty());
    // testing: delivered anyway (may: the self-signed certificate is fine).
    assert_eq!(status("d@testing.example"), RecipientStatus::Delivered);
    // An explicit relay.tls_policy entry wins over MTA-STS.
    assert_eq!(status("e@override.example"), RecipientStatus::Delivered);
    assert!(got(&self_signed, "e@override.example")[0].tls);
    assert_eq!(status("f@nopolicy.example"), RecipientStatus::Delivered);
    // Policies are cached: a second message asks for none again.
    let before = fetches.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(before, 4, "one fetch per domain with a policy in use");
    let again = send_and_attempt(&gw, &["g@good.example"]);
    assert_eq!(again[0].status, RecipientStatus::Delivered);
    assert_eq!(fetches.load(std::sync::atomic::Ordering::SeqCst), before);
    // Nor after a restart: the cache file keeps the policies (the record's
    // id is unchanged).
    let gw = TestGateway::start_in(gw.stop(), &config);
    let after = send_and_attempt(&gw, &["h@good.example", "i@badcert.example"]);
    assert_eq!(
        by(&after, "h@good.example").status,
        RecipientStatus::Delivered
    );
    assert_eq!(
        by(&after, "i@badcert.example").status,
        RecipientStatus::Queued
    );
    assert_eq!(fetches.load(std::sync::atomic::Ordering::SeqCst), before);
}

/// A configured next hop is verified against the name it is configured
/// by (here an IP address, which the certificate must list as such).
#[test]
fn verify_checks_a_configured_next_hop_by_its_configured_name() {
    let ca = TestCa::new();
    for (names, delivered) in [(&["127.0.0.1"][..], true), (&["relay.example"][..], false)] {
        let sink = tls_sink("127.0.0.1:0", &ca.leaf("hop", names));
        let gw = TestGateway::start(&format!(
            r#"
            [relay]
            next_hop = "{}"
            retry_schedule = ["1h"]
            tls_ca_file = "{}"
            tls_policy = {{ "127.0.0.1" = "verify" }}
            "#,
            sink.addr(),
            ca.ca_file.display()
        ));
        let r = send_and_attempt(&gw, &["bob@ext.example"]);
        if delivered {
            assert_eq!(r[0].status, RecipientStatus::Delivered, "{r:?}");
            assert!(sink.messages()[0].tls);
        } else {
            assert_eq!(r[0].status, RecipientStatus::Queued, "{r:?}");
            let reply = r[0].last_reply.as_deref().unwrap();
            assert!(
                reply.starts_with(
                    "451 4.7.5 TLS (verify) required by relay.tls_policy for 127.0.0.1"
                ) && reply.contains("not valid for name"),
                "{reply}"
            );
            assert!(sink.messages().is_empty());
        }
    }
}
