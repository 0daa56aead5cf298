//! Configuration changes checked outside the writer (issue 17, item 8):
//! the in-memory configuration stays equal to the database through every
//! kind of change, a stale one is noticed by its generation, an import is
//! written in batches, and an SMTP commit never waits for a check.

use std::time::{Duration, Instant};

use sealpost_policy::{
    DefinitionDraft, DefinitionId, GroupDraft, GroupId, PolicyDocument, PolicyDraft, PolicyId,
    UserDraft,
};

use super::{message, open};
use crate::{
    AdminStore, ConfigChange, Store, StoreError,
    admin::ConfigCheck,
    audit::{Actor, AuditQuery},
    sqlite::{SqliteStore, config_writes},
};

fn check() -> ConfigCheck {
    Box::new(|doc| doc.compile(&[], 3650))
}

fn user(address: &str, department: &str) -> UserDraft {
    UserDraft {
        address: address.into(),
        display_name: format!(" {address} "),
        attributes: [("Department".to_owned(), department.to_owned())].into(),
    }
}

fn group(name: &str, groups: &[i64]) -> GroupDraft {
    GroupDraft {
        name: name.into(),
        description: String::new(),
        addresses: vec!["p@partner.example".into()],
        domains: vec!["partner.example".into()],
        groups: groups.iter().map(|g| GroupId(*g)).collect(),
    }
}

fn policy(definition: i64, group: i64) -> PolicyDraft {
    serde_json::from_str(&format!(
        r#"{{"action": "apply_definition", "definition_id": {definition},
            "from": {{"kind": "internal"}}, "to": {{"kind": "group", "group_id": {group}}}}}"#
    ))
    .unwrap()
}

async fn change(store: &SqliteStore, change: ConfigChange) -> Result<Option<i64>, StoreError> {
    store
        .change_config(change, check(), Actor::system("test"))
        .await
        .map(|c| c.id)
}

/// The configuration the store holds in memory.
async fn cached(store: &SqliteStore) -> PolicyDocument {
    let cache = store.config_cache.lock().await;
    (*cache.as_ref().expect("filled by a change").document).clone()
}

async fn generation(store: &SqliteStore) -> i64 {
    store.readers.read(config_writes::generation).await.unwrap()
}

#[tokio::test]
async fn every_kind_of_change_leaves_memory_and_database_alike() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let old_default = store.load_config().await.unwrap().definitions[0].id;
    let mut legal = DefinitionDraft::default_definition();
    legal.name = "Legal".into();
    let many: Vec<UserDraft> = (0..1_234)
        .map(|k| user(&format!("User{k}@Corp.Example"), "Sales"))
        .collect();
    let steps: Vec<ConfigChange> = vec![
        ConfigChange::AddInternalDomain("Corp.Example".into()),
        ConfigChange::AddInternalDomain("*.corp-group.example".into()),
        ConfigChange::AddInternalDomain("b.example".into()),
        ConfigChange::RemoveInternalDomain("B.example".into()),
        ConfigChange::PutUser(user("Zed@Corp.Example", "Legal")),
        ConfigChange::PutUser(user("zed@corp.example", "Finance")),
        ConfigChange::ImportUsers(many),
        ConfigChange::RemoveUser("USER7@corp.example".into()),
        ConfigChange::CreateGroup(group("Partners", &[])),
        ConfigChange::CreateGroup(group("All outside", &[1])),
        ConfigChange::UpdateGroup(GroupId(1), group("Partners EU", &[])),
        ConfigChange::CreateDefinition(legal.clone()),
        ConfigChange::UpdateDefinition(old_default, DefinitionDraft::default_definition()),
        ConfigChange::MakeDefaultDefinition(DefinitionId(old_default.0 + 1)),
        ConfigChange::RemoveDefinition(old_default),
        ConfigChange::CreatePolicy(policy(old_default.0 + 1, 2)),
        ConfigChange::CreatePolicy(policy(old_default.0 + 1, 1)),
        ConfigChange::UpdatePolicy(PolicyId(1), policy(old_default.0 + 1, 1)),
        ConfigChange::RemovePolicy(PolicyId(2)),
        // Ids are never reused: this one gets 3.
        ConfigChange::CreatePolicy(policy(old_default.0 + 1, 2)),
        ConfigChange::RemoveGroup(GroupId(99)),
        ConfigChange::RemovePolicy(PolicyId(2)),
        ConfigChange::RemoveUser("nobody@corp.example".into()),
        ConfigChange::AddInternalDomain("corp.example".into()),
    ];
    let mut created = Vec::new();
    for (i, step) in steps.into_iter().enumerate() {
        let before = generation(&store).await;
        let outcome = change(&store, step.clone()).await;
        let from_db = store.load_config().await.unwrap();
        match outcome {
            Ok(id) => {
                created.push(id);
                assert!(generation(&store).await > before, "step {i}: {step:?}");
            }
            Err(StoreError::NoSuch(_) | StoreError::Rejected(_)) => {
                assert_eq!(generation(&store).await, before, "step {i}: refused");
            }
            Err(e) => panic!("step {i}: {e}"),
        }
        assert_eq!(cached(&store).await, from_db, "step {i}: {step:?}");
    }
    let doc = store.load_config().await.unwrap();
    assert_eq!(
        doc.internal_domains,
        ["*.corp-group.example", "corp.example"]
    );
    assert_eq!(doc.users.len(), 1_234, "1,234 imported + zed - user7");
    assert!(created.contains(&Some(3)), "{created:?}");
    assert_eq!(
        doc.policies.iter().map(|p| p.id.0).collect::<Vec<_>>(),
        [1, 3]
    );

    // A whole document replaced (an import of an export), then changed.
    let mut replacement = doc.clone();
    replacement.internal_domains.push("NEW.example".to_owned());
    replacement.users.push(user("zed@corp.example", "HR"));
    change(&store, ConfigChange::Replace(replacement))
        .await
        .unwrap();
    assert_eq!(cached(&store).await, store.load_config().await.unwrap());
    let id = change(&store, ConfigChange::CreateGroup(group("After", &[])))
        .await
        .unwrap();
    assert_eq!(id, Some(3));
    assert_eq!(cached(&store).await, store.load_config().await.unwrap());
}

