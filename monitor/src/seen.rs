//! The events already taken, for a monitor that consumes an at-least-once stream (issue 19,
//! section 2): a record read again (its offset was not committed before a crash, a rebalance
//! or a failed commit) must be counted once.
//!
//! An event is recognized by its `origid` together with its whole line: a replayed record is
//! byte for byte the one first read, while `origid` alone is not unique per event (one call
//! verified at two hops makes two events with one `origid`, and a complaint has none). The
//! pair is kept as a 64-bit hash (std's `DefaultHasher::new()`, the same for every key of a
//! process; the set is rebuilt from the store on start, never persisted); two different
//! events share one with a probability near n²/2⁶⁵ (about 3·10⁻⁴ for 10⁸ events held), and the
//! second would then be taken for a replay.
//!
//! **The bound.** An entry is kept while its event time is within `window` seconds of the
//! newest event time seen (the service uses the detectors' horizon: the longest enabled window
//! plus the allowed lateness, so every replay that could still change a window is
//! recognized), and at most `cap` entries are kept: past it the oldest inserted go first,
//! counted by [`SeenSet::evicted`]. Entries leave in insertion order, so an entry that came
//! late with an old time can stay a little past its window, never less. Memory is about 40
//! bytes an entry.

use std::collections::{HashSet, VecDeque};
use std::hash::{Hash, Hasher};

/// The most entries the service keeps: 10⁷, about 400 MB; at 3,000 events/s into one
/// instance, a little under an hour.
pub const DEFAULT_CAP: usize = 10_000_000;

/// The key of an event: its `origid` and its line.
pub fn key(origid: Option<&str>, line: &str) -> u64 {
    let mut hasher = std::hash::DefaultHasher::new();
    origid.hash(&mut hasher);
    line.hash(&mut hasher);
    hasher.finish()
}

/// The keys of the events taken within the window, bounded as the module says.
#[derive(Debug)]
pub struct SeenSet {
    keys: HashSet<u64>,
    order: VecDeque<(u64, u64)>,
    window: u64,
    cap: usize,
    newest: u64,
    evicted: u64,
}

impl SeenSet {
    /// An empty set keeping `window` seconds of event time and at most `cap` entries.
    pub fn new(window: u64, cap: usize) -> Self {
        Self {
            keys: HashSet::new(),
            order: VecDeque::new(),
            window,
            cap: cap.max(1),
            newest: 0,
            evicted: 0,
        }
    }

    /// Whether `key` was taken (and is still held).
    pub fn contains(&self, key: u64) -> bool {
        self.keys.contains(&key)
    }

    /// Records `key` for an event at `time`; then drops what fell out of the window or past
    /// the cap. False when it was already held.
    pub fn insert(&mut self, key: u64, time: u64) -> bool {
        if !self.keys.insert(key) {
            return false;
        }
        self.order.push_back((time, key));
        self.newest = self.newest.max(time);
        let oldest = self.newest.saturating_sub(self.window);
        while let Some(&(front_time, front_key)) = self.order.front() {
            let full = self.order.len() > self.cap;
            if front_time >= oldest && !full {
                break;
            }
            if full {
                self.evicted += 1;
            }
            self.keys.remove(&front_key);
            self.order.pop_front();
        }
        true
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// Entries dropped by the cap while still inside the window (a replay of those would be
    /// counted again).
    pub fn evicted(&self) -> u64 {
        self.evicted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_held_for_the_window_then_dropped() {
        let mut seen = SeenSet::new(60, 100);
        let a = key(Some("o1"), "line a");
        assert!(seen.insert(a, 1000));
        assert!(!seen.insert(a, 1000));
        assert!(seen.contains(a));
        seen.insert(key(Some("o2"), "line b"), 1060);
        assert!(seen.contains(a), "exactly the window old: still held");
        seen.insert(key(Some("o3"), "line c"), 1061);
        assert!(!seen.contains(a));
        assert_eq!(seen.len(), 2);
        assert_eq!(seen.evicted(), 0);
    }

    #[test]
    fn the_cap_drops_the_oldest_and_counts_them() {
        let mut seen = SeenSet::new(3600, 2);
        let keys: Vec<u64> = (0..3).map(|i| key(Some("o"), &format!("l{i}"))).collect();
        for (i, k) in keys.iter().enumerate() {
            seen.insert(*k, 1000 + i as u64);
        }
        assert_eq!(seen.len(), 2);
        assert!(!keys.first().is_some_and(|k| seen.contains(*k)));
        assert!(keys.get(2).is_some_and(|k| seen.contains(*k)));
        assert_eq!(seen.evicted(), 1);
    }

    #[test]
    fn the_same_origid_on_two_lines_is_two_events() {
        assert_ne!(key(Some("o1"), "hop 1"), key(Some("o1"), "hop 2"));
        assert_ne!(key(Some("o1"), "x"), key(None, "x"));
        assert_eq!(key(Some("o1"), "x"), key(Some("o1"), "x"));
    }
}
