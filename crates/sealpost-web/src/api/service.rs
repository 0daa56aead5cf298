//! Changes to the policy configuration, and the live snapshot they feed.
//!
//! The SMTP path reads the snapshot ([`PolicySet`]) from an `ArcSwap` for
//! every message. A change is committed through the store, which checks
//! the whole configuration in the same transaction, and the snapshot that
//! check built is swapped in before the caller hears "done": the very next
//! message is decided by it. Changes are serialised here so snapshots are
//! swapped in the order their commits happened.

use std::sync::Arc;

use arc_swap::ArcSwap;
use sealpost_policy::{DomainPattern, PolicyDocument, PolicySet};
use sealpost_store::{AdminStore, ConfigChange, ConfigCheck, StoreError};
use tokio::sync::Mutex;

/// The policy configuration's single writer and the live snapshot.
pub struct PolicyService {
    store: Arc<dyn AdminStore>,
    snapshot: Arc<ArcSwap<PolicySet>>,
    /// Internal domains from the configuration file (`domains.internal`),
    /// always in force on top of those managed through the API.
    file_domains: Vec<DomainPattern>,
    /// The vault's retention in days: no definition may expire later.
    max_expiry_days: u32,
    changes: Mutex<()>,
}

impl std::fmt::Debug for PolicyService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyService").finish_non_exhaustive()
    }
}

impl PolicyService {
    pub fn new(
        store: Arc<dyn AdminStore>,
        snapshot: Arc<ArcSwap<PolicySet>>,
        file_domains: Vec<DomainPattern>,
        max_expiry_days: u32,
    ) -> Self {
        PolicyService {
            store,
            snapshot,
            file_domains,
            max_expiry_days,
            changes: Mutex::new(()),
        }
    }

    /// Loads the stored configuration and makes it the live snapshot.
    ///
    /// # Errors
    /// A store failure, or [`StoreError::Rejected`] when the stored
    /// configuration does not validate (it names the object).
    pub async fn load(&self) -> Result<(), StoreError> {
        let _guard = self.changes.lock().await;
        let document = self.store.load_config().await?;
        let set = self.compile(&document).map_err(StoreError::Rejected)?;
        self.snapshot.store(Arc::new(set));
        Ok(())
    }

    /// Validates a document as a whole without storing it.
    pub fn compile(
        &self,
        document: &PolicyDocument,
    ) -> Result<PolicySet, sealpost_policy::Invalid> {
        document.compile(&self.file_domains, self.max_expiry_days)
    }

    /// Commits `change` and swaps in the snapshot it produced. Returns the
    /// id of a created object.
    ///
    /// # Errors
    /// [`StoreError::Rejected`] with the field at fault, [`StoreError::NoSuch`]
    /// for a missing object, or a store failure. Nothing changed then.
    pub async fn change(&self, change: ConfigChange) -> Result<Option<i64>, StoreError> {
        let _guard = self.changes.lock().await;
        let file_domains = self.file_domains.clone();
        let max = self.max_expiry_days;
        let check: ConfigCheck = Box::new(move |doc| doc.compile(&file_domains, max));
        let changed = self.store.change_config(change, check).await?;
        self.snapshot.store(Arc::new(changed.set));
        Ok(changed.id)
    }

    /// The live snapshot.
    pub fn snapshot(&self) -> Arc<PolicySet> {
        self.snapshot.load_full()
    }

    /// The configuration file's internal domains.
    pub fn file_domains(&self) -> &[DomainPattern] {
        &self.file_domains
    }
}
