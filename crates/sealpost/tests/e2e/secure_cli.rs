//! The vault through the real binary: no plaintext of a secure message in
//! the database, the data directory or the logs; tampered content and a
//! wrong master key are reported, never shown; `keys rotate` killed with
//! `kill -9` finishes when run again, and every message still opens.

use std::{
    io::{BufReader, Read},
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use crate::helpers::*;

const BIN: &str = env!("CARGO_BIN_EXE_sealpost");

/// `sealpost serve` as a child process on its own data directory, logging
/// (at debug level) to a file outside it.
pub(crate) struct Served {
    child: Child,
    pub(crate) smtp: SocketAddr,
    pub(crate) admin: SocketAddr,
    pub(crate) key: Option<String>,
}

pub(crate) fn write_config(dir: &Path) -> PathBuf {
    let (smtp, admin, dead) = (free_port(), free_port(), free_port());
    let file = dir.join("sealpost.toml");
    std::fs::write(
        &file,
        format!(
            "[server]\nhostname = \"gw.test\"\ndata_dir = \"{}\"\n\
             [smtp]\nlisten = [\"127.0.0.1:{smtp}\"]\nrelay_networks = [\"127.0.0.0/8\"]\n\
             [domains]\ninternal = [\"corp.example\"]\n\
             [relay]\nnext_hop = \"127.0.0.1:{dead}\"\ninternal_next_hop = \"127.0.0.1:{dead}\"\n\
             retry_schedule = [\"1h\"]\nconnect_timeout = \"1s\"\n\
             [admin]\nlisten = \"127.0.0.1:{admin}\"\n\
             [portal]\nlisten = \"127.0.0.1:0\"\n\
             [log]\nlevel = \"debug\"\n",
            dir.join("data").display()
        ),
    )
    .unwrap();
    file
}

impl Served {
    pub(crate) fn start(config: &Path, logs: &Path) -> Served {
        let text = std::fs::read_to_string(config).unwrap();
        let port = |key: &str| -> u16 {
            let at = text.find(key).unwrap() + key.len();
            text[at..].split('"').next().unwrap().parse().unwrap()
        };
        let smtp: SocketAddr = format!("127.0.0.1:{}", port("listen = [\"127.0.0.1:"))
            .parse()
            .unwrap();
        let admin: SocketAddr = format!("127.0.0.1:{}", port("[admin]\nlisten = \"127.0.0.1:"))
            .parse()
            .unwrap();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(logs)
            .unwrap();
        let mut child = Command::new(BIN)
            .args(["serve", "--config"])
            .arg(config)
            .env_remove("SEALPOST_MASTER_KEY")
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let banner = read_lines_until(&mut out, 30, |l| l.trim_start().starts_with("relaying for"));
        let key = banner.find("sp_").map(|at| {
            banner[at..]
                .split_whitespace()
                .next()
                .unwrap()
                .trim_end_matches('\'')
                .to_owned()
        });
        // Keep draining stdout so the child never blocks on it.
        std::thread::spawn(move || {
            let mut sink = Vec::new();
            let _ = out.read_to_end(&mut sink);
        });
        wait_for(Duration::from_secs(20), "health", || {
            Command::new("curl")
                .args(["-sf", &format!("http://{admin}/health")])
                .output()
                .ok()
                .filter(|o| o.status.success())
        });
        Served {
            child,
            smtp,
            admin,
            key,
        }
    }

    pub(crate) fn api(&self, method: &str, path: &str, body: &str) -> String {
        let out = Command::new(require("curl"))
            .args(["-sf", "-X", method, "-H", "Content-Type: application/json"])
            .args([
                "-H",
                &format!("Authorization: Bearer {}", self.key.as_deref().unwrap()),
            ])
            .args(["--data-binary", body])
            .arg(format!("http://{}/api/v1{path}", self.admin))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{method} {path}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Every recipient at partner.example gets secure delivery (default
    /// definition).
    pub(crate) fn secure_partner_mail(&self) {
        self.api(
            "POST",
            "/policies",
            r#"{"action": "apply_definition", "definition_id": 1,
                "from": {"kind": "internal"}, "to": {"kind": "domain", "value": "partner.example"}}"#,
        );
    }

    pub(crate) fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let exit = wait_for(Duration::from_secs(40), "exit", || {
            self.child.try_wait().unwrap()
        });
        assert!(exit.success(), "{exit:?}");
    }
}

pub(crate) fn sealpost(args: &[&str], config: &Path) -> (bool, String) {
    let out = Command::new(BIN)
        .args(args)
        .arg("--config")
        .arg(config)
        .env_remove("SEALPOST_MASTER_KEY")
        .output()
        .unwrap();
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

/// Whether `needle` occurs in any file under `root` (recursively).
fn found_in_tree(root: &Path, needle: &[u8]) -> Vec<PathBuf> {
    let mut hits = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if std::fs::read(&path)
                .unwrap()
                .windows(needle.len())
                .any(|w| w == needle)
            {
                hits.push(path);
            }
        }
    }
    hits
}

