//! The vault's master keys: where the gateway gets them, and the
//! `sealpost keys` commands (list, rotate, verify).
//!
//! Keys come from `SEALPOST_MASTER_KEY` when it is set (entries
//! `<version>:<64 hex digits>`, for operators who keep secrets out of
//! files), else from `vault.master_key_file`, created with one fresh key
//! (mode 0600) on first start. The highest version seals new mail.
//!
//! `keys rotate` on a stopped gateway adds a version to the key file
//! (durably, before anything is re-wrapped), then re-wraps every message
//! key to it in batches, each batch one commit. Interrupted at any point,
//! running it again finishes the job: it adds a version only when every
//! message key is already on the newest one. On a running gateway (which
//! holds the database) it asks the gateway's API to do the same online
//! (`POST /api/v1/keys/rotate`, see `sealpost_web::key_rotation`) and
//! shows the progress the gateway reports (`GET /api/v1/keys/rotation`).

use std::{io::IsTerminal, process::ExitCode, sync::Arc, time::Duration};

use anyhow::Context;

use sealpost_store::{QueueId, SecureStore, SqliteStore, StoreError, VerifyBatch};
use sealpost_vault::{Keyring, Vault};

use crate::{api_client::ApiClient, config::Config};

/// The environment variable that holds master keys instead of the file.
pub const MASTER_KEY_ENV: &str = "SEALPOST_MASTER_KEY";

/// Where the keyring came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    Env,
    File(std::path::PathBuf),
}

fn source(config: &Config) -> KeySource {
    match std::env::var_os(MASTER_KEY_ENV) {
        Some(v) if !v.is_empty() => KeySource::Env,
        _ => KeySource::File(config.vault.master_key_file.clone()),
    }
}

fn env_keyring() -> anyhow::Result<Keyring> {
    let text = std::env::var(MASTER_KEY_ENV)
        .map_err(|_| anyhow::anyhow!("{MASTER_KEY_ENV} is not valid UTF-8"))?;
    Keyring::parse(&text)
        .with_context(|| format!("{MASTER_KEY_ENV} does not hold valid master keys"))
}

/// Message keys re-wrapped per commit by a rotation in a running gateway:
/// small, so an SMTP commit never waits long behind one.
pub const ONLINE_REWRAP_BATCH: usize = 200;

/// The key file a running gateway adds a rotation's version to; `None`
/// when the keys come from `SEALPOST_MASTER_KEY`.
pub fn key_file(config: &Config) -> Option<std::path::PathBuf> {
    match source(config) {
        KeySource::File(path) => Some(path),
        KeySource::Env => None,
    }
}

/// The gateway's master keys (see the module doc for where from).
///
/// # Errors
/// A malformed variable or file, a key file others may read, or one that
/// cannot be created.
pub fn load_keyring(config: &Config) -> anyhow::Result<Keyring> {
    match source(config) {
        KeySource::Env => env_keyring(),
        KeySource::File(path) => Keyring::load_or_create(&path)
            .with_context(|| format!("vault.master_key_file ({})", path.display())),
    }
}

/// The keyring for a key command: never creates a key file (a wrong path
/// must not quietly produce a fresh, useless key).
fn existing_keyring(config: &Config) -> anyhow::Result<Keyring> {
    match source(config) {
        KeySource::Env => env_keyring(),
        KeySource::File(path) => Keyring::load(&path)
            .with_context(|| format!("vault.master_key_file ({})", path.display())),
    }
}

/// For `sealpost config check`: whether the master keys `serve` would use
/// parse, without creating a key file. Returns a line saying where they
/// come from.
///
/// # Errors
/// The variable's or the file's problem, named as `serve` would name it;
/// a missing key file beside an existing database (`database_exists`):
/// the key `serve` would create is not the one the database records.
pub fn check_keys(config: &Config, database_exists: bool) -> anyhow::Result<String> {
    match source(config) {
        KeySource::Env => {
            let keyring = env_keyring()?;
            Ok(format!(
                "{MASTER_KEY_ENV} (current version {})",
                keyring.current().version()
            ))
        }
        KeySource::File(path) if !present(&path, "vault.master_key_file")? && database_exists => {
            anyhow::bail!(
                "vault.master_key_file ({}) does not exist, but the database does: serve would \
             create a new key, which is not the key the database was sealed with, and refuse \
             to start; restore the key file (or set {MASTER_KEY_ENV})",
                path.display()
            )
        }
        KeySource::File(path) if !present(&path, "vault.master_key_file")? => Ok(format!(
            "{} does not exist yet; serve creates it",
            path.display()
        )),
        KeySource::File(path) => {
            let keyring = Keyring::load(&path)
                .with_context(|| format!("vault.master_key_file ({})", path.display()))?;
            Ok(format!(
                "{} (current version {})",
                path.display(),
                keyring.current().version()
            ))
        }
    }
}

