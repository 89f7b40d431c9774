//! The load generator for the REST services, and the raw ECDSA baseline that every speed figure
//! is compared with ([`baseline`]).
//!
//! Closed loop (no rate): N keep-alive connections each send the next request as soon as the
//! previous answer arrives; this finds the maximum sustained rate. Open loop (a rate R):
//! requests are due at fixed times R per second whatever happens ([`pacer`]), and latency is
//! measured from when a request was due, so a stalled server shows in the figures instead of
//! slowing the generator down (no coordinated omission).
//!
//! [`drive`] runs a load with request bodies from [`requests`], over the leanest client that
//! can do it ([`connection`]), and returns a [`LoadReport`].

pub mod baseline;
pub mod connection;
mod drive;
pub mod pacer;
pub mod report;
pub mod requests;

pub use drive::drive;
pub use report::LoadReport;

use crate::error::LabError;

/// The most requests a second a rate may ask.
pub const MAX_RATE: f64 = 10_000_000.0;
/// The longest duration and warm-up accepted, in seconds (a day).
pub const MAX_SECONDS: f64 = 86_400.0;

/// How hard and how long to drive a service.
#[derive(Clone, Debug, PartialEq)]
pub struct DriveOptions {
    /// The service URL, `http://HOST:PORT/PATH`.
    pub url: String,
    /// Keep-alive connections.
    pub concurrency: usize,
    /// Seconds measured.
    pub duration: f64,
    /// Open loop at this many requests a second; closed loop when `None`.
    pub rate: Option<f64>,
    /// Seconds of load before measuring starts (same schedule, not counted): new connections,
    /// a fresh process and cold caches are not the steady state being measured.
    pub warmup: f64,
    /// Generator threads (the runtime's workers, which the caller builds).
    pub threads: usize,
}

fn out_of_range(option: &'static str, value: impl ToString, range: &'static str) -> LabError {
    LabError::OutOfRange {
        option,
        value: value.to_string(),
        range,
    }
}

impl DriveOptions {
    /// Refuses values the generator cannot run with (instead of failing half-way): a duration
    /// or warm-up that is not a number of seconds up to [`MAX_SECONDS`], a rate that is not
    /// above 0 and up to [`MAX_RATE`], no connection or no thread.
    pub fn check(&self) -> Result<(), LabError> {
        if !(self.duration > 0.0 && self.duration <= MAX_SECONDS) {
            return Err(out_of_range(
                "duration",
                self.duration,
                "more than 0 and at most 86400 seconds",
            ));
        }
        if !(self.warmup >= 0.0 && self.warmup <= MAX_SECONDS) {
            return Err(out_of_range("warmup", self.warmup, "0 to 86400 seconds"));
        }
        if let Some(rate) = self.rate {
            if !(rate > 0.0 && rate <= MAX_RATE) {
                return Err(out_of_range(
                    "rate",
                    rate,
                    "more than 0 and at most 10000000 requests a second",
                ));
            }
        }
        if self.concurrency == 0 {
            return Err(out_of_range("concurrency", 0, "at least 1"));
        }
        if self.threads == 0 {
            return Err(out_of_range("threads", 0, "at least 1"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(rate: Option<f64>, duration: f64, warmup: f64, concurrency: usize) -> DriveOptions {
        DriveOptions {
            url: "http://127.0.0.1:1/".into(),
            concurrency,
            duration,
            rate,
            warmup,
            threads: 1,
        }
    }

    #[test]
    fn values_the_generator_cannot_run_with_are_refused() {
        assert!(options(Some(1000.0), 10.0, 1.0, 8).check().is_ok());
        assert!(options(None, 10.0, 0.0, 8).check().is_ok());
        for bad in [
            options(Some(0.0), 10.0, 1.0, 8),
            options(Some(-5.0), 10.0, 1.0, 8),
            options(Some(f64::NAN), 10.0, 1.0, 8),
            options(Some(1e20), 10.0, 1.0, 8),
            options(None, -1.0, 1.0, 8),
            options(None, f64::INFINITY, 1.0, 8),
            options(None, 10.0, -1.0, 8),
            options(None, 10.0, f64::NAN, 8),
            options(None, 10.0, 1.0, 0),
            DriveOptions {
                threads: 0,
                ..options(None, 10.0, 1.0, 8)
            },
        ] {
            assert!(bad.check().is_err(), "{bad:?}");
        }
        assert_eq!(
            options(None, -1.0, 1.0, 8).check().unwrap_err().to_string(),
            "duration -1 is out of range: more than 0 and at most 86400 seconds"
        );
    }
}
