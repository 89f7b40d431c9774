//! The terminating carrier's verifier (STI-VS).
//!
//! - [`api`]: the ATIS-1000082 verification request and response;
//! - [`events`]: the JSON-lines verification feed;
//! - [`service`] and [`config`]: the REST service and its configuration;
//! - [`sip`]: the SIP redirect interface (an SBC's INVITE in, a `302` with `verstat` out);
//! - [`server`]: the service as a process: configuration to a running server, SIGHUP reloads;
//! - [`fetch`]: fetching certificates and CRLs from untrusted URLs safely;
//! - [`cache`]: the certificate cache (TTL from max-age, stale serving, negative caching, coalescing);
//! - [`crl`]: revocation from CRLs (fetched and local; parsing is `pki`'s);
//! - [`verify`]: one call, in the standard's order (chains are validated by `pki`);
//! - [`verdict`]: the verdict, and the one mapping from a failure to SIP code, verstat and
//!   flags;
//! - [`marketing`]: what the regulator's list and the opt-outs add to a verdict;
//! - [`error`]: every failure, grouped by the step that failed.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod api;
pub mod cache;
pub mod config;
pub mod crl;
pub mod error;
pub mod events;
pub mod marketing;
pub use rest::fetch;
pub mod server;
pub mod service;
pub mod sip;
pub mod verdict;
pub mod verify;
