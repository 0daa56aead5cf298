//! `sealpost config check` against the stored configuration (issue 14,
//! "Secure delivery fails closed"): what `serve` would refuse at start,
//! `config check` refuses first, naming the key and the stored object.

use std::{
    path::Path,
    process::{Command, Output, Stdio},
    time::{Duration, Instant},
};

use serde_json::json;

use crate::{helpers::*, policy_api::call};

const BIN: &str = env!("CARGO_BIN_EXE_sealpost");

/// Runs `sealpost config check` on the gateway directory's config file.
fn config_check(dir: &Path, env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(["config", "check", "--config"])
        .arg(dir.join("sealpost.toml"))
        .env_remove("SEALPOST_CONFIG")
        .env_remove("SEALPOST_MASTER_KEY");
    cmd.envs(env.iter().copied()).output().unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs `sealpost serve` on the directory and expects it to refuse to
/// start; returns what it said. A serve that starts is killed, and fails
/// the test.
fn serve_refuses(dir: &Path, env: &[(&str, &str)]) -> String {
    let log = dir.join("serve.err");
    let mut child = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(dir.join("sealpost.toml"))
        .env_remove("SEALPOST_CONFIG")
        .env_remove("SEALPOST_MASTER_KEY")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let said = std::fs::read_to_string(&log).unwrap_or_default();
    let Some(status) = status else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("serve started instead of refusing:\n{said}");
    };
    assert_eq!(status.code(), Some(1), "{said}");
    said
}

/// Creates a definition through the API; returns its id.
fn definition(gw: &TestGateway, body: serde_json::Value) -> i64 {
    let (code, created) = call(gw, "POST", "/definitions", &body);
    assert_eq!(code, 201, "{created}");
    created["id"].as_i64().unwrap()
}

#[test]
fn issue_14_config_check_refuses_retention_below_a_stored_expiry() {
    let gw = TestGateway::start("");
    // The default definition within the lower retention: only Legal is
    // at fault.
    let (code, body) = call(&gw, "PATCH", "/definitions/1", &json!({"expiry_days": 7}));
    assert_eq!(code, 200, "{body}");
    let legal = definition(&gw, json!({"name": "Legal", "expiry_days": 30}));
    let dir = gw.stop();

    let out = config_check(dir.path(), &[("SEALPOST_VAULT_RETENTION", "10d")]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!(
            "vault.retention: 10d is shorter than definition \"Legal\" (id {legal}) expiry_days = 30"
        )),
        "{err}"
    );
    assert!(!err.contains("\"Default\""), "{err}");

    let said = serve_refuses(dir.path(), &[("SEALPOST_VAULT_RETENTION", "10d")]);
    assert!(
        said.contains("vault.retention") && said.contains("\"Legal\""),
        "{said}"
    );

    let out = config_check(dir.path(), &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("configuration ok") && said.contains("2 definition(s)"),
        "{said}"
    );
}

#[test]
fn issue_14_config_check_refuses_a_subject_tag_definition_that_does_not_exist_yet() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("sealpost.toml"),
        format!(
            "[server]\ndata_dir = \"{}\"\n",
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    let out = config_check(
        dir.path(),
        &[("SEALPOST_SECURE_SUBJECT_TAG_DEFINITION", "NoSuch")],
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("secure.subject_tag_definition: names \"NoSuch\"")
            && err.contains("no database yet"),
        "{err}"
    );
    assert!(
        !dir.path().join("data").exists(),
        "a check creates no database"
    );

    // The first start creates the default definition, which allows
    // manual use.
    let out = config_check(
        dir.path(),
        &[("SEALPOST_SECURE_SUBJECT_TAG_DEFINITION", "Default")],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("no database yet"));
}

#[test]
fn issue_14_the_subject_tag_definition_must_exist_and_allow_manual_use() {
    let gw = TestGateway::start("");
    let legal = definition(&gw, json!({"name": "Legal", "manual_use": false}));
    definition(&gw, json!({"name": "Desk", "manual_use": true}));
    let dir = gw.stop();

    let key = "SEALPOST_SECURE_SUBJECT_TAG_DEFINITION";
    let out = config_check(dir.path(), &[(key, "Legal")]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("secure.subject_tag_definition: definition \"Legal\" must allow manual use")
            && err.contains(&format!("definitions[id={legal}].manual_use")),
        "{err}"
    );
    let said = serve_refuses(dir.path(), &[(key, "Legal")]);
    assert!(
        said.contains("secure.subject_tag_definition") && said.contains("\"Legal\""),
        "{said}"
    );

    let out = config_check(dir.path(), &[(key, "NoSuch")]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("secure.subject_tag_definition: names \"NoSuch\""),
        "{}",
        stderr(&out)
    );
    let said = serve_refuses(dir.path(), &[(key, "NoSuch")]);
    assert!(said.contains("\"NoSuch\""), "{said}");

    let out = config_check(dir.path(), &[(key, "Desk")]);
    assert!(out.status.success(), "{}", stderr(&out));
}

