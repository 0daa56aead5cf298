//! A logo upload: size-bounded, its type sniffed from the bytes (never
//! taken from the upload's name or content type), and an SVG refused when
//! it could run script or pull entities. The portal serves SVG under
//! `Content-Security-Policy: sandbox` as well, and shows it through `<img>`,
//! where browsers run no script at all: three locks, not one.

use sealpost_policy::Invalid;

/// Largest logo, in bytes: it is sent with every sign-in page (the
/// configuration file's `portal.logo_file` has the same bound).
pub const MAX_LOGO_BYTES: usize = 512 * 1024;

/// The content types a logo may have.
pub const LOGO_TYPES: [&str; 3] = ["image/png", "image/jpeg", "image/svg+xml"];

/// What an SVG logo may not contain (lower-cased): script, event handler
/// attributes are checked apart, embedded HTML, entity declarations
/// (billion laughs, external entities).
const SVG_REFUSED: [&str; 6] = [
    "<script",
    "javascript:",
    "<foreignobject",
    "<!entity",
    "<iframe",
    "<embed",
];

fn invalid(code: &'static str, message: impl Into<String>) -> Invalid {
    Invalid::new("logo", code, message)
}

/// The content type of `bytes` as a logo.
///
/// # Errors
/// [`Invalid`] on the `logo` field: too large, empty, not a PNG, JPEG or
/// SVG, or an SVG with script.
pub fn sniff(bytes: &[u8]) -> Result<&'static str, Invalid> {
    if bytes.is_empty() {
        return Err(invalid("empty_logo", "the logo file is empty"));
    }
    if bytes.len() > MAX_LOGO_BYTES {
        return Err(invalid(
            "logo_too_large",
            format!(
                "the logo is {} bytes; at most {MAX_LOGO_BYTES} (it is sent with every sign-in page)",
                bytes.len()
            ),
        ));
    }
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        return Ok("image/png");
    }
    if bytes.starts_with(&[0xff, 0xd8, 0xff]) {
        return Ok("image/jpeg");
    }
    let not_an_image = || {
        invalid(
            "unsupported_logo",
            "the logo must be a PNG, JPEG or SVG image",
        )
    };
    let text = std::str::from_utf8(bytes).map_err(|_| not_an_image())?;
    let lower = text
        .trim_start_matches('\u{feff}')
        .trim()
        .to_ascii_lowercase();
    if !lower.starts_with('<') || !lower.contains("<svg") {
        return Err(not_an_image());
    }
    if SVG_REFUSED.iter().any(|bad| lower.contains(bad)) || has_event_handler(&lower) {
        return Err(invalid(
            "unsafe_svg",
            "the SVG logo contains script, event handlers, embedded HTML or entity \
             declarations; export it as a plain drawing (or use a PNG)",
        ));
    }
    Ok("image/svg+xml")
}

/// Whether an SVG (lower-cased) has an `on…=` attribute.
fn has_event_handler(lower: &str) -> bool {
    let bytes = lower.as_bytes();
    lower.match_indices("on").any(|(at, _)| {
        let after_space = at > 0 && bytes[at - 1].is_ascii_whitespace();
        let name_end = bytes[at + 2..]
            .iter()
            .position(|b| !b.is_ascii_alphabetic())
            .map_or(bytes.len(), |n| at + 2 + n);
        let rest = lower[name_end..].trim_start();
        after_space && name_end > at + 2 && rest.starts_with('=')
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_are_known_by_their_bytes() {
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\n....").unwrap(), "image/png");
        assert_eq!(sniff(&[0xff, 0xd8, 0xff, 0xe0, 0]).unwrap(), "image/jpeg");
        let svg = br##"<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10" height="10" fill="#123456"/></svg>"##;
        assert_eq!(sniff(svg).unwrap(), "image/svg+xml");
        for (bytes, code) in [
            (&b""[..], "empty_logo"),
            (b"GIF89a....", "unsupported_logo"),
            (b"<html><body>hi</body></html>", "unsupported_logo"),
            (&[0xff, 0xfe, 0x00][..], "unsupported_logo"),
        ] {
            assert_eq!(sniff(bytes).unwrap_err().code, code);
        }
        let big = vec![0x89; MAX_LOGO_BYTES + 1];
        assert_eq!(sniff(&big).unwrap_err().code, "logo_too_large");
    }

    #[test]
    fn svg_with_script_is_refused() {
        for bad in [
            r#"<svg><script>alert(1)</script></svg>"#,
            r#"<svg><a href="JavaScript:alert(1)"><rect/></a></svg>"#,
            r#"<svg onload="alert(1)"></svg>"#,
            r#"<svg><rect ONCLICK = "x"/></svg>"#,
            r#"<svg><foreignObject><p>x</p></foreignObject></svg>"#,
            r#"<!DOCTYPE svg [<!ENTITY a "aaaa">]><svg>&a;</svg>"#,
        ] {
            let e = sniff(bad.as_bytes()).unwrap_err();
            assert_eq!(e.code, "unsafe_svg", "{bad}");
            assert_eq!(e.field, "logo");
        }
        // Words containing "on" are fine.
        let ok =
            r#"<svg><text font-family="Montserrat">London</text><polygon points="1,2"/></svg>"#;
        assert_eq!(sniff(ok.as_bytes()).unwrap(), "image/svg+xml");
    }
}
