//! Online rotation against a real SQLite store and key file: new mail is
//! sealed under the new version at once, stored keys are re-wrapped in
//! batches with progress, and an interrupted rotation is resumed.

use std::{sync::Arc, time::Duration};

use sealpost_policy::{Decision, EmailAddress};
use sealpost_store::{
    AdminStore, ClientInfo, MessageKind, NewMessage, NewRecipient, Notify, QueueId, SecureStore,
    SqliteStore, Store,
    audit::{Actor, AuditQuery},
};
use sealpost_vault::{Keyring, Vault};

use super::{KeyRotation, RotationError, RotationState};

struct Fixture {
    _dir: tempfile::TempDir,
    key_file: std::path::PathBuf,
    store: Arc<SqliteStore>,
    vault: Arc<Vault>,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("master.key");
    let vault = Arc::new(Vault::new(Keyring::load_or_create(&key_file).unwrap()));
    let store = Arc::new(
        SqliteStore::open(
            &dir.path().join("db.sqlite"),
            &dir.path().join("spool"),
            vault.clone(),
        )
        .await
        .unwrap(),
    );
    Fixture {
        _dir: dir,
        key_file,
        store,
        vault,
    }
}

fn message(k: usize) -> NewMessage {
    let now = std::time::SystemTime::now();
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
        format!("Subject: {k}\r\n\r\nbody {k}\r\n").into_bytes(),
        now + Duration::from_secs(86400),
        MessageKind::Mail,
        vec![NewRecipient {
            address: EmailAddress::parse(&format!("r{k}@ext.example")).unwrap(),
            orcpt: None,
            notify: Notify::default(),
            decision: Decision::RELAY,
        }],
    )
}

async fn usage(store: &SqliteStore) -> Vec<(u32, u64)> {
    store
        .key_usage()
        .await
        .unwrap()
        .into_iter()
        .map(|u| (u.version, u.messages))
        .collect()
}

/// Waits (bounded: 20 s) until the rotation is no longer running.
async fn finished(rotation: &KeyRotation) -> super::RotationStatus {
    for _ in 0..2000 {
        let status = rotation.status();
        if status.state != RotationState::Running {
            return status;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the rotation did not finish: {:?}", rotation.status());
}

#[tokio::test]
async fn new_mail_is_sealed_under_the_new_version_at_once_and_old_keys_are_rewrapped() {
    let f = fixture().await;
    let mut ids = Vec::new();
    for k in 0..450 {
        ids.push(f.store.accept(message(k)).await.unwrap());
    }
    assert_eq!(usage(&f.store).await, [(1, 450)]);
    let rotation = KeyRotation::new(
        f.store.clone(),
        f.vault.clone(),
        Some(f.key_file.clone()),
        100,
    );
    let started = rotation.start(Actor::system("test")).await.unwrap();
    assert_eq!(started.version, 2);
    assert_eq!(started.state, RotationState::Running);
    // The key file has the new version before anything uses it.
    assert_eq!(Keyring::load(&f.key_file).unwrap().versions(), [1, 2]);
    // A second request while it runs is refused.
    assert!(matches!(
        rotation.start(Actor::system("test")).await,
        Err(RotationError::Running)
    ));
    // Mail accepted now is sealed under version 2 whatever the re-wrap's
    // progress.
    let during = f.store.accept(message(1000)).await.unwrap();
    ids.push(during.clone());

    let status = finished(&rotation).await;
    assert_eq!(status.state, RotationState::Complete, "{status:?}");
    assert_eq!((status.done, status.total, status.failures), (450, 450, 0));
    assert_eq!(usage(&f.store).await, [(2, 451)]);
    for id in &ids {
        let content = f.store.load_body(id).await.unwrap();
        assert!(content.starts_with(b"Subject: "), "{id} opens");
    }

    let audit = f
        .store
        .audit(AuditQuery {
            limit: 10,
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    let actions: Vec<&str> = audit
        .iter()
        .filter(|e| e.change.object_kind == "master_key")
        .map(|e| e.change.action.as_str())
        .collect();
    assert!(actions.contains(&"rotate"), "{actions:?}");
    assert!(actions.contains(&"rewrapped"), "{actions:?}");

    // Nothing behind: the next rotation adds version 3.
    let again = rotation.start(Actor::system("test")).await.unwrap();
    assert_eq!(again.version, 3);
    assert_eq!(finished(&rotation).await.done, 451);
}

#[tokio::test]
async fn an_interrupted_rotation_is_resumed_without_a_new_version() {
    let f = fixture().await;
    for k in 0..120 {
        f.store.accept(message(k)).await.unwrap();
    }
    // A rotation that stopped right after adding its version: the key file
    // and the vault have version 2, no message key was re-wrapped.
    let mut keyring = (*f.vault.keyring()).clone();
    keyring.add_version();
    keyring.save(&f.key_file).unwrap();
    f.vault.install(keyring).unwrap();
    assert_eq!(usage(&f.store).await, [(1, 120)]);

    let rotation = KeyRotation::new(
        f.store.clone(),
        f.vault.clone(),
        Some(f.key_file.clone()),
        50,
    );
    assert!(rotation.resume_if_needed().await.unwrap());
    let status = finished(&rotation).await;
    assert_eq!((status.state, status.version), (RotationState::Complete, 2));
    assert_eq!(status.done, 120);
    assert_eq!(usage(&f.store).await, [(2, 120)]);
    assert_eq!(Keyring::load(&f.key_file).unwrap().versions(), [1, 2]);
    assert!(!rotation.resume_if_needed().await.unwrap(), "nothing left");
}

#[tokio::test]
async fn keys_from_the_environment_cannot_get_a_version_here() {
    let f = fixture().await;
    let rotation = KeyRotation::new(f.store.clone(), f.vault.clone(), None, 50);
    let err = rotation.start(Actor::system("test")).await.unwrap_err();
    assert!(
        matches!(err, RotationError::KeysFromEnvironment { next: 2 }),
        "{err}"
    );
    assert!(err.to_string().contains("SEALPOST_MASTER_KEY"));
    assert_eq!(rotation.status().state, RotationState::Failed);
    assert_eq!(f.vault.keyring().current().version(), 1);
}
