//! CSV import of members into a profile group, with a report of each row
//! refused.
//!
//! The file has a header with a `member` column (or `address`, `email`,
//! `domain`), read by the same CSV reader as the directory import
//! ([`crate::csv::member_rows`]). A value with `@` is an address, any other
//! a domain; each is checked by the API's group rules
//! ([`Group::from_draft`]), so a row is refused with the API's message.
//! The good rows are added to the group in one change through the policy
//! service (one transaction, one audit entry); members already in the
//! group are counted, not repeated. A group file is small, so this runs
//! within the request, unlike the directory's import.

use axum::{
    extract::{Multipart, Path, State},
    http::{HeaderMap, StatusCode},
    response::Response,
};
use sealpost_policy::{Group, GroupDraft, GroupId, Invalid};
use sealpost_store::{ConfigChange, StoreError};
use serde::Serialize;

use super::{
    ConsoleState, SignedIn,
    group_edit::{Shown, Target},
    group_form::GroupForm,
    groups::group_id,
    upload,
};

/// Most refused rows a report lists (the count is always whole).
const MAX_LISTED: usize = 1000;

/// A refused row: its line in the file, its value, the API's reason.
#[derive(Debug, Clone, Serialize)]
pub(super) struct RefusedRow {
    pub(super) line: usize,
    pub(super) value: String,
    pub(super) reason: String,
}

/// What an import of members did.
#[derive(Debug, Default, Serialize)]
pub(super) struct Report {
    pub(super) file_name: String,
    pub(super) rows: usize,
    pub(super) added: usize,
    pub(super) already: usize,
    pub(super) refused: usize,
    pub(super) refused_rows: Vec<RefusedRow>,
}

/// A member read from the file.
enum Member {
    Address(String),
    Domain(String),
}

/// Checks one value by the API's group rules.
fn member(value: &str) -> Result<Member, String> {
    let draft = |addresses: Vec<String>, domains: Vec<String>| GroupDraft {
        name: "import".into(),
        description: String::new(),
        addresses,
        domains,
        groups: Vec::new(),
    };
    let (draft, m) = if value.contains('@') {
        (
            draft(vec![value.to_owned()], vec![]),
            Member::Address(value.to_owned()),
        )
    } else {
        (
            draft(vec![], vec![value.to_owned()]),
            Member::Domain(value.to_owned()),
        )
    };
    Group::from_draft(GroupId(0), &draft)
        .map(|_| m)
        .map_err(|e| e.message)
}

fn refuse_row(report: &mut Report, line: usize, value: &str, reason: String) {
    report.refused += 1;
    if report.refused_rows.len() < MAX_LISTED {
        report.refused_rows.push(RefusedRow {
            line,
            value: value.to_owned(),
            reason,
        });
    }
}

/// Reads the file: the members to add and the report so far.
fn read(text: &str, file_name: String) -> Result<(Vec<Member>, Report), Invalid> {
    let rows = crate::csv::member_rows(text)
        .map_err(|e| Invalid::new("import", "invalid_csv", e.message))?;
    let mut report = Report {
        file_name,
        ..Report::default()
    };
    let mut members = Vec::new();
    for (line, row) in rows {
        report.rows += 1;
        match row {
            Err(reason) => refuse_row(&mut report, line, "", reason),
            Ok(value) => match member(&value) {
                Ok(m) => members.push(m),
                Err(reason) => refuse_row(&mut report, line, &value, reason),
            },
        }
    }
    Ok((members, report))
}

/// Adds `members` to `group`, skipping those it has (ignoring case).
fn merge(group: &mut GroupDraft, members: Vec<Member>, report: &mut Report) {
    let has = |list: &[String], v: &str| list.iter().any(|m| m.trim().eq_ignore_ascii_case(v));
    for m in members {
        let (list, value) = match m {
            Member::Address(a) => (&mut group.addresses, a),
            Member::Domain(d) => (&mut group.domains, d),
        };
        if has(list, &value) {
            report.already += 1;
        } else {
            list.push(value);
            report.added += 1;
        }
    }
}

