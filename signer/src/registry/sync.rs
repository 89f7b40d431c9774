//! A signer's local copy of a PostgreSQL registry (`registry_db = "postgres://..."`).
//!
//! The copy is an SQLite registry file (`registry_copy`) with the cache in front of it, exactly
//! as for a file registry: **a signing decision reads only the copy and never waits on
//! PostgreSQL.** A thread keeps the copy up to date:
//!
//! - at start, whenever PostgreSQL's `generation` differs from the copy's (a replacing
//!   import), whenever its `registry_id` differs (the database was recreated, or is another
//!   one) and whenever its watermark is below the copy's (a restored backup), it loads
//!   everything, in one SQLite transaction (lookups meanwhile see the old copy);
//! - otherwise it reads the rows whose `change_seq` is above the copy's watermark
//!   ([`super::postgres`] explains why that misses nothing), from one consistent snapshot;
//! - it does so when a `NOTIFY` arrives on [`CHANGES_CHANNEL`], and at least every
//!   `registry_sync_interval_ms` for anything missed;
//! - when the connection fails it keeps the copy, counts the failure, and reconnects with a
//!   backoff from 250 ms doubling to 5 s, and never longer than the interval (so a reconnected
//!   signer is no later than a healthy one's catch-up); a dead connection is noticed through
//!   TCP keepalives, `tcp_user_timeout` ([`rest::pg::client_config`]) and a 30 s
//!   statement timeout (none for a full load).
//!
//! The copy is locked (`COPY.lock`) while its thread runs: a second signer given the same
//! `registry_copy` refuses to start ([`SignerError::RegistryCopyInUse`]). Dropping the
//! [`SyncedRegistry`] stops the thread: it looks every 50 ms while it waits, and
//! the drop waits for it at most 2 s.
//!
//! The watermark, generation, `registry_id` and time of the last successful synchronization
//! are kept in the copy (table `pg_sync`), so a restarted signer starts from its copy, even
//! with PostgreSQL away. Identity HMACs are not copied: the signer does not need them.
//!
//! The copy's age is the time since the last successful synchronization. A copy never
//! synchronized is unusable: lookups fail, so the policy's outage rule applies (`POL5031`;
//! emergency calls are still signed). When the copy is older than `registry_max_age_seconds`,
//! [`StalePolicy::Keep`] keeps signing from it and [`StalePolicy::Refuse`] treats it as
//! unavailable in the same way.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use postgres::fallible_iterator::FallibleIterator;
use postgres::IsolationLevel;
use rusqlite::{params, OptionalExtension};
use serde::Deserialize;

use super::cache::CachedRegistry;
use super::location::PgUrl;
use super::postgres::{PgRegistry, CHANGES_CHANNEL};
use super::store::{NumberRecord, Registry};
use crate::error::SignerError;
use crate::service::NumberLookup;

/// The first reconnection delay.
const MIN_BACKOFF: Duration = Duration::from_millis(250);
/// The longest reconnection delay (never longer than the sync interval either).
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How long one statement of the synchronization may run (a full load has no limit).
const STATEMENT_TIMEOUT: &str = "30s";
/// How often the thread looks whether it is asked to stop while it waits.
const STOP_CHECK: Duration = Duration::from_millis(50);
/// How long dropping a [`SyncedRegistry`] waits for its thread to end.
const STOP_WAIT: Duration = Duration::from_secs(2);
/// Above this many changed numbers, the whole cache is dropped instead of each entry.
const MAX_SINGLE_INVALIDATIONS: usize = 10_000;

/// What to do when the copy is older than its bound.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum StalePolicy {
    /// Keep signing from the copy.
    #[default]
    Keep,
    /// Treat the registry as unavailable: the outage rule applies (`POL5031` by default).
    Refuse,
}

/// How a copy is kept.
#[derive(Clone, Debug)]
pub struct SyncOptions {
    /// The PostgreSQL registry.
    pub url: PgUrl,
    /// The copy (an SQLite registry file, created if missing).
    pub copy: PathBuf,
    /// The longest time between two catch-ups.
    pub interval: Duration,
    /// The age beyond which the copy is stale, in seconds.
    pub max_age: u64,
    /// What to do with a stale copy.
    pub stale: StalePolicy,
    /// The cache in front of the copy: capacity.
    pub cache_capacity: u64,
    /// The cache in front of the copy: entry lifetime.
    pub cache_ttl: Duration,
    /// How long [`SyncedRegistry::start`] waits for the first synchronization attempt.
    pub first_sync_wait: Duration,
}

