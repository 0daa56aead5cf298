//! The single writer of the SQLite store: one thread, group commit.
//!
//! SQLite admits one writer at a time, and each durable commit costs an
//! fsync. Rather than let callers queue for the lock and pay one fsync each,
//! every write is sent to one dedicated thread as a [`WriteJob`]: the thread
//! takes whatever jobs are waiting (up to [`MAX_BATCH`]), applies them in
//! one transaction, commits once, and only then answers every job. A job is
//! never answered `Ok` before the commit that contains it has returned.
//!
//! A batch with nothing durable in it (leases, delivery outcomes) waits a
//! moment ([`PIGGYBACK`]) for an acceptance to ride along with: the pages
//! both touch (the queue index, the recipients' leaf, the free-list) are
//! then written once, in the commit whose fsync acceptance needs anyway,
//! and the acceptance never waits behind a commit of its own.
//!
//! The thread owns its connection and runs SQLite synchronously. An earlier
//! design drove SQLite through an async driver, which hands every statement
//! to a worker thread and back; those hand-offs, not SQL, were most of the
//! measured cost per message (see `bench/RESULTS.md`). Here a whole batch
//! costs two: the job in, the answers out.

use std::{
    sync::Arc,
    thread,
    time::{Duration, Instant},
};

use rusqlite::{Connection, TransactionBehavior};
use tokio::sync::{mpsc, oneshot};

use crate::{QueueId, StoreError, spool::Spool};

/// Most jobs in one transaction; bounds the latency a batch adds.
const MAX_BATCH: usize = 256;

/// Jobs waiting for the writer; senders wait when it is full.
const QUEUE_DEPTH: usize = 1024;

/// How long a batch of non-durable jobs waits for a durable one to share
/// its commit. Short next to the delivery worker's own linger, and longer
/// than the gap between two messages of one busy SMTP session.
const PIGGYBACK: Duration = Duration::from_millis(2);

/// Side effects a job asks for, carried out only once its transaction has
/// committed (and been fsync'd, for those that need it).
#[derive(Debug, Default)]
pub(super) struct Effects {
    /// Spool files whose message content the job purged.
    pub purged: Vec<QueueId>,
}

/// One unit of work for the writer thread.
pub(super) trait WriteJob: Send {
    /// Whether this job's commit must reach stable storage before the job
    /// is answered (the `250` promise of acceptance).
    fn durable(&self) -> bool;

    /// Runs the job's statements inside the current transaction and keeps
    /// its result until [`WriteJob::answer`]. May be called again, in a new
    /// transaction, if the batch it was part of failed.
    fn apply(&mut self, conn: &Connection, effects: &mut Effects) -> Result<(), StoreError>;

    /// Sends the job's kept result, or `failure`, to whoever waits for it.
    fn answer(self: Box<Self>, failure: Option<StoreError>);
}

/// A [`WriteJob`] made of a closure and the channel its result goes to.
struct ClosureJob<F, R> {
    durable: bool,
    run: F,
    result: Option<R>,
    reply: oneshot::Sender<Result<R, StoreError>>,
}

impl<F, R> WriteJob for ClosureJob<F, R>
where
    F: FnMut(&Connection, &mut Effects) -> Result<R, StoreError> + Send,
    R: Send,
{
    fn durable(&self) -> bool {
        self.durable
    }

    fn apply(&mut self, conn: &Connection, effects: &mut Effects) -> Result<(), StoreError> {
        self.result = Some((self.run)(conn, effects)?);
        Ok(())
    }

    fn answer(self: Box<Self>, failure: Option<StoreError>) {
        let outcome = match (failure, self.result) {
            (Some(e), _) => Err(e),
            (None, Some(result)) => Ok(result),
            (None, None) => Err(StoreError::Corrupt(
                "write job answered before it ran".into(),
            )),
        };
        let _ = self.reply.send(outcome);
    }
}

/// The sending side of the writer thread. Cheap to clone.
#[derive(Debug, Clone)]
pub(super) struct Writer {
    jobs: mpsc::Sender<Box<dyn WriteJob>>,
}

impl Writer {
    /// Starts the writer thread on `conn`. It runs until every [`Writer`]
    /// is dropped, then closes the connection.
    pub(super) fn start(conn: Connection, spool: Arc<Spool>) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
        thread::Builder::new()
            .name("sealpost-db-writer".into())
            .spawn(move || run(conn, rx, &spool))?;
        Ok(Writer { jobs: tx })
    }

    /// Runs `job` in the next group commit and returns its result once that
    /// commit is done. `durable` jobs are answered only after an fsync.
    pub(super) async fn write<F, R>(&self, durable: bool, job: F) -> Result<R, StoreError>
    where
        F: FnMut(&Connection, &mut Effects) -> Result<R, StoreError> + Send + 'static,
        R: Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Box::new(ClosureJob {
                durable,
                run: job,
                result: None,
                reply,
            }))
            .await
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }
}

fn run(mut conn: Connection, mut rx: mpsc::Receiver<Box<dyn WriteJob>>, spool: &Spool) {
    let mut batch: Vec<Box<dyn WriteJob>> = Vec::with_capacity(MAX_BATCH);
    let mut state = WriterState {
        synchronous_full: true,
        pending_removals: Vec::new(),
    };
    // Only for waiting on the job queue with a deadline; SQLite itself
    // runs on this thread, outside any runtime.
    let timer = match tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
    {
        Ok(timer) => Some(timer),
        Err(e) => {
            tracing::warn!(error = %e, "no timer for the database writer; batches commit without waiting for acceptances");
            None
        }
    };
    while let Some(first) = rx.blocking_recv() {
        batch.push(first);
        take_waiting(&mut rx, &mut batch);
        if let Some(timer) = &timer {
            piggyback(timer, &mut rx, &mut batch);
        }
        commit_batch(&mut conn, &mut batch, spool, &mut state);
    }
}

