//! The console's sign-in in headless Chromium (issue 16, item 1): the
//! first start's administrator signs in with the one-time password the
//! gateway made, is made to choose their own, and lands on the overview.
//! Then it makes another administrator from the console. Screenshots
//! `console-sign-in-*`, `console-password-*`, `console-overview-*`,
//! `console-new-administrator-*`, `console-administrators-*`,
//! `console-audit-*`, `console-policies-*` at 1280 and 390 px.

use std::{path::PathBuf, time::Duration};

use crate::{browser::Browser, helpers::*};

fn snap(browser: &mut Browser, name: &str) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    for width in [1280, 390] {
        browser.set_width(width);
        browser.screenshot(&dir.join(format!("console-{name}-{width}.png")));
    }
    browser.set_width(1280);
}

#[test]
fn the_first_administrator_signs_in_and_replaces_the_one_time_password() {
    let gw = TestGateway::start("");
    let (name, password) = gw
        .first_run_admin
        .clone()
        .expect("the first start made an administrator");
    let base = format!("http://localhost:{}", gw.admin.port());
    let mut browser = Browser::start();

    browser.goto(&format!("{base}/console"));
    wait_for(
        std::time::Duration::from_secs(10),
        "the sign-in page",
        || {
            browser
                .current_url()
                .path()
                .eq("/console/sign-in")
                .then_some(())
        },
    );
    snap(&mut browser, "sign-in");
    browser.fill("#name", &name);
    browser.fill("#password", &password);
    browser.click("button.primary");
    wait_for(
        std::time::Duration::from_secs(10),
        "the password form",
        || (browser.current_url().path() == "/console/password").then_some(()),
    );
    assert!(browser.text("h1").contains("Choose your own password"));
    // A weak one is refused next to the field.
    browser.fill("#current", &password);
    browser.fill("#password", "password1234");
    browser.fill("#confirm", "password1234");
    browser.click("button.primary");
    let error = browser.wait_for_text("#password-error", "too easy to guess");
    assert!(!error.is_empty());
    snap(&mut browser, "password");
    browser.fill("#current", &password);
    browser.fill("#password", "granite-lantern-orbit-meadow");
    browser.fill("#confirm", "granite-lantern-orbit-meadow");
    browser.click("button.primary");
    browser.wait_for_text(".notice", "Your password is changed.");
    snap(&mut browser, "overview");

    // A super admin makes another administrator; the one-time password
    // is shown once.
    browser.click("a[href='/console/administrators']");
    wait_for(
        std::time::Duration::from_secs(10),
        "the administrators",
        || (browser.current_url().path() == "/console/administrators").then_some(()),
    );
    browser.fill("#new-name", "dana@corp.example");
    browser.click("section[aria-labelledby='new-heading'] button.primary");
    let secret = browser.wait_for_text("#secret", "-");
    assert_eq!(secret.len(), 23, "{secret}");
    snap(&mut browser, "new-administrator");
    browser.click("a.button");
    browser.wait_for_text("table", "dana@corp.example");
    snap(&mut browser, "administrators");

    // The audit log shows the new administrator, made by admin from here.
    browser.goto(&format!("{base}/console/audit"));
    let row = browser.wait_for_text("tbody tr", "dana@corp.example");
    assert!(row.contains("admin") && row.contains("create"), "{row}");
    snap(&mut browser, "audit");

    // Administration | Gateway | Policies, then Secure Messaging.
    let auth = format!("Authorization: Bearer {}", gw.api_key.as_deref().unwrap());
    let (code, made) = crate::policy_api::api(
        &gw,
        "POST",
        "/policies",
        Some(
            br#"{"narrative": "Contracts to partners", "action": "apply_definition", "definition_id": 1,
                 "from": {"kind": "internal"}, "to": {"kind": "domain", "value": "partner.example"}}"#,
        ),
        &[&auth, "Content-Type: application/json"],
    );
    assert_eq!(code, 201, "{made}");
    browser.goto(&format!("{base}/console"));
    browser.click("a[href='/console/policies']");
    browser.click("a[href='/console/policies/secure-messaging']");
    let row = browser.wait_for_text("tbody tr", "Contracts to partners");
    assert!(
        row.contains("in domain partner.example") && row.contains("active"),
        "{row}"
    );
    snap(&mut browser, "policies");

    // Signed out, the console sends the browser back to sign in.
    browser.click("button.link");
    wait_for(std::time::Duration::from_secs(10), "signed out", || {
        (browser.current_url().path() == "/console/sign-in").then_some(())
    });
}

