//! The monitor's store on PostgreSQL (`shaken monitor serve --db postgres://...`): the same
//! operations and answers as the SQLite store ([`crate::store::SqliteStore`]), in a database
//! that several monitor instances (one consumer group) share. The journal stays local, in the
//! data folder: ingest never waits on PostgreSQL for events, only the indexer does.
//!
//! Everything lives in the PostgreSQL schema `monitor`, so the database can also hold the
//! signers' registry and the opt-out service's tables. Migrations are numbered
//! ([`MIGRATIONS`]); `monitor.schema_version` holds the version applied, and a database with
//! a newer one is refused ([`StoreError::PgSchemaTooNew`]). Version 1:
//!
//! ```sql
//! monitor.events(id BIGSERIAL PRIMARY KEY, instance TEXT, time BIGINT, kind TEXT, caller TEXT,
//!                called TEXT[], spc TEXT, origid TEXT, verstat TEXT, flags TEXT, marks TEXT,
//!                ingress TEXT, late BOOLEAN, raw TEXT)   -- indexed by caller, origid, SPC,
//!                                                        -- time, instance+time
//! monitor.event_called(called TEXT, event_id BIGINT, PRIMARY KEY (called, event_id))
//! monitor.alerts(id BIGINT PRIMARY KEY DEFAULT nextval('monitor.alert_ids'), instance TEXT,
//!                local_id BIGINT, subject_kind TEXT, subject TEXT, detector TEXT, time BIGINT,
//!                window_seconds BIGINT, count BIGINT, threshold BIGINT, samples TEXT,
//!                text TEXT, last BIGINT, closed BOOLEAN, UNIQUE (instance, local_id))
//! monitor.allow_changes(tn TEXT PRIMARY KEY, allowed BOOLEAN, time BIGINT)
//! monitor.journal_checkpoint(instance TEXT PRIMARY KEY, seq BIGINT)
//! ```
//!
//! **Instances.** Each instance has an id ([`instance_id`]: a random UUID kept in the data
//! folder's [`INSTANCE_FILE`], so it follows the local journal it names). What belongs to one
//! instance is keyed by it: its journal checkpoint, the events it indexed (the instance's
//! [`PgStore::replay`], [`PgStore::newest_event_time`] and [`PgStore::minute_counts`] rebuild
//! its own detectors' windows, as each instance's SQLite would), and its alert book's
//! numbering (`local_id`: [`PgStore::open_alerts`] and [`PgStore::next_alert_id`]). An
//! alert's id in the API is the database's, drawn from the sequence `monitor.alert_ids`, so
//! two instances' alerts never collide; the lookups and [`PgStore::alerts`] see every
//! instance's rows. Allow-list changes are shared.
//!
//! **Writes.** The indexer's batches are sent with binary `COPY` in one transaction with the
//! instance's checkpoint ([`PgStore::write_indexed`]): the batch's ids are drawn from the
//! events' sequence first (one round trip), so that `event_called`, the called numbers'
//! lookup table (a B-tree read newest first, as SQLite's), is sent by `COPY` too. A NUL character, which PostgreSQL's
//! `TEXT` cannot hold (SQLite can), is stored as U+FFFD so that one odd line never stops the
//! indexer.
//!
//! **Outages.** A failed statement drops the connection when it is broken; the next call
//! connects again (within the URL's `connect_timeout`, [`rest::pg::CONNECT_TIMEOUT`] by
//! default). Every error is a [`StoreError::Postgres`] naming the URL without its password.

use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use postgres::binary_copy::BinaryCopyInWriter;
use postgres::types::{ToSql, Type};
use postgres::{Client, GenericClient, Row};
use rest::pg::PgUrl;

use crate::alerts::Alert;
use crate::config::Durability;
use crate::detect::{DetectorId, Subject};
use crate::event::Kind;
use crate::store::{AlertQuery, EventRow, MinuteCounts, StoreError, StoredEvent, SubjectFilter};

/// The file in the data folder holding the instance's id.
pub const INSTANCE_FILE: &str = "instance-id";

/// The schema migrations, in order: `MIGRATIONS[0]` is version 1.
pub const MIGRATIONS: &[&str] = &[r#"
CREATE TABLE monitor.events (
    id BIGSERIAL PRIMARY KEY,
    instance TEXT NOT NULL,
    time BIGINT NOT NULL,
    kind TEXT NOT NULL,
    caller TEXT COLLATE "C" NOT NULL,
    called TEXT[] NOT NULL,
    spc TEXT COLLATE "C",
    origid TEXT COLLATE "C",
    verstat TEXT,
    flags TEXT NOT NULL,
    marks TEXT NOT NULL,
    ingress TEXT,
    late BOOLEAN NOT NULL,
    raw TEXT NOT NULL
);
CREATE INDEX events_time ON monitor.events (time);
CREATE INDEX events_instance_time ON monitor.events (instance, time, id);
CREATE INDEX events_caller ON monitor.events (caller, time, id);
CREATE TABLE monitor.event_called (
    called TEXT COLLATE "C" NOT NULL,
    event_id BIGINT NOT NULL,
    PRIMARY KEY (called, event_id)
);
CREATE INDEX events_origid ON monitor.events (origid) WHERE origid IS NOT NULL;
CREATE INDEX events_spc ON monitor.events (spc, time, id) WHERE spc IS NOT NULL;
CREATE SEQUENCE monitor.alert_ids;
CREATE TABLE monitor.alerts (
    id BIGINT PRIMARY KEY DEFAULT nextval('monitor.alert_ids'),
    instance TEXT NOT NULL,
    local_id BIGINT NOT NULL,
    subject_kind TEXT NOT NULL,
    subject TEXT COLLATE "C" NOT NULL,
    detector TEXT NOT NULL,
    time BIGINT NOT NULL,
    window_seconds BIGINT NOT NULL,
    count BIGINT NOT NULL,
    threshold BIGINT NOT NULL,
    samples TEXT NOT NULL,
    text TEXT NOT NULL,
    last BIGINT NOT NULL,
    closed BOOLEAN NOT NULL,
    UNIQUE (instance, local_id)
);
CREATE INDEX alerts_time ON monitor.alerts (time);
CREATE INDEX alerts_subject ON monitor.alerts (subject, time);
CREATE INDEX alerts_open ON monitor.alerts (instance) WHERE NOT closed;
CREATE TABLE monitor.allow_changes (
    tn TEXT PRIMARY KEY,
    allowed BOOLEAN NOT NULL,
    time BIGINT NOT NULL
);
CREATE TABLE monitor.journal_checkpoint (
    instance TEXT PRIMARY KEY,
    seq BIGINT NOT NULL
);
"#];

/// The newest schema this program knows.
pub const PG_SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Serializes concurrent migrations (an arbitrary key of `pg_advisory_xact_lock`, not the
/// registry's).
const MIGRATION_LOCK: i64 = 0x004d_4f4e_4954_4f52;

/// The instance id kept in `dir` ([`INSTANCE_FILE`]), drawn (a random UUID) and written
/// (0600) on first use. An empty or unreadable file is an error, not a new id: a new id would
/// orphan the journal checkpoint of the old one.
pub fn instance_id(dir: &Path) -> Result<String, StoreError> {
    let path = dir.join(INSTANCE_FILE);
    let folder = |e: std::io::Error| StoreError::Folder {
        path: path.clone(),
        detail: e.to_string(),
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let id = text.trim();
            if id.is_empty() || id.len() > 200 || id.chars().any(char::is_control) {
                return Err(StoreError::Folder {
                    path: path.clone(),
                    detail: "the instance id is empty or malformed".into(),
                });
            }
            Ok(id.to_owned())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            crate::store::create_folder(dir)?;
            let id = uuid::Uuid::new_v4().to_string();
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                options.mode(0o600);
            }
            let mut file = options.open(&path).map_err(folder)?;
            std::io::Write::write_all(&mut file, format!("{id}\n").as_bytes()).map_err(folder)?;
            file.sync_all().map_err(folder)?;
            Ok(id)
        }
        Err(e) => Err(folder(e)),
    }
}

fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn to_u64(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

fn limit(value: usize) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// `text` as PostgreSQL's `TEXT` can hold it (NUL as U+FFFD).
fn clean(text: &str) -> std::borrow::Cow<'_, str> {
    if text.contains('\0') {
        std::borrow::Cow::Owned(text.replace('\0', "\u{fffd}"))
    } else {
        std::borrow::Cow::Borrowed(text)
    }
}

fn optional(text: &Option<String>) -> Option<std::borrow::Cow<'_, str>> {
    text.as_deref().map(clean)
}

fn split_list(text: &str) -> Vec<String> {
    text.split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The monitor's store in a PostgreSQL database, for one instance.
pub struct PgStore {
    url: PgUrl,
    instance: String,
    client: Mutex<Option<Client>>,
    outbox: Option<Mutex<Outbox>>,
}

/// The file in the data folder holding alert changes committed while PostgreSQL was away.
pub const OUTBOX_FILE: &str = "alerts-outbox.db";

/// Alert changes that could not reach PostgreSQL, kept in a local SQLite file until they do
/// ([`PgStore::write_batch`], [`PgStore::flush_outbox`]): ingest commits an alert before it
/// acknowledges the events that raised it, and must not wait for PostgreSQL to do so.
struct Outbox {
    conn: rusqlite::Connection,
}

impl Outbox {
    fn open(dir: &Path, durability: Durability) -> Result<Self, StoreError> {
        let conn = rusqlite::Connection::open(dir.join(OUTBOX_FILE))?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(
            None,
            "synchronous",
            match durability {
                Durability::Process => "NORMAL",
                Durability::Power => "FULL",
            },
        )?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT, alert TEXT NOT NULL)",
        )?;
        Ok(Self { conn })
    }

    fn pending(&self) -> Result<u64, StoreError> {
        let n: i64 = self
            .conn
            .query_row("SELECT count(*) FROM outbox", [], |r| r.get(0))?;
        Ok(to_u64(n))
    }

    fn append(&mut self, alerts: &[Alert]) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        {
            let mut insert = tx.prepare_cached("INSERT INTO outbox (alert) VALUES (?1)")?;
            for alert in alerts {
                let json = serde_json::to_string(alert).unwrap_or_default();
                insert.execute([json])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// The kept changes in the order they were made, and the last one's sequence number.
    /// A row that no longer reads as an alert is left out (and deleted with the rest).
    fn read(&self) -> Result<(Vec<Alert>, i64), StoreError> {
        let mut statement = self
            .conn
            .prepare("SELECT seq, alert FROM outbox ORDER BY seq")?;
        let rows =
            statement.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))?;
        let mut alerts = Vec::new();
        let mut last = 0;
        for row in rows {
            let (seq, json) = row?;
            last = seq;
            match serde_json::from_str(&json) {
                Ok(alert) => alerts.push(alert),
                Err(_) => tracing::warn!(seq, "an unreadable alert change in the outbox; skipped"),
            }
        }
        Ok((alerts, last))
    }

    fn remove_upto(&mut self, last: i64) -> Result<(), StoreError> {
        self.conn
            .execute("DELETE FROM outbox WHERE seq <= ?1", [last])?;
        Ok(())
    }
}

impl Drop for PgStore {
    /// Closes the connection on a thread of its own when dropped on an async task (the
    /// service's state is dropped there at shutdown): the client's close blocks on its own
    /// runtime, which must not run inside another.
    fn drop(&mut self) {
        let client = self
            .client
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(client) = client {
            if tokio::runtime::Handle::try_current().is_ok() {
                let _ = std::thread::spawn(move || drop(client)).join();
            }
        }
    }
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("url", &self.url)
            .field("instance", &self.instance)
            .finish_non_exhaustive()
    }
}

const EVENT_COLUMNS: &str =
    "time, kind, caller, called, spc, origid, verstat, flags, marks, ingress, late";
const ALERT_COLUMNS: &str = "id, subject_kind, subject, detector, time, window_seconds, count, threshold, samples, text, last, closed";
const LOCAL_ALERT_COLUMNS: &str = "local_id, subject_kind, subject, detector, time, window_seconds, count, threshold, samples, text, last, closed";

impl PgStore {
    /// Connects to `url` as instance `instance` and migrates the schema to
    /// [`PG_SCHEMA_VERSION`] (refusing a newer one). Must not be called from an async task
    /// (the client runs its own small runtime).
    ///
    /// With `outbox` (the data folder and its durability), alert changes that cannot reach
    /// PostgreSQL are kept there ([`OUTBOX_FILE`]) until they can; those kept before are sent
    /// now, before anything is read.
    pub fn open(
        url: &PgUrl,
        instance: &str,
        outbox: Option<(&Path, Durability)>,
    ) -> Result<Self, StoreError> {
        let outbox = match outbox {
            Some((dir, durability)) => Some(Mutex::new(Outbox::open(dir, durability)?)),
            None => None,
        };
        let store = Self {
            url: url.clone(),
            instance: instance.to_owned(),
            client: Mutex::new(None),
            outbox,
        };
        if let Err(found) = store.with(migrate)? {
            return Err(too_new_or_old(url, found));
        }
        store.flush_outbox()?;
        Ok(store)
    }

