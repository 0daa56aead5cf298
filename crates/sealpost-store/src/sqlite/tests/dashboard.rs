//! The dashboard's figures ([`SecureStore::dashboard`]) against seeded
//! mail: each count equals what was seeded, and mail outside the 14 days
//! or made by sealpost itself does not count.

use std::time::Duration;

use sealpost_policy::{Decision, PolicyId, Route};

use super::{
    message, open, outcome,
    portal::{DAY, TTL, hash, key, new_session, secure_to, t0},
};
use crate::{
    MessageKind, OutcomeKind, PortalStore, SecureStore, Store,
    dashboard::{DASHBOARD_DAYS, PolicyHits, day_start},
    portal::RegistrationProof,
};

fn relay_by(policy: Option<i64>) -> Decision {
    Decision {
        route: Route::Relay,
        policy: policy.map(PolicyId),
    }
}

#[tokio::test]
async fn the_dashboard_counts_what_was_seeded() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let now = t0() + Duration::from_secs(12 * 3600);
    let today = day_start(now);

    // A, today: secure by policy 7, and relayed by policy 9 (an exclusion).
    let (mut a, a_token) = secure_to("p1@partner.example", "alice@corp.example", "A", today, 30);
    a.recipients[0].decision.policy = Some(PolicyId(7));
    let mut extra = message(Vec::new(), &["x@other.example"]).recipients;
    extra[0].decision = relay_by(Some(9));
    a.recipients.extend(extra);
    let a = store.accept(a).await.unwrap();
    // B, today: two relayed, no policy; one of them deferred.
    let mut b = message(
        b"Subject: B\r\n\r\nb\r\n".to_vec(),
        &["y@other.example", "z@other.example"],
    );
    b.received_at = today + Duration::from_secs(3600);
    let b = store.accept(b).await.unwrap();
    // C, three days ago: secure by policy 7, and a relayed one that bounced.
    let (mut c, _) = secure_to(
        "p2@partner.example",
        "alice@corp.example",
        "C",
        today - DAY * 3,
        30,
    );
    c.recipients[0].decision.policy = Some(PolicyId(7));
    c.recipients
        .extend(message(Vec::new(), &["gone@other.example"]).recipients);
    let c = store.accept(c).await.unwrap();
    // D, twenty days ago: outside the window, still live in the vault.
    let (mut d, _) = secure_to(
        "p3@partner.example",
        "alice@corp.example",
        "D",
        today - DAY * 20,
        30,
    );
    d.recipients[0].decision.policy = Some(PolicyId(7));
    store.accept(d).await.unwrap();
    // A notification made by sealpost today: never counted as mail.
    let mut n = message(Vec::new(), &["p1@partner.example"]);
    n.kind = MessageKind::Notification;
    n.received_at = today;
    store.accept(n).await.unwrap();

    let retry_at = now + Duration::from_secs(600);
    store
        .record(
            vec![
                outcome(&b, 0, OutcomeKind::Deferred { retry_at }, false),
                outcome(&c, 1, OutcomeKind::Failed, false),
            ],
            Vec::new(),
        )
        .await
        .unwrap();
    assert!(store.mark_opened(&a, 0, now, None).await.unwrap());

    // Two portal sign-ins today, one yesterday.
    let p1 = key("p1@partner.example");
    store
        .register(
            RegistrationProof::PortalToken(a_token.hash()),
            hash("a"),
            TTL,
            now,
        )
        .await
        .unwrap();
    store
        .create_session(new_session(1, &p1, now - DAY))
        .await
        .unwrap();
    store
        .create_session(new_session(2, &p1, now))
        .await
        .unwrap();
    store
        .create_session(new_session(3, &p1, now))
        .await
        .unwrap();

    let dash = store.dashboard(now).await.unwrap();
    assert_eq!(dash.days.len(), DASHBOARD_DAYS as usize);
    assert_eq!(dash.days[0].day, today - DAY * (DASHBOARD_DAYS - 1));
    let t = dash.today().unwrap();
    assert_eq!(t.day, today);
    assert_eq!((t.relayed, t.secured, t.bounced, t.sign_ins), (3, 1, 0, 2));
    let three_ago = &dash.days[DASHBOARD_DAYS as usize - 4];
    assert_eq!(three_ago.day, today - DAY * 3);
    assert_eq!(
        (three_ago.relayed, three_ago.secured, three_ago.bounced),
        (1, 1, 1)
    );
    assert_eq!(dash.days[DASHBOARD_DAYS as usize - 2].sign_ins, 1);
    let total: u64 = dash.days.iter().map(|d| d.relayed + d.secured).sum();
    assert_eq!(
        total, 6,
        "A, B and C's recipients; not D's, not the notification's"
    );
    // A1, B0 and B1 wait for the relay, B0 after a failed attempt (the
    // notification's recipient waits too).
    assert_eq!((dash.queued, dash.deferred), (4, 1));
    assert_eq!(
        dash.top_policies,
        [
            PolicyHits {
                policy: PolicyId(7),
                hits: 2
            },
            PolicyHits {
                policy: PolicyId(9),
                hits: 1
            },
        ]
    );
    // A, C and D are live in the vault; A was opened.
    assert_eq!((dash.secure_live, dash.secure_unread), (3, 2));

    // A recall ends A's secure delivery and cancels its relay copy.
    store
        .recall(vec![a.clone()], now, crate::audit::Actor::system("test"))
        .await
        .unwrap();
    let dash = store.dashboard(now).await.unwrap();
    assert_eq!((dash.secure_live, dash.secure_unread), (2, 2));
    assert_eq!(dash.queued, 3);
    assert_eq!(dash.today().unwrap().secured, 1, "routes stay as decided");
}

