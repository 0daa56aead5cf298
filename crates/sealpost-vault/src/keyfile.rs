//! The master key file (`vault.master_key_file`): created on first start,
//! checked for permissions on every read, replaced atomically.
//!
//! A key file is only ever written whole: to a temporary name in the same
//! directory (mode 0600, fsync'd), then linked or renamed into place and the
//! directory fsync'd. A crash leaves the old file or the new one, never half
//! of one; losing a key loses every message sealed with it.

use std::{
    fs::{self, File, OpenOptions},
    io::{self, Read, Write},
    path::{Path, PathBuf},
};

use crate::keyring::{Keyring, KeyringError};

/// Far more than any key file needs (a key line is ~75 bytes); a bigger file
/// is a wrong path, and is not read into memory.
const MAX_KEY_FILE_LEN: u64 = 1 << 20;

impl Keyring {
    /// Reads the key file, creating it (mode 0600, one fresh version 1 key
    /// under a comment header) and its directory when it does not exist.
    ///
    /// Creation cannot clobber: the new file is hard-linked into place, which
    /// fails if the name exists, so of two gateways starting at once one
    /// creates the file and the other reads it.
    ///
    /// # Errors
    ///
    /// As [`Keyring::load`], plus [`KeyringError::Io`] if creating fails.
    pub fn load_or_create(path: &Path) -> Result<Keyring, KeyringError> {
        match File::open(path) {
            Ok(file) => return read_key_file(path, file),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_error(path, e)),
        }
        let keyring = Keyring::generate();
        match create_durable(path, keyring.to_text().as_bytes()) {
            Ok(()) => Ok(keyring),
            // Another start created it first: use theirs.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Keyring::load(path),
            Err(e) => Err(io_error(path, e)),
        }
    }

    /// Reads an existing key file; never creates one.
    ///
    /// # Errors
    ///
    /// [`KeyringError::Io`] if it cannot be read, [`KeyringError::Permissions`]
    /// if group or others have any access to it, [`KeyringError::NotAFile`],
    /// and the errors of [`Keyring::parse`] (messages prefixed with the path).
    pub fn load(path: &Path) -> Result<Keyring, KeyringError> {
        let file = File::open(path).map_err(|e| io_error(path, e))?;
        read_key_file(path, file)
    }

    /// Writes the whole keyring to `path` (mode 0600), atomically replacing
    /// what was there, and makes it durable before returning.
    ///
    /// # Errors
    ///
    /// [`KeyringError::Io`]; the old file is then unchanged.
    pub fn save(&self, path: &Path) -> Result<(), KeyringError> {
        replace_durable(path, self.to_text().as_bytes()).map_err(|e| io_error(path, e))
    }
}

fn io_error(path: &Path, source: io::Error) -> KeyringError {
    KeyringError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Checks the opened file (not the path, so it cannot be swapped between
/// check and read), then reads and parses it.
fn read_key_file(path: &Path, file: File) -> Result<Keyring, KeyringError> {
    let meta = file.metadata().map_err(|e| io_error(path, e))?;
    if !meta.is_file() {
        return Err(KeyringError::NotAFile {
            path: path.to_owned(),
        });
    }
    check_private(path, &meta)?;

    let mut bytes = Vec::new();
    file.take(MAX_KEY_FILE_LEN + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| io_error(path, e))?;
    let result = if bytes.len() as u64 > MAX_KEY_FILE_LEN {
        Err(KeyringError::Malformed(format!(
            "{}: larger than {MAX_KEY_FILE_LEN} bytes, which no key file is; check the path",
            path.display()
        )))
    } else {
        match std::str::from_utf8(&bytes) {
            Ok(text) => Keyring::parse(text).map_err(|e| match e {
                KeyringError::Malformed(m) => {
                    KeyringError::Malformed(format!("{}: {m}", path.display()))
                }
                other => other,
            }),
            Err(_) => Err(KeyringError::Malformed(format!(
                "{}: not UTF-8 text",
                path.display()
            ))),
        }
    };
    // The buffer held every key in hex.
    bytes.fill(0);
    std::hint::black_box(&mut bytes);
    result
}

#[cfg(unix)]
fn check_private(path: &Path, meta: &fs::Metadata) -> Result<(), KeyringError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(KeyringError::Permissions {
            path: path.to_owned(),
            mode,
        });
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_private(_path: &Path, _meta: &fs::Metadata) -> Result<(), KeyringError> {
    Ok(())
}

/// Creates `path` with `contents` unless it exists (`AlreadyExists` then).
fn create_durable(path: &Path, contents: &[u8]) -> io::Result<()> {
    let dir = parent_dir(path);
    ensure_dir(&dir)?;
    let tmp = write_temp(&dir, path, contents)?;
    // `hard_link` refuses an existing target, unlike `rename`.
    let linked = fs::hard_link(&tmp, path);
    let removed = fs::remove_file(&tmp);
    linked?;
    removed?;
    sync_dir(&dir)
}

/// Replaces `path` with `contents`.
fn replace_durable(path: &Path, contents: &[u8]) -> io::Result<()> {
    let dir = parent_dir(path);
    ensure_dir(&dir)?;
    let tmp = write_temp(&dir, path, contents)?;
    if let Err(e) = fs::rename(&tmp, path) {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    sync_dir(&dir)
}

/// Writes `contents` to a new, uniquely named 0600 file in `dir` and
/// fsyncs it; returns its path. Removes it again on failure.
fn write_temp(dir: &Path, path: &Path, contents: &[u8]) -> io::Result<PathBuf> {
    let mut unique = [0u8; 8];
    crate::random::fill(&mut unique);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", hex::encode(unique)));

    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&tmp)?;
    let written = file.write_all(contents).and_then(|()| file.sync_all());
    if let Err(e) = written {
        drop(file);
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    Ok(tmp)
}

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_owned(),
        _ => PathBuf::from("."),
    }
}

/// Creates `dir` (mode 0700) and any missing ancestors, fsyncing the parent
/// of each one created so the new entries survive a crash.
fn ensure_dir(dir: &Path) -> io::Result<()> {
    let missing: Vec<&Path> = dir.ancestors().take_while(|d| !d.exists()).collect();
    if missing.is_empty() {
        return Ok(());
    }
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)?;
    for created in missing.iter().rev() {
        sync_dir(&parent_dir(created))?;
    }
    Ok(())
}

