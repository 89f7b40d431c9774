//! The local copy of the opt-outs that a signer or a verifier keeps ([`OptOutMirror`]), and the
//! poller that keeps it current from the opt-out service's delta feed ([`spawn_poller`]).
//!
//! A call's decision asks the mirror ([`OptOutMirror::is_opted_out`]): synchronous, no network,
//! no allocation, a read lock held for a hash lookup. The poller fetches the feed every
//! interval, page after page until it is caught up, and applies the changes in `seq` order. An
//! outage of the opt-out service only logs (a warning at the first failure, then at most one a
//! minute) and counts: the last copy stays and keeps answering.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rest::fetch::Fetcher;
use serde::Deserialize;

use crate::store::Change;
use crate::token::{check_firm_id, check_subscriber};
use crate::Clock;

/// The most feed pages fetched in one poll; the rest waits for the next interval.
pub const MAX_PAGES_PER_POLL: usize = 100;
/// Seconds between two outage warnings in the log.
const WARN_EVERY_SECONDS: u64 = 60;

#[derive(Debug, Default)]
struct Copy {
    /// Subscriber → the firms they opted out of.
    by_subscriber: HashMap<String, HashSet<String>>,
    entries: u64,
    cursor: u64,
}

/// What a mirror reports about itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MirrorStatus {
    /// The last `seq` applied (0: none).
    pub cursor: u64,
    /// Current opt-outs held.
    pub entries: u64,
    /// When the last poll succeeded, seconds since the epoch (`None`: never).
    pub last_success: Option<u64>,
    /// Polls failed since the last success.
    pub consecutive_failures: u64,
    /// Polls failed since start.
    pub total_failures: u64,
}

/// The local copy of the opt-outs.
#[derive(Debug, Default)]
pub struct OptOutMirror {
    copy: RwLock<Copy>,
    last_success: AtomicU64,
    consecutive_failures: AtomicU64,
    total_failures: AtomicU64,
    last_warning: AtomicU64,
}

impl OptOutMirror {
    /// An empty mirror (cursor 0).
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether `subscriber` (E.164 digits) has opted out of `firm`, as of the last poll.
    pub fn is_opted_out(&self, subscriber: &str, firm: &str) -> bool {
        self.copy
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .by_subscriber
            .get(subscriber)
            .is_some_and(|firms| firms.contains(firm))
    }

    /// Applies a page of changes: those after the current cursor, in `seq` order (an opt-out
    /// adds the pair, an undo removes it); then the cursor is the largest `seq` seen or
    /// `next_cursor`, whichever is larger.
    pub fn apply(&self, changes: &[Change], next_cursor: u64) {
        let mut ordered: Vec<&Change> = changes.iter().collect();
        ordered.sort_by_key(|c| c.seq);
        let mut copy = self
            .copy
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for change in ordered {
            if change.seq <= copy.cursor {
                continue;
            }
            if change.opted_out {
                let added = copy
                    .by_subscriber
                    .entry(change.subscriber.clone())
                    .or_default()
                    .insert(change.firm.clone());
                copy.entries += u64::from(added);
            } else if let Some(firms) = copy.by_subscriber.get_mut(&change.subscriber) {
                let removed = firms.remove(&change.firm);
                if firms.is_empty() {
                    copy.by_subscriber.remove(&change.subscriber);
                }
                copy.entries -= u64::from(removed);
            }
            copy.cursor = change.seq;
        }
        copy.cursor = copy.cursor.max(next_cursor);
    }

    /// The cursor to ask the feed with.
    pub fn cursor(&self) -> u64 {
        self.copy
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .cursor
    }

    /// The mirror's state.
    pub fn status(&self) -> MirrorStatus {
        let (cursor, entries) = {
            let copy = self
                .copy
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            (copy.cursor, copy.entries)
        };
        let last = self.last_success.load(Ordering::Relaxed);
        MirrorStatus {
            cursor,
            entries,
            last_success: (last > 0).then_some(last),
            consecutive_failures: self.consecutive_failures.load(Ordering::Relaxed),
            total_failures: self.total_failures.load(Ordering::Relaxed),
        }
    }

