//! The trace log: every signing decision (signed or refused) recorded durably before the
//! response is sent, so a traceback request can always be answered for a call that got an
//! Identity header.
//!
//! Writes go through one writer thread that commits in batches (group commit): a request
//! hands its record over and waits; the writer takes everything that queued meanwhile, writes
//! it in one transaction (`synchronous=FULL`, so the commit is on disk) and then releases all
//! waiters. Under load a batch holds many records and durability costs one disk sync per batch.
//!
//! The writer connection never checkpoints the WAL itself (`wal_autocheckpoint=0`): a second
//! thread with its own connection checkpoints every second, so the disk work of moving pages
//! into the database file runs beside the writer instead of inside a batch's commit.
//!
//! Schema (SQLite, `user_version` 1): `trace(id INTEGER PRIMARY KEY, at, request_id, outcome,
//! message_id, origid, orig, dest, attest, customer, client)` with indexes on `origid` and
//! `(orig, at)`; `dest` is the called numbers joined by `,`. Records are appended in time
//! order, so pruning walks the rowids instead of needing an index on `at`.

use std::path::{Path, PathBuf};
use std::thread::JoinHandle;

use rusqlite::{params, Connection, OptionalExtension};
use tokio::sync::{mpsc, oneshot};

use crate::error::SignerError;

/// Default retention of trace records, in days.
pub const DEFAULT_RETENTION_DAYS: u64 = 90;
const QUEUE: usize = 65_536;
const MAX_BATCH: usize = 4096;

/// One signing decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceRecord {
    /// When (seconds since the epoch).
    pub at: u64,
    /// The request's X-RequestID.
    pub request_id: String,
    /// `signed` or `refused`.
    pub outcome: String,
    /// The refusal's message id, if refused.
    pub message_id: Option<String>,
    /// The token's origid, if signed (or the request's).
    pub origid: Option<String>,
    /// Calling number (canonical).
    pub orig: String,
    /// Called numbers (canonical).
    pub dest: Vec<String>,
    /// The attestation signed, if signed.
    pub attest: Option<String>,
    /// The customer the number belongs to, if known.
    pub customer: Option<String>,
    /// The client (SBC) that asked.
    pub client: String,
}

type Job = (TraceRecord, oneshot::Sender<Result<(), String>>);

/// The trace log's writer.
#[derive(Debug)]
pub struct TraceLog {
    sender: Option<mpsc::Sender<Job>>,
    writer: Option<JoinHandle<()>>,
    checkpointer: Option<(std::sync::mpsc::Sender<()>, JoinHandle<()>)>,
    path: PathBuf,
}

fn open_connection(path: &Path) -> Result<Connection, SignerError> {
    let conn = Connection::open(path).map_err(|e| SignerError::db(path, e))?;
    conn.execute_batch(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;
         CREATE TABLE IF NOT EXISTS trace (id INTEGER PRIMARY KEY, at INTEGER NOT NULL,
             request_id TEXT NOT NULL, outcome TEXT NOT NULL, message_id TEXT, origid TEXT,
             orig TEXT NOT NULL, dest TEXT NOT NULL, attest TEXT, customer TEXT, client TEXT NOT NULL);
         CREATE INDEX IF NOT EXISTS trace_origid ON trace(origid);
         CREATE INDEX IF NOT EXISTS trace_orig_at ON trace(orig, at);
         DROP INDEX IF EXISTS trace_at;
         PRAGMA user_version = 1;",
    )
    .map_err(|e| SignerError::db(path, e))?;
    Ok(conn)
}

