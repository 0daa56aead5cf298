//! The single writer of the SQLite store: one connection, group commit.
//!
//! SQLite admits one writer at a time, and each durable commit costs an
//! fsync. Rather than let callers queue for the lock and pay one fsync each,
//! every write is queued as a [`WriteJob`]; whoever commits next takes
//! whatever jobs are waiting (up to [`MAX_BATCH`]), applies them in one
//! transaction, commits once, and only then answers every job. A job is
//! never answered `Ok` before the commit that contains it has returned.
//!
//! Who commits: normally the writer thread, which owns nothing but the
//! right to wait for the connection. An acceptance that knows it is alone
//! (no other SMTP transaction open, see [`Writer::write_inline`]) commits
//! on its own thread when the connection is free, taking the queued jobs
//! along: nothing else would have shared its commit, and the two thread
//! hand-offs (the job to the writer, the answer back) were a sixth of the
//! time from the end of DATA to the `250` at one session.
//!
//! A batch with nothing durable in it (leases, delivery outcomes) waits a
//! moment ([`PIGGYBACK`]) for an acceptance to ride along with: the pages
//! both touch (the queue index, the recipients' leaf, the free-list) are
//! then written once, in the commit whose fsync acceptance needs anyway,
//! and the acceptance never waits behind a commit of its own. Jobs stay in
//! the queue while they wait, so an inline acceptance takes them too.
//!
//! SQLite runs synchronously on the committing thread. An earlier design
//! drove SQLite through an async driver, which hands every statement to a
//! worker thread and back; those hand-offs, not SQL, were most of the
//! measured cost per message (see `bench/RESULTS.md`). Here a whole batch
//! costs two: the job in, the answers out.

use std::{
    collections::VecDeque,
    sync::{Arc, Condvar, Mutex, MutexGuard},
    thread,
    time::{Duration, Instant},
};

use rusqlite::{Connection, TransactionBehavior};
use tokio::sync::oneshot;

use crate::{QueueId, StoreError, spool::Spool};

/// Most jobs in one transaction; bounds the latency a batch adds.
const MAX_BATCH: usize = 256;

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

/// One unit of work for the writer.
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

type Job = Box<dyn WriteJob>;

/// What the committers share.
struct Shared {
    queue: Mutex<Queue>,
    /// Signalled when a job is queued or the last [`Writer`] goes.
    queued: Condvar,
    /// The connection; whoever holds it commits.
    core: Mutex<Core>,
}

#[derive(Default)]
struct Queue {
    jobs: VecDeque<Job>,
    /// Every [`Writer`] is gone: the writer thread ends.
    closed: bool,
    /// The writer thread is waiting on [`Shared::queued`]: only then is a
    /// new job worth a wake-up (a system call).
    waiting: bool,
}

/// The connection and what the writer remembers between batches.
struct Core {
    conn: Connection,
    spool: Arc<Spool>,
    state: WriterState,
}

impl Shared {
    fn lock_queue(&self) -> MutexGuard<'_, Queue> {
        // A panic while holding the lock leaves a queue that is still a
        // queue; carry on with it.
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn push(&self, job: Job) {
        let mut queue = self.lock_queue();
        queue.jobs.push_back(job);
        if queue.waiting {
            self.queued.notify_one();
        }
    }

    /// Takes up to [`MAX_BATCH`] queued jobs.
    fn take_batch(&self, batch: &mut Vec<Job>) {
        let mut queue = self.lock_queue();
        let n = queue.jobs.len().min(MAX_BATCH.saturating_sub(batch.len()));
        batch.extend(queue.jobs.drain(..n));
    }
}

/// Closes the queue when the last [`Writer`] is dropped.
struct Handle(Arc<Shared>);

impl Drop for Handle {
    fn drop(&mut self) {
        self.0.lock_queue().closed = true;
        self.0.queued.notify_all();
    }
}

/// The sending side of the writer. Cheap to clone.
#[derive(Clone)]
pub(super) struct Writer {
    handle: Arc<Handle>,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer").finish_non_exhaustive()
    }
}