    /// Records a successful poll at `now`.
    pub fn record_success(&self, now: u64) {
        self.last_success.store(now.max(1), Ordering::Relaxed);
        self.consecutive_failures.store(0, Ordering::Relaxed);
    }

    /// Records a failed poll at `now`; returns whether it should be logged (the first of an
    /// outage, then at most one a minute).
    pub fn record_failure(&self, now: u64) -> bool {
        let consecutive = self.consecutive_failures.fetch_add(1, Ordering::Relaxed) + 1;
        self.total_failures.fetch_add(1, Ordering::Relaxed);
        let last = self.last_warning.load(Ordering::Relaxed);
        if consecutive == 1 || now >= last.saturating_add(WARN_EVERY_SECONDS) {
            self.last_warning.store(now, Ordering::Relaxed);
            true
        } else {
            false
        }
    }

    /// The mirror's metrics, each name starting with `prefix` (e.g. `shaken_signer_optout`).
    pub fn render_metrics(&self, prefix: &str) -> String {
        let status = self.status();
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP {prefix}_entries Opt-outs held by the local copy.\n# TYPE {prefix}_entries gauge\n{prefix}_entries {}\n\
# HELP {prefix}_cursor The last feed sequence number applied.\n# TYPE {prefix}_cursor gauge\n{prefix}_cursor {}\n\
# HELP {prefix}_last_success_seconds When the feed was last read, seconds since the epoch (0: never).\n# TYPE {prefix}_last_success_seconds gauge\n{prefix}_last_success_seconds {}\n\
# HELP {prefix}_consecutive_failures Feed polls failed since the last success.\n# TYPE {prefix}_consecutive_failures gauge\n{prefix}_consecutive_failures {}\n\
# HELP {prefix}_poll_failures_total Feed polls failed.\n# TYPE {prefix}_poll_failures_total counter\n{prefix}_poll_failures_total {}",
            status.entries,
            status.cursor,
            status.last_success.unwrap_or(0),
            status.consecutive_failures,
            status.total_failures
        );
        out
    }
}

