//! The trace log: every signing decision (signed or refused) recorded durably before the
//! response is sent, so a traceback request can always be answered for a call that got an
//! Identity header.
//!
//! The path of a record:
//!
//! 1. the request's task serializes it (JSON) and hands it to the writer thread, then waits;
//! 2. the writer takes everything that queued meanwhile (group commit), writes it as one frame
//!    into the journal (`journal`: a preallocated file, one `fdatasync` per batch) and releases
//!    all the waiters: the records are durable;
//! 3. the indexer thread stores the frames in SQLite (`index`), in one transaction with the
//!    number of the last frame stored, as soon as a row's worth (64 KiB of records) is waiting
//!    or 100 ms after the oldest frame waiting arrived; SQLite checkpoints its WAL each time it
//!    holds about 1 MiB. A journal segment is reused once every frame in it is durable in
//!    SQLite: those commits sync, the others do not (a power loss may undo them, and the
//!    journal still holds their frames).
//!
//!    The indexer works in small steps on purpose: it shares the CPUs and the disk with the
//!    requests, and storing 100 ms of records at a time (about 4 ms of CPU and a megabyte
//!    written at 35,000 calls a second) delayed every request in flight meanwhile; a request's
//!    p99 showed the indexer's period (docs/PERFORMANCE.md).
//!
//! After a crash, [`TraceLog::open`] replays the frames SQLite does not have yet. Lookups read
//! SQLite and the journal's frames beyond it, so they see every record that was acknowledged,
//! from another process and while the signer runs.
//!
//! Files: the database (`trace_db`, SQLite) and, beside it, the directory `<trace_db>.journal/`
//! (segments of 8 MiB, at least two, files mode 0600, and a `lock` file that keeps a second
//! signer from using the same log).
//!
//! If SQLite stops taking records (disk full, a lock, an error), the journal grows, up to its
//! limit; then a request waits at most a second for room and fails, and signing resumes
//! when SQLite works again. Nothing acknowledged is lost.

mod filter;
mod index;
mod journal;

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::mpsc as std_mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

use crate::error::SignerError;
use journal::{Frame, Segment};

/// Default retention of trace records, in days.
pub const DEFAULT_RETENTION_DAYS: u64 = 90;
const QUEUE: usize = 65_536;
const MAX_BATCH: usize = 4096;
/// Segments made ready when the log opens.
const INITIAL_SEGMENTS: usize = 2;
/// Default limit of the journal's size.
pub const DEFAULT_JOURNAL_MAX_BYTES: u64 = 256 << 20;
/// The smallest journal: two segments (one written, one ready).
pub const MIN_JOURNAL_BYTES: u64 = INITIAL_SEGMENTS as u64 * journal::SEGMENT_BYTES;
/// How long a full journal's writer waits for a segment before failing the batch.
const SPARE_WAIT: Duration = Duration::from_secs(1);
/// Default least time between two journal syncs ([`TraceOptions::sync_interval`]).
pub const DEFAULT_SYNC_INTERVAL: Duration = Duration::from_millis(1);
/// The least time the indexer sleeps while frames wait for a row to fill.
const MIN_PAUSE: Duration = Duration::from_millis(1);
/// The indexer stores a frame at most this long after it arrived (sooner when a row's worth
/// is waiting), and retries a failed store this often.
const INDEX_INTERVAL: Duration = Duration::from_millis(100);

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
    /// The marketing firm's id (e.g. its unified social credit code), for a call the policy
    /// judged a marketing call: traceback needs it. Absent in records written before it
    /// existed (journals and database rows read the same, with `firm` absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firm: Option<String>,
}

impl TraceRecord {
    /// The record as `shaken trace lookup` prints it: every member, `null` when absent.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({"at": self.at, "request_id": self.request_id, "outcome": self.outcome,
               "message_id": self.message_id, "origid": self.origid, "orig": self.orig,
               "dest": self.dest, "attest": self.attest, "customer": self.customer,
               "client": self.client, "firm": self.firm})
    }
}

/// A record serialized by the request's task (so the writer thread does no per-record work
/// beyond copying) with its time, and where to say it is durable.
type Job = (u64, String, oneshot::Sender<Result<(), String>>);

/// What the writer tells the indexer.
enum ToIndexer {
    /// A frame that is durable in the journal.
    Frame(Frame),
    /// A segment the writer has filled and left; reusable once its frames are in SQLite.
    Retired(Segment),
}

/// How a trace log is run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceOptions {
    /// Most disk the journal may take (at least [`MIN_JOURNAL_BYTES`]; rounded down to whole
    /// segments).
    pub journal_max_bytes: u64,
    /// Under load, the least time between the starts of two journal syncs: the records that
    /// arrive meanwhile share the next sync, so there are fewer syncs (each costs CPU, about
    /// 40 µs on the project's VM) for up to this much more latency. "Under load" means the
    /// previous sync carried more than one record; otherwise (one request at a time, or the
    /// first after a quiet spell) a record is synced at once. Zero: never wait.
    pub sync_interval: Duration,
}

