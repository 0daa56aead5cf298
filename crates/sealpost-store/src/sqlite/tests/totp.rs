//! Administrators' two-step sign-in against a real database: enrolment
//! confirmed before it counts, the secret sealed at rest, a time step
//! accepted once, recovery codes once each, pending sign-ins bounded,
//! and every switch audited without the secret.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::open;
use crate::{
    AdminStore, ConsoleStore, Role, SecureStore, StoreError,
    audit::{Actor, AuditQuery},
    console::{
        AdminName, NewAdministrator, PENDING_ATTEMPTS, PENDING_SIGN_IN_FOR, RecoveryCodeHash,
        TotpOff, TotpSecret,
    },
    portal::{PasswordHash, SessionHash, SessionLimits},
};

fn t0() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

fn name(text: &str) -> AdminName {
    AdminName::parse(text).unwrap()
}

const SECRET: &[u8; 20] = b"0123456789abcdefghij";

async fn with_admin(dir: &tempfile::TempDir) -> crate::SqliteStore {
    let store = open(dir).await;
    store
        .create_administrator(
            NewAdministrator {
                name: name("ann"),
                role: Role::SuperAdmin,
                password: PasswordHash::new("$argon2id$v=19$m=19456,t=2,p=1$x".into()),
                must_change_password: false,
                now: t0(),
            },
            Actor::system("test"),
        )
        .await
        .unwrap();
    store
}

