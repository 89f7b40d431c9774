//! `spoofing-source`: a signing SPC more than `share_percent` of whose calls were flagged
//! `spoofed` (the certificate was good, the signature or numbers were not) over at least
//! `min_calls` calls in any `window_seconds` (default 30 % of at least 50 in 300 s). Exact at
//! one-second resolution. The crossing's `count` is the spoofed calls and its `threshold`
//! the most spoofed calls the share allows over the window's calls (`count > threshold`).

use super::config::SpoofingSource;
use super::duration;
use super::spc::SpcState;
use super::window::Over;

/// Whether `spoofed` of `calls` breaks the rule.
fn breaks(settings: &SpoofingSource, calls: u64, spoofed: u64) -> bool {
    calls >= settings.min_calls && spoofed * 100 > settings.share_percent * calls
}

/// The windows the call at `t` pushed over the share: the crossing, its threshold, the text.
pub(crate) fn check(
    settings: &SpoofingSource,
    state: &mut SpcState,
    spc: &str,
    t: u64,
) -> Option<(Over, u64, String)> {
    let (over, sums) = state.sweep(
        t,
        settings.window_seconds,
        |b| b.calls > 0,
        |s| breaks(settings, s.calls, s.spoofed).then_some(s.spoofed),
    )?;
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
