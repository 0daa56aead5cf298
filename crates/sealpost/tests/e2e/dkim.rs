//! DKIM (issue 17, item 2): `sealpost dkim keygen` and the `[[dkim.key]]`
//! configuration it feeds.

use std::{os::unix::fs::PermissionsExt, process::Command};

const BIN: &str = env!("CARGO_BIN_EXE_sealpost");

fn keygen(args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .args(["dkim", "keygen"])
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn keygen_writes_a_private_key_once_and_prints_the_record() {
    let dir = tempfile::tempdir().unwrap();
    for (algorithm, k) in [("rsa-sha256", "rsa"), ("ed25519-sha256", "ed25519")] {
        let key = dir.path().join(format!("{k}.pem"));
        let key_arg = key.to_str().unwrap();
        let out = keygen(&[
            "--domain",
            "corp.example",
            "--selector",
            "s2026",
            "--algorithm",
            algorithm,
            "--out",
            key_arg,
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let record = String::from_utf8(out.stdout).unwrap();
        assert!(
            record.starts_with(&format!(
                "s2026._domainkey.corp.example. IN TXT \"v=DKIM1; k={k}; p="
            )),
            "{record}"
        );
        let meta = std::fs::metadata(&key).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        let pem = std::fs::read(&key).unwrap();
        assert!(pem.starts_with(b"-----BEGIN "));

        // Never over an existing key: the file is left exactly as it was.
        let again = keygen(&[
            "--domain",
            "corp.example",
            "--selector",
            "s2026",
            "--algorithm",
            algorithm,
            "--out",
            key_arg,
        ]);
        assert!(!again.status.success());
        assert!(again.stdout.is_empty());
        let err = String::from_utf8_lossy(&again.stderr);
        assert!(err.contains("exists"), "{err}");
        assert_eq!(std::fs::read(&key).unwrap(), pem);

        // The key it wrote is one the configuration accepts.
        let config = dir.path().join(format!("{k}.toml"));
        std::fs::write(
            &config,
            format!(
                "[server]\ndata_dir = {:?}\n[[dkim.key]]\ndomain = \"corp.example\"\nselector = \"s2026\"\nkey_file = {key_arg:?}\nalgorithm = \"{algorithm}\"\n",
                dir.path().join("data").to_str().unwrap()
            ),
        )
        .unwrap();
        let check = Command::new(BIN)
            .args(["config", "check", "--config"])
            .arg(&config)
            .output()
            .unwrap();
        assert!(
            check.status.success(),
            "{}",
            String::from_utf8_lossy(&check.stderr)
        );
    }

    let bad = keygen(&[
        "--domain",
        "corp.example",
        "--selector",
        "s1",
        "--algorithm",
        "rsa-sha1",
    ]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--algorithm"));
}

#[test]
fn config_check_names_a_missing_key_file_and_a_bad_algorithm() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("dkim.toml");
    std::fs::write(
        &config,
        format!(
            "[[dkim.key]]\ndomain = \"corp.example\"\nselector = \"s1\"\nkey_file = {:?}\n\
             [[dkim.key]]\ndomain = \"other.example\"\nselector = \"s1\"\nkey_file = \"x.pem\"\nalgorithm = \"rsa-sha1\"\n",
            dir.path().join("nowhere.pem").to_str().unwrap()
        ),
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["config", "check", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("dkim.key[0].key_file: cannot read"), "{err}");
    assert!(err.contains("dkim.key[1].algorithm: \"rsa-sha1\""), "{err}");
}
