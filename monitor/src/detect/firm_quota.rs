//! `firm-quota`: a white-listed marketing firm (the regulator's signed list) placing more
//! calls than its `hourly_quota` in any `window_seconds` (default 3600), over all its
//! numbers. Its numbers are held to this instead of `high-frequency` and `fan-out`. Exact:
//! the firm's call times are kept over the horizon (memory grows with the quota, not with the
//! number of subscribers).

use std::sync::Arc;

use lists::{ActiveList, ListIndex};

use super::callers::Samples;
use super::duration;
use super::window::{count_over, insert_sorted, Over};

/// The list the engine reads firms from.
#[derive(Clone, Debug)]
pub(crate) enum FirmList {
    /// The list a `lists::ListStore` holds.
    Active(Arc<ActiveList>),
    /// A bare index (tests, the lab, the synthetic mix).
    Index(Arc<ListIndex>),
}

impl FirmList {
    /// The white-listed firm calling from `tn`: its id and hourly quota.
    pub(crate) fn firm_of(&self, tn: &str) -> Option<(&str, u64)> {
        let listing = match self {
            Self::Active(list) => list.lookup(tn),
            Self::Index(index) => index.lookup(tn),
        };
        listing
            .firm
            .filter(|f| f.status == lists::FirmStatus::WhiteListed)
            .map(|f| (f.id.as_str(), f.hourly_quota))
    }
}

/// One firm's recent calls.
#[derive(Clone, Debug, Default)]
pub(crate) struct FirmState {
    pub(crate) times: Vec<u64>,
    pub(crate) samples: Samples,
}

impl FirmState {
    pub(crate) fn add(&mut self, t: u64, origid: Option<&str>, cutoff: u64) {
        let old = self.times.partition_point(|&x| x <= cutoff);
        self.times.drain(..old);
        insert_sorted(&mut self.times, |x| *x, t);
        self.samples.push(origid);
    }
}

/// The windows the call at `t` pushed over the firm's quota.
pub(crate) fn check(
    state: &FirmState,
    firm: &str,
    quota: u64,
    window: u64,
    t: u64,
) -> Option<(Over, String)> {
    let over = count_over(&state.times, |x| *x, |_| true, t, window, quota)?;
    let text = format!(
        "white-listed firm {firm} placed {} calls in {} (hourly quota {quota})",
        over.count,
        duration(window)
    );
    Some((over, text))
}
