//! Online master key rotation (issue 17, item 6): `POST /api/v1/keys/rotate`
//! and `sealpost keys rotate` against a running gateway.
//!
//! A rotation adds a master key version to the key file (durably, before
//! anything is sealed with it), records it in the database with its audit
//! entry, and installs it in the running vault: from the next seal on,
//! every thread seals new mail under the new version. Existing message keys
//! are then re-wrapped in the background, in bounded batches, each batch
//! its own short writer transaction with a pause between batches, so SMTP
//! commits are never held up for long. Progress is kept here
//! ([`KeyRotation::status`], `GET /api/v1/keys/rotation`).
//!
//! Resumable: the old versions stay in the keyring (and so readable), and
//! a gateway that starts with message keys on an older version re-wraps
//! them in the background ([`KeyRotation::resume_if_needed`]); a `POST`
//! while keys are behind resumes rather than adds another version. A pass
//! ends with a count of keys still behind (one sealed under the old version
//! just before the switch, and committed after the pass went by its id):
//! another pass takes them, up to [`PASSES`].

use std::{
    path::PathBuf,
    sync::{Arc, Mutex},
    time::{Duration, SystemTime},
};

use sealpost_store::{QueueId, SecureStore, StoreError, audit::Actor};
use sealpost_vault::Vault;
use serde::Serialize;
use utoipa::ToSchema;

/// Passes over the message keys before a rotation gives up on stragglers.
const PASSES: usize = 3;

/// Pause between two batches: the writer's queue gets to SMTP commits.
const BREATHER: Duration = Duration::from_millis(5);

/// Where a rotation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RotationState {
    /// None has run since the gateway started.
    Idle,
    /// Re-wrapping in the background.
    Running,
    /// Every message key is on `version`.
    Complete,
    /// Stopped on an error (`error`); `POST /keys/rotate` resumes it.
    Failed,
}

/// A rotation's progress, as `GET /api/v1/keys/rotation` shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RotationStatus {
    pub state: RotationState,
    /// The master key version new mail is sealed with.
    pub version: u32,
    /// Message keys re-wrapped so far.
    pub done: u64,
    /// Message keys to re-wrap (grows if a pass finds stragglers).
    pub total: u64,
    /// Message keys that did not re-wrap (they stay on their version).
    pub failures: u64,
    /// RFC 3339.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    /// RFC 3339.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Why a rotation cannot start.
#[derive(Debug, thiserror::Error)]
pub enum RotationError {
    #[error("a key rotation is already running")]
    Running,
    /// The keys come from the environment: a version cannot be added here.
    #[error(
        "the master keys come from SEALPOST_MASTER_KEY, which the gateway cannot change: append \
         a new entry `{next}:<64 hex digits>` (e.g. from `openssl rand -hex 32`) to it, keeping \
         the old ones, and restart; the gateway then re-wraps every message key in the background"
    )]
    KeysFromEnvironment { next: u32 },
    #[error("cannot write the new master key to {path}: {error}")]
    KeyFile { path: String, error: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The rotation service the API and the gateway's start share.
pub struct KeyRotation {
    secure: Arc<dyn SecureStore>,
    vault: Arc<Vault>,
    /// `vault.master_key_file`; `None` when the keys come from
    /// `SEALPOST_MASTER_KEY`.
    key_file: Option<PathBuf>,
    /// Message keys per batch (one writer transaction each).
    batch: usize,
    status: Mutex<RotationStatus>,
}

impl std::fmt::Debug for KeyRotation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRotation")
            .field("key_file", &self.key_file)
            .field("batch", &self.batch)
            .finish_non_exhaustive()
    }
}

impl KeyRotation {
    pub fn new(
        secure: Arc<dyn SecureStore>,
        vault: Arc<Vault>,
        key_file: Option<PathBuf>,
        batch: usize,
    ) -> Arc<Self> {
        let version = vault.keyring().current().version();
        Arc::new(KeyRotation {
            secure,
            vault,
            key_file,
            batch: batch.max(1),
            status: Mutex::new(RotationStatus {
                state: RotationState::Idle,
                version,
                done: 0,
                total: 0,
                failures: 0,
                started_at: None,
                finished_at: None,
                error: None,
            }),
        })
    }

    /// The progress of the current or last rotation.
    pub fn status(&self) -> RotationStatus {
        self.status.lock().expect("not poisoned").clone()
    }

    /// Message keys not on the current version.
    async fn behind(&self) -> Result<u64, StoreError> {
        let current = self.vault.keyring().current().version();
        Ok(self
            .secure
            .key_usage()
            .await?
            .iter()
            .filter(|u| u.version != current)
            .map(|u| u.messages)
            .sum())
    }

    /// Starts a rotation: adds a master key version, unless message keys
    /// are still behind the current one (then it resumes re-wrapping
    /// them), and re-wraps in the background. Returns the status at once.
    ///
    /// # Errors
    /// [`RotationError`]: one already running, keys from the environment
    /// (nothing to add a version to), the key file not writable, or the
    /// store.
    pub async fn start(self: &Arc<Self>, actor: Actor) -> Result<RotationStatus, RotationError> {
        {
            let mut status = self.status.lock().expect("not poisoned");
            if status.state == RotationState::Running {
                return Err(RotationError::Running);
            }
            // Claimed before any await: a second request sees "running".
            status.state = RotationState::Running;
            status.error = None;
        }
        let started = self.begin(actor).await;
        if let Err(e) = &started {
            let mut status = self.status.lock().expect("not poisoned");
            status.state = RotationState::Failed;
            status.error = Some(e.to_string());
        }
        started?;
        Ok(self.status())
    }

