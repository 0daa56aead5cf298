//! The dashboard's small charts, drawn on the server as inline SVG: no
//! script, no chart library, nothing fetched (the strict CSP allows none).
//! Colours come from classes in `console.css`, since the CSP refuses
//! inline styles.
//!
//! Every chart is an `<svg role="img">` with a `<title>` and a `<desc>`
//! that says the figures in words, and each bar has its own `<title>`
//! (shown on hover); pages print the same numbers as text beside it.
//! Pure functions of their input: no I/O.

use std::fmt::Write;

/// One stacked series: its name in the text alternative and its CSS class.
#[derive(Debug, Clone, Copy)]
pub(super) struct Series {
    pub(super) name: &'static str,
    pub(super) class: &'static str,
}

/// One column: a short label under it (`6`), a long one for its title
/// (`Sun 6 Dec`), and one value per series, stacked bottom up.
#[derive(Debug, Clone)]
pub(super) struct Column {
    pub(super) label: String,
    pub(super) title: String,
    pub(super) values: Vec<u64>,
}

const HEIGHT: u32 = 150;
const PLOT_TOP: u32 = 14;
const PLOT_BOTTOM: u32 = 128;
const LEFT: u32 = 34;
const SLOT: u32 = 24;
const BAR: u32 = 16;

/// The smallest 1, 2 or 5 × 10ⁿ at or above `n` (at least 1), so the
/// axis reads in round numbers.
fn nice_ceiling(n: u64) -> u64 {
    let mut step = 1u64;
    loop {
        for m in [1, 2, 5] {
            if step.saturating_mul(m) >= n {
                return step.saturating_mul(m).max(1);
            }
        }
        step = step.saturating_mul(10);
    }
}

/// Escapes text for SVG (XML) content and attributes.
fn esc(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Stacked columns, one per entry of `columns` (days, oldest first).
/// `id` makes the title's and description's ids unique in the page;
/// `desc` is the text alternative (the figures in words).
pub(super) fn stacked_columns(
    id: &str,
    title: &str,
    desc: &str,
    series: &[Series],
    columns: &[Column],
) -> String {
    let top = nice_ceiling(
        columns
            .iter()
            .map(|c| c.values.iter().sum::<u64>())
            .max()
            .unwrap_or(0),
    );
    let width = LEFT + SLOT * columns.len() as u32 + 4;
    let plot = f64::from(PLOT_BOTTOM - PLOT_TOP);
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg class="chart" width="{}" height="{}" viewBox="0 0 {width} {HEIGHT}" role="img" aria-labelledby="{id}-title {id}-desc" focusable="false"><title id="{id}-title">{}</title><desc id="{id}-desc">{}</desc>"#,
        // Drawn at 1.5 × its units, never wider than its card (CSS):
        // the same text size in every chart on a laptop.
        width * 3 / 2,
        HEIGHT * 3 / 2,
        esc(title),
        esc(desc)
    );
    // The axis: zero, the top and, when it is a whole number, the half.
    let mut ticks = vec![(0, PLOT_BOTTOM), (top, PLOT_TOP)];
    if top.is_multiple_of(2) {
        ticks.push((top / 2, (PLOT_BOTTOM + PLOT_TOP) / 2));
    }
    for (value, y) in ticks {
        let _ = write!(
            svg,
            r#"<line class="grid" x1="{LEFT}" x2="{width}" y1="{y}" y2="{y}"/><text class="axis" x="{}" y="{}" text-anchor="end">{value}</text>"#,
            LEFT - 4,
            y + 3
        );
    }
    for (i, column) in columns.iter().enumerate() {
        let x = LEFT + SLOT * i as u32 + (SLOT - BAR) / 2;
        let mut base = f64::from(PLOT_BOTTOM);
        let mut parts = Vec::new();
        for (value, s) in column.values.iter().zip(series) {
            parts.push(format!("{value} {}", s.name));
            if *value == 0 {
                continue;
            }
            let h = (*value as f64 / top as f64 * plot).max(1.0);
            base -= h;
            let _ = write!(
                svg,
                r#"<rect class="{}" x="{x}" y="{base:.1}" width="{BAR}" height="{h:.1}"><title>{}: {value} {}</title></rect>"#,
                s.class,
                esc(&column.title),
                s.name
            );
        }
        let _ = write!(
            svg,
            r#"<text class="axis{}" x="{}" y="{}" text-anchor="middle"><title>{}: {}</title>{}</text>"#,
            // Every other day's label goes on a phone (CSS); the last stays.
            if (columns.len() - 1 - i) % 2 == 1 {
                " alternate"
            } else {
                ""
            },
            x + BAR / 2,
            PLOT_BOTTOM + 14,
            esc(&column.title),
            esc(&parts.join(", ")),
            esc(&column.label)
        );
    }
    svg.push_str("</svg>");
    svg
}

