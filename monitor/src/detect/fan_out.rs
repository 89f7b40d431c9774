//! `fan-out`: a calling number calls more than `threshold` distinct numbers in any
//! `window_seconds` (default 40 in 3600 s). Exact: the distinct callees are counted over the
//! caller's calls in the span the new call can affect (only when that span holds more calls
//! than the threshold, so ordinary callers cost nothing). Allow-listed numbers and
//! white-listed firms' numbers are not raised.

use super::callers::{Call, CallerState};
use super::config::Counted;
use super::duration;
use super::window::{distinct_over, Over};

/// The windows the call at `t` pushed over the threshold, with the text.
pub(crate) fn check(
    settings: &Counted,
    state: &CallerState,
    caller: &str,
    t: u64,
) -> Option<(Over, String)> {
    let over = distinct_over(
        &state.calls,
        Call::time,
        Call::callee,
        t,
        settings.window_seconds,
        settings.threshold,
    )?;
    let text = format!(
        "{caller} called {} distinct numbers in {} (threshold {})",
        over.count,
        duration(settings.window_seconds),
        settings.threshold
    );
    Some((over, text))
}
