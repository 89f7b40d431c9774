//! The listener's metrics, rendered under the service's prefix
//! (`shaken_signer_sip_...`, `shaken_verifier_sip_...`).
//!
//! Counters only (and two gauges: TCP connections open, transactions held), kept with
//! atomics; the transaction table's counts are copied into the listener's status by the
//! transport and rendered here with the rest.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::transaction::TransactionCounts;

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
    pub fn render(&self, prefix: &str, counts: TransactionCounts) -> String {
        let mut out = String::new();
        let counters: [(&str, &str, u64); 12] = [
            (
                "requests_total",
                "SIP requests received, all methods",
                load(&self.requests),
            ),
            (
                "invites_total",
                "new INVITE transactions answered by the service",
                load(&self.invites),
            ),
            (
                "bad_requests_total",
                "malformed messages answered 400",
                load(&self.bad_requests),
            ),
            (
                "dropped_total",
                "messages dropped: malformed without a usable Via, over the caps on UDP, responses",
                load(&self.dropped),
            ),
            (
                "forbidden_total",
                "requests answered 403 because their source is not allowed",
                load(&self.forbidden),
            ),
            (
                "udp_oversize_total",
                "UDP answers larger than udp_warn_bytes",
                load(&self.udp_oversize),
            ),
            (
                "retransmissions_answered_total",
                "INVITE retransmissions answered from memory",
                counts.resent_from_memory,
            ),
            (
                "timer_g_resends_total",
                "final responses sent again on Timer G",
                counts.timer_g_resends,
            ),
            (
                "timer_h_expired_total",
                "transactions given up on Timer H (no ACK)",
                counts.timer_h_expired,
            ),
            ("acks_total", "ACKs absorbed", counts.acks),
            (
                "refused_full_total",
                "INVITEs answered 503 because the transaction table was full",
                counts.refused_full,
            ),
            (
                "unanswered_expired_total",
                "transactions forgotten without an answer after 64*T1",
                counts.unanswered_expired,
            ),
        ];
        for (name, help, value) in counters {
            let _ = writeln!(
                out,
                "# HELP {prefix}_{name} {help}\n# TYPE {prefix}_{name} counter\n{prefix}_{name} {value}"
            );
        }
        let gauges: [(&str, &str, u64); 2] = [
            (
                "tcp_connections",
                "TCP connections open",
                load(&self.tcp_connections),
            ),
            (
                "transactions",
                "INVITE transactions held",
                counts.live as u64,
            ),
        ];
        for (name, help, value) in gauges {
            let _ = writeln!(
                out,
                "# HELP {prefix}_{name} {help}\n# TYPE {prefix}_{name} gauge\n{prefix}_{name} {value}"
            );
        }
        out
    }
}

fn load(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_counter_is_rendered_under_the_prefix_with_help_and_type() {
        let metrics = SipMetrics::default();
        metrics.requests.fetch_add(7, Ordering::Relaxed);
        metrics.udp_oversize.fetch_add(2, Ordering::Relaxed);
        metrics.tcp_connections.fetch_add(3, Ordering::Relaxed);
        let counts = TransactionCounts {
            live: 5,
            timer_g_resends: 11,
            ..TransactionCounts::default()
        };
        let text = metrics.render("shaken_signer_sip", counts);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines.contains(&"shaken_signer_sip_requests_total 7"));
        assert!(lines.contains(&"shaken_signer_sip_udp_oversize_total 2"));
        assert!(lines.contains(&"shaken_signer_sip_tcp_connections 3"));
        assert!(lines.contains(&"# TYPE shaken_signer_sip_tcp_connections gauge"));
        assert!(lines.contains(&"shaken_signer_sip_transactions 5"));
        assert!(lines.contains(&"shaken_signer_sip_timer_g_resends_total 11"));
        assert!(lines.contains(&"# TYPE shaken_signer_sip_invites_total counter"));
        assert!(lines.contains(&"shaken_signer_sip_invites_total 0"));
        // Every sample has its HELP and TYPE lines right before it.
        let samples: Vec<&str> = lines
            .iter()
            .copied()
            .filter(|l| !l.starts_with('#'))
            .collect();
        assert_eq!(samples.len(), 14);
        for sample in samples {
            let name = sample.split(' ').next().unwrap();
            assert!(text.contains(&format!("# HELP {name} ")), "{name}");
            assert!(text.contains(&format!("# TYPE {name} ")), "{name}");
        }
    }
}
