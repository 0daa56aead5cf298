//! The queue's administration end to end (issue 16, item 2): a gateway
//! relaying to a next hop that refuses some recipients temporarily, then
//! `/api/v1/queue` and `sealpost queue` on the deferred recipients: the
//! depth per next hop, retry now (a prompt new attempt, although the retry
//! schedule says an hour), bounce (a real DSN reaches the sender's sink),
//! delete (gone, no report), bad input refused naming the field.

use std::{
    process::Command,
    time::{Duration, Instant},
};

use sealpost_store::{QueueId, RecipientRecord, RecipientStatus};
use serde_json::{Value, json};

use crate::{
    helpers::*,
    policy_api::{api, auth},
};

const BIN: &str = env!("CARGO_BIN_EXE_sealpost");

/// A gateway whose next hop refuses `stuck*` recipients with 450, retrying
/// only after an hour; senders' reports go to the second sink.
fn stuck_gateway() -> (TestGateway, Sink, Sink) {
    let far = Sink::start(&["--tempfail-rcpt", "^<?stuck"]);
    let senders = Sink::start(&[]);
    let gw = TestGateway::start(&format!(
        "[domains]\ninternal = [\"corp.example\"]\n\
         [relay]\nnext_hop = \"{}\"\ninternal_next_hop = \"{}\"\nretry_schedule = [\"1h\"]\n",
        far.addr(),
        senders.addr()
    ));
    (gw, far, senders)
}

/// Sends one message to `to` and waits until each recipient was tried.
fn send_and_wait(gw: &TestGateway, to: &[&str]) -> (QueueId, Vec<RecipientRecord>) {
    let mut smtp = Raw::connect(gw.smtp);
    smtp.cmd("EHLO client.example", "250");
    let rcpts: Vec<String> = to.iter().map(|r| format!("<{r}>")).collect();
    let rcpts: Vec<&str> = rcpts.iter().map(String::as_str).collect();
    let reply = smtp.transaction(
        "<alice@corp.example>",
        &rcpts,
        b"From: <alice@corp.example>\r\nSubject: quarterly numbers\r\n\r\nQ4\r\n",
    );
    assert!(reply.starts_with("250 2.0.0"), "{reply}");
    let id = queue_id(&reply);
    let tried = gw.recipients_when(&id, "a first attempt for each", |r| r.attempts >= 1);
    (id, tried)
}

fn post(gw: &TestGateway, path: &str, body: Value) -> (u16, Value) {
    api(
        gw,
        "POST",
        path,
        Some(body.to_string().as_bytes()),
        &[&auth(gw), "Content-Type: application/json"],
    )
}

fn get(gw: &TestGateway, path: &str) -> (u16, Value) {
    api(gw, "GET", path, None, &[&auth(gw)])
}

