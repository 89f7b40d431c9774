//! The throughput run (`shaken monitor load`): a monitor served in this process on loopback,
//! with every detector on, fed event lines over HTTP by senders in the same process, with
//! `callers` distinct calling numbers active in the detectors' windows; beside it, the floor
//! measured in the same run: the same lines only parsed into [`crate::event::Event`], on one
//! core. It reports events per second for both, the engine's memory per active caller and
//! the process's resident memory.
//!
//! The lines are the detectors' synthetic mix ([`crate::mix`]: ordinary subscribers, busy
//! and allow-listed lines, planted offenders), drawn first and formatted as they are sent (a
//! generator thread ahead of the senders), so the sender's work is on the same machine, as it
//! would be for a verifier pushing events.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde::Serialize;

use crate::config::MonitorConfig;
use crate::mix::{Mix, MixConfig};
use crate::server::{prepare, ServeError};

/// What to send.
#[derive(Clone, Debug)]
pub struct LoadOptions {
    /// Ordinary subscribers of the mix ([`crate::mix`]; each places 1 to 3 calls), besides
    /// its busy lines, allow-listed lines and planted offenders.
    pub callers: u64,
    /// The mix's seed.
    pub seed: u64,
    /// Lines per POST.
    pub batch: usize,
    /// Concurrent connections posting.
    pub connections: usize,
    /// Event time of the first event.
    pub start_time: u64,
    /// Seconds of event time the events span (an hour or less keeps every caller active).
    pub span_seconds: u64,
    /// The monitor's data folder (a fresh one).
    pub data: PathBuf,
}

impl LoadOptions {
    /// The mix these options draw.
    pub fn mix(&self) -> Mix {
        Mix::generate(&MixConfig {
            seed: self.seed,
            start: self.start_time,
            duration: self.span_seconds,
            subscribers: self.callers,
            ..MixConfig::default()
        })
    }
}

/// What a run measured.
#[derive(Clone, Debug, Serialize)]
pub struct LoadReport {
    /// Events sent.
    pub events: u64,
    /// Events the monitor acknowledged.
    pub accepted: u64,
    /// Lines it refused (0 expected).
    pub rejected: u64,
    /// Seconds from the first POST to the last answer.
    pub seconds: f64,
    /// Acknowledged events per second through HTTP.
    pub events_per_second: f64,
    /// Acknowledged events not yet in SQLite's indexes when the last answer came.
    pub index_lag_events: u64,
    /// Seconds the indexer took after the last answer to index the rest.
    pub index_catch_up_seconds: f64,
    /// The indexer's sustained rate: every event indexed, over the run and its catch-up.
    pub indexed_per_second: f64,
    /// The floor: the same lines parsed into events on one core, per second.
    pub parse_only_per_second: f64,
    /// Calling numbers with window state.
    pub active_callers: u64,
    /// The engine's estimate of its window memory.
    pub window_bytes: u64,
    /// `window_bytes / active_callers`.
    pub window_bytes_per_caller: f64,
    /// The process's resident memory at the end (server, sender and allocator together).
    pub rss_bytes: u64,
    /// Resident memory before the run started.
    pub rss_before_bytes: u64,
    /// The database's size at the end.
    pub store_bytes: u64,
    /// Alerts opened during the run.
    pub alerts: u64,
}

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// The monitor could not start.
    #[error(transparent)]
    Serve(#[from] ServeError),
    /// A POST failed or was not answered 200.
    #[error("posting events: {0}")]
    Post(String),
    /// Bad options.
    #[error("{0}")]
    Options(&'static str),
}

/// The mix's lines cut into bodies of `batch` lines (each line ends with a newline).
pub fn bodies(mix: &Mix, batch: usize) -> impl Iterator<Item = String> + '_ {
    let batch = batch.max(1);
    let mut lines = mix.lines();
    std::iter::from_fn(move || {
        let mut body = String::with_capacity(batch * 260);
        for line in lines.by_ref().take(batch) {
            body.push_str(&line);
            body.push('\n');
        }
        (!body.is_empty()).then_some(body)
    })
}

