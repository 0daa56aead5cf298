//! `sealpost messages` against what an external sender can put in a
//! subject: the listing stays one clean, bounded line per message.

use std::process::Command;

use crate::helpers::*;

const BIN: &str = env!("CARGO_BIN_EXE_sealpost");

fn cli(gw: &TestGateway, args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .args(args)
        .env("SEALPOST_API_ADDR", gw.admin.to_string())
        .env(
            "SEALPOST_API_KEY",
            gw.api_key.as_deref().expect("first-run key"),
        )
        .env_remove("SEALPOST_CONFIG")
        .output()
        .unwrap()
}

/// Control characters other than the line ends of `text`.
fn controls(text: &str) -> Vec<char> {
    text.chars()
        .filter(|&c| c != '\n' && c.is_control())
        .collect()
}

/// Issue 14 (defect 5): a ~70 KB folded subject made `messages list`
/// panic ("Formatting argument out of range"), and a subject decoding to
/// ESC, NUL, VT, CR and LF reached the terminal raw, forging rows.
#[test]
fn issue_14_hostile_subjects_cannot_break_messages_list() {
    let dead = free_port();
    let gw = TestGateway::start(&format!(
        "[domains]\ninternal = [\"corp.example\"]\n\
         [relay]\ninternal_next_hop = \"127.0.0.1:{dead}\"\nretry_schedule = [\"1h\"]\n"
    ));
    let mut long = String::from("Subject: start");
    for i in 0..1800 {
        long.push_str(&format!("\r\n word{i:04} of a very long folded subject"));
    }
    assert!(long.len() > 70_000, "wider than format! can pad");
    // ESC [31m, ESC [0m, NUL, VT, CR LF, then text posing as a new row.
    let control = "Subject: =?UTF-8?Q?ok=1B[31mred=1B[0m=00=0B=0D=0A1234567890ABCDEF__forged_row?=";

    let mut smtp = Raw::connect(gw.smtp);
    smtp.cmd("EHLO client.example", "250");
    let mut ids = Vec::new();
    for subject in [long.as_str(), control] {
        let data = format!("From: <mallory@evil.example>\r\n{subject}\r\n\r\nhello\r\n");
        let reply = smtp.transaction(
            "<mallory@evil.example>",
            &["<bob@corp.example>"],
            data.as_bytes(),
        );
        assert!(reply.starts_with("250 2.0.0"), "{reply}");
        ids.push(queue_id(&reply));
    }

    let out = cli(&gw, &["messages", "list"]);
    let listing = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "{:?}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(controls(&listing), [] as [char; 0], "{listing:?}");
    let lines: Vec<&str> = listing.lines().collect();
    assert_eq!(
        lines.len(),
        3,
        "a header and one row per message:\n{listing}"
    );
    assert!(lines[0].starts_with("ID "), "{listing}");
    for line in &lines {
        assert!(line.chars().count() <= 500, "unbounded line: {line:?}");
    }
    let row = |id: &sealpost_store::QueueId| {
        *lines
            .iter()
            .find(|l| l.starts_with(id.as_str()))
            .unwrap_or_else(|| panic!("no row for {id}:\n{listing}"))
    };
    let long_row = row(&ids[0]);
    assert!(
        long_row.contains("start word0000 of") && long_row.contains('…'),
        "{long_row}"
    );
    let control_row = row(&ids[1]);
    assert!(
        control_row.contains("red") && control_row.contains("forged row"),
        "the whole subject stays in its own row: {control_row}"
    );

    // `messages show`: JSON, bounded, nothing a terminal would act on.
    for id in &ids {
        let out = cli(&gw, &["messages", "show", id.as_str()]);
        assert!(out.status.success());
        let shown = String::from_utf8(out.stdout).unwrap();
        assert_eq!(controls(&shown), [] as [char; 0], "{shown:?}");
        assert!(
            shown.lines().all(|l| l.chars().count() <= 1100),
            "unbounded line in:\n{shown}"
        );
        let record: serde_json::Value = serde_json::from_str(&shown).unwrap();
        assert_eq!(record["id"], id.as_str());
    }
}