    /// Connects to `url` as instance `instance` without changing the schema (the writer
    /// migrated it); a missing, older or newer schema is refused.
    pub fn open_reader(url: &PgUrl, instance: &str) -> Result<Self, StoreError> {
        let store = Self {
            url: url.clone(),
            instance: instance.to_owned(),
            client: Mutex::new(None),
            outbox: None,
        };
        let version = store.with(schema_version)?;
        if version != PG_SCHEMA_VERSION {
            return Err(too_new_or_old(url, version));
        }
        Ok(store)
    }

    /// The URL (its `Display` hides the password).
    pub fn url(&self) -> &PgUrl {
        &self.url
    }

    /// This instance's id.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    fn error(&self, error: &postgres::Error) -> StoreError {
        StoreError::Postgres {
            url: self.url.redacted(),
            detail: rest::pg::error_detail(error),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Option<Client>> {
        self.client
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Runs `work` on the connection (connecting first when there is none); a connection
    /// found closed after an error is dropped, so the next call connects again. Reads
    /// ([`Self::read`]) are tried once more on a new connection when an old one turns out
    /// dead (the server restarted); writes are not, since a lost answer to `COMMIT` leaves
    /// unknown whether they were stored.
    fn with<T>(
        &self,
        work: impl FnOnce(&mut Client) -> Result<T, postgres::Error>,
    ) -> Result<T, StoreError> {
        self.run(work).map_err(|(_, e)| e)
    }

    fn read<T>(
        &self,
        work: impl Fn(&mut Client) -> Result<T, postgres::Error>,
    ) -> Result<T, StoreError> {
        match self.run(&work) {
            Ok(value) => Ok(value),
            Err((true, _)) => self.run(&work).map_err(|(_, e)| e),
            Err((false, e)) => Err(e),
        }
    }

    /// `Err((true, _))`: a connection made before this call was found dead.
    fn run<T>(
        &self,
        work: impl FnOnce(&mut Client) -> Result<T, postgres::Error>,
    ) -> Result<T, (bool, StoreError)> {
        let mut slot = self.lock();
        if slot.as_ref().is_some_and(Client::is_closed) {
            *slot = None;
        }
        let reused = slot.is_some();
        let client = match slot.as_mut() {
            Some(client) => client,
            None => {
                let client = rest::pg::connect(&self.url).map_err(|e| (false, self.error(&e)))?;
                slot.insert(client)
            }
        };
        match work(client) {
            Ok(value) => Ok(value),
            Err(error) => {
                let dead = client.is_closed() || error.is_closed();
                if dead {
                    *slot = None;
                }
                Err((dead && reused, self.error(&error)))
            }
        }
    }

    fn outbox(&self) -> Option<MutexGuard<'_, Outbox>> {
        self.outbox.as_ref().map(|outbox| {
            outbox
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        })
    }

    /// Writes events and alert states in one transaction, as
    /// [`crate::store::SqliteStore::write_batch`]. With an outbox, alert changes that cannot
    /// reach PostgreSQL (or that must wait behind changes already kept there, so that an
    /// alert's versions reach PostgreSQL in order) are kept in it, and this returns `Ok`:
    /// they are committed locally, and [`Self::flush_outbox`] sends them later. Events are
    /// never kept there (the journal holds them).
    pub fn write_batch(&self, events: &[EventRow<'_>], alerts: &[Alert]) -> Result<(), StoreError> {
        let instance = self.instance.clone();
        let write = |events: &[EventRow<'_>], alerts: &[Alert]| {
            self.with(|client| {
                let mut tx = client.transaction()?;
                copy_events(&mut tx, &instance, events)?;
                upsert_alerts(&mut tx, &instance, alerts)?;
                tx.commit()
            })
        };
        let Some(mut outbox) = self.outbox() else {
            return write(events, alerts);
        };
        if alerts.is_empty() {
            return write(events, alerts);
        }
        if outbox.pending()? == 0 {
            match write(events, alerts) {
                Ok(()) => return Ok(()),
                Err(error) if events.is_empty() => {
                    tracing::warn!(%error, alerts = alerts.len(), "alert changes kept in the local outbox until PostgreSQL is back");
                }
                Err(error) => return Err(error),
            }
        } else if !events.is_empty() {
            write(events, &[])?;
        }
        outbox.append(alerts)
    }

    /// Sends the alert changes kept in the outbox to PostgreSQL in one transaction, in the
    /// order they were made, then removes them; returns how many. Only one of an instance's
    /// connections may call this once the service runs (the indexer's), so that a newer
    /// version written directly never lands before an older one sent from here.
    pub fn flush_outbox(&self) -> Result<u64, StoreError> {
        let Some(mut outbox) = self.outbox() else {
            return Ok(0);
        };
        if outbox.pending()? == 0 {
            return Ok(0);
        }
        let (alerts, last) = outbox.read()?;
        let instance = self.instance.clone();
        self.with(|client| {
            let mut tx = client.transaction()?;
            // One statement may not touch a row twice; each version in turn is fine.
            for alert in &alerts {
                upsert_alerts(&mut tx, &instance, std::slice::from_ref(alert))?;
            }
            tx.commit()
        })?;
        outbox.remove_upto(last)?;
        tracing::info!(
            alerts = alerts.len(),
            "alert changes sent from the local outbox to PostgreSQL"
        );
        Ok(alerts.len() as u64)
    }

    /// Writes events from the journal and this instance's checkpoint in one transaction,
    /// as [`crate::store::SqliteStore::write_indexed`].
    pub fn write_indexed(
        &self,
        events: &[EventRow<'_>],
        checkpoint: u64,
    ) -> Result<(), StoreError> {
        let instance = self.instance.clone();
        self.with(|client| {
            let mut tx = client.transaction()?;
            copy_events(&mut tx, &instance, events)?;
            tx.execute(
                "INSERT INTO monitor.journal_checkpoint (instance, seq) VALUES ($1, $2)
                 ON CONFLICT (instance) DO UPDATE SET seq = excluded.seq",
                &[&instance, &to_i64(checkpoint)],
            )?;
            tx.commit()
        })
    }

    /// This instance's journal checkpoint (0: none).
    pub fn checkpoint(&self) -> Result<u64, StoreError> {
        let seq: Option<i64> = self.read(|c| {
            c.query_opt(
                "SELECT seq FROM monitor.journal_checkpoint WHERE instance = $1",
                &[&self.instance],
            )?
            .map(|row| row.try_get(0))
            .transpose()
        })?;
        Ok(seq.map_or(0, to_u64))
    }

    fn collect_alerts(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Alert>, StoreError> {
        let rows = self.read(|c| c.query(sql, params))?;
        rows.iter()
            .map(|row| alert_of(row).map_err(|e| self.error(&e))?)
            .collect()
    }

    /// This instance's open alerts, oldest first, with its alert book's ids (to restore the
    /// book on start).
    pub fn open_alerts(&self) -> Result<Vec<Alert>, StoreError> {
        self.collect_alerts(
            &format!(
                "SELECT {LOCAL_ALERT_COLUMNS} FROM monitor.alerts
                 WHERE instance = $1 AND NOT closed ORDER BY local_id"
            ),
            &[&self.instance],
        )
    }

    /// How many alerts are open (every instance's).
    pub fn open_alert_count(&self) -> Result<u64, StoreError> {
        self.count("SELECT count(*) FROM monitor.alerts WHERE NOT closed")
    }

    /// One past the highest id this instance's alert book gave (1 for none).
    pub fn next_alert_id(&self) -> Result<u64, StoreError> {
        let max: Option<i64> = self.read(|c| {
            c.query_one(
                "SELECT max(local_id) FROM monitor.alerts WHERE instance = $1",
                &[&self.instance],
            )?
            .try_get(0)
        })?;
        Ok(max.map_or(1, |m| to_u64(m) + 1))
    }

    /// Every instance's alerts matching `query`, newest first (by `time`, then id).
    pub fn alerts(&self, query: &AlertQuery) -> Result<Vec<Alert>, StoreError> {
        let (subject_kind, subject) = match &query.subject {
            Some(SubjectFilter::Is(s)) => (Some(s.kind()), Some(s.value().to_owned())),
            Some(SubjectFilter::Named(value)) => (None, Some(value.clone())),
            None => (None, None),
        };
        let since = query.since.map(to_i64);
        let detector = query.detector.map(DetectorId::as_str);
        self.collect_alerts(
            &format!(
                "SELECT {ALERT_COLUMNS} FROM monitor.alerts
                 WHERE ($1::BIGINT IS NULL OR time >= $1) AND ($2::TEXT IS NULL OR detector = $2)
                   AND ($3::TEXT IS NULL OR (subject = $3 AND ($4::TEXT IS NULL OR subject_kind = $4)))
                 ORDER BY time DESC, id DESC LIMIT $5"
            ),
            &[
                &since,
                &detector,
                &subject,
                &subject_kind,
                &limit(query.limit),
            ],
        )
    }

    /// The newest time of the events this instance indexed.
    pub fn newest_event_time(&self) -> Result<Option<u64>, StoreError> {
        let max: Option<i64> = self.read(|c| {
            c.query_one(
                "SELECT max(time) FROM monitor.events WHERE instance = $1",
                &[&self.instance],
            )?
            .try_get(0)
        })?;
        Ok(max.map(to_u64))
    }

    /// Calls `each` with the line of every event this instance indexed whose time is at least
    /// `since` and that the detectors counted, in event-time order (ties in arrival order);
    /// returns how many. Rows are streamed, not collected.
    pub fn replay(&self, since: u64, mut each: impl FnMut(&str)) -> Result<u64, StoreError> {
        let instance = self.instance.clone();
        self.with(|c| {
            let mut tx = c.transaction()?;
            let portal = tx.bind(
                "SELECT raw FROM monitor.events WHERE instance = $1 AND time >= $2 AND NOT late
                 ORDER BY time, id",
                &[&instance, &to_i64(since)],
            )?;
            let mut n = 0;
            loop {
                let rows = tx.query_portal(&portal, 10_000)?;
                if rows.is_empty() {
                    break;
                }
                for row in &rows {
                    let raw: &str = row.try_get(0)?;
                    each(raw);
                    n += 1;
                }
            }
            tx.commit()?;
            Ok(n)
        })
    }

    fn collect_events(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let rows = self.read(|c| c.query(sql, params))?;
        rows.iter()
            .map(|row| event_of(row).map_err(|e| self.error(&e)))
            .collect()
    }

    /// A calling number's newest events (every instance's), newest first.
    pub fn events_by_caller(&self, tn: &str, n: usize) -> Result<Vec<StoredEvent>, StoreError> {
        self.collect_events(
            &format!(
                "SELECT {EVENT_COLUMNS} FROM monitor.events WHERE caller = $1
                 ORDER BY time DESC, id DESC LIMIT $2"
            ),
            &[&tn, &limit(n)],
        )
    }

    /// A called number's newest events, newest first (the newest stored first chosen, as in
    /// SQLite).
    pub fn events_by_called(&self, tn: &str, n: usize) -> Result<Vec<StoredEvent>, StoreError> {
        self.collect_events(
            &format!(
                "SELECT {EVENT_COLUMNS} FROM monitor.events WHERE id IN
                   (SELECT event_id FROM monitor.event_called WHERE called = $1
                    ORDER BY event_id DESC LIMIT $2)
                 ORDER BY time DESC, id DESC"
            ),
            &[&tn, &limit(n)],
        )
    }

    /// A signing carrier's newest events, newest first.
    pub fn events_by_spc(&self, spc: &str, n: usize) -> Result<Vec<StoredEvent>, StoreError> {
        self.collect_events(
            &format!(
                "SELECT {EVENT_COLUMNS} FROM monitor.events WHERE spc = $1
                 ORDER BY time DESC, id DESC LIMIT $2"
            ),
            &[&spc, &limit(n)],
        )
    }

    /// A call's events, oldest first.
    pub fn events_by_origid(&self, origid: &str, n: usize) -> Result<Vec<StoredEvent>, StoreError> {
        self.collect_events(
            &format!(
                "SELECT {EVENT_COLUMNS} FROM monitor.events WHERE origid = $1
                 ORDER BY time, id LIMIT $2"
            ),
            &[&origid, &limit(n)],
        )
    }

    /// This instance's events per minute by verdict for minutes starting in `[from, to]`,
    /// oldest first; minutes without events are absent.
    pub fn minute_counts(&self, from: u64, to: u64) -> Result<Vec<MinuteCounts>, StoreError> {
        let rows = self.read(|c| {
            c.query(
                "SELECT (time / 60) * 60 AS m,
                    count(*) FILTER (WHERE kind = 'verification' AND verstat = 'TN-Validation-Passed'),
                    count(*) FILTER (WHERE kind = 'verification' AND verstat = 'TN-Validation-Failed'),
                    count(*) FILTER (WHERE kind = 'verification' AND (verstat IS NULL
                        OR verstat NOT IN ('TN-Validation-Passed', 'TN-Validation-Failed'))),
                    count(*) FILTER (WHERE kind = 'complaint')
                 FROM monitor.events WHERE instance = $1 AND time >= $2 AND time < $3
                 GROUP BY m ORDER BY m",
                &[
                    &self.instance,
                    &to_i64(from),
                    &to_i64(to.saturating_add(60)),
                ],
            )
        })?;
        rows.iter()
            .map(|row| {
                Ok(MinuteCounts {
                    minute: to_u64(row.try_get(0)?),
                    passed: to_u64(row.try_get(1)?),
                    failed: to_u64(row.try_get(2)?),
                    novalidation: to_u64(row.try_get(3)?),
                    complaints: to_u64(row.try_get(4)?),
                })
            })
            .collect::<Result<Vec<_>, postgres::Error>>()
            .map_err(|e| self.error(&e))
    }

    /// Records an allow-list change made through the API (shared by every instance).
    pub fn set_allowed(&self, tn: &str, allowed: bool, now: u64) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute(
                "INSERT INTO monitor.allow_changes (tn, allowed, time) VALUES ($1, $2, $3)
                 ON CONFLICT (tn) DO UPDATE SET allowed = excluded.allowed, time = excluded.time",
                &[&clean(tn).as_ref(), &allowed, &to_i64(now)],
            )
        })?;
        Ok(())
    }

    /// The allow-list changes made through the API: `(number, allowed)`.
    pub fn allow_changes(&self) -> Result<Vec<(String, bool)>, StoreError> {
        let rows = self.read(|c| {
            c.query(
                "SELECT tn, allowed FROM monitor.allow_changes ORDER BY time, tn",
                &[],
            )
        })?;
        rows.iter()
            .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
            .collect::<Result<Vec<_>, postgres::Error>>()
            .map_err(|e| self.error(&e))
    }

    /// Deletes at most `chunk` events older than `cutoff` (every instance's), oldest first, in
    /// one transaction; returns how many.
    pub fn prune_events(&self, cutoff: u64, chunk: usize) -> Result<u64, StoreError> {
        self.with(|c| {
            // The called numbers' rows go in the same statement (a data-modifying CTE runs
            // whether or not it is read); the count is the events'.
            c.execute(
                "WITH doomed AS (SELECT id, called FROM monitor.events WHERE time < $1
                                 ORDER BY time LIMIT $2),
                      gone AS (DELETE FROM monitor.event_called c
                               USING (SELECT unnest(called) AS called, id FROM doomed) d
                               WHERE c.called = d.called AND c.event_id = d.id)
                 DELETE FROM monitor.events WHERE id IN (SELECT id FROM doomed)",
                &[&to_i64(cutoff), &limit(chunk.max(1))],
            )
        })
    }

