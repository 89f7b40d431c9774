//! Exact sliding-window counts over sorted event times, and the expiry wheel that forgets
//! subjects whose events fell behind the horizon.
//!
//! A window of `w` seconds ending at an event time `f` holds the entries with times `τ`,
//! `f - w < τ <= f`. The most any window holds is reached by a window ending at an entry's
//! time, so checking the windows that end at entry times is exact. When an event at `t`
//! arrives (in any order), the windows that gained it end at `f` with `t <= f < t + w`: a
//! sweep over those ends finds every window the event pushed over a threshold. In time order
//! this is the one window ending at `t`.

use std::collections::BTreeMap;
use std::collections::HashMap;
use std::hash::Hash;

/// The windows an event pushed over a threshold: the earliest and the latest end, and the
/// highest count among them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Over {
    /// The earliest window end (an event time) over the threshold.
    pub(crate) first: u64,
    /// The latest.
    pub(crate) last: u64,
    /// The highest count.
    pub(crate) count: u64,
}

impl Over {
    fn note(slot: &mut Option<Over>, end: u64, count: u64) {
        match slot {
            None => {
                *slot = Some(Over {
                    first: end,
                    last: end,
                    count,
                })
            }
            Some(over) => {
                over.last = end;
                over.count = over.count.max(count);
            }
        }
    }
}

/// The range of indexes of `times` (sorted) that windows gaining an entry at `t` look at:
/// entries in `(t - w, t + w)`, and the index of the first one at `t` or later.
fn span<T>(items: &[T], time: impl Fn(&T) -> u64, t: u64, w: u64) -> (usize, usize, usize) {
    let lo = items.partition_point(|x| time(x) + w <= t);
    let mid = items.partition_point(|x| time(x) < t);
    let hi = items.partition_point(|x| time(x) < t.saturating_add(w));
    (lo, mid, hi)
}

/// Counts: the windows of `w` seconds, gaining the entry at `t`, holding more than
/// `threshold` entries that `keep`; windows end at kept entries.
pub(crate) fn count_over<T>(
    items: &[T],
    time: impl Fn(&T) -> u64 + Copy,
    keep: impl Fn(&T) -> bool,
    t: u64,
    w: u64,
    threshold: u64,
) -> Option<Over> {
    let (lo, mid, hi) = span(items, time, t, w);
    let window = items.get(lo..hi)?;
    // Cheap refusal: fewer kept entries in the whole span than the threshold needs.
    if (window.len() as u64) <= threshold {
        return None;
    }
    let mut count: u64 = 0;
    let mut tail = 0; // index into `window` of the oldest entry still inside
    let start = mid - lo;
    for item in window.get(..start)? {
        if keep(item) {
            count += 1;
        }
    }
    let mut result = None;
    let mut i = start;
    while let Some(first) = window.get(i) {
        let end = time(first);
        let mut kept_here = false;
        while let Some(item) = window.get(i).filter(|x| time(x) == end) {
            if keep(item) {
                count += 1;
                kept_here = true;
            }
            i += 1;
        }
        while let Some(old) = window.get(tail).filter(|x| time(x) + w <= end) {
            if keep(old) {
                count -= 1;
            }
            tail += 1;
        }
        if kept_here && count > threshold {
            Over::note(&mut result, end, count);
        }
    }
    result
}

/// Distinct values: the windows of `w` seconds, gaining the entry at `t`, holding more than
/// `threshold` distinct `value`s. Exact (a counting map over the span; only built when the
/// span holds more entries than the threshold).
pub(crate) fn distinct_over<T, V: Eq + Hash + Copy>(
    items: &[T],
    time: impl Fn(&T) -> u64 + Copy,
    value: impl Fn(&T) -> V,
    t: u64,
    w: u64,
    threshold: u64,
) -> Option<Over> {
    let (lo, mid, hi) = span(items, time, t, w);
    let window = items.get(lo..hi)?;
    if (window.len() as u64) <= threshold {
        return None;
    }
    let mut counts: HashMap<V, u32> = HashMap::new();
    let mut tail = 0;
    let start = mid - lo;
    for item in window.get(..start)? {
        *counts.entry(value(item)).or_default() += 1;
    }
    let mut result = None;
    let mut i = start;
    while let Some(first) = window.get(i) {
        let end = time(first);
        while let Some(item) = window.get(i).filter(|x| time(x) == end) {
            *counts.entry(value(item)).or_default() += 1;
            i += 1;
        }
        while let Some(old) = window.get(tail).filter(|x| time(x) + w <= end) {
            let v = value(old);
            if let Some(n) = counts.get_mut(&v) {
                *n -= 1;
                if *n == 0 {
                    counts.remove(&v);
                }
            }
            tail += 1;
        }
        if counts.len() as u64 > threshold {
            Over::note(&mut result, end, counts.len() as u64);
        }
    }
    result
}