const MARKER: &str = "ZQX-SEALPOST-MARKER-4412";

/// A MIME message with the marker in the text part, the HTML part and two
/// attachments (7bit and base64).
fn mime_with_marker(subject: &str) -> String {
    let attachment = format!("attached {MARKER} attached {MARKER}");
    format!(
        "From: Alice <alice@corp.example>\r\nTo: p1@partner.example, x@other.example\r\nSubject: {subject}\r\n\
         MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n\
         --b1\r\nContent-Type: multipart/alternative; boundary=\"b2\"\r\n\r\n\
         --b2\r\nContent-Type: text/plain; charset=utf-8\r\n\r\ntext part {MARKER}\r\n\
         --b2\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>html part <b>{MARKER}</b></p>\r\n\
         --b2--\r\n\
         --b1\r\nContent-Type: text/plain; name=\"plain.txt\"\r\nContent-Disposition: attachment; filename=\"plain.txt\"\r\n\r\n{attachment}\r\n\
         --b1\r\nContent-Type: application/octet-stream; name=\"data.bin\"\r\nContent-Transfer-Encoding: base64\r\n\
         Content-Disposition: attachment; filename=\"data.bin\"\r\n\r\n{}\r\n\
         --b1--\r\n",
        base64(attachment.as_bytes())
    )
}

fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn send_file(smtp: SocketAddr, to: &str, file: &Path) {
    let (ok, out) = swaks(
        smtp,
        &[
            "--from",
            "alice@corp.example",
            "--to",
            to,
            "--data",
            &format!("@{}", file.display()),
        ],
    );
    assert!(ok, "{out}");
}

#[test]
fn no_plaintext_of_a_secure_message_in_the_database_the_data_directory_or_the_logs() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("gateway.log");
    let config = write_config(dir.path());
    let gw = Served::start(&config, &logs);
    gw.secure_partner_mail();

    let mail = dir.path().join("mail.eml");
    for i in 0..3 {
        std::fs::write(&mail, mime_with_marker(&format!("report {i}"))).unwrap();
        // A secure recipient, and a relayed one whose next hop is down: its
        // copy waits in the queue, sealed too (SPEC §8).
        send_file(gw.smtp, "p1@partner.example,x@other.example", &mail);
    }
    // A large one: its content goes to the spool directory.
    let mut big = mime_with_marker("big report");
    let filler: String =
        format!("{MARKER} filler line of text to pass the inline limit\r\n").repeat(30_000);
    big = big.replace("text part ", &format!("text part {filler}"));
    std::fs::write(&mail, &big).unwrap();
    send_file(gw.smtp, "p2@partner.example", &mail);
    std::fs::remove_file(&mail).unwrap();
    // Let the worker try (and fail) the deliveries, so every path that
    // could log or spool has run.
    std::thread::sleep(Duration::from_secs(2));
    gw.stop();

    let data = dir.path().join("data");
    assert!(
        std::fs::read_dir(data.join("spool")).unwrap().count() >= 1,
        "the large message is spooled"
    );
    let attachment_b64 = base64(format!("attached {MARKER} attached {MARKER}").as_bytes());
    for needle in [MARKER.as_bytes(), &attachment_b64.as_bytes()[..40]] {
        let hits = found_in_tree(dir.path(), needle);
        assert!(
            hits.is_empty(),
            "{:?} found in {hits:?}",
            String::from_utf8_lossy(needle)
        );
    }
    // The scan does find what is there: the subject is metadata, kept in
    // the database for tracking.
    assert!(
        !found_in_tree(&data, b"report 1").is_empty(),
        "the scan sees the database"
    );
    let (ok, out) = sealpost(&["keys", "verify"], &config);
    assert!(ok, "{out}");
    assert!(out.contains("open with this keyring"), "{out}");
}