impl TraceLog {
    /// Opens (creating if needed) the trace database and starts the writer.
    pub fn open(path: &Path) -> Result<Self, SignerError> {
        let conn = open_connection(path)?;
        conn.execute_batch("PRAGMA wal_autocheckpoint = 0;")
            .map_err(|e| SignerError::db(path, e))?;
        let (sender, receiver) = mpsc::channel::<Job>(QUEUE);
        let writer = std::thread::Builder::new()
            .name("trace-writer".into())
            .spawn(move || write_loop(conn, receiver))
            .map_err(|e| SignerError::io(path, &e))?;
        let checkpoint_conn = open_connection(path)?;
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let checkpointer = std::thread::Builder::new()
            .name("trace-checkpoint".into())
            .spawn(move || {
                let second = std::time::Duration::from_secs(1);
                while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                    stopped.recv_timeout(second)
                {
                    let _ = checkpoint_conn.execute_batch("PRAGMA wal_checkpoint(PASSIVE);");
                }
                let _ = checkpoint_conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);");
            })
            .map_err(|e| SignerError::io(path, &e))?;
        Ok(Self {
            sender: Some(sender),
            writer: Some(writer),
            checkpointer: Some((stop, checkpointer)),
            path: path.to_owned(),
        })
    }

    /// Records `record` and returns once it is on disk.
    pub async fn record(&self, record: TraceRecord) -> Result<(), SignerError> {
        let (done, wait) = oneshot::channel();
        let sender = self
            .sender
            .as_ref()
            .ok_or_else(|| SignerError::db(&self.path, "trace log closed"))?;
        sender
            .send((record, done))
            .await
            .map_err(|_| SignerError::db(&self.path, "trace writer stopped"))?;
        match wait.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(SignerError::db(&self.path, e)),
            Err(_) => Err(SignerError::db(&self.path, "trace writer stopped")),
        }
    }

    /// Deletes records older than `retention_days` before `now`; returns how many.
    pub fn prune(path: &Path, retention_days: u64, now: u64) -> Result<usize, SignerError> {
        let conn = open_connection(path)?;
        let cutoff = now.saturating_sub(retention_days.saturating_mul(86_400));
        // Records are appended in time order: find the first one to keep by walking rowids
        // from the oldest (the walk costs what is deleted), and delete everything before it.
        let first_kept: Option<i64> = conn
            .query_row(
                "SELECT id FROM trace WHERE at >= ?1 ORDER BY id LIMIT 1",
                [cutoff as i64],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| SignerError::db(path, e))?;
        let deleted = match first_kept {
            Some(id) => conn.execute("DELETE FROM trace WHERE id < ?1", [id]),
            None => conn.execute("DELETE FROM trace", []),
        };
        deleted.map_err(|e| SignerError::db(path, e))
    }
}

impl Drop for TraceLog {
    fn drop(&mut self) {
        // Closing the channel lets the writer finish what is queued, then stop.
        drop(self.sender.take());
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
        if let Some((stop, checkpointer)) = self.checkpointer.take() {
            let _ = stop.send(());
            let _ = checkpointer.join();
        }
    }
}

fn write_loop(mut conn: Connection, mut receiver: mpsc::Receiver<Job>) {
    let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = receiver.blocking_recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match receiver.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let result = write_batch(&mut conn, &batch).map_err(|e| e.to_string());
        for (_, done) in batch.drain(..) {
            let _ = done.send(result.clone());
        }
    }
}

fn write_batch(conn: &mut Connection, batch: &[Job]) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    {
        let mut insert = tx.prepare_cached(
            "INSERT INTO trace (at, request_id, outcome, message_id, origid, orig, dest, attest, customer, client)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )?;
        for (r, _) in batch {
            insert.execute(params![
                r.at as i64,
                r.request_id,
                r.outcome,
                r.message_id,
                r.origid,
                r.orig,
                r.dest.join(","),
                r.attest,
                r.customer,
                r.client
            ])?;
        }
    }
    tx.commit()
}

fn read_rows(
    conn: &Connection,
    sql: &str,
    args: &[&dyn rusqlite::ToSql],
) -> rusqlite::Result<Vec<TraceRecord>> {
    let mut stmt = conn.prepare(sql)?;
    let rows = stmt.query_map(args, |row| {
        Ok(TraceRecord {
            at: row.get::<_, i64>(0)? as u64,
            request_id: row.get(1)?,
            outcome: row.get(2)?,
            message_id: row.get(3)?,
            origid: row.get(4)?,
            orig: row.get(5)?,
            dest: row
                .get::<_, String>(6)?
                .split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
            attest: row.get(7)?,
            customer: row.get(8)?,
            client: row.get(9)?,
        })
    })?;
    rows.collect()
}

