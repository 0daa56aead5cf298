//! Directory CSV import: a header row naming the columns, `address`
//! required, `display_name` optional, every other column an attribute.
//! Read with the `csv` crate (RFC 4180 quoting, `\r\n`, `\n` or a lone
//! `\r` ending a line); here are only the columns' meaning and the errors,
//! each naming its line.

use sealpost_policy::UserDraft;

use crate::api::ApiError;

/// Most rows one import may carry.
const MAX_ROWS: usize = 1_000_000;

/// Parses the CSV text into users; errors name the line.
pub fn parse_users(text: &str) -> Result<Vec<UserDraft>, ApiError> {
    let mut users = Vec::new();
    for (line, row) in user_rows(text)? {
        let user = row.map_err(|e| line_error(line, &e))?;
        if users.len() == MAX_ROWS {
            return Err(ApiError::bad_request(
                "too_many_rows",
                format!("at most {MAX_ROWS} users per import"),
            ));
        }
        users.push(user);
    }
    Ok(users)
}

/// One row of a CSV file: the line it starts on, and its user or why the
/// row cannot be read.
pub(crate) type UserRow = (usize, Result<UserDraft, String>);

/// The users of a CSV file row by row, for an import that reports each bad
/// row and goes on (the console's): the header is checked first, blank
/// rows are skipped. The users are not yet validated.
///
/// # Errors
/// The header's problem (empty file, no `address` column, a repeated name).
pub(crate) fn user_rows(text: &str) -> Result<impl Iterator<Item = UserRow> + '_, ApiError> {
    let (header, rows) = header_and_rows(text)?;
    let address_col = column(&header, &["address", "email"]).ok_or_else(|| {
        ApiError::bad_request(
            "missing_address_column",
            "the header row needs an 'address' column",
        )
    })?;
    let name_col = column(&header, &["display_name", "name"]);
    Ok(rows.filter_map(move |(line, row)| {
        let row = match row {
            Ok(row) => row,
            Err(e) => return Some((line, Err(e))),
        };
        if row.iter().all(|f| f.trim().is_empty()) {
            return None;
        }
        if row.len() != header.len() {
            let e = format!("{} fields, the header has {}", row.len(), header.len());
            return Some((line, Err(e)));
        }
        let attributes = header
            .iter()
            .zip(&row)
            .enumerate()
            .filter(|(i, (_, v))| Some(*i) != name_col && *i != address_col && !v.trim().is_empty())
            .map(|(_, (h, v))| (h.clone(), v.trim().to_owned()))
            .collect();
        Some((
            line,
            Ok(UserDraft {
                address: row[address_col].trim().to_owned(),
                display_name: name_col
                    .map(|i| row[i].trim().to_owned())
                    .unwrap_or_default(),
                attributes,
            }),
        ))
    }))
}

/// The members of a profile group in a CSV file, row by row: a header
/// with a `member` column (or `address`, `email`, `domain`), each value an
/// address or a domain. Other columns are ignored.
///
/// # Errors
/// The header's problem.
pub(crate) fn member_rows(
    text: &str,
) -> Result<impl Iterator<Item = (usize, Result<String, String>)> + '_, ApiError> {
    let (header, rows) = header_and_rows(text)?;
    let col = column(&header, &["member", "address", "email", "domain"]).ok_or_else(|| {
        ApiError::bad_request(
            "missing_member_column",
            "the header row needs a 'member' column",
        )
    })?;
    Ok(rows.filter_map(move |(line, row)| match row {
        Err(e) => Some((line, Err(e))),
        Ok(row) if row.iter().all(|f| f.trim().is_empty()) => None,
        Ok(row) => Some((
            line,
            row.get(col)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
                .ok_or_else(|| format!("no value in column {}", col + 1)),
        )),
    }))
}

type Rows<'a> = Box<dyn Iterator<Item = (usize, Result<Vec<String>, String>)> + 'a>;

/// The header (names trimmed and lower-cased, each distinct) and the rows
/// after it.
fn header_and_rows(text: &str) -> Result<(Vec<String>, Rows<'_>), ApiError> {
    let mut rows = records(text.strip_prefix('\u{feff}').unwrap_or(text));
    let header = match rows.next() {
        Some((_, Ok(h))) => h,
        Some((line, Err(e))) => return Err(line_error(line, &e)),
        None => return Err(ApiError::bad_request("empty_csv", "the CSV file is empty")),
    };
    let header: Vec<String> = header
        .iter()
        .map(|h| h.trim().to_ascii_lowercase())
        .collect();
    for (i, h) in header.iter().enumerate() {
        if h.is_empty() || header[..i].contains(h) {
            return Err(line_error(
                1,
                &format!(
                    "column {} of the header is empty or repeats {h:?} (names ignore case)",
                    i + 1
                ),
            ));
        }
    }
    Ok((header, Box::new(rows)))
}

