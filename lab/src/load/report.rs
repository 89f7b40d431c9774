//! What a load measured: counts, throughput and four latency histograms, as JSON
//! ([`LoadReport::to_json`]) or one line for a person ([`LoadReport::summary`]).

use hdrhistogram::Histogram;
use serde_json::{json, Value};

use crate::error::LabError;

/// Latency histograms (microseconds, from when each request was due).
#[derive(Clone, Debug)]
pub struct Latencies {
    /// Until the generator had read the whole answer.
    pub client: Histogram<u64>,
    /// Until the answer's last bytes reached the socket (kernel time-stamp).
    pub wire: Histogram<u64>,
    /// Until the generator had written the request (its own lateness: CPU it was not given).
    pub sent_late: Histogram<u64>,
    /// From the request written to the answer at the socket: the exchange alone, without the
    /// generator's lateness on either side (a diagnosis; the figures above are the measure).
    pub exchange: Histogram<u64>,
}

impl Latencies {
    /// Four empty histograms, each 1 µs to 60 s with three significant digits.
    pub fn new() -> Result<Self, LabError> {
        let histogram = || Histogram::new_with_bounds(1, 60_000_000, 3);
        Ok(Self {
            client: histogram()?,
            wire: histogram()?,
            sent_late: histogram()?,
            exchange: histogram()?,
        })
    }
}

/// The result of a load.
#[derive(Clone, Debug)]
pub struct LoadReport {
    /// The open loop's rate, `None` for a closed loop.
    pub rate: Option<f64>,
    /// Connections.
    pub concurrency: usize,
    /// Seconds of warm-up (not counted).
    pub warmup: f64,
    /// Seconds measured: until the last counted answer, at least the duration asked.
    pub seconds: f64,
    /// Answers 200.
    pub ok: u64,
    /// Answers 403 (refused by policy).
    pub refused: u64,
    /// Other answers and failed exchanges.
    pub failed: u64,
    /// The latencies of the counted requests.
    pub latencies: Latencies,
}

/// The value at quantile `q`, in milliseconds.
fn ms(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

fn summary_json(h: &Histogram<u64>) -> Value {
    json!({"p50": ms(h, 0.5), "p90": ms(h, 0.9), "p99": ms(h, 0.99), "max": h.max() as f64 / 1000.0})
}

impl LoadReport {
    /// Requests counted.
    pub fn requests(&self) -> u64 {
        self.ok + self.refused + self.failed
    }

    /// Requests a second over the measured period, rounded.
    pub fn throughput(&self) -> f64 {
        (self.requests() as f64 / self.seconds).round()
    }

    /// The report as one JSON object (`mode`, counts, `throughput_per_second`, and
    /// `latency_ms`, `wire_latency_ms`, `sent_late_ms`, `exchange_latency_ms` each with p50,
    /// p90, p99 and max).
    pub fn to_json(&self) -> Value {
        let l = &self.latencies;
        json!({
            "mode": if self.rate.is_some() { "open" } else { "closed" },
            "target_rate": self.rate, "concurrency": self.concurrency, "seconds": self.seconds,
            "warmup_seconds": self.warmup,
            "requests": self.requests(), "signed": self.ok, "refused": self.refused, "failed": self.failed,
            "throughput_per_second": self.throughput(),
            "latency_ms": summary_json(&l.client),
            "wire_latency_ms": summary_json(&l.wire),
            "sent_late_ms": summary_json(&l.sent_late),
            "exchange_latency_ms": summary_json(&l.exchange),
        })
    }

    /// The report as one line for a person.
    pub fn summary(&self) -> String {
        let (h, l) = (&self.latencies.client, &self.latencies);
        format!(
            "{} requests in {:.1} s: {} /s ({} signed, {} refused, {} failed); latency ms p50 {:.3} p90 {:.3} p99 {:.3} max {:.3}; on the wire p99 {:.3}; sent late p99 {:.3}; exchange p99 {:.3}",
            self.requests(),
            self.seconds,
            json!(self.throughput()),
            self.ok,
            self.refused,
            self.failed,
            ms(h, 0.5),
            ms(h, 0.9),
            ms(h, 0.99),
            h.max() as f64 / 1000.0,
            ms(&l.wire, 0.99),
            ms(&l.sent_late, 0.99),
            ms(&l.exchange, 0.99)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_figures_are_reported() {
        let mut latencies = Latencies::new().unwrap();
        for micros in [1000, 2000, 3000, 4000] {
            latencies.client.record(micros).unwrap();
            latencies.wire.record(micros / 2).unwrap();
        }
        let report = LoadReport {
            rate: Some(400.0),
            concurrency: 8,
            warmup: 0.5,
            seconds: 2.0,
            ok: 600,
            refused: 199,
            failed: 1,
            latencies,
        };
        let json = report.to_json();
        assert_eq!(json["mode"], "open");
        assert_eq!(json["requests"], 800);
        assert_eq!(json["signed"], 600);
        assert_eq!(json["throughput_per_second"], 400.0);
        // The histogram keeps three significant digits.
        let max = json["latency_ms"]["max"].as_f64().unwrap();
        assert!((4.0..4.01).contains(&max), "{max}");
        assert!(json["wire_latency_ms"]["p99"].as_f64() <= json["latency_ms"]["p99"].as_f64());
        assert!(report
            .summary()
            .starts_with("800 requests in 2.0 s: 400.0 /s (600 signed, 199 refused, 1 failed)"));
    }
}
