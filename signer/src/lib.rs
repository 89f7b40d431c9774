//! The originating carrier's signer (STI-AS).
//!
//! - [`registry`]: the real-name registry (SQLite, CSV import, hot cache);
//! - [`error`]: operational errors.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod error;
pub mod registry;

pub use error::SignerError;
