//! Large message contents as files beside the database.
//!
//! Contents up to the inline limit are stored in the database row, so one
//! group commit makes many small messages durable with a single fsync.
//! Larger contents go to `spool/<queue id>`: written to a temporary name,
//! fsync'd, renamed, and the directory fsync'd, all before the database
//! commit that references the file. A crash between the two leaves an
//! orphan file that [`Spool::sweep`] removes at the next start; never a row
//! pointing at a missing file.
//!
//! The directory is 0700 and every file 0600 ([`crate::private`]).

use std::{
    collections::HashSet,
    fs::{self, File},
    io::{self, Write},
    path::{Path, PathBuf},
};

use crate::{QueueId, private};

#[derive(Debug)]
pub(crate) struct Spool {
    dir: PathBuf,
}

impl Spool {
    pub(crate) fn open(dir: &Path) -> io::Result<Self> {
        private::create_dir(dir)?;
        Ok(Spool {
            dir: dir.to_owned(),
        })
    }

    /// Takes group and other permissions away from the directory and every
    /// file in it (left by a version that created them 0755 and 0644).
    /// Returns how many it changed.
    pub(crate) fn restrict(&self) -> io::Result<usize> {
        let mut changed = usize::from(private::restrict(&self.dir)?);
        for entry in fs::read_dir(&self.dir)? {
            changed += usize::from(private::restrict(&entry?.path())?);
        }
        Ok(changed)
    }

    fn path(&self, id: &QueueId) -> PathBuf {
        self.dir.join(id.as_str())
    }

    /// Writes `content` as the spool file of `id` and makes it durable.
    pub(crate) async fn write_durable(&self, id: &QueueId, content: Vec<u8>) -> io::Result<()> {
        let final_path = self.path(id);
        let dir = self.dir.clone();
        let id = id.clone();
        tokio::task::spawn_blocking(move || write_file(&dir, &id, &final_path, &content))
            .await
            .map_err(io::Error::other)?
    }

    /// Reads a spool file on the calling thread.
    pub(crate) fn read_blocking(&self, id: &QueueId) -> io::Result<Vec<u8>> {
        fs::read(self.path(id))
    }

    pub(crate) async fn read(&self, id: &QueueId) -> io::Result<Vec<u8>> {
        tokio::fs::read(self.path(id)).await
    }

    /// Removes a spool file; a missing file is not an error.
    pub(crate) fn remove(&self, id: &QueueId) {
        match fs::remove_file(self.path(id)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!(queue_id = %id, error = %e, "could not remove spool file"),
        }
    }

    /// Writes the sealed form of a spooled content beside the plaintext
    /// one (`<id>.sealed`), durably; [`Spool::install_sealed`] moves it in.
    pub(crate) fn write_sealed_beside(&self, id: &QueueId, sealed: &[u8]) -> io::Result<PathBuf> {
        let path = self.dir.join(format!("{id}.sealed"));
        let mut file = create(&path)?;
        file.write_all(sealed)?;
        file.sync_all()?;
        Ok(path)
    }

    /// Replaces a content's spool file with its sealed form, durably.
    pub(crate) fn install_sealed(&self, id: &QueueId, sealed: &Path) -> io::Result<()> {
        fs::rename(sealed, self.path(id))?;
        File::open(&self.dir)?.sync_all()
    }

    /// `<id>.sealed` files left by an interrupted upgrade.
    pub(crate) fn sealed_leftovers(&self) -> io::Result<Vec<(QueueId, PathBuf)>> {
        let mut found = Vec::new();
        for entry in fs::read_dir(&self.dir)? {
            let path = entry?.path();
            let id = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".sealed"))
                .and_then(QueueId::parse);
            if let Some(id) = id {
                found.push((id, path));
            }
        }
        Ok(found)
    }

    /// Removes every file that no stored message references (left by a
    /// crash before commit). Returns how many were removed.
    pub(crate) fn sweep(&self, referenced: &HashSet<String>) -> io::Result<usize> {
        let mut removed = 0;
        for entry in fs::read_dir(&self.dir)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if !referenced.contains(&name) {
                fs::remove_file(entry.path())?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

/// Writes to a temporary name, fsyncs, renames over `final_path`, and
/// fsyncs the directory: the file is either absent or whole.
fn write_file(dir: &Path, id: &QueueId, final_path: &Path, content: &[u8]) -> io::Result<()> {
    let tmp_path = dir.join(format!("{id}.tmp"));
    let mut file = create(&tmp_path)?;
    file.write_all(content)?;
    file.sync_all()?;
    fs::rename(&tmp_path, final_path)?;
    // The rename is only durable once the directory entry is.
    File::open(dir)?.sync_all()
}

/// Creates (or truncates) a spool file, 0600 when new. A leftover from
/// an earlier version may be looser: [`Spool::restrict`] runs at start.
fn create(path: &Path) -> io::Result<File> {
    private::file_options()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
}
