//! Headers for an attachment download: always saved, never rendered.
//!
//! `Content-Disposition: attachment` with the name twice (RFC 6266): an
//! ASCII `filename` for old clients and the exact name as RFC 5987
//! `filename*`. The type is the sender's only when it is a common document
//! type; anything else (HTML, SVG, XML, scripts, unknown) is
//! `application/octet-stream`, and `nosniff` plus a sandboxing CSP keep a
//! browser from treating the bytes as a page even if it tried.

use axum::http::{HeaderMap, HeaderValue, header};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use super::names::safe_file_name;

/// RFC 5987 `attr-char` is alphanumerics and these; all else is encoded.
const ATTR_CHAR: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'!')
    .remove(b'#')
    .remove(b'$')
    .remove(b'&')
    .remove(b'+')
    .remove(b'-')
    .remove(b'.')
    .remove(b'^')
    .remove(b'_')
    .remove(b'`')
    .remove(b'|')
    .remove(b'~');

/// Types passed through as declared (still as an attachment): none of them
/// is a document a browser runs script in.
const SAFE_TYPES: &[&str] = &[
    "application/pdf",
    "application/zip",
    "application/msword",
    "application/vnd.ms-excel",
    "application/vnd.ms-powerpoint",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "application/vnd.oasis.opendocument.text",
    "application/vnd.oasis.opendocument.spreadsheet",
    "audio/mpeg",
    "image/gif",
    "image/jpeg",
    "image/png",
    "image/webp",
    "text/calendar",
    "text/csv",
    "text/plain",
    "video/mp4",
];

/// Headers for downloading an attachment named `name` (as listed by the
/// view; cleaned again here) declared as `content_type`.
pub fn attachment_headers(name: &str, content_type: &str) -> HeaderMap {
    let name = safe_file_name(Some(name), "attachment");
    let declared = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let content_type = SAFE_TYPES
        .iter()
        .find(|t| **t == declared)
        .copied()
        .unwrap_or("application/octet-stream");
    let disposition = format!(
        "attachment; filename=\"{}\"; filename*=UTF-8''{}",
        ascii_fallback(&name),
        utf8_percent_encode(&name, ATTR_CHAR)
    );
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_str(&disposition).expect("ASCII without controls"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; sandbox"),
    );
    headers
}

/// The name with every character that is not printable ASCII, or that a
/// quoted-string or a lenient parser would read specially (`"`, `\`, `%`),
/// replaced by `_`.
fn ascii_fallback(name: &str) -> String {
    name.chars()
        .map(|c| match c {
            '"' | '\\' | '%' => '_',
            c if c.is_ascii_graphic() || c == ' ' => c,
            _ => '_',
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ascii_name_and_safe_type() {
        let h = attachment_headers("Q3 report.pdf", "application/PDF; name=x");
        assert_eq!(
            h[header::CONTENT_DISPOSITION],
            "attachment; filename=\"Q3 report.pdf\"; filename*=UTF-8''Q3%20report.pdf"
        );
        assert_eq!(h[header::CONTENT_TYPE], "application/pdf");
        assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert_eq!(h[header::CACHE_CONTROL], "no-store");
        assert_eq!(
            h[header::CONTENT_SECURITY_POLICY],
            "default-src 'none'; sandbox"
        );
    }

    #[test]
    fn non_ascii_name() {
        let h = attachment_headers("Grüße € \"Plan\".txt", "text/plain");
        assert_eq!(
            h[header::CONTENT_DISPOSITION],
            "attachment; filename=\"Gr__e _ _Plan_.txt\"; \
             filename*=UTF-8''Gr%C3%BC%C3%9Fe%20%E2%82%AC%20_Plan_.txt"
        );
        assert_eq!(h[header::CONTENT_TYPE], "text/plain");
    }

    #[test]
    fn risky_types_become_octet_stream() {
        for ct in [
            "text/html",
            "image/svg+xml",
            "application/xhtml+xml",
            "text/xml",
            "",
            "x",
        ] {
            let h = attachment_headers("a", ct);
            assert_eq!(h[header::CONTENT_TYPE], "application/octet-stream", "{ct}");
        }
    }

    #[test]
    fn a_path_or_control_in_the_name_does_not_survive() {
        let h = attachment_headers("../../etc/pass\r\nwd", "text/plain");
        assert_eq!(
            h[header::CONTENT_DISPOSITION],
            "attachment; filename=\"pass wd\"; filename*=UTF-8''pass%20wd"
        );
    }
}
