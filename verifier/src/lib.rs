//! The terminating carrier's verifier (STI-VS).
//!
//! - [`fetch`]: fetching certificates and CRLs from untrusted URLs safely;
//! - [`error`]: every failure mapped to one SIP code.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod error;
pub mod fetch;
