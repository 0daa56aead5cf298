//! The policy engine end to end: objects created through the REST API with
//! a real HTTP client (curl), mail sent with a real SMTP client (swaks), and
//! each recipient's stored decision naming the policy; then a change to the
//! policy, which the very next message follows.

use std::process::Command;

use serde_json::{Value, json};

use crate::helpers::*;

/// One HTTP request with curl; returns the status and the parsed body
/// (`Value::Null` when empty).
pub(crate) fn api(
    gw: &TestGateway,
    method: &str,
    path: &str,
    body: Option<&[u8]>,
    headers: &[&str],
) -> (u16, Value) {
    let mut cmd = Command::new(require("curl"));
    cmd.args(["-s", "-o", "-", "-w", "\n%{http_code}", "-X", method]);
    for h in headers {
        cmd.args(["-H", h]);
    }
    let body_file;
    if let Some(body) = body {
        body_file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(body_file.path(), body).unwrap();
        cmd.args(["--data-binary", &format!("@{}", body_file.path().display())]);
    }
    cmd.arg(format!("http://{}/api/v1{path}", gw.admin));
    let out = cmd.output().expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap();
    let value = if body.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(body)
            .unwrap_or_else(|e| panic!("{method} {path}: not JSON ({e}): {body}"))
    };
    (code.parse().unwrap(), value)
}

pub(crate) fn auth(gw: &TestGateway) -> String {
    format!(
        "Authorization: Bearer {}",
        gw.api_key.as_deref().expect("first-run key")
    )
}

pub(crate) fn call(gw: &TestGateway, method: &str, path: &str, body: &Value) -> (u16, Value) {
    let auth = auth(gw);
    let body = serde_json::to_vec(body).unwrap();
    api(
        gw,
        method,
        path,
        (method != "GET" && method != "DELETE").then_some(&body[..]),
        &[&auth, "Content-Type: application/json"],
    )
}

fn send(gw: &TestGateway, to: &[&str]) -> sealpost_store::QueueId {
    let (ok, out) = swaks(
        gw.smtp,
        &["--from", "alice@corp.example", "--to", &to.join(",")],
    );
    assert!(ok, "{out}");
    queue_id(&out)
}

/// `(address, route, policy id)` of each recipient once none is queued.
fn decisions(gw: &TestGateway, id: &sealpost_store::QueueId) -> Vec<(String, String, Option<i64>)> {
    gw.recipients_when(id, "recipients settled", |r| {
        r.status != sealpost_store::RecipientStatus::Queued
    })
    .into_iter()
    .map(|r| (r.address, r.route, r.policy.map(|p| p.0)))
    .collect()
}

