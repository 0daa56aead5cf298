//! Two-step sign-in in the console, driven like a browser: turning it on
//! (on only after a right code, recovery codes shown once), the second
//! step (no session before the code; wrong, replayed and spent codes
//! refused; the lockout), turning it off, and a super admin's reset.
//! Codes are computed with totp-rs from the key the page shows.

use std::time::{Duration, SystemTime};

use axum::http::StatusCode;
use sealpost_store::{
    AdminStore, ConsoleStore, Role,
    audit::{Actor, AuditQuery},
    console::{AdminName, TotpSecret},
};

use super::{OWN, World, agent, sign_in, world};
use crate::{
    auth::totp::{code_at, recovery_codes, recovery_hash},
    portal::tests::journeys::{Agent, Page},
};

fn ann() -> AdminName {
    AdminName::parse("ann").unwrap()
}

/// The key an enrolment page shows, as the app would take it.
fn key_of(page: &Page) -> TotpSecret {
    let at = page
        .body
        .find("<code id=\"secret\">")
        .unwrap_or_else(|| panic!("a key: {} {}", page.status, page.body));
    let rest = &page.body[at + 18..];
    let typed = rest[..rest.find('<').unwrap()].replace(' ', "");
    let bytes = totp_rs::Secret::try_from_base32(&typed).unwrap();
    TotpSecret::new(bytes.as_bytes().to_vec())
}

/// The recovery codes a page shows.
fn codes_of(page: &Page) -> Vec<String> {
    page.body
        .split("<li><code>")
        .skip(1)
        .map(|s| s[..s.find('<').unwrap()].to_owned())
        .collect()
}

async fn post_code(agent: &mut Agent, code: &str) -> Page {
    agent
        .submit(
            "/console/sign-in/code",
            "/console/sign-in/code",
            &[("code", code)],
        )
        .await
}

async fn sign_out(agent: &mut Agent) {
    let csrf = agent.get("/console").await.csrf();
    let out = agent.post("/console/sign-out", &[("csrf", &csrf)]).await;
    assert_eq!(out.location(), "/console/sign-in");
}

/// Ann, with TOTP on through the store: her key and recovery codes.
async fn enrolled(w: &World) -> (TotpSecret, Vec<String>) {
    w.admin("ann", Role::SuperAdmin, OWN, false).await;
    let secret = crate::auth::totp::new_secret();
    w.store
        .start_admin_totp(&ann(), secret.clone(), SystemTime::now())
        .await
        .unwrap();
    let codes = recovery_codes();
    let hashes = codes.iter().map(|c| recovery_hash(c).unwrap()).collect();
    // Enrolled "a minute ago", so the codes of now are not replays.
    let step = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        / 30
        - 2;
    assert!(
        w.store
            .enable_admin_totp(
                &ann(),
                step,
                hashes,
                SystemTime::now(),
                Actor::system("test")
            )
            .await
            .unwrap()
    );
    (secret, codes)
}