/// Whether `path` exists; a path that cannot be looked at (another user's
/// private data directory) is an error, never "does not exist": a check
/// that cannot see the files must not pass.
///
/// # Errors
/// The lookup failed; `key` names the setting.
pub fn present(path: &std::path::Path, key: &str) -> anyhow::Result<bool> {
    path.try_exists().with_context(|| {
        format!(
            "{key}: cannot look at {} (run the check as the gateway's user)",
            path.display()
        )
    })
}

/// Why keeping the key file in the data directory deserves a warning, or
/// `None` when it is elsewhere (or the keys come from the environment).
pub fn key_placement_warning(config: &Config) -> Option<String> {
    match source(config) {
        KeySource::File(path) if path.starts_with(&config.data_dir) => Some(format!(
            "the master key file {} is inside server.data_dir: a backup of that directory \
             carries the key to its mail; for production set vault.master_key_file outside it \
             (or use {MASTER_KEY_ENV})",
            path.display()
        )),
        _ => None,
    }
}

/// Whether `open` failed because a running gateway holds the database.
fn held_by_gateway(error: &str) -> bool {
    error.contains("in use by another")
}

/// Opens the store for a key command, with the database to itself.
async fn open(config: &Config, keyring: Keyring) -> Result<SqliteStore, String> {
    let db = SqliteStore::path_of_url(&config.database_url);
    if !db.exists() {
        return Err(format!(
            "{} does not exist (database.url); there is nothing to do",
            db.display()
        ));
    }
    // The previous store of this process may still be letting go of the
    // lock: bounded retry (5 s).
    let mut last = None;
    for _ in 0..100 {
        match SqliteStore::open(
            &db,
            &config.data_dir.join("spool"),
            Arc::new(Vault::new(keyring.clone())),
        )
        .await
        {
            Ok(store) => return Ok(store),
            Err(StoreError::Unavailable(m)) if m.contains("in use by another") => {
                last = Some(m);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => return Err(e.to_string()),
        }
    }
    Err(format!(
        "{}; stop the gateway first: key commands need the database to themselves",
        last.unwrap_or_default()
    ))
}

/// Opens the store once: a running gateway holding the database is
/// reported at once (its error names the lock, see [`held_by_gateway`]).
async fn open_once(config: &Config, keyring: Keyring) -> Result<SqliteStore, String> {
    let db = SqliteStore::path_of_url(&config.database_url);
    if !db.exists() {
        return Err(format!(
            "{} does not exist (database.url); there is nothing to do",
            db.display()
        ));
    }
    SqliteStore::open(
        &db,
        &config.data_dir.join("spool"),
        Arc::new(Vault::new(keyring)),
    )
    .await
    .map_err(|e| e.to_string())
}

fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("sealpost: cannot start the async runtime: {e}");
            ExitCode::FAILURE
        })
}

fn fail(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("sealpost: {message}");
    ExitCode::FAILURE
}

/// Loads the keyring and runs `work` on a small runtime.
fn run(config: &Config, work: impl AsyncFnOnce(Keyring) -> ExitCode) -> ExitCode {
    let keyring = match existing_keyring(config) {
        Ok(k) => k,
        Err(e) => return fail(format!("{e:#}")),
    };
    match runtime() {
        Ok(rt) => rt.block_on(work(keyring)),
        Err(code) => code,
    }
}

/// Message keys not on the current version.
async fn behind(store: &SqliteStore, current: u32) -> Result<u64, StoreError> {
    Ok(store
        .key_usage()
        .await?
        .iter()
        .filter(|u| u.version != current)
        .map(|u| u.messages)
        .sum())
}

