//! The trace log's SQLite store, filled from the journal behind the requests.
//!
//! One row per group of journal frames (up to 64 KiB of records, at most 60 s apart): `trace_batch(id INTEGER PRIMARY KEY, first_at,
//! last_at, count, records)`, where `records` holds the records as JSON lines, with an index on
//! `last_at` (which grows with time, so every write lands at the right edge of the index). A
//! row per record with indexes on the origid and the calling number would dirty about one page
//! per record per index and cost more CPU than the signature itself at line rate. Lookups
//! decode the rows of their time window.
//!
//! `trace_filter(batch, bits)` holds a Bloom filter (`filter`) of each row's origids and numbers:
//! a lookup reads the filters of its time window and decodes only the rows that may hold its
//! key. Rows stored before schema 4 have no filter and are always decoded.
//!
//! `trace_applied(seq)` holds the number of the last journal frame stored, updated in the same
//! transaction as the rows: replaying the journal after a crash stores each frame exactly once.

use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension};

use super::filter::{self, Key};
use super::journal::Frame;
use crate::error::SignerError;

/// Rows are closed at about this many bytes of records.
pub(super) const ROW_BYTES: usize = 64 * 1024;
/// Records in one row are at most this many seconds apart, so that pruning (which deletes
/// whole rows) and time-window lookups stay precise.
const ROW_SECONDS: u64 = 60;
const SCHEMA_VERSION: i64 = 4;
/// WAL pages (4 KiB each) at which the indexer's commit checkpoints.
const CHECKPOINT_PAGES: i64 = 256;

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
         CREATE TABLE IF NOT EXISTS trace_filter (batch INTEGER PRIMARY KEY, bits BLOB NOT NULL);
         CREATE TABLE IF NOT EXISTS trace_applied (seq INTEGER NOT NULL);
         INSERT INTO trace_applied (seq) SELECT 0 WHERE NOT EXISTS (SELECT 1 FROM trace_applied);
         PRAGMA user_version = 4;",
    )
    .map_err(|e| SignerError::db(path, e))?;
    Ok(conn)
}

/// [`open`] for the indexer, whose commits check the WAL: SQLite copies the WAL into the
/// database (a checkpoint) each time it holds [`CHECKPOINT_PAGES`] pages, about 1 MiB, so each
/// checkpoint is a small step (at 35,000 calls a second, about every 100 ms) rather than a
/// burst of several megabytes.
pub(super) fn open_for_indexer(path: &Path) -> Result<Connection, SignerError> {
    let conn = open(path)?;
    conn.pragma_update(None, "wal_autocheckpoint", CHECKPOINT_PAGES)
        .map_err(|e| SignerError::db(path, e))?;
    Ok(conn)
}

