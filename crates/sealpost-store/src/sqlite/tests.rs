//! The SQLite store against a real database file.

use std::time::{Duration, SystemTime};

use sealpost_policy::{Decision, EmailAddress, PolicyId, Route};

use super::*;
use crate::{
    ClientInfo, MessageKind, NewRecipient, Notify, OutcomeKind, RecipientStatus, model::from_millis,
};

fn message(content: Vec<u8>, rcpts: &[&str]) -> NewMessage {
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
                },
                RecipientOutcome {
                    message: id.clone(),
                    notification: false,
                    idx: 1,
                    attempted_at: now,
                    result: OutcomeKind::Deferred { retry_at },
                    reply: "451 later".into(),
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
        .change_config(ConfigChange::CreatePolicy(policy), check())
        .await
        .unwrap();
    assert_eq!(changed.set.policies().len(), 1);

    // Deleting the group the policy names is refused, and nothing changes.
    let err = store
        .change_config(ConfigChange::RemoveGroup(GroupId(group)), check())
        .await
        .unwrap_err();
    match err {
        StoreError::Rejected(e) => assert_eq!(e.code, "unknown_group", "{e}"),
        other => panic!("{other}"),
    }
    assert_eq!(store.load_config().await.unwrap().groups.len(), 1);

    // The default definition cannot be deleted; a missing one is NoSuch.
    let err = store
        .change_config(ConfigChange::RemoveDefinition(default), check())
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Rejected(ref e) if e.code == "default_definition"),
        "{err}"
    );
    let err = store
        .change_config(ConfigChange::RemoveDefinition(DefinitionId(99)), check())
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
