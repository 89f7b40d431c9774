//! Telephone numbers as compact keys, and the allow list: numbers `high-frequency` and
//! `fan-out` never raise (a hospital's callback line, a public service).

use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// A number as 8 bytes: its value shifted left by four bits, and its length (1 to 15) in the
/// low four bits (the value alone would lose leading zeros of callees written oddly; E.164
/// values are below 10^15 < 2^50).
pub type TnKey = u64;

/// The key of an E.164 number (1 to 15 ASCII digits), `None` otherwise.
pub fn tn_key(tn: &str) -> Option<TnKey> {
    let len = tn.len();
    if !(1..=15).contains(&len) {
        return None;
    }
    let mut value: u64 = 0;
    for b in tn.bytes() {
        if !b.is_ascii_digit() {
            return None;
        }
        value = value * 10 + u64::from(b - b'0');
    }
    Some((value << 4) | len as u64)
}

/// The number a key stands for.
pub fn tn_text(key: TnKey) -> String {
    let len = (key & 0xf) as usize;
    format!("{:0len$}", key >> 4)
}

/// What is wrong with an allow file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AllowFileError {
    /// The file could not be read.
    #[error("cannot read the allow file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A line is not an E.164 number.
    #[error("{path} line {line}: not an E.164 number (1 to 15 digits, no '+', no leading 0)")]
    BadLine {
        /// The file.
        path: PathBuf,
        /// The 1-based line number.
        line: usize,
    },
}

/// Reads an allow file: one E.164 number a line; blank lines and `#` comments (whole lines
/// or after a number) are skipped; a bad line is an error naming its line number.
pub fn read_allow_file(path: &Path) -> Result<Vec<String>, AllowFileError> {
    let text = std::fs::read_to_string(path).map_err(|source| AllowFileError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse_allow_list(&text).map_err(|line| AllowFileError::BadLine {
        path: path.to_owned(),
        line,
    })
}

/// Parses an allow list's text; a bad line gives its 1-based number.
pub fn parse_allow_list(text: &str) -> Result<Vec<String>, usize> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let content = line.split('#').next().unwrap_or("").trim();
        if content.is_empty() {
            continue;
        }
        if crate::event::check_number(content).is_err() {
            return Err(i + 1);
        }
        out.push(content.to_owned());
    }
    Ok(out)
}

/// The allow list, as keys.
#[derive(Clone, Debug, Default)]
pub(crate) struct AllowList {
    keys: HashSet<TnKey>,
}

impl AllowList {
    pub(crate) fn add(&mut self, tn: &str) -> bool {
        tn_key(tn).is_some_and(|k| self.keys.insert(k))
    }
    pub(crate) fn remove(&mut self, tn: &str) -> bool {
        tn_key(tn).is_some_and(|k| self.keys.remove(&k))
    }
    pub(crate) fn contains(&self, key: TnKey) -> bool {
        self.keys.contains(&key)
    }
    pub(crate) fn sorted(&self) -> Vec<String> {
        let mut out: Vec<String> = self.keys.iter().map(|&k| tn_text(k)).collect();
        out.sort();
        out
    }
    pub(crate) fn memory_bytes(&self) -> usize {
        self.keys.capacity() * 9
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_keep_lengths_apart() {
        for tn in ["1", "8613800000001", "999999999999999", "10"] {
            assert_eq!(tn_text(tn_key(tn).unwrap()), tn);
        }
        assert_ne!(tn_key("12"), tn_key("012"));
        assert_eq!(tn_key("1234567890123456"), None);
        assert_eq!(tn_key("12a"), None);
    }

    #[test]
    fn the_allow_file_names_its_bad_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("allow.txt");
        std::fs::write(
            &path,
            "# hospital\n8613800000001\n\n12025550100 # city hall\n",
        )
        .unwrap();
        assert_eq!(
            read_allow_file(&path).unwrap(),
            vec!["8613800000001".to_string(), "12025550100".to_string()]
        );
        std::fs::write(&path, "8613800000001\n+12025550100\n").unwrap();
        let error = read_allow_file(&path).unwrap_err();
        assert!(matches!(error, AllowFileError::BadLine { line: 2, .. }));
        assert!(error.to_string().contains("line 2"), "{error}");
        assert!(matches!(
            read_allow_file(&dir.path().join("missing")),
            Err(AllowFileError::Read { .. })
        ));
    }
}
