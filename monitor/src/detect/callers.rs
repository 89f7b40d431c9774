//! The state kept per calling number for `high-frequency`, `fan-out` and `repeat`: its calls
//! within the horizon, sorted by event time, 16 bytes a called number, and the `origid`s of
//! its latest calls (the alerts' samples).

use super::allow::TnKey;

/// Marks the first called number of a call: `high-frequency` counts calls, not callees.
pub(crate) const FIRST: u64 = 1 << 63;

/// At most this many called numbers are kept per caller (the oldest go first). A caller
/// placing more calls than this within the horizon (about three a second for an hour) has
/// long crossed every threshold; the cap bounds the memory and the work one caller can cause.
/// Beyond it, that caller's counts saturate near the cap.
pub(crate) const MAX_CALLS: usize = 10_000;

/// At most this many `origid`s are kept per subject as samples.
pub(crate) const SAMPLES: usize = 5;

/// One called number of one call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Call {
    /// Event time.
    pub(crate) time: u64,
    /// The callee's key, with [`FIRST`] on the call's first callee.
    pub(crate) callee: u64,
}

impl Call {
    pub(crate) fn time(&self) -> u64 {
        self.time
    }
    pub(crate) fn is_call(&self) -> bool {
        self.callee & FIRST != 0
    }
    pub(crate) fn callee(&self) -> TnKey {
        self.callee & !FIRST
    }
}

/// The latest few `origid`s.
#[derive(Clone, Debug, Default)]
pub(crate) struct Samples(Vec<Box<str>>);

impl Samples {
    pub(crate) fn push(&mut self, origid: Option<&str>) {
        if let Some(origid) = origid {
            if self.0.len() >= SAMPLES {
                self.0.remove(0);
            }
            self.0.push(origid.into());
        }
    }
    pub(crate) fn list(&self) -> Vec<String> {
        self.0.iter().map(|s| s.to_string()).collect()
    }
    pub(crate) fn memory_bytes(&self) -> usize {
        self.0.capacity() * 16 + self.0.iter().map(|s| s.len()).sum::<usize>()
    }
}

/// One calling number's recent calls.
#[derive(Clone, Debug, Default)]
pub(crate) struct CallerState {
    // Invariant: `calls.len() <= MAX_CALLS`.
    /// Sorted by time.
    pub(crate) calls: Vec<Call>,
    /// The newest event time seen for this caller.
    pub(crate) newest: u64,
    /// The latest `origid`s.
    pub(crate) samples: Samples,
}

impl CallerState {
    /// Forgets calls at or before `cutoff`.
    pub(crate) fn prune(&mut self, cutoff: u64) {
        let old = self.calls.partition_point(|c| c.time <= cutoff);
        if old > 0 {
            self.calls.drain(..old);
            if self.calls.capacity() > 8 && self.calls.capacity() > 4 * self.calls.len() {
                self.calls.shrink_to(2 * self.calls.len());
            }
        }
    }

    /// Adds one call (its called numbers).
    pub(crate) fn add(&mut self, time: u64, callees: &[TnKey]) {
        if self.calls.capacity() == 0 {
            self.calls.reserve_exact(callees.len());
        }
        for (i, &callee) in callees.iter().enumerate() {
            let flag = if i == 0 { FIRST } else { 0 };
            super::window::insert_sorted(
                &mut self.calls,
                Call::time,
                Call {
                    time,
                    callee: callee | flag,
                },
            );
        }
        if self.calls.len() > MAX_CALLS {
            let excess = self.calls.len() - MAX_CALLS;
            self.calls.drain(..excess);
        }
        self.newest = self.newest.max(time);
    }

    pub(crate) fn memory_bytes(&self) -> usize {
        self.calls.capacity() * std::mem::size_of::<Call>() + self.samples.memory_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_caller_keeps_at_most_max_calls_the_newest() {
        let mut state = CallerState::default();
        for t in 0..(MAX_CALLS as u64 + 50) {
            state.add(t, &[t]);
        }
        assert_eq!(state.calls.len(), MAX_CALLS);
        assert_eq!(state.calls.first().map(|c| c.time), Some(50));
        state.prune(100);
        assert_eq!(state.calls.first().map(|c| c.time), Some(101));
    }
}
