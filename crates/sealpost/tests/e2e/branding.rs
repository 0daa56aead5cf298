//! The portal's branding (issue 16, item 2) on a running gateway: through
//! `/api/v1/branding` (roles in `api_roles`), refused with the field at
//! fault, and followed by the portal with no restart; then edited in the
//! console in headless Chromium, with the screenshots
//! `console-branding-{1280,390}.png`.

use std::{path::PathBuf, process::Command, time::Duration};

use base64::Engine;

use crate::{browser::Browser, helpers::*, policy_api::api};

/// The portal's sign-in page, as a recipient's browser gets it.
fn sign_in_page(gw: &TestGateway) -> String {
    let out = Command::new("curl")
        .args(["-s", &format!("http://{}/sign-in", gw.portal)])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

const LOGO_SVG: &str = r##"<svg xmlns="http://www.w3.org/2000/svg" width="120" height="32" viewBox="0 0 120 32"><rect x="1" y="1" width="30" height="30" rx="6" fill="#0f766e"/><path d="M9 17l5 5 9-11" stroke="#fff" stroke-width="3" fill="none"/><text x="38" y="22" font-family="sans-serif" font-size="15" font-weight="700" fill="#0f766e">Acme</text></svg>"##;

#[test]
fn the_api_changes_the_branding_and_the_portal_follows_without_a_restart() {
    let gw = TestGateway::start("");
    let auth = format!("Authorization: Bearer {}", gw.api_key.as_deref().unwrap());
    let json = "Content-Type: application/json";
    let (code, doc) = api(&gw, "GET", "/branding", None, &[&auth]);
    assert_eq!(code, 200, "{doc}");
    assert_eq!(doc["version"], 0);
    assert_eq!(doc["effective"]["product_name"], "Secure messages");
    assert!(sign_in_page(&gw).contains("Secure messages"));

    let (code, err) = api(
        &gw,
        "PUT",
        "/branding",
        Some(br#"{"product_name": "Acme", "accent_color": "teal"}"#),
        &[&auth, json],
    );
    assert_eq!(code, 422, "{err}");
    assert_eq!(err["field"], "accent_color");
    assert_eq!(err["code"], "invalid_colour");
    let bad_svg =
        base64::engine::general_purpose::STANDARD.encode(b"<svg onload=\"alert(1)\"></svg>");
    let (code, err) = api(
        &gw,
        "PUT",
        "/branding",
        Some(format!(r#"{{"logo": "{bad_svg}"}}"#).as_bytes()),
        &[&auth, json],
    );
    assert_eq!(code, 422, "{err}");
    assert_eq!(err["field"], "logo");
    assert_eq!(err["code"], "unsafe_svg");

    let logo = base64::engine::general_purpose::STANDARD.encode(LOGO_SVG);
    let body = format!(
        r##"{{"product_name": "Acme Secure Mail", "accent_color": "#0F766E",
             "disclaimer": "Messages here are for their addressees only.",
             "support_contact": "it-help@acme.example", "logo": "{logo}"}}"##
    );
    let (code, doc) = api(
        &gw,
        "PUT",
        "/branding",
        Some(body.as_bytes()),
        &[&auth, json],
    );
    assert_eq!(code, 200, "{doc}");
    assert_eq!(doc["version"], 1);
    assert_eq!(doc["accent_color"], "#0f766e");
    assert_eq!(doc["logo"]["content_type"], "image/svg+xml");
    assert_eq!(doc["effective"]["product_name"], "Acme Secure Mail");

    // The portal follows within its one-second check, no restart.
    let page = wait_for(Duration::from_secs(5), "the portal's new name", || {
        let page = sign_in_page(&gw);
        page.contains("Acme Secure Mail").then_some(page)
    });
    assert!(page.contains("Messages here are for their addressees only."));
    assert!(page.contains("it-help@acme.example"));

    // A change without `logo` keeps it; `null` removes it.
    let (code, doc) = api(
        &gw,
        "PUT",
        "/branding",
        Some(br#"{"product_name": "Acme Secure Mail"}"#),
        &[&auth, json],
    );
    assert_eq!(code, 200, "{doc}");
    assert_eq!(doc["logo"]["content_type"], "image/svg+xml");
    assert_eq!(doc["disclaimer"], serde_json::Value::Null, "replaced whole");
    let (code, doc) = api(
        &gw,
        "PUT",
        "/branding",
        Some(br#"{"logo": null}"#),
        &[&auth, json],
    );
    assert_eq!(code, 200, "{doc}");
    assert_eq!(doc["logo"], serde_json::Value::Null);
    assert_eq!(doc["version"], 3);
    wait_for(Duration::from_secs(5), "the file's name again", || {
        sign_in_page(&gw).contains("Secure messages").then_some(())
    });
}

#[test]
fn the_console_edits_the_branding_in_a_browser() {
    let gw = TestGateway::start("");
    let (name, password) = gw.first_run_admin.clone().unwrap();
    let base = format!("http://localhost:{}", gw.admin.port());
    let mut browser = Browser::start();
    browser.goto(&format!("{base}/console/sign-in"));
    browser.fill("#name", &name);
    browser.fill("#password", &password);
    browser.click("button.primary");
    wait_for(Duration::from_secs(10), "the password form", || {
        (browser.current_url().path() == "/console/password").then_some(())
    });
    browser.fill("#current", &password);
    browser.fill("#password", "granite-lantern-orbit-meadow");
    browser.fill("#confirm", "granite-lantern-orbit-meadow");
    browser.click("button.primary");
    browser.wait_for_text(".notice", "Your password is changed.");

    browser.click("a[href='/console/branding']");
    wait_for(Duration::from_secs(10), "the branding page", || {
        (browser.current_url().path() == "/console/branding").then_some(())
    });
    // A bad colour is named next to its field.
    browser.fill("#product_name", "Acme Secure Mail");
    browser.fill("#accent_color", "teal");
    browser.click("button.primary");
    let error = browser.wait_for_text("#accent_color-error", "is not a colour");
    assert!(error.contains("#1d4ed8"), "{error}");

    let logo = browser.dir().join("acme-logo.svg");
    std::fs::write(&logo, LOGO_SVG).unwrap();
    browser.fill("#accent_color", "#0f766e");
    browser.fill(
        "#disclaimer",
        "Messages here are for their addressees only. Do not forward them.",
    );
    browser.fill("#support_contact", "it-help@acme.example");
    browser.upload("#logo", &logo);
    browser.click("button.primary");
    browser.wait_for_text(".notice", "Saved.");
    assert!(browser.text(".preview").contains("Acme Secure Mail"));
    assert!(browser.exists(".preview img.logo"));

    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    for width in [1280, 390] {
        browser.set_width(width);
        browser.screenshot(&dir.join(format!("console-branding-{width}.png")));
    }

    wait_for(Duration::from_secs(5), "the portal's new name", || {
        sign_in_page(&gw).contains("Acme Secure Mail").then_some(())
    });
}
