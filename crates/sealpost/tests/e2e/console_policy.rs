//! The walk-through of issue 16, click by click in headless Chromium, as a
//! Mimecast administrator is told it:
//! 1. sign in and open Administration | Gateway | Policies;
//! 2. Secure Messaging, to see the policies already made;
//! 3. New Policy;
//! 4. a Policy Narrative;
//! 5. the definition through the Lookup picker (searched);
//! 6. Emails From and Emails To (a profile group through its Lookup), with
//!    the internal → external notice on the form;
//! 7. Validity (Always On), Policy Override and Source IP Ranges;
//! 8. Bi Directional shown disabled with the reason — and Preview impact
//!    counts the earlier message that would have gone securely;
//! 9. Save and Exit — and the next matching message, sent over SMTP, is
//!    delivered via Secure Messaging (only the notification reaches the
//!    recipient's server), which the policy test page then explains.
//!
//! Screenshots `console-new-policy-*`, `console-lookup-*`,
//! `console-policy-list-*`, `console-policy-test-*` at 1280 and 390 px.

use std::{path::PathBuf, time::Duration};

use serde_json::json;

use crate::{browser::Browser, helpers::*, policy_api::call, secure};

/// Screenshots at 1280 px wide and `height` tall, and at 390 px wide and
/// half as tall again (a long form whole).
pub(crate) fn snap_sized(browser: &mut Browser, name: &str, height: u32) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    for (width, tall) in [(1280, height), (390, height * 3 / 2)] {
        browser.set_size(width, tall);
        browser.execute("window.scrollTo(0, 0); document.activeElement.blur(); return null;");
        browser.screenshot(&dir.join(format!("console-{name}-{width}.png")));
    }
    browser.set_size(1280, 900);
}

fn snap(browser: &mut Browser, name: &str) {
    snap_sized(browser, name, 900);
}

fn at(browser: &Browser, path: &str) {
    wait_for(Duration::from_secs(10), path, || {
        (browser.current_url().path() == path).then_some(())
    });
}

/// Signs the first start's administrator in and replaces the one-time
/// password; leaves the browser on the overview.
pub(crate) fn sign_in_first_admin(browser: &mut Browser, gw: &TestGateway, base: &str) {
    let (name, password) = gw.first_run_admin.clone().expect("a first administrator");
    browser.goto(&format!("{base}/console/sign-in"));
    browser.fill("#name", &name);
    browser.fill("#password", &password);
    browser.click("button.primary");
    at(browser, "/console/password");
    browser.fill("#current", &password);
    browser.fill("#password", "granite-lantern-orbit-meadow");
    browser.fill("#confirm", "granite-lantern-orbit-meadow");
    browser.click("button.primary");
    browser.wait_for_text(".notice", "Your password is changed.");
}

