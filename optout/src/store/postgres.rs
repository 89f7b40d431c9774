//! The opt-out store on PostgreSQL, for several opt-out service instances sharing one
//! database (and possibly the database of the registry or the monitor: every table lives in a
//! PostgreSQL schema of its own, `optout`, so names never collide).
//!
//! Schema migrations are numbered ([`MIGRATIONS`]); `optout.schema_version` holds the version
//! applied, and a database with a newer one is refused. Version 1:
//!
//! ```sql
//! optout.schema_version(version INTEGER)
//! optout.feed_state(id BOOLEAN PRIMARY KEY, last_seq BIGINT)   -- one row
//! optout.optouts(subscriber TEXT, firm TEXT, since BIGINT, PRIMARY KEY (subscriber, firm))
//! optout.audit(seq BIGINT PRIMARY KEY, at BIGINT, subscriber TEXT, firm TEXT,
//!              action TEXT CHECK (action IN ('opt-out', 'undo')), via TEXT)
//! ```
//!
//! The same columns as SQLite's, holding the same values.
//!
//! **The feed's order.** Every change first locks the one `feed_state` row (`SELECT ... FOR
//! UPDATE`) and, when it changes something, takes `last_seq + 1` as its `seq` and writes it
//! back. Changes are thus serialized: `seq`s are gap-free and committed in increasing order,
//! so a feed reader that has seen `seq` `n` finds every later change with `seq > n`, even
//! when several instances commit at once. (A sequence or `BIGSERIAL` would not do: numbers
//! are drawn at insert time, and a later number may commit first, letting a reader skip the
//! earlier one.) Changes are rare, so one row lock is no bottleneck.
//!
//! **Connection loss.** The store keeps one connection behind a mutex, made on first use. A
//! call that finds it broken (PostgreSQL restarted, the network cut) reconnects and tries once
//! more; if that fails too, the call fails with [`StoreError::Postgres`] and the next call
//! connects again. Trying a change again is safe even when its first commit may have gone
//! through: the second attempt then finds nothing to change and answers
//! [`Outcome::Unchanged`], with no second audit entry.

use std::sync::{Mutex, MutexGuard, PoisonError};

use postgres::error::SqlState;
use postgres::Client;
use rest::pg::PgUrl;

use super::{action, opted_out, to_i64, to_u64, Change, Outcome, StoreCounts, Via};
use crate::error::StoreError;

