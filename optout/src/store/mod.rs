//! The opt-out store: who opted out of which firm, and the append-only audit trail that is
//! also the delta feed. It lives in an SQLite file ([`sqlite`], the default) or in a
//! PostgreSQL database shared by several opt-out service instances ([`postgres`]); both give
//! the same answers to every operation of [`Store`].
//!
//! What is kept, in both: the current opt-outs `(subscriber, firm, since)`, one row per pair,
//! and one audit entry per change `(seq, at, subscriber, firm, action, via)`, `seq`
//! increasing and never reused, `action` `opt-out` or `undo`, `via` how it was asked (`link`).
//! The subscriber is kept as its E.164 digits, since the feed hands them to signers and
//! verifiers. No client address is kept: the token in the link is what authorizes a change,
//! and an address would be personal data with no use in the audit.
//!
//! Only real changes are recorded: opting out twice, or undoing what is not opted out, changes
//! nothing and adds no entry, so the feed lists each change once and applying it in `seq`
//! order gives the current state. A reader that resumes after the `seq` it last saw never
//! skips a change: on PostgreSQL, changes are committed in `seq` order (see [`postgres`]).

pub mod location;
pub mod postgres;
pub mod sqlite;

use std::path::Path;

use serde::Serialize;

use crate::error::StoreError;
pub use location::StoreLocation;
use postgres::PgStore;
use rest::pg::PgUrl;
use sqlite::SqliteStore;

/// The SQLite schema version this code writes (`PRAGMA user_version`).
pub const SCHEMA_VERSION: i64 = sqlite::SCHEMA_VERSION;

/// How a change was asked for (the audit trail's `via`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Via {
    /// The subscriber pressed the button of an unsubscribe link.
    Link,
}

impl Via {
    fn as_str(self) -> &'static str {
        match self {
            Self::Link => "link",
        }
    }
}

/// What an opt-out or undo did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The state changed; the audit entry has this `seq`.
    Changed(u64),
    /// The state already was the one asked for; nothing was recorded.
    Unchanged,
}

/// One entry of the delta feed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Change {
    /// Its position in the feed, increasing.
    pub seq: u64,
    /// The subscriber's number, E.164 digits.
    pub subscriber: String,
    /// The firm's id.
    pub firm: String,
    /// `true`: opted out from this change on; `false`: the opt-out was undone.
    pub opted_out: bool,
    /// When, seconds since the epoch.
    pub at: u64,
}

/// Counts for `/metrics`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoreCounts {
    /// Current opt-outs.
    pub current: u64,
    /// The last `seq` (0: none).
    pub last_seq: u64,
}

/// The open store, SQLite or PostgreSQL.
///
/// Its calls block (disk, or a round trip to PostgreSQL): from async code, call it through
/// `tokio::task::spawn_blocking`, as the service does. The PostgreSQL store must be opened
/// and used that way (its client runs its own small runtime).
#[derive(Debug)]
pub struct Store {
    backend: Backend,
}

#[derive(Debug)]
enum Backend {
    Sqlite(SqliteStore),
    Postgres(Box<PgStore>),
}

fn to_u64(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// The stored `action` as a change's `opted_out`; `None` for a value this code did not write.
fn opted_out(action: &str) -> Option<bool> {
    match action {
        "opt-out" => Some(true),
        "undo" => Some(false),
        _ => None,
    }
}

fn action(opt_out: bool) -> &'static str {
    if opt_out {
        "opt-out"
    } else {
        "undo"
    }
}