#[test]
fn tampered_content_and_a_wrong_master_key_are_reported_never_shown() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("gateway.log");
    let config = write_config(dir.path());
    let gw = Served::start(&config, &logs);
    gw.secure_partner_mail();
    let mail = dir.path().join("mail.eml");
    std::fs::write(&mail, mime_with_marker("tamper me")).unwrap();
    send_file(gw.smtp, "p1@partner.example", &mail);
    gw.stop();
    let (ok, out) = sealpost(&["keys", "verify"], &config);
    assert!(ok, "{out}");

    // Flip one byte of the stored ciphertext.
    let db = dir.path().join("data/sealpost.db");
    let id: String = {
        let conn = rusqlite::Connection::open(&db).unwrap();
        let (id, mut content): (String, Vec<u8>) = conn
            .query_row(
                "SELECT id, content FROM messages WHERE kind = 'mail'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        content[10] ^= 0x01;
        conn.execute(
            "UPDATE messages SET content = ?2 WHERE id = ?1",
            rusqlite::params![id, content],
        )
        .unwrap();
        id
    };
    let (ok, out) = sealpost(&["keys", "verify"], &config);
    assert!(!ok, "{out}");
    assert!(out.contains(&id) && out.contains("tampered"), "{out}");
    assert!(!out.contains(MARKER));

    // A different master key under the same version: refused at start,
    // before anything could be sealed with it.
    let key_file = dir.path().join("data/master.key");
    let right = std::fs::read(&key_file).unwrap();
    sealpost_vault::Keyring::generate().save(&key_file).unwrap();
    let out = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&config)
        .env_remove("SEALPOST_MASTER_KEY")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("not the key this database was sealed with"),
        "{err}"
    );
    let (ok, out) = sealpost(&["keys", "verify"], &config);
    assert!(!ok && out.contains("not the key"), "{out}");

    // The same through SEALPOST_MASTER_KEY.
    let out = Command::new(BIN)
        .args(["keys", "list", "--config"])
        .arg(&config)
        .env(
            "SEALPOST_MASTER_KEY",
            "1:0000000000000000000000000000000000000000000000000000000000000000",
        )
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not the key"));

    // A key file others can read is refused.
    std::fs::write(&key_file, &right).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (ok, out) = sealpost(&["keys", "list"], &config);
    assert!(!ok && out.contains("chmod 600"), "{out}");
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let (ok, out) = sealpost(&["keys", "list"], &config);
    assert!(ok, "{out}");
}

#[test]
fn key_rotation_killed_midway_resumes_and_every_message_still_opens() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("gateway.log");
    let config = write_config(dir.path());
    let gw = Served::start(&config, &logs);
    gw.secure_partner_mail();
    let out = Command::new(require("/usr/sbin/smtp-source"))
        .args([
            "-s",
            "8",
            "-m",
            "800",
            "-l",
            "2048",
            "-f",
            "alice@corp.example",
            "-t",
            "p1@partner.example",
        ])
        .arg(gw.smtp.to_string())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    gw.stop();
    let (ok, listed) = sealpost(&["keys", "list"], &config);
    assert!(ok, "{listed}");
    // Each message and its notification: 1,600 sealed contents on v1.
    assert!(listed.contains("1600  (current)"), "{listed}");

    // Rotate in small batches and kill -9 after the first progress line.
    let mut child = Command::new(BIN)
        .args(["keys", "rotate", "--batch", "5", "--config"])
        .arg(&config)
        .env_remove("SEALPOST_MASTER_KEY")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let seen = read_lines_until(&mut err, 50, |l| l.starts_with("re-wrapped "));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(seen.contains("Added master key version 2"), "{seen}");
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
    assert!(
        count("1") > 0 && count("2") > 0,
        "the kill landed mid-rotation:\n{listed}"
    );

    let (ok, out) = sealpost(&["keys", "rotate"], &config);
    assert!(ok, "{out}");
    assert!(
        out.contains("Resuming the rotation to master key version 2"),
        "{out}"
    );
    let (ok, listed) = sealpost(&["keys", "list"], &config);
    assert!(ok, "{listed}");
    assert!(listed.contains("1600  (current)"), "{listed}");
    let (ok, out) = sealpost(&["keys", "verify"], &config);
    assert!(ok && out.contains("All 1600"), "{out}");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.path().join("data/master.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    // A rotation with every key current adds version 3; the gateway starts
    // on the rotated keys.
    let (ok, out) = sealpost(&["keys", "rotate"], &config);
    assert!(ok && out.contains("Added master key version 3"), "{out}");
    let gw = Served::start(&config, &logs);
    gw.stop();
}

#[test]
fn master_keys_can_come_from_the_environment_instead_of_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    let keys = "1:00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
    let mut child = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&config)
        .env("SEALPOST_MASTER_KEY", keys)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let banner = read_lines_until(&mut out, 30, |l| l.trim_start().starts_with("relaying for"));
    assert!(
        banner.contains("master keys from SEALPOST_MASTER_KEY"),
        "{banner}"
    );
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let exit = wait_for(Duration::from_secs(40), "exit", || {
        child.try_wait().unwrap()
    });
    assert!(exit.success());
    assert!(
        !dir.path().join("data/master.key").exists(),
        "no key file is created when the keys come from the environment"
    );

    let run = |args: &[&str]| {
        let out = Command::new(BIN)
            .args(args)
            .arg("--config")
            .arg(&config)
            .env("SEALPOST_MASTER_KEY", keys)
            .output()
            .unwrap();
        let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&out.stderr));
        (out.status.success(), text)
    };
    let (ok, listed) = run(&["keys", "list"]);
    assert!(
        ok && listed.contains("from SEALPOST_MASTER_KEY"),
        "{listed}"
    );
    // Rotation with keys in the environment: the operator adds the version.
    let (ok, out) = run(&["keys", "rotate"]);
    assert!(!ok && out.contains("append a new entry `2:"), "{out}");
    // Without the variable (and no key file) the key commands never make one.
    let (ok, out) = sealpost(&["keys", "list"], &config);
    assert!(!ok, "{out}");
    assert!(!dir.path().join("data/master.key").exists());
}
