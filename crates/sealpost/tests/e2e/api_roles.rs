//! Roles over every route of `/api/v1` (issue 16): the table below names
//! the roles of every method and path, it must list exactly the routes the
//! OpenAPI document (generated from the handlers) has, so a new route
//! without a rule fails here, and every route answers 403 to every role
//! its rule excludes, before the request's body is even read.

use std::{collections::BTreeSet, process::Command};

use crate::{helpers::*, policy_api::api};

const ALL: &[&str] = &["super_admin", "policy_admin", "tracking_admin", "read_only"];
const POLICY: &[&str] = &["super_admin", "policy_admin"];
const MESSAGES: &[&str] = &["super_admin", "tracking_admin"];
const SUPER: &[&str] = &["super_admin"];
const AUDITORS: &[&str] = &["super_admin", "read_only"];

/// (method, path, roles allowed)
const RULES: &[(&str, &str, &[&str])] = &[
    ("get", "/internal-domains", ALL),
    ("post", "/internal-domains", POLICY),
    ("delete", "/internal-domains/{domain}", POLICY),
    ("get", "/directory/users", ALL),
    ("post", "/directory/users", POLICY),
    ("get", "/directory/users/{address}", ALL),
    ("delete", "/directory/users/{address}", POLICY),
    ("post", "/directory/users/import", POLICY),
    ("get", "/groups", ALL),
    ("post", "/groups", POLICY),
    ("get", "/groups/{id}", ALL),
    ("put", "/groups/{id}", POLICY),
    ("patch", "/groups/{id}", POLICY),
    ("delete", "/groups/{id}", POLICY),
    ("get", "/definitions", ALL),
    ("post", "/definitions", POLICY),
    ("get", "/definitions/{id}", ALL),
    ("put", "/definitions/{id}", POLICY),
    ("patch", "/definitions/{id}", POLICY),
    ("delete", "/definitions/{id}", POLICY),
    ("post", "/definitions/{id}/preview", ALL),
    ("post", "/definitions/{id}/default", POLICY),
    ("get", "/policies", ALL),
    ("post", "/policies", POLICY),
    ("post", "/policies/preview", POLICY),
    ("get", "/policies/{id}", ALL),
    ("put", "/policies/{id}", POLICY),
    ("patch", "/policies/{id}", POLICY),
    ("delete", "/policies/{id}", POLICY),
    ("post", "/policy-test", ALL),
    ("get", "/api-keys", SUPER),
    ("delete", "/api-keys/{id}", SUPER),
    ("get", "/smtp-accounts", SUPER),
    ("post", "/smtp-accounts", SUPER),
    ("get", "/smtp-accounts/{name}", SUPER),
    ("patch", "/smtp-accounts/{name}", SUPER),
    ("delete", "/smtp-accounts/{name}", SUPER),
    ("post", "/smtp-accounts/{name}/password", SUPER),
    ("post", "/keys/rotate", SUPER),
    ("get", "/keys/rotation", SUPER),
    ("get", "/audit", AUDITORS),
    ("get", "/messages", ALL),
    ("get", "/messages/{id}", ALL),
    ("post", "/messages/recall", MESSAGES),
    ("post", "/messages/{id}/recall", MESSAGES),
    ("post", "/messages/{id}/extend", MESSAGES),
    ("get", "/queue", ALL),
    ("get", "/queue/recipients", ALL),
    ("post", "/queue/recipients/{id}/retry", MESSAGES),
    ("post", "/queue/recipients/{id}/bounce", MESSAGES),
    ("post", "/queue/recipients/{id}/delete", MESSAGES),
    ("post", "/queue/retry", MESSAGES),
    ("post", "/queue/bounce", MESSAGES),
    ("post", "/queue/delete", MESSAGES),
    ("get", "/config", ALL),
    ("put", "/config", POLICY),
    ("get", "/branding", ALL),
    ("put", "/branding", POLICY),
];

#[test]
fn every_api_route_has_a_role_rule_and_refuses_the_roles_it_excludes() {
    let gw = TestGateway::start("");
    let super_key = gw.api_key.clone().unwrap();
    let config = gw.data_dir().join("sealpost.toml");
    let mut keys = vec![("super_admin", super_key.clone())];
    for role in ["policy_admin", "tracking_admin", "read_only"] {
        let out = Command::new(env!("CARGO_BIN_EXE_sealpost"))
            .args(["apikey", "create", "--role", role, "--config"])
            .arg(&config)
            .env_remove("SEALPOST_CONFIG")
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        keys.push((role, String::from_utf8_lossy(&out.stdout).trim().to_owned()));
    }

    // The table lists exactly the documented routes.
    let (code, doc) = api(&gw, "GET", "/openapi.json", None, &[]);
    assert_eq!(code, 200);
    let documented: BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .filter(|m| ["get", "post", "put", "patch", "delete"].contains(&m.as_str()))
                .map(|m| (m.clone(), path.clone()))
                .collect::<Vec<_>>()
        })
        .collect();
    let ruled: BTreeSet<(String, String)> = RULES
        .iter()
        .map(|(m, p, _)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    assert_eq!(
        documented.difference(&ruled).collect::<Vec<_>>(),
        Vec::<&(String, String)>::new(),
        "routes without a role rule in this table"
    );
    assert_eq!(
        ruled.difference(&documented).collect::<Vec<_>>(),
        Vec::<&(String, String)>::new(),
        "rules for routes that do not exist"
    );

    let mut denials = 0;
    for (method, path, allowed) in RULES {
        let concrete = path
            .replace("{domain}", "corp.example")
            .replace("{address}", "a@corp.example")
            .replace("{id}", "1")
            .replace("{name}", "crm");
        for (role, key) in &keys {
            if allowed.contains(role) {
                continue;
            }
            let auth = format!("Authorization: Bearer {key}");
            let (code, body) = api(
                &gw,
                &method.to_ascii_uppercase(),
                &concrete,
                Some(b"{}"),
                &[&auth, "Content-Type: application/json"],
            );
            assert_eq!(code, 403, "{method} {path} as {role}: {body}");
            assert_eq!(body["code"], "forbidden", "{body}");
            denials += 1;
        }
    }
    assert!(denials > 40, "{denials}");
    // Nothing changed on the way.
    let (_, audit) = api(
        &gw,
        "GET",
        "/audit",
        None,
        &[&format!("Authorization: Bearer {super_key}")],
    );
    let changes = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["actor"]["kind"] == "api_key")
        .count();
    assert_eq!(changes, 0, "{audit}");
}