const COLUMNS: &str =
    "at, request_id, outcome, message_id, origid, orig, dest, attest, customer, client";

/// Records for one origid (case-insensitive).
pub fn lookup_origid(path: &Path, origid: &str) -> Result<Vec<TraceRecord>, SignerError> {
    let conn = open_connection(path)?;
    read_rows(
        &conn,
        &format!("SELECT {COLUMNS} FROM trace WHERE lower(origid) = lower(?1) ORDER BY id"),
        &[&origid],
    )
    .map_err(|e| SignerError::db(path, e))
}

/// Records of calls from or to `tn` between `since` and `until` (inclusive).
pub fn lookup_tn(
    path: &Path,
    tn: &str,
    since: u64,
    until: u64,
) -> Result<Vec<TraceRecord>, SignerError> {
    let conn = open_connection(path)?;
    read_rows(
        &conn,
        &format!(
            "SELECT {COLUMNS} FROM trace WHERE at BETWEEN ?2 AND ?3
             AND (orig = ?1 OR instr(',' || dest || ',', ',' || ?1 || ',') > 0) ORDER BY id"
        ),
        &[&tn, &(since as i64), &(until as i64)],
    )
    .map_err(|e| SignerError::db(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(i: u64) -> TraceRecord {
        TraceRecord {
            at: 1000 + i,
            request_id: format!("r{i}"),
            outcome: "signed".into(),
            message_id: None,
            origid: Some(format!("00000000-0000-4000-8000-{i:012}")),
            orig: "12155551212".into(),
            dest: vec!["12125551213".into(), format!("1212555{i:04}")],
            attest: Some("A".into()),
            customer: Some("c1".into()),
            client: "test".into(),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_records_are_all_durable_and_found() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("trace.sqlite");
        let log = std::sync::Arc::new(TraceLog::open(&path).unwrap());
        let mut tasks = Vec::new();
        for i in 0..500 {
            let log = std::sync::Arc::clone(&log);
            tasks.push(tokio::spawn(async move { log.record(record(i)).await }));
        }
        for task in tasks {
            task.await.unwrap().unwrap();
        }
        // Readable from another connection right away: committed, not just queued.
        let found = lookup_origid(&path, "00000000-0000-4000-8000-000000000042").unwrap();
        assert_eq!(found, vec![record(42)]);
        assert_eq!(
            lookup_tn(&path, "12155551212", 1000, 1099).unwrap().len(),
            100
        );
        assert_eq!(
            lookup_tn(&path, "12125550007", 0, u64::MAX >> 1).unwrap(),
            vec![record(7)]
        );
        // These records were written concurrently, so `at` is not in rowid order: pruning may
        // keep a few old ones a little longer, but never deletes one inside the retention.
        let pruned = TraceLog::prune(&path, 1, 86_400 + 1100).unwrap();
        assert!(pruned <= 100, "{pruned}");
        let left = lookup_tn(&path, "12155551212", 0, 5000).unwrap();
        assert_eq!(left.iter().filter(|r| r.at >= 1100).count(), 400);
        assert_eq!(left.len(), 500 - pruned);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn pruning_deletes_what_is_older_than_the_retention() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("trace.sqlite");
        let log = TraceLog::open(&path).unwrap();
        for i in 0..50 {
            log.record(record(i * 86_400)).await.unwrap();
        }
        drop(log);
        // Keep 10 days at day 49: days 39..=49 stay.
        assert_eq!(TraceLog::prune(&path, 10, 1000 + 49 * 86_400).unwrap(), 39);
        assert_eq!(
            lookup_tn(&path, "12155551212", 0, u64::MAX >> 2)
                .unwrap()
                .len(),
            11
        );
        assert_eq!(TraceLog::prune(&path, 10, 1000 + 49 * 86_400).unwrap(), 0);
        assert_eq!(TraceLog::prune(&path, 0, u64::MAX >> 2).unwrap(), 11);
    }
}
