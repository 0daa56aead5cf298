//! The SQLite store against a real database file.

use std::time::{Duration, SystemTime};

use sealpost_policy::{Decision, EmailAddress, PolicyId, Route};

use super::*;
use crate::audit::Actor;
use crate::{
    ClientInfo, MessageKind, NewRecipient, Notify, OutcomeKind, RecipientStatus, model::from_millis,
};

pub(super) fn message(content: Vec<u8>, rcpts: &[&str]) -> NewMessage {
    let now = SystemTime::now();
    NewMessage::plain(
        QueueId::generate(),
        now,
        Some(EmailAddress::parse("alice@corp.example").unwrap()),
        ClientInfo {
            ip: "127.0.0.1".parse().unwrap(),
            name: None,
            helo: Some("client.example".into()),
            protocol: "ESMTP".into(),
        },
        content,
        now + Duration::from_secs(5 * 86400),
        MessageKind::Mail,
        rcpts
            .iter()
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

/// The test directory's vault: its key file is kept beside the database,
/// so a reopened store has the same master key.
fn vault(dir: &tempfile::TempDir) -> Arc<Vault> {
    let keyring = sealpost_vault::Keyring::load_or_create(&dir.path().join("master.key")).unwrap();
    Arc::new(Vault::new(keyring))
}

async fn try_open(dir: &tempfile::TempDir) -> Result<SqliteStore, StoreError> {
    SqliteStore::open(
        &dir.path().join("db.sqlite"),
        &dir.path().join("spool"),
        vault(dir),
    )
    .await
}

async fn open(dir: &tempfile::TempDir) -> SqliteStore {
    try_open(dir).await.unwrap()
}

/// Opens the store again once the dropped one has let go of its lock
/// (bounded: 5 s).
async fn reopen(dir: &tempfile::TempDir) -> SqliteStore {
    for _ in 0..250 {
        match try_open(dir).await {
            Ok(s) => return s,
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    panic!("the lock is released when the store is dropped");
}

#[tokio::test]
async fn accept_lease_defer_deliver_purge() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let id = store
        .accept(message(
            b"Subject: hi\r\n\r\nbody\r\n".to_vec(),
            &["a@x.example", "b@y.example"],
        ))
        .await
        .unwrap();

    let now = SystemTime::now() + Duration::from_secs(1);
    let leased = store
        .lease_due("w1", now, now + Duration::from_secs(60), 100)
        .await
        .unwrap();
    assert_eq!(leased.len(), 1);
    assert_eq!(leased[0].recipients.len(), 2);
    // A live lease hides the recipients from other workers.
    assert!(
        store
            .lease_due("w2", now, now + Duration::from_secs(60), 100)
            .await
            .unwrap()
            .is_empty()
    );

    let retry_at = now + Duration::from_secs(300);
    store
        .record(
            vec![
                RecipientOutcome {
                    message: id.clone(),
                    notification: false,
                    idx: 0,
                    attempted_at: now,
                    result: OutcomeKind::Delivered,
                    reply: "250 ok".into(),
                    direct: false,
                    delay_warned: false,
                },
                RecipientOutcome {
                    message: id.clone(),
                    notification: false,
                    idx: 1,
                    attempted_at: now,
                    result: OutcomeKind::Deferred { retry_at },
                    reply: "451 later".into(),
                    direct: false,
                    delay_warned: false,
                },
            ],
            vec![],
        )
        .await
        .unwrap();
    let stats = store.queue_stats().await.unwrap();
    assert_eq!((stats.queued, stats.deferred), (1, 1));
    assert_eq!(
        store.next_due().await.unwrap(),
        Some(from_millis(to_millis_for_test(retry_at)))
    );
    assert!(store.message(&id).await.unwrap().has_content);

    let later = retry_at + Duration::from_secs(1);
    let leased = store
        .lease_due("w1", later, later + Duration::from_secs(60), 100)
        .await
        .unwrap();
    assert_eq!(leased[0].recipients.len(), 1);
    assert_eq!(leased[0].recipients[0].attempts, 1);
    store
        .record(
            vec![RecipientOutcome {
                message: id.clone(),
                notification: false,
                idx: 1,
                attempted_at: later,
                result: OutcomeKind::Failed,
                reply: "550 no".into(),
                direct: false,
                delay_warned: false,
            }],
            vec![message(b"report".to_vec(), &["alice@corp.example"])],
        )
        .await
        .unwrap();
    let rcpts = store.recipients(&id).await.unwrap();
    assert_eq!(rcpts[0].status, RecipientStatus::Delivered);
    assert_eq!(rcpts[1].status, RecipientStatus::Failed);
    assert_eq!(rcpts[1].last_reply.as_deref(), Some("550 no"));
    assert!(
        !store.message(&id).await.unwrap().has_content,
        "content purged when final"
    );
    assert_eq!(
        store.queue_stats().await.unwrap().queued,
        1,
        "the DSN is queued"
    );
}

fn to_millis_for_test(t: SystemTime) -> i64 {
    crate::model::to_millis(t)
}

#[tokio::test]
async fn large_content_is_spooled_and_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let id = {
        let store = open(&dir).await;
        store
            .accept(message(big.clone(), &["a@x.example"]))
            .await
            .unwrap()
    };
    assert!(dir.path().join("spool").join(id.as_str()).exists());
    std::fs::write(dir.path().join("spool").join("ORPHAN0000000000"), b"x").unwrap();
    let store = open(&dir).await;
    assert!(
        !dir.path().join("spool").join("ORPHAN0000000000").exists(),
        "orphan swept"
    );
    assert_eq!(store.load_body(&id).await.unwrap(), big);
}

/// Every file under `root` with its mode, directories included.
#[cfg(unix)]
fn modes(root: &Path) -> Vec<(std::path::PathBuf, u32)> {
    use std::os::unix::fs::PermissionsExt;
    let mut found = Vec::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let meta = std::fs::metadata(&path).unwrap();
            if meta.is_dir() {
                stack.push(path.clone());
            }
            found.push((path, meta.permissions().mode() & 0o7777));
        }
    }
    found
}

