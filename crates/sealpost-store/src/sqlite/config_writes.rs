//! Configuration changes that keep the writer free (issue 17, item 8).
//!
//! The writer transaction is shared with every SMTP acceptance, so a
//! change to one policy, group or user must not read, check and compile the
//! whole configuration inside it (with a 100,000-user directory that took
//! long enough to hold every `250` back). Instead:
//! 1. the configuration as last committed is kept in memory with its
//!    *generation* (a counter in `config_generation`, bumped by every
//!    configuration commit; read again from the database when it moved);
//! 2. the change is applied to a copy of it ([`crate::config_edit::apply`]),
//!    and the caller's check compiles the result, on a blocking thread,
//!    outside the writer;
//! 3. a short transaction verifies the generation is still the one the
//!    change was checked against (otherwise the change is checked again
//!    against the newer configuration), writes the object and the audit
//!    entry, and bumps the generation.
//!
//! A directory import is written in batches of [`IMPORT_BATCH`] users, each
//! its own short transaction with a short pause between them, after the whole import was checked: an
//! acceptance waits for one batch at most. A failure part-way leaves the
//! batches before it stored (an import creates or replaces, so running it
//! again completes it); the audit entry comes with the last batch.

use std::sync::Arc;
use std::time::SystemTime;

use rusqlite::Connection;
use sealpost_policy::{PolicyDocument, PolicySet};

use super::{SqliteStore, admin, audit};
use crate::{
    Changed, ConfigChange, ConfigCheck, StoreError,
    audit::Actor,
    config_edit::{self, NextIds},
};

/// Users written per transaction by an import: an acceptance that shares
/// the writer's transaction with a batch waits for its inserts.
pub(super) const IMPORT_BATCH: usize = 200;

/// Pause between two import batches, so acceptances queued meanwhile get
/// a commit without a batch in it.
const IMPORT_BREATHER: std::time::Duration = std::time::Duration::from_millis(2);

/// How often a change is checked again after losing a race with another
/// writer of the configuration (another process sharing the database).
const ATTEMPTS: usize = 3;

/// The configuration as of one generation.
#[derive(Debug, Clone)]
pub(super) struct CachedConfig {
    generation: i64,
    pub(super) document: Arc<PolicyDocument>,
}

/// The in-memory configuration; its lock also serialises the changes of
/// this process.
pub(super) type ConfigCache = Arc<tokio::sync::Mutex<Option<CachedConfig>>>;

/// The generation of the stored configuration.
pub(super) fn generation(conn: &Connection) -> Result<i64, StoreError> {
    Ok(conn.query_row(
        "SELECT generation FROM config_generation WHERE id = 1",
        [],
        |row| row.get(0),
    )?)
}

fn bump(conn: &Connection) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE config_generation SET generation = generation + 1 WHERE id = 1",
        [],
    )?;
    Ok(())
}

/// The ids the next created objects get (AUTOINCREMENT: never reused).
fn next_ids(conn: &Connection) -> Result<NextIds, StoreError> {
    let next = |table: &str| -> Result<i64, StoreError> {
        let sql = format!(
            "SELECT MAX(COALESCE((SELECT seq FROM sqlite_sequence WHERE name = '{table}'), 0),
                        COALESCE((SELECT MAX(id) FROM {table}), 0)) + 1"
        );
        Ok(conn.query_row(&sql, [], |row| row.get(0))?)
    };
    Ok(NextIds {
        group: next("profile_groups")?,
        definition: next("definitions")?,
        policy: next("policies")?,
    })
}

/// What a change was checked against, and what it produced.
struct Prepared {
    generation: i64,
    next: NextIds,
    id: Option<i64>,
    after: PolicyDocument,
    set: PolicySet,
    entry: crate::audit::Change,
}

impl SqliteStore {
    /// The configuration as committed, from memory when its generation is
    /// current, and the ids the next created objects get.
    async fn current_config(
        &self,
        cache: &mut Option<CachedConfig>,
    ) -> Result<(CachedConfig, NextIds), StoreError> {
        let known = cache.as_ref().map(|c| c.generation);
        let (generation, next, loaded) = self
            .readers
            .read(move |conn| {
                let tx = conn.unchecked_transaction()?;
                let generation = generation(&tx)?;
                let next = next_ids(&tx)?;
                let loaded = if known == Some(generation) {
                    None
                } else {
                    Some(admin::load_document(&tx)?)
                };
                tx.finish()?;
                Ok((generation, next, loaded))
            })
            .await?;
        if let Some(document) = loaded {
            replace(
                cache,
                Some(CachedConfig {
                    generation,
                    document: Arc::new(document),
                }),
            );
        }
        let current = cache.clone().expect("loaded above when absent");
        Ok((current, next))
    }

