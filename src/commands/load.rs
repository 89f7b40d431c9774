//! `shaken load`: a load generator for the REST services, and the raw ECDSA baseline that
//! every speed figure is compared with.
//!
//! Closed loop (`--concurrency N`): N keep-alive connections each send the next request as soon
//! as the previous answer arrives; this finds the maximum sustained rate. Open loop
//! (`--rate R`): requests are due at fixed times R per second whatever happens, and latency
//! is measured from when a request was due, so a stalled server shows in the figures instead
//! of slowing the generator down (no coordinated omission).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use hdrhistogram::Histogram;
use serde_json::json;

/// Load commands.
#[derive(Subcommand, Debug)]
pub(crate) enum LoadCommand {
    /// Drive a signer with a mix of registered and unregistered calling numbers.
    Sign(LoadArgs),
    /// Drive a verifier with calls carrying tokens signed (before the run) with KEY for X5U.
    Verify(VerifyLoadArgs),
    /// Measure the raw single-core ECDSA P-256 sign and verify rates (aws-lc-rs, key parsed
    /// once): the baseline the services' figures are compared with.
    Baseline {
        /// Seconds per measurement.
        #[arg(long, default_value_t = 3.0)]
        seconds: f64,
    },
}

/// How hard and how long to drive a service.
#[derive(Args, Debug, Clone)]
pub(crate) struct Drive {
    /// The service URL, e.g. http://127.0.0.1:8080/stir/v1/signing.
    #[arg(long)]
    url: String,
    /// Keep-alive connections.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Seconds to run.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Open loop at this many requests per second (default: closed loop).
    #[arg(long)]
    rate: Option<f64>,
    /// Seconds of load before measuring starts (same schedule, not counted): new
    /// connections, a fresh process and cold caches are not the steady state being measured.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
    /// Generator threads.
    #[arg(long, default_value_t = 1)]
    threads: usize,
}

/// The most requests a second `--rate` accepts.
const MAX_RATE: f64 = 10_000_000.0;
/// The longest `--duration` and `--warmup` accepted, in seconds (a day).
const MAX_SECONDS: f64 = 86_400.0;

impl Drive {
    /// Refuses values the generator cannot run with (instead of failing half-way).
    fn check(&self) -> Result<()> {
        if !(self.duration > 0.0 && self.duration <= MAX_SECONDS) {
            bail!("--duration must be more than 0 and at most {MAX_SECONDS} seconds");
        }
        if !(self.warmup >= 0.0 && self.warmup <= MAX_SECONDS) {
            bail!("--warmup must be 0 to {MAX_SECONDS} seconds");
        }
        if let Some(rate) = self.rate {
            if !(rate > 0.0 && rate <= MAX_RATE) {
                bail!("--rate must be more than 0 and at most {MAX_RATE} requests a second");
            }
        }
        if self.concurrency == 0 || self.threads == 0 {
            bail!("--concurrency and --threads must be at least 1");
        }
        Ok(())
    }
}

/// Arguments of `shaken load verify`.
#[derive(Args, Debug)]
pub(crate) struct VerifyLoadArgs {
    #[command(flatten)]
    drive: Drive,
    /// The signing key whose certificate the verifier can fetch at --x5u.
    #[arg(long, value_name = "KEY.pem")]
    key: PathBuf,
    /// The x5u put in the tokens.
    #[arg(long, value_name = "URL")]
    x5u: String,
    /// How many distinct tokens to pre-sign.
    #[arg(long, default_value_t = 1000)]
    tokens: usize,
}

/// Arguments of `shaken load sign`.
#[derive(Args, Debug)]
pub(crate) struct LoadArgs {
    #[command(flatten)]
    drive: Drive,
    /// Registered calling numbers, one per line.
    #[arg(long, value_name = "FILE")]
    numbers: PathBuf,
    /// Share of requests from unregistered numbers (refused by the signer).
    #[arg(long, default_value_t = 0.1)]
    unregistered_share: f64,
}

