//! Prometheus metrics in the text exposition format, kept with atomics (no registry crate).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;
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
    /// Records one observation.
    pub fn observe(&self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        for (bound, count) in BUCKETS.iter().zip(&self.counts) {
            if seconds <= *bound {
                count.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(
            u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    /// Appends the histogram's lines.
    pub fn render(&self, name: &str, help: &str, out: &mut String) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        for (bound, count) in BUCKETS.iter().zip(&self.counts) {
            let _ = writeln!(
                out,
                "{name}_bucket{{le=\"{bound}\"}} {}",
                count.load(Ordering::Relaxed)
            );
        }
        let total = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {total}");
        let _ = writeln!(
            out,
            "{name}_sum {}",
            self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "{name}_count {total}");
    }
}

/// Counters keyed by a small set of label values.
#[derive(Debug, Default)]
pub struct LabeledCounter {
    values: Mutex<BTreeMap<String, u64>>,
}

impl LabeledCounter {
    /// Adds one for `labels` (already formatted, e.g. `outcome="signed",attest="A"`).
    pub fn inc(&self, labels: &str) {
        if let Ok(mut values) = self.values.lock() {
            *values.entry(labels.to_owned()).or_insert(0) += 1;
        }
    }

    /// The count for `labels`.
    pub fn get(&self, labels: &str) -> u64 {
        self.values
            .lock()
            .ok()
            .and_then(|v| v.get(labels).copied())
            .unwrap_or(0)
    }

    /// Appends the counter's lines.
    pub fn render(&self, name: &str, help: &str, out: &mut String) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
        if let Ok(values) = self.values.lock() {
            for (labels, value) in values.iter() {
                let _ = writeln!(out, "{name}{{{labels}}} {value}");
            }
        }
    }
}

/// The signer's metrics.
#[derive(Debug, Default)]
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

impl SignerMetrics {
    /// The exposition text; `cache` is (hits, misses) of the registry cache.
    pub fn render(&self, cache: (u64, u64)) -> String {
        let mut out = String::with_capacity(2048);
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
        let _ = writeln!(out, "# HELP shaken_signer_registry_cache_hits_total Registry lookups answered by the cache.\n# TYPE shaken_signer_registry_cache_hits_total counter\nshaken_signer_registry_cache_hits_total {hits}");
        let _ = writeln!(out, "# HELP shaken_signer_registry_cache_misses_total Registry lookups that read the database.\n# TYPE shaken_signer_registry_cache_misses_total counter\nshaken_signer_registry_cache_misses_total {misses}");
        let _ = writeln!(out, "# HELP shaken_signer_registry_cache_hit_ratio Hits over lookups since start.\n# TYPE shaken_signer_registry_cache_hit_ratio gauge\nshaken_signer_registry_cache_hit_ratio {ratio}");
        let _ = writeln!(
            out,
            "# HELP shaken_signer_certificate_expiry_days Days until the signing certificate expires.\n# TYPE shaken_signer_certificate_expiry_days gauge\nshaken_signer_certificate_expiry_days {}",
            self.certificate_days_left.load(Ordering::Relaxed)
        );
        out
    }
}