impl Store {
    /// Opens (creating and migrating if needed) the SQLite store at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Ok(Self {
            backend: Backend::Sqlite(SqliteStore::open(path)?),
        })
    }

    /// Connects to the PostgreSQL database at `url` and creates or migrates the store's
    /// schema (refusing a newer one). Must not be called from an async task.
    pub fn open_postgres(url: &PgUrl) -> Result<Self, StoreError> {
        Ok(Self {
            backend: Backend::Postgres(Box::new(PgStore::open(url)?)),
        })
    }

    /// Opens the store at `location` ([`Store::open`] or [`Store::open_postgres`]).
    pub fn open_at(location: &StoreLocation) -> Result<Self, StoreError> {
        match location {
            StoreLocation::File(path) => Self::open(path),
            StoreLocation::Postgres(url) => Self::open_postgres(url),
        }
    }

    /// Whether `subscriber` has opted out of `firm`.
    pub fn is_opted_out(&self, subscriber: &str, firm: &str) -> Result<bool, StoreError> {
        match &self.backend {
            Backend::Sqlite(s) => s.is_opted_out(subscriber, firm),
            Backend::Postgres(s) => s.is_opted_out(subscriber, firm),
        }
    }

    /// Records that `subscriber` opts out of `firm` at `now`; nothing happens if they already
    /// have.
    pub fn opt_out(
        &self,
        subscriber: &str,
        firm: &str,
        via: Via,
        now: u64,
    ) -> Result<Outcome, StoreError> {
        self.change(subscriber, firm, true, via, now)
    }

    /// Undoes `subscriber`'s opt-out of `firm` at `now`; nothing happens if there is none.
    pub fn undo(
        &self,
        subscriber: &str,
        firm: &str,
        via: Via,
        now: u64,
    ) -> Result<Outcome, StoreError> {
        self.change(subscriber, firm, false, via, now)
    }

    fn change(
        &self,
        subscriber: &str,
        firm: &str,
        opt_out: bool,
        via: Via,
        now: u64,
    ) -> Result<Outcome, StoreError> {
        match &self.backend {
            Backend::Sqlite(s) => s.change(subscriber, firm, opt_out, via, now),
            Backend::Postgres(s) => s.change(subscriber, firm, opt_out, via, now),
        }
    }

    /// At most `limit` changes after `cursor`, in `seq` order, and the cursor to ask with next
    /// (the last change's `seq`, or `cursor` when there is none).
    pub fn changes_after(
        &self,
        cursor: u64,
        limit: usize,
    ) -> Result<(Vec<Change>, u64), StoreError> {
        let changes = match &self.backend {
            Backend::Sqlite(s) => s.changes_after(cursor, limit)?,
            Backend::Postgres(s) => s.changes_after(cursor, limit)?,
        };
        let next = changes.last().map_or(cursor, |c| c.seq);
        Ok((changes, next))
    }

    /// The number of current opt-outs and the last `seq`.
    pub fn counts(&self) -> Result<StoreCounts, StoreError> {
        match &self.backend {
            Backend::Sqlite(s) => s.counts(),
            Backend::Postgres(s) => s.counts(),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    //! The behaviour tests, run against both backends: SQLite in a temporary folder, and a
    //! database of a throwaway PostgreSQL cluster (`pg-test`).
    use super::*;

    const A: &str = "8613800138000";
    const B: &str = "8613900139000";

    /// A place for a store and a way to open it again: the temporary folder or the cluster
    /// lives as long as this.
    enum Place {
        Sqlite(tempfile::TempDir),
        Postgres {
            _cluster: pg_test::PgCluster,
            url: String,
        },
    }

    impl Place {
        fn location(&self) -> StoreLocation {
            match self {
                Self::Sqlite(dir) => StoreLocation::File(dir.path().join("optout.db")),
                Self::Postgres { url, .. } => StoreLocation::Postgres(PgUrl::new(url)),
            }
        }
        fn open(&self) -> Store {
            Store::open_at(&self.location()).unwrap()
        }
    }

    /// Runs `test` on an SQLite place, then on a PostgreSQL one (a database of its own on one
    /// shared cluster per call).
    fn on_both(test: impl Fn(&Place)) {
        test(&Place::Sqlite(tempfile::tempdir().unwrap()));
        let cluster = pg_test::PgCluster::start()
            .unwrap_or_else(|e| panic!("the PostgreSQL tests need a cluster: {e}"));
        let url = cluster.url();
        test(&Place::Postgres {
            _cluster: cluster,
            url,
        });
    }

    #[test]
    fn opting_out_twice_records_one_change_and_undo_restores() {
        on_both(|place| {
            let store = place.open();
            assert!(!store.is_opted_out(A, "F1").unwrap());
            assert_eq!(
                store.opt_out(A, "F1", Via::Link, 100).unwrap(),
                Outcome::Changed(1)
            );
            assert_eq!(
                store.opt_out(A, "F1", Via::Link, 101).unwrap(),
                Outcome::Unchanged
            );
            assert!(store.is_opted_out(A, "F1").unwrap());
            assert!(!store.is_opted_out(A, "F2").unwrap());
            assert!(!store.is_opted_out(B, "F1").unwrap());
            assert_eq!(
                store.undo(B, "F1", Via::Link, 102).unwrap(),
                Outcome::Unchanged
            );
            assert_eq!(
                store.undo(A, "F1", Via::Link, 103).unwrap(),
                Outcome::Changed(2)
            );
            assert!(!store.is_opted_out(A, "F1").unwrap());
            assert_eq!(
                store.opt_out(A, "F1", Via::Link, 104).unwrap(),
                Outcome::Changed(3)
            );
            let (changes, cursor) = store.changes_after(0, 10).unwrap();
            assert_eq!(cursor, 3);
            let summary: Vec<(u64, bool, u64)> =
                changes.iter().map(|c| (c.seq, c.opted_out, c.at)).collect();
            assert_eq!(
                summary,
                vec![(1, true, 100), (2, false, 103), (3, true, 104)]
            );
            assert!(changes.iter().all(|c| c.subscriber == A && c.firm == "F1"));
            assert_eq!(
                store.counts().unwrap(),
                StoreCounts {
                    current: 1,
                    last_seq: 3
                }
            );
            // Reopened, the state and the feed are the same.
            drop(store);
            let again = place.open();
            assert!(again.is_opted_out(A, "F1").unwrap());
            assert_eq!(again.changes_after(0, 10).unwrap().0, changes);
            assert_eq!(
                again.opt_out(B, "F1", Via::Link, 105).unwrap(),
                Outcome::Changed(4)
            );
        });
    }

    #[test]
    fn the_feed_pages_by_cursor() {
        on_both(|place| {
            let store = place.open();
            assert_eq!(store.changes_after(0, 10).unwrap(), (Vec::new(), 0));
            assert_eq!(
                store.counts().unwrap(),
                StoreCounts {
                    current: 0,
                    last_seq: 0
                }
            );
            for i in 0..25_u64 {
                store
                    .opt_out(&format!("86138001380{i:02}"), "F1", Via::Link, 1000 + i)
                    .unwrap();
            }
            let mut cursor = 0;
            let mut seen = Vec::new();
            loop {
                let (page, next) = store.changes_after(cursor, 10).unwrap();
                assert!(page.len() <= 10);
                if page.is_empty() {
                    assert_eq!(next, cursor);
                    break;
                }
                assert!(page.iter().all(|c| c.seq > cursor));
                seen.extend(page.into_iter().map(|c| c.seq));
                cursor = next;
            }
            assert_eq!(seen, (1..=25).collect::<Vec<u64>>());
            assert!(store.changes_after(25, 10).unwrap().0.is_empty());
            assert_eq!(store.changes_after(3, 2).unwrap().1, 5);
            assert_eq!(store.changes_after(u64::MAX, 2).unwrap().1, u64::MAX);
        });
    }
}
