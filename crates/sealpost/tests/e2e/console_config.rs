//! Definitions, profile groups and the directory in headless Chromium
//! (issue 16, item 2): an administrator edits the default definition's
//! notification template, is told next to the box that it lacks the portal
//! link, previews the fixed one as a recipient would see it and saves it;
//! makes a profile group; imports a directory CSV with bad rows and waits
//! for the report, which names exactly those lines.
//!
//! Screenshots `console-definitions-*`, `console-definition-*`,
//! `console-groups-*`, `console-directory-*`, `console-directory-import-*`
//! at 1280 and 390 px.

use std::time::Duration;

use serde_json::json;

use crate::{
    browser::Browser,
    console_policy::{sign_in_first_admin, snap_sized},
    helpers::*,
    policy_api::call,
};

fn at(browser: &Browser, path: &str) {
    wait_for(Duration::from_secs(10), path, || {
        (browser.current_url().path() == path).then_some(())
    });
}

const TEXT: &str = "{{ sender_name or sender }} has sent you a secure message: {{ subject }}\n\nOpen it here: {{ portal_link }}\n\nLegal department, {{ organisation }}\n";

#[test]
fn definitions_groups_and_the_directory_are_managed_in_the_browser() {
    let gw = TestGateway::start("");
    let (code, d) = call(
        &gw,
        "POST",
        "/definitions",
        &json!({"name": "Legal hold", "description": "Outside counsel, 30 days",
                "expiry_days": 30, "allow_forward": false}),
    );
    assert_eq!(code, 201, "{d}");
    let base = format!("http://localhost:{}", gw.admin.port());
    let mut browser = Browser::start();
    sign_in_first_admin(&mut browser, &gw, &base);

    // Definitions: the list, then the default's template.
    browser.click("a[href='/console/definitions']");
    at(&browser, "/console/definitions");
    let list = browser.wait_for_text("tbody", "Legal hold");
    assert!(
        list.contains("Default") && list.contains("30 days"),
        "{list}"
    );
    snap_sized(&mut browser, "definitions", 700);
    browser.click("a[href='/console/definitions/1']");
    at(&browser, "/console/definitions/1");
    // A text part without the link is refused next to it.
    browser.fill("#template_text", "You have a secure message.");
    browser.click_and_reload("#preview");
    let error = browser.wait_for_text("#template_text-error", "link");
    assert!(
        error.contains("portal_link") || error.contains("link"),
        "{error}"
    );
    assert!(browser.exists("#form-error"));
    // Fixed, previewed as a recipient sees it.
    browser.fill("#template_subject", "Secure message from {{ sender }}");
    browser.fill("#template_text", TEXT);
    browser.click_and_reload("#preview");
    let subject = browser.wait_for_text("#preview-subject", "Secure message from");
    assert!(!subject.contains("{{"), "{subject}");
    let text = browser.text("#preview-text");
    assert!(
        text.contains("Open it here: http") && text.contains("Legal department"),
        "{text}"
    );
    assert_eq!(
        browser.find("#preview-html").attr("sandbox").as_deref(),
        Some("")
    );
    // The frame shows the (built-in) HTML part: its own document.
    let frame_ok = browser.execute(
        "const f = document.getElementById('preview-html'); \
         return f.getAttribute('src').startsWith('/console/definitions/preview/');",
    );
    assert_eq!(frame_ok, serde_json::Value::Bool(true));
    std::thread::sleep(Duration::from_millis(300));
    snap_sized(&mut browser, "definition", 2700);
    browser.click("#save");
    at(&browser, "/console/definitions");
    browser.wait_for_text(".notice", "is saved");
    let (code, saved) = call(&gw, "GET", "/definitions/1", &json!(null));
    assert_eq!(code, 200);
    assert_eq!(saved["notification_template"]["text"], TEXT, "{saved}");

    // Profile groups: a new group inside which Law firms nests.
    browser.goto(&format!("{base}/console/groups/new"));
    browser.fill("#name", "Law firms");
    browser.fill("#description", "Outside counsel");
    browser.fill(
        "#addresses",
        "partner@counsel.example\nclerk@counsel.example",
    );
    browser.fill("#domains", "*.lawfirm.example");
    browser.click("#save");
    at(&browser, "/console/groups");
    browser.wait_for_text(".notice", "Law firms");
    browser.click("#new-group");
    at(&browser, "/console/groups/new");
    browser.fill("#name", "Everyone outside");
    browser.click("label[for^='member_group-']");
    browser.click("#save");
    at(&browser, "/console/groups");
    let groups = browser.wait_for_text("tbody", "Everyone outside");
    assert!(groups.contains("Law firms"), "{groups}");
    snap_sized(&mut browser, "groups", 700);

    // Directory: a CSV with three bad rows, imported in the background.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("staff.csv");
    let mut csv = String::from("address,display_name,department,country\n");
    let bad = [7usize, 120, 333];
    for line in 2..=401 {
        if bad.contains(&line) {
            csv.push_str(&format!(
                "staff-{line}-at-corp.example,Broken {line},Legal,DE\n"
            ));
        } else {
            let dept = ["Legal", "Sales", "Finance"][line % 3];
            csv.push_str(&format!(
                "staff{line:03}@corp.example,Staff Member {line:03},{dept},DE\n"
            ));
        }
    }
    std::fs::write(&path, csv).unwrap();
    browser.goto(&format!("{base}/console/directory"));
    browser.upload("#import-file", &path);
    browser.click("#import");
    let job = wait_for(Duration::from_secs(10), "the import's page", || {
        let url = browser.current_url();
        url.path()
            .starts_with("/console/directory/import/")
            .then(|| url.to_string())
    });
    // The page refreshes itself while the job runs; reading it meanwhile
    // could meet it mid-reload, so it is loaded afresh until finished.
    wait_for(Duration::from_secs(30), "the import's report", || {
        browser.goto(&job);
        browser
            .source()
            .contains("id=\"import-done\"")
            .then_some(())
    });
    assert!(browser.text("h2#progress-heading").contains("Finished"));
    let report = browser.text("#import-done");
    assert!(
        report.contains("397 users imported; 3 rows refused"),
        "{report}"
    );
    let lines: Vec<String> = browser
        .find_all("#refused-rows tbody tr td:first-child")
        .iter()
        .map(|td| td.text())
        .collect();
    assert_eq!(lines, ["7", "120", "333"]);
    snap_sized(&mut browser, "directory-import", 900);
    browser.click("#import-done a");
    at(&browser, "/console/directory");
    browser.fill("#q", "sales");
    browser.click_and_reload("#search");
    browser.wait_for_text("#users-count", "found");
    let count = browser.text("#users-count");
    assert!(count.contains("of 132 found"), "{count}");
    browser.goto(&format!("{base}/console/directory"));
    browser.wait_for_text("#users-count", "of 397");
    snap_sized(&mut browser, "directory", 1100);
}
