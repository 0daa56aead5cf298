//! A recipient's journey through the portal in headless Chromium (issue
//! 15 items 1-2): the notification of a message a policy made secure →
//! its link → a refused weak password, then a good one → the inbox shows
//! the message → sign out → sign in → forgotten password → the reset mail
//! → a new password → the old session no longer works. Screenshots of the
//! first visit, sign-in and inbox at 1280 and 390 px go to
//! `docs/screenshots/`. Then an HTML message with a `cid:` image and a
//! PDF: read in its frame, downloaded with equal bytes, and its expired
//! notice (screenshots `portal-message-*`, `portal-expired-*`).

use std::{path::PathBuf, process::Command, time::Duration};

use serde_json::{Value, json};

use crate::{
    browser::Browser,
    helpers::*,
    policy_api::call,
    secure::{decoded_text, secure_policy, send},
};

const GOOD: &str = "violet-harbour-quietly-sixteen";
const NEW: &str = "granite-lantern-orbit-meadow";

fn shots() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Screenshots the current page at 1280 and 390 px as
/// `portal-<name>-<width>.png`, and goes back to 1280.
fn snap(browser: &mut Browser, name: &str) {
    for width in [1280, 390] {
        browser.set_width(width);
        browser.screenshot(&shots().join(format!("portal-{name}-{width}.png")));
    }
    browser.set_width(1280);
}

/// The first link under `base` + `path` in a mail's decoded text.
pub(crate) fn link_in(text: &str, base: &str, path: &str) -> String {
    let prefix = format!("{base}{path}");
    let at = text
        .find(&prefix)
        .unwrap_or_else(|| panic!("no {prefix} link in:\n{text}"));
    text[at..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || ":/-_.".contains(*c))
        .collect()
}

/// Waits (bounded) until the browser shows `path`.
pub(crate) fn at_path(browser: &Browser, path: &str) {
    wait_for(Duration::from_secs(10), path, || {
        browser.current_url().path().starts_with(path).then_some(())
    });
}

/// Waits (bounded) until the page has (or no longer has) `css`.
fn until(browser: &Browser, css: &str, present: bool) {
    wait_for(Duration::from_secs(10), css, || {
        (browser.exists(css) == present).then_some(())
    });
}

/// The status and Location of `GET url` with `cookie`, by curl.
fn status_with_cookie(url: &str, cookie: &str) -> (u16, String) {
    let out = Command::new(require("curl"))
        .args(["-s", "-o", "/dev/null", "--max-time", "10"])
        .args(["-w", "%{http_code} %{redirect_url}", "-H"])
        .arg(format!("Cookie: {cookie}"))
        .arg(url)
        .output()
        .expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (code, location) = text.split_once(' ').unwrap_or((&text, ""));
    (code.parse().unwrap_or(0), location.to_owned())
}

