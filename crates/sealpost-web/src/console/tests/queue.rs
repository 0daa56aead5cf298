//! The queue page driven like a browser: the depth per next hop, the
//! listing with its filters and order, retry now, bounce and delete from
//! the ticked rows and a row's buttons, a recipient in delivery left
//! alone, bad input refused, and roles (a read-only administrator sees no
//! buttons and is refused the action).

use std::time::{Duration, SystemTime};

use axum::http::StatusCode;
use sealpost_policy::{Decision, EmailAddress, Route};
use sealpost_store::{
    AdminStore, ClientInfo, MessageKind, NewMessage, NewRecipient, Notify, OutcomeKind, QueueId,
    RecipientOutcome, RecipientStatus, Role, Store,
    audit::{ActorKind, AuditQuery},
};

use super::{OWN, World, agent, sign_in, world};

fn mail(to: &[&str]) -> NewMessage {
    let now = SystemTime::now();
    NewMessage::plain(
        QueueId::generate(),
        now,
        Some(EmailAddress::parse("alice@corp.example").unwrap()),
        ClientInfo {
            ip: "192.0.2.1".parse().unwrap(),
            name: None,
            helo: None,
            protocol: "ESMTP".into(),
        },
        b"Subject: numbers\r\n\r\nQ4\r\n".to_vec(),
        now + Duration::from_secs(86400),
        MessageKind::Mail,
        to.iter()
            .map(|r| NewRecipient {
                address: EmailAddress::parse(r).unwrap(),
                orcpt: None,
                notify: Notify::default(),
                decision: Decision {
                    route: Route::Relay,
                    policy: None,
                },
            })
            .collect(),
    )
}

/// A message to `to`, each recipient deferred once by a worker.
async fn deferred(w: &World, to: &[&str]) -> QueueId {
    let id = w.store.accept(mail(to)).await.unwrap();
    let now = SystemTime::now() + Duration::from_secs(1);
    let leased = w
        .store
        .lease_due("w", now, now + Duration::from_secs(60), 100)
        .await
        .unwrap();
    let outcomes = leased
        .iter()
        .flat_map(|m| {
            m.recipients.iter().map(|r| RecipientOutcome {
                message: m.id.clone(),
                idx: r.idx,
                attempted_at: now,
                result: OutcomeKind::Deferred {
                    retry_at: now + Duration::from_secs(3600),
                },
                reply: "451 4.7.1 <b>greylisted</b>, try later".into(),
                notification: false,
                direct: false,
                delay_warned: false,
            })
        })
        .collect();
    w.store.record(outcomes, vec![]).await.unwrap();
    id
}

