//! The portal router without a socket: pages render, every response
//! carries the security headers, and nothing of another host is referenced.

use axum::{
    body::Body,
    http::{Request, StatusCode, header},
};
use tower::ServiceExt;

use super::*;

pub(crate) mod journeys;
mod messages;

/// A state on a fresh database (kept alive by the returned directory),
/// mails captured by [`journeys::Captured`].
async fn state(branding: Branding) -> PortalState {
    let (state, dir, _) = journeys::fresh(PortalSettings {
        branding,
        ..PortalSettings::default()
    })
    .await;
    std::mem::forget(dir);
    state
}

async fn get(state: &PortalState, path: &str) -> (StatusCode, axum::http::HeaderMap, String) {
    let response = router(state.clone())
        .oneshot(Request::get(path).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn every_response_carries_the_security_headers() {
    let state = state(Branding::default()).await;
    for path in ["/sign-in", "/no-such-page", "/static/portal.css", "/"] {
        let (_, headers, _) = get(&state, path).await;
        let csp = headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
        assert!(csp.contains("default-src 'none'"), "{path}: {csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{path}");
        assert!(!csp.contains("unsafe-inline"), "{path}");
        assert_eq!(headers[header::REFERRER_POLICY], "no-referrer", "{path}");
        assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff", "{path}");
        assert!(headers.get(header::CACHE_CONTROL).is_some(), "{path}");
        assert!(
            headers.get(header::STRICT_TRANSPORT_SECURITY).is_none(),
            "{path}: no HSTS over plain HTTP"
        );
    }
    let (_, headers, _) = get(&state, "/sign-in").await;
    assert_eq!(headers[header::CACHE_CONTROL], "no-store");
    let (_, headers, _) = get(&state, "/static/portal.css").await;
    assert!(
        headers[header::CACHE_CONTROL]
            .to_str()
            .unwrap()
            .contains("immutable")
    );
}

#[tokio::test]
async fn over_tls_responses_carry_hsts() {
    let (state, _dir, _) = journeys::fresh(PortalSettings {
        reach: Reach {
            tls: true,
            ..Reach::default()
        },
        ..PortalSettings::default()
    })
    .await;
    let (_, headers, _) = get(&state, "/sign-in").await;
    assert!(
        headers[header::STRICT_TRANSPORT_SECURITY]
            .to_str()
            .unwrap()
            .starts_with("max-age=")
    );
}

#[tokio::test]
async fn the_sign_in_page_is_branded_labelled_and_self_contained() {
    let state = state(Branding {
        product_name: "Acme <Secure> Mail".into(),
        accent_color: "#aa3300".into(),
        disclaimer: Some("Authorised use only.".into()),
        support_contact: Some("help@acme.example".into()),
        logo: Some((
            b"<svg xmlns='http://www.w3.org/2000/svg'/>".to_vec(),
            "image/svg+xml",
        )),
    })
    .await;
    let (status, headers, html) = get(&state, "/sign-in").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(html.contains("Acme &lt;Secure&gt; Mail"), "escaped: {html}");
    assert!(html.contains("<label for=\"email\">"));
    assert!(html.contains("<label for=\"password\">"));
    assert!(html.contains("autocomplete=\"current-password\""));
    assert!(html.contains("Authorised use only."));
    assert!(html.contains("help@acme.example"));
    assert!(html.contains("/static/logo?v="));
    // Nothing from another host, no inline script or style.
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "{html}"
    );
    assert!(
        !html.contains("<script") && !html.contains("style="),
        "{html}"
    );
    let (_, headers, css) = get(&state, "/static/theme.css").await;
    assert_eq!(headers[header::CONTENT_TYPE], "text/css; charset=utf-8");
    assert!(css.contains("--accent: #aa3300"));
    let (status, headers, _) = get(&state, "/static/logo").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_TYPE], "image/svg+xml");
}

#[tokio::test]
async fn unknown_paths_get_a_helpful_404_page() {
    let state = state(Branding::default()).await;
    let (status, _, html) = get(&state, "/open/not-a-token/../../etc").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(html.contains("Page not found"));
    assert!(html.contains("href=\"/sign-in\""));
    let (status, _, _) = get(&state, "/static/logo").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "no logo configured");
    let (status, headers, _) = get(&state, "/").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers[header::LOCATION], "/sign-in");
}
