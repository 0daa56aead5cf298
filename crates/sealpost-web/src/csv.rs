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
    let address_col = header
        .iter()
        .position(|h| h == "address" || h == "email")
        .ok_or_else(|| {
            ApiError::bad_request(
                "missing_address_column",
                "the header row needs an 'address' column",
            )
        })?;
    let name_col = header
        .iter()
        .position(|h| h == "display_name" || h == "name");
    let mut users = Vec::new();
    for (line, row) in rows {
        let row = row.map_err(|e| line_error(line, &e))?;
        if row.iter().all(|f| f.trim().is_empty()) {
            continue;
        }
        if row.len() != header.len() {
            return Err(line_error(
                line,
                &format!("{} fields, the header has {}", row.len(), header.len()),
            ));
        }
        if users.len() == MAX_ROWS {
            return Err(ApiError::bad_request(
                "too_many_rows",
                format!("at most {MAX_ROWS} users per import"),
            ));
        }
        let attributes = header
            .iter()
            .zip(&row)
            .enumerate()
            .filter(|(i, (_, v))| Some(*i) != name_col && *i != address_col && !v.trim().is_empty())
            .map(|(_, (h, v))| (h.clone(), v.trim().to_owned()))
            .collect();
        users.push(UserDraft {
            address: row[address_col].trim().to_owned(),
            display_name: name_col
                .map(|i| row[i].trim().to_owned())
                .unwrap_or_default(),
            attributes,
        });
    }
    Ok(users)
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
    std::iter::from_fn(move || match reader.read_record(&mut record) {
        Ok(false) => None,
        Ok(true) => {
            let line = record.position().map_or(0, |p| p.line());
            let line = usize::try_from(line).unwrap_or(usize::MAX);
            Some((line, Ok(record.iter().map(str::to_owned).collect())))
        }
        Err(e) => {
            let line = e
                .position()
                .and_then(|p| usize::try_from(p.line()).ok())
                .unwrap_or(0);
            Some((line, Err(e.to_string())))
        }
    })
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
