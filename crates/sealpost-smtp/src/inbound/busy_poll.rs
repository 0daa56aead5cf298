//! Brief busy polling after a reply, while only one or two clients are
//! connected (`smtp.busy_poll`).
//!
//! A lone client sends its next command tens of microseconds after our
//! reply. If the SMTP thread sleeps meanwhile, its CPU goes idle, and
//! waking an idle CPU again costs about as much as the wait itself. That
//! cost is high on virtual machines whose guest kernel does not poll before
//! it halts a vCPU. So after a reply the thread keeps polling its sockets
//! for up to the window, and the client's command finds it awake. This
//! does in the gateway what the kernel's halt polling does where it is
//! enabled.
//!
//! The cost is CPU: the poller stops as soon as the window ends or more
//! than [`MAX_SESSIONS`] sessions are open. With more sessions, the thread
//! seldom runs out of work, and `bench/cost.sh` showed polling then cost
//! throughput: 4 sessions 6% slower, 20 sessions 8%. A version that also
//! yielded the thread at every round broke even at 4 sessions and lost 5%
//! at 20, but was 9% slower than this one at 2 sessions.
//!
//! It needs a runtime with one worker thread (`server.worker_threads = 1`,
//! the default on machines with up to three cores). With more, an idle
//! worker sleeps in the I/O driver while the poller's worker spins without
//! it, so the poller stays off there.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// `smtp.busy_poll` when the configuration does not say.
pub const DEFAULT_WINDOW: Duration = Duration::from_micros(100);

/// Polling stops while more sessions than this are open.
pub const MAX_SESSIONS: usize = 2;

/// Upper bound on rounds per window, in case the clock stalls; one round
/// (an `epoll_wait` that does not wait) takes about a microsecond, so a
/// 100 us window ends long before it.
const MAX_ROUNDS: u32 = 100_000;

/// The busy poller of one SMTP listener's runtime: sessions report their
/// replies to it, and [`BusyPoll::run`] polls while a window is open.
#[derive(Debug)]
pub struct BusyPoll {
    window: Duration,
    /// Sessions open now (see [`BusyPoll::session`]).
    sessions: AtomicUsize,
    /// End of the current window, in nanoseconds after `origin`.
    until: AtomicU64,
    origin: Instant,
    start: Notify,
    /// [`BusyPoll::run`] is running (every listener starts it; one polls).
    running: AtomicBool,
    /// Rounds polled so far (for tests and curiosity).
    rounds: AtomicU64,
}

impl BusyPoll {
    /// A poller with the given window; zero turns polling off.
    pub fn new(window: Duration) -> Arc<Self> {
        Arc::new(BusyPoll {
            window,
            sessions: AtomicUsize::new(0),
            until: AtomicU64::new(0),
            origin: Instant::now(),
            start: Notify::new(),
            running: AtomicBool::new(false),
            rounds: AtomicU64::new(0),
        })
    }

    /// Counts one open session until the guard is dropped.
    pub fn session(self: &Arc<Self>) -> SessionGuard {
        self.sessions.fetch_add(1, Ordering::Relaxed);
        SessionGuard(self.clone())
    }

    /// A reply was just written and the session now waits for its client:
    /// opens a polling window if the poller runs and few sessions are open.
    pub fn after_reply(&self) {
        if !self.running.load(Ordering::Relaxed)
            || self.sessions.load(Ordering::Relaxed) > MAX_SESSIONS
        {
            return;
        }
        let until = self.now() + self.window.as_nanos() as u64;
        self.until.fetch_max(until, Ordering::Relaxed);
        self.start.notify_one();
    }

    /// Rounds polled since the start.
    pub fn rounds(&self) -> u64 {
        self.rounds.load(Ordering::Relaxed)
    }