/// Runs a `shaken load` command.
pub(crate) fn run(command: LoadCommand) -> Result<ExitCode> {
    match command {
        LoadCommand::Baseline { seconds } => {
            if !(seconds > 0.0 && seconds <= MAX_SECONDS) {
                bail!("--seconds must be more than 0 and at most {MAX_SECONDS}");
            }
            let (sign, verify) = baseline(Duration::from_secs_f64(seconds))?;
            println!(
                "{}",
                json!({"raw_sign_per_second": sign.round(), "raw_verify_per_second": verify.round()})
            );
            Ok(ExitCode::SUCCESS)
        }
        LoadCommand::Sign(args) => generator_runtime(&args.drive)?.block_on(load_sign(args)),
        LoadCommand::Verify(args) => generator_runtime(&args.drive)?.block_on(load_verify(args)),
    }
}

/// The load generator's runtime: `--threads` workers.
fn generator_runtime(drive: &Drive) -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(drive.threads.max(1))
        .enable_all()
        .build()?)
}

/// Raw ECDSA P-256 sign and verify operations per second on one core.
pub(crate) fn baseline(period: Duration) -> Result<(f64, f64)> {
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{
        EcdsaKeyPair, KeyPair, ParsedPublicKey, ECDSA_P256_SHA256_FIXED,
        ECDSA_P256_SHA256_FIXED_SIGNING,
    };
    let rng = SystemRandom::new();
    let document =
        EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).context("key")?;
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, document.as_ref())
        .context("key")?;
    let public = ParsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, pair.public_key().as_ref())
        .context("public key")?;
    let message = [0x42u8; 400];
    let signature = pair.sign(&rng, &message).context("sign")?;
    let rate = |op: &dyn Fn() -> bool| -> Result<f64> {
        let start = Instant::now();
        let mut n = 0u64;
        while start.elapsed() < period {
            for _ in 0..64 {
                if !op() {
                    bail!("baseline operation failed");
                }
            }
            n += 64;
        }
        Ok(n as f64 / start.elapsed().as_secs_f64())
    };
    let sign = rate(&|| pair.sign(&rng, &message).is_ok())?;
    let verify = rate(&|| public.verify_sig(&message, signature.as_ref()).is_ok())?;
    Ok((sign, verify))
}

/// A keep-alive HTTP/1.1 connection that sends one request at a time (no pipelining) and
/// reads the response by its Content-Length: the least work a client can do, so that the
/// generator takes as little CPU as possible from the service it measures.
///
/// The socket asks the kernel to time-stamp what it receives (`SO_TIMESTAMPNS`), so each
/// answer also has the time its last bytes reached this machine's socket: the "wire" latency,
/// which does not include how long the generator's own threads took to get to it. The time the
/// request was handed to the kernel is kept too, to tell how late the generator itself sent it.
struct Connection {
    stream: tokio::net::TcpStream,
    buffer: Vec<u8>,
    request: Vec<u8>,
}

/// What one exchange gave: the response's status, when the request had been written to the
/// socket, and when the response's last bytes arrived (kernel receive time-stamp, if the kernel
/// gave one).
struct Answer {
    status: u16,
    sent: SystemTime,
    arrived: Option<SystemTime>,
}

impl Connection {
    async fn open(addr: SocketAddr) -> Result<Self> {
        let stream = tokio::net::TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        nix::sys::socket::setsockopt(
            &stream,
            nix::sys::socket::sockopt::ReceiveTimestampns,
            &true,
        )
        .context("SO_TIMESTAMPNS")?;
        Ok(Self {
            stream,
            buffer: Vec::with_capacity(4096),
            request: Vec::with_capacity(1024),
        })
    }

