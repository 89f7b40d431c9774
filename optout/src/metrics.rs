//! The service's counters, rendered for `/metrics` (Prometheus text format).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::TokenError;
use crate::store::StoreCounts;

/// Why a feed request was answered as it was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FeedOutcome {
    /// Changes served.
    Ok,
    /// No or a wrong bearer token (401).
    Unauthorized,
    /// A bad query (400).
    BadRequest,
}

/// The service's counters.
#[derive(Debug, Default)]
pub struct Metrics {
    optouts: AtomicU64,
    undos: AtomicU64,
    repeated: AtomicU64,
    pages: AtomicU64,
    refused_malformed: AtomicU64,
    refused_bad_mac: AtomicU64,
    refused_expired: AtomicU64,
    feed_ok: AtomicU64,
    feed_unauthorized: AtomicU64,
    feed_bad_request: AtomicU64,
    rate_limited: AtomicU64,
    too_large: AtomicU64,
}

fn inc(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

fn get(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

impl Metrics {
    /// An opt-out recorded.
    pub fn opt_out(&self) {
        inc(&self.optouts);
    }
    /// An undo recorded.
    pub fn undo(&self) {
        inc(&self.undos);
    }
    /// A press that changed nothing (already done).
    pub fn repeated(&self) {
        inc(&self.repeated);
    }
    /// A link page shown.
    pub fn page(&self) {
        inc(&self.pages);
    }
    /// A token refused.
    pub fn refused(&self, error: &TokenError) {
        inc(match error.reason() {
            "expired" => &self.refused_expired,
            "bad-mac" => &self.refused_bad_mac,
            _ => &self.refused_malformed,
        });
    }
    /// A feed request answered.
    pub fn feed(&self, outcome: FeedOutcome) {
        inc(match outcome {
            FeedOutcome::Ok => &self.feed_ok,
            FeedOutcome::Unauthorized => &self.feed_unauthorized,
            FeedOutcome::BadRequest => &self.feed_bad_request,
        });
    }
    /// A request refused by the rate limit.
    pub fn rate_limited(&self) {
        inc(&self.rate_limited);
    }
    /// A body over the cap.
    pub fn too_large(&self) {
        inc(&self.too_large);
    }

    /// Opt-outs recorded since start.
    pub fn optouts(&self) -> u64 {
        get(&self.optouts)
    }

    /// The metrics text; `store` adds the current opt-outs and the feed's last `seq`.
    pub fn render(&self, store: Option<StoreCounts>) -> String {
        let mut out = String::new();
        let counter = |out: &mut String, name: &str, help: &str, lines: &[(&str, u64)]| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for (labels, value) in lines {
                if labels.is_empty() {
                    let _ = writeln!(out, "{name} {value}");
                } else {
                    let _ = writeln!(out, "{name}{{{labels}}} {value}");
                }
            }
        };
        counter(
            &mut out,
            "shaken_optout_optouts_total",
            "Opt-outs recorded.",
            &[("", get(&self.optouts))],
        );
        counter(
            &mut out,
            "shaken_optout_undos_total",
            "Undos recorded.",
            &[("", get(&self.undos))],
        );
        counter(
            &mut out,
            "shaken_optout_repeated_total",
            "Presses that changed nothing (already done).",
            &[("", get(&self.repeated))],
        );
        counter(
            &mut out,
            "shaken_optout_pages_total",
            "Link pages shown.",
            &[("", get(&self.pages))],
        );
        counter(
            &mut out,
            "shaken_optout_refused_tokens_total",
            "Link tokens refused, by reason.",
            &[
                ("reason=\"malformed\"", get(&self.refused_malformed)),
                ("reason=\"bad-mac\"", get(&self.refused_bad_mac)),
                ("reason=\"expired\"", get(&self.refused_expired)),
            ],
        );
        counter(
            &mut out,
            "shaken_optout_feed_requests_total",
            "Delta feed requests, by outcome.",
            &[
                ("outcome=\"ok\"", get(&self.feed_ok)),
                ("outcome=\"unauthorized\"", get(&self.feed_unauthorized)),
                ("outcome=\"bad-request\"", get(&self.feed_bad_request)),
            ],
        );
        counter(
            &mut out,
            "shaken_optout_rate_limited_total",
            "Requests refused by the per-client rate limit (429).",
            &[("", get(&self.rate_limited))],
        );
        counter(
            &mut out,
            "shaken_optout_too_large_total",
            "Requests refused for a body over the cap (413).",
            &[("", get(&self.too_large))],
        );
        if let Some(counts) = store {
            let _ = writeln!(
                out,
                "# HELP shaken_optout_current Current opt-outs.\n# TYPE shaken_optout_current gauge\nshaken_optout_current {}\n\
# HELP shaken_optout_feed_last_seq The feed's last sequence number.\n# TYPE shaken_optout_feed_last_seq gauge\nshaken_optout_feed_last_seq {}",
                counts.current, counts.last_seq
            );
        }
        out
    }
}