/// The synchronization's state, shared with the thread.
#[derive(Debug, Default)]
struct SyncStatus {
    /// Seconds since the epoch of the last successful synchronization; 0: never.
    last_sync: AtomicU64,
    /// The copy's watermark.
    watermark: AtomicI64,
    /// Failed connections and catch-ups.
    failures: AtomicU64,
    /// Full loads done.
    full_loads: AtomicU64,
}

/// The registry of a signer whose `registry_db` is PostgreSQL: lookups from the local copy,
/// a thread keeping it up to date (stopped when this is dropped).
#[derive(Debug)]
pub struct SyncedRegistry {
    cache: Arc<CachedRegistry>,
    status: Arc<SyncStatus>,
    max_age: u64,
    stale: StalePolicy,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Stops the thread and waits for it, at most [`STOP_WAIT`] (it looks every [`STOP_CHECK`]
/// while waiting; a connection attempt or a full load in progress may take longer, and is
/// then left to end by itself).
impl Drop for SyncedRegistry {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let Some(thread) = self.thread.take() else {
            return;
        };
        let deadline = std::time::Instant::now() + STOP_WAIT;
        while !thread.is_finished() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        if thread.is_finished() {
            let _ = thread.join();
        } else {
            tracing::warn!("the registry synchronization thread is still busy; left to end");
        }
    }
}

impl SyncedRegistry {
    /// Opens the copy, starts the synchronizing thread and waits (at most
    /// `first_sync_wait`) for its first attempt, so that a signer started with PostgreSQL up
    /// signs from the current registry at once. Fails only if the copy cannot be opened.
    pub fn start(options: SyncOptions) -> Result<Self, SignerError> {
        let lock = lock_copy(&options.copy)?;
        let reader = Registry::open(&options.copy)?;
        let mut writer = Registry::open(&options.copy)?;
        let state = read_state(&mut writer)?;
        let status = Arc::new(SyncStatus::default());
        status.last_sync.store(state.synced_at, Ordering::Relaxed);
        status.watermark.store(state.change_seq, Ordering::Relaxed);
        let cache = Arc::new(CachedRegistry::new(
            reader,
            options.cache_capacity,
            options.cache_ttl,
        ));
        let stop = Arc::new(AtomicBool::new(false));
        let (first_done, first_attempt) = mpsc::channel();
        let worker = Worker {
            _lock: lock,
            url: options.url.clone(),
            writer,
            cache: Arc::clone(&cache),
            status: Arc::clone(&status),
            stop: Arc::clone(&stop),
            interval: options.interval,
            first_done: Some(first_done),
        };
        let thread = std::thread::Builder::new()
            .name("registry-sync".into())
            .spawn(move || worker.run())
            .map_err(|e| SignerError::io(&options.copy, &e))?;
        let _ = first_attempt.recv_timeout(options.first_sync_wait);
        Ok(Self {
            cache,
            status,
            max_age: options.max_age,
            stale: options.stale,
            stop,
            thread: Some(thread),
        })
    }

    /// Seconds since the last successful synchronization as of `now`; `None` if never.
    pub fn age(&self, now: u64) -> Option<u64> {
        match self.status.last_sync.load(Ordering::Relaxed) {
            0 => None,
            at => Some(now.saturating_sub(at)),
        }
    }
}

impl NumberLookup for SyncedRegistry {
    fn lookup(&self, tn: &str) -> Result<Option<Arc<NumberRecord>>, SignerError> {
        self.lookup_at(tn, rest::service::unix_now().unwrap_or(0))
    }

    fn lookup_at(&self, tn: &str, now: u64) -> Result<Option<Arc<NumberRecord>>, SignerError> {
        match self.age(now) {
            None => Err(SignerError::RegistryNotSynced),
            Some(age) if age > self.max_age && self.stale == StalePolicy::Refuse => {
                Err(SignerError::RegistryStale {
                    age,
                    max: self.max_age,
                })
            }
            Some(_) => self.cache.lookup(tn),
        }
    }