    /// Deletes the closed alerts whose last crossing is older than `cutoff`; returns how many.
    pub fn prune_alerts(&self, cutoff: u64) -> Result<u64, StoreError> {
        self.with(|c| {
            c.execute(
                "DELETE FROM monitor.alerts WHERE closed AND last < $1",
                &[&to_i64(cutoff)],
            )
        })
    }

    /// The monitor's tables' size in bytes, indexes included.
    pub fn size_bytes(&self) -> Result<u64, StoreError> {
        self.count(
            "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::BIGINT FROM pg_class c
             JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = 'monitor' AND c.relkind = 'r'",
        )
    }

    /// How many events are stored (every instance's).
    pub fn event_count(&self) -> Result<u64, StoreError> {
        self.count("SELECT count(*) FROM monitor.events")
    }

    fn count(&self, sql: &str) -> Result<u64, StoreError> {
        let n: i64 = self.read(|c| c.query_one(sql, &[])?.try_get(0))?;
        Ok(to_u64(n))
    }
}

fn too_new_or_old(url: &PgUrl, found: i64) -> StoreError {
    if found > PG_SCHEMA_VERSION {
        StoreError::PgSchemaTooNew {
            url: url.redacted(),
            found,
            supported: PG_SCHEMA_VERSION,
        }
    } else {
        StoreError::PgSchemaTooOld {
            url: url.redacted(),
            found,
            supported: PG_SCHEMA_VERSION,
        }
    }
}

