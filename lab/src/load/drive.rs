//! Running a load: the connection tasks, the open loop's pacing, and the counting.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::connection::Connection;
use super::pacer::Pacer;
use super::report::{Latencies, LoadReport};
use super::requests::MakeBody;
use super::DriveOptions;
use crate::error::LabError;

/// What the connection tasks share.
struct Shared {
    latencies: Mutex<Latencies>,
    ok: AtomicU64,
    refused: AtomicU64,
    failed: AtomicU64,
    next: AtomicU64,
}

/// The address and path of an `http://HOST:PORT/PATH` URL.
fn target(url: &str) -> Result<(SocketAddr, String), LabError> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| LabError::Url(url.to_owned()))?;
    let (authority, path) = rest
        .split_once('/')
        .map_or((rest, "/".to_owned()), |(a, p)| (a, format!("/{p}")));
    let address = std::net::ToSocketAddrs::to_socket_addrs(authority)
        .map_err(|_| LabError::Resolve(authority.to_owned()))?
        .next()
        .ok_or_else(|| LabError::Resolve(authority.to_owned()))?;
    Ok((address, path))
}

/// Microseconds, clamped to the histograms' range.
fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros())
        .unwrap_or(u64::MAX)
        .clamp(1, 60_000_000)
}

/// Runs a load on the current tokio runtime: `make_body` gives each request's JSON body. Fails
/// on options it cannot run with, a target it cannot reach, or a connection it cannot reopen.
pub async fn drive(options: DriveOptions, make_body: MakeBody) -> Result<LoadReport, LabError> {
    options.check()?;
    let (address, path) = target(&options.url)?;
    let shared = Arc::new(Shared {
        latencies: Mutex::new(Latencies::new()?),
        ok: AtomicU64::new(0),
        refused: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        next: AtomicU64::new(0),
    });
    let duration = Duration::from_secs_f64(options.duration);
    let start = Instant::now() + Duration::from_millis(200);
    // The wall-clock time of `start`, to compare kernel time-stamps with due times.
    let wall_start = SystemTime::now() + Duration::from_millis(200);
    let measured_from = start + Duration::from_secs_f64(options.warmup);
    let deadline = measured_from + duration;
    let pacer = options
        .rate
        .map(|rate| Pacer::start(rate, start, deadline, options.concurrency));
    let mut tasks = Vec::new();
    for _ in 0..options.concurrency {
        let (shared, make_body, path) = (Arc::clone(&shared), Arc::clone(&make_body), path.clone());
        let release = pacer.as_ref().map(|p| Arc::clone(&p.release));
        let rate = options.rate;
        tasks.push(tokio::spawn(async move {
            let mut connection = Connection::open(address).await?;
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
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                let answer = connection.post(&path, &make_body(index, now)).await;
                let (status, sent, arrived) =
                    answer.map_or((0, None, None), |a| (a.status, Some(a.sent), a.arrived));
                if status == 0 {
                    connection = Connection::open(address).await?;
                }
                if due < measured_from {
                    continue;
                }
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
            Ok::<(), LabError>(())
        }));
    }
    for task in tasks {
        task.await.map_err(|e| LabError::Task(e.to_string()))??;
    }
    if let Some(pacer) = pacer {
        pacer.stop();
    }
    // The measured period lasts until the last counted answer: a service that fell behind
    // answers after the deadline, and its throughput is what it achieved, not the rate asked.
    let seconds = Instant::now()
        .saturating_duration_since(measured_from)
        .max(duration)
        .as_secs_f64();
    let latencies = shared
        .latencies
        .lock()
        .map_err(|_| LabError::Task("a connection task panicked holding the histograms".into()))?
        .clone();
    Ok(LoadReport {
        rate: options.rate,
        concurrency: options.concurrency,
        warmup: options.warmup,
        seconds,
        ok: shared.ok.load(Ordering::Relaxed),
        refused: shared.refused.load(Ordering::Relaxed),
        failed: shared.failed.load(Ordering::Relaxed),
        latencies,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_http_urls_with_a_port() {
        let (address, path) = target("http://127.0.0.1:8080/stir/v1/signing").unwrap();
        assert_eq!(address, SocketAddr::from(([127, 0, 0, 1], 8080)));
        assert_eq!(path, "/stir/v1/signing");
        assert_eq!(target("http://127.0.0.1:8080").unwrap().1, "/");
        assert!(matches!(
            target("https://127.0.0.1:8080/"),
            Err(LabError::Url(_))
        ));
        assert!(matches!(
            target("http://127.0.0.1/"),
            Err(LabError::Resolve(_))
        ));
    }

    /// A closed loop against a service that answers 200 to odd-numbered requests and 403 to
    /// the others, on one connection.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_closed_loop_counts_every_answer() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut pending = Vec::new();
            let mut chunk = [0u8; 4096];
            let mut answered = 0u64;
            loop {
                while let Some(end) = pending.windows(2).position(|w| w == b"}}") {
                    pending.drain(..end + 2);
                    answered += 1;
                    let answer: &[u8] = if answered % 2 == 1 {
                        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"
                    } else {
                        b"HTTP/1.1 403 Forbidden\r\nContent-Length: 2\r\n\r\n{}"
                    };
                    if socket.write_all(answer).await.is_err() {
                        return;
                    }
                }
                match socket.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => pending.extend_from_slice(&chunk[..n]),
                }
            }
        });
        let options = DriveOptions {
            url: format!("http://{address}/x"),
            concurrency: 1,
            duration: 0.2,
            rate: None,
            warmup: 0.0,
            threads: 1,
        };
        let make: MakeBody = Arc::new(|_, _| r#"{"a":{}}"#.to_owned());
        let report = drive(options, make).await.unwrap();
        assert!(report.requests() > 0);
        assert_eq!(report.failed, 0);
        assert!(
            report.ok.abs_diff(report.refused) <= 1,
            "{:?}",
            report.to_json()
        );
        assert!(report.seconds >= 0.2);
    }
}
