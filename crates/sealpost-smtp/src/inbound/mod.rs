//! The inbound SMTP server: accept loop, sessions, relay control.
//!
//! [`serve`] takes a bound listener and a shutdown token; each connection
//! runs a [`session`] over plain TCP and, after STARTTLS, over TLS. A
//! message is answered `250` only once the intake
//! ([`sealpost_intake::Intake::accept`]) has committed it durably.

pub mod auth;
pub mod busy_poll;
mod data;
mod envelope;
#[doc(hidden)]
pub mod fuzzing;
pub mod io;
mod session;

pub use session::{run as run_session, run_tls as run_tls_session};
mod xforward;

use std::{sync::Arc, time::Duration};

use sealpost_policy::IpRanges;
use tokio::{net::TcpListener, sync::Semaphore};
use tokio_rustls::TlsAcceptor;
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::reply;

/// Limits and trust settings of the inbound listener, from configuration.
#[derive(Debug, Clone)]
pub struct InboundConfig {
    /// Our name in the greeting, EHLO reply and Received headers.
    pub hostname: String,
    /// Clients allowed to relay to external domains (`smtp.relay_networks`).
    pub relay_networks: IpRanges,
    /// Clients trusted to send XFORWARD (`smtp.xforward_hosts`).
    pub xforward_hosts: IpRanges,
    /// Largest message accepted, in octets (`smtp.max_message_size`).
    pub max_message_size: usize,
    /// Most recipients per transaction (`smtp.max_recipients`).
    pub max_recipients: usize,
    /// Longest wait for a command or data (`smtp.idle_timeout`).
    pub idle_timeout: Duration,
    /// Most concurrent connections (`smtp.max_connections`); one more is
    /// greeted with 421 and closed.
    pub max_connections: usize,
    /// Error replies after which a session is closed with 421.
    pub max_errors: usize,
    /// More `Received:` headers than this is taken for a loop.
    pub max_received_headers: usize,
    /// How long message data still arriving when the server stops may
    /// take to end; then the client gets `421 4.3.2` and the message is
    /// not taken (`smtp.shutdown_grace`).
    pub shutdown_grace: Duration,
}

