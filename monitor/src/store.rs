//! The monitor's store ([`Store`]): the SQLite store described here ([`SqliteStore`], the
//! default), or the same operations on PostgreSQL ([`crate::pgstore`], `serve --db`), chosen
//! when the store is opened ([`Store::open_in`]); callers see one type either way.
//!
//! The SQLite store: two SQLite databases in the data folder, `monitor.db` for events and
//! `alerts.db` (attached as `control`) for alerts and allow-list changes, so that an alert
//! change committed in a request never waits for the indexer's large event transactions.
//!
//! | table | rows |
//! |---|---|
//! | `events` | every accepted event: event time, kind, caller, SPC, origid, verstat, flags, the detectors' marks, ingress, whether it came too late to count, the called numbers and the line as received |
//! | `event_caller`, `event_called`, `event_origid` | one row per event and calling number, called number or origid: the lookups' indexes, kept as tables of their own so each batch fills them in key order |
//! | `alerts` | every alert, open and closed, with its subject, detector, window, counts, samples and text |
//! | `allow_changes` | allow-list additions and removals made through the API (they override `allow_file`) |
//! | `journal_checkpoint` | the last journal frame whose events are in `events` ([`crate::journal`]) |
//!
//! Events are indexed by calling number, called number, origid, SPC and time. They come from
//! the journal through the indexer, in transactions that store the checkpoint with them
//! ([`Store::write_indexed`]); alert changes are committed in the request
//! ([`Store::write_batch`]). A store written before `alerts.db` existed has its alerts and
//! allow-list changes moved there when it is opened. The WAL journal with
//! `synchronous=NORMAL` (durability `"process"`) keeps a commit through `kill -9`;
//! `synchronous=FULL` (`"power"`) through a power loss.
//!
//! Retention ([`Store::prune`]) deletes by event time, in bounded transactions, with the
//! cutoff passed in. Subscriber numbers are never logged from here.

use std::path::{Path, PathBuf};

use rusqlite::{params, Connection, OpenFlags};
use serde::Serialize;

use crate::alerts::Alert;
use crate::config::Durability;
use crate::detect::{DetectorId, Subject};
use crate::event::{Event, Kind};
use crate::pgstore::PgStore;
use rest::pg::PgUrl;

/// The writer's SQLite page cache, KiB.
pub const WRITER_CACHE_KIB: i64 = 256 * 1024;

/// The database file's name inside the data folder.
pub const DB_FILE: &str = "monitor.db";
/// The control database's file name inside the data folder (alerts, allow-list changes).
pub const CONTROL_FILE: &str = "alerts.db";

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The data folder could not be created or secured.
    #[error("data folder {path}: {detail}")]
    Folder {
        /// The folder.
        path: PathBuf,
        /// What the system said.
        detail: String,
    },
    /// SQLite failed.
    #[error("monitor database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// PostgreSQL failed or could not be reached (the URL is shown without its password).
    #[error("monitor database {url}: {detail}")]
    Postgres {
        /// The URL, password hidden.
        url: String,
        /// What the client said, with its causes.
        detail: String,
    },
    /// The PostgreSQL database has a newer monitor schema than this program knows.
    #[error("monitor database {url}: schema version {found} is newer than this program's {supported}; upgrade the monitor")]
    PgSchemaTooNew {
        /// The URL, password hidden.
        url: String,
        /// The version found.
        found: i64,
        /// The newest this program knows.
        supported: i64,
    },
    /// The PostgreSQL database has no monitor schema, or an older one, where a reader expected
    /// the writer to have migrated it.
    #[error("monitor database {url}: schema version {found}, expected {supported}")]
    PgSchemaTooOld {
        /// The URL, password hidden.
        url: String,
        /// The version found.
        found: i64,
        /// The version expected.
        supported: i64,
    },
    /// The event journal could not be read or written.
    #[error("event journal {path}: {detail}")]
    Journal {
        /// The file or folder.
        path: PathBuf,
        /// What the system said.
        detail: String,
    },
    /// A frame the journal reported written cannot be read back (the journal was damaged
    /// or a segment was removed by hand).
    #[error("event journal {dir}: frame {seq} is missing or damaged")]
    JournalGap {
        /// The journal's folder.
        dir: PathBuf,
        /// The frame's sequence number.
        seq: u64,
    },
    /// The indexer is too far behind the journal: ingest waited for it and gave up (the
    /// body is not acknowledged; the sender retries later).
    #[error("event index backlog of {lag} events did not shrink in time")]
    Backlog {
        /// Acknowledged events not yet indexed.
        lag: u64,
    },
    /// A body too large for one journal frame.
    #[error("event journal: a body of {0} bytes is too large for one frame")]
    FrameTooLarge(usize),
    /// A stored row could not be read back (a detector or subject this build does not know).
    #[error("monitor database: unreadable {what} in row {id}")]
    Corrupt {
        /// What was unreadable.
        what: &'static str,
        /// The row.
        id: i64,
    },
}

fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Verification => "verification",
        Kind::Complaint => "complaint",
    }
}

fn subject_parts(subject: &Subject) -> (&'static str, &str) {
    (subject.kind(), subject.value())
}

/// One event to store, with what the detectors made of it.
#[derive(Clone, Copy, Debug)]
pub struct EventRow<'a> {
    /// The event.
    pub event: &'a Event,
    /// The line as received.
    pub raw: &'a str,
    /// The detectors' marks on the call.
    pub marks: &'a [DetectorId],
    /// Too late for the detectors to count.
    pub late: bool,
}

/// A stored event, as the API serves it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StoredEvent {
    /// Event time.
    pub time: u64,
    /// `verification` or `complaint`.
    pub kind: String,
    /// The calling number.
    pub from: String,
    /// The called numbers.
    pub to: Vec<String>,
    /// The verdict.
    pub verstat: Option<String>,
    /// The signing carrier.
    pub spc: Option<String>,
    /// The call's origid.
    pub origid: Option<String>,
    /// The verifier's flags.
    pub flags: Vec<String>,
    /// The detectors' marks.
    pub marks: Vec<String>,
    /// Where the call entered.
    pub ingress: Option<String>,
    /// Came too late for the detectors to count.
    pub late: bool,
}

/// Whose alerts `GET /v1/alerts?subject=` asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SubjectFilter {
    /// Exactly this subject (`caller:TN`, `spc:SPC`, `firm:ID`, `ingress:NAME`, or a value
    /// only one kind can have).
    Is(Subject),
    /// Any subject with this value: a digits-only value can be a calling number or an SPC
    /// (SPCs are often numeric, e.g. `2001`).
    Named(String),
}

impl From<Subject> for SubjectFilter {
    fn from(subject: Subject) -> Self {
        Self::Is(subject)
    }
}

