//! A sender's HTML made safe to show inside the portal's message frame.
//!
//! ammonia parses with html5ever (the browser's algorithm, so no mXSS
//! through parser differentials) and keeps only an allow-list written out
//! here in full, not ammonia's defaults:
//! - formatting, lists, quotes and tables; no script, no forms, no
//!   embedding (`iframe`, `object`, `embed`), no `base`, `meta`, `link`,
//!   no `svg` or `math`, no media elements;
//! - attributes without URLs (sizes, alignment, colours, `title`, `lang`,
//!   `dir`) plus exactly two URL attributes: `a href` (http, https,
//!   mailto; opened in a new tab with `rel="noopener noreferrer"`) and
//!   `img src` (see below). Relative URLs are dropped: in the frame they
//!   would point at the portal itself.
//! - **No CSS at all**: `style` attributes and `<style>` elements are
//!   removed (the latter with their content). Keeping them would mean
//!   parsing CSS to stop `url()`, `@import`, `expression()`, `behavior`
//!   and `image-set()`; the frame's CSP also refuses any style but the
//!   portal's own, so a missed case could not apply. Mail loses its
//!   colours and layout widths; it stays readable.
//!
//! Images: `cid:` references to a known inline part become
//! `{inline_base}/inline/{index}`; remote `http(s)` images are dropped and
//! counted unless the recipient allowed remote images for this render (so
//! the page can offer "Show remote images (N)"); anything else (`data:`,
//! unknown `cid:`) is dropped.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use ammonia::{Builder, Url, UrlRelative, UrlRelativeEvaluate};
use serde::Serialize;

use super::message::PartIndex;

/// The sender's HTML after sanitising.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SanitisedHtml {
    /// A fragment for the frame's `<body>`.
    pub html: String,
    /// Remote images removed because remote content was not allowed for
    /// this render; zero when it was.
    pub blocked_remote: usize,
}

/// Elements kept (without their attributes unless listed below).
pub(super) const TAGS: &[&str] = &[
    "a",
    "abbr",
    "acronym",
    "address",
    "b",
    "bdi",
    "bdo",
    "big",
    "blockquote",
    "br",
    "caption",
    "center",
    "cite",
    "code",
    "col",
    "colgroup",
    "dd",
    "del",
    "dfn",
    "div",
    "dl",
    "dt",
    "em",
    "figcaption",
    "figure",
    "font",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "hr",
    "i",
    "img",
    "ins",
    "kbd",
    "li",
    "mark",
    "ol",
    "p",
    "pre",
    "q",
    "s",
    "samp",
    "small",
    "span",
    "strike",
    "strong",
    "sub",
    "sup",
    "table",
    "tbody",
    "td",
    "tfoot",
    "th",
    "thead",
    "tr",
    "tt",
    "u",
    "ul",
    "var",
    "wbr",
];

/// Elements removed together with everything inside them: their content
/// is code or metadata, never text meant for the reader.
const DROP_WITH_CONTENT: &[&str] = &[
    "script",
    "style",
    "title",
    "template",
    "head",
    "noscript",
    "noembed",
    "noframes",
    "object",
    "applet",
    "iframe",
    "frame",
    "frameset",
    "svg",
    "math",
    "select",
    "textarea",
    "xmp",
    "plaintext",
];

/// Attributes any kept element may have.
const GENERIC_ATTRIBUTES: &[&str] = &["title", "lang", "dir"];

/// Attributes per element; none of them holds a URL except `a href` and
/// `img src`, which are checked below.
const TAG_ATTRIBUTES: &[(&str, &[&str])] = &[
    ("a", &["href"]),
    (
        "img",
        &[
            "src", "alt", "width", "height", "border", "align", "hspace", "vspace",
        ],
    ),
    ("font", &["color", "face", "size"]),
    (
        "table",
        &[
            "width",
            "border",
            "cellpadding",
            "cellspacing",
            "align",
            "bgcolor",
            "summary",
        ],
    ),
    ("tr", &["align", "valign", "bgcolor"]),
    (
        "td",
        &[
            "width", "height", "colspan", "rowspan", "align", "valign", "bgcolor", "nowrap",
        ],
    ),
    (
        "th",
        &[
            "width", "height", "colspan", "rowspan", "align", "valign", "bgcolor", "nowrap",
            "scope",
        ],
    ),
    ("thead", &["align", "valign"]),
    ("tbody", &["align", "valign"]),
    ("tfoot", &["align", "valign"]),
    ("col", &["span", "width", "align", "valign"]),
    ("colgroup", &["span", "width", "align", "valign"]),
    ("div", &["align"]),
    ("p", &["align"]),
    ("h1", &["align"]),
    ("h2", &["align"]),
    ("h3", &["align"]),
    ("h4", &["align"]),
    ("h5", &["align"]),
    ("h6", &["align"]),
    ("hr", &["width", "size", "align", "noshade"]),
    ("ol", &["start", "type", "reversed"]),
    ("ul", &["type"]),
    ("li", &["value", "type"]),
    ("abbr", &["title"]),
];