    /// Sends a POST and returns the response status and arrival time.
    async fn post(&mut self, path: &str, body: &str) -> Result<Answer> {
        use tokio::io::AsyncWriteExt;
        self.request.clear();
        self.request.extend_from_slice(
            format!("POST {path} HTTP/1.1\r\nHost: load\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n", body.len())
                .as_bytes(),
        );
        self.request.extend_from_slice(body.as_bytes());
        self.stream.write_all(&self.request).await?;
        let sent = SystemTime::now();
        self.buffer.clear();
        let mut arrived = None;
        loop {
            let mut chunk = [0u8; 4096];
            let (n, stamp) = self
                .stream
                .async_io(tokio::io::Interest::READABLE, || {
                    receive(&self.stream, &mut chunk)
                })
                .await?;
            if n == 0 {
                bail!("connection closed");
            }
            arrived = stamp.or(arrived);
            self.buffer
                .extend_from_slice(chunk.get(..n).unwrap_or_default());
            let Some(end) = self.buffer.windows(4).position(|w| w == b"\r\n\r\n") else {
                continue;
            };
            let head =
                String::from_utf8_lossy(self.buffer.get(..end).unwrap_or_default()).into_owned();
            let status = head
                .split(' ')
                .nth(1)
                .and_then(|s| s.parse().ok())
                .context("bad status line")?;
            let length: usize = head
                .lines()
                .find_map(|l| {
                    l.split_once(':')
                        .filter(|(n, _)| n.eq_ignore_ascii_case("content-length"))
                })
                .and_then(|(_, v)| v.trim().parse().ok())
                .unwrap_or(0);
            if self.buffer.len() >= end + 4 + length {
                return Ok(Answer {
                    status,
                    sent,
                    arrived,
                });
            }
        }
    }
}

/// One non-blocking `recvmsg`: the bytes read and the kernel's receive time-stamp of the last
/// of them.
fn receive(
    stream: &tokio::net::TcpStream,
    chunk: &mut [u8],
) -> std::io::Result<(usize, Option<SystemTime>)> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    use std::os::fd::AsRawFd;
    let mut space = nix::cmsg_space!(nix::sys::time::TimeSpec);
    let mut iov = [std::io::IoSliceMut::new(chunk)];
    let message = recvmsg::<()>(
        stream.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_DONTWAIT,
    )?;
    let stamp = message.cmsgs().ok().and_then(|mut cmsgs| {
        cmsgs.find_map(|c| match c {
            ControlMessageOwned::ScmTimestampns(t) => {
                let secs = u64::try_from(t.tv_sec()).ok()?;
                let nanos = u32::try_from(t.tv_nsec()).ok()?;
                Some(SystemTime::UNIX_EPOCH + Duration::new(secs, nanos))
            }
            _ => None,
        })
    });
    Ok((message.bytes, stamp))
}

fn target(url: &str) -> Result<(SocketAddr, String)> {
    let rest = url
        .strip_prefix("http://")
        .context("--url must be http://HOST:PORT/PATH")?;
    let (authority, path) = rest
        .split_once('/')
        .map_or((rest, "/".to_owned()), |(a, p)| (a, format!("/{p}")));
    let addr = std::net::ToSocketAddrs::to_socket_addrs(authority)
        .with_context(|| format!("cannot resolve {authority}"))?
        .next()
        .context("no address")?;
    Ok((addr, path))
}

/// Latency histograms (microseconds, from when each request was due).
struct Latencies {
    /// Until the generator had read the whole answer.
    client: Histogram<u64>,
    /// Until the answer's last bytes reached the socket (kernel time-stamp).
    wire: Histogram<u64>,
    /// Until the generator had written the request (its own lateness: CPU it was not given).
    sent_late: Histogram<u64>,
    /// From the request written to the answer at the socket: the exchange alone, without the
    /// generator's lateness on either side (a diagnosis; the figures above are the measure).
    exchange: Histogram<u64>,
}

impl Latencies {
    /// One latency histogram: 1 µs to 60 s, three significant digits.
    fn histogram() -> Result<Histogram<u64>> {
        Ok(Histogram::new_with_bounds(1, 60_000_000, 3)?)
    }
}

struct Shared {
    latencies: Mutex<Latencies>,
    ok: AtomicU64,
    refused: AtomicU64,
    failed: AtomicU64,
    next: AtomicU64,
}

