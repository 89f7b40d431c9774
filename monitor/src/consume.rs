//! Consuming the call-event topic as a member of a Kafka consumer group (issue 19, section 2;
//! see "Not yet" below).
//!
//! The consumer subscribes to the topic in group `group`, so that several monitors in one
//! group share its partitions. Each round polls up to `batch_lines` records (waiting at most
//! `batch_wait` for the first), joins their values into one body of lines and hands it to
//! [`MonitorState::ingest`], which stores the events, their alerts and their journal frame
//! before it returns. Only then are the offsets of the body's records committed
//! (synchronously): an event whose effects are not stored is never committed, so a monitor
//! that dies mid-body leaves its records to be read again by the partition's next owner
//! (at-least-once). A store error commits nothing: the same body is ingested again after a
//! pause, until it is stored or the consumer is stopped. A line the monitor refuses (bad JSON,
//! a time too far ahead) is counted by ingest like a refused pushed line and its offset
//! committed: it would be refused again.
//!
//! Rebalances happen inside `poll`, between rounds, when the previous round's offsets are
//! already committed: a partition that moves away takes no uncommitted stored event with it.
//!
//! Not yet (issue 19, section 2): the new owner of a moved partition does not rebuild the
//! windows of its callers from the topic before raising alerts; records of several partitions
//! are ingested in the order librdkafka hands them out (one partition's fetch, then
//! another's), not merged by event time, so a backlog's events reach the detectors late. The alerts topic is the
//! service's ([`crate::cluster`], started by [`crate::server::run_with`]). Replayed records are recognized through [`MonitorState::ingest_once`]
//! once the service has called [`MonitorState::recognize_replays`] ([`crate::seen`]).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use crate::state::MonitorState;

/// The topic when none is given: the verifier's default.
pub const DEFAULT_TOPIC: &str = "shaken.call-events";
/// The consumer group when none is given.
pub const DEFAULT_GROUP: &str = "shaken-monitor";

/// How the consumer runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsumeOptions {
    /// The bootstrap brokers, `HOST:PORT[,HOST:PORT...]`.
    pub brokers: String,
    /// The call-event topic.
    pub topic: String,
    /// The consumer group.
    pub group: String,
    /// The alerts topic the service publishes its alerts to and reads the cluster's from
    /// ([`crate::cluster`]); `None`: neither (the consumer itself never uses it).
    pub alerts_topic: Option<String>,
    /// Most records in one ingested body.
    pub batch_lines: usize,
    /// Longest wait for a body's records once the first has arrived.
    pub batch_wait: Duration,
    /// Pause before a body whose ingest failed is tried again.
    pub retry_pause: Duration,
}

impl ConsumeOptions {
    /// Options for `brokers` with the default topic, group and alerts topic, 1000-line bodies
    /// gathered for at most 100 ms.
    pub fn new(brokers: &str) -> Self {
        Self {
            brokers: brokers.to_owned(),
            topic: DEFAULT_TOPIC.to_owned(),
            group: DEFAULT_GROUP.to_owned(),
            alerts_topic: Some(crate::cluster::DEFAULT_ALERTS_TOPIC.to_owned()),
            batch_lines: 1000,
            batch_wait: Duration::from_millis(100),
            retry_pause: Duration::from_secs(1),
        }
    }
}

/// Why the consumer cannot run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConsumeError {
    /// librdkafka refused the configuration.
    #[error("kafka: librdkafka refused the consumer's configuration: {0}")]
    Config(#[source] KafkaError),
    /// The topic cannot be subscribed to.
    #[error("kafka: cannot subscribe to {topic}: {source}")]
    Subscribe {
        /// The topic.
        topic: String,
        /// What librdkafka said.
        #[source]
        source: KafkaError,
    },
}

/// What the consumer has done, for `/metrics` and tests.
#[derive(Debug, Default)]
pub struct ConsumeStats {
    /// Records read from the topic.
    pub records: AtomicU64,
    /// Bodies stored by ingest whose offsets were then committed.
    pub committed_bodies: AtomicU64,
    /// Ingests that failed (the body is tried again).
    pub ingest_failures: AtomicU64,
    /// Commits that failed (the records will be read again by the partition's next owner).
    pub commit_failures: AtomicU64,
}

