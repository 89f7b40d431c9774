//! A real `shaken verifier serve` process configured with `[events] kafka` against a real
//! Kafka-API broker on loopback (Tansu, started by `kafka_test::Broker`): the records carry
//! the file's JSON lines, keyed by the calling number, one caller's lines in one partition in
//! their order; with the broker absent every call is still answered while its line waits in
//! the queue, and the lines arrive once the broker starts; a full queue and lines the broker
//! never acknowledges are counted in `/metrics`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use kafka_test::{read, Broker, Record};

use crate::http::{post_json, raw};
use crate::support::{listening_address, stderr_lines, tempdir, wait_for};

/// The topic, the verifier's default.
const TOPIC: &str = "shaken.call-events";

/// The callers, each a Kafka key.
const CALLERS: [&str; 4] = ["12155550101", "12155550102", "12155550103", "8613912345678"];

/// A `shaken verifier serve` process, its stderr lines and the address it listens on.
struct Verifier {
    child: Child,
    lines: Receiver<String>,
    address: SocketAddr,
}

impl Verifier {
    /// Writes a configuration with a file feed and `kafka_keys` under `[events]` into `dir`,
    /// starts the verifier on it and waits until it listens.
    fn start(dir: &Path, kafka_keys: &str) -> Self {
        std::fs::create_dir_all(dir.join("anchors")).unwrap();
        std::fs::copy(
            certs_test::pki_dir().join("ca/root.pem"),
            dir.join("anchors/sti-ca.pem"),
        )
        .unwrap();
        let config = dir.join("verifier.toml");
        std::fs::write(
            &config,
            format!(
                "listen = \"127.0.0.1:0\"\ntrust_anchors = \"anchors\"\n\n[events]\n\
                 file = \"events.jsonl\"\n{kafka_keys}"
            ),
        )
        .unwrap();
        let args = ["verifier", "serve", "--config", config.to_str().unwrap()];
        let mut child = Command::new(env!("CARGO_BIN_EXE_shaken"))
            .args(args)
            .env("SHAKEN_LOG", "info")
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = stderr_lines(&mut child);
        let address = listening_address(&mut child, &lines, "verifier listening", "verifier");
        Self {
            child,
            lines,
            address,
        }
    }