impl Default for TraceOptions {
    fn default() -> Self {
        Self {
            journal_max_bytes: DEFAULT_JOURNAL_MAX_BYTES,
            sync_interval: DEFAULT_SYNC_INTERVAL,
        }
    }
}

/// The trace log's writer.
#[derive(Debug)]
pub struct TraceLog {
    sender: Option<mpsc::Sender<Job>>,
    writer: Option<JoinHandle<()>>,
    indexer: Option<JoinHandle<()>>,
    path: PathBuf,
    /// Held (locked) while the log is open.
    _lock: File,
}

impl TraceLog {
    /// Opens (creating if needed) the trace database and its journal, stores in the database
    /// any journal frames it does not have yet (after a crash), and starts the writer and the
    /// indexer. Fails if another process has the log open. The journal may take
    /// [`DEFAULT_JOURNAL_MAX_BYTES`].
    pub fn open(path: &Path) -> Result<Self, SignerError> {
        Self::open_with(path, &TraceOptions::default())
    }

    /// [`TraceLog::open`] with the journal limited to `max_bytes` (at least
    /// [`MIN_JOURNAL_BYTES`]; rounded down to whole segments).
    pub fn open_bounded(path: &Path, max_bytes: u64) -> Result<Self, SignerError> {
        Self::open_with(
            path,
            &TraceOptions {
                journal_max_bytes: max_bytes,
                ..TraceOptions::default()
            },
        )
    }

    /// [`TraceLog::open`] with `options`.
    pub fn open_with(path: &Path, options: &TraceOptions) -> Result<Self, SignerError> {
        let max_segments = usize::try_from(
            options.journal_max_bytes.max(MIN_JOURNAL_BYTES) / journal::SEGMENT_BYTES,
        )
        .unwrap_or(usize::MAX);
        let mut conn = index::open_for_indexer(path)?;
        let dir = journal::directory(path);
        create_private_dir(&dir).map_err(|e| SignerError::io(&dir, &e))?;
        let lock_path = dir.join("lock");
        let lock = File::create(&lock_path).map_err(|e| SignerError::io(&lock_path, &e))?;
        lock.try_lock()
            .map_err(|_| SignerError::db(path, "the trace log is in use by another process"))?;

        let applied = index::applied(&conn).map_err(|e| SignerError::db(path, e))?;
        let replay = journal::read_after(&dir, applied).map_err(|e| SignerError::io(&dir, &e))?;
        let mut next_seq = applied + 1;
        if let Some(last) = replay.last() {
            index::store(&mut conn, &replay, true).map_err(|e| SignerError::db(path, e))?;
            tracing::info!(
                frames = replay.len(),
                "trace journal replayed into the database"
            );
            next_seq = last.seq + 1;
        }
        // The previous run's last commits may not be synced (the indexer syncs only to free a
        // segment): if it crashed, they are in the page cache only. Make everything SQLite
        // holds durable before the segments holding those frames are overwritten.
        index::sync_files(path).map_err(|e| SignerError::io(path, &e))?;

        // Every frame is in the database now, durably, so every segment is free.
        let mut free = Vec::new();
        for segment in journal::segments(&dir).map_err(|e| SignerError::io(&dir, &e))? {
            free.push(reuse_or_recreate(&segment).map_err(|e| SignerError::io(&segment, &e))?);
        }
        let mut total = free.len();
        while free.len() < INITIAL_SEGMENTS {
            let created = create_segment(&dir).map_err(|e| SignerError::io(&dir, &e))?;
            free.push(created);
            total += 1;
        }
        let current = free
            .pop()
            .ok_or_else(|| SignerError::db(path, "no journal segment"))?;
        let (spare_sender, spare) = std_mpsc::sync_channel(1);
        if let Some(segment) = free.pop() {
            let _ = spare_sender.send(segment);
        }

        let (to_index, from_writer) = std_mpsc::channel();
        let (sender, receiver) = mpsc::channel::<Job>(QUEUE);
        let writer = Writer {
            current,
            spare,
            to_index,
            next_seq,
            encoded: Vec::with_capacity(64 * 1024),
            sync_interval: options.sync_interval,
        };
        let writer = std::thread::Builder::new()
            .name("trace-writer".into())
            .spawn(move || write_loop(receiver, writer))
            .map_err(|e| SignerError::io(path, &e))?;
        let indexer = Indexer {
            conn,
            dir,
            free,
            total,
            spare: spare_sender,
            spare_ready: true,
            max_segments,
            applied: next_seq - 1,
            durable: next_seq - 1,
            retired: Vec::new(),
            queue: IndexQueue::default(),
            failing: false,
        };
        let indexer = std::thread::Builder::new()
            .name("trace-indexer".into())
            .spawn(move || indexer.run(&from_writer))
            .map_err(|e| SignerError::io(path, &e))?;
        Ok(Self {
            sender: Some(sender),
            writer: Some(writer),
            indexer: Some(indexer),
            path: path.to_owned(),
            _lock: lock,
        })
    }