/// Issue 14 (defect 8): the database, its WAL and the spool were created
/// 0644 in 0755 directories, readable by every local user.
#[cfg(unix)]
#[tokio::test]
async fn issue_14_database_wal_and_spool_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let private = |found: &[(std::path::PathBuf, u32)]| {
        for (path, mode) in found {
            let want = if path.is_dir() { 0o700 } else { 0o600 };
            assert_eq!(*mode, want, "{} is {mode:o}", path.display());
        }
    };
    let store = open(&dir).await;
    let id = store
        .accept(message(vec![b'x'; 2_000_000], &["a@x.example"]))
        .await
        .unwrap();
    let found = modes(dir.path());
    for name in ["db.sqlite", "db.sqlite-wal", "db.sqlite-shm", "spool"] {
        assert!(found.iter().any(|(p, _)| p.ends_with(name)), "{name}");
    }
    assert!(dir.path().join("spool").join(id.as_str()).exists());
    private(&found);
    drop(store);

    // Left open by an earlier version: tightened at the next open.
    let set = |path: std::path::PathBuf, mode| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap()
    };
    set(dir.path().join("db.sqlite"), 0o644);
    set(dir.path().join("db.sqlite.lock"), 0o644);
    set(dir.path().join("spool"), 0o755);
    set(dir.path().join("spool").join(id.as_str()), 0o644);
    let store = open(&dir).await;
    private(&modes(dir.path()));
    assert_eq!(store.load_body(&id).await.unwrap().len(), 2_000_000);
}

#[tokio::test]
async fn concurrent_accepts_are_group_committed() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .accept(message(format!("n {i}\r\n").into_bytes(), &["a@x.example"]))
                    .await
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(store.queue_stats().await.unwrap().queued, 200);
}

/// Acceptances that commit on their own thread, acceptances queued for
/// the writer thread and non-durable jobs, all at once: each is answered,
/// every message is stored once, and a failing inline job fails alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inline_and_queued_commits_mix() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let m = message(format!("n {i}\r\n").into_bytes(), &["a@x.example"]);
                match i % 3 {
                    0 => store.accept_alone(m).await.map(|_| 1),
                    1 => store.accept(m).await.map(|_| 1),
                    _ => {
                        let now = SystemTime::now();
                        store
                            .lease_due("t", now, now + Duration::from_secs(60), 5)
                            .await
                            .map(|_| 0)
                    }
                }
            })
        })
        .collect();
    let mut accepted = 0;
    for t in tasks {
        accepted += t.await.unwrap().unwrap();
    }
    assert_eq!(accepted, 134);
    let stats = store.queue_stats().await.unwrap();
    assert_eq!(stats.queued, 134);

    let first = message(b"x".to_vec(), &["a@x.example"]);
    let dup = first.clone();
    let (a, b) = tokio::join!(store.accept_alone(first), store.accept_alone(dup));
    assert!(
        a.is_ok() != b.is_ok(),
        "exactly one of two identical ids commits"
    );
    assert_eq!(store.queue_stats().await.unwrap().queued, 135);
    drop(store);
    let store = reopen(&dir).await;
    assert_eq!(store.queue_stats().await.unwrap().queued, 135);
}

/// A message claimed for a worker at acceptance is stored leased to it:
/// no lease finds it until that lease is released (here by a reopen, as
/// after a crash), and then it is delivered from the store like any other.
#[tokio::test]
async fn a_claimed_message_is_stored_leased_to_its_worker() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let (handoff, mut handed) = crate::handoff::channel("hot-worker", Duration::from_secs(600));
    let mut m = message(b"hot\r\n".to_vec(), &["a@x.example", "b@x.example"]);
    let claimed = handoff.claim(&mut m, SystemTime::now()).unwrap();
    let id = store.accept(m).await.unwrap();
    claimed.hand_over();
    let got = handed.recv().await.unwrap().into_parts().0;
    assert_eq!((got.id.clone(), got.recipients.len()), (id.clone(), 2));

    let now = SystemTime::now();
    let leased = store
        .lease_due("other", now, now + Duration::from_secs(60), 10)
        .await
        .unwrap();
    assert!(leased.is_empty(), "the claim is a lease");

    drop(store);
    let store = reopen(&dir).await;
    let now = SystemTime::now();
    let leased = store
        .lease_due("other", now, now + Duration::from_secs(60), 10)
        .await
        .unwrap();
    assert_eq!(leased.recipients(), 2);
    assert_eq!(leased.messages[0].content.as_deref(), Some(&b"hot\r\n"[..]));
}