fn column(header: &[String], names: &[&str]) -> Option<usize> {
    header.iter().position(|h| names.contains(&h.as_str()))
}

fn line_error(line: usize, what: &str) -> ApiError {
    let mut e = ApiError::bad_request("invalid_csv", format!("line {line}: {what}"));
    e.field = Some(format!("line {line}"));
    e
}

/// The records of `text` with the line each starts on.
fn records(text: &str) -> impl Iterator<Item = (usize, Result<Vec<String>, String>)> + '_ {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(text.as_bytes());
    let mut record = csv::StringRecord::new();
    let mut lines = Lines::new(text.as_bytes());
    std::iter::from_fn(move || match reader.read_record(&mut record) {
        Ok(false) => None,
        Ok(true) => {
            let line = record.position().map_or(0, |p| lines.at(p.byte()));
            Some((line, Ok(record.iter().map(str::to_owned).collect())))
        }
        Err(e) => {
            let line = e.position().map_or(0, |p| lines.at(p.byte()));
            Some((line, Err(e.to_string())))
        }
    })
}

/// Line numbers from byte offsets. The reader's own line count leaves out
/// the blank lines it skips, so a report would name the wrong line after
/// one (the API's messages did); this counts `\r\n`, `\n` and a lone `\r` as the reader ends lines.
struct Lines<'a> {
    text: &'a [u8],
    /// Bytes counted so far, and the line they end on (from 1).
    counted: usize,
    line: usize,
}

impl<'a> Lines<'a> {
    fn new(text: &'a [u8]) -> Self {
        Lines {
            text,
            counted: 0,
            line: 1,
        }
    }

    /// The line of the record the reader says starts at `offset`: where
    /// the reader left the record before, so the line ends (and blank
    /// lines) after it are skipped first. Offsets come in increasing
    /// order, so the text is read once.
    fn at(&mut self, offset: u64) -> usize {
        let mut end = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(self.text.len());
        while matches!(self.text.get(end), Some(b'\r' | b'\n')) {
            end += 1;
        }
        if end < self.counted {
            self.counted = 0;
            self.line = 1;
        }
        for i in self.counted..end {
            match self.text[i] {
                b'\n' => self.line += 1,
                b'\r' if self.text.get(i + 1) != Some(&b'\n') => self.line += 1,
                _ => {}
            }
        }
        self.counted = end;
        self.line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_names_columns_and_quotes_work() {
        let users = parse_users(
            "address,display_name,Department,country\r\n\
             alice@corp.example,\"Smith, Alice\",Legal,DE\r\n\
             \r\n\
             bob@corp.example,Bob,\"Sales \"\"EMEA\"\"\",\n",
        )
        .unwrap();
        assert_eq!(users.len(), 2);
        assert_eq!(users[0].display_name, "Smith, Alice");
        assert_eq!(users[0].attributes["department"], "Legal");
        assert_eq!(users[1].attributes["department"], "Sales \"EMEA\"");
        assert!(!users[1].attributes.contains_key("country"));
    }

    #[test]
    fn lone_carriage_returns_end_lines_and_headers_must_be_distinct() {
        let users = parse_users("address,name\ra@x.example,A\rb@x.example,B\r").unwrap();
        assert_eq!(users.len(), 2);
        let e = parse_users("address,Dept,dept\na@x.example,1,2\n").unwrap_err();
        assert_eq!(e.field.as_deref(), Some("line 1"));
    }

    #[test]
    fn lines_count_the_blank_lines_the_reader_skips() {
        let rows: Vec<usize> = user_rows("address\r\na@x.example\r\n\r\n\nb\rc@x.example\n")
            .unwrap()
            .map(|(line, _)| line)
            .collect();
        assert_eq!(rows, [2, 5, 6]);
    }

    #[test]
    fn errors_name_the_line() {
        let e = parse_users("address,name\na@x.example\n").unwrap_err();
        assert_eq!(e.field.as_deref(), Some("line 2"));
        let e = parse_users("name\nx\n").unwrap_err();
        assert_eq!(e.code, "missing_address_column");
        // A quote left open swallows the rest of the file into one field.
        let e = parse_users("address,name\n\"open,x\nb@x.example,B\n").unwrap_err();
        assert_eq!(e.code, "invalid_csv");
        assert_eq!(e.field.as_deref(), Some("line 2"));
    }
}
