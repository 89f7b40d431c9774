//! The committed test PKI and its generator.
//!
//! This crate will hold a deterministic generator (seeded randomness, RFC 6979 ECDSA, a fixed
//! clock) that writes the test PKI the other crates' tests use: a policy administrator, a root
//! and an intermediate CA, end-entity certificates for several SPCs, and one malformed
//! certificate per linter rule. It has no content yet.
#![forbid(unsafe_code)]
