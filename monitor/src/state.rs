//! The monitor's state behind the API, without HTTP: the detectors' engine, the alert book
//! and the store, restored on start ([`MonitorState::open`]), fed by [`MonitorState::ingest`],
//! and read by the queries.
//!
//! Ingest parses a body's lines before taking the lock; then, under one lock, it feeds every
//! good event to the engine, offers the crossings to the alert book, closes quiet alerts,
//! commits the alert changes to SQLite (they are rare), and appends the events with their
//! marks to the journal ([`crate::journal`]) as one frame. The answer is built after both, so
//! an acknowledged event (and the alert it raised) is durable, and the alert is visible to
//! `GET /v1/alerts`. The alert changes are committed before the frame: a crash between the two
//! leaves an alert whose events were not acknowledged (the sender sends them again, and the
//! restored open alert is extended), never an acknowledged event whose alert is lost.
//!
//! The store is SQLite in the data folder, or PostgreSQL with `[service] db` (`serve --db`,
//! [`crate::pgstore`]): then the journal stays local, and alert changes that cannot reach
//! PostgreSQL are committed to a local outbox instead, so ingest goes on answering while
//! PostgreSQL is away (the alerts are shown once the indexer has sent them on).
//!
//! The indexer ([`crate::indexer`]) fills SQLite's event tables from the journal on its own
//! thread. Queries of events wait up to [`QUERY_WAIT`] for it to reach what was acknowledged
//! when they began, and the caller and SPC views say how many acknowledged events were still
//! unindexed when they answered (`unindexed`, also the metric `monitor_index_lag_events`).
//!
//! On start the journal's frames past the store's checkpoint are indexed first; then the open
//! alerts go back into the book, and the stored events newer than the
//! newest event time minus [`Engine::horizon`] are replayed into a fresh engine in event-time
//! order, so the windows are whole again. Crossings during replay are not offered to the book:
//! each batch's alert changes were committed with its events, so they are already stored,
//! and the restored open alerts are extended (not duplicated) by what comes next.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::Serialize;

use crate::alerts::{Alert, AlertBook, AlertChange};
use crate::config::MonitorConfig;
use crate::detect::{DetectorId, Engine, WindowCounts};
use crate::event::{parse_body, parse_line, Event};
use crate::indexer::{self, encode_record, Indexer, Progress};
use crate::journal::{self, JournalReader, JournalWriter};
use crate::metrics::Metrics;
use crate::seen::{self, SeenSet};
use crate::shards::{Shard, Shards};
use crate::store::{AlertQuery, MinuteCounts, Store, StoreError, StoredEvent};

/// Minutes of per-minute counts kept in memory for `GET /v1/stats` (24 hours).
pub const STATS_MINUTES: u64 = 24 * 60;
/// Events per lookup in the caller, SPC and traceback views.
pub const RECENT_EVENTS: usize = 100;
/// How long a query of events waits for the indexer to reach what was acknowledged when
/// it began; after it, the query answers from what is indexed and reports the rest.
pub const QUERY_WAIT: Duration = Duration::from_secs(2);
/// Acknowledged events the indexer may be behind before ingest waits for it: about 1.2 GB
/// of journal at 300 bytes a line, some 40 s of indexing at its measured rate. It bounds the
/// journal's disk and the time a restart spends indexing the tail.
pub const MAX_INDEX_LAG: u64 = 4_000_000;
/// How long ingest waits for the indexer to get under [`MAX_INDEX_LAG`] before answering
/// 503 ([`StoreError::Backlog`]).
pub const BACKLOG_WAIT: Duration = Duration::from_secs(30);
/// Events deleted per retention transaction.
pub const PRUNE_CHUNK: usize = 10_000;
/// Seconds of event time without a crossing after which an alert closes, for a detector
/// whose window is unknown (each known detector's quiet window is its own window).
pub const QUIET_SECONDS: u64 = 3600;

/// One rejected line of a body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Rejected {
    /// The line number, from 1.
    pub line: usize,
    /// Why it was refused.
    pub error: String,
}

/// The answer to `POST /v1/events`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct IngestReport {
    /// Events stored (committed).
    pub accepted: usize,
    /// Lines refused, in order.
    pub rejected: Vec<Rejected>,
}

/// What `GET /v1/callers/{tn}` and `GET /v1/spcs/{spc}` serve.
#[derive(Clone, Debug, Serialize)]
pub struct SubjectView {
    /// The detectors' current window counts.
    pub windows: WindowCounts,
    /// The newest events, newest first.
    pub recent: Vec<StoredEvent>,
    /// Its alerts, newest first.
    pub alerts: Vec<Alert>,
    /// Acknowledged events not yet indexed when this was answered (0 unless the indexer is
    /// more than [`QUERY_WAIT`] behind): `recent` may miss up to this many.
    pub unindexed: u64,
}

/// What `GET /v1/stats` serves (the dashboard's data).
#[derive(Clone, Debug, Serialize)]
pub struct Stats {
    /// The newest event time seen (0 before any).
    pub time: u64,
    /// One entry per minute, oldest first, ending at the newest event's minute.
    pub per_minute: Vec<MinuteCounts>,
    /// The busiest calling numbers in the current hour window.
    pub top_callers: Vec<TopCaller>,
    /// Open alerts.
    pub alerts_open: u64,
}

/// One of the busiest calling numbers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TopCaller {
    /// The number.
    pub caller: String,
    /// Its calls in the window.
    pub count: u64,
}

/// What was restored on start.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Restored {
    /// Open alerts put back into the book.
    pub open_alerts: usize,
    /// Events replayed into the engine.
    pub replayed: u64,
    /// Stored lines the parser now refuses (skipped).
    pub unreadable: u64,
    /// Events indexed from the journal's tail (acknowledged before the stop, not yet in
    /// SQLite).
    pub indexed: u64,
}

struct Core {
    shards: Shards,
    book: AlertBook,
    store: Store,
    journal: JournalWriter,
    payload: Vec<u8>,
    minutes: BTreeMap<u64, MinuteCounts>,
    open_alerts: u64,
    /// The events taken within the horizon, when replays are recognized
    /// ([`MonitorState::recognize_replays`]).
    seen: Option<SeenSet>,
}