/// The schema version applied (0: none).
fn schema_version(client: &mut impl GenericClient) -> Result<i64, postgres::Error> {
    let exists: bool = client
        .query_one(
            "SELECT to_regclass('monitor.schema_version') IS NOT NULL",
            &[],
        )?
        .try_get(0)?;
    if !exists {
        return Ok(0);
    }
    client
        .query_one(
            "SELECT coalesce(max(version), 0)::BIGINT FROM monitor.schema_version",
            &[],
        )?
        .try_get(0)
}

/// Migrates to [`PG_SCHEMA_VERSION`] under an advisory lock; `Ok(Err(found))` when the
/// database's schema is newer.
fn migrate(client: &mut Client) -> Result<Result<(), i64>, postgres::Error> {
    let mut tx = client.transaction()?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
    tx.batch_execute(
        "CREATE SCHEMA IF NOT EXISTS monitor;
         CREATE TABLE IF NOT EXISTS monitor.schema_version (version INTEGER NOT NULL);",
    )?;
    let version = schema_version(&mut tx)?;
    if version > PG_SCHEMA_VERSION {
        return Ok(Err(version));
    }
    for (index, migration) in MIGRATIONS.iter().enumerate() {
        let target = index as i64 + 1;
        if target > version {
            tx.batch_execute(migration)?;
            tx.execute(
                "INSERT INTO monitor.schema_version (version) VALUES ($1)",
                &[&(target as i32)],
            )?;
        }
    }
    tx.commit()?;
    Ok(Ok(()))
}

