//! The terminating carrier's verifier (STI-VS).
//!
//! This crate will hold the ATIS-1000082 verification service: it checks a PASSporT against a
//! cache of certificates fetched from the signer's repository (HTTPS only, bounded in size and
//! time), validates the chain against the STI-CA trust anchors and CRLs, and answers with a
//! verstat, a SIP reason code (403/436/437/438) and flags for spoofed, unsigned, stale or
//! unregistered caller IDs.
//!
//! It has no content yet; the token checks it will build on are in `passport::verify`.
#![forbid(unsafe_code)]
