//! Issue 17, item 6: `sealpost keys rotate` while the gateway runs and
//! takes mail. A smtplib loop sends to secure and relayed recipients the
//! whole time; no message is refused, every stored content opens
//! afterwards (`keys verify`), and every message key ends on the new
//! version: the old ones re-wrapped in the background, the new ones sealed
//! under it from the start.

use std::{
    process::{Command, Stdio},
    time::Duration,
};

use crate::helpers::*;
use crate::secure_cli::{Served, sealpost, write_config};

const BIN: &str = env!("CARGO_BIN_EXE_sealpost");

/// Sends messages one after another (alternately to a secure and to a
/// relayed recipient) until `stop` exists, at most 4,000 or 180 s; prints
/// one line per message: `ok` or `refused <reply>`.
fn load_script(port: u16, stop: &std::path::Path) -> String {
    format!(
        r#"
import os, smtplib, time
deadline = time.time() + 180
s = smtplib.SMTP("127.0.0.1", {port}, timeout=30)
s.ehlo("load.example")
n = 0
while not os.path.exists({stop:?}) and n < 4000 and time.time() < deadline:
    n += 1
    to = "p%d@partner.example" % n if n % 2 else "r%d@elsewhere.example" % n
    msg = "From: alice@corp.example\r\nTo: %s\r\nSubject: load %d\r\n\r\nbody %d\r\n" % (to, n, n)
    try:
        s.sendmail("alice@corp.example", [to], msg)
        print("ok", flush=True)
    except smtplib.SMTPException as e:
        print("refused %r" % (e,), flush=True)
    time.sleep(0.005)
s.quit()
"#,
        stop = stop.display().to_string()
    )
}

#[test]
fn issue_17_keys_rotate_online_under_smtp_load_refuses_nothing_and_rewraps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("gateway.log");
    let config = write_config(dir.path());
    let gw = Served::start(&config, &logs);
    let key = gw.key.clone().expect("first start prints a key");
    gw.secure_partner_mail();
    // Mail sealed under version 1 before the rotation.
    let out = Command::new(require("/usr/sbin/smtp-source"))
        .args(["-s", "8", "-m", "300", "-l", "2048"])
        .args(["-f", "alice@corp.example", "-t", "p1@partner.example"])
        .arg(gw.smtp.to_string())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The load runs through the whole rotation.
    let stop = dir.path().join("stop-load");
    let load = Command::new(require("/usr/bin/python3"))
        .args(["-c", &load_script(gw.smtp.port(), &stop)])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));

    // The CLI finds the database held by the gateway and rotates through
    // its API, following the progress to the end.
    let rotate = Command::new(BIN)
        .args(["keys", "rotate", "--config"])
        .arg(&config)
        .env_remove("SEALPOST_MASTER_KEY")
        .env("SEALPOST_API_KEY", &key)
        .output()
        .unwrap();
    let rotated = format!(
        "{}{}",
        String::from_utf8_lossy(&rotate.stdout),
        String::from_utf8_lossy(&rotate.stderr)
    );
    assert!(rotate.status.success(), "{rotated}");
    assert!(rotated.contains("rotating through its API"), "{rotated}");
    assert!(rotated.contains("version 2"), "{rotated}");
    assert!(rotated.contains("Rotation complete"), "{rotated}");

    // Mail keeps coming after the rotation, then the load stops.
    std::thread::sleep(Duration::from_millis(500));
    std::fs::write(&stop, b"").unwrap();
    let load = load.wait_with_output().unwrap();
    let sent = String::from_utf8_lossy(&load.stdout).into_owned();
    assert!(
        load.status.success(),
        "{sent}{}",
        String::from_utf8_lossy(&load.stderr)
    );
    let refused: Vec<&str> = sent.lines().filter(|l| *l != "ok").collect();
    let accepted = sent.lines().filter(|l| *l == "ok").count();
    assert!(
        refused.is_empty(),
        "refused during the rotation: {refused:?}"
    );
    assert!(
        accepted >= 20,
        "the load ran through the rotation: {accepted}"
    );

    let status: serde_json::Value =
        serde_json::from_str(&gw.api("GET", "/keys/rotation", "")).unwrap();
    assert_eq!(status["state"], "complete", "{status}");
    assert_eq!(status["version"], 2, "{status}");
    assert_eq!(status["done"], status["total"], "{status}");
    assert_eq!(status["failures"], 0, "{status}");
    let rewrapped = status["done"].as_u64().unwrap();
    gw.stop();

    // Every key on version 2, none left on 1, and every content opens.
    let (ok, listed) = sealpost(&["keys", "list"], &config);
    assert!(ok, "{listed}");
    let count = |version: &str| -> u64 {
        listed
            .lines()
            .find(|l| l.split_whitespace().next() == Some(version))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no version {version} in:\n{listed}"))
    };
    assert_eq!(count("1"), 0, "{listed}");
    let total = count("2");
    assert!(listed.contains("(current)"), "{listed}");
    // Mail accepted after the switch was sealed under version 2 directly:
    // fewer keys were re-wrapped than there are.
    assert!(
        rewrapped >= 300 && rewrapped < total,
        "re-wrapped {rewrapped} of {total}:\n{listed}"
    );
    let (ok, out) = sealpost(&["keys", "verify"], &config);
    assert!(ok && out.contains(&format!("All {total}")), "{out}");
}