#[test]
fn a_recipient_registers_reads_the_inbox_signs_out_and_in_and_resets_the_password() {
    let internal = Sink::start(&[]);
    let external = Sink::start(&[]);
    let gw = TestGateway::start(&format!(
        "[domains]\ninternal = [\"corp.example\"]\n[relay]\nnext_hop = \"{}\"\ninternal_next_hop = \"{}\"\n",
        external.addr(),
        internal.addr()
    ));
    let base = format!("http://localhost:{}", gw.portal.port());
    secure_policy(
        &gw,
        "partner.example",
        json!({"name": "Partners", "expiry_days": 14}),
    );
    send(
        &gw,
        "alice@corp.example",
        &["bob@partner.example"],
        &["--header", "Subject: Q3 contract", "--body", "the figures"],
    );
    let notification = decoded_text(&external.wait_for(1)[0].content);
    let link = link_in(&notification, &base, "/open/");

    let mut browser = Browser::start();
    browser.goto(&link);
    assert!(browser.text("h1").contains("Choose a password"));
    let facts = browser.text(".facts");
    assert!(facts.contains("alice@corp.example"), "{facts}");
    assert!(facts.contains("Q3 contract"), "{facts}");
    snap(&mut browser, "first-visit");

    // A weak password (long enough for the browser, too guessable for us).
    browser.fill("#password", "password1234");
    browser.fill("#confirm", "password1234");
    browser.click("button.primary");
    until(&browser, ".error", true);
    let refusal = browser.text(".error");
    assert!(!refusal.trim().is_empty());
    assert!(browser.text("h1").contains("Choose a password"));
    snap(&mut browser, "first-visit-refused");

    browser.fill("#password", GOOD);
    browser.fill("#confirm", GOOD);
    browser.click("button.primary");
    at_path(&browser, "/messages/");
    // Opening it marked it read; "Mark as unread" goes back to the inbox.
    assert!(browser.text("h1").contains("Q3 contract"));
    browser.click("form[action$='/read'] button");
    at_path(&browser, "/inbox");
    assert!(browser.text(".mailbox").contains("Q3 contract"));
    assert!(browser.exists(".mailbox li.unread"));
    snap(&mut browser, "inbox");

    // Sign out, then in again.
    browser.click(".who button");
    at_path(&browser, "/sign-in");
    snap(&mut browser, "sign-in");
    browser.fill("#email", "bob@partner.example");
    browser.fill("#password", GOOD);
    browser.click("button.primary");
    at_path(&browser, "/inbox");
    let old = browser
        .cookie("sealpost_session")
        .expect("a session cookie");
    assert_eq!(old.http_only(), Some(true));
    let old = format!("sealpost_session={}", old.value());
    assert_eq!(status_with_cookie(&format!("{base}/inbox"), &old).0, 200);

    // Forgotten password, in another browser.
    let other = Browser::start();
    other.goto(&format!("{base}/forgot-password"));
    other.fill("#email", "bob@partner.example");
    other.click("button.primary");
    until(&other, "#email", false);
    assert!(other.text("h1").contains("Check your email"));
    let reset = external
        .wait_for(2)
        .into_iter()
        .map(|m| decoded_text(&m.content))
        .find(|t| t.contains("/reset/"))
        .expect("the reset mail");
    let reset_link = link_in(&reset, &base, "/reset/");
    other.goto(&reset_link);
    other.fill("#password", NEW);
    other.fill("#confirm", NEW);
    other.click("button.primary");
    at_path(&other, "/inbox");
    assert!(other.text(".mailbox").contains("Q3 contract"));

    // The first browser's session ended with the reset.
    let (status, location) = status_with_cookie(&format!("{base}/inbox"), &old);
    assert_eq!(status, 303);
    assert!(location.ends_with("/sign-in"), "{location}");
    browser.goto(&format!("{base}/inbox"));
    at_path(&browser, "/sign-in");
}

/// A 48 px checkered PNG, for the `cid:` image.
const LOGO_PNG: &str = "iVBORw0KGgoAAAANSUhEUgAAADAAAAAwCAIAAADYYG7QAAAAUUlEQVR42u3XsQ0AIAgEQBfRkZzWYVzE3hGQxGhzydfPdUBZo4WpfYa51VOAgICAgICSoJfDTnqAgICAgICyINseCAgICMhf5vwAAgICAvoK2jZtrcT2LVIKAAAAAElFTkSuQmCC";

/// A one-page PDF.
const PDF: &[u8] = b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n\
2 0 obj << /Type /Pages /Kids [3 0 R] /Count 1 >> endobj\n\
3 0 obj << /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] >> endobj\n\
trailer << /Root 1 0 R >>\n%%EOF\n";

pub(crate) fn base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in bytes.chunks(3) {
        let n = u32::from(c[0]) << 16
            | u32::from(*c.get(1).unwrap_or(&0)) << 8
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            out.push(if i <= c.len() {
                char::from(A[(n >> (18 - 6 * i)) as usize & 63])
            } else {
                '='
            });
        }
    }
    out
}

/// The bytes of `GET url` with `cookie`, by curl, and its headers.
pub(crate) fn download_with_cookie(url: &str, cookie: &str) -> (Vec<u8>, String) {
    let dir = tempfile::tempdir().unwrap();
    let headers = dir.path().join("headers");
    let out = Command::new(require("curl"))
        .args(["-s", "--fail", "--max-time", "10", "-D"])
        .arg(&headers)
        .arg("-H")
        .arg(format!("Cookie: {cookie}"))
        .arg(url)
        .output()
        .expect("curl runs");
    assert!(out.status.success(), "curl {url}: {out:?}");
    (out.stdout, std::fs::read_to_string(headers).unwrap())
}

