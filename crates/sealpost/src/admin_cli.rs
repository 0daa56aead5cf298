//! The administration commands of the CLI: `policy`, `import`, `export`,
//! `messages` and `queue` ([`queue`]).
//! They talk to the running gateway's REST API ([`crate::api_client`]), so
//! what they change applies to the next message, exactly as a change made
//! in the console would.

pub mod queue;
pub mod smtp_accounts;
mod table;

use std::{io::Write, path::Path};

use sealpost_policy::text::{is_hidden, one_line};
use serde_json::{Value, json};

use crate::api_client::{ApiClient, ApiResponse};
use table::{Column, column};

/// A command's failure: what to print, and the exit code (1 for a failed
/// operation, 2 for bad input the operator can fix).
#[derive(Debug)]
pub struct Failure {
    pub message: String,
    pub code: u8,
}

type Outcome = Result<(), Failure>;

fn fail(message: impl Into<String>) -> Failure {
    Failure {
        message: message.into(),
        code: 1,
    }
}

fn usage(message: impl Into<String>) -> Failure {
    Failure {
        message: message.into(),
        code: 2,
    }
}

fn expect(response: ApiResponse, ok: u16) -> Result<Value, Failure> {
    if response.status == ok {
        Ok(response.json())
    } else {
        let code = if (400..500).contains(&response.status) && response.status != 401 {
            2
        } else {
            1
        };
        Err(Failure {
            message: response.error_text(),
            code,
        })
    }
}

fn call(
    api: &ApiClient,
    method: &str,
    path: &str,
    body: Option<(&str, &[u8])>,
    ok: u16,
) -> Result<Value, Failure> {
    expect(api.request(method, path, body).map_err(fail)?, ok)
}

/// Prints rows as aligned columns (see [`table::render`]).
fn table(columns: &[Column], rows: &[Vec<String>]) {
    print_text(&table::render(columns, rows));
}

/// Writes to stdout; a closed pipe (`| head`) ends the output quietly
/// instead of panicking as `print!` does.
fn print_text(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}

/// A string field of an API answer as one clean line of at most `max`
/// characters: the answer may carry text a sender wrote.
fn shown(v: &Value, max: usize) -> String {
    one_line(v.as_str().unwrap_or(""), max)
}

/// Longest identifier, status or time shown (queue ids are 16 characters,
/// RFC 3339 times about 30).
const SHORT: usize = 40;
/// Longest address shown (an address is at most 254 octets by RFC 5321,
/// but nothing useful is lost at 100 characters).
const ADDRESS: usize = 100;

/// A condition in a few words.
fn party(v: &Value) -> String {
    let kind = v["kind"].as_str().unwrap_or("?");
    let basis = match v["based_on"].as_str() {
        Some("header") => " (header From)",
        Some("both") => " (envelope or header)",
        _ => "",
    };
    let what = match kind {
        "domain" | "address" => v["value"].as_str().unwrap_or("").to_owned(),
        "group" => format!("group {}", v["group_id"]),
        "attribute" => format!(
            "{}={}",
            v["attribute"].as_str().unwrap_or(""),
            v["value"].as_str().unwrap_or("")
        ),
        other => other.to_owned(),
    };
    format!("{what}{basis}")
}

fn action(p: &Value) -> String {
    match p["action"].as_str() {
        Some("apply_definition") => format!("definition {}", p["definition_id"]),
        _ => "take no action".to_owned(),
    }
}

pub fn policy_list(api: &ApiClient, status: Option<&str>, kind: Option<&str>) -> Outcome {
    let mut query = Vec::new();
    if let Some(s) = status {
        query.push(format!("status={s}"));
    }
    if let Some(t) = kind {
        query.push(format!("type={t}"));
    }
    let path = if query.is_empty() {
        "/policies".to_owned()
    } else {
        format!("/policies?{}", query.join("&"))
    };
    let list = call(api, "GET", &path, None, 200)?;
    let rows: Vec<Vec<String>> = list
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            vec![
                p["id"].to_string(),
                p["status"].as_str().unwrap_or("").to_owned(),
                action(p),
                party(&p["from"]),
                party(&p["to"]),
                p["narrative"].as_str().unwrap_or("").to_owned(),
            ]
        })
        .collect();
    table(
        &[
            column("ID", SHORT),
            column("STATUS", SHORT),
            column("ACTION", SHORT),
            column("FROM", ADDRESS),
            column("TO", ADDRESS),
            column("NARRATIVE", 120),
        ],
        &rows,
    );
    Ok(())
}