#[tokio::test]
async fn a_change_checked_against_a_stale_configuration_is_checked_again() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let default = store.load_config().await.unwrap().definitions[0].id.0;
    change(&store, ConfigChange::CreateGroup(group("Partners", &[])))
        .await
        .unwrap();
    // Another writer of the database (another process sharing it) adds a
    // group the store's memory does not have.
    store
        .writer
        .write(true, |conn, _| {
            conn.execute(
                "INSERT INTO profile_groups (id, doc, updated_at) VALUES (7, ?1, 0)",
                [serde_json::to_string(&group("Elsewhere", &[])).unwrap()],
            )?;
            conn.execute(
                "UPDATE config_generation SET generation = generation + 1",
                [],
            )?;
            Ok(())
        })
        .await
        .unwrap();
    // Checked against the stale memory, this policy would name an unknown
    // group and be refused.
    let changed = store
        .change_config(
            ConfigChange::CreatePolicy(policy(default, 7)),
            check(),
            Actor::system("test"),
        )
        .await
        .unwrap();
    assert_eq!(changed.set.policies().len(), 1);
    assert_eq!(changed.set.group_name(GroupId(7)), Some("Elsewhere"));
    assert_eq!(cached(&store).await, store.load_config().await.unwrap());
}

#[tokio::test]
async fn an_import_is_written_in_batches_with_one_audit_entry() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let before = generation(&store).await;
    let users: Vec<UserDraft> = (0..1_234)
        .map(|k| user(&format!("u{k}@corp.example"), "Legal"))
        .collect();
    let n = users.len();
    let imported = change(&store, ConfigChange::ImportUsers(users))
        .await
        .unwrap();
    assert_eq!(imported, Some(n as i64));
    assert_eq!(
        generation(&store).await - before,
        n.div_ceil(config_writes::IMPORT_BATCH) as i64,
        "one commit per batch"
    );
    assert_eq!(store.load_config().await.unwrap().users.len(), n);
    let entries = store
        .audit(AuditQuery {
            limit: 100,
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    let imports: Vec<_> = entries
        .iter()
        .filter(|e| e.change.object_kind == "directory_users")
        .collect();
    assert_eq!(imports.len(), 1, "{entries:?}");

    // A bad user anywhere refuses the whole import before anything is
    // written.
    let mut bad: Vec<UserDraft> = (0..1_100)
        .map(|k| user(&format!("v{k}@corp.example"), "Legal"))
        .collect();
    bad[1_050].address = "not an address".into();
    let before = generation(&store).await;
    match change(&store, ConfigChange::ImportUsers(bad)).await {
        Err(StoreError::Rejected(e)) => assert_eq!(e.field, "[1050].address", "{e}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(generation(&store).await, before);
    assert_eq!(store.load_config().await.unwrap().users.len(), n);
}

/// The check (compiling the whole configuration) runs outside the writer:
/// an acceptance made while a slow check runs commits at once. Before,
/// the check ran inside the writer transaction and the acceptance waited
/// for it.
#[tokio::test]
async fn an_smtp_commit_does_not_wait_for_a_configuration_check() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let slow: ConfigCheck = Box::new(|doc| {
        std::thread::sleep(Duration::from_millis(800));
        doc.compile(&[], 3650)
    });
    let changing = {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .change_config(
                    ConfigChange::CreateGroup(group("Partners", &[])),
                    slow,
                    Actor::system("test"),
                )
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    store
        .accept(message(b"hello".to_vec(), &["a@x.example"]))
        .await
        .unwrap();
    let waited = started.elapsed();
    assert!(!changing.is_finished(), "the check is still running");
    assert!(
        waited < Duration::from_millis(400),
        "the acceptance waited {waited:?} for the configuration check"
    );
    assert!(changing.await.unwrap().unwrap().id.is_some());
}
