//! Message tracking and the dashboard in the console, driven like a
//! browser over a real database: search with bad input, a message's page
//! with its deciding policy, recall, expiry and bulk recall by role, and
//! the dashboard's figures.

use std::time::{Duration, SystemTime};

use axum::http::StatusCode;
use sealpost_policy::{Decision, DefinitionId, EmailAddress, PolicyId, Route};
use sealpost_store::{
    AdminStore, ClientInfo, MessageKind, NewMessage, NewRecipient, NewSecureRecipient, Notify,
    QueueId, RecipientStatus, Role, SecureStore, SecureTrigger, Store, audit::AuditQuery,
};
use sealpost_vault::PortalToken;

use super::{OWN, World, agent, sign_in, world};
use crate::portal::tests::journeys::Agent;

/// A message from alice to a secure recipient (decided by policy 7) and a
/// relayed one, received `ago` before now.
async fn seed(w: &World, subject: &str, ago: Duration) -> QueueId {
    let received = SystemTime::now() - ago;
    let mut m = NewMessage::plain(
        QueueId::generate(),
        received,
        Some(EmailAddress::parse("alice@corp.example").unwrap()),
        ClientInfo {
            ip: [192, 0, 2, 1].into(),
            name: None,
            helo: None,
            protocol: "ESMTP".into(),
        },
        b"Subject: x\r\n\r\nbody\r\n".to_vec(),
        received + Duration::from_secs(5 * 86400),
        MessageKind::Mail,
        ["bob@partner.example", "carol@other.example"]
            .iter()
            .enumerate()
            .map(|(i, a)| NewRecipient {
                address: EmailAddress::parse(a).unwrap(),
                orcpt: None,
                notify: Notify::default(),
                decision: if i == 0 {
                    Decision {
                        route: Route::Secure {
                            definition: DefinitionId(1),
                        },
                        policy: Some(PolicyId(7)),
                    }
                } else {
                    Decision {
                        route: Route::Relay,
                        policy: None,
                    }
                },
            })
            .collect(),
    );
    m.subject = Some(subject.to_owned());
    m.secure.push(NewSecureRecipient {
        idx: 0,
        token_hash: PortalToken::generate().hash().0,
        definition: DefinitionId(1),
        trigger: SecureTrigger::Policy,
        notification: None,
        expires_at: received + Duration::from_secs(7 * 86400),
        tls_or_portal: false,
    });
    w.store.accept(m).await.unwrap()
}

async fn signed_in(w: &World, name: &str, role: Role) -> (Agent, String) {
    w.admin(name, role, OWN, false).await;
    let mut a = agent(w);
    assert_eq!(
        sign_in(&mut a, name, OWN).await.status,
        StatusCode::SEE_OTHER
    );
    let csrf = a.get("/console").await.csrf();
    (a, csrf)
}