    /// The trace database's path (lookups open it: [`lookup_origid`], [`lookup_tn`]).
    pub fn path(&self) -> &Path {
        &self.path
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

    /// Deletes the stored batches whose records are all older than `retention_days` before
    /// `now`; returns how many records were deleted. (Records still only in the journal are
    /// seconds old.)
    pub fn prune(path: &Path, retention_days: u64, now: u64) -> Result<usize, SignerError> {
        let conn = index::open(path)?;
        let cutoff = now.saturating_sub(retention_days.saturating_mul(86_400));
        index::prune(&conn, cutoff).map_err(|e| SignerError::db(path, e))
    }
}

impl Drop for TraceLog {
    fn drop(&mut self) {
        // Closing the channel lets the writer finish what is queued and stop; the indexer then
        // stores the rest and stops.
        drop(self.sender.take());
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
        if let Some(indexer) = self.indexer.take() {
            let _ = indexer.join();
        }
    }
}

fn create_private_dir(dir: &Path) -> io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}

/// A segment found at start: reused, unless a crash left it short (it was being created and
/// never held a frame), then made anew.
fn reuse_or_recreate(path: &Path) -> io::Result<Segment> {
    if std::fs::metadata(path)?.len() < journal::SEGMENT_BYTES {
        std::fs::remove_file(path)?;
        return Segment::create(path);
    }
    Segment::reuse(path)
}

/// A new segment under the first free name.
fn create_segment(dir: &Path) -> io::Result<Segment> {
    let path = (0..)
        .map(|i| journal::segment_path(dir, i))
        .find(|p| !p.exists())
        .ok_or_else(|| io::Error::other("no segment name left"))?;
    Segment::create(&path)
}

/// The writer thread's state: the segment it writes, the spare it switches to when that is
/// full, and the channel to the indexer.
struct Writer {
    current: Segment,
    spare: std_mpsc::Receiver<Segment>,
    to_index: std_mpsc::Sender<ToIndexer>,
    next_seq: u64,
    encoded: Vec<u8>,
    sync_interval: Duration,
}

impl Writer {
    /// Writes `batch` as the next frame; returns it once it is on disk.
    fn write(&mut self, batch: &[Job]) -> io::Result<Frame> {
        let mut records = String::with_capacity(batch.iter().map(|(_, l, _)| l.len() + 1).sum());
        let (mut first_at, mut last_at) = (u64::MAX, 0);
        for (at, line, _) in batch {
            first_at = first_at.min(*at);
            last_at = last_at.max(*at);
            records.push_str(line);
            records.push('\n');
        }
        let frame = Frame {
            seq: self.next_seq,
            first_at,
            last_at,
            count: u32::try_from(batch.len()).unwrap_or(u32::MAX),
            records,
        };
        journal::encode(&frame, &mut self.encoded)?;
        if !self.current.fits(self.encoded.len()) {
            if self.encoded.len() as u64 > journal::SEGMENT_BYTES {
                return Err(io::Error::other(
                    "trace batch larger than a journal segment",
                ));
            }
            let next = self.spare.recv_timeout(SPARE_WAIT).map_err(|e| match e {
                std_mpsc::RecvTimeoutError::Timeout => {
                    io::Error::other("trace journal full: the trace database has not taken records")
                }
                std_mpsc::RecvTimeoutError::Disconnected => {
                    io::Error::other("trace indexer stopped")
                }
            })?;
            let full = std::mem::replace(&mut self.current, next);
            let _ = self.to_index.send(ToIndexer::Retired(full));
        }
        self.current.append(&self.encoded, frame.seq)?;
        self.next_seq += 1;
        Ok(frame)
    }
}

fn write_loop(mut receiver: mpsc::Receiver<Job>, mut writer: Writer) {
    let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    let mut previous: Option<PreviousSync> = None;
    loop {
        // Under load, sleep out the interval before looking: the records that arrive meanwhile
        // queue up without waking the writer (a wake-up would cost the sending request a
        // system call).
        let wait = sync_wait(previous, writer.sync_interval, Instant::now());
        if !wait.is_zero() {
            std::thread::sleep(wait);
        }
        let open = take_queued(&mut receiver, &mut batch);
        if batch.is_empty() {
            if !open {
                break;
            }
            // A quiet spell: wait for the next record, and sync it at once.
            match receiver.blocking_recv() {
                Some(first) => batch.push(first),
                None => break,
            }
            take_queued(&mut receiver, &mut batch);
        }
        let started = Instant::now();
        previous = Some(PreviousSync {
            started,
            records: batch.len(),
        });
        let written = writer.write(&batch);
        let result = written.as_ref().map(|_| ()).map_err(ToString::to_string);
        for (_, _, done) in batch.drain(..) {
            let _ = done.send(result.clone());
        }
        if let Ok(frame) = written {
            let _ = writer.to_index.send(ToIndexer::Frame(frame));
        }
    }
    let _ = writer.to_index.send(ToIndexer::Retired(writer.current));
}

