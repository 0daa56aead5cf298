//! DKIM (issue 17, item 2): `sealpost dkim keygen`, the `[[dkim.key]]`
//! configuration it feeds, and the signature on what the gateway writes,
//! verified with mail-auth against the record keygen printed.

use std::{
    borrow::Borrow, collections::HashMap, hash::Hash, os::unix::fs::PermissionsExt,
    process::Command, sync::Mutex,
};

use mail_auth::{
    AuthenticatedMessage, DkimResult, MessageAuthenticator, Parameters, ResolverCache, Txt,
    common::{parse::TxtRecordParser, verify::DomainKey as DnsKey},
};
use serde_json::json;

use crate::{
    helpers::Sink,
    secure::{gateway, secure_policy, send},
};

const BIN: &str = env!("CARGO_BIN_EXE_sealpost");

pub(crate) fn keygen(args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .args(["dkim", "keygen"])
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn keygen_writes_a_private_key_once_and_prints_the_record() {
    let dir = tempfile::tempdir().unwrap();
    for (algorithm, k) in [("rsa-sha256", "rsa"), ("ed25519-sha256", "ed25519")] {
        let key = dir.path().join(format!("{k}.pem"));
        let key_arg = key.to_str().unwrap();
        let out = keygen(&[
            "--domain",
            "corp.example",
            "--selector",
            "s2026",
            "--algorithm",
            algorithm,
            "--out",
            key_arg,
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let record = String::from_utf8(out.stdout).unwrap();
        assert!(
            record.starts_with(&format!(
                "s2026._domainkey.corp.example. IN TXT \"v=DKIM1; k={k}; p="
            )),
            "{record}"
        );
        let meta = std::fs::metadata(&key).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        let pem = std::fs::read(&key).unwrap();
        assert!(pem.starts_with(b"-----BEGIN "));

        // Never over an existing key: the file is left exactly as it was.
        let again = keygen(&[
            "--domain",
            "corp.example",
            "--selector",
            "s2026",
            "--algorithm",
            algorithm,
            "--out",
            key_arg,
        ]);
        assert!(!again.status.success());
        assert!(again.stdout.is_empty());
        let err = String::from_utf8_lossy(&again.stderr);
        assert!(err.contains("exists"), "{err}");
        assert_eq!(std::fs::read(&key).unwrap(), pem);

        // The key it wrote is one the configuration accepts.
        let config = dir.path().join(format!("{k}.toml"));
        std::fs::write(
            &config,
            format!(
                "[server]\ndata_dir = {:?}\n[[dkim.key]]\ndomain = \"corp.example\"\nselector = \"s2026\"\nkey_file = {key_arg:?}\nalgorithm = \"{algorithm}\"\n",
                dir.path().join("data").to_str().unwrap()
            ),
        )
        .unwrap();
        let check = Command::new(BIN)
            .args(["config", "check", "--config"])
            .arg(&config)
            .output()
            .unwrap();
        assert!(
            check.status.success(),
            "{}",
            String::from_utf8_lossy(&check.stderr)
        );
    }

    let bad = keygen(&[
        "--domain",
        "corp.example",
        "--selector",
        "s1",
        "--algorithm",
        "rsa-sha1",
    ]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--algorithm"));
}

#[test]
fn config_check_names_a_missing_key_file_and_a_bad_algorithm() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("dkim.toml");
    std::fs::write(
        &config,
        format!(
            "[[dkim.key]]\ndomain = \"corp.example\"\nselector = \"s1\"\nkey_file = {:?}\n\
             [[dkim.key]]\ndomain = \"other.example\"\nselector = \"s1\"\nkey_file = \"x.pem\"\nalgorithm = \"rsa-sha1\"\n",
            dir.path().join("nowhere.pem").to_str().unwrap()
        ),
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["config", "check", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("dkim.key[0].key_file: cannot read"), "{err}");
    assert!(err.contains("dkim.key[1].algorithm: \"rsa-sha1\""), "{err}");
}

/// A TXT "resolver" holding only the records a test publishes, so
/// verification asks no DNS server.
#[derive(Default)]
pub(crate) struct Zone(Mutex<HashMap<Box<str>, Txt>>);

impl ResolverCache<Box<str>, Txt> for Zone {
    fn get<Q>(&self, name: &Q) -> Option<Txt>
    where
        Box<str>: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.0.lock().unwrap().get(name).cloned()
    }
    fn remove<Q>(&self, name: &Q) -> Option<Txt>
    where
        Box<str>: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.0.lock().unwrap().remove(name)
    }
    fn insert(&self, key: Box<str>, value: Txt, _valid_until: std::time::Instant) {
        self.0.lock().unwrap().insert(key, value);
    }
}

impl Zone {
    /// Publishes a record as `sealpost dkim keygen` printed it.
    pub(crate) fn publish(record: &str) -> Zone {
        let zone = Zone::default();
        let (name, rest) = record.trim().split_once(" IN TXT ").unwrap();
        let value: String = rest.split('"').skip(1).step_by(2).collect();
        let key = Txt::from(DnsKey::parse(value.as_bytes()).unwrap());
        let name = name.trim_end_matches('.');
        for n in [name.to_owned(), format!("{name}.")] {
            zone.0.lock().unwrap().insert(n.into(), key.clone());
        }
        zone
    }

    /// The DKIM results of `message`.
    pub(crate) fn verify(&self, message: &[u8]) -> Vec<DkimResult> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            let authenticator = MessageAuthenticator::new_cloudflare().unwrap();
            let parsed = AuthenticatedMessage::parse(message).unwrap();
            authenticator
                .verify_dkim(Parameters::new(&parsed).with_txt_cache(self))
                .await
                .iter()
                .map(|o| o.result().clone())
                .collect()
        })
    }
}

