//! The verification event feed: one JSON line per verification, with the members `time` (the
//! request's), `from`, `to`, then the verdict exactly as the response carries it (`verstat`,
//! `reasoncode`, `reasontext` and `reasondesc` on failure, `attest`, `origid`, `spc`, `x5u`
//! when known, `flags`; absent members are omitted), and `ingress` after `to` when the request
//! gave it. The lines go to a file or stdout ([`file`], a background thread so that a slow disk
//! never slows a verification; a full queue drops the line and counts it,
//! `shaken_verifier_events_dropped_total`) and/or to the monitor ([`push`]: batched, retried,
//! spooled to disk by [`spool`] while the monitor is away) and/or to a Kafka topic ([`kafka`]:
//! keyed by the calling number, queued in memory, never waited for). This is the feed the
//! monitoring platform consumes.

pub mod file;
pub mod kafka;
pub mod push;
pub mod spool;

use std::path::PathBuf;

use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::Value;

use crate::verdict::Verdict;
use file::FileWriter;
use kafka::KafkaPublisher;
use push::{PushStats, Pusher};

/// Where events go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EventTarget {
    /// Standard output.
    Stdout,
    /// A file, appended to.
    File(PathBuf),
}

/// The sink: the file writer, the pusher and the Kafka publisher, any of them. Emitting never
/// waits.
#[derive(Debug, Default)]
pub struct EventSink {
    file: Option<FileWriter>,
    push: Option<Pusher>,
    kafka: Option<KafkaPublisher>,
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
    /// Where the call entered the terminating network, as the request said.
    pub ingress: Option<&'a str>,
    /// The verdict, as answered.
    pub verdict: &'a Verdict,
}

impl Serialize for Event<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("time", &self.time)?;
        map.serialize_entry("from", self.from)?;
        map.serialize_entry("to", self.to)?;
        if let Some(ingress) = self.ingress {
            map.serialize_entry("ingress", ingress)?;
        }
        self.verdict
            .serialize_members(&mut map, crate::verdict::Audience::Event)?;
        map.end()
    }
}

/// One event line (JSON, no newline).
pub fn event_line(
    time: u64,
    from: &str,
    to: &[String],
    ingress: Option<&str>,
    verdict: &Verdict,
) -> String {
    // Serializing strings and numbers into a String cannot fail.
    serde_json::to_string(&Event {
        time,
        from,
        to,
        ingress,
        verdict,
    })
    .unwrap_or_default()
}

impl EventSink {
    /// A sink writing to `target` only (file or stdout).
    pub fn open(target: &EventTarget) -> std::io::Result<Self> {
        Ok(Self {
            file: Some(FileWriter::open(target)?),
            push: None,
            kafka: None,
        })
    }

    /// A sink writing to `file` and pushing through `push`, either or both.
    pub fn new(file: Option<FileWriter>, push: Option<Pusher>) -> Self {
        Self {
            file,
            push,
            kafka: None,
        }
    }

    /// The same sink also publishing each line to Kafka through `kafka`.
    pub fn with_kafka(mut self, kafka: KafkaPublisher) -> Self {
        self.kafka = Some(kafka);
        self
    }

    /// Lines the file writer dropped because it fell behind (its queue holds 65,536) or
    /// stopped.
    pub fn dropped(&self) -> u64 {
        self.file.as_ref().map_or(0, FileWriter::dropped)
    }

    /// The pusher's counters, when pushing.
    pub fn push_stats(&self) -> Option<&PushStats> {
        self.push.as_ref().map(Pusher::stats)
    }

    /// The Kafka publisher, when publishing.
    pub fn kafka(&self) -> Option<&KafkaPublisher> {
        self.kafka.as_ref()
    }

    /// Queues one event line to each destination (never blocks; a full queue counts a drop or
    /// a loss). `from` is the calling number, the line's Kafka key.
    pub fn emit(&self, from: &str, line: String) {
        if let Some(kafka) = &self.kafka {
            kafka.emit(from, &line);
        }
        match (&self.file, &self.push) {
            (Some(file), Some(push)) => {
                push.emit(line.clone());
                file.emit(line);
            }
            (Some(file), None) => file.emit(line),
            (None, Some(push)) => push.emit(line),
            (None, None) => {}
        }
    }

    /// Stops the pusher, spooling the lines it holds in memory, and the Kafka publisher,
    /// waiting a bounded time for its queue to drain (blocks until done).
    pub fn stop(&self) {
        if let Some(push) = &self.push {
            push.stop();
        }
        if let Some(kafka) = &self.kafka {
            kafka.stop();
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