    /// Polls during each window until `shutdown`, on the runtime that runs
    /// the sessions. Returns at once when the window is zero, when the
    /// runtime has more than one worker, or when another call runs.
    ///
    /// Each round yields this task, which makes the runtime check its
    /// sockets without sleeping before it runs the task again.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        if self.window.is_zero() {
            return;
        }
        let workers = tokio::runtime::Handle::current().metrics().num_workers();
        if workers != 1 {
            tracing::info!(
                workers,
                "smtp.busy_poll is off: it needs a runtime with one worker (server.worker_threads = 1)"
            );
            return;
        }
        if self.running.swap(true, Ordering::AcqRel) {
            return;
        }
        let _running = Running(&self.running);
        self.poll_windows(&shutdown).await;
    }

    async fn poll_windows(&self, shutdown: &CancellationToken) {
        // Looked up once: the recorder is installed before the listeners
        // start.
        let polled = metrics::counter!("sealpost_smtp_busy_poll_microseconds_total");
        loop {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => return,
                _ = self.start.notified() => {}
            }
            let started = Instant::now();
            let mut rounds = 0;
            while rounds < MAX_ROUNDS
                && self.now() < self.until.load(Ordering::Relaxed)
                && self.sessions.load(Ordering::Relaxed) <= MAX_SESSIONS
            {
                rounds += 1;
                self.rounds.fetch_add(1, Ordering::Relaxed);
                tokio::task::yield_now().await;
            }
            if rounds > 0 {
                polled.increment(started.elapsed().as_micros() as u64);
            }
        }
    }

    fn now(&self) -> u64 {
        self.origin.elapsed().as_nanos() as u64
    }
}

/// Clears [`BusyPoll::running`] however `run` ends (also when dropped).
struct Running<'a>(&'a AtomicBool);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

/// One open session; see [`BusyPoll::session`].
#[derive(Debug)]
pub struct SessionGuard(Arc<BusyPoll>);

impl Drop for SessionGuard {
    fn drop(&mut self) {
        self.0.sessions.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the poller, reports one reply with `sessions` open, and
    /// returns the rounds polled once the window is long over.
    async fn rounds_after_one_reply(window: Duration, sessions: usize) -> u64 {
        let poll = BusyPoll::new(window);
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(poll.clone().run(shutdown.clone()));
        if !window.is_zero() {
            wait_until_running(&poll).await;
        }
        let guards: Vec<_> = (0..sessions).map(|_| poll.session()).collect();
        poll.after_reply();
        tokio::time::sleep(window * 20 + Duration::from_millis(20)).await;
        let rounds = poll.rounds();
        // The window is over: no more rounds.
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(poll.rounds(), rounds, "polling went on after its window");
        drop(guards);
        shutdown.cancel();
        task.await.unwrap();
        rounds
    }

    async fn wait_until_running(poll: &BusyPoll) {
        for _ in 0..1000 {
            if poll.running.load(Ordering::Relaxed) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        panic!("the poller did not start");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn a_reply_with_one_session_open_polls_for_the_window_then_stops() {
        assert!(rounds_after_one_reply(Duration::from_millis(2), 1).await > 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn no_polling_with_more_sessions_open_than_the_limit() {
        assert_eq!(
            rounds_after_one_reply(Duration::from_millis(2), MAX_SESSIONS + 1).await,
            0
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn a_zero_window_turns_polling_off() {
        assert_eq!(rounds_after_one_reply(Duration::ZERO, 1).await, 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn no_polling_on_a_runtime_with_two_workers() {
        let poll = BusyPoll::new(DEFAULT_WINDOW);
        let _session = poll.session();
        tokio::time::timeout(
            Duration::from_secs(5),
            poll.clone().run(CancellationToken::new()),
        )
        .await
        .expect("run returns at once");
        poll.after_reply();
        assert!(!poll.running.load(Ordering::Relaxed));
        assert_eq!(poll.rounds(), 0);
    }

    #[test]
    fn guards_count_open_sessions() {
        let poll = BusyPoll::new(DEFAULT_WINDOW);
        let a = poll.session();
        let b = poll.session();
        assert_eq!(poll.sessions.load(Ordering::Relaxed), 2);
        drop(a);
        assert_eq!(poll.sessions.load(Ordering::Relaxed), 1);
        drop(b);
        assert_eq!(poll.sessions.load(Ordering::Relaxed), 0);
    }
}
