//! The alerts topic: every instance of a consumer group publishes the alerts it raises, and
//! reads the whole topic back, so that any instance's `GET /v1/alerts`, caller and SPC views
//! (and so the dashboard) show the whole cluster's alerts (issue 19, section 2).
//!
//! - **Publishing** ([`AlertPublisher`]): each alert the instance stores (opened, extended,
//!   closed) is published as one record, keyed by its subject (`caller:TN`, `spc:SPC`, ...),
//!   valued by an [`AlertRecord`]: the publishing instance's name and the alert, in the JSON
//!   `GET /v1/alerts` serves. Publishing never waits for the broker: a record that cannot be
//!   queued is counted in `monitor_alerts_topic_unpublished_total`.
//! - **Reading** ([`AlertReader`]): a consumer of its own, outside any group (no committed
//!   offsets), assigned every partition of the topic from the beginning, so a new or restarted
//!   instance learns every alert the topic retains. The latest record of each (instance,
//!   alert id) replaces the earlier ones in the [`ClusterAlerts`].
//! - **Serving** ([`ClusterAlerts::merge`]): the instance's own stored alerts and the cluster's
//!   are merged and deduplicated by (subject, detector, `time`): two instances that raised
//!   the same alert (a partition moved while the caller's window was full) show it once, the
//!   version that saw the most (latest `last`, then highest `count`, a closed one over an open
//!   one). Ids are each instance's own: an alert from another instance keeps the id it has
//!   there.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};

use crate::alerts::Alert;
use crate::detect::{DetectorId, Subject};
use crate::store::{AlertQuery, SubjectFilter};

/// The alerts topic when none is given.
pub const DEFAULT_ALERTS_TOPIC: &str = "shaken.alerts";

/// One record of the alerts topic.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertRecord {
    /// The instance that raised it (unique per process).
    pub instance: String,
    /// The call-event topic's partition whose events raised it (absent for pushed events):
    /// the partition's next owner adopts the open alerts tagged with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<i32>,
    /// The alert, as that instance stores it.
    pub alert: Alert,
}

