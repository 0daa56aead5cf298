//! Changes to the policy configuration, and the live snapshot they feed.
//!
//! The SMTP path reads the snapshot ([`PolicySet`]) from an `ArcSwap` for
//! every message. A change is committed through the store, which checks
//! the whole configuration in the same transaction, and the snapshot that
//! check built is swapped in before the caller hears "done": the very next
//! message is decided by it. Changes are serialised here so snapshots are
//! swapped in the order their commits happened.
//!
//! It lives beside the faces rather than in `api/`: the API and the admin
//! console both write through it, and the binary hands its snapshot to the
//! SMTP side.

use std::sync::Arc;

use arc_swap::ArcSwap;
use sealpost_policy::{DefinitionId, DomainPattern, PolicyDocument, PolicySet};
use sealpost_secure::plan::template_of;
use sealpost_store::audit::Actor;
use sealpost_store::{AdminStore, ConfigChange, ConfigCheck, StoreError};
use tokio::sync::Mutex;

/// The policy configuration's single writer and the live snapshot.
pub struct PolicyService {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn AdminStore>,
    snapshot: Arc<ArcSwap<PolicySet>>,
    rules: Arc<FileRules>,
    changes: Mutex<()>,
}

/// What the configuration file imposes on the stored configuration. The
/// stored configuration is checked against it when it is loaded (`serve`
/// refuses to start otherwise; `config check` reports it) and with every
/// change (the API refuses a change that breaks it), so a restart never
/// meets a configuration it cannot use.
#[derive(Debug, Clone, Default)]
pub struct FileRules {
    /// Internal domains from the configuration file (`domains.internal`),
    /// always in force on top of those managed through the API.
    pub internal_domains: Vec<DomainPattern>,
    /// The vault's retention in days: no definition may expire later.
    pub max_expiry_days: u32,
    /// `secure.subject_tag`; empty when the tag is off.
    pub subject_tag: String,
    /// `secure.subject_tag_definition`; None: the default definition.
    pub subject_tag_definition: Option<String>,
}

impl FileRules {
    /// Validates a whole stored configuration under these rules: every
    /// object, the references between them, every notification template,
    /// and the subject tag's definition. Returns the snapshot it built.
    ///
    /// # Errors
    /// [`sealpost_policy::Invalid`] naming the object or key at fault.
    ///
    /// `before` is the configuration the change starts from: a template it
    /// already had, unchanged, is not held against the change (one saved
    /// by an older version must not block unrelated changes; it is logged
    /// at start instead).
    pub fn check(
        &self,
        document: &PolicyDocument,
        before: &PolicySet,
    ) -> Result<PolicySet, sealpost_policy::Invalid> {
        let set = self.check_stored(document)?;
        let unchanged = |id| {
            let now = set.definition(id).map(|d| template_of(Some(d)));
            before.definition(id).map(|d| template_of(Some(d))) == now
        };
        if let Some((_, e)) = template_problems_by_definition(&set)
            .into_iter()
            .find(|(id, _)| !unchanged(*id))
        {
            return Err(e);
        }
        Ok(set)
    }

