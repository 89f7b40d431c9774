//! The listener's metrics, rendered under the service's prefix
//! (`shaken_signer_sip_...`, `shaken_verifier_sip_...`).
//!
//! CONTRACT (skeleton): filled by the "transport" part.

use std::sync::atomic::AtomicU64;

/// Counters of one SIP listener.
#[derive(Debug, Default)]
pub struct SipMetrics {
    /// Requests received, all methods.
    pub requests: AtomicU64,
    /// INVITEs answered by the service (new transactions).
    pub invites: AtomicU64,
    /// Messages answered `400` (malformed, answerable).
    pub bad_requests: AtomicU64,
    /// Messages dropped (malformed with no usable Via, over the caps on UDP, responses).
    pub dropped: AtomicU64,
    /// Requests refused `403` because their source is not allowed.
    pub forbidden: AtomicU64,
    /// UDP answers larger than `udp_warn_bytes`.
    pub udp_oversize: AtomicU64,
    /// TCP connections open now.
    pub tcp_connections: AtomicU64,
}

impl SipMetrics {
    /// The Prometheus text of these counters (and of the transaction table's `counts`) under
    /// `prefix` (e.g. `shaken_signer_sip`).
    pub fn render(&self, prefix: &str, counts: crate::transaction::TransactionCounts) -> String {
        let _ = (prefix, counts);
        String::new()
    }
}
