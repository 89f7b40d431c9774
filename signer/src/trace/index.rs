//! The trace log's SQLite store, filled from the journal behind the requests.
//!
//! One row per group of journal frames (up to 64 KiB of records, at most 60 s apart): `trace_batch(id INTEGER PRIMARY KEY, first_at,
//! last_at, count, records)`, where `records` holds the records as JSON lines, with an index on
//! `last_at` (which grows with time, so every write lands at the right edge of the index). A
//! row per record with indexes on the origid and the calling number would dirty about one page
//! per record per index and cost more CPU than the signature itself at line rate. Lookups
//! decode the rows of their time window.
//!
//! `trace_applied(seq)` holds the number of the last journal frame stored, updated in the same
//! transaction as the rows: replaying the journal after a crash stores each frame exactly once.

use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension};

use super::journal::Frame;
use crate::error::SignerError;

/// Rows are closed at about this many bytes of records.
const ROW_BYTES: usize = 64 * 1024;
/// Records in one row are at most this many seconds apart, so that pruning (which deletes
/// whole rows) and time-window lookups stay precise.
const ROW_SECONDS: u64 = 60;
const SCHEMA_VERSION: i64 = 3;

/// Opens (creating or migrating) the trace database.
pub(super) fn open(path: &Path) -> Result<Connection, SignerError> {
    let conn = Connection::open(path).map_err(|e| SignerError::db(path, e))?;
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(|e| SignerError::db(path, e))?;
    if version > SCHEMA_VERSION {
        return Err(SignerError::SchemaTooNew {
            path: path.to_owned(),
            found: version,
            supported: SCHEMA_VERSION,
        });
    }
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(|e| SignerError::db(path, e))?;
    conn.execute_batch(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;
         CREATE TABLE IF NOT EXISTS trace_batch (id INTEGER PRIMARY KEY, first_at INTEGER NOT NULL,
             last_at INTEGER NOT NULL, count INTEGER NOT NULL, records TEXT NOT NULL);
         CREATE INDEX IF NOT EXISTS trace_batch_last_at ON trace_batch(last_at);
         CREATE TABLE IF NOT EXISTS trace_applied (seq INTEGER NOT NULL);
         INSERT INTO trace_applied (seq) SELECT 0 WHERE NOT EXISTS (SELECT 1 FROM trace_applied);
         PRAGMA user_version = 3;",
    )
    .map_err(|e| SignerError::db(path, e))?;
    Ok(conn)
}

/// The number of the last journal frame stored.
pub(super) fn applied(conn: &Connection) -> rusqlite::Result<u64> {
    let seq: i64 = conn.query_row("SELECT seq FROM trace_applied", [], |r| r.get(0))?;
    Ok(u64::try_from(seq).unwrap_or(0))
}

/// Stores `frames` (in sequence order, all above [`applied`]) in one transaction, on disk when
/// this returns.
pub(super) fn store(conn: &mut Connection, frames: &[Frame]) -> rusqlite::Result<()> {
    let Some(last) = frames.last() else {
        return Ok(());
    };
    let tx = conn.transaction()?;
    {
        let mut insert = tx.prepare_cached(
            "INSERT INTO trace_batch (first_at, last_at, count, records) VALUES (?1, ?2, ?3, ?4)",
        )?;
        let mut row = Row::default();
        for frame in frames {
            let first_at = row.first_at.min(frame.first_at);
            let last_at = row.last_at.max(frame.last_at);
            if !row.text.is_empty() && last_at - first_at > ROW_SECONDS {
                row.insert(&mut insert)?;
            }
            row.add(frame);
            if row.text.len() >= ROW_BYTES {
                row.insert(&mut insert)?;
            }
        }
        if !row.text.is_empty() {
            row.insert(&mut insert)?;
        }
        tx.execute("UPDATE trace_applied SET seq = ?1", [clamp(last.seq)])?;
    }
    tx.commit()
}

/// Records gathered into one row.
struct Row {
    text: String,
    first_at: u64,
    last_at: u64,
    count: u64,
}

