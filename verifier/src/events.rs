//! The verification event feed: one JSON line per verification, with the members `time` (the
//! request's), `from`, `to`, then the verdict exactly as the response carries it (`verstat`,
//! `reasoncode`, `reasontext` and `reasondesc` on failure, `attest`, `origid`, `spc`, `x5u`
//! when known, `flags`; absent members are omitted), written to a file or stdout by a
//! background thread so that a slow disk never slows a verification. A full queue drops the
//! line and counts it (`shaken_verifier_events_dropped_total`). This is the feed a tracing
//! platform consumes.

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};

use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::Value;

use crate::verdict::Verdict;

/// Where events go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EventTarget {
    /// Standard output.
    Stdout,
    /// A file, appended to.
    File(PathBuf),
}

/// The sink.
#[derive(Debug)]
pub struct EventSink {
    sender: SyncSender<String>,
    dropped: AtomicU64,
}

/// One event: the call and the verdict given.
#[derive(Clone, Copy, Debug)]
pub struct Event<'a> {
    /// The request's `time`.
    pub time: u64,
    /// The calling number (canonical).
    pub from: &'a str,
    /// The called numbers (canonical).
    pub to: &'a [String],
    /// The verdict, as answered.
    pub verdict: &'a Verdict,
}

impl Serialize for Event<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("time", &self.time)?;
        map.serialize_entry("from", self.from)?;
        map.serialize_entry("to", self.to)?;
        self.verdict
            .serialize_members(&mut map, crate::verdict::Audience::Event)?;
        map.end()
    }
}

/// One event line (JSON, no newline).
pub fn event_line(time: u64, from: &str, to: &[String], verdict: &Verdict) -> String {
    // Serializing strings and numbers into a String cannot fail.
    serde_json::to_string(&Event {
        time,
        from,
        to,
        verdict,
    })
    .unwrap_or_default()
}

fn write_loop(mut out: Box<dyn Write + Send>, receiver: Receiver<String>) {
    while let Ok(line) = receiver.recv() {
        let _ = writeln!(out, "{line}");
        while let Ok(line) = receiver.try_recv() {
            let _ = writeln!(out, "{line}");
        }
        let _ = out.flush();
    }
}

impl EventSink {
    /// Opens the target and starts the writer.
    pub fn open(target: &EventTarget) -> std::io::Result<Self> {
        let out: Box<dyn Write + Send> = match target {
            EventTarget::Stdout => Box::new(std::io::BufWriter::new(std::io::stdout())),
            EventTarget::File(path) => Box::new(std::io::BufWriter::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)?,
            )),
        };
        let (sender, receiver) = sync_channel(65_536);
        std::thread::Builder::new()
            .name("events".into())
            .spawn(move || write_loop(out, receiver))?;
        Ok(Self {
            sender,
            dropped: AtomicU64::new(0),
        })
    }

    /// Lines dropped because the writer fell behind (its queue holds 65,536) or stopped.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Queues one event (never blocks; counts a drop if the writer is behind).
    pub fn emit(&self, line: String) {
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) =
            self.sender.try_send(line)
        {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Parses `stdout` or a file path.
pub fn target(text: &str) -> EventTarget {
    if text == "stdout" || text == "-" {
        EventTarget::Stdout
    } else {
        EventTarget::File(PathBuf::from(text.strip_prefix("file:").unwrap_or(text)))
    }
}

/// Reads event lines back (for tests and tools).
pub fn parse_lines(text: &str) -> Vec<Value> {
    text.lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}
