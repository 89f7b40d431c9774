//! A registry wherever it lives ([`RegistryLocation`]): the SQLite [`Registry`] (the default)
//! or the [`PgRegistry`], with the operations `shaken registry` needs giving the same answers
//! on both.

use std::io::Read;

use super::import::{self, ImportOptions, ImportSummary};
use super::location::RegistryLocation;
use super::postgres::PgRegistry;
use super::store::{AuditRecord, NumberRecord, NumberStatus, Registry};
use crate::error::SignerError;

/// An open registry, SQLite or PostgreSQL.
#[derive(Debug)]
pub enum RegistryDb {
    /// An SQLite file.
    Sqlite(Registry),
    /// A PostgreSQL database.
    Postgres(Box<PgRegistry>),
}

impl RegistryDb {
    /// Opens (creating and migrating if needed) the registry at `location`. A PostgreSQL one
    /// must not be opened from an async task.
    pub fn open(location: &RegistryLocation) -> Result<Self, SignerError> {
        Ok(match location {
            RegistryLocation::File(path) => Self::Sqlite(Registry::open(path)?),
            RegistryLocation::Postgres(url) => Self::Postgres(Box::new(PgRegistry::open(url)?)),
        })
    }

    /// Looks a canonical number up: an exact entry first, then the covering range.
    pub fn lookup(&mut self, tn: &str) -> Result<Option<NumberRecord>, SignerError> {
        match self {
            Self::Sqlite(r) => r.lookup(tn),
            Self::Postgres(r) => r.lookup(tn),
        }
    }

    /// Sets a registered number's status (or its range's), audited; the record before.
    pub fn set_status(
        &mut self,
        tn: &str,
        status: NumberStatus,
        actor: &str,
        now: u64,
    ) -> Result<NumberRecord, SignerError> {
        match self {
            Self::Sqlite(r) => r.set_status(tn, status, actor, now),
            Self::Postgres(r) => r.set_status(tn, status, actor, now),
        }
    }

    /// Imports a CSV file ([`import::import`]): all of it or nothing.
    pub fn import(
        &mut self,
        input: impl Read,
        options: ImportOptions<'_>,
    ) -> Result<ImportSummary, SignerError> {
        match self {
            Self::Sqlite(r) => import::import(r, input, options),
            Self::Postgres(r) => {
                let (mode, actor, now) = (options.mode, options.actor, options.now);
                let parsed = import::parse(input, options)?;
                r.apply_import(&parsed, mode, actor, now)
            }
        }
    }

    /// The audit records, newest first, at most `limit`.
    pub fn audit_log(&mut self, limit: usize) -> Result<Vec<AuditRecord>, SignerError> {
        match self {
            Self::Sqlite(r) => r.audit_log(limit),
            Self::Postgres(r) => r.audit_log(limit),
        }
    }

    /// How many numbers and ranges are registered.
    pub fn counts(&mut self) -> Result<(u64, u64), SignerError> {
        match self {
            Self::Sqlite(r) => r.counts(),
            Self::Postgres(r) => r.counts(),
        }
    }
}
