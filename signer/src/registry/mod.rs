//! The carrier's real-name registry: customers (identity verified or not, the identity document
//! kept only as an HMAC), the numbers and number ranges assigned to them, and their status.
//!
//! [`store`] is the SQLite database (schema versioned and migrated, every change audited),
//! [`import`] the bulk CSV loader, [`cache`] the hot in-memory cache in front of lookups.

pub mod cache;
pub mod import;
pub mod store;

pub use cache::CachedRegistry;
pub use store::{Customer, NumberRecord, NumberStatus, Registry};