fn cli(gw: &TestGateway, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .env("SEALPOST_API_ADDR", gw.admin.to_string())
        .env("SEALPOST_API_KEY", gw.api_key.as_deref().unwrap())
        .env_remove("SEALPOST_CONFIG")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn recipient(gw: &TestGateway, id: &QueueId, idx: usize) -> RecipientRecord {
    gw.block_on(gw.store.recipients(id)).unwrap()[idx].clone()
}

#[test]
fn the_api_shows_the_depth_and_retries_bounces_and_deletes_deferred_recipients() {
    let (gw, far, senders) = stuck_gateway();
    let (id, tried) = send_and_wait(
        &gw,
        &[
            "ok@ext.example",
            "stuck1@ext.example",
            "stuck2@ext.example",
            "stuck3@partner.example",
        ],
    );
    assert_eq!(tried[0].status, RecipientStatus::Delivered);
    far.wait_for(1);

    // The depth: three deferred recipients behind the one next hop.
    let (code, summary) = get(&gw, "/queue");
    assert_eq!(code, 200, "{summary}");
    assert_eq!(summary["queued"], 3);
    assert_eq!(summary["deferred"], 3);
    let hops = summary["next_hops"].as_array().unwrap();
    assert_eq!(hops.len(), 1, "{summary}");
    assert_eq!(hops[0]["next_hop"], far.addr());
    assert_eq!(hops[0]["domains"][0]["domain"], "ext.example");
    assert_eq!(hops[0]["domains"][0]["queued"], 2);
    assert_eq!(hops[0]["domains"][1]["domain"], "partner.example");

    // The deferred recipients with their last error and next attempt.
    let (code, page) = get(
        &gw,
        "/queue/recipients?deferred=true&sort=recipient&order=desc&limit=2",
    );
    assert_eq!(code, 200, "{page}");
    assert_eq!(page["total"], 3);
    let rows = page["recipients"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["recipient"], "stuck3@partner.example");
    assert_eq!(rows[0]["id"], format!("{id}.3"));
    assert!(
        rows[0]["last_error"].as_str().unwrap().starts_with("450"),
        "{page}"
    );
    assert_eq!(rows[0]["attempts"], 1);
    assert_eq!(rows[0]["sender"], "alice@corp.example");
    let (_, page2) = get(
        &gw,
        "/queue/recipients?deferred=true&sort=recipient&order=desc&limit=2&offset=2",
    );
    assert_eq!(page2["recipients"][0]["recipient"], "stuck1@ext.example");

    // Bad input: 400 naming the field, nothing changed.
    for (path, field) in [
        ("/queue/recipients?sort=size", "sort"),
        ("/queue/recipients?order=up", "order"),
        ("/queue/recipients?limit=0", "limit"),
        ("/queue/recipients?offset=-1", "offset"),
        ("/queue/recipients?deferred=maybe", "deferred"),
        ("/queue/recipients?colour=red", "colour"),
    ] {
        let (code, e) = get(&gw, path);
        assert_eq!(
            (code, e["field"].as_str()),
            (400, Some(field)),
            "{path}: {e}"
        );
    }
    for (body, field) in [
        (json!({}), "ids"),
        (json!({"ids": []}), "ids"),
        (json!({"ids": [format!("{id}.1"), "junk"]}), "ids[1]"),
        (json!({"filter": {}}), "filter"),
        (
            json!({"filter": {"deferred": true}, "ids": [format!("{id}.1")]}),
            "filter",
        ),
        (json!({"filter": {"colour": "red"}}), "filter.colour"),
        (json!({"ids": "x"}), "ids"),
    ] {
        let (code, e) = post(&gw, "/queue/delete", body.clone());
        assert_eq!(
            (code, e["field"].as_str()),
            (400, Some(field)),
            "{body}: {e}"
        );
    }
    let (code, e) = post(&gw, "/queue/recipients/nonsense/bounce", json!({}));
    assert_eq!((code, e["field"].as_str()), (400, Some("id")), "{e}");
    let (code, e) = post(&gw, &format!("/queue/recipients/{id}.0/bounce"), json!({}));
    assert_eq!(code, 404, "delivered, not queued: {e}");
    assert_eq!(get(&gw, "/queue").1["queued"], 3, "nothing changed");

    // Retry now: a new attempt at once, though the schedule says an hour.
    let started = Instant::now();
    let (code, done) = post(&gw, &format!("/queue/recipients/{id}.1/retry"), json!({}));
    assert_eq!(code, 200, "{done}");
    assert_eq!(done["done"], json!([format!("{id}.1")]));
    wait_for(Duration::from_secs(10), "a prompt second attempt", || {
        (recipient(&gw, &id, 1).attempts == 2).then_some(())
    });
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(recipient(&gw, &id, 2).attempts, 1, "only the one retried");

    // Bounce: stuck2 fails for good, and Alice gets a real DSN.
    let (code, done) = post(&gw, &format!("/queue/recipients/{id}.2/bounce"), json!({}));
    assert_eq!(code, 200, "{done}");
    let bounced = recipient(&gw, &id, 2);
    assert_eq!(bounced.status, RecipientStatus::Failed);
    let dsn = &senders.wait_for(1)[0];
    assert_eq!(dsn.mail_from, "<>");
    assert_eq!(dsn.rcpt_tos, ["alice@corp.example"]);
    let text = dsn.text();
    assert!(text.contains("multipart/report"), "{text}");
    assert!(
        text.contains("Final-Recipient: rfc822; stuck2@ext.example"),
        "{text}"
    );
    assert!(text.contains("Action: failed"), "{text}");
    assert!(text.contains("bounced by an administrator"), "{text}");
    assert!(!text.contains("stuck1@"), "only the bounced one: {text}");

    // Delete by filter (the partner domain): gone, and no report.
    let (code, done) = post(
        &gw,
        "/queue/delete",
        json!({"filter": {"domain": "Partner.Example"}}),
    );
    assert_eq!(code, 200, "{done}");
    assert_eq!(done["done"], json!([format!("{id}.3")]));
    assert_eq!(recipient(&gw, &id, 3).status, RecipientStatus::Deleted);
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(senders.messages().len(), 1, "a delete sends no report");
    let (_, summary) = get(&gw, "/queue");
    assert_eq!(summary["queued"], 1);

    // Each action is in the audit log, by the API key, before and after.
    let (code, audit) = api(
        &gw,
        "GET",
        "/audit?object_kind=queued_recipient",
        None,
        &[&auth(&gw)],
    );
    assert_eq!(code, 200, "{audit}");
    let entries = audit["entries"]
        .as_array()
        .unwrap_or_else(|| panic!("{audit}"));
    let actions: Vec<&str> = entries
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["delete", "bounce", "retry"]);
    assert_eq!(entries[1]["before"]["status"], "queued");
    assert_eq!(entries[1]["after"]["status"], "failed");
    assert_eq!(entries[0]["actor"]["kind"], "api_key");
}

