//! Detection quality through the service (issue 17 §6): the synthetic mixes replayed through
//! `POST /v1/events` of a monitor served on loopback (the store, the alert book and the
//! detectors as deployed), the alerts read back with `GET /v1/alerts`, scored against the
//! mix's ground truth: precision and recall over (subject, detector) at least 0.99, and at
//! least 99 % of true alerts within 60 s of the event time at which the behaviour crossed its
//! threshold.
//!
//! Each mix is sent twice, into two fresh monitors: "live", one body per minute of event time,
//! and "fast", bodies of 20,000 lines back to back; both must give the same alerts (every
//! alert's subject, detector, `time`, `count`, `closed`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::BTreeMap;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use monitor::config::MonitorConfig;
use monitor::detect::{DetectorId, Subject};
use monitor::mix::{Mix, MixConfig};
use serde_json::Value;

/// A monitor served in this process over `dir`, set up for `mix` (its country, gateways,
/// allow list and white-listed firms).
async fn serve(dir: &std::path::Path, mix: &Mix) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let mut config = MonitorConfig::default();
    let detection = mix.detection_config();
    config.detection.home_country = detection.home_country;
    config.detection.international_gateway_spcs = detection.international_gateway_spcs;
    let prepared = monitor::server::prepare(dir, &config).unwrap();
    for tn in mix.allow_list() {
        prepared.state.set_allowed(tn, true, 0).unwrap();
    }
    prepared.state.set_list_index(Some(mix.list_index()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(rest::http::serve(listener, prepared.api, None, async {
        let _ = stopped.await;
    }));
    (address, stop)
}

async fn request(address: SocketAddr, method: &str, path: &str, body: String) -> Value {
    let stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    let request = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "monitor")
        .header("content-type", "application/x-ndjson")
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&bytes));
    serde_json::from_slice(&bytes).unwrap()
}

/// Every alert: (subject, detector, time) -> (count, closed), and the first alert's time per
/// (subject, detector).
type Alerts = BTreeMap<(Subject, DetectorId, u64), (u64, bool)>;

async fn replay(mix: &Mix, bodies: Vec<String>) -> Alerts {
    let dir = tempfile::tempdir().unwrap();
    let (address, stop) = serve(dir.path(), mix).await;
    let mut accepted = 0;
    for body in bodies {
        let answer = request(address, "POST", "/v1/events", body).await;
        assert_eq!(answer["rejected"], serde_json::json!([]), "{answer}");
        accepted += answer["accepted"].as_u64().unwrap();
    }
    assert_eq!(accepted, mix.len() as u64, "every line acknowledged");
    let answer = request(address, "GET", "/v1/alerts?limit=10000", String::new()).await;
    let _ = stop.send(());
    let mut alerts = Alerts::new();
    for alert in answer["alerts"].as_array().unwrap() {
        let (kind, value) = alert["subject"]
            .as_object()
            .and_then(|o| o.iter().next())
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
            .unwrap();
        let subject = Subject::from_parts(&kind, &value).unwrap();
        let detector = DetectorId::from_name(alert["detector"].as_str().unwrap()).unwrap();
        alerts.insert(
            (subject, detector, alert["time"].as_u64().unwrap()),
            (
                alert["count"].as_u64().unwrap(),
                alert["closed"].as_bool().unwrap_or(false),
            ),
        );
    }
    alerts
}

/// One body per minute of event time (as a verifier pushing live would send them).
fn live_bodies(mix: &Mix) -> Vec<String> {
    let mut bodies: Vec<String> = Vec::new();
    let mut minute = None;
    for line in mix.lines() {
        let time = monitor::event::parse_line(&line).unwrap().time / 60;
        if minute != Some(time) {
            bodies.push(String::new());
            minute = Some(time);
        }
        let body = bodies.last_mut().unwrap();
        body.push_str(&line);
        body.push('\n');
    }
    bodies
}

/// Bodies of 20,000 lines, back to back.
fn fast_bodies(mix: &Mix) -> Vec<String> {
    let lines: Vec<String> = mix.lines().collect();
    lines
        .chunks(20_000)
        .map(|chunk| chunk.iter().map(|l| format!("{l}\n")).collect())
        .collect()
}

fn score(name: &str, mix: &Mix, alerts: &Alerts) {
    let mut first: BTreeMap<(Subject, DetectorId), u64> = BTreeMap::new();
    for (subject, detector, time) in alerts.keys() {
        let slot = first.entry((subject.clone(), *detector)).or_insert(*time);
        *slot = (*slot).min(*time);
    }
    let truth = mix.truth();
    let hits = first.keys().filter(|k| truth.contains_key(*k)).count();
    let false_alerts: Vec<_> = first.keys().filter(|k| !truth.contains_key(*k)).collect();
    let missed: Vec<_> = truth.keys().filter(|k| !first.contains_key(*k)).collect();
    let latencies: Vec<u64> = truth
        .iter()
        .filter_map(|(k, t)| first.get(k).map(|a| a.saturating_sub(*t)))
        .collect();
    let precision = hits as f64 / first.len().max(1) as f64;
    let recall = hits as f64 / truth.len().max(1) as f64;
    let within =
        latencies.iter().filter(|&&l| l <= 60).count() as f64 / latencies.len().max(1) as f64;
    println!(
        "{name}: {} events through POST /v1/events, {} true (subject, detector), {} alerted: \
         precision {precision:.4}, recall {recall:.4}, {:.2}% within 60 s (max latency {} s)",
        mix.len(),
        truth.len(),
        first.len(),
        within * 100.0,
        latencies.iter().max().unwrap_or(&0)
    );
    assert!(truth.len() >= 8, "offenders planted");
    assert!(
        precision >= 0.99,
        "{name}: precision {precision}, false alerts {false_alerts:?}"
    );
    assert!(recall >= 0.99, "{name}: recall {recall}, missed {missed:?}");
    assert!(within >= 0.99, "{name}: {within} within 60 s");
}

async fn check(name: &str, config: &MixConfig) {
    let mix = Mix::generate(config);
    let live = replay(&mix, live_bodies(&mix)).await;
    let fast = replay(&mix, fast_bodies(&mix)).await;
    score(&format!("{name}, live"), &mix, &live);
    score(&format!("{name}, fast"), &mix, &fast);
    let only_live: Vec<_> = live
        .iter()
        .filter(|(k, v)| fast.get(*k) != Some(*v))
        .collect();
    let only_fast: Vec<_> = fast
        .iter()
        .filter(|(k, v)| live.get(*k) != Some(*v))
        .collect();
    assert!(
        only_live.is_empty() && only_fast.is_empty(),
        "{name}: live and fast replay differ:\nlive only {only_live:?}\nfast only {only_fast:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn development_mix_through_http() {
    check(
        "development (seed 1)",
        &MixConfig {
            seed: 1,
            subscribers: 10_000,
            offenders: 6,
            busy: 3,
            allowed: 3,
            ..MixConfig::default()
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acceptance_mix_through_http() {
    check(
        "acceptance (seed 0x5ca1ab1e)",
        &MixConfig {
            seed: 0x5ca1_ab1e,
            start: 1_750_000_000,
            duration: 4 * 3600,
            subscribers: 15_000,
            offenders: 8,
            busy: 4,
            allowed: 4,
            jitter: 60,
        },
    )
    .await;
}