fn body(numbers: &[String], unregistered_share: f64, seed: u64) -> String {
    // A cheap deterministic mix (xorshift) is enough to spread the numbers.
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    let registered = numbers.get((x as usize / 7) % numbers.len().max(1));
    let orig = match registered {
        Some(tn) if (x % 10_000) as f64 / 10_000.0 >= unregistered_share => tn.clone(),
        _ => format!("1999{:07}", x % 10_000_000),
    };
    let iat = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    format!(
        r#"{{"signingRequest":{{"attest":"A","dest":{{"tn":["12125551213"]}},"iat":{iat},"orig":{{"tn":"{orig}"}},"origid":"{}"}}}}"#,
        uuid::Uuid::from_u128(
            (u128::from(x) << 64 | u128::from(seed)) & !(0xF000_u128 << 64) | (0x4000_u128 << 64)
        )
    )
}

async fn load_sign(args: LoadArgs) -> Result<ExitCode> {
    let numbers: Vec<String> = std::fs::read_to_string(&args.numbers)
        .with_context(|| format!("cannot read {}", args.numbers.display()))?
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    let share = args.unregistered_share;
    drive(
        args.drive,
        Arc::new(move |index| body(&numbers, share, index)),
    )
    .await
}

async fn load_verify(args: VerifyLoadArgs) -> Result<ExitCode> {
    let key = passport::SigningKey::from_pem(
        &std::fs::read(&args.key).with_context(|| format!("cannot read {}", args.key.display()))?,
    )?;
    let signer = passport::TokenSigner::new(key, args.x5u.clone());
    let now = super::unix_now()?;
    let mut calls = Vec::with_capacity(args.tokens.max(1));
    for i in 0..args.tokens.max(1) {
        let orig = format!("1215{:07}", i);
        let claims = passport::Claims::shaken(
            now,
            passport::Party::Tn(orig.clone()),
            passport::Dest::tns(vec!["12125551213".into()]).context("dest")?,
            passport::Attestation::A,
            uuid::Uuid::new_v4().to_string().parse()?,
        );
        calls.push((orig, signer.identity_header(&claims)?));
    }
    drive(
        args.drive,
        Arc::new(move |index| {
            let Some((orig, identity)) = calls.get((index as usize) % calls.len()) else {
                return String::new();
            };
            format!(
                r#"{{"verificationRequest":{{"from":{{"tn":"{orig}"}},"to":{{"tn":["12125551213"]}},"time":{now},"identity":"{identity}"}}}}"#
            )
        }),
    )
    .await
}

/// The open loop's schedule: request `i` is due at the start of millisecond
/// `floor(i * 1000 / rate)`. A thread releases each millisecond's requests on time (a permit
/// each); tokio's timer would release them up to 1-2 ms late (it rounds to whole milliseconds
/// twice), and that lateness would count as latency of the service.
struct Pacer {
    release: Arc<tokio::sync::Semaphore>,
    thread: std::thread::JoinHandle<()>,
}

impl Pacer {
    /// Starts the releasing thread for `tasks` connection tasks. After the last tick it gives
    /// each task one more permit, whose request is past the deadline and makes it stop: the
    /// requests already released are all sent first, however far behind the service is (closing
    /// the semaphore instead would drop them, and with them the slowest end of the run).
    fn start(rate: f64, start: Instant, deadline: Instant, tasks: usize) -> Self {
        let release = Arc::new(tokio::sync::Semaphore::new(0));
        let permits = Arc::clone(&release);
        let thread = std::thread::spawn(move || {
            let mut released = 0u64;
            for tick in 0u64.. {
                let at = start + Duration::from_millis(tick);
                if at >= deadline || permits.is_closed() {
                    break;
                }
                if let Some(wait) = at.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
                // Requests due by the end of this millisecond: ceil((tick + 1) * rate / 1000).
                let due = ((tick + 1) as f64 * rate / 1000.0).ceil() as u64;
                let add = usize::try_from(due.saturating_sub(released)).unwrap_or(0);
                permits.add_permits(add.min(tokio::sync::Semaphore::MAX_PERMITS / 2));
                released = due;
            }
            if !permits.is_closed() {
                permits.add_permits(tasks.min(tokio::sync::Semaphore::MAX_PERMITS / 2));
            }
        });
        Self { release, thread }
    }