#[tokio::test]
async fn duplicate_id_fails_alone() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let first = message(b"x".to_vec(), &["a@x.example"]);
    let dup = first.clone();
    let mut other = message(b"y".to_vec(), &["a@x.example"]);
    other.recipients[0].decision.policy = Some(PolicyId(7));
    let (a, b, c) = tokio::join!(store.accept(first), store.accept(dup), store.accept(other));
    assert!(
        a.is_ok() != b.is_ok(),
        "exactly one of two identical ids commits"
    );
    let c = c.unwrap();
    assert_eq!(
        store.recipients(&c).await.unwrap()[0].policy,
        Some(PolicyId(7))
    );
}

#[tokio::test]
async fn a_second_process_cannot_open_the_database_and_leases_are_released_on_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let err = try_open(&dir).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("in use by another sealpost process"),
        "{err}"
    );

    store
        .accept(message(b"x".to_vec(), &["a@x.example"]))
        .await
        .unwrap();
    let now = SystemTime::now() + Duration::from_secs(1);
    let leased = store
        .lease_due("dead-worker", now, now + Duration::from_secs(3600), 10)
        .await
        .unwrap();
    assert_eq!(leased.len(), 1);
    drop(store);
    // The writer task holds the store's last clone until it sees the
    // channel close; give it a moment to let go of the lock.
    let store = reopen(&dir).await;
    let again = store
        .lease_due("new-worker", now, now + Duration::from_secs(60), 10)
        .await
        .unwrap();
    assert_eq!(
        again.len(),
        1,
        "the dead process's lease was released at open"
    );
}

#[tokio::test]
async fn spool_files_of_delivered_messages_go_only_after_an_fsynced_commit() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let big = vec![b'x'; 2 * 1024 * 1024];
    let id = store.accept(message(big, &["a@x.example"])).await.unwrap();
    let file = dir.path().join("spool").join(id.as_str());
    let now = SystemTime::now() + Duration::from_secs(1);
    store
        .lease_due("w", now, now + Duration::from_secs(60), 10)
        .await
        .unwrap();
    store
        .record(
            vec![RecipientOutcome {
                message: id.clone(),
                notification: false,
                idx: 0,
                attempted_at: now,
                result: OutcomeKind::Delivered,
                reply: "250 ok".into(),
                direct: false,
                delay_warned: false,
            }],
            vec![],
        )
        .await
        .unwrap();
    assert!(!store.message(&id).await.unwrap().has_content);
    assert!(
        file.exists(),
        "the purge was not fsync'd yet, so the file stays"
    );
    store
        .accept(message(b"small".to_vec(), &["a@x.example"]))
        .await
        .unwrap();
    assert!(!file.exists(), "removed after the next fsync'd commit");
}

fn check() -> crate::ConfigCheck {
    Box::new(|doc: &sealpost_policy::PolicyDocument| doc.compile(&[], 3650))
}

#[tokio::test]
async fn configuration_changes_are_checked_as_a_whole_before_they_commit() {
    use crate::{AdminStore, ConfigChange};
    use sealpost_policy::{DefinitionId, GroupDraft, GroupId, PolicyDraft};

    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let doc = store.load_config().await.unwrap();
    assert_eq!(
        doc.definitions.len(),
        1,
        "a new database has the default definition"
    );
    assert!(doc.definitions[0].is_default);
    let default = doc.definitions[0].id;

    let group = store
        .change_config(
            ConfigChange::CreateGroup(GroupDraft {
                name: "Partners".into(),
                description: String::new(),
                addresses: vec!["p@partner.example".into()],
                domains: vec![],
                groups: vec![],
            }),
            check(),
            Actor::system("test"),
        )
        .await
        .unwrap()
        .id
        .unwrap();
    let policy: PolicyDraft = serde_json::from_str(&format!(
        r#"{{"action": "apply_definition", "definition_id": {}, "from": {{"kind": "internal"}},
            "to": {{"kind": "group", "group_id": {group}}}}}"#,
        default.0
    ))
    .unwrap();
    let changed = store
        .change_config(
            ConfigChange::CreatePolicy(policy),
            check(),
            Actor::system("test"),
        )
        .await
        .unwrap();
    assert_eq!(changed.set.policies().len(), 1);

    // Deleting the group the policy names is refused, and nothing changes.
    let err = store
        .change_config(
            ConfigChange::RemoveGroup(GroupId(group)),
            check(),
            Actor::system("test"),
        )
        .await
        .unwrap_err();
    match err {
        StoreError::Rejected(e) => assert_eq!(e.code, "unknown_group", "{e}"),
        other => panic!("{other}"),
    }
    assert_eq!(store.load_config().await.unwrap().groups.len(), 1);

    // The default definition cannot be deleted; a missing one is NoSuch.
    let err = store
        .change_config(
            ConfigChange::RemoveDefinition(default),
            check(),
            Actor::system("test"),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Rejected(ref e) if e.code == "default_definition"),
        "{err}"
    );
    let err = store
        .change_config(
            ConfigChange::RemoveDefinition(DefinitionId(99)),
            check(),
            Actor::system("test"),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NoSuch(_)), "{err}");

    // Everything survives a reopen.
    drop(store);
    let doc = reopen(&dir).await.load_config().await.unwrap();
    assert_eq!(
        (doc.groups.len(), doc.policies.len(), doc.definitions.len()),
        (1, 1, 1)
    );
}

// ---- the vault and secure delivery ----

use crate::{ExtendTo, NewSecureRecipient, NotificationTarget, SecureStore, SecureTrigger};
use sealpost_policy::DefinitionId;
use sealpost_vault::{Keyring, PortalToken};

