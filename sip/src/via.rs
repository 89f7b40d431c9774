//! The `Via` header (RFC 3261 §20.42, §18.2.2): the top one names the transaction (its
//! `branch` and sent-by) and says where a UDP response goes.
//!
//! CONTRACT (skeleton): filled by the "message" part.

use thiserror::Error;

/// The transport a Via names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ViaTransport {
    /// UDP.
    Udp,
    /// TCP.
    Tcp,
    /// TLS.
    Tls,
    /// Anything else (SCTP, WS...).
    Other,
}

/// The top Via.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Via {
    /// Its transport.
    pub transport: ViaTransport,
    /// sent-by host (a name, an IPv4 address, or an IPv6 reference without brackets).
    pub host: String,
    /// sent-by port, if given.
    pub port: Option<u16>,
    /// The `branch` parameter, if any.
    pub branch: Option<String>,
    /// Whether `rport` is present (RFC 3581).
    pub rport: bool,
}

/// What is wrong with a Via value.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum ViaError {
    /// Not `SIP/2.0/TRANSPORT sent-by *(;param)`.
    #[error("bad Via")]
    Syntax,
}

impl Via {
    /// Whether the branch carries the RFC 3261 magic cookie `z9hG4bK` (§8.1.1.7): only then
    /// does it name a transaction by itself.
    pub fn is_rfc3261(&self) -> bool {
        self.branch
            .as_deref()
            .is_some_and(|b| b.starts_with("z9hG4bK"))
    }
}

/// Parses the first value of a Via field (the field may hold several, comma-separated).
pub fn parse_top(value: &str) -> Result<Via, ViaError> {
    let _ = value;
    Err(ViaError::Syntax)
}