/// Issue 16 item 1: the admin listener serves TLS itself with
/// `admin.tls_cert` / `admin.tls_key`: the API and the console answer over
/// HTTPS with HSTS and the console's `__Host-` cookies, plain HTTP gets
/// nothing, and the CLI talks to it over TLS, trusting that certificate.
#[test]
fn the_admin_listener_serves_tls_and_the_cli_follows() {
    use std::process::Command;
    let dir = tempfile::tempdir().unwrap();
    let pair = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let (cert, key) = (dir.path().join("admin.pem"), dir.path().join("admin.key"));
    std::fs::write(&cert, pair.cert.pem()).unwrap();
    std::fs::write(&key, pair.signing_key.serialize_pem()).unwrap();
    let gw = TestGateway::start(&format!(
        "[admin]\nlisten = \"127.0.0.1:0\"\ntls_cert = \"{}\"\ntls_key = \"{}\"\n",
        cert.display(),
        key.display()
    ));
    let port = gw.admin.port();
    let resolve = format!("localhost:{port}:127.0.0.1");
    let curl = |path: &str| {
        let out = Command::new(require("curl"))
            .args(["-s", "-i", "--max-time", "10", "--cacert"])
            .arg(&cert)
            .args(["--resolve", &resolve])
            .arg(format!("https://localhost:{port}{path}"))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).to_ascii_lowercase()
    };
    let health = curl("/health");
    assert!(health.starts_with("http/1.1 200"), "{health}");
    let sign_in = curl("/console/sign-in");
    assert!(sign_in.starts_with("http/1.1 200"), "{sign_in}");
    assert!(
        sign_in.contains("strict-transport-security: max-age="),
        "{sign_in}"
    );
    assert!(
        sign_in.contains("set-cookie: __host-sealpost_console_form="),
        "the __Host- pre-session cookie over TLS: {sign_in}"
    );
    let plain = Command::new(require("curl"))
        .args([
            "-s",
            "--max-time",
            "5",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
        ])
        .arg(format!("http://127.0.0.1:{port}/health"))
        .output()
        .unwrap();
    assert_ne!(
        String::from_utf8_lossy(&plain.stdout),
        "200",
        "no plain HTTP"
    );

    // The CLI reads admin.tls_cert from the same configuration.
    let out = Command::new(env!("CARGO_BIN_EXE_sealpost"))
        .args(["policy", "list", "--config"])
        .arg(gw.data_dir().join("sealpost.toml"))
        .env("SEALPOST_API_KEY", gw.api_key.as_deref().unwrap())
        .env_remove("SEALPOST_CONFIG")
        // The test's listener has port 0 in the file.
        .env("SEALPOST_API_ADDR", gw.admin.to_string())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
}

/// Saves `console-{name}-{width}.png` for each width, the viewport
/// `height` tall (the dashboard and the results are taller than 900 px).
fn snap_sized(browser: &mut Browser, name: &str, sizes: &[(u32, u32)]) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/screenshots");
    for &(width, height) in sizes {
        browser.set_size(width, height);
        browser.screenshot(&dir.join(format!("console-{name}-{width}.png")));
    }
    browser.set_size(1280, 900);
}

/// Signs the first start's administrator in and replaces the one-time
/// password; returns the console's base URL.
fn first_sign_in(gw: &TestGateway, browser: &Browser) -> String {
    let (name, password) = gw.first_run_admin.clone().expect("a first administrator");
    let base = format!("http://localhost:{}", gw.admin.port());
    browser.goto(&format!("{base}/console/sign-in"));
    browser.fill("#name", &name);
    browser.fill("#password", &password);
    browser.click("button.primary");
    wait_for(Duration::from_secs(10), "the password form", || {
        (browser.current_url().path() == "/console/password").then_some(())
    });
    browser.fill("#current", &password);
    browser.fill("#password", "granite-lantern-orbit-meadow");
    browser.fill("#confirm", "granite-lantern-orbit-meadow");
    browser.click("button.primary");
    browser.wait_for_text(".notice", "Your password is changed.");
    base
}

