//! The spool: batches of event lines waiting on disk while the monitor is away, oldest first.
//!
//! Each batch is one file `NNNNNNNNNNNNNNNNNNNN.ndjson` (a sequence number, zero-padded so that
//! names sort in the order the batches were made), written atomically: to a `.tmp` file, synced,
//! renamed, and the folder synced, so a crash leaves either the whole batch or nothing (a stray
//! `.tmp` file is removed when the spool opens). Files are mode 0600 and the folder 0700: the
//! lines hold subscribers' numbers. A `lock` file keeps a second verifier from using the same
//! folder. The spool never holds more than its limit of bytes; a batch that would take it
//! beyond is refused ([`SpoolError::Full`]) and the caller counts the loss.

use std::collections::VecDeque;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Why the spool cannot take or give a batch.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SpoolError {
    /// A file or the folder cannot be used.
    #[error("events spool {}: {detail}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// What the operating system said.
        detail: String,
    },
    /// Another process holds the spool.
    #[error("events spool {}: in use by another process", .0.display())]
    InUse(PathBuf),
    /// The batch does not fit under the limit.
    #[error("events spool full: {held} bytes held, {batch} more would pass the limit of {max}")]
    Full {
        /// Bytes held now.
        held: u64,
        /// The batch's bytes.
        batch: u64,
        /// The limit.
        max: u64,
    },
}

fn io_error(path: &Path, error: &std::io::Error) -> SpoolError {
    SpoolError::Io {
        path: path.to_owned(),
        detail: error.to_string(),
    }
}

/// One spooled batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Spooled {
    /// Its sequence number (batches are sent in this order).
    pub seq: u64,
    /// Its file.
    pub path: PathBuf,
    /// Its size in bytes.
    pub bytes: u64,
}

/// The spool folder and what it holds.
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    max_bytes: u64,
    files: VecDeque<Spooled>,
    bytes: u64,
    next_seq: u64,
    /// Held (locked) while the spool is open.
    _lock: File,
}

const SUFFIX: &str = ".ndjson";