/// A bar of `value` out of `max`, for a table row whose number is printed
/// beside it: hidden from assistive technology.
pub(super) fn bar(value: u64, max: u64) -> String {
    let pct = if max == 0 {
        0.0
    } else {
        value as f64 / max as f64 * 100.0
    };
    format!(
        r#"<svg class="bar" viewBox="0 0 100 8" preserveAspectRatio="none" aria-hidden="true" focusable="false"><rect class="track" width="100" height="8"/><rect class="fill" width="{pct:.1}" height="8"/></svg>"#
    )
}

/// A bar split into parts (value, CSS class), for figures printed beside
/// it: hidden from assistive technology.
pub(super) fn split(parts: &[(u64, &str)]) -> String {
    let total: u64 = parts.iter().map(|p| p.0).sum();
    let mut svg = String::from(
        r#"<svg class="bar" viewBox="0 0 100 8" preserveAspectRatio="none" aria-hidden="true" focusable="false"><rect class="track" width="100" height="8"/>"#,
    );
    let mut x = 0.0;
    for (value, class) in parts {
        if total == 0 || *value == 0 {
            continue;
        }
        let w = *value as f64 / total as f64 * 100.0;
        let _ = write!(
            svg,
            r#"<rect class="{class}" x="{x:.1}" width="{w:.1}" height="8"/>"#
        );
        x += w;
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axes_are_round_and_never_zero() {
        assert_eq!(nice_ceiling(0), 1);
        assert_eq!(nice_ceiling(1), 1);
        assert_eq!(nice_ceiling(3), 5);
        assert_eq!(nice_ceiling(7), 10);
        assert_eq!(nice_ceiling(11), 20);
        assert_eq!(nice_ceiling(4_999), 5_000);
        assert_eq!(nice_ceiling(u64::MAX), u64::MAX);
    }

    #[test]
    fn a_chart_names_itself_and_each_bar() {
        let series = [
            Series {
                name: "relayed",
                class: "relayed",
            },
            Series {
                name: "secured",
                class: "secured",
            },
        ];
        let columns = vec![
            Column {
                label: "5".into(),
                title: "Sat 5 Dec".into(),
                values: vec![0, 0],
            },
            Column {
                label: "6".into(),
                title: "Sun 6 Dec".into(),
                values: vec![3, 1],
            },
        ];
        let svg = stacked_columns("traffic", "Mail <per day>", "3 relayed", &series, &columns);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert!(svg.contains(r#"role="img""#));
        assert!(svg.contains("<title id=\"traffic-title\">Mail &lt;per day&gt;</title>"));
        assert!(svg.contains("<title>Sun 6 Dec: 3 relayed</title>"));
        assert!(svg.contains("<title>Sun 6 Dec: 1 secured</title>"));
        assert!(svg.contains("<title>Sat 5 Dec: 0 relayed, 0 secured</title>"));
        // No bar for a zero, and the axis tops at 5 for 4.
        assert_eq!(svg.matches("<rect").count(), 2);
        assert!(
            svg.contains(">5</text>") && !svg.contains(">2</text>"),
            "no half of 5"
        );
        assert!(svg.contains(r#"class="axis alternate""#));
        assert!(!svg.contains("style="), "the CSP refuses inline styles");
    }

    #[test]
    fn bars_are_proportional() {
        assert!(bar(1, 4).contains(r#"width="25.0""#));
        assert!(bar(0, 0).contains(r#"width="0.0""#));
        let s = split(&[(1, "unread"), (3, "read")]);
        assert!(s.contains(r#"class="unread" x="0.0" width="25.0""#), "{s}");
        assert!(s.contains(r#"class="read" x="25.0" width="75.0""#), "{s}");
    }
}
