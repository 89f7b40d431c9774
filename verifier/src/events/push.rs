//! Pushing event lines to the monitor (`[events] push`): a verification only queues its line
//! ([`Pusher::emit`] never waits); a thread of its own gathers the lines into batches
//! (`batch_lines`, `batch_bytes`, or `batch_interval_ms` after the batch's first line) and
//! `POST`s each as one `application/x-ndjson` body through the project's bounded client
//! ([`rest::fetch::Fetcher::post`]).
//!
//! What happens to a batch:
//!
//! - a 2xx answer: delivered (`pushed`);
//! - no answer, a timeout, a 5xx, 408 or 429 (the monitor is away or busy): the batch goes to
//!   the [spool](super::spool) and is tried again after a wait that starts at `backoff_min_ms`
//!   and doubles after each failure up to `backoff_max_ms` (`retries` counts the failed
//!   attempts); while anything is spooled, new batches are spooled behind it, so batches reach
//!   the monitor in the order they were made, and the spool is sent oldest first as soon as the
//!   monitor answers again; a batch leaves the spool only once acknowledged;
//! - any other 4xx (400, 413, ...): the monitor refuses that batch and would refuse it again, so
//!   it is dropped, not retried (its lines are counted as `rejected` and a warning logged with
//!   the status): a bad batch never blocks the ones behind it;
//! - the spool full (`spool_max_bytes`) or unwritable: the batch is lost and its lines counted
//!   (`lost`), as are lines that find the in-memory queue (`queue_lines`) full.
//!
//! Spooled batches survive a restart: the next pusher on the same folder sends them first. On
//! [`Pusher::stop`] the lines still in memory are spooled, not sent.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{mpsc, Notify};
use tokio::time::Instant;

use super::spool::{Spool, SpoolError};
use crate::fetch::{FetchError, FetchPolicy, Fetcher};

/// How a pusher runs (from `[events]`, see [`crate::config::EventsSection`]).
#[derive(Clone, Debug)]
pub struct PushOptions {
    /// The monitor's `POST /v1/events` URL.
    pub url: String,
    /// Most lines in one batch.
    pub batch_lines: usize,
    /// Most bytes in one batch.
    pub batch_bytes: usize,
    /// Longest wait for a batch to fill.
    pub batch_interval: Duration,
    /// The spool folder.
    pub spool_dir: std::path::PathBuf,
    /// Most bytes spooled.
    pub spool_max_bytes: u64,
    /// First wait after a failure.
    pub backoff_min: Duration,
    /// Longest wait.
    pub backoff_max: Duration,
    /// Lines queued in memory.
    pub queue_lines: usize,
    /// The client's policy (scheme, addresses, timeouts, answer size).
    pub policy: FetchPolicy,
    /// Extra TLS roots (DER) beside the Mozilla roots.
    pub extra_roots: Vec<Vec<u8>>,
}

