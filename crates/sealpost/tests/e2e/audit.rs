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

/// Every create, update and delete of each configuration object through
/// the API, and of policies and administrators through the CLI, leaves one
/// entry: a create has only `after`, an update both, a delete only
/// `before`; each names its object and who did it.
#[test]
fn every_create_update_and_delete_is_audited_with_before_and_after() {
    let gw = TestGateway::start("");
    let key = gw.api_key.clone().unwrap();
    let auth = bearer(&key);
    let json_type = "Content-Type: application/json";
    let call = |method: &str, path: &str, body: Option<&str>| -> Value {
        let (code, v) = api(
            &gw,
            method,
            path,
            body.map(str::as_bytes),
            &[&auth, json_type],
        );
        assert!((200..300).contains(&code), "{method} {path}: {code} {v}");
        v
    };
    // (object kind, create path, create body, update method and body, id field)
    let group = call(
        "POST",
        "/groups",
        Some(r#"{"name": "Partners", "addresses": ["p@partner.example"]}"#),
    );
    let gid = group["id"].as_i64().unwrap();
    call(
        "PATCH",
        &format!("/groups/{gid}"),
        Some(r#"{"name": "Partners EU"}"#),
    );
    call("DELETE", &format!("/groups/{gid}"), None);

    let def = call("POST", "/definitions", Some(r#"{"name": "Legal"}"#));
    let did = def["id"].as_i64().unwrap();
    call(
        "PATCH",
        &format!("/definitions/{did}"),
        Some(r#"{"expiry_days": 10}"#),
    );
    call("DELETE", &format!("/definitions/{did}"), None);

    let policy = r#"{"narrative": "Partners", "action": "apply_definition", "definition_id": 1,
        "from": {"kind": "internal"}, "to": {"kind": "domain", "value": "partner.example"}}"#;
    let p = call("POST", "/policies", Some(policy));
    let pid = p["id"].as_i64().unwrap();
    call(
        "PATCH",
        &format!("/policies/{pid}"),
        Some(r#"{"enabled": false}"#),
    );
    call("DELETE", &format!("/policies/{pid}"), None);

    call(
        "POST",
        "/internal-domains",
        Some(r#"{"domain": "corp2.example"}"#),
    );
    call("DELETE", "/internal-domains/corp2.example", None);

    call(
        "POST",
        "/directory/users",
        Some(r#"{"address": "ann@corp.example", "attributes": {"department": "Legal"}}"#),
    );
    call(
        "POST",
        "/directory/users",
        Some(r#"{"address": "ann@corp.example", "attributes": {"department": "Sales"}}"#),
    );
    call("DELETE", "/directory/users/ann@corp.example", None);

    // Through the CLI: a policy added and removed, an administrator made,
    // reset and removed.
    let config = gw.data_dir().join("sealpost.toml");
    let file = gw.data_dir().join("policy.json");
    std::fs::write(&file, policy).unwrap();
    let cli = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_sealpost"))
            .args(args)
            .arg("--config")
            .arg(&config)
            .env("SEALPOST_API_KEY", &key)
            .env("SEALPOST_API_ADDR", gw.admin.to_string())
            .env("USER", "operator-on-host")
            .env_remove("SEALPOST_CONFIG")
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let added = cli(&["policy", "add", file.to_str().unwrap()]);
    let cli_pid = serde_json::from_str::<Value>(&added)
        .ok()
        .and_then(|v| v["id"].as_i64())
        .or_else(|| {
            added
                .split(|c: char| !c.is_ascii_digit())
                .find(|s| !s.is_empty())
                .and_then(|s| s.parse().ok())
        })
        .unwrap_or_else(|| panic!("the new policy's id in {added:?}"));
    cli(&["policy", "remove", &cli_pid.to_string()]);
    cli(&["admin", "create", "erin", "--role", "tracking_admin"]);
    cli(&["admin", "reset-password", "erin"]);
    cli(&["admin", "remove", "erin"]);

    let (code, page) = api(&gw, "GET", "/audit?limit=200", None, &[&auth]);
    assert_eq!(code, 200, "{page}");
    let entries = page["entries"].as_array().unwrap();
    let find = |kind: &str, id: &str, action: &str| -> &Value {
        entries
            .iter()
            .find(|e| e["object_kind"] == kind && e["object_id"] == id && e["action"] == action)
            .unwrap_or_else(|| panic!("no {action} of {kind} {id} in {page}"))
    };
    let shape = |e: &Value, before: bool, after: bool| {
        assert_eq!(!e["before"].is_null(), before, "before of {e}");
        assert_eq!(!e["after"].is_null(), after, "after of {e}");
        assert!(e["actor"]["kind"].is_string() && e["at"].is_string(), "{e}");
    };
    for (kind, id) in [
        ("group", gid.to_string()),
        ("definition", did.to_string()),
        ("policy", pid.to_string()),
    ] {
        shape(find(kind, &id, "create"), false, true);
        let update = find(kind, &id, "update");
        shape(update, true, true);
        assert_ne!(update["before"], update["after"], "{update}");
        shape(find(kind, &id, "delete"), true, false);
    }
    assert_eq!(
        find("group", &gid.to_string(), "update")["after"]["name"],
        "Partners EU"
    );
    shape(
        find("internal_domain", "corp2.example", "create"),
        false,
        true,
    );
    shape(
        find("internal_domain", "corp2.example", "delete"),
        true,
        false,
    );
    shape(
        find("directory_user", "ann@corp.example", "create"),
        false,
        true,
    );
    let moved = find("directory_user", "ann@corp.example", "update");
    shape(moved, true, true);
    assert_eq!(moved["after"]["attributes"]["department"], "Sales");
    shape(
        find("directory_user", "ann@corp.example", "delete"),
        true,
        false,
    );

    let cli_policy = find("policy", &cli_pid.to_string(), "create");
    assert_eq!(
        cli_policy["actor"]["kind"], "api_key",
        "the CLI speaks the API"
    );
    shape(find("policy", &cli_pid.to_string(), "delete"), true, false);
    let made = find("administrator", "erin", "create");
    assert_eq!(made["actor"]["kind"], "cli");
    shape(made, false, true);
    shape(find("administrator", "erin", "delete"), true, false);
    assert!(
        entries.iter().any(|e| e["object_kind"] == "administrator"
            && e["object_id"] == "erin"
            && e["action"] != "create"
            && e["action"] != "delete"),
        "the reset is recorded"
    );
    assert!(
        !page.to_string().contains("argon2"),
        "no password hash in the audit log"
    );
}
