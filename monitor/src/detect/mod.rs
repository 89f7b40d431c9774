//! The detectors, over event time.
//!
//! CONTRACT (skeleton): [`Engine`], [`Subject`], [`DetectorId`], [`Crossing`] and
//! [`Observation`] are the interface the server uses; the detectors branch fills them in.

use serde::Serialize;

use crate::event::Event;

/// Who an alert is about.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Subject {
    /// A calling number (E.164 digits): `{"caller": TN}`.
    Caller(String),
    /// A signing carrier: `{"spc": SPC}`.
    Spc(String),
}

/// A detector's name, as the API and the config write it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum DetectorId {
    /// `high-frequency`.
    #[serde(rename = "high-frequency")]
    HighFrequency,
    /// `fan-out`.
    #[serde(rename = "fan-out")]
    FanOut,
    /// `repeat`.
    #[serde(rename = "repeat")]
    Repeat,
    /// `complaints`.
    #[serde(rename = "complaints")]
    Complaints,
    /// `out-of-area`.
    #[serde(rename = "out-of-area")]
    OutOfArea,
    /// `spoofing-source`.
    #[serde(rename = "spoofing-source")]
    SpoofingSource,
}

/// A detector crossed its threshold for a subject at an event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Crossing {
    /// Who.
    pub subject: Subject,
    /// Which detector.
    pub detector: DetectorId,
    /// The event time of the event that made it fire.
    pub time: u64,
    /// The window, seconds.
    pub window: u64,
    /// The count in the window.
    pub count: u64,
    /// The threshold exceeded.
    pub threshold: u64,
    /// Some `origid`s of the calls counted (at most a few).
    pub samples: Vec<String>,
    /// One sentence a person can read.
    pub text: String,
}

/// What the engine made of one event.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Observation {
    /// Marks on the call itself (e.g. `out-of-area`), stored with the event.
    pub marks: Vec<DetectorId>,
    /// Thresholds crossed.
    pub crossings: Vec<Crossing>,
    /// The event came later than the lateness bound allows (older than the newest event
    /// time seen minus `lateness_seconds`): it is stored but the detectors did not count it.
    pub late: bool,
}

pub mod config;

pub use config::DetectionConfig;

/// All detectors. Single-threaded; the server holds it behind a lock.
#[derive(Debug, Default)]
pub struct Engine {}

/// A subject's current window counts, as `GET /v1/callers/{tn}` and `GET /v1/spcs/{spc}`
/// serve them under `"windows"` (detector name -> counts).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct WindowCounts {
    /// One entry per detector that tracks this subject: `{"detector", "window", "count",
    /// "threshold"}`.
    pub windows: Vec<WindowCount>,
}

/// One detector's current count for a subject.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct WindowCount {
    /// Which detector.
    pub detector: DetectorId,
    /// The window, seconds.
    pub window: u64,
    /// Its count in the window ending at the newest event time seen.
    pub count: u64,
    /// The threshold.
    pub threshold: u64,
}

impl Engine {
    /// An engine with these settings. `allow` are the allow-listed calling numbers;
    /// `firm_of` tells a white-listed marketing firm's number (the regulator's list) and its
    /// hourly quota, when a list is configured.
    pub fn new(config: &DetectionConfig, allow: impl IntoIterator<Item = String>) -> Self {
        let _ = (config, allow.into_iter().count());
        Self {}
    }

    /// Feeds one event (in any order within the lateness bound).
    pub fn observe(&mut self, _event: &Event) -> Observation {
        Observation::default()
    }

    /// Adds a number to the allow list (true when it was not there).
    pub fn allow(&mut self, _tn: &str) -> bool {
        false
    }

    /// Removes a number from the allow list (true when it was there).
    pub fn disallow(&mut self, _tn: &str) -> bool {
        false
    }

    /// The allow list, sorted.
    pub fn allowed(&self) -> Vec<String> {
        Vec::new()
    }

    /// A calling number's current window counts.
    pub fn caller_counts(&self, _tn: &str) -> WindowCounts {
        WindowCounts::default()
    }

    /// A signing carrier's current window counts.
    pub fn spc_counts(&self, _spc: &str) -> WindowCounts {
        WindowCounts::default()
    }

    /// The `n` calling numbers with the most calls in the `high-frequency` hour window,
    /// most first.
    pub fn top_callers(&self, _n: usize) -> Vec<(String, u64)> {
        Vec::new()
    }

    /// Calling numbers with state in memory.
    pub fn active_callers(&self) -> usize {
        0
    }

    /// An estimate of the bytes the windows hold.
    pub fn memory_bytes(&self) -> usize {
        0
    }

    /// The seconds of event history the detectors need behind the newest event time: the
    /// store replays at least this much into a new engine on restart.
    pub fn horizon(&self) -> u64 {
        0
    }

    /// The newest event time seen (the watermark's base), 0 before any event.
    pub fn newest_time(&self) -> u64 {
        0
    }
}
