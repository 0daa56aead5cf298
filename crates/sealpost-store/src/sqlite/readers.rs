//! The read side of the SQLite store: a bounded pool of connections, used
//! on tokio's blocking threads so a slow query never stalls the SMTP
//! sessions.
//!
//! In WAL mode readers never wait for the writer, and each sees the last
//! committed state. The pool is bounded: a read waits (asynchronously) for
//! one of [`Readers::size`] connections rather than opening one of its
//! own. Opening a connection costs a schema parse and a few pragmas, far
//! more than a typical portal query; under load an unbounded pool opened
//! and closed one per request and spent most of its time doing so (seen in
//! `bench/portal.sh --perf`). Waiting for a connection also keeps a burst
//! from taking every blocking thread tokio has. Point lookups by a unique
//! key may run in place ([`Readers::read_point`]), where the hand-off to a
//! blocking thread would cost more than the query.

use std::{
    path::PathBuf,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
};

use rusqlite::Connection;
use tokio::sync::Semaphore;

use crate::StoreError;

#[derive(Debug)]
pub(super) struct Readers {
    db_path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    /// One permit per connection that may be in use at once.
    permits: Arc<Semaphore>,
    size: usize,
    /// Connections opened so far (a pool that works opens `size` at most).
    opened: AtomicUsize,
}

impl Readers {
    pub(super) fn new(db_path: PathBuf) -> Self {
        let size = Self::default_size();
        Readers {
            db_path,
            idle: Mutex::new(Vec::with_capacity(size)),
            permits: Arc::new(Semaphore::new(size)),
            size,
            opened: AtomicUsize::new(0),
        }
    }

    /// Two connections per core, at least four: reads are short and spend
    /// part of their time on I/O, so a few more than the cores keep them
    /// busy without crowding the writer.
    fn default_size() -> usize {
        std::thread::available_parallelism()
            .map_or(4, std::num::NonZeroUsize::get)
            .saturating_mul(2)
            .clamp(4, 32)
    }

    /// How many connections the pool holds at most.
    #[cfg(test)]
    pub(super) fn size(&self) -> usize {
        self.size
    }

    /// Runs `query` on a read-only connection and returns its result.
    pub(super) async fn read<F, R>(self: &Arc<Self>, query: F) -> Result<R, StoreError>
    where
        F: FnOnce(&Connection) -> Result<R, StoreError> + Send + 'static,
        R: Send + 'static,
    {
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| StoreError::Unavailable(format!("database reader: {e}")))?;
        let readers = self.clone();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let conn = readers.take()?;
            let result = query(&conn);
            readers.give_back(conn);
            result
        })
        .await
        .map_err(|e| StoreError::Unavailable(format!("database reader: {e}")))?
    }

    /// Runs a point lookup (a row or two by a unique key, pages most likely
    /// cached) on the calling thread when a connection is free at once, and
    /// as [`Self::read`] otherwise.
    ///
    /// Handing a 10-microsecond query to a blocking thread and waking the
    /// task again costs more than the query: on the portal's message page
    /// (three such lookups) it was a fifth of the CPU in
    /// `bench/portal.sh --perf`, mostly futex wake-ups. Only for lookups
    /// whose cost is bounded by the size of one row; anything that scans
    /// goes through [`Self::read`].
    pub(super) async fn read_point<F, R>(self: &Arc<Self>, query: F) -> Result<R, StoreError>
    where
        F: FnOnce(&Connection) -> Result<R, StoreError> + Send + 'static,
        R: Send + 'static,
    {
        let Ok(permit) = self.permits.clone().try_acquire_owned() else {
            return self.read(query).await;
        };
        let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let Some(conn) = idle else {
            // Opening a connection is not a point lookup.
            drop(permit);
            return self.read(query).await;
        };
        let result = query(&conn);
        self.give_back(conn);
        drop(permit);
        result
    }

    fn take(&self) -> Result<Connection, StoreError> {
        let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        match idle {
            Some(conn) => Ok(conn),
            None => {
                self.opened.fetch_add(1, Ordering::Relaxed);
                super::connect(&self.db_path, true)
            }
        }
    }

    /// Keeps `conn` for the next read. The permits bound the connections
    /// in use, so the idle list never outgrows the pool; the check is for
    /// a connection returned after a panic elsewhere released its permit.
    fn give_back(&self, conn: Connection) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < self.size {
            idle.push(conn);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Many reads at once share the pool's connections instead of each
    /// opening one: afterwards the pool holds at most `size` of them, and
    /// every read got an answer.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_reads_share_a_bounded_pool() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite");
        Connection::open(&path)
            .unwrap()
            .execute_batch("PRAGMA journal_mode=WAL; CREATE TABLE t(x); INSERT INTO t VALUES (7);")
            .unwrap();
        let readers = Arc::new(Readers::new(path));
        let mut tasks = Vec::new();
        for _ in 0..(readers.size() * 8) {
            let readers = readers.clone();
            tasks.push(tokio::spawn(async move {
                readers
                    .read(|conn| {
                        std::thread::sleep(std::time::Duration::from_millis(2));
                        Ok(conn.query_row("SELECT x FROM t", [], |r| r.get::<_, i64>(0))?)
                    })
                    .await
            }));
        }
        for task in tasks {
            assert_eq!(task.await.unwrap().unwrap(), 7);
        }
        let opened = readers.opened.load(Ordering::Relaxed);
        assert!(
            (1..=readers.size()).contains(&opened),
            "{opened} connections opened for a pool of {}",
            readers.size()
        );
        assert!(readers.idle.lock().unwrap().len() <= readers.size());
    }

    /// A point lookup runs on the caller's thread once the pool has an
    /// idle connection, and on a blocking thread before (opening one is
    /// no point lookup) or while every connection is busy.
    #[tokio::test(flavor = "current_thread")]
    async fn point_lookups_run_in_place_when_a_connection_is_idle() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite");
        Connection::open(&path)
            .unwrap()
            .execute_batch("PRAGMA journal_mode=WAL; CREATE TABLE t(x); INSERT INTO t VALUES (7);")
            .unwrap();
        let readers = Arc::new(Readers::new(path));
        let here = std::thread::current().id();
        let thread_of = |readers: Arc<Readers>| async move {
            readers
                .read_point(|conn| {
                    conn.query_row("SELECT x FROM t", [], |r| r.get::<_, i64>(0))?;
                    Ok(std::thread::current().id())
                })
                .await
                .unwrap()
        };
        assert_ne!(
            thread_of(readers.clone()).await,
            here,
            "no idle connection yet"
        );
        assert_eq!(readers.opened.load(Ordering::Relaxed), 1);
        assert_eq!(thread_of(readers.clone()).await, here, "an idle one now");
        assert_eq!(readers.opened.load(Ordering::Relaxed), 1, "and reused");
        // Every permit taken: the lookup waits for one like any read.
        let held: Vec<_> = (0..readers.size())
            .map(|_| readers.permits.clone().try_acquire_owned().unwrap())
            .collect();
        let waiting = tokio::spawn(thread_of(readers.clone()));
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        drop(held);
        assert_ne!(waiting.await.unwrap(), here);
    }
}