impl Default for InboundConfig {
    fn default() -> Self {
        InboundConfig {
            hostname: "localhost".into(),
            relay_networks: IpRanges::default(),
            xforward_hosts: IpRanges::default(),
            max_message_size: 50 * 1024 * 1024,
            max_recipients: 100,
            idle_timeout: Duration::from_secs(300),
            max_connections: 20_000,
            max_errors: 20,
            max_received_headers: 50,
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// What every session shares.
pub struct Inbound {
    pub config: InboundConfig,
    /// Where a message goes after DATA: the decision per recipient, the
    /// secure plan and the durable commit (its policy snapshot also serves
    /// relay control at RCPT).
    pub intake: Arc<sealpost_intake::Intake>,
    /// Offered as STARTTLS when present.
    pub tls: Option<TlsAcceptor>,
    /// Mail transactions open in all sessions (MAIL given, not yet ended).
    pub open_transactions: OpenTransactions,
    /// Polls for a lone client's next command (`smtp.busy_poll`); [`serve`]
    /// runs it.
    pub busy_poll: Arc<busy_poll::BusyPoll>,
    /// Set on a submission listener: AUTH is offered after TLS and required
    /// before MAIL, and `relay_networks` grants nothing ([`auth`]).
    pub submission: Option<Arc<auth::SubmissionAuth>>,
}

/// Counts the mail transactions open across sessions, so that an
/// acceptance can tell the store it is alone ([`Store::accept_alone`]).
#[derive(Debug, Clone, Default)]
pub struct OpenTransactions(Arc<std::sync::atomic::AtomicUsize>);

impl OpenTransactions {
    /// Counts one transaction until the guard is dropped.
    pub(crate) fn open(&self) -> OpenTransaction {
        self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        OpenTransaction(self.0.clone())
    }

    /// Transactions open now.
    pub fn count(&self) -> usize {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// One open transaction; see [`OpenTransactions`].
#[derive(Debug)]
pub(crate) struct OpenTransaction(Arc<std::sync::atomic::AtomicUsize>);

impl Drop for OpenTransaction {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

impl std::fmt::Debug for Inbound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inbound")
            .field("config", &self.config)
            .field("tls", &self.tls.is_some())
            .field("submission", &self.submission.is_some())
            .finish_non_exhaustive()
    }
}

/// Accepts connections until `shutdown` is cancelled, then waits for
/// sessions to finish (each ends its transaction and says 421).
///
/// # Errors
/// Only when accepting fails in a way that is not per-connection.
pub async fn serve(
    listener: TcpListener,
    inbound: Arc<Inbound>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    serve_with(listener, inbound, shutdown, false).await
}

/// As [`serve`], for implicit TLS (`smtp.submission_tls_listen`, port
/// 465): each connection starts with the TLS handshake, bounded by the
/// idle timeout, and its session starts as secured.
///
/// # Errors
/// As [`serve`].
pub async fn serve_implicit_tls(
    listener: TcpListener,
    inbound: Arc<Inbound>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    serve_with(listener, inbound, shutdown, true).await
}

async fn serve_with(
    listener: TcpListener,
    inbound: Arc<Inbound>,
    shutdown: CancellationToken,
    implicit_tls: bool,
) -> std::io::Result<()> {
    let limit = Arc::new(Semaphore::new(inbound.config.max_connections));
    let tracker = TaskTracker::new();
    tracker.spawn(inbound.busy_poll.clone().run(shutdown.clone()));
    tracing::info!(
        addr = %listener.local_addr()?,
        submission = inbound.submission.is_some(),
        implicit_tls,
        "SMTP listener started"
    );
    loop {
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        metrics::counter!("sealpost_smtp_connections_total").increment(1);
        let permit = match limit.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                metrics::counter!("sealpost_smtp_rejected_total", "reason" => "too_many_connections").increment(1);
                tracker.spawn(refuse(stream));
                continue;
            }
        };
        let inbound = inbound.clone();
        let shutdown = shutdown.clone();
        tracker.spawn(async move {
            if implicit_tls {
                handshake_then_run(stream, peer, inbound, shutdown).await;
            } else {
                session::run(stream, peer, inbound, shutdown).await;
            }
            drop(permit);
        });
    }
    tracker.close();
    tracker.wait().await;
    Ok(())
}

/// The TLS handshake of an implicit-TLS connection, then its session.
async fn handshake_then_run(
    stream: tokio::net::TcpStream,
    peer: std::net::SocketAddr,
    inbound: Arc<Inbound>,
    shutdown: CancellationToken,
) {
    let Some(acceptor) = inbound.tls.clone() else {
        tracing::error!("implicit TLS listener without a certificate; connection closed");
        return;
    };
    let idle = inbound.config.idle_timeout;
    let tls = tokio::select! {
        _ = shutdown.cancelled() => return,
        done = tokio::time::timeout(idle, acceptor.accept(stream)) => match done {
            Ok(Ok(tls)) => tls,
            Ok(Err(e)) => {
                tracing::info!(client = %peer.ip(), error = %e, "TLS handshake failed");
                return;
            }
            Err(_) => {
                tracing::info!(client = %peer.ip(), "TLS handshake timed out");
                return;
            }
        },
    };
    session::run_tls(tls, peer, inbound, shutdown).await;
}

async fn refuse(mut stream: tokio::net::TcpStream) {
    use tokio::io::AsyncWriteExt;
    let mut out = Vec::new();
    reply::TOO_MANY_CONNECTIONS.write_to(&mut out);
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.write_all(&out)).await;
}

#[cfg(test)]
mod tests {
    use super::OpenTransactions;

    #[test]
    fn open_transactions_count_while_their_guards_live() {
        let open = OpenTransactions::default();
        let a = open.open();
        let b = open.clone().open();
        assert_eq!(open.count(), 2);
        drop(a);
        assert_eq!(open.count(), 1);
        drop(b);
        assert_eq!(open.count(), 0);
    }
}