/// Adds the jobs already waiting, up to [`MAX_BATCH`].
fn take_waiting(rx: &mut mpsc::Receiver<Box<dyn WriteJob>>, batch: &mut Vec<Box<dyn WriteJob>>) {
    while batch.len() < MAX_BATCH {
        match rx.try_recv() {
            Ok(job) => batch.push(job),
            Err(_) => break,
        }
    }
}

/// Holds a batch without durable jobs for up to [`PIGGYBACK`], until a
/// durable job arrives to share its commit (see the module comment).
fn piggyback(
    timer: &tokio::runtime::Runtime,
    rx: &mut mpsc::Receiver<Box<dyn WriteJob>>,
    batch: &mut Vec<Box<dyn WriteJob>>,
) {
    let deadline = Instant::now() + PIGGYBACK;
    while !needs_fsync(batch) && batch.len() < MAX_BATCH {
        let Some(left) = deadline.checked_duration_since(Instant::now()) else {
            return;
        };
        match timer.block_on(async { tokio::time::timeout(left, rx.recv()).await }) {
            Ok(Some(job)) => {
                batch.push(job);
                take_waiting(rx, batch);
            }
            // Timed out, or every sender is gone: commit what there is.
            Ok(None) | Err(_) => return,
        }
    }
}

/// What the writer remembers between batches.
struct WriterState {
    /// The connection's current `PRAGMA synchronous` (FULL or NORMAL).
    synchronous_full: bool,
    /// Spool files whose purge was committed without an fsync: removed
    /// only after the next fsync'd commit, so a crash can never leave a row
    /// that points at a deleted file.
    pending_removals: Vec<QueueId>,
}

/// Only a batch with a durable job (acceptance) needs its own fsync: that
/// is the `250` promise. Leases and delivery outcomes commit without one
/// (`synchronous = NORMAL`; in WAL mode the log is still written in order
/// and fsync'd by the next FULL commit or checkpoint). A crash can lose
/// such a commit and nothing more: a lost lease is released at the next
/// start, a lost outcome means the recipient is delivered again
/// (at-least-once).
fn needs_fsync(batch: &[Box<dyn WriteJob>]) -> bool {
    batch.iter().any(|job| job.durable())
}

fn commit_batch(
    conn: &mut Connection,
    batch: &mut Vec<Box<dyn WriteJob>>,
    spool: &Spool,
    state: &mut WriterState,
) {
    let full = needs_fsync(batch);
    if full != state.synchronous_full {
        let level = if full { "FULL" } else { "NORMAL" };
        if let Err(e) = conn.pragma_update(None, "synchronous", level) {
            fail_all(batch, &e.into());
            return;
        }
        state.synchronous_full = full;
    }
    // Fast path: every job in one transaction. If any job fails, undo the
    // whole batch and run each job in a transaction of its own, so one bad
    // job never takes its neighbours down and never half-commits.
    let mut effects = Effects::default();
    let failures: Vec<Option<StoreError>> = match run_jobs(conn, batch, &mut effects) {
        Ok(()) => batch.iter().map(|_| None).collect(),
        Err(e) => {
            tracing::warn!(error = %e, jobs = batch.len(), "batch failed; retrying its jobs one by one");
            effects = Effects::default();
            batch
                .iter_mut()
                .map(|job| {
                    let mut own = Effects::default();
                    match run_jobs(conn, std::slice::from_mut(job), &mut own) {
                        Ok(()) => {
                            effects.purged.append(&mut own.purged);
                            None
                        }
                        Err(e) => Some(e),
                    }
                })
                .collect()
        }
    };
    state.pending_removals.append(&mut effects.purged);
    if full {
        // Everything committed so far is on stable storage now, including
        // the purges of earlier NORMAL batches: their files can go. A crash
        // before this leaves orphans for the next start's sweep.
        for id in state.pending_removals.drain(..) {
            spool.remove(&id);
        }
    }
    // Acceptances first: an SMTP client is waiting for each of them, and
    // the tasks woken first run first, ahead of the deliveries whose
    // leases and outcomes shared the commit.
    let (durable, rest): (Vec<_>, Vec<_>) = batch
        .drain(..)
        .zip(failures)
        .partition(|(job, _)| job.durable());
    for (job, failure) in durable.into_iter().chain(rest) {
        job.answer(failure);
    }
}

fn fail_all(batch: &mut Vec<Box<dyn WriteJob>>, error: &StoreError) {
    tracing::error!(error = %error, jobs = batch.len(), "database commit failed");
    for job in batch.drain(..) {
        job.answer(Some(StoreError::Unavailable(error.to_string())));
    }
}

/// Runs `jobs` in one transaction: all commit, or none (the error says
/// why; dropping the transaction rolls it back).
fn run_jobs(
    conn: &mut Connection,
    jobs: &mut [Box<dyn WriteJob>],
    effects: &mut Effects,
) -> Result<(), StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    for job in jobs.iter_mut() {
        job.apply(&tx, effects)?;
    }
    tx.commit()?;
    Ok(())
}