#[test]
fn policies_created_through_the_api_decide_the_next_message() {
    let sink = Sink::start(&[]);
    let gw = TestGateway::start(&format!(
        "[domains]\ninternal = [\"corp.example\"]\n[relay]\nnext_hop = \"{0}\"\ninternal_next_hop = \"{0}\"",
        sink.addr()
    ));

    let (code, _) = call(
        &gw,
        "POST",
        "/internal-domains",
        &json!({"domain": "*.corp-group.example"}),
    );
    assert_eq!(code, 201);
    let (code, domains) = call(&gw, "GET", "/internal-domains", &Value::Null);
    assert_eq!(code, 200);
    assert_eq!(
        domains,
        json!([{"domain": "corp.example", "source": "config"}, {"domain": "*.corp-group.example", "source": "api"}])
    );
    let (code, group) = call(
        &gw,
        "POST",
        "/groups",
        &json!({"name": "Partners", "addresses": ["p1@partner.example"], "domains": ["*.law.example"]}),
    );
    assert_eq!(code, 201, "{group}");
    let (code, definition) = call(
        &gw,
        "POST",
        "/definitions",
        &json!({"name": "Legal", "expiry_days": 14}),
    );
    assert_eq!(code, 201, "{definition}");
    let def = definition["id"].as_i64().unwrap();
    let (code, policy) = call(
        &gw,
        "POST",
        "/policies",
        &json!({
            "narrative": "Mail to partners goes through the portal",
            "action": "apply_definition", "definition_id": def,
            "from": {"kind": "internal"},
            "to": {"kind": "group", "group_id": group["id"]},
        }),
    );
    assert_eq!(code, 201, "{policy}");
    assert_eq!(policy["status"], "active");
    let pid = policy["id"].as_i64().unwrap();

    // One message: a group member (secure), another external recipient
    // (relayed, no policy), an internal recipient (relayed).
    let id = send(
        &gw,
        &["p1@partner.example", "x@other.example", "bob@corp.example"],
    );
    let got = decisions(&gw, &id);
    assert_eq!(
        got,
        vec![
            (
                "p1@partner.example".into(),
                format!("secure:{def}"),
                Some(pid)
            ),
            ("x@other.example".into(), "relay".into(), None),
            ("bob@corp.example".into(), "relay".into(), None),
        ]
    );
    let held = gw.block_on(gw.store.recipients(&id)).unwrap();
    assert_eq!(
        held[0].status,
        sealpost_store::RecipientStatus::Secure,
        "never relayed"
    );
    // Two deliveries: the relay copy, and the secure recipient's
    // notification (tests/e2e/secure.rs checks what is in it).
    let delivered = sink.wait_for(2);
    assert_eq!(delivered.len(), 2);
    let mut rcpts: Vec<Vec<String>> = delivered
        .iter()
        .map(|m| {
            let mut r = m.rcpt_tos.clone();
            r.sort();
            r
        })
        .collect();
    rcpts.sort();
    assert_eq!(
        rcpts,
        vec![
            vec!["bob@corp.example".to_owned(), "x@other.example".to_owned()],
            vec!["p1@partner.example".to_owned()],
        ],
        "the secure recipient gets only a notification"
    );

    // Change the policy: now other.example is selected, partners are not.
    // A PUT must carry every field (an omitted one is refused, never
    // defaulted); PATCH changes only what it names.
    let (code, err) = call(
        &gw,
        "PUT",
        &format!("/policies/{pid}"),
        &json!({
            "action": "apply_definition", "definition_id": def,
            "from": {"kind": "internal"},
            "to": {"kind": "domain", "value": "other.example"},
        }),
    );
    assert_eq!(
        (code, err["code"].as_str()),
        (400, Some("missing_field")),
        "{err}"
    );
    let (code, changed) = call(
        &gw,
        "PATCH",
        &format!("/policies/{pid}"),
        &json!({"to": {"kind": "domain", "value": "other.example"}}),
    );
    assert_eq!(code, 200, "{changed}");
    assert_eq!(changed["definition_id"], def, "{changed}");
    assert_eq!(changed["from"]["kind"], "internal", "{changed}");
    let id = send(&gw, &["p1@partner.example", "x@other.example"]);
    assert_eq!(
        decisions(&gw, &id),
        vec![
            ("p1@partner.example".into(), "relay".into(), None),
            ("x@other.example".into(), format!("secure:{def}"), Some(pid)),
        ]
    );

    // The explanation agrees.
    let (code, explained) = call(
        &gw,
        "POST",
        "/policy-test",
        &json!({"from": "alice@corp.example", "to": "x@other.example"}),
    );
    assert_eq!(code, 200, "{explained}");
    assert_eq!(explained["winner"], pid);
    assert_eq!(explained["route"], "secure");
    let (_, explained) = call(
        &gw,
        "POST",
        "/policy-test",
        &json!({"from": "alice@corp.example", "to": "p1@partner.example"}),
    );
    assert_eq!(explained["winner"], Value::Null);
    assert_eq!(explained["verdicts"][0]["mismatch"]["reason"], "recipient");

    // Filters and deletion rules.
    let (_, active) = call(&gw, "GET", "/policies?status=active", &Value::Null);
    assert_eq!(active.as_array().unwrap().len(), 1);
    let (_, disabled) = call(&gw, "GET", "/policies?status=disabled", &Value::Null);
    assert_eq!(disabled, json!([]));
    let (code, err) = call(&gw, "DELETE", &format!("/definitions/{def}"), &Value::Null);
    assert_eq!(
        (code, err["code"].as_str()),
        (422, Some("unknown_definition")),
        "{err}"
    );
    let (code, err) = call(&gw, "DELETE", "/definitions/1", &Value::Null);
    assert_eq!(
        (code, err["code"].as_str()),
        (422, Some("default_definition")),
        "{err}"
    );
    let (code, _) = call(&gw, "DELETE", &format!("/policies/{pid}"), &Value::Null);
    assert_eq!(code, 204);
    let (code, err) = call(&gw, "GET", &format!("/policies/{pid}"), &Value::Null);
    assert_eq!((code, err["code"].as_str()), (404, Some("not_found")));
}