#[test]
fn the_nine_steps_make_a_policy_that_secures_the_next_message() {
    let internal = Sink::start(&[]);
    let external = Sink::start(&[]);
    let gw = secure::gateway(&internal, &external, "");
    // What an organisation already has: a definition among others, a
    // profile group of outside counsel, and a policy.
    let (code, d) = call(
        &gw,
        "POST",
        "/definitions",
        &json!({"name": "Legal hold", "description": "Outside counsel, 30 days", "expiry_days": 30}),
    );
    assert_eq!(code, 201, "{d}");
    let (code, g) = call(
        &gw,
        "POST",
        "/groups",
        &json!({"name": "Law firms", "description": "Outside counsel", "domains": ["counsel.example"]}),
    );
    assert_eq!(code, 201, "{g}");
    let (code, p) = call(
        &gw,
        "POST",
        "/policies",
        &json!({"narrative": "Board papers", "action": "apply_definition", "definition_id": 1,
                "from": {"kind": "address", "value": "board@corp.example"}, "to": {"kind": "external"}}),
    );
    assert_eq!(code, 201, "{p}");

    // Yesterday's kind of mail to counsel, relayed as usual.
    secure::send(
        &gw,
        "alice@corp.example",
        &["partner@counsel.example"],
        &[
            "--header",
            "Subject: Earlier",
            "--body",
            "Relayed before the policy.",
        ],
    );
    assert_eq!(external.wait_for(1).len(), 1);

    let base = format!("http://localhost:{}", gw.admin.port());
    let mut browser = Browser::start();
    // Step 1.
    sign_in_first_admin(&mut browser, &gw, &base);
    browser.click("a[href='/console/policies']");
    at(&browser, "/console/policies");
    // Step 2.
    browser.click("a[href='/console/policies/secure-messaging']");
    browser.wait_for_text("tbody", "Board papers");
    // Step 3.
    browser.click("#new-policy");
    at(&browser, "/console/policies/secure-messaging/new");
    assert!(
        browser
            .text("#direction-note")
            .contains("only to messages from internal senders to external recipients"),
        "the internal → external notice"
    );
    // Step 4.
    browser.fill("#narrative", "Contracts to outside counsel");
    // Step 5: the definition through its searchable picker.
    browser.click_and_reload("#definition-lookup");
    browser.wait_for_text("h1", "Choose a Secure Messaging definition");
    browser.fill("#q", "counsel");
    browser.click_and_reload("#search");
    let found = browser.text("tbody");
    assert!(
        found.contains("Legal hold") && !found.contains("Default"),
        "{found}"
    );
    snap(&mut browser, "lookup");
    browser.click_and_reload("button[aria-label='Select Legal hold']");
    browser.wait_for_text("#definition-chosen", "Legal hold");
    assert_eq!(
        browser.find("#narrative").prop("value").as_deref(),
        Some("Contracts to outside counsel"),
        "the picker carried the narrative along"
    );
    // Step 6: from internal (the default), to the profile group.
    assert_eq!(
        browser.find("#from_kind").prop("value").as_deref(),
        Some("internal")
    );
    browser.click("#to_kind option[value='group']");
    assert!(browser.find("#to_group-lookup").is_displayed());
    assert!(
        !browser.find("#to_domain").is_displayed(),
        "only the chosen kind's box shows"
    );
    browser.click_and_reload("#to_group-lookup");
    browser.wait_for_text("h1", "recipients' profile group");
    browser.click_and_reload("button[aria-label='Select Law firms']");
    browser.wait_for_text("#to_group-chosen", "Law firms");
    // Step 7.
    browser.click("#validity-always");
    assert!(
        !browser.find("#starts").is_displayed(),
        "no dates when Always On"
    );
    browser.click("#override");
    browser.fill("#source_ips", "127.0.0.0/8");
    // Step 8.
    let bidirectional = browser.find("#bidirectional");
    assert_eq!(bidirectional.prop("disabled").as_deref(), Some("true"));
    assert_eq!(bidirectional.prop("checked").as_deref(), Some("false"));
    assert!(
        browser
            .text("#bidirectional-reason")
            .contains("internal → external")
    );
    // Before saving, what would it have changed?
    browser.click_and_reload("#preview");
    let impact = browser.wait_for_text("#impact-result", "would change route");
    assert!(
        impact.contains("1 of 1 messages") && impact.contains("1 relay → secure"),
        "{impact}"
    );
    assert!(browser.text("#impact-domains").contains("counsel.example"));
    assert_eq!(
        browser.find("#to_group-chosen").text(),
        "Law firms",
        "the form is as it was"
    );
    snap_sized(&mut browser, "new-policy", 2300);
    // Step 9.
    browser.click("#save");
    at(&browser, "/console/policies/secure-messaging");
    browser.wait_for_text(".notice", "It applies from the next message");
    let row = browser.wait_for_text("tbody", "Contracts to outside counsel");
    assert!(
        row.contains("in profile group Law firms") && row.contains("Legal hold"),
        "{row}"
    );
    snap(&mut browser, "policy-list");

    // The next matching message is delivered via Secure Messaging: the
    // counsel's server gets the notification, never the message.
    let id = secure::send(
        &gw,
        "alice@corp.example",
        &["partner@counsel.example"],
        &[
            "--header",
            "Subject: Draft contract",
            "--body",
            "Clause 7 attached.",
        ],
    );
    let got = external.wait_for(2);
    assert_eq!(got.len(), 2);
    let text = secure::decoded_text(got[1].body());
    assert!(!text.contains("Clause 7"), "the message itself never left");
    secure::token_in(&text);
    let (code, tracked) = call(&gw, "GET", &format!("/messages/{id}"), &json!(null));
    assert_eq!(code, 200, "{tracked}");
    assert!(
        tracked.to_string().contains("Legal hold") || tracked.to_string().contains("secure"),
        "{tracked}"
    );

    // And the policy test page says why.
    browser.goto(&format!("{base}/console/policy-test"));
    browser.fill("#from", "alice@corp.example");
    browser.fill("#to", "partner@counsel.example");
    browser.fill("#ip", "127.0.0.1");
    browser.click("#run-test");
    let result = browser.wait_for_text("#result h2", "Secure Messaging");
    assert!(result.contains("Legal hold"), "{result}");
    let winner = browser.text("#verdicts tr.winner");
    assert!(winner.contains("Contracts to outside counsel"), "{winner}");
    assert!(
        browser
            .text("#result")
            .contains("An override policy matched"),
        "the override step"
    );
    let board = browser.text("#verdicts");
    assert!(
        board.contains("sender is not board@corp.example"),
        "{board}"
    );
    snap_sized(&mut browser, "policy-test", 1300);
}
