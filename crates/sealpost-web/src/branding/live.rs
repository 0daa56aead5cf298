//! The branding a portal renders with: the configuration file's values
//! with the stored ones over them, rebuilt when the store's version
//! changes. Every node has its own [`LiveBranding`] and they share only
//! the store, so a change made on one node shows on all of them.
//!
//! The check is a cache with a short life: at most one request per
//! `every` (one second in production) asks the store for the version, a
//! one-row read; the rest render with what they have. Pages read the
//! current branding without waiting ([`LiveBranding::current`]); the
//! portal's middleware calls [`LiveBranding::refresh`] first.
//!
//! The portal holds this and nothing else of the branding: a
//! [`BrandingReader`], which cannot write.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use arc_swap::ArcSwap;
use sealpost_store::{BrandingReader, branding::BrandingRecord};

use super::{Branding, logo::LOGO_TYPES};

/// The branding resolved for rendering, with what is derived from it.
#[derive(Debug)]
pub struct Resolved {
    /// The store's version it was built from (0: the file's alone).
    pub version: u64,
    pub branding: Branding,
    /// `:root { --accent: … }`.
    pub theme_css: String,
    /// A short hash of what the assets serve (theme, logo): part of their
    /// URLs, so a browser's year-long cache never shows an old logo.
    pub tag: String,
}

impl Resolved {
    fn new(version: u64, branding: Branding) -> Self {
        let theme_css = format!(":root {{ --accent: {}; }}\n", branding.accent_color);
        let mut hash = ring::digest::Context::new(&ring::digest::SHA256);
        hash.update(theme_css.as_bytes());
        if let Some((bytes, content_type)) = &branding.logo {
            hash.update(content_type.as_bytes());
            hash.update(bytes);
        }
        let tag = hex::encode(&hash.finish().as_ref()[..4]);
        Resolved {
            version,
            branding,
            theme_css,
            tag,
        }
    }
}

/// The configuration file's branding under the stored one.
pub fn resolve(defaults: &Branding, record: &BrandingRecord) -> Branding {
    let stored = &record.branding;
    let logo = stored.logo.as_ref().and_then(|l| {
        LOGO_TYPES
            .iter()
            .find(|t| **t == l.content_type)
            .map(|t| (l.bytes.clone(), *t))
    });
    Branding {
        product_name: stored
            .product_name
            .clone()
            .unwrap_or_else(|| defaults.product_name.clone()),
        logo: logo.or_else(|| defaults.logo.clone()),
        accent_color: stored
            .accent_color
            .clone()
            .unwrap_or_else(|| defaults.accent_color.clone()),
        disclaimer: stored
            .disclaimer
            .clone()
            .or_else(|| defaults.disclaimer.clone()),
        support_contact: stored
            .support_contact
            .clone()
            .or_else(|| defaults.support_contact.clone()),
    }
}

/// One node's live branding; see the module docs.
pub struct LiveBranding {
    /// The configuration file's branding.
    defaults: Branding,
    /// `None`: the file's branding, always (tests, tools).
    store: Option<Arc<dyn BrandingReader>>,
    current: ArcSwap<Resolved>,
    /// When the store was last asked; `None`: never.
    checked: Mutex<Option<Instant>>,
    every: Duration,
}

impl std::fmt::Debug for LiveBranding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveBranding")
            .field("version", &self.current.load().version)
            .field("every", &self.every)
            .finish_non_exhaustive()
    }
}

impl LiveBranding {
    /// The file's branding, never changed.
    pub fn fixed(defaults: Branding) -> Self {
        Self::build(defaults, None, Duration::MAX)
    }

    /// The file's branding under the store's, the version checked at most
    /// once per `every`.
    pub fn new(defaults: Branding, store: Arc<dyn BrandingReader>, every: Duration) -> Self {
        Self::build(defaults, Some(store), every)
    }

    fn build(defaults: Branding, store: Option<Arc<dyn BrandingReader>>, every: Duration) -> Self {
        let current = ArcSwap::from_pointee(Resolved::new(0, defaults.clone()));
        LiveBranding {
            defaults,
            store,
            current,
            checked: Mutex::new(None),
            every,
        }
    }

    /// The configuration file's branding.
    pub fn defaults(&self) -> &Branding {
        &self.defaults
    }

    /// The branding to render with now.
    pub fn current(&self) -> Arc<Resolved> {
        self.current.load_full()
    }

    /// Rebuilds the branding if the store's version moved, asking the
    /// store at most once per `every`. A store error keeps the current
    /// branding (and is logged).
    ///
    /// # Cancel safety
    /// Cancel safe: a dropped refresh leaves the current branding.
    pub async fn refresh(&self) {
        let Some(store) = &self.store else {
            return;
        };
        {
            let mut checked = self.checked.lock().unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            if checked.is_some_and(|at| now.duration_since(at) < self.every) {
                return;
            }
            *checked = Some(now);
        }
        match store.branding_version().await {
            Ok(version) if version == self.current.load().version => {}
            Ok(_) => self.reload().await,
            Err(e) => tracing::warn!(error = %e, "checking the portal branding's version failed"),
        }
    }

    /// Reads the stored branding and renders with it from now on.
    pub async fn reload(&self) {
        let Some(store) = &self.store else {
            return;
        };
        match store.branding().await {
            Ok(record) => {
                let branding = resolve(&self.defaults, &record);
                self.current
                    .store(Arc::new(Resolved::new(record.version, branding)));
            }
            Err(e) => tracing::warn!(error = %e, "reading the portal branding failed"),
        }
    }
}