/// A message to one secure recipient (idx 0) and one relayed (idx 1),
/// with the secure recipient's notification attached. Returns it with the
/// notification's id and the portal token.
fn secure_message(expires_in: Duration) -> (NewMessage, QueueId, PortalToken) {
    let mut m = message(
        b"Subject: secret\r\n\r\nthe secret body\r\n".to_vec(),
        &["p1@partner.example", "x@other.example"],
    );
    m.subject = Some("secret".into());
    m.recipients[0].decision = Decision {
        route: Route::Secure {
            definition: DefinitionId(1),
        },
        policy: Some(PolicyId(7)),
    };
    let mut notification = message(
        b"Subject: a secure message\r\n\r\nopen it at ...\r\n".to_vec(),
        &["p1@partner.example"],
    );
    notification.kind = MessageKind::Notification;
    notification.parent = Some(m.id.clone());
    let token = PortalToken::generate();
    m.secure.push(NewSecureRecipient {
        idx: 0,
        token_hash: token.hash().0,
        definition: DefinitionId(1),
        trigger: SecureTrigger::Policy,
        notification: Some(notification.id.clone()),
        expires_at: m.received_at + expires_in,
        tls_or_portal: false,
    });
    let notification_id = notification.id.clone();
    m.attached.push(notification);
    (m, notification_id, token)
}

fn outcome(id: &QueueId, idx: u32, result: OutcomeKind, notification: bool) -> RecipientOutcome {
    RecipientOutcome {
        message: id.clone(),
        idx,
        attempted_at: SystemTime::now(),
        result,
        reply: "250 ok".into(),
        notification,
        direct: false,
        delay_warned: false,
    }
}

#[tokio::test]
async fn a_secure_message_is_committed_with_its_notification_and_never_stored_in_plaintext() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let (m, notification, token) = secure_message(Duration::from_secs(3600));
    let id = store.accept(m).await.unwrap();
    // Only the relayed recipient and the notification are leased.
    let now = SystemTime::now() + Duration::from_secs(1);
    let leased = store
        .lease_due("w", now, now + Duration::from_secs(60), 100)
        .await
        .unwrap();
    let mut leased_ids: Vec<&QueueId> = leased.iter().map(|m| &m.id).collect();
    leased_ids.sort();
    let mut expected = vec![&id, &notification];
    expected.sort();
    assert_eq!(leased_ids, expected);
    let original = leased.iter().find(|m| m.id == id).unwrap();
    assert_eq!(
        original.recipients.len(),
        1,
        "the secure recipient is never leased"
    );
    assert_eq!(original.recipients[0].idx, 1);
    assert!(
        String::from_utf8_lossy(original.content.as_ref().unwrap()).contains("the secret body"),
        "opened for delivery"
    );
    drop(store);

    // The database file holds no plaintext of either.
    let store = reopen(&dir).await;
    drop(store);
    let mut raw = std::fs::read(dir.path().join("db.sqlite")).unwrap();
    if let Ok(wal) = std::fs::read(dir.path().join("db.sqlite-wal")) {
        raw.extend(wal);
    }
    for needle in [&b"the secret body"[..], b"open it at"] {
        assert!(!raw.windows(needle.len()).any(|w| w == needle));
    }

    let store = reopen(&dir).await;
    let access = store.secure_by_token(token.hash()).await.unwrap().unwrap();
    assert_eq!((access.message, access.idx), (id.clone(), 0));
    assert_eq!(access.record.notification.as_ref(), Some(&notification));
    assert!(access.record.notified_at.is_none());
    // The notification's delivery is the recipient's "notified".
    store
        .record(
            vec![outcome(&notification, 0, OutcomeKind::Delivered, true)],
            vec![],
        )
        .await
        .unwrap();
    let access = store.secure_by_token(token.hash()).await.unwrap().unwrap();
    assert!(access.record.notified_at.is_some());
    assert!(
        store
            .secure_by_token(PortalToken::generate().hash())
            .await
            .unwrap()
            .is_none()
    );
}

/// Issue 14: a notification that fails for good is recorded on the secure
/// recipient it announces, with the reply; the sender's details for the
/// "could not notify" mail are read before, and not again once recorded.
#[tokio::test]
async fn issue_14_a_failed_notification_is_recorded_on_its_secure_recipient() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let (m, notification, _) = secure_message(Duration::from_secs(3600));
    let id = store.accept(m).await.unwrap();
    let relayed = store.recipients(&id).await.unwrap()[1].clone();
    let targets = store
        .notification_targets(vec![notification.clone(), id.clone()])
        .await
        .unwrap();
    assert_eq!(
        targets,
        [NotificationTarget {
            notification: notification.clone(),
            message: id.clone(),
            idx: 0,
            recipient: "p1@partner.example".into(),
            definition: DefinitionId(1),
            sender: Some(EmailAddress::parse("alice@corp.example").unwrap()),
            subject: Some("secret".into()),
            tls_or_portal: false,
        }],
        "only a notification has a target"
    );

    let mut failed = outcome(&notification, 0, OutcomeKind::Failed, true);
    failed.reply = "550 5.1.1 no such user".into();
    store.record(vec![failed], vec![]).await.unwrap();
    let tracked = store.recipients(&id).await.unwrap();
    let secure = tracked[0].secure.as_ref().unwrap();
    assert!(secure.notify_failed_at.is_some());
    assert_eq!(
        secure.notify_error.as_deref(),
        Some("550 5.1.1 no such user")
    );
    assert!(secure.notified_at.is_none());
    assert_eq!(tracked[1], relayed, "the relayed recipient is untouched");
    assert!(
        store
            .notification_targets(vec![notification.clone()])
            .await
            .unwrap()
            .is_empty(),
        "reported once"
    );
    // A failure of a mail that announces nothing (a receipt) marks nothing.
    let mut other = outcome(&id, 1, OutcomeKind::Failed, true);
    other.reply = "550 other".into();
    store.record(vec![other], vec![]).await.unwrap();
    let secure = store.recipients(&id).await.unwrap()[0]
        .secure
        .clone()
        .unwrap();
    assert_eq!(
        secure.notify_error.as_deref(),
        Some("550 5.1.1 no such user")
    );
}

