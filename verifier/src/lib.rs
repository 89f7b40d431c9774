//! The terminating carrier's verifier (STI-VS).
//!
//! - [`api`]: the ATIS-1000082 verification request and response;
//! - [`events`]: the JSON-lines verification feed;
//! - [`service`] and [`config`]: the REST service and its configuration;
//! - [`server`]: the service as a process: configuration to a running server, SIGHUP reloads;
//! - [`fetch`]: fetching certificates and CRLs from untrusted URLs safely;
//! - [`cache`]: the certificate cache (TTL from max-age, stale serving, negative caching, coalescing);
//! - [`chain`]: validating a chain against the STI-CA trust anchors;
//! - [`crl`]: revocation from CRLs;
//! - [`verify`]: one call, in the standard's order, to a verdict with flags;
//! - [`error`]: every failure mapped to one SIP code.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod api;
pub mod cache;
pub mod chain;
pub mod config;
pub mod crl;
pub mod error;
pub mod events;
pub mod fetch;
pub mod server;
pub mod service;
pub mod verify;
