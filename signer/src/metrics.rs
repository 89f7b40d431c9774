//! Prometheus metrics in the text exposition format, kept with atomics (no registry crate, no
//! lock or allocation per request).

use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

/// Latency histogram bucket bounds, in seconds.
pub const BUCKETS: [f64; 10] = [
    0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5,
];

/// A latency histogram.
#[derive(Debug, Default)]
pub struct Histogram {
    counts: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    /// Records one observation (one bucket is counted; buckets are cumulated when rendered).
    pub fn observe(&self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        let bucket = BUCKETS
            .iter()
            .zip(&self.counts)
            .find(|(bound, _)| seconds <= **bound);
        if let Some((_, count)) = bucket {
            count.fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    /// Appends the histogram's lines.
    pub fn render(&self, name: &str, help: &str, out: &mut String) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0;
        for (bound, count) in BUCKETS.iter().zip(&self.counts) {
            cumulative += count.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        let total = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {total}");
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum {sum}");
        let _ = writeln!(out, "{name}_count {total}");
    }
}

/// Counters for a fixed set of label sets, one atomic each.
#[derive(Debug)]
pub struct LabeledCounter {
    labels: &'static [&'static str],
    values: Vec<AtomicU64>,
}

impl LabeledCounter {
    /// Counters for these label sets (formatted, e.g. `outcome="signed",attest="A"`).
    pub fn new(labels: &'static [&'static str]) -> Self {
        Self {
            labels,
            values: labels.iter().map(|_| AtomicU64::new(0)).collect(),
        }
    }

    fn slot(&self, labels: &str) -> Option<&AtomicU64> {
        self.labels
            .iter()
            .position(|l| *l == labels)
            .and_then(|i| self.values.get(i))
    }

    /// Adds one for `labels`; a label set not declared is ignored.
    pub fn inc(&self, labels: &str) {
        if let Some(value) = self.slot(labels) {
            value.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Adds one for the label set `message_id="<id>"`.
    pub fn inc_for_message(&self, id: &str) {
        let found = self.labels.iter().position(|l| {
            l.strip_prefix("message_id=\"")
                .and_then(|r| r.strip_suffix('"'))
                == Some(id)
        });
        if let Some(value) = found.and_then(|i| self.values.get(i)) {
            value.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The count for `labels`.
    pub fn get(&self, labels: &str) -> u64 {
        self.slot(labels).map_or(0, |v| v.load(Ordering::Relaxed))
    }

    /// Appends the counter's lines.
    pub fn render(&self, name: &str, help: &str, out: &mut String) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
        for (labels, value) in self.labels.iter().zip(&self.values) {
            let _ = writeln!(out, "{name}{{{labels}}} {}", value.load(Ordering::Relaxed));
        }
    }
}

/// The label sets of the request counter.
pub const REQUEST_LABELS: &[&str] = &[
    r#"outcome="signed",attest="A""#,
    r#"outcome="signed",attest="B""#,
    r#"outcome="signed",attest="C""#,
    r#"outcome="refused",attest="none""#,
    r#"outcome="error",attest="none""#,
];

/// The label sets of the error counter: every message id the signer sends.
pub const ERROR_LABELS: &[&str] = &[
    r#"message_id="SVC4000""#,
    r#"message_id="SVC4001""#,
    r#"message_id="SVC4002""#,
    r#"message_id="SVC4003""#,
    r#"message_id="SVC4004""#,
    r#"message_id="SVC4005""#,
    r#"message_id="SVC4006""#,
    r#"message_id="SVC4007""#,
    r#"message_id="POL4050""#,
    r#"message_id="POL5000""#,
    r#"message_id="POL4030""#,
    r#"message_id="POL4290""#,
    r#"message_id="POL4101""#,
    r#"message_id="POL4102""#,
    r#"message_id="POL4103""#,
    r#"message_id="POL4104""#,
    r#"message_id="POL5031""#,
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
}

impl Default for SignerMetrics {
    fn default() -> Self {
        Self {
            requests: LabeledCounter::new(REQUEST_LABELS),
            errors: LabeledCounter::new(ERROR_LABELS),
            latency: Histogram::default(),
            certificate_days_left: AtomicI64::new(0),
        }
    }
}

impl SignerMetrics {
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
    fn histogram_buckets_are_cumulative_and_counters_render() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(100));
        h.observe(Duration::from_micros(700));
        h.observe(Duration::from_secs(2));
        let mut out = String::new();
        h.render("x", "help", &mut out);
        assert!(out.contains("x_bucket{le=\"0.0002\"} 1\n"), "{out}");
        assert!(out.contains("x_bucket{le=\"0.001\"} 2\n"), "{out}");
        assert!(out.contains("x_bucket{le=\"0.5\"} 2\n"), "{out}");
        assert!(
            out.contains("x_bucket{le=\"+Inf\"} 3\nx_sum 2.0008\nx_count 3\n"),
            "{out}"
        );
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
    }
}
