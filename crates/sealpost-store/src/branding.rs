//! The portal's branding as administrators edit it (issue 16, item 2):
//! what the store keeps over the configuration file's values, and its
//! version, which every node's portal compares per request (through a
//! short cache) so that a change needs no restart.
//!
//! The store checks nothing: values come parsed from the web crate's
//! branding service, the one place the console and the API validate.

use std::time::SystemTime;

use crate::{StoreError, audit::Actor};

/// A logo as stored: its bytes and their (sniffed) content type.
#[derive(Clone, PartialEq, Eq)]
pub struct Logo {
    pub bytes: Vec<u8>,
    /// `image/png`, `image/jpeg` or `image/svg+xml`.
    pub content_type: String,
}

impl std::fmt::Debug for Logo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Logo")
            .field("content_type", &self.content_type)
            .field("bytes", &self.bytes.len())
            .finish()
    }
}

/// The branding stored over the configuration file's: each `None` is the
/// file's value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoredBranding {
    pub product_name: Option<String>,
    /// `#rrggbb`.
    pub accent_color: Option<String>,
    pub disclaimer: Option<String>,
    pub support_contact: Option<String>,
    pub logo: Option<Logo>,
}

/// What the store holds: the branding, its version (0: never edited) and
/// when it last changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BrandingRecord {
    pub version: u64,
    pub branding: StoredBranding,
    pub updated_at: Option<SystemTime>,
}

/// Reading the stored branding: all the portal may do with it.
#[async_trait::async_trait]
pub trait BrandingReader: Send + Sync + std::fmt::Debug + 'static {
    /// The stored branding (version 0 and nothing stored: the file's).
    async fn branding(&self) -> Result<BrandingRecord, StoreError>;

    /// The current version alone: one small read, for the per-request
    /// check.
    async fn branding_version(&self) -> Result<u64, StoreError>;
}

/// The branding's storage boundary: reading, and the one write of the
/// branding service (console and API).
#[async_trait::async_trait]
pub trait BrandingStore: BrandingReader {
    /// Replaces the stored branding and records it in the audit log (by
    /// `actor`, before and after, the logo as its type and size);
    /// the new version.
    async fn set_branding(&self, branding: StoredBranding, actor: Actor)
    -> Result<u64, StoreError>;
}
