//! Aligned text tables for the CLI's listings.
//!
//! A cell may hold text a sender chose (a subject, an address, a display
//! name), so every cell is made one bounded line by [`one_line`] and the
//! columns are padded by hand to their display width: no input can add a
//! line, reach the terminal as a control sequence, or make the table too
//! wide to lay out (`format!("{:<w$}")` panics past a width of 65535).

use sealpost_policy::text::one_line;
use unicode_width::UnicodeWidthStr;

/// Spaces between two columns.
const GAP: usize = 2;

/// One column: its title, and the most characters a cell shows before it
/// is cut with an ellipsis.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Column {
    pub(crate) title: &'static str,
    pub(crate) max_chars: usize,
}

pub(crate) const fn column(title: &'static str, max_chars: usize) -> Column {
    Column { title, max_chars }
}

/// `rows` under `columns` as text: a header line, then exactly one line
/// per row, each ending in `\n` and holding no other control character.
/// A missing cell is empty; cells beyond the columns are ignored.
///
/// Columns are aligned by display width (a CJK character takes two
/// terminal cells, a combining mark none); the last column is not padded.
pub(crate) fn render(columns: &[Column], rows: &[Vec<String>]) -> String {
    let header: Vec<String> = columns
        .iter()
        .map(|c| one_line(c.title, c.title.chars().count()))
        .collect();
    let body: Vec<Vec<String>> = rows
        .iter()
        .map(|row| {
            columns
                .iter()
                .enumerate()
                .map(|(i, c)| one_line(row.get(i).map_or("", String::as_str), c.max_chars))
                .collect()
        })
        .collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.width()).collect();
    for row in &body {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.width());
        }
    }
    let mut out = String::new();
    for line in std::iter::once(&header).chain(&body) {
        let start = out.len();
        for (i, (cell, w)) in line.iter().zip(&widths).enumerate() {
            out.push_str(cell);
            if i + 1 < line.len() {
                let pad = w.saturating_sub(cell.width()) + GAP;
                out.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.truncate(start + out[start..].trim_end().len());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use sealpost_policy::text::is_hidden;

    const COLUMNS: [Column; 3] = [column("ID", 4), column("SUBJECT", 10), column("TO", 6)];

    fn row(cells: &[&str]) -> Vec<String> {
        cells.iter().map(|c| (*c).to_owned()).collect()
    }

    #[test]
    fn columns_align_by_display_width_and_cells_are_cut() {
        let out = render(
            &COLUMNS,
            &[
                row(&["1", "日本語", "a@b"]),
                row(&["22", "a very long subject", "c@d"]),
                row(&["3"]),
            ],
        );
        assert_eq!(
            out,
            "ID  SUBJECT     TO\n\
             1   日本語      a@b\n\
             22  a very lo…  c@d\n\
             3\n"
        );
    }

    #[test]
    fn a_hostile_cell_stays_inside_its_row() {
        let subject = format!("x\r\n3  forged row\x1b[2J\0{}", "y".repeat(100_000));
        let out = render(&COLUMNS, &[row(&["1", &subject, "a@b"])]);
        assert_eq!(out, "ID  SUBJECT     TO\n1   x 3 forge…  a@b\n");
    }

    /// Any text up to 100 KB, with controls and wide characters likely.
    fn cell() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<String>(),
            "[\\x00-\\x1f\\x7f-\\x9f\u{202e}\u{200b}日a ]{0,40}",
            (any::<char>(), 0usize..100_000).prop_map(|(c, n)| std::iter::repeat_n(c, n).collect()),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn any_cells_give_one_clean_bounded_line_per_row(
            rows in proptest::collection::vec(proptest::collection::vec(cell(), 0..5), 0..6)
        ) {
            let out = render(&COLUMNS, &rows);
            prop_assert!(out.ends_with('\n'));
            prop_assert_eq!(out.lines().count(), rows.len() + 1);
            prop_assert!(!out.chars().any(|c| c != '\n' && is_hidden(c)));
            // Each cell shows at most `max_chars` characters of display
            // width at most 2, padded with spaces plus the gap.
            let bound: usize = COLUMNS.iter().map(|c| 2 * c.max_chars + GAP).sum();
            for line in out.lines() {
                prop_assert!(line.chars().count() <= bound, "{} chars", line.chars().count());
            }
        }
    }
}
