//! The monitor consuming the call-event topic as a consumer-group member, against a Tansu
//! broker on loopback: every record is ingested once, the group's committed offsets follow
//! the stored bodies, and the next member of the group starts after them, reading nothing
//! twice; and records read again (by another group, or after a restart) are recognized by
//! `origid` and counted once.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_test::Broker;
use monitor::config::MonitorConfig;
use monitor::consume::{ConsumeOptions, GroupConsumer};
use monitor::state::MonitorState;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};

const TOPIC: &str = "shaken.call-events";
const T0: u64 = 1_700_000_000;
const NOW: u64 = T0 + 86_400;
const CALLERS: [&str; 3] = ["8613800000001", "8613800000002", "8613800000003"];

/// `n` signed calls from each caller, from round `first`, each with its own origid.
fn publish(broker: &Broker, first: u64, n: u64) {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("partitioner", "murmur2_random")
        .create()
        .unwrap();
    for i in first..first + n {
        for (c, from) in CALLERS.iter().enumerate() {
            let line = format!(
                r#"{{"time":{},"from":"{from}","to":["86139{i:08}"],"verstat":"TN-Validation-Passed","attest":"A","spc":"709J","origid":"o{c}-{i}","flags":[]}}"#,
                T0 + i
            );
            producer
                .send(BaseRecord::to(TOPIC).key(*from).payload(&line))
                .unwrap();
        }
    }
    producer.flush(Duration::from_secs(10)).unwrap();
}

/// A metric of the state (0 when absent).
fn metric(state: &MonitorState, name: &str) -> u64 {
    let text = state.render_metrics();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0)
}

/// The events of kind verification the state took.
fn events(state: &MonitorState) -> u64 {
    metric(state, "monitor_events_total{kind=\"verification\"}")
}

/// Runs a member of the default group into `state` until it holds `expected` events (at
/// most 30 s), then stops it.
fn consume_until(state: &Arc<MonitorState>, broker: &Broker, expected: u64) {
    consume_in(state, broker, monitor::consume::DEFAULT_GROUP, || {
        events(state) >= expected
    });
}

/// Runs a member of `group` into `state` until `done` (at most 30 s), then stops it.
fn consume_in(state: &Arc<MonitorState>, broker: &Broker, group: &str, done: impl Fn() -> bool) {
    let mut options = ConsumeOptions::new(&broker.bootstrap());
    options.group = group.to_owned();
    options.batch_lines = 4;
    let consumer = GroupConsumer::new(options).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let thread = {
        let state = Arc::clone(state);
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || consumer.run(&state, || NOW, &stop))
    };
    let started = Instant::now();
    while !done() && started.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(50));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    thread.join().unwrap();
}

/// The group's committed offsets, summed over the topic's partitions.
fn committed(broker: &Broker, partitions: i32) -> i64 {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("group.id", monitor::consume::DEFAULT_GROUP)
        .create()
        .unwrap();
    let mut list = TopicPartitionList::new();
    for p in 0..partitions {
        list.add_partition(TOPIC, p);
    }
    let committed = consumer
        .committed_offsets(list, Duration::from_secs(10))
        .unwrap();
    committed
        .elements()
        .iter()
        .map(|e| match e.offset() {
            Offset::Offset(o) => o,
            _ => 0,
        })
        .sum()
}

#[test]
fn records_are_ingested_once_and_committed_after_they_are_stored() {
    let broker = Broker::start().unwrap();
    broker.create_topic(TOPIC, 2).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let state = Arc::new(
        MonitorState::open(dir.path(), &MonitorConfig::default(), Vec::new())
            .unwrap()
            .0,
    );
    publish(&broker, 0, 5);
    consume_until(&state, &broker, 15);
    assert_eq!(events(&state), 15);
    assert_eq!(committed(&broker, 2), 15, "{}", broker.log());
    for (c, caller) in CALLERS.iter().enumerate() {
        let view = state.caller(caller).unwrap();
        let origids: Vec<String> = view
            .recent
            .iter()
            .filter_map(|e| e.origid.clone())
            .collect();
        assert_eq!(origids.len(), 5, "{caller}: {origids:?}");
        assert!(origids.iter().all(|o| o.starts_with(&format!("o{c}-"))));
    }

    // Six more; the next member of the group starts at the committed offsets.
    publish(&broker, 5, 2);
    consume_until(&state, &broker, 21);
    assert_eq!(events(&state), 21, "nothing read twice");
    assert_eq!(committed(&broker, 2), 21);
}

/// Every alert of the state as (subject, detector, time, count, closed), sorted.
fn alerts(state: &MonitorState) -> Vec<(String, String, u64, u64, bool)> {
    let mut all: Vec<_> = state
        .alerts(&monitor::store::AlertQuery {
            limit: 1000,
            ..Default::default()
        })
        .unwrap()
        .into_iter()
        .map(|a| {
            (
                a.subject.describe(),
                a.detector.as_str().to_owned(),
                a.time,
                a.count,
                a.closed,
            )
        })
        .collect();
    all.sort();
    all
}

fn open(dir: &std::path::Path) -> Arc<MonitorState> {
    Arc::new(
        MonitorState::open(dir, &MonitorConfig::default(), Vec::new())
            .unwrap()
            .0,
    )
}

#[test]
fn records_read_again_are_recognized_and_counted_once() {
    let broker = Broker::start().unwrap();
    broker.create_topic(TOPIC, 2).unwrap();
    // Twelve calls a minute from each caller: each fires high-frequency.
    publish(&broker, 0, 12);

    let once_dir = tempfile::tempdir().unwrap();
    let once = open(once_dir.path());
    consume_in(&once, &broker, "once", || events(&once) >= 36);
    assert_eq!(events(&once), 36);
    let expected = alerts(&once);
    assert_eq!(expected.len(), 3, "{expected:?}");

    let dir = tempfile::tempdir().unwrap();
    let twice = open(dir.path());
    assert_eq!(twice.recognize_replays(1000).unwrap(), 0);
    consume_in(&twice, &broker, "first", || events(&twice) >= 36);
    // A second group reads every record again, as a partition's next owner would.
    consume_in(&twice, &broker, "second", || {
        metric(&twice, "monitor_replayed_events_total") >= 36
    });
    assert_eq!(metric(&twice, "monitor_replayed_events_total"), 36);
    assert_eq!(events(&twice), 36, "counted once");
    assert_eq!(alerts(&twice), expected);
    drop(twice);

    // After a restart the stored events are recognized again.
    let restarted = open(dir.path());
    assert_eq!(restarted.recognize_replays(1000).unwrap(), 36);
    consume_in(&restarted, &broker, "third", || {
        metric(&restarted, "monitor_replayed_events_total") >= 36
    });
    assert_eq!(metric(&restarted, "monitor_replayed_events_total"), 36);
    assert_eq!(events(&restarted), 0, "nothing taken again");
    assert_eq!(alerts(&restarted), expected);
    for caller in CALLERS {
        assert_eq!(restarted.caller(caller).unwrap().recent.len(), 12);
    }
}
