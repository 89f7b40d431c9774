//! Prometheus metric primitives in the text exposition format, kept with atomics (no registry
//! crate, no lock or allocation per request).

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
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

/// The label sets of the request errors every ATIS-1000082 service sends.
pub const REQUEST_ERROR_LABELS: &[&str] = &[
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
];

/// Counters for a fixed set of label sets, one atomic each.
#[derive(Debug)]
pub struct LabeledCounter {
    labels: Vec<&'static str>,
    values: Vec<AtomicU64>,
}

impl LabeledCounter {
    /// Counters for these label sets (formatted, e.g. `outcome="signed",attest="A"`).
    pub fn new(labels: &[&'static str]) -> Self {
        Self {
            labels: labels.to_vec(),
            values: labels.iter().map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// Counters for the request errors every service sends, then `more` (its own ids).
    pub fn request_errors_and(more: &[&'static str]) -> Self {
        Self::new(&[REQUEST_ERROR_LABELS, more].concat())
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

/// The key of an [`EnumCounter`]: a closed set of values, each with its position and its
/// Prometheus label set. Implemented with a `match`, so a new value cannot be forgotten.
pub trait CounterKey: Copy + 'static {
    /// Every value, in index order.
    const ALL: &'static [Self];
    /// Its position in [`CounterKey::ALL`].
    fn index(self) -> usize;
    /// Its label set, e.g. `flag="spoofed"`.
    fn labels(self) -> &'static str;
}

/// Counters indexed by an enum: one atomic per value, no string lookup, nothing that can
/// silently miss.
#[derive(Debug)]
pub struct EnumCounter<K: CounterKey> {
    values: Box<[AtomicU64]>,
    key: std::marker::PhantomData<K>,
}

impl<K: CounterKey> Default for EnumCounter<K> {
    fn default() -> Self {
        Self {
            values: K::ALL.iter().map(|_| AtomicU64::new(0)).collect(),
            key: std::marker::PhantomData,
        }
    }
}

impl<K: CounterKey> EnumCounter<K> {
    /// Adds one for `key`.
    pub fn inc(&self, key: K) {
        if let Some(value) = self.values.get(key.index()) {
            value.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The count for `key`.
    pub fn get(&self, key: K) -> u64 {
        self.values
            .get(key.index())
            .map_or(0, |v| v.load(Ordering::Relaxed))
    }

    /// Appends the counter's lines, one per value.
    pub fn render(&self, name: &str, help: &str, out: &mut String) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
        for key in K::ALL {
            let _ = writeln!(out, "{name}{{{}}} {}", key.labels(), self.get(*key));
        }
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
        static LABELS: [&str; 2] = [r#"message_id="POL4101""#, r#"message_id="SVC4000""#];
        let c = LabeledCounter::new(&LABELS);
        c.inc_for_message("POL4101");
        c.inc("unknown");
        let mut text = String::new();
        c.render("errors", "help", &mut text);
        assert!(
            text.contains("errors{message_id=\"POL4101\"} 1\nerrors{message_id=\"SVC4000\"} 0\n"),
            "{text}"
        );
    }
}

#[cfg(test)]
mod request_error_labels {
    use super::REQUEST_ERROR_LABELS;
    use crate::ApiError;

    /// Every request error a service sends (its own policy refusals aside) has a counter: the
    /// string lookup of `inc_for_message` cannot miss one.
    #[test]
    fn every_request_error_has_a_label() {
        let all = [
            ApiError::MissingBody,
            ApiError::MissingParameter(String::new()),
            ApiError::NotAcceptable(String::new()),
            ApiError::NotFound,
            ApiError::UnsupportedMediaType,
            ApiError::InvalidValue(String::new(), String::new()),
            ApiError::Unparsable(String::new()),
            ApiError::TooLarge(1),
            ApiError::MissingContentLength,
            ApiError::MethodNotAllowed("POST"),
            ApiError::Internal,
            ApiError::Unauthorized,
            ApiError::RateLimited,
        ];
        for error in all {
            // No wildcard: a new variant stops this from compiling until it is placed here,
            // a reminder to list it above.
            match &error {
                ApiError::MissingBody
                | ApiError::MissingParameter(_)
                | ApiError::NotAcceptable(_)
                | ApiError::NotFound
                | ApiError::UnsupportedMediaType
                | ApiError::InvalidValue(..)
                | ApiError::Unparsable(_)
                | ApiError::TooLarge(_)
                | ApiError::MissingContentLength
                | ApiError::MethodNotAllowed(_)
                | ApiError::Internal
                | ApiError::Unauthorized
                | ApiError::RateLimited
                | ApiError::Policy(_) => {}
            }
            let label = format!("message_id=\"{}\"", error.message_id());
            assert!(REQUEST_ERROR_LABELS.contains(&label.as_str()), "{label}");
            // And its counter key carries the same id.
            let key = error.request_error_id().map(super::CounterKey::labels);
            assert_eq!(key, Some(label.as_str()));
        }
    }
}
