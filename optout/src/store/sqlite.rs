//! The opt-out store in SQLite, the default: one file, one connection behind a mutex (changes
//! are rare and small).
//!
//! Schema version 1 (`PRAGMA user_version`):
//! - `optouts (subscriber, firm, since)`: the current opt-outs, one row per pair;
//! - `audit (seq, at, subscriber, firm, action, via)`: one row per change, `seq` increasing
//!   and never reused (`AUTOINCREMENT`).

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rusqlite::{params, Connection, OptionalExtension};

use super::{action, opted_out, to_i64, to_u64, Change, Outcome, StoreCounts, Via};
use crate::error::StoreError;

/// The schema version this code writes.
pub const SCHEMA_VERSION: i64 = 1;

/// An open SQLite store.
pub struct SqliteStore {
    path: PathBuf,
    conn: Mutex<Connection>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (creating and migrating if needed) the store at `path`.
    pub(super) fn open(path: &Path) -> Result<Self, StoreError> {
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
    pub(super) fn is_opted_out(&self, subscriber: &str, firm: &str) -> Result<bool, StoreError> {
        let conn = self.lock();
        conn.prepare_cached("SELECT 1 FROM optouts WHERE subscriber = ?1 AND firm = ?2")
            .and_then(|mut stmt| stmt.query_row([subscriber, firm], |_| Ok(())).optional())
            .map(|found| found.is_some())
            .map_err(|e| self.db(e))
    }

    pub(super) fn change(
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
            params![to_i64(now), subscriber, firm, action(opt_out), via.as_str()],
        )
        .map_err(|e| self.db(e))?;
        let seq = tx.last_insert_rowid();
        tx.commit().map_err(|e| self.db(e))?;
        Ok(Outcome::Changed(to_u64(seq)))
    }

    /// At most `limit` changes after `cursor`, in `seq` order.
    pub(super) fn changes_after(
        &self,
        cursor: u64,
        limit: usize,
    ) -> Result<Vec<Change>, StoreError> {
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
            let Some(opted_out) = opted_out(&action) else {
                return Err(StoreError::Corrupt {
                    db: self.path.display().to_string(),
                    column: "audit.action",
                    value: action,
                });
            };
            changes.push(Change {
                seq: to_u64(seq),
                subscriber,
                firm,
                opted_out,
                at: to_u64(at),
            });
        }
        Ok(changes)
    }

    /// The number of current opt-outs and the last `seq`.
    pub(super) fn counts(&self) -> Result<StoreCounts, StoreError> {
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

    #[test]
    fn a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("optout.db");
        drop(SqliteStore::open(&path).unwrap());
        Connection::open(&path)
            .unwrap()
            .execute_batch("PRAGMA user_version = 9")
            .unwrap();
        assert!(matches!(
            SqliteStore::open(&path),
            Err(StoreError::SchemaTooNew { found: 9, .. })
        ));
    }
}
