//! Envelopes read back for the impact preview: in order of receipt, within
//! the range, paged without loss or repeat, recipients grouped under their
//! message, and mail sealpost wrote itself left out.

use std::time::{Duration, SystemTime};

use super::{message, open};
use crate::{MessageKind, Store, admin::AdminStore, envelopes::EnvelopeQuery};

#[tokio::test]
async fn pages_of_envelopes_in_order_of_receipt() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let now = SystemTime::now();
    let hours = |h: u64| now - Duration::from_secs(h * 3600);
    let mut expected = Vec::new();
    // Accepted out of order; read back by time of receipt.
    for (h, rcpts) in [
        (5u64, vec!["a@partner.example", "b@partner.example"]),
        (30 * 24, vec!["old@partner.example"]),
        (1, vec!["c@other.example"]),
        (
            3,
            vec!["d@partner.example", "e@corp.example", "f@x.example"],
        ),
        (2, vec!["g@partner.example"]),
    ] {
        let mut m = message(b"Subject: x\r\n\r\nhi\r\n".to_vec(), &rcpts);
        m.received_at = hours(h);
        let id = store.accept(m).await.unwrap();
        if h < 24 * 7 {
            expected.push((h, id.as_str().to_owned(), rcpts));
        }
    }
    let mut dsn = message(
        b"Subject: bounce\r\n\r\nx\r\n".to_vec(),
        &["alice@corp.example"],
    );
    dsn.kind = MessageKind::Dsn;
    dsn.sender = None;
    store.accept(dsn).await.unwrap();
    let mut notification = message(b"Subject: n\r\n\r\nx\r\n".to_vec(), &["n@partner.example"]);
    notification.parent = Some(crate::QueueId::generate());
    store.accept(notification).await.unwrap();
    expected.sort_by_key(|(h, _, _)| std::cmp::Reverse(*h));

    let mut seen = Vec::new();
    let mut after = None;
    for _ in 0..10 {
        let page = store
            .envelopes(EnvelopeQuery {
                since: now - Duration::from_secs(7 * 86400),
                until: now + Duration::from_secs(60),
                after,
                limit: 2,
            })
            .await
            .unwrap();
        assert!(page.envelopes.len() <= 2);
        seen.extend(page.envelopes);
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    let got: Vec<(String, Vec<String>)> = seen
        .iter()
        .map(|e| (e.message_id.clone(), e.recipients.clone()))
        .collect();
    let want: Vec<(String, Vec<String>)> = expected
        .iter()
        .map(|(_, id, r)| (id.clone(), r.iter().map(|s| s.to_string()).collect()))
        .collect();
    assert_eq!(got, want);
    assert!(seen.iter().all(|e| e.sender == "alice@corp.example"));
    assert!(seen.iter().all(|e| e.client_ip.to_string() == "127.0.0.1"));
}

#[tokio::test]
async fn hits_count_the_recipients_each_policy_decided_by_day() {
    use sealpost_policy::{Decision, DefinitionId, PolicyId, Route};
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let now = SystemTime::now();
    let decided = |rcpts: &[&str], policy: Option<i64>, age: Duration| {
        let mut m = message(b"Subject: x\r\n\r\nhi\r\n".to_vec(), rcpts);
        m.received_at = now - age;
        for r in &mut m.recipients {
            r.decision = Decision {
                route: Route::Secure {
                    definition: DefinitionId(1),
                },
                policy: policy.map(PolicyId),
            };
        }
        m
    };
    let day = Duration::from_secs(86_400);
    store
        .accept(decided(
            &["a@p.example", "b@p.example"],
            Some(1),
            Duration::ZERO,
        ))
        .await
        .unwrap();
    store
        .accept(decided(&["c@p.example"], Some(1), 3 * day))
        .await
        .unwrap();
    store
        .accept(decided(&["d@p.example"], Some(2), Duration::ZERO))
        .await
        .unwrap();
    store
        .accept(decided(&["e@p.example"], Some(2), 40 * day))
        .await
        .unwrap();
    store
        .accept(decided(&["f@p.example"], None, Duration::ZERO))
        .await
        .unwrap();
    let hits = store.policy_hits(now - 30 * day).await.unwrap();
    assert_eq!(hits.get(&PolicyId(1)), Some(&3));
    assert_eq!(hits.get(&PolicyId(2)), Some(&1), "the old one is outside");
    assert_eq!(hits.len(), 2);
    let today = store.policy_hits(now).await.unwrap();
    assert_eq!(today.get(&PolicyId(1)), Some(&2));
}

/// Each page seeks to its start in the index (kind, time, id) and needs no
/// sort: a week of a million messages is read once, not once per page.
#[tokio::test]
async fn a_page_of_envelopes_seeks_instead_of_scanning() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let plan = store
        .readers
        .read(crate::sqlite::envelopes::plan)
        .await
        .unwrap();
    assert!(
        plan.contains("USING INDEX messages_tracking (kind=? AND received_at>? AND received_at<?)"),
        "{plan}"
    );
    assert!(!plan.contains("TEMP B-TREE"), "{plan}");
}
