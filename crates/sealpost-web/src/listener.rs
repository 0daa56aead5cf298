//! Serving a router on a listener, over plain HTTP or TLS served by us:
//! the portal's listener (`portal.tls_cert`) and the admin listener
//! (`admin.tls_cert`) both use it.
//!
//! TLS handshakes run in tasks of their own, each bounded in time, and
//! only finished ones are handed to the HTTP server: a client that opens a
//! connection and never speaks holds a task for a few seconds, never the
//! accept loop. Handlers see the peer's address as `ConnectInfo<Peer>`.

use std::{io, net::SocketAddr, time::Duration};

use axum::{Router, extract::connect_info::Connected, serve::IncomingStream};
use tokio::{
    net::{TcpListener, TcpStream},
    sync::mpsc,
};
use tokio_rustls::{TlsAcceptor, server::TlsStream};
use tokio_util::sync::CancellationToken;

/// How long a TLS handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Handshaken connections waiting for the HTTP server.
const PENDING: usize = 256;

/// Serves `app` on `listener` until `shutdown`, over TLS when `tls` is
/// given; `what` names the listener in logs.
///
/// # Errors
/// When the server fails (not per connection).
pub async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    app: Router,
    shutdown: CancellationToken,
    what: &'static str,
) -> io::Result<()> {
    let addr = listener.local_addr()?;
    let app = app.into_make_service_with_connect_info::<Peer>();
    let stop = shutdown.clone();
    match tls {
        None => {
            tracing::info!(%addr, listener = what, "listener started (HTTP)");
            axum::serve(listener, app)
                .with_graceful_shutdown(async move { stop.cancelled().await })
                .await
        }
        Some(acceptor) => {
            tracing::info!(%addr, listener = what, "listener started (HTTPS)");
            let tls_listener = TlsListener::start(listener, acceptor, shutdown.clone(), what);
            axum::serve(tls_listener, app)
                .with_graceful_shutdown(async move { stop.cancelled().await })
                .await
        }
    }
}

/// The address of the connection's peer, as handlers' `ConnectInfo`.
/// (A type of our own: the orphan rule forbids saying how a
/// `SocketAddr` comes from our TLS listener.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer(pub SocketAddr);

impl Connected<IncomingStream<'_, TcpListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, TcpListener>) -> Self {
        Peer(*stream.remote_addr())
    }
}

impl Connected<IncomingStream<'_, TlsListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, TlsListener>) -> Self {
        Peer(*stream.remote_addr())
    }
}

/// Accepted TCP connections after their TLS handshake.
struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    addr: SocketAddr,
}

impl TlsListener {
    fn start(
        listener: TcpListener,
        acceptor: TlsAcceptor,
        shutdown: CancellationToken,
        what: &'static str,
    ) -> Self {
        let addr = listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
        let (sender, ready) = mpsc::channel(PENDING);
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    () = shutdown.cancelled() => return,
                    accepted = listener.accept() => accepted,
                };
                let (stream, peer) = match accepted {
                    Ok(pair) => pair,
                    Err(e) => {
                        // Out of descriptors, say: wait rather than spin.
                        tracing::warn!(listener = what, error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let acceptor = acceptor.clone();
                let sender = sender.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            let _ = sender.send((tls, peer)).await;
                        }
                        Ok(Err(e)) => {
                            tracing::debug!(listener = what, %peer, error = %e, "TLS handshake failed")
                        }
                        Err(_) => {
                            tracing::debug!(listener = what, %peer, "TLS handshake timed out")
                        }
                    }
                });
            }
        });
        TlsListener { ready, addr }
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(pair) => pair,
            // The accept loop ended (shutdown): wait for the server to
            // notice the same shutdown.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.addr)
    }
}
