//! The project's one home for certificate and CRL knowledge, shared by the verifier (which
//! trusts certificates) and the CA tools (which issue and lint them), so that both apply the
//! same rules with the same strictness:
//!
//! - [`oid`]: every object identifier, once;
//! - [`profile`]: the ATIS-1000080 STI certificate profile as ranked findings (the linter
//!   reports them; the verifier refuses an end entity with any error);
//! - [`crl`]: the one strict CRL parser;
//! - [`anchors`]: the trusted STI-CA roots;
//! - [`path`]: path building from an end entity to an anchor, with an explicit budget;
//! - [`time`]: how a time is shown to a person (RFC 3339 UTC, then the epoch seconds);
//! - [`error`]: the crate's error enum.
//!
//! PEM chains are split by [`passport::cert::chain_from_pem`], the project's one splitter.
//! Nothing here reads the clock: the reference time is a parameter.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod anchors;
pub mod crl;
pub mod error;
pub mod oid;
pub mod path;
pub mod profile;
pub mod time;

pub use anchors::TrustAnchors;
pub use crl::Crl;
pub use error::Error;
pub use path::{Budget, Link, ValidatedChain};
pub use profile::{Finding, Profile, Rule, Severity};