/// Entries `keep`s in the window of `w` seconds ending at `end`.
pub(crate) fn count_in<T>(
    items: &[T],
    time: impl Fn(&T) -> u64,
    keep: impl Fn(&T) -> bool,
    end: u64,
    w: u64,
) -> u64 {
    let lo = items.partition_point(|x| time(x) + w <= end);
    let hi = items.partition_point(|x| time(x) <= end);
    items
        .get(lo..hi)
        .map_or(0, |s| s.iter().filter(|x| keep(x)).count() as u64)
}

/// Inserts `item` keeping `items` sorted by time (after equal times: arrival order inside
/// one second does not matter to any count).
pub(crate) fn insert_sorted<T>(items: &mut Vec<T>, time: impl Fn(&T) -> u64, item: T) {
    let t = time(&item);
    let at = items.partition_point(|x| time(x) <= t);
    items.insert(at, item);
}

/// Subjects by the minute of their newest event: when the horizon passes a minute, its
/// subjects are checked and forgotten unless they saw a newer event since.
#[derive(Debug, Default)]
pub(crate) struct Wheel<K> {
    minutes: BTreeMap<u64, Vec<K>>,
}

impl<K: Clone> Wheel<K> {
    /// Notes that `key`'s newest event is now at `time` (call when its minute changes).
    pub(crate) fn note(&mut self, key: K, time: u64) {
        self.minutes.entry(time / 60).or_default().push(key);
    }

    /// Takes the keys noted in minutes that ended at or before `cutoff`.
    pub(crate) fn expire(&mut self, cutoff: u64, mut each: impl FnMut(K)) {
        while let Some(entry) = self.minutes.first_entry() {
            if entry.key() * 60 + 59 > cutoff {
                break;
            }
            for key in entry.remove() {
                each(key);
            }
        }
    }

    /// Bytes held (estimate).
    pub(crate) fn memory_bytes(&self) -> usize {
        self.minutes
            .values()
            .map(|v| v.capacity() * std::mem::size_of::<K>() + 48)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn brute(times: &[u64], w: u64, threshold: u64) -> Option<(u64, u64)> {
        let mut first = None;
        let mut max = 0;
        for &end in times {
            let n = times.iter().filter(|&&x| x + w > end && x <= end).count() as u64;
            if n > threshold {
                first = Some(first.map_or(end, |f: u64| f.min(end)));
                max = max.max(n);
            }
        }
        first.map(|f| (f, max))
    }

    #[test]
    fn the_sweep_finds_what_brute_force_finds_in_any_order() {
        let mut seed = 7u64;
        for round in 0..300 {
            let mut times = Vec::new();
            for _ in 0..(round % 40 + 1) {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                times.push(1000 + seed % 200);
            }
            let (w, threshold) = (60, 3);
            let mut sorted: Vec<u64> = Vec::new();
            let mut first: Option<u64> = None;
            let mut max = 0;
            for &t in &times {
                insert_sorted(&mut sorted, |x| *x, t);
                if let Some(over) = count_over(&sorted, |x| *x, |_| true, t, w, threshold) {
                    first = Some(first.map_or(over.first, |f| f.min(over.first)));
                    max = max.max(over.count);
                }
            }
            let expected = brute(&sorted, w, threshold);
            assert_eq!(first.map(|f| (f, max)), expected, "{times:?}");
        }
    }

    #[test]
    fn distinct_counts_values_not_entries() {
        let items: Vec<(u64, u32)> = (0..10).map(|i| (100 + i, (i % 4) as u32)).collect();
        assert_eq!(distinct_over(&items, |x| x.0, |x| x.1, 109, 60, 4), None);
        let over = distinct_over(&items, |x| x.0, |x| x.1, 109, 60, 3).unwrap();
        assert_eq!((over.first, over.count), (109, 4));
        assert_eq!(count_in(&items, |x| x.0, |x| x.1 == 0, 109, 5), 1);
    }

    #[test]
    fn the_wheel_gives_back_old_minutes_only() {
        let mut wheel = Wheel::default();
        wheel.note(1u32, 59);
        wheel.note(2, 60);
        let mut out = Vec::new();
        wheel.expire(59, |k| out.push(k));
        assert_eq!(out, vec![1]);
        wheel.expire(118, |k| out.push(k));
        assert_eq!(out, vec![1]);
        wheel.expire(119, |k| out.push(k));
        assert_eq!(out, vec![1, 2]);
    }
}