impl ConsumeStats {
    /// The counters in the Prometheus text format, for `/metrics`.
    pub fn render(&self) -> String {
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let mut out = String::new();
        for (name, help, value) in [
            (
                "monitor_kafka_records_total",
                "Records read from the call-event topic.",
                get(&self.records),
            ),
            (
                "monitor_kafka_bodies_committed_total",
                "Bodies stored whose offsets were then committed.",
                get(&self.committed_bodies),
            ),
            (
                "monitor_kafka_ingest_retries_total",
                "Bodies whose ingest failed and were tried again.",
                get(&self.ingest_failures),
            ),
            (
                "monitor_kafka_commit_failures_total",
                "Offset commits that failed (their records are read again).",
                get(&self.commit_failures),
            ),
        ] {
            out.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}\n"
            ));
        }
        out
    }
}

/// A consumer-group member feeding a [`MonitorState`].
pub struct GroupConsumer {
    consumer: BaseConsumer,
    options: ConsumeOptions,
    stats: Arc<ConsumeStats>,
}

impl std::fmt::Debug for GroupConsumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl GroupConsumer {
    /// Creates the consumer and subscribes to the topic (joining the group happens in the
    /// first polls).
    pub fn new(options: ConsumeOptions) -> Result<Self, ConsumeError> {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &options.brokers)
            .set("group.id", &options.group)
            .set("client.id", "shaken-monitor")
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("partition.assignment.strategy", "cooperative-sticky")
            // A member that died (kill -9) loses its partitions after 10 s without heartbeats.
            .set("session.timeout.ms", "10000")
            .set("heartbeat.interval.ms", "1000")
            .create()
            .map_err(ConsumeError::Config)?;
        consumer
            .subscribe(&[options.topic.as_str()])
            .map_err(|source| ConsumeError::Subscribe {
                topic: options.topic.clone(),
                source,
            })?;
        Ok(Self {
            consumer,
            options,
            stats: Arc::new(ConsumeStats::default()),
        })
    }

    /// The counters (shared, readable while [`Self::run`] runs on another thread).
    pub fn stats(&self) -> Arc<ConsumeStats> {
        Arc::clone(&self.stats)
    }

    /// Consumes into `state` until `stop` is set, reading the monitor's clock with `clock`
    /// for each body. Blocks: run it on a thread of its own.
    pub fn run(&self, state: &MonitorState, clock: impl Fn() -> u64, stop: &AtomicBool) {
        while !stop.load(Ordering::Relaxed) {
            let (body, next) = self.gather();
            if next.is_empty() {
                continue;
            }
            loop {
                match state.ingest_once(&body, clock()) {
                    Ok(_) => break,
                    Err(error) => {
                        self.stats.ingest_failures.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(%error, "kafka: a body could not be stored; trying again");
                        if stop.load(Ordering::Relaxed) {
                            // Not stored, not committed: the next owner reads it again.
                            return;
                        }
                        std::thread::sleep(self.options.retry_pause);
                    }
                }
            }
            self.commit(&next);
        }
    }

    /// Polls one body: its lines (newline-terminated) and, per partition, the offset after
    /// its last record.
    fn gather(&self) -> (Vec<u8>, BTreeMap<i32, i64>) {
        let mut body = Vec::new();
        let mut next = BTreeMap::new();
        let mut lines = 0;
        let mut deadline: Option<Instant> = None;
        while lines < self.options.batch_lines {
            let wait = match deadline {
                None => Duration::from_millis(100),
                Some(deadline) => deadline.saturating_duration_since(Instant::now()),
            };
            match self.consumer.poll(wait) {
                Some(Ok(message)) => {
                    if let Some(payload) = message.payload() {
                        body.extend_from_slice(payload);
                        body.push(b'\n');
                    }
                    next.insert(message.partition(), message.offset() + 1);
                    lines += 1;
                    deadline.get_or_insert_with(|| Instant::now() + self.options.batch_wait);
                }
                Some(Err(error)) => {
                    tracing::debug!(%error, "kafka: poll");
                    if deadline.is_none() {
                        break;
                    }
                }
                None => break,
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                break;
            }
        }
        self.stats
            .records
            .fetch_add(lines as u64, Ordering::Relaxed);
        (body, next)
    }

    fn commit(&self, next: &BTreeMap<i32, i64>) {
        let mut offsets = TopicPartitionList::new();
        for (&partition, &offset) in next {
            if let Err(error) =
                offsets.add_partition_offset(&self.options.topic, partition, Offset::Offset(offset))
            {
                tracing::warn!(%error, partition, "kafka: offset not committed");
            }
        }
        match self.consumer.commit(&offsets, CommitMode::Sync) {
            Ok(()) => {
                self.stats.committed_bodies.fetch_add(1, Ordering::Relaxed);
            }
            Err(error) => {
                self.stats.commit_failures.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(%error, "kafka: commit failed; the records will be read again");
            }
        }
    }
}
