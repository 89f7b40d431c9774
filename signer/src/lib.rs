//! The originating carrier's signer (STI-AS).
//!
//! - [`registry`]: the real-name registry (SQLite, CSV import, hot cache);
//! - [`service`]: the HTTP(S) service: ATIS-1000082 rules, client authorization, rate limits;
//! - [`sip`]: the SIP redirect interface: an INVITE answered `302` with Identity, or refused;
//! - [`server`]: the service as a process: key check, serve loop, SIGHUP reload, pruning;
//! - [`api`]: request parsing and the standard's error bodies;
//! - [`config`], [`credentials`], [`metrics`]: configuration, key and certificate, Prometheus;
//! - [`policy`]: the attestation policy;
//! - [`marketing`]: the regulator's marketing rules (white list, blacklist, opt-outs, reasons);
//! - [`quota`]: per-firm hourly call quotas over a sliding hour, shared by all threads;
//! - [`nonces`]: ECDSA nonces precomputed while the CPUs are idle;
//! - [`trace`]: the durable trace log with group commit;
//! - [`error`]: operational errors.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod api;
pub mod config;
pub mod credentials;
pub mod error;
pub mod marketing;
pub mod metrics;
pub mod nonces;
pub mod policy;
pub mod quota;
pub mod registry;
pub mod server;
pub mod service;
pub mod sip;
pub mod trace;
pub mod traceback;

pub use error::SignerError;
