//! Certificate authority tools (STI-PA, STI-CA, STI-CR).
//!
//! This crate will hold the policy administrator's SPC tokens (RFC 9447/9448), the CA that
//! issues STI certificates carrying the TNAuthList extension (RFC 8226, ATIS-1000080 §6.4.1),
//! revocation and CRLs, the certificate linter, and the HTTPS repository that serves chains.
//!
//! It has no content yet; the TNAuthList encoding it will build on is `passport::tnauthlist`.
#![forbid(unsafe_code)]