/// Issue 17 (TLS-or-portal): the mark is kept from acceptance, reaches the
/// worker with the notification's target, and the delivered notification
/// job records whether the message itself went; a portal-only recipient
/// records nothing of the kind.
#[tokio::test]
async fn a_tls_or_portal_recipient_records_what_was_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    for (marked, direct, want) in [
        (true, true, Some("message")),
        (true, false, Some("notification")),
        (false, true, None),
    ] {
        let (mut m, notification, _) = secure_message(Duration::from_secs(3600));
        m.secure[0].tls_or_portal = marked;
        let id = store.accept(m).await.unwrap();
        let targets = store
            .notification_targets(vec![notification.clone()])
            .await
            .unwrap();
        assert_eq!(targets[0].tls_or_portal, marked);
        let mut delivered = outcome(&notification, 0, OutcomeKind::Delivered, true);
        delivered.direct = direct;
        delivered.reply = "delivered over verified TLS to mx[127.0.0.1:25]: 250 ok".into();
        store.record(vec![delivered], vec![]).await.unwrap();
        let secure = store.recipients(&id).await.unwrap()[0]
            .secure
            .clone()
            .unwrap();
        assert_eq!(secure.tls_or_portal, marked);
        assert!(secure.notified_at.is_some());
        assert_eq!(secure.delivered_as.as_deref(), want, "{marked} {direct}");
        assert_eq!(secure.delivered_reply.is_some(), marked);
    }
}