#[test]
fn sealpost_queue_lists_retries_bounces_and_deletes() {
    let (gw, _far, senders) = stuck_gateway();
    let (id, _) = send_and_wait(
        &gw,
        &[
            "stuck1@ext.example",
            "stuck2@ext.example",
            "stuck3@ext.example",
        ],
    );

    let (ok, out, err) = cli(&gw, &["queue", "summary"]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("3 recipient(s) queued, 3 deferred"), "{out}");
    assert!(out.contains("ext.example"), "{out}");

    let (ok, out, err) = cli(&gw, &["queue", "list", "--deferred", "--sort", "recipient"]);
    assert!(ok, "{out}{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "a header and three rows:\n{out}");
    assert!(lines[0].starts_with("ID "), "{out}");
    assert!(lines[1].starts_with(&format!("{id}.0")), "{out}");
    assert!(
        lines[1].contains("stuck1@ext.example") && lines[1].contains("450"),
        "{out}"
    );

    // Usage errors say what to do, exit 2, change nothing.
    let out = Command::new(BIN)
        .args(["queue", "bounce"])
        .env("SEALPOST_API_ADDR", gw.admin.to_string())
        .env("SEALPOST_API_KEY", gw.api_key.as_deref().unwrap())
        .env_remove("SEALPOST_CONFIG")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--all-deferred"),
        "{out:?}"
    );
    let (ok, _, err) = cli(&gw, &["queue", "retry", "not-an-id"]);
    assert!(!ok);
    assert!(err.contains("not a queued recipient id"), "{err}");

    // Retry every deferred recipient: all three tried again at once.
    let (ok, out, err) = cli(&gw, &["queue", "retry", "--all-deferred"]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("3 recipient(s) retried now"), "{out}");
    gw.recipients_when(&id, "a second attempt each", |r| r.attempts >= 2);

    // Bounce one by id: a DSN to Alice.
    let (ok, out, err) = cli(&gw, &["queue", "bounce", &format!("{id}.1")]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("1 recipient(s) bounced"), "{out}");
    let dsn = &senders.wait_for(1)[0];
    assert!(dsn.text().contains("stuck2@ext.example"));

    // Delete the rest by sender; a second delete finds nothing waiting.
    let (ok, out, err) = cli(&gw, &["queue", "delete", "--sender", "alice@corp"]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("2 recipient(s) deleted"), "{out}");
    let (ok, _, err) = cli(&gw, &["queue", "delete", &format!("{id}.0")]);
    assert!(!ok);
    assert!(err.contains("not waiting in the queue"), "{err}");
    let (ok, out, _) = cli(&gw, &["queue", "summary"]);
    assert!(ok && out.contains("0 recipient(s) queued"), "{out}");
    let statuses: Vec<RecipientStatus> = gw
        .block_on(gw.store.recipients(&id))
        .unwrap()
        .iter()
        .map(|r| r.status)
        .collect();
    assert_eq!(
        statuses,
        [
            RecipientStatus::Deleted,
            RecipientStatus::Failed,
            RecipientStatus::Deleted
        ]
    );
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(senders.messages().len(), 1, "one report: the bounce's");
}