    fn hit_counts(&self) -> (u64, u64) {
        self.cache.hit_counts()
    }

    fn render_metrics(&self, now: u64) -> String {
        let mut out = String::with_capacity(1024);
        let mut metric = |name: &str, kind: &str, help: &str, value: String| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        };
        let age = self.age(now);
        metric(
            "shaken_signer_registry_copy_age_seconds",
            "gauge",
            "Seconds since the registry copy was last synchronized from PostgreSQL (-1: never).",
            age.map_or("-1".into(), |a| a.to_string()),
        );
        metric(
            "shaken_signer_registry_copy_stale",
            "gauge",
            "1 when the registry copy is older than registry_max_age_seconds or never synchronized.",
            u8::from(age.is_none_or(|a| a > self.max_age)).to_string(),
        );
        metric(
            "shaken_signer_registry_copy_watermark",
            "gauge",
            "The PostgreSQL change watermark the registry copy has reached.",
            self.status.watermark.load(Ordering::Relaxed).to_string(),
        );
        metric(
            "shaken_signer_registry_sync_failures_total",
            "counter",
            "Failed connections to, or catch-ups from, the PostgreSQL registry.",
            self.status.failures.load(Ordering::Relaxed).to_string(),
        );
        metric(
            "shaken_signer_registry_full_loads_total",
            "counter",
            "Full loads of the registry copy from PostgreSQL (at first start, after a replace).",
            self.status.full_loads.load(Ordering::Relaxed).to_string(),
        );
        out
    }
}

/// The copy's synchronization state (table `pg_sync`).
#[derive(Clone, Debug, Default)]
struct CopyState {
    change_seq: i64,
    generation: i64,
    /// The `registry_state.registry_id` of the database the copy came from.
    registry_id: Option<String>,
    synced_at: u64,
}

impl CopyState {
    /// Whether the copy must be reloaded whole to match a database at watermark `seq`,
    /// generation `generation` and id `registry_id`: never filled; a replacing import; another
    /// database (recreated, or a different one, whose watermarks mean other changes); or a
    /// watermark gone backwards (a restored backup).
    fn needs_full_load(&self, seq: i64, generation: i64, registry_id: &str) -> bool {
        self.synced_at == 0
            || generation != self.generation
            || self.registry_id.as_deref() != Some(registry_id)
            || seq < self.change_seq
    }
}

fn read_state(copy: &mut Registry) -> Result<CopyState, SignerError> {
    let path = copy.path().to_owned();
    let db = |e: rusqlite::Error| SignerError::db(&path, e);
    let conn = copy.connection();
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS pg_sync (id INTEGER PRIMARY KEY CHECK (id = 1),
             change_seq INTEGER NOT NULL, generation INTEGER NOT NULL, synced_at INTEGER NOT NULL,
             registry_id TEXT)",
    )
    .map_err(db)?;
    // A copy made before `registry_id` existed: the column is added (empty, so the next
    // synchronization reloads it whole).
    let has_id: bool = conn
        .query_row(
            "SELECT count(*) > 0 FROM pragma_table_info('pg_sync') WHERE name = 'registry_id'",
            [],
            |row| row.get(0),
        )
        .map_err(db)?;
    if !has_id {
        conn.execute_batch("ALTER TABLE pg_sync ADD COLUMN registry_id TEXT")
            .map_err(db)?;
    }
    let state = conn
        .query_row(
            "SELECT change_seq, generation, synced_at, registry_id FROM pg_sync WHERE id = 1",
            [],
            |row| {
                Ok(CopyState {
                    change_seq: row.get(0)?,
                    generation: row.get(1)?,
                    synced_at: row.get::<_, i64>(2)?.max(0) as u64,
                    registry_id: row.get(3)?,
                })
            },
        )
        .optional()
        .map_err(db)?;
    Ok(state.unwrap_or_default())
}

/// The first and the longest reconnection delay for a sync `interval`: 250 ms and 5 s, never
/// longer than the interval.
fn backoff_bounds(interval: Duration) -> (Duration, Duration) {
    let max = MAX_BACKOFF.min(interval);
    (MIN_BACKOFF.min(max), max)
}

