//! The alert book: one open alert per subject and detector.
//!
//! A [`Crossing`] for a subject and detector with no open alert opens one
//! ([`AlertChange::Opened`]). While it is open, further crossings extend it
//! ([`AlertChange::Extended`]): `last` moves to the latest crossing, `count` to the highest,
//! `time` to the earliest (a crossing found late, when an out-of-order event completed an
//! earlier window), and `samples` fill up to five. A crossing later than the open alert's
//! `last + quiet` closes it and opens a new one; [`AlertBook::close_quiet`] closes the alerts
//! quiet since `now - quiet`. Closing depends on event time only, so a replay closes the same
//! alerts as live reception.
//!
//! Each open alert belongs to the [`Shard`] whose crossings raised it (one open alert per
//! shard, subject and detector): a shard's event time closes only its own alerts
//! ([`AlertBook::close_quiet_in`]), since partitions are not in step; an alert taken over
//! with a partition is adopted into the new owner's book ([`AlertBook::adopt`]), and a
//! revoked partition's alerts are forgotten, not closed ([`AlertBook::forget`]): their new
//! owner adopts them.
//!
//! `quiet` is one value for every detector by default; [`AlertBook::set_quiet`] sets a
//! detector's own (the service may use each detector's window, as
//! `DetectionConfig::window` gives it, so a 24-hour `complaints` alert is not closed and
//! reopened every few minutes).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::detect::{Crossing, DetectorId, Subject};
use crate::shards::Shard;

/// The most `origid`s an alert keeps as samples.
pub const MAX_SAMPLES: usize = 5;

/// One alert, as `GET /v1/alerts` serves it (plus `closed` and `last`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
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
    /// The open alert had been quiet longer than the quiet window before this crossing: it
    /// closed (first, to be stored) and a new one opened (second, to be stored).
    Reopened {
        /// The old alert, closed.
        closed: Alert,
        /// The new one.
        opened: Alert,
    },
}

/// The key of an open alert: the shard whose events raised it, its subject and detector.
type Key = (Shard, Subject, DetectorId);

/// The open alerts, by shard, subject and detector.
#[derive(Debug, Default)]
pub struct AlertBook {
    open: HashMap<Key, Alert>,
    /// The shard of each open alert, by its id (to tell which shard a changed alert is of).
    shard_by_id: HashMap<u64, Shard>,
    quiet: u64,
    quiet_by: HashMap<DetectorId, u64>,
    next_id: u64,
}

impl AlertBook {
    /// A book whose alerts close after `quiet` seconds (event time) without a crossing;
    /// `next_id` is the first id to give (one past the highest stored).
    pub fn new(quiet: u64, next_id: u64) -> Self {
        Self {
            open: HashMap::new(),
            shard_by_id: HashMap::new(),
            quiet,
            quiet_by: HashMap::new(),
            next_id,
        }
    }

    /// Sets one detector's quiet window (seconds), instead of the book's.
    pub fn set_quiet(&mut self, detector: DetectorId, quiet: u64) {
        self.quiet_by.insert(detector, quiet);
    }

    /// A detector's quiet window.
    pub fn quiet(&self, detector: DetectorId) -> u64 {
        self.quiet_by.get(&detector).copied().unwrap_or(self.quiet)
    }

    /// Puts back an alert read from the store (on restart) into [`Shard::Pushed`]. A closed
    /// one is ignored; the id counter moves past it.
    pub fn restore(&mut self, alert: Alert) {
        self.next_id = self.next_id.max(alert.id + 1);
        if alert.closed {
            return;
        }
        let key = (Shard::Pushed, alert.subject.clone(), alert.detector);
        match self.open.get(&key) {
            Some(held) if held.id > alert.id => {}
            _ => {
                self.insert(key, alert);
            }
        }
    }

    fn insert(&mut self, key: Key, alert: Alert) {
        self.shard_by_id.insert(alert.id, key.0);
        if let Some(old) = self.open.insert(key, alert) {
            self.shard_by_id.remove(&old.id);
        }
    }

    fn remove(&mut self, key: &Key) -> Option<Alert> {
        let alert = self.open.remove(key)?;
        self.shard_by_id.remove(&alert.id);
        Some(alert)
    }

    /// The open alerts (unordered).
    pub fn open(&self) -> impl Iterator<Item = &Alert> {
        self.open.values()
    }

    /// How many alerts are open.
    pub fn open_count(&self) -> usize {
        self.open.len()
    }

    /// The shard of an open alert (by id); `None` once it is closed or forgotten.
    pub fn shard_of(&self, id: u64) -> Option<Shard> {
        self.shard_by_id.get(&id).copied()
    }

    /// Takes over an open alert an instance raised for a partition this one now owns (read
    /// from the alerts topic), under a new id of this book, so that the shard's next crossing
    /// extends it as the previous owner would have. Returns the adopted alert; `None` when it
    /// is closed or the shard already holds an open alert for its subject and detector.
    pub fn adopt(&mut self, shard: Shard, alert: &Alert) -> Option<Alert> {
        let key = (shard, alert.subject.clone(), alert.detector);
        if alert.closed || self.open.contains_key(&key) {
            return None;
        }
        let adopted = Alert {
            id: self.next_id,
            ..alert.clone()
        };
        self.next_id += 1;
        self.insert(key, adopted.clone());
        Some(adopted)
    }