#[tokio::test]
async fn expiry_ends_secure_access_and_content_goes_when_nobody_needs_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let (m, _, _) = secure_message(Duration::from_secs(3600));
    let id = store.accept(m).await.unwrap();
    assert_eq!(store.expire_due(SystemTime::now(), 100).await.unwrap(), 0);
    let later = SystemTime::now() + Duration::from_secs(7200);
    assert_eq!(store.expire_due(later, 100).await.unwrap(), 1);
    let tracked = store.tracked(&id).await.unwrap();
    assert_eq!(tracked.recipients[0].status, RecipientStatus::Expired);
    assert!(
        tracked.recipients[0]
            .secure
            .as_ref()
            .unwrap()
            .ended_at
            .is_some()
    );
    // The relayed recipient still needs the content.
    assert!(tracked.message.has_content);
    store
        .record(vec![outcome(&id, 1, OutcomeKind::Delivered, false)], vec![])
        .await
        .unwrap();
    let tracked = store.tracked(&id).await.unwrap();
    assert!(!tracked.message.has_content, "key and ciphertext destroyed");
    assert_eq!(
        tracked.message.subject.as_deref(),
        Some("secret"),
        "metadata kept"
    );
    assert!(matches!(
        store.load_body(&id).await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(store.expire_due(later, 100).await.unwrap(), 0);
}

#[tokio::test]
async fn recall_cancels_queued_deliveries_and_a_late_outcome_does_not_revive_them() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let (m, notification, _) = secure_message(Duration::from_secs(3600));
    let id = store.accept(m).await.unwrap();
    let outcomes = store
        .recall(
            vec![id.clone(), QueueId::generate()],
            SystemTime::now(),
            Actor::system("test"),
        )
        .await
        .unwrap();
    assert_eq!(
        outcomes,
        vec![crate::RecallOutcome {
            id: id.clone(),
            recalled: 1,
            cancelled: 1,
            destroyed: true
        }]
    );
    // One audit entry, for the message that was recalled (none for the
    // unknown id).
    let audit = crate::AdminStore::audit(
        &store,
        crate::audit::AuditQuery {
            limit: 10,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(audit.len(), 1);
    assert_eq!(
        (
            audit[0].change.action.as_str(),
            audit[0].change.object_kind.as_str()
        ),
        ("recall", "message")
    );
    assert_eq!(audit[0].change.object_id.as_deref(), Some(id.as_str()));
    assert_eq!(audit[0].change.after.as_ref().unwrap()["recalled"], 1);
    let tracked = store.tracked(&id).await.unwrap();
    assert!(
        tracked
            .recipients
            .iter()
            .all(|r| r.status == RecipientStatus::Recalled)
    );
    let n = store.tracked(&notification).await.unwrap();
    assert_eq!(n.recipients[0].status, RecipientStatus::Recalled);
    assert!(!n.message.has_content);
    // A worker that had the relay copy in flight reports a deferral: the
    // recipient stays recalled (its content is gone).
    store
        .record(
            vec![outcome(
                &id,
                1,
                OutcomeKind::Deferred {
                    retry_at: SystemTime::now(),
                },
                false,
            )],
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(
        store.tracked(&id).await.unwrap().recipients[1].status,
        RecipientStatus::Recalled
    );
    assert_eq!(
        store
            .recall(
                vec![QueueId::generate()],
                SystemTime::now(),
                Actor::system("test")
            )
            .await
            .unwrap(),
        vec![],
        "an unknown id is simply absent"
    );
}

#[tokio::test]
async fn extension_is_bounded_by_retention_and_needs_a_live_secure_delivery() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let (m, _, _) = secure_message(Duration::from_secs(3600));
    let received = m.received_at;
    let id = store.accept(m).await.unwrap();
    let retention = Duration::from_secs(10 * 86400);
    let now = SystemTime::now();
    let until = received + Duration::from_secs(5 * 86400);
    let set = store
        .extend(
            &id,
            ExtendTo::Until(until),
            retention,
            now,
            Actor::system("test"),
        )
        .await
        .unwrap();
    assert_eq!(set, until);
    // Days are added to the current expiry, in the same transaction.
    let set = store
        .extend(
            &id,
            ExtendTo::Days(2),
            retention,
            now,
            Actor::system("test"),
        )
        .await
        .unwrap();
    assert_eq!(
        crate::model::to_millis(set),
        crate::model::to_millis(until + Duration::from_secs(2 * 86400))
    );
    let past_retention = received + retention + Duration::from_secs(60);
    assert!(matches!(
        store.extend(&id, ExtendTo::Until(past_retention), retention, now, Actor::system("test")).await,
        Err(StoreError::Refused(m)) if m.contains("vault.retention")
    ));
    assert!(matches!(
        store
            .extend(
                &id,
                ExtendTo::Until(now - Duration::from_secs(1)),
                retention,
                now,
                Actor::system("test"),
            )
            .await,
        Err(StoreError::Refused(_))
    ));
    store
        .recall(vec![id.clone()], now, Actor::system("test"))
        .await
        .unwrap();
    assert!(matches!(
        store
            .extend(
                &id,
                ExtendTo::Until(until),
                retention,
                now,
                Actor::system("test")
            )
            .await,
        Err(StoreError::Refused(_))
    ));
}

#[tokio::test]
async fn rotation_rewraps_every_key_and_a_wrong_or_missing_key_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let mut ids = Vec::new();
    for i in 0..7 {
        let body = format!("Subject: {i}\r\n\r\nbody {i}\r\n");
        ids.push(
            store
                .accept(message(body.into_bytes(), &["a@x.example"]))
                .await
                .unwrap(),
        );
    }
    drop(store);

    let key_file = dir.path().join("master.key");
    let mut keyring = Keyring::load(&key_file).unwrap();
    keyring.add_version();
    keyring.save(&key_file).unwrap();
    let store = reopen(&dir).await;
    let mut after = None;
    for _ in 0..10 {
        let batch = store.rewrap_batch(after, 3).await.unwrap();
        assert!(batch.failures.is_empty());
        after = batch.next;
        if after.is_none() {
            break;
        }
    }
    assert_eq!(
        store.key_usage().await.unwrap(),
        vec![crate::KeyUsage {
            version: 2,
            messages: 7
        }]
    );
    for (i, id) in ids.iter().enumerate() {
        let body = store.load_body(id).await.unwrap();
        assert!(String::from_utf8_lossy(&body).contains(&format!("body {i}")));
    }
    drop(store);

    // Version 1 may go now that nothing uses it...
    let only_v2 = Keyring::parse(
        &keyring
            .to_text()
            .lines()
            .filter(|l| l.starts_with("2:"))
            .collect::<Vec<_>>()
            .join("\n"),
    )
    .unwrap();
    let open_with = |k: Keyring| {
        let dir = dir.path().to_owned();
        async move {
            for _ in 0..250 {
                match SqliteStore::open(
                    &dir.join("db.sqlite"),
                    &dir.join("spool"),
                    Arc::new(Vault::new(k.clone())),
                )
                .await
                {
                    Err(StoreError::Unavailable(m)) if m.contains("in use") => {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    other => return other,
                }
            }
            panic!("lock never released")
        }
    };
    let store = open_with(only_v2).await.unwrap();
    assert!(store.load_body(&ids[0]).await.is_ok());
    drop(store);
    // ...but a keyring without version 2 cannot open what is sealed with it,
    // and a different key under version 2 is refused outright.
    let only_v1 = Keyring::load(&key_file).unwrap();
    let only_v1 = Keyring::parse(
        &only_v1
            .to_text()
            .lines()
            .filter(|l| l.starts_with("1:"))
            .collect::<Vec<_>>()
            .join("\n"),
    )
    .unwrap();
    let err = open_with(only_v1).await.unwrap_err().to_string();
    assert!(err.contains("master key version 2"), "{err}");
    let mut other = Keyring::generate();
    other.add_version();
    let err = open_with(other).await.unwrap_err().to_string();
    assert!(
        err.contains("not the key this database was sealed with"),
        "{err}"
    );
}

#[tokio::test]
async fn content_stored_before_the_vault_is_sealed_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let id = store
        .accept(message(
            b"Subject: old\r\n\r\nlegacy body\r\n".to_vec(),
            &["a@x.example"],
        ))
        .await
        .unwrap();
    drop(store);
    // What a version before the vault stored: plaintext, no key.
    {
        let conn = Connection::open(dir.path().join("db.sqlite")).unwrap();
        conn.execute(
            "UPDATE messages SET content = ?2, key_version = NULL, wrapped_key = NULL WHERE id = ?1",
            rusqlite::params![id.as_str(), b"Subject: old\r\n\r\nlegacy body\r\n".as_slice()],
        )
        .unwrap();
    }
    let store = reopen(&dir).await;
    assert!(String::from_utf8_lossy(&store.load_body(&id).await.unwrap()).contains("legacy body"));
    let sealed: Vec<u8> = store
        .readers
        .read(move |conn| Ok(conn.query_row("SELECT content FROM messages", [], |r| r.get(0))?))
        .await
        .unwrap();
    assert!(!sealed.windows(11).any(|w| w == b"legacy body"));
}

#[tokio::test]
async fn tampered_content_is_never_handed_out() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let id = store
        .accept(message(
            b"Subject: t\r\n\r\nintact body\r\n".to_vec(),
            &["a@x.example"],
        ))
        .await
        .unwrap();
    drop(store);
    {
        let conn = Connection::open(dir.path().join("db.sqlite")).unwrap();
        let mut content: Vec<u8> = conn
            .query_row("SELECT content FROM messages", [], |r| r.get(0))
            .unwrap();
        content[3] ^= 0x40;
        conn.execute(
            "UPDATE messages SET content = ?1",
            rusqlite::params![content],
        )
        .unwrap();
    }
    let store = reopen(&dir).await;
    // The lease carries no content for it, and reading it says why.
    let now = SystemTime::now() + Duration::from_secs(1);
    let leased = store
        .lease_due("w", now, now + Duration::from_secs(60), 10)
        .await
        .unwrap();
    assert_eq!(leased.len(), 1);
    assert!(leased[0].content.is_none());
    let err = store.load_body(&id).await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Vault(_, sealpost_vault::VaultError::Tampered)
        ),
        "{err}"
    );
    let batch = store.verify_batch(None, 10).await.unwrap();
    assert_eq!(batch.failures.len(), 1);
    assert_eq!(batch.failures[0].0, id);
}