pub fn policy_show(api: &ApiClient, id: i64) -> Outcome {
    let p = call(api, "GET", &format!("/policies/{id}"), None, 200)?;
    print_text(&json_for_terminal(&p));
    Ok(())
}

/// `value` as pretty JSON safe to print: serde_json escapes C0 controls
/// in strings but writes DEL, C1 controls (CSI among them) and the
/// invisible reordering characters raw, so those are escaped here too.
/// Still valid JSON that parses to the same value.
fn json_for_terminal(value: &Value) -> String {
    let json = serde_json::to_string_pretty(value).unwrap_or_default();
    let mut out = String::with_capacity(json.len() + 1);
    for c in json.chars() {
        if c != '\n' && is_hidden(c) {
            // Every hidden character is in the BMP: one \u escape.
            out.push_str(&format!("\\u{:04x}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    out.push('\n');
    out
}

/// Adds a policy from a JSON document (a file, or `-` for stdin).
pub fn policy_add(api: &ApiClient, file: &Path) -> Outcome {
    let text = read_input(file)?;
    let created = call(
        api,
        "POST",
        "/policies",
        Some(("application/json", text.as_bytes())),
        201,
    )?;
    let id = one_line(&created["id"].to_string(), SHORT);
    println!("{id}");
    eprintln!(
        "Created policy {id} ({}); it applies from the next message.",
        shown(&created["status"], SHORT)
    );
    Ok(())
}

pub fn policy_remove(api: &ApiClient, id: i64) -> Outcome {
    call(api, "DELETE", &format!("/policies/{id}"), None, 204)?;
    eprintln!("Removed policy {id}.");
    Ok(())
}

/// `sealpost policy test`: the explanation as a table.
pub fn policy_test(
    api: &ApiClient,
    from: &str,
    to: &str,
    header_from: Option<&str>,
    ip: Option<&str>,
    at: Option<&str>,
) -> Outcome {
    let mut body = json!({"from": from, "to": to});
    if let Some(h) = header_from {
        body["header_from"] = json!(h);
    }
    if let Some(ip) = ip {
        body["ip"] = json!(ip);
    }
    if let Some(at) = at {
        body["at"] = json!(at);
    }
    let body = serde_json::to_vec(&body).unwrap_or_default();
    let e = call(
        api,
        "POST",
        "/policy-test",
        Some(("application/json", &body)),
        200,
    )?;
    println!(
        "direction: {}",
        shown(&e["direction"], SHORT).replace('_', " ")
    );
    let rank: Vec<i64> = e["ranking"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_i64)
        .collect();
    let rows: Vec<Vec<String>> = e["verdicts"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|v| {
            let id = v["policy"].as_i64().unwrap_or(0);
            let result = if v["matched"].as_bool() == Some(true) {
                "matched".to_owned()
            } else {
                let m = &v["mismatch"];
                match m["reason"].as_str() {
                    Some("sender") => format!("sender is not {}", shown(&m["expected"], ADDRESS)),
                    Some("recipient") => {
                        format!("recipient is not {}", shown(&m["expected"], ADDRESS))
                    }
                    Some(r) => r.replace('_', " "),
                    None => "not matched".to_owned(),
                }
            };
            let position = rank
                .iter()
                .position(|r| *r == id)
                .map(|p| (p + 1).to_string())
                .unwrap_or_else(|| "-".to_owned());
            vec![id.to_string(), position, result]
        })
        .collect();
    table(
        &[
            column("POLICY", SHORT),
            column("RANK", SHORT),
            column("RESULT", 120),
        ],
        &rows,
    );
    if e["override_applied"].as_bool() == Some(true) {
        println!("override: only override policies were ranked");
    }
    match e["winner"].as_i64() {
        Some(w) => println!(
            "winner: policy {w} -> {}{}",
            shown(&e["route"], SHORT),
            e["definition"]
                .as_i64()
                .map(|d| format!(" (definition {d})"))
                .unwrap_or_default()
        ),
        None => println!(
            "winner: none -> {}",
            e["route"]
                .as_str()
                .map_or("relay".into(), |r| one_line(r, SHORT))
        ),
    }
    Ok(())
}

/// Rows per import request: each batch is one commit, and progress is
/// reported between batches.
const IMPORT_BATCH: usize = 2000;

/// `sealpost import users FILE.csv`, in batches with progress.
pub fn import_users(api: &ApiClient, file: &Path) -> Outcome {
    let text = read_input(file)?;
    let mut lines = text.lines();
    let header = lines
        .next()
        .ok_or_else(|| usage(format!("{} is empty", file.display())))?;
    // Batches must not split a quoted field that spans lines: cut only at
    // line ends outside quotes.
    let mut batches: Vec<String> = Vec::new();
    let mut current = String::new();
    let mut rows = 0;
    let mut in_quotes = false;
    for line in lines {
        current.push_str(line);
        current.push('\n');
        in_quotes ^= line.matches('"').count() % 2 == 1;
        if !in_quotes {
            rows += 1;
            if rows % IMPORT_BATCH == 0 {
                batches.push(std::mem::take(&mut current));
            }
        }
    }
    if !current.trim().is_empty() {
        batches.push(current);
    }
    let total = rows;
    let mut done = 0u64;
    let mut stderr = std::io::stderr();
    for (i, batch) in batches.iter().enumerate() {
        let body = format!("{header}\n{batch}");
        let result = call(
            api,
            "POST",
            "/directory/users/import",
            Some(("text/csv", body.as_bytes())),
            200,
        )
        .map_err(|mut f| {
            f.message = format!(
                "batch {} (rows {} to {}): {}; the {done} rows before it were imported",
                i + 1,
                i * IMPORT_BATCH + 1,
                (i + 1) * IMPORT_BATCH,
                f.message
            );
            f
        })?;
        done += result["imported"].as_u64().unwrap_or(0);
        let _ = write!(stderr, "\rimported {done} of {total} users");
        let _ = stderr.flush();
    }
    let _ = writeln!(stderr);
    println!("{done}");
    Ok(())
}

/// `sealpost export`: the whole policy configuration.
pub fn export(api: &ApiClient, format: &str, output: Option<&Path>) -> Outcome {
    let doc = call(api, "GET", "/config", None, 200)?;
    let text = match format {
        "json" => serde_json::to_string_pretty(&doc).map_err(|e| fail(e.to_string()))?,
        "toml" => {
            // JSON nulls have no TOML form; they mean "absent".
            toml::to_string(&strip_nulls(doc)).map_err(|e| fail(e.to_string()))?
        }
        other => return Err(usage(format!("unknown format {other:?}; use toml or json"))),
    };
    match output {
        None => print!("{text}"),
        Some(path) => std::fs::write(path, text)
            .map_err(|e| fail(format!("cannot write {}: {e}", path.display())))?,
    }
    Ok(())
}

fn strip_nulls(v: Value) -> Value {
    match v {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, strip_nulls(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(strip_nulls).collect()),
        other => other,
    }
}

/// `sealpost import FILE`: replaces the whole configuration with an
/// exported document (TOML or JSON, by extension or content).
pub fn import_config(api: &ApiClient, file: &Path) -> Outcome {
    let text = read_input(file)?;
    let doc: Value = if text.trim_start().starts_with('{') {
        serde_json::from_str(&text)
            .map_err(|e| usage(format!("{}: not valid JSON: {e}", file.display())))?
    } else {
        toml::from_str(&text)
            .map_err(|e| usage(format!("{}: not valid TOML: {e}", file.display())))?
    };
    let body = serde_json::to_vec(&doc).map_err(|e| fail(e.to_string()))?;
    let now = call(
        api,
        "PUT",
        "/config",
        Some(("application/json", &body)),
        200,
    )?;
    eprintln!(
        "Imported: {} policies, {} definitions, {} groups, {} users, {} internal domains.",
        count(&now["policies"]),
        count(&now["definitions"]),
        count(&now["groups"]),
        count(&now["users"]),
        count(&now["internal_domains"])
    );
    Ok(())
}

fn count(v: &Value) -> usize {
    v.as_array().map_or(0, Vec::len)
}

fn read_input(file: &Path) -> Result<String, Failure> {
    if file == Path::new("-") {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
            .map_err(|e| fail(format!("reading stdin: {e}")))?;
        return Ok(text);
    }
    std::fs::read_to_string(file).map_err(|e| usage(format!("cannot read {}: {e}", file.display())))
}

/// Percent-encodes a query value.
fn query_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The filters of `sealpost messages list`.
#[derive(Debug, Default)]
pub struct MessageSearch {
    pub from: Option<String>,
    pub to: Option<String>,
    pub subject: Option<String>,
    pub status: Option<String>,
    pub since: Option<String>,
    pub until: Option<String>,
    pub limit: usize,
}

/// `sealpost messages list`: tracking search, newest first, following
/// pages up to `limit` messages.
pub fn messages_list(api: &ApiClient, search: &MessageSearch) -> Outcome {
    let mut query = Vec::new();
    for (name, value) in [
        ("from", &search.from),
        ("to", &search.to),
        ("subject", &search.subject),
        ("status", &search.status),
        ("since", &search.since),
        ("until", &search.until),
    ] {
        if let Some(v) = value {
            query.push(format!("{name}={}", query_value(v)));
        }
    }
    let mut rows = Vec::new();
    let mut after: Option<String> = None;
    // Bounded: each page is at most 500 messages, and we stop at `limit`.
    for _ in 0..=(search.limit / 500 + 1) {
        let want = (search.limit - rows.len()).clamp(1, 500);
        let mut q = query.clone();
        q.push(format!("limit={want}"));
        if let Some(a) = &after {
            q.push(format!("after={a}"));
        }
        let page = call(api, "GET", &format!("/messages?{}", q.join("&")), None, 200)?;
        for m in page["messages"].as_array().into_iter().flatten() {
            rows.push(vec![
                shown(&m["id"], SHORT),
                shown(&m["received_at"], SHORT),
                shown(&m["sender"], ADDRESS),
                shown(&m["subject"], SUBJECT),
                recipients_cell(&m["recipients"]),
            ]);
        }
        after = page["next"].as_str().map(str::to_owned);
        if after.is_none() || rows.len() >= search.limit {
            break;
        }
    }
    table(
        &[
            column("ID", SHORT),
            column("RECEIVED", SHORT),
            column("FROM", ADDRESS),
            column("SUBJECT", SUBJECT),
            column("RECIPIENTS", RECIPIENTS),
        ],
        &rows,
    );
    Ok(())
}

/// Longest subject shown in a listing.
const SUBJECT: usize = 80;
/// Longest recipients cell: a message may have thousands of recipients.
const RECIPIENTS: usize = 160;
/// Recipients named in a listing before "+N more".
const RECIPIENTS_NAMED: usize = 3;

/// The first recipients with their status, and how many more there are.
fn recipients_cell(recipients: &Value) -> String {
    let all = recipients.as_array().map_or(&[][..], Vec::as_slice);
    let mut cell: Vec<String> = all
        .iter()
        .take(RECIPIENTS_NAMED)
        .map(|r| {
            // A secure recipient whose notification failed was never told:
            // say so where the operator looks.
            let not_notified = r["secure"]["notification_failed_at"].is_string();
            format!(
                "{} ({}{})",
                shown(&r["address"], ADDRESS / 2),
                shown(&r["status"], SHORT),
                if not_notified { ", not notified" } else { "" }
            )
        })
        .collect();
    if all.len() > RECIPIENTS_NAMED {
        cell.push(format!("+{} more", all.len() - RECIPIENTS_NAMED));
    }
    cell.join(", ")
}

/// `sealpost messages show ID`: the tracking record as JSON.
pub fn messages_show(api: &ApiClient, id: &str) -> Outcome {
    let message = call(
        api,
        "GET",
        &format!("/messages/{}", query_value(id)),
        None,
        200,
    )?;
    print_text(&json_for_terminal(&bounded(message, SHOWN)));
    Ok(())
}

/// Longest string shown by `messages show` (a subject can be 70 KB).
const SHOWN: usize = 1000;

/// `value` with every string, keys included, made one clean line of at
/// most `max` characters: a tracking record carries what senders wrote.
fn bounded(value: Value, max: usize) -> Value {
    match value {
        Value::String(s) => Value::String(one_line(&s, max)),
        Value::Array(items) => Value::Array(items.into_iter().map(|v| bounded(v, max)).collect()),
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (one_line(&k, max), bounded(v, max)))
                .collect(),
        ),
        other => other,
    }
}

/// `sealpost messages recall ID...`.
pub fn messages_recall(api: &ApiClient, ids: &[String]) -> Outcome {
    if ids.is_empty() {
        return Err(usage("name at least one queue id"));
    }
    let body = serde_json::to_vec(&json!({ "ids": ids })).unwrap_or_default();
    let result = call(
        api,
        "POST",
        "/messages/recall",
        Some(("application/json", &body)),
        200,
    )?;
    for r in result["recalled"].as_array().into_iter().flatten() {
        println!(
            "{}: recalled ({} secure recipient(s), {} queued delivery(ies) cancelled, content {})",
            shown(&r["id"], SHORT),
            one_line(&r["recalled"].to_string(), SHORT),
            one_line(&r["cancelled"].to_string(), SHORT),
            if r["content_destroyed"] == json!(true) {
                "destroyed"
            } else {
                "kept for deliveries in progress"
            }
        );
    }
    let missing: Vec<String> = result["not_found"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|id| shown(id, SHORT))
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(fail(format!("no such message: {}", missing.join(", "))))
    }
}

/// `sealpost messages extend ID (--days N | --until TIME)`.
pub fn messages_extend(
    api: &ApiClient,
    id: &str,
    days: Option<u32>,
    until: Option<&str>,
) -> Outcome {
    let body = match (days, until) {
        (Some(days), None) => json!({ "days": days }),
        (None, Some(until)) => json!({ "expires_at": until }),
        _ => return Err(usage("give --days N or --until RFC3339-TIME")),
    };
    let body = serde_json::to_vec(&body).unwrap_or_default();
    let result = call(
        api,
        "POST",
        &format!("/messages/{}/extend", query_value(id)),
        Some(("application/json", &body)),
        200,
    )?;
    println!(
        "{}: readable until {}",
        one_line(result["id"].as_str().unwrap_or(id), SHORT),
        one_line(result["expires_at"].as_str().unwrap_or("?"), SHORT)
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shown_json_escapes_what_serde_json_leaves_raw_and_still_parses() {
        let value = json!({"subject": "a\u{7f}b\u{9b}31m\u{202e}c\u{1b}d\ne"});
        let shown = json_for_terminal(&value);
        assert!(!shown.chars().any(|c| c != '\n' && is_hidden(c)), "{shown}");
        assert_eq!(serde_json::from_str::<Value>(&shown).unwrap(), value);
    }

    #[test]
    fn a_shown_record_is_bounded_and_clean() {
        let record =
            json!({"id": "X", "subject": format!("s\u{1b}[2J{}", "y".repeat(100_000)), "n": 3});
        let shown = bounded(record, 20);
        assert_eq!(
            shown,
            json!({"id": "X", "subject": "s[2Jyyyyyyyyyyyyyyy…", "n": 3})
        );
    }
}
