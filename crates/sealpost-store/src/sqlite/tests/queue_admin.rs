//! The queue's administrative side against a real database: depth per
//! domain, the listing, and retry now, delete and bounce, each with its
//! audit entries, leaving a recipient in delivery alone.

use std::time::{Duration, SystemTime};

use super::{message, open};
use crate::{
    AdminStore, OutcomeKind, QueueAdminStore, QueueId, RecipientOutcome, RecipientStatus, Store,
    StoreError,
    audit::{Actor, AuditQuery},
    queue_admin::{
        AUDIT_OBJECT, BOUNCED_REPLY, CLAIM_FOR, QueueFilter, QueueQuery, QueueSort, RecipientKey,
        Selection,
    },
};

fn key(id: &QueueId, idx: u32) -> RecipientKey {
    RecipientKey {
        message: id.clone(),
        idx,
    }
}

fn admin() -> Actor {
    Actor::administrator("ann", "192.0.2.7".parse().unwrap())
}

/// Accepts a message to `rcpts` and defers each of them once (a worker
/// leased and got `451`), next attempt in an hour.
async fn deferred(store: &super::SqliteStore, rcpts: &[&str]) -> QueueId {
    let id = store
        .accept(message(b"Subject: hi\r\n\r\nbody\r\n".to_vec(), rcpts))
        .await
        .unwrap();
    let now = SystemTime::now() + Duration::from_secs(1);
    let leased = store
        .lease_due("w", now, now + Duration::from_secs(60), 1000)
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
                reply: "451 4.7.1 try later".into(),
                notification: false,
                direct: false,
                delay_warned: false,
            })
        })
        .collect();
    store.record(outcomes, vec![]).await.unwrap();
    id
}

async fn status(store: &super::SqliteStore, id: &QueueId, idx: usize) -> RecipientStatus {
    store.recipients(id).await.unwrap()[idx].status
}

#[tokio::test]
async fn depth_per_domain_and_a_sorted_filtered_paged_listing() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let a = deferred(&store, &["a1@slow.example", "a2@Slow.Example"]).await;
    let b = deferred(&store, &["b1@other.example"]).await;
    // Never attempted yet: queued but not deferred.
    let c = store
        .accept(message(b"x".to_vec(), &["c1@slow.example"]))
        .await
        .unwrap();
    let now = SystemTime::now() + Duration::from_secs(2);

    let depth = store.queue_depth(now).await.unwrap();
    assert_eq!(depth.len(), 2);
    assert_eq!(depth[0].domain, "slow.example");
    assert_eq!((depth[0].queued, depth[0].deferred), (3, 2));
    assert_eq!(depth[1].domain, "other.example");
    assert_eq!((depth[1].queued, depth[1].deferred), (1, 1));
    assert!(depth[0].oldest.is_some() && depth[0].next_attempt.is_some());

    let page = |filter: QueueFilter, sort, descending, offset, limit| QueueQuery {
        filter,
        sort,
        descending,
        offset,
        limit,
    };
    let all = store
        .queued(
            page(QueueFilter::default(), QueueSort::Recipient, false, 0, 50),
            now,
        )
        .await
        .unwrap();
    assert_eq!(all.total, 4);
    let addresses: Vec<_> = all.recipients.iter().map(|r| r.address.as_str()).collect();
    assert_eq!(
        addresses,
        [
            "a1@slow.example",
            "a2@slow.example",
            "b1@other.example",
            "c1@slow.example"
        ]
    );
    let first = &all.recipients[0];
    assert_eq!(first.key, key(&a, 0));
    assert_eq!(first.attempts, 1);
    assert_eq!(first.last_reply.as_deref(), Some("451 4.7.1 try later"));
    assert_eq!(first.domain, "slow.example");
    assert!(!first.in_delivery);

    let slow_deferred = store
        .queued(
            page(
                QueueFilter {
                    domain: Some("SLOW.example".into()),
                    deferred_only: true,
                    ..QueueFilter::default()
                },
                QueueSort::Recipient,
                true,
                0,
                1,
            ),
            now,
        )
        .await
        .unwrap();
    assert_eq!(slow_deferred.total, 2, "c1 was never attempted");
    assert_eq!(slow_deferred.recipients.len(), 1, "a page of one");
    assert_eq!(slow_deferred.recipients[0].key, key(&a, 1), "descending");

    let second_page = store
        .queued(
            page(
                QueueFilter {
                    recipient: Some("1@".into()),
                    ..QueueFilter::default()
                },
                QueueSort::Recipient,
                false,
                1,
                50,
            ),
            now,
        )
        .await
        .unwrap();
    assert_eq!(second_page.total, 3);
    let keys: Vec<_> = second_page
        .recipients
        .iter()
        .map(|r| r.key.clone())
        .collect();
    assert_eq!(keys, [key(&b, 0), key(&c, 0)]);

    let by_sender = store
        .queued(
            page(
                QueueFilter {
                    sender: Some("nobody".into()),
                    ..QueueFilter::default()
                },
                QueueSort::NextAttempt,
                false,
                0,
                50,
            ),
            now,
        )
        .await
        .unwrap();
    assert_eq!(by_sender.total, 0);
}

