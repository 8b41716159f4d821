//! Files replaced whole, so that a crash or power loss at any instant leaves either the old file
//! or the new one, never a mix and never neither: write a temporary file in the same directory
//! (a unique name, so two writers never share one), flush it, rename it over the old one, then
//! flush the directory so the rename itself survives.

use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

/// Prefix of the temporary files [`write_atomic`] creates; [`remove_stale_temporaries`] clears
/// what a crash left behind.
pub const TEMP_PREFIX: &str = ".medsec-tmp-";

/// Who may read a file written by [`write_atomic`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Its owner only (0600): keys, tokens, state.
    Private,
    /// Everyone (0644): certificates, public keys, published metadata.
    Public,
}

/// A file operation that failed, with what was being done and to which path.
#[derive(Debug, thiserror::Error)]
#[error("{action} {}: {source}", path.display())]
pub struct FsError {
    /// What was being done: "writing", "replacing", "flushing directory", ...
    pub action: &'static str,
    /// The file or directory.
    pub path: PathBuf,
    /// The operating system's error.
    #[source]
    pub source: std::io::Error,
}

fn fail<'p>(action: &'static str, path: &'p Path) -> impl FnOnce(std::io::Error) -> FsError + 'p {
    move |source| FsError {
        action,
        path: path.to_owned(),
        source,
    }
}

/// Reads a secret (a passphrase file), refusing one that the group or others may read: a
/// secret any local account can read protects nothing. The error names the file, its mode and
/// the fix. A trailing line break is not part of the secret.
pub fn read_secret(path: &Path) -> Result<String, FsError> {
    let mode = std::fs::metadata(path)
        .map_err(fail("reading", path))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(FsError {
            action: "refusing",
            path: path.to_owned(),
            source: std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                format!(
                    "the group or others may read it (mode {:04o}); make it the owner's only: \
                     chmod 600 {}",
                    mode & 0o7777,
                    path.display()
                ),
            ),
        });
    }
    let text = std::fs::read_to_string(path).map_err(fail("reading", path))?;
    Ok(text.trim_end_matches(['\r', '\n']).to_owned())
}

/// Makes an existing file or directory its owner's only (0600 for a file, 0700 for a
/// directory), whatever the umask gave it.
pub fn make_private(path: &Path) -> Result<(), FsError> {
    let meta = std::fs::metadata(path).map_err(fail("reading", path))?;
    let mode = if meta.is_dir() { 0o700 } else { 0o600 };
    if meta.permissions().mode() & 0o777 == mode {
        return Ok(());
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(fail("setting permissions of", path))
}

/// Replaces `path` with `bytes` atomically and durably (see the module's contract).
pub fn write_atomic(path: &Path, bytes: &[u8], access: Access) -> Result<(), FsError> {
    let dir = parent(path);
    let mut tmp = tempfile::Builder::new()
        .prefix(TEMP_PREFIX)
        .tempfile_in(dir)
        .map_err(fail("creating a temporary file in", dir))?;
    let mode = match access {
        Access::Private => 0o600,
        Access::Public => 0o644,
    };
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(fail("setting permissions of", path))?;
    tmp.write_all(bytes)
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(fail("writing", path))?;
    tmp.persist(path)
        .map_err(|e| fail("replacing", path)(e.error))?;
    sync_dir(dir)
}

/// Flushes directory `dir`, so that a file just created, renamed or removed in it survives power
/// loss.
pub fn sync_dir(dir: &Path) -> Result<(), FsError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(fail("flushing directory", dir))
}

/// The directory holding `path` (`.` for a bare file name).
pub fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Removes the temporary files of [`write_atomic`] that a crash left in `dir` (they were never
/// renamed into place, so nothing trusted them). Best effort: a file it cannot remove stays.
pub fn remove_stale_temporaries(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if entry
            .file_name()
            .to_str()
            .is_some_and(|n| n.starts_with(TEMP_PREFIX))
        {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<std::ffi::OsString> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect()
    }

    #[test]
    fn a_secret_others_may_read_is_refused_by_name_and_an_owner_only_one_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pass.txt");
        std::fs::write(&path, "s3cret\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = read_secret(&path).unwrap_err().to_string();
        assert!(
            e.contains("pass.txt") && e.contains("0644") && e.contains("chmod 600"),
            "{e}"
        );
        make_private(&path).unwrap();
        assert_eq!(mode(&path), 0o600);
        assert_eq!(read_secret(&path).unwrap(), "s3cret");
        make_private(dir.path()).unwrap();
        assert_eq!(mode(dir.path()), 0o700);
    }

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn a_file_is_created_then_replaced_whole_with_the_asked_permissions() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key.pem");
        write_atomic(&path, b"first", Access::Private).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"first");
        assert_eq!(mode(&path), 0o600);
        write_atomic(&path, b"second, longer", Access::Public).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"second, longer");
        assert_eq!(mode(&path), 0o644);
        // No temporary file is left beside it.
        assert_eq!(names(dir.path()), ["key.pem"]);
    }

    #[test]
    fn a_failed_write_names_the_action_and_path_and_keeps_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        write_atomic(&path, b"old", Access::Private).unwrap();
        // A directory where the file should go cannot be replaced by a file.
        let blocked = dir.path().join("blocked");
        std::fs::create_dir(&blocked).unwrap();
        std::fs::write(blocked.join("inside"), b"x").unwrap();
        let e = write_atomic(&blocked, b"new", Access::Private).unwrap_err();
        assert_eq!(e.action, "replacing");
        assert!(e.to_string().contains("blocked"), "{e}");
        let e = write_atomic(&dir.path().join("missing/x"), b"new", Access::Private).unwrap_err();
        assert!(
            e.to_string().contains("creating a temporary file in"),
            "{e}"
        );
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
    }

    #[test]
    fn stale_temporaries_are_removed_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(format!("{TEMP_PREFIX}abc")), b"torn").unwrap();
        std::fs::write(dir.path().join("root.json"), b"{}").unwrap();
        remove_stale_temporaries(dir.path());
        assert_eq!(names(dir.path()), ["root.json"]);
    }

    #[test]
    fn a_bare_file_name_lives_in_the_current_directory() {
        assert_eq!(parent(Path::new("x.json")), Path::new("."));
        assert_eq!(parent(Path::new("/a/x.json")), Path::new("/a"));
    }
}
