//! `shaken monitor serve --kafka` as a process against a Kafka-API broker on loopback (Tansu,
//! started by `kafka_test::Broker`): the consumer runs beside the HTTP API, which still takes
//! pushed events; its counters are in `/metrics`; an alert raised from consumed events is
//! served by `GET /v1/alerts`; SIGTERM stops it cleanly with the consumed records' offsets
//! committed for its group.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use kafka_test::Broker;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};

use crate::http::{raw, Reply};
use crate::monitor::{call, t0};
use crate::support::{listening_address, stderr_lines, tempdir, wait_for};

/// The call-event topic of these tests (not the default, to show `--topic` is used).
const TOPIC: &str = "test.call-events";

/// A `shaken monitor serve --kafka` process.
pub(crate) struct KafkaMonitor {
    child: Child,
    lines: Receiver<String>,
    pub(crate) address: SocketAddr,
}

impl Drop for KafkaMonitor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl KafkaMonitor {
    /// Starts a monitor over `data` consuming `topic` on `broker` in `group`, with `extra`
    /// arguments.
    pub(crate) fn start(
        data: &Path,
        broker: &Broker,
        topic: &str,
        group: &str,
        extra: &[&str],
    ) -> Self {
        // SHAKEN_BIN: the measurement below runs the release binary.
        let binary = std::env::var_os("SHAKEN_BIN").map_or_else(
            || env!("CARGO_BIN_EXE_shaken").into(),
            std::path::PathBuf::from,
        );
        let mut child = Command::new(binary)
            .args(["monitor", "serve", "--listen", "127.0.0.1:0", "--data"])
            .arg(data)
            .args([
                "--kafka",
                &broker.bootstrap(),
                "--topic",
                topic,
                "--group",
                group,
            ])
            .args(extra)
            .env("SHAKEN_LOG", "info")
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = stderr_lines(&mut child);
        let address = listening_address(&mut child, &lines, "monitor listening", "the monitor");
        Self {
            child,
            lines,
            address,
        }
    }

    /// The log lines written since the last call (or since it listened).
    pub(crate) fn log_lines(&self) -> Vec<String> {
        self.lines.try_iter().collect()
    }