    /// Forgets the open alerts of a shard (a partition revoked: its new owner adopts them),
    /// without closing them. Returns how many.
    pub fn forget(&mut self, shard: Shard) -> usize {
        let keys: Vec<Key> = self.open.keys().filter(|k| k.0 == shard).cloned().collect();
        for key in &keys {
            self.remove(key);
        }
        keys.len()
    }

    fn opened(&mut self, crossing: Crossing) -> Alert {
        let id = self.next_id;
        self.next_id += 1;
        let mut samples = crossing.samples;
        samples.truncate(MAX_SAMPLES);
        Alert {
            id,
            subject: crossing.subject,
            detector: crossing.detector,
            time: crossing.time,
            window: crossing.window,
            count: crossing.count,
            threshold: crossing.threshold,
            samples,
            text: crossing.text,
            last: crossing.time,
            closed: false,
        }
    }

    /// Offers a crossing: opens, extends or closes-and-reopens the subject's alert for the
    /// detector. `None` when nothing changed (a crossing already counted).
    pub fn offer(&mut self, crossing: Crossing) -> Option<AlertChange> {
        self.offer_in(Shard::Pushed, crossing)
    }

    /// Offers a crossing found in `shard` ([`Self::offer`]): each shard has its own open
    /// alert per subject and detector (for a caller, only its partition's shard ever has one;
    /// an SPC has one per partition that crossed).
    pub fn offer_in(&mut self, shard: Shard, crossing: Crossing) -> Option<AlertChange> {
        let key = (shard, crossing.subject.clone(), crossing.detector);
        let quiet = self.quiet(crossing.detector);
        let Some(alert) = self.open.get_mut(&key) else {
            let alert = self.opened(crossing);
            self.insert(key, alert.clone());
            return Some(AlertChange::Opened(alert));
        };
        if crossing.time > alert.last.saturating_add(quiet) {
            let mut closed = alert.clone();
            closed.closed = true;
            let opened = self.opened(crossing);
            self.insert(key, opened.clone());
            return Some(AlertChange::Reopened { closed, opened });
        }
        let before = alert.clone();
        if crossing.time < alert.time {
            // An out-of-order event completed an earlier window: the alert fired earlier.
            alert.time = crossing.time;
            alert.text = crossing.text.clone();
            alert.threshold = crossing.threshold;
        }
        alert.last = alert.last.max(crossing.time);
        if crossing.count > alert.count {
            alert.count = crossing.count;
        }
        for origid in crossing.samples {
            if alert.samples.len() >= MAX_SAMPLES {
                break;
            }
            if !alert.samples.contains(&origid) {
                alert.samples.push(origid);
            }
        }
        (*alert != before).then(|| AlertChange::Extended(alert.clone()))
    }

    /// Closes the alerts whose last crossing is more than their quiet window before `now`
    /// (event time: the newest event time seen), returning them closed (to be stored).
    pub fn close_quiet(&mut self, now: u64) -> Vec<Alert> {
        self.close_where(now, |_| true)
    }

    /// Closes, as [`Self::close_quiet`] does, only the alerts of `shard`, with `now` that
    /// shard's newest event time.
    pub fn close_quiet_in(&mut self, shard: Shard, now: u64) -> Vec<Alert> {
        self.close_where(now, |s| s == shard)
    }