/// Moves the records already queued into `batch` (up to [`MAX_BATCH`]); false once the
/// channel is closed and empty.
fn take_queued(receiver: &mut mpsc::Receiver<Job>, batch: &mut Vec<Job>) -> bool {
    while batch.len() < MAX_BATCH {
        match receiver.try_recv() {
            Ok(job) => batch.push(job),
            Err(mpsc::error::TryRecvError::Empty) => return true,
            Err(mpsc::error::TryRecvError::Disconnected) => return false,
        }
    }
    true
}

/// The writer's last sync: when it started and how many records it carried.
#[derive(Clone, Copy, Debug)]
struct PreviousSync {
    started: Instant,
    records: usize,
}

/// How long the writer sleeps before it takes the queued records and syncs them: under load
/// (the previous sync carried more than one record) until `interval` after the previous sync
/// started, so that the records arriving meanwhile share the sync; otherwise not at all, so a
/// lone caller (one request at a time, or the first after a quiet spell) never waits.
fn sync_wait(previous: Option<PreviousSync>, interval: Duration, now: Instant) -> Duration {
    match previous {
        Some(p) if p.records > 1 => (p.started + interval).saturating_duration_since(now),
        _ => Duration::ZERO,
    }
}

/// The indexer thread's state.
struct Indexer {
    conn: rusqlite::Connection,
    dir: PathBuf,
    /// Segments all of whose frames are in SQLite, not handed to the writer.
    free: Vec<Segment>,
    /// Segments in all (current, spare, retired, free).
    total: usize,
    spare: std_mpsc::SyncSender<Segment>,
    /// Whether the writer has a spare waiting (it takes it when it retires a segment).
    spare_ready: bool,
    /// The journal's limit, in segments.
    max_segments: usize,
    /// The number of the last frame stored in SQLite.
    applied: u64,
    /// The number of the last frame stored in SQLite and synced (a power loss cannot undo
    /// it): the journal's frames up to it are no longer needed.
    durable: u64,
    retired: Vec<Segment>,
    /// Frames durable in the journal, not yet in SQLite.
    queue: IndexQueue,
    /// Whether the last store failed (logged once until it works again).
    failing: bool,
}

/// The frames waiting for the indexer, and when to store them: as soon as a row's worth
/// ([`index::ROW_BYTES`]) is waiting, so that rows are full and each store is a small step, or
/// [`INDEX_INTERVAL`] after the oldest arrived, so that a quiet log is stored too. After a
/// failed store, not again before [`INDEX_INTERVAL`] has passed.
#[derive(Debug, Default)]
struct IndexQueue {
    frames: Vec<Frame>,
    /// Bytes of records in `frames`.
    bytes: usize,
    /// When the oldest of `frames` arrived.
    oldest: Option<Instant>,
    /// After a failed store: not before this.
    retry_at: Option<Instant>,
}

impl IndexQueue {
    fn push(&mut self, frame: Frame, now: Instant) {
        self.bytes += frame.records.len();
        self.oldest.get_or_insert(now);
        self.frames.push(frame);
    }

    fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// Whether the frames should be stored at `now`.
    fn store_due(&self, now: Instant) -> bool {
        let Some(oldest) = self.oldest else {
            return false;
        };
        if self.retry_at.is_some_and(|at| now < at) {
            return false;
        }
        self.bytes >= index::ROW_BYTES || now >= oldest + INDEX_INTERVAL
    }

    /// How long the indexer may wait for the next frame before something is due.
    fn next_wake(&self, now: Instant) -> Duration {
        let due = match (self.oldest, self.retry_at) {
            (Some(oldest), Some(retry)) => (oldest + INDEX_INTERVAL).max(retry),
            (Some(oldest), None) => oldest + INDEX_INTERVAL,
            (None, _) => now + INDEX_INTERVAL,
        };
        due.saturating_duration_since(now)
    }

    /// How long the indexer may sleep, frames waiting, before it looks again: until a row's
    /// worth is likely there at the rate they came so far, at least [`MIN_PAUSE`], at most
    /// until [`IndexQueue::next_wake`].
    fn pause(&self, now: Instant) -> Duration {
        let limit = self.next_wake(now);
        let Some(oldest) = self.oldest else {
            return limit;
        };
        let missing = index::ROW_BYTES.saturating_sub(self.bytes) as f64;
        let elapsed = now.saturating_duration_since(oldest).as_secs_f64();
        let guess = if elapsed > 0.0 && self.bytes > 0 {
            Duration::from_secs_f64((missing * elapsed / self.bytes as f64).min(1.0))
        } else {
            MIN_PAUSE
        };
        guess.max(MIN_PAUSE).min(limit)
    }

