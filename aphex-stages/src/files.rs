//! Files that another step reads (run records, stack outputs, artifact
//! metadata and archives, the directory cluster's objects), written so a
//! reader never sees half of one: a temp file in the same directory,
//! synced, renamed over the target, and the directory synced so the rename
//! survives a crash. And the local state directory (`.aphex/`), kept
//! private: directories we create are `0700`, files `0600`, and it carries
//! its own `.gitignore`.

use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Mode of the directories we create: only the user.
pub(crate) const DIR_MODE: u32 = 0o700;
/// Mode of the files we create: only the user.
pub(crate) const FILE_MODE: u32 = 0o600;

/// Creates `dir` and its missing parents, each `0700` (existing ones are
/// left as they are).
pub(crate) fn create_private_dir(dir: &Path) -> io::Result<()> {
    DirBuilder::new().recursive(true).mode(DIR_MODE).create(dir)
}

/// Creates (or truncates) `path` for writing, `0600` when created.
pub(crate) fn create_private_file(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(FILE_MODE)
        .open(path)
}

/// Opens `path` for appending, creating it `0600`.
pub(crate) fn append_private_file(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .append(true)
        .create(true)
        .mode(FILE_MODE)
        .open(path)
}

/// Writes `bytes` to `path` atomically (see the module docs); the file is
/// `0600`, missing directories `0700`.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    copy_atomic(path, &mut &*bytes).map(|_| ())
}

/// Streams `from` into `path` atomically (see the module docs), in constant
/// memory whatever its size; returns the bytes written.
pub(crate) fn copy_atomic(path: &Path, from: &mut dyn Read) -> io::Result<u64> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    create_private_dir(dir)?;
    // tempfile creates it 0600.
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    let n = io::copy(from, &mut tmp)?;
    tmp.as_file_mut().flush()?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    sync_dir(dir)?;
    Ok(n)
}

/// Makes a rename in `dir` durable.
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// What the local state directory's `.gitignore` says: nothing in it is
/// ever committed (artifacts, logs and run records are this machine's).
pub(crate) const STATE_GITIGNORE: &str = "# Written by aphex: local run state, never committed.\n*\n";

/// Prepares the local state directory `dir` (`.aphex/`): created `0700`
/// (and narrowed to `0700` when an older Aphex made it wider), with a
/// `.gitignore` of `*` written on creation, or when it is missing.
pub fn prepare_state_dir(dir: &Path) -> io::Result<()> {
    create_private_dir(dir)?;
    let mode = std::fs::metadata(dir)?.permissions().mode();
    if mode & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(DIR_MODE))?;
    }
    let ignore = dir.join(".gitignore");
    if !ignore.exists() {
        write_atomic(&ignore, STATE_GITIGNORE.as_bytes())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn atomic_writes_are_private_and_replace_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b/record.json");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(&dir.path().join("a")), 0o700);
        assert_eq!(mode(&dir.path().join("a/b")), 0o700);
        // No temp file is left beside it.
        assert_eq!(std::fs::read_dir(dir.path().join("a/b")).unwrap().count(), 1);
    }

    #[test]
    fn the_state_directory_is_private_and_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join(".aphex");
        prepare_state_dir(&state).unwrap();
        assert_eq!(mode(&state), 0o700);
        assert_eq!(
            std::fs::read_to_string(state.join(".gitignore")).unwrap(),
            STATE_GITIGNORE
        );
        // An older, wider directory is narrowed; a user's own .gitignore is kept.
        std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(state.join(".gitignore"), "mine\n").unwrap();
        prepare_state_dir(&state).unwrap();
        assert_eq!(mode(&state), 0o700);
        assert_eq!(
            std::fs::read_to_string(state.join(".gitignore")).unwrap(),
            "mine\n"
        );
    }
}