/// Why the alerts topic cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClusterError {
    /// librdkafka refused the configuration.
    #[error("kafka: librdkafka refused the alerts topic client's configuration: {0}")]
    Config(#[source] KafkaError),
    /// A record of the alerts topic is not an [`AlertRecord`].
    #[error("alerts topic: a record is not an alert record: {0}")]
    Record(#[source] serde_json::Error),
}

/// An alert's origin: the instance that raised it and its id there.
type Origin = (String, u64);

/// The cluster's alerts as read from the alerts topic, and the counters of the topic.
#[derive(Debug, Default)]
pub struct ClusterAlerts {
    by_origin: Mutex<HashMap<Origin, (Option<i32>, Alert)>>,
    /// Per partition of the alerts topic, the offset after the last record read.
    positions: Mutex<HashMap<i32, i64>>,
    /// Records read from the alerts topic.
    pub read: AtomicU64,
    /// Records of the alerts topic that were not alert records (skipped).
    pub unreadable: AtomicU64,
    /// Alerts published.
    pub published: AtomicU64,
    /// Alerts that could not be queued for publishing.
    pub unpublished: AtomicU64,
    /// Closed alerts forgotten because they ended longer ago than the retention.
    pub forgotten: AtomicU64,
    /// Seconds a closed alert is kept after its last crossing (0: forever).
    keep_closed: AtomicU64,
    /// The latest `last` of any alert read.
    newest: AtomicU64,
}

/// Records read between two sweeps of the closed alerts past the retention.
const SWEEP_EVERY: u64 = 1024;

/// The key by which alerts from different instances are one alert.
fn identity(alert: &Alert) -> (Subject, DetectorId, u64) {
    (alert.subject.clone(), alert.detector, alert.time)
}

/// Whether `candidate` saw more of the alert than `held`.
fn saw_more(candidate: &Alert, held: &Alert) -> bool {
    (candidate.last, candidate.count, candidate.closed) > (held.last, held.count, held.closed)
}

/// Whether `alert` passes `query`'s filters (not its limit).
pub fn matches(alert: &Alert, query: &AlertQuery) -> bool {
    query.since.is_none_or(|since| alert.time >= since)
        && query.detector.is_none_or(|d| alert.detector == d)
        && match &query.subject {
            None => true,
            Some(SubjectFilter::Is(subject)) => &alert.subject == subject,
            Some(SubjectFilter::Named(value)) => alert.subject.value() == value,
        }
}

impl ClusterAlerts {
    /// Keeps a closed alert for `seconds` of alert time after its last crossing, then forgets
    /// it (the service passes its retention, as its own store does): what the topic holds is
    /// otherwise held in memory for as long as the process runs.
    pub fn keep_closed_for(&self, seconds: u64) {
        self.keep_closed.store(seconds, Ordering::Relaxed);
    }

    /// Takes one record's value; the latest record of an (instance, id) replaces the earlier.
    pub fn take(&self, value: &[u8]) -> Result<(), ClusterError> {
        let read = self.read.fetch_add(1, Ordering::Relaxed) + 1;
        let record: AlertRecord = match serde_json::from_slice(value) {
            Ok(record) => record,
            Err(error) => {
                self.unreadable.fetch_add(1, Ordering::Relaxed);
                return Err(ClusterError::Record(error));
            }
        };
        let newest = self.newest.fetch_max(record.alert.last, Ordering::Relaxed);
        let newest = newest.max(record.alert.last);
        let mut held = self.by_origin.lock().unwrap_or_else(|e| e.into_inner());
        held.insert(
            (record.instance, record.alert.id),
            (record.partition, record.alert),
        );
        let keep = self.keep_closed.load(Ordering::Relaxed);
        if keep > 0 && read.is_multiple_of(SWEEP_EVERY) {
            let before = held.len();
            held.retain(|_, (_, a)| !a.closed || a.last.saturating_add(keep) >= newest);
            self.forgotten
                .fetch_add((before - held.len()) as u64, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Notes that the reader has read `partition` of the alerts topic up to `offset`.
    pub fn read_up_to(&self, partition: i32, offset: i64) {
        self.note_position(partition, offset + 1);
    }

    /// Notes the reader's position in `partition`: the offset of the next record it will
    /// read (so every record before it is read, or was gone from the topic).
    pub fn note_position(&self, partition: i32, next: i64) {
        let mut positions = self.positions.lock().unwrap_or_else(|e| e.into_inner());
        let at = positions.entry(partition).or_insert(0);
        *at = (*at).max(next);
    }

    /// Whether the reader has read every partition up to (not including) the given offsets
    /// (the topic's ends at some moment; a partition whose end is 0 is empty).
    pub fn has_read(&self, ends: &[(i32, i64)]) -> bool {
        let positions = self.positions.lock().unwrap_or_else(|e| e.into_inner());
        ends.iter()
            .all(|(partition, end)| *end <= positions.get(partition).copied().unwrap_or(0))
    }

    /// The cluster's open alerts with the partition that raised them: every (subject,
    /// detector, time) once, as the instance that saw most of it has it, unless that version
    /// is closed.
    pub fn open_alerts(&self) -> Vec<(Option<i32>, Alert)> {
        let mut merged: HashMap<(Subject, DetectorId, u64), (Option<i32>, Alert)> = HashMap::new();
        let held = self.by_origin.lock().unwrap_or_else(|e| e.into_inner());
        for (partition, alert) in held.values() {
            let key = identity(alert);
            match merged.get(&key) {
                Some((_, kept)) if !saw_more(alert, kept) => {}
                _ => {
                    merged.insert(key, (*partition, alert.clone()));
                }
            }
        }
        merged.into_values().filter(|(_, a)| !a.closed).collect()
    }

    /// The instance's own alerts `local` (as its store answered `query`) merged with the
    /// cluster's that pass `query`, deduplicated by (subject, detector, time), newest first
    /// (by `time`, then id), at most `query.limit`.
    pub fn merge(&self, local: Vec<Alert>, query: &AlertQuery) -> Vec<Alert> {
        let mut merged: HashMap<(Subject, DetectorId, u64), Alert> = HashMap::new();
        let mut offer = |alert: Alert| {
            let key = identity(&alert);
            match merged.get(&key) {
                Some(held) if !saw_more(&alert, held) => {}
                _ => {
                    merged.insert(key, alert);
                }
            }
        };
        for alert in local {
            offer(alert);
        }
        {
            let held = self.by_origin.lock().unwrap_or_else(|e| e.into_inner());
            for (_, alert) in held.values().filter(|(_, a)| matches(a, query)) {
                offer(alert.clone());
            }
        }
        let mut out: Vec<Alert> = merged.into_values().collect();
        out.sort_by(|a, b| b.time.cmp(&a.time).then(b.id.cmp(&a.id)));
        out.truncate(query.limit);
        out
    }

    /// The alerts topic's counters in the Prometheus text format, for `/metrics`.
    pub fn render(&self) -> String {
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let mut out = String::new();
        for (name, help, value) in [
            (
                "monitor_alerts_topic_read_total",
                "Records read from the alerts topic.",
                get(&self.read),
            ),
            (
                "monitor_alerts_topic_unreadable_total",
                "Records of the alerts topic that were not alert records.",
                get(&self.unreadable),
            ),
            (
                "monitor_alerts_topic_forgotten_total",
                "Closed alerts of the cluster forgotten after the retention.",
                get(&self.forgotten),
            ),
            (
                "monitor_alerts_topic_published_total",
                "Alerts queued for the alerts topic.",
                get(&self.published),
            ),
            (
                "monitor_alerts_topic_unpublished_total",
                "Alerts that could not be queued for the alerts topic.",
                get(&self.unpublished),
            ),
        ] {
            out.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}\n"
            ));
        }
        out
    }
}

/// A producer of the alerts topic.
pub struct AlertPublisher {
    producer: ThreadedProducer<DefaultProducerContext>,
    topic: String,
    instance: String,
}

impl std::fmt::Debug for AlertPublisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlertPublisher")
            .field("topic", &self.topic)
            .field("instance", &self.instance)
            .finish_non_exhaustive()
    }
}

