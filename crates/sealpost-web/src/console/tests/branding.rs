//! Portal branding in the console: a policy admin edits every field and
//! the logo, bad input is refused next to its field with nothing stored,
//! other roles read, and a portal on another node (its own live branding,
//! the same store) shows the change at its next request, no restart.

use std::{sync::Arc, time::Duration};

use axum::http::{StatusCode, header};
use sealpost_store::{AdminStore, BrandingReader, Role, audit::AuditQuery};

use super::{OWN, agent, sign_in, world};
use crate::{
    branding::{Branding, LiveBranding},
    portal::{PortalSettings, tests::journeys::Agent},
};

const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR-not-really";
const SVG_WITH_SCRIPT: &[u8] =
    b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>";
const SVG: &[u8] = b"<svg xmlns='http://www.w3.org/2000/svg' width='40' height='40'><circle cx='20' cy='20' r='18' fill='#aa3300'/></svg>";

/// Posts the branding form with the page's token.
async fn save(a: &mut Agent, fields: &[(&str, &str)], logo: Option<(&str, &[u8])>) -> super::Page {
    let csrf = a.get("/console/branding").await.csrf();
    let mut all = vec![("csrf", csrf.as_str())];
    all.extend_from_slice(fields);
    let files: Vec<(&str, &str, &str, &[u8])> = logo
        .iter()
        .map(|(n, b)| ("logo", *n, "application/octet-stream", *b))
        .collect();
    a.post_multipart("/console/branding", &all, &files).await
}