#[tokio::test]
async fn a_version_3_database_migrates_with_every_recipient_and_secure_record() {
    let dir = tempfile::tempdir().unwrap();
    {
        let conn = Connection::open(dir.path().join("db.sqlite")).unwrap();
        conn.pragma_update(None, "foreign_keys", true).unwrap();
        for sql in &MIGRATIONS[..3] {
            conn.execute_batch(sql).unwrap();
        }
        conn.pragma_update(None, "user_version", 3).unwrap();
        conn.execute_batch(
            "INSERT INTO messages (id, received_at, sender, client_ip, protocol, size, body_8bit,
                 smtputf8, kind, expires_at, content)
               VALUES ('00000000000000AA', 1, 'a@corp.example', '127.0.0.1', 'ESMTP', 2, 0, 0,
                 'mail', 9999999999999, X'6869');
             INSERT INTO recipients (message_id, idx, address, notify, route, status,
                 next_attempt_at, updated_at)
               VALUES ('00000000000000AA', 0, 'p@partner.example', 0, 'secure:1', 'secure', 0, 0),
                      ('00000000000000AA', 1, 'x@other.example', 0, 'relay', 'queued', 0, 0);
             INSERT INTO secure_recipients (message_id, idx, token_hash, definition_id, trigger,
                 expires_at)
               VALUES ('00000000000000AA', 0, X'00', 1, 'policy', 9999999999999);",
        )
        .unwrap();
    }
    let store = open(&dir).await;
    let (version, secure, without_rowid): (i64, i64, bool) = store
        .readers
        .read(|conn| {
            Ok((
                conn.pragma_query_value(None, "user_version", |r| r.get(0))?,
                conn.query_row("SELECT COUNT(*) FROM secure_recipients", [], |r| r.get(0))?,
                conn.query_row(
                    "SELECT sql LIKE '%WITHOUT ROWID%' FROM sqlite_schema WHERE name = 'recipients'",
                    [],
                    |r| r.get(0),
                )?,
            ))
        })
        .await
        .unwrap();
    assert_eq!(version, MIGRATIONS.len() as i64);
    assert_eq!(
        secure, 1,
        "rebuilding recipients must not cascade into secure records"
    );
    assert!(without_rowid);
    let id = QueueId::parse("00000000000000AA").unwrap();
    let tracked = store.tracked(&id).await.unwrap();
    assert_eq!(tracked.recipients.len(), 2);
    assert!(tracked.recipients[0].secure.is_some());
    let now = SystemTime::now();
    let leased = store
        .lease_due("test", now, now + Duration::from_secs(60), 10)
        .await
        .unwrap();
    assert_eq!(leased.messages.len(), 1);
    assert_eq!(leased.messages[0].recipients.len(), 1);
    assert_eq!(leased.messages[0].recipients[0].idx, 1);
    assert_eq!(leased.messages[0].content.as_deref(), Some(&b"hi"[..]));
}

#[test]
fn queue_ids_grow_with_time_and_never_repeat_in_one_process() {
    let mut last = QueueId::generate();
    let mut seen = HashSet::new();
    for _ in 0..10_000 {
        let id = QueueId::generate();
        assert!(QueueId::parse(id.as_str()).as_ref() == Some(&id));
        // The sequence may wrap inside one millisecond; the time part
        // never goes back (unless the clock does).
        assert!(
            id.as_str()[..11] >= last.as_str()[..11],
            "{id} after {last}"
        );
        assert!(seen.insert(id.clone()), "{id} repeated");
        last = id;
    }
}