impl AlertPublisher {
    /// An idempotent producer of `topic` on `brokers`, publishing as `instance`.
    pub fn new(brokers: &str, topic: &str, instance: &str) -> Result<Self, ClusterError> {
        let producer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("client.id", "shaken-monitor-alerts")
            .set("enable.idempotence", "true")
            .set("partitioner", "murmur2_random")
            .set("linger.ms", "5")
            .create()
            .map_err(ClusterError::Config)?;
        Ok(Self {
            producer,
            topic: topic.to_owned(),
            instance: instance.to_owned(),
        })
    }

    /// Queues `alerts` (never waits for the broker), each keyed by its subject; counts what
    /// is queued and what is not in `counters`.
    pub fn publish(&self, alerts: &[Alert], partition: Option<i32>, counters: &ClusterAlerts) {
        for alert in alerts {
            let record = AlertRecord {
                instance: self.instance.clone(),
                partition,
                alert: alert.clone(),
            };
            let Ok(value) = serde_json::to_vec(&record) else {
                counters.unpublished.fetch_add(1, Ordering::Relaxed);
                continue;
            };
            let key = format!("{}:{}", alert.subject.kind(), alert.subject.value());
            match self
                .producer
                .send(BaseRecord::to(&self.topic).key(&key).payload(&value))
            {
                Ok(()) => counters.published.fetch_add(1, Ordering::Relaxed),
                Err((error, _)) => {
                    tracing::warn!(%error, "alerts topic: an alert was not queued");
                    counters.unpublished.fetch_add(1, Ordering::Relaxed)
                }
            };
        }
    }

    /// Waits at most `wait` for the queued alerts to be acknowledged (on shutdown, and by
    /// the consumer before it commits offsets). Returns whether none is left unacknowledged.
    pub fn flush(&self, wait: Duration) -> bool {
        if self.producer.in_flight_count() == 0 {
            return true;
        }
        match self.producer.flush(wait) {
            Ok(()) => true,
            Err(error) => {
                tracing::warn!(%error, "alerts topic: not every alert was acknowledged");
                false
            }
        }
    }
}