/// Runs `step` batch after batch until it reports no next batch, showing
/// progress. Returns how many were handled and the failures.
async fn batches(
    verb: &'static str,
    total: u64,
    batch: usize,
    mut step: impl AsyncFnMut(Option<QueueId>, usize) -> Result<VerifyBatch, StoreError>,
) -> Result<(u64, Vec<(QueueId, String)>), StoreError> {
    let batch = batch.max(1);
    let progress = Progress::new(verb, total);
    let (mut after, mut done, mut failures) = (None, 0u64, Vec::new());
    // Bounded: each batch moves the cursor forward by up to `batch` ids.
    for _ in 0..=(total as usize / batch + 1) {
        let b = step(after, batch).await?;
        done += b.checked as u64;
        failures.extend(b.failures);
        progress.set(done);
        after = b.next;
        if after.is_none() {
            break;
        }
    }
    progress.finish();
    for (id, why) in &failures {
        eprintln!("  {id}: {why}");
    }
    Ok((done, failures))
}

/// `sealpost keys list`: key versions and how many message keys each wraps.
pub fn list(config: &Config) -> ExitCode {
    run(config, async |keyring| {
        let current = keyring.current().version();
        let store = match open(config, keyring.clone()).await {
            Ok(s) => s,
            Err(e) => return fail(e),
        };
        let usage = match store.key_usage().await {
            Ok(u) => u,
            Err(e) => return fail(e),
        };
        match source(config) {
            KeySource::Env => println!("master keys from {MASTER_KEY_ENV}"),
            KeySource::File(p) => println!("master keys from {}", p.display()),
        }
        println!("{:<8}  {:>10}", "VERSION", "MESSAGES");
        for version in keyring.versions() {
            let count = usage
                .iter()
                .find(|u| u.version == version)
                .map_or(0, |u| u.messages);
            let mark = if version == current {
                "  (current)"
            } else {
                ""
            };
            println!("{version:<8}  {count:>10}{mark}");
        }
        ExitCode::SUCCESS
    })
}

/// `sealpost keys rotate`: see the module doc. `api` reaches the running
/// gateway, when there is one.
pub fn rotate(
    config: &Config,
    batch: usize,
    api: impl FnOnce() -> Result<ApiClient, String>,
) -> ExitCode {
    let mut api = Some(api);
    run(config, async |mut keyring| {
        let store = match open_once(config, keyring.clone()).await {
            Ok(s) => s,
            Err(e) if held_by_gateway(&e) => {
                let api = api.take().expect("called once");
                return match api() {
                    Ok(client) => rotate_online(&client),
                    Err(e) => fail(e),
                };
            }
            Err(e) => return fail(e),
        };
        let current = keyring.current().version();
        let store = match behind(&store, current).await {
            Err(e) => return fail(e),
            Ok(n) if n > 0 => {
                eprintln!(
                    "Resuming the rotation to master key version {current}: {n} message key(s) to re-wrap."
                );
                store
            }
            Ok(_) => {
                let KeySource::File(path) = source(config) else {
                    return fail(format!(
                        "every message key is on version {current}, the newest in {MASTER_KEY_ENV}. \
                         To rotate, append a new entry `{}:<64 hex digits>` (e.g. from `openssl rand -hex 32`) \
                         to {MASTER_KEY_ENV}, keeping the old ones, and run `sealpost keys rotate` again",
                        current + 1
                    ));
                };
                let floor = match store.highest_key_version().await {
                    Ok(v) => v,
                    Err(e) => return fail(e),
                };
                drop(store);
                // The new key is durable before anything is wrapped with it,
                // and numbered above every version the database has seen.
                let version = keyring.add_version_above(floor);
                if let Err(e) = keyring.save(&path) {
                    return fail(format!(
                        "cannot write the new key to {}: {e}",
                        path.display()
                    ));
                }
                eprintln!(
                    "Added master key version {version} to {} (back this file up now).",
                    path.display()
                );
                match open(config, keyring.clone()).await {
                    Ok(s) => s,
                    Err(e) => return fail(e),
                }
            }
        };
        let current = keyring.current().version();
        let total = match behind(&store, current).await {
            Ok(n) => n,
            Err(e) => return fail(e),
        };
        let result = batches("re-wrapped", total, batch, async |after, n| {
            store.rewrap_batch(after, n).await
        })
        .await;
        match result {
            Err(e) => fail(format!("re-wrapping stopped: {e} (run it again to resume)")),
            Ok((done, failures)) if failures.is_empty() => {
                eprintln!(
                    "Rotation complete: {done} message key(s) now wrapped with master key version {current}."
                );
                ExitCode::SUCCESS
            }
            Ok((_, failures)) => fail(format!(
                "{} message key(s) could not be re-wrapped (listed above); they stay on their old version",
                failures.len()
            )),
        }
    })
}

