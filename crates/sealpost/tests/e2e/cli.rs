//! The `sealpost` binary: `config check`, and `serve` on the embedded
//! default.

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    time::Duration,
};

use crate::helpers::*;

const BIN: &str = env!("CARGO_BIN_EXE_sealpost");

#[test]
fn config_check_explains_errors_with_key_paths() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[smtp]\nrelay_networks = [\"10.0.0.0/8\", \"10.1.0.0/40\"]\nmax_message_size = \"lots\"\n[relay]\nnext_hop = \"smarthost:0\"\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["config", "check", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    for path in [
        "smtp.relay_networks[1]:",
        "smtp.max_message_size:",
        "relay.next_hop:",
    ] {
        assert!(err.contains(path), "{path} missing:\n{err}");
    }

    let good = dir.path().join("good.toml");
    std::fs::write(&good, "[domains]\ninternal = [\"corp.example\"]\n[relay]\ninternal_next_hop = \"exchange.corp.example:25\"\n").unwrap();
    let out = Command::new(BIN)
        .args(["config", "check", "--config"])
        .arg(&good)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("configuration ok"));

    let out = Command::new(BIN)
        .args(["config", "check"])
        .env("SEALPOST_SMTP_MAX_RECIPIENTS", "many")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("smtp.max_recipients"));
}

#[test]
fn serve_runs_on_the_embedded_default_and_stops_on_sigterm() {
    let cwd = tempfile::tempdir().unwrap();
    let mut child = Command::new(BIN)
        .arg("serve")
        .current_dir(cwd.path())
        // Port 0 so parallel tests never collide; everything else default.
        .env("SEALPOST_SMTP_LISTEN", "127.0.0.1:0")
        .env("SEALPOST_ADMIN_LISTEN", "127.0.0.1:0")
        .env_remove("SEALPOST_CONFIG")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut banner = String::new();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut smtp = None;
    for _ in 0..20 {
        let mut line = String::new();
        if out.read_line(&mut line).unwrap() == 0 {
            break;
        }
        if let Some(addr) = line.trim().strip_prefix("SMTP:") {
            smtp = Some(addr.trim().parse::<std::net::SocketAddr>().unwrap());
        }
        banner.push_str(&line);
        if line.trim_start().starts_with("relaying for") {
            break; // the banner's last line
        }
    }
    assert!(
        banner.contains("sealpost") && banner.contains("self-signed"),
        "{banner}"
    );
    // The first start prints the administrator's API key, once, and the
    // console administrator's one-time password.
    assert!(
        banner.contains("first run") && banner.contains("Bearer sp_"),
        "{banner}"
    );
    assert!(
        banner.contains("console administrator admin (role super_admin)"),
        "{banner}"
    );
    let smtp = smtp.unwrap_or_else(|| panic!("no SMTP address in banner:\n{banner}"));
    assert!(cwd.path().join("data/sealpost.db").exists());
    assert!(cwd.path().join("data/tls/cert.pem").exists());

    let (ok, transcript) = swaks(
        smtp,
        &[
            "--from",
            "a@corp.example",
            "--to",
            "b@corp.example",
            "--quit-after",
            "RCPT",
        ],
    );
    assert!(ok, "{transcript}");

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = wait_for(Duration::from_secs(40), "exit after SIGTERM", || {
        child.try_wait().unwrap()
    });
    assert!(exit.success(), "graceful exit: {exit:?}");
}

#[test]
fn serve_reports_a_busy_port_by_its_key() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let cwd = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .arg("serve")
        .current_dir(cwd.path())
        .env(
            "SEALPOST_SMTP_LISTEN",
            busy.local_addr().unwrap().to_string(),
        )
        .env("SEALPOST_ADMIN_LISTEN", "127.0.0.1:0")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("(smtp.listen)") && err.contains(&busy.local_addr().unwrap().to_string()),
        "{err}"
    );
}