#[tokio::test]
async fn retry_now_makes_recipients_due_and_skips_one_in_delivery() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let id = deferred(&store, &["a@slow.example", "b@slow.example"]).await;
    let delivered = store
        .accept(message(b"x".to_vec(), &["d@fast.example"]))
        .await
        .unwrap();
    let now = SystemTime::now() + Duration::from_secs(2);
    // Nothing is due: the retries are an hour away.
    assert!(
        store
            .lease_due("w", now, now + Duration::from_secs(60), 100)
            .await
            .unwrap()
            .iter()
            .all(|m| m.id == delivered)
    );
    store
        .record(
            vec![RecipientOutcome {
                message: delivered.clone(),
                idx: 0,
                attempted_at: now,
                result: OutcomeKind::Delivered,
                reply: "250 ok".into(),
                notification: false,
                direct: false,
                delay_warned: false,
            }],
            vec![],
        )
        .await
        .unwrap();

    let report = store
        .retry_now(
            Selection::Keys(vec![
                key(&id, 0),
                key(&id, 0),
                key(&delivered, 0),
                key(&id, 9),
            ]),
            now,
            admin(),
        )
        .await
        .unwrap();
    assert_eq!(report.done, [key(&id, 0)], "a duplicate counts once");
    assert_eq!(report.not_queued, [key(&delivered, 0), key(&id, 9)]);
    assert!(report.in_delivery.is_empty());

    // A worker picks it up at once.
    let leased = store
        .lease_due("w", now, now + Duration::from_secs(60), 100)
        .await
        .unwrap();
    assert_eq!(leased.len(), 1);
    assert_eq!(leased[0].recipients.len(), 1);
    assert_eq!(leased[0].recipients[0].idx, 0);

    // Now it is in delivery: every action leaves it alone and says so.
    let selection = Selection::Keys(vec![key(&id, 0)]);
    let retried = store
        .retry_now(selection.clone(), now, admin())
        .await
        .unwrap();
    assert_eq!(retried.in_delivery, [key(&id, 0)]);
    assert!(retried.done.is_empty());
    let deleted = store
        .delete_queued(selection.clone(), now, admin())
        .await
        .unwrap();
    assert_eq!(deleted.in_delivery, [key(&id, 0)]);
    let (claimed, report) = store
        .claim(selection, "admin-bounce", now, now + CLAIM_FOR)
        .await
        .unwrap();
    assert!(claimed.is_empty());
    assert_eq!(report.in_delivery, [key(&id, 0)]);
    assert_eq!(status(&store, &id, 0).await, RecipientStatus::Queued);

    // One audit entry, for the one retry that happened, before and after.
    let audit = store
        .audit(AuditQuery {
            object_kind: Some(AUDIT_OBJECT.into()),
            limit: 50,
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(audit.len(), 1);
    let entry = &audit[0];
    assert_eq!(entry.change.action, "retry");
    assert_eq!(
        entry.change.object_id.as_deref(),
        Some(&*key(&id, 0).to_string())
    );
    assert_eq!(entry.actor, admin());
    let (before, after) = (
        entry.change.before.as_ref().unwrap(),
        entry.change.after.as_ref().unwrap(),
    );
    assert_eq!(before["recipient"], "a@slow.example");
    assert_eq!(before["attempts"], 1);
    assert_ne!(before["next_attempt_at"], after["next_attempt_at"]);
    assert_eq!(after["next_attempt_at"], crate::rfc3339(now));
}

#[tokio::test]
async fn delete_drops_silently_and_the_content_goes_with_the_last_recipient() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let id = deferred(&store, &["a@slow.example", "b@slow.example"]).await;
    let other = deferred(&store, &["c@other.example"]).await;
    let now = SystemTime::now() + Duration::from_secs(2);

    // By filter: the slow domain only, one at a time.
    let filter = QueueFilter {
        domain: Some("slow.example".into()),
        ..QueueFilter::default()
    };
    let report = store
        .delete_queued(
            Selection::Filter {
                filter: filter.clone(),
                limit: 1,
            },
            now,
            admin(),
        )
        .await
        .unwrap();
    assert_eq!(report.done, [key(&id, 0)]);
    assert_eq!(report.remaining, 1);
    assert!(
        store.message(&id).await.unwrap().has_content,
        "b still needs it"
    );
    let report = store
        .delete_queued(Selection::Filter { filter, limit: 100 }, now, admin())
        .await
        .unwrap();
    assert_eq!((report.done.len(), report.remaining), (1, 0));
    let recipients = store.recipients(&id).await.unwrap();
    assert!(
        recipients
            .iter()
            .all(|r| r.status == RecipientStatus::Deleted)
    );
    assert!(!store.message(&id).await.unwrap().has_content);
    assert_eq!(status(&store, &other, 0).await, RecipientStatus::Queued);
    // No report was queued: the only queued recipient is the other one.
    let stats = store.queue_stats().await.unwrap();
    assert_eq!(stats.queued, 1);

    let audit = store
        .audit(AuditQuery {
            object_kind: Some(AUDIT_OBJECT.into()),
            limit: 50,
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(audit.len(), 2);
    assert!(audit.iter().all(|e| e.change.action == "delete"));
    assert_eq!(audit[0].change.after.as_ref().unwrap()["status"], "deleted");
    assert_eq!(audit[0].change.before.as_ref().unwrap()["status"], "queued");
}

#[tokio::test]
async fn a_bounce_fails_its_claim_with_the_report_in_one_commit() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let id = deferred(&store, &["a@slow.example", "b@slow.example"]).await;
    let now = SystemTime::now() + Duration::from_secs(2);

    let (claimed, report) = store
        .claim(
            Selection::Keys(vec![key(&id, 1)]),
            "admin:1",
            now,
            now + CLAIM_FOR,
        )
        .await
        .unwrap();
    assert_eq!(report.done, [key(&id, 1)]);
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].recipients.len(), 1);
    assert_eq!(claimed[0].recipients[0].address.as_str(), "b@slow.example");
    assert_eq!(
        claimed[0].content.as_deref(),
        Some(&b"Subject: hi\r\n\r\nbody\r\n"[..]),
        "inline content comes opened"
    );
    // A claimed recipient is not due for workers.
    assert!(
        store
            .lease_due("w", now, now + Duration::from_secs(60), 100)
            .await
            .unwrap()
            .is_empty()
    );

    // Another bounce's claim, or a lost one, is refused and changes nothing.
    let dsn = message(b"the report".to_vec(), &["alice@corp.example"]);
    let refused = store
        .bounce_claimed(
            "admin:other",
            vec![key(&id, 1)],
            vec![dsn.clone()],
            now,
            admin(),
        )
        .await;
    assert!(
        matches!(refused, Err(StoreError::Refused(_))),
        "{refused:?}"
    );
    assert!(store.message(&dsn.id).await.is_err(), "no report stored");
    assert_eq!(status(&store, &id, 1).await, RecipientStatus::Queued);

    let ids = store
        .bounce_claimed(
            "admin:1",
            vec![key(&id, 1)],
            vec![dsn.clone()],
            now,
            admin(),
        )
        .await
        .unwrap();
    assert_eq!(ids, std::slice::from_ref(&dsn.id));
    let recipients = store.recipients(&id).await.unwrap();
    assert_eq!(recipients[1].status, RecipientStatus::Failed);
    assert_eq!(recipients[1].last_reply.as_deref(), Some(BOUNCED_REPLY));
    assert_eq!(recipients[0].status, RecipientStatus::Queued);
    assert_eq!(status(&store, &dsn.id, 0).await, RecipientStatus::Queued);

    let audit = store
        .audit(AuditQuery {
            object_kind: Some(AUDIT_OBJECT.into()),
            limit: 50,
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].change.action, "bounce");
    assert_eq!(audit[0].change.after.as_ref().unwrap()["status"], "failed");

    // A claim given up leaves the recipient as it was.
    let (_, report) = store
        .claim(
            Selection::Keys(vec![key(&id, 0)]),
            "admin:2",
            now,
            now + CLAIM_FOR,
        )
        .await
        .unwrap();
    assert_eq!(report.done, [key(&id, 0)]);
    store
        .release_claim("admin:2", vec![key(&id, 0)])
        .await
        .unwrap();
    let again = store
        .retry_now(Selection::Keys(vec![key(&id, 0)]), now, admin())
        .await
        .unwrap();
    assert_eq!(again.done, [key(&id, 0)], "free again");
}
