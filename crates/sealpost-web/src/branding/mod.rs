//! The portal's branding (issue 16, item 2): name, logo, accent colour,
//! disclaimer and support contact.
//!
//! The configuration file's values (`[portal]`) are the defaults;
//! administrators store values over them from the console or the API,
//! through [`BrandingService`], the one place both validate
//! ([`BrandingDraft::apply`]) and write (audited by the store). Each
//! node's portal renders with a [`LiveBranding`], which follows the
//! store's version, so a change applies everywhere without a restart.
//!
//! - `draft`: a change as typed, and its validation.
//! - `logo`: the upload's size, sniffed type and SVG safety.
//! - `live`: the resolved branding and its refresh.

mod draft;
mod live;
pub mod logo;

use std::sync::Arc;

use sealpost_policy::Invalid;
use sealpost_store::{BrandingStore, StoreError, audit::Actor, branding::BrandingRecord};

pub use draft::{BrandingDraft, LogoChange, MAX_DISCLAIMER, MAX_PRODUCT_NAME, MAX_SUPPORT_CONTACT};
pub use live::{LiveBranding, Resolved, resolve};

/// How the portal looks and who runs it, resolved: the configuration
/// file's `[portal]` keys, or those with the stored ones over them.
#[derive(Debug, Clone)]
pub struct Branding {
    pub product_name: String,
    /// The logo's bytes and content type (one of [`logo::LOGO_TYPES`]).
    pub logo: Option<(Vec<u8>, &'static str)>,
    /// `#rrggbb`.
    pub accent_color: String,
    pub disclaimer: Option<String>,
    pub support_contact: Option<String>,
}

impl Default for Branding {
    fn default() -> Self {
        Branding {
            product_name: "Secure messages".into(),
            logo: None,
            accent_color: "#1d4ed8".into(),
            disclaimer: None,
            support_contact: None,
        }
    }
}

/// Why a branding change was not made.
#[derive(Debug, thiserror::Error)]
pub enum BrandingError {
    /// A field at fault; nothing was stored.
    #[error("{}: {}", .0.field, .0.message)]
    Invalid(Invalid),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Reads and changes the stored branding; shared by the console and the
/// API.
#[derive(Debug, Clone)]
pub struct BrandingService {
    store: Arc<dyn BrandingStore>,
    /// This node's live branding, reloaded after a change here (other
    /// nodes see the new version at their next check).
    live: Arc<LiveBranding>,
}

impl BrandingService {
    pub fn new(store: Arc<dyn BrandingStore>, live: Arc<LiveBranding>) -> Self {
        BrandingService { store, live }
    }

    /// This node's live branding (the file's defaults, what the portal
    /// shows).
    pub fn live(&self) -> &Arc<LiveBranding> {
        &self.live
    }

    /// What is stored over the file's values.
    ///
    /// # Errors
    /// The store's.
    pub async fn stored(&self) -> Result<BrandingRecord, StoreError> {
        self.store.branding().await
    }

    /// Checks `draft` over the stored branding and stores the result, by
    /// `actor` (audited); the new record.
    ///
    /// # Errors
    /// [`BrandingError::Invalid`] naming the field; the store's.
    pub async fn change(
        &self,
        draft: BrandingDraft,
        actor: Actor,
    ) -> Result<BrandingRecord, BrandingError> {
        let current = self.store.branding().await?;
        let next = draft
            .apply(&current.branding)
            .map_err(BrandingError::Invalid)?;
        self.store.set_branding(next, actor).await?;
        self.live.reload().await;
        Ok(self.store.branding().await?)
    }
}
