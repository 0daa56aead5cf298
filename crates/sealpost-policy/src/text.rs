//! Text that came from a message (a subject, a display name, an address as
//! written), made safe to show: on a terminal, in a table, in a log line or
//! in a notification body.
//!
//! A sender controls these strings completely (RFC 2047 encoded-words decode
//! to any Unicode, NUL and ESC included), so every place that shows one to a
//! person passes it through [`one_line`] first: line breaks cannot forge
//! lines or rows, escape sequences cannot drive the administrator's
//! terminal, bidirectional overrides cannot reorder what is read, and the
//! length is bounded. Pure, and never panics.

/// What replaces the part of a text cut at its length bound.
pub const ELLIPSIS: char = '…';

/// `text` as one line of at most `max_chars` characters:
/// - whitespace of any kind (tab, CR, LF, VT, FF, NEL, the Unicode line
///   and paragraph separators) becomes a space, and runs of spaces one;
/// - other control characters (C0, DEL, C1) and the invisible format
///   characters that reorder or hide text (bidirectional embeddings,
///   overrides and isolates, zero-width characters, the BOM) are removed;
/// - the result is trimmed, and cut to `max_chars` characters with a
///   trailing [`ELLIPSIS`] when it was longer.
pub fn one_line(text: &str, max_chars: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max_chars.saturating_mul(4)));
    let mut chars = 0usize;
    let mut pending_space = false;
    for c in text.chars() {
        if c.is_whitespace() || is_line_control(c) {
            pending_space = chars > 0;
            continue;
        }
        if is_hidden(c) {
            continue;
        }
        let needed = usize::from(pending_space) + 1;
        if chars + needed > max_chars {
            // Keep room for the ellipsis within the bound.
            while chars + 1 > max_chars {
                match out.pop() {
                    Some(_) => chars -= 1,
                    None => break,
                }
            }
            out.truncate(out.trim_end().len());
            if max_chars > 0 {
                out.push(ELLIPSIS);
            }
            return out;
        }
        if pending_space {
            out.push(' ');
            chars += 1;
            pending_space = false;
        }
        out.push(c);
        chars += 1;
    }
    out
}

/// Control characters that end or break a line, read as whitespace.
fn is_line_control(c: char) -> bool {
    matches!(c, '\u{0b}' | '\u{0c}' | '\u{85}' | '\u{2028}' | '\u{2029}')
}

/// Characters a reader cannot see that change what is shown: controls,
/// bidirectional marks and formatting (U+061C, U+200E/F, U+202A-E,
/// U+2066-9), zero-width and other invisible format characters, the
/// deprecated format controls, the BOM and the tag characters.
pub fn is_hidden(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061c}'
                | '\u{180e}'
                | '\u{200b}'..='\u{200f}'
                | '\u{202a}'..='\u{202e}'
                | '\u{2060}'..='\u{2064}'
                | '\u{2066}'..='\u{206f}'
                | '\u{feff}'
                | '\u{fff9}'..='\u{fffb}'
                | '\u{e0001}'
                | '\u{e0020}'..='\u{e007f}'
        )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn controls_and_breaks_cannot_survive() {
        assert_eq!(
            one_line(
                "a\r\nFrom: x\x1b[31m red\0\u{202e}gpj.exe\u{61c}\u{e0041}\x0bz",
                100
            ),
            "a From: x[31m redgpj.exe z"
        );
        assert_eq!(one_line("  \t lead and trail \n ", 100), "lead and trail");
        assert_eq!(one_line("", 10), "");
        assert_eq!(one_line("\x1b\x07", 10), "");
    }

    #[test]
    fn long_text_is_cut_with_an_ellipsis_inside_the_bound() {
        assert_eq!(one_line("abcdef", 6), "abcdef");
        assert_eq!(one_line("abcdefg", 6), "abcde…");
        assert_eq!(one_line("abcd efg", 6), "abcd…");
        assert_eq!(one_line("ab", 0), "");
        assert_eq!(one_line("äöüß€x", 3).chars().count(), 3);
        let huge = "Subject text ".repeat(10_000);
        assert_eq!(one_line(&huge, 200).chars().count(), 200);
    }

    proptest! {
        #[test]
        fn any_text_comes_out_bounded_and_clean(text in any::<String>(), max in 0usize..300) {
            let out = one_line(&text, max);
            prop_assert!(out.chars().count() <= max);
            prop_assert!(!out.chars().any(|c| is_hidden(c) || (c.is_whitespace() && c != ' ')));
            prop_assert!(!out.starts_with(' ') && !out.ends_with(' ') && !out.contains("  "));
            prop_assert_eq!(one_line(&out, max), out.clone(), "idempotent");
        }
    }
}
