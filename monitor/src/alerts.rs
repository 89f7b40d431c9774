//! The alert book: one open alert per subject and detector.
//!
//! CONTRACT (skeleton): [`Alert`] is the stored and served shape.

use serde::Serialize;

use crate::detect::{DetectorId, Subject};

/// One alert, as `GET /v1/alerts` serves it (plus `closed` and `last`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Alert {
    /// Unique, increasing.
    pub id: u64,
    /// Who.
    pub subject: Subject,
    /// Which detector.
    pub detector: DetectorId,
    /// The event time of the event that made the detector fire.
    pub time: u64,
    /// The window, seconds.
    pub window: u64,
    /// The count when it fired.
    pub count: u64,
    /// The threshold.
    pub threshold: u64,
    /// Some `origid`s.
    pub samples: Vec<String>,
    /// The explanation.
    pub text: String,
    /// Event time of the latest crossing while open.
    pub last: u64,
    /// Closed after a quiet window.
    pub closed: bool,
}

/// What offering a crossing to the book did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AlertChange {
    /// A new alert opened (to be stored).
    Opened(Alert),
    /// The subject's open alert for this detector saw another crossing: its `last` (and
    /// `count`, when higher) changed (to be stored).
    Extended(Alert),
}

/// The open alerts, by subject and detector.
#[derive(Debug, Default)]
pub struct AlertBook {}

impl AlertBook {
    /// A book whose alerts close after `quiet` seconds (event time) without a crossing;
    /// `next_id` is the first id to give (one past the highest stored).
    pub fn new(quiet: u64, next_id: u64) -> Self {
        let _ = (quiet, next_id);
        Self {}
    }

    /// Puts back an alert read from the store (on restart).
    pub fn restore(&mut self, _alert: Alert) {}

    /// Offers a crossing.
    pub fn offer(&mut self, _crossing: crate::detect::Crossing) -> Option<AlertChange> {
        None
    }

    /// Closes the alerts whose last crossing is older than the quiet window before `now`
    /// (event time), returning them closed (to be stored).
    pub fn close_quiet(&mut self, _now: u64) -> Vec<Alert> {
        Vec::new()
    }
}
