//! Issue 14: a sender's request for secure delivery is never dropped in
//! silence, and the configuration cannot be changed into one that would
//! drop it. Each test here failed (the message went out in clear, or the
//! breaking change was accepted) before the fix.

use std::time::Duration;

use serde_json::{Value, json};

use crate::{
    helpers::*,
    policy_api::call,
    secure::{decoded_text, gateway, send},
};

/// Issue 14, defect 1: `PUT /definitions/1` with only a name used to
/// return 200 and silently turn `manual_use` off, after which a tagged
/// subject was relayed in clear. PUT is now a full replacement, partial
/// changes are PATCH, and no change may break the subject tag.
#[test]
fn issue_14_a_partial_put_cannot_turn_the_subject_tag_off() {
    let internal = Sink::start(&[]);
    let external = Sink::start(&[]);
    let gw = gateway(&internal, &external, "");

    let (code, err) = call(&gw, "PUT", "/definitions/1", &json!({"name": "Default"}));
    assert_eq!(code, 400, "{err}");
    assert_eq!(err["code"], "missing_field", "{err}");
    assert!(
        err["message"].as_str().unwrap().contains("manual_use"),
        "{err}"
    );

    // Turning manual use off on the definition the tag applies is refused,
    // by PATCH and by a full PUT alike.
    let (code, err) = call(
        &gw,
        "PATCH",
        "/definitions/1",
        &json!({"manual_use": false}),
    );
    assert_eq!(code, 422, "{err}");
    assert_eq!(err["code"], "subject_tag_definition_not_manual", "{err}");
    assert_eq!(err["field"], "definitions[id=1].manual_use", "{err}");
    let (code, mut full) = call(&gw, "GET", "/definitions/1", &Value::Null);
    assert_eq!(code, 200);
    full.as_object_mut().unwrap().remove("id");
    full.as_object_mut().unwrap().remove("is_default");
    full["manual_use"] = json!(false);
    let (code, err) = call(&gw, "PUT", "/definitions/1", &full);
    assert_eq!(code, 422, "{err}");

    // Nor by replacing the whole configuration.
    let (code, mut whole) = call(&gw, "GET", "/config", &Value::Null);
    assert_eq!(code, 200);
    whole["definitions"][0]["manual_use"] = json!(false);
    let (code, err) = call(&gw, "PUT", "/config", &whole);
    assert_eq!(
        (code, err["code"].as_str()),
        (422, Some("subject_tag_definition_not_manual")),
        "{err}"
    );

    // A PATCH changes only what it names.
    let (code, patched) = call(&gw, "PATCH", "/definitions/1", &json!({"expiry_days": 14}));
    assert_eq!(code, 200, "{patched}");
    assert_eq!(patched["expiry_days"], 14);
    assert_eq!(patched["manual_use"], true, "untouched: {patched}");
    let (_, stored) = call(&gw, "GET", "/definitions/1", &Value::Null);
    assert_eq!(stored["expiry_days"], 14);
    assert_eq!(stored["manual_use"], true);
    assert_eq!(stored["name"], "Default");
    // null means "never expires", not "the default".
    let (code, patched) = call(
        &gw,
        "PATCH",
        "/definitions/1",
        &json!({"expiry_days": null}),
    );
    assert_eq!(code, 200, "{patched}");
    assert_eq!(patched["expiry_days"], Value::Null);
    // A bad patch names the field.
    let (code, err) = call(
        &gw,
        "PATCH",
        "/definitions/1",
        &json!({"allow_print": "yes"}),
    );
    assert_eq!(
        (code, err["field"].as_str()),
        (400, Some("allow_print")),
        "{err}"
    );
    let (code, err) = call(&gw, "PATCH", "/definitions/99", &json!({"name": "x"}));
    assert_eq!(code, 404, "{err}");

    // And the tag still works: the message is delivered securely.
    send(
        &gw,
        "alice@corp.example",
        &["y@other.example"],
        &["--header", "Subject: [secure] payroll"],
    );
    let notice = external.wait_for(1);
    assert!(
        notice[0].text().contains("X-Sealpost-Notification: 1"),
        "a notification, not the message: {}",
        notice[0].text()
    );
    assert!(!notice[0].text().contains("[secure]"));
}

