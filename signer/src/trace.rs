//! The trace log: every signing decision (signed or refused) recorded durably before the
//! response is sent, so a traceback request can always be answered for a call that got an
//! Identity header.
//!
//! Writes go through one writer thread that commits in batches (group commit): a request
//! hands its record over and waits; the writer takes everything that queued meanwhile, writes
//! it in one transaction (`synchronous=FULL`, so the commit is on disk) and then releases all
//! waiters. Under load a batch holds many records and durability costs one disk sync per batch.
//!
//! Storage is one row per batch: `trace_batch(id INTEGER PRIMARY KEY, first_at, last_at,
//! count, records)` where `records` holds the batch's records as JSON lines, with an index on
//! `last_at` (which grows with time, so every write lands at the right edge of the index). A
//! row per record with indexes on the origid and the calling number would dirty about one page
//! per record per index and cost more CPU than the signature itself at line rate; one row per
//! batch costs a share of one insert. Lookups decode the batches of their time window: by
//! number within `since..until`, by origid within a window when given (a traceback request
//! knows roughly when the call was) or over the whole log.
//!
//! The writer never checkpoints the WAL itself (`wal_autocheckpoint=0`): a second thread with
//! its own connection checkpoints every second, beside the writer instead of inside a commit.

use std::path::{Path, PathBuf};
use std::thread::JoinHandle;

use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

use crate::error::SignerError;

/// Default retention of trace records, in days.
pub const DEFAULT_RETENTION_DAYS: u64 = 90;
const QUEUE: usize = 65_536;
const MAX_BATCH: usize = 4096;

/// One signing decision.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceRecord {
    /// When (seconds since the epoch).
    pub at: u64,
    /// The request's X-RequestID.
    pub request_id: String,
    /// `signed` or `refused`.
    pub outcome: String,
    /// The refusal's message id, if refused (`emergency` for an emergency call signed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// The request's origid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origid: Option<String>,
    /// Calling number (canonical).
    pub orig: String,
    /// Called numbers (canonical).
    pub dest: Vec<String>,
    /// The attestation signed, if signed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attest: Option<String>,
    /// The customer the number belongs to, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer: Option<String>,
    /// The client (SBC) that asked.
    pub client: String,
}

/// A record serialized by the request's task (so the writer thread does no per-record work
/// beyond copying) with its time, and where to say it is durable.
type Job = (u64, String, oneshot::Sender<Result<(), String>>);

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
         CREATE TABLE IF NOT EXISTS trace_batch (id INTEGER PRIMARY KEY, first_at INTEGER NOT NULL,
             last_at INTEGER NOT NULL, count INTEGER NOT NULL, records TEXT NOT NULL);
         CREATE INDEX IF NOT EXISTS trace_batch_last_at ON trace_batch(last_at);
         PRAGMA user_version = 2;",
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
        let line = serde_json::to_string(&record).map_err(|e| SignerError::db(&self.path, e))?;
        let (done, wait) = oneshot::channel();
        let sender = self
            .sender
            .as_ref()
            .ok_or_else(|| SignerError::db(&self.path, "trace log closed"))?;
        sender
            .send((record.at, line, done))
            .await
            .map_err(|_| SignerError::db(&self.path, "trace writer stopped"))?;
        match wait.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(SignerError::db(&self.path, e)),
            Err(_) => Err(SignerError::db(&self.path, "trace writer stopped")),
        }
    }

    /// Deletes the batches whose records are all older than `retention_days` before `now`;
    /// returns how many records were deleted.
    pub fn prune(path: &Path, retention_days: u64, now: u64) -> Result<usize, SignerError> {
        let conn = open_connection(path)?;
        let cutoff = clamp(now.saturating_sub(retention_days.saturating_mul(86_400)));
        let records: Option<i64> = conn
            .query_row(
                "SELECT sum(count) FROM trace_batch WHERE last_at < ?1",
                [cutoff],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| SignerError::db(path, e))?
            .flatten();
        conn.execute("DELETE FROM trace_batch WHERE last_at < ?1", [cutoff])
            .map_err(|e| SignerError::db(path, e))?;
        Ok(usize::try_from(records.unwrap_or(0)).unwrap_or(0))
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

fn write_loop(conn: Connection, mut receiver: mpsc::Receiver<Job>) {
    let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    let mut text = String::with_capacity(64 * 1024);
    while let Some(first) = receiver.blocking_recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match receiver.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let result = write_batch(&conn, &batch, &mut text).map_err(|e| e.to_string());
        for (_, _, done) in batch.drain(..) {
            let _ = done.send(result.clone());
        }
    }
}

