//! The registry on PostgreSQL: the same customers, numbers, ranges and audit records as the
//! SQLite [`super::store`], for carriers whose signers share one registry.
//!
//! Schema migrations are numbered ([`MIGRATIONS`]); `schema_version` holds the version
//! applied, and a database with a newer one is refused. Version 1:
//!
//! ```sql
//! schema_version(version INTEGER)
//! registry_state(id BOOLEAN PRIMARY KEY, change_seq BIGINT, generation BIGINT)  -- one row
//! customers(id TEXT PRIMARY KEY, name TEXT, verified BOOLEAN, id_hmac TEXT, updated_at BIGINT,
//!           change_seq BIGINT)
//! numbers(tn TEXT PRIMARY KEY, customer_id TEXT, status TEXT, updated_at BIGINT, change_seq BIGINT)
//! ranges(start TEXT, "end" TEXT, customer_id TEXT, status TEXT, updated_at BIGINT,
//!        change_seq BIGINT, PRIMARY KEY (start, "end"))
//! audit(id BIGSERIAL PRIMARY KEY, at BIGINT, actor TEXT, action TEXT, subject TEXT, detail TEXT)
//! ```
//!
//! Version 2 adds `registry_state.registry_id`, a random UUID drawn when the schema is
//! created: a signer whose copy came from another database (recreated, or a different one)
//! sees it differ and reloads everything.
//!
//! **The change watermark.** Every writing transaction first increments
//! `registry_state.change_seq`, which locks that row until it commits: writers are serialized,
//! so watermarks are committed in increasing order and a reader that has seen watermark `w`
//! finds every later change with `change_seq > w`. Each row it writes carries the new
//! watermark. A replacing import also increments `generation`: its deletions are not rows, so
//! a reader whose generation (or `registry_id`) differs, or whose watermark is above
//! PostgreSQL's (a restored backup), reloads everything. Each commit sends `NOTIFY` on
//! [`CHANGES_CHANNEL`] with the new watermark as payload. Identity documents are stored only
//! as HMACs, as in SQLite.

use std::collections::HashMap;

use postgres::binary_copy::BinaryCopyInWriter;
use postgres::types::Type;
use postgres::{Client, GenericClient};

use super::import::{Entry, ImportMode, ImportSummary, ParsedImport};
use super::location::PgUrl;
use super::store::{AuditRecord, Customer, NumberRecord, NumberStatus};
use crate::error::SignerError;

/// The channel every change is announced on (payload: the new watermark).
pub const CHANGES_CHANNEL: &str = "shaken_registry";

/// How long a connection attempt may take (when the URL sets no `connect_timeout`).
pub use rest::pg::CONNECT_TIMEOUT;

/// The schema migrations, in order: `MIGRATIONS[0]` is version 1.
pub const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE registry_state (id BOOLEAN PRIMARY KEY DEFAULT true CHECK (id),
    change_seq BIGINT NOT NULL, generation BIGINT NOT NULL);
INSERT INTO registry_state VALUES (true, 0, 0);
CREATE TABLE customers (id TEXT PRIMARY KEY, name TEXT NOT NULL, verified BOOLEAN NOT NULL,
    id_hmac TEXT, updated_at BIGINT NOT NULL, change_seq BIGINT NOT NULL);
CREATE INDEX customers_change ON customers (change_seq);
CREATE TABLE numbers (tn TEXT COLLATE "C" PRIMARY KEY,
    customer_id TEXT NOT NULL REFERENCES customers (id),
    status TEXT NOT NULL CHECK (status IN ('active', 'suspended')),
    updated_at BIGINT NOT NULL, change_seq BIGINT NOT NULL);
CREATE INDEX numbers_customer ON numbers (customer_id);
CREATE INDEX numbers_change ON numbers (change_seq);
CREATE TABLE ranges (start TEXT COLLATE "C" NOT NULL, "end" TEXT COLLATE "C" NOT NULL,
    customer_id TEXT NOT NULL REFERENCES customers (id),
    status TEXT NOT NULL CHECK (status IN ('active', 'suspended')),
    updated_at BIGINT NOT NULL, change_seq BIGINT NOT NULL, PRIMARY KEY (start, "end"));
CREATE INDEX ranges_change ON ranges (change_seq);
CREATE TABLE audit (id BIGSERIAL PRIMARY KEY, at BIGINT NOT NULL, actor TEXT NOT NULL,
    action TEXT NOT NULL, subject TEXT NOT NULL, detail TEXT NOT NULL);
"#,
    r#"
