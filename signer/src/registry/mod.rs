//! The carrier's real-name registry: customers (identity verified or not, the identity document
//! kept only as an HMAC), the numbers and number ranges assigned to them, and their status.
//!
//! [`store`] is the SQLite database (schema versioned and migrated, every change audited),
//! [`import`] the bulk CSV loader, [`cache`] the hot in-memory cache in front of lookups.
//! [`postgres`] is the same registry on PostgreSQL, [`location`] says which one a `--db` or
//! `registry_db` names, [`db`] opens either, and [`sync`] keeps a signer's local copy of a
//! PostgreSQL registry up to date.

pub mod cache;
pub mod db;
pub mod import;
pub mod location;
pub mod postgres;
pub mod store;
pub mod sync;

pub use self::postgres::PgRegistry;
pub use cache::CachedRegistry;
pub use db::RegistryDb;
pub use location::{PgUrl, RegistryLocation};
pub use store::{Customer, NumberRecord, NumberStatus, Registry};
pub use sync::{StalePolicy, SyncOptions, SyncedRegistry};