/// Imports members from an uploaded CSV file into the group.
pub(super) async fn import(
    State(state): State<ConsoleState>,
    signed_in: SignedIn,
    headers: HeaderMap,
    Path(id): Path<String>,
    multipart: Multipart,
) -> Response {
    let uploaded = upload::read(multipart).await;
    let csrf = uploaded.as_ref().map(|u| u.csrf.as_str()).unwrap_or("");
    if let Some(refused) = state.refuse_form(&signed_in, &headers, csrf) {
        return refused;
    }
    let Some(id) = group_id(&id) else {
        return state.group_not_found(&signed_in);
    };
    let doc = match state.config().await {
        Ok(doc) => doc,
        Err(page) => return page,
    };
    let Some(entry) = doc.groups.iter().find(|g| g.id == id) else {
        return state.group_not_found(&signed_in);
    };
    let form = GroupForm::from_draft(&entry.group);
    let shown = |status, error: Option<&Invalid>, report: Option<&Report>| {
        state.group_page(
            &signed_in,
            &doc,
            status,
            Shown {
                target: Target::Existing(id),
                form: &form,
                error,
                report,
            },
        )
    };
    let read = uploaded
        .map_err(|e| Invalid::new("import", "invalid_upload", e))
        .and_then(|u| read(&u.text, u.file_name));
    let (members, report) = match read {
        Ok(found) => found,
        Err(e) => return shown(StatusCode::UNPROCESSABLE_ENTITY, Some(&e), None),
    };
    if members.is_empty() {
        return shown(StatusCode::OK, None, Some(&report));
    }
    let result = state
        .policy()
        .change_with::<_, StoreError, _>(signed_in.actor(), move |doc| {
            let mut report = report;
            let entry = doc
                .groups
                .iter()
                .find(|g| g.id == id)
                .ok_or_else(|| StoreError::NoSuch(format!("group {}", id.0)))?;
            let mut group = entry.group.clone();
            merge(&mut group, members, &mut report);
            Ok((ConfigChange::UpdateGroup(id, group), report))
        })
        .await;
    match result {
        Ok((_, report)) => {
            let doc = match state.config().await {
                Ok(doc) => doc,
                Err(page) => return page,
            };
            let form = doc
                .groups
                .iter()
                .find(|g| g.id == id)
                .map(|g| GroupForm::from_draft(&g.group))
                .unwrap_or_default();
            state.group_page(
                &signed_in,
                &doc,
                StatusCode::OK,
                Shown {
                    target: Target::Existing(id),
                    form: &form,
                    error: None,
                    report: Some(&report),
                },
            )
        }
        Err(StoreError::NoSuch(_)) => state.group_not_found(&signed_in),
        Err(StoreError::Rejected(e)) => {
            let e = Invalid::new("import", e.code, e.message);
            shown(StatusCode::UNPROCESSABLE_ENTITY, Some(&e), None)
        }
        Err(e) => state.failed(&e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_addresses_or_domains_and_bad_ones_are_listed_by_line() {
        let (members, report) = read(
            "member,note\na@x.example,first\n*.counsel.example,\nnot an address@,\n\nexample..com,\n",
            "m.csv".into(),
        )
        .unwrap();
        assert_eq!(members.len(), 2);
        assert_eq!(report.rows, 4);
        let lines: Vec<usize> = report.refused_rows.iter().map(|r| r.line).collect();
        assert_eq!(lines, [4, 6]);
        let mut group = GroupDraft {
            name: "g".into(),
            description: String::new(),
            addresses: vec!["A@x.example".into()],
            domains: vec![],
            groups: vec![],
        };
        let mut report = Report::default();
        merge(&mut group, members, &mut report);
        assert_eq!((report.added, report.already), (1, 1));
        assert_eq!(group.domains, ["*.counsel.example"]);
    }
}