ALTER TABLE registry_state ADD COLUMN registry_id TEXT NOT NULL DEFAULT gen_random_uuid()::TEXT;
"#,
];

/// The newest schema this program knows.
pub const PG_SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Serializes concurrent migrations (an arbitrary key of `pg_advisory_xact_lock`).
const MIGRATION_LOCK: i64 = 0x5348_414b_454e;

/// An open PostgreSQL registry.
pub struct PgRegistry {
    url: PgUrl,
    client: Client,
}

impl std::fmt::Debug for PgRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgRegistry")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

pub use rest::pg::{connect_timeout, PASSWORD_ENV, TCP_USER_TIMEOUT};

/// Connects to `url` ([`rest::pg::connect`]: no TLS, the password from [`PASSWORD_ENV`] when
/// the URL has none, keepalives and timeouts). Must not be called from an async task (the
/// client runs its own small runtime).
pub(crate) fn connect(url: &PgUrl) -> Result<Client, SignerError> {
    rest::pg::connect(url).map_err(|e| SignerError::pg(url, e))
}

impl PgRegistry {
    /// Connects to `url` and migrates its schema to [`PG_SCHEMA_VERSION`] (refusing a newer
    /// one): what `shaken registry` does. Must not be called from an async task.
    pub fn open(url: &PgUrl) -> Result<Self, SignerError> {
        let client = connect(url)?;
        let mut registry = Self {
            url: url.clone(),
            client,
        };
        registry.migrate()?;
        Ok(registry)
    }

    /// Connects to `url` and checks, without changing anything (no DDL), that its schema is
    /// exactly [`PG_SCHEMA_VERSION`]: what a signer does, since only `shaken registry`
    /// migrates a shared database. A missing or older schema is
    /// [`SignerError::PgSchemaTooOld`], a newer one [`SignerError::PgSchemaTooNew`]. Must not
    /// be called from an async task.
    pub fn open_checked(url: &PgUrl) -> Result<Self, SignerError> {
        let client = connect(url)?;
        let mut registry = Self {
            url: url.clone(),
            client,
        };
        let version = registry.schema_version()?;
        check_version(url, version)?;
        Ok(registry)
    }

    /// The schema version applied (0: no schema).
    fn schema_version(&mut self) -> Result<i64, SignerError> {
        let url = self.url.clone();
        let pg = |e: postgres::Error| SignerError::pg(&url, e);
        let exists: bool = self
            .client
            .query_one("SELECT to_regclass('schema_version') IS NOT NULL", &[])
            .and_then(|row| row.try_get(0))
            .map_err(pg)?;
        if !exists {
            return Ok(0);
        }
        self.client
            .query_one(
                "SELECT coalesce(max(version), 0)::BIGINT FROM schema_version",
                &[],
            )
            .and_then(|row| row.try_get(0))
            .map_err(pg)
    }

    /// The URL (its `Display` hides the password).
    pub fn url(&self) -> &PgUrl {
        &self.url
    }

    fn pg(&self, error: impl std::error::Error) -> SignerError {
        SignerError::pg(&self.url, error)
    }

    fn migrate(&mut self) -> Result<(), SignerError> {
        let url = self.url.clone();
        let pg = |e: postgres::Error| SignerError::pg(&url, e);
        let mut tx = self.client.transaction().map_err(pg)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .map_err(pg)?;
        let exists: bool = tx
            .query_one("SELECT to_regclass('schema_version') IS NOT NULL", &[])
            .and_then(|row| row.try_get(0))
            .map_err(pg)?;
        let version: i64 = if exists {
            tx.query_one(
                "SELECT coalesce(max(version), 0)::BIGINT FROM schema_version",
                &[],
            )
            .and_then(|row| row.try_get(0))
            .map_err(pg)?
        } else {
            tx.batch_execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
                .map_err(pg)?;
            0
        };
        if version > PG_SCHEMA_VERSION {
            return Err(SignerError::PgSchemaTooNew {
                url: url.redacted(),
                found: version,
                supported: PG_SCHEMA_VERSION,
            });
        }
        for (index, migration) in MIGRATIONS.iter().enumerate() {
            let target = index as i64 + 1;
            if target > version {
                tx.batch_execute(migration).map_err(pg)?;
                tx.execute(
                    "INSERT INTO schema_version (version) VALUES ($1)",
                    &[&(target as i32)],
                )
                .map_err(pg)?;
            }
        }
        tx.commit().map_err(pg)
    }

    /// Looks a canonical number up: an exact entry first, then the covering range.
    pub fn lookup(&mut self, tn: &str) -> Result<Option<NumberRecord>, SignerError> {
        let url = self.url.clone();
        lookup_in(&mut self.client, tn).map_err(|e| SignerError::pg(&url, e))
    }