/// The resident set size of this process, from `/proc/self/status` (0 where unavailable).
pub fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// The floor: every body generated again and parsed (not stored) on this thread; returns
/// lines parsed per second, counting parse time only.
pub fn parse_only(mix: &Mix, batch: usize) -> f64 {
    let mut parsing = Duration::ZERO;
    let mut lines = 0_u64;
    for text in bodies(mix, batch) {
        let started = Instant::now();
        let parsed = crate::event::parse_body(text.as_bytes());
        parsing += started.elapsed();
        lines += parsed.iter().filter(|(_, r)| r.is_ok()).count() as u64;
    }
    lines as f64 / parsing.as_secs_f64().max(1e-9)
}

async fn post(
    sender: &mut hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    body: String,
) -> Result<(u64, u64), LoadError> {
    sender
        .ready()
        .await
        .map_err(|e| LoadError::Post(e.to_string()))?;
    let request = hyper::Request::post("/v1/events")
        .header("host", "monitor")
        .header("content-type", "application/x-ndjson")
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| LoadError::Post(e.to_string()))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| LoadError::Post(e.to_string()))?;
    let status = response.status();
    let bytes = response
        .into_body()
        .collect()
        .await
        .map_err(|e| LoadError::Post(e.to_string()))?
        .to_bytes();
    if status != hyper::StatusCode::OK {
        return Err(LoadError::Post(format!(
            "HTTP {status}: {}",
            String::from_utf8_lossy(&bytes)
        )));
    }
    let answer: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| LoadError::Post(e.to_string()))?;
    let accepted = answer
        .get("accepted")
        .and_then(serde_json::Value::as_u64)
        .unwrap_or(0);
    let rejected = answer
        .get("rejected")
        .and_then(serde_json::Value::as_array)
        .map_or(0, |r| r.len() as u64);
    Ok((accepted, rejected))
}

