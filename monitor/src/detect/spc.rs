//! The state kept per signing carrier (and, for `out-of-area` calls that carry no SPC, per
//! ingress): per-second counters of calls, `spoofed` calls and `out-of-area`-marked calls
//! over the horizon. Exact at one-second resolution (event times are whole seconds), 12
//! bytes a second, whatever the carrier's call rate.

use std::collections::VecDeque;

use super::callers::Samples;
use super::window::Over;

/// One second's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Bucket {
    pub(crate) calls: u32,
    pub(crate) spoofed: u32,
    pub(crate) marked: u32,
}

/// Sums over a window.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Sums {
    pub(crate) calls: u64,
    pub(crate) spoofed: u64,
    pub(crate) marked: u64,
}

impl Sums {
    pub(crate) fn add(&mut self, b: &Bucket) {
        self.calls += u64::from(b.calls);
        self.spoofed += u64::from(b.spoofed);
        self.marked += u64::from(b.marked);
    }
    pub(crate) fn sub(&mut self, b: &Bucket) {
        self.calls -= u64::from(b.calls);
        self.spoofed -= u64::from(b.spoofed);
        self.marked -= u64::from(b.marked);
    }
}

/// One carrier's counters: `buckets[i]` is second `base + i`.
#[derive(Clone, Debug, Default)]
pub(crate) struct SpcState {
    pub(crate) base: u64,
    pub(crate) buckets: VecDeque<Bucket>,
    pub(crate) newest: u64,
    pub(crate) spoofed_samples: Samples,
    pub(crate) marked_samples: Samples,
}

impl SpcState {
    /// The bucket of second `t`, forgetting seconds at or before `cutoff` (`t > cutoff`).
    pub(crate) fn bucket(&mut self, t: u64, cutoff: u64) -> Option<&mut Bucket> {
        let end = self.base + self.buckets.len() as u64;
        if self.buckets.is_empty() || end <= cutoff + 1 {
            self.buckets.clear();
            self.base = t;
        }
        while self.base <= cutoff && self.buckets.len() > 1 {
            self.buckets.pop_front();
            self.base += 1;
        }
        while t < self.base {
            self.buckets.push_front(Bucket::default());
            self.base -= 1;
        }
        while self.base + (self.buckets.len() as u64) <= t {
            self.buckets.push_back(Bucket::default());
        }
        self.newest = self.newest.max(t);
        self.buckets.get_mut(usize::try_from(t - self.base).ok()?)
    }

    /// The windows of `w` seconds that gained second `t`: for each end `f` with
    /// `t <= f < t + w` whose bucket is `relevant`, the window's sums; the ends where `over`
    /// answers a count are noted, with the sums at the first one.
    pub(crate) fn sweep(
        &mut self,
        t: u64,
        w: u64,
        relevant: impl Fn(&Bucket) -> bool,
        over: impl Fn(&Sums) -> Option<u64>,
    ) -> Option<(Over, Sums)> {
        let base = self.base;
        let buckets = self.buckets.make_contiguous();
        let index = |time: u64| usize::try_from(time.saturating_sub(base)).unwrap_or(usize::MAX);
        let first = t.saturating_sub(w - 1).max(base);
        let mut sums = Sums::default();
        for b in buckets.get(index(first)..index(t)).unwrap_or(&[]) {
            sums.add(b);
        }
        let mut result: Option<(Over, Sums)> = None;
        let last = t.saturating_add(w - 1).min(base + buckets.len() as u64 - 1);
        for f in t..=last {
            let Some(b) = buckets.get(index(f)) else {
                break;
            };
            sums.add(b);
            // Second `f - w` left the window; it was summed only if it is at or after `first`.
            if f >= first + w {
                if let Some(old) = buckets.get(index(f - w)) {
                    sums.sub(old);
                }
            }
            if !relevant(b) {
                continue;
            }
            if let Some(count) = over(&sums) {
                match &mut result {
                    None => {
                        result = Some((
                            Over {
                                first: f,
                                last: f,
                                count,
                            },
                            sums,
                        ))
                    }
                    Some((o, _)) => {
                        o.last = f;
                        o.count = o.count.max(count);
                    }
                }
            }
        }
        result
    }

    /// The counters of second `t`, if it is kept.
    pub(crate) fn at(&self, t: u64) -> Option<Bucket> {
        let i = usize::try_from(t.checked_sub(self.base)?).ok()?;
        self.buckets.get(i).copied()
    }

    /// Sums over the window of `w` seconds ending at `end`.
    pub(crate) fn sums(&self, end: u64, w: u64) -> Sums {
        let mut sums = Sums::default();
        for (i, b) in self.buckets.iter().enumerate() {
            let time = self.base + i as u64;
            if time + w > end && time <= end {
                sums.add(b);
            }
        }
        sums
    }

    pub(crate) fn memory_bytes(&self) -> usize {
        self.buckets.capacity() * std::mem::size_of::<Bucket>()
            + self.spoofed_samples.memory_bytes()
            + self.marked_samples.memory_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_follow_out_of_order_seconds_and_forget_old_ones() {
        let mut state = SpcState::default();
        for t in [100u64, 98, 103, 101] {
            if let Some(b) = state.bucket(t, 50) {
                b.calls += 1;
            }
        }
        assert_eq!(state.base, 98);
        assert_eq!(state.sums(103, 6).calls, 4);
        assert_eq!(state.sums(103, 3).calls, 2);
        // A window gaining second 98 of 3 seconds: ends 98, 99, 100.
        let (over, sums) = state
            .sweep(98, 3, |b| b.calls > 0, |s| (s.calls > 1).then_some(s.calls))
            .unwrap();
        assert_eq!(
            (over.first, over.last, over.count, sums.calls),
            (100, 100, 2, 2)
        );
        // Every window's sums, from any second, against the plain sums.
        let mut state = SpcState::default();
        for t in 1000u64..1100 {
            if let Some(b) = state.bucket(t, 0) {
                b.calls += 1;
                b.spoofed += u32::from(t % 3 == 0);
            }
        }
        for t in [1000u64, 1010, 1050, 1099] {
            for w in [1u64, 7, 30, 300] {
                let (over, sums) = state.sweep(t, w, |_| true, |s| Some(s.calls)).unwrap();
                assert_eq!(over.first, t);
                assert_eq!(sums, state.sums(t, w), "t {t} w {w}");
            }
        }
        state.bucket(200, 150);
        assert_eq!(state.base, 200);
        assert_eq!(state.sums(200, 300).calls, 0);
    }
}