impl Core {
    fn count_minute(&mut self, event: &Event) {
        let minute = event.time - event.time % 60;
        self.minutes
            .entry(minute)
            .or_insert(MinuteCounts {
                minute,
                ..MinuteCounts::default()
            })
            .count(event);
    }

    fn trim_minutes(&mut self) {
        let newest = self.shards.newest_time();
        let oldest = newest.saturating_sub(STATS_MINUTES * 60);
        while let Some((&first, _)) = self.minutes.first_key_value() {
            if first >= oldest {
                break;
            }
            self.minutes.remove(&first);
        }
    }
}

/// The monitor's state: the engine, the book and the writing store behind one lock; a
/// reading store behind another, so queries do not wait for ingest.
pub struct MonitorState {
    core: Mutex<Core>,
    reader: Mutex<Store>,
    metrics: Metrics,
    retention_days: u64,
    max_future_seconds: u64,
    store_bytes: AtomicU64,
    progress: Arc<Progress>,
    indexer: Indexer,
    journal_dir: std::path::PathBuf,
    max_index_lag: u64,
    backlog_wait: Duration,
    consumer_stats: std::sync::OnceLock<Arc<crate::consume::ConsumeStats>>,
    replayed: AtomicU64,
    /// Records shown to a partition's engine while rebuilding it.
    rebuilt: AtomicU64,
    /// Open alerts adopted from the alerts topic with a partition.
    adopted: AtomicU64,
    /// Alerts published (the alerts topic's counter) when the publisher was last flushed.
    flushed: AtomicU64,
    /// Whether [`Self::consume_partitions`] has run.
    partitioned: std::sync::atomic::AtomicBool,
    cluster: std::sync::OnceLock<ClusterLink>,
}

/// The alerts topic, when the service has one ([`MonitorState::attach_cluster`]).
struct ClusterLink {
    alerts: Arc<crate::cluster::ClusterAlerts>,
    publisher: Option<Arc<crate::cluster::AlertPublisher>>,
}