    /// The frames are in SQLite.
    fn stored(&mut self) {
        self.frames.clear();
        self.bytes = 0;
        self.oldest = None;
        self.retry_at = None;
    }

    /// Storing the frames failed at `now`; they stay.
    fn failed(&mut self, now: Instant) {
        self.retry_at = Some(now + INDEX_INTERVAL);
    }
}

impl Indexer {
    fn run(mut self, from_writer: &std_mpsc::Receiver<ToIndexer>) {
        let mut open = true;
        while open {
            if self.queue.is_empty() {
                // Idle: wait for the first frame (or, every interval, recycle).
                match from_writer.recv_timeout(INDEX_INTERVAL) {
                    Ok(message) => self.take(message, Instant::now()),
                    Err(std_mpsc::RecvTimeoutError::Timeout) => {}
                    Err(std_mpsc::RecvTimeoutError::Disconnected) => open = false,
                }
            } else {
                // Frames are waiting: sleep until a row's worth is likely there, rather than
                // wake for every frame (about a thousand a second under load).
                std::thread::sleep(self.queue.pause(Instant::now()));
            }
            loop {
                match from_writer.try_recv() {
                    Ok(message) => self.take(message, Instant::now()),
                    Err(std_mpsc::TryRecvError::Empty) => break,
                    Err(std_mpsc::TryRecvError::Disconnected) => {
                        open = false;
                        break;
                    }
                }
            }
            let now = Instant::now();
            if self.queue.store_due(now) {
                self.store(now);
                self.recycle();
            } else if self.queue.is_empty() {
                self.recycle();
            }
        }
        // The writer has stopped: store the rest. Whatever cannot be stored stays in the
        // journal and is replayed at the next start.
        self.store(Instant::now());
        let _ = self.conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);");
    }

    fn take(&mut self, message: ToIndexer, now: Instant) {
        match message {
            ToIndexer::Frame(frame) => self.queue.push(frame, now),
            ToIndexer::Retired(segment) => {
                self.retired.push(segment);
                self.spare_ready = false;
            }
        }
    }

    fn store(&mut self, now: Instant) {
        if self.queue.is_empty() {
            return;
        }
        // A retired segment is reused once its frames are durable in SQLite; the other commits
        // need no sync (a power loss would undo them, and the journal still holds them).
        let durable = !self.retired.is_empty();
        match index::store(&mut self.conn, &self.queue.frames, durable) {
            Ok(()) => {
                if let Some(last) = self.queue.frames.last() {
                    self.applied = last.seq;
                }
                if durable {
                    self.durable = self.applied;
                }
                if self.failing {
                    tracing::info!("trace index: storing works again");
                }
                self.failing = false;
                self.queue.stored();
            }
            Err(error) => {
                if !self.failing {
                    tracing::warn!(%error, "trace index: storing failed; the records are safe in the journal, retrying");
                }
                self.failing = true;
                self.queue.failed(now);
            }
        }
    }

    /// Frees the retired segments that are all durable in SQLite and makes sure the writer has a
    /// spare (creating a segment if none is free and the journal may grow).
    fn recycle(&mut self) {
        let applied = self.durable;
        let (done, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.retired)
            .into_iter()
            .partition(|s| s.last_seq <= applied);
        self.retired = waiting;
        for mut segment in done {
            segment.rewind();
            self.free.push(segment);
        }
        if self.spare_ready {
            return;
        }
        let segment = match self.free.pop() {
            Some(segment) => segment,
            None if self.total < self.max_segments => match create_segment(&self.dir) {
                Ok(segment) => {
                    self.total += 1;
                    segment
                }
                Err(error) => {
                    tracing::warn!(%error, "trace journal: cannot create a segment");
                    return;
                }
            },
            None => return,
        };
        match self.spare.try_send(segment) {
            Ok(()) => self.spare_ready = true,
            Err(std_mpsc::TrySendError::Full(segment)) => {
                self.spare_ready = true;
                self.free.push(segment);
            }
            Err(std_mpsc::TrySendError::Disconnected(_)) => {}
        }
    }
}

/// The records in `text`, one JSON object a line (as the journal and the database hold them).
fn parse_lines<'a>(
    path: &'a Path,
    text: &'a str,
) -> impl Iterator<Item = Result<TraceRecord, SignerError>> + 'a {
    text.lines().map(move |line| {
        serde_json::from_str(line)
            .map_err(|e| SignerError::db(path, format!("corrupt trace record: {e}")))
    })
}

