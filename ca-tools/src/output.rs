//! Writing a command's files: all of them or none.
//!
//! Each file is first written in full to a hidden temporary file beside it (`.NAME.PID.partial`), then renamed over
//! its name once every file of the command has been written; a command that fails before that
//! point leaves no file and no folder behind, and its error names the file the user asked for,
//! never the temporary one. Missing folders on the way to a file are created (and removed again
//! if the command fails). A private key is written with mode 0600 from the moment it exists and
//! never replaces an existing file unless overwriting was asked for.
//!
//! The CA's state file `ca.json` goes through the same [`Output`] as the file a command
//! produces, after it: `ca crl` and `ca issue` record the new CRL number or serial only when
//! the CRL or chain is written.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::error::CaError;

/// One file written to its temporary name, waiting for [`Output::commit`].
#[derive(Debug)]
struct Staged {
    temporary: PathBuf,
    target: PathBuf,
    /// Refuse to replace an existing file (private keys without `--force`).
    keep_existing: bool,
}

/// The files of one command, written together by [`Output::commit`] or not at all.
#[derive(Debug, Default)]
pub struct Output {
    staged: Vec<Staged>,
    /// Folders created for the files, outermost first.
    created: Vec<PathBuf>,
    committed: bool,
}

/// The folders on the way to `path` that do not exist yet, outermost first: what writing
/// `path` creates.
pub fn missing_folders(path: &Path) -> Vec<PathBuf> {
    let mut missing: Vec<PathBuf> = path
        .ancestors()
        .skip(1)
        .filter(|folder| !folder.as_os_str().is_empty())
        .take_while(|folder| !folder.exists())
        .map(Path::to_path_buf)
        .collect();
    missing.reverse();
    missing
}

impl Output {
    /// No files yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a public file (certificate, chain, CSR, CRL, token, state), replacing any file of
    /// that name when committed.
    pub fn public(&mut self, path: &Path, bytes: &[u8]) -> Result<(), CaError> {
        self.stage(path, bytes, 0o644, false)
    }

    /// Adds a private key file, mode 0600. Without `overwrite` an existing file is an error
    /// ([`CaError::KeyExists`]), now and when committed.
    pub fn private(&mut self, path: &Path, bytes: &[u8], overwrite: bool) -> Result<(), CaError> {
        if !overwrite && path.exists() {
            return Err(CaError::KeyExists(path.to_owned()));
        }
        self.stage(path, bytes, 0o600, !overwrite)
    }

    fn stage(
        &mut self,
        path: &Path,
        bytes: &[u8],
        mode: u32,
        keep_existing: bool,
    ) -> Result<(), CaError> {
        if path.is_dir() {
            return Err(CaError::Io {
                path: path.to_owned(),
                detail: "is a folder; give a file name".into(),
            });
        }
        let name = path.file_name().ok_or_else(|| CaError::Io {
            path: path.to_owned(),
            detail: "has no file name".into(),
        })?;
        for folder in missing_folders(path) {
            std::fs::create_dir(&folder).map_err(|e| CaError::Io {
                path: path.to_owned(),
                detail: format!("cannot create folder {}: {e}", folder.display()),
            })?;
            self.created.push(folder);
        }
        let mut temporary_name = std::ffi::OsString::from(".");
        temporary_name.push(name);
        temporary_name.push(format!(".{}.partial", std::process::id()));
        let temporary = path.with_file_name(temporary_name);
        let written = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&temporary)
            .and_then(|mut file| {
                // Recorded before the first byte, so a failed write is cleaned up too.
                self.staged.push(Staged {
                    temporary: temporary.clone(),
                    target: path.to_owned(),
                    keep_existing,
                });
                file.write_all(bytes)?;
                file.sync_all()
            });
        written.map_err(|e| CaError::io(path, &e))
    }

    /// Puts every file in place, in the order they were added. A file that must not replace
    /// an existing one is linked to its name (which fails if the name exists), so the check
    /// cannot race. If one fails, the files this commit created are removed again (a file it
    /// replaced stays replaced: renames in one folder do not fail in practice).
    pub fn commit(mut self) -> Result<(), CaError> {
        let staged = std::mem::take(&mut self.staged);
        let mut created_files: Vec<&Path> = Vec::new();
        let mut pending = staged.iter();
        let mut failure = None;
        for file in pending.by_ref() {
            let existed = file.target.exists();
            let outcome = if file.keep_existing {
                place_new(&file.temporary, &file.target)
            } else {
                std::fs::rename(&file.temporary, &file.target)
                    .map_err(|e| CaError::io(&file.target, &e))
            };
            match outcome {
                Ok(()) if !existed => created_files.push(&file.target),
                Ok(()) => {}
                Err(error) => {
                    let _ = std::fs::remove_file(&file.temporary);
                    failure = Some(error);
                    break;
                }
            }
        }
        let Some(error) = failure else {
            self.committed = true;
            return Ok(());
        };
        for path in created_files {
            let _ = std::fs::remove_file(path);
        }
        for file in pending {
            let _ = std::fs::remove_file(&file.temporary);
        }
        Err(error)
    }
}

