//! The listener part of a service's `[sip]` section, shared by the signer and the verifier:
//! where to listen and the caps. Each service flattens it into its own `[sip]` struct, adds
//! its answer options, and calls [`refuse_unknown`] with the keys neither took (serde's
//! `deny_unknown_fields` does not work with `flatten`).
//!
//! CONTRACT (skeleton): filled by the "transport" part.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use serde::Deserialize;
use thiserror::Error;

use crate::message::Limits;
use crate::transaction::Timers;

/// One listening socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListenOn {
    /// `udp:ADDR`.
    Udp(SocketAddr),
    /// `tcp:ADDR`.
    Tcp(SocketAddr),
    /// `ADDR`: UDP and TCP on the same port (port 0: one free port for both).
    Both(SocketAddr),
}

/// What is wrong with a `[sip]` section.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum ConfigError {
    /// A `listen` item is not `udp:ADDR`, `tcp:ADDR` or `ADDR`.
    #[error("sip.listen: {0:?} is not \"udp:ADDR\", \"tcp:ADDR\" or \"ADDR\"")]
    Listen(String),
    /// Keys nobody knows.
    #[error("sip: unknown key(s) {0}")]
    Unknown(String),
    /// A value out of range: the key and why.
    #[error("sip.{0}: {1}")]
    Range(&'static str, String),
}

/// The listener keys of `[sip]`.
#[derive(Clone, Debug, Deserialize)]
pub struct ListenerConfig {
    /// Where to listen: `"udp:ADDR"`, `"tcp:ADDR"`, or `"ADDR"` for both.
    pub listen: Vec<String>,
    /// The largest message accepted (default 16 KiB; UDP datagrams above it are dropped, TCP
    /// connections sending one are answered 400 if possible and closed).
    #[serde(default = "default_max_message_bytes")]
    pub max_message_bytes: usize,
    /// The most header fields in a message (default 64).
    #[serde(default = "default_max_headers")]
    pub max_headers: usize,
    /// Seconds a TCP connection may stay idle before it is closed (default 60).
    #[serde(default = "default_tcp_idle_seconds")]
    pub tcp_idle_seconds: u64,
    /// The most TCP connections at once (default 1024).
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// The most transactions remembered at once (default 100,000).
    #[serde(default = "default_max_transactions")]
    pub max_transactions: usize,
    /// T1 in milliseconds (default 500).
    #[serde(default = "default_t1_ms")]
    pub t1_ms: u64,
    /// UDP answers larger than this are counted in a warning metric (default 1300, RFC 3261
    /// §18.1.1).
    #[serde(default = "default_udp_warn_bytes")]
    pub udp_warn_bytes: usize,
}

fn default_max_message_bytes() -> usize {
    16 * 1024
}
fn default_max_headers() -> usize {
    64
}
fn default_tcp_idle_seconds() -> u64 {
    60
}
fn default_max_connections() -> usize {
    1024
}
fn default_max_transactions() -> usize {
    100_000
}
fn default_t1_ms() -> u64 {
    500
}
fn default_udp_warn_bytes() -> usize {
    1300
}

impl ListenerConfig {
    /// The listen items, parsed.
    pub fn listen_on(&self) -> Result<Vec<ListenOn>, ConfigError> {
        Err(ConfigError::Listen(String::new()))
    }

    /// The message caps.
    pub fn limits(&self) -> Limits {
        Limits {
            max_message_bytes: self.max_message_bytes,
            max_headers: self.max_headers,
        }
    }

    /// The timers (T2 and T4 at their RFC values, T1 as configured).
    pub fn timers(&self) -> Timers {
        Timers::default()
    }

    /// Checks every value (listen items parse, caps in range).
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.listen_on().map(|_| ())
    }
}

/// Refuses the keys a flattened `[sip]` section left over.
pub fn refuse_unknown(
    unknown: &BTreeMap<String, serde::de::IgnoredAny>,
) -> Result<(), ConfigError> {
    if unknown.is_empty() {
        Ok(())
    } else {
        Err(ConfigError::Unknown(
            unknown.keys().cloned().collect::<Vec<_>>().join(", "),
        ))
    }
}