#[tokio::test]
async fn totp_is_on_only_once_confirmed_and_its_secret_is_sealed() {
    let dir = tempfile::tempdir().unwrap();
    let store = with_admin(&dir).await;
    let ann = name("ann");
    assert!(store.admin_totp(&ann).await.unwrap().is_none());
    assert!(
        !store
            .start_admin_totp(&name("nobody"), TotpSecret::new(SECRET.to_vec()), t0())
            .await
            .unwrap()
    );
    assert!(
        store
            .start_admin_totp(&ann, TotpSecret::new(SECRET.to_vec()), t0())
            .await
            .unwrap()
    );
    let pending = store.admin_totp(&ann).await.unwrap().unwrap();
    assert!(!pending.enabled);
    assert_eq!(pending.secret.expose(), SECRET);
    assert!(!store.administrator(&ann).await.unwrap().unwrap().totp);
    assert!(
        !store.accept_admin_totp_step(&ann, 5).await.unwrap(),
        "not on yet"
    );

    // Nothing of the secret in the database file.
    let raw = std::fs::read(dir.path().join("db.sqlite")).unwrap();
    let wal = std::fs::read(dir.path().join("db.sqlite-wal")).unwrap_or_default();
    for bytes in [&raw, &wal] {
        assert!(!bytes.windows(SECRET.len()).any(|w| w == SECRET));
    }

    let codes: Vec<_> = (1..=10u8).map(|i| RecoveryCodeHash([i; 32])).collect();
    let actor = Actor::administrator("ann", "192.0.2.1".parse().unwrap());
    assert!(
        store
            .enable_admin_totp(&ann, 100, codes, t0(), actor.clone())
            .await
            .unwrap()
    );
    assert!(
        !store
            .enable_admin_totp(&ann, 101, vec![], t0(), actor.clone())
            .await
            .unwrap(),
        "once"
    );
    let on = store.admin_totp(&ann).await.unwrap().unwrap();
    assert!(on.enabled);
    assert_eq!(on.last_step, Some(100));
    assert_eq!(on.recovery_codes_left, 10);
    assert!(store.administrator(&ann).await.unwrap().unwrap().totp);
    let again = store
        .start_admin_totp(&ann, TotpSecret::new(vec![7; 20]), t0())
        .await;
    assert!(matches!(again, Err(StoreError::Refused(_))), "{again:?}");

    // A step is accepted once, never an earlier one.
    assert!(!store.accept_admin_totp_step(&ann, 100).await.unwrap());
    assert!(store.accept_admin_totp_step(&ann, 101).await.unwrap());
    assert!(!store.accept_admin_totp_step(&ann, 101).await.unwrap());
    assert!(!store.accept_admin_totp_step(&ann, 99).await.unwrap());

    // A recovery code works once.
    let code = RecoveryCodeHash([3; 32]);
    assert!(
        store
            .use_admin_recovery_code(&ann, code, t0())
            .await
            .unwrap()
    );
    assert!(
        !store
            .use_admin_recovery_code(&ann, code, t0())
            .await
            .unwrap()
    );
    assert!(
        !store
            .use_admin_recovery_code(&ann, RecoveryCodeHash([99; 32]), t0())
            .await
            .unwrap()
    );
    assert_eq!(
        store
            .admin_totp(&ann)
            .await
            .unwrap()
            .unwrap()
            .recovery_codes_left,
        9
    );

    let reset_by = Actor::administrator("root", "192.0.2.2".parse().unwrap());
    assert!(
        store
            .disable_admin_totp(&ann, TotpOff::Reset, reset_by)
            .await
            .unwrap()
    );
    assert!(store.admin_totp(&ann).await.unwrap().is_none());
    assert!(
        !store
            .disable_admin_totp(&ann, TotpOff::Disabled, actor)
            .await
            .unwrap()
    );
    assert!(
        !store
            .use_admin_recovery_code(&ann, RecoveryCodeHash([4; 32]), t0())
            .await
            .unwrap()
    );

    let entries = store
        .audit(AuditQuery {
            object_id: Some("ann".into()),
            limit: 10,
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    let actions: Vec<_> = entries.iter().map(|e| e.change.action.as_str()).collect();
    assert_eq!(actions, ["reset_totp", "enable_totp", "create"]);
    let reset = &entries[0].change;
    assert_eq!(reset.before.as_ref().unwrap()["totp"], true);
    assert_eq!(reset.before.as_ref().unwrap()["recovery_codes_left"], 9);
    assert_eq!(reset.after.as_ref().unwrap()["totp"], false);
    assert_eq!(entries[0].actor.name, "root");
    let enable = &entries[1].change;
    assert_eq!(enable.before.as_ref().unwrap()["totp"], false);
    let text = serde_json::to_string(&entries).unwrap();
    assert!(!text.contains("0123456789"), "no secret: {text}");
}

#[tokio::test]
async fn a_pending_sign_in_lasts_five_minutes_and_a_few_wrong_codes() {
    let dir = tempfile::tempdir().unwrap();
    let store = with_admin(&dir).await;
    let ann = name("ann");
    let id = SessionHash([9; 32]);
    store
        .create_admin_pending_sign_in(id, &ann, t0())
        .await
        .unwrap();
    let found = store
        .admin_pending_sign_in(id, t0() + Duration::from_secs(60))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.name, ann);
    assert_eq!(found.attempts, 0);
    assert!(
        store
            .admin_pending_sign_in(id, t0() + PENDING_SIGN_IN_FOR)
            .await
            .unwrap()
            .is_none(),
        "expired"
    );
    assert!(
        store
            .admin_pending_sign_in(SessionHash([8; 32]), t0())
            .await
            .unwrap()
            .is_none()
    );
    for n in 1..=PENDING_ATTEMPTS {
        assert_eq!(store.fail_admin_pending_sign_in(id).await.unwrap(), n);
    }
    assert!(
        store
            .admin_pending_sign_in(id, t0())
            .await
            .unwrap()
            .is_none(),
        "out of attempts"
    );
    assert!(store.end_admin_pending_sign_in(id).await.unwrap());
    assert!(!store.end_admin_pending_sign_in(id).await.unwrap());

    // Purged with the sessions once old.
    let other = SessionHash([10; 32]);
    store
        .create_admin_pending_sign_in(other, &ann, t0())
        .await
        .unwrap();
    let limits = SessionLimits {
        idle: Duration::from_secs(1800),
        absolute: Duration::from_secs(43200),
    };
    store
        .purge_admin_sessions(limits, t0() + PENDING_SIGN_IN_FOR)
        .await
        .unwrap();
    assert!(!store.end_admin_pending_sign_in(other).await.unwrap());
}

#[tokio::test]
async fn key_rotation_rewraps_totp_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let store = with_admin(&dir).await;
    let ann = name("ann");
    store
        .start_admin_totp(&ann, TotpSecret::new(SECRET.to_vec()), t0())
        .await
        .unwrap();
    drop(store);
    let key_file = dir.path().join("master.key");
    let mut keyring = sealpost_vault::Keyring::load(&key_file).unwrap();
    keyring.add_version();
    keyring.save(&key_file).unwrap();
    let store = super::reopen(&dir).await;
    let batch = store.rewrap_batch(None, 10).await.unwrap();
    assert_eq!(batch.checked, 1, "the TOTP secret");
    assert!(batch.next.is_none());
    // It opens with only the new version now.
    drop(store);
    let keyring = sealpost_vault::Keyring::load(&key_file).unwrap();
    let only_new = sealpost_vault::Keyring::parse(
        keyring
            .to_text()
            .lines()
            .filter(|l| !l.starts_with("1:"))
            .collect::<Vec<_>>()
            .join("\n")
            .as_str(),
    )
    .unwrap();
    only_new.save(&key_file).unwrap();
    let store = super::reopen(&dir).await;
    assert_eq!(
        store
            .admin_totp(&ann)
            .await
            .unwrap()
            .unwrap()
            .secret
            .expose(),
        SECRET
    );
}
