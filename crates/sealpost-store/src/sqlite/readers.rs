//! The read side of the SQLite store: a few connections, used on tokio's
//! blocking threads so a slow query never stalls the SMTP sessions.
//!
//! In WAL mode readers never wait for the writer, and each sees the last
//! committed state.

use std::{path::PathBuf, sync::Mutex};

use rusqlite::Connection;

use crate::StoreError;

/// Idle connections kept for reuse; more may be open briefly under load.
const MAX_IDLE: usize = 4;

#[derive(Debug)]
pub(super) struct Readers {
    db_path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

impl Readers {
    pub(super) fn new(db_path: PathBuf) -> Self {
        Readers {
            db_path,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// Runs `query` on a read-only connection and returns its result.
    pub(super) async fn read<F, R>(self: &std::sync::Arc<Self>, query: F) -> Result<R, StoreError>
    where
        F: FnOnce(&Connection) -> Result<R, StoreError> + Send + 'static,
        R: Send + 'static,
    {
        let readers = self.clone();
        tokio::task::spawn_blocking(move || {
            let conn = readers.take()?;
            let result = query(&conn);
            readers.give_back(conn);
            result
        })
        .await
        .map_err(|e| StoreError::Unavailable(format!("database reader: {e}")))?
    }

    fn take(&self) -> Result<Connection, StoreError> {
        let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        match idle {
            Some(conn) => Ok(conn),
            None => super::connect(&self.db_path, true),
        }
    }

    fn give_back(&self, conn: Connection) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < MAX_IDLE {
            idle.push(conn);
        }
    }
}