/// How often the CLI asks a running gateway for the rotation's progress.
const POLL: Duration = Duration::from_millis(500);

/// Longest the CLI follows an online rotation (it goes on in the gateway
/// if the CLI stops following).
const FOLLOW_MAX: Duration = Duration::from_secs(24 * 3600);

/// `keys rotate` through the running gateway's API: starts (or resumes)
/// the rotation and follows its progress to the end.
fn rotate_online(api: &ApiClient) -> ExitCode {
    let started = match api.request("POST", "/keys/rotate", None) {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    match started.status {
        202 => {}
        // Already running: follow it.
        409 if started.json()["code"] == "rotation_running" => {}
        _ => return fail(started.error_text()),
    }
    let version = started.json()["version"].as_u64().unwrap_or(0);
    eprintln!(
        "The gateway is running: rotating through its API. New mail is sealed with master key \
         version {version} from now on; re-wrapping stored message keys in the background."
    );
    let mut progress: Option<Progress> = None;
    let polls = FOLLOW_MAX.as_millis() / POLL.as_millis();
    for _ in 0..polls {
        let status = match api.request("GET", "/keys/rotation", None) {
            Ok(r) if r.status == 200 => r.json(),
            Ok(r) => return fail(r.error_text()),
            Err(e) => return fail(e),
        };
        let (done, total) = (
            status["done"].as_u64().unwrap_or(0),
            status["total"].as_u64().unwrap_or(0),
        );
        let bar = progress.get_or_insert_with(|| Progress::new("re-wrapped", total));
        bar.set_total(total);
        bar.set(done);
        match status["state"].as_str() {
            Some("running") => std::thread::sleep(POLL),
            Some("complete") => {
                bar.finish();
                let failures = status["failures"].as_u64().unwrap_or(0);
                if failures > 0 {
                    return fail(format!(
                        "{failures} message key(s) could not be re-wrapped (named in the gateway's log); they stay on their old version"
                    ));
                }
                eprintln!(
                    "Rotation complete: {done} message key(s) now wrapped with master key version {}.",
                    status["version"]
                );
                return ExitCode::SUCCESS;
            }
            _ => {
                bar.finish();
                return fail(format!(
                    "the rotation stopped: {} (run `sealpost keys rotate` again to resume)",
                    status["error"].as_str().unwrap_or("see the gateway's log")
                ));
            }
        }
    }
    fail("stopped following the rotation; it goes on in the gateway (GET /api/v1/keys/rotation)")
}

/// `sealpost keys verify`: opens every stored content and reports those
/// that do not open (tampered, or sealed with a key the keyring lacks).
pub fn verify(config: &Config, batch: usize) -> ExitCode {
    run(config, async |keyring| {
        let store = match open(config, keyring).await {
            Ok(s) => s,
            Err(e) => return fail(e),
        };
        // Versions start at 1, so "not on version 0" counts every key.
        let total = match behind(&store, 0).await {
            Ok(n) => n,
            Err(e) => return fail(e),
        };
        let result = batches("verified", total, batch, async |after, n| {
            store.verify_batch(after, n).await
        })
        .await;
        match result {
            Err(e) => fail(e),
            Ok((checked, failures)) if failures.is_empty() => {
                eprintln!("All {checked} stored message content(s) open with this keyring.");
                ExitCode::SUCCESS
            }
            Ok((checked, failures)) => fail(format!(
                "{} of {checked} stored content(s) do not open (listed above)",
                failures.len()
            )),
        }
    })
}

/// A progress bar on a terminal; a line per step otherwise (logs, tests).
struct Progress {
    bar: Option<indicatif::ProgressBar>,
    verb: &'static str,
    total: std::cell::Cell<u64>,
}

impl Progress {
    fn new(verb: &'static str, total: u64) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::new(total);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{bar:40} {pos}/{len} message keys {msg} ({eta})",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            bar.set_message(verb);
            bar
        });
        Progress {
            bar,
            verb,
            total: std::cell::Cell::new(total),
        }
    }

    /// The total may grow while an online rotation runs.
    fn set_total(&self, total: u64) {
        if total != self.total.get() {
            self.total.set(total);
            if let Some(bar) = &self.bar {
                bar.set_length(total);
            }
        }
    }

    fn set(&self, done: u64) {
        match &self.bar {
            Some(bar) => bar.set_position(done),
            None => eprintln!("{} {done}/{}", self.verb, self.total.get()),
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