/// Schemes a kept URL may have before the checks per attribute.
const URL_SCHEMES: &[&str] = &["http", "https", "mailto", "cid"];

/// Raster image types served inline from a message; never SVG (a document
/// that can carry script) or anything a browser might sniff as one.
pub(crate) fn is_inline_image_type(content_type: &str) -> bool {
    matches!(
        content_type,
        "image/png" | "image/jpeg" | "image/jpg" | "image/gif" | "image/webp"
    )
}

/// Sanitises `html` for the message frame.
///
/// `inline` maps a `Content-ID` to its part; `inline_base` is the portal
/// path the message's inline images are served under, without a trailing
/// slash. With `allow_remote` false, remote images are removed and counted.
pub fn sanitise(
    html: &str,
    inline: &BTreeMap<String, PartIndex>,
    inline_base: &str,
    allow_remote: bool,
) -> SanitisedHtml {
    let blocked = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&blocked);
    let inline: HashMap<String, PartIndex> = inline.clone().into_iter().collect();
    let inline_base = inline_base.trim_end_matches('/').to_owned();
    let own_prefix = format!("{inline_base}/inline/");

    let tag_attributes: HashMap<&str, HashSet<&str>> = TAG_ATTRIBUTES
        .iter()
        .map(|(tag, attrs)| (*tag, attrs.iter().copied().collect()))
        .collect();
    let mut builder = Builder::empty();
    builder
        .tags(TAGS.iter().copied().collect())
        .clean_content_tags(DROP_WITH_CONTENT.iter().copied().collect())
        .generic_attributes(GENERIC_ATTRIBUTES.iter().copied().collect())
        .tag_attributes(tag_attributes)
        .url_schemes(URL_SCHEMES.iter().copied().collect())
        // A relative URL would resolve against the portal: an `<img
        // src=/sign-out>` must not become a request with the session. The
        // filter below drops every relative URL a sender wrote; the only
        // ones left are its own `cid:` rewrites, checked again here.
        .url_relative(UrlRelative::Custom(Box::new(OwnInlineUrls(own_prefix))))
        .link_rel(Some("noopener noreferrer"))
        .set_tag_attribute_value("a", "target", "_blank")
        .strip_comments(true)
        .attribute_filter(move |element, attribute, value| {
            filter_url(
                element,
                attribute,
                value,
                &inline,
                &inline_base,
                allow_remote,
                &counter,
            )
        });
    let html = builder.clean(html).to_string();
    SanitisedHtml {
        html,
        blocked_remote: blocked.load(Ordering::Relaxed),
    }
}

/// Accepts the relative URLs [`filter_url`] wrote (`{base}/inline/{n}`)
/// and nothing else.
struct OwnInlineUrls(String);

impl<'a> UrlRelativeEvaluate<'a> for OwnInlineUrls {
    fn evaluate<'url>(&self, url: &'url str) -> Option<Cow<'url, str>> {
        let index = url.strip_prefix(self.0.as_str())?;
        (!index.is_empty() && index.bytes().all(|b| b.is_ascii_digit()))
            .then_some(Cow::Borrowed(url))
    }
}

