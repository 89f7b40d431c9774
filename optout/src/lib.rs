//! One-click unsubscribe (issue 16 §3): a called subscriber opts out of a marketing firm's
//! calls with one press on a link.
//!
//! - [`token`]: the unforgeable link token (HMAC-SHA-256 over the number, the firm, its vetted
//!   name and an expiry) and [`token::LinkIssuer`], which terminating verifiers use to mint links;
//! - [`store`]: the store of current opt-outs and the append-only audit trail that is also the
//!   delta feed, in SQLite (the default) or PostgreSQL (several instances sharing it);
//! - [`form`] and [`page`]: the form body the button posts and the HTML pages (no JavaScript,
//!   no external resources, a phone-sized layout);
//! - [`config`], [`server`]: `shaken optout serve`, the service: the link pages, the
//!   authenticated delta feed `GET /v1/optouts`, `/healthz`, `/metrics`, body caps and
//!   per-client rate limits;
//! - [`consumer`]: a signer's or verifier's `[optout]` section: the mirror started, the link
//!   issuer read;
//! - [`mirror`]: the local copy of the opt-outs that signers and verifiers keep, answered
//!   without waiting on the network, and the poller that keeps it current.
//!
//! A crate of its own because it is a service of its own with its own state store, used by the
//! verifier (links) and by both the signer and the verifier (the mirror); neither role crate
//! should depend on the other. Nothing here reads the clock: `now` is a parameter, and the
//! service takes a clock function at its edge.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod config;
pub mod consumer;
pub mod error;
pub mod form;
pub mod metrics;
pub mod mirror;
pub mod page;
pub mod ratelimit;
pub mod server;
pub mod store;
pub mod token;

/// The time source a service or poller reads at its edge: seconds since the epoch.
pub type Clock = std::sync::Arc<dyn Fn() -> u64 + Send + Sync>;

/// The clock of a real process: [`rest::service::unix_now`] (0 if the system clock is before
/// 1970).
pub fn system_clock() -> Clock {
    std::sync::Arc::new(|| rest::service::unix_now().unwrap_or(0))
}

pub use config::OptOutConfig;
pub use consumer::OptOutSection;
pub use error::{ConfigError, FormError, KeyError, OptOutError, StoreError, TokenError};
pub use mirror::{spawn_poller, MirrorStatus, OptOutMirror};
pub use server::{OptOutService, OptOutState};
pub use store::{Change, Outcome, Store, StoreLocation, Via};
pub use token::{LinkIssuer, LinkKey, Token};