#[tokio::test]
async fn a_policy_admin_brands_the_portal_and_every_node_shows_it_without_a_restart() {
    let w = world().await;
    w.admin("pat", Role::PolicyAdmin, OWN, false).await;
    // Another node: its own portal and live branding, the same store.
    let other_node = crate::portal::tests::journeys::portal_on(
        w.store.clone(),
        PortalSettings::default(),
        Some(Arc::new(LiveBranding::new(
            Branding::default(),
            w.store.clone(),
            Duration::ZERO,
        ))),
    )
    .await;
    let mut recipient = Agent::at(crate::portal::router(other_node), "http://localhost:8082");
    let before = recipient.get("/sign-in").await;
    assert!(before.body.contains("Secure messages"), "the file's name");

    let mut pat = agent(&w);
    assert_eq!(sign_in(&mut pat, "pat", OWN).await.location(), "/console");
    let page = pat.get("/console/branding").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.body.contains("placeholder=\"Secure messages\""),
        "the file's value shown"
    );
    assert!(page.body.contains(">Save</button>"));

    let saved = save(
        &mut pat,
        &[
            ("product_name", "Acme Secure Mail"),
            ("accent_color", "#AA3300"),
            ("disclaimer", "For the addressee only."),
            ("support_contact", "help@acme.example"),
        ],
        Some(("logo.png", PNG)),
    )
    .await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.body);
    assert_eq!(saved.location(), "/console/branding?saved=1");
    let stored = w.store.branding().await.unwrap();
    assert_eq!(stored.version, 1);
    assert_eq!(stored.branding.accent_color.as_deref(), Some("#aa3300"));
    assert_eq!(
        stored.branding.logo.as_ref().unwrap().content_type,
        "image/png"
    );
    let shown = pat.get("/console/branding?saved=1").await;
    assert!(shown.body.contains("Saved."));
    let described = format!("image&#x2f;png, {} bytes", PNG.len());
    assert!(shown.body.contains(&described), "{}", shown.body);
    let preview = pat.get("/console/branding/logo").await;
    assert_eq!(preview.bytes, PNG);

    // The other node's sign-in page, theme and logo follow at once.
    let page = recipient.get("/sign-in").await;
    assert!(page.body.contains("Acme Secure Mail"), "{}", page.body);
    assert!(page.body.contains("For the addressee only."));
    assert!(page.body.contains("help@acme.example"));
    assert!(page.body.contains("/static/logo?v="));
    let theme = recipient.get("/static/theme.css").await;
    assert!(theme.body.contains("--accent: #aa3300"), "{}", theme.body);
    let logo = recipient.get("/static/logo").await;
    assert_eq!(logo.headers[header::CONTENT_TYPE], "image/png");
    assert_eq!(logo.bytes, PNG);

    // An SVG logo is served sandboxed.
    let svg = save(
        &mut pat,
        &[("product_name", "Acme Secure Mail")],
        Some(("logo.svg", SVG)),
    )
    .await;
    assert_eq!(svg.status, StatusCode::SEE_OTHER, "{}", svg.body);
    let logo = recipient.get("/static/logo").await;
    assert_eq!(logo.headers[header::CONTENT_TYPE], "image/svg+xml");
    let csp = logo.headers[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap();
    assert!(csp.starts_with("sandbox"), "{csp}");
    let page = recipient.get("/sign-in").await;
    assert!(
        !page.body.contains("For the addressee only."),
        "emptied: the file's (none)"
    );

    // Removing the stored logo: the file's (none here).
    let removed = save(&mut pat, &[("remove_logo", "1")], None).await;
    assert_eq!(removed.status, StatusCode::SEE_OTHER);
    assert_eq!(
        recipient.get("/static/logo").await.status,
        StatusCode::NOT_FOUND
    );
    assert!(
        recipient
            .get("/sign-in")
            .await
            .body
            .contains("Secure messages")
    );

    let entries = w
        .store
        .audit(AuditQuery {
            object_kind: Some("branding".into()),
            limit: 10,
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(entries.len(), 3);
    assert_eq!(entries[2].actor.name, "pat");
    assert_eq!(
        entries[2].change.after.as_ref().unwrap()["product_name"],
        "Acme Secure Mail"
    );
    assert_eq!(
        entries[0].change.before.as_ref().unwrap()["logo"]["content_type"],
        "image/svg+xml"
    );
}

#[tokio::test]
async fn bad_input_is_named_next_to_its_field_and_nothing_is_stored() {
    let w = world().await;
    w.admin("pat", Role::PolicyAdmin, OWN, false).await;
    let mut pat = agent(&w);
    sign_in(&mut pat, "pat", OWN).await;
    for (fields, logo, field, says) in [
        (
            vec![("product_name", "Acme"), ("accent_color", "blue")],
            None,
            "accent_color",
            "is not a colour such as #1d4ed8",
        ),
        (
            vec![("product_name", "Acme"), ("accent_color", "#12345")],
            None,
            "accent_color",
            "is not a colour",
        ),
        (
            vec![("product_name", "Acme")],
            Some(("evil.svg", SVG_WITH_SCRIPT)),
            "logo",
            "contains script",
        ),
        (
            vec![("product_name", "Acme")],
            Some(("photo.gif", &b"GIF89a...."[..])),
            "logo",
            "must be a PNG, JPEG or SVG",
        ),
        (
            vec![("product_name", &*"x".repeat(61))],
            None,
            "product_name",
            "at most 60 characters",
        ),
    ] {
        let page = save(&mut pat, &fields, logo).await;
        assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY, "{field}");
        let error_at = page
            .body
            .find(&format!("id=\"{field}-error\""))
            .unwrap_or_else(|| panic!("{field}: {}", page.body));
        let input_at = page.body.find(&format!("id=\"{field}\"")).unwrap();
        assert!(error_at > input_at, "the error follows its field");
        assert!(page.body[error_at..].contains(says), "{field}: {says}");
        assert!(page.body.contains("aria-invalid=\"true\""));
        assert!(
            page.body.contains("value=\"Acme\"") || field == "product_name",
            "typed values kept"
        );
    }
    assert_eq!(
        w.store.branding().await.unwrap().version,
        0,
        "nothing stored"
    );
}

#[tokio::test]
async fn other_roles_read_the_branding_and_may_not_change_it() {
    let w = world().await;
    w.admin("rita", Role::ReadOnly, OWN, false).await;
    w.admin("tom", Role::TrackingAdmin, OWN, false).await;
    for name in ["rita", "tom"] {
        let mut a = agent(&w);
        sign_in(&mut a, name, OWN).await;
        let page = a.get("/console/branding").await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(page.body.contains("<fieldset disabled>"), "{}", page.body);
        assert!(!page.body.contains(">Save</button>"));
        let refused = a
            .post_multipart(
                "/console/branding",
                &[("csrf", &page.csrf()), ("product_name", "Mine now")],
                &[],
            )
            .await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{name}");
    }
    assert_eq!(w.store.branding().await.unwrap().version, 0);
}