    /// Sets the status of a registered number (or of the range covering it), with an audit
    /// record naming `actor`, a new watermark and a notification. Returns the record before
    /// the change.
    pub fn set_status(
        &mut self,
        tn: &str,
        status: NumberStatus,
        actor: &str,
        now: u64,
    ) -> Result<NumberRecord, SignerError> {
        let url = self.url.clone();
        let pg = |e: postgres::Error| SignerError::pg(&url, e);
        let mut tx = self.client.transaction().map_err(pg)?;
        let (seq, _) = bump(&mut tx, false).map_err(pg)?;
        let record = lookup_in(&mut tx, tn)
            .map_err(pg)?
            .ok_or_else(|| SignerError::NotRegistered(tn.to_owned()))?;
        let now = now as i64;
        if record.via_range {
            tx.execute(
                r#"UPDATE ranges SET status = $1, updated_at = $2, change_seq = $3
                   WHERE start <= $4 AND "end" >= $4 AND length(start) = length($4)"#,
                &[&status.as_str(), &now, &seq, &tn],
            )
            .map_err(pg)?;
        } else {
            tx.execute(
                "UPDATE numbers SET status = $1, updated_at = $2, change_seq = $3 WHERE tn = $4",
                &[&status.as_str(), &now, &seq, &tn],
            )
            .map_err(pg)?;
        }
        let action = format!("set-status:{}", status.as_str());
        let detail = format!("was {}", record.status.as_str());
        audit(&mut tx, now, actor, &action, tn, &detail).map_err(pg)?;
        notify(&mut tx, seq).map_err(pg)?;
        tx.commit().map_err(pg)?;
        Ok(record)
    }

    /// Writes a parsed import in one transaction, as [`super::import::import`] does in SQLite:
    /// the same rows, summary and audit record. Rows are sent with `COPY`.
    pub(crate) fn apply_import(
        &mut self,
        parsed: &ParsedImport,
        mode: ImportMode,
        actor: &str,
        now: u64,
    ) -> Result<ImportSummary, SignerError> {
        let url = self.url.clone();
        let pg = |e: postgres::Error| SignerError::pg(&url, e);
        let mut tx = self.client.transaction().map_err(pg)?;
        let (seq, _) = bump(&mut tx, mode == ImportMode::Replace).map_err(pg)?;
        if mode == ImportMode::Replace {
            tx.batch_execute("DELETE FROM numbers; DELETE FROM ranges; DELETE FROM customers;")
                .map_err(pg)?;
        }
        tx.batch_execute(
            r#"CREATE TEMP TABLE customers_in (id TEXT, name TEXT, verified BOOLEAN, id_hmac TEXT)
                   ON COMMIT DROP;
               CREATE TEMP TABLE numbers_in (tn TEXT, customer_id TEXT, status TEXT) ON COMMIT DROP;
               CREATE TEMP TABLE ranges_in (start TEXT, "end" TEXT, customer_id TEXT, status TEXT)
                   ON COMMIT DROP;"#,
        )
        .map_err(pg)?;
        {
            let sink = tx
                .copy_in("COPY customers_in FROM STDIN BINARY")
                .map_err(pg)?;
            let mut writer =
                BinaryCopyInWriter::new(sink, &[Type::TEXT, Type::TEXT, Type::BOOL, Type::TEXT]);
            for (id, row) in &parsed.customers {
                writer
                    .write(&[id, &row.name, &row.verified, &row.id_hmac])
                    .map_err(pg)?;
            }
            writer.finish().map_err(pg)?;
        }
        // The last line of a number or range wins, as with SQLite's row-by-row upserts; one
        // INSERT ... ON CONFLICT may not touch a row twice, so earlier ones are left out.
        let mut last_number: HashMap<&str, usize> = HashMap::new();
        let mut last_range: HashMap<(&str, &str), usize> = HashMap::new();
        for (index, (entry, _, _)) in parsed.entries.iter().enumerate() {
            match entry {
                Entry::One(tn) => last_number.insert(tn, index),
                Entry::Range(start, end) => last_range.insert((start, end), index),
            };
        }
        {
            let sink = tx
                .copy_in("COPY numbers_in FROM STDIN BINARY")
                .map_err(pg)?;
            let mut writer = BinaryCopyInWriter::new(sink, &[Type::TEXT, Type::TEXT, Type::TEXT]);
            for (index, (entry, customer, status)) in parsed.entries.iter().enumerate() {
                if let Entry::One(tn) = entry {
                    if last_number.get(tn.as_str()) == Some(&index) {
                        writer
                            .write(&[tn, customer, &status.as_str()])
                            .map_err(pg)?;
                    }
                }
            }
            writer.finish().map_err(pg)?;
        }
        {
            let sink = tx.copy_in("COPY ranges_in FROM STDIN BINARY").map_err(pg)?;
            let mut writer =
                BinaryCopyInWriter::new(sink, &[Type::TEXT, Type::TEXT, Type::TEXT, Type::TEXT]);
            for (index, (entry, customer, status)) in parsed.entries.iter().enumerate() {
                if let Entry::Range(start, end) = entry {
                    if last_range.get(&(start.as_str(), end.as_str())) == Some(&index) {
                        writer
                            .write(&[start, end, customer, &status.as_str()])
                            .map_err(pg)?;
                    }
                }
            }
            writer.finish().map_err(pg)?;
        }
        let now_i = now as i64;
        tx.execute(
            "INSERT INTO customers (id, name, verified, id_hmac, updated_at, change_seq)
             SELECT id, name, verified, id_hmac, $1, $2 FROM customers_in
             ON CONFLICT (id) DO UPDATE SET name = excluded.name, verified = excluded.verified,
             id_hmac = coalesce(excluded.id_hmac, customers.id_hmac),
             updated_at = excluded.updated_at, change_seq = excluded.change_seq",
            &[&now_i, &seq],
        )
        .map_err(pg)?;
        tx.execute(
            "INSERT INTO numbers (tn, customer_id, status, updated_at, change_seq)
             SELECT tn, customer_id, status, $1, $2 FROM numbers_in
             ON CONFLICT (tn) DO UPDATE SET customer_id = excluded.customer_id,
             status = excluded.status, updated_at = excluded.updated_at,
             change_seq = excluded.change_seq",
            &[&now_i, &seq],
        )
        .map_err(pg)?;
        tx.execute(
            r#"INSERT INTO ranges (start, "end", customer_id, status, updated_at, change_seq)
               SELECT start, "end", customer_id, status, $1, $2 FROM ranges_in
               ON CONFLICT (start, "end") DO UPDATE SET customer_id = excluded.customer_id,
               status = excluded.status, updated_at = excluded.updated_at,
               change_seq = excluded.change_seq"#,
            &[&now_i, &seq],
        )
        .map_err(pg)?;
        let (action, detail) = parsed.audit_action(mode);
        audit(&mut tx, now_i, actor, action, "registry", &detail).map_err(pg)?;
        notify(&mut tx, seq).map_err(pg)?;
        tx.commit().map_err(pg)?;
        Ok(parsed.summary())
    }