/// Makes a directory's entries (a rename, a new link) durable.
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o7777
    }

    fn same_keys(a: &Keyring, b: &Keyring) -> bool {
        a.versions() == b.versions()
            && a.versions()
                .iter()
                .all(|&v| a.get(v).unwrap().bytes() == b.get(v).unwrap().bytes())
    }

    #[test]
    fn load_or_create_creates_a_private_file_and_then_reads_it() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("new/dir/master.key");
        assert!(matches!(Keyring::load(&path), Err(KeyringError::Io { .. })));

        let created = Keyring::load_or_create(&path).unwrap();
        assert_eq!(created.versions(), vec![1]);
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(path.parent().unwrap()), 0o700);
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.contains("KEEP THIS SECRET AND BACK IT UP"), "{text}");

        let loaded = Keyring::load_or_create(&path).unwrap();
        assert!(same_keys(&created, &loaded));
        assert!(same_keys(&created, &Keyring::load(&path).unwrap()));
        let leftovers: Vec<_> = fs::read_dir(path.parent().unwrap()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temporary file is left behind");
    }

    #[test]
    fn creation_does_not_clobber_an_existing_file() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("master.key");
        let existing = Keyring::generate();
        existing.save(&path).unwrap();
        let err = create_durable(&path, b"other").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert!(same_keys(
            &existing,
            &Keyring::load_or_create(&path).unwrap()
        ));
    }

    #[test]
    fn group_or_world_access_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("master.key");
        Keyring::generate().save(&path).unwrap();
        for bad in [0o644, 0o640, 0o604, 0o660, 0o601] {
            fs::set_permissions(&path, fs::Permissions::from_mode(bad)).unwrap();
            for result in [Keyring::load(&path), Keyring::load_or_create(&path)] {
                match result {
                    Err(err @ KeyringError::Permissions { mode, .. }) => {
                        assert_eq!(mode, bad);
                        let message = err.to_string();
                        assert!(
                            message.contains(&format!("chmod 600 {}", path.display())),
                            "{message}"
                        );
                    }
                    other => panic!("{bad:o}: expected Permissions, got {other:?}"),
                }
            }
        }
        fs::set_permissions(&path, fs::Permissions::from_mode(0o400)).unwrap();
        Keyring::load(&path).unwrap();
    }

    #[test]
    fn save_and_load_round_trip_three_versions() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("master.key");
        let mut keyring = Keyring::generate();
        keyring.add_version();
        keyring.add_version();
        keyring.save(&path).unwrap();
        assert_eq!(mode(&path), 0o600);
        let loaded = Keyring::load(&path).unwrap();
        assert_eq!(loaded.versions(), vec![1, 2, 3]);
        assert!(same_keys(&keyring, &loaded));

        // Saving again replaces the file whole.
        let smaller = Keyring::generate();
        smaller.save(&path).unwrap();
        assert!(same_keys(&smaller, &Keyring::load(&path).unwrap()));
        assert_eq!(fs::read_dir(tmp.path()).unwrap().count(), 1);
    }

    #[test]
    fn bad_contents_name_the_file() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("master.key");
        let write = |contents: &[u8]| {
            fs::write(&path, contents).unwrap();
            fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        };

        write(b"1:nothex");
        let message = Keyring::load(&path).unwrap_err().to_string();
        assert!(message.contains(&path.display().to_string()), "{message}");
        assert!(message.contains("entry 1 (line 1)"), "{message}");

        write(b"# nothing here\n");
        assert!(matches!(
            Keyring::load_or_create(&path),
            Err(KeyringError::Empty)
        ));

        write(b"\xff\xfe");
        let message = Keyring::load(&path).unwrap_err().to_string();
        assert!(message.contains("not UTF-8"), "{message}");

        assert!(matches!(
            Keyring::load(tmp.path()),
            Err(KeyringError::NotAFile { .. })
        ));
    }
}