/// Locks `copy` for this process (`COPY.lock`, an exclusive `flock`, released when the
/// returned file is closed): two signers feeding one copy would undo each other's watermark.
fn lock_copy(copy: &std::path::Path) -> Result<std::fs::File, SignerError> {
    let mut name = copy.as_os_str().to_owned();
    name.push(".lock");
    let lock = PathBuf::from(name);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock)
        .map_err(|e| SignerError::io(&lock, &e))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(SignerError::RegistryCopyInUse {
            path: copy.to_owned(),
            lock,
        }),
        Err(std::fs::TryLockError::Error(e)) => Err(SignerError::io(&lock, &e)),
    }
}

/// The synchronizing thread.
struct Worker {
    /// The copy's lock, held as long as the thread writes the copy.
    _lock: std::fs::File,
    url: PgUrl,
    writer: Registry,
    cache: Arc<CachedRegistry>,
    status: Arc<SyncStatus>,
    stop: Arc<AtomicBool>,
    interval: Duration,
    first_done: Option<mpsc::Sender<()>>,
}

impl Worker {
    fn run(mut self) {
        let (min_backoff, max_backoff) = backoff_bounds(self.interval);
        let mut backoff = min_backoff;
        while !self.stop.load(Ordering::Relaxed) {
            let error = match self.session(&mut backoff) {
                Ok(()) => return,
                Err(error) => error,
            };
            self.status.failures.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(%error, retry_ms = backoff.as_millis() as u64,
                "registry synchronization from PostgreSQL failed; signing from the local copy");
            if let Some(done) = self.first_done.take() {
                let _ = done.send(());
            }
            self.sleep(backoff);
            backoff = (backoff * 2).min(max_backoff);
        }
    }

