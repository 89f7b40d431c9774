//! The ATIS-1000082 REST plumbing shared by the signer and the verifier: the standard's
//! request errors and their JSON shape ([`error`]), reading request bodies ([`body`]), the request rules, `X-RequestID`, and the
//! serve loop with graceful shutdown ([`http`]), the client allow-list with mutual TLS and rate
//! limits ([`clients`], [`tls`]), and metric primitives ([`metrics`]).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod body;
pub mod clients;
pub mod error;
pub mod http;
pub mod metrics;
pub mod tls;

pub use error::{ApiError, PolicyRefusal};