#[test]
fn a_recipient_reads_an_html_message_with_an_inline_image_and_downloads_its_pdf() {
    let internal = Sink::start(&[]);
    let external = Sink::start(&[]);
    let gw = TestGateway::start(&format!(
        "[domains]\ninternal = [\"corp.example\"]\n[relay]\nnext_hop = \"{}\"\ninternal_next_hop = \"{}\"\n",
        external.addr(),
        internal.addr()
    ));
    let base = format!("http://localhost:{}", gw.portal.port());
    secure_policy(
        &gw,
        "partner.example",
        json!({"name": "Partners", "expiry_days": 14}),
    );
    let pdf64 = base64(PDF);
    let eml = format!(
        "From: Alice Martin <alice@corp.example>\r\nTo: Bob <bob@partner.example>\r\n\
         Subject: Q3 contract\r\nDate: Mon, 7 Dec 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"mixed\"\r\n\r\n\
         --mixed\r\nContent-Type: multipart/related; boundary=\"rel\"\r\n\r\n\
         --rel\r\nContent-Type: text/html; charset=utf-8\r\n\r\n\
         <p><img src=\"cid:logo@corp.example\" alt=\"Corp logo\" width=\"48\" height=\"48\"></p>\
         <h2>Q3 contract</h2><p>Hello Bob,</p><p>the signed contract is attached. \
         The <b>figures</b> are on page 2.</p><p>Alice</p>\r\n\
         --rel\r\nContent-Type: image/png\r\nContent-ID: <logo@corp.example>\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n{LOGO_PNG}\r\n--rel--\r\n\
         --mixed\r\nContent-Type: application/pdf; name=\"Q3 contract.pdf\"\r\n\
         Content-Disposition: attachment; filename=\"Q3 contract.pdf\"\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n{pdf64}\r\n--mixed--\r\n"
    );
    let mut smtp = Raw::connect(gw.smtp);
    smtp.cmd("EHLO client.corp.example", "250");
    let reply = smtp.transaction(
        "<alice@corp.example>",
        &["<bob@partner.example>"],
        eml.as_bytes(),
    );
    assert!(reply.starts_with("250"), "{reply}");
    let notification = decoded_text(&external.wait_for(1)[0].content);
    let link = link_in(&notification, &base, "/open/");

    let mut browser = Browser::start();
    browser.goto(&link);
    browser.fill("#password", GOOD);
    browser.fill("#confirm", GOOD);
    browser.click("button.primary");
    at_path(&browser, "/messages/");
    let message_url = browser.current_url().to_string();
    assert!(browser.text("h1").contains("Q3 contract"));
    assert!(browser.text(".facts").contains("alice@corp.example"));
    assert!(browser.text(".attachments").contains("Q3 contract.pdf"));

    // The HTML is in the sandboxed frame, with its cid: image loaded.
    let loaded = || {
        browser.execute(
            "const d = document.querySelector('iframe.body-frame').contentDocument; \
             const img = d && d.querySelector('img'); \
             return img && img.complete ? img.naturalWidth : 0;",
        )
    };
    wait_for(Duration::from_secs(10), "the inline image", || {
        (loaded().as_u64() == Some(48)).then_some(())
    });
    let framed = browser.execute(
        "return document.querySelector('iframe.body-frame').contentDocument.body.innerText;",
    );
    assert!(
        framed.as_str().unwrap().contains("signed contract"),
        "{framed}"
    );
    snap(&mut browser, "message");

    // The attachment, with the browser's session: the same bytes.
    let href = browser
        .find(".attachments a")
        .attr("href")
        .expect("a download link");
    let cookie = browser.cookie("sealpost_session").expect("a session");
    let cookie = format!("sealpost_session={}", cookie.value());
    let (bytes, headers) = download_with_cookie(&format!("{base}{href}"), &cookie);
    assert_eq!(bytes, PDF);
    let headers = headers.to_ascii_lowercase();
    assert!(
        headers.contains("content-type: application/pdf"),
        "{headers}"
    );
    assert!(
        headers.contains(
            "content-disposition: attachment; filename=\"q3 contract.pdf\"; \
             filename*=utf-8''q3%20contract.pdf"
        ),
        "{headers}"
    );

    // Its time runs out (the expiry job, driven by hand, 20 days on).
    let ended = gw.block_on(gw.secure.expire_due(
        std::time::SystemTime::now() + Duration::from_secs(20 * 86400),
        100,
    ));
    assert_eq!(ended.unwrap(), 1);
    browser.goto(&message_url);
    assert!(browser.text("h1").contains("expired"));
    assert!(!browser.exists("iframe"));
    snap(&mut browser, "expired");
}

