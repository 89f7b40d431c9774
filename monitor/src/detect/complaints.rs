//! `complaints`: more than `threshold` complaints against one calling number in any
//! `window_seconds` (default 2 in 86400 s). Fed only by `kind=complaint` events; applies to
//! everyone. Exact: a caller's complaints are kept over the horizon (complaints are rare).

use super::callers::Samples;
use super::config::Counted;
use super::duration;
use super::window::{count_over, insert_sorted, Over};

/// One calling number's complaints.
#[derive(Clone, Debug, Default)]
pub(crate) struct ComplaintState {
    /// Their event times, sorted.
    pub(crate) times: Vec<u64>,
    /// The newest.
    pub(crate) newest: u64,
    /// Their latest `origid`s.
    pub(crate) samples: Samples,
}

impl ComplaintState {
    /// Adds a complaint, forgetting those at or before `cutoff`.
    pub(crate) fn add(&mut self, t: u64, origid: Option<&str>, cutoff: u64) {
        let old = self.times.partition_point(|&x| x <= cutoff);
        self.times.drain(..old);
        insert_sorted(&mut self.times, |x| *x, t);
        self.newest = self.newest.max(t);
        self.samples.push(origid);
    }

    pub(crate) fn memory_bytes(&self) -> usize {
        self.times.capacity() * 8 + self.samples.memory_bytes()
    }
}

/// The windows the complaint at `t` pushed over the threshold.
pub(crate) fn check(
    settings: &Counted,
    state: &ComplaintState,
    caller: &str,
    t: u64,
) -> Option<(Over, String)> {
    let over = count_over(
        &state.times,
        |x| *x,
        |_| true,
        t,
        settings.window_seconds,
        settings.threshold,
    )?;
    let text = format!(
        "{caller} drew {} complaints in {} (threshold {})",
        over.count,
        duration(settings.window_seconds),
        settings.threshold
    );
    Some((over, text))
}
