//! `spoofing-source`: a signing SPC more than `share_percent` of whose calls were flagged
//! `spoofed` (the certificate was good, the signature or numbers were not) over at least
//! `min_calls` calls in any `window_seconds` (default 30 % of at least 50 in 300 s). Exact at
//! one-second resolution. The crossing's `count` is the spoofed calls and its `threshold`
//! the most spoofed calls the share allows over the window's calls (`count > threshold`).
//! A share can fall back under the threshold when a late clean call arrives, so a window is
//! judged once it is final (it ends before the newest event time minus the lateness bound):
//! see `Engine::settle_spoofing`.

use super::config::SpoofingSource;
use super::duration;
use super::spc::{SpcState, Sums};
use super::window::Over;

/// Whether `spoofed` of `calls` breaks the rule.
fn breaks(settings: &SpoofingSource, calls: u64, spoofed: u64) -> bool {
    calls >= settings.min_calls && spoofed * 100 > settings.share_percent * calls
}

/// The windows ending at a second in `from..=to` (final: no call inside them can still be
/// counted) that are over the share: the first and last such end, the crossing's threshold,
/// the text.
pub(crate) fn check_settled(
    settings: &SpoofingSource,
    state: &SpcState,
    spc: &str,
    from: u64,
    to: u64,
) -> Option<(Over, u64, String)> {
    let w = settings.window_seconds;
    // Only the seconds the carrier's counters hold can end a window with a call: the work is
    // bounded by them, however far the newest event time jumped.
    let kept_last = state.base + (state.buckets.len() as u64).saturating_sub(1);
    let (from, to) = (from.max(state.base), to.min(kept_last));
    if state.buckets.is_empty() || from > to {
        return None;
    }
    let mut found: Option<(Over, Sums)> = None;
    let mut sums = state.sums(from.saturating_sub(1), w);
    for f in from..=to {
        if let Some(b) = state.at(f) {
            sums.add(&b);
        }
        if let Some(old) = f.checked_sub(w).and_then(|o| state.at(o)) {
            sums.sub(&old);
        }
        let ends_a_call = state.at(f).is_some_and(|b| b.calls > 0);
        if !ends_a_call || !breaks(settings, sums.calls, sums.spoofed) {
            continue;
        }
        match &mut found {
            None => {
                found = Some((
                    Over {
                        first: f,
                        last: f,
                        count: sums.spoofed,
                    },
                    sums,
                ))
            }
            Some((o, _)) => {
                o.last = f;
                o.count = o.count.max(sums.spoofed);
            }
        }
    }
    let (over, sums) = found?;
    let threshold = settings.share_percent * sums.calls / 100;
    let text = format!(
        "SPC {spc}: {} of {} calls ({}%) flagged spoofed in {} (threshold {}% of at least {} calls)",
        sums.spoofed,
        sums.calls,
        sums.spoofed * 100 / sums.calls.max(1),
        duration(settings.window_seconds),
        settings.share_percent,
        settings.min_calls
    );
    Some((over, threshold, text))
}
