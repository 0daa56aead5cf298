//! The SQL of the portal's branding ([`BrandingStore`]): one row, its
//! version raised by every change, audited in the same transaction.

use std::time::SystemTime;

use rusqlite::{Connection, OptionalExtension, params};

use super::{SqliteStore, audit};
use crate::{
    BrandingStore, StoreError,
    audit::{Actor, Change},
    branding::BrandingReader,
    branding::{BrandingRecord, Logo, StoredBranding},
    model::{from_millis, to_millis},
};

fn find(conn: &Connection) -> Result<BrandingRecord, StoreError> {
    let row = conn
        .prepare_cached(
            "SELECT version, product_name, accent_color, disclaimer, support_contact, logo,
                    logo_type, updated_at
             FROM portal_branding WHERE id = 1",
        )?
        .query_row([], |row| {
            let logo: Option<Vec<u8>> = row.get(5)?;
            let logo_type: Option<String> = row.get(6)?;
            Ok(BrandingRecord {
                version: row.get::<_, i64>(0)? as u64,
                branding: StoredBranding {
                    product_name: row.get(1)?,
                    accent_color: row.get(2)?,
                    disclaimer: row.get(3)?,
                    support_contact: row.get(4)?,
                    logo: logo.zip(logo_type).map(|(bytes, content_type)| Logo {
                        bytes,
                        content_type,
                    }),
                },
                updated_at: Some(from_millis(row.get(7)?)),
            })
        })
        .optional()?;
    Ok(row.unwrap_or_default())
}

/// The branding as the audit log shows it: the logo by type and size,
/// never its bytes.
fn audit_doc(b: &StoredBranding) -> serde_json::Value {
    serde_json::json!({
        "product_name": b.product_name,
        "accent_color": b.accent_color,
        "disclaimer": b.disclaimer,
        "support_contact": b.support_contact,
        "logo": b.logo.as_ref().map(|l| serde_json::json!({
            "content_type": l.content_type,
            "bytes": l.bytes.len(),
        })),
    })
}

fn replace(
    conn: &Connection,
    b: &StoredBranding,
    actor: &Actor,
    now: SystemTime,
) -> Result<u64, StoreError> {
    let before = find(conn)?;
    let version = before.version + 1;
    conn.prepare_cached(
        "INSERT OR REPLACE INTO portal_branding (id, version, product_name, accent_color,
             disclaimer, support_contact, logo, logo_type, updated_at)
         VALUES (1, ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        version as i64,
        b.product_name,
        b.accent_color,
        b.disclaimer,
        b.support_contact,
        b.logo.as_ref().map(|l| l.bytes.as_slice()),
        b.logo.as_ref().map(|l| l.content_type.as_str()),
        to_millis(now)
    ])?;
    let entry = Change::new(
        "update",
        "branding",
        None,
        (before.version > 0).then(|| audit_doc(&before.branding)),
        Some(audit_doc(b)),
    );
    audit::record(conn, actor, now, &entry)?;
    Ok(version)
}

#[async_trait::async_trait]
impl BrandingReader for SqliteStore {
    async fn branding(&self) -> Result<BrandingRecord, StoreError> {
        self.readers.read_point(find).await
    }

    async fn branding_version(&self) -> Result<u64, StoreError> {
        self.readers
            .read_point(|conn| {
                Ok(conn
                    .prepare_cached("SELECT version FROM portal_branding WHERE id = 1")?
                    .query_row([], |row| row.get::<_, i64>(0))
                    .optional()?
                    .map_or(0, |v| v as u64))
            })
            .await
    }
}

#[async_trait::async_trait]
impl BrandingStore for SqliteStore {
    async fn set_branding(
        &self,
        branding: StoredBranding,
        actor: Actor,
    ) -> Result<u64, StoreError> {
        self.writer
            .write(true, move |conn, _| {
                replace(conn, &branding, &actor, SystemTime::now())
            })
            .await
    }
}
