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

/// A next hop that takes `delay` to answer the end of each message's data,
/// and says on `data` when a message's data has arrived.
async fn slow_next_hop(
    delay: Duration,
    data: tokio::sync::mpsc::UnboundedSender<()>,
) -> std::net::SocketAddr {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let data = data.clone();
            tokio::spawn(async move {
                let mut io = BufReader::new(stream);
                io.get_mut().write_all(b"220 slow\r\n").await?;
                let mut in_data = false;
                for _ in 0..10_000 {
                    let mut line = String::new();
                    if io.read_line(&mut line).await? == 0 {
                        break;
                    }
                    let reply: &[u8] = if in_data {
                        if line != ".\r\n" {
                            continue;
                        }
                        in_data = false;
                        let _ = data.send(());
                        tokio::time::sleep(delay).await;
                        b"250 2.0.0 taken\r\n"
                    } else {
                        match line.get(..4).map(str::to_ascii_uppercase).as_deref() {
                            Some("EHLO") => b"250 slow\r\n",
                            Some("DATA") => {
                                in_data = true;
                                b"354 go on\r\n"
                            }
                            Some("QUIT") => b"221 bye\r\n",
                            _ => b"250 ok\r\n",
                        }
                    };
                    io.get_mut().write_all(reply).await?;
                }
                Ok::<_, std::io::Error>(())
            });
        }
    });
    addr
}

/// While a slow delivery runs, its lease is taken by another worker (as
/// after a lease that ran out): the first worker's renewal finds it lost,
/// and its outcome is not recorded over the new holder's claim (which
/// decides the recipient).
/// See: issue 17, item 5.
#[tokio::test]
async fn issue_17_an_outcome_whose_lease_was_lost_is_not_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        SqliteStore::open(
            &dir.path().join("db.sqlite"),
            &dir.path().join("spool"),
            Arc::new(sealpost_vault::Vault::ephemeral()),
        )
        .await
        .unwrap(),
    );
    let (data_tx, mut data_rx) = tokio::sync::mpsc::unbounded_channel();
    let hop = slow_next_hop(Duration::from_millis(1500), data_tx).await;
    let hop = HostPort::parse(&hop.to_string()).unwrap();
    let worker = Worker::new(
        store.clone(),
        Arc::new(Delivery::new(OutboundConfig {
            connect_timeout: Duration::from_secs(2),
            opportunistic_tls: false,
            ..OutboundConfig::default()
        })),
        Arc::new(ArcSwap::from_pointee(PolicySet::default())),
        QueueConfig {
            hostname: "gw.corp.example".into(),
            hops: ConfiguredHops {
                smart_host: Some(hop.clone()),
                internal: Some(hop),
            },
            lease_duration: Duration::from_millis(300),
            ..QueueConfig::default()
        },
        Arc::new(Notify::new()),
    );
    let id = store
        .accept(mail(
            "bob@partner.example",
            b"Subject: slow\r\n\r\nbody\r\n".to_vec(),
        ))
        .await
        .unwrap();
    let running = tokio::spawn({
        let worker = worker.clone();
        async move { worker.run_once().await }
    });
    tokio::time::timeout(Duration::from_secs(10), data_rx.recv())
        .await
        .expect("the message's data reaches the next hop");
    // Another worker takes the recipient, as if the lease had run out.
    let later = SystemTime::now() + Duration::from_secs(3600);
    let taken = store
        .lease_due("thief", later, later + Duration::from_secs(3600), 10)
        .await
        .unwrap();
    assert_eq!(taken.recipients(), 1);
    assert_eq!(
        tokio::time::timeout(Duration::from_secs(10), running)
            .await
            .expect("the delivery ends")
            .unwrap()
            .unwrap(),
        1
    );
    let r = &store.recipients(&id).await.unwrap()[0];
    assert_eq!(r.status, RecipientStatus::Queued, "{r:?}");
    assert_eq!(
        r.attempts, 0,
        "nothing recorded over the thief's claim: {r:?}"
    );
}
