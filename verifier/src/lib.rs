//! The terminating carrier's verifier (STI-VS).
//!
//! - [`fetch`]: fetching certificates and CRLs from untrusted URLs safely;
//! - [`cache`]: the certificate cache (TTL from max-age, stale serving, negative caching, coalescing);
//! - [`chain`]: validating a chain against the STI-CA trust anchors;
//! - [`crl`]: revocation from CRLs;
//! - [`verify`]: one call, in the standard's order, to a verdict with flags;
//! - [`error`]: every failure mapped to one SIP code.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod cache;
pub mod chain;
pub mod crl;
pub mod error;
pub mod fetch;
pub mod verify;
