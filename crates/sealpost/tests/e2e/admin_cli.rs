//! Console administrators made from the command line while the gateway
//! runs (issue 16, item 1): the first start's super admin, `admin create`,
//! `admin reset-password`, `admin list` and `admin remove`, each checked
//! in the store the running gateway uses.

use std::process::Command;

use sealpost_store::{ConsoleStore, Role, console::AdminName, portal::PasswordHash};
use sealpost_web::auth::password::{Password, PasswordHash as Phc, verify};

use crate::helpers::*;

/// `sealpost ARGS --config <the gateway's>`: (exit code, stdout, stderr).
fn admin_cli(gw: &TestGateway, args: &[&str]) -> (i32, String, String) {
    let config = gw.data_dir().join("sealpost.toml");
    let out = Command::new(env!("CARGO_BIN_EXE_sealpost"))
        .args(args)
        .arg("--config")
        .arg(&config)
        .env_remove("SEALPOST_CONFIG")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn name(text: &str) -> AdminName {
    AdminName::parse(text).unwrap()
}

/// Whether `password` opens the stored hash.
fn opens(stored: &PasswordHash, password: &str) -> bool {
    let phc = Phc::parse(stored.as_str()).unwrap();
    verify(&Password::new(password), Some(&phc))
}

#[test]
fn administrators_are_made_reset_listed_and_removed_from_the_cli() {
    let gw = TestGateway::start("");
    let console: &dyn ConsoleStore = gw.console.as_ref();

    // The first start made one super admin with a one-time password.
    let first = gw.block_on(console.administrators()).unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].name.as_str(), "admin");
    assert_eq!(first[0].role, Role::SuperAdmin);
    assert!(first[0].must_change_password);

    let (code, stdout, stderr) =
        admin_cli(&gw, &["admin", "create", "Dana", "--role", "policy_admin"]);
    assert_eq!(code, 0, "{stderr}");
    let password = stdout.trim().to_owned();
    assert_eq!(password.len(), 23, "one line, the password: {stdout:?}");
    assert!(
        stderr.contains("must be changed at the first sign-in"),
        "{stderr}"
    );
    let dana = gw
        .block_on(console.administrator(&name("dana")))
        .unwrap()
        .expect("stored, in lower case");
    assert_eq!(dana.role, Role::PolicyAdmin);
    assert!(dana.must_change_password);
    assert!(opens(&dana.password, &password));

    // Taken names, bad names and unknown roles are refused with the reason.
    let (code, _, stderr) = admin_cli(&gw, &["admin", "create", "dana", "--role", "read_only"]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("already an administrator named dana"),
        "{stderr}"
    );
    let (code, _, stderr) = admin_cli(&gw, &["admin", "create", "da na", "--role", "read_only"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("is not an administrator name"), "{stderr}");
    let (code, _, stderr) = admin_cli(&gw, &["admin", "create", "eve", "--role", "emperor"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("use one of"), "{stderr}");

    // A reset gives a new one-time password; the old one stops working.
    let (code, stdout, stderr) = admin_cli(&gw, &["admin", "reset-password", "dana"]);
    assert_eq!(code, 0, "{stderr}");
    let reset = stdout.trim().to_owned();
    assert_ne!(reset, password);
    let dana = gw
        .block_on(console.administrator(&name("dana")))
        .unwrap()
        .unwrap();
    assert!(opens(&dana.password, &reset));
    assert!(!opens(&dana.password, &password));
    let (code, _, stderr) = admin_cli(&gw, &["admin", "reset-password", "nobody"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("no administrator named nobody"), "{stderr}");

    let (code, stdout, _) = admin_cli(&gw, &["admin", "list"]);
    assert_eq!(code, 0);
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines[0].starts_with("NAME"), "{stdout}");
    assert!(
        lines[1].starts_with("admin ") && lines[1].contains("super_admin"),
        "{stdout}"
    );
    assert!(
        lines[2].starts_with("dana ") && lines[2].contains("one-time"),
        "{stdout}"
    );

    // The last super admin stays; others go.
    let (code, _, stderr) = admin_cli(&gw, &["admin", "remove", "admin"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("last super admin"), "{stderr}");
    let (code, _, stderr) = admin_cli(&gw, &["admin", "remove", "dana"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        gw.block_on(console.administrator(&name("dana")))
            .unwrap()
            .is_none()
    );
}

/// A password reset leaves two-step sign-in on and says so; it is reset
/// on its own, `admin reset-totp`, and audited as the CLI's.
#[test]
fn a_password_reset_keeps_two_step_sign_in_and_reset_totp_clears_it() {
    use sealpost_store::{audit::Actor, console::TotpSecret};
    let gw = TestGateway::start("");
    let console: &dyn ConsoleStore = gw.console.as_ref();
    let (code, _, stderr) = admin_cli(&gw, &["admin", "create", "dana", "--role", "read_only"]);
    assert_eq!(code, 0, "{stderr}");
    let dana = name("dana");
    let now = std::time::SystemTime::now();
    gw.block_on(console.start_admin_totp(&dana, TotpSecret::new(vec![7; 20]), now))
        .unwrap();
    assert!(
        gw.block_on(console.enable_admin_totp(&dana, 1, vec![], now, Actor::system("test")))
            .unwrap()
    );

    let (code, _, stderr) = admin_cli(&gw, &["admin", "reset-password", "dana"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("Two-step sign-in stays on for dana"),
        "{stderr}"
    );
    assert!(
        stderr.contains("sealpost admin reset-totp dana"),
        "{stderr}"
    );
    assert!(
        gw.block_on(console.administrator(&dana))
            .unwrap()
            .unwrap()
            .totp
    );
    let (_, stdout, _) = admin_cli(&gw, &["admin", "list"]);
    let line = stdout.lines().find(|l| l.starts_with("dana ")).unwrap();
    assert!(line.ends_with("on"), "{stdout}");

    let (code, _, stderr) = admin_cli(&gw, &["admin", "reset-totp", "dana"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("Two-step sign-in is off for dana"),
        "{stderr}"
    );
    assert!(
        !gw.block_on(console.administrator(&dana))
            .unwrap()
            .unwrap()
            .totp
    );
    let (code, _, stderr) = admin_cli(&gw, &["admin", "reset-totp", "dana"]);
    assert_eq!(code, 0);
    assert!(stderr.contains("nothing changed"), "{stderr}");
    let (code, _, stderr) = admin_cli(&gw, &["admin", "reset-totp", "nobody"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("no administrator named nobody"), "{stderr}");
}
