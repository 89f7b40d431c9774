//! The indexer: fills the store's event tables (SQLite, or PostgreSQL with `--db`) from the
//! journal ([`crate::journal`]) behind ingest, on its own thread, in transactions of up to
//! [`MAX_BATCH_EVENTS`] events, each storing the journal checkpoint with the events
//! ([`Store::write_indexed`]).
//!
//! Ingest writes a frame, reports it to the shared [`Progress`] and wakes the indexer; the
//! indexer reads the frames up to the last one reported, parses their lines again, writes
//! them, advances the checkpoint and deletes the segments it has fully indexed. Queries of
//! events wait (a bounded time) until the indexer has reached what was acknowledged when
//! they began, and report the events still unindexed when they answer
//! ([`Progress::lag_events`]). On a store error the indexer logs it (no event content),
//! counts it, waits a second and reads again from its checkpoint. With the store on
//! PostgreSQL it also sends, every second, the alert changes kept locally while PostgreSQL
//! was away ([`Store::flush_pending`]).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::detect::DetectorId;
use crate::event::{parse_line, Event};
use crate::journal::{remove_indexed, Frame, JournalReader};
use crate::store::{EventRow, Store, StoreError};

/// Events written per store transaction at most (whole frames: one more frame may pass it).
pub const MAX_BATCH_EVENTS: usize = 400_000;
/// How long the indexer sleeps when it has nothing to do and is not woken.
const IDLE: Duration = Duration::from_millis(100);
/// How long it waits after a failed transaction before reading again.
const RETRY: Duration = Duration::from_secs(1);
/// How often it sends the alert changes a PostgreSQL store kept locally while PostgreSQL was
/// away ([`Store::flush_pending`]; nothing to do on SQLite).
const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// Appends one record (an accepted line with what the detectors made of it) to a frame's
/// payload; see [`crate::journal`] for the layout.
pub fn encode_record(out: &mut Vec<u8>, marks: &[DetectorId], late: bool, raw: &str) {
    if marks.is_empty() {
        out.push(b'-');
    }
    for (i, mark) in marks.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(mark.as_str().as_bytes());
    }
    out.extend_from_slice(if late { b" 1 " } else { b" 0 " });
    out.extend_from_slice(raw.as_bytes());
    out.push(b'\n');
}

/// One record of a frame, decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record<'a> {
    /// The detectors' marks.
    pub marks: Vec<DetectorId>,
    /// Came too late for the detectors to count.
    pub late: bool,
    /// The line as received.
    pub raw: &'a str,
}

/// Decodes one record line; `None` when it is not one [`encode_record`] writes.
pub fn decode_record(line: &str) -> Option<Record<'_>> {
    let (marks, rest) = line.split_once(' ')?;
    let (late, raw) = rest.split_once(' ')?;
    let marks = if marks == "-" {
        Vec::new()
    } else {
        marks
            .split(',')
            .map(DetectorId::from_name)
            .collect::<Option<Vec<_>>>()?
    };
    let late = match late {
        "0" => false,
        "1" => true,
        _ => return None,
    };
    Some(Record { marks, late, raw })
}

/// How far the journal and the indexer are, shared between ingest, the indexer and queries.
#[derive(Debug, Default)]
pub struct Progress {
    journaled_seq: AtomicU64,
    indexed_seq: AtomicU64,
    journaled_events: AtomicU64,
    indexed_events: AtomicU64,
    failures: AtomicU64,
    stop: AtomicBool,
    changed: Mutex<()>,
    indexed: Condvar,
}

impl Progress {
    /// A start where frames up to `seq` are both written and indexed.
    pub fn at(seq: u64) -> Self {
        let progress = Self::default();
        progress.journaled_seq.store(seq, Ordering::Release);
        progress.indexed_seq.store(seq, Ordering::Release);
        progress
    }

    /// Ingest wrote frame `seq` holding `events` events.
    pub fn journaled(&self, seq: u64, events: u64) {
        self.journaled_events.fetch_add(events, Ordering::Relaxed);
        self.journaled_seq.store(seq, Ordering::Release);
    }

    fn indexed(&self, seq: u64, events: u64) {
        self.indexed_events.fetch_add(events, Ordering::Relaxed);
        self.indexed_seq.store(seq, Ordering::Release);
        let _guard = self
            .changed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.indexed.notify_all();
    }

    /// The last frame written.
    pub fn journaled_seq(&self) -> u64 {
        self.journaled_seq.load(Ordering::Acquire)
    }

    /// The last frame indexed (the store's checkpoint).
    pub fn indexed_seq(&self) -> u64 {
        self.indexed_seq.load(Ordering::Acquire)
    }

    /// Events written to the journal since start.
    pub fn journaled_events(&self) -> u64 {
        self.journaled_events.load(Ordering::Relaxed)
    }

    /// Events indexed since start.
    pub fn indexed_events(&self) -> u64 {
        self.indexed_events.load(Ordering::Relaxed)
    }

    /// Acknowledged events not yet in the store's indexes.
    pub fn lag_events(&self) -> u64 {
        self.journaled_events()
            .saturating_sub(self.indexed_events())
    }

