//! The worker against a real store (SQLite and spool in a temporary
//! directory).

use std::time::{Duration, SystemTime};

use sealpost_policy::{Decision, EmailAddress, Route};
use sealpost_smtp::outbound::{HostPort, OutboundConfig};
use sealpost_store::{ClientInfo, NewRecipient, Notify as DsnNotify, RecipientStatus, SqliteStore};

use super::*;

/// A message to `rcpt` from alice, with `content`.
fn mail(rcpt: &str, content: Vec<u8>) -> NewMessage {
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
        content,
        now + Duration::from_secs(86400),
        MessageKind::Mail,
        vec![NewRecipient {
            address: EmailAddress::parse(rcpt).unwrap(),
            orcpt: None,
            notify: DsnNotify::default(),
            decision: Decision {
                route: Route::Relay,
                policy: None,
            },
        }],
    )
}

/// A queued recipient whose content cannot be read (its spool file is
/// gone) is failed after a bounded number of attempts, with a report to
/// the sender, instead of being retried for ever.
/// See: issue 17, item 5.
#[tokio::test]
async fn issue_17_unreadable_content_fails_after_bounded_attempts_with_a_report() {
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    let store = Arc::new(
        SqliteStore::open(
            &dir.path().join("db.sqlite"),
            &spool,
            Arc::new(sealpost_vault::Vault::ephemeral()),
        )
        .await
        .unwrap(),
    );
    let config = QueueConfig {
        hostname: "gw.corp.example".into(),
        retry: RetrySchedule::new(vec![Duration::from_millis(1)]).unwrap(),
        // Nothing listens there: nothing in this test may reach the DNS
        // or a real server.
        hops: ConfiguredHops {
            smart_host: Some(HostPort::parse("127.0.0.1:1").unwrap()),
            internal: Some(HostPort::parse("127.0.0.1:1").unwrap()),
        },
        ..QueueConfig::default()
    };
    let worker = Worker::new(
        store.clone(),
        Arc::new(Delivery::new(OutboundConfig {
            connect_timeout: Duration::from_secs(2),
            ..OutboundConfig::default()
        })),
        Arc::new(ArcSwap::from_pointee(PolicySet::default())),
        config,
        Arc::new(Notify::new()),
    );
    // Larger than the store's inline limit (1 MiB), so it is spooled.
    let mut content = b"Subject: big\r\n\r\n".to_vec();
    content.extend(
        b"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd\r\n".repeat(20_000),
    );
    let id = store
        .accept(mail("bob@partner.example", content))
        .await
        .unwrap();
    std::fs::remove_file(spool.join(id.as_str())).expect("the message is spooled");

    let mut passes = 0;
    loop {
        worker.run_once().await.unwrap();
        passes += 1;
        let r = &store.recipients(&id).await.unwrap()[0];
        if r.status == RecipientStatus::Failed {
            assert_eq!(r.attempts, UNREADABLE_ATTEMPTS, "{r:?}");
            assert!(
                r.last_reply
                    .as_deref()
                    .is_some_and(|reply| reply.starts_with("554 5.3.0")),
                "{r:?}"
            );
            break;
        }
        assert!(
            passes < 2 * UNREADABLE_ATTEMPTS,
            "still {:?} after {passes} passes: retried for ever",
            r.status
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // The sender gets a report about bob, from the null sender.
    let now = SystemTime::now() + Duration::from_secs(1);
    let leased = store
        .lease_due("test", now, now + Duration::from_secs(60), 10)
        .await
        .unwrap();
    let dsn = leased
        .iter()
        .find(|m| m.kind == MessageKind::Dsn)
        .expect("a DSN is queued");
    assert_eq!(dsn.sender, None);
    assert_eq!(dsn.recipients[0].address.as_str(), "alice@corp.example");
    let text = String::from_utf8(dsn.content.clone().unwrap()).unwrap();
    assert!(text.contains("bob@partner.example"), "{text}");
    assert!(text.contains("cannot be read"), "{text}");
}