/// Issue 16 items 2 and 4: mail relayed and secured through a real
/// gateway, then the dashboard, the tracking search, a message's page with
/// its deciding policy, a recall and a bulk recall, all by clicking.
/// Screenshots `console-dashboard-*`, `console-tracking-*`,
/// `console-tracking-detail-1280`.
#[test]
fn the_dashboard_and_tracking_show_real_mail_and_recall_it() {
    use crate::{
        policy_api::call,
        secure::{gateway, send},
    };
    use serde_json::json;
    let internal = Sink::start(&[]);
    let external = Sink::start(&["--permfail-rcpt", "^<?gone@"]);
    let gw = gateway(&internal, &external, "");
    let (code, d) = call(&gw, "POST", "/definitions", &json!({"name": "Legal"}));
    assert_eq!(code, 201, "{d}");
    let (code, p) = call(
        &gw,
        "POST",
        "/policies",
        &json!({
            "narrative": "Contracts to partners", "action": "apply_definition",
            "definition_id": d["id"], "from": {"kind": "internal"},
            "to": {"kind": "domain", "value": "partner.example"},
        }),
    );
    assert_eq!(code, 201, "{p}");
    let policy = p["id"].as_i64().unwrap();

    let contract = send(
        &gw,
        "alice@corp.example",
        &["bob@partner.example", "carol@other.example"],
        &["--header", "Subject: Signed contract"],
    );
    let draft = send(
        &gw,
        "alice@corp.example",
        &["dave@partner.example"],
        &["--header", "Subject: Draft terms"],
    );
    for subject in ["Lunch on Friday", "Minutes of the board", "Travel plans"] {
        send(
            &gw,
            "erin@corp.example",
            &["frank@other.example"],
            &["--header", &format!("Subject: {subject}")],
        );
    }
    // Three relayed, two notifications, one relayed copy of the contract.
    external.wait_for(6);
    let bounced = send(
        &gw,
        "erin@corp.example",
        &["gone@other.example"],
        &["--header", "Subject: Old address"],
    );
    gw.recipients_when(&bounced, "the bounce", |r| {
        r.status == sealpost_store::RecipientStatus::Failed
    });

    let mut browser = Browser::start();
    let base = first_sign_in(&gw, &browser);

    // The dashboard: today's recipients, the policy, the queue.
    browser.goto(&format!("{base}/console"));
    let today = browser.text("section[aria-labelledby='today-heading']");
    assert!(
        today.contains("5\nrelayed") || today.contains("5 relayed"),
        "{today}"
    );
    assert!(
        today.contains("1\nbounced") || today.contains("1 bounced"),
        "{today}"
    );
    assert!(
        today.contains("2\nsecured") || today.contains("2 secured"),
        "{today}"
    );
    let top = browser.text("section[aria-labelledby='policies-heading']");
    assert!(
        top.contains("Contracts to partners") && top.contains('2'),
        "{top}"
    );
    assert!(browser.exists("svg.chart title"));
    snap_sized(&mut browser, "dashboard", &[(1280, 1250), (390, 1800)]);

    // Tracking: search by sender, then open the contract.
    browser.click("nav.sections a[href='/console/tracking']");
    browser.fill("#f-from", "alice");
    browser.click("form.filters button[type='submit']");
    wait_for(Duration::from_secs(10), "the search", || {
        browser
            .current_url()
            .query()
            .is_some_and(|q| q.contains("from=alice"))
            .then_some(())
    });
    let results = browser.wait_for_text("table.results", "Signed contract");
    assert!(
        results.contains("Draft terms") && !results.contains("Lunch"),
        "{results}"
    );
    snap_sized(&mut browser, "tracking", &[(1280, 900), (390, 1400)]);
    browser.click(&format!("a[href='/console/tracking/{contract}']"));
    let recipients = browser.wait_for_text(
        "section[aria-labelledby='recipients-heading']",
        "bob@partner.example",
    );
    assert!(recipients.contains("Contracts to partners"), "{recipients}");
    assert!(recipients.contains("carol@other.example"), "{recipients}");
    assert!(browser.exists(&format!("a[href='/console/policies/{policy}']")));
    snap_sized(
        &mut browser,
        "tracking-detail",
        &[(1280, 1400), (390, 2200)],
    );

    // Recall, confirmed.
    browser.find("#recall-confirm").click();
    browser.click("section[aria-labelledby='recall-heading'] button.danger");
    browser.wait_for_text(".notice", "Recalled");
    let recipients = browser.text("section[aria-labelledby='recipients-heading']");
    assert!(recipients.contains("recalled"), "{recipients}");
    let tracked = gw.block_on(gw.secure.tracked(&contract)).unwrap();
    assert!(!tracked.message.has_content, "the content is destroyed");

    // Bulk recall of the draft from the results.
    browser.goto(&format!("{base}/console/tracking?from=alice"));
    browser.find(&format!("#pick-{draft}")).click();
    browser.find("#bulk-confirm").click();
    browser.click("#bulk button.danger");
    browser.wait_for_text(".notice", "1 message recalled.");
    let tracked = gw.block_on(gw.secure.tracked(&draft)).unwrap();
    assert_eq!(
        tracked.recipients[0].status,
        sealpost_store::RecipientStatus::Recalled
    );
}