fn write_batch(conn: &Connection, batch: &[Job], text: &mut String) -> Result<(), String> {
    text.clear();
    let (mut first, mut last) = (u64::MAX, 0);
    for (at, line, _) in batch {
        first = first.min(*at);
        last = last.max(*at);
        text.push_str(line);
        text.push('\n');
    }
    conn.prepare_cached(
        "INSERT INTO trace_batch (first_at, last_at, count, records) VALUES (?1, ?2, ?3, ?4)",
    )
    .and_then(|mut insert| {
        insert.execute(params![
            clamp(first),
            clamp(last),
            batch.len() as i64,
            text.as_str()
        ])
    })
    .map(|_| ())
    .map_err(|e| e.to_string())
}

fn clamp(t: u64) -> i64 {
    i64::try_from(t).unwrap_or(i64::MAX)
}

/// The records of the batches overlapping `since..=until` that satisfy `keep`.
fn scan(
    path: &Path,
    since: u64,
    until: u64,
    keep: impl Fn(&TraceRecord) -> bool,
) -> Result<Vec<TraceRecord>, SignerError> {
    let conn = open_connection(path)?;
    let mut stmt = conn
        .prepare(
            "SELECT records FROM trace_batch WHERE last_at >= ?1 AND first_at <= ?2 ORDER BY id",
        )
        .map_err(|e| SignerError::db(path, e))?;
    let mut rows = stmt
        .query(params![clamp(since), clamp(until)])
        .map_err(|e| SignerError::db(path, e))?;
    let mut found = Vec::new();
    while let Some(row) = rows.next().map_err(|e| SignerError::db(path, e))? {
        let records: String = row.get(0).map_err(|e| SignerError::db(path, e))?;
        for line in records.lines() {
            let record: TraceRecord = serde_json::from_str(line)
                .map_err(|e| SignerError::db(path, format!("corrupt trace record: {e}")))?;
            if (since..=until).contains(&record.at) && keep(&record) {
                found.push(record);
            }
        }
    }
    Ok(found)
}

/// Records for one origid (case-insensitive), over the whole log.
pub fn lookup_origid(path: &Path, origid: &str) -> Result<Vec<TraceRecord>, SignerError> {
    lookup_origid_between(path, origid, 0, i64::MAX as u64)
}

/// Records for one origid (case-insensitive) between `since` and `until` (inclusive).
pub fn lookup_origid_between(
    path: &Path,
    origid: &str,
    since: u64,
    until: u64,
) -> Result<Vec<TraceRecord>, SignerError> {
    scan(path, since, until, |r| {
        r.origid
            .as_deref()
            .is_some_and(|o| o.eq_ignore_ascii_case(origid))
    })
}

/// Records of calls from or to `tn` between `since` and `until` (inclusive).
pub fn lookup_tn(
    path: &Path,
    tn: &str,
    since: u64,
    until: u64,
) -> Result<Vec<TraceRecord>, SignerError> {
    scan(path, since, until, |r| {
        r.orig == tn || r.dest.iter().any(|d| d == tn)
    })
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
        // Batches mix times: pruning deletes a batch only when all of it is past the
        // retention, so it may keep a few old records longer, never delete a recent one.
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