#[test]
fn bad_api_input_gets_json_errors_naming_the_field() {
    let gw = TestGateway::start("");
    let auth = auth(&gw);
    let json_type = "Content-Type: application/json";
    let post = |path: &str, body: &[u8]| api(&gw, "POST", path, Some(body), &[&auth, json_type]);
    let policy = |extra: &str| {
        format!(
            r#"{{"action": "apply_definition", "definition_id": 1, "from": {{"kind": "internal"}},
                "to": {{"kind": "external"}} {extra}}}"#
        )
    };

    // (case, body, status, code, field)
    type Case<'a> = (&'a str, Vec<u8>, u16, &'a str, Option<&'a str>);
    let cases: Vec<Case> = vec![
        ("wrong type", policy(r#", "enabled": "yes""#).into_bytes(), 400, "invalid_field", Some("enabled")),
        ("unknown field", policy(r#", "colour": 1"#).into_bytes(), 400, "invalid_field", None),
        ("bad enum", br#"{"action": "explode", "from": {"kind": "internal"}, "to": {"kind": "external"}}"#.to_vec(), 400, "invalid_field", Some("action")),
        ("malformed", b"{\"action\": ".to_vec(), 400, "malformed_json", None),
        ("invalid UTF-8", b"{\"narrative\": \"\xff\xfe\"}".to_vec(), 400, "malformed_json", None),
        ("bi-directional", policy(r#", "bidirectional": true"#).into_bytes(), 422, "bidirectional_not_allowed", Some("bidirectional")),
        ("inverted dates", policy(r#", "starts_at": "2026-02-01T00:00:00Z", "ends_at": "2026-01-01T00:00:00Z""#).into_bytes(), 422, "empty_date_range", Some("ends_at")),
        ("bad CIDR", policy(r#", "source_ips": ["10.0.0.0/40"]"#).into_bytes(), 422, "invalid_cidr", Some("source_ips[0]")),
        ("unknown definition", policy("").replace("\"definition_id\": 1", "\"definition_id\": 77").into_bytes(), 422, "unknown_definition", Some("policies[id=1].definition_id")),
        ("attribute without name", br#"{"action": "no_action", "from": {"kind": "attribute", "value": "Legal"}, "to": {"kind": "external"}}"#.to_vec(), 422, "missing_attribute_name", Some("from.attribute")),
        ("huge body", vec![b' '; 2 * 1024 * 1024], 413, "body_too_large", None),
    ];
    for (name, body, status, code, field) in cases {
        let (got, err) = post("/policies", &body);
        assert_eq!(got, status, "{name}: {err}");
        assert_eq!(err["code"], code, "{name}: {err}");
        assert!(
            err["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{name}: {err}"
        );
        if let Some(field) = field {
            assert_eq!(err["field"], field, "{name}: {err}");
        }
    }
    let (code, err) = api(
        &gw,
        "POST",
        "/policies",
        Some(policy("").as_bytes()),
        &[&auth, "Content-Type: text/plain"],
    );
    assert_eq!(
        (code, err["code"].as_str()),
        (415, Some("unsupported_media_type"))
    );
    let (code, err) = api(&gw, "GET", "/policies", None, &[]);
    assert_eq!((code, err["code"].as_str()), (401, Some("unauthorized")));
    let (code, _) = api(
        &gw,
        "GET",
        "/policies",
        None,
        &["Authorization: Bearer sp_000000000000_00"],
    );
    assert_eq!(code, 401);
    let (code, err) = api(&gw, "GET", "/policies?status=sideways", None, &[&auth]);
    assert_eq!((code, err["code"].as_str()), (400, Some("invalid_query")));
    let (code, err) = api(&gw, "GET", "/policies/abc", None, &[&auth]);
    assert_eq!(
        (code, err["code"].as_str()),
        (400, Some("invalid_path")),
        "{err}"
    );
    let (code, err) = api(&gw, "PATCH", "/policies", None, &[&auth]);
    assert_eq!(
        (code, err["code"].as_str()),
        (405, Some("method_not_allowed")),
        "{err}"
    );
    let twice = br#"{"definitions": [{"id": 1, "is_default": true, "name": "Default"}],
        "policies": [
          {"id": 5, "action": "no_action", "from": {"kind": "internal"}, "to": {"kind": "external"}},
          {"id": 5, "action": "no_action", "from": {"kind": "everyone"}, "to": {"kind": "external"}}]}"#;
    // A whole document must carry every section and every field without a
    // safe default (issue 14: a default filled in can re-enable a policy
    // or close a definition to manual use).
    let (code, err) = api(&gw, "PUT", "/config", Some(twice), &[&auth, json_type]);
    assert_eq!(
        (code, err["code"].as_str(), err["field"].as_str()),
        (400, Some("missing_field"), Some("internal_domains")),
        "{err}"
    );
    let (_, mut whole) = api(&gw, "GET", "/config", None, &[&auth]);
    let policy = |from: &str| {
        json!({"id": 5, "narrative": "", "action": "no_action", "from": {"kind": from},
               "to": {"kind": "external"}, "enabled": false, "override": false, "source_ips": []})
    };
    whole["policies"] = json!([policy("internal")]);
    whole["policies"][0]
        .as_object_mut()
        .unwrap()
        .remove("enabled");
    let body = serde_json::to_vec(&whole).unwrap();
    let (code, err) = api(&gw, "PUT", "/config", Some(&body), &[&auth, json_type]);
    assert_eq!(
        (code, err["field"].as_str()),
        (400, Some("policies[0].enabled")),
        "{err}"
    );
    whole["policies"] = json!([policy("internal"), policy("everyone")]);
    let body = serde_json::to_vec(&whole).unwrap();
    let (code, err) = api(&gw, "PUT", "/config", Some(&body), &[&auth, json_type]);
    assert_eq!(
        (code, err["code"].as_str()),
        (422, Some("duplicate_id")),
        "{err}"
    );
    // Nothing was stored by any of that.
    let (_, list) = api(&gw, "GET", "/policies", None, &[&auth]);
    assert_eq!(list, json!([]));
}

#[test]
fn the_openapi_document_validates_and_lists_the_endpoints() {
    let gw = TestGateway::start("");
    let (code, doc) = api(&gw, "GET", "/openapi.json", None, &[]);
    assert_eq!(code, 200);
    for path in [
        "/policies",
        "/policies/{id}",
        "/policy-test",
        "/groups",
        "/definitions",
        "/directory/users",
        "/directory/users/import",
        "/internal-domains",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} missing");
    }
    let file = gw.data_dir().join("openapi.json");
    std::fs::write(&file, serde_json::to_vec(&doc).unwrap()).unwrap();
    // The validator comes from PyPI for the python3 on PATH
    // (scripts/install-test-tools.sh installs it).
    let out = Command::new("python3")
        .args([
            "-c",
            "import sys\nfrom openapi_spec_validator import validate\nfrom openapi_spec_validator.readers import read_from_filename\nspec, _ = read_from_filename(sys.argv[1])\nvalidate(spec)\nprint('valid')",
        ])
        .arg(&file)
        .output()
        .expect("python3 runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success() && text.contains("valid"), "{text}");
}

#[test]
fn csv_import_and_api_keys_from_the_cli() {
    let gw = TestGateway::start("[domains]\ninternal = [\"corp.example\"]");
    let auth = auth(&gw);
    let csv = "address,display_name,department\r\nalice@corp.example,\"Smith, Alice\",Legal\r\nbob@corp.example,Bob,Sales\r\n";
    let (code, body) = api(
        &gw,
        "POST",
        "/directory/users/import",
        Some(csv.as_bytes()),
        &[&auth, "Content-Type: text/csv"],
    );
    assert_eq!((code, body["imported"].as_u64()), (200, Some(2)), "{body}");
    let (code, alice) = api(
        &gw,
        "GET",
        "/directory/users/Alice@corp.example",
        None,
        &[&auth],
    );
    assert_eq!(code, 200);
    assert_eq!(alice["attributes"]["department"], "Legal");
    let (code, err) = api(
        &gw,
        "POST",
        "/directory/users/import",
        Some(b"address\nnot an address\n"),
        &[&auth, "Content-Type: text/csv"],
    );
    assert_eq!(
        (code, err["code"].as_str()),
        (422, Some("invalid_address")),
        "{err}"
    );

    // A read-only key made by the CLI while the gateway runs can read and
    // cannot write.
    let config_path = gw.data_dir().join("sealpost.toml");
    let config = config_path.to_str().unwrap();
    let (code, stdout, stderr) = cli(
        &gw,
        &[
            "apikey",
            "create",
            "--role",
            "read_only",
            "--config",
            config,
        ],
        None,
    );
    assert_eq!(code, 0, "{stderr}");
    let key = stdout.trim().to_owned();
    let ro = format!("Authorization: Bearer {key}");
    let (code, _) = api(&gw, "GET", "/policies", None, &[&ro]);
    assert_eq!(code, 200);
    let (code, err) = api(
        &gw,
        "POST",
        "/groups",
        Some(br#"{"name": "x"}"#),
        &[&ro, "Content-Type: application/json"],
    );
    assert_eq!((code, err["code"].as_str()), (403, Some("forbidden")));
    // Keys are listed without secrets and can be revoked at once.
    let (code, err) = api(&gw, "GET", "/api-keys", None, &[&ro]);
    assert_eq!((code, err["code"].as_str()), (403, Some("forbidden")));
    let ro_id = key.split('_').nth(1).unwrap();
    // The use is recorded off the request's path, so give it a moment.
    let keys = wait_for(
        std::time::Duration::from_secs(10),
        "key use recorded",
        || {
            let (code, keys) = api(&gw, "GET", "/api-keys", None, &[&auth]);
            assert_eq!(code, 200);
            keys.as_array()
                .unwrap()
                .iter()
                .any(|k| {
                    k["id"] == ro_id && k["role"] == "read_only" && k["last_used_at"].is_string()
                })
                .then_some(keys)
        },
    );
    assert!(
        !keys.to_string().contains(key.rsplit('_').next().unwrap()),
        "no secret in the list"
    );
    let (_, stdout, _) = cli(&gw, &["apikey", "list", "--config", config], None);
    assert!(stdout.contains(ro_id), "{stdout}");
    let (code, _, stderr) = cli(&gw, &["apikey", "revoke", &key, "--config", config], None);
    assert_eq!(code, 0, "{stderr}");
    let (code, _) = api(&gw, "GET", "/policies", None, &[&ro]);
    assert_eq!(code, 401, "a revoked key stops working at once");
    let (code, _) = api(&gw, "DELETE", &format!("/api-keys/{ro_id}"), None, &[&auth]);
    assert_eq!(code, 404);

    let (code, _, stderr) = cli(
        &gw,
        &["apikey", "create", "--role", "emperor", "--config", config],
        None,
    );
    assert_eq!(code, 2);
    assert!(stderr.contains("use one of"), "{stderr}");
}

/// Runs the CLI against the gateway's API; returns (exit code, stdout, stderr).
fn cli(gw: &TestGateway, args: &[&str], stdin: Option<&str>) -> (i32, String, String) {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_sealpost"))
        .args(args)
        .env("SEALPOST_API_ADDR", gw.admin.to_string())
        .env("SEALPOST_API_KEY", gw.api_key.as_deref().unwrap())
        .env_remove("SEALPOST_CONFIG")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(text) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn cli_policy_commands_and_export_import_round_trip() {
    let gw = TestGateway::start("[domains]\ninternal = [\"corp.example\"]");
    let (code, out, err) = cli(
        &gw,
        &["policy", "add", "-"],
        Some(
            r#"{"narrative": "all external mail", "action": "apply_definition", "definition_id": 1,
                 "from": {"kind": "internal"}, "to": {"kind": "external"}}"#,
        ),
    );
    assert_eq!(code, 0, "{err}");
    let id: i64 = out.trim().parse().unwrap();

    let (code, out, _) = cli(&gw, &["policy", "list"], None);
    assert_eq!(code, 0);
    assert!(
        out.lines().any(|l| l.starts_with(&id.to_string())
            && l.contains("active")
            && l.contains("all external mail")),
        "{out}"
    );

    let (code, out, _) = cli(
        &gw,
        &[
            "policy",
            "test",
            "--from",
            "alice@corp.example",
            "--to",
            "x@ext.example",
        ],
        None,
    );
    assert_eq!(code, 0);
    assert!(out.contains("direction: internal to external"), "{out}");
    assert!(
        out.contains(&format!("winner: policy {id} -> secure (definition 1)")),
        "{out}"
    );
    let (_, out, _) = cli(
        &gw,
        &[
            "policy",
            "test",
            "--from",
            "alice@corp.example",
            "--to",
            "bob@corp.example",
        ],
        None,
    );
    assert!(
        out.contains("winner: none -> relay") && out.contains("internal recipient"),
        "{out}"
    );

    let (code, _, err) = cli(
        &gw,
        &["policy", "add", "-"],
        Some(
            r#"{"action": "apply_definition", "definition_id": 1, "bidirectional": true,
                 "from": {"kind": "internal"}, "to": {"kind": "external"}}"#,
        ),
    );
    assert_eq!(code, 2);
    assert!(
        err.contains("bidirectional") && err.contains("internal → external"),
        "{err}"
    );

    let csv = gw.data_dir().join("users.csv");
    std::fs::write(&csv, "address,display_name,department\nalice@corp.example,Alice,Legal\nbob@corp.example,Bob,Sales\ncarol@corp.example,\"Carol\nSmith\",Legal\n").unwrap();
    let (code, out, err) = cli(&gw, &["import", "users", csv.to_str().unwrap()], None);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "3");
    assert!(err.contains("imported 3 of 3 users"), "{err}");

    let exported = gw.data_dir().join("policy.toml");
    let (code, _, err) = cli(
        &gw,
        &[
            "export",
            "--format",
            "toml",
            "-o",
            exported.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(code, 0, "{err}");
    let text = std::fs::read_to_string(&exported).unwrap();
    assert!(
        text.contains("all external mail") && text.contains("carol@corp.example"),
        "{text}"
    );

    let (code, _, _) = cli(&gw, &["policy", "remove", &id.to_string()], None);
    assert_eq!(code, 0);
    let (code, _, err) = cli(&gw, &["policy", "show", &id.to_string()], None);
    assert_eq!(code, 2, "{err}");
    let (code, _, err) = cli(&gw, &["import", exported.to_str().unwrap()], None);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("1 policies") && err.contains("3 users"),
        "{err}"
    );
    let (code, out, _) = cli(&gw, &["policy", "show", &id.to_string()], None);
    assert_eq!(code, 0);
    assert!(out.contains("all external mail"), "{out}");
}

/// Issue 16 item 5: `POST /policies/preview` replays the mail the gateway
/// accepted through the policies with the draft applied; nothing is saved.
#[test]
fn the_impact_preview_counts_real_traffic_and_saves_nothing() {
    let internal = Sink::start(&[]);
    let external = Sink::start(&[]);
    let gw = crate::secure::gateway(&internal, &external, "");
    for to in [
        "a@other.example",
        "b@other.example,c@corp.example",
        "d@third.example",
    ] {
        let (ok, out) = swaks(gw.smtp, &["--from", "alice@corp.example", "--to", to]);
        assert!(ok, "{out}");
    }
    let draft = json!({"narrative": "Other", "action": "apply_definition", "definition_id": 1,
        "from": {"kind": "internal"}, "to": {"kind": "domain", "value": "other.example"}});
    let (code, impact) = call(&gw, "POST", "/policies/preview", &json!({"policy": draft}));
    assert_eq!(code, 200, "{impact}");
    assert_eq!(impact["messages"], 3, "{impact}");
    assert_eq!(impact["recipients"], 4);
    assert_eq!(impact["changed_messages"], 2);
    assert_eq!(impact["to_secure"], 2);
    assert_eq!(impact["domains"][0]["domain"], "other.example");
    assert_eq!(impact["sample"].as_array().unwrap().len(), 2);
    assert_eq!(impact["days"], 7);

    let (code, e) = call(
        &gw,
        "POST",
        "/policies/preview",
        &json!({"policy": draft, "days": 0}),
    );
    assert_eq!((code, e["field"].as_str()), (422, Some("days")), "{e}");
    let mut bad = draft.clone();
    bad["source_ips"] = json!(["10.0.0.0/33"]);
    let (code, e) = call(&gw, "POST", "/policies/preview", &json!({"policy": bad}));
    assert_eq!(
        (code, e["field"].as_str()),
        (422, Some("policy.source_ips[0]")),
        "{e}"
    );
    let (code, e) = call(
        &gw,
        "POST",
        "/policies/preview",
        &json!({"policy": draft, "replaces": 999}),
    );
    assert_eq!(code, 404, "{e}");
    let (_, list) = call(&gw, "GET", "/policies", &json!(null));
    assert_eq!(list.as_array().unwrap().len(), 0, "nothing saved");
}

/// Issue 17 item 1: SMTP accounts through the API — a password made by
/// sealpost and shown once (only its argon2id hash is kept), senders and
/// rate checked by field, changes audited without the hash.
#[test]
fn smtp_accounts_are_managed_through_the_api() {
    let gw = TestGateway::start("");
    let (code, made) = call(
        &gw,
        "POST",
        "/smtp-accounts",
        &json!({"name": "CRM", "senders": ["crm@corp.example", "*.corp.example"], "rate_per_hour": 500}),
    );
    assert_eq!(code, 201, "{made}");
    assert_eq!(made["name"], "crm");
    let password = made["password"].as_str().unwrap().to_owned();
    assert!(password.len() >= 20, "{password}");
    let (code, again) = call(
        &gw,
        "POST",
        "/smtp-accounts",
        &json!({"name": "crm", "senders": ["x@corp.example"]}),
    );
    assert_eq!(
        (code, again["code"].as_str()),
        (409, Some("name_taken")),
        "{again}"
    );
    for (body, field) in [
        (
            json!({"name": "bad name", "senders": ["a@corp.example"]}),
            "name",
        ),
        (json!({"name": "app", "senders": []}), "senders"),
        (
            json!({"name": "app", "senders": ["ok.example", "not a domain"]}),
            "senders[1]",
        ),
        (
            json!({"name": "app", "senders": ["a@corp.example"], "rate_per_hour": 0}),
            "rate_per_hour",
        ),
    ] {
        let (code, e) = call(&gw, "POST", "/smtp-accounts", &body);
        assert_eq!(
            (code, e["field"].as_str()),
            (422, Some(field)),
            "{body}: {e}"
        );
    }
    let (code, list) = call(&gw, "GET", "/smtp-accounts", &json!(null));
    assert_eq!(code, 200);
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert!(list[0].get("password").is_none() && !list.to_string().contains("argon2"));

    let (code, changed) = call(
        &gw,
        "PATCH",
        "/smtp-accounts/crm",
        &json!({"rate_per_hour": 20}),
    );
    assert_eq!(
        (code, changed["rate_per_hour"].as_u64()),
        (200, Some(20)),
        "{changed}"
    );
    assert_eq!(
        changed["senders"].as_array().unwrap().len(),
        2,
        "senders kept"
    );
    let (code, reset) = call(&gw, "POST", "/smtp-accounts/crm/password", &json!({}));
    assert_eq!(code, 200, "{reset}");
    assert_ne!(reset["password"].as_str().unwrap(), password);
    let (code, _) = call(&gw, "DELETE", "/smtp-accounts/crm", &json!(null));
    assert_eq!(code, 204);
    let (code, _) = call(&gw, "GET", "/smtp-accounts/crm", &json!(null));
    assert_eq!(code, 404);

    let (_, audit) = call(&gw, "GET", "/audit?object_kind=smtp_account", &json!(null));
    let actions: Vec<&str> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["delete", "reset_password", "update", "create"]);
    assert!(!audit.to_string().contains("argon2"), "{audit}");
}

/// `sealpost smtp-account add|list|passwd|remove` through the running
/// gateway: the password alone on stdout, shown once; a bad name or
/// sender is refused with what to fix.
#[test]
fn smtp_accounts_are_managed_with_the_cli() {
    let gw = TestGateway::start("");
    let cli = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_sealpost"))
            .args(args)
            .arg("--config")
            .arg(gw.data_dir().join("sealpost.toml"))
            .env("SEALPOST_API_KEY", gw.api_key.as_deref().unwrap())
            .env("SEALPOST_API_ADDR", gw.admin.to_string())
            .env_remove("SEALPOST_CONFIG")
            .output()
            .unwrap()
    };
    let out = cli(&[
        "smtp-account",
        "add",
        "crm",
        "--sender",
        "crm@corp.example",
        "--rate",
        "50",
    ]);
    assert!(out.status.success(), "{out:?}");
    let password = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(
        password.len() >= 20 && !password.contains(' '),
        "{password:?}"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("only this once"));

    let listed = cli(&["smtp-account", "list"]);
    let text = String::from_utf8_lossy(&listed.stdout);
    assert!(
        text.contains("crm@corp.example") && text.contains("50"),
        "{text}"
    );
    assert!(!text.contains(&password));

    let again = cli(&["smtp-account", "passwd", "crm"]);
    assert!(again.status.success(), "{again:?}");
    assert_ne!(String::from_utf8_lossy(&again.stdout).trim(), password);

    let bad = cli(&["smtp-account", "add", "app", "--sender", "not a domain"]);
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("senders[0]"),
        "{bad:?}"
    );
    let bad_name = cli(&["smtp-account", "remove", "a/b"]);
    assert_eq!(bad_name.status.code(), Some(2), "{bad_name:?}");

    assert!(cli(&["smtp-account", "remove", "crm"]).status.success());
    let gone = cli(&["smtp-account", "remove", "crm"]);
    assert!(!gone.status.success());
    assert!(
        String::from_utf8_lossy(&gone.stderr).contains("no SMTP account"),
        "{gone:?}"
    );
}