/// Links `temporary` to `target` unless `target` exists, then removes `temporary`.
fn place_new(temporary: &Path, target: &Path) -> Result<(), CaError> {
    match std::fs::hard_link(temporary, target) {
        Ok(()) => {
            let _ = std::fs::remove_file(temporary);
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let _ = std::fs::remove_file(temporary);
            Err(CaError::KeyExists(target.to_owned()))
        }
        // A file system without hard links: check, then rename.
        Err(_) if !target.exists() => {
            std::fs::rename(temporary, target).map_err(|e| CaError::io(target, &e))
        }
        Err(_) => {
            let _ = std::fs::remove_file(temporary);
            Err(CaError::KeyExists(target.to_owned()))
        }
    }
}

impl Drop for Output {
    /// An output dropped without a successful commit leaves nothing behind: its temporary files
    /// and the folders it created (innermost first, each only if empty) are removed.
    fn drop(&mut self) {
        for file in &self.staged {
            let _ = std::fs::remove_file(&file.temporary);
        }
        if !self.committed {
            for folder in self.created.iter().rev() {
                let _ = std::fs::remove_dir(folder);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn files_appear_only_on_commit_and_missing_folders_are_created() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("publish/ca/intermediate.crl");
        assert_eq!(
            missing_folders(&target),
            [dir.path().join("publish"), dir.path().join("publish/ca")]
        );
        let mut output = Output::new();
        output.public(&target, b"crl").unwrap();
        output
            .private(&dir.path().join("k.key"), b"key", false)
            .unwrap();
        assert!(!target.exists() && !dir.path().join("k.key").exists());
        output.commit().unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"crl");
        assert_eq!(
            entries(&dir.path().join("publish/ca")),
            ["intermediate.crl"]
        );
        let mode = std::fs::metadata(dir.path().join("k.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(entries(dir.path()), ["k.key", "publish"]);
    }

    #[test]
    fn a_dropped_output_leaves_nothing_and_errors_name_the_target() {
        let dir = tempfile::tempdir().unwrap();
        let mut output = Output::new();
        output
            .public(&dir.path().join("new/deeper/a.pem"), b"a")
            .unwrap();
        // The second file's name is an existing folder.
        std::fs::create_dir(dir.path().join("taken")).unwrap();
        let err = output.public(&dir.path().join("taken"), b"b").unwrap_err();
        assert!(
            matches!(&err, CaError::Io { path, .. } if *path == dir.path().join("taken")),
            "{err}"
        );
        drop(output);
        assert_eq!(entries(dir.path()), ["taken"]);
    }

    #[test]
    fn a_key_is_never_replaced_without_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("k.key");
        std::fs::write(&key, "old").unwrap();
        let mut output = Output::new();
        assert!(matches!(
            output.private(&key, b"new", false),
            Err(CaError::KeyExists(_))
        ));
        // Created between staging and committing: still refused, and nothing is left over.
        let other = dir.path().join("other.key");
        let mut output = Output::new();
        output.public(&dir.path().join("first.pem"), b"1").unwrap();
        output.private(&other, b"new", false).unwrap();
        std::fs::write(&other, "raced").unwrap();
        assert!(matches!(output.commit(), Err(CaError::KeyExists(_))));
        assert_eq!(std::fs::read(&other).unwrap(), b"raced");
        assert_eq!(entries(dir.path()), ["k.key", "other.key"]);
        let mut output = Output::new();
        output.private(&key, b"new", true).unwrap();
        output.commit().unwrap();
        assert_eq!(std::fs::read(&key).unwrap(), b"new");
    }
}
