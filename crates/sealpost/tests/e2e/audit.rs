//! The audit log through the running gateway (issue 16, item 3): a change
//! through the API and the CLI each leaves one entry naming who, from
//! where, and the object before and after (the console's are checked in
//! its own tests); `GET /api/v1/audit` filters and pages them and is
//! refused to roles that may not read it.

use std::process::Command;

use serde_json::{Value, json};

use crate::{helpers::*, policy_api::api};

fn bearer(key: &str) -> String {
    format!("Authorization: Bearer {key}")
}

#[test]
fn api_and_cli_changes_are_audited_and_read_back() {
    let gw = TestGateway::start("");
    let key = gw.api_key.clone().unwrap();
    let auth = bearer(&key);
    let json_type = "Content-Type: application/json";

    // Through the API: create a group, then rename it.
    let (code, group) = api(
        &gw,
        "POST",
        "/groups",
        Some(br#"{"name": "Partners", "addresses": ["p@partner.example"]}"#),
        &[&auth, json_type],
    );
    assert_eq!(code, 201, "{group}");
    let id = group["id"].as_i64().unwrap();
    let (code, _) = api(
        &gw,
        "PATCH",
        &format!("/groups/{id}"),
        Some(br#"{"name": "Partners EU"}"#),
        &[&auth, "Content-Type: application/merge-patch+json"],
    );
    assert_eq!(code, 200);

    // Through the CLI: an administrator.
    let config = gw.data_dir().join("sealpost.toml");
    let out = Command::new(env!("CARGO_BIN_EXE_sealpost"))
        .args(["admin", "create", "dana", "--role", "read_only", "--config"])
        .arg(&config)
        .env("USER", "operator-on-host")
        .env_remove("SEALPOST_CONFIG")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");

    let (code, page) = api(&gw, "GET", "/audit?limit=10", None, &[&auth]);
    assert_eq!(code, 200, "{page}");
    let entries = page["entries"].as_array().unwrap();
    let first_run = entries
        .iter()
        .filter(|e| e["actor"]["kind"] == "system")
        .count();
    assert_eq!(
        first_run, 2,
        "the first start's key and administrator: {page}"
    );
    let cli = &entries[0];
    assert_eq!(
        cli["actor"],
        json!({"kind": "cli", "name": "operator-on-host", "client_ip": null})
    );
    assert_eq!(cli["action"], "create");
    assert_eq!(cli["object_kind"], "administrator");
    assert_eq!(cli["after"]["role"], "read_only");
    let rename = &entries[1];
    assert_eq!(rename["action"], "update");
    assert_eq!(rename["object_id"], id.to_string());
    assert_eq!(rename["before"]["name"], "Partners");
    assert_eq!(rename["after"]["name"], "Partners EU");
    assert_eq!(rename["actor"]["kind"], "api_key");
    assert_eq!(
        rename["actor"]["client_ip"], "127.0.0.1",
        "the client's address"
    );
    assert!(
        rename["actor"]["name"]
            .as_str()
            .unwrap()
            .starts_with(key.split('_').nth(1).unwrap()),
        "the key's id: {rename}"
    );
    assert_eq!(entries[2]["action"], "create");
    assert!(entries[2]["at"].as_str().unwrap().ends_with('Z'));

    // Filters, paging and bad input.
    let (_, groups) = api(&gw, "GET", "/audit?object_kind=group", None, &[&auth]);
    assert_eq!(groups["entries"].as_array().unwrap().len(), 2);
    let (_, one) = api(&gw, "GET", "/audit?limit=1", None, &[&auth]);
    let next = one["next"].as_i64().expect("a next page");
    let (_, rest) = api(
        &gw,
        "GET",
        &format!("/audit?before={next}&limit=500"),
        None,
        &[&auth],
    );
    assert_eq!(
        rest["entries"].as_array().unwrap().len() + 1,
        page["entries"].as_array().unwrap().len()
    );
    for (query, field) in [
        ("since=yesterday", "since"),
        ("actor_kind=robot", "actor_kind"),
        ("limit=0", "limit"),
    ] {
        let (code, e) = api(&gw, "GET", &format!("/audit?{query}"), None, &[&auth]);
        assert_eq!(code, 400, "{query}: {e}");
        assert_eq!(e["field"], field, "{e}");
    }

    // A policy admin may change policies but not read the audit log.
    let out = Command::new(env!("CARGO_BIN_EXE_sealpost"))
        .args(["apikey", "create", "--role", "policy_admin", "--config"])
        .arg(&config)
        .env_remove("SEALPOST_CONFIG")
        .output()
        .unwrap();
    let policy_key = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let (code, e) = api(&gw, "GET", "/audit", None, &[&bearer(&policy_key)]);
    assert_eq!(code, 403, "{e}");
    let entries: Value = api(&gw, "GET", "/audit?actor_kind=cli", None, &[&auth]).1;
    assert_eq!(
        entries["entries"].as_array().unwrap().len(),
        2,
        "the key's creation too"
    );
}
