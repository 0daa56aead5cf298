//! The portal's listener: plain HTTP, or TLS served by us
//! (`portal.tls_cert` / `portal.tls_key`), through [`crate::listener`].

use std::{io, time::Duration};

use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

pub use crate::listener::Peer;

use super::{PortalState, router};

/// How often the per-IP limiter forgets clients it no longer limits.
const LIMITER_UPKEEP: Duration = Duration::from_secs(60);

/// Serves the portal on `listener` until `shutdown`, over TLS when `tls`
/// is given.
///
/// # Errors
/// When the server fails (not per connection).
pub async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    state: PortalState,
    shutdown: CancellationToken,
) -> io::Result<()> {
    // The per-IP limiter remembers every client it has seen; forget the
    // ones whose budget is full again, so the table stays small.
    let upkeep = (state.clone(), shutdown.clone());
    tokio::spawn(async move {
        let (state, shutdown) = upkeep;
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(LIMITER_UPKEEP) => state.forget_idle_clients(),
            }
        }
    });
    crate::listener::serve(listener, tls, router(state), shutdown, "portal").await
}
