//! `repeat`: one calling number calls one called number more than `threshold` times in any
//! `window_seconds` (default 5 in 3600 s). Applies to everyone, allow-listed numbers and
//! firms included. Exact, over the caller's calls.

use super::allow::{tn_text, TnKey};
use super::callers::{Call, CallerState};
use super::config::Counted;
use super::duration;
use super::window::{count_over, Over};

/// For each called number of the new call, the windows it pushed over the threshold.
pub(crate) fn check(
    settings: &Counted,
    state: &CallerState,
    caller: &str,
    callees: &[TnKey],
    t: u64,
) -> Option<(Over, String)> {
    let mut best: Option<(Over, String)> = None;
    for &callee in callees {
        let Some(over) = count_over(
            &state.calls,
            Call::time,
            |c| c.callee() == callee,
            t,
            settings.window_seconds,
            settings.threshold,
        ) else {
            continue;
        };
        if best.as_ref().is_none_or(|(b, _)| over.first < b.first) {
            let text = format!(
                "{caller} called {} {} times in {} (threshold {})",
                tn_text(callee),
                over.count,
                duration(settings.window_seconds),
                settings.threshold
            );
            best = Some((over, text));
        }
    }
    best
}