#[tokio::test]
async fn an_empty_store_has_fourteen_empty_days() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let dash = store.dashboard(t0()).await.unwrap();
    assert_eq!(dash.days.len(), 14);
    assert!(
        dash.days
            .iter()
            .all(|d| d.relayed + d.secured + d.bounced + d.sign_ins == 0)
    );
    assert!(dash.top_policies.is_empty());
    assert_eq!(
        (
            dash.queued,
            dash.deferred,
            dash.secure_live,
            dash.secure_unread
        ),
        (0, 0, 0, 0)
    );
}

/// Schemas v13 and v14 count the mail already stored: a version 12 database's
/// recipients appear on the dashboard of the day they were received.
#[tokio::test]
async fn a_version_12_database_gets_its_days_counted() {
    let dir = tempfile::tempdir().unwrap();
    let now = t0();
    let today = crate::model::to_millis(day_start(now));
    {
        let conn = rusqlite::Connection::open(dir.path().join("db.sqlite")).unwrap();
        for sql in &super::super::MIGRATIONS[..12] {
            conn.execute_batch(sql).unwrap();
        }
        conn.pragma_update(None, "user_version", 12).unwrap();
        conn.execute_batch(&format!(
            "INSERT INTO messages (id, received_at, sender, client_ip, protocol, size, body_8bit,
                 smtputf8, kind, expires_at)
               VALUES ('00000000000000AA', {today}, 'a@corp.example', '127.0.0.1', 'ESMTP', 2, 0,
                       0, 'mail', 9999999999999),
                      ('00000000000000AB', {today}, '', '127.0.0.1', 'ESMTP', 2, 0, 0,
                       'notification', 9999999999999),
                      ('00000000000000AC', {yesterday}, 'a@corp.example', '127.0.0.1', 'ESMTP', 2,
                       0, 0, 'mail', 9999999999999);
             INSERT INTO recipients (message_id, idx, address, notify, route, policy_id, status,
                 next_attempt_at, updated_at)
               VALUES ('00000000000000AA', 0, 'p@partner.example', 0, 'secure:1', 3, 'expired', 0, 0),
                      ('00000000000000AA', 1, 'x@other.example', 0, 'relay', NULL, 'delivered', 0, 0),
                      ('00000000000000AB', 0, 'p@partner.example', 0, 'relay', NULL, 'delivered', 0, 0),
                      ('00000000000000AC', 0, 'y@other.example', 0, 'relay', NULL, 'failed', 0, 0);",
            yesterday = today - 86_400_000,
        ))
        .unwrap();
    }
    let store = open(&dir).await;
    let dash = store.dashboard(now).await.unwrap();
    let t = dash.today().unwrap();
    assert_eq!((t.relayed, t.secured, t.bounced), (1, 1, 0));
    let y = &dash.days[dash.days.len() - 2];
    assert_eq!((y.relayed, y.secured, y.bounced), (1, 0, 1));
    assert_eq!(
        dash.top_policies,
        [PolicyHits {
            policy: PolicyId(3),
            hits: 1
        }]
    );
}
