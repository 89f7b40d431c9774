//! The registry database (SQLite, created on first use).
//!
//! Schema version 1:
//!
//! ```sql
//! customers(id TEXT PRIMARY KEY, name TEXT, verified INTEGER, id_hmac TEXT, updated_at INTEGER)
//! numbers(tn TEXT PRIMARY KEY, customer_id TEXT, status TEXT, updated_at INTEGER) WITHOUT ROWID
//! ranges(start TEXT, end TEXT, customer_id TEXT, status TEXT, updated_at INTEGER,
//!        PRIMARY KEY(start, end)) WITHOUT ROWID
//! audit(id INTEGER PRIMARY KEY, at INTEGER, actor TEXT, action TEXT, subject TEXT, detail TEXT)
//! ```
//! Numbers are canonical E.164 digits. A range covers the numbers of the same length from
//! `start` to `end` inclusive; a single number entry wins over a range.

use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use rusqlite::{params, Connection, OptionalExtension};
use sha2::Sha256;

use crate::error::SignerError;

/// The newest schema this program knows.
pub const SCHEMA_VERSION: i64 = 1;

/// Whether a number may be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NumberStatus {
    /// In service.
    Active,
    /// Suspended (by the carrier or a regulator): calls from it are not signed.
    Suspended,
}

impl NumberStatus {
    /// `active` or `suspended`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Suspended => "suspended",
        }
    }

    /// Parses `active` or `suspended` (any case).
    pub fn parse(text: &str) -> Option<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "active" | "" => Some(Self::Active),
            "suspended" => Some(Self::Suspended),
            _ => None,
        }
    }
}

/// A registered customer.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Customer {
    /// The carrier's customer id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Whether the real-name identity check was completed.
    pub verified: bool,
}

/// What the registry says about one calling number.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct NumberRecord {
    /// The canonical number looked up.
    pub tn: String,
    /// Its customer.
    pub customer: Customer,
    /// Its status.
    pub status: NumberStatus,
    /// Whether it was found through a range.
    pub via_range: bool,
}

impl NumberRecord {
    /// The record as `shaken registry show` prints it: `tn`, `customer` (its id), `name`,
    /// `verified`, `status`, `via_range`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({"tn": self.tn, "customer": self.customer.id, "name": self.customer.name,
               "verified": self.customer.verified, "status": self.status.as_str(),
               "via_range": self.via_range})
    }
}

/// HMAC-SHA256 of an identity document number under the carrier's secret, as hex. The
/// document number itself is never stored.
pub fn identity_hmac(secret: &[u8], document: &str) -> String {
    // HMAC accepts keys of any length, so this cannot fail.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return String::new();
    };
    mac.update(document.trim().as_bytes());
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// One audit record: what changed, when, by whom.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditRecord {
    /// When.
    pub at: u64,
    /// Which command or client.
    pub actor: String,
    /// What was done (`import:merge`, `set-status:suspended`, ...).
    pub action: String,
    /// What it was done to.
    pub subject: String,
    /// Details.
    pub detail: String,
}

