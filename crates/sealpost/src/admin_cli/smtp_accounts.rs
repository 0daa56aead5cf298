//! `sealpost smtp-account add|list|remove|passwd` (issue 17, item 1):
//! the accounts applications submit mail with, through the running
//! gateway's API (`/api/v1/smtp-accounts`, super_admin). A password is
//! made by sealpost and printed once, alone on stdout, so a script can
//! capture it.

use serde_json::{Value, json};

use sealpost_store::smtp_accounts::SmtpAccountName;

use super::{ADDRESS, Failure, Outcome, SHORT, call, column, shown, table, usage};
use crate::api_client::ApiClient;

/// The account's API path; a name that cannot be one is refused here.
fn path(name: &str) -> Result<String, Failure> {
    let name = SmtpAccountName::parse(name).map_err(|e| usage(e.message))?;
    Ok(format!("/smtp-accounts/{name}"))
}

fn print_password(account: &Value, what: &str) {
    println!("{}", account["password"].as_str().unwrap_or_default());
    eprintln!(
        "{what} SMTP account {}. Its password is printed above, only this once; only a hash is kept.",
        shown(&account["name"], SHORT)
    );
}

/// `smtp-account add NAME --sender S... [--rate N]`.
pub fn add(api: &ApiClient, name: &str, senders: &[String], rate: Option<u32>) -> Outcome {
    let mut body = json!({"name": name, "senders": senders});
    if let Some(r) = rate {
        body["rate_per_hour"] = json!(r);
    }
    let made = call(
        api,
        "POST",
        "/smtp-accounts",
        Some(("application/json", body.to_string().as_bytes())),
        201,
    )?;
    print_password(&made, "Created");
    Ok(())
}

/// `smtp-account list`.
pub fn list(api: &ApiClient) -> Outcome {
    let all = call(api, "GET", "/smtp-accounts", None, 200)?;
    let rows: Vec<Vec<String>> = all
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| {
            let senders: Vec<String> = a["senders"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect();
            vec![
                shown(&a["name"], SHORT),
                senders.join(", "),
                a["rate_per_hour"].to_string(),
                a["last_used_at"].as_str().unwrap_or("never").to_owned(),
            ]
        })
        .collect();
    table(
        &[
            column("NAME", SHORT),
            column("SENDERS", ADDRESS),
            column("PER HOUR", SHORT),
            column("LAST USED", SHORT),
        ],
        &rows,
    );
    Ok(())
}

/// `smtp-account remove NAME`.
pub fn remove(api: &ApiClient, name: &str) -> Outcome {
    call(api, "DELETE", &path(name)?, None, 204)?;
    eprintln!("Removed SMTP account {name}; it can no longer authenticate.");
    Ok(())
}

/// `smtp-account passwd NAME`: a new password, printed once.
pub fn passwd(api: &ApiClient, name: &str) -> Outcome {
    let account = call(
        api,
        "POST",
        &format!("{}/password", path(name)?),
        Some(("application/json", b"{}")),
        200,
    )?;
    print_password(&account, "New password for");
    Ok(())
}