impl Writer {
    /// Starts the writer thread on `conn`. It runs until every [`Writer`]
    /// is dropped, then closes the connection.
    pub(super) fn start(conn: Connection, spool: Arc<Spool>) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::default()),
            queued: Condvar::new(),
            core: Mutex::new(Core {
                conn,
                spool,
                state: WriterState {
                    synchronous_full: true,
                    pending_removals: Vec::new(),
                },
            }),
        });
        let thread_shared = shared.clone();
        thread::Builder::new()
            .name("sealpost-db-writer".into())
            .spawn(move || run(&thread_shared))?;
        Ok(Writer {
            handle: Arc::new(Handle(shared)),
        })
    }

    /// Runs `job` in the next group commit and returns its result once that
    /// commit is done. `durable` jobs are answered only after an fsync.
    pub(super) async fn write<F, R>(&self, durable: bool, job: F) -> Result<R, StoreError>
    where
        F: FnMut(&Connection, &mut Effects) -> Result<R, StoreError> + Send + 'static,
        R: Send + 'static,
    {
        let (job, answer) = closure_job(durable, job);
        self.handle.0.push(job);
        answer.await.map_err(|_| StoreError::Closed)?
    }

    /// Like [`Writer::write`], but if the connection is free the commit
    /// happens here, on the calling thread, with the queued jobs along.
    /// That blocks the calling thread (an async runtime's worker) for the
    /// commit, fsync included: for a caller that knows nobody else is
    /// waiting on it (see the module comment).
    pub(super) async fn write_inline<F, R>(&self, durable: bool, job: F) -> Result<R, StoreError>
    where
        F: FnMut(&Connection, &mut Effects) -> Result<R, StoreError> + Send + 'static,
        R: Send + 'static,
    {
        let (job, answer) = closure_job(durable, job);
        let shared = &self.handle.0;
        match shared.core.try_lock() {
            Ok(mut core) => {
                let mut batch = vec![job];
                shared.take_batch(&mut batch);
                core.commit_batch(&mut batch);
            }
            // Busy (or poisoned, which the writer thread reports): queue.
            Err(_) => shared.push(job),
        }
        answer.await.map_err(|_| StoreError::Closed)?
    }
}

fn closure_job<F, R>(durable: bool, run: F) -> (Job, oneshot::Receiver<Result<R, StoreError>>)
where
    F: FnMut(&Connection, &mut Effects) -> Result<R, StoreError> + Send + 'static,
    R: Send + 'static,
{
    let (reply, answer) = oneshot::channel();
    let job = Box::new(ClosureJob {
        durable,
        run,
        result: None,
        reply,
    });
    (job, answer)
}

/// The writer thread: waits for jobs, holds a batch without durable jobs
/// for up to [`PIGGYBACK`] (see the module comment), then commits.
fn run(shared: &Shared) {
    let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    loop {
        {
            let mut queue = shared.lock_queue();
            while queue.jobs.is_empty() {
                if queue.closed {
                    return;
                }
                queue.waiting = true;
                queue = shared.queued.wait(queue).unwrap_or_else(|e| e.into_inner());
                queue.waiting = false;
            }
            let deadline = Instant::now() + PIGGYBACK;
            while !queue.closed
                && queue.jobs.len() < MAX_BATCH
                && !queue.jobs.iter().any(|job| job.durable())
            {
                let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                    break;
                };
                queue.waiting = true;
                queue = shared
                    .queued
                    .wait_timeout(queue, left)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
                queue.waiting = false;
            }
        }
        let mut core = shared.core.lock().unwrap_or_else(|e| e.into_inner());
        // An inline commit may have taken the jobs meanwhile.
        shared.take_batch(&mut batch);
        if !batch.is_empty() {
            core.commit_batch(&mut batch);
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
fn needs_fsync(batch: &[Job]) -> bool {
    batch.iter().any(|job| job.durable())
}

impl Core {
    fn commit_batch(&mut self, batch: &mut Vec<Job>) {
        commit_batch(&mut self.conn, batch, &self.spool, &mut self.state);
    }
}

fn commit_batch(
    conn: &mut Connection,
    batch: &mut Vec<Job>,
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

fn fail_all(batch: &mut Vec<Job>, error: &StoreError) {
    tracing::error!(error = %error, jobs = batch.len(), "database commit failed");
    for job in batch.drain(..) {
        job.answer(Some(StoreError::Unavailable(error.to_string())));
    }
}

/// Runs `jobs` in one transaction: all commit, or none (the error says
/// why; dropping the transaction rolls it back).
fn run_jobs(
    conn: &mut Connection,
    jobs: &mut [Job],
    effects: &mut Effects,
) -> Result<(), StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    for job in jobs.iter_mut() {
        job.apply(&tx, effects)?;
    }
    tx.commit()?;
    Ok(())
}