    /// When request `index` is due, from the start.
    fn due(index: u64, rate: f64) -> Duration {
        Duration::from_millis((index as f64 * 1000.0 / rate.max(f64::MIN_POSITIVE)).floor() as u64)
    }

    fn stop(self) {
        self.release.close();
        let _ = self.thread.join();
    }
}

/// Runs a load: `make_body(index)` gives each request's JSON body.
async fn drive(
    args: Drive,
    make_body: Arc<dyn Fn(u64) -> String + Send + Sync>,
) -> Result<ExitCode> {
    args.check()?;
    let (addr, path) = target(&args.url)?;
    let shared = Arc::new(Shared {
        latencies: Mutex::new(Latencies {
            client: Latencies::histogram()?,
            wire: Latencies::histogram()?,
            sent_late: Latencies::histogram()?,
            exchange: Latencies::histogram()?,
        }),
        ok: AtomicU64::new(0),
        refused: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        next: AtomicU64::new(0),
    });
    let duration = Duration::from_secs_f64(args.duration);
    let start = Instant::now() + Duration::from_millis(200);
    // The wall-clock time of `start`, to compare kernel time-stamps with due times.
    let wall_start = SystemTime::now() + Duration::from_millis(200);
    let measured_from = start + Duration::from_secs_f64(args.warmup);
    let deadline = measured_from + duration;
    let pacer = args
        .rate
        .map(|rate| Pacer::start(rate, start, deadline, args.concurrency));
    let mut tasks = Vec::new();
    for _ in 0..args.concurrency {
        let (shared, make_body, path) = (Arc::clone(&shared), Arc::clone(&make_body), path.clone());
        let release = pacer.as_ref().map(|p| Arc::clone(&p.release));
        let rate = args.rate;
        tasks.push(tokio::spawn(async move {
            let mut connection = Connection::open(addr).await?;
            tokio::time::sleep_until(start.into()).await;
            loop {
                if let Some(release) = &release {
                    match release.acquire().await {
                        Ok(permit) => permit.forget(),
                        Err(_) => break,
                    }
                }
                let index = shared.next.fetch_add(1, Ordering::Relaxed);
                let due = match rate {
                    Some(rate) => start + Pacer::due(index, rate),
                    None => Instant::now(),
                };
                if due >= deadline {
                    break;
                }
                let answer = connection.post(&path, &make_body(index)).await;
                let (status, sent, arrived) =
                    answer.map_or((0, None, None), |a| (a.status, Some(a.sent), a.arrived));
                if status == 0 {
                    connection = Connection::open(addr).await?;
                }
                if due < measured_from {
                    continue;
                }
                let micros = |d: Duration| {
                    u64::try_from(d.as_micros())
                        .unwrap_or(u64::MAX)
                        .clamp(1, 60_000_000)
                };
                let client = micros(due.elapsed());
                let due_wall = wall_start + (due - start);
                // Without a time-stamp (or with a clock step) the wire figure is the client's.
                let wire = arrived
                    .and_then(|t| t.duration_since(due_wall).ok())
                    .map_or(client, |d| micros(d).min(client));
                // How late the generator wrote the request, and the exchange from then until the
                // answer reached the socket (both within `wire`, whose time line they split).
                let late = sent.and_then(|t| t.duration_since(due_wall).ok());
                let exchange = sent
                    .zip(arrived)
                    .and_then(|(sent, arrived)| arrived.duration_since(sent).ok());
                if let Ok(mut h) = shared.latencies.lock() {
                    let _ = h.client.record(client);
                    let _ = h.wire.record(wire);
                    let _ = h.sent_late.record(late.map_or(1, micros).min(wire));
                    let _ = h.exchange.record(exchange.map_or(wire, micros).min(wire));
                }
                match status {
                    200 => shared.ok.fetch_add(1, Ordering::Relaxed),
                    403 => shared.refused.fetch_add(1, Ordering::Relaxed),
                    _ => shared.failed.fetch_add(1, Ordering::Relaxed),
                };
            }
            anyhow::Ok(())
        }));
    }
    for task in tasks {
        task.await.context("load task")??;
    }
    if let Some(pacer) = pacer {
        pacer.stop();
    }
    // The measured period lasts until the last counted answer: a service that fell behind
    // answers after the deadline, and its throughput is what it achieved, not the rate asked.
    let elapsed = Instant::now()
        .saturating_duration_since(measured_from)
        .max(duration)
        .as_secs_f64();
    let latencies = shared
        .latencies
        .lock()
        .map_err(|_| anyhow::anyhow!("histogram lock"))?;
    let h = &latencies.client;
    let (ok, refused, failed) = (
        shared.ok.load(Ordering::Relaxed),
        shared.refused.load(Ordering::Relaxed),
        shared.failed.load(Ordering::Relaxed),
    );
    let ms = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    let summary = |h: &Histogram<u64>| json!({"p50": ms(h, 0.5), "p90": ms(h, 0.9), "p99": ms(h, 0.99), "max": h.max() as f64 / 1000.0});
    let result = json!({
        "mode": if args.rate.is_some() { "open" } else { "closed" },
        "target_rate": args.rate, "concurrency": args.concurrency, "seconds": elapsed,
        "warmup_seconds": args.warmup,
        "requests": ok + refused + failed, "signed": ok, "refused": refused, "failed": failed,
        "throughput_per_second": ((ok + refused + failed) as f64 / elapsed).round(),
        "latency_ms": summary(h),
        "wire_latency_ms": summary(&latencies.wire),
        "sent_late_ms": summary(&latencies.sent_late),
        "exchange_latency_ms": summary(&latencies.exchange),
    });
    if args.json {
        println!("{result}");
    } else {
        println!(
            "{} requests in {elapsed:.1} s: {} /s ({ok} signed, {refused} refused, {failed} failed); latency ms p50 {:.3} p90 {:.3} p99 {:.3} max {:.3}; on the wire p99 {:.3}; sent late p99 {:.3}; exchange p99 {:.3}",
            ok + refused + failed,
            result.get("throughput_per_second").cloned().unwrap_or_default(),
            ms(h, 0.5),
            ms(h, 0.9),
            ms(h, 0.99),
            h.max() as f64 / 1000.0,
            ms(&latencies.wire, 0.99),
            ms(&latencies.sent_late, 0.99),
            ms(&latencies.exchange, 0.99)
        );
    }
    Ok(if failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drive(rate: Option<f64>, duration: f64, warmup: f64, concurrency: usize) -> Drive {
        Drive {
            url: "http://127.0.0.1:1/".into(),
            concurrency,
            duration,
            rate,
            warmup,
            json: false,
            threads: 1,
        }
    }

    #[test]
    fn values_the_generator_cannot_run_with_are_refused() {
        assert!(drive(Some(1000.0), 10.0, 1.0, 8).check().is_ok());
        assert!(drive(None, 10.0, 0.0, 8).check().is_ok());
        for bad in [
            drive(Some(0.0), 10.0, 1.0, 8),
            drive(Some(-5.0), 10.0, 1.0, 8),
            drive(Some(f64::NAN), 10.0, 1.0, 8),
            drive(Some(1e20), 10.0, 1.0, 8),
            drive(None, -1.0, 1.0, 8),
            drive(None, f64::INFINITY, 1.0, 8),
            drive(None, 10.0, -1.0, 8),
            drive(None, 10.0, f64::NAN, 8),
            drive(None, 10.0, 1.0, 0),
        ] {
            assert!(bad.check().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn requests_are_due_at_the_start_of_their_millisecond() {
        assert_eq!(Pacer::due(0, 1000.0), Duration::ZERO);
        assert_eq!(Pacer::due(999, 1000.0), Duration::from_millis(999));
        // 2,500/s: requests 0-2 in millisecond 0, 3-4 in millisecond 1.
        assert_eq!(Pacer::due(2, 2500.0), Duration::ZERO);
        assert_eq!(Pacer::due(3, 2500.0), Duration::from_millis(1));
        assert_eq!(Pacer::due(5, 2500.0), Duration::from_millis(2));
        // Half a request a second: one every 2 s.
        assert_eq!(Pacer::due(3, 0.5), Duration::from_millis(6000));
    }
}