    /// See the module documentation.
    pub(super) async fn change_config_outside_writer(
        &self,
        change: ConfigChange,
        check: ConfigCheck,
        actor: Actor,
    ) -> Result<Changed, StoreError> {
        let mut cache = self.config_cache.lock().await;
        let change = Arc::new(change);
        let mut check = Some(check);
        for _ in 0..ATTEMPTS {
            let (current, next) = match self.current_config(&mut cache).await {
                Ok(c) => c,
                Err(e) => {
                    *cache = None;
                    return Err(e);
                }
            };
            let job_change = change.clone();
            let mut job_check = check.take().expect("put back after each attempt");
            let (prepared, returned) = tokio::task::spawn_blocking(move || {
                let prepared = prepare(&current, next, &job_change, &mut job_check);
                (prepared, job_check)
            })
            .await
            .map_err(|e| StoreError::Unavailable(format!("configuration check: {e}")))?;
            check = Some(returned);
            let prepared = prepared?;
            match self.commit_prepared(&change, &prepared, &actor).await {
                Ok(true) => {
                    let generation = prepared.generation + commits(&change) as i64;
                    replace(
                        &mut cache,
                        Some(CachedConfig {
                            generation,
                            document: Arc::new(prepared.after),
                        }),
                    );
                    return Ok(Changed {
                        id: prepared.id,
                        set: prepared.set,
                    });
                }
                // Another writer changed the configuration since it was
                // read: check again against what it is now.
                Ok(false) => *cache = None,
                Err(e) => {
                    *cache = None;
                    return Err(e);
                }
            }
        }
        Err(StoreError::Unavailable(
            "the configuration kept changing while this change was checked; try again".into(),
        ))
    }

    /// Writes a prepared change: one short transaction, or one per import
    /// batch. `Ok(false)` when the generation moved before the first write.
    async fn commit_prepared(
        &self,
        change: &Arc<ConfigChange>,
        prepared: &Prepared,
        actor: &Actor,
    ) -> Result<bool, StoreError> {
        let steps: Vec<ConfigChange> = match &**change {
            ConfigChange::ImportUsers(users) if users.len() > IMPORT_BATCH => users
                .chunks(IMPORT_BATCH)
                .map(|c| ConfigChange::ImportUsers(c.to_vec()))
                .collect(),
            _ => vec![(**change).clone()],
        };
        let last = steps.len() - 1;
        for (i, step) in steps.into_iter().enumerate() {
            let expected = prepared.generation + i as i64;
            let next = prepared.next;
            let entry = (i == last).then(|| prepared.entry.clone());
            let actor = actor.clone();
            let written = self
                .writer
                .write(true, move |conn, _| {
                    if generation(conn)? != expected {
                        return Ok(false);
                    }
                    admin::apply_change(conn, &step, next)?;
                    if let Some(entry) = &entry {
                        audit::record(conn, &actor, SystemTime::now(), entry)?;
                    }
                    bump(conn)?;
                    Ok(true)
                })
                .await?;
            if written && i < last {
                tokio::time::sleep(IMPORT_BREATHER).await;
            }
            if !written {
                if i == 0 {
                    return Ok(false);
                }
                return Err(StoreError::Unavailable(format!(
                    "the configuration changed during the import; {} of its users were stored \
                     (an import creates or replaces: run it again)",
                    i * IMPORT_BATCH
                )));
            }
        }
        Ok(true)
    }
}

/// Replaces the in-memory configuration; the one it replaces is freed on a
/// blocking thread (a 100,000-user document takes long enough to free to
/// stall the runtime thread SMTP sessions share).
fn replace(cache: &mut Option<CachedConfig>, new: Option<CachedConfig>) {
    let old = std::mem::replace(cache, new);
    if old.is_some() {
        tokio::task::spawn_blocking(move || drop(old));
    }
}

/// How many commits (generations) `change` takes.
fn commits(change: &ConfigChange) -> usize {
    match change {
        ConfigChange::ImportUsers(users) if users.len() > IMPORT_BATCH => {
            users.len().div_ceil(IMPORT_BATCH)
        }
        _ => 1,
    }
}

/// Applies, checks and compiles `change` against `current`, and works out
/// its audit entry: everything but the write, off the writer.
fn prepare(
    current: &CachedConfig,
    next: NextIds,
    change: &ConfigChange,
    check: &mut ConfigCheck,
) -> Result<Prepared, StoreError> {
    let mut after = (*current.document).clone();
    let id = config_edit::apply(&mut after, change, next)?;
    let set = check(&after).map_err(StoreError::Rejected)?;
    let entry = crate::audit::config_change(change, id, &current.document, &after);
    Ok(Prepared {
        generation: current.generation,
        next,
        id,
        after,
        set,
        entry,
    })
}