    /// One unsigned call from `from` to `to`, verified now: answered `No-TN-Validation`.
    async fn verify(&self, from: &str, to: &str) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let body = format!(
            r#"{{"verificationRequest":{{"from":{{"tn":"{from}"}},"to":{{"tn":["{to}"]}},"time":{now}}}}}"#
        );
        let reply = post_json(self.address, "/stir/v1/verification", &body, &[]).await;
        assert_eq!(
            reply.status,
            200,
            "{}",
            String::from_utf8_lossy(&reply.body)
        );
        assert_eq!(
            reply.json()["verificationResponse"]["verstat"],
            "No-TN-Validation"
        );
    }

    async fn metrics(&self) -> String {
        let reply = raw(
            self.address,
            b"GET /metrics HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n",
        )
        .await;
        String::from_utf8(reply.body).unwrap()
    }

    /// Polls `/metrics` until `name` reaches `at_least` (at most `within`).
    async fn wait_metric(&self, name: &str, at_least: u64, within: Duration) -> String {
        let started = Instant::now();
        loop {
            let text = self.metrics().await;
            if metric(&text, name) >= at_least {
                return text;
            }
            assert!(
                started.elapsed() < within,
                "{name} stayed below {at_least}:\n{text}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGTERM, then waits for `verifier stopped` in the log and a clean exit.
    fn terminate(mut self) {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(wait_for(&self.lines, "verifier stopped").is_some());
        assert!(self.child.wait().unwrap().success());
    }
}

/// The value of the metric `name` (a line `name VALUE`, labels included in `name`).
fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
}

const QUEUED: &str = "shaken_verifier_events_kafka_queued_total";
const DELIVERED: &str = "shaken_verifier_events_kafka_delivered_total";
const QUEUE_FULL: &str = "shaken_verifier_events_kafka_undelivered_total{reason=\"queue_full\"}";
const FAILED: &str = "shaken_verifier_events_kafka_undelivered_total{reason=\"failed\"}";
const IN_QUEUE: &str = "shaken_verifier_events_kafka_queue_lines";

/// `rounds` calls from each caller, interleaved, each to its own number.
async fn verify_rounds(verifier: &Verifier, first: usize, rounds: usize) {
    for round in first..first + rounds {
        for (c, from) in CALLERS.iter().enumerate() {
            verifier
                .verify(from, &format!("1212555{c}{round:03}"))
                .await;
        }
    }
}

/// Checks `records` against the file's lines: the same lines, each keyed by its `from`, each
/// caller's lines in one partition and in the file's order there.
fn assert_records_match_the_file(records: &[Record], file: &str) {
    let mut by_key: BTreeMap<&str, Vec<&Record>> = BTreeMap::new();
    for record in records {
        let line: serde_json::Value = serde_json::from_str(&record.value).unwrap();
        let key = record.key.as_deref().unwrap();
        assert_eq!(line["from"], key, "{record:?}");
        by_key.entry(key).or_default().push(record);
    }
    let mut file_by_caller: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for line in file.lines() {
        let value: serde_json::Value = serde_json::from_str(line).unwrap();
        let from = value["from"].as_str().unwrap().to_owned();
        file_by_caller.entry(from).or_default().push(line);
    }
    assert_eq!(
        by_key.keys().copied().collect::<Vec<_>>(),
        file_by_caller
            .keys()
            .map(String::as_str)
            .collect::<Vec<_>>()
    );
    // The four keys land in more than one of the three partitions (murmur2 of these numbers),
    // so order per key is checked across partitions, not within one.
    let used: std::collections::BTreeSet<i32> = records.iter().map(|r| r.partition).collect();
    assert!(used.len() > 1, "all keys in partitions {used:?}");
    for (key, mut records) in by_key {
        let partitions: std::collections::BTreeSet<i32> =
            records.iter().map(|r| r.partition).collect();
        assert_eq!(partitions.len(), 1, "{key} spread over {partitions:?}");
        records.sort_by_key(|r| r.offset);
        let values: Vec<&str> = records.iter().map(|r| r.value.as_str()).collect();
        assert_eq!(values, file_by_caller[key], "{key}: the topic's order");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_line_is_published_keyed_by_its_caller_in_order() {
    let broker = Broker::start().unwrap();
    broker.create_topic(TOPIC, 3).unwrap();
    let dir = tempdir();
    let verifier = Verifier::start(dir.path(), &format!("kafka = \"{}\"\n", broker.bootstrap()));
    verify_rounds(&verifier, 0, 5).await;
    let text = verifier
        .wait_metric(DELIVERED, 20, Duration::from_secs(20))
        .await;
    assert_eq!(metric(&text, QUEUED), 20);
    assert_eq!(metric(&text, DELIVERED), 20);
    assert_eq!(metric(&text, QUEUE_FULL) + metric(&text, FAILED), 0);
    assert_eq!(metric(&text, IN_QUEUE), 0);

    let records = read(&broker.bootstrap(), TOPIC, 3, 21, Duration::from_secs(5)).unwrap();
    // Twenty, no more: each line once.
    assert_eq!(records.len(), 20, "{records:?}\n{}", broker.log());
    let file = std::fs::read_to_string(dir.path().join("events.jsonl")).unwrap();
    assert_eq!(file.lines().count(), 20);
    assert_records_match_the_file(&records, &file);
    verifier.terminate();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lines_wait_for_an_absent_broker_and_arrive_once_it_starts() {
    let port = kafka_test::broker::free_port().unwrap();
    let dir = tempdir();
    let verifier = Verifier::start(
        dir.path(),
        &format!("kafka = \"127.0.0.1:{port}\"\nkafka_message_timeout_ms = 120000\n"),
    );
    // No broker: every call is answered while its line is still queued, so verification did
    // not wait for the broker.
    verify_rounds(&verifier, 0, 2).await;
    let text = verifier.metrics().await;
    assert_eq!(metric(&text, QUEUED), 8);
    assert_eq!(metric(&text, DELIVERED), 0);
    assert_eq!(metric(&text, IN_QUEUE), 8);

    // The broker starts on the port the verifier was told: the queued lines arrive, and the
    // calls made since come behind them.
    let broker = Broker::start_on(port).unwrap();
    broker.create_topic(TOPIC, 3).unwrap();
    verify_rounds(&verifier, 2, 1).await;
    let text = verifier
        .wait_metric(DELIVERED, 12, Duration::from_secs(60))
        .await;
    assert_eq!(metric(&text, QUEUE_FULL) + metric(&text, FAILED), 0);
    let records = read(&broker.bootstrap(), TOPIC, 3, 13, Duration::from_secs(5)).unwrap();
    assert_eq!(records.len(), 12, "{records:?}");
    let file = std::fs::read_to_string(dir.path().join("events.jsonl")).unwrap();
    assert_records_match_the_file(&records, &file);
    verifier.terminate();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_and_lines_never_acknowledged_are_counted() {
    let port = kafka_test::broker::free_port().unwrap();
    let dir = tempdir();
    let verifier = Verifier::start(
        dir.path(),
        &format!(
            "kafka = \"127.0.0.1:{port}\"\nkafka_queue_lines = 3\nkafka_message_timeout_ms = 500\n"
        ),
    );
    // Eight calls, all answered; three lines fit in the queue, five do not.
    verify_rounds(&verifier, 0, 2).await;
    let text = verifier.metrics().await;
    assert_eq!(metric(&text, QUEUED), 3);
    assert_eq!(metric(&text, QUEUE_FULL), 5);
    // No broker ever comes: the three queued lines are given up after their timeout.
    let text = verifier
        .wait_metric(FAILED, 3, Duration::from_secs(20))
        .await;
    assert_eq!(metric(&text, FAILED), 3);
    assert_eq!(metric(&text, DELIVERED), 0);
    assert_eq!(metric(&text, IN_QUEUE), 0);
    // The file feed got every line regardless.
    let file = std::fs::read_to_string(dir.path().join("events.jsonl")).unwrap();
    assert_eq!(file.lines().count(), 8);
    verifier.terminate();
}
