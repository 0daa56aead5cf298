//! The portal's stored branding: none until edited, replaced whole, its
//! version raised by each change, audited without the logo's bytes.

use super::open;
use crate::{
    AdminStore, BrandingReader, BrandingStore,
    audit::{Actor, AuditQuery},
    branding::{Logo, StoredBranding},
};

#[tokio::test]
async fn branding_is_versioned_replaced_whole_and_audited() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let none = store.branding().await.unwrap();
    assert_eq!(none.version, 0);
    assert_eq!(none.branding, StoredBranding::default());
    assert_eq!(store.branding_version().await.unwrap(), 0);

    let first = StoredBranding {
        product_name: Some("Acme secure mail".into()),
        accent_color: Some("#aa3300".into()),
        logo: Some(Logo {
            bytes: b"\x89PNG\r\n\x1a\nrest".to_vec(),
            content_type: "image/png".into(),
        }),
        ..StoredBranding::default()
    };
    let actor = Actor::administrator("ann", "192.0.2.1".parse().unwrap());
    assert_eq!(
        store
            .set_branding(first.clone(), actor.clone())
            .await
            .unwrap(),
        1
    );
    let read = store.branding().await.unwrap();
    assert_eq!(read.version, 1);
    assert_eq!(read.branding, first);
    assert!(read.updated_at.is_some());

    let second = StoredBranding {
        disclaimer: Some("For the addressee only.".into()),
        ..StoredBranding::default()
    };
    assert_eq!(store.set_branding(second.clone(), actor).await.unwrap(), 2);
    assert_eq!(store.branding().await.unwrap().branding, second);
    assert_eq!(store.branding_version().await.unwrap(), 2);

    let entries = store
        .audit(AuditQuery {
            object_kind: Some("branding".into()),
            limit: 5,
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(entries.len(), 2);
    let latest = &entries[0].change;
    assert_eq!(latest.action, "update");
    let before = latest.before.as_ref().unwrap();
    assert_eq!(before["product_name"], "Acme secure mail");
    assert_eq!(before["logo"]["content_type"], "image/png");
    assert_eq!(before["logo"]["bytes"], 12);
    assert_eq!(
        latest.after.as_ref().unwrap()["logo"],
        serde_json::Value::Null
    );
    assert!(
        entries[1].change.before.is_none(),
        "nothing was stored before"
    );
}
