//! The headers every portal response carries (issue 15, item 8).
//!
//! The portal shows people mail that strangers wrote, so the browser is
//! told to trust nothing it did not get from us: a strict
//! `Content-Security-Policy` with no inline script and no other origin,
//! no framing by anyone, no referrer (a URL may carry a token), no MIME
//! sniffing, nothing personal cached, and HSTS when the portal is reached
//! over TLS. A handler that needs a looser policy for one response (the
//! sandboxed message frame) sets its own header, which is kept.

use axum::{
    extract::Request,
    http::{HeaderName, HeaderValue, header},
    middleware::Next,
    response::Response,
};

use super::client::Client;

/// The policy for every page: our own scripts, styles and images only;
/// forms post to us only; no plugins; never framed.
pub const PAGE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self'; font-src 'self'; connect-src 'self'; form-action 'self'; \
     frame-src 'self'; base-uri 'none'; object-src 'none'; frame-ancestors 'none'";

/// `Strict-Transport-Security` once a browser has reached us over TLS.
const HSTS: &str = "max-age=31536000; includeSubDomains";

/// Adds the portal's security headers to every response, keeping any a
/// handler set itself. Runs inside [`super::client::identify`], which
/// tells whether the request came over TLS.
pub async fn secure_headers(request: Request, next: Next) -> Response {
    let over_tls = request
        .extensions()
        .get::<Client>()
        .is_some_and(|c| c.over_tls);
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    let mut set = |name: HeaderName, value: &'static str| {
        if !headers.contains_key(&name) {
            headers.insert(name, HeaderValue::from_static(value));
        }
    };
    set(header::CONTENT_SECURITY_POLICY, PAGE_CSP);
    set(header::REFERRER_POLICY, "no-referrer");
    set(header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(header::X_FRAME_OPTIONS, "DENY");
    set(
        HeaderName::from_static("cross-origin-opener-policy"),
        "same-origin",
    );
    set(
        HeaderName::from_static("cross-origin-resource-policy"),
        "same-origin",
    );
    set(
        HeaderName::from_static("permissions-policy"),
        "camera=(), microphone=(), geolocation=(), interest-cohort=()",
    );
    // Personal by default; the few public, versioned assets say otherwise.
    set(header::CACHE_CONTROL, "no-store");
    if over_tls {
        set(header::STRICT_TRANSPORT_SECURITY, HSTS);
    }
    response
}