impl Spool {
    /// Opens (creating if needed) the spool folder `dir`, limited to `max_bytes`: removes the
    /// `.tmp` files a crash left, and takes the batches found, in order, to be sent first.
    pub fn open(dir: &Path, max_bytes: u64) -> Result<Self, SpoolError> {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            builder.mode(0o700);
        }
        builder.create(dir).map_err(|e| io_error(dir, &e))?;
        let lock_path = dir.join("lock");
        let lock = File::create(&lock_path).map_err(|e| io_error(&lock_path, &e))?;
        lock.try_lock()
            .map_err(|_| SpoolError::InUse(dir.to_owned()))?;
        let mut files = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(|e| io_error(dir, &e))? {
            let entry = entry.map_err(|e| io_error(dir, &e))?;
            let path = entry.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            if name.ends_with(".tmp") {
                std::fs::remove_file(&path).map_err(|e| io_error(&path, &e))?;
                continue;
            }
            // Other files (the lock, anything an operator left) are not batches.
            let Some(seq) = name
                .strip_suffix(SUFFIX)
                .filter(|digits| digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|digits| digits.parse::<u64>().ok())
            else {
                continue;
            };
            let bytes = entry.metadata().map_err(|e| io_error(&path, &e))?.len();
            files.push(Spooled { seq, path, bytes });
        }
        files.sort_by_key(|f| f.seq);
        let bytes = files.iter().map(|f| f.bytes).sum();
        let next_seq = files.last().map_or(1, |f| f.seq.saturating_add(1));
        Ok(Self {
            dir: dir.to_owned(),
            max_bytes,
            files: files.into(),
            bytes,
            next_seq,
            _lock: lock,
        })
    }

    /// Writes `batch` as the newest file, atomically, if it fits under the limit.
    pub fn push(&mut self, batch: &[u8]) -> Result<(), SpoolError> {
        let size = batch.len() as u64;
        if self.bytes.saturating_add(size) > self.max_bytes {
            return Err(SpoolError::Full {
                held: self.bytes,
                batch: size,
                max: self.max_bytes,
            });
        }
        let seq = self.next_seq;
        let path = self.dir.join(format!("{seq:020}{SUFFIX}"));
        let tmp = self.dir.join(format!("{seq:020}.tmp"));
        let write = || -> std::io::Result<()> {
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                options.mode(0o600);
            }
            let mut file = options.open(&tmp)?;
            file.write_all(batch)?;
            file.sync_data()?;
            std::fs::rename(&tmp, &path)?;
            File::open(&self.dir)?.sync_all()
        };
        if let Err(error) = write() {
            let _ = std::fs::remove_file(&tmp);
            return Err(io_error(&path, &error));
        }
        self.next_seq = seq.saturating_add(1);
        self.bytes = self.bytes.saturating_add(size);
        self.files.push_back(Spooled {
            seq,
            path,
            bytes: size,
        });
        Ok(())
    }

    /// The oldest batch, if any.
    pub fn oldest(&self) -> Option<&Spooled> {
        self.files.front()
    }

    /// The oldest batch's bytes.
    pub fn read_oldest(&self) -> Option<Result<Vec<u8>, SpoolError>> {
        self.files
            .front()
            .map(|f| std::fs::read(&f.path).map_err(|e| io_error(&f.path, &e)))
    }

    /// Removes the oldest batch (sent, or refused for good).
    pub fn remove_oldest(&mut self) -> Result<(), SpoolError> {
        let Some(oldest) = self.files.front() else {
            return Ok(());
        };
        match std::fs::remove_file(&oldest.path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_error(&oldest.path, &e)),
        }
        self.bytes = self.bytes.saturating_sub(oldest.bytes);
        self.files.pop_front();
        Ok(())
    }

    /// Whether no batch waits.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// How many batches wait.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// The bytes held.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_come_back_in_order_across_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spool");
        let mut spool = Spool::open(&path, 1000).unwrap();
        for i in 0..12 {
            spool.push(format!("{{\"n\":{i}}}\n").as_bytes()).unwrap();
        }
        assert_eq!((spool.len(), spool.bytes()), (12, 10 * 8 + 2 * 9));
        spool.remove_oldest().unwrap();
        drop(spool);
        // A crash's leftover and an operator's file are ignored; the leftover is removed.
        std::fs::write(path.join("00000000000000000099.tmp"), b"half").unwrap();
        std::fs::write(path.join("README"), b"x").unwrap();
        let mut spool = Spool::open(&path, 1000).unwrap();
        assert!(!path.join("00000000000000000099.tmp").exists());
        let mut seen = Vec::new();
        while let Some(bytes) = spool.read_oldest() {
            seen.push(String::from_utf8(bytes.unwrap()).unwrap());
            spool.remove_oldest().unwrap();
        }
        let expected: Vec<String> = (1..12).map(|i| format!("{{\"n\":{i}}}\n")).collect();
        assert_eq!(seen, expected, "the order of numbering, 9 before 10");
        assert_eq!(spool.bytes(), 0);
        // Numbering goes on after the last batch seen, never reusing a name.
        spool.push(b"x\n").unwrap();
        assert_eq!(spool.oldest().unwrap().seq, 13);
    }

    #[test]
    fn a_batch_beyond_the_limit_is_refused_and_nothing_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::open(dir.path(), 10).unwrap();
        spool.push(b"12345678\n").unwrap();
        let error = spool.push(b"12\n").unwrap_err();
        assert!(
            matches!(
                error,
                SpoolError::Full {
                    held: 9,
                    batch: 3,
                    max: 10
                }
            ),
            "{error}"
        );
        assert_eq!(spool.len(), 1);
        let files = std::fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(files, 2, "the batch and the lock");
    }

    #[cfg(unix)]
    #[test]
    fn files_are_private_and_one_process_holds_the_folder() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spool");
        let mut spool = Spool::open(&path, 100).unwrap();
        spool.push(b"{}\n").unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o700);
        assert_eq!(mode(&spool.oldest().unwrap().path), 0o600);
        let error = Spool::open(&path, 100).unwrap_err();
        assert!(matches!(error, SpoolError::InUse(_)), "{error}");
        drop(spool);
        assert_eq!(Spool::open(&path, 100).unwrap().len(), 1);
    }
}