    /// Failed indexing transactions since start.
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    /// Waits until frame `seq` is indexed or `timeout` passed; true when it is.
    pub fn wait_indexed(&self, seq: u64, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut guard = self
            .changed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        while self.indexed_seq() < seq {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            guard = match self.indexed.wait_timeout(guard, left) {
                Ok((guard, _)) => guard,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
        true
    }
}

/// Indexes the frames after the reader's position up to `upto`, at most about
/// [`MAX_BATCH_EVENTS`] events, in one transaction. Returns the events written (0: nothing
/// to do). Records that no longer parse are skipped (counted as indexed: they are in the
/// journal, and the lag must reach zero).
pub fn index_step(
    store: &mut Store,
    reader: &mut JournalReader,
    progress: &Progress,
    upto: u64,
) -> Result<usize, StoreError> {
    let mut frames: Vec<Frame> = Vec::new();
    let mut records = 0;
    while records < MAX_BATCH_EVENTS {
        let Some(frame) = reader.next(upto)? else {
            break;
        };
        records += frame.payload.lines().count();
        frames.push(frame);
    }
    let Some(last) = frames.last().map(|f| f.seq) else {
        return Ok(0);
    };
    let mut decoded: Vec<(Event, Record<'_>)> = Vec::with_capacity(records);
    for frame in &frames {
        for line in frame.payload.lines() {
            if let Some(record) = decode_record(line) {
                if let Ok(event) = parse_line(record.raw) {
                    decoded.push((event, record));
                }
            }
        }
    }
    let rows: Vec<EventRow<'_>> = decoded
        .iter()
        .map(|(event, record)| EventRow {
            event,
            raw: record.raw,
            marks: &record.marks,
            late: record.late,
        })
        .collect();
    store.write_indexed(&rows, last)?;
    progress.indexed(last, records as u64);
    Ok(rows.len())
}

/// Indexes every frame after `reader`'s position up to `upto` (on start, before the
/// windows are rebuilt). Returns the events written.
pub fn catch_up(
    store: &mut Store,
    reader: &mut JournalReader,
    upto: u64,
) -> Result<u64, StoreError> {
    let progress = Progress::default();
    let mut total = 0;
    loop {
        let n = index_step(store, reader, &progress, upto)?;
        if n == 0 && reader.next_seq() > upto {
            return Ok(total);
        }
        total += n as u64;
    }
}

/// The indexer's thread; stopped (after its current transaction) when dropped.
#[derive(Debug)]
pub struct Indexer {
    progress: Arc<Progress>,
    handle: Option<JoinHandle<()>>,
}

impl Indexer {
    /// Starts indexing the frames of the journal in `dir` after `progress`'s indexed frame,
    /// into `store`.
    pub fn start(dir: &Path, store: Store, progress: Arc<Progress>) -> Self {
        let dir: PathBuf = dir.to_owned();
        let shared = Arc::clone(&progress);
        let handle = std::thread::Builder::new()
            .name("monitor-indexer".into())
            .spawn(move || run(&dir, store, &shared))
            .ok();
        if handle.is_none() {
            tracing::error!("could not start the monitor's indexer thread");
        }
        Self { progress, handle }
    }

    /// Wakes the thread (a frame was written).
    pub fn wake(&self) {
        if let Some(handle) = &self.handle {
            handle.thread().unpark();
        }
    }
}

impl Drop for Indexer {
    fn drop(&mut self) {
        self.progress.stop.store(true, Ordering::Release);
        if let Some(handle) = self.handle.take() {
            handle.thread().unpark();
            let _ = handle.join();
        }
    }
}

fn run(dir: &Path, mut store: Store, progress: &Progress) {
    let mut reader = JournalReader::new(dir, progress.indexed_seq());
    let mut flushed = Instant::now();
    while !progress.stop.load(Ordering::Acquire) {
        if flushed.elapsed() >= FLUSH_EVERY {
            flushed = Instant::now();
            if let Err(error) = store.flush_pending() {
                tracing::warn!(%error, "sending the locally kept alert changes failed; retrying");
            }
        }
        let upto = progress.journaled_seq();
        if reader.next_seq() > upto {
            std::thread::park_timeout(IDLE);
            continue;
        }
        match index_step(&mut store, &mut reader, progress, upto) {
            Ok(_) => {
                if let Err(error) = remove_indexed(dir, progress.indexed_seq()) {
                    tracing::warn!(%error, "removing indexed journal segments");
                }
            }
            Err(error) => {
                progress.failures.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(%error, "indexing the event journal failed; retrying");
                reader = JournalReader::new(dir, progress.indexed_seq());
                std::thread::park_timeout(RETRY);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]
    use super::*;

    #[test]
    fn records_round_trip_and_bad_ones_are_refused() {
        let mut out = Vec::new();
        encode_record(&mut out, &[], false, "{\"a\": 1}");
        encode_record(
            &mut out,
            &[DetectorId::OutOfArea, DetectorId::Repeat],
            true,
            "{}",
        );
        let text = String::from_utf8(out).unwrap();
        let records: Vec<Record<'_>> = text.lines().map(|l| decode_record(l).unwrap()).collect();
        assert_eq!(records[0].raw, "{\"a\": 1}");
        assert!(records[0].marks.is_empty() && !records[0].late);
        assert_eq!(
            records[1].marks,
            vec![DetectorId::OutOfArea, DetectorId::Repeat]
        );
        assert!(records[1].late);
        assert_eq!(decode_record("nope 0 {}"), None);
        assert_eq!(decode_record("- 2 {}"), None);
        assert_eq!(decode_record("-"), None);
    }

    #[test]
    fn waiting_ends_when_indexed_or_timed_out() {
        let progress = Arc::new(Progress::at(3));
        assert!(progress.wait_indexed(3, Duration::ZERO));
        progress.journaled(4, 10);
        assert_eq!(progress.lag_events(), 10);
        assert!(!progress.wait_indexed(4, Duration::from_millis(10)));
        let other = Arc::clone(&progress);
        let t = std::thread::spawn(move || other.indexed(4, 10));
        assert!(progress.wait_indexed(4, Duration::from_secs(10)));
        t.join().unwrap();
        assert_eq!(progress.lag_events(), 0);
    }
}