#[tokio::test]
async fn read_config_reads_without_creating_or_migrating() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db.sqlite");
    assert!(SqliteStore::read_config(&db).is_err());
    assert!(!db.exists(), "a missing database is not created");

    // Beside the running store (no lock taken), and after it is gone.
    let default_only = |found: StoredConfig| match found {
        StoredConfig::Current(doc) => {
            assert_eq!(doc.definitions.len(), 1);
            assert!(doc.definitions[0].is_default);
        }
        other => panic!("{other:?}"),
    };
    let store = open(&dir).await;
    default_only(SqliteStore::read_config(&db).unwrap());
    drop(store);
    default_only(SqliteStore::read_config(&db).unwrap());

    // An older schema with the configuration tables (the check before an
    // upgrade) is read as it is and not migrated; one before them, or a
    // newer one, is reported.
    let conn = Connection::open(&db).unwrap();
    conn.pragma_update(None, "user_version", 2).unwrap();
    drop(conn);
    default_only(SqliteStore::read_config(&db).unwrap());
    let conn = Connection::open(&db).unwrap();
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .unwrap();
    assert_eq!(version, 2, "nothing migrated");
    let newer = MIGRATIONS.len() as i64 + 1;
    for found in [1, newer] {
        conn.pragma_update(None, "user_version", found).unwrap();
        assert!(matches!(
            SqliteStore::read_config(&db).unwrap(),
            StoredConfig::OtherSchema { found: f, expected } if f == found && expected == newer - 1
        ));
    }
}

mod audit;
mod branding;
mod config_writes;
mod console;
mod dashboard;
mod envelopes;
mod portal;
mod queue_admin;
mod smtp_accounts;
mod totp;

/// One default at every moment: making another the default clears the
/// one before in the same commit; an unknown id changes nothing.
#[tokio::test]
async fn another_definition_is_made_the_default() {
    use crate::{AdminStore, ConfigChange, StoreError};
    use sealpost_policy::{DefinitionDraft, DefinitionId};

    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let old = store.load_config().await.unwrap().definitions[0].id;
    let mut draft = DefinitionDraft::default_definition();
    draft.name = "Legal hold".into();
    let new = store
        .change_config(
            ConfigChange::CreateDefinition(draft),
            check(),
            Actor::system("test"),
        )
        .await
        .unwrap()
        .id
        .map(DefinitionId)
        .unwrap();
    let changed = store
        .change_config(
            ConfigChange::MakeDefaultDefinition(new),
            check(),
            Actor::system("test"),
        )
        .await
        .unwrap();
    assert_eq!(changed.set.default_definition().map(|d| d.id), Some(new));
    let doc = store.load_config().await.unwrap();
    let defaults: Vec<_> = doc.definitions.iter().filter(|d| d.is_default).collect();
    assert_eq!(defaults.len(), 1);
    assert_eq!(defaults[0].id, new);
    assert!(matches!(
        store
            .change_config(
                ConfigChange::MakeDefaultDefinition(DefinitionId(99)),
                check(),
                Actor::system("test"),
            )
            .await,
        Err(StoreError::NoSuch(_))
    ));
    // The old default may now go.
    store
        .change_config(
            ConfigChange::RemoveDefinition(old),
            check(),
            Actor::system("test"),
        )
        .await
        .unwrap();
}

/// A renewed lease keeps other workers away past its first end; a lease
/// that ran out and was taken by another worker is reported lost.
/// See: issue 17, item 5 (leases renewed while a delivery runs).
#[tokio::test]
async fn issue_17_renewed_leases_outlast_their_first_end_and_lost_ones_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let id = store
        .accept(message(
            b"Subject: hi\r\n\r\nbody\r\n".to_vec(),
            &["a@x.example"],
        ))
        .await
        .unwrap();
    let t0 = SystemTime::now() + Duration::from_secs(1);
    let leased = store
        .lease_due("w1", t0, t0 + Duration::from_secs(10), 10)
        .await
        .unwrap();
    assert_eq!(leased.recipients(), 1);
    let key = vec![(id.clone(), 0)];

    // Renewed at t0 + 5 s until t0 + 30 s: at t0 + 20 s nobody else gets it.
    let lost = store
        .renew_leases("w1", key.clone(), t0 + Duration::from_secs(30))
        .await
        .unwrap();
    assert!(lost.is_empty(), "{lost:?}");
    let t20 = t0 + Duration::from_secs(20);
    assert!(
        store
            .lease_due("w2", t20, t20 + Duration::from_secs(10), 10)
            .await
            .unwrap()
            .is_empty(),
        "a renewed lease is still live"
    );

    // Not renewed again: at t0 + 40 s w2 takes it, and w1 learns it lost it.
    let t40 = t0 + Duration::from_secs(40);
    let taken = store
        .lease_due("w2", t40, t40 + Duration::from_secs(10), 10)
        .await
        .unwrap();
    assert_eq!(taken.recipients(), 1);
    let lost = store
        .renew_leases("w1", key.clone(), t40 + Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(lost, key);
    // The holder's renewal goes on working.
    assert!(
        store
            .renew_leases("w2", key, t40 + Duration::from_secs(30))
            .await
            .unwrap()
            .is_empty()
    );
}
