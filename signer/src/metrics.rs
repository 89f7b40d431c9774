//! The signer's metrics (Prometheus text), built on the shared primitives.

use std::fmt::Write;
use std::sync::atomic::{AtomicI64, Ordering};

pub use rest::metrics::{CounterKey, EnumCounter, Histogram, LabeledCounter};

use crate::service::Failure;

/// The label sets of the request counter.
pub const REQUEST_LABELS: &[&str] = &[
    r#"outcome="signed",attest="A""#,
    r#"outcome="signed",attest="B""#,
    r#"outcome="signed",attest="C""#,
    r#"outcome="refused",attest="none""#,
    r#"outcome="error",attest="none""#,
];

/// The signer's own policy refusal ids, counted beside the request errors.
pub const POLICY_LABELS: &[&str] = &[
    r#"message_id="POL4101""#,
    r#"message_id="POL4102""#,
    r#"message_id="POL4103""#,
    r#"message_id="POL4104""#,
    r#"message_id="POL4111""#,
    r#"message_id="POL4112""#,
    r#"message_id="POL4113""#,
    r#"message_id="POL4114""#,
    r#"message_id="POL4115""#,
    r#"message_id="POL4116""#,
    r#"message_id="POL4117""#,
    r#"message_id="POL5031""#,
    // The trace endpoint's unknown origid (crate::traceback).
    r#"message_id="POL4040""#,
];

/// The label sets of the signature counter: the nonce precomputed while idle
/// ([`crate::nonces`]), or made in the request (one-step signing).
pub const SIGNATURE_LABELS: &[&str] = &[NONCE_PRECOMPUTED, NONCE_IN_REQUEST];
/// A signature finished from a precomputed nonce.
pub const NONCE_PRECOMPUTED: &str = r#"nonce="precomputed""#;
/// A signature made in one step, in the request.
pub const NONCE_IN_REQUEST: &str = r#"nonce="in_request""#;

/// The label sets of the SIP interface's answers ([`crate::sip`]): signed by level, refused by
/// policy (`403`/`608`, or `503` for `POL5031`), unsigned (`302` without Identity: the signer
/// failed), over the client's rate limit (`503`), unreadable (`400`).
pub const SIP_CALL_LABELS: &[&str] = &[
    r#"outcome="signed",attest="A""#,
    r#"outcome="signed",attest="B""#,
    r#"outcome="signed",attest="C""#,
    r#"outcome="refused""#,
    r#"outcome="unsigned""#,
    r#"outcome="rate_limited""#,
    r#"outcome="bad_request""#,
];

/// The signer's metrics.
#[derive(Debug)]
pub struct SignerMetrics {
    /// Requests by outcome (`signed`, `refused`, `error`) and attestation.
    pub requests: LabeledCounter,
    /// Error and refusal responses by message id.
    pub errors: LabeledCounter,
    /// Request latency.
    pub latency: Histogram,
    /// Days until the signing certificate expires.
    pub certificate_days_left: AtomicI64,
    /// Signatures by how their nonce was made ([`SIGNATURE_LABELS`]).
    pub signatures: LabeledCounter,
    /// SIP INVITEs answered, by outcome ([`SIP_CALL_LABELS`]).
    pub sip_calls: LabeledCounter,
    /// SIP INVITEs answered `302` without Identity, by the signer's failure.
    pub sip_unsigned: EnumCounter<Failure>,
}

impl Default for SignerMetrics {
    fn default() -> Self {
        Self {
            requests: LabeledCounter::new(REQUEST_LABELS),
            errors: LabeledCounter::request_errors_and(POLICY_LABELS),
            latency: Histogram::default(),
            certificate_days_left: AtomicI64::new(0),
            signatures: LabeledCounter::new(SIGNATURE_LABELS),
            sip_calls: LabeledCounter::new(SIP_CALL_LABELS),
            sip_unsigned: EnumCounter::default(),
        }
    }
}

impl SignerMetrics {
    /// Counts a signature, finished from a precomputed nonce or computed in one step.
    pub fn count_signature(&self, precomputed: bool) {
        self.signatures.inc(if precomputed {
            NONCE_PRECOMPUTED
        } else {
            NONCE_IN_REQUEST
        });
    }

    /// The exposition text of the SIP interface's outcomes (shown when a SIP listener runs).
    pub fn render_sip(&self) -> String {
        let mut out = String::with_capacity(1024);
        self.sip_calls.render(
            "shaken_signer_sip_calls_total",
            "SIP INVITEs answered, by outcome and attestation.",
            &mut out,
        );
        self.sip_unsigned.render(
            "shaken_signer_sip_unsigned_total",
            "SIP INVITEs answered 302 without Identity because the signer failed, by reason.",
            &mut out,
        );
        out
    }