/// Issue 14, after an upgrade: a template an older version stored that
/// today's checks refuse (its subject reads the link) must not keep the
/// gateway from starting, since only a started gateway's API can fix it.
/// `config check` warns and passes; unrelated changes still save, and a
/// new broken template is still refused. A database at an older schema is
/// still checked, not skipped.
#[test]
fn issue_14_an_old_template_that_fails_todays_checks_does_not_stop_serve() {
    let gw = TestGateway::start("");
    let key = gw.api_key.clone();
    let legal = definition(&gw, json!({"name": "Legal", "expiry_days": 30}));
    let dir = gw.stop();
    let db = rusqlite::Connection::open(dir.path().join("sealpost.db")).unwrap();
    let doc: String = db
        .query_row("SELECT doc FROM definitions WHERE id = ?1", [legal], |r| {
            r.get(0)
        })
        .unwrap();
    let mut doc: serde_json::Value = serde_json::from_str(&doc).unwrap();
    doc["notification_template"] = json!({"subject": "Open {{ portal_link|upper }}"});
    db.execute(
        "UPDATE definitions SET doc = ?1 WHERE id = ?2",
        rusqlite::params![doc.to_string(), legal],
    )
    .unwrap();

    let out = config_check(dir.path(), &[]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains("warning: definitions[id=") && err.contains("portal_link"),
        "{err}"
    );

    // An older schema (as before an upgrade) is checked too.
    let current: i64 = db
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .unwrap();
    db.pragma_update(None, "user_version", 4).unwrap();
    let out = config_check(dir.path(), &[("SEALPOST_VAULT_RETENTION", "10d")]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("\"Legal\""), "{err}");
    db.pragma_update(None, "user_version", current).unwrap();
    drop(db);

    let mut gw = TestGateway::start_in(dir, "");
    gw.api_key = key;
    let (code, body) = call(&gw, "PATCH", "/definitions/1", &json!({"expiry_days": 20}));
    assert_eq!(code, 200, "unrelated changes still save: {body}");
    let (code, body) = call(
        &gw,
        "PATCH",
        &format!("/definitions/{legal}"),
        &json!({"description": "kept broken"}),
    );
    assert_eq!(code, 200, "the template itself unchanged: {body}");
    let (code, body) = call(
        &gw,
        "PATCH",
        &format!("/definitions/{legal}"),
        &json!({"notification_template": {"subject": "{{ portal_link|lower }}"}}),
    );
    assert_eq!(
        (code, body["code"].as_str()),
        (422, Some("invalid_template")),
        "{body}"
    );
}

/// Issue 17: the outbound TLS keys are checked by `config check`, each
/// problem naming its key; the environment sets the policy table inline.
#[test]
fn config_check_names_bad_outbound_tls_keys() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("sealpost.toml"),
        format!(
            "[server]\ndata_dir = \"{}\"\n[relay]\ntls_ca_file = \"{}\"\n[relay.tls_policy]\n\"bank.example\" = \"strict\"\n",
            dir.path().display(),
            dir.path().join("missing-ca.pem").display()
        ),
    )
    .unwrap();
    let out = config_check(dir.path(), &[]);
    assert!(!out.status.success());
    let said = stderr(&out);
    assert!(
        said.contains("relay.tls_policy.\"bank.example\"")
            && said.contains("none, may, encrypt or verify"),
        "{said}"
    );
    assert!(
        said.contains("relay.tls_ca_file") && said.contains("missing-ca.pem"),
        "{said}"
    );
    let ca = crate::tls_policy::TestCa::new();
    let out = config_check(
        dir.path(),
        &[
            (
                "SEALPOST_RELAY_TLS_POLICY",
                "{ \"bank.example\" = \"verify\" }",
            ),
            ("SEALPOST_RELAY_TLS_CA_FILE", ca.ca_file.to_str().unwrap()),
        ],
    );
    let said = stderr(&out);
    assert!(
        !said.contains("relay.tls_policy") && !said.contains("relay.tls_ca_file"),
        "the environment's values replace the file's: {said}"
    );
}

/// A new gateway with a retention shorter than the built-in 30 days
/// starts: the default definition nobody has touched is fitted to it (and
/// the change is audited), instead of refusing to start over it.
#[test]
fn a_new_gateway_with_a_short_retention_starts_with_its_default_fitted() {
    let gw = TestGateway::start("[vault]\nretention = \"7d\"\n");
    let (code, body) = call(&gw, "GET", "/definitions/1", &json!(null));
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["expiry_days"], 7, "{body}");
    let dir = gw.stop();
    let out = config_check(dir.path(), &[("SEALPOST_VAULT_RETENTION", "7d")]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}