/// Runs the load: serves a monitor over `options.data` with `config` on loopback, posts
/// every event, then measures the floor. Uses the current tokio runtime.
pub async fn run(options: &LoadOptions, config: &MonitorConfig) -> Result<LoadReport, LoadError> {
    if options.batch == 0 || options.connections == 0 {
        return Err(LoadError::Options(
            "batch and connections must be at least 1",
        ));
    }
    let mix = Arc::new(options.mix());
    let mut config = config.clone();
    let mix_detection = mix.detection_config();
    config.detection.home_country = mix_detection.home_country;
    config.detection.international_gateway_spcs = mix_detection.international_gateway_spcs;
    let rss_before = rss_bytes();
    // On a blocking thread: the store may be PostgreSQL, whose client must not run on an
    // async task.
    let prepared = {
        let (data, mix, start_time) = (options.data.clone(), Arc::clone(&mix), options.start_time);
        tokio::task::spawn_blocking(move || {
            let prepared = prepare(&data, &config)?;
            for tn in mix.allow_list() {
                let _ = prepared.state.set_allowed(tn, true, start_time);
            }
            Ok::<_, ServeError>(prepared)
        })
        .await
        .map_err(|_| LoadError::Options("the monitor's start was interrupted"))??
    };
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .map_err(|e| LoadError::Post(e.to_string()))?;
    let address = listener
        .local_addr()
        .map_err(|e| LoadError::Post(e.to_string()))?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(rest::http::serve(listener, prepared.api, None, async {
        let _ = stopped.await;
    }));

    // The generator runs ahead of the senders on its own thread.
    let (bodies_out, bodies_in) = tokio::sync::mpsc::channel::<String>(options.connections * 2);
    let generator_mix = Arc::clone(&mix);
    let batch = options.batch;
    let generator = std::thread::spawn(move || {
        for body in bodies(&generator_mix, batch) {
            if bodies_out.blocking_send(body).is_err() {
                break;
            }
        }
    });
    let bodies_in = Arc::new(tokio::sync::Mutex::new(bodies_in));
    let started = Instant::now();
    let mut senders = Vec::new();
    for _ in 0..options.connections {
        let bodies_in = Arc::clone(&bodies_in);
        senders.push(tokio::spawn(async move {
            let stream = tokio::net::TcpStream::connect(address)
                .await
                .map_err(|e| LoadError::Post(e.to_string()))?;
            let _ = stream.set_nodelay(true);
            let (mut sender, connection) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream))
                    .await
                    .map_err(|e| LoadError::Post(e.to_string()))?;
            tokio::spawn(connection);
            let mut totals = (0_u64, 0_u64);
            loop {
                let next = bodies_in.lock().await.recv().await;
                let Some(body) = next else { break };
                let (accepted, rejected) = post(&mut sender, body).await?;
                totals.0 += accepted;
                totals.1 += rejected;
            }
            Ok::<_, LoadError>(totals)
        }));
    }
    let mut accepted = 0;
    let mut rejected = 0;
    let mut failure = None;
    for sender in senders {
        match sender.await {
            Ok(Ok((a, r))) => {
                accepted += a;
                rejected += r;
            }
            Ok(Err(e)) => failure = Some(e),
            Err(e) => failure = Some(LoadError::Post(e.to_string())),
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let progress = prepared.state.index_progress();
    let index_lag_events = progress.lag_events();
    let catch_up = Instant::now();
    progress.wait_indexed(
        progress.journaled_seq(),
        std::time::Duration::from_secs(3600),
    );
    let index_catch_up_seconds = catch_up.elapsed().as_secs_f64();
    drop(bodies_in);
    let _ = generator.join();
    let rss = rss_bytes();
    let _ = stop.send(());
    let _ = server.await;
    if let Some(failure) = failure {
        return Err(failure);
    }
    let (window_bytes, active_callers) = prepared.state.window_memory();
    let metrics = {
        let state = Arc::clone(&prepared.state);
        tokio::task::spawn_blocking(move || {
            state.refresh_store_size();
            state.render_metrics()
        })
        .await
        .unwrap_or_default()
    };
    let gauge = |name: &str| {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    let alerts = metrics
        .lines()
        .filter(|l| l.starts_with("monitor_alerts_total{"))
        .filter_map(|l| l.rsplit(' ').next())
        .filter_map(|v| v.parse::<u64>().ok())
        .sum();
    let parse_only_per_second = parse_only(&mix, options.batch);
    Ok(LoadReport {
        events: mix.len() as u64,
        accepted,
        rejected,
        seconds,
        events_per_second: accepted as f64 / seconds.max(1e-9),
        index_lag_events,
        index_catch_up_seconds,
        indexed_per_second: prepared.state.index_progress().indexed_events() as f64
            / (seconds + index_catch_up_seconds).max(1e-9),
        parse_only_per_second,
        active_callers: active_callers as u64,
        window_bytes: window_bytes as u64,
        window_bytes_per_caller: window_bytes as f64 / (active_callers.max(1)) as f64,
        rss_bytes: rss,
        rss_before_bytes: rss_before,
        store_bytes: gauge("monitor_store_bytes "),
        alerts,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;

    fn options(callers: u64) -> LoadOptions {
        LoadOptions {
            callers,
            seed: 3,
            batch: 64,
            connections: 2,
            start_time: 1_700_000_000,
            span_seconds: 600,
            data: PathBuf::new(),
        }
    }

    #[test]
    fn bodies_carry_every_line_of_the_mix_once() {
        let o = options(50);
        let mix = o.mix();
        let mut n = 0;
        for text in bodies(&mix, 7) {
            let parsed = crate::event::parse_body(text.as_bytes());
            assert!(parsed.len() <= 7);
            assert!(parsed.iter().all(|(_, r)| r.is_ok()));
            n += parsed.len();
        }
        assert_eq!(n, mix.len());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_small_run_acknowledges_every_event() {
        let dir = tempfile::tempdir().unwrap();
        let mut o = options(200);
        o.data = dir.path().join("data");
        let report = run(&o, &MonitorConfig::default()).await.unwrap();
        assert_eq!((report.accepted, report.rejected), (report.events, 0));
        assert!(report.events_per_second > 0.0 && report.parse_only_per_second > 0.0);
        assert!(
            report.alerts > 0,
            "the mix's planted offenders raise alerts"
        );
        let store = crate::store::Store::open_reader(&o.data).unwrap();
        assert_eq!(store.event_count().unwrap(), report.events);
    }
}
