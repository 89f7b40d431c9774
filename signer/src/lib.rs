//! The originating carrier's signer (STI-AS).
//!
//! - [`registry`]: the real-name registry (SQLite, CSV import, hot cache);
//! - [`policy`]: the attestation policy;
//! - [`trace`]: the durable trace log with group commit;
//! - [`error`]: operational errors.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod api;
pub mod error;
pub mod policy;
pub mod registry;
pub mod trace;

pub use error::SignerError;