#[tokio::test]
async fn a_tracking_admin_retries_bounces_and_deletes_from_the_queue_page() {
    let w = world().await;
    w.admin("tina", Role::TrackingAdmin, OWN, false).await;
    let id = deferred(
        &w,
        &["a@partner.example", "b@partner.example", "c@other.example"],
    )
    .await;
    let mut tina = agent(&w);
    assert_eq!(
        sign_in(&mut tina, "tina", OWN).await.status,
        StatusCode::SEE_OTHER
    );

    let home = tina.get("/console").await;
    assert!(
        home.body.contains("href=\"/console/queue\""),
        "linked from the overview"
    );
    let page = tina.get("/console/queue").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(
        page.body.contains("3 recipient(s) waiting, 3 deferred"),
        "{}",
        page.body
    );
    assert!(page.body.contains("MX of partner.example"));
    assert!(
        page.body
            .contains("href=\"&#x2f;console&#x2f;queue?domain=partner.example\"")
    );
    assert!(
        page.body
            .contains("451 4.7.1 &lt;b&gt;greylisted&lt;&#x2f;b&gt;, try later"),
        "the last error, escaped"
    );
    assert!(
        page.body.contains(&format!("value=\"{id}.0\"")),
        "a checkbox"
    );
    assert!(
        page.body.contains(&format!("value=\"retry:{id}.2\"")),
        "a row's button"
    );
    let csrf = page.csrf();

    // Filtered, sorted, paged on the server.
    let only = tina
        .get("/console/queue?domain=partner.example&sort=recipient&order=desc")
        .await;
    assert_eq!(only.status, StatusCode::OK);
    let (a, b) = (
        only.body.find("a@partner.example").unwrap(),
        only.body.find("b@partner.example").unwrap(),
    );
    assert!(b < a, "descending");
    assert!(!only.body.contains("c@other.example"));
    assert!(only.body.contains("1–2 of 2"));
    assert!(only.body.contains("aria-sort=\"descending\""));

    // Retry the ticked ones: both partner recipients, back to the listing.
    let keep = "domain=partner.example";
    let done = tina
        .post(
            "/console/queue/action",
            &[
                ("csrf", csrf.as_str()),
                ("keep", keep),
                ("id", &format!("{id}.0")),
                ("id", &format!("{id}.1")),
                ("action", "retry"),
            ],
        )
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    let back = done.location().to_owned();
    assert!(
        back.starts_with("/console/queue?domain=partner.example&action=retry&done=2"),
        "{back}"
    );
    let shown = tina.get(&back).await;
    assert!(
        shown.body.contains("2 recipient(s) retried now."),
        "{}",
        shown.body
    );
    let now = SystemTime::now() + Duration::from_secs(1);
    let due = w
        .store
        .lease_due("w2", now, now + Duration::from_secs(60), 100)
        .await
        .unwrap();
    assert_eq!(due.recipients(), 2, "due at once");

    // Both are in delivery now: no checkbox, no buttons, and a crafted
    // post leaves them alone and says so.
    let busy = tina.get("/console/queue").await;
    assert!(busy.body.contains("in delivery now"));
    assert!(!busy.body.contains(&format!("value=\"{id}.0\"")));
    let left = tina
        .post(
            "/console/queue/action",
            &[("csrf", csrf.as_str()), ("one", &format!("delete:{id}.0"))],
        )
        .await;
    let shown = tina.get(left.location()).await;
    assert!(
        shown
            .body
            .contains("0 recipient(s) deleted (no report sent). 1 left alone"),
        "{}",
        shown.body
    );
    assert_eq!(
        w.store.recipients(&id).await.unwrap()[0].status,
        RecipientStatus::Queued
    );

    // A row's bounce: c fails for good and Alice gets a report.
    let bounced = tina
        .post(
            "/console/queue/action",
            &[("csrf", csrf.as_str()), ("one", &format!("bounce:{id}.2"))],
        )
        .await;
    assert_eq!(bounced.status, StatusCode::SEE_OTHER);
    let recipients = w.store.recipients(&id).await.unwrap();
    assert_eq!(recipients[2].status, RecipientStatus::Failed);
    let page = tina.get("/console/queue?recipient=alice%40corp").await;
    assert!(
        page.body.contains("alice@corp.example"),
        "the DSN to Alice waits: {}",
        page.body
    );

    // Bad input: nothing done, said plainly.
    for fields in [
        vec![("one", format!("explode:{id}.2"))],
        vec![("action", "retry".into())],
        vec![("action", "retry".into()), ("id", "junk".into())],
    ] {
        let mut f: Vec<(&str, &str)> = vec![("csrf", csrf.as_str())];
        f.extend(fields.iter().map(|(k, v)| (*k, v.as_str())));
        let page = tina.post("/console/queue/action", &f).await;
        assert_eq!(page.status, StatusCode::BAD_REQUEST, "{f:?}");
        assert!(page.body.contains("Nothing was done"));
    }
    let bad = tina.get("/console/queue?sort=size").await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        bad.body
            .contains("sort: &quot;size&quot;: sort by next_attempt"),
        "{}",
        bad.body
    );
    // Without the form's token: refused.
    let forged = tina
        .post(
            "/console/queue/action",
            &[("one", &format!("delete:{id}.2"))],
        )
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);

    // Every action is in the audit log, by Tina.
    let audit = w
        .store
        .audit(AuditQuery {
            object_kind: Some("queued_recipient".into()),
            limit: 50,
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    let actions: Vec<_> = audit.iter().map(|e| e.change.action.as_str()).collect();
    assert_eq!(actions, ["bounce", "retry", "retry"]);
    assert!(
        audit
            .iter()
            .all(|e| e.actor.kind == ActorKind::Administrator && e.actor.name == "tina")
    );
}

#[tokio::test]
async fn a_read_only_administrator_sees_the_queue_without_buttons_and_may_not_act() {
    let w = world().await;
    w.admin("rob", Role::ReadOnly, OWN, false).await;
    w.admin("pam", Role::PolicyAdmin, OWN, false).await;
    let id = deferred(&w, &["a@partner.example"]).await;
    for name in ["rob", "pam"] {
        let mut who = agent(&w);
        assert_eq!(
            sign_in(&mut who, name, OWN).await.status,
            StatusCode::SEE_OTHER
        );
        let page = who.get("/console/queue").await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(page.body.contains("a@partner.example"));
        assert!(!page.body.contains("name=\"one\""), "no row buttons");
        assert!(
            !page.body.contains("type=\"checkbox\" name=\"id\""),
            "no checkboxes"
        );
        let csrf = page.csrf();
        let refused = who
            .post(
                "/console/queue/action",
                &[("csrf", csrf.as_str()), ("one", &format!("delete:{id}.0"))],
            )
            .await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{name}");
    }
    assert_eq!(
        w.store.recipients(&id).await.unwrap()[0].status,
        RecipientStatus::Queued
    );
}