/// Issue 14, defect 1 (the key): while `secure.subject_tag_definition`
/// names a definition, it cannot be deleted, renamed or closed to manual
/// use.
#[test]
fn issue_14_the_subject_tag_definition_cannot_be_broken_by_the_api() {
    let internal = Sink::start(&[]);
    let external = Sink::start(&[]);
    // The definition exists before the key names it.
    let gw = gateway(&internal, &external, "");
    let (code, d) = call(
        &gw,
        "POST",
        "/definitions",
        &json!({"name": "Tagged", "manual_use": true}),
    );
    assert_eq!(code, 201, "{d}");
    let id = d["id"].as_i64().unwrap();
    let key = gw.api_key.clone();
    let dir = gw.stop();
    let mut gw = TestGateway::start_in(
        dir,
        &format!(
            "[domains]\ninternal = [\"corp.example\"]\n[relay]\nnext_hop = \"{}\"\ninternal_next_hop = \"{}\"\n[secure]\nsubject_tag_definition = \"Tagged\"\n",
            external.addr(),
            internal.addr()
        ),
    );
    gw.api_key = key;

    let (code, err) = call(
        &gw,
        "PATCH",
        &format!("/definitions/{id}"),
        &json!({"manual_use": false}),
    );
    assert_eq!(code, 422, "{err}");
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("secure.subject_tag_definition"),
        "{err}"
    );
    let (code, err) = call(
        &gw,
        "PATCH",
        &format!("/definitions/{id}"),
        &json!({"name": "Renamed"}),
    );
    assert_eq!(code, 422, "{err}");
    assert_eq!(err["code"], "subject_tag_definition_missing", "{err}");
    let (code, err) = call(&gw, "DELETE", &format!("/definitions/{id}"), &Value::Null);
    assert_eq!(code, 422, "{err}");
    let (code, d) = call(&gw, "GET", &format!("/definitions/{id}"), &Value::Null);
    assert_eq!((code, d["name"].as_str()), (200, Some("Tagged")));

    // The tag applies it.
    let queued = send(
        &gw,
        "alice@corp.example",
        &["y@other.example"],
        &["--header", "Subject: [secure] payroll"],
    );
    external.wait_for(1);
    let (_, m) = call(&gw, "GET", &format!("/messages/{queued}"), &Value::Null);
    assert_eq!(m["recipients"][0]["route"], format!("secure:{id}"), "{m}");
}

/// Issue 14, defect 2: `X-Sealpost-Secure` naming an unknown definition,
/// or one closed to manual use, used to be ignored: 250, the header
/// stripped and the body relayed in clear. Now the message is delivered
/// securely with the default definition and the sender is told why.
#[test]
fn issue_14_an_unusable_definition_in_the_header_still_gets_secure_delivery() {
    let internal = Sink::start(&[]);
    let external = Sink::start(&[]);
    let gw = gateway(&internal, &external, "");
    let (code, d) = call(
        &gw,
        "POST",
        "/definitions",
        &json!({"name": "Locked", "manual_use": false}),
    );
    assert_eq!(code, 201, "{d}");

    for (n, name, why) in [
        (1, "Locked", "manual use is off"),
        (2, "No Such Thing", "no definition has that name"),
    ] {
        let id = send(
            &gw,
            "alice@corp.example",
            &["z@other.example"],
            &[
                "--header",
                &format!("X-Sealpost-Secure: {name}"),
                "--header",
                "Subject: quarterly numbers",
                "--body",
                "the secret figures",
            ],
        );
        // The external recipient gets a notification, never the content.
        let got = external.wait_for(n);
        let notice = &got[n - 1];
        assert_eq!(notice.rcpt_tos, ["z@other.example"]);
        assert!(!notice.text().contains("the secret figures"));
        assert!(notice.text().contains("X-Sealpost-Notification: 1"));
        assert!(
            !notice
                .text()
                .to_ascii_lowercase()
                .contains("x-sealpost-secure"),
            "{}",
            notice.text()
        );
        let (_, m) = call(&gw, "GET", &format!("/messages/{id}"), &Value::Null);
        assert_eq!(m["recipients"][0]["route"], "secure:1", "default: {m}");
        assert_eq!(m["recipients"][0]["secure"]["trigger"], "header");

        // The sender hears why, in a receipt.
        let receipts = internal.wait_for(n);
        let receipt = &receipts[n - 1];
        assert_eq!(receipt.rcpt_tos, ["alice@corp.example"]);
        let text = decoded_text(&receipt.content);
        assert!(text.contains(name), "{text}");
        assert!(text.contains(why), "{text}");
        assert!(text.contains("default definition"), "{text}");
        assert!(text.contains("z@other.example"), "{text}");
    }
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(external.messages().len(), 2, "nothing else went out");
}
