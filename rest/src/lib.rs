//! The service plumbing shared by the signer, the verifier and the certificate repository: the
//! ATIS-1000082 request errors and their JSON shape ([`error`]), reading request bodies
//! ([`body`]), the request rules, `X-RequestID`, and the serve loop with graceful shutdown
//! ([`http`]), the client allow-list with mutual TLS and rate limits ([`clients`], [`tls`]),
//! metric primitives ([`metrics`]), and the process around a service: logs, listening, signals
//! ([`service`]), and connecting to PostgreSQL without ever showing the password ([`pg`]).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod body;
pub mod clients;
pub mod error;
pub mod fetch;
pub mod http;
pub mod metrics;
pub mod pg;
pub mod service;
pub mod tls;

pub use error::{ApiError, PolicyRefusal, RequestErrorId};