/// A reader of the whole alerts topic, outside any consumer group.
pub struct AlertReader {
    consumer: BaseConsumer,
    topic: String,
}

impl std::fmt::Debug for AlertReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlertReader")
            .field("topic", &self.topic)
            .finish_non_exhaustive()
    }
}

impl AlertReader {
    /// A reader of `topic` on `brokers`; it commits no offsets.
    pub fn new(brokers: &str, topic: &str, instance: &str) -> Result<Self, ClusterError> {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            // librdkafka wants a group id; this one is the instance's own and never committed.
            .set("group.id", format!("shaken-monitor-alerts-{instance}"))
            .set("client.id", "shaken-monitor-alerts")
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .create()
            .map_err(ClusterError::Config)?;
        Ok(Self {
            consumer,
            topic: topic.to_owned(),
        })
    }

    /// Assigns every partition of the topic from the beginning, once the topic's metadata
    /// is known (tried every second until `stop`). Returns whether it is assigned.
    fn assign(&self, stop: &AtomicBool) -> bool {
        while !stop.load(Ordering::Relaxed) {
            match self
                .consumer
                .fetch_metadata(Some(&self.topic), Duration::from_secs(2))
            {
                Ok(metadata) => {
                    let partitions: Vec<i32> = metadata
                        .topics()
                        .iter()
                        .filter(|t| t.name() == self.topic && t.error().is_none())
                        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
                        .collect();
                    if !partitions.is_empty() {
                        let mut list = TopicPartitionList::new();
                        for partition in partitions {
                            if let Err(error) =
                                list.add_partition_offset(&self.topic, partition, Offset::Beginning)
                            {
                                tracing::warn!(%error, partition, "alerts topic: partition");
                            }
                        }
                        match self.consumer.assign(&list) {
                            Ok(()) => return true,
                            Err(error) => tracing::warn!(%error, "alerts topic: assign"),
                        }
                    }
                }
                Err(error) => tracing::debug!(%error, "alerts topic: metadata"),
            }
            std::thread::sleep(Duration::from_secs(1));
        }
        false
    }