    /// Sleeps `time`, waking early when stopped.
    fn sleep(&self, time: Duration) {
        let deadline = std::time::Instant::now() + time;
        while !self.stop.load(Ordering::Relaxed) {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                break;
            }
            std::thread::sleep(left.min(STOP_CHECK));
        }
    }

    /// One connection: listen, catch up, then catch up on each notification and at least
    /// every interval, until stopped (`Ok`) or the connection fails (`Err`).
    fn session(&mut self, backoff: &mut Duration) -> Result<(), SignerError> {
        // Check-only: a signer never migrates the shared database.
        let mut pg = PgRegistry::open_checked(&self.url)?;
        let url = self.url.clone();
        let pg_error = move |e: postgres::Error| SignerError::pg(&url, e);
        pg.client_mut()
            .batch_execute(&format!(
                "SET statement_timeout = '{STATEMENT_TIMEOUT}'; LISTEN {CHANGES_CHANNEL}"
            ))
            .map_err(&pg_error)?;
        self.catch_up(&mut pg)?;
        *backoff = backoff_bounds(self.interval).0;
        tracing::info!(url = %self.url, watermark = self.status.watermark.load(Ordering::Relaxed),
            "registry copy synchronized from PostgreSQL");
        if let Some(done) = self.first_done.take() {
            let _ = done.send(());
        }
        while !self.stop.load(Ordering::Relaxed) {
            {
                let mut notifications = pg.client_mut().notifications();
                // A notification, or the interval's end (looking every STOP_CHECK whether to
                // stop); then any others already received.
                let deadline = std::time::Instant::now() + self.interval;
                loop {
                    let left = deadline.saturating_duration_since(std::time::Instant::now());
                    if left.is_zero() || self.stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let wait = notifications.timeout_iter(left.min(STOP_CHECK)).next();
                    if wait.map_err(&pg_error)?.is_some() {
                        break;
                    }
                }
                while notifications.iter().next().map_err(&pg_error)?.is_some() {}
            }
            if self.stop.load(Ordering::Relaxed) {
                break;
            }
            self.catch_up(&mut pg)?;
        }
        Ok(())
    }

    /// Brings the copy to PostgreSQL's current watermark, from one snapshot, then drops what
    /// changed from the cache.
    fn catch_up(&mut self, pg: &mut PgRegistry) -> Result<(), SignerError> {
        let url = self.url.clone();
        let pg_error = |e: postgres::Error| SignerError::pg(&url, e);
        let path = self.writer.path().to_owned();
        let db = |e: rusqlite::Error| SignerError::db(&path, e);
        let state = read_state(&mut self.writer)?;
        let mut snapshot = pg
            .client_mut()
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .map_err(pg_error)?;
        let row = snapshot
            .query_one(
                "SELECT change_seq, generation, registry_id FROM registry_state",
                &[],
            )
            .map_err(pg_error)?;
        let (seq, generation, registry_id): (i64, i64, String) = (
            row.try_get(0).map_err(pg_error)?,
            row.try_get(1).map_err(pg_error)?,
            row.try_get(2).map_err(pg_error)?,
        );
        let full = state.needs_full_load(seq, generation, &registry_id);
        let since = if full { -1 } else { state.change_seq };
        if full {
            // A full load of a large registry may take minutes: no statement limit for it.
            snapshot
                .batch_execute("SET LOCAL statement_timeout = 0")
                .map_err(pg_error)?;
        }
        let now = rest::service::unix_now().unwrap_or(0);
        let mut changed_numbers = Vec::new();
        let mut whole_cache = full;
        let conn = self.writer.connection();
        let tx = conn.transaction().map_err(db)?;
        if seq != since || full {
            if full {
                tx.execute_batch("DELETE FROM numbers; DELETE FROM ranges; DELETE FROM customers;")
                    .map_err(db)?;
            }
            let mut customers = snapshot
                .query_raw(
                    "SELECT id, name, verified, updated_at FROM customers WHERE change_seq > $1",
                    std::iter::once(since),
                )
                .map_err(pg_error)?;
            {
                let mut upsert = tx
                    .prepare(
                        "INSERT INTO customers (id, name, verified, id_hmac, updated_at)
                         VALUES (?1, ?2, ?3, NULL, ?4)
                         ON CONFLICT(id) DO UPDATE SET name = excluded.name,
                         verified = excluded.verified, updated_at = excluded.updated_at",
                    )
                    .map_err(db)?;
                while let Some(row) = customers.next().map_err(pg_error)? {
                    let (id, name, verified, at): (String, String, bool, i64) = (
                        row.try_get(0).map_err(pg_error)?,
                        row.try_get(1).map_err(pg_error)?,
                        row.try_get(2).map_err(pg_error)?,
                        row.try_get(3).map_err(pg_error)?,
                    );
                    upsert
                        .execute(params![id, name, verified, at])
                        .map_err(db)?;
                    // A customer's name or verification changes every number's answer.
                    whole_cache = true;
                }
            }
            drop(customers);
            let mut numbers = snapshot
                .query_raw(
                    "SELECT tn, customer_id, status, updated_at FROM numbers WHERE change_seq > $1",
                    std::iter::once(since),
                )
                .map_err(pg_error)?;
            {
                let mut upsert = tx
                    .prepare(
                        "INSERT INTO numbers (tn, customer_id, status, updated_at)
                         VALUES (?1, ?2, ?3, ?4)
                         ON CONFLICT(tn) DO UPDATE SET customer_id = excluded.customer_id,
                         status = excluded.status, updated_at = excluded.updated_at",
                    )
                    .map_err(db)?;
                while let Some(row) = numbers.next().map_err(pg_error)? {
                    let (tn, customer, status, at): (String, String, String, i64) = (
                        row.try_get(0).map_err(pg_error)?,
                        row.try_get(1).map_err(pg_error)?,
                        row.try_get(2).map_err(pg_error)?,
                        row.try_get(3).map_err(pg_error)?,
                    );
                    upsert
                        .execute(params![tn, customer, status, at])
                        .map_err(db)?;
                    if !whole_cache {
                        changed_numbers.push(tn);
                        whole_cache = changed_numbers.len() > MAX_SINGLE_INVALIDATIONS;
                    }
                }
            }
            drop(numbers);
            let mut ranges = snapshot
                .query_raw(
                    r#"SELECT start, "end", customer_id, status, updated_at FROM ranges
                       WHERE change_seq > $1"#,
                    std::iter::once(since),
                )
                .map_err(pg_error)?;
            {
                let mut upsert = tx
                    .prepare(
                        "INSERT INTO ranges (start, end, customer_id, status, updated_at)
                         VALUES (?1, ?2, ?3, ?4, ?5)
                         ON CONFLICT(start, end) DO UPDATE SET customer_id = excluded.customer_id,
                         status = excluded.status, updated_at = excluded.updated_at",
                    )
                    .map_err(db)?;
                while let Some(row) = ranges.next().map_err(pg_error)? {
                    let (start, end, customer, status, at): (String, String, String, String, i64) = (
                        row.try_get(0).map_err(pg_error)?,
                        row.try_get(1).map_err(pg_error)?,
                        row.try_get(2).map_err(pg_error)?,
                        row.try_get(3).map_err(pg_error)?,
                        row.try_get(4).map_err(pg_error)?,
                    );
                    upsert
                        .execute(params![start, end, customer, status, at])
                        .map_err(db)?;
                    whole_cache = true;
                }
            }
            drop(ranges);
        }
        tx.execute(
            "INSERT INTO pg_sync (id, change_seq, generation, synced_at, registry_id)
             VALUES (1, ?1, ?2, ?3, ?4)
             ON CONFLICT(id) DO UPDATE SET change_seq = excluded.change_seq,
             generation = excluded.generation, synced_at = excluded.synced_at,
             registry_id = excluded.registry_id",
            params![seq, generation, now as i64, registry_id],
        )
        .map_err(db)?;
        // The snapshot only read: it ends before the copy commits, and how it ends does not
        // matter (a broken connection shows at the next query). Once the copy has committed,
        // nothing may stop the cache from being invalidated: the watermark has advanced, so a
        // cached answer left behind would not be corrected before its TTL.
        let _ = snapshot.commit();
        tx.commit().map_err(db)?;
        let invalidated = if whole_cache {
            self.cache.invalidate(None)
        } else if !changed_numbers.is_empty() {
            self.cache.invalidate(Some(&changed_numbers))
        } else {
            Ok(())
        };
        if let Err(error) = invalidated {
            tracing::error!(%error, "the registry cache could not be invalidated");
        }
        if full {
            self.status.full_loads.fetch_add(1, Ordering::Relaxed);
        }
        self.status.watermark.store(seq, Ordering::Relaxed);
        self.status.last_sync.store(now.max(1), Ordering::Relaxed);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::import::{import, ImportMode, ImportOptions};

    /// A copy last synchronized at `synced_at` (0: never), holding one number, and a URL
    /// where nothing listens (the thread only ever fails to connect).
    fn copy(dir: &std::path::Path, synced_at: i64) -> SyncOptions {
        let path = dir.join("copy.sqlite");
        let mut registry = Registry::open(&path).unwrap();
        let mut progress = |_| {};
        import(
            &mut registry,
            "number,customer,verified\n12155551212,c1,yes\n".as_bytes(),
            ImportOptions {
                mode: ImportMode::Merge,
                plan: None,
                secret: None,
                actor: "t",
                now: 1,
                progress: &mut progress,
            },
        )
        .unwrap();
        read_state(&mut registry).unwrap();
        if synced_at > 0 {
            registry
                .connection()
                .execute(
                    "INSERT INTO pg_sync VALUES (1, 7, 0, ?1, 'r')",
                    params![synced_at],
                )
                .unwrap();
        }
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        SyncOptions {
            url: match super::super::RegistryLocation::parse(&format!(
                "postgres://u:secret@127.0.0.1:{closed}/r"
            )) {
                super::super::RegistryLocation::Postgres(url) => url,
                other => panic!("{other:?}"),
            },
            copy: path,
            interval: Duration::from_millis(100),
            max_age: 60,
            stale: StalePolicy::Refuse,
            cache_capacity: 100,
            cache_ttl: Duration::from_secs(60),
            first_sync_wait: Duration::from_secs(10),
        }
    }

    #[test]
    fn the_copys_age_decides_as_of_the_time_given() {
        let dir = tempfile::tempdir().unwrap();
        let t: u64 = 1_700_000_000;
        let refusing = SyncedRegistry::start(copy(dir.path(), t as i64)).unwrap();
        assert_eq!(refusing.age(t + 60), Some(60));
        let found = refusing.lookup_at("12155551212", t + 60).unwrap().unwrap();
        assert_eq!(found.customer.id, "c1");
        assert!(matches!(
            refusing.lookup_at("12155551212", t + 61),
            Err(SignerError::RegistryStale { age: 61, max: 60 })
        ));
        let metrics = refusing.render_metrics(t + 61);
        assert!(
            metrics.contains("shaken_signer_registry_copy_age_seconds 61\n"),
            "{metrics}"
        );
        assert!(
            metrics.contains("shaken_signer_registry_copy_stale 1\n"),
            "{metrics}"
        );
        assert!(
            metrics.contains("shaken_signer_registry_copy_watermark 7\n"),
            "{metrics}"
        );
        assert!(!metrics.contains("secret"));
        drop(refusing);

        let keep_dir = dir.path().join("keep");
        std::fs::create_dir_all(&keep_dir).unwrap();
        let mut options = copy(&keep_dir, t as i64);
        options.stale = StalePolicy::Keep;
        let keeping = SyncedRegistry::start(options).unwrap();
        assert!(keeping
            .lookup_at("12155551212", t + 3600)
            .unwrap()
            .is_some());
        assert_eq!(keeping.lookup_at("12155559999", t + 3600).unwrap(), None);
        // The first attempt failed (nothing listens), and was counted.
        assert!(keeping.status.failures.load(Ordering::Relaxed) >= 1);
    }

    #[test]
    fn a_copy_never_synchronized_answers_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut options = copy(dir.path(), 0);
        options.stale = StalePolicy::Keep;
        let never = SyncedRegistry::start(options).unwrap();
        assert_eq!(never.age(1_700_000_000), None);
        assert!(matches!(
            never.lookup_at("12155551212", 1_700_000_000),
            Err(SignerError::RegistryNotSynced)
        ));
        let metrics = never.render_metrics(1_700_000_000);
        assert!(metrics.contains("shaken_signer_registry_copy_age_seconds -1\n"));
        assert!(metrics.contains("shaken_signer_registry_copy_stale 1\n"));
    }

    #[test]
    fn another_database_or_a_watermark_gone_back_reloads_the_copy_whole() {
        let copy = CopyState {
            change_seq: 40,
            generation: 2,
            registry_id: Some("a".into()),
            synced_at: 1_700_000_000,
        };
        assert!(!copy.needs_full_load(40, 2, "a"), "nothing new");
        assert!(!copy.needs_full_load(45, 2, "a"), "changes to catch up on");
        assert!(copy.needs_full_load(45, 3, "a"), "a replacing import");
        assert!(
            copy.needs_full_load(45, 2, "b"),
            "a recreated or different database"
        );
        assert!(copy.needs_full_load(12, 2, "a"), "a restored backup");
        let before_ids = CopyState {
            registry_id: None,
            ..copy.clone()
        };
        assert!(
            before_ids.needs_full_load(40, 2, "a"),
            "a copy older than registry_id"
        );
        let never = CopyState::default();
        assert!(never.needs_full_load(0, 0, "a"));
    }

    #[test]
    fn reconnections_are_never_further_apart_than_the_interval() {
        let ms = Duration::from_millis;
        assert_eq!(backoff_bounds(ms(2000)), (ms(250), ms(2000)));
        assert_eq!(backoff_bounds(ms(1000)), (ms(250), ms(1000)));
        assert_eq!(backoff_bounds(ms(100)), (ms(100), ms(100)));
        assert_eq!(backoff_bounds(ms(60_000)), (ms(250), ms(5000)));
    }

    #[test]
    fn two_signers_cannot_share_one_copy() {
        let dir = tempfile::tempdir().unwrap();
        let options = copy(dir.path(), 1_700_000_000);
        let first = SyncedRegistry::start(options.clone()).unwrap();
        let second = SyncedRegistry::start(options.clone());
        assert!(
            matches!(second, Err(SignerError::RegistryCopyInUse { .. })),
            "{second:?}"
        );
        drop(first);
        // Released once the first has stopped (its thread ended within the drop's wait).
        assert!(SyncedRegistry::start(options).is_ok());
    }
}