    /// The exposition text; `cache` is (hits, misses) of the registry cache.
    pub fn render(&self, cache: (u64, u64)) -> String {
        let mut out = String::with_capacity(4096);
        self.requests.render(
            "shaken_signer_requests_total",
            "Signing requests by outcome and attestation.",
            &mut out,
        );
        self.errors.render(
            "shaken_signer_errors_total",
            "Error and refusal responses by ATIS-1000082 message id.",
            &mut out,
        );
        self.latency.render(
            "shaken_signer_request_duration_seconds",
            "Time from request to response.",
            &mut out,
        );
        let (hits, misses) = cache;
        let ratio = if hits + misses == 0 {
            0.0
        } else {
            hits as f64 / (hits + misses) as f64
        };
        let gauge = |out: &mut String, name: &str, kind: &str, help: &str, value: String| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        };
        gauge(
            &mut out,
            "shaken_signer_registry_cache_hits_total",
            "counter",
            "Registry lookups answered by the cache.",
            hits.to_string(),
        );
        gauge(
            &mut out,
            "shaken_signer_registry_cache_misses_total",
            "counter",
            "Registry lookups that read the database.",
            misses.to_string(),
        );
        gauge(
            &mut out,
            "shaken_signer_registry_cache_hit_ratio",
            "gauge",
            "Hits over lookups since start.",
            ratio.to_string(),
        );
        self.signatures.render(
            "shaken_signer_signatures_total",
            "Signatures by how their nonce was made: precomputed while idle, or in the request.",
            &mut out,
        );
        let days = self.certificate_days_left.load(Ordering::Relaxed);
        gauge(
            &mut out,
            "shaken_signer_certificate_expiry_days",
            "gauge",
            "Days until the signing certificate expires.",
            days.to_string(),
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_signer_metrics() {
        let m = SignerMetrics::default();
        m.errors.inc_for_message("POL4101");
        m.requests.inc(REQUEST_LABELS[1]);
        let text = m.render((3, 1));
        assert!(
            text.contains("shaken_signer_errors_total{message_id=\"POL4101\"} 1"),
            "{text}"
        );
        assert!(text.contains("shaken_signer_requests_total{outcome=\"signed\",attest=\"B\"} 1"));
        assert!(text.contains("shaken_signer_registry_cache_hit_ratio 0.75"));
        m.count_signature(true);
        m.count_signature(true);
        m.count_signature(false);
        assert!(
            text.contains("shaken_signer_signatures_total{nonce=\"precomputed\"} 0"),
            "{text}"
        );
        let text = m.render((3, 1));
        assert!(
            text.contains("shaken_signer_signatures_total{nonce=\"precomputed\"} 2"),
            "{text}"
        );
        assert!(text.contains("shaken_signer_signatures_total{nonce=\"in_request\"} 1"));
    }

    #[test]
    fn every_policy_refusal_is_counted() {
        use crate::marketing::MarketingRefusal;
        use crate::policy::Refusal;
        let marketing = [
            MarketingRefusal::FirmBlacklisted,
            MarketingRefusal::FirmSuspended,
            MarketingRefusal::NumberBlacklisted,
            MarketingRefusal::OptedOut,
            MarketingRefusal::OverQuota,
            MarketingRefusal::ReasonNotAllowed,
            MarketingRefusal::RcdNotAllowed,
        ];
        let refusals = [
            Refusal::Unregistered,
            Refusal::Suspended,
            Refusal::NotVerified,
            Refusal::DomesticViaGateway,
            Refusal::RegistryUnavailable,
        ]
        .into_iter()
        .chain(marketing.into_iter().map(Refusal::Marketing));
        let mut ids = Vec::new();
        for refusal in refusals {
            let id = crate::api::refusal(refusal).message_id().to_owned();
            let m = SignerMetrics::default();
            m.errors.inc_for_message(&id);
            let line = format!("shaken_signer_errors_total{{message_id=\"{id}\"}} 1");
            assert!(m.render((0, 0)).contains(&line), "{id} is not counted");
            ids.push(id);
        }
        // The trace endpoint's own refusal.
        let id = rest::ApiError::Policy(crate::traceback::UNKNOWN_ORIGID)
            .message_id()
            .to_owned();
        let m = SignerMetrics::default();
        m.errors.inc_for_message(&id);
        assert!(
            m.render((0, 0))
                .contains(&format!("message_id=\"{id}\"}} 1")),
            "{id}"
        );
        ids.push(id);
        ids.sort();
        ids.dedup();
        assert_eq!(
            ids.len(),
            POLICY_LABELS.len(),
            "one label per refusal: {ids:?}"
        );
    }
}
