//! The audit log against a real database: an entry in the same commit as
//! each change (and none for a refused one), with the object before and
//! after, the filters, and rows that cannot be edited.

use std::time::{Duration, SystemTime};

use sealpost_policy::{GroupDraft, GroupId};

use super::open;
use crate::{
    AdminStore, ApiKeyRecord, ConfigChange, ConsoleStore, Role, StoreError,
    admin::ConfigCheck,
    audit::{Actor, ActorKind, AuditQuery},
    console::{AdminName, NewAdministrator},
    portal::PasswordHash,
};

fn check() -> ConfigCheck {
    Box::new(|doc| doc.compile(&[], 365))
}

fn group(name: &str) -> GroupDraft {
    GroupDraft {
        name: name.into(),
        description: String::new(),
        addresses: vec!["p@partner.example".into()],
        domains: vec![],
        groups: vec![],
    }
}

fn all() -> AuditQuery {
    AuditQuery {
        limit: 100,
        ..AuditQuery::default()
    }
}

#[tokio::test]
async fn every_change_is_recorded_with_its_object_before_and_after() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let ann = Actor::administrator("ann", "192.0.2.7".parse().unwrap());
    let id = store
        .change_config(
            ConfigChange::CreateGroup(group("Partners")),
            check(),
            ann.clone(),
        )
        .await
        .unwrap()
        .id
        .unwrap();
    store
        .change_config(
            ConfigChange::UpdateGroup(GroupId(id), group("Partners EU")),
            check(),
            Actor::api_key("3f9c", "backup script", None),
        )
        .await
        .unwrap();
    // A refused change (an unknown group) leaves no entry.
    assert!(matches!(
        store
            .change_config(
                ConfigChange::RemoveGroup(GroupId(999)),
                check(),
                ann.clone()
            )
            .await,
        Err(StoreError::NoSuch(_))
    ));
    store
        .change_config(
            ConfigChange::RemoveGroup(GroupId(id)),
            check(),
            Actor::cli(),
        )
        .await
        .unwrap();

    let entries = store.audit(all()).await.unwrap();
    let summary: Vec<(&str, &str, Option<&str>, ActorKind)> = entries
        .iter()
        .map(|e| {
            (
                e.change.action.as_str(),
                e.change.object_kind.as_str(),
                e.change.object_id.as_deref(),
                e.actor.kind,
            )
        })
        .collect();
    let id_text = id.to_string();
    assert_eq!(
        summary,
        [
            ("delete", "group", Some(id_text.as_str()), ActorKind::Cli),
            ("update", "group", Some(id_text.as_str()), ActorKind::ApiKey),
            (
                "create",
                "group",
                Some(id_text.as_str()),
                ActorKind::Administrator
            ),
        ],
        "newest first, nothing for the refused change"
    );
    let (delete, update, create) = (&entries[0], &entries[1], &entries[2]);
    assert_eq!(create.change.before, None);
    assert_eq!(create.change.after.as_ref().unwrap()["name"], "Partners");
    assert_eq!(create.actor.client_ip, Some("192.0.2.7".parse().unwrap()));
    assert_eq!(update.change.before.as_ref().unwrap()["name"], "Partners");
    assert_eq!(update.change.after.as_ref().unwrap()["name"], "Partners EU");
    assert_eq!(update.actor.name, "3f9c (backup script)");
    assert_eq!(
        delete.change.before.as_ref().unwrap()["name"],
        "Partners EU"
    );
    assert_eq!(delete.change.after, None);

    // API keys and administrators are recorded too, never their secrets.
    store
        .create_api_key(
            ApiKeyRecord {
                id: "k1".into(),
                secret_hash: vec![7; 32],
                role: Role::ReadOnly,
                name: "ci".into(),
                last_used_at: None,
            },
            ann.clone(),
        )
        .await
        .unwrap();
    assert!(store.revoke_api_key("k1", ann.clone()).await.unwrap());
    let dana = AdminName::parse("dana").unwrap();
    store
        .create_administrator(
            NewAdministrator {
                name: dana.clone(),
                role: Role::PolicyAdmin,
                password: PasswordHash::new("$argon2id$v=19$secret-hash".into()),
                must_change_password: true,
                now: SystemTime::now(),
            },
            ann.clone(),
        )
        .await
        .unwrap();
    store
        .set_administrator_role(&dana, Role::ReadOnly, ann.clone())
        .await
        .unwrap();
    let entries = store.audit(all()).await.unwrap();
    let text = serde_json::to_string(&entries).unwrap();
    assert!(
        !text.contains("secret-hash") && !text.contains("0707"),
        "{text}"
    );
    let role_change = &entries[0];
    assert_eq!(role_change.change.action, "set_role");
    assert_eq!(
        role_change.change.before.as_ref().unwrap()["role"],
        "policy_admin"
    );
    assert_eq!(
        role_change.change.after.as_ref().unwrap()["role"],
        "read_only"
    );
    assert_eq!(entries[2].change.action, "delete");
    assert_eq!(entries[2].change.object_kind, "api_key");

    // Filters and paging.
    let only = |q: AuditQuery| {
        let store = &store;
        async move { store.audit(AuditQuery { limit: 100, ..q }).await.unwrap() }
    };
    assert_eq!(
        only(AuditQuery {
            object_kind: Some("group".into()),
            ..AuditQuery::default()
        })
        .await
        .len(),
        3
    );
    assert_eq!(
        only(AuditQuery {
            actor_kind: Some(ActorKind::Cli),
            ..AuditQuery::default()
        })
        .await
        .len(),
        1
    );
    assert_eq!(
        only(AuditQuery {
            actor: Some("BACKUP".into()),
            ..AuditQuery::default()
        })
        .await
        .len(),
        1,
        "part of the name, any case"
    );
    let later = SystemTime::now() + Duration::from_secs(60);
    assert!(
        only(AuditQuery {
            since: Some(later),
            ..AuditQuery::default()
        })
        .await
        .is_empty()
    );
    let first = store
        .audit(AuditQuery {
            limit: 2,
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    let rest = only(AuditQuery {
        before_id: Some(first[1].id),
        ..AuditQuery::default()
    })
    .await;
    assert_eq!(first.len() + rest.len(), entries.len());
}

#[tokio::test]
async fn entries_cannot_be_edited_or_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    store
        .change_config(ConfigChange::CreateGroup(group("G")), check(), Actor::cli())
        .await
        .unwrap();
    let conn = rusqlite::Connection::open(dir.path().join("db.sqlite")).unwrap();
    for sql in [
        "UPDATE audit_log SET actor = 'someone else'",
        "DELETE FROM audit_log",
    ] {
        let e = conn.execute(sql, []).unwrap_err().to_string();
        assert!(e.contains("the audit log is never edited"), "{sql}: {e}");
    }
    assert_eq!(
        store.audit(all()).await.unwrap()[0].actor.kind,
        ActorKind::Cli
    );
}