/// Why a poll failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PollError {
    /// The fetch failed (connection, status, timeout, size).
    #[error("fetching the opt-out feed: {0}")]
    Fetch(#[from] rest::fetch::FetchError),
    /// The answer is not a feed page.
    #[error("the opt-out feed's answer is not a feed page: {0}")]
    Format(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FeedPage {
    changes: Vec<FeedChange>,
    cursor: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FeedChange {
    seq: u64,
    subscriber: String,
    firm: String,
    opted_out: bool,
    at: u64,
}

/// The page size asked for: as many changes as surely fit in the fetcher's body cap (a change
/// is at most about 160 bytes of JSON), between 1 and the feed's maximum.
fn page_limit(fetcher: &Fetcher) -> usize {
    (fetcher.policy().max_body / 160).clamp(1, crate::server::MAX_FEED_LIMIT)
}

/// Fetches the feed from the mirror's cursor until caught up (a page shorter than asked), at
/// most [`MAX_PAGES_PER_POLL`] pages, applying each page as it arrives.
pub async fn poll_once(
    mirror: &OptOutMirror,
    feed_url: &str,
    authorization: &str,
    fetcher: &Fetcher,
) -> Result<(), PollError> {
    let limit = page_limit(fetcher);
    let separator = if feed_url.contains('?') { '&' } else { '?' };
    for _ in 0..MAX_PAGES_PER_POLL {
        let url = format!(
            "{feed_url}{separator}after={}&limit={limit}",
            mirror.cursor()
        );
        let fetched = fetcher
            .fetch_with(&url, "application/json", Some(authorization))
            .await?;
        let page: FeedPage =
            serde_json::from_slice(&fetched.body).map_err(|e| PollError::Format(e.to_string()))?;
        let mut changes = Vec::with_capacity(page.changes.len());
        for c in page.changes {
            check_subscriber(&c.subscriber)
                .and_then(|()| check_firm_id(&c.firm))
                .map_err(|e| PollError::Format(e.to_string()))?;
            changes.push(Change {
                seq: c.seq,
                subscriber: c.subscriber,
                firm: c.firm,
                opted_out: c.opted_out,
                at: c.at,
            });
        }
        let full = changes.len() >= limit;
        mirror.apply(&changes, page.cursor);
        if !full {
            break;
        }
    }
    Ok(())
}

/// Polls `feed_url` with `bearer_token` through `fetcher` now and then every `interval`,
/// keeping `mirror` current; `clock` gives the time of each success and failure. Runs until
/// the returned task is aborted.
pub fn spawn_poller(
    mirror: Arc<OptOutMirror>,
    feed_url: String,
    bearer_token: String,
    fetcher: Fetcher,
    interval: Duration,
    clock: Clock,
) -> tokio::task::JoinHandle<()> {
    let authorization = zeroize::Zeroizing::new(format!("Bearer {bearer_token}"));
    drop(zeroize::Zeroizing::new(bearer_token));
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            match poll_once(&mirror, &feed_url, &authorization, &fetcher).await {
                Ok(()) => {
                    let was_failing = mirror.status().consecutive_failures > 0;
                    mirror.record_success(clock());
                    if was_failing {
                        tracing::info!(cursor = mirror.cursor(), "opt-out feed reachable again");
                    }
                }
                Err(error) => {
                    if mirror.record_failure(clock()) {
                        let status = mirror.status();
                        tracing::warn!(
                            %error,
                            consecutive_failures = status.consecutive_failures,
                            entries = status.entries,
                            "opt-out feed unavailable; keeping the last copy"
                        );
                    }
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(seq: u64, subscriber: &str, firm: &str, opted_out: bool) -> Change {
        Change {
            seq,
            subscriber: subscriber.into(),
            firm: firm.into(),
            opted_out,
            at: 1000 + seq,
        }
    }

    #[test]
    fn changes_apply_in_order_once() {
        let mirror = OptOutMirror::new();
        mirror.apply(
            &[
                change(2, "861", "F1", false),
                change(1, "861", "F1", true),
                change(3, "861", "F2", true),
                change(4, "862", "F1", true),
            ],
            4,
        );
        assert!(!mirror.is_opted_out("861", "F1"), "undone after");
        assert!(mirror.is_opted_out("861", "F2"));
        assert!(mirror.is_opted_out("862", "F1"));
        assert_eq!(mirror.status().entries, 2);
        // A replayed old change is ignored.
        mirror.apply(&[change(1, "861", "F1", true)], 4);
        assert!(!mirror.is_opted_out("861", "F1"));
        assert_eq!(mirror.cursor(), 4);
        mirror.apply(&[], 9);
        assert_eq!(mirror.cursor(), 9);
    }

    #[test]
    fn failures_are_counted_and_warnings_spaced() {
        let mirror = OptOutMirror::new();
        assert!(mirror.record_failure(100));
        assert!(!mirror.record_failure(130));
        assert!(mirror.record_failure(161));
        let status = mirror.status();
        assert_eq!((status.consecutive_failures, status.total_failures), (3, 3));
        mirror.record_success(200);
        let status = mirror.status();
        assert_eq!(
            (
                status.consecutive_failures,
                status.total_failures,
                status.last_success
            ),
            (0, 3, Some(200))
        );
        let text = mirror.render_metrics("shaken_signer_optout");
        assert!(
            text.contains("shaken_signer_optout_poll_failures_total 3\n")
                || text.ends_with("shaken_signer_optout_poll_failures_total 3"),
            "{text}"
        );
        assert!(
            text.contains("shaken_signer_optout_last_success_seconds 200\n"),
            "{text}"
        );
    }
}
