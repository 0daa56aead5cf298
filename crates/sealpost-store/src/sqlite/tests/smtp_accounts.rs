//! SMTP accounts against a real database: one per name, every change
//! audited without the hash, last use to the minute.

use std::time::{Duration, SystemTime};

use super::open;
use crate::{
    AdminStore,
    audit::{Actor, AuditQuery},
    portal::PasswordHash,
    smtp_accounts::{NewSmtpAccount, SmtpAccountName, SmtpAccountStore, parse_senders},
};

#[tokio::test]
async fn accounts_are_made_changed_used_and_removed_with_an_audit_entry_each() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let name = SmtpAccountName::parse("crm").unwrap();
    let now = SystemTime::now();
    let new = |hash: &str| NewSmtpAccount {
        name: name.clone(),
        senders: parse_senders(&["crm@corp.example".into()]).unwrap(),
        rate_per_hour: 100,
        password: PasswordHash::new(hash.into()),
        now,
    };
    assert!(
        store
            .create_smtp_account(new("$argon2id$first"), Actor::cli())
            .await
            .unwrap()
    );
    assert!(
        !store
            .create_smtp_account(new("$argon2id$other"), Actor::cli())
            .await
            .unwrap(),
        "the name is taken"
    );
    let (account, hash) = store.smtp_account(&name).await.unwrap().unwrap();
    assert_eq!(
        hash.as_str(),
        "$argon2id$first",
        "the second create changed nothing"
    );
    assert_eq!(account.senders, ["crm@corp.example"]);

    assert!(
        store
            .update_smtp_account(&name, vec!["corp.example".into()], 10, Actor::cli())
            .await
            .unwrap()
    );
    assert!(
        store
            .set_smtp_password(
                &name,
                PasswordHash::new("$argon2id$second".into()),
                now,
                Actor::cli()
            )
            .await
            .unwrap()
    );
    store
        .touch_smtp_account(&name, now + Duration::from_secs(90))
        .await
        .unwrap();
    let listed = store.smtp_accounts().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (listed[0].rate_per_hour, listed[0].senders.clone()),
        (10, vec!["corp.example".to_owned()])
    );
    assert!(listed[0].last_used_at.is_some());
    assert!(
        store
            .remove_smtp_account(&name, Actor::cli())
            .await
            .unwrap()
    );
    assert!(
        !store
            .remove_smtp_account(&name, Actor::cli())
            .await
            .unwrap()
    );
    assert!(store.smtp_account(&name).await.unwrap().is_none());

    let audit = store
        .audit(AuditQuery {
            object_kind: Some("smtp_account".into()),
            limit: 100,
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    let actions: Vec<&str> = audit
        .iter()
        .rev()
        .map(|e| e.change.action.as_str())
        .collect();
    assert_eq!(actions, ["create", "update", "reset_password", "delete"]);
    let text = format!("{audit:?}");
    assert!(!text.contains("argon2id$"), "never the hash: {text}");
}
