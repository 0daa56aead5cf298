//! Files only the gateway's own user may read. The data directory holds
//! the database and its WAL (subjects, addresses, API key hashes), spooled
//! contents, the TLS key and the master key: directories are 0700 and
//! files 0600, set explicitly where they are created (the umask would
//! leave them 0755 and 0644), and tightened where an earlier version left
//! them open to other local users.

use std::{
    fs::{self, DirBuilder, OpenOptions},
    io,
    path::Path,
};

/// The mode of every directory sealpost creates.
pub const DIR_MODE: u32 = 0o700;
/// The mode of every file sealpost creates.
pub const FILE_MODE: u32 = 0o600;

/// Creates `dir`, and any missing ancestors, with mode 0700. An existing
/// directory is left as it is (see [`restrict`]).
///
/// # Errors
/// The I/O error of the creation.
pub fn create_dir(dir: &Path) -> io::Result<()> {
    let mut builder = DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, DIR_MODE);
    builder.create(dir)
}

/// Options that create a file with mode 0600 (an existing file keeps its
/// mode).
pub fn file_options() -> OpenOptions {
    let mut options = OpenOptions::new();
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, FILE_MODE);
    options
}

/// Takes every permission of group and others away from `path`; returns
/// whether there were any. A missing path is not an error.
///
/// # Errors
/// The I/O error of reading or changing the mode.
#[cfg(unix)]
pub fn restrict(path: &Path) -> io::Result<bool> {
    use std::os::unix::fs::PermissionsExt;
    let mode = match fs::metadata(path) {
        Ok(meta) => meta.permissions().mode() & 0o7777,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    if mode & 0o077 == 0 {
        return Ok(false);
    }
    fs::set_permissions(path, fs::Permissions::from_mode(mode & 0o700))?;
    Ok(true)
}

/// Takes every permission of group and others away from `path`; returns
/// whether there were any (never, without Unix modes).
///
/// # Errors
/// None.
#[cfg(not(unix))]
pub fn restrict(_path: &Path) -> io::Result<bool> {
    Ok(false)
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn created_private_and_opened_up_ones_tightened() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("a/b");
        create_dir(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&root.path().join("a")), 0o700);
        let file = dir.join("f");
        file_options()
            .write(true)
            .create_new(true)
            .open(&file)
            .unwrap();
        assert_eq!(mode(&file), 0o600);

        fs::set_permissions(&file, fs::Permissions::from_mode(0o664)).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        assert!(restrict(&file).unwrap());
        assert!(restrict(&dir).unwrap());
        assert_eq!((mode(&file), mode(&dir)), (0o600, 0o700));
        assert!(!restrict(&file).unwrap(), "already private");
        assert!(!restrict(&dir.join("missing")).unwrap());
    }
}