/// An open registry database.
pub struct Registry {
    path: PathBuf,
    conn: Connection,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Registry {
    /// Opens (creating and migrating if needed) the registry at `path`.
    pub fn open(path: &Path) -> Result<Self, SignerError> {
        let conn = Connection::open(path).map_err(|e| SignerError::db(path, e))?;
        let registry = Self {
            path: path.to_owned(),
            conn,
        };
        registry.migrate()?;
        Ok(registry)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn db(&self, error: rusqlite::Error) -> SignerError {
        SignerError::db(&self.path, error)
    }

    fn migrate(&self) -> Result<(), SignerError> {
        self.conn
            .execute_batch(
                "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;",
            )
            .map_err(|e| self.db(e))?;
        let version: i64 = self
            .conn
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .map_err(|e| self.db(e))?;
        if version > SCHEMA_VERSION {
            return Err(SignerError::SchemaTooNew {
                path: self.path.clone(),
                found: version,
                supported: SCHEMA_VERSION,
            });
        }
        if version < 1 {
            self.conn
                .execute_batch(
                    "BEGIN;
                     CREATE TABLE customers (id TEXT PRIMARY KEY, name TEXT NOT NULL,
                         verified INTEGER NOT NULL, id_hmac TEXT, updated_at INTEGER NOT NULL);
                     CREATE TABLE numbers (tn TEXT PRIMARY KEY,
                         customer_id TEXT NOT NULL REFERENCES customers(id),
                         status TEXT NOT NULL CHECK (status IN ('active','suspended')),
                         updated_at INTEGER NOT NULL) WITHOUT ROWID;
                     CREATE INDEX numbers_customer ON numbers(customer_id);
                     CREATE TABLE ranges (start TEXT NOT NULL, end TEXT NOT NULL,
                         customer_id TEXT NOT NULL REFERENCES customers(id),
                         status TEXT NOT NULL CHECK (status IN ('active','suspended')),
                         updated_at INTEGER NOT NULL, PRIMARY KEY (start, end)) WITHOUT ROWID;
                     CREATE TABLE audit (id INTEGER PRIMARY KEY, at INTEGER NOT NULL,
                         actor TEXT NOT NULL, action TEXT NOT NULL, subject TEXT NOT NULL,
                         detail TEXT NOT NULL);
                     PRAGMA user_version = 1;
                     COMMIT;",
                )
                .map_err(|e| self.db(e))?;
        }
        Ok(())
    }

    /// Looks a canonical number up: an exact entry first, then the covering range.
    pub fn lookup(&self, tn: &str) -> Result<Option<NumberRecord>, SignerError> {
        let exact = self
            .conn
            .prepare_cached(
                "SELECT n.status, c.id, c.name, c.verified FROM numbers n
                 JOIN customers c ON c.id = n.customer_id WHERE n.tn = ?1",
            )
            .and_then(|mut stmt| {
                stmt.query_row([tn], |row| {
                    Ok((
                        row.get::<_, String>(0)?,
                        row.get(1)?,
                        row.get(2)?,
                        row.get(3)?,
                    ))
                })
                .optional()
            })
            .map_err(|e| self.db(e))?;
        let (found, via_range) = match exact {
            Some(found) => (Some(found), false),
            None => {
                let range = self
                    .conn
                    .prepare_cached(
                        "SELECT r.status, c.id, c.name, c.verified, r.end FROM ranges r
                         JOIN customers c ON c.id = r.customer_id
                         WHERE r.start <= ?1 AND length(r.start) = length(?1)
                         ORDER BY r.start DESC LIMIT 1",
                    )
                    .and_then(|mut stmt| {
                        stmt.query_row([tn], |row| {
                            Ok((
                                row.get::<_, String>(0)?,
                                row.get(1)?,
                                row.get(2)?,
                                row.get(3)?,
                                row.get::<_, String>(4)?,
                            ))
                        })
                        .optional()
                    })
                    .map_err(|e| self.db(e))?;
                match range {
                    Some((status, id, name, verified, end)) if tn <= end.as_str() => {
                        (Some((status, id, name, verified)), true)
                    }
                    _ => (None, false),
                }
            }
        };
        Ok(found.map(
            |(status, id, name, verified): (String, String, String, bool)| NumberRecord {
                tn: tn.to_owned(),
                customer: Customer { id, name, verified },
                status: NumberStatus::parse(&status).unwrap_or(NumberStatus::Suspended),
                via_range,
            },
        ))
    }

    /// Sets the status of a registered number (or of the range covering it), with an audit
    /// record naming `actor`. Returns the record before the change.
    pub fn set_status(
        &self,
        tn: &str,
        status: NumberStatus,
        actor: &str,
        now: u64,
    ) -> Result<NumberRecord, SignerError> {
        let record = self
            .lookup(tn)?
            .ok_or_else(|| SignerError::NotRegistered(tn.to_owned()))?;
        let tx = self.conn.unchecked_transaction().map_err(|e| self.db(e))?;
        if record.via_range {
            tx.execute(
                "UPDATE ranges SET status = ?1, updated_at = ?2 WHERE start <= ?3 AND end >= ?3 AND length(start) = length(?3)",
                params![status.as_str(), now as i64, tn],
            )
            .map_err(|e| self.db(e))?;
        } else {
            tx.execute(
                "UPDATE numbers SET status = ?1, updated_at = ?2 WHERE tn = ?3",
                params![status.as_str(), now as i64, tn],
            )
            .map_err(|e| self.db(e))?;
        }
        audit(
            &tx,
            now,
            actor,
            &format!("set-status:{}", status.as_str()),
            tn,
            &format!("was {}", record.status.as_str()),
        )
        .map_err(|e| self.db(e))?;
        tx.commit().map_err(|e| self.db(e))?;
        Ok(record)
    }

    /// The audit records, newest first, at most `limit`.
    pub fn audit_log(&self, limit: usize) -> Result<Vec<AuditRecord>, SignerError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT at, actor, action, subject, detail FROM audit ORDER BY id DESC LIMIT ?1",
            )
            .map_err(|e| self.db(e))?;
        let rows = stmt
            .query_map([limit as i64], |row| {
                Ok(AuditRecord {
                    at: row.get::<_, i64>(0)? as u64,
                    actor: row.get(1)?,
                    action: row.get(2)?,
                    subject: row.get(3)?,
                    detail: row.get(4)?,
                })
            })
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(|e| self.db(e))?;
        Ok(rows)
    }