/// The per-attribute URL rules, after ammonia's allow-lists and scheme
/// check. Kept URLs are written back in their parsed, normalised form.
fn filter_url<'u>(
    element: &str,
    attribute: &str,
    value: &'u str,
    inline: &HashMap<String, PartIndex>,
    inline_base: &str,
    allow_remote: bool,
    blocked: &AtomicUsize,
) -> Option<Cow<'u, str>> {
    match (element, attribute) {
        ("a", "href") => {
            let url = Url::parse(value.trim()).ok()?;
            matches!(url.scheme(), "http" | "https" | "mailto").then(|| Cow::Owned(url.into()))
        }
        ("img", "src") => {
            let url = Url::parse(value.trim()).ok()?;
            match url.scheme() {
                "cid" => {
                    let cid = percent_encoding::percent_decode_str(url.path())
                        .decode_utf8()
                        .ok()?;
                    let index = inline.get(cid.trim())?;
                    Some(Cow::Owned(format!("{inline_base}/inline/{index}")))
                }
                "http" | "https" if allow_remote => Some(Cow::Owned(url.into())),
                "http" | "https" => {
                    blocked.fetch_add(1, Ordering::Relaxed);
                    None
                }
                _ => None,
            }
        }
        // Nothing else on the allow-lists holds a URL; refuse any that
        // slipped in rather than trust it.
        (
            _,
            "href" | "src" | "xlink:href" | "action" | "formaction" | "srcset" | "background"
            | "poster" | "ping" | "data" | "cite" | "longdesc" | "style",
        ) => None,
        _ => Some(Cow::Borrowed(value)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clean(html: &str, allow_remote: bool) -> SanitisedHtml {
        let inline = BTreeMap::from([("logo@x".to_owned(), PartIndex::parse("3").unwrap())]);
        sanitise(html, &inline, "/m/42/", allow_remote)
    }

    #[test]
    fn links_open_in_a_new_tab_without_referrer() {
        let out = clean(r#"<a href="https://example.com/a?b=1&c=2">x</a>"#, false);
        assert_eq!(
            out.html,
            r#"<a href="https://example.com/a?b=1&amp;c=2" target="_blank" rel="noopener noreferrer">x</a>"#
        );
        let out = clean(r#"<a href="mailto:a@example.com">m</a>"#, false);
        assert!(out.html.contains(r#"href="mailto:a@example.com""#));
        for bad in [
            "javascript:alert(1)",
            "/relative",
            "//host/x",
            "cid:logo@x",
            "ftp://x/",
        ] {
            let out = clean(&format!(r#"<a href="{bad}">x</a>"#), false);
            assert!(!out.html.contains("href"), "{bad}: {}", out.html);
        }
    }

    #[test]
    fn cid_images_point_at_the_portal() {
        let out = clean(r#"<img src="cid:logo@x" alt="Logo">"#, false);
        assert_eq!(out.html, r#"<img src="/m/42/inline/3" alt="Logo">"#);
        assert_eq!(out.blocked_remote, 0);
        let out = clean(r#"<img src="cid:logo%40x">"#, false);
        assert_eq!(out.html, r#"<img src="/m/42/inline/3">"#);
        let out = clean(r#"<img src="cid:unknown@x">"#, false);
        assert_eq!(out.html, "<img>");
    }

    #[test]
    fn remote_images_wait_for_consent() {
        let html = r#"<img src="https://t.example/p.gif"><img src="http://t.example/q.png">"#;
        let blocked = clean(html, false);
        assert_eq!(blocked.html, "<img><img>");
        assert_eq!(blocked.blocked_remote, 2);
        let allowed = clean(html, true);
        assert_eq!(
            allowed.html,
            r#"<img src="https://t.example/p.gif"><img src="http://t.example/q.png">"#
        );
        assert_eq!(allowed.blocked_remote, 0);
    }

    #[test]
    fn data_urls_and_styles_go() {
        let out = clean(
            r#"<p style="color:red">a</p><style>p{}</style><img src="data:image/png;base64,AAAA">"#,
            true,
        );
        assert_eq!(out.html, "<p>a</p><img>");
    }

    #[test]
    fn mail_tables_keep_their_layout_attributes() {
        let out = clean(
            r##"<table width="600" cellpadding="0" bgcolor="#fff" background="http://x/y.png"><tr><td align="center" onclick="x()">Hi</td></tr></table>"##,
            false,
        );
        assert_eq!(
            out.html,
            r##"<table width="600" cellpadding="0" bgcolor="#fff"><tbody><tr><td align="center">Hi</td></tr></tbody></table>"##
        );
    }
}