    async fn begin(self: &Arc<Self>, actor: Actor) -> Result<(), RotationError> {
        let behind = self.behind().await?;
        let version = if behind > 0 {
            let version = self.vault.keyring().current().version();
            self.secure
                .record_key_rotation(
                    actor,
                    "resume",
                    version,
                    serde_json::json!({ "version": version, "behind": behind }),
                )
                .await?;
            version
        } else {
            self.add_version(actor).await?
        };
        {
            let mut status = self.status.lock().expect("not poisoned");
            *status = RotationStatus {
                state: RotationState::Running,
                version,
                done: 0,
                total: 0,
                failures: 0,
                started_at: Some(sealpost_store::rfc3339(SystemTime::now())),
                finished_at: None,
                error: None,
            };
        }
        let this = self.clone();
        tokio::spawn(async move { this.rewrap_all(version).await });
        Ok(())
    }

    /// Adds a version above every one the database has seen, durably in
    /// the key file, then installs it: new mail is sealed with it from now.
    async fn add_version(&self, actor: Actor) -> Result<u32, RotationError> {
        let mut keyring = (*self.vault.keyring()).clone();
        let floor = self.secure.highest_key_version().await?;
        let Some(path) = self.key_file.clone() else {
            return Err(RotationError::KeysFromEnvironment {
                next: keyring.current().version().max(floor) + 1,
            });
        };
        let version = keyring.add_version_above(floor);
        // The new key is durable before anything is sealed with it.
        let saved = keyring.clone();
        let save_path = path.clone();
        tokio::task::spawn_blocking(move || saved.save(&save_path))
            .await
            .map_err(|e| RotationError::KeyFile {
                path: path.display().to_string(),
                error: e.to_string(),
            })?
            .map_err(|e| RotationError::KeyFile {
                path: path.display().to_string(),
                error: e.to_string(),
            })?;
        self.vault
            .install(keyring)
            .map_err(|e| RotationError::Store(StoreError::Unavailable(e.to_string())))?;
        tracing::info!(
            version,
            key_file = %path.display(),
            "added a master key version; new mail is sealed with it (back the key file up now)"
        );
        self.secure
            .record_key_rotation(
                actor,
                "rotate",
                version,
                serde_json::json!({ "version": version }),
            )
            .await?;
        Ok(version)
    }

    /// Re-wraps every message key to `version`, batch after batch.
    async fn rewrap_all(&self, version: u32) {
        match self.passes().await {
            Ok(()) => {
                let (done, failures) = {
                    let mut status = self.status.lock().expect("not poisoned");
                    status.state = RotationState::Complete;
                    status.finished_at = Some(sealpost_store::rfc3339(SystemTime::now()));
                    (status.done, status.failures)
                };
                tracing::info!(version, rewrapped = done, failures, "key rotation complete");
                if let Err(e) = self
                    .secure
                    .record_key_rotation(
                        Actor::system("key rotation"),
                        "rewrapped",
                        version,
                        serde_json::json!({ "version": version, "rewrapped": done, "failures": failures }),
                    )
                    .await
                {
                    tracing::warn!(error = %e, "the end of a key rotation was not audited");
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "key rotation stopped; POST /api/v1/keys/rotate (or `sealpost keys rotate`) resumes it");
                let mut status = self.status.lock().expect("not poisoned");
                status.state = RotationState::Failed;
                status.error = Some(e.to_string());
                status.finished_at = Some(sealpost_store::rfc3339(SystemTime::now()));
            }
        }
    }

    async fn passes(&self) -> Result<(), StoreError> {
        let mut failed_last = 0;
        for pass in 0..PASSES {
            let behind = self.behind().await?;
            // What is left is what failed last time (and fails again).
            if behind <= failed_last {
                return Ok(());
            }
            {
                let mut status = self.status.lock().expect("not poisoned");
                if pass == 0 {
                    status.total = behind;
                } else {
                    status.total += behind - failed_last;
                }
            }
            let mut failed = 0;
            let mut after: Option<QueueId> = None;
            // Bounded: each batch moves the cursor forward by `batch` ids.
            for _ in 0..=(behind as usize / self.batch + 1) {
                let b = self.secure.rewrap_batch(after, self.batch).await?;
                failed += b.failures.len() as u64;
                {
                    let mut status = self.status.lock().expect("not poisoned");
                    status.done += b.checked as u64;
                    status.failures = failed;
                }
                for (id, why) in &b.failures {
                    tracing::warn!(message = %id, error = %why, "a message key did not re-wrap; it stays on its version");
                }
                after = b.next;
                if after.is_none() {
                    break;
                }
                tokio::time::sleep(BREATHER).await;
            }
            failed_last = failed;
        }
        Ok(())
    }

    /// At start: re-wraps in the background what an interrupted rotation
    /// (or a version added to `SEALPOST_MASTER_KEY`) left behind.
    ///
    /// # Errors
    /// The store, counting the keys behind.
    pub async fn resume_if_needed(self: &Arc<Self>) -> Result<bool, RotationError> {
        if self.behind().await? == 0 {
            return Ok(false);
        }
        self.start(Actor::system("start")).await?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests;