/// Waits until the browser is back on the queue page after `action`.
fn after_action(browser: &crate::browser::Browser, action: &str) {
    wait_for(
        Duration::from_secs(10),
        "the queue page after the action",
        || {
            browser
                .current_url()
                .query()
                .is_some_and(|q| q.contains(&format!("action={action}")))
                .then_some(())
        },
    );
}

/// The console's queue page in headless Chromium: a super admin ticks a
/// deferred recipient and retries it, bounces another from its row, and
/// the sender's DSN arrives. Screenshots `console-queue-*` at 1280 and
/// 390 px.
#[test]
fn the_queue_page_in_a_browser() {
    use crate::browser::Browser;

    let far = Sink::start(&["--tempfail-rcpt", "^<?stuck"]);
    let hub = Sink::start(&["--tempfail-rcpt", "^<?stuck"]);
    let gw = TestGateway::start(&format!(
        "[domains]\ninternal = [\"corp.example\"]\n\
         [relay]\nnext_hop = \"{}\"\ninternal_next_hop = \"{}\"\nretry_schedule = [\"1h\"]\n",
        far.addr(),
        hub.addr()
    ));
    let (id, _) = send_and_wait(
        &gw,
        &[
            "stuck.anna@partner.example",
            "stuck.ben@partner.example",
            "stuck@supplier.example",
            "stuck.ops@corp.example",
        ],
    );
    let (name, password) = gw.first_run_admin.clone().unwrap();
    let base = format!("http://localhost:{}", gw.admin.port());
    let mut browser = Browser::start();
    browser.goto(&format!("{base}/console/sign-in"));
    browser.fill("#name", &name);
    browser.fill("#password", &password);
    browser.click("button.primary");
    browser.wait_for_text("h1", "Choose your own password");
    browser.fill("#current", &password);
    browser.fill("#password", "granite-lantern-orbit-meadow");
    browser.fill("#confirm", "granite-lantern-orbit-meadow");
    browser.click("button.primary");
    browser.wait_for_text(".notice", "Your password is changed.");

    browser.click("a[href='/console/queue']");
    let hops = browser.wait_for_text("table.hops", "partner.example");
    assert!(
        hops.contains(&far.addr()) && hops.contains(&hub.addr()),
        "{hops}"
    );
    let listing = browser.text("table.queue");
    assert!(listing.contains("450"), "the last error: {listing}");

    // Tick Anna, retry now: a second attempt at once.
    browser.click(&format!("input[name='id'][value='{id}.0']"));
    browser.click("button[name='action'][value='retry']");
    after_action(&browser, "retry");
    browser.wait_for_text(".notice", "1 recipient(s) retried now.");
    wait_for(Duration::from_secs(10), "a prompt second attempt", || {
        (recipient(&gw, &id, 0).attempts == 2).then_some(())
    });

    // Ben's row: bounce; Alice's report reaches the internal hop.
    browser.click(&format!("button[name='one'][value='bounce:{id}.1']"));
    after_action(&browser, "bounce");
    browser.wait_for_text(".notice", "1 recipient(s) bounced");
    let dsn = &hub.wait_for(1)[0];
    assert_eq!(dsn.rcpt_tos, ["alice@corp.example"]);
    assert!(dsn.text().contains("stuck.ben@partner.example"));
    assert_eq!(recipient(&gw, &id, 1).status, RecipientStatus::Failed);

    // Sorted by recipient on the server, for the screenshots.
    browser.click("th[aria-sort] a[href*='sort=recipient']");
    wait_for(Duration::from_secs(10), "the sorted listing", || {
        browser
            .current_url()
            .query()
            .is_some_and(|q| q.contains("sort=recipient"))
            .then_some(())
    });
    browser.wait_for_text(".pager", "of 3");
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/screenshots");
    // Tall enough to show the listing under the depth table.
    for (width, height) in [(1280, 1100), (390, 1700)] {
        browser.set_size(width, height);
        browser.screenshot(&dir.join(format!("console-queue-{width}.png")));
    }
}