/// The records in `since..=until` (by their time) that satisfy `keep`: those in SQLite and
/// those only in the journal so far.
fn scan(
    path: &Path,
    since: u64,
    until: u64,
    key: filter::Key<'_>,
) -> Result<Vec<TraceRecord>, SignerError> {
    let mut conn = index::open(path)?;
    // Read the journal beyond the mark first, then the database: a frame stored (and its
    // segment reused) in between is then in the database's snapshot.
    let before = index::applied(&conn).map_err(|e| SignerError::db(path, e))?;
    let dir = journal::directory(path);
    let journal = journal::read_after(&dir, before).map_err(|e| SignerError::io(&dir, &e))?;
    let (rows, applied) =
        index::rows_between(&mut conn, since, until, key).map_err(|e| SignerError::db(path, e))?;
    let recent = journal
        .iter()
        .filter(|f| f.seq > applied && f.last_at >= since && f.first_at <= until)
        .map(|f| f.records.as_str());
    let mut found = Vec::new();
    for text in rows.iter().map(String::as_str).chain(recent) {
        for record in parse_lines(path, text) {
            let record = record?;
            if (since..=until).contains(&record.at) && key.matches(&record) {
                found.push(record);
            }
        }
    }
    Ok(found)
}

/// The records in an image of one journal segment (a copy of a `segment-NNN.log` file), in
/// order: the frames of its intact chain, decoded. For inspecting a journal; a record that is
/// not valid JSON is an error, a damaged frame ends the chain.
pub fn journal_segment_records(bytes: &[u8]) -> Result<Vec<TraceRecord>, SignerError> {
    let image = Path::new("journal segment");
    let scan = journal::read_chain(bytes, 0).map_err(|e| SignerError::io(image, &e))?;
    let mut records = Vec::new();
    for frame in &scan.frames {
        for record in parse_lines(image, &frame.records) {
            records.push(record?);
        }
    }
    Ok(records)
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
    scan(path, since, until, filter::Key::Origid(origid))
}