fn status_of(w: &World, id: &QueueId) -> Vec<RecipientStatus> {
    let store = w.store.clone();
    let id = id.clone();
    tokio::task::block_in_place(|| {
        tokio::runtime::Handle::current().block_on(async move {
            store
                .recipients(&id)
                .await
                .unwrap()
                .iter()
                .map(|r| r.status)
                .collect()
        })
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_role_reads_tracking_and_only_tracking_admins_recall() {
    let w = world().await;
    let id = seed(&w, "Quarterly figures", Duration::from_secs(60)).await;
    let path = format!("/console/tracking/{id}");

    let (mut ro, ro_csrf) = signed_in(&w, "reader", Role::ReadOnly).await;
    let list = ro.get("/console/tracking?subject=quarterly").await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.body);
    assert!(list.body.contains("Quarterly figures"), "{}", list.body);
    assert!(list.body.contains(&format!("href=\"{path}\"")));
    assert!(
        !list.body.contains("Recall ticked"),
        "no bulk recall for read-only"
    );
    assert!(list.body.contains("aria-current=\"page\">Tracking<"));
    let page = ro.get(&path).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(
        page.body.contains("href=\"/console/policies/7\""),
        "{}",
        page.body
    );
    assert!(page.body.contains("bob@partner.example") && page.body.contains("secure messaging"));
    assert!(page.body.contains("no policy matched: normal delivery"));
    assert!(!page.body.contains("Recall the message") && !page.body.contains("Set the expiry"));
    let refused = ro
        .post(
            &format!("{path}/recall"),
            &[("csrf", &ro_csrf), ("confirm", "yes")],
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);

    let (mut pa, pa_csrf) = signed_in(&w, "policies", Role::PolicyAdmin).await;
    let refused = pa
        .post(
            &format!("{path}/recall"),
            &[("csrf", &pa_csrf), ("confirm", "yes")],
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let refused = pa
        .post(
            "/console/tracking/recall",
            &[("csrf", &pa_csrf), ("ids", id.as_str()), ("confirm", "yes")],
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_eq!(
        status_of(&w, &id),
        [RecipientStatus::Secure, RecipientStatus::Queued]
    );

    let (mut ta, ta_csrf) = signed_in(&w, "tracker", Role::TrackingAdmin).await;
    let page = ta.get(&path).await;
    assert!(page.body.contains("Recall the message") && page.body.contains("Set the expiry"));
    // Unconfirmed: the form again, the reason beside the box.
    let unconfirmed = ta
        .post(&format!("{path}/recall"), &[("csrf", &ta_csrf)])
        .await;
    assert_eq!(unconfirmed.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        unconfirmed.body.contains("id=\"recall-error\""),
        "{}",
        unconfirmed.body
    );
    assert_eq!(status_of(&w, &id)[0], RecipientStatus::Secure);
    // Without the token: refused, nothing recalled.
    let forged = ta
        .post(&format!("{path}/recall"), &[("confirm", "yes")])
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    let done = ta
        .post(
            &format!("{path}/recall"),
            &[("csrf", &ta_csrf), ("confirm", "yes")],
        )
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    assert_eq!(done.location(), format!("{path}?done=recalled"));
    assert_eq!(
        status_of(&w, &id),
        [RecipientStatus::Recalled, RecipientStatus::Recalled]
    );
    let after = ta.get(done.location()).await;
    assert!(after.body.contains("Recalled: its secure recipients"));
    assert!(
        !after.body.contains("Recall the message"),
        "nothing left to recall"
    );
    // Audited with the administrator as actor.
    let audit = w
        .store
        .audit(AuditQuery {
            object_id: Some(id.to_string()),
            limit: 10,
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].change.action, "recall");
    assert_eq!(audit[0].actor.name, "tracker");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_expiry_is_checked_beside_its_field() {
    let w = world().await;
    let id = seed(&w, "Contract", Duration::from_secs(60)).await;
    let path = format!("/console/tracking/{id}/extend");
    let (mut ta, csrf) = signed_in(&w, "tracker", Role::SuperAdmin).await;

    let bad = ta
        .post(&path, &[("csrf", &csrf), ("expires_at", "next tuesday")])
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bad.body.contains("id=\"expires-error\""), "{}", bad.body);
    assert!(bad.body.contains("is not a date and time"));
    assert!(
        bad.body.contains("value=\"next tuesday\""),
        "what was typed is kept"
    );
    // Past the 30-day retention of the settings.
    let far = crate::console::tracking::message::field_time(
        SystemTime::now() + Duration::from_secs(60 * 86400),
    );
    let late = ta
        .post(&path, &[("csrf", &csrf), ("expires_at", &far)])
        .await;
    assert_eq!(late.status, StatusCode::CONFLICT, "{}", late.body);
    assert!(late.body.contains("vault.retention"), "{}", late.body);
    let past = ta
        .post(
            &path,
            &[("csrf", &csrf), ("expires_at", "2020-01-01T00:00")],
        )
        .await;
    assert_eq!(past.status, StatusCode::CONFLICT);
    assert!(past.body.contains("in the past"));

    let want = SystemTime::now() + Duration::from_secs(20 * 86400);
    let text = crate::console::tracking::message::field_time(want);
    let done = ta
        .post(&path, &[("csrf", &csrf), ("expires_at", &text)])
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    let tracked = w.store.tracked(&id).await.unwrap();
    let expires = tracked.recipients[0].secure.as_ref().unwrap().expires_at;
    assert_eq!(
        sealpost_store::rfc3339(expires)[..16],
        format!("{}", &text[..16])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_search_input_comes_back_beside_its_field_and_results_page() {
    let w = world().await;
    let (mut a, csrf) = signed_in(&w, "boss", Role::SuperAdmin).await;
    for (query, field, says) in [
        ("since=2026-13-01", "f-since-error", "is not a date"),
        (
            "since=2026-12-05&until=2026-12-01",
            "f-until-error",
            "inverted",
        ),
        ("status=lost", "f-status-error", "is not a status"),
        ("size=100000", "f-size-error", "25, 50 or 100"),
    ] {
        let page = a.get(&format!("/console/tracking?{query}")).await;
        assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY, "{query}");
        assert!(
            page.body.contains(&format!("id=\"{field}\"")),
            "{query}: {}",
            page.body
        );
        assert!(page.body.contains(says), "{query}");
    }
    let odd = a.get("/console/tracking?from=%FF%zz&&=&after=nope").await;
    assert_eq!(odd.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(odd.body.contains("start again from the first page"));

    // 30 messages, 25 a page, oldest first: the next page has the rest.
    let mut ids = Vec::new();
    for i in 0..30 {
        ids.push(
            seed(
                &w,
                &format!("Batch {i:02}"),
                Duration::from_secs(3600 - i * 10),
            )
            .await,
        );
    }
    let first = a
        .get("/console/tracking?subject=batch&size=25&order=oldest")
        .await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(first.body.matches("name=\"ids\"").count(), 25);
    assert!(first.body.contains("Batch 00") && !first.body.contains("Batch 25"));
    let next = format!(
        "/console/tracking?subject=batch&order=oldest&size=25&after={}",
        ids[24]
    );
    let unescaped = first.body.replace("&#x2f;", "/").replace("&amp;", "&");
    assert!(
        unescaped.contains(&format!("href=\"{next}\"")),
        "{}",
        first.body
    );
    let second = a.get(&next).await;
    assert_eq!(second.body.matches("name=\"ids\"").count(), 5);
    assert!(second.body.contains("Batch 29"));

    // Bulk recall of two ticked messages, back to the same search.
    let none = a
        .post(
            "/console/tracking/recall",
            &[
                ("csrf", &csrf),
                ("back", "subject=batch"),
                ("confirm", "yes"),
            ],
        )
        .await;
    assert_eq!(none.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(none.body.contains("id=\"bulk-error\"") && none.body.contains("Tick the messages"));
    let done = a
        .post(
            "/console/tracking/recall",
            &[
                ("csrf", &csrf),
                ("back", "subject=batch&size=25"),
                ("ids", ids[0].as_str()),
                ("ids", ids[1].as_str()),
                ("confirm", "yes"),
            ],
        )
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    assert_eq!(
        done.location(),
        "/console/tracking?subject=batch&size=25&recalled=2"
    );
    assert_eq!(status_of(&w, &ids[0])[0], RecipientStatus::Recalled);
    assert_eq!(status_of(&w, &ids[2])[0], RecipientStatus::Secure);
    let back = a.get(done.location()).await;
    assert!(back.body.contains("2 messages recalled."));
    let recalled = a.get("/console/tracking?status=recalled").await;
    assert_eq!(recalled.body.matches("Batch 0").count(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_the_stores_figures_as_charts_and_text() {
    let w = world().await;
    seed(&w, "one", Duration::from_secs(60)).await;
    seed(&w, "two", Duration::from_secs(3 * 86400)).await;
    let (mut a, _) = signed_in(&w, "viewer", Role::ReadOnly).await;
    let page = a.get("/console").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let body = &page.body;
    assert!(body.contains("aria-current=\"page\">Dashboard<"));
    assert!(body.contains("<svg class=\"chart\""), "{body}");
    assert!(body.contains("<title id=\"traffic-title\">"));
    assert!(
        body.contains("over 14 days 2 relayed and 2 secured"),
        "{body}"
    );
    assert!(body.contains("<strong>2</strong> waiting"), "{body}");
    assert!(body.contains("<strong>2</strong> unread"));
    assert!(
        body.contains("href=\"/console/policies/7\">Policy 7</a>"),
        "{body}"
    );
    // The read-only role's bar: tracking and audit, no administrators.
    assert!(body.contains("href=\"/console/tracking\""));
    assert!(body.contains("href=\"/console/audit\""));
    assert!(!body.contains("href=\"/console/administrators\""));
    assert!(!body.contains("style="), "the CSP refuses inline styles");
}

/// The route table: every tracking change is for super and tracking
/// admins only, every tracking page for any signed-in administrator.
#[test]
fn the_route_table_gives_tracking_changes_to_message_editors_only() {
    use crate::console::{Access, routes};
    let tracking: Vec<_> = routes()
        .into_iter()
        .filter(|r| r.path.starts_with("/console/tracking"))
        .collect();
    assert_eq!(tracking.len(), 5);
    for r in tracking {
        if r.methods.contains(&"POST") {
            assert_eq!(
                r.access,
                Access::Roles(&[Role::SuperAdmin, Role::TrackingAdmin]),
                "{}",
                r.path
            );
        } else {
            assert_eq!(r.access, Access::SignedIn, "{}", r.path);
        }
    }
}

/// Issue 17 (TLS-or-portal): the message page says whether the recipient
/// got the message itself over verified TLS or the portal notification.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_message_page_says_how_a_tls_or_portal_recipient_was_reached() {
    let w = world().await;
    let mut pages = Vec::new();
    for direct in [true, false] {
        let received = SystemTime::now();
        let mut m = NewMessage::plain(
            QueueId::generate(),
            received,
            Some(EmailAddress::parse("alice@corp.example").unwrap()),
            ClientInfo {
                ip: [192, 0, 2, 1].into(),
                name: None,
                helo: None,
                protocol: "ESMTP".into(),
            },
            b"Subject: x\r\n\r\nbody\r\n".to_vec(),
            received + Duration::from_secs(86400),
            MessageKind::Mail,
            vec![NewRecipient {
                address: EmailAddress::parse("bob@partner.example").unwrap(),
                orcpt: None,
                notify: Notify::default(),
                decision: Decision {
                    route: Route::Secure {
                        definition: DefinitionId(1),
                    },
                    policy: Some(PolicyId(7)),
                },
            }],
        );
        let notification = QueueId::generate();
        m.secure.push(NewSecureRecipient {
            idx: 0,
            token_hash: PortalToken::generate().hash().0,
            definition: DefinitionId(1),
            trigger: SecureTrigger::Policy,
            notification: Some(notification.clone()),
            expires_at: received + Duration::from_secs(86400),
            tls_or_portal: true,
        });
        let id = w.store.accept(m).await.unwrap();
        w.store
            .record(
                vec![sealpost_store::RecipientOutcome {
                    message: notification,
                    idx: 0,
                    attempted_at: SystemTime::now(),
                    result: sealpost_store::OutcomeKind::Delivered,
                    reply:
                        "delivered over verified TLS to mx.partner.example[192.0.2.7:25]: 250 ok"
                            .into(),
                    notification: true,
                    direct,
                    delay_warned: false,
                }],
                vec![],
            )
            .await
            .unwrap();
        pages.push(format!("/console/tracking/{id}"));
    }
    let (mut a, _) = signed_in(&w, "reader", Role::ReadOnly).await;
    let page = a.get(&pages[0]).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(
        page.body.contains(
            "the message itself: delivered over verified TLS to mx.partner.example[192.0.2.7:25]"
        ),
        "{}",
        page.body
    );
    let page = a.get(&pages[1]).await;
    assert!(
        page.body.contains("portal notification sent"),
        "{}",
        page.body
    );
}

/// A message submitted with AUTH names its SMTP account on its page; one
/// relayed from relay_networks says nothing about an account.
#[tokio::test]
async fn the_message_page_names_the_smtp_account_it_was_submitted_with() {
    let w = world().await;
    let relayed = seed(&w, "Relayed", Duration::from_secs(60)).await;
    let mut m = NewMessage::plain(
        QueueId::generate(),
        SystemTime::now(),
        Some(EmailAddress::parse("crm@corp.example").unwrap()),
        ClientInfo {
            ip: [192, 0, 2, 9].into(),
            name: None,
            helo: None,
            protocol: "ESMTPSA".into(),
        },
        b"Subject: x\r\n\r\nbody\r\n".to_vec(),
        SystemTime::now() + Duration::from_secs(86400),
        MessageKind::Mail,
        vec![NewRecipient {
            address: EmailAddress::parse("bob@partner.example").unwrap(),
            orcpt: None,
            notify: Notify::default(),
            decision: Decision {
                route: Route::Relay,
                policy: None,
            },
        }],
    );
    m.smtp_account =
        Some(sealpost_store::smtp_accounts::SmtpAccountName::parse("crm-app").unwrap());
    let submitted = w.store.accept(m).await.unwrap();
    let (mut ro, _) = signed_in(&w, "reader", Role::ReadOnly).await;
    let page = ro.get(&format!("/console/tracking/{submitted}")).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(
        page.body.contains("SMTP account") && page.body.contains("<code>crm-app</code>"),
        "{}",
        page.body
    );
    let page = ro.get(&format!("/console/tracking/{relayed}")).await;
    assert!(!page.body.contains("SMTP account"), "{}", page.body);
}