    fn close_where(&mut self, now: u64, mine: impl Fn(Shard) -> bool) -> Vec<Alert> {
        let quiet_by = &self.quiet_by;
        let quiet = self.quiet;
        let mut closed = Vec::new();
        self.open.retain(|key, alert| {
            let q = quiet_by.get(&key.2).copied().unwrap_or(quiet);
            if mine(key.0) && alert.last.saturating_add(q) < now {
                let mut a = alert.clone();
                a.closed = true;
                closed.push(a);
                false
            } else {
                true
            }
        });
        for alert in &closed {
            self.shard_by_id.remove(&alert.id);
        }
        closed.sort_by_key(|a| a.id);
        closed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crossing(time: u64, count: u64, samples: &[&str]) -> Crossing {
        Crossing {
            subject: Subject::Caller("8613800000001".into()),
            detector: DetectorId::HighFrequency,
            time,
            window: 3600,
            count,
            threshold: 60,
            samples: samples.iter().map(|s| s.to_string()).collect(),
            text: format!("8613800000001 placed {count} calls in 60 min (threshold 60)"),
        }
    }

    #[test]
    fn one_open_alert_extended_then_closed_when_quiet() {
        let mut book = AlertBook::new(600, 10);
        let Some(AlertChange::Opened(a)) = book.offer(crossing(1000, 61, &["a"])) else {
            panic!("opened")
        };
        assert_eq!((a.id, a.time, a.last, a.closed), (10, 1000, 1000, false));
        let Some(AlertChange::Extended(a)) = book.offer(crossing(1200, 70, &["b", "c"])) else {
            panic!("extended")
        };
        assert_eq!((a.id, a.time, a.last, a.count), (10, 1000, 1200, 70));
        assert_eq!(a.samples, vec!["a", "b", "c"]);
        // Lower count, earlier time: the alert fired earlier than thought.
        let Some(AlertChange::Extended(a)) = book.offer(crossing(990, 61, &[])) else {
            panic!("extended")
        };
        assert_eq!((a.time, a.last, a.count), (990, 1200, 70));
        assert_eq!(book.offer(crossing(1100, 61, &[])), None);
        assert!(book.close_quiet(1800).is_empty());
        let closed = book.close_quiet(1801);
        assert_eq!(closed.len(), 1);
        assert!(closed[0].closed);
        let Some(AlertChange::Opened(b)) = book.offer(crossing(5000, 61, &[])) else {
            panic!("opened again")
        };
        assert_eq!(b.id, 11);
    }

    #[test]
    fn a_crossing_after_the_quiet_window_reopens() {
        let mut book = AlertBook::new(600, 1);
        book.offer(crossing(1000, 61, &[]));
        let Some(AlertChange::Reopened { closed, opened }) = book.offer(crossing(1601, 61, &[]))
        else {
            panic!("reopened")
        };
        assert!(closed.closed);
        assert_eq!((closed.id, opened.id, opened.time), (1, 2, 1601));
    }

    #[test]
    fn quiet_per_detector_and_restore() {
        let mut book = AlertBook::new(600, 1);
        book.set_quiet(DetectorId::HighFrequency, 3600);
        book.offer(crossing(1000, 61, &[]));
        assert!(book.close_quiet(2000).is_empty());
        assert_eq!(book.close_quiet(4601).len(), 1);
        let mut restored = AlertBook::new(600, 1);
        let mut alert = book.opened(crossing(7000, 61, &[]));
        alert.id = 41;
        restored.restore(alert);
        let Some(AlertChange::Extended(a)) = restored.offer(crossing(7100, 62, &[])) else {
            panic!("extended")
        };
        assert_eq!(a.id, 41);
        let Some(AlertChange::Opened(b)) = restored.offer(Crossing {
            detector: DetectorId::Repeat,
            ..crossing(7100, 6, &[])
        }) else {
            panic!("opened")
        };
        assert_eq!(b.id, 42);
    }

    #[test]
    fn samples_stop_at_five() {
        let mut book = AlertBook::new(600, 1);
        book.offer(crossing(1000, 61, &["1", "2", "3", "4", "5", "6"]));
        let Some(AlertChange::Extended(a)) = book.offer(crossing(1001, 62, &["7"])) else {
            panic!("extended")
        };
        assert_eq!(a.samples.len(), 5);
    }

    #[test]
    fn a_shards_time_closes_only_its_own_alerts() {
        let mut book = AlertBook::new(600, 1);
        book.offer_in(Shard::Partition(0), crossing(1000, 61, &["a"]));
        let mut other = crossing(1000, 61, &["b"]);
        other.subject = Subject::Caller("8613800000002".into());
        book.offer_in(Shard::Partition(1), other);
        // Partition 0 runs ahead: it closes its alert, not partition 1's.
        let closed = book.close_quiet_in(Shard::Partition(0), 5000);
        assert_eq!(closed.len(), 1);
        assert_eq!(closed[0].subject, Subject::Caller("8613800000001".into()));
        assert_eq!(book.open_count(), 1);
        assert!(book.close_quiet_in(Shard::Partition(1), 1500).is_empty());
        assert_eq!(book.close_quiet_in(Shard::Partition(1), 1601).len(), 1);
    }

    #[test]
    fn an_adopted_alert_is_extended_under_a_new_id_and_forgotten_with_its_shard() {
        let mut theirs = AlertBook::new(600, 40);
        let Some(AlertChange::Opened(raised)) = theirs.offer(crossing(1000, 61, &["a"])) else {
            panic!("opened")
        };
        let mut book = AlertBook::new(600, 7);
        let adopted = book.adopt(Shard::Partition(2), &raised).unwrap();
        assert_eq!((adopted.id, adopted.time, adopted.last), (7, 1000, 1000));
        assert_eq!(
            book.adopt(Shard::Partition(2), &raised),
            None,
            "held already"
        );
        let mut closed = raised.clone();
        closed.closed = true;
        let mut fresh = AlertBook::new(600, 1);
        assert_eq!(fresh.adopt(Shard::Partition(2), &closed), None);
        // The next crossing extends it as the previous owner would have.
        let Some(AlertChange::Extended(a)) =
            book.offer_in(Shard::Partition(2), crossing(1300, 65, &["b"]))
        else {
            panic!("extended")
        };
        assert_eq!((a.id, a.time, a.last, a.count), (7, 1000, 1300, 65));
        // Revoked: forgotten, not closed.
        assert_eq!(book.forget(Shard::Partition(1)), 0);
        assert_eq!(book.forget(Shard::Partition(2)), 1);
        assert_eq!(book.open_count(), 0);
    }
}