/// Why a pusher cannot start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PushError {
    /// The spool folder cannot be used.
    #[error(transparent)]
    Spool(#[from] SpoolError),
    /// The client cannot be built.
    #[error("events.push: {0}")]
    Client(#[from] FetchError),
    /// The pusher's thread cannot be started.
    #[error("events.push: cannot start the pusher: {0}")]
    Thread(String),
}

/// What the pusher has done, in lines (but `spool_bytes`), for `/metrics`.
#[derive(Debug, Default)]
pub struct PushStats {
    /// Lines the monitor acknowledged (2xx).
    pub pushed: AtomicU64,
    /// Lines written to the spool.
    pub spooled: AtomicU64,
    /// Failed attempts, each followed by a wait and another attempt.
    pub retries: AtomicU64,
    /// Lines lost: the queue or the spool was full, or the spool could not be written.
    pub lost: AtomicU64,
    /// Lines in batches the monitor refused with a 4xx, dropped.
    pub rejected: AtomicU64,
    /// Bytes in the spool now.
    pub spool_bytes: AtomicU64,
}

impl PushStats {
    fn add(counter: &AtomicU64, n: usize) {
        counter.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// The Prometheus text of these counters.
    pub fn render(&self, out: &mut String) {
        use std::fmt::Write;
        for (name, help, kind, value) in [
            ("events_pushed_total", "Event lines the monitor acknowledged.", "counter", &self.pushed),
            ("events_spooled_total", "Event lines written to the spool while the monitor was away.", "counter", &self.spooled),
            ("events_push_retries_total", "Failed pushes, each retried after a back-off.", "counter", &self.retries),
            ("events_lost_total", "Event lines lost because the push queue or the spool was full or the spool unwritable.", "counter", &self.lost),
            ("events_rejected_total", "Event lines in batches the monitor refused with a 4xx, dropped.", "counter", &self.rejected),
            ("events_spool_bytes", "Bytes of event batches waiting in the spool.", "gauge", &self.spool_bytes),
        ] {
            let _ = writeln!(
                out,
                "# HELP shaken_verifier_{name} {help}\n# TYPE shaken_verifier_{name} {kind}\nshaken_verifier_{name} {}",
                value.load(Ordering::Relaxed)
            );
        }
    }
}

/// The pusher: a queue in front of a thread that batches, sends and spools.
#[derive(Debug)]
pub struct Pusher {
    sender: mpsc::Sender<String>,
    stats: Arc<PushStats>,
    stop: Arc<Notify>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Pusher {
    /// Opens the spool (the batches it holds are sent first) and starts the pusher's thread.
    pub fn start(options: PushOptions) -> Result<Self, PushError> {
        let spool = Spool::open(&options.spool_dir, options.spool_max_bytes)?;
        let fetcher = Fetcher::new(options.policy.clone(), &options.extra_roots)?;
        let stats = Arc::new(PushStats::default());
        stats.spool_bytes.store(spool.bytes(), Ordering::Relaxed);
        let (sender, receiver) = mpsc::channel(options.queue_lines.max(1));
        let stop = Arc::new(Notify::new());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| PushError::Thread(e.to_string()))?;
        let worker = Worker {
            options,
            fetcher,
            spool,
            stats: Arc::clone(&stats),
            receiver,
            stop: Arc::clone(&stop),
            backoff: None,
            retry_at: None,
        };
        let thread = std::thread::Builder::new()
            .name("events-push".into())
            .spawn(move || runtime.block_on(worker.run()))
            .map_err(|e| PushError::Thread(e.to_string()))?;
        Ok(Self {
            sender,
            stats,
            stop,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Queues one line (JSON, no newline); never waits. A full queue loses the line and counts
    /// it.
    pub fn emit(&self, line: String) {
        if self.sender.try_send(line).is_err() {
            PushStats::add(&self.stats.lost, 1);
        }
    }

    /// The counters.
    pub fn stats(&self) -> &PushStats {
        &self.stats
    }

    /// Stops the pusher: the lines still queued are spooled (sent by the next pusher on the
    /// folder), and the thread is joined. Blocks until then; later calls do nothing.
    pub fn stop(&self) {
        let thread = self.thread.lock().ok().and_then(|mut t| t.take());
        if let Some(thread) = thread {
            self.stop.notify_one();
            let _ = thread.join();
        }
    }
}

impl Drop for Pusher {
    fn drop(&mut self) {
        self.stop();
    }
}

/// How one attempt to send a batch ended.
enum Sent {
    /// 2xx.
    Delivered,
    /// A 4xx that a retry would not change: drop the batch.
    Refused(u16),
    /// The monitor is away or busy: keep the batch, wait, try again.
    Failed(String),
}

struct Worker {
    options: PushOptions,
    fetcher: Fetcher,
    spool: Spool,
    stats: Arc<PushStats>,
    receiver: mpsc::Receiver<String>,
    stop: Arc<Notify>,
    /// The current wait after failures (none: the last attempt succeeded).
    backoff: Option<Duration>,
    /// When the spool may be tried again (none: now).
    retry_at: Option<Instant>,
}

/// The batch being filled.
#[derive(Default)]
struct Batch {
    body: Vec<u8>,
    lines: usize,
    opened: Option<Instant>,
}

impl Worker {
    async fn run(mut self) {
        let mut batch = Batch::default();
        loop {
            // Take what is queued, closing batches as they fill.
            loop {
                match self.receiver.try_recv() {
                    Ok(line) => self.add(&mut batch, line).await,
                    Err(mpsc::error::TryRecvError::Empty) => break,
                    Err(mpsc::error::TryRecvError::Disconnected) => {
                        self.finish(batch);
                        return;
                    }
                }
            }
            // One spooled batch at a time, so queued lines are taken between sends.
            if !self.spool.is_empty() && self.retry_at.is_none_or(|t| Instant::now() >= t) {
                self.send_oldest().await;
                continue;
            }
            let batch_due = batch
                .opened
                .map(|opened| opened + self.options.batch_interval);
            let retry_at = self.retry_at;
            tokio::select! {
                line = self.receiver.recv() => match line {
                    Some(line) => self.add(&mut batch, line).await,
                    None => {
                        self.finish(batch);
                        return;
                    }
                },
                () = sleep_until(batch_due) => {
                    let full = std::mem::take(&mut batch);
                    self.flush(full).await;
                }
                () = sleep_until(retry_at) => self.retry_at = None,
                () = self.stop.notified() => {
                    while let Ok(line) = self.receiver.try_recv() {
                        append(&mut batch, &line);
                    }
                    self.finish(batch);
                    return;
                }
            }
        }
    }

    /// Adds `line` to `batch`, sending or spooling the batch first if the line would take it
    /// beyond its size, and after if it is full.
    async fn add(&mut self, batch: &mut Batch, line: String) {
        if batch.lines > 0 && batch.body.len() + line.len() + 1 > self.options.batch_bytes {
            let full = std::mem::take(batch);
            self.flush(full).await;
        }
        append(batch, &line);
        if batch.lines >= self.options.batch_lines || batch.body.len() >= self.options.batch_bytes {
            let full = std::mem::take(batch);
            self.flush(full).await;
        }
    }

    /// A closed batch: sent now if nothing waits before it and the monitor is not known to be
    /// away; otherwise spooled behind what waits.
    async fn flush(&mut self, batch: Batch) {
        if batch.lines == 0 {
            return;
        }
        if self.spool.is_empty() && self.retry_at.is_none() {
            let body = Bytes::from(batch.body);
            match self.send(body.clone()).await {
                Sent::Delivered => {
                    self.succeeded();
                    PushStats::add(&self.stats.pushed, batch.lines);
                }
                Sent::Refused(status) => self.refused(status, batch.lines),
                Sent::Failed(why) => {
                    self.failed(&why);
                    self.spool_batch(&body, batch.lines);
                }
            }
        } else {
            self.spool_batch(&batch.body, batch.lines);
        }
    }

    /// Sends the oldest spooled batch; removes it once acknowledged or refused.
    async fn send_oldest(&mut self) {
        let body = match self.spool.read_oldest() {
            Some(Ok(body)) => body,
            Some(Err(error)) => {
                // Unreadable: it can never be sent, so it is dropped rather than tried forever
                // (its lines cannot be counted).
                tracing::error!(%error, "spooled event batch unreadable; dropped");
                self.remove_oldest();
                return;
            }
            None => return,
        };
        let lines = count_lines(&body);
        match self.send(Bytes::from(body)).await {
            Sent::Delivered => {
                self.succeeded();
                PushStats::add(&self.stats.pushed, lines);
                self.remove_oldest();
            }
            Sent::Refused(status) => {
                self.refused(status, lines);
                self.remove_oldest();
            }
            Sent::Failed(why) => self.failed(&why),
        }
    }

    fn remove_oldest(&mut self) {
        if let Err(error) = self.spool.remove_oldest() {
            tracing::error!(%error, "cannot remove a sent event batch from the spool");
        }
        self.stats
            .spool_bytes
            .store(self.spool.bytes(), Ordering::Relaxed);
    }

    async fn send(&self, body: Bytes) -> Sent {
        match self
            .fetcher
            .post(&self.options.url, "application/x-ndjson", body)
            .await
        {
            Ok(answer) if answer.is_success() => Sent::Delivered,
            // Busy or timed out: the same batch may well be taken later.
            Ok(answer) if matches!(answer.status, 408 | 429) => {
                Sent::Failed(format!("HTTP {}", answer.status))
            }
            Ok(answer) if (400..500).contains(&answer.status) => Sent::Refused(answer.status),
            Ok(answer) => Sent::Failed(format!("HTTP {}", answer.status)),
            Err(error) => Sent::Failed(error.to_string()),
        }
    }

    fn succeeded(&mut self) {
        if self.backoff.take().is_some() {
            tracing::info!("the monitor takes events again");
        }
        self.retry_at = None;
    }

    fn failed(&mut self, why: &str) {
        PushStats::add(&self.stats.retries, 1);
        let wait = match self.backoff {
            None => {
                tracing::warn!(error = %why, "cannot push events to the monitor; spooling");
                self.options.backoff_min
            }
            Some(previous) => (previous * 2).min(self.options.backoff_max),
        };
        self.backoff = Some(wait);
        self.retry_at = Some(Instant::now() + wait);
    }

    fn refused(&mut self, status: u16, lines: usize) {
        // The monitor answered: it is there.
        self.succeeded();
        tracing::warn!(status, lines, "the monitor refused an event batch; dropped");
        PushStats::add(&self.stats.rejected, lines);
    }

    fn spool_batch(&mut self, body: &[u8], lines: usize) {
        match self.spool.push(body) {
            Ok(()) => PushStats::add(&self.stats.spooled, lines),
            Err(error) => {
                tracing::error!(%error, lines, "event batch lost");
                PushStats::add(&self.stats.lost, lines);
            }
        }
        self.stats
            .spool_bytes
            .store(self.spool.bytes(), Ordering::Relaxed);
    }

    /// Stopping: what is in memory goes to the spool, for the next start.
    fn finish(&mut self, batch: Batch) {
        if batch.lines > 0 {
            self.spool_batch(&batch.body, batch.lines);
        }
    }
}

fn append(batch: &mut Batch, line: &str) {
    if batch.lines == 0 {
        batch.opened = Some(Instant::now());
    }
    batch.body.extend_from_slice(line.as_bytes());
    batch.body.push(b'\n');
    batch.lines += 1;
}

fn count_lines(body: &[u8]) -> usize {
    body.iter().filter(|b| **b == b'\n').count()
}

/// Sleeps until `deadline`, or forever when there is none.
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU16;

    use http_body_util::{BodyExt, Full};
    use hyper::service::service_fn;
    use hyper_util::rt::TokioIo;

    /// A stand-in for the monitor's `POST /v1/events` on loopback: records each body it takes
    /// with a 2xx, answers the status in `status`.
    #[derive(Clone, Default)]
    struct Monitor {
        bodies: Arc<Mutex<Vec<String>>>,
        content_types: Arc<Mutex<Vec<String>>>,
        status: Arc<AtomicU16>,
        /// Statuses to answer first, one per request, before `status`.
        script: Arc<Mutex<Vec<u16>>>,
    }

    impl Monitor {
        async fn serve(&self, listener: tokio::net::TcpListener) {
            self.status.store(200, Ordering::Relaxed);
            let monitor = self.clone();
            tokio::spawn(async move {
                while let Ok((stream, _)) = listener.accept().await {
                    let monitor = monitor.clone();
                    tokio::spawn(async move {
                        let service =
                            service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                                let monitor = monitor.clone();
                                async move {
                                    let content_type = request
                                        .headers()
                                        .get("content-type")
                                        .and_then(|v| v.to_str().ok())
                                        .unwrap_or_default()
                                        .to_owned();
                                    let body =
                                        request.into_body().collect().await.unwrap().to_bytes();
                                    let status = {
                                        let mut script = monitor.script.lock().unwrap();
                                        if script.is_empty() {
                                            monitor.status.load(Ordering::Relaxed)
                                        } else {
                                            script.remove(0)
                                        }
                                    };
                                    if (200..300).contains(&status) {
                                        monitor
                                            .bodies
                                            .lock()
                                            .unwrap()
                                            .push(String::from_utf8(body.to_vec()).unwrap());
                                        monitor.content_types.lock().unwrap().push(content_type);
                                    }
                                    let mut response =
                                        hyper::Response::new(Full::new(Bytes::from_static(b"{}")));
                                    *response.status_mut() =
                                        hyper::StatusCode::from_u16(status).unwrap();
                                    Ok::<_, std::convert::Infallible>(response)
                                }
                            });
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
            });
        }

        /// Every line received, in order.
        fn lines(&self) -> Vec<String> {
            self.bodies
                .lock()
                .unwrap()
                .iter()
                .flat_map(|b| b.lines().map(str::to_owned).collect::<Vec<_>>())
                .collect()
        }
    }

    /// A loopback address nothing listens on (for now).
    async fn free_address() -> std::net::SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap()
    }

    fn options(address: std::net::SocketAddr, spool: &std::path::Path) -> PushOptions {
        PushOptions {
            url: format!("http://{address}/v1/events"),
            batch_lines: 3,
            batch_bytes: 1 << 20,
            batch_interval: Duration::from_millis(100),
            spool_dir: spool.to_owned(),
            spool_max_bytes: 1 << 20,
            backoff_min: Duration::from_millis(50),
            backoff_max: Duration::from_millis(200),
            queue_lines: 1000,
            policy: FetchPolicy {
                allow_http: true,
                allow_private_addresses: true,
                allowed_ports: None,
                connect_timeout: Duration::from_millis(500),
                total_timeout: Duration::from_millis(500),
                ..FetchPolicy::default()
            },
            extra_roots: Vec::new(),
        }
    }

    fn line(i: usize) -> String {
        format!(
            r#"{{"time":{},"from":"8613800000000","to":["8613900000000"],"n":{i}}}"#,
            1_700_000_000 + i
        )
    }

    async fn until(what: &str, condition: impl Fn() -> bool) {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !condition() {
            assert!(
                std::time::Instant::now() < deadline,
                "timed out waiting for {what}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn batch_files(dir: &std::path::Path) -> usize {
        std::fs::read_dir(dir)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .path()
                    .extension()
                    .is_some_and(|x| x == "ndjson")
            })
            .count()
    }

    fn count(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn lines_are_batched_by_count_and_by_time() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let monitor = Monitor::default();
        monitor.serve(listener).await;
        let spool = tempfile::tempdir().unwrap();
        let pusher = Pusher::start(options(address, spool.path())).unwrap();
        for i in 0..7 {
            pusher.emit(line(i));
        }
        until("7 lines", || count(&pusher.stats().pushed) == 7).await;
        let bodies = monitor.bodies.lock().unwrap().clone();
        // Two full batches of 3, then the last line alone once the interval passed.
        let sizes: Vec<usize> = bodies.iter().map(|b| b.lines().count()).collect();
        assert_eq!(sizes, [3, 3, 1]);
        assert!(bodies.iter().all(|b| b.ends_with('\n')));
        assert_eq!(monitor.lines(), (0..7).map(line).collect::<Vec<_>>());
        assert!(monitor
            .content_types
            .lock()
            .unwrap()
            .iter()
            .all(|t| t == "application/x-ndjson"));
        assert_eq!(count(&pusher.stats().spooled), 0);
        assert_eq!(count(&pusher.stats().retries), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_outage_is_spooled_then_delivered_in_order() {
        let address = free_address().await;
        let spool = tempfile::tempdir().unwrap();
        let pusher = Pusher::start(options(address, spool.path())).unwrap();
        for i in 0..30 {
            pusher.emit(line(i));
        }
        until("30 spooled lines", || count(&pusher.stats().spooled) == 30).await;
        assert_eq!(batch_files(spool.path()), 10);
        assert!(count(&pusher.stats().spool_bytes) > 0);
        assert!(count(&pusher.stats().retries) >= 1);
        // The monitor comes back on the same address; more lines arrive meanwhile.
        let monitor = Monitor::default();
        monitor
            .serve(tokio::net::TcpListener::bind(address).await.unwrap())
            .await;
        for i in 30..40 {
            pusher.emit(line(i));
        }
        until("40 pushed lines", || count(&pusher.stats().pushed) == 40).await;
        assert_eq!(monitor.lines(), (0..40).map(line).collect::<Vec<_>>());
        assert_eq!(
            batch_files(spool.path()),
            0,
            "acknowledged batches are removed"
        );
        assert_eq!(count(&pusher.stats().spool_bytes), 0);
        assert_eq!(count(&pusher.stats().lost), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_spool_counts_what_it_loses() {
        let address = free_address().await;
        let spool = tempfile::tempdir().unwrap();
        let batch_bytes = (0..3).map(|i| line(i).len() + 1).sum::<usize>() as u64;
        let pusher = Pusher::start(PushOptions {
            // Room for two batches of three lines.
            spool_max_bytes: 2 * batch_bytes + 5,
            ..options(address, spool.path())
        })
        .unwrap();
        for i in 0..12 {
            pusher.emit(line(i));
        }
        until("12 lines accounted for", || {
            count(&pusher.stats().spooled) + count(&pusher.stats().lost) == 12
        })
        .await;
        assert_eq!(count(&pusher.stats().spooled), 6);
        assert_eq!(count(&pusher.stats().lost), 6);
        assert_eq!(batch_files(spool.path()), 2);
        // What the spool kept is the oldest, and is delivered when the monitor is back.
        let monitor = Monitor::default();
        monitor
            .serve(tokio::net::TcpListener::bind(address).await.unwrap())
            .await;
        until("6 pushed", || count(&pusher.stats().pushed) == 6).await;
        assert_eq!(monitor.lines(), (0..6).map(line).collect::<Vec<_>>());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn spooled_batches_and_queued_lines_survive_a_restart() {
        let address = free_address().await;
        let spool = tempfile::tempdir().unwrap();
        let pusher = Pusher::start(PushOptions {
            batch_interval: Duration::from_secs(60),
            ..options(address, spool.path())
        })
        .unwrap();
        for i in 0..8 {
            pusher.emit(line(i));
        }
        until("6 spooled lines", || count(&pusher.stats().spooled) == 6).await;
        // Two lines wait in memory for their batch: stopping spools them.
        pusher.stop();
        assert_eq!(count(&pusher.stats().spooled), 8);
        drop(pusher);
        assert_eq!(batch_files(spool.path()), 3);
        let monitor = Monitor::default();
        monitor
            .serve(tokio::net::TcpListener::bind(address).await.unwrap())
            .await;
        let pusher = Pusher::start(options(address, spool.path())).unwrap();
        assert!(count(&pusher.stats().spool_bytes) > 0);
        pusher.emit(line(8));
        until("9 pushed", || count(&pusher.stats().pushed) == 9).await;
        assert_eq!(monitor.lines(), (0..9).map(line).collect::<Vec<_>>());
        assert_eq!(batch_files(spool.path()), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_refused_batch_is_dropped_and_a_busy_monitor_retried() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let monitor = Monitor::default();
        // The first batch is refused (400), the second meets a busy monitor twice (503, 429).
        *monitor.script.lock().unwrap() = vec![400, 503, 429];
        monitor.serve(listener).await;
        let spool = tempfile::tempdir().unwrap();
        let pusher = Pusher::start(options(address, spool.path())).unwrap();
        for i in 0..6 {
            pusher.emit(line(i));
        }
        until("3 pushed", || count(&pusher.stats().pushed) == 3).await;
        assert_eq!(count(&pusher.stats().rejected), 3);
        assert_eq!(count(&pusher.stats().retries), 2);
        assert_eq!(monitor.lines(), (3..6).map(line).collect::<Vec<_>>());
        assert_eq!(batch_files(spool.path()), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_queue_loses_lines_without_waiting() {
        let address = free_address().await;
        let spool = tempfile::tempdir().unwrap();
        let pusher = Pusher::start(PushOptions {
            queue_lines: 1,
            batch_lines: 1_000_000,
            batch_interval: Duration::from_secs(60),
            ..options(address, spool.path())
        })
        .unwrap();
        let started = std::time::Instant::now();
        for i in 0..100_000 {
            pusher.emit(line(i));
        }
        assert!(started.elapsed() < Duration::from_secs(5));
        pusher.stop();
        let stats = pusher.stats();
        assert!(count(&stats.lost) > 0);
        assert_eq!(count(&stats.lost) + count(&stats.spooled), 100_000);
    }
}