    /// Reads the topic into `cluster` until `stop` is set. Blocks: run it on a thread of its
    /// own.
    pub fn run(&self, cluster: &ClusterAlerts, stop: &AtomicBool) {
        if !self.assign(stop) {
            return;
        }
        let mut noted = std::time::Instant::now();
        while !stop.load(Ordering::Relaxed) {
            match self.consumer.poll(Duration::from_millis(100)) {
                Some(Ok(message)) => {
                    if let Some(value) = message.payload() {
                        if let Err(error) = cluster.take(value) {
                            tracing::warn!(%error, "alerts topic: a record skipped");
                        }
                    }
                    cluster.read_up_to(message.partition(), message.offset());
                }
                Some(Err(error)) => tracing::debug!(%error, "alerts topic: poll"),
                None => {}
            }
            // The consumer's own position also counts records gone from the topic
            // (retention) as passed, so a takeover does not wait for them.
            if noted.elapsed() >= Duration::from_millis(200) {
                noted = std::time::Instant::now();
                if let Ok(positions) = self.consumer.position() {
                    for element in positions.elements() {
                        if let Offset::Offset(next) = element.offset() {
                            cluster.note_position(element.partition(), next);
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(id: u64, tn: &str, time: u64, last: u64) -> Alert {
        Alert {
            id,
            subject: Subject::Caller(tn.into()),
            detector: DetectorId::HighFrequency,
            time,
            window: 60,
            count: 10,
            threshold: 10,
            samples: vec![],
            text: "t".into(),
            last,
            closed: false,
        }
    }

    fn record(instance: &str, alert: Alert) -> Vec<u8> {
        serde_json::to_vec(&AlertRecord {
            instance: instance.into(),
            partition: None,
            alert,
        })
        .unwrap_or_default()
    }

    fn all() -> AlertQuery {
        AlertQuery {
            limit: 100,
            ..AlertQuery::default()
        }
    }

    #[test]
    fn the_same_alert_from_two_instances_is_shown_once_as_the_one_that_saw_more() {
        let cluster = ClusterAlerts::default();
        assert!(cluster.take(&record("a", alert(1, "1", 100, 100))).is_ok());
        assert!(cluster.take(&record("b", alert(7, "1", 100, 130))).is_ok());
        let merged = cluster.merge(vec![alert(1, "1", 100, 110)], &all());
        assert_eq!(merged, vec![alert(7, "1", 100, 130)]);
    }

    #[test]
    fn later_records_of_one_alert_replace_earlier_ones_and_others_are_kept() {
        let cluster = ClusterAlerts::default();
        assert!(cluster.take(&record("a", alert(1, "1", 100, 100))).is_ok());
        let mut closed = alert(1, "1", 100, 140);
        closed.closed = true;
        assert!(cluster.take(&record("a", closed.clone())).is_ok());
        assert!(cluster.take(&record("b", alert(1, "2", 200, 200))).is_ok());
        let merged = cluster.merge(vec![], &all());
        assert_eq!(merged, vec![alert(1, "2", 200, 200), closed]);
    }

    #[test]
    fn the_query_filters_and_limits_the_cluster_alerts() {
        let cluster = ClusterAlerts::default();
        for (i, tn) in ["1", "2", "3"].iter().enumerate() {
            let time = 100 + i as u64;
            assert!(cluster
                .take(&record("b", alert(i as u64, tn, time, time)))
                .is_ok());
        }
        let caller = AlertQuery {
            subject: Some(Subject::Caller("2".into()).into()),
            ..all()
        };
        assert_eq!(
            cluster.merge(vec![], &caller),
            vec![alert(1, "2", 101, 101)]
        );
        let since = AlertQuery {
            since: Some(101),
            limit: 1,
            ..AlertQuery::default()
        };
        assert_eq!(cluster.merge(vec![], &since), vec![alert(2, "3", 102, 102)]);
        let spc = AlertQuery {
            subject: Some(Subject::Spc("2".into()).into()),
            ..all()
        };
        assert!(cluster.merge(vec![], &spc).is_empty());
    }

    #[test]
    fn a_record_that_is_not_an_alert_is_refused_and_counted() {
        let cluster = ClusterAlerts::default();
        assert!(matches!(
            cluster.take(b"{\"alert\":1}"),
            Err(ClusterError::Record(_))
        ));
        assert_eq!(cluster.unreadable.load(Ordering::Relaxed), 1);
        assert!(cluster.merge(vec![], &all()).is_empty());
    }

    #[test]
    fn closed_alerts_past_the_retention_are_forgotten_open_ones_kept() {
        let cluster = ClusterAlerts::default();
        cluster.keep_closed_for(3600);
        let mut old_closed = alert(1, "8613800000001", 1000, 1000);
        old_closed.closed = true;
        let old_open = alert(2, "8613800000002", 1000, 1000);
        cluster.take(&record("a", old_closed)).unwrap();
        cluster.take(&record("a", old_open)).unwrap();
        // Enough later records to reach a sweep, a day later.
        for id in 3..=SWEEP_EVERY {
            let mut recent = alert(id, "8613800000003", 90_000 + id, 90_000 + id);
            recent.closed = true;
            cluster.take(&record("b", recent)).unwrap();
        }
        let query = AlertQuery {
            limit: 10_000,
            ..AlertQuery::default()
        };
        let merged = cluster.merge(Vec::new(), &query);
        assert!(
            !merged.iter().any(|a| a.id == 1),
            "the old closed one is forgotten"
        );
        assert!(merged.iter().any(|a| a.id == 2), "an open one is kept");
        assert_eq!(cluster.forgotten.load(Ordering::Relaxed), 1);
        assert!(cluster
            .render()
            .contains("monitor_alerts_topic_forgotten_total 1"));
    }
}