/// Issue 16 item 1: two-step sign-in in a real browser: turned on from
/// the account page with a code computed from the key it shows, the
/// recovery codes shown once, then asked for at the next sign-in.
/// Screenshots `console-totp-*` and `console-recovery-codes-*`.
#[test]
fn an_administrator_turns_on_two_step_sign_in_and_needs_a_code_after_the_password() {
    use sealpost_store::console::TotpSecret;
    use sealpost_web::auth::totp::code_at;
    use std::time::{Duration, SystemTime};

    let gw = TestGateway::start("");
    let (name, one_time) = gw.first_run_admin.clone().unwrap();
    let own = "granite-lantern-orbit-meadow";
    let base = format!("http://localhost:{}", gw.admin.port());
    let mut browser = Browser::start();
    browser.goto(&format!("{base}/console/sign-in"));
    browser.fill("#name", &name);
    browser.fill("#password", &one_time);
    browser.click("button.primary");
    wait_for(Duration::from_secs(10), "the password form", || {
        (browser.current_url().path() == "/console/password").then_some(())
    });
    browser.fill("#current", &one_time);
    browser.fill("#password", own);
    browser.fill("#confirm", own);
    browser.click("button.primary");
    browser.wait_for_text(".notice", "Your password is changed.");

    browser.click("a[href='/console/account']");
    browser.wait_for_text("#totp-heading", "Two-step sign-in");
    browser.click("form[action='/console/account/totp/start'] button");
    let typed = browser.wait_for_text("#secret", " ");
    assert!(browser.exists(".qr svg"), "a QR code");
    snap(&mut browser, "totp");
    let bytes = totp_rs::Secret::try_from_base32(typed.replace(' ', "")).unwrap();
    let key = TotpSecret::new(bytes.as_bytes().to_vec());
    browser.fill("#code", &code_at(&key, SystemTime::now()));
    browser.click("button.primary");
    let codes = browser.wait_for_text("#recovery-codes", "-");
    assert_eq!(
        codes.lines().filter(|l| !l.trim().is_empty()).count(),
        10,
        "{codes}"
    );
    snap(&mut browser, "recovery-codes");

    browser.click("a.button");
    browser.click("button.link");
    wait_for(Duration::from_secs(10), "signed out", || {
        (browser.current_url().path() == "/console/sign-in").then_some(())
    });
    browser.fill("#name", &name);
    browser.fill("#password", own);
    browser.click("button.primary");
    wait_for(Duration::from_secs(10), "the code form", || {
        (browser.current_url().path() == "/console/sign-in/code").then_some(())
    });
    // The next step's code: the enrolment's own step was spent.
    browser.fill(
        "#code",
        &code_at(&key, SystemTime::now() + Duration::from_secs(30)),
    );
    browser.click("button.primary");
    browser.wait_for_text("h1", "Dashboard");
}
