//! The document served to the message page's iframe, and its headers.
//!
//! The frame shows sanitised HTML only ([`super::sanitise`]); its CSP is a
//! second, independent wall: no script of any kind, images from the portal
//! only (plus any `http(s)` host once the recipient allowed remote images
//! for this request), one stylesheet of ours allowed by hash, no forms, no
//! `<base>`, framed only by the portal, and sandboxed even when opened on
//! its own. Why the sandbox keeps `allow-same-origin`: see [`super`].

use std::sync::LazyLock;

use axum::http::{HeaderMap, HeaderValue, header};

/// The iframe's `sandbox` attribute on the message page. No
/// `allow-scripts`, `allow-forms`, `allow-modals` or top navigation; popups
/// so that links (all `target="_blank"`) open, as normal pages.
pub const FRAME_SANDBOX: &str = "allow-same-origin allow-popups allow-popups-to-escape-sandbox";

/// The frame's only style: readable text and images that fit. Sender CSS
/// never reaches the frame, so this is all the styling it has.
const FRAME_STYLE: &str = "body{margin:0;padding:1rem;font:16px/1.5 system-ui,sans-serif;\
color:#111;background:#fff;overflow-wrap:anywhere}img{max-width:100%;height:auto}\
table{max-width:100%;border-collapse:collapse}pre{white-space:pre-wrap}\
blockquote{margin:0 0 0 .5rem;padding-left:.75rem;border-left:3px solid #ccc}";

/// `'sha256-…'` of [`FRAME_STYLE`], the only style the frame's CSP admits.
static FRAME_STYLE_SOURCE: LazyLock<String> = LazyLock::new(|| {
    let digest = ring::digest::digest(&ring::digest::SHA256, FRAME_STYLE.as_bytes());
    format!("'sha256-{}'", base64(digest.as_ref()))
});

/// The full HTML document for the frame around a sanitised body.
pub fn frame_document(sanitised_body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">\
         <meta name=\"referrer\" content=\"no-referrer\">\
         <style>{FRAME_STYLE}</style></head>\n<body>{sanitised_body}</body></html>\n"
    )
}

/// The frame response's `Content-Security-Policy`.
pub fn frame_csp(allow_remote: bool) -> String {
    let img = if allow_remote {
        "'self' https: http:"
    } else {
        "'self'"
    };
    format!(
        "default-src 'none'; img-src {img}; style-src {}; frame-ancestors 'self'; \
         base-uri 'none'; form-action 'none'; sandbox {FRAME_SANDBOX}",
        *FRAME_STYLE_SOURCE
    )
}

/// Headers of the frame response. They replace the portal's defaults
/// (`headers::secure_headers` keeps a header a handler set): framing by the
/// portal itself is allowed here and nowhere else.
pub fn frame_headers(allow_remote: bool) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_str(&frame_csp(allow_remote)).expect("the CSP is ASCII"),
    );
    headers.insert(
        header::X_FRAME_OPTIONS,
        HeaderValue::from_static("SAMEORIGIN"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers
}

/// Standard base64 with padding (the CSP hash-source form).
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (input, want) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(input.as_bytes()), want);
        }
    }

    #[test]
    fn csp_without_and_with_remote_images() {
        let style = FRAME_STYLE_SOURCE.as_str();
        assert!(style.starts_with("'sha256-") && style.ends_with("='"));
        assert_eq!(
            frame_csp(false),
            format!(
                "default-src 'none'; img-src 'self'; style-src {style}; frame-ancestors 'self'; \
                 base-uri 'none'; form-action 'none'; \
                 sandbox allow-same-origin allow-popups allow-popups-to-escape-sandbox"
            )
        );
        assert!(frame_csp(true).contains("; img-src 'self' https: http:; "));
        assert!(!frame_csp(false).contains("script"));
    }

    #[test]
    fn the_document_wraps_the_body_and_its_style_matches_the_hash() {
        let doc = frame_document("<p>hi</p>");
        assert!(doc.starts_with("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"));
        assert!(doc.contains("<body><p>hi</p></body>"));
        assert!(doc.contains(&format!("<style>{FRAME_STYLE}</style>")));
        let headers = frame_headers(false);
        assert_eq!(headers[header::X_FRAME_OPTIONS], "SAMEORIGIN");
        assert_eq!(headers[header::CONTENT_TYPE], "text/html; charset=utf-8");
        assert_eq!(headers[header::CACHE_CONTROL], "no-store");
    }
}