    pub(crate) async fn get(&self, path: &str) -> Reply {
        raw(
            self.address,
            format!("GET {path} HTTP/1.1\r\nHost: monitor\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
    }

    /// A counter or gauge of `/metrics` (0 when absent).
    pub(crate) async fn metric(&self, name: &str) -> u64 {
        let reply = self.get("/metrics").await;
        String::from_utf8_lossy(&reply.body)
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or(0)
    }

    /// Waits (at most 60 s) until the metric `name` is at least `value`; its last value.
    pub(crate) async fn wait_metric(&self, name: &str, value: u64) -> u64 {
        let started = Instant::now();
        loop {
            let seen = self.metric(name).await;
            if seen >= value || started.elapsed() > Duration::from_secs(60) {
                return seen;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub(crate) fn terminate(mut self) {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(wait_for(&self.lines, "monitor stopped").is_some());
        assert!(self.child.wait().unwrap().success());
    }
}

/// Publishes `lines` to `topic`, each keyed by its `from`, and waits for the acknowledgements.
pub(crate) fn publish(broker: &Broker, topic: &str, lines: &[String]) {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("partitioner", "murmur2_random")
        .set("enable.idempotence", "true")
        .create()
        .unwrap();
    for line in lines {
        let value: serde_json::Value = serde_json::from_str(line).unwrap();
        let key = value["from"].as_str().unwrap_or_default().to_owned();
        let mut record = BaseRecord::to(topic).key(&key).payload(line);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((_, back)) => {
                    producer.poll(Duration::from_millis(50));
                    record = back;
                }
            }
        }
    }
    producer.flush(Duration::from_secs(30)).unwrap();
}

/// The offsets `group` has committed on `topic`, summed over its `partitions`.
pub(crate) fn committed(broker: &Broker, topic: &str, group: &str, partitions: i32) -> i64 {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("group.id", group)
        .create()
        .unwrap();
    let mut list = TopicPartitionList::new();
    for p in 0..partitions {
        list.add_partition(topic, p);
    }
    consumer
        .committed_offsets(list, Duration::from_secs(10))
        .unwrap()
        .elements()
        .iter()
        .map(|e| match e.offset() {
            Offset::Offset(o) => o,
            _ => 0,
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_consumer_runs_beside_http_push_counts_in_metrics_and_stops_cleanly() {
    let broker = Broker::start().unwrap();
    broker.create_topic(TOPIC, 3).unwrap();
    // The alerts topic: a round's offsets are committed once its alerts are on it.
    broker
        .create_topic(monitor::cluster::DEFAULT_ALERTS_TOPIC, 1)
        .unwrap();
    let t0 = t0();
    // Twelve calls from one caller in a minute (high_frequency fires at eleven), two from
    // another.
    let mut lines: Vec<String> = (0..12)
        .map(|i| call(t0 + i, "8613800000001", i, &format!("k{i}")))
        .collect();
    lines.push(call(t0 + 1, "8613800000002", 100, "k100"));
    lines.push(call(t0 + 2, "8613800000002", 101, "k101"));
    publish(&broker, TOPIC, &lines);

    let dir = tempdir();
    let monitor = KafkaMonitor::start(dir.path(), &broker, TOPIC, "g1", &[]);
    assert_eq!(
        monitor
            .wait_metric("monitor_events_total{kind=\"verification\"}", 14)
            .await,
        14,
        "{}",
        broker.log()
    );
    assert_eq!(monitor.metric("monitor_kafka_records_total").await, 14);
    // Committed after the round's alert reached the alerts topic.
    assert!(
        monitor
            .wait_metric("monitor_kafka_bodies_committed_total", 1)
            .await
            >= 1
    );
    assert_eq!(
        monitor.metric("monitor_kafka_ingest_retries_total").await,
        0
    );
    let alerts = monitor
        .get("/v1/alerts?subject=8613800000001&detector=high-frequency")
        .await
        .json();
    assert_eq!(alerts["alerts"].as_array().unwrap().len(), 1, "{alerts}");

    // HTTP push still works beside it.
    let body = call(t0 + 30, "8613800000003", 200, "http-1") + "\n";
    let request = format!(
        "POST /v1/events HTTP/1.1\r\nHost: monitor\r\nContent-Type: application/x-ndjson\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let reply = raw(monitor.address, request.as_bytes()).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json()["accepted"], 1);
    assert_eq!(
        monitor
            .metric("monitor_events_total{kind=\"verification\"}")
            .await,
        15
    );
    assert_eq!(monitor.metric("monitor_kafka_records_total").await, 14);

    monitor.terminate();
    assert_eq!(committed(&broker, TOPIC, "g1", 3), 14);
}

/// The high-frequency alerts of `/v1/alerts` as (subject, time) pairs, sorted.
async fn high_frequency(monitor: &KafkaMonitor) -> Vec<(String, u64)> {
    let alerts = monitor
        .get("/v1/alerts?detector=high-frequency&limit=1000")
        .await
        .json();
    let mut pairs: Vec<(String, u64)> = alerts["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["subject"]["caller"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                a["time"].as_u64().unwrap_or_default(),
            )
        })
        .collect();
    pairs.sort();
    pairs
}

#[tokio::test(flavor = "multi_thread")]
async fn every_instance_of_a_group_serves_the_whole_clusters_alerts_once() {
    let broker = Broker::start().unwrap();
    let topic = "cluster.call-events";
    let alerts_topic = "cluster.alerts";
    broker.create_topic(topic, 4).unwrap();
    broker.create_topic(alerts_topic, 2).unwrap();
    let (dir_a, dir_b) = (tempdir(), tempdir());
    let extra = ["--alerts-topic", alerts_topic];
    let a = KafkaMonitor::start(dir_a.path(), &broker, topic, "cluster", &extra);
    let b = KafkaMonitor::start(dir_b.path(), &broker, topic, "cluster", &extra);
    // Both members in the group before anything is published, so the partitions are shared.
    tokio::time::sleep(Duration::from_secs(8)).await;

    // Eight callers, twelve calls each in a minute: each crosses high-frequency (at eleven)
    // once, at its eleventh call.
    let t0 = t0();
    let callers: Vec<String> = (1..=8).map(|c| format!("86138000000{c:02}")).collect();
    let mut lines = Vec::new();
    for (c, caller) in callers.iter().enumerate() {
        for i in 0..12 {
            let n = c as u64 * 100 + i;
            lines.push(call(t0 + i, caller, n, &format!("c{n}")));
        }
    }
    publish(&broker, topic, &lines);
    let expected: Vec<(String, u64)> = callers.iter().map(|c| (c.clone(), t0 + 10)).collect();

    let started = Instant::now();
    let (mut seen_a, mut seen_b) = (Vec::new(), Vec::new());
    while started.elapsed() < Duration::from_secs(60) {
        seen_a = high_frequency(&a).await;
        seen_b = high_frequency(&b).await;
        if seen_a == expected && seen_b == expected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(seen_a, expected, "{}", broker.log());
    assert_eq!(seen_b, expected);
    // Each instance stored only its partitions' events, the group took every event once,
    // and both instances published alerts (the partitions were shared).
    let events = "monitor_events_total{kind=\"verification\"}";
    assert_eq!(a.metric(events).await + b.metric(events).await, 96);
    assert!(a.metric("monitor_alerts_topic_published_total").await >= 1);
    assert!(b.metric("monitor_alerts_topic_published_total").await >= 1);

    // The caller view of an instance shows the alert whichever instance raised it, in the
    // JSON of a single node.
    for caller in &callers {
        let view_a = a.get(&format!("/v1/callers/{caller}")).await.json();
        let view_b = b.get(&format!("/v1/callers/{caller}")).await.json();
        assert_eq!(view_a["alerts"], view_b["alerts"], "{caller}");
        let alerts = view_a["alerts"].as_array().unwrap();
        assert_eq!(alerts.len(), 1, "{view_a}");
        assert_eq!(alerts[0]["detector"], "high-frequency");
        assert_eq!(alerts[0]["subject"]["caller"], caller.as_str());
        assert_eq!(alerts[0]["count"], 12, "extended by the twelfth call");
    }
    a.terminate();
    b.terminate();
}

/// The alerts of `/v1/alerts` about callers, as (caller, detector, time), sorted.
async fn caller_alerts(monitor: &KafkaMonitor) -> Vec<CallerAlert> {
    let alerts = monitor.get("/v1/alerts?limit=1000").await.json();
    let mut out: Vec<CallerAlert> = alerts["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| {
            Some(CallerAlert {
                caller: a["subject"]["caller"].as_str()?.to_owned(),
                detector: a["detector"].as_str()?.to_owned(),
                time: a["time"].as_u64()?,
                last: a["last"].as_u64()?,
                count: a["count"].as_u64()?,
                closed: a["closed"].as_bool()?,
            })
        })
        .collect();
    out.sort();
    out
}

/// A caller alert as `GET /v1/alerts` serves it, what the failover tests compare.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct CallerAlert {
    caller: String,
    detector: String,
    time: u64,
    last: u64,
    count: u64,
    closed: bool,
}

/// Waits (at most 120 s) until `group` has committed `total` offsets on `topic`; on time out
/// prints the consumer's log lines of `members`.
async fn wait_committed(
    broker: &Broker,
    topic: &str,
    group: &str,
    partitions: i32,
    total: i64,
    members: &[&KafkaMonitor],
) {
    let started = Instant::now();
    while committed(broker, topic, group, partitions) < total {
        if started.elapsed() >= Duration::from_secs(120) {
            for member in members {
                for line in member.log_lines() {
                    if line.contains("kafka") {
                        eprintln!("{line}");
                    }
                }
            }
            panic!(
                "{group} committed {} of {total}",
                committed(broker, topic, group, partitions)
            );
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// How partitions move halfway through the failover tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Move {
    /// Two instances from the start; one is `kill -9`'d.
    Kill,
    /// One instance from the start; a second joins the group.
    Join,
}

/// Issue 19 §2: two instances in one group on 4 partitions, `kill -9` of one halfway
/// through a synthetic mix with ground truth; the survivor (which takes over the dead
/// instance's partitions, rebuilds their windows from the topic and adopts their open alerts
/// from the alerts topic) serves the same caller alerts (time, last, count, closed) as a
/// single node that consumed the whole stream, and no event is late at either (each
/// partition has its own detector engine). It waits on the broker moving the killed member's
/// partitions (session timeout 10 s).
#[tokio::test(flavor = "multi_thread")]
#[ignore = "run by .ci/run with up to five attempts: Tansu sometimes never expires the killed member"]
async fn a_survivor_of_kill_9_serves_a_single_nodes_caller_alerts() {
    partitions_move_halfway(Move::Kill).await;
}

/// As above, with a second instance joining halfway: the first gives up two partitions (their
/// windows and open alerts dropped), the newcomer rebuilds them from the topic and adopts
/// their open alerts; both serve a single node's caller alerts.
#[tokio::test(flavor = "multi_thread")]
async fn an_instance_joining_halfway_leaves_a_single_nodes_caller_alerts() {
    partitions_move_halfway(Move::Join).await;
}

async fn partitions_move_halfway(how: Move) {
    use monitor::mix::{Mix, MixConfig};
    let mix = Mix::generate(&MixConfig {
        subscribers: 2_000,
        duration: 2 * 3600,
        ..MixConfig::default()
    });
    let lines: Vec<String> = mix.lines().collect();
    let total = lines.len() as i64;
    let (first, second) = lines.split_at(lines.len() / 2);

    let broker = Broker::start().unwrap();
    let (topic, alerts_topic, partitions) = ("mix.call-events", "mix.alerts", 4);
    broker.create_topic(topic, partitions).unwrap();
    broker.create_topic(alerts_topic, 2).unwrap();
    let setup = tempdir();
    let detection = mix.detection_config();
    std::fs::write(
        setup.path().join("allow.txt"),
        mix.allow_list().join("\n") + "\n",
    )
    .unwrap();
    let config = setup.path().join("monitor.toml");
    std::fs::write(
        &config,
        format!(
            "home_country = {:?}\ninternational_gateway_spcs = {:?}\nallow_file = {:?}\n",
            detection.home_country.unwrap_or_default(),
            detection.international_gateway_spcs,
            setup.path().join("allow.txt"),
        ),
    )
    .unwrap();
    let config = config.to_str().unwrap().to_owned();
    let args = |alerts: &'static str| {
        [
            "--config".to_owned(),
            config.clone(),
            "--alerts-topic".to_owned(),
            alerts.to_owned(),
        ]
    };

    let (dir_a, dir_b, dir_single) = (tempdir(), tempdir(), tempdir());
    let pair_args = args(alerts_topic);
    let pair_args: Vec<&str> = pair_args.iter().map(String::as_str).collect();
    let a = KafkaMonitor::start(dir_a.path(), &broker, topic, "pair", &pair_args);
    let mut joined = None;
    match how {
        Move::Kill => {
            // The pair: both in one group before anything is published.
            let b = KafkaMonitor::start(dir_b.path(), &broker, topic, "pair", &pair_args);
            tokio::time::sleep(Duration::from_secs(8)).await;
            publish(&broker, topic, first);
            wait_committed(
                &broker,
                topic,
                "pair",
                partitions,
                first.len() as i64,
                &[&a, &b],
            )
            .await;
            let events = "monitor_events_total{kind=\"verification\"}";
            assert!(b.metric(events).await > 0, "both instances took a share");
            // kill -9 halfway: the survivor takes over its partitions.
            let mut b = b;
            b.child.kill().unwrap();
            b.child.wait().unwrap();
            // The broker moves the dead member's partitions after its session timeout (10 s);
            // Tansu sometimes never does (docs/kafka.md, "The test broker"): fail fast then,
            // so .ci/run's next attempt comes sooner.
            let started = Instant::now();
            while a.metric("monitor_kafka_partitions").await != partitions as u64 {
                assert!(
                    started.elapsed() < Duration::from_secs(45),
                    "the broker did not give the survivor the dead member's partitions in 45 s"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        Move::Join => {
            tokio::time::sleep(Duration::from_secs(5)).await;
            publish(&broker, topic, first);
            wait_committed(
                &broker,
                topic,
                "pair",
                partitions,
                first.len() as i64,
                &[&a],
            )
            .await;
            // A second instance joins: some partitions move to it.
            let b = KafkaMonitor::start(dir_b.path(), &broker, topic, "pair", &pair_args);
            let started = Instant::now();
            // It rebuilds them when their next records arrive (the second half).
            while b.metric("monitor_kafka_partitions").await == 0 {
                if started.elapsed() > Duration::from_secs(120) {
                    for line in a.log_lines().into_iter().chain(b.log_lines()) {
                        if line.contains("kafka") {
                            eprintln!("{line}");
                        }
                    }
                    panic!(
                        "no partition moved: the newcomer owns {}",
                        b.metric("monitor_kafka_partitions").await
                    );
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            joined = Some(b);
        }
    }
    publish(&broker, topic, second);
    let members: Vec<&KafkaMonitor> = std::iter::once(&a).chain(joined.as_ref()).collect();
    wait_committed(&broker, topic, "pair", partitions, total, &members).await;

    // A single node on the same stream, with an alerts topic of its own.
    let single_args = args("single.alerts");
    let single_args: Vec<&str> = single_args.iter().map(String::as_str).collect();
    broker.create_topic("single.alerts", 1).unwrap();
    let single = KafkaMonitor::start(dir_single.path(), &broker, topic, "single", &single_args);
    wait_committed(&broker, topic, "single", partitions, total, &[&single]).await;
    tokio::time::sleep(Duration::from_secs(3)).await;

    let reference = caller_alerts(&single).await;
    let survivor = caller_alerts(&a).await;
    assert!(!reference.is_empty());
    let missing: Vec<_> = reference.iter().filter(|x| !survivor.contains(x)).collect();
    let extra: Vec<_> = survivor.iter().filter(|x| !reference.contains(x)).collect();
    eprintln!(
        "reference {} survivor {} missing {missing:?} extra {extra:?}",
        reference.len(),
        survivor.len()
    );
    let times: Vec<(String, String, u64)> = reference
        .iter()
        .map(|a| (a.caller.clone(), a.detector.clone(), a.time))
        .collect();
    let truth: Vec<(String, String, u64)> = mix
        .truth()
        .iter()
        .filter_map(|((subject, detector), time)| match subject {
            monitor::detect::Subject::Caller(tn) => {
                Some((tn.clone(), detector.as_str().to_owned(), *time))
            }
            _ => None,
        })
        .collect();
    eprintln!(
        "truth {truth:?}\nlate single {} survivor {}",
        single.metric("monitor_late_events_total").await,
        a.metric("monitor_late_events_total").await
    );
    assert_eq!(survivor, reference);
    let mut truth = truth;
    truth.sort();
    assert_eq!(
        times, truth,
        "the single node finds every planted offender, to the second"
    );
    assert_eq!(single.metric("monitor_late_events_total").await, 0);
    assert_eq!(a.metric("monitor_late_events_total").await, 0);
    match &joined {
        None => assert!(
            a.metric("monitor_kafka_adopted_alerts_total").await > 0,
            "the survivor adopted the dead instance's open alerts"
        ),
        Some(b) => {
            assert_eq!(b.metric("monitor_late_events_total").await, 0);
            assert!(b.metric("monitor_kafka_rebuilt_records_total").await > 0);
            assert_eq!(caller_alerts(b).await, reference, "the newcomer's view");
        }
    }
    a.terminate();
    single.terminate();
}

/// Waits until `f` (polled every 50 ms) is true, at most `limit`; returns the time taken.
async fn until<F, Fut>(what: &str, limit: Duration, mut f: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while !f().await {
        assert!(started.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    started.elapsed()
}

/// Issue 19 §2's figures (docs/PERFORMANCE.md "The monitor on Kafka"): events per second
/// through the broker into one instance and into two of one group, and the time a survivor
/// takes to own and rebuild a `kill -9`'d member's partitions. Prints, asserts only that every
/// record is committed and every partition taken over. Run on the release binary:
/// `cargo build --release && SHAKEN_BIN=target/release/shaken cargo test --test e2e
/// kafka_throughput_and_takeover_figures -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "a measurement: prints figures, run by hand on the release binary"]
async fn kafka_throughput_and_takeover_figures() {
    use monitor::mix::{Mix, MixConfig};
    let subscribers: u64 = std::env::var("MIX_SUBSCRIBERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let mix = Mix::generate(&MixConfig {
        subscribers,
        duration: 4 * 3600,
        ..MixConfig::default()
    });
    let lines: Vec<String> = mix.lines().collect();
    let total = lines.len() as i64;
    let broker = Broker::start().unwrap();
    let (topic, partitions) = ("load.call-events", 8);
    broker.create_topic(topic, partitions).unwrap();
    broker.create_topic("load.alerts", 2).unwrap();
    let started = Instant::now();
    publish(&broker, topic, &lines);
    let publish_rate = total as f64 / started.elapsed().as_secs_f64();
    eprintln!(
        "published {total} events in {:?} ({publish_rate:.0}/s)",
        started.elapsed()
    );
    let args = ["--alerts-topic", "load.alerts"];
    // The baseline, in the same run: a bare consumer reading every record from this broker.
    let started = Instant::now();
    let read = kafka_test::reader::read(
        &broker.bootstrap(),
        topic,
        partitions,
        lines.len(),
        Duration::from_secs(600),
    )
    .unwrap();
    assert_eq!(read.len(), lines.len());
    let bare = total as f64 / started.elapsed().as_secs_f64();
    eprintln!(
        "bare consumer: {total} records in {:?} ({bare:.0}/s)",
        started.elapsed()
    );

    let mut rates = Vec::new();
    for instances in [1_usize, 2] {
        let group = format!("load-{instances}");
        let dirs: Vec<_> = (0..instances).map(|_| tempdir()).collect();
        let members: Vec<KafkaMonitor> = dirs
            .iter()
            .map(|d| KafkaMonitor::start(d.path(), &broker, topic, &group, &args))
            .collect();
        // From the first record read to the last offset committed.
        let records = || async {
            let mut sum = 0;
            for m in &members {
                sum += m.metric("monitor_kafka_records_total").await;
            }
            sum
        };
        until("a first record", Duration::from_secs(120), || async {
            records().await > 0
        })
        .await;
        let (first_at, first) = (Instant::now(), records().await);
        until("all committed", Duration::from_secs(1200), || async {
            committed(&broker, topic, &group, partitions) >= total
        })
        .await;
        let seconds = first_at.elapsed().as_secs_f64();
        let rate = (total - first as i64) as f64 / seconds;
        eprintln!(
            "{instances} instance(s): {} events in {seconds:.1} s after the first: {rate:.0} events/s",
            total - first as i64
        );
        rates.push(rate);
    }

    // Takeover: two members, one killed; a steady trickle keeps the partitions live.
    let group = "takeover";
    let (da, db) = (tempdir(), tempdir());
    let a = KafkaMonitor::start(da.path(), &broker, topic, group, &args);
    let b = KafkaMonitor::start(db.path(), &broker, topic, group, &args);
    until(
        "all committed by the pair",
        Duration::from_secs(1200),
        || async { committed(&broker, topic, group, partitions) >= total },
    )
    .await;
    let owned_by_a = a.metric("monitor_kafka_partitions").await;
    assert!(
        owned_by_a < partitions as u64,
        "both members own partitions"
    );
    let rebuilds_before = a.metric("monitor_kafka_rebuilds_total").await;
    let mut b = b;
    b.child.kill().unwrap();
    b.child.wait().unwrap();
    let owned = until(
        "the survivor owns every partition",
        Duration::from_secs(180),
        || async { a.metric("monitor_kafka_partitions").await == partitions as u64 },
    )
    .await;
    let rebuilt = until(
        "the survivor rebuilt them",
        Duration::from_secs(600),
        || async {
            a.metric("monitor_kafka_rebuilds_total").await
                >= rebuilds_before + (partitions as u64 - owned_by_a)
        },
    )
    .await;
    let rebuilt_records = a.metric("monitor_kafka_rebuilt_records_total").await;
    // The takeover's steps, with their times, from the survivor's log.
    for line in a.log_lines() {
        if line.contains("kafka: partition") {
            eprintln!("{line}");
        }
    }
    eprintln!(
        "takeover: partitions owned {:.1} s after kill -9 (session timeout 10 s), rebuilt {:.1} s after ({rebuilt_records} records read back)",
        owned.as_secs_f64(),
        (owned + rebuilt).as_secs_f64(),
    );
    let (one, two) = (
        rates.first().copied().unwrap_or(0.0),
        rates.get(1).copied().unwrap_or(0.0),
    );
    eprintln!(
        "one instance / bare consumer: {:.2}; two instances / bare consumer: {:.2}; two / one: {:.2}",
        one / bare,
        two / bare,
        two / one
    );
    a.terminate();
}