    /// What a start needs of the stored configuration: [`check`](Self::check)
    /// without the templates. A stored template that fails today's checks
    /// (saved by an older version, say) must not keep the gateway from
    /// starting, since the API that fixes it runs only in a started
    /// gateway, and each notification is checked as it is sent anyway (one
    /// a template fails goes out with the built-in template). Templates are
    /// still checked with every change.
    ///
    /// # Errors
    /// [`sealpost_policy::Invalid`] naming the object or key at fault.
    pub fn check_stored(
        &self,
        document: &PolicyDocument,
    ) -> Result<PolicySet, sealpost_policy::Invalid> {
        let set = document.compile(&self.internal_domains, self.max_expiry_days)?;
        sealpost_secure::plan::check_subject_tag(
            &set,
            &self.subject_tag,
            self.subject_tag_definition.as_deref(),
        )?;
        Ok(set)
    }
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
        rules: FileRules,
    ) -> Self {
        PolicyService {
            inner: Arc::new(Inner {
                store,
                snapshot,
                rules: Arc::new(rules),
                changes: Mutex::new(()),
            }),
        }
    }

    /// Loads the stored configuration and makes it the live snapshot.
    ///
    /// # Errors
    /// A store failure, or [`StoreError::Rejected`] when the stored
    /// configuration does not pass [`FileRules::check`] (it names the
    /// object or key).
    pub async fn load(&self) -> Result<(), StoreError> {
        let inner = &self.inner;
        let _guard = inner.changes.lock().await;
        let document = inner.store.load_config().await?;
        let set = inner
            .rules
            .check_stored(&document)
            .map_err(StoreError::Rejected)?;
        for problem in template_problems(&set) {
            tracing::error!(
                object = %problem.field,
                problem = %problem.message,
                "a stored notification template fails the checks; notifications it fails for go out with the built-in template until it is fixed through the API"
            );
        }
        swap_in(&inner.snapshot, set);
        Ok(())
    }

    /// Validates a document as a whole without storing it.
    pub fn compile(
        &self,
        document: &PolicyDocument,
    ) -> Result<PolicySet, sealpost_policy::Invalid> {
        document.compile(
            &self.inner.rules.internal_domains,
            self.inner.rules.max_expiry_days,
        )
    }

    /// Commits `change` (with its audit entry by `actor`) and swaps in the
    /// snapshot it produced. Returns the id of a created object.
    ///
    /// The commit and the swap run in a task of their own, so a caller that
    /// goes away (a client disconnecting mid-request) can never leave a
    /// committed change without its snapshot.
    ///
    /// # Errors
    /// [`StoreError::Rejected`] with the field at fault, [`StoreError::NoSuch`]
    /// for a missing object, or a store failure. Nothing changed then.
    pub async fn change(
        &self,
        actor: Actor,
        change: ConfigChange,
    ) -> Result<Option<i64>, StoreError> {
        let inner = self.inner.clone();
        let task = tokio::spawn(async move {
            let _guard = inner.changes.lock().await;
            let rules = inner.rules.clone();
            let before = inner.snapshot.load_full();
            let check: ConfigCheck = Box::new(move |doc| rules.check(doc, &before));
            let changed = inner.store.change_config(change, check, actor).await?;
            swap_in(&inner.snapshot, changed.set);
            Ok(changed.id)
        });
        task.await
            .map_err(|e| StoreError::Unavailable(format!("configuration change: {e}")))?
    }

    /// Like [`change`](Self::change), but the change is built from the
    /// stored configuration as it is under the writer's lock, so a
    /// read-modify-write (a PATCH) cannot lose a change committed between
    /// its read and its write. `build` returns the change and a value handed
    /// back with the created id.
    ///
    /// # Errors
    /// What `build` returns, or what [`change`](Self::change) would, in the
    /// caller's error type `E`.
    pub async fn change_with<T, E, F>(&self, actor: Actor, build: F) -> Result<(Option<i64>, T), E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
        F: FnOnce(&PolicyDocument) -> Result<(ConfigChange, T), E> + Send + 'static,
    {
        let inner = self.inner.clone();
        let task = tokio::spawn(async move {
            let _guard = inner.changes.lock().await;
            let document = inner.store.load_config().await?;
            let (change, value) = build(&document)?;
            let rules = inner.rules.clone();
            let before = inner.snapshot.load_full();
            let check: ConfigCheck = Box::new(move |doc| rules.check(doc, &before));
            let changed = inner.store.change_config(change, check, actor).await?;
            swap_in(&inner.snapshot, changed.set);
            Ok((changed.id, value))
        });
        task.await.map_err(|e| {
            E::from(StoreError::Unavailable(format!(
                "configuration change: {e}"
            )))
        })?
    }

    /// The live snapshot.
    pub fn snapshot(&self) -> Arc<PolicySet> {
        self.inner.snapshot.load_full()
    }

    /// The vault's retention in days: the longest expiry a definition may
    /// have.
    pub fn max_expiry_days(&self) -> u32 {
        self.inner.rules.max_expiry_days
    }

    /// The configuration file's internal domains.
    pub fn file_domains(&self) -> &[DomainPattern] {
        &self.inner.rules.internal_domains
    }
}

/// Makes `set` the live snapshot. The one it replaces is dropped on a
/// blocking thread: with a large directory, freeing it takes long enough
/// to stall the SMTP sessions sharing the runtime thread that would.
fn swap_in(snapshot: &ArcSwap<PolicySet>, set: PolicySet) {
    let old = snapshot.swap(Arc::new(set));
    tokio::task::spawn_blocking(move || drop(old));
}

/// Every definition's notification template must render and carry the
/// link, and its subject must not read it (a template an administrator
/// breaks is refused when saved, not found out when a recipient should
/// have been notified). One problem per broken definition.
pub fn template_problems(set: &PolicySet) -> Vec<sealpost_policy::Invalid> {
    template_problems_by_definition(set)
        .into_iter()
        .map(|(_, e)| e)
        .collect()
}

fn template_problems_by_definition(
    set: &PolicySet,
) -> Vec<(DefinitionId, sealpost_policy::Invalid)> {
    set.definitions()
        .filter_map(|definition| {
            let e = template_of(Some(definition)).check().err()?;
            Some((
                definition.id,
                sealpost_policy::Invalid::new(
                    format!(
                        "definitions[id={}].notification_template.{}",
                        definition.id.0, e.part
                    ),
                    "invalid_template",
                    format!("definition {:?}: {e}", definition.name()),
                ),
            ))
        })
        .collect()
}