    /// The audit records, newest first, at most `limit`.
    pub fn audit_log(&mut self, limit: usize) -> Result<Vec<AuditRecord>, SignerError> {
        let url = self.url.clone();
        let rows = self
            .client
            .query(
                "SELECT at, actor, action, subject, detail FROM audit ORDER BY id DESC LIMIT $1",
                &[&(limit as i64)],
            )
            .map_err(|e| SignerError::pg(&url, e))?;
        rows.iter()
            .map(|row| {
                Ok(AuditRecord {
                    at: row.try_get::<_, i64>(0)? as u64,
                    actor: row.try_get(1)?,
                    action: row.try_get(2)?,
                    subject: row.try_get(3)?,
                    detail: row.try_get(4)?,
                })
            })
            .collect::<Result<Vec<_>, postgres::Error>>()
            .map_err(|e| self.pg(e))
    }

    /// How many numbers and ranges are registered.
    pub fn counts(&mut self) -> Result<(u64, u64), SignerError> {
        let url = self.url.clone();
        let row = self
            .client
            .query_one(
                "SELECT (SELECT count(*) FROM numbers), (SELECT count(*) FROM ranges)",
                &[],
            )
            .map_err(|e| SignerError::pg(&url, e))?;
        let get = |i| row.try_get::<_, i64>(i).map(|n| n as u64);
        Ok((
            get(0).map_err(|e| self.pg(e))?,
            get(1).map_err(|e| self.pg(e))?,
        ))
    }

    /// The connection, for the signer's synchronization ([`super::sync`]).
    pub(crate) fn client_mut(&mut self) -> &mut Client {
        &mut self.client
    }