#[tokio::test]
async fn totp_is_on_only_after_a_right_code_and_then_sign_in_needs_one() {
    let w = world().await;
    w.admin("ann", Role::SuperAdmin, OWN, false).await;
    let mut a = agent(&w);
    assert_eq!(sign_in(&mut a, "ann", OWN).await.location(), "/console");
    let account = a.get("/console/account").await;
    assert_eq!(account.status, StatusCode::OK);
    assert!(
        account.body.contains("Turn two-step sign-in on"),
        "{}",
        account.body
    );

    let started = a
        .submit("/console/account", "/console/account/totp/start", &[])
        .await;
    assert_eq!(started.location(), "/console/account/totp");
    let enrol = a.get("/console/account/totp").await;
    assert_eq!(enrol.status, StatusCode::OK);
    let key = key_of(&enrol);
    assert!(
        enrol.body.contains("<div class=\"qr\"><svg xmlns="),
        "a QR code, inline"
    );
    assert!(
        enrol
            .body
            .replace("&#x2f;", "/")
            .contains("otpauth://totp/sealpost%20localhost:ann?"),
        "{}",
        enrol.body
    );

    // Not on until confirmed: sign-in still takes the password alone.
    sign_out(&mut a).await;
    assert_eq!(sign_in(&mut a, "ann", OWN).await.location(), "/console");

    let wrong = a
        .submit(
            "/console/account/totp",
            "/console/account/totp",
            &[("code", "000000")],
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(wrong.body.contains("not right"));
    let now = SystemTime::now();
    let first = code_at(&key, now);
    let on = a
        .submit(
            "/console/account/totp",
            "/console/account/totp",
            &[("code", &first)],
        )
        .await;
    assert_eq!(on.status, StatusCode::OK, "{}", on.body);
    let codes = codes_of(&on);
    assert_eq!(codes.len(), 10, "{}", on.body);
    assert!(
        a.get("/console/account")
            .await
            .body
            .contains("<strong id=\"recovery-left\">10</strong>")
    );
    assert_eq!(
        a.get("/console/account/totp").await.location(),
        "/console/account",
        "the key is not shown again"
    );

    // Audited, without the secret.
    let entries = w
        .store
        .audit(AuditQuery {
            object_id: Some("ann".into()),
            limit: 5,
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(entries[0].change.action, "enable_totp");
    assert_eq!(entries[0].actor.name, "ann");
    let text = serde_json::to_string(&entries).unwrap();
    let b32 = totp_rs::Secret::from(key.expose().to_vec()).to_base32();
    assert!(!text.contains(&b32) && !text.contains(&codes[0]), "{text}");

    // Sign-in now stops at the code: a pending sign-in, no session.
    sign_out(&mut a).await;
    let pending = sign_in(&mut a, "ann", OWN).await;
    assert_eq!(pending.location(), "/console/sign-in/code");
    assert_eq!(a.get("/console").await.location(), "/console/sign-in");
    let form = a.get("/console/sign-in/code").await;
    assert!(form.body.contains("Enter your sign-in code"));

    let wrong = post_code(&mut a, "123456").await;
    assert_eq!(wrong.status, StatusCode::OK);
    assert!(wrong.body.contains("not right"));
    let replay = post_code(&mut a, &first).await;
    assert!(
        replay.body.contains("not right"),
        "the enrolment's code, again"
    );
    let next = code_at(&key, SystemTime::now() + Duration::from_secs(30));
    let signed = post_code(&mut a, &next).await;
    assert_eq!(signed.status, StatusCode::SEE_OTHER, "{}", signed.body);
    assert_eq!(signed.location(), "/console");
    assert_eq!(a.get("/console").await.status, StatusCode::OK);

    // The same code in another sign-in is a replay.
    sign_out(&mut a).await;
    assert_eq!(
        sign_in(&mut a, "ann", OWN).await.location(),
        "/console/sign-in/code"
    );
    assert!(post_code(&mut a, &next).await.body.contains("not right"));
}

#[tokio::test]
async fn recovery_codes_work_once_and_turning_off_takes_the_password() {
    let w = world().await;
    let (_, codes) = enrolled(&w).await;
    let mut a = agent(&w);
    assert_eq!(
        sign_in(&mut a, "ann", OWN).await.location(),
        "/console/sign-in/code"
    );
    let used = post_code(&mut a, &codes[3].to_uppercase()).await;
    assert_eq!(used.location(), "/console/account?done=recovery");
    let account = a.get("/console/account?done=recovery").await;
    assert!(account.body.contains("recovery code"), "{}", account.body);
    assert!(
        account
            .body
            .contains("<strong id=\"recovery-left\">9</strong>")
    );

    let csrf = account.csrf();
    let refused = a
        .post(
            "/console/account/totp/off",
            &[("csrf", &csrf), ("password", "not-my-password")],
        )
        .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(w.store.administrator(&ann()).await.unwrap().unwrap().totp);

    sign_out(&mut a).await;
    sign_in(&mut a, "ann", OWN).await;
    assert!(
        post_code(&mut a, &codes[3])
            .await
            .body
            .contains("not right"),
        "spent"
    );
    assert_eq!(
        post_code(&mut a, &codes[4]).await.status,
        StatusCode::SEE_OTHER
    );

    let csrf = a.get("/console/account").await.csrf();
    let off = a
        .post(
            "/console/account/totp/off",
            &[("csrf", &csrf), ("password", OWN)],
        )
        .await;
    assert_eq!(off.location(), "/console/account?done=totp-off");
    assert!(!w.store.administrator(&ann()).await.unwrap().unwrap().totp);
    let entries = w
        .store
        .audit(AuditQuery {
            object_id: Some("ann".into()),
            limit: 1,
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(entries[0].change.action, "disable_totp");
    sign_out(&mut a).await;
    assert_eq!(sign_in(&mut a, "ann", OWN).await.location(), "/console");
}

#[tokio::test]
async fn wrong_codes_count_toward_the_lockout_and_end_the_pending_sign_in() {
    let w = world().await;
    let (key, _) = enrolled(&w).await;
    let mut a = agent(&w);
    // No pending sign-in: the code form is not shown.
    assert_eq!(
        a.get("/console/sign-in/code").await.location(),
        "/console/sign-in"
    );
    // Another browser with the password, waiting at its second step.
    let mut b = agent(&w);
    assert_eq!(
        sign_in(&mut b, "ann", OWN).await.location(),
        "/console/sign-in/code"
    );
    sign_in(&mut a, "ann", OWN).await;
    for n in 1..=5 {
        let page = post_code(&mut a, "999999").await;
        if n < 5 {
            assert!(page.body.contains("not right"), "{n}");
        } else {
            assert_eq!(page.location(), "/console/sign-in", "five wrong codes");
        }
    }
    let stored = w.store.administrator(&ann()).await.unwrap().unwrap();
    assert_eq!(stored.failed_sign_ins, 5);
    // Locked: even the right code in the other browser is refused, and
    // not counted.
    let right = code_at(&key, SystemTime::now());
    assert!(post_code(&mut b, &right).await.body.contains("not right"));
    let stored = w.store.administrator(&ann()).await.unwrap().unwrap();
    assert_eq!(stored.failed_sign_ins, 5);
    // Locked now: the right password fails, and so would a right code.
    let locked = sign_in(&mut a, "ann", OWN).await;
    assert_eq!(locked.status, StatusCode::OK);
    assert!(locked.body.contains("too many attempts"));
}

#[tokio::test]
async fn a_super_admin_resets_another_administrators_two_step_sign_in() {
    let w = world().await;
    enrolled(&w).await;
    w.admin("root", Role::SuperAdmin, OWN, false).await;
    let mut root = agent(&w);
    assert_eq!(sign_in(&mut root, "root", OWN).await.location(), "/console");
    let list = root.get("/console/administrators").await;
    assert!(list.body.contains("/console/administrators/ann/totp-reset"));
    // A password reset leaves two-step sign-in on, and says so.
    let reset = root
        .post(
            "/console/administrators/ann/reset",
            &[("csrf", &list.csrf())],
        )
        .await;
    assert!(
        reset.body.contains("two-step sign-in stays on"),
        "{}",
        reset.body
    );
    let one_time = super::secret_of(&reset);
    assert!(w.store.administrator(&ann()).await.unwrap().unwrap().totp);
    let reset = root
        .post(
            "/console/administrators/ann/totp-reset",
            &[("csrf", &list.csrf())],
        )
        .await;
    assert_eq!(reset.location(), "/console/administrators");
    assert!(w.store.admin_totp(&ann()).await.unwrap().is_none());
    let entries = w
        .store
        .audit(AuditQuery {
            object_id: Some("ann".into()),
            limit: 1,
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(entries[0].change.action, "reset_totp");
    assert_eq!(entries[0].actor.name, "root");
    assert_eq!(entries[0].change.before.as_ref().unwrap()["totp"], true);
    let mut a = agent(&w);
    assert_eq!(
        sign_in(&mut a, "ann", &one_time).await.location(),
        "/console",
        "no second step now"
    );
}
