//! The monitor's counters, rendered for `/metrics` (Prometheus text format): events in by
//! kind, rejected lines, late events, alerts opened by detector, and the gauges read at
//! render time (window memory, active callers, open alerts, store size).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::detect::DetectorId;
use crate::event::Kind;

/// The counters.
#[derive(Debug, Default)]
pub struct Metrics {
    verifications: AtomicU64,
    complaints: AtomicU64,
    rejected: AtomicU64,
    late: AtomicU64,
    alerts: [AtomicU64; DetectorId::ALL.len()],
    store_errors: AtomicU64,
    too_large: AtomicU64,
}

fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

fn get(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

impl Metrics {
    /// One event stored.
    pub fn event(&self, kind: Kind) {
        match kind {
            Kind::Verification => add(&self.verifications, 1),
            Kind::Complaint => add(&self.complaints, 1),
        }
    }
    /// `n` lines refused.
    pub fn rejected(&self, n: u64) {
        add(&self.rejected, n);
    }
    /// `n` events stored but too late for the detectors.
    pub fn late(&self, n: u64) {
        add(&self.late, n);
    }
    /// An alert opened.
    pub fn alert(&self, detector: DetectorId) {
        if let Some(i) = DetectorId::ALL.iter().position(|d| *d == detector) {
            if let Some(counter) = self.alerts.get(i) {
                add(counter, 1);
            }
        }
    }
    /// A batch the store could not write (answered 503).
    pub fn store_error(&self) {
        add(&self.store_errors, 1);
    }
    /// A body over the cap (answered 413).
    pub fn too_large(&self) {
        add(&self.too_large, 1);
    }
    /// Events stored, by kind: (verifications, complaints).
    pub fn events(&self) -> (u64, u64) {
        (get(&self.verifications), get(&self.complaints))
    }
    /// Lines refused so far.
    pub fn rejected_lines(&self) -> u64 {
        get(&self.rejected)
    }

    /// The exposition text, with the gauges given.
    pub fn render(
        &self,
        window_bytes: u64,
        active_callers: u64,
        open_alerts: u64,
        store_bytes: u64,
    ) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP monitor_events_total Events stored, by kind.\n# TYPE monitor_events_total counter\nmonitor_events_total{{kind=\"verification\"}} {}\nmonitor_events_total{{kind=\"complaint\"}} {}",
            get(&self.verifications),
            get(&self.complaints)
        );
        for (name, help, value) in [
            (
                "monitor_rejected_lines_total",
                "Event lines refused.",
                get(&self.rejected),
            ),
            (
                "monitor_late_events_total",
                "Events stored but older than the lateness bound, not counted by the detectors.",
                get(&self.late),
            ),
            (
                "monitor_store_errors_total",
                "Batches the store could not write (answered 503).",
                get(&self.store_errors),
            ),
            (
                "monitor_too_large_total",
                "Bodies over max_body_bytes (answered 413).",
                get(&self.too_large),
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP monitor_alerts_total Alerts opened, by detector.\n# TYPE monitor_alerts_total counter"
        );
        for (detector, counter) in DetectorId::ALL.iter().zip(&self.alerts) {
            let _ = writeln!(
                out,
                "monitor_alerts_total{{detector=\"{}\"}} {}",
                detector.as_str(),
                get(counter)
            );
        }
        for (name, help, value) in [
            (
                "monitor_window_memory_bytes",
                "The detectors' estimate of the memory their windows hold.",
                window_bytes,
            ),
            (
                "monitor_active_callers",
                "Calling numbers with window state in memory.",
                active_callers,
            ),
            ("monitor_alerts_open", "Alerts open now.", open_alerts),
            (
                "monitor_store_bytes",
                "The store's size: SQLite's pages in use (WAL excluded), or PostgreSQL's monitor tables with their indexes.",
                store_bytes,
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
            );
        }
        out
    }
}

/// The exposition text of the journal and the indexer: acknowledged events not yet indexed,
/// events indexed, failed indexing transactions, and the journal's size on disk.
pub fn render_index(progress: &crate::indexer::Progress, journal_bytes: u64) -> String {
    let mut out = String::new();
    for (name, kind, help, value) in [
        (
            "monitor_index_lag_events",
            "gauge",
            "Acknowledged events (in the journal) not yet in the store's indexes.",
            progress.lag_events(),
        ),
        (
            "monitor_indexed_events_total",
            "counter",
            "Events the indexer wrote to the store since start.",
            progress.indexed_events(),
        ),
        (
            "monitor_index_failures_total",
            "counter",
            "Indexing transactions that failed (retried from the checkpoint).",
            progress.failures(),
        ),
        (
            "monitor_journal_bytes",
            "gauge",
            "The event journal's segments on disk.",
            journal_bytes,
        ),
    ] {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
        );
    }
    out
}