fn copy_events(
    tx: &mut postgres::Transaction<'_>,
    instance: &str,
    events: &[EventRow<'_>],
) -> Result<(), postgres::Error> {
    if events.is_empty() {
        return Ok(());
    }
    let ids: Vec<i64> = tx
        .query(
            "SELECT nextval('monitor.events_id_seq') FROM generate_series(1, $1::BIGINT)",
            &[&(events.len() as i64)],
        )?
        .iter()
        .map(|row| row.try_get(0))
        .collect::<Result<_, _>>()?;
    let sink = tx.copy_in(
        "COPY monitor.events (id, instance, time, kind, caller, called, spc, origid, verstat,
                              flags, marks, ingress, late, raw) FROM STDIN BINARY",
    )?;
    let mut writer = BinaryCopyInWriter::new(
        sink,
        &[
            Type::INT8,
            Type::TEXT,
            Type::INT8,
            Type::TEXT,
            Type::TEXT,
            Type::TEXT_ARRAY,
            Type::TEXT,
            Type::TEXT,
            Type::TEXT,
            Type::TEXT,
            Type::TEXT,
            Type::TEXT,
            Type::BOOL,
            Type::TEXT,
        ],
    );
    let mut marks = String::new();
    // The lookup rows, sent after the events in key order (and once each: a number twice in
    // one event's `to` is one row, as SQLite's `INSERT OR IGNORE` makes it).
    let mut lookups: Vec<(std::borrow::Cow<'_, str>, i64)> = Vec::with_capacity(events.len());
    for (row, &id) in events.iter().zip(&ids) {
        let event = row.event;
        marks.clear();
        for (i, mark) in row.marks.iter().enumerate() {
            if i > 0 {
                marks.push(',');
            }
            marks.push_str(mark.as_str());
        }
        let called: Vec<std::borrow::Cow<'_, str>> = event.to.iter().map(|t| clean(t)).collect();
        let called: Vec<&str> = called.iter().map(AsRef::as_ref).collect();
        let (spc, origid, verstat, ingress) = (
            optional(&event.spc),
            optional(&event.origid),
            optional(&event.verstat),
            optional(&event.ingress),
        );
        lookups.extend(event.to.iter().map(|to| (clean(to), id)));
        writer.write(&[
            &id,
            &instance,
            &to_i64(event.time),
            &match event.kind {
                Kind::Verification => "verification",
                Kind::Complaint => "complaint",
            },
            &clean(&event.from).as_ref(),
            &called,
            &spc.as_deref(),
            &origid.as_deref(),
            &verstat.as_deref(),
            &clean(&event.flags.join(",")).as_ref(),
            &marks.as_str(),
            &ingress.as_deref(),
            &row.late,
            &clean(row.raw).as_ref(),
        ])?;
    }
    writer.finish()?;
    lookups.sort_unstable();
    lookups.dedup();
    let sink = tx.copy_in("COPY monitor.event_called (called, event_id) FROM STDIN BINARY")?;
    let mut writer = BinaryCopyInWriter::new(sink, &[Type::TEXT, Type::INT8]);
    for (called, id) in &lookups {
        writer.write(&[&called.as_ref(), id])?;
    }
    writer.finish()?;
    Ok(())
}

fn upsert_alerts(
    tx: &mut postgres::Transaction<'_>,
    instance: &str,
    alerts: &[Alert],
) -> Result<(), postgres::Error> {
    if alerts.is_empty() {
        return Ok(());
    }
    let upsert = tx.prepare(
        "INSERT INTO monitor.alerts (instance, local_id, subject_kind, subject, detector, time,
             window_seconds, count, threshold, samples, text, last, closed)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
         ON CONFLICT (instance, local_id) DO UPDATE SET subject_kind = excluded.subject_kind,
             subject = excluded.subject, detector = excluded.detector, time = excluded.time,
             window_seconds = excluded.window_seconds, count = excluded.count,
             threshold = excluded.threshold, samples = excluded.samples, text = excluded.text,
             last = excluded.last, closed = excluded.closed",
    )?;
    for alert in alerts {
        let samples = serde_json::to_string(&alert.samples).unwrap_or_else(|_| "[]".into());
        tx.execute(
            &upsert,
            &[
                &instance,
                &to_i64(alert.id),
                &alert.subject.kind(),
                &clean(alert.subject.value()).as_ref(),
                &alert.detector.as_str(),
                &to_i64(alert.time),
                &to_i64(alert.window),
                &to_i64(alert.count),
                &to_i64(alert.threshold),
                &clean(&samples).as_ref(),
                &clean(&alert.text).as_ref(),
                &to_i64(alert.last),
                &alert.closed,
            ],
        )?;
    }
    Ok(())
}

/// An alert row (`ALERT_COLUMNS` or `LOCAL_ALERT_COLUMNS`): `Ok(Err)` when a detector or
/// subject this build does not know.
fn alert_of(row: &Row) -> Result<Result<Alert, StoreError>, postgres::Error> {
    let id: i64 = row.try_get(0)?;
    let kind: &str = row.try_get(1)?;
    let value: &str = row.try_get(2)?;
    let detector: &str = row.try_get(3)?;
    let samples: &str = row.try_get(8)?;
    let Some(subject) = Subject::from_parts(kind, value) else {
        return Ok(Err(StoreError::Corrupt {
            what: "subject",
            id,
        }));
    };
    let Some(detector) = DetectorId::from_name(detector) else {
        return Ok(Err(StoreError::Corrupt {
            what: "detector",
            id,
        }));
    };
    Ok(Ok(Alert {
        id: to_u64(id),
        subject,
        detector,
        time: to_u64(row.try_get(4)?),
        window: to_u64(row.try_get(5)?),
        count: to_u64(row.try_get(6)?),
        threshold: to_u64(row.try_get(7)?),
        samples: serde_json::from_str(samples).unwrap_or_default(),
        text: row.try_get(9)?,
        last: to_u64(row.try_get(10)?),
        closed: row.try_get(11)?,
    }))
}