/// Records of calls from or to `tn` between `since` and `until` (inclusive).
pub fn lookup_tn(
    path: &Path,
    tn: &str,
    since: u64,
    until: u64,
) -> Result<Vec<TraceRecord>, SignerError> {
    scan(path, since, until, filter::Key::Tn(tn))
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
            firm: (i % 2 == 1).then(|| format!("91110000MA{i:08}")),
        }
    }

    fn frame(seq: u64, bytes: usize) -> Frame {
        Frame {
            seq,
            first_at: 1000,
            last_at: 1000,
            count: 1,
            records: "x".repeat(bytes),
        }
    }

    #[test]
    fn the_indexer_stores_a_full_row_at_once_and_a_partial_one_after_the_interval() {
        let t = Instant::now();
        let ms = Duration::from_millis;
        let mut queue = IndexQueue::default();
        assert!(!queue.store_due(t), "nothing waiting");
        assert_eq!(queue.next_wake(t), INDEX_INTERVAL);

        queue.push(frame(1, 1000), t);
        queue.push(frame(2, 1000), t + ms(5));
        assert!(!queue.store_due(t + ms(50)), "less than a row, not yet old");
        assert_eq!(queue.next_wake(t + ms(50)), INDEX_INTERVAL - ms(50));
        assert!(
            queue.store_due(t + INDEX_INTERVAL),
            "the oldest frame waited long enough"
        );

        queue.push(frame(3, index::ROW_BYTES - 2000), t + ms(6));
        assert!(
            queue.store_due(t + ms(6)),
            "a row's worth is stored at once"
        );
        queue.stored();
        assert!(queue.is_empty());
        assert!(!queue.store_due(t + ms(500)));

        // The interval counts from the oldest frame after the last store.
        queue.push(frame(4, 10), t + ms(200));
        assert!(!queue.store_due(t + ms(250)));
        assert!(queue.store_due(t + ms(300)));
    }

    #[test]
    fn the_indexer_sleeps_until_a_row_is_likely_full() {
        let t = Instant::now();
        let ms = Duration::from_millis;
        let mut queue = IndexQueue::default();
        assert_eq!(queue.pause(t), INDEX_INTERVAL, "nothing waiting");
        queue.push(frame(1, index::ROW_BYTES / 4), t);
        assert_eq!(queue.pause(t), MIN_PAUSE, "no rate known yet");
        // A quarter of a row in 2 ms: the rest in about 6 ms more.
        let pause = queue.pause(t + ms(2));
        assert!(
            (ms(5)..=ms(7)).contains(&pause),
            "{pause:?} for three quarters of a row at a quarter per 2 ms"
        );
        // A slow trickle: not past the interval after the oldest frame.
        let mut slow = IndexQueue::default();
        slow.push(frame(1, 100), t);
        assert_eq!(slow.pause(t + ms(40)), INDEX_INTERVAL - ms(40));
        // A fast inflow: never less than the least pause.
        let mut fast = IndexQueue::default();
        fast.push(frame(1, index::ROW_BYTES - 1), t);
        assert_eq!(fast.pause(t + Duration::from_micros(10)), MIN_PAUSE);
    }

    #[test]
    fn after_a_failed_store_the_indexer_waits_before_it_tries_again() {
        let t = Instant::now();
        let ms = Duration::from_millis;
        let mut queue = IndexQueue::default();
        queue.push(frame(1, index::ROW_BYTES), t);
        assert!(queue.store_due(t));
        queue.failed(t);
        queue.push(frame(2, index::ROW_BYTES), t + ms(1));
        assert!(!queue.store_due(t + ms(1)), "no retry storm on each frame");
        assert_eq!(queue.next_wake(t + ms(1)), INDEX_INTERVAL - ms(1));
        assert!(queue.store_due(t + INDEX_INTERVAL));
        assert_eq!(queue.frames.len(), 2, "nothing is dropped");
        queue.stored();
        queue.push(frame(3, index::ROW_BYTES), t + INDEX_INTERVAL);
        assert!(
            queue.store_due(t + INDEX_INTERVAL),
            "a success ends the back-off"
        );
    }

    #[test]
    fn the_writer_waits_for_the_interval_only_under_load() {
        let t = Instant::now();
        let ms = Duration::from_millis;
        let after = |records| {
            Some(PreviousSync {
                started: t,
                records,
            })
        };
        // The first batch, and a batch after a sync that carried one record: no wait.
        assert_eq!(sync_wait(None, ms(1), t), Duration::ZERO);
        assert_eq!(sync_wait(after(1), ms(1), t + ms(0)), Duration::ZERO);
        // Under load: until the interval after the previous sync's start.
        assert_eq!(
            sync_wait(after(5), ms(10), t + ms(3)),
            ms(7),
            "the rest of the interval"
        );
        assert_eq!(sync_wait(after(5), ms(10), t + ms(12)), Duration::ZERO);
        assert_eq!(sync_wait(after(5), Duration::ZERO, t), Duration::ZERO);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn records_arriving_within_the_sync_interval_share_a_sync() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("trace.sqlite");
        let options = TraceOptions {
            sync_interval: Duration::from_millis(300),
            ..TraceOptions::default()
        };
        let log = std::sync::Arc::new(TraceLog::open_with(&path, &options).unwrap());
        // Ten waves of 20 concurrent records, 2 ms apart (a sync alone takes well under 2 ms).
        // Once a sync has carried more than one record the writer waits out the interval, so
        // the waves after the first share a sync or two; with no interval each wave would take
        // at least one.
        let mut tasks = Vec::new();
        for wave in 0..10 {
            for i in 0..20 {
                let log = std::sync::Arc::clone(&log);
                let record = record(wave * 20 + i);
                tasks.push(tokio::spawn(async move { log.record(record).await }));
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        for task in tasks {
            task.await.unwrap().unwrap();
        }
        drop(log);
        let conn = index::open(&path).unwrap();
        let frames = index::applied(&conn).unwrap();
        assert!(frames <= 5, "{frames} frames for 10 waves");
        assert_eq!(
            lookup_tn(&path, "12155551212", 0, u64::MAX >> 1)
                .unwrap()
                .len(),
            200
        );
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

    /// Opens the log, records `records` one at a time, and closes it cleanly.
    async fn run_and_stop(path: &Path, records: std::ops::Range<u64>) {
        let log = TraceLog::open(path).unwrap();
        for i in records {
            log.record(record(i)).await.unwrap();
        }
        drop(log);
    }

    /// Writes `records` into the journal as frames numbered from `seq`, one record each, as a
    /// signer that crashed before its indexer ran would have left them.
    fn journal_only(path: &Path, seq: u64, records: &[TraceRecord]) {
        let dir = journal::directory(path);
        std::fs::create_dir_all(&dir).unwrap();
        let mut segment = match journal::segments(&dir).unwrap().first() {
            Some(existing) => Segment::reuse(existing).unwrap(),
            None => Segment::create(&journal::segment_path(&dir, 0)).unwrap(),
        };
        let mut encoded = Vec::new();
        for (i, record) in records.iter().enumerate() {
            let frame = Frame {
                seq: seq + i as u64,
                first_at: record.at,
                last_at: record.at,
                count: 1,
                records: serde_json::to_string(record).unwrap() + "\n",
            };
            journal::encode(&frame, &mut encoded).unwrap();
            segment.append(&encoded, frame.seq).unwrap();
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn records_only_in_the_journal_are_found_then_replayed_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("trace.sqlite");
        // A first run stores records 0..3 and stops cleanly.
        run_and_stop(&path, 0..3).await;
        assert_eq!(index::applied(&index::open(&path).unwrap()).unwrap(), 3);
        // A second run got 3..6 into the journal and crashed before indexing them.
        let crashed: Vec<_> = (3..6).map(record).collect();
        journal_only(&path, 4, &crashed);
        // Lookups see them before any restart.
        let found = lookup_tn(&path, "12155551212", 0, u64::MAX >> 2).unwrap();
        assert_eq!(found, (0..6).map(record).collect::<Vec<_>>());
        // The restart replays them into the database, once, and numbering goes on after them.
        let log = TraceLog::open(&path).unwrap();
        assert_eq!(index::applied(&index::open(&path).unwrap()).unwrap(), 6);
        log.record(record(6)).await.unwrap();
        drop(log);
        assert_eq!(index::applied(&index::open(&path).unwrap()).unwrap(), 7);
        let found = lookup_tn(&path, "12155551212", 0, u64::MAX >> 2).unwrap();
        assert_eq!(found, (0..7).map(record).collect::<Vec<_>>());
        let log = TraceLog::open(&path).unwrap();
        drop(log);
        assert_eq!(
            lookup_tn(&path, "12155551212", 0, u64::MAX >> 2)
                .unwrap()
                .len(),
            7
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_segment_image_decodes_to_its_records() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("trace.sqlite");
        run_and_stop(&path, 0..3).await;
        let segments = journal::segments(&journal::directory(&path)).unwrap();
        let mut found = Vec::new();
        for segment in &segments {
            found.extend(journal_segment_records(&std::fs::read(segment).unwrap()).unwrap());
        }
        assert_eq!(found, (0..3).map(record).collect::<Vec<_>>());
        assert!(journal_segment_records(&[]).unwrap().is_empty());
        // An image written by another program (the fuzz seed, made with Python's zlib CRC-32
        // from the format in journal.rs) reads the same way.
        let seed = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../fuzz/seeds/trace_journal/two-frames");
        let records = journal_segment_records(&std::fs::read(seed).unwrap()).unwrap();
        let ids: Vec<_> = records.iter().map(|r| r.request_id.as_str()).collect();
        assert_eq!(ids, ["r1", "r2", "r1"]);
        assert_eq!(records[1].message_id.as_deref(), Some("POL4101"));
        // Written before `firm` existed: read with it absent.
        assert!(records.iter().all(|r| r.firm.is_none()));
        assert!(journal_segment_records(&[0xff; 100]).unwrap().is_empty());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_firm_round_trips_and_old_rows_read_without_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("trace.sqlite");
        // A row stored by a version without `firm`, as its JSON line.
        {
            let conn = index::open(&path).unwrap();
            conn.execute(
                "INSERT INTO trace_batch (first_at, last_at, count, records) VALUES (900, 900, 1, ?1)",
                [r#"{"at":900,"request_id":"old","outcome":"signed","origid":"00000000-0000-4000-8000-000000000900","orig":"12155551212","dest":["12125551213"],"attest":"A","customer":"c0","client":"test"}
"#],
            )
            .unwrap();
        }
        run_and_stop(&path, 0..4).await;
        let found = lookup_tn(&path, "12155551212", 0, u64::MAX >> 2).unwrap();
        assert_eq!(found.len(), 5);
        assert_eq!(found[0].request_id, "old");
        assert_eq!(found[0].firm, None);
        assert_eq!(found[0].to_json()["firm"], serde_json::Value::Null);
        assert_eq!(found[1..], (0..4).map(record).collect::<Vec<_>>());
        assert_eq!(found[2].firm.as_deref(), Some("91110000MA00000001"));
        assert_eq!(found[2].to_json()["firm"], "91110000MA00000001");
        // And from the journal alone, before the indexer stored it.
        journal_only(&path, 5, &[record(5)]);
        let found = lookup_origid(&path, "00000000-0000-4000-8000-000000000005").unwrap();
        assert_eq!(found, [record(5)]);
        assert_eq!(found[0].firm.as_deref(), Some("91110000MA00000005"));
    }

    #[test]
    fn a_second_writer_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("trace.sqlite");
        let log = TraceLog::open(&path).unwrap();
        let err = TraceLog::open(&path).unwrap_err();
        assert!(
            err.to_string().contains("in use by another process"),
            "{err}"
        );
        drop(log);
        drop(TraceLog::open(&path).unwrap());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn segments_are_reused_once_their_records_are_stored() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("trace.sqlite");
        let log = TraceLog::open(&path).unwrap();
        // One record a frame, one frame a 4 KiB block: six segments' worth, so that a journal
        // that never reused a segment would have at least six.
        let frames_per_segment = journal::SEGMENT_BYTES / journal::BLOCK;
        let n = 6 * frames_per_segment + 10;
        for i in 0..n {
            log.record(record(i)).await.unwrap();
        }
        let segments = journal::segments(&journal::directory(&path)).unwrap().len();
        assert!(
            (2..=4).contains(&segments),
            "{segments} segments for six segments' worth of frames"
        );
        let found = lookup_tn(&path, "12155551212", 0, u64::MAX >> 2).unwrap();
        assert_eq!(found.len() as u64, n);
        assert_eq!(found.last(), Some(&record(n - 1)));
        drop(log);
        assert_eq!(index::applied(&index::open(&path).unwrap()).unwrap(), n);
    }
}