/// Syncs the database file and its WAL (if there is one) to disk: every commit visible now
/// survives a power loss after this returns, whichever process or `synchronous` setting made
/// it.
pub(super) fn sync_files(path: &Path) -> std::io::Result<()> {
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    for file in [path.as_os_str(), wal.as_os_str()] {
        match std::fs::File::open(file) {
            Ok(file) => file.sync_all()?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The number of the last journal frame stored.
pub(super) fn applied(conn: &Connection) -> rusqlite::Result<u64> {
    let seq: i64 = conn.query_row("SELECT seq FROM trace_applied", [], |r| r.get(0))?;
    Ok(u64::try_from(seq).unwrap_or(0))
}

/// Stores `frames` (in sequence order, all above [`applied`]) in one transaction. With
/// `durable` the commit is on disk when this returns (`synchronous=FULL`: SQLite syncs the WAL,
/// which also makes every earlier commit durable); without, it is committed and seen by every
/// reader, but a power loss may undo it (`synchronous=NORMAL`: no sync; SQLite stays
/// consistent and comes back as of its last sync). The indexer asks for durability only when
/// it needs it, to reuse a journal segment, so most commits cost no sync.
pub(super) fn store(
    conn: &mut Connection,
    frames: &[Frame],
    durable: bool,
) -> rusqlite::Result<()> {
    let Some(last) = frames.last() else {
        return Ok(());
    };
    conn.pragma_update(None, "synchronous", if durable { "FULL" } else { "NORMAL" })?;
    let tx = conn.transaction()?;
    {
        let mut insert = Inserts {
            batch: tx.prepare_cached(
                "INSERT INTO trace_batch (first_at, last_at, count, records) VALUES (?1, ?2, ?3, ?4)",
            )?,
            filter: tx.prepare_cached("INSERT INTO trace_filter (batch, bits) VALUES (?1, ?2)")?,
        };
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

/// The statements that store a row.
struct Inserts<'c> {
    batch: rusqlite::CachedStatement<'c>,
    filter: rusqlite::CachedStatement<'c>,
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

    /// Inserts the row and its filter, and starts an empty row.
    fn insert(&mut self, insert: &mut Inserts<'_>) -> rusqlite::Result<()> {
        let id = insert.batch.insert(params![
            clamp(self.first_at),
            clamp(self.last_at),
            clamp(self.count),
            self.text.as_str()
        ])?;
        let mut keys = filter::Builder::default();
        keys.add_lines(&self.text);
        if let Some(bits) = keys.finish() {
            insert.filter.execute(params![id, bits])?;
        }
        *self = Self::default();
        Ok(())
    }
}

/// The record lines of the rows overlapping `since..=until` whose filter may hold `key`, and
/// the journal mark they go up to, read in one snapshot.
pub(super) fn rows_between(
    conn: &mut Connection,
    since: u64,
    until: u64,
    key: Key<'_>,
) -> rusqlite::Result<(Vec<String>, u64)> {
    let tx = conn.transaction()?;
    let applied = applied(&tx)?;
    let mut candidates = Vec::new();
    {
        // Reads the filters only: `records` (the row's bulk) is not touched here.
        let mut stmt = tx.prepare(
            "SELECT b.id, f.bits FROM trace_batch b LEFT JOIN trace_filter f ON f.batch = b.id
             WHERE b.last_at >= ?1 AND b.first_at <= ?2 ORDER BY b.id",
        )?;
        let mut found = stmt.query(params![clamp(since), clamp(until)])?;
        while let Some(row) = found.next()? {
            let bits: Option<Vec<u8>> = row.get(1)?;
            if bits.is_none_or(|bits| filter::may_contain(&bits, key)) {
                candidates.push(row.get::<_, i64>(0)?);
            }
        }
    }
    let mut rows = Vec::with_capacity(candidates.len());
    {
        let mut stmt = tx.prepare("SELECT records FROM trace_batch WHERE id = ?1")?;
        for id in candidates {
            rows.push(stmt.query_row([id], |r| r.get(0))?);
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
        "DELETE FROM trace_filter WHERE batch IN (SELECT id FROM trace_batch WHERE last_at < ?1)",
        [clamp(cutoff)],
    )?;
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
            true,
        )
        .unwrap();
        assert_eq!(applied(&conn).unwrap(), 2);
        // These lines are not records, so the row has no filter and any key decodes it.
        let (rows, mark) = rows_between(&mut conn, 0, 100, Key::Tn("1")).unwrap();
        assert_eq!(mark, 2);
        assert_eq!(rows.concat(), "a\nb\nc\n");
        let (rows, _) = rows_between(&mut conn, 30, 100, Key::Tn("1")).unwrap();
        assert!(rows.is_empty());
        // Reopening keeps the mark (and does not reset it).
        drop(conn);
        let conn = open(&path).unwrap();
        assert_eq!(applied(&conn).unwrap(), 2);
        // One row holds both frames, so it goes only when its last record is old enough.
        assert_eq!(prune(&conn, 15).unwrap(), 0);
        assert_eq!(prune(&conn, 25).unwrap(), 3);
    }

    fn record(origid: &str, orig: &str) -> String {
        format!(
            r#"{{"at":1,"request_id":"r","outcome":"signed","origid":"{origid}","orig":"{orig}","dest":["12125551213"],"client":"c"}}"#
        )
    }

    #[test]
    fn only_the_rows_whose_filter_may_hold_the_key_are_decoded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("trace.sqlite");
        let mut conn = open(&path).unwrap();
        // Two rows: the second frame is more than ROW_SECONDS after the first.
        let first = record("11111111-1111-4111-8111-111111111111", "12155550001");
        let second = record("22222222-2222-4222-8222-222222222222", "12155550002");
        store(
            &mut conn,
            &[frame(1, 10, &[&first]), frame(2, 100, &[&second])],
            true,
        )
        .unwrap();
        let filters: i64 = conn
            .query_row("SELECT count(*) FROM trace_filter", [], |r| r.get(0))
            .unwrap();
        assert_eq!(filters, 2);
        let origid = Key::Origid("22222222-2222-4222-8222-222222222222");
        let (rows, _) = rows_between(&mut conn, 0, u64::MAX, origid).unwrap();
        assert_eq!(rows, vec![format!("{second}\n")]);
        let (rows, _) = rows_between(&mut conn, 0, u64::MAX, Key::Tn("12155550001")).unwrap();
        assert_eq!(rows, vec![format!("{first}\n")]);
        // A called number is in both rows' filters.
        let (rows, _) = rows_between(&mut conn, 0, u64::MAX, Key::Tn("12125551213")).unwrap();
        assert_eq!(rows.len(), 2);
        let (rows, _) = rows_between(&mut conn, 0, u64::MAX, Key::Tn("12155559999")).unwrap();
        assert!(rows.is_empty());
        // Pruning takes a row's filter with it.
        assert_eq!(prune(&conn, 50).unwrap(), 1);
        let filters: i64 = conn
            .query_row("SELECT count(*) FROM trace_filter", [], |r| r.get(0))
            .unwrap();
        assert_eq!(filters, 1);
    }

    #[test]
    fn rows_stored_before_filters_existed_are_still_found() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("trace.sqlite");
        let line = record("33333333-3333-4333-8333-333333333333", "12155550003");
        // A schema 3 database: the same tables, no trace_filter.
        Connection::open(&path)
            .unwrap()
            .execute_batch(&format!(
                "CREATE TABLE trace_batch (id INTEGER PRIMARY KEY, first_at INTEGER NOT NULL,
                     last_at INTEGER NOT NULL, count INTEGER NOT NULL, records TEXT NOT NULL);
                 CREATE TABLE trace_applied (seq INTEGER NOT NULL);
                 INSERT INTO trace_applied (seq) VALUES (7);
                 INSERT INTO trace_batch (first_at, last_at, count, records)
                     VALUES (5, 5, 1, '{line}\n');
                 PRAGMA user_version = 3;"
            ))
            .unwrap();
        let mut conn = open(&path).unwrap();
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, 4);
        assert_eq!(applied(&conn).unwrap(), 7);
        let key = Key::Origid("33333333-3333-4333-8333-333333333333");
        let (rows, _) = rows_between(&mut conn, 0, 10, key).unwrap();
        assert_eq!(rows, vec![format!("{line}\n")]);
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
