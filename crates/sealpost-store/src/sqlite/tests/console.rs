//! The console's administrators ([`ConsoleStore`]) against a real
//! database: accounts, one-time passwords, the last super admin, failure
//! counters and sessions kept apart from the portal's.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::open;
use crate::audit::Actor;
use crate::{
    ConsoleStore, PortalStore, Role, StoreError,
    console::{AdminName, NewAdminSession, NewAdministrator},
    portal::{CsrfSecret, PasswordHash, SessionHash, SessionLimits},
};

fn t0() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

const LIMITS: SessionLimits = SessionLimits {
    idle: Duration::from_secs(30 * 60),
    absolute: Duration::from_secs(12 * 3600),
};

fn name(text: &str) -> AdminName {
    AdminName::parse(text).unwrap()
}

fn new_admin(text: &str, role: Role) -> NewAdministrator {
    NewAdministrator {
        name: name(text),
        role,
        password: PasswordHash::new(format!("$argon2id$v=19$m=19456,t=2,p=1${text}")),
        must_change_password: true,
        now: t0(),
    }
}

fn session(id: u8, admin: &str, now: SystemTime) -> NewAdminSession {
    NewAdminSession {
        id: SessionHash([id; 32]),
        name: name(admin),
        csrf: CsrfSecret([id ^ 0x55; 32]),
        client_ip: "192.0.2.7".parse().unwrap(),
        user_agent: "test".into(),
        now,
    }
}

#[tokio::test]
async fn administrators_are_created_once_and_listed_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    assert!(store.administrators().await.unwrap().is_empty());
    assert!(
        store
            .create_administrator(new_admin("zoe", Role::ReadOnly), Actor::system("test"))
            .await
            .unwrap()
    );
    assert!(
        store
            .create_administrator(new_admin("Ann", Role::SuperAdmin), Actor::system("test"))
            .await
            .unwrap()
    );
    assert!(
        !store
            .create_administrator(new_admin("ANN", Role::ReadOnly), Actor::system("test"))
            .await
            .unwrap(),
        "names compare in lower case"
    );
    let all = store.administrators().await.unwrap();
    let names: Vec<_> = all.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["ann", "zoe"]);
    let ann = store.administrator(&name("ann")).await.unwrap().unwrap();
    assert_eq!(ann.role, Role::SuperAdmin, "the first one's role stands");
    assert!(ann.must_change_password);
    assert_eq!(ann.created_at, t0());
    assert_eq!(ann.last_sign_in_at, None);
}