#[test]
fn a_secure_notification_leaves_signed_for_the_senders_domain() {
    let keys = tempfile::tempdir().unwrap();
    let key = keys.path().join("corp.pem");
    let out = keygen(&[
        "--domain",
        "corp.example",
        "--selector",
        "notify",
        "--algorithm",
        "ed25519-sha256",
        "--out",
        key.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let zone = Zone::publish(&String::from_utf8(out.stdout).unwrap());

    let internal = Sink::start(&[]);
    let external = Sink::start(&[]);
    let gw = gateway(
        &internal,
        &external,
        &format!(
            "[[dkim.key]]\ndomain = \"corp.example\"\nselector = \"notify\"\nkey_file = {:?}\nalgorithm = \"ed25519-sha256\"\n",
            key.to_str().unwrap()
        ),
    );
    secure_policy(&gw, "partner.example", json!({"name": "Portal"}));
    send(&gw, "alice@corp.example", &["bob@partner.example"], &[]);

    let got = external.wait_for(1);
    let notification = &got[0];
    assert_eq!(notification.rcpt_tos, ["bob@partner.example"]);
    let text = String::from_utf8_lossy(&notification.content);
    assert!(text.contains("X-Sealpost-Notification: 1"), "{text}");
    assert!(text.starts_with("DKIM-Signature: "), "{text}");
    assert!(text.contains("d=corp.example;"), "{text}");
    assert_eq!(zone.verify(&notification.content), vec![DkimResult::Pass]);
}

#[test]
fn relayed_mail_is_signed_only_with_sign_relayed() {
    let keys = tempfile::tempdir().unwrap();
    let key = keys.path().join("corp.pem");
    let out = keygen(&[
        "--domain",
        "corp.example",
        "--selector",
        "relay",
        "--algorithm",
        "ed25519-sha256",
        "--out",
        key.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let zone = Zone::publish(&String::from_utf8(out.stdout).unwrap());
    for sign_relayed in [false, true] {
        let internal = Sink::start(&[]);
        let external = Sink::start(&[]);
        let gw = gateway(
            &internal,
            &external,
            &format!(
                "[dkim]\nsign_relayed = {sign_relayed}\n[[dkim.key]]\ndomain = \"corp.example\"\nselector = \"relay\"\nkey_file = {:?}\nalgorithm = \"ed25519-sha256\"\n",
                key.to_str().unwrap()
            ),
        );
        send(&gw, "alice@corp.example", &["carol@relay.example"], &[]);
        let got = external.wait_for(1);
        let signed = String::from_utf8_lossy(&got[0].content).contains("DKIM-Signature:");
        assert_eq!(signed, sign_relayed);
        if sign_relayed {
            assert_eq!(zone.verify(&got[0].content), vec![DkimResult::Pass]);
        }
    }
}

#[test]
fn a_dsn_from_the_gateways_host_is_signed_for_its_parent_domain() {
    let keys = tempfile::tempdir().unwrap();
    let key = keys.path().join("corp.pem");
    let out = keygen(&[
        "--domain",
        "corp.example",
        "--selector",
        "dsn",
        "--out",
        key.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let zone = Zone::publish(&String::from_utf8(out.stdout).unwrap());
    let internal = Sink::start(&[]);
    let external = Sink::start(&["--permfail-rcpt", "^carol@"]);
    let gw = gateway(
        &internal,
        &external,
        &format!(
            "[server]\nhostname = \"mx.corp.example\"\n[[dkim.key]]\ndomain = \"corp.example\"\nselector = \"dsn\"\nkey_file = {:?}\n",
            key.to_str().unwrap()
        ),
    );
    send(&gw, "alice@corp.example", &["carol@relay.example"], &[]);
    let got = internal.wait_for(1);
    let dsn = &got[0];
    assert_eq!(dsn.rcpt_tos, ["alice@corp.example"]);
    let text = String::from_utf8_lossy(&dsn.content);
    assert!(text.contains("MAILER-DAEMON@mx.corp.example"), "{text}");
    assert!(
        text.contains("a=rsa-sha256") && text.contains("d=corp.example;"),
        "{text}"
    );
    assert_eq!(zone.verify(&dsn.content), vec![DkimResult::Pass]);
}
