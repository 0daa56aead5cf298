//! The hostile HTML corpus (`tests/fixtures/hostile/*.html`, issue 15):
//! every payload sanitised with and without remote images, then read back
//! with html5ever's tokenizer, as a browser would, and checked.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::PathBuf;

use html5ever::tendril::StrTendril;
use html5ever::tokenizer::{BufferQueue, TagKind, Token, TokenSink, TokenSinkResult, Tokenizer};

use super::message::PartIndex;
use super::sanitise::{TAGS, sanitise};

const INLINE_BASE: &str = "/m/9";

/// A start tag's name and its attributes (name, value).
type StartTag = (String, Vec<(String, String)>);

/// Start tags with their attributes, as the browser's tokenizer sees them.
struct StartTags(RefCell<Vec<StartTag>>);

impl TokenSink for StartTags {
    type Handle = ();

    fn process_token(&self, token: Token, _line: u64) -> TokenSinkResult<()> {
        if let Token::TagToken(tag) = token
            && tag.kind == TagKind::StartTag
        {
            let attrs = tag
                .attrs
                .iter()
                .map(|a| (a.name.local.to_string(), a.value.to_string()))
                .collect();
            self.0.borrow_mut().push((tag.name.to_string(), attrs));
        }
        TokenSinkResult::Continue
    }
}

fn start_tags(html: &str) -> Vec<StartTag> {
    let input = BufferQueue::default();
    input.push_back(StrTendril::from_slice(html));
    let tokenizer = Tokenizer::new(StartTags(RefCell::new(Vec::new())), Default::default());
    let _ = tokenizer.feed(&input);
    tokenizer.end();
    tokenizer.sink.0.take()
}

/// Start tags with their attributes in a fixed order (ammonia may write
/// `rel` and `target` in either order).
fn normalised_tags(html: &str) -> Vec<StartTag> {
    let mut tags = start_tags(html);
    for (_, attrs) in &mut tags {
        attrs.sort();
    }
    tags
}

fn corpus() -> Vec<(String, String)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hostile");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("the hostile corpus")
        .map(|e| e.expect("a corpus entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "html"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read_to_string(&p).expect("UTF-8 payload"))
        })
        .collect()
}

/// Every way the output could still act: returns what is wrong.
fn violations(html: &str, allow_remote: bool) -> Vec<String> {
    let mut found = Vec::new();
    if html.to_ascii_lowercase().contains("<script") {
        found.push("`<script` in the output".to_owned());
    }
    for (tag, attrs) in start_tags(html) {
        if !TAGS.contains(&tag.as_str()) {
            found.push(format!("element <{tag}>"));
        }
        for (name, value) in attrs {
            let squeezed: String = value
                .chars()
                .filter(|c| !c.is_whitespace() && !c.is_control())
                .collect::<String>()
                .to_ascii_lowercase();
            let place = format!("<{tag} {name}={value:?}>");
            if name.starts_with("on") {
                found.push(format!("event handler {place}"));
            }
            if matches!(
                name.as_str(),
                "style" | "srcset" | "background" | "poster" | "ping"
            ) {
                found.push(format!("attribute {place}"));
            }
            for scheme in ["javascript:", "vbscript:", "data:"] {
                if squeezed.contains(scheme) {
                    found.push(format!("{scheme} in {place}"));
                }
            }
            let remote = squeezed.contains("remote.invalid")
                || squeezed.contains("http:")
                || squeezed.contains("https:")
                || squeezed.contains("//");
            match (tag.as_str(), name.as_str()) {
                ("a", "href") => {}
                ("img", "src") if allow_remote => {}
                ("img", "src") if !value.starts_with(&format!("{INLINE_BASE}/inline/")) => {
                    found.push(format!("image not from the portal {place}"));
                }
                _ if remote => found.push(format!("remote URL in {place}")),
                _ => {}
            }
        }
    }
    found
}

#[test]
fn the_corpus_is_large_enough() {
    assert!(corpus().len() >= 50, "{} payloads", corpus().len());
}

#[test]
fn no_payload_survives_sanitising() {
    let inline = BTreeMap::from([("logo@x".to_owned(), PartIndex::parse("2").unwrap())]);
    let mut failures = Vec::new();
    for (name, payload) in corpus() {
        for allow_remote in [false, true] {
            let out = sanitise(&payload, &inline, INLINE_BASE, allow_remote);
            for v in violations(&out.html, allow_remote) {
                failures.push(format!(
                    "{name} (remote {allow_remote}): {v}\n  {}",
                    out.html
                ));
            }
            if allow_remote {
                assert_eq!(out.blocked_remote, 0, "{name}");
            }
            // Parsing the output again must not change it: a change would be
            // the parser mutation that mXSS payloads rely on.
            if !out.html.contains("/inline/") && !allow_remote {
                let again = sanitise(&out.html, &inline, INLINE_BASE, false);
                if normalised_tags(&again.html) != normalised_tags(&out.html) {
                    failures.push(format!(
                        "{name}: not stable\n  {}\n  {}",
                        out.html, again.html
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_checker_catches_what_it_should() {
    for bad in [
        r#"<script>x</script>"#,
        r#"<p onclick="x">a</p>"#,
        r#"<a href="jav&#x09;ascript:x">a</a>"#,
        r#"<img src="https://remote.invalid/img/1.png">"#,
        r#"<img src="/elsewhere">"#,
        r#"<div title="http://remote.invalid/x">a</div>"#,
        r#"<svg></svg>"#,
        r#"<iframe></iframe>"#,
        r#"<p style="color:red">a</p>"#,
    ] {
        assert!(!violations(bad, false).is_empty(), "{bad}");
    }
    assert!(
        violations(
            r#"<a href="https://example.com/">a</a><img src="/m/9/inline/2">"#,
            false
        )
        .is_empty()
    );
}

#[test]
fn remote_images_are_counted_when_blocked() {
    let inline = BTreeMap::new();
    let corpus = corpus();
    let payload = |prefix: &str| {
        corpus
            .iter()
            .find(|(name, _)| name.contains(prefix))
            .map(|(_, html)| html.as_str())
            .unwrap()
    };
    for (file, blocked) in [
        ("img-src-remote-pixel", 1),
        ("img-entity-remote", 1),
        ("img-uppercase-remote", 1),
        ("img-spaced-remote", 1),
        ("img-backslash-remote", 1),
        ("img-schemeless-remote", 1),
        ("img-protocol-relative", 0),
    ] {
        let out = sanitise(payload(file), &inline, INLINE_BASE, false);
        assert_eq!(out.blocked_remote, blocked, "{file}: {}", out.html);
        let allowed = sanitise(payload(file), &inline, INLINE_BASE, true);
        assert_eq!(
            allowed.html.contains("remote.invalid"),
            blocked == 1,
            "{file}: {}",
            allowed.html
        );
    }
}