#[tokio::test]
async fn a_new_password_ends_the_other_sessions_and_the_last_super_admin_stays() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    store
        .create_administrator(new_admin("ann", Role::SuperAdmin), Actor::system("test"))
        .await
        .unwrap();
    store
        .create_administrator(new_admin("bob", Role::PolicyAdmin), Actor::system("test"))
        .await
        .unwrap();
    let at = t0() + Duration::from_secs(60);
    for id in [1, 2] {
        store
            .create_admin_session(session(id, "ann", at))
            .await
            .unwrap();
    }
    store
        .create_admin_session(session(3, "bob", at))
        .await
        .unwrap();
    let ann = store.administrator(&name("ann")).await.unwrap().unwrap();
    assert_eq!(ann.last_sign_in_at, Some(at));

    // Ann changes her own password in session 1: session 2 ends.
    let later = at + Duration::from_secs(60);
    let new = PasswordHash::new("$argon2id$v=19$m=19456,t=2,p=1$new".into());
    assert!(
        store
            .set_administrator_password(
                &name("ann"),
                new.clone(),
                false,
                Some(SessionHash([1; 32])),
                later,
                Actor::system("test")
            )
            .await
            .unwrap()
    );
    let live = |id: u8| store.admin_session(SessionHash([id; 32]), LIMITS, later);
    assert!(live(1).await.unwrap().is_some());
    assert!(live(2).await.unwrap().is_none());
    let ann = store.administrator(&name("ann")).await.unwrap().unwrap();
    assert!(!ann.must_change_password);
    assert_eq!(ann.password, new);
    assert!(
        !store
            .set_administrator_password(
                &name("nobody"),
                new.clone(),
                true,
                None,
                later,
                Actor::system("test")
            )
            .await
            .unwrap()
    );

    // Ann is the only super admin: she keeps the role and stays; Bob
    // goes, with his session.
    assert!(matches!(
        store.set_administrator_role(&name("ann"), Role::ReadOnly, Actor::system("test")).await,
        Err(StoreError::Refused(m)) if m.contains("last super admin")
    ));
    assert!(
        store
            .set_administrator_role(&name("bob"), Role::TrackingAdmin, Actor::system("test"))
            .await
            .unwrap()
    );
    assert_eq!(
        store
            .administrator(&name("bob"))
            .await
            .unwrap()
            .unwrap()
            .role,
        Role::TrackingAdmin
    );
    assert!(
        !store
            .set_administrator_role(&name("nobody"), Role::ReadOnly, Actor::system("test"))
            .await
            .unwrap()
    );
    assert!(matches!(
        store.remove_administrator(&name("ann"), Actor::system("test")).await,
        Err(StoreError::Refused(m)) if m.contains("last super admin")
    ));
    assert!(
        store
            .remove_administrator(&name("bob"), Actor::system("test"))
            .await
            .unwrap()
    );
    assert!(live(3).await.unwrap().is_none());
    assert!(
        !store
            .remove_administrator(&name("bob"), Actor::system("test"))
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn failures_count_until_a_sign_in_and_sessions_keep_their_limits() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    store
        .create_administrator(new_admin("ann", Role::TrackingAdmin), Actor::system("test"))
        .await
        .unwrap();
    for n in 1..=3 {
        assert_eq!(
            store
                .record_failed_admin_sign_in(&name("ann"), t0())
                .await
                .unwrap(),
            Some(n)
        );
    }
    assert_eq!(
        store
            .record_failed_admin_sign_in(&name("eve"), t0())
            .await
            .unwrap(),
        None
    );
    store
        .create_admin_session(session(9, "ann", t0()))
        .await
        .unwrap();
    let ann = store.administrator(&name("ann")).await.unwrap().unwrap();
    assert_eq!(ann.failed_sign_ins, 0);
    assert!(matches!(
        store.create_admin_session(session(8, "eve", t0())).await,
        Err(StoreError::NoSuch(_))
    ));

    let id = SessionHash([9; 32]);
    let found = store
        .admin_session(id, LIMITS, t0())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.name.as_str(), "ann");
    assert!(!found.needs_touch(t0()));
    assert!(found.needs_touch(t0() + Duration::from_secs(61)));
    // Idle for longer than the limit: gone, and never revived by a touch.
    let idle = t0() + LIMITS.idle + Duration::from_secs(1);
    assert!(
        store
            .admin_session(id, LIMITS, idle)
            .await
            .unwrap()
            .is_none()
    );
    assert!(!store.touch_admin_session(id, LIMITS, idle).await.unwrap());
    assert_eq!(store.purge_admin_sessions(LIMITS, idle).await.unwrap(), 1);
    assert!(!store.end_admin_session(id).await.unwrap());
}

/// A recipient's session id never opens the console, nor the reverse:
/// each kind of session has its own table.
#[tokio::test]
async fn portal_and_console_sessions_never_mix() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    store
        .create_administrator(new_admin("ann", Role::SuperAdmin), Actor::system("test"))
        .await
        .unwrap();
    store
        .create_admin_session(session(4, "ann", t0()))
        .await
        .unwrap();
    let id = SessionHash([4; 32]);
    assert!(store.session(id, LIMITS, t0()).await.unwrap().is_none());
    assert!(!store.end_session(id).await.unwrap());
    assert!(
        store
            .admin_session(id, LIMITS, t0())
            .await
            .unwrap()
            .is_some()
    );
}