/// The schema migrations, in order: `MIGRATIONS[0]` is version 1.
pub const MIGRATIONS: &[&str] = &[r#"
CREATE TABLE optout.feed_state (id BOOLEAN PRIMARY KEY DEFAULT true CHECK (id),
    last_seq BIGINT NOT NULL);
INSERT INTO optout.feed_state VALUES (true, 0);
CREATE TABLE optout.optouts (subscriber TEXT NOT NULL, firm TEXT NOT NULL,
    since BIGINT NOT NULL, PRIMARY KEY (subscriber, firm));
CREATE TABLE optout.audit (seq BIGINT PRIMARY KEY, at BIGINT NOT NULL,
    subscriber TEXT NOT NULL, firm TEXT NOT NULL,
    action TEXT NOT NULL CHECK (action IN ('opt-out', 'undo')), via TEXT NOT NULL);
"#];

/// The newest schema this program knows.
pub const PG_SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Serializes concurrent migrations (a key of `pg_advisory_xact_lock`, other than the
/// registry's).
const MIGRATION_LOCK: i64 = 0x4f50_544f_5554;

/// An open PostgreSQL store.
pub struct PgStore {
    url: PgUrl,
    client: Mutex<Option<Client>>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl Drop for PgStore {
    fn drop(&mut self) {
        // Closing the client blocks on its own runtime, which panics on an async task: from
        // inside a tokio runtime, the client is closed on a thread of its own.
        let client = self
            .client
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(client) = client {
            if tokio::runtime::Handle::try_current().is_ok() {
                std::thread::spawn(move || drop(client));
            }
        }
    }
}

/// Whether `error` means the connection is gone (rather than a statement failing on a working
/// connection): a closed connection, an I/O error, or the server's shutdown and
/// connection-exception codes.
fn connection_lost(error: &postgres::Error, client: &Client) -> bool {
    if error.is_closed() || client.is_closed() {
        return true;
    }
    if std::error::Error::source(error).is_some_and(|cause| cause.is::<std::io::Error>()) {
        return true;
    }
    error.code().is_some_and(|code| {
        *code == SqlState::ADMIN_SHUTDOWN
            || *code == SqlState::CRASH_SHUTDOWN
            || *code == SqlState::CANNOT_CONNECT_NOW
            || code.code().starts_with("08")
    })
}

impl PgStore {
    /// Connects to `url` and creates or migrates the schema to [`PG_SCHEMA_VERSION`]
    /// (refusing a newer one). Must not be called from an async task.
    pub(super) fn open(url: &PgUrl) -> Result<Self, StoreError> {
        let mut client = rest::pg::connect(url).map_err(|e| pg(url, &e))?;
        migrate(url, &mut client)?;
        Ok(Self {
            url: url.clone(),
            client: Mutex::new(Some(client)),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Option<Client>> {
        // A panic while holding the lock leaves at worst an open transaction on the client,
        // which the server rolls back; the connection is dropped below on any error anyway.
        self.client.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `op` on the connection, connecting first when there is none, and once more on a
    /// new connection when the one it used turns out to be lost (see the module's notes).
    fn run<T>(
        &self,
        op: impl Fn(&mut Client) -> Result<T, postgres::Error>,
    ) -> Result<T, StoreError> {
        let mut guard = self.lock();
        let mut retried = false;
        loop {
            let (mut client, fresh) = match guard.take() {
                Some(client) => (client, false),
                None => (rest::pg::connect(&self.url).map_err(|e| self.pg(&e))?, true),
            };
            match op(&mut client) {
                Ok(value) => {
                    *guard = Some(client);
                    return Ok(value);
                }
                Err(error) => {
                    let lost = connection_lost(&error, &client);
                    if !lost {
                        *guard = Some(client);
                        return Err(self.pg(&error));
                    }
                    drop(client);
                    if fresh || retried {
                        return Err(self.pg(&error));
                    }
                    tracing::warn!(url = %self.url, error = %rest::pg::error_detail(&error),
                        "opt-out database connection lost; connecting again");
                    retried = true;
                }
            }
        }
    }

    fn pg(&self, error: &postgres::Error) -> StoreError {
        pg(&self.url, error)
    }

    pub(super) fn is_opted_out(&self, subscriber: &str, firm: &str) -> Result<bool, StoreError> {
        self.run(|client| {
            client
                .query_opt(
                    "SELECT 1 FROM optout.optouts WHERE subscriber = $1 AND firm = $2",
                    &[&subscriber, &firm],
                )
                .map(|row| row.is_some())
        })
    }

    pub(super) fn change(
        &self,
        subscriber: &str,
        firm: &str,
        opt_out: bool,
        via: Via,
        now: u64,
    ) -> Result<Outcome, StoreError> {
        let now = to_i64(now);
        self.run(|client| {
            let mut tx = client.transaction()?;
            let last: i64 = tx
                .query_one("SELECT last_seq FROM optout.feed_state FOR UPDATE", &[])?
                .try_get(0)?;
            let changed = if opt_out {
                tx.execute(
                    "INSERT INTO optout.optouts (subscriber, firm, since) VALUES ($1, $2, $3)
                     ON CONFLICT DO NOTHING",
                    &[&subscriber, &firm, &now],
                )?
            } else {
                tx.execute(
                    "DELETE FROM optout.optouts WHERE subscriber = $1 AND firm = $2",
                    &[&subscriber, &firm],
                )?
            };
            if changed == 0 {
                tx.rollback()?;
                return Ok(Outcome::Unchanged);
            }
            let seq = last.saturating_add(1);
            tx.execute("UPDATE optout.feed_state SET last_seq = $1", &[&seq])?;
            tx.execute(
                "INSERT INTO optout.audit (seq, at, subscriber, firm, action, via)
                 VALUES ($1, $2, $3, $4, $5, $6)",
                &[
                    &seq,
                    &now,
                    &subscriber,
                    &firm,
                    &action(opt_out),
                    &via.as_str(),
                ],
            )?;
            tx.commit()?;
            Ok(Outcome::Changed(to_u64(seq)))
        })
    }

    pub(super) fn changes_after(
        &self,
        cursor: u64,
        limit: usize,
    ) -> Result<Vec<Change>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self.run(|client| {
            let rows = client.query(
                "SELECT seq, at, subscriber, firm, action FROM optout.audit WHERE seq > $1
                 ORDER BY seq LIMIT $2",
                &[&to_i64(cursor), &limit],
            )?;
            rows.iter()
                .map(|row| {
                    Ok((
                        row.try_get::<_, i64>(0)?,
                        row.try_get::<_, i64>(1)?,
                        row.try_get::<_, String>(2)?,
                        row.try_get::<_, String>(3)?,
                        row.try_get::<_, String>(4)?,
                    ))
                })
                .collect::<Result<Vec<_>, postgres::Error>>()
        })?;
        let mut changes = Vec::with_capacity(rows.len());
        for (seq, at, subscriber, firm, action) in rows {
            let Some(opted_out) = opted_out(&action) else {
                return Err(StoreError::Corrupt {
                    db: self.url.redacted(),
                    column: "optout.audit.action",
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

    pub(super) fn counts(&self) -> Result<StoreCounts, StoreError> {
        let (current, last_seq) = self.run(|client| {
            let row = client.query_one(
                "SELECT (SELECT count(*) FROM optout.optouts),
                        (SELECT last_seq FROM optout.feed_state)",
                &[],
            )?;
            Ok((row.try_get::<_, i64>(0)?, row.try_get::<_, i64>(1)?))
        })?;
        Ok(StoreCounts {
            current: to_u64(current),
            last_seq: to_u64(last_seq),
        })
    }
}

fn pg(url: &PgUrl, error: &postgres::Error) -> StoreError {
    StoreError::Postgres {
        url: url.redacted(),
        detail: rest::pg::error_detail(error),
    }
}

/// Creates the `optout` schema or brings it to [`PG_SCHEMA_VERSION`], in one transaction
/// under an advisory lock (instances starting together migrate once). A newer version is
/// [`StoreError::PgSchemaTooNew`].
fn migrate(url: &PgUrl, client: &mut Client) -> Result<(), StoreError> {
    let pg = |e: postgres::Error| pg(url, &e);
    let mut tx = client.transaction().map_err(pg)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .map_err(pg)?;
    let exists: bool = tx
        .query_one(
            "SELECT to_regclass('optout.schema_version') IS NOT NULL",
            &[],
        )
        .and_then(|row| row.try_get(0))
        .map_err(pg)?;
    let version: i64 = if exists {
        tx.query_one(
            "SELECT coalesce(max(version), 0)::BIGINT FROM optout.schema_version",
            &[],
        )
        .and_then(|row| row.try_get(0))
        .map_err(pg)?
    } else {
        tx.batch_execute(
            "CREATE SCHEMA IF NOT EXISTS optout;
             CREATE TABLE optout.schema_version (version INTEGER NOT NULL);",
        )
        .map_err(pg)?;
        0
    };
    if version > PG_SCHEMA_VERSION {
        return Err(StoreError::PgSchemaTooNew {
            url: url.redacted(),
            found: version,
            supported: PG_SCHEMA_VERSION,
        });
    }
    for (index, migration) in (1_i64..).zip(MIGRATIONS.iter()) {
        if index > version {
            tx.batch_execute(migration).map_err(pg)?;
            tx.execute(
                "INSERT INTO optout.schema_version (version) VALUES ($1)",
                &[&i32::try_from(index).unwrap_or(i32::MAX)],
            )
            .map_err(pg)?;
        }
    }
    tx.commit().map_err(pg)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    //! What only PostgreSQL has: instances sharing one database, outages, and a schema next to
    //! other ones. The behaviour both backends share is tested in `super::super`.
    use std::collections::BTreeMap;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    use super::*;
    use crate::store::Store;

    fn cluster() -> pg_test::PgCluster {
        pg_test::PgCluster::start()
            .unwrap_or_else(|e| panic!("the PostgreSQL tests need a cluster: {e}"))
    }

    #[test]
    fn two_instances_committing_at_once_feed_every_change_once_in_order() {
        let cluster = cluster();
        let url = PgUrl::new(&cluster.url());
        let stores = [
            Arc::new(Store::open_postgres(&url).unwrap()),
            Arc::new(Store::open_postgres(&url).unwrap()),
        ];
        // A reader follows the feed while the writers run: every page must continue exactly
        // where the last one ended, or it would have skipped a change.
        let done = Arc::new(AtomicBool::new(false));
        let reader = {
            let store = Store::open_postgres(&url).unwrap();
            let done = Arc::clone(&done);
            std::thread::spawn(move || {
                let mut cursor = 0;
                let mut seen = 0_u64;
                loop {
                    let finished = done.load(Ordering::SeqCst);
                    let (page, next) = store.changes_after(cursor, 7).unwrap();
                    for change in &page {
                        assert_eq!(change.seq, cursor + 1, "the reader skipped a change");
                        cursor = change.seq;
                        seen += 1;
                    }
                    assert_eq!(next, cursor);
                    if finished && page.is_empty() {
                        return seen;
                    }
                }
            })
        };
        // Each writer opts out 40 numbers of its own and toggles 10 pairs both touch.
        let writers: Vec<_> = stores
            .iter()
            .enumerate()
            .map(|(w, store)| {
                let store = Arc::clone(store);
                std::thread::spawn(move || {
                    let mut seqs = Vec::new();
                    for i in 0..40_u64 {
                        let own = format!("86138{w}{i:07}");
                        let shared = format!("86139000{:05}", i % 10);
                        for outcome in [
                            store.opt_out(&own, "F1", Via::Link, 1000 + i).unwrap(),
                            if i % 2 == 0 {
                                store.opt_out(&shared, "F2", Via::Link, 1000 + i).unwrap()
                            } else {
                                store.undo(&shared, "F2", Via::Link, 1000 + i).unwrap()
                            },
                        ] {
                            if let Outcome::Changed(seq) = outcome {
                                seqs.push(seq);
                            }
                        }
                    }
                    seqs
                })
            })
            .collect();
        let mut seqs: Vec<u64> = writers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect();
        done.store(true, Ordering::SeqCst);
        let read = reader.join().unwrap();
        seqs.sort_unstable();
        let total = u64::try_from(seqs.len()).unwrap();
        assert!(total >= 80, "{total}");
        assert_eq!(
            seqs,
            (1..=total).collect::<Vec<u64>>(),
            "one seq per change"
        );
        assert_eq!(read, total);
        // From 0, the feed has every change once, in order, and replaying it gives the state.
        let (feed, cursor) = stores[0].changes_after(0, 10_000).unwrap();
        assert_eq!(cursor, total);
        assert_eq!(
            feed.iter().map(|c| c.seq).collect::<Vec<_>>(),
            (1..=total).collect::<Vec<u64>>()
        );
        let mut state = BTreeMap::new();
        for change in &feed {
            let before = state.insert(
                (change.subscriber.clone(), change.firm.clone()),
                change.opted_out,
            );
            assert_ne!(
                before,
                Some(change.opted_out),
                "a change that changed nothing"
            );
        }
        for ((subscriber, firm), opted_out) in &state {
            assert_eq!(
                stores[1].is_opted_out(subscriber, firm).unwrap(),
                *opted_out
            );
        }
        let current = state.values().filter(|o| **o).count();
        assert_eq!(
            stores[1].counts().unwrap(),
            crate::store::StoreCounts {
                current: u64::try_from(current).unwrap(),
                last_seq: total
            }
        );
    }

    #[test]
    fn a_stopped_server_is_a_clear_error_and_a_restarted_one_is_used_again() {
        let mut cluster = cluster();
        let store = Store::open_postgres(&PgUrl::new(&cluster.url())).unwrap();
        assert_eq!(
            store.opt_out("8613800138000", "F1", Via::Link, 10).unwrap(),
            Outcome::Changed(1)
        );
        cluster.stop().unwrap();
        for error in [
            store.is_opted_out("8613800138000", "F1").unwrap_err(),
            store
                .opt_out("8613800138001", "F1", Via::Link, 11)
                .unwrap_err(),
            store.changes_after(0, 10).unwrap_err(),
        ] {
            assert!(matches!(error, StoreError::Postgres { .. }), "{error:?}");
            let text = error.to_string();
            assert!(
                text.contains(&format!("shaken@127.0.0.1:{}", cluster.port())),
                "{text}"
            );
            assert!(!text.contains(cluster.password()), "{text}");
        }
        cluster.start_again().unwrap();
        assert!(store.is_opted_out("8613800138000", "F1").unwrap());
        assert_eq!(
            store.opt_out("8613800138001", "F1", Via::Link, 12).unwrap(),
            Outcome::Changed(2)
        );
        // A restart while connected: the next call notices and connects again by itself.
        cluster.stop().unwrap();
        cluster.start_again().unwrap();
        assert_eq!(store.changes_after(0, 10).unwrap().1, 2);
    }

    #[test]
    fn a_newer_schema_is_refused_and_other_schemas_are_left_alone() {
        let cluster = cluster();
        let url = PgUrl::new(&cluster.url());
        let mut client = rest::pg::connect(&url).unwrap();
        // What the registry keeps in the same database: tables of the same names, elsewhere.
        client
            .batch_execute(
                "CREATE TABLE schema_version (version INTEGER NOT NULL);
                 INSERT INTO schema_version VALUES (7);
                 CREATE TABLE audit (id BIGSERIAL PRIMARY KEY, detail TEXT);",
            )
            .unwrap();
        let store = Store::open_postgres(&url).unwrap();
        store.opt_out("8613800138000", "F1", Via::Link, 10).unwrap();
        drop(store);
        let version: i64 = client
            .query_one("SELECT max(version)::BIGINT FROM schema_version", &[])
            .unwrap()
            .get(0);
        assert_eq!(version, 7);
        // Opened again at the same version: nothing migrates twice.
        drop(Store::open_postgres(&url).unwrap());
        let versions: i64 = client
            .query_one("SELECT count(*) FROM optout.schema_version", &[])
            .unwrap()
            .get(0);
        assert_eq!(versions, PG_SCHEMA_VERSION);
        client
            .batch_execute("INSERT INTO optout.schema_version VALUES (9)")
            .unwrap();
        let error = Store::open_postgres(&url).unwrap_err();
        assert!(
            matches!(error, StoreError::PgSchemaTooNew { found: 9, .. }),
            "{error:?}"
        );
        assert!(!error.to_string().contains(cluster.password()), "{error}");
    }
}
