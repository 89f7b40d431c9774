//! Certificate authority tools (STI-PA, STI-CA, STI-CR).
//!
//! - [`pa`] and [`spc_token`]: the policy administrator's key and the SPC tokens
//!   (RFC 9447/9448) it signs;
//! - [`csr`]: the carrier's certificate signing request asking for a TNAuthList;
//! - [`ca`]: the CA directory, issuance (with every check on token and CSR), revocation, CRLs;
//! - [`profile`] and [`certificate`]: exactly which fields each kind of certificate carries,
//!   and how it is signed (ECDSA P-256, RFC 6979, so output is reproducible);
//! - [`crl`]: X.509 v2 CRLs;
//! - [`keyfile`]: private keys written 0600, never overwritten by accident;
//! - [`output`]: a command's files written all together or not at all;
//! - [`time`]: how a time is shown to a person (RFC 3339 UTC, then the epoch seconds).
//!
//! Time (`now`) and randomness (`rng`) are parameters: production passes the clock and the
//! operating system's CSPRNG, the test PKI generator a fixed time and a seeded generator.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod ca;
pub mod certificate;
pub mod crl;
pub mod csr;
pub mod error;
pub mod keyfile;
pub mod lint;
pub mod output;
pub mod pa;
pub mod profile;
pub mod repository;
pub mod spc_token;
pub use pki::time;

pub use error::CaError;