    /// The current watermark and generation.
    pub fn watermark(&mut self) -> Result<(i64, i64), SignerError> {
        let url = self.url.clone();
        let row = self
            .client
            .query_one("SELECT change_seq, generation FROM registry_state", &[])
            .map_err(|e| SignerError::pg(&url, e))?;
        Ok((
            row.try_get(0).map_err(|e| self.pg(e))?,
            row.try_get(1).map_err(|e| self.pg(e))?,
        ))
    }
}

/// Whether a database at schema `version` is one a signer can read as it is.
fn check_version(url: &PgUrl, version: i64) -> Result<(), SignerError> {
    match version.cmp(&PG_SCHEMA_VERSION) {
        std::cmp::Ordering::Equal => Ok(()),
        std::cmp::Ordering::Less => Err(SignerError::PgSchemaTooOld {
            url: url.redacted(),
            found: version,
            needed: PG_SCHEMA_VERSION,
        }),
        std::cmp::Ordering::Greater => Err(SignerError::PgSchemaTooNew {
            url: url.redacted(),
            found: version,
            supported: PG_SCHEMA_VERSION,
        }),
    }
}

/// Takes the next watermark (and the next generation when `replacing`), locking the state row
/// until the transaction ends: see the module documentation.
fn bump(tx: &mut impl GenericClient, replacing: bool) -> Result<(i64, i64), postgres::Error> {
    let row = tx.query_one(
        "UPDATE registry_state SET change_seq = change_seq + 1,
         generation = generation + $1 RETURNING change_seq, generation",
        &[&i64::from(replacing)],
    )?;
    Ok((row.try_get(0)?, row.try_get(1)?))
}

fn notify(tx: &mut impl GenericClient, seq: i64) -> Result<(), postgres::Error> {
    tx.execute(
        "SELECT pg_notify($1, $2)",
        &[&CHANGES_CHANNEL, &seq.to_string()],
    )
    .map(|_| ())
}

fn audit(
    tx: &mut impl GenericClient,
    now: i64,
    actor: &str,
    action: &str,
    subject: &str,
    detail: &str,
) -> Result<(), postgres::Error> {
    tx.execute(
        "INSERT INTO audit (at, actor, action, subject, detail) VALUES ($1, $2, $3, $4, $5)",
        &[&now, &actor, &action, &subject, &detail],
    )
    .map(|_| ())
}

/// The registry's record for `tn`, as [`super::store::Registry::lookup`] finds it.
fn lookup_in(
    client: &mut impl GenericClient,
    tn: &str,
) -> Result<Option<NumberRecord>, postgres::Error> {
    let record = |status: String, id, name, verified, via_range| NumberRecord {
        tn: tn.to_owned(),
        customer: Customer { id, name, verified },
        status: NumberStatus::parse(&status).unwrap_or(NumberStatus::Suspended),
        via_range,
    };
    if let Some(row) = client.query_opt(
        "SELECT n.status, c.id, c.name, c.verified FROM numbers n
         JOIN customers c ON c.id = n.customer_id WHERE n.tn = $1",
        &[&tn],
    )? {
        return Ok(Some(record(
            row.try_get(0)?,
            row.try_get(1)?,
            row.try_get(2)?,
            row.try_get(3)?,
            false,
        )));
    }
    let Some(row) = client.query_opt(
        r#"SELECT r.status, c.id, c.name, c.verified, r."end" FROM ranges r
           JOIN customers c ON c.id = r.customer_id
           WHERE r.start <= $1 AND length(r.start) = length($1)
           ORDER BY r.start DESC LIMIT 1"#,
        &[&tn],
    )?
    else {
        return Ok(None);
    };
    let end: String = row.try_get(4)?;
    if tn > end.as_str() {
        return Ok(None);
    }
    Ok(Some(record(
        row.try_get(0)?,
        row.try_get(1)?,
        row.try_get(2)?,
        row.try_get(3)?,
        true,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signer_reads_only_the_schema_version_it_knows() {
        let url = PgUrl::new("postgres://u:pw@h/reg");
        assert!(check_version(&url, PG_SCHEMA_VERSION).is_ok());
        let old = check_version(&url, PG_SCHEMA_VERSION - 1).unwrap_err();
        assert!(matches!(old, SignerError::PgSchemaTooOld { .. }), "{old}");
        assert!(old.to_string().contains("shaken registry"), "{old}");
        assert!(!old.to_string().contains("pw"), "{old}");
        assert!(matches!(
            check_version(&url, 0),
            Err(SignerError::PgSchemaTooOld { found: 0, .. })
        ));
        assert!(matches!(
            check_version(&url, PG_SCHEMA_VERSION + 1),
            Err(SignerError::PgSchemaTooNew { .. })
        ));
    }
}
