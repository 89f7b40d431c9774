//! The regulator's signed list of marketing firms and blacklisted numbers (issue 16 §1).
//!
//! A crate of its own because the signer, the verifier, the lab and the command line all
//! consume the same document, and it is the regulator's, not a carrier's: no role crate
//! should own it, and none should depend on another to read it.
//!
//! - [`document`]: the document (TOML or JSON) validated into typed values, and its canonical
//!   JSON, the signed payload;
//! - [`jws`]: the compact JWS (ES256) naming the regulator's certificate by `x5t#S256`: sign,
//!   verify, split;
//! - [`index`]: lookups by number at line rate (hash map for numbers, binary search for
//!   ranges);
//! - [`store`]: the consumer's last good list, refusing rollbacks, changed content under the
//!   same version, and expired or future lists; its status and metrics;
//! - [`source`]: reading the list from a file or an http(s) URL, and reloading it;
//! - [`consumer`]: a signer's or verifier's whole setup from its `[lists]` section;
//! - [`error`]: the errors, grouped by cause.
//!
//! A consumer holds a [`ListStore`] and per call does
//! `store.current().map(|list| list.lookup(orig_tn))`. Nothing here reads the clock: the
//! reference time is always a parameter.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod consumer;
pub mod document;
pub mod error;
pub mod index;
pub mod jws;
pub mod source;
pub mod store;

pub use consumer::ConsumerError;
pub use document::{Firm, FirmStatus, Format, ListDocument, NumberEntry};
pub use error::{DocumentError, JwsError, ListError, SourceError};
pub use index::{ListIndex, Listing};
pub use jws::{RegulatorCert, VerifiedList};
pub use source::{load_file_now, spawn_reloader, ListSource, ListsConfig};
pub use store::{ActiveList, ListStatus, ListStore, Offer};