/// Issue 15 item 5 in the browser: bob replies with an attachment (it
/// reaches the internal sink with threading headers), then replies to
/// all: carol, outside, gets a secure notification of her own and never
/// the text. Screenshots of the reply form at 1280 and 390 px.
#[test]
fn a_recipient_replies_with_an_attachment_and_replies_to_all_securely() {
    let internal = Sink::start(&[]);
    let external = Sink::start(&[]);
    // The reply is From bob, outside: sealpost signs it as the gateway
    // (its host name's domain), which the internal server can check.
    let keys = tempfile::tempdir().unwrap();
    let key = keys.path().join("corp.pem");
    let out = crate::dkim::keygen(&[
        "--domain",
        "corp.example",
        "--selector",
        "gw",
        "--out",
        key.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    let zone = crate::dkim::Zone::publish(&String::from_utf8(out.stdout).unwrap());
    let gw = TestGateway::start(&format!(
        "[server]\nhostname = \"gw.corp.example\"\n[domains]\ninternal = [\"corp.example\"]\n[relay]\nnext_hop = \"{}\"\ninternal_next_hop = \"{}\"\n[[dkim.key]]\ndomain = \"corp.example\"\nselector = \"gw\"\nkey_file = {:?}\n",
        external.addr(),
        internal.addr(),
        key.to_str().unwrap()
    ));
    let base = format!("http://localhost:{}", gw.portal.port());
    secure_policy(
        &gw,
        "partner.example",
        json!({"name": "Partners", "expiry_days": 14}),
    );
    let id = send(
        &gw,
        "alice@corp.example",
        &["bob@partner.example", "carol@partner.example"],
        &["--header", "Subject: Q3 contract", "--body", "the figures"],
    );
    let notifications = external.wait_for(2);
    let to_bob = notifications
        .iter()
        .find(|m| m.rcpt_tos.iter().any(|r| r.contains("bob@")))
        .expect("bob's notification");
    let link = link_in(&decoded_text(&to_bob.content), &base, "/open/");

    let mut browser = Browser::start();
    browser.goto(&link);
    browser.fill("#password", GOOD);
    browser.fill("#confirm", GOOD);
    browser.click("button.primary");
    at_path(&browser, "/messages/");

    // Reply, with a file.
    browser.goto(&format!("{base}/messages/{id}/0/reply"));
    assert!(browser.text(".recipients").contains("alice@corp.example"));
    let file = tempfile::Builder::new()
        .prefix("signed-")
        .suffix(".pdf")
        .tempfile()
        .unwrap();
    std::fs::write(file.path(), b"%PDF-1.4 signed by bob").unwrap();
    browser.fill("#body", "Signed copy attached.");
    browser.upload("#attachments", file.path());
    snap(&mut browser, "reply");
    browser.click("button.primary");
    at_path(&browser, "/sent");
    assert!(browser.text(".notice").contains("sent securely"));
    assert!(browser.text(".mailbox").contains("Q3 contract"));
    snap(&mut browser, "sent");
    // The reply reads back from Sent.
    browser.click(".mailbox a.row");
    at_path(&browser, "/sent/");
    assert!(
        browser
            .text("article.message")
            .contains("Signed copy attached.")
    );
    assert!(
        !browser.exists(".actions"),
        "nothing to answer on a sent copy"
    );
    snap(&mut browser, "sent-message");
    browser.goto(&format!("{base}/sent"));
    let reply = internal.wait_for(1).remove(0);
    let text = reply.text();
    assert_eq!(reply.rcpt_tos, vec!["alice@corp.example".to_owned()]);
    assert!(text.contains("In-Reply-To: <"), "{text}");
    assert!(text.contains("References: <"), "{text}");
    assert!(text.contains("signed-"), "the attachment: {text}");
    assert!(decoded_text(&reply.content).contains("Signed copy attached."));
    assert!(text.contains("d=corp.example;"), "{text}");
    assert_eq!(
        zone.verify(&reply.content),
        vec![mail_auth::DkimResult::Pass]
    );

    // Reply all: alice by relay, carol only by a notification.
    browser.goto(&format!("{base}/messages/{id}/0/reply-all"));
    assert!(
        browser
            .text(".recipients")
            .contains("carol@partner.example")
    );
    browser.fill("#body", "To everyone: agreed.");
    browser.click("button.primary");
    at_path(&browser, "/sent");
    let to_alice = internal.wait_for(2);
    assert!(decoded_text(&to_alice[1].content).contains("To everyone: agreed."));
    let outside = external.wait_for(3);
    let to_carol = &outside[2];
    assert_eq!(to_carol.rcpt_tos, vec!["carol@partner.example".to_owned()]);
    let notice = decoded_text(&to_carol.content);
    assert!(notice.contains(&format!("{base}/open/")), "{notice}");
    assert!(!notice.contains("To everyone"), "never the text: {notice}");
    assert!(!to_carol.text().contains("To everyone"));

    // Tracking shows bob's portal events: registered by this link, two
    // replies (each a message of its own), not deleted; carol did nothing.
    let (code, tracked) = call(&gw, "GET", &format!("/messages/{id}"), &Value::Null);
    assert_eq!(code, 200, "{tracked}");
    let bob = &tracked["recipients"][0]["portal"];
    assert!(bob["registered_at"].is_string(), "{tracked}");
    assert!(bob["replied_at"].is_string(), "{tracked}");
    assert!(bob["deleted_at"].is_null(), "{tracked}");
    let replies = bob["replies"].as_array().expect("replies");
    assert_eq!(replies.len(), 2, "{tracked}");
    for reply in replies {
        let (code, m) = call(
            &gw,
            "GET",
            &format!("/messages/{}", reply.as_str().unwrap()),
            &Value::Null,
        );
        assert_eq!(code, 200, "{m}");
        assert_eq!(m["sender"], "bob@partner.example");
    }
    let carol = &tracked["recipients"][1]["portal"];
    assert!(carol["registered_at"].is_null(), "{tracked}");
    assert!(carol["first_opened_at"].is_null(), "{tracked}");
    assert_eq!(carol["replies"], json!([]));
}

/// Item 7: the operator's branding in a real browser. The name, the logo
/// (served by the portal itself), the accent colour on the sign-in button,
/// the disclaimer under the form and the support contact in the footer;
/// screenshots `portal-sign-in-branded-*`.
#[test]
fn the_sign_in_page_wears_the_operators_branding() {
    let dir = tempfile::tempdir().unwrap();
    let logo = dir.path().join("logo.svg");
    std::fs::write(
        &logo,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="96" height="32" viewBox="0 0 96 32"><rect width="32" height="32" rx="6" fill="#0f766e"/><rect x="8" y="14" width="16" height="12" rx="2" fill="#fff"/><path d="M11 14v-3a5 5 0 0 1 10 0v3" stroke="#fff" stroke-width="3" fill="none"/><text x="38" y="22" font-family="sans-serif" font-size="14" fill="#0f766e">Acme</text></svg>"##,
    )
    .unwrap();
    let gw = TestGateway::start(&format!(
        "[portal]\nlisten = \"127.0.0.1:0\"\nproduct_name = \"Acme Secure Mail\"\n\
         logo_file = \"{}\"\naccent_color = \"#0f766e\"\n\
         disclaimer = \"This service is for the recipients of Acme's secure messages. Access is logged.\"\n\
         support_contact = \"helpdesk@acme.example\"\n",
        logo.display()
    ));
    let mut browser = Browser::start();
    browser.goto(&format!("http://localhost:{}/sign-in", gw.portal.port()));
    assert!(
        browser.title().contains("Acme Secure Mail"),
        "{}",
        browser.title()
    );
    assert!(
        browser.text("header").contains("Acme Secure Mail"),
        "the name in the header"
    );
    // The logo loaded (from the portal: the CSP allows nothing else).
    let loaded = browser.execute(
        "const i = document.querySelector('img.logo'); return !!i && i.complete && i.naturalWidth > 0;",
    );
    assert_eq!(loaded, serde_json::Value::Bool(true), "the logo shows");
    let button = browser.execute(
        "return getComputedStyle(document.querySelector('form button[type=submit], form button')).backgroundColor;",
    );
    assert_eq!(
        button,
        serde_json::json!("rgb(15, 118, 110)"),
        "the accent colour"
    );
    assert!(
        browser.text(".disclaimer").contains("Access is logged."),
        "the disclaimer under the form"
    );
    assert!(
        browser.text("footer").contains("helpdesk@acme.example"),
        "the support contact"
    );
    snap(&mut browser, "sign-in-branded");
}
