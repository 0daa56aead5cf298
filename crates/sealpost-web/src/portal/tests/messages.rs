//! Opening a message against a real database (issue 15 items 4-6): the
//! page, frame, inline images, downloads and print view; a second
//! recipient's attempts on the first's ids; ended messages; the
//! definition's print rule; remote images; the read receipt.

use std::time::{Duration, SystemTime};

use axum::http::{StatusCode, header};
use sealpost_policy::DefinitionDraft;
use sealpost_store::{
    MessageFilter, MessageKind, PortalStore, QueueId, SecureStore, portal::AccountKey,
};

use super::journeys::{Agent, GOOD, World, deliver_raw, policy_with, world};
use crate::portal::PortalSettings;

const PNG: &[u8] =
    b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89";
const PDF: &[u8] =
    b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n";

fn b64(bytes: &[u8]) -> String {
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

/// HTML with a `cid:` image and a remote one, plus a PDF attachment.
fn rich(to: &str, marker: &str) -> Vec<u8> {
    format!(
        "From: Alice <alice@corp.example>\r\nTo: {to}\r\nCc: carol@corp.example\r\n\
         Subject: Q3 contract\r\nDate: Mon, 7 Dec 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"m\"\r\n\r\n\
         --m\r\nContent-Type: multipart/related; boundary=\"r\"\r\n\r\n\
         --r\r\nContent-Type: text/html; charset=utf-8\r\n\r\n\
         <p>{marker}</p><img src=\"cid:logo@x\" alt=\"logo\">\
         <img src=\"https://tracker.example/pixel.png\">\r\n\
         --r\r\nContent-Type: image/png\r\nContent-ID: <logo@x>\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n{}\r\n--r--\r\n\
         --m\r\nContent-Type: application/pdf; name=\"report.pdf\"\r\n\
         Content-Disposition: attachment; filename=\"report.pdf\"\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n{}\r\n--m--\r\n",
        b64(PNG),
        b64(PDF)
    )
    .into_bytes()
}

fn plain(marker: &str) -> Vec<u8> {
    format!("From: alice@corp.example\r\nSubject: Plain\r\n\r\n{marker} <b>not bold</b>\r\n")
        .into_bytes()
}

/// Delivers `content` to `to` and registers `to` through its link.
async fn register(w: &World, to: &str, content: Vec<u8>) -> (Agent, QueueId) {
    let (id, token) = deliver_raw(&w.store, to, "Q3 contract", SystemTime::now(), content).await;
    let mut agent = Agent::new(&w.state);
    let path = format!("/open/{}", token.as_str());
    let page = agent
        .submit(&path, &path, &[("password", GOOD), ("confirm", GOOD)])
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    assert_eq!(page.location(), format!("/messages/{id}/0"));
    (agent, id)
}

/// The first `href="<prefix>…"` of a page.
fn href(body: &str, prefix: &str) -> String {
    let at = body
        .find(&format!("\"{prefix}"))
        .unwrap_or_else(|| panic!("no {prefix} in {body}"));
    let rest = &body[at + 1..];
    rest[..rest.find('"').unwrap()].to_owned()
}

async fn receipts(w: &World, id: &QueueId) -> usize {
    w.store
        .search(MessageFilter {
            all_kinds: true,
            limit: 100,
            ..MessageFilter::default()
        })
        .await
        .unwrap()
        .into_iter()
        .filter(|m| {
            m.message.parent.as_ref() == Some(id) && m.message.kind == MessageKind::Notification
        })
        .count()
}

#[tokio::test]
async fn the_page_shows_headers_attachments_and_the_framed_html_with_inline_images() {
    let w = world(PortalSettings::default(), 1000).await;
    let (mut bob, id) =
        register(&w, "bob@partner.example", rich("bob@partner.example", "M1")).await;
    let base = format!("/messages/{id}/0");
    let page = bob.get(&base).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    for want in [
        "Alice &lt;alice@corp.example&gt;",
        "bob@partner.example",
        "carol@corp.example",
        "Q3 contract",
        "report.pdf",
        "application/pdf",
        "bytes",
        &format!("src=\"{base}/frame\""),
        "sandbox=\"allow-same-origin allow-popups allow-popups-to-escape-sandbox\"",
    ] {
        assert!(
            page.body.replace("&#x2f;", "/").contains(want),
            "{want} in {}",
            page.body
        );
    }
    assert!(
        !page.body.replace("&#x2f;", "/").contains("M1"),
        "the HTML is only in the frame"
    );
    assert_eq!(page.headers[header::CACHE_CONTROL], "no-store");
    assert!(
        page.headers[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .contains("frame-ancestors 'none'")
    );

    let frame = bob.get(&format!("{base}/frame")).await;
    assert_eq!(frame.status, StatusCode::OK);
    assert!(
        frame.body.replace("&#x2f;", "/").contains("<p>M1</p>"),
        "{}",
        frame.body
    );
    let csp = frame.headers[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap();
    assert!(csp.contains("frame-ancestors 'self'") && csp.contains("img-src 'self';"));
    assert_eq!(frame.headers[header::CACHE_CONTROL], "no-store");
    let inline = href(
        &frame.body.replace("src=", "href="),
        &format!("{base}/inline/"),
    );
    let image = bob.get(&inline).await;
    assert_eq!(image.status, StatusCode::OK);
    assert_eq!(image.bytes, PNG);
    assert_eq!(image.headers[header::CONTENT_TYPE], "image/png");
    assert_eq!(image.headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    assert_eq!(image.headers[header::CACHE_CONTROL], "no-store");

    let download = bob
        .get(&href(
            &page.body.replace("&#x2f;", "/"),
            &format!("{base}/attachments/"),
        ))
        .await;
    assert_eq!(download.status, StatusCode::OK);
    assert_eq!(download.bytes, PDF);
    assert_eq!(download.headers[header::CONTENT_TYPE], "application/pdf");
    assert_eq!(
        download.headers[header::CONTENT_DISPOSITION],
        "attachment; filename=\"report.pdf\"; filename*=UTF-8''report.pdf"
    );
    assert_eq!(download.headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    assert_eq!(download.headers[header::CACHE_CONTROL], "no-store");

    // The attachment is not an inline image, nor the image an attachment.
    let n = inline.rsplit('/').next().unwrap();
    assert_eq!(
        bob.get(&format!("{base}/attachments/{n}")).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        bob.get(&format!("{base}/inline/0")).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn a_text_message_is_escaped_and_read_unread_and_delete_work() {
    let w = world(PortalSettings::default(), 1000).await;
    let (mut bob, id) = register(&w, "bob@partner.example", plain("T1")).await;
    let base = format!("/messages/{id}/0");
    let page = bob.get(&base).await;
    assert!(
        page.body
            .replace("&#x2f;", "/")
            .contains("<pre class=\"body-text\">T1 &lt;b&gt;not bold&lt;/b&gt;")
    );
    assert!(!page.body.replace("&#x2f;", "/").contains("<iframe"));
    let account =
        AccountKey::of(&sealpost_policy::EmailAddress::parse("bob@partner.example").unwrap());
    let row = || w.store.mailbox_message(&account, &id, 0, SystemTime::now());
    assert!(row().await.unwrap().read, "opening marks it read");

    let csrf = page.csrf();
    let unread = bob
        .post(&format!("{base}/read"), &[("csrf", &csrf), ("read", "0")])
        .await;
    assert_eq!(unread.status, StatusCode::SEE_OTHER);
    assert_eq!(unread.location(), "/inbox");
    assert!(!row().await.unwrap().read);
    // Without the token: refused, nothing changes.
    let forged = bob.post(&format!("{base}/delete"), &[("csrf", "x")]).await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert!(row().await.unwrap().deleted_at.is_none());
    let deleted = bob
        .post(&format!("{base}/delete"), &[("csrf", &csrf)])
        .await;
    assert_eq!(deleted.status, StatusCode::SEE_OTHER);
    assert!(row().await.unwrap().deleted_at.is_some());
}

#[tokio::test]
async fn another_recipients_session_gets_the_made_up_id_404_for_every_id() {
    let w = world(PortalSettings::default(), 1000).await;
    let (mut bob, id) = register(&w, "bob@partner.example", rich("bob@partner.example", "B")).await;
    let base = format!("/messages/{id}/0");
    let page = bob.get(&base).await;
    let attachment = href(
        &page.body.replace("&#x2f;", "/"),
        &format!("{base}/attachments/"),
    );
    let frame = bob.get(&format!("{base}/frame")).await;
    let inline = href(
        &frame.body.replace("src=", "href="),
        &format!("{base}/inline/"),
    );
    let (mut carol, carol_id) = register(
        &w,
        "carol@partner.example",
        rich("carol@partner.example", "C"),
    )
    .await;
    let csrf = carol.get(&format!("/messages/{carol_id}/0")).await.csrf();

    let made_up = format!("/messages/{}/0", QueueId::generate());
    let suffixes = [
        String::new(),
        "/frame".into(),
        format!("/inline/{}", inline.rsplit('/').next().unwrap()),
        format!("/attachments/{}", attachment.rsplit('/').next().unwrap()),
        "/print".into(),
    ];
    let reference = carol.get(&made_up).await;
    assert_eq!(reference.status, StatusCode::NOT_FOUND);
    for suffix in &suffixes {
        for path in [format!("{base}{suffix}"), format!("{made_up}{suffix}")] {
            let got = carol.get(&path).await;
            assert_eq!(got.status, StatusCode::NOT_FOUND, "{path}");
            assert_eq!(got.body, reference.body, "{path}");
        }
    }
    // Bob's own index 1 (none), and a malformed id: the same.
    for path in [format!("/messages/{id}/1"), "/messages/zz/0".into()] {
        assert_eq!(carol.get(&path).await.body, reference.body, "{path}");
    }
    for action in ["/read", "/delete"] {
        for path in [format!("{base}{action}"), format!("{made_up}{action}")] {
            let got = carol.post(&path, &[("csrf", &csrf), ("read", "1")]).await;
            assert_eq!(got.status, StatusCode::NOT_FOUND, "{path}");
            assert_eq!(got.body, reference.body, "{path}");
        }
    }
    // Bob's message is untouched and stays his.
    let account =
        AccountKey::of(&sealpost_policy::EmailAddress::parse("bob@partner.example").unwrap());
    let row = w
        .store
        .mailbox_message(&account, &id, 0, SystemTime::now())
        .await
        .unwrap();
    assert!(row.deleted_at.is_none());
    assert_eq!(bob.get(&base).await.status, StatusCode::OK);
}

#[tokio::test]
async fn expired_and_recalled_messages_show_a_notice_and_no_content() {
    let w = world(PortalSettings::default(), 1000).await;
    let (mut bob, _) = register(&w, "bob@partner.example", plain("first")).await;
    // Received 40 days ago: its 30 days are over.
    let (old, _) = deliver_raw(
        &w.store,
        "bob@partner.example",
        "Old",
        SystemTime::now() - Duration::from_secs(40 * 86400),
        rich("bob@partner.example", "SECRET-OLD"),
    )
    .await;
    let (recalled, _) = deliver_raw(
        &w.store,
        "bob@partner.example",
        "Recalled",
        SystemTime::now(),
        rich("bob@partner.example", "SECRET-RECALLED"),
    )
    .await;
    w.store
        .recall(
            vec![recalled.clone()],
            SystemTime::now(),
            sealpost_store::audit::Actor::system("test"),
        )
        .await
        .unwrap();
    for (id, title) in [
        (old, "This message has expired"),
        (recalled, "This message was withdrawn"),
    ] {
        for suffix in ["", "/frame", "/print", "/attachments/3", "/inline/2"] {
            let got = bob.get(&format!("/messages/{id}/0{suffix}")).await;
            assert_eq!(got.status, StatusCode::GONE, "{id}{suffix}");
            assert!(
                got.body.replace("&#x2f;", "/").contains(title),
                "{}",
                got.body
            );
            assert!(!got.body.replace("&#x2f;", "/").contains("SECRET"));
            assert!(!got.body.replace("&#x2f;", "/").contains("report.pdf"));
        }
    }
}

#[tokio::test]
async fn print_and_reply_links_follow_the_definition() {
    let w = world(PortalSettings::default(), 1000).await;
    let (mut bob, id) = register(&w, "bob@partner.example", plain("P1")).await;
    let base = format!("/messages/{id}/0");
    let page = bob.get(&base).await;
    assert!(
        page.body
            .replace("&#x2f;", "/")
            .contains(&format!("href=\"{base}/print\""))
    );
    assert!(
        page.body
            .replace("&#x2f;", "/")
            .contains(&format!("href=\"{base}/reply\""))
    );
    assert!(
        page.body
            .replace("&#x2f;", "/")
            .contains(&format!("href=\"{base}/reply-all\""))
    );
    assert!(
        !page.body.replace("&#x2f;", "/").contains("/forward"),
        "forward is off by default"
    );
    let print = bob.get(&format!("{base}/print")).await;
    assert_eq!(print.status, StatusCode::OK);
    assert!(print.body.replace("&#x2f;", "/").contains("P1 &lt;b&gt;"));
    assert!(
        print
            .body
            .replace("&#x2f;", "/")
            .contains("/static/print.js")
    );
    assert!(!print.body.replace("&#x2f;", "/").contains("<script>"));

    let mut draft = DefinitionDraft::default_definition();
    draft.allow_print = false;
    draft.allow_reply = false;
    draft.allow_reply_all = false;
    draft.allow_forward = true;
    w.policy.store(std::sync::Arc::new(policy_with(draft)));
    let page = bob.get(&base).await;
    assert!(
        !page.body.replace("&#x2f;", "/").contains("/print"),
        "{}",
        page.body
    );
    assert!(!page.body.replace("&#x2f;", "/").contains("/reply"));
    assert!(
        page.body
            .replace("&#x2f;", "/")
            .contains(&format!("href=\"{base}/forward\""))
    );
    let print = bob.get(&format!("{base}/print")).await;
    assert_eq!(print.status, StatusCode::FORBIDDEN);
    assert!(!print.body.replace("&#x2f;", "/").contains("P1"));
}

#[tokio::test]
async fn remote_images_load_only_after_the_recipient_asks() {
    let w = world(PortalSettings::default(), 1000).await;
    let (mut bob, id) = register(&w, "bob@partner.example", rich("bob@partner.example", "R")).await;
    let base = format!("/messages/{id}/0");
    let page = bob.get(&base).await;
    assert!(
        page.body
            .replace("&#x2f;", "/")
            .contains("Show remote images (1)"),
        "{}",
        page.body
    );
    assert!(
        page.body
            .replace("&#x2f;", "/")
            .contains(&format!("href=\"{base}?remote=1\""))
    );
    let frame = bob.get(&format!("{base}/frame")).await;
    assert!(
        !frame
            .body
            .replace("&#x2f;", "/")
            .contains("tracker.example")
    );

    let page = bob.get(&format!("{base}?remote=1")).await;
    assert!(
        page.body
            .replace("&#x2f;", "/")
            .contains(&format!("src=\"{base}/frame?remote=1\""))
    );
    assert!(
        !page
            .body
            .replace("&#x2f;", "/")
            .contains("Show remote images")
    );
    let frame = bob.get(&format!("{base}/frame?remote=1")).await;
    assert!(
        frame
            .body
            .replace("&#x2f;", "/")
            .contains("https://tracker.example/pixel.png")
    );
    let csp = frame.headers[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap();
    assert!(csp.contains("img-src 'self' https: http:"));
    // The choice is per view: the plain frame still blocks.
    let frame = bob.get(&format!("{base}/frame")).await;
    assert!(
        !frame
            .body
            .replace("&#x2f;", "/")
            .contains("tracker.example")
    );
}

#[tokio::test]
async fn the_first_opening_commits_one_read_receipt_and_later_ones_none() {
    let w = world(PortalSettings::default(), 1000).await;
    let mut draft = DefinitionDraft::default_definition();
    draft.read_receipt = true;
    w.policy.store(std::sync::Arc::new(policy_with(draft)));
    let (mut bob, id) = register(&w, "bob@partner.example", plain("RR")).await;
    assert_eq!(receipts(&w, &id).await, 0, "registering is not reading");
    for _ in 0..3 {
        assert_eq!(
            bob.get(&format!("/messages/{id}/0")).await.status,
            StatusCode::OK
        );
    }
    assert_eq!(receipts(&w, &id).await, 1);
    let tracked = w.store.tracked(&id).await.unwrap();
    let secure = tracked.recipients[0].secure.as_ref().unwrap();
    assert!(secure.first_opened_at.is_some() && secure.read);

    // Without read_receipt in the definition: none.
    w.policy.store(std::sync::Arc::new(policy_with(
        DefinitionDraft::default_definition(),
    )));
    let (other, _) = deliver_raw(
        &w.store,
        "bob@partner.example",
        "Q4",
        SystemTime::now(),
        plain("Q4"),
    )
    .await;
    assert_eq!(
        bob.get(&format!("/messages/{other}/0")).await.status,
        StatusCode::OK
    );
    assert_eq!(receipts(&w, &other).await, 0);
}