impl Default for Row {
    fn default() -> Self {
        Self {
            text: String::new(),
            first_at: u64::MAX,
            last_at: 0,
            count: 0,
        }
    }
}

impl Row {
    fn add(&mut self, frame: &Frame) {
        self.text.push_str(&frame.records);
        self.first_at = self.first_at.min(frame.first_at);
        self.last_at = self.last_at.max(frame.last_at);
        self.count += u64::from(frame.count);
    }

    /// Inserts the row and starts an empty one.
    fn insert(&mut self, insert: &mut rusqlite::CachedStatement<'_>) -> rusqlite::Result<()> {
        insert.execute(params![
            clamp(self.first_at),
            clamp(self.last_at),
            clamp(self.count),
            self.text.as_str()
        ])?;
        *self = Self::default();
        Ok(())
    }
}

/// The record lines of the rows overlapping `since..=until`, and the journal mark they go up
/// to, read in one snapshot.
pub(super) fn rows_between(
    conn: &mut Connection,
    since: u64,
    until: u64,
) -> rusqlite::Result<(Vec<String>, u64)> {
    let tx = conn.transaction()?;
    let applied = applied(&tx)?;
    let mut rows = Vec::new();
    {
        let mut stmt = tx.prepare(
            "SELECT records FROM trace_batch WHERE last_at >= ?1 AND first_at <= ?2 ORDER BY id",
        )?;
        let mut found = stmt.query(params![clamp(since), clamp(until)])?;
        while let Some(row) = found.next()? {
            rows.push(row.get(0)?);
        }
    }
    tx.commit()?;
    Ok((rows, applied))
}

/// Deletes the rows whose records are all older than `cutoff`; returns how many records.
pub(super) fn prune(conn: &Connection, cutoff: u64) -> rusqlite::Result<usize> {
    let records: Option<i64> = conn
        .query_row(
            "SELECT sum(count) FROM trace_batch WHERE last_at < ?1",
            [clamp(cutoff)],
            |r| r.get(0),
        )
        .optional()?
        .flatten();
    conn.execute(
        "DELETE FROM trace_batch WHERE last_at < ?1",
        [clamp(cutoff)],
    )?;
    Ok(usize::try_from(records.unwrap_or(0)).unwrap_or(0))
}

fn clamp(t: u64) -> i64 {
    i64::try_from(t).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(seq: u64, at: u64, lines: &[&str]) -> Frame {
        Frame {
            seq,
            first_at: at,
            last_at: at,
            count: u32::try_from(lines.len()).unwrap(),
            records: lines.iter().map(|l| format!("{l}\n")).collect(),
        }
    }

    #[test]
    fn stored_frames_move_the_mark_and_are_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("trace.sqlite");
        let mut conn = open(&path).unwrap();
        assert_eq!(applied(&conn).unwrap(), 0);
        store(
            &mut conn,
            &[frame(1, 10, &["a", "b"]), frame(2, 20, &["c"])],
        )
        .unwrap();
        assert_eq!(applied(&conn).unwrap(), 2);
        let (rows, mark) = rows_between(&mut conn, 0, 100).unwrap();
        assert_eq!(mark, 2);
        assert_eq!(rows.concat(), "a\nb\nc\n");
        let (rows, _) = rows_between(&mut conn, 30, 100).unwrap();
        assert!(rows.is_empty());
        // Reopening keeps the mark (and does not reset it).
        drop(conn);
        let conn = open(&path).unwrap();
        assert_eq!(applied(&conn).unwrap(), 2);
        // One row holds both frames, so it goes only when its last record is old enough.
        assert_eq!(prune(&conn, 15).unwrap(), 0);
        assert_eq!(prune(&conn, 25).unwrap(), 3);
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("trace.sqlite");
        Connection::open(&path)
            .unwrap()
            .execute_batch("PRAGMA user_version = 99;")
            .unwrap();
        assert!(matches!(
            open(&path),
            Err(SignerError::SchemaTooNew { found: 99, .. })
        ));
    }
}