impl std::fmt::Debug for MonitorState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MonitorState")
            .field("retention_days", &self.retention_days)
            .finish_non_exhaustive()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves nothing half-written in SQLite (the transaction
    // rolls back); the in-memory state is kept as it is.
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl MonitorState {
    /// Opens the store in `dir` (created 0700 when missing), builds the engine from `config`
    /// and the allow list (`allow_file`, then the changes made through the API), restores
    /// the open alerts and replays the events the windows need.
    pub fn open(
        dir: &Path,
        config: &MonitorConfig,
        allow_file: Vec<String>,
    ) -> Result<(Self, Restored), StoreError> {
        let durability = config.service.durability;
        let db = config.service.db.as_ref();
        let store = Store::open_in(dir, durability, db)?;
        let journal_dir = dir.join(journal::FOLDER);
        let checkpoint = store.checkpoint()?;
        let journal = JournalWriter::open(&journal_dir, durability, checkpoint)?;
        let mut index_store = Store::open_in(dir, durability, db)?;
        let indexed = indexer::catch_up(
            &mut index_store,
            &mut JournalReader::new(&journal_dir, checkpoint),
            journal.last_seq(),
        )?;
        journal::remove_indexed(&journal_dir, journal.last_seq())?;
        let reader = Store::open_reader_in(dir, db)?;
        let mut engine = Engine::new(&config.detection, allow_file);
        for (tn, allowed) in store.allow_changes()? {
            if allowed {
                engine.allow(&tn);
            } else {
                engine.disallow(&tn);
            }
        }
        let mut book = AlertBook::new(QUIET_SECONDS, store.next_alert_id()?);
        // Each detector's alerts close after a quiet stretch as long as its window, so a
        // 24-hour `complaints` alert is not closed and reopened within its own window.
        for detector in DetectorId::ALL {
            book.set_quiet(detector, config.detection.window(detector).max(1));
        }
        let open = store.open_alerts()?;
        let mut restored = Restored {
            open_alerts: open.len(),
            indexed,
            ..Restored::default()
        };
        let open_alerts = open.len() as u64;
        for alert in open {
            book.restore(alert);
        }
        let mut minutes = BTreeMap::new();
        if let Some(newest) = store.newest_event_time()? {
            let since = newest.saturating_sub(engine.horizon());
            let mut unreadable = 0;
            restored.replayed = store.replay(since, |line| match parse_line(line) {
                Ok(event) => {
                    engine.observe(&event);
                }
                Err(_) => unreadable += 1,
            })?;
            restored.unreadable = unreadable;
            let newest_minute = newest - newest % 60;
            for counts in store.minute_counts(
                newest_minute.saturating_sub((STATS_MINUTES - 1) * 60),
                newest_minute,
            )? {
                minutes.insert(counts.minute, counts);
            }
        }
        let progress = Arc::new(Progress::at(journal.last_seq()));
        let indexer = Indexer::start(&journal_dir, index_store, Arc::clone(&progress));
        let state = Self {
            core: Mutex::new(Core {
                shards: Shards::new(engine),
                book,
                store,
                journal,
                payload: Vec::new(),
                minutes,
                open_alerts,
                seen: None,
            }),
            reader: Mutex::new(reader),
            metrics: Metrics::default(),
            retention_days: config.service.retention_days,
            max_future_seconds: config.service.max_future_seconds,
            store_bytes: AtomicU64::new(0),
            progress,
            indexer,
            journal_dir,
            max_index_lag: MAX_INDEX_LAG,
            backlog_wait: BACKLOG_WAIT,
            consumer_stats: std::sync::OnceLock::new(),
            replayed: AtomicU64::new(0),
            rebuilt: AtomicU64::new(0),
            adopted: AtomicU64::new(0),
            partitioned: std::sync::atomic::AtomicBool::new(false),
            flushed: AtomicU64::new(0),
            cluster: std::sync::OnceLock::new(),
        };
        state.refresh_store_size();
        Ok((state, restored))
    }

    /// The counters.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Parses a body of event lines, runs the detectors over the good ones, commits the alert
    /// changes they caused and appends the events to the journal, all before this returns.
    /// A bad line is reported and never drops the good ones. On a store error the body is
    /// not acknowledged (its events may or may not be kept: the sender sends it again).
    ///
    /// `now` is the monitor's clock: a line whose `time` is more than `max_future_seconds`
    /// ahead of it is refused (the detectors' windows follow the newest event time, so one
    /// event far in the future would make every later one late).
    pub fn ingest(&self, body: &[u8], now: u64) -> Result<IngestReport, StoreError> {
        self.ingest_with(body, now, false, Shard::Pushed)
    }

    /// Ingests as [`Self::ingest`] does, for a stream read at least once: once
    /// [`Self::recognize_replays`] has run, an event already taken (the same `origid` and
    /// line, within the set's bound, see [`crate::seen`]) is skipped: not stored, not shown to
    /// the detectors, not counted in `accepted`, counted in `monitor_replayed_events_total`.
    /// Events are recorded as taken only once their body is stored, so a body whose store
    /// failed is taken whole when it comes again.
    pub fn ingest_once(&self, body: &[u8], now: u64) -> Result<IngestReport, StoreError> {
        self.ingest_with(body, now, true, Shard::Pushed)
    }

    /// Ingests records of one partition of the call-event topic, in offset order, into that
    /// partition's engine ([`crate::shards`]), recognizing replays as [`Self::ingest_once`]
    /// does, with one difference: a replayed event is still shown to the partition's engine
    /// (its crossings not offered to the book), since a partition's engine is rebuilt from the
    /// topic only up to its committed offset ([`Self::begin_rebuild`]) and the events after it
    /// that this instance had stored before a restart must be in the windows too.
    pub fn ingest_partition(
        &self,
        partition: i32,
        body: &[u8],
        now: u64,
    ) -> Result<IngestReport, StoreError> {
        self.ingest_with(body, now, true, Shard::Partition(partition))
    }

    /// Starts rebuilding a newly assigned partition's windows: its engine is emptied and its
    /// alerts (if the book held any) forgotten. Feed it the partition's records from the
    /// detectors' horizon up to the committed offset with [`Self::rebuild`], then call
    /// [`Self::end_rebuild`].
    pub fn begin_rebuild(&self, partition: i32) {
        let mut core = lock(&self.core);
        let shard = Shard::Partition(partition);
        core.shards.reset(shard);
        core.book.forget(shard);
        core.open_alerts = core.book.open_count() as u64;
    }

    /// Shows already-handled records of a partition to its engine only: not stored, no
    /// alert offered (their alerts were raised by the partition's previous owner). Lines
    /// ingest refuses (unreadable, `time` too far ahead of `now`) are skipped as ingest
    /// skipped them. Returns the events shown.
    pub fn rebuild(&self, partition: i32, body: &[u8], now: u64) -> u64 {
        let parsed = parse_body(body);
        let latest = now.saturating_add(self.max_future_seconds);
        let mut core = lock(&self.core);
        let engine = core.shards.engine_mut(Shard::Partition(partition));
        let mut shown = 0;
        for (_, result) in parsed {
            match result {
                Ok(line) if line.event.time <= latest => {
                    engine.observe(&line.event);
                    shown += 1;
                }
                _ => {}
            }
        }
        self.rebuilt.fetch_add(shown, Ordering::Relaxed);
        shown
    }

    /// Ends a partition's rebuild: of `cluster_alerts` (the open alerts the alerts topic
    /// holds, with the partition that raised each), those raised by this partition are
    /// adopted into its book ([`AlertBook::adopt`]), so that the partition's next crossings
    /// extend them as their previous owner would have, instead of raising them again; so are
    /// open caller alerts with no partition (published before records named it) about a
    /// calling number whose calls the rebuilt windows hold. Returns how many were adopted.
    pub fn end_rebuild(&self, partition: i32, cluster_alerts: &[(Option<i32>, Alert)]) -> usize {
        let mut core = lock(&self.core);
        let shard = Shard::Partition(partition);
        let core = &mut *core;
        let Some(engine) = core.shards.engine(shard) else {
            return 0;
        };
        let mut adopted = 0;
        for (raised_in, alert) in cluster_alerts {
            let ours = match (raised_in, &alert.subject) {
                (Some(p), _) => *p == partition,
                (None, crate::detect::Subject::Caller(tn)) => engine.knows_caller(tn),
                (None, _) => false,
            };
            if ours && core.book.adopt(shard, alert).is_some() {
                adopted += 1;
            }
        }
        core.open_alerts = core.book.open_count() as u64;
        self.adopted.fetch_add(adopted as u64, Ordering::Relaxed);
        adopted
    }

    /// Forgets a revoked partition: its engine and its open alerts (not closed: the new
    /// owner adopts them).
    pub fn drop_partition(&self, partition: i32) {
        let mut core = lock(&self.core);
        let shard = Shard::Partition(partition);
        core.shards.remove(shard);
        core.book.forget(shard);
        core.open_alerts = core.book.open_count() as u64;
    }

    /// Readies the state for consuming partitions, once (later calls do nothing): the
    /// windows and open alerts restored from the store into the pushed events' engine are
    /// dropped, since each partition's are rebuilt from the topic when it is assigned, and its
    /// open alerts adopted from the alerts topic (keeping both would count a caller twice).
    /// The service calls it before its API listens.
    pub fn consume_partitions(&self) {
        if self.partitioned.swap(true, Ordering::Relaxed) {
            return;
        }
        let mut core = lock(&self.core);
        core.shards.reset(Shard::Pushed);
        core.book.forget(Shard::Pushed);
        core.open_alerts = core.book.open_count() as u64;
    }

    /// The seconds of event history a partition's windows need behind its newest event.
    pub fn horizon(&self) -> u64 {
        lock(&self.core).shards.horizon()
    }

    /// The alerts topic's alerts, when the service reads one.
    pub fn cluster_alerts(&self) -> Option<Arc<crate::cluster::ClusterAlerts>> {
        self.cluster.get().map(|link| Arc::clone(&link.alerts))
    }

    /// Waits (at most `wait`) until the alerts published so far have reached the broker:
    /// called before offsets are committed, so a committed event's alert is on the topic.
    /// Returns false when they have not.
    /// Waits only when alerts were published since the last successful flush, so a round
    /// that raised none never waits on an alerts topic that is slow or missing.
    pub fn flush_alerts(&self, wait: Duration) -> bool {
        let Some(link) = self.cluster.get() else {
            return true;
        };
        let Some(publisher) = link.publisher.as_ref() else {
            return true;
        };
        let published = link.alerts.published.load(Ordering::Relaxed);
        if published == self.flushed.load(Ordering::Relaxed) {
            return true;
        }
        let flushed = publisher.flush(wait);
        if flushed {
            self.flushed.store(published, Ordering::Relaxed);
        }
        flushed
    }

    /// Starts recognizing replayed events in [`Self::ingest_once`]: the set holds the detectors'
    /// horizon (the longest window plus the lateness) and at most `cap` entries, and is filled
    /// first with the stored events of that horizon (a monitor restarted after `kill -9`
    /// recognizes what it had stored but not committed). Returns the events it was filled with.
    pub fn recognize_replays(&self, cap: usize) -> Result<u64, StoreError> {
        self.settle();
        let mut core = lock(&self.core);
        let horizon = core.shards.horizon();
        let mut set = SeenSet::new(horizon, cap);
        let newest = core.store.newest_event_time()?;
        if let Some(newest) = newest {
            core.store.replay(newest.saturating_sub(horizon), |line| {
                if let Ok(event) = parse_line(line) {
                    set.insert(seen::key(event.origid.as_deref(), line), event.time);
                }
            })?;
        }
        let filled = set.len() as u64;
        core.seen = Some(set);
        Ok(filled)
    }

    fn ingest_with(
        &self,
        body: &[u8],
        now: u64,
        once: bool,
        shard: Shard,
    ) -> Result<IngestReport, StoreError> {
        let parsed = parse_body(body);
        let mut good = Vec::with_capacity(parsed.len());
        let mut rejected = Vec::new();
        let latest = now.saturating_add(self.max_future_seconds);
        for (line, result) in parsed {
            match result {
                Ok(parsed) if parsed.event.time > latest => rejected.push(Rejected {
                    line,
                    error: format!(
                        "`time` is {} s ahead of the monitor's clock (at most {} allowed)",
                        parsed.event.time - now,
                        self.max_future_seconds
                    ),
                }),
                Ok(line) => good.push(line),
                Err(error) => rejected.push(Rejected {
                    line,
                    error: error.to_string(),
                }),
            }
        }
        self.metrics.rejected(rejected.len() as u64);
        self.wait_for_backlog()?;
        let mut guard = lock(&self.core);
        let core = &mut *guard;
        let mut keys = Vec::new();
        // Per good line: whether it is taken now (stored, counted, its crossings offered); a
        // replay is not. On a partition, a replay (a record after the committed offset that
        // this instance had stored before a restart) is still shown to the partition's
        // engine, whose windows were rebuilt only up to the committed offset; its crossings
        // are not offered (its alerts were stored, and published for adoption, when it was
        // first taken).
        let mut fresh = vec![true; good.len()];
        let mut detect = vec![true; good.len()];
        if let (true, Some(seen)) = (once, core.seen.as_ref()) {
            let mut in_body = std::collections::HashSet::new();
            for (i, line) in good.iter().enumerate() {
                let key = seen::key(line.event.origid.as_deref(), line.raw);
                let new = !seen.contains(key) && in_body.insert(key);
                if new {
                    keys.push((key, line.event.time));
                } else {
                    let shown = shard != Shard::Pushed && in_body.insert(key);
                    if let (Some(f), Some(d)) = (fresh.get_mut(i), detect.get_mut(i)) {
                        *f = false;
                        *d = shown;
                    }
                }
            }
            self.replayed.fetch_add(
                fresh.iter().filter(|f| !**f).count() as u64,
                Ordering::Relaxed,
            );
        }
        let mut marks: Vec<(Vec<DetectorId>, bool)> = Vec::with_capacity(good.len());
        let mut changed: Vec<Alert> = Vec::new();
        let mut position: HashMap<u64, usize> = HashMap::new();
        let mut record = |alert: Alert, changed: &mut Vec<Alert>| match position.get(&alert.id) {
            Some(&i) => {
                if let Some(slot) = changed.get_mut(i) {
                    *slot = alert;
                }
            }
            None => {
                position.insert(alert.id, changed.len());
                changed.push(alert);
            }
        };
        let mut opened = Vec::new();
        let mut closed_count = 0_u64;
        let engine = core.shards.engine_mut(shard);
        let mut closed_at = engine.newest_time();
        for (i, line) in good.iter().enumerate() {
            if !detect.get(i).copied().unwrap_or(true) {
                continue;
            }
            let engine = core.shards.engine_mut(shard);
            let observation = engine.observe(&line.event);
            if !fresh.get(i).copied().unwrap_or(true) {
                continue;
            }
            let newest = engine.newest_time();
            for crossing in observation.crossings {
                match core.book.offer_in(shard, crossing) {
                    Some(AlertChange::Opened(alert)) => {
                        opened.push(alert.detector);
                        record(alert, &mut changed);
                    }
                    Some(AlertChange::Extended(alert)) => record(alert, &mut changed),
                    Some(AlertChange::Reopened {
                        closed,
                        opened: new,
                    }) => {
                        closed_count += 1;
                        record(closed, &mut changed);
                        opened.push(new.detector);
                        record(new, &mut changed);
                    }
                    None => {}
                }
            }
            marks.push((observation.marks, observation.late));
            // Alerts close as event time passes, event by event, as they would if each
            // event came in a body of its own: a big body and a live stream close (and so
            // reopen) the same alerts.
            if newest > closed_at {
                closed_at = newest;
                let closed = core.book.close_quiet_in(shard, newest);
                closed_count += closed.len() as u64;
                for alert in closed {
                    record(alert, &mut changed);
                }
            }
        }
        // Only the events taken now are stored (their marks are in `marks`, in order).
        let mut index = 0;
        good.retain(|_| {
            let keep = fresh.get(index).copied().unwrap_or(true);
            index += 1;
            keep
        });
        if !changed.is_empty() {
            if let Err(error) = core.store.write_batch(&[], &changed) {
                self.metrics.store_error();
                return Err(error);
            }
            // Published under the lock, so the topic gets an alert's versions in order.
            if let Some(link) = self.cluster.get() {
                if let Some(publisher) = &link.publisher {
                    let partition = match shard {
                        Shard::Partition(p) => Some(p),
                        Shard::Pushed => None,
                    };
                    publisher.publish(&changed, partition, &link.alerts);
                }
            }
        }
        if !good.is_empty() {
            let mut payload = std::mem::take(&mut core.payload);
            payload.clear();
            for (line, (marks, late)) in good.iter().zip(&marks) {
                encode_record(&mut payload, marks, *late, line.raw);
            }
            let appended = core.journal.append(&payload);
            core.payload = payload;
            match appended {
                Ok(seq) => self.progress.journaled(seq, good.len() as u64),
                Err(error) => {
                    self.metrics.store_error();
                    return Err(error);
                }
            }
            self.indexer.wake();
        }
        if let Some(seen) = core.seen.as_mut().filter(|_| once) {
            for (key, time) in keys {
                seen.insert(key, time);
            }
        }
        core.open_alerts = (core.open_alerts + opened.len() as u64).saturating_sub(closed_count);
        for line in &good {
            core.count_minute(&line.event);
        }
        core.trim_minutes();
        drop(guard);
        for line in &good {
            self.metrics.event(line.event.kind);
        }
        self.metrics
            .late(marks.iter().filter(|(_, late)| *late).count() as u64);
        for detector in opened {
            self.metrics.alert(detector);
        }
        Ok(IngestReport {
            accepted: good.len(),
            rejected,
        })
    }

    /// Waits while the indexer is more than [`MAX_INDEX_LAG`] events behind, at most
    /// [`BACKLOG_WAIT`].
    fn wait_for_backlog(&self) -> Result<(), StoreError> {
        let deadline = std::time::Instant::now() + self.backlog_wait;
        loop {
            let lag = self.progress.lag_events();
            if lag <= self.max_index_lag {
                return Ok(());
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                self.metrics.store_error();
                return Err(StoreError::Backlog { lag });
            }
            self.progress.wait_indexed(
                self.progress.indexed_seq() + 1,
                left.min(Duration::from_secs(1)),
            );
        }
    }

    /// Waits (at most [`QUERY_WAIT`]) until the indexer has reached what is acknowledged
    /// now; returns the acknowledged events still unindexed.
    fn settle(&self) -> u64 {
        self.progress
            .wait_indexed(self.progress.journaled_seq(), QUERY_WAIT);
        self.progress.lag_events()
    }

    /// The journal's and the indexer's progress.
    pub fn index_progress(&self) -> &Progress {
        &self.progress
    }

    /// Alerts matching `query`, newest first.
    pub fn alerts(&self, query: &AlertQuery) -> Result<Vec<Alert>, StoreError> {
        let local = lock(&self.reader).alerts(query)?;
        Ok(self.with_cluster(local, query))
    }

    /// `local` merged with the cluster's alerts that pass `query`, when there is an alerts
    /// topic ([`crate::cluster::ClusterAlerts::merge`]); `local` as it is otherwise.
    fn with_cluster(&self, local: Vec<Alert>, query: &AlertQuery) -> Vec<Alert> {
        match self.cluster.get() {
            Some(link) => link.alerts.merge(local, query),
            None => local,
        }
    }

    /// Shows the cluster's alerts read from the alerts topic in [`Self::alerts`], the caller
    /// and SPC views, and publishes the alerts this state stores through `publisher` (the
    /// first attached stays).
    pub fn attach_cluster(
        &self,
        alerts: Arc<crate::cluster::ClusterAlerts>,
        publisher: Option<Arc<crate::cluster::AlertPublisher>>,
    ) {
        let _ = self.cluster.set(ClusterLink { alerts, publisher });
    }

    /// A calling number's window counts, newest calls and alerts.
    pub fn caller(&self, tn: &str) -> Result<SubjectView, StoreError> {
        let windows = lock(&self.core).shards.caller_counts(tn);
        let unindexed = self.settle();
        let reader = lock(&self.reader);
        Ok(SubjectView {
            unindexed,
            windows,
            recent: reader.events_by_caller(tn, RECENT_EVENTS)?,
            alerts: {
                let query = AlertQuery {
                    subject: Some(crate::detect::Subject::Caller(tn.to_owned()).into()),
                    limit: RECENT_EVENTS,
                    ..AlertQuery::default()
                };
                self.with_cluster(reader.alerts(&query)?, &query)
            },
        })
    }

    /// A signing carrier's window counts, newest calls and alerts.
    pub fn spc(&self, spc: &str) -> Result<SubjectView, StoreError> {
        let windows = lock(&self.core).shards.spc_counts(spc);
        let unindexed = self.settle();
        let reader = lock(&self.reader);
        Ok(SubjectView {
            unindexed,
            windows,
            recent: reader.events_by_spc(spc, RECENT_EVENTS)?,
            alerts: {
                let query = AlertQuery {
                    subject: Some(crate::detect::Subject::Spc(spc.to_owned()).into()),
                    limit: RECENT_EVENTS,
                    ..AlertQuery::default()
                };
                self.with_cluster(reader.alerts(&query)?, &query)
            },
        })
    }

    /// A call's stored events, oldest first.
    pub fn call(&self, origid: &str) -> Result<Vec<StoredEvent>, StoreError> {
        self.settle();
        lock(&self.reader).events_by_origid(origid, RECENT_EVENTS)
    }

    /// A called number's newest events, newest first.
    pub fn called(&self, tn: &str) -> Result<Vec<StoredEvent>, StoreError> {
        self.settle();
        lock(&self.reader).events_by_called(tn, RECENT_EVENTS)
    }

    /// Adds (`allowed`) or removes a number from the allow list, persisted; true when it
    /// changed the list.
    pub fn set_allowed(&self, tn: &str, allowed: bool, now: u64) -> Result<bool, StoreError> {
        let mut core = lock(&self.core);
        core.store.set_allowed(tn, allowed, now)?;
        Ok(if allowed {
            core.shards.allow(tn)
        } else {
            core.shards.disallow(tn)
        })
    }

    /// Hands the regulator's current list to the detectors (white-listed firms' numbers are
    /// held to their firm's quota); `None` removes it.
    pub fn set_list(&self, list: Option<std::sync::Arc<lists::ActiveList>>) {
        lock(&self.core).shards.set_list(list);
    }

    /// Gives the detectors a bare list index (tests, the lab, [`crate::mix`]).
    pub fn set_list_index(&self, index: Option<std::sync::Arc<lists::ListIndex>>) {
        lock(&self.core).shards.set_list_index(index);
    }

    /// The allow list, sorted.
    pub fn allowed(&self) -> Vec<String> {
        lock(&self.core).shards.allowed()
    }

    /// The dashboard's figures over the last `minutes` minutes (at most [`STATS_MINUTES`]).
    pub fn stats(&self, minutes: u64) -> Stats {
        let minutes = minutes.clamp(1, STATS_MINUTES);
        let core = lock(&self.core);
        let time = core.shards.newest_time();
        let last = time - time % 60;
        let first = last.saturating_sub((minutes - 1) * 60);
        let per_minute = (0..minutes)
            .map(|i| first + i * 60)
            .filter(|m| *m <= last && (time > 0 || *m == 0))
            .map(|minute| {
                core.minutes.get(&minute).copied().unwrap_or(MinuteCounts {
                    minute,
                    ..MinuteCounts::default()
                })
            })
            .collect();
        Stats {
            time,
            per_minute,
            top_callers: core
                .shards
                .top_callers(20)
                .into_iter()
                .map(|(caller, count)| TopCaller { caller, count })
                .collect(),
            alerts_open: core.open_alerts,
        }
    }

    /// Deletes what is older than the retention before `now` (seconds since the epoch):
    /// events in bounded transactions (the lock is released between them, so ingest goes
    /// on), then closed alerts. Returns the events deleted.
    pub fn prune(&self, now: u64) -> Result<u64, StoreError> {
        let cutoff = now.saturating_sub(self.retention_days.saturating_mul(86_400));
        // Events still in the journal are pruned on a later run.
        self.settle();
        let mut deleted = 0;
        loop {
            let n = lock(&self.core).store.prune_events(cutoff, PRUNE_CHUNK)?;
            deleted += n;
            if n < PRUNE_CHUNK as u64 {
                break;
            }
        }
        lock(&self.core).store.prune_alerts(cutoff)?;
        self.refresh_store_size();
        Ok(deleted)
    }

    /// Reads the database size again (for `/metrics`).
    pub fn refresh_store_size(&self) {
        if let Ok(bytes) = lock(&self.reader).size_bytes() {
            self.store_bytes.store(bytes, Ordering::Relaxed);
        }
    }

    /// The `/metrics` text.
    pub fn render_metrics(&self) -> String {
        let (memory, callers, open) = {
            let core = lock(&self.core);
            (
                core.shards.memory_bytes(),
                core.shards.active_callers(),
                core.open_alerts,
            )
        };
        let mut text = self.metrics.render(
            memory as u64,
            callers as u64,
            open,
            self.store_bytes.load(Ordering::Relaxed),
        );
        text.push_str(&crate::metrics::render_index(
            &self.progress,
            journal::size_bytes(&self.journal_dir),
        ));
        if let Some(stats) = self.consumer_stats.get() {
            text.push_str(&stats.render());
            let (rebuilt, adopted) = (
                self.rebuilt.load(Ordering::Relaxed),
                self.adopted.load(Ordering::Relaxed),
            );
            text.push_str(&format!(
                "# HELP monitor_kafka_rebuilt_records_total Records read again to rebuild the windows of partitions taken over.\n\
                 # TYPE monitor_kafka_rebuilt_records_total counter\nmonitor_kafka_rebuilt_records_total {rebuilt}\n\
                 # HELP monitor_kafka_adopted_alerts_total Open alerts taken over from the alerts topic with a partition.\n\
                 # TYPE monitor_kafka_adopted_alerts_total counter\nmonitor_kafka_adopted_alerts_total {adopted}\n"
            ));
        }
        if let Some(link) = self.cluster.get() {
            text.push_str(&link.alerts.render());
        }
        let evicted = lock(&self.core).seen.as_ref().map(SeenSet::evicted);
        if let Some(evicted) = evicted {
            let replayed = self.replayed.load(Ordering::Relaxed);
            text.push_str(&format!(
                "# HELP monitor_replayed_events_total Events read again from the stream and skipped (already taken).\n\
                 # TYPE monitor_replayed_events_total counter\nmonitor_replayed_events_total {replayed}\n\
                 # HELP monitor_replay_set_evicted_total Taken events forgotten by the cap while inside the window.\n\
                 # TYPE monitor_replay_set_evicted_total counter\nmonitor_replay_set_evicted_total {evicted}\n"
            ));
        }
        text
    }

    /// Adds a Kafka consumer's counters to `/metrics` (the first one attached stays).
    pub fn attach_consumer_stats(&self, stats: Arc<crate::consume::ConsumeStats>) {
        let _ = self.consumer_stats.set(stats);
    }

    /// The engine's window memory estimate and active callers.
    pub fn window_memory(&self) -> (usize, usize) {
        let core = lock(&self.core);
        (core.shards.memory_bytes(), core.shards.active_callers())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]
    use super::*;
    use crate::detect::Subject;

    const CALLER: &str = "8613800000001";
    const T0: u64 = 1_700_000_000;
    /// The monitor's clock in these tests: a day after the first event.
    const NOW: u64 = T0 + 86_400;

    fn call(time: u64, from: &str, to: u64, origid: &str) -> String {
        format!(
            r#"{{"time":{time},"from":"{from}","to":["86139{to:08}"],"verstat":"TN-Validation-Passed","attest":"A","spc":"709J","origid":"{origid}","flags":[]}}"#
        )
    }

    fn calls(from: u64, n: u64) -> String {
        (from..from + n)
            .map(|i| call(T0 + i, CALLER, i, &format!("o{i}")) + "\n")
            .collect()
    }

    fn open(dir: &Path) -> MonitorState {
        MonitorState::open(dir, &MonitorConfig::default(), Vec::new())
            .unwrap()
            .0
    }

    fn alerts_of(state: &MonitorState, detector: DetectorId) -> Vec<Alert> {
        state
            .alerts(&AlertQuery {
                subject: Some(Subject::Caller(CALLER.into()).into()),
                detector: Some(detector),
                limit: 100,
                ..AlertQuery::default()
            })
            .unwrap()
    }

    #[test]
    fn a_taken_over_partition_extends_the_alert_its_previous_owner_raised() {
        let (dir_a, dir_b, dir_c) = (
            tempfile::tempdir().unwrap(),
            tempfile::tempdir().unwrap(),
            tempfile::tempdir().unwrap(),
        );
        let (first, second) = (calls(0, 30), calls(30, 30));
        // A owns partition 3 and raises the alert.
        let a = open(dir_a.path());
        a.consume_partitions();
        a.ingest_partition(3, first.as_bytes(), NOW).unwrap();
        let raised = alerts_of(&a, DetectorId::HighFrequency);
        assert_eq!(raised.len(), 1, "{raised:?}");
        // B takes partition 3 over: the rebuild raises nothing, the adoption takes A's open
        // alert of partition 3 and not another partition's.
        let b = open(dir_b.path());
        b.consume_partitions();
        b.begin_rebuild(3);
        let far_ahead = call(NOW + 3600, CALLER, 99, "late-clock");
        assert_eq!(
            b.rebuild(3, format!("{first}{far_ahead}\n").as_bytes(), NOW),
            30,
            "a line ingest would refuse is not shown to the windows"
        );
        assert!(alerts_of(&b, DetectorId::HighFrequency).is_empty());
        let mut elsewhere = raised[0].clone();
        elsewhere.subject = Subject::Caller("8613800000002".into());
        let cluster = [(Some(3), raised[0].clone()), (Some(4), elsewhere)];
        assert_eq!(b.end_rebuild(3, &cluster), 1);
        b.ingest_partition(3, second.as_bytes(), NOW).unwrap();
        let extended = alerts_of(&b, DetectorId::HighFrequency);
        assert_eq!(
            extended.len(),
            1,
            "extended, not raised again: {extended:?}"
        );
        assert_eq!(extended[0].time, raised[0].time);
        // As a single node that read the whole partition.
        let c = open(dir_c.path());
        c.consume_partitions();
        c.ingest_partition(3, format!("{first}{second}").as_bytes(), NOW)
            .unwrap();
        let reference = alerts_of(&c, DetectorId::HighFrequency);
        assert_eq!(reference.len(), 1, "{reference:?} vs {extended:?}");
        let view = |a: &Alert| (a.time, a.last, a.count, a.closed);
        assert_eq!(view(&extended[0]), view(&reference[0]));
        // Revoked: forgotten by the book, kept in the store.
        assert_eq!(b.stats(60).alerts_open, c.stats(60).alerts_open);
        b.drop_partition(3);
        assert_eq!(b.stats(60).alerts_open, 0);
        assert_eq!(alerts_of(&b, DetectorId::HighFrequency).len(), 1);
    }

    #[test]
    fn partitions_out_of_step_do_not_make_each_other_late() {
        let dir = tempfile::tempdir().unwrap();
        let state = open(dir.path());
        state.consume_partitions();
        let ahead: String = (0..20)
            .map(|i| call(T0 + 7200 + i, "8613800000009", i, &format!("p{i}")) + "\n")
            .collect();
        state.ingest_partition(0, ahead.as_bytes(), NOW).unwrap();
        // Partition 1 is two hours behind partition 0: none of its events is late, and its
        // caller's alert is raised.
        state
            .ingest_partition(1, calls(0, 30).as_bytes(), NOW)
            .unwrap();
        assert!(state
            .render_metrics()
            .contains("\nmonitor_late_events_total 0\n"));
        assert_eq!(alerts_of(&state, DetectorId::HighFrequency).len(), 1);
    }

    #[test]
    fn a_line_far_ahead_of_the_clock_is_refused_and_the_others_kept() {
        let dir = tempfile::tempdir().unwrap();
        let (state, _) =
            MonitorState::open(dir.path(), &MonitorConfig::default(), Vec::new()).unwrap();
        let ahead = |t: u64| {
            format!(
                r#"{{"time":{t},"from":"{CALLER}","to":["8613900000001"],"verstat":"TN-Validation-Passed","flags":[]}}"#
            )
        };
        let body = format!(
            "{}\n{}\n{}\n",
            ahead(NOW + 300),
            ahead(NOW + 301),
            ahead(NOW)
        );
        let report = state.ingest(body.as_bytes(), NOW).unwrap();
        assert_eq!(report.accepted, 2);
        assert_eq!(report.rejected.len(), 1);
        assert_eq!(report.rejected[0].line, 2);
        assert!(
            report.rejected[0]
                .error
                .contains("301 s ahead of the monitor's clock"),
            "{}",
            report.rejected[0].error
        );
    }

    #[test]
    fn a_bad_line_is_reported_and_the_good_ones_stored() {
        let dir = tempfile::tempdir().unwrap();
        let state = open(dir.path());
        let body = format!(
            "{}\nnot json\n{}\n{{\"time\":1}}\n",
            call(T0, CALLER, 1, "a"),
            call(T0 + 1, CALLER, 2, "b")
        );
        let report = state.ingest(body.as_bytes(), NOW).unwrap();
        assert_eq!(report.accepted, 2);
        assert_eq!(
            report.rejected.iter().map(|r| r.line).collect::<Vec<_>>(),
            vec![2, 4]
        );
        assert!(report.rejected.iter().all(|r| !r.error.is_empty()));
        assert_eq!(state.call("b").unwrap().len(), 1);
        assert_eq!(state.metrics().rejected_lines(), 2);
        assert_eq!(state.metrics().events(), (2, 0));
    }

    #[test]
    fn windows_are_rebuilt_on_restart_and_an_open_alert_is_extended_not_duplicated() {
        let dir = tempfile::tempdir().unwrap();
        {
            let state = open(dir.path());
            state.ingest(calls(0, 8).as_bytes(), NOW).unwrap();
            assert!(alerts_of(&state, DetectorId::HighFrequency).is_empty());
        }
        // Eight calls before the restart, three after: eleven in one minute fire.
        let state = open(dir.path());
        assert_eq!(state.caller(CALLER).unwrap().recent.len(), 8);
        state.ingest(calls(8, 3).as_bytes(), NOW).unwrap();
        let fired = alerts_of(&state, DetectorId::HighFrequency);
        assert_eq!(fired.len(), 1, "{fired:?}");
        assert!(!fired[0].closed);
        assert_eq!(state.stats(5).alerts_open, 1);
        drop(state);

        let state = open(dir.path());
        state.ingest(calls(11, 2).as_bytes(), NOW).unwrap();
        let again = alerts_of(&state, DetectorId::HighFrequency);
        assert_eq!(again.len(), 1, "extended, not duplicated: {again:?}");
        assert_eq!(again[0].id, fired[0].id);
        assert!(again[0].last > fired[0].last);
        assert_eq!(state.stats(5).alerts_open, 1);
    }

    #[test]
    fn the_journal_tail_past_the_checkpoint_is_indexed_on_start() {
        let dir = tempfile::tempdir().unwrap();
        {
            let state = open(dir.path());
            state.ingest(calls(0, 4).as_bytes(), NOW).unwrap();
            assert_eq!(state.caller(CALLER).unwrap().recent.len(), 4);
        }
        // Frames acknowledged but not indexed when the process died: written to the journal
        // behind the store's back, as a kill -9 before the indexer's commit leaves them.
        {
            let store = Store::open(dir.path(), crate::config::Durability::Process).unwrap();
            let checkpoint = store.checkpoint().unwrap();
            assert!(checkpoint >= 1);
            let journal_dir = dir.path().join(journal::FOLDER);
            let mut writer =
                JournalWriter::open(&journal_dir, crate::config::Durability::Process, checkpoint)
                    .unwrap();
            for i in 4..11 {
                let mut payload = Vec::new();
                encode_record(
                    &mut payload,
                    &[],
                    false,
                    &call(T0 + i, CALLER, i, &format!("o{i}")),
                );
                writer.append(&payload).unwrap();
            }
        }
        let (state, restored) =
            MonitorState::open(dir.path(), &MonitorConfig::default(), Vec::new()).unwrap();
        assert_eq!(restored.indexed, 7);
        assert_eq!(restored.replayed, 11);
        assert_eq!(state.caller(CALLER).unwrap().recent.len(), 11);
        assert_eq!(state.call("o10").unwrap().len(), 1);
        // The windows were rebuilt with them: one more call in the minute fires.
        state.ingest(calls(11, 1).as_bytes(), NOW).unwrap();
        assert_eq!(alerts_of(&state, DetectorId::HighFrequency).len(), 1);
        // Once indexed (a query waits for it), a restart indexes nothing twice.
        assert_eq!(state.call("o11").unwrap().len(), 1);
        drop(state);
        let (state, restored) =
            MonitorState::open(dir.path(), &MonitorConfig::default(), Vec::new()).unwrap();
        assert_eq!(restored.indexed, 0);
        assert_eq!(state.caller(CALLER).unwrap().recent.len(), 12);
        assert_eq!(state.index_progress().lag_events(), 0);
        assert!(state
            .render_metrics()
            .contains("monitor_index_lag_events 0"));
    }

    #[test]
    fn ingest_waits_for_a_long_backlog_then_refuses() {
        let dir = tempfile::tempdir().unwrap();
        let mut state = open(dir.path());
        state.max_index_lag = 5;
        state.backlog_wait = Duration::from_millis(50);
        // Six acknowledged events the indexer has not reached (counted, no frame missing).
        let progress = state.index_progress();
        progress.journaled(progress.journaled_seq(), 6);
        let started = std::time::Instant::now();
        assert!(matches!(
            state.ingest(calls(0, 1).as_bytes(), NOW),
            Err(StoreError::Backlog { lag: 6 })
        ));
        assert!(started.elapsed() >= Duration::from_millis(50));
        assert!(
            state.call("o0").unwrap().is_empty(),
            "nothing of it was kept"
        );
        state.max_index_lag = 6;
        assert_eq!(
            state.ingest(calls(0, 1).as_bytes(), NOW).unwrap().accepted,
            1
        );
        assert_eq!(state.call("o0").unwrap().len(), 1);
    }

    #[test]
    fn stats_cover_the_minutes_ending_at_the_newest_event() {
        let dir = tempfile::tempdir().unwrap();
        let state = open(dir.path());
        assert_eq!(state.stats(3).time, 0);
        let complaint = format!(
            r#"{{"kind":"complaint","time":{},"from":"{CALLER}","to":["8613900000009"]}}"#,
            T0 + 130
        );
        let failed = call(T0 + 5, "8613800000002", 1, "f").replace("Passed", "Failed");
        let body = format!("{}\n{failed}\n{complaint}\n", call(T0, CALLER, 1, "p"));
        state.ingest(body.as_bytes(), NOW).unwrap();
        let stats = state.stats(4);
        assert_eq!(stats.time, T0 + 130);
        let minutes: Vec<u64> = stats.per_minute.iter().map(|m| m.minute).collect();
        let last = (T0 + 130) / 60 * 60;
        assert_eq!(minutes, vec![last - 180, last - 120, last - 60, last]);
        let total = |f: fn(&MinuteCounts) -> u64| stats.per_minute.iter().map(f).sum::<u64>();
        assert_eq!(total(|m| m.passed), 1);
        assert_eq!(total(|m| m.failed), 1);
        assert_eq!(total(|m| m.complaints), 1);
        drop(state);
        // The same figures come back from the store after a restart.
        let state = open(dir.path());
        let again = state.stats(4);
        assert_eq!(again.per_minute, stats.per_minute);
    }

    #[test]
    fn allow_list_changes_persist() {
        let dir = tempfile::tempdir().unwrap();
        let file_numbers = vec!["8613800000007".to_owned()];
        {
            let (state, _) =
                MonitorState::open(dir.path(), &MonitorConfig::default(), file_numbers.clone())
                    .unwrap();
            assert!(state.set_allowed(CALLER, true, T0).unwrap());
            assert!(!state.set_allowed(CALLER, true, T0).unwrap());
            assert!(state.set_allowed("8613800000007", false, T0).unwrap());
        }
        let (state, _) =
            MonitorState::open(dir.path(), &MonitorConfig::default(), file_numbers).unwrap();
        assert_eq!(state.allowed(), vec![CALLER.to_owned()]);
    }

    #[test]
    fn retention_prunes_by_event_time() {
        let dir = tempfile::tempdir().unwrap();
        let state = open(dir.path());
        state.ingest(calls(0, 3).as_bytes(), NOW).unwrap();
        assert_eq!(state.prune(T0 + 89 * 86_400).unwrap(), 0);
        assert_eq!(state.prune(T0 + 90 * 86_400 + 2).unwrap(), 2);
        assert_eq!(state.caller(CALLER).unwrap().recent.len(), 1);
    }
}