    /// How many numbers and ranges are registered.
    pub fn counts(&self) -> Result<(u64, u64), SignerError> {
        let numbers: i64 = self
            .conn
            .query_row("SELECT count(*) FROM numbers", [], |r| r.get(0))
            .map_err(|e| self.db(e))?;
        let ranges: i64 = self
            .conn
            .query_row("SELECT count(*) FROM ranges", [], |r| r.get(0))
            .map_err(|e| self.db(e))?;
        Ok((numbers as u64, ranges as u64))
    }

    pub(crate) fn connection(&mut self) -> &mut Connection {
        &mut self.conn
    }
}

/// Writes one audit record inside a transaction.
pub(crate) fn audit(
    conn: &Connection,
    now: u64,
    actor: &str,
    action: &str,
    subject: &str,
    detail: &str,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO audit (at, actor, action, subject, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![now as i64, actor, action, subject, detail])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry() -> (tempfile::TempDir, Registry) {
        let dir = tempfile::tempdir().unwrap();
        let registry = Registry::open(&dir.path().join("r.sqlite")).unwrap();
        (dir, registry)
    }

    #[test]
    fn lookups_find_numbers_and_ranges() {
        let (_dir, registry) = registry();
        registry
            .conn
            .execute_batch(
                "INSERT INTO customers VALUES ('c1','One',1,NULL,0), ('c2','Two',0,NULL,0);
                 INSERT INTO numbers VALUES ('12155551212','c1','active',0);
                 INSERT INTO ranges VALUES ('12155560000','12155569999','c2','active',0);
                 INSERT INTO numbers VALUES ('12155560005','c1','suspended',0);",
            )
            .unwrap();
        let one = registry.lookup("12155551212").unwrap().unwrap();
        assert_eq!(one.customer.id, "c1");
        assert!(one.customer.verified && !one.via_range && one.status == NumberStatus::Active);
        let ranged = registry.lookup("12155561234").unwrap().unwrap();
        assert_eq!(
            (ranged.customer.id.as_str(), ranged.via_range),
            ("c2", true)
        );
        // An exact entry wins over the range covering it.
        let exact = registry.lookup("12155560005").unwrap().unwrap();
        assert_eq!(
            (exact.customer.id.as_str(), exact.status),
            ("c1", NumberStatus::Suspended)
        );
        assert_eq!(registry.lookup("12155570000").unwrap(), None);
        assert_eq!(
            registry.lookup("1215556123").unwrap(),
            None,
            "different length"
        );
        assert_eq!(
            registry.lookup("121555612345").unwrap(),
            None,
            "different length"
        );
    }

    #[test]
    fn status_changes_are_audited() {
        let (_dir, registry) = registry();
        registry
            .conn
            .execute_batch("INSERT INTO customers VALUES ('c1','One',1,NULL,0); INSERT INTO numbers VALUES ('12155551212','c1','active',0);")
            .unwrap();
        registry
            .set_status("12155551212", NumberStatus::Suspended, "cli:suspend", 100)
            .unwrap();
        assert_eq!(
            registry.lookup("12155551212").unwrap().unwrap().status,
            NumberStatus::Suspended
        );
        let log = registry.audit_log(10).unwrap();
        assert_eq!(
            log[0],
            AuditRecord {
                at: 100,
                actor: "cli:suspend".into(),
                action: "set-status:suspended".into(),
                subject: "12155551212".into(),
                detail: "was active".into()
            }
        );
        assert!(matches!(
            registry.set_status("1999", NumberStatus::Active, "x", 1),
            Err(SignerError::NotRegistered(_))
        ));
    }

    #[test]
    fn schema_is_versioned() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.sqlite");
        drop(Registry::open(&path).unwrap());
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch("PRAGMA user_version = 99").unwrap();
        drop(conn);
        assert!(matches!(
            Registry::open(&path),
            Err(SignerError::SchemaTooNew { found: 99, .. })
        ));
    }

    #[test]
    fn identity_hmac_is_keyed() {
        let a = identity_hmac(b"secret", "110101199003077777");
        assert_eq!(a.len(), 64);
        assert_ne!(a, identity_hmac(b"other", "110101199003077777"));
        assert!(!a.contains("110101199003077777"));
    }
}
