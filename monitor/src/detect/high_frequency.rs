//! `high-frequency`: a calling number places more than `hour_threshold` calls in any
//! `hour_window_seconds`, or more than `minute_threshold` in any `minute_window_seconds`
//! (defaults 60 in 3600 s, 10 in 60 s). Exact: the caller's calls are kept over the horizon.
//! Allow-listed numbers and white-listed firms' numbers are not raised.

use super::callers::{Call, CallerState};
use super::config::HighFrequency;
use super::window::{count_over, Over};
use super::{duration, DetectorId};

/// The windows the call at `t` pushed over a threshold: `(over, window, threshold, text)`.
pub(crate) fn check(
    settings: &HighFrequency,
    state: &CallerState,
    caller: &str,
    t: u64,
) -> Vec<(Over, u64, u64, String)> {
    let mut out = Vec::new();
    for (window, threshold) in [
        (settings.minute_window_seconds, settings.minute_threshold),
        (settings.hour_window_seconds, settings.hour_threshold),
    ] {
        if let Some(over) = count_over(
            &state.calls,
            Call::time,
            Call::is_call,
            t,
            window,
            threshold,
        ) {
            let text = format!(
                "{caller} placed {} calls in {} (threshold {threshold})",
                over.count,
                duration(window)
            );
            out.push((over, window, threshold, text));
        }
    }
    out
}

/// The detector's id.
pub(crate) const ID: DetectorId = DetectorId::HighFrequency;