/// Filters of `GET /v1/alerts`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AlertQuery {
    /// Only alerts whose `time` is at least this.
    pub since: Option<u64>,
    /// Only this detector's.
    pub detector: Option<DetectorId>,
    /// Only this subject's.
    pub subject: Option<SubjectFilter>,
    /// At most this many, newest first.
    pub limit: usize,
}

/// Events per minute by verdict, for the dashboard.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct MinuteCounts {
    /// The minute's first second (epoch seconds, a multiple of 60).
    pub minute: u64,
    /// `TN-Validation-Passed` verifications.
    pub passed: u64,
    /// `TN-Validation-Failed` verifications.
    pub failed: u64,
    /// `No-TN-Validation` verifications (and verifications with no verstat).
    pub novalidation: u64,
    /// Complaints.
    pub complaints: u64,
}

impl MinuteCounts {
    /// Counts one event (of this minute).
    pub fn count(&mut self, event: &Event) {
        match (event.kind, event.verstat.as_deref()) {
            (Kind::Complaint, _) => self.complaints += 1,
            (Kind::Verification, Some("TN-Validation-Passed")) => self.passed += 1,
            (Kind::Verification, Some("TN-Validation-Failed")) => self.failed += 1,
            (Kind::Verification, _) => self.novalidation += 1,
        }
    }
}

