//! The opt-out store (SQLite): who opted out of which firm, and the append-only audit trail
//! that is also the delta feed.
//!
//! Schema version 1 (`PRAGMA user_version`):
//! - `optouts (subscriber, firm, since)`: the current opt-outs, one row per pair;
//! - `audit (seq, at, subscriber, firm, action, via)`: one row per change, `seq` increasing
//!   and never reused (`AUTOINCREMENT`), `action` `opt-out` or `undo`, `via` how it was asked
//!   (`link`). No client address is kept: the token in the link is what authorizes a change,
//!   and an address would be personal data with no use in the audit.
//!
//! Only real changes are recorded: opting out twice, or undoing what is not opted out, changes
//! nothing and adds no entry, so the feed lists each change once and applying it in `seq`
//! order gives the current state.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

use crate::error::StoreError;

/// The schema version this code writes.
pub const SCHEMA_VERSION: i64 = 1;

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

/// The open store. One connection behind a mutex: changes are rare and small.
pub struct Store {
    path: PathBuf,
    conn: Mutex<Connection>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

fn to_u64(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

impl Store {
    /// Opens (creating and migrating if needed) the store at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let db = |source| StoreError::Db {
            path: path.to_owned(),
            source,
        };
        let conn = Connection::open(path).map_err(db)?;
        conn.execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;")
            .map_err(db)?;
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .map_err(db)?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::SchemaTooNew {
                path: path.to_owned(),
                found: version,
                supported: SCHEMA_VERSION,
            });
        }
        if version < 1 {
            conn.execute_batch(
                "BEGIN;
                 CREATE TABLE optouts (subscriber TEXT NOT NULL, firm TEXT NOT NULL,
                     since INTEGER NOT NULL, PRIMARY KEY (subscriber, firm)) WITHOUT ROWID;
                 CREATE TABLE audit (seq INTEGER PRIMARY KEY AUTOINCREMENT,
                     at INTEGER NOT NULL, subscriber TEXT NOT NULL, firm TEXT NOT NULL,
                     action TEXT NOT NULL CHECK (action IN ('opt-out', 'undo')),
                     via TEXT NOT NULL);
                 PRAGMA user_version = 1;
                 COMMIT;",
            )
            .map_err(db)?;
        }
        Ok(Self {
            path: path.to_owned(),
            conn: Mutex::new(conn),
        })
    }

    fn db(&self, source: rusqlite::Error) -> StoreError {
        StoreError::Db {
            path: self.path.clone(),
            source,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite half-written (transactions roll
        // back), so a poisoned lock is still usable.
        self.conn
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether `subscriber` has opted out of `firm`.
    pub fn is_opted_out(&self, subscriber: &str, firm: &str) -> Result<bool, StoreError> {
        let conn = self.lock();
        conn.prepare_cached("SELECT 1 FROM optouts WHERE subscriber = ?1 AND firm = ?2")
            .and_then(|mut stmt| stmt.query_row([subscriber, firm], |_| Ok(())).optional())
            .map(|found| found.is_some())
            .map_err(|e| self.db(e))
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
        let mut conn = self.lock();
        let tx = conn.transaction().map_err(|e| self.db(e))?;
        let changed = if opt_out {
            tx.execute(
                "INSERT OR IGNORE INTO optouts (subscriber, firm, since) VALUES (?1, ?2, ?3)",
                params![subscriber, firm, to_i64(now)],
            )
        } else {
            tx.execute(
                "DELETE FROM optouts WHERE subscriber = ?1 AND firm = ?2",
                params![subscriber, firm],
            )
        }
        .map_err(|e| self.db(e))?;
        if changed == 0 {
            return Ok(Outcome::Unchanged);
        }
        tx.execute(
            "INSERT INTO audit (at, subscriber, firm, action, via) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                to_i64(now),
                subscriber,
                firm,
                if opt_out { "opt-out" } else { "undo" },
                via.as_str()
            ],
        )
        .map_err(|e| self.db(e))?;
        let seq = tx.last_insert_rowid();
        tx.commit().map_err(|e| self.db(e))?;
        Ok(Outcome::Changed(to_u64(seq)))
    }

    /// At most `limit` changes after `cursor`, in `seq` order, and the cursor to ask with next
    /// (the last change's `seq`, or `cursor` when there is none).
    pub fn changes_after(
        &self,
        cursor: u64,
        limit: usize,
    ) -> Result<(Vec<Change>, u64), StoreError> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare_cached(
                "SELECT seq, at, subscriber, firm, action FROM audit WHERE seq > ?1
                 ORDER BY seq LIMIT ?2",
            )
            .map_err(|e| self.db(e))?;
        let rows = stmt
            .query_map(
                params![to_i64(cursor), i64::try_from(limit).unwrap_or(i64::MAX)],
                |row| {
                    Ok((
                        row.get::<_, i64>(0)?,
                        row.get::<_, i64>(1)?,
                        row.get::<_, String>(2)?,
                        row.get::<_, String>(3)?,
                        row.get::<_, String>(4)?,
                    ))
                },
            )
            .map_err(|e| self.db(e))?;
        let mut changes = Vec::new();
        for row in rows {
            let (seq, at, subscriber, firm, action) = row.map_err(|e| self.db(e))?;
            let opted_out = match action.as_str() {
                "opt-out" => true,
                "undo" => false,
                _ => {
                    return Err(StoreError::Corrupt {
                        path: self.path.clone(),
                        column: "audit.action",
                        value: action,
                    })
                }
            };
            changes.push(Change {
                seq: to_u64(seq),
                subscriber,
                firm,
                opted_out,
                at: to_u64(at),
            });
        }
        let next = changes.last().map_or(cursor, |c| c.seq);
        Ok((changes, next))
    }

    /// The number of current opt-outs and the last `seq`.
    pub fn counts(&self) -> Result<StoreCounts, StoreError> {
        let conn = self.lock();
        let current: i64 = conn
            .query_row("SELECT count(*) FROM optouts", [], |row| row.get(0))
            .map_err(|e| self.db(e))?;
        let last_seq: i64 = conn
            .query_row("SELECT coalesce(max(seq), 0) FROM audit", [], |row| {
                row.get(0)
            })
            .map_err(|e| self.db(e))?;
        Ok(StoreCounts {
            current: to_u64(current),
            last_seq: to_u64(last_seq),
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const A: &str = "8613800138000";
    const B: &str = "8613900139000";

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("optout.db")).unwrap();
        (dir, store)
    }

    #[test]
    fn opting_out_twice_records_one_change_and_undo_restores() {
        let (dir, store) = store();
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
        assert_eq!(
            store.counts().unwrap(),
            StoreCounts {
                current: 1,
                last_seq: 3
            }
        );
        // Reopened, the state and the feed are the same.
        drop(store);
        let again = Store::open(&dir.path().join("optout.db")).unwrap();
        assert!(again.is_opted_out(A, "F1").unwrap());
        assert_eq!(again.changes_after(0, 10).unwrap().0, changes);
    }

    #[test]
    fn the_feed_pages_by_cursor() {
        let (_dir, store) = store();
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
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("optout.db");
        drop(Store::open(&path).unwrap());
        Connection::open(&path)
            .unwrap()
            .execute_batch("PRAGMA user_version = 9")
            .unwrap();
        assert!(matches!(
            Store::open(&path),
            Err(StoreError::SchemaTooNew { found: 9, .. })
        ));
    }
}