fn event_of(row: &Row) -> Result<StoredEvent, postgres::Error> {
    let flags: &str = row.try_get(7)?;
    let marks: &str = row.try_get(8)?;
    Ok(StoredEvent {
        time: to_u64(row.try_get(0)?),
        kind: row.try_get(1)?,
        from: row.try_get(2)?,
        to: row.try_get(3)?,
        spc: row.try_get(4)?,
        origid: row.try_get(5)?,
        verstat: row.try_get(6)?,
        flags: split_list(flags),
        marks: split_list(marks),
        ingress: row.try_get(9)?,
        late: row.try_get(10)?,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]
    use super::*;
    use crate::event::Event;
    use crate::store::Store;
    use postgres::NoTls;

    fn event(time: u64, from: &str, origid: &str) -> Event {
        Event {
            kind: Kind::Verification,
            time,
            from: from.into(),
            to: vec!["8613900000001".into()],
            verstat: Some("TN-Validation-Passed".into()),
            reasoncode: None,
            attest: Some("A".into()),
            spc: Some("709J".into()),
            origid: Some(origid.into()),
            x5u: None,
            flags: vec![],
            ingress: None,
            firm: None,
        }
    }

    fn row<'a>(event: &'a Event, raw: &'a str) -> EventRow<'a> {
        EventRow {
            event,
            raw,
            marks: &[],
            late: false,
        }
    }

    fn alert(id: u64, subject: &str) -> Alert {
        Alert {
            id,
            subject: Subject::Caller(subject.into()),
            detector: DetectorId::HighFrequency,
            time: 1000,
            window: 3600,
            count: 61,
            threshold: 60,
            samples: vec!["o1".into()],
            text: "text".into(),
            last: 1000,
            closed: false,
        }
    }

    fn cluster() -> pg_test::PgCluster {
        pg_test::PgCluster::start().unwrap_or_else(|e| panic!("a PostgreSQL cluster: {e}"))
    }

    #[test]
    fn two_instances_share_one_database_each_with_its_own_checkpoint_book_and_windows() {
        let cluster = cluster();
        let url = PgUrl::new(&cluster.url());
        let dir = tempfile::tempdir().unwrap();
        let (a_dir, b_dir) = (dir.path().join("a"), dir.path().join("b"));
        let mut a = Store::open_in(&a_dir, Durability::Process, Some(&url)).unwrap();
        let mut b = Store::open_in(&b_dir, Durability::Process, Some(&url)).unwrap();
        let (ea, eb) = (
            event(1000, "8613800000001", "oa"),
            event(2000, "8613800000001", "ob"),
        );
        a.write_indexed(&[row(&ea, "line-a")], 5).unwrap();
        b.write_indexed(&[row(&eb, "line-b")], 8).unwrap();
        // Both books start at local id 1: the database's ids still differ.
        a.write_batch(&[], &[alert(1, "8613800000001")]).unwrap();
        b.write_batch(&[], &[alert(1, "8613800000002")]).unwrap();
        assert_eq!((a.checkpoint().unwrap(), b.checkpoint().unwrap()), (5, 8));
        let all = a
            .alerts(&AlertQuery {
                limit: 10,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(all.len(), 2);
        assert_ne!(all[0].id, all[1].id);
        assert_eq!(a.open_alerts().unwrap()[0].subject.value(), "8613800000001");
        assert_eq!(
            a.open_alerts().unwrap()[0].id,
            1,
            "the book's own numbering"
        );
        assert_eq!(b.next_alert_id().unwrap(), 2);
        assert_eq!(a.open_alert_count().unwrap(), 2);
        // Each instance rebuilds its own windows; the lookups see everyone's events.
        let mut lines = Vec::new();
        a.replay(0, |l| lines.push(l.to_owned())).unwrap();
        assert_eq!(lines, vec!["line-a"]);
        assert_eq!(b.newest_event_time().unwrap(), Some(2000));
        assert_eq!(a.newest_event_time().unwrap(), Some(1000));
        assert_eq!(a.minute_counts(0, 3000).unwrap().len(), 1);
        assert_eq!(a.events_by_caller("8613800000001", 10).unwrap().len(), 2);
        assert_eq!(a.event_count().unwrap(), 2);
        // An allow-list change made at one is read by the other.
        a.set_allowed("8613800000009", true, 5).unwrap();
        assert_eq!(b.allow_changes().unwrap().len(), 1);
        // Reopened on the same data folder: the same instance, the same checkpoint.
        drop(a);
        let a = Store::open_in(&a_dir, Durability::Process, Some(&url)).unwrap();
        assert_eq!(a.checkpoint().unwrap(), 5);
        assert_eq!(
            instance_id(&a_dir).unwrap(),
            std::fs::read_to_string(a_dir.join(INSTANCE_FILE))
                .unwrap()
                .trim()
        );
        assert_ne!(instance_id(&a_dir).unwrap(), instance_id(&b_dir).unwrap());
    }

    #[test]
    fn a_newer_schema_is_refused_without_showing_the_password() {
        let cluster = cluster();
        let url = PgUrl::new(&cluster.url());
        let dir = tempfile::tempdir().unwrap();
        // A reader before any writer: no schema yet.
        let early = Store::open_reader_in(dir.path(), Some(&url)).unwrap_err();
        assert!(
            matches!(early, StoreError::PgSchemaTooOld { found: 0, .. }),
            "{early}"
        );
        drop(Store::open_in(dir.path(), Durability::Process, Some(&url)).unwrap());
        let mut client = postgres::Client::connect(&cluster.url(), NoTls).unwrap();
        client
            .execute("INSERT INTO monitor.schema_version VALUES (99)", &[])
            .unwrap();
        for error in [
            Store::open_in(dir.path(), Durability::Process, Some(&url)).unwrap_err(),
            Store::open_reader_in(dir.path(), Some(&url)).unwrap_err(),
        ] {
            assert!(
                matches!(error, StoreError::PgSchemaTooNew { found: 99, .. }),
                "{error}"
            );
            let text = error.to_string();
            assert!(
                text.contains("upgrade") || text.contains("expected"),
                "{text}"
            );
            assert!(!text.contains(cluster.password()), "{text}");
        }
    }

    #[test]
    fn an_outage_is_a_clear_error_and_the_store_reconnects_after_it() {
        let mut cluster = cluster();
        let url = PgUrl::new(&cluster.url());
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open_in(dir.path(), Durability::Process, Some(&url)).unwrap();
        let e = event(1000, "8613800000001", "o1");
        store.write_indexed(&[row(&e, "l")], 1).unwrap();
        cluster.stop().unwrap();
        let error = store.events_by_caller("8613800000001", 10).unwrap_err();
        assert!(matches!(error, StoreError::Postgres { .. }), "{error}");
        assert!(!error.to_string().contains(cluster.password()), "{error}");
        assert!(error.to_string().contains("127.0.0.1"), "{error}");
        let write = store.write_indexed(&[row(&e, "l")], 2).unwrap_err();
        assert!(matches!(write, StoreError::Postgres { .. }), "{write}");
        cluster.start_again().unwrap();
        // The read reconnects by itself; the failed write left nothing behind.
        assert_eq!(
            store.events_by_caller("8613800000001", 10).unwrap().len(),
            1
        );
        assert_eq!(store.checkpoint().unwrap(), 1);
        store.write_indexed(&[row(&e, "l")], 2).unwrap();
        assert_eq!(store.event_count().unwrap(), 2);
    }

    #[test]
    fn alert_changes_made_while_postgresql_is_away_wait_in_the_outbox_and_arrive_in_order() {
        let mut cluster = cluster();
        let url = PgUrl::new(&cluster.url());
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open_in(dir.path(), Durability::Process, Some(&url)).unwrap();
        let indexer = Store::open_in(dir.path(), Durability::Process, Some(&url)).unwrap();
        store
            .write_batch(&[], &[alert(1, "8613800000001")])
            .unwrap();
        cluster.stop().unwrap();
        // Ingest commits alert changes even now: they wait locally.
        let mut extended = alert(1, "8613800000001");
        extended.last = 1500;
        extended.count = 70;
        store.write_batch(&[], &[extended.clone()]).unwrap();
        let mut closed = extended.clone();
        closed.closed = true;
        closed.last = 1600;
        store.write_batch(&[], &[closed.clone()]).unwrap();
        assert!(indexer.flush_pending().is_err(), "PostgreSQL is still away");
        // Events are never kept there: the journal holds them.
        let e = event(1000, "8613800000001", "o1");
        assert!(store.write_batch(&[row(&e, "{}")], &[]).is_err());
        cluster.start_again().unwrap();
        // Behind kept changes, a new one waits too, so that versions stay in order.
        store
            .write_batch(&[], &[alert(2, "8613800000002")])
            .unwrap();
        assert_eq!(indexer.flush_pending().unwrap(), 3);
        assert_eq!(indexer.flush_pending().unwrap(), 0);
        let all = store
            .alerts(&AlertQuery {
                limit: 10,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(all.len(), 2, "{all:?}");
        let first = all
            .iter()
            .find(|a| a.subject.value() == "8613800000001")
            .unwrap();
        assert_eq!((first.last, first.count, first.closed), (1600, 70, true));
        // With the outbox empty, changes go straight to PostgreSQL again.
        store
            .write_batch(&[], &[alert(3, "8613800000003")])
            .unwrap();
        assert_eq!(store.open_alerts().unwrap().len(), 2);
        // Kept changes left behind by a stop are sent when the store is opened again.
        cluster.stop().unwrap();
        store
            .write_batch(&[], &[alert(4, "8613800000004")])
            .unwrap();
        drop((store, indexer));
        cluster.start_again().unwrap();
        let store = Store::open_in(dir.path(), Durability::Process, Some(&url)).unwrap();
        assert_eq!(store.next_alert_id().unwrap(), 5);
        assert_eq!(store.open_alerts().unwrap().len(), 3);
    }

    #[test]
    fn a_nul_character_is_stored_as_a_replacement_character() {
        let cluster = cluster();
        let url = PgUrl::new(&cluster.url());
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open_in(dir.path(), Durability::Process, Some(&url)).unwrap();
        let mut e = event(1000, "8613800000001", "o\0x");
        e.spc = Some("70\09".into());
        store.write_indexed(&[row(&e, "{}")], 1).unwrap();
        let stored = store.events_by_caller("8613800000001", 10).unwrap();
        assert_eq!(stored[0].origid.as_deref(), Some("o\u{fffd}x"));
        assert_eq!(stored[0].spc.as_deref(), Some("70\u{fffd}9"));
    }

    #[test]
    fn a_number_twice_in_to_is_one_lookup_row_and_retention_removes_lookup_rows() {
        let cluster = cluster();
        let url = PgUrl::new(&cluster.url());
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open_in(dir.path(), Durability::Process, Some(&url)).unwrap();
        let mut twice = event(1000, "8613800000001", "o1");
        twice.to = vec!["8613900000007".into(), "8613900000007".into()];
        let later = event(2000, "8613800000001", "o2");
        store
            .write_indexed(&[row(&twice, "{}"), row(&later, "{}")], 1)
            .unwrap();
        let found = store.events_by_called("8613900000007", 10).unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].to.len(), 2);
        let mut client = postgres::Client::connect(&cluster.url(), NoTls).unwrap();
        let lookups = |client: &mut postgres::Client| -> i64 {
            client
                .query_one("SELECT count(*) FROM monitor.event_called", &[])
                .unwrap()
                .get(0)
        };
        assert_eq!(lookups(&mut client), 2);
        assert_eq!(store.prune(1500, 10).unwrap(), 1);
        assert_eq!(
            lookups(&mut client),
            1,
            "the pruned event's lookup row is gone"
        );
        assert_eq!(
            store.events_by_called("8613900000001", 10).unwrap().len(),
            1
        );
    }

    #[test]
    fn an_instance_file_that_is_empty_is_an_error_not_a_new_id() {
        let dir = tempfile::tempdir().unwrap();
        let id = instance_id(dir.path()).unwrap();
        assert_eq!(instance_id(dir.path()).unwrap(), id);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(INSTANCE_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(dir.path().join(INSTANCE_FILE), "\n").unwrap();
        assert!(matches!(
            instance_id(dir.path()),
            Err(StoreError::Folder { .. })
        ));
    }

    /// The indexer's rate into SQLite and into PostgreSQL on this machine (a measurement,
    /// not a check: `cargo test -p monitor --lib indexing_rate -- --ignored --nocapture`).
    /// Batches of 100,000 events as the indexer writes them (with the checkpoint), random
    /// callers among a million, one called number each.
    #[test]
    #[ignore = "a measurement; prints events per second"]
    fn indexing_rate_into_sqlite_and_postgresql() {
        const EVENTS: u64 = 300_000;
        const BATCH: u64 = 100_000;
        let mut seed: u64 = 1;
        let mut next = move || {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            seed >> 33
        };
        let events: Vec<(Event, String)> = (0..EVENTS)
            .map(|i| {
                let from = format!("86138{:08}", next() % 1_000_000);
                let to = format!("86139{:08}", next() % 10_000_000);
                let origid = format!("{:016x}-{i:08}", next());
                let time = 1_700_000_000 + i / 50;
                let raw = format!(
                    r#"{{"time":{time},"from":"{from}","to":["{to}"],"verstat":"TN-Validation-Passed","attest":"A","spc":"709J","origid":"{origid}","x5u":"https://cr.example/709J.pem","flags":[],"ingress":"local"}}"#
                );
                let mut event = event(time, &from, &origid);
                event.to = vec![to];
                (event, raw)
            })
            .collect();
        let rows: Vec<EventRow<'_>> = events.iter().map(|(e, raw)| row(e, raw)).collect();
        let run = |store: &mut Store| {
            let started = std::time::Instant::now();
            for (n, chunk) in rows.chunks(BATCH as usize).enumerate() {
                store.write_indexed(chunk, n as u64 + 1).unwrap();
            }
            let seconds = started.elapsed().as_secs_f64();
            assert_eq!(store.event_count().unwrap(), EVENTS);
            (EVENTS as f64 / seconds, store.size_bytes().unwrap())
        };
        let dir = tempfile::tempdir().unwrap();
        let mut sqlite = Store::open(&dir.path().join("sqlite"), Durability::Process).unwrap();
        let (sqlite_rate, sqlite_bytes) = run(&mut sqlite);
        let cluster = cluster();
        let url = PgUrl::new(&cluster.url());
        let mut pg =
            Store::open_in(&dir.path().join("pg"), Durability::Process, Some(&url)).unwrap();
        let (pg_rate, pg_bytes) = run(&mut pg);
        println!(
            "indexed {EVENTS} events in batches of {BATCH}: SQLite {sqlite_rate:.0} events/s ({sqlite_bytes} bytes), PostgreSQL {pg_rate:.0} events/s ({pg_bytes} bytes)"
        );
    }
}