/// The SQLite store: one connection. The service keeps one for writing and one for reading
/// (WAL lets readers see the last commit while a write is under way).
#[derive(Debug)]
pub struct SqliteStore {
    conn: Connection,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    time INTEGER NOT NULL,
    kind TEXT NOT NULL,
    caller TEXT NOT NULL,
    called TEXT NOT NULL,
    spc TEXT,
    origid TEXT,
    verstat TEXT,
    flags TEXT NOT NULL,
    marks TEXT NOT NULL,
    ingress TEXT,
    late INTEGER NOT NULL,
    raw TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_time ON events(time);
CREATE INDEX IF NOT EXISTS events_spc ON events(spc, time) WHERE spc IS NOT NULL;
CREATE TABLE IF NOT EXISTS event_caller (
    caller TEXT NOT NULL,
    time INTEGER NOT NULL,
    event_id INTEGER NOT NULL,
    PRIMARY KEY (caller, time, event_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS event_origid (
    origid TEXT NOT NULL,
    event_id INTEGER NOT NULL,
    PRIMARY KEY (origid, event_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS journal_checkpoint (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    seq INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS event_called (
    called TEXT NOT NULL,
    event_id INTEGER NOT NULL,
    PRIMARY KEY (called, event_id)
) WITHOUT ROWID;
";

/// The control database (attached as `control`): alerts and allow-list changes. A file of
/// its own so that committing an alert change never waits for the indexer's large event
/// transactions on `monitor.db` (SQLite locks each database file separately).
const CONTROL_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS control.alerts (
    id INTEGER PRIMARY KEY,
    subject_kind TEXT NOT NULL,
    subject TEXT NOT NULL,
    detector TEXT NOT NULL,
    time INTEGER NOT NULL,
    window INTEGER NOT NULL,
    count INTEGER NOT NULL,
    threshold INTEGER NOT NULL,
    samples TEXT NOT NULL,
    text TEXT NOT NULL,
    last INTEGER NOT NULL,
    closed INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS control.alerts_time ON alerts(time);
CREATE INDEX IF NOT EXISTS control.alerts_subject ON alerts(subject, time);
CREATE INDEX IF NOT EXISTS control.alerts_open ON alerts(closed) WHERE closed = 0;
CREATE TABLE IF NOT EXISTS control.allow_changes (
    tn TEXT PRIMARY KEY,
    allowed INTEGER NOT NULL,
    time INTEGER NOT NULL
);
";

/// Replaces the indexes on `events(caller)` and `events(origid)` of a store written before
/// the lookup tables existed by those tables, in one transaction.
const MIGRATE_LOOKUPS: &str = "
BEGIN;
INSERT OR IGNORE INTO event_caller SELECT caller, time, id FROM events ORDER BY caller, time, id;
INSERT OR IGNORE INTO event_origid SELECT origid, id FROM events WHERE origid IS NOT NULL ORDER BY origid, id;
DROP INDEX events_caller;
DROP INDEX events_origid;
COMMIT;
";

/// Moves the tables of the control database out of `monitor.db`, where stores written
/// before the split kept them, in one transaction.
const MIGRATE_CONTROL: &str = "
BEGIN;
INSERT OR IGNORE INTO control.alerts SELECT * FROM main.alerts;
INSERT OR IGNORE INTO control.allow_changes SELECT * FROM main.allow_changes;
DROP TABLE main.alerts;
DROP TABLE main.allow_changes;
COMMIT;
";

fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn to_u64(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

fn split_list(text: &str) -> Vec<String> {
    text.split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Attaches the control database of `dir` as `control` (read-only on a read-only connection).
fn attach_control(conn: &Connection, dir: &Path) -> Result<(), StoreError> {
    let path = dir.join(CONTROL_FILE);
    conn.execute(
        "ATTACH DATABASE ?1 AS control",
        params![path.to_string_lossy()],
    )?;
    Ok(())
}

/// Creates the data folder (0700) if it is missing.
pub fn create_folder(dir: &Path) -> Result<(), StoreError> {
    let folder = |e: std::io::Error| StoreError::Folder {
        path: dir.to_owned(),
        detail: e.to_string(),
    };
    if !dir.exists() {
        std::fs::create_dir_all(dir).map_err(folder)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                .map_err(folder)?;
        }
    }
    Ok(())
}

fn insert_events(
    tx: &rusqlite::Transaction<'_>,
    events: &[EventRow<'_>],
) -> Result<(), StoreError> {
    let mut insert_event = tx.prepare_cached(
        "INSERT INTO events (time, kind, caller, called, spc, origid, verstat, flags, marks, ingress, late, raw)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
    )?;
    // The lookup tables are filled after the rows, each in its key order: a batch's random
    // keys then touch each B-tree page once, in order, instead of jumping between pages.
    let mut callers: Vec<(&str, i64, i64)> = Vec::with_capacity(events.len());
    let mut called: Vec<(&str, i64)> = Vec::with_capacity(events.len());
    let mut origids: Vec<(&str, i64)> = Vec::with_capacity(events.len());
    let mut marks = String::new();
    for row in events {
        let event = row.event;
        marks.clear();
        for (i, mark) in row.marks.iter().enumerate() {
            if i > 0 {
                marks.push(',');
            }
            marks.push_str(mark.as_str());
        }
        insert_event.execute(params![
            to_i64(event.time),
            kind_name(event.kind),
            event.from,
            event.to.join(","),
            event.spc,
            event.origid,
            event.verstat,
            event.flags.join(","),
            marks,
            event.ingress,
            row.late,
            row.raw,
        ])?;
        let id = tx.last_insert_rowid();
        callers.push((&event.from, to_i64(event.time), id));
        called.extend(event.to.iter().map(|to| (to.as_str(), id)));
        if let Some(origid) = &event.origid {
            origids.push((origid, id));
        }
    }
    callers.sort_unstable();
    called.sort_unstable();
    origids.sort_unstable();
    let mut insert = tx.prepare_cached(
        "INSERT OR IGNORE INTO event_caller (caller, time, event_id) VALUES (?1, ?2, ?3)",
    )?;
    for (caller, time, id) in callers {
        insert.execute(params![caller, time, id])?;
    }
    let mut insert =
        tx.prepare_cached("INSERT OR IGNORE INTO event_called (called, event_id) VALUES (?1, ?2)")?;
    for (to, id) in called {
        insert.execute(params![to, id])?;
    }
    let mut insert =
        tx.prepare_cached("INSERT OR IGNORE INTO event_origid (origid, event_id) VALUES (?1, ?2)")?;
    for (origid, id) in origids {
        insert.execute(params![origid, id])?;
    }
    Ok(())
}

fn upsert_alerts(tx: &rusqlite::Transaction<'_>, alerts: &[Alert]) -> Result<(), StoreError> {
    let mut upsert = tx.prepare_cached(
        "INSERT OR REPLACE INTO alerts (id, subject_kind, subject, detector, time, window, count, threshold, samples, text, last, closed)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
    )?;
    for alert in alerts {
        let (kind, subject) = subject_parts(&alert.subject);
        upsert.execute(params![
            to_i64(alert.id),
            kind,
            subject,
            alert.detector.as_str(),
            to_i64(alert.time),
            to_i64(alert.window),
            to_i64(alert.count),
            to_i64(alert.threshold),
            serde_json::to_string(&alert.samples).unwrap_or_else(|_| "[]".into()),
            alert.text,
            to_i64(alert.last),
            alert.closed,
        ])?;
    }
    Ok(())
}

impl SqliteStore {
    /// Opens (creating when missing) the database in `dir` for writing, with the schema and
    /// the journal settings of `durability`. Creates `dir` (0700) if it is missing.
    pub fn open(dir: &Path, durability: Durability) -> Result<Self, StoreError> {
        create_folder(dir)?;
        let conn = Connection::open(dir.join(DB_FILE))?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        attach_control(&conn, dir)?;
        for schema in [
            rusqlite::DatabaseName::Main,
            rusqlite::DatabaseName::Attached("control"),
        ] {
            conn.pragma_update(Some(schema), "journal_mode", "WAL")?;
            conn.pragma_update(
                Some(schema),
                "synchronous",
                match durability {
                    Durability::Process => "NORMAL",
                    Durability::Power => "FULL",
                },
            )?;
        }
        // The indexes on calling and called numbers take keys in random order: a page cache
        // that holds their working set saves re-reading pages from the OS on every insert.
        conn.pragma_update(None, "cache_size", -WRITER_CACHE_KIB)?;
        // Checkpoint in larger steps: fewer, longer copies from the WAL to the database.
        conn.pragma_update(None, "wal_autocheckpoint", 16_384)?;
        conn.pragma_update(None, "temp_store", "MEMORY")?;
        conn.execute_batch(SCHEMA)?;
        conn.execute_batch(CONTROL_SCHEMA)?;
        let old: i64 = conn.query_row(
            "SELECT count(*) FROM main.sqlite_master WHERE type = 'table' AND name IN ('alerts', 'allow_changes')",
            [],
            |r| r.get(0),
        )?;
        if old == 2 {
            conn.execute_batch(MIGRATE_CONTROL)?;
        }
        let old_indexes: i64 = conn.query_row(
            "SELECT count(*) FROM main.sqlite_master WHERE type = 'index' AND name IN ('events_caller', 'events_origid')",
            [],
            |r| r.get(0),
        )?;
        if old_indexes == 2 {
            conn.execute_batch(MIGRATE_LOOKUPS)?;
        }
        Ok(Self { conn })
    }

    /// A read-only connection to the database in `dir` (opened for writing once before).
    pub fn open_reader(dir: &Path) -> Result<Self, StoreError> {
        let conn = Connection::open_with_flags(
            dir.join(DB_FILE),
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        attach_control(&conn, dir)?;
        Ok(Self { conn })
    }

    /// Writes events and alert states (new, extended or closed: each row replaces the
    /// alert's previous one) in one transaction; when this returns `Ok` all of it is
    /// committed, otherwise none of it.
    pub fn write_batch(
        &mut self,
        events: &[EventRow<'_>],
        alerts: &[Alert],
    ) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        insert_events(&tx, events)?;
        upsert_alerts(&tx, alerts)?;
        tx.commit()?;
        Ok(())
    }

    /// Writes events from the journal and the journal's checkpoint (the sequence number of
    /// the last frame they came from) in one transaction: after a crash the events are
    /// stored exactly when the checkpoint says so, never twice.
    pub fn write_indexed(
        &mut self,
        events: &[EventRow<'_>],
        checkpoint: u64,
    ) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        insert_events(&tx, events)?;
        tx.execute(
            "INSERT OR REPLACE INTO journal_checkpoint (id, seq) VALUES (1, ?1)",
            params![to_i64(checkpoint)],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// The sequence number of the last journal frame whose events are stored (0: none).
    pub fn checkpoint(&self) -> Result<u64, StoreError> {
        let seq: Option<i64> =
            self.conn
                .query_row("SELECT max(seq) FROM journal_checkpoint", [], |r| r.get(0))?;
        Ok(seq.map_or(0, to_u64))
    }

    fn alert_of(row: &rusqlite::Row<'_>) -> Result<Result<Alert, StoreError>, rusqlite::Error> {
        let id: i64 = row.get(0)?;
        let subject_kind: String = row.get(1)?;
        let subject_value: String = row.get(2)?;
        let detector: String = row.get(3)?;
        let samples: String = row.get(8)?;
        let Some(subject) = Subject::from_parts(&subject_kind, &subject_value) else {
            return Ok(Err(StoreError::Corrupt {
                what: "subject",
                id,
            }));
        };
        let Some(detector) = DetectorId::from_name(&detector) else {
            return Ok(Err(StoreError::Corrupt {
                what: "detector",
                id,
            }));
        };
        Ok(Ok(Alert {
            id: to_u64(id),
            subject,
            detector,
            time: to_u64(row.get(4)?),
            window: to_u64(row.get(5)?),
            count: to_u64(row.get(6)?),
            threshold: to_u64(row.get(7)?),
            samples: serde_json::from_str(&samples).unwrap_or_default(),
            text: row.get(9)?,
            last: to_u64(row.get(10)?),
            closed: row.get(11)?,
        }))
    }

    fn collect_alerts(
        &self,
        sql: &str,
        params: &[&dyn rusqlite::ToSql],
    ) -> Result<Vec<Alert>, StoreError> {
        let mut statement = self.conn.prepare_cached(sql)?;
        let rows = statement.query_map(params, Self::alert_of)?;
        let mut alerts = Vec::new();
        for row in rows {
            alerts.push(row??);
        }
        Ok(alerts)
    }

    const ALERT_COLUMNS: &'static str =
        "id, subject_kind, subject, detector, time, window, count, threshold, samples, text, last, closed";

    /// The open alerts, oldest first (to restore the alert book on start).
    pub fn open_alerts(&self) -> Result<Vec<Alert>, StoreError> {
        self.collect_alerts(
            &format!(
                "SELECT {} FROM alerts WHERE closed = 0 ORDER BY id",
                Self::ALERT_COLUMNS
            ),
            &[],
        )
    }

    /// How many alerts are open.
    pub fn open_alert_count(&self) -> Result<u64, StoreError> {
        let n: i64 =
            self.conn
                .query_row("SELECT count(*) FROM alerts WHERE closed = 0", [], |r| {
                    r.get(0)
                })?;
        Ok(to_u64(n))
    }

    /// One past the highest alert id stored (1 for an empty store).
    pub fn next_alert_id(&self) -> Result<u64, StoreError> {
        let max: Option<i64> = self
            .conn
            .query_row("SELECT max(id) FROM alerts", [], |r| r.get(0))?;
        Ok(max.map_or(1, |m| to_u64(m) + 1))
    }

    /// Alerts matching `query`, newest first (by `time`, then id).
    pub fn alerts(&self, query: &AlertQuery) -> Result<Vec<Alert>, StoreError> {
        let (subject_kind, subject) = match &query.subject {
            Some(SubjectFilter::Is(s)) => {
                let (k, v) = subject_parts(s);
                (Some(k), Some(v.to_owned()))
            }
            Some(SubjectFilter::Named(value)) => (None, Some(value.clone())),
            None => (None, None),
        };
        self.collect_alerts(
            &format!(
                "SELECT {} FROM alerts
                 WHERE (?1 IS NULL OR time >= ?1) AND (?2 IS NULL OR detector = ?2)
                   AND (?3 IS NULL OR (subject = ?3 AND (?4 IS NULL OR subject_kind = ?4)))
                 ORDER BY time DESC, id DESC LIMIT ?5",
                Self::ALERT_COLUMNS
            ),
            &[
                &query.since.map(to_i64),
                &query.detector.map(DetectorId::as_str),
                &subject,
                &subject_kind,
                &i64::try_from(query.limit).unwrap_or(i64::MAX),
            ],
        )
    }

    /// The newest event time stored.
    pub fn newest_event_time(&self) -> Result<Option<u64>, StoreError> {
        let max: Option<i64> = self
            .conn
            .query_row("SELECT max(time) FROM events", [], |r| r.get(0))?;
        Ok(max.map(to_u64))
    }

    /// Calls `each` with the line of every event whose time is at least `since` and that the
    /// detectors counted (not `late`), in event time order (ties in arrival order); returns
    /// how many.
    pub fn replay(&self, since: u64, mut each: impl FnMut(&str)) -> Result<u64, StoreError> {
        // Events that came too late to be counted live are not counted on restart either:
        // the rebuilt windows are the ones the live engine had.
        let mut statement = self
            .conn
            .prepare("SELECT raw FROM events WHERE time >= ?1 AND late = 0 ORDER BY time, id")?;
        let mut rows = statement.query(params![to_i64(since)])?;
        let mut n = 0;
        while let Some(row) = rows.next()? {
            let raw: rusqlite::types::ValueRef<'_> = row.get_ref(0)?;
            if let Ok(text) = raw.as_str() {
                each(text);
                n += 1;
            }
        }
        Ok(n)
    }

    fn collect_events(
        &self,
        sql: &str,
        params: &[&dyn rusqlite::ToSql],
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let mut statement = self.conn.prepare_cached(sql)?;
        let rows = statement.query_map(params, |row| {
            let flags: String = row.get(7)?;
            let marks: String = row.get(8)?;
            let called: String = row.get(3)?;
            Ok(StoredEvent {
                time: to_u64(row.get(0)?),
                kind: row.get(1)?,
                from: row.get(2)?,
                to: split_list(&called),
                spc: row.get(4)?,
                origid: row.get(5)?,
                verstat: row.get(6)?,
                flags: split_list(&flags),
                marks: split_list(&marks),
                ingress: row.get(9)?,
                late: row.get(10)?,
            })
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    const EVENT_COLUMNS: &'static str =
        "time, kind, caller, called, spc, origid, verstat, flags, marks, ingress, late";

    /// A calling number's newest events, newest first.
    pub fn events_by_caller(&self, tn: &str, limit: usize) -> Result<Vec<StoredEvent>, StoreError> {
        self.collect_events(
            &format!(
                "SELECT {} FROM events WHERE id IN
                   (SELECT event_id FROM event_caller WHERE caller = ?1 ORDER BY time DESC, event_id DESC LIMIT ?2)
                 ORDER BY time DESC, id DESC",
                Self::EVENT_COLUMNS
            ),
            &[&tn, &i64::try_from(limit).unwrap_or(i64::MAX)],
        )
    }

    /// A called number's newest events, newest first.
    pub fn events_by_called(&self, tn: &str, limit: usize) -> Result<Vec<StoredEvent>, StoreError> {
        self.collect_events(
            &format!(
                "SELECT {} FROM events WHERE id IN
                   (SELECT event_id FROM event_called WHERE called = ?1 ORDER BY event_id DESC LIMIT ?2)
                 ORDER BY time DESC, id DESC",
                Self::EVENT_COLUMNS
            ),
            &[&tn, &i64::try_from(limit).unwrap_or(i64::MAX)],
        )
    }

    /// A signing carrier's newest events, newest first.
    pub fn events_by_spc(&self, spc: &str, limit: usize) -> Result<Vec<StoredEvent>, StoreError> {
        self.collect_events(
            &format!(
                "SELECT {} FROM events WHERE spc = ?1 ORDER BY time DESC, id DESC LIMIT ?2",
                Self::EVENT_COLUMNS
            ),
            &[&spc, &i64::try_from(limit).unwrap_or(i64::MAX)],
        )
    }

    /// A call's events (its verification and any complaints naming it), oldest first.
    pub fn events_by_origid(
        &self,
        origid: &str,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        self.collect_events(
            &format!(
                "SELECT {} FROM events WHERE id IN (SELECT event_id FROM event_origid WHERE origid = ?1)
                 ORDER BY time, id LIMIT ?2",
                Self::EVENT_COLUMNS
            ),
            &[&origid, &i64::try_from(limit).unwrap_or(i64::MAX)],
        )
    }

    /// Events per minute by verdict for minutes starting in `[from, to]` (epoch seconds),
    /// oldest first; minutes without events are absent.
    pub fn minute_counts(&self, from: u64, to: u64) -> Result<Vec<MinuteCounts>, StoreError> {
        let mut statement = self.conn.prepare_cached(
            "SELECT (time / 60) * 60 AS m,
                    sum(kind = 'verification' AND verstat = 'TN-Validation-Passed'),
                    sum(kind = 'verification' AND verstat = 'TN-Validation-Failed'),
                    sum(kind = 'verification' AND (verstat IS NULL OR verstat NOT IN ('TN-Validation-Passed', 'TN-Validation-Failed'))),
                    sum(kind = 'complaint')
             FROM events WHERE time >= ?1 AND time < ?2 GROUP BY m ORDER BY m",
        )?;
        let rows = statement.query_map(
            params![to_i64(from), to_i64(to.saturating_add(60))],
            |row| {
                Ok(MinuteCounts {
                    minute: to_u64(row.get(0)?),
                    passed: to_u64(row.get(1)?),
                    failed: to_u64(row.get(2)?),
                    novalidation: to_u64(row.get(3)?),
                    complaints: to_u64(row.get(4)?),
                })
            },
        )?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    /// Records an allow-list change made through the API.
    pub fn set_allowed(&mut self, tn: &str, allowed: bool, now: u64) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT OR REPLACE INTO allow_changes (tn, allowed, time) VALUES (?1, ?2, ?3)",
            params![tn, allowed, to_i64(now)],
        )?;
        Ok(())
    }

    /// The allow-list changes made through the API: `(number, allowed)`.
    pub fn allow_changes(&self) -> Result<Vec<(String, bool)>, StoreError> {
        let mut statement = self
            .conn
            .prepare("SELECT tn, allowed FROM allow_changes ORDER BY time, tn")?;
        let rows = statement.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    /// Deletes at most `chunk` events older than `cutoff` (event time), oldest first, in one
    /// transaction; returns how many were deleted (fewer than `chunk`: none is left).
    pub fn prune_events(&mut self, cutoff: u64, chunk: usize) -> Result<u64, StoreError> {
        let cutoff = to_i64(cutoff);
        let chunk = i64::try_from(chunk.max(1)).unwrap_or(i64::MAX);
        let tx = self.conn.transaction()?;
        let doomed: Vec<(i64, i64, String, String, Option<String>)> = {
            let mut select = tx.prepare_cached(
                "SELECT id, time, caller, called, origid FROM events WHERE time < ?1 ORDER BY time LIMIT ?2",
            )?;
            let rows = select.query_map(params![cutoff, chunk], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })?;
            rows.collect::<Result<Vec<_>, _>>()?
        };
        {
            let mut caller = tx.prepare_cached(
                "DELETE FROM event_caller WHERE caller = ?1 AND time = ?2 AND event_id = ?3",
            )?;
            let mut called =
                tx.prepare_cached("DELETE FROM event_called WHERE called = ?1 AND event_id = ?2")?;
            let mut origid =
                tx.prepare_cached("DELETE FROM event_origid WHERE origid = ?1 AND event_id = ?2")?;
            let mut event = tx.prepare_cached("DELETE FROM events WHERE id = ?1")?;
            for (id, time, from, to, call) in &doomed {
                caller.execute(params![from, time, id])?;
                for to in split_list(to) {
                    called.execute(params![to, id])?;
                }
                if let Some(call) = call {
                    origid.execute(params![call, id])?;
                }
                event.execute(params![id])?;
            }
        }
        tx.commit()?;
        Ok(doomed.len() as u64)
    }

    /// Deletes the closed alerts whose last crossing is older than `cutoff`; returns how many.
    pub fn prune_alerts(&mut self, cutoff: u64) -> Result<u64, StoreError> {
        let n = self.conn.execute(
            "DELETE FROM alerts WHERE closed = 1 AND last < ?1",
            params![to_i64(cutoff)],
        )?;
        Ok(n as u64)
    }

    /// Deletes events older than `cutoff` (event time), `chunk` per transaction, and the
    /// closed alerts whose last crossing is older; returns the number of events deleted.
    pub fn prune(&mut self, cutoff: u64, chunk: usize) -> Result<u64, StoreError> {
        let chunk = chunk.max(1);
        let mut deleted = 0;
        loop {
            let n = self.prune_events(cutoff, chunk)?;
            deleted += n;
            if n < chunk as u64 {
                break;
            }
        }
        self.prune_alerts(cutoff)?;
        Ok(deleted)
    }

    /// The database's size in bytes (pages in use times page size, WAL excluded).
    pub fn size_bytes(&self) -> Result<u64, StoreError> {
        let pages: i64 = self.conn.query_row("PRAGMA page_count", [], |r| r.get(0))?;
        let size: i64 = self.conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
        Ok(to_u64(pages.saturating_mul(size)))
    }

    /// How many events are stored.
    pub fn event_count(&self) -> Result<u64, StoreError> {
        let n: i64 = self
            .conn
            .query_row("SELECT count(*) FROM events", [], |r| r.get(0))?;
        Ok(to_u64(n))
    }
}

/// The store, wherever its tables live: the SQLite databases of the data folder (the
/// default) or a PostgreSQL database shared by several instances ([`PgStore`]). Every
/// operation gives the same answers on both (per instance where [`crate::pgstore`] says so).
#[derive(Debug)]
pub enum Store {
    /// `monitor.db` and `alerts.db` in the data folder.
    Sqlite(SqliteStore),
    /// A PostgreSQL database.
    Postgres(Box<PgStore>),
}

/// Runs the same call on whichever backend `$store` is.
macro_rules! on_backend {
    ($store:expr, $s:ident => $call:expr) => {
        match $store {
            Store::Sqlite($s) => $call,
            Store::Postgres($s) => $call,
        }
    };
}

impl Store {
    /// Opens the SQLite store in `dir` for writing ([`SqliteStore::open`]).
    pub fn open(dir: &Path, durability: Durability) -> Result<Self, StoreError> {
        Ok(Self::Sqlite(SqliteStore::open(dir, durability)?))
    }

    /// A read-only connection to the SQLite store in `dir` ([`SqliteStore::open_reader`]).
    pub fn open_reader(dir: &Path) -> Result<Self, StoreError> {
        Ok(Self::Sqlite(SqliteStore::open_reader(dir)?))
    }

    /// Opens the store for writing: in PostgreSQL at `db` (migrating its schema; the
    /// instance's id is kept in `dir`, [`crate::pgstore::instance_id`]) when given, else
    /// SQLite in `dir`. Creates `dir` (0700) if it is missing. A PostgreSQL one must not be
    /// opened from an async task.
    pub fn open_in(
        dir: &Path,
        durability: Durability,
        db: Option<&PgUrl>,
    ) -> Result<Self, StoreError> {
        match db {
            None => Self::open(dir, durability),
            Some(url) => {
                create_folder(dir)?;
                let instance = crate::pgstore::instance_id(dir)?;
                Ok(Self::Postgres(Box::new(PgStore::open(
                    url,
                    &instance,
                    Some((dir, durability)),
                )?)))
            }
        }
    }

    /// A connection for queries: to PostgreSQL at `db` when given (its schema must be the one
    /// this program knows), else read-only to SQLite in `dir`.
    pub fn open_reader_in(dir: &Path, db: Option<&PgUrl>) -> Result<Self, StoreError> {
        match db {
            None => Self::open_reader(dir),
            Some(url) => {
                let instance = crate::pgstore::instance_id(dir)?;
                Ok(Self::Postgres(Box::new(PgStore::open_reader(
                    url, &instance,
                )?)))
            }
        }
    }

    /// Writes events and alert states in one transaction (all or nothing).
    pub fn write_batch(
        &mut self,
        events: &[EventRow<'_>],
        alerts: &[Alert],
    ) -> Result<(), StoreError> {
        on_backend!(self, s => s.write_batch(events, alerts))
    }

    /// Writes events from the journal with the journal's checkpoint in one transaction.
    pub fn write_indexed(
        &mut self,
        events: &[EventRow<'_>],
        checkpoint: u64,
    ) -> Result<(), StoreError> {
        on_backend!(self, s => s.write_indexed(events, checkpoint))
    }

    /// The sequence number of the last journal frame whose events are stored (0: none).
    pub fn checkpoint(&self) -> Result<u64, StoreError> {
        on_backend!(self, s => s.checkpoint())
    }

    /// The open alerts of this instance's book, oldest first.
    pub fn open_alerts(&self) -> Result<Vec<Alert>, StoreError> {
        on_backend!(self, s => s.open_alerts())
    }

    /// How many alerts are open.
    pub fn open_alert_count(&self) -> Result<u64, StoreError> {
        on_backend!(self, s => s.open_alert_count())
    }

    /// The first id this instance's alert book may give.
    pub fn next_alert_id(&self) -> Result<u64, StoreError> {
        on_backend!(self, s => s.next_alert_id())
    }

    /// Alerts matching `query`, newest first (by `time`, then id).
    pub fn alerts(&self, query: &AlertQuery) -> Result<Vec<Alert>, StoreError> {
        on_backend!(self, s => s.alerts(query))
    }

    /// The newest event time stored (by this instance).
    pub fn newest_event_time(&self) -> Result<Option<u64>, StoreError> {
        on_backend!(self, s => s.newest_event_time())
    }

    /// Calls `each` with every counted event line since `since`, in event-time order.
    pub fn replay(&self, since: u64, each: impl FnMut(&str)) -> Result<u64, StoreError> {
        on_backend!(self, s => s.replay(since, each))
    }

    /// A calling number's newest events, newest first.
    pub fn events_by_caller(&self, tn: &str, limit: usize) -> Result<Vec<StoredEvent>, StoreError> {
        on_backend!(self, s => s.events_by_caller(tn, limit))
    }

    /// A called number's newest events, newest first.
    pub fn events_by_called(&self, tn: &str, limit: usize) -> Result<Vec<StoredEvent>, StoreError> {
        on_backend!(self, s => s.events_by_called(tn, limit))
    }

    /// A signing carrier's newest events, newest first.
    pub fn events_by_spc(&self, spc: &str, limit: usize) -> Result<Vec<StoredEvent>, StoreError> {
        on_backend!(self, s => s.events_by_spc(spc, limit))
    }

    /// A call's events, oldest first.
    pub fn events_by_origid(
        &self,
        origid: &str,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        on_backend!(self, s => s.events_by_origid(origid, limit))
    }

    /// Events per minute by verdict for minutes starting in `[from, to]`, oldest first.
    pub fn minute_counts(&self, from: u64, to: u64) -> Result<Vec<MinuteCounts>, StoreError> {
        on_backend!(self, s => s.minute_counts(from, to))
    }

    /// Records an allow-list change made through the API.
    pub fn set_allowed(&mut self, tn: &str, allowed: bool, now: u64) -> Result<(), StoreError> {
        on_backend!(self, s => s.set_allowed(tn, allowed, now))
    }

    /// The allow-list changes made through the API: `(number, allowed)`.
    pub fn allow_changes(&self) -> Result<Vec<(String, bool)>, StoreError> {
        on_backend!(self, s => s.allow_changes())
    }

    /// Deletes at most `chunk` events older than `cutoff` in one transaction; how many.
    pub fn prune_events(&mut self, cutoff: u64, chunk: usize) -> Result<u64, StoreError> {
        on_backend!(self, s => s.prune_events(cutoff, chunk))
    }

    /// Deletes the closed alerts whose last crossing is older than `cutoff`; how many.
    pub fn prune_alerts(&mut self, cutoff: u64) -> Result<u64, StoreError> {
        on_backend!(self, s => s.prune_alerts(cutoff))
    }

    /// Deletes events older than `cutoff`, `chunk` per transaction, and the closed alerts
    /// whose last crossing is older; returns the number of events deleted.
    pub fn prune(&mut self, cutoff: u64, chunk: usize) -> Result<u64, StoreError> {
        let chunk = chunk.max(1);
        let mut deleted = 0;
        loop {
            let n = self.prune_events(cutoff, chunk)?;
            deleted += n;
            if n < chunk as u64 {
                break;
            }
        }
        self.prune_alerts(cutoff)?;
        Ok(deleted)
    }

    /// Sends alert changes kept locally while PostgreSQL was away
    /// ([`PgStore::flush_outbox`]); returns how many (always 0 on SQLite).
    pub fn flush_pending(&self) -> Result<u64, StoreError> {
        match self {
            Self::Sqlite(_) => Ok(0),
            Self::Postgres(s) => s.flush_outbox(),
        }
    }

    /// The store's size in bytes.
    pub fn size_bytes(&self) -> Result<u64, StoreError> {
        on_backend!(self, s => s.size_bytes())
    }

    /// How many events are stored.
    pub fn event_count(&self) -> Result<u64, StoreError> {
        on_backend!(self, s => s.event_count())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]
    use super::*;

    /// Runs `check` on a new SQLite store (writer, reader) and on a new PostgreSQL one (a
    /// cluster of its own), so both backends must give the same answers.
    fn on_both(check: impl Fn(&mut Store, &Store)) {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let mut store = Store::open(&data, Durability::Process).unwrap();
        let reader = Store::open_reader(&data).unwrap();
        check(&mut store, &reader);
        let cluster = pg_test::PgCluster::start().unwrap();
        let url = PgUrl::new(&cluster.url());
        let data = dir.path().join("pg-data");
        let mut store = Store::open_in(&data, Durability::Process, Some(&url)).unwrap();
        assert!(matches!(store, Store::Postgres(_)));
        let reader = Store::open_reader_in(&data, Some(&url)).unwrap();
        check(&mut store, &reader);
    }

    fn event(time: u64, from: &str, to: &[&str], origid: &str) -> Event {
        Event {
            kind: Kind::Verification,
            time,
            from: from.into(),
            to: to.iter().map(|s| (*s).to_owned()).collect(),
            verstat: Some("TN-Validation-Passed".into()),
            reasoncode: None,
            attest: Some("A".into()),
            spc: Some("709J".into()),
            origid: Some(origid.into()),
            x5u: None,
            flags: vec!["marketing".into()],
            ingress: Some("international".into()),
            firm: None,
        }
    }

    fn alert(id: u64, time: u64, closed: bool) -> Alert {
        Alert {
            id,
            subject: Subject::Caller("8613800000001".into()),
            detector: DetectorId::HighFrequency,
            time,
            window: 3600,
            count: 61,
            threshold: 60,
            samples: vec!["o1".into()],
            text: "8613800000001 placed 61 calls in 60 min (threshold 60)".into(),
            last: time,
            closed,
        }
    }

    #[test]
    fn a_batch_is_stored_indexed_and_read_back() {
        on_both(|store, reader| {
            let a = event(
                1000,
                "8613800000001",
                &["8613900000001", "8613900000002"],
                "o1",
            );
            let b = event(1060, "8613800000002", &["8613900000002"], "o2");
            store
                .write_batch(
                    &[
                        EventRow {
                            event: &a,
                            raw: "{\"a\":1}",
                            marks: &[DetectorId::OutOfArea],
                            late: false,
                        },
                        EventRow {
                            event: &b,
                            raw: "{\"b\":2}",
                            marks: &[],
                            late: true,
                        },
                    ],
                    &[alert(1, 1000, false), alert(2, 900, true)],
                )
                .unwrap();
            let by_caller = reader.events_by_caller("8613800000001", 10).unwrap();
            assert_eq!(by_caller.len(), 1);
            assert_eq!(by_caller[0].to, vec!["8613900000001", "8613900000002"]);
            assert_eq!(by_caller[0].marks, vec!["out-of-area"]);
            assert_eq!(by_caller[0].flags, vec!["marketing"]);
            let called = reader.events_by_called("8613900000002", 10).unwrap();
            assert_eq!(
                called.iter().map(|e| e.time).collect::<Vec<_>>(),
                vec![1060, 1000]
            );
            assert!(called[0].late);
            assert_eq!(reader.events_by_origid("o2", 10).unwrap().len(), 1);
            assert_eq!(reader.events_by_spc("709J", 1).unwrap()[0].time, 1060);
            assert_eq!(reader.newest_event_time().unwrap(), Some(1060));
            assert_eq!(reader.open_alerts().unwrap(), vec![alert(1, 1000, false)]);
            assert_eq!(reader.next_alert_id().unwrap(), 3);
            assert_eq!(reader.open_alert_count().unwrap(), 1);
            let mut lines = Vec::new();
            assert_eq!(
                reader.replay(1000, |l| lines.push(l.to_owned())).unwrap(),
                1
            );
            assert_eq!(lines, vec!["{\"a\":1}"], "the late event is not replayed");
            let minutes = reader.minute_counts(960, 1080).unwrap();
            assert_eq!(minutes.len(), 2);
            assert_eq!((minutes[0].minute, minutes[0].passed), (960, 1));
            assert_eq!(reader.minute_counts(0, 900).unwrap(), vec![]);
        });
    }

    #[test]
    fn every_kind_of_subject_is_read_back_and_a_bare_name_matches_any_kind() {
        on_both(|store, _| {
            let subjects = [
                Subject::Caller("2001".into()),
                Subject::Spc("2001".into()),
                Subject::Firm("91310000MA1FL1234X".into()),
                Subject::Ingress("trunk-7".into()),
            ];
            let alerts: Vec<Alert> = subjects
                .iter()
                .enumerate()
                .map(|(i, subject)| {
                    let mut a = alert(i as u64 + 1, 100 + i as u64, false);
                    a.subject = subject.clone();
                    a
                })
                .collect();
            store.write_batch(&[], &alerts).unwrap();
            let all = store
                .alerts(&AlertQuery {
                    limit: 10,
                    ..Default::default()
                })
                .unwrap();
            let mut read: Vec<Subject> = all.into_iter().map(|a| a.subject).collect();
            read.sort();
            let mut expected = subjects.to_vec();
            expected.sort();
            assert_eq!(read, expected);
            let named = store
                .alerts(&AlertQuery {
                    subject: Some(SubjectFilter::Named("2001".into())),
                    limit: 10,
                    ..Default::default()
                })
                .unwrap();
            assert_eq!(named.len(), 2, "the caller 2001 and the SPC 2001");
            let exact = store
                .alerts(&AlertQuery {
                    subject: Some(Subject::Spc("2001".into()).into()),
                    limit: 10,
                    ..Default::default()
                })
                .unwrap();
            assert_eq!(exact.len(), 1);
        });
    }

    #[test]
    fn alerts_are_filtered_newest_first_and_replaced_by_id() {
        on_both(|store, _| {
            store
                .write_batch(&[], &[alert(1, 100, false), alert(2, 300, false)])
                .unwrap();
            let mut spc = alert(3, 200, false);
            spc.subject = Subject::Spc("709J".into());
            spc.detector = DetectorId::OutOfArea;
            store.write_batch(&[], &[spc.clone()]).unwrap();
            let mut extended = alert(1, 100, true);
            extended.last = 150;
            store.write_batch(&[], &[extended.clone()]).unwrap();
            let all = store
                .alerts(&AlertQuery {
                    limit: 10,
                    ..Default::default()
                })
                .unwrap();
            assert_eq!(all.iter().map(|a| a.id).collect::<Vec<_>>(), vec![2, 3, 1]);
            assert_eq!(all[2], extended);
            let since = store
                .alerts(&AlertQuery {
                    since: Some(200),
                    limit: 10,
                    ..Default::default()
                })
                .unwrap();
            assert_eq!(since.len(), 2);
            let by_spc = store
                .alerts(&AlertQuery {
                    subject: Some(Subject::Spc("709J".into()).into()),
                    limit: 10,
                    ..Default::default()
                })
                .unwrap();
            assert_eq!(by_spc, vec![spc]);
            let by_detector = store
                .alerts(&AlertQuery {
                    detector: Some(DetectorId::HighFrequency),
                    limit: 1,
                    ..Default::default()
                })
                .unwrap();
            assert_eq!(
                by_detector.iter().map(|a| a.id).collect::<Vec<_>>(),
                vec![2]
            );
            assert_eq!(store.open_alert_count().unwrap(), 2);
        });
    }

    #[test]
    fn the_checkpoint_is_committed_with_the_indexed_events() {
        on_both(|store, reader| {
            assert_eq!(reader.checkpoint().unwrap(), 0);
            let e = event(1000, "8613800000001", &["8613900000001"], "o1");
            let row = EventRow {
                event: &e,
                raw: "{}",
                marks: &[],
                late: false,
            };
            store.write_indexed(&[row], 7).unwrap();
            assert_eq!(reader.checkpoint().unwrap(), 7);
            assert_eq!(reader.event_count().unwrap(), 1);
            store.write_indexed(&[], 9).unwrap();
            assert_eq!(store.checkpoint().unwrap(), 9);
            assert_eq!(reader.events_by_origid("o1", 10).unwrap().len(), 1);
        });
    }

    #[test]
    fn power_durability_opens_and_commits() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path(), Durability::Power).unwrap();
        store.write_batch(&[], &[alert(1, 100, false)]).unwrap();
        assert_eq!(store.open_alert_count().unwrap(), 1);
    }

    #[test]
    fn retention_deletes_old_events_and_old_closed_alerts_only() {
        on_both(|store, _| {
            let events: Vec<Event> = (0..25)
                .map(|i| event(1000 + i * 10, "861", &["862"], "o"))
                .collect();
            let rows: Vec<EventRow<'_>> = events
                .iter()
                .map(|e| EventRow {
                    event: e,
                    raw: "{}",
                    marks: &[],
                    late: false,
                })
                .collect();
            store
                .write_batch(
                    &rows,
                    &[
                        alert(1, 1000, true),
                        alert(2, 1000, false),
                        alert(3, 1200, true),
                    ],
                )
                .unwrap();
            // Events at 1000..=1240; cutoff 1100 deletes the ten before it, in chunks of 3.
            assert_eq!(store.prune(1100, 3).unwrap(), 10);
            assert_eq!(store.event_count().unwrap(), 15);
            assert_eq!(store.events_by_called("862", 100).unwrap().len(), 15);
            let ids: Vec<u64> = store
                .alerts(&AlertQuery {
                    limit: 10,
                    ..Default::default()
                })
                .unwrap()
                .iter()
                .map(|a| a.id)
                .collect();
            assert_eq!(ids, vec![3, 2]);
            assert!(store.size_bytes().unwrap() > 0);
        });
    }

    #[test]
    fn allow_changes_keep_the_latest_per_number() {
        on_both(|store, reader| {
            store.set_allowed("861", true, 10).unwrap();
            store.set_allowed("862", true, 11).unwrap();
            store.set_allowed("861", false, 12).unwrap();
            assert_eq!(
                store.allow_changes().unwrap(),
                vec![("862".to_owned(), true), ("861".to_owned(), false)]
            );
            assert_eq!(reader.allow_changes().unwrap().len(), 2);
        });
    }

    #[test]
    fn alerts_of_a_store_from_before_the_split_are_moved_to_the_control_database() {
        let dir = tempfile::tempdir().unwrap();
        {
            let conn = Connection::open(dir.path().join(DB_FILE)).unwrap();
            conn.execute_batch(
                "CREATE TABLE alerts (id INTEGER PRIMARY KEY, subject_kind TEXT NOT NULL, subject TEXT NOT NULL, detector TEXT NOT NULL, time INTEGER NOT NULL, window INTEGER NOT NULL, count INTEGER NOT NULL, threshold INTEGER NOT NULL, samples TEXT NOT NULL, text TEXT NOT NULL, last INTEGER NOT NULL, closed INTEGER NOT NULL);
                 CREATE TABLE allow_changes (tn TEXT PRIMARY KEY, allowed INTEGER NOT NULL, time INTEGER NOT NULL);
                 INSERT INTO alerts VALUES (7, 'caller', '8613800000001', 'high-frequency', 1000, 3600, 61, 60, '[\"o1\"]', 'text', 1000, 0);
                 INSERT INTO allow_changes VALUES ('861', 1, 5);",
            )
            .unwrap();
        }
        let store = Store::open(dir.path(), Durability::Process).unwrap();
        assert_eq!(store.open_alerts().unwrap().len(), 1);
        assert_eq!(store.next_alert_id().unwrap(), 8);
        assert_eq!(
            store.allow_changes().unwrap(),
            vec![("861".to_owned(), true)]
        );
        drop(store);
        // Opened again: nothing moved twice, nothing lost.
        let store = Store::open(dir.path(), Durability::Process).unwrap();
        assert_eq!(
            store.open_alerts().unwrap()[0].samples,
            vec!["o1".to_owned()]
        );
        assert!(dir.path().join(CONTROL_FILE).exists());
    }

    #[test]
    fn a_store_with_the_old_lookup_indexes_gets_the_lookup_tables() {
        let dir = tempfile::tempdir().unwrap();
        let e = event(1000, "8613800000001", &["8613900000001"], "o1");
        {
            let mut store = SqliteStore::open(dir.path(), Durability::Process).unwrap();
            let row = EventRow {
                event: &e,
                raw: "{}",
                marks: &[],
                late: false,
            };
            store.write_batch(&[row], &[]).unwrap();
            // What a store written before the lookup tables has: indexes on `events`.
            store
                .conn
                .execute_batch(
                    "DELETE FROM event_caller; DELETE FROM event_origid;
                     CREATE INDEX events_caller ON events(caller, time);
                     CREATE INDEX events_origid ON events(origid) WHERE origid IS NOT NULL;",
                )
                .unwrap();
            assert!(store
                .events_by_caller("8613800000001", 10)
                .unwrap()
                .is_empty());
        }
        let store = SqliteStore::open(dir.path(), Durability::Process).unwrap();
        assert_eq!(
            store.events_by_caller("8613800000001", 10).unwrap().len(),
            1
        );
        assert_eq!(store.events_by_origid("o1", 10).unwrap().len(), 1);
        let left: i64 = store
            .conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name IN ('events_caller', 'events_origid')",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(left, 0);
    }

    #[test]
    fn the_data_folder_is_created_private() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("a/b");
        Store::open(&data, Durability::Process).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&data).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o700);
        }
    }
}
