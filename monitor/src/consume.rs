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
//! **Each partition is its own stream.** Records are ingested per partition into that
//! partition's detector engine ([`crate::shards`]), so partitions that are not in step (one
//! fetched ahead of another, one taken over with a backlog) never make each other's events
//! late.
//!
//! **Taking a partition over.** When a partition is assigned (at start, or when an instance
//! of the group joins, leaves or dies), its windows are rebuilt before it raises an alert:
//! the consumer looks up the group's committed offset, seeks back to the first record whose
//! timestamp is within the detectors' horizon ([`MonitorState::horizon`], plus a minute) of
//! the monitor's clock (`offsets_for_times`; the verifier's records carry the time they were
//! produced, which is the event's time within seconds), and shows the records up to the
//! committed offset to the partition's engine only ([`MonitorState::rebuild`]): not stored,
//! no alert. It then waits (at most [`CLUSTER_WAIT`]) until the alerts topic has been read
//! up to its current end, and adopts the cluster's open alerts about callers in the rebuilt
//! windows ([`MonitorState::end_rebuild`]), so that a caller still over its threshold
//! extends the alert its previous owner raised instead of raising another. From the
//! committed offset on, records are ingested as usual. Offsets are never committed during a
//! rebuild, and before each commit the alerts the body raised are flushed to the alerts
//! topic ([`MonitorState::flush_alerts`]), so an event whose offset is committed has its
//! alert on the topic for the next owner. Records of a partition fetched before its seek took
//! effect are dropped (neither ingested nor committed); a revoked partition's engine and open
//! alerts are forgotten ([`MonitorState::drop_partition`]).
//!
//! The alerts topic is the service's ([`crate::cluster`], started by
//! [`crate::server::run_with`]). Replayed records are recognized through
//! [`MonitorState::ingest_partition`] once the service has called
//! [`MonitorState::recognize_replays`] ([`crate::seen`]).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::statistics::Statistics;
use rdkafka::{Offset, TopicPartitionList};

use crate::state::MonitorState;

/// The topic when none is given: the verifier's default.
pub const DEFAULT_TOPIC: &str = "shaken.call-events";
/// The consumer group when none is given.
pub const DEFAULT_GROUP: &str = "shaken-monitor";
/// Longest wait, when a partition is taken over, for the alerts topic to be read up to its
/// end before the previous owner's open alerts are adopted.
pub const CLUSTER_WAIT: Duration = Duration::from_secs(10);
/// Longest wait for one broker request of a takeover (committed offset, offsets by time,
/// the alerts topic's ends).
const REQUEST_WAIT: Duration = Duration::from_secs(5);
/// Seconds of records read back on a takeover beyond the detectors' horizon.
const REBUILD_MARGIN: u64 = 60;

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
    /// Options for `brokers` with the default topic, group and alerts topic, rounds of up to
    /// 20,000 records gathered for at most 100 ms (a live stream's round ends at 100 ms; a
    /// backlog's is large, so the commit and the journal write are paid per 20,000).
    pub fn new(brokers: &str) -> Self {
        Self {
            brokers: brokers.to_owned(),
            topic: DEFAULT_TOPIC.to_owned(),
            group: DEFAULT_GROUP.to_owned(),
            alerts_topic: Some(crate::cluster::DEFAULT_ALERTS_TOPIC.to_owned()),
            batch_lines: 20_000,
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
    /// Partitions whose windows were rebuilt on assignment.
    pub rebuilds: AtomicU64,
    /// Records fetched for a partition before its seek took effect, dropped (read again).
    pub dropped: AtomicU64,
    /// Records on the broker past the group's committed offsets, summed over the partitions
    /// this member fetches (librdkafka's `consumer_lag`, every 5 s).
    pub lag: AtomicU64,
    /// Partitions owned.
    pub partitions: AtomicU64,
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
            (
                "monitor_kafka_rebuilds_total",
                "Partitions whose windows were rebuilt from the topic on assignment.",
                get(&self.rebuilds),
            ),
            (
                "monitor_kafka_dropped_records_total",
                "Records fetched before a partition's seek took effect (read again).",
                get(&self.dropped),
            ),
        ] {
            out.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}\n"
            ));
        }
        for (name, help, value) in [
            (
                "monitor_kafka_lag_records",
                "Records past the committed offsets, over the partitions owned (every 5 s).",
                get(&self.lag),
            ),
            (
                "monitor_kafka_partitions",
                "Partitions of the call-event topic owned.",
                get(&self.partitions),
            ),
        ] {
            out.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}\n"
            ));
        }
        out
    }
}

/// A partition assignment change, noted by [`MemberContext`] inside `poll`.
#[derive(Debug)]
enum Moved {
    Assigned(Vec<i32>),
    Revoked(Vec<i32>),
}

/// The consumer's context: notes the partitions of the topic assigned and revoked, for the
/// consumer loop to act on after `poll` returns (a rebuild needs broker requests and a seek,
/// which do not belong inside the rebalance callback).
#[derive(Debug)]
pub struct MemberContext {
    topic: String,
    moved: Mutex<Vec<Moved>>,
    stats: Arc<ConsumeStats>,
}

impl ClientContext for MemberContext {
    /// librdkafka's statistics (every 5 s): the consumer lag of the partitions fetched.
    fn stats(&self, statistics: Statistics) {
        let lag: i64 = statistics
            .topics
            .get(&self.topic)
            .map(|topic| {
                topic
                    .partitions
                    .iter()
                    .filter(|(id, _)| **id >= 0)
                    .map(|(_, p)| p.consumer_lag.max(0))
                    .sum()
            })
            .unwrap_or(0);
        self.stats
            .lag
            .store(u64::try_from(lag).unwrap_or(0), Ordering::Relaxed);
    }
}

impl ConsumerContext for MemberContext {
    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let partitions = |list: &TopicPartitionList| -> Vec<i32> {
            list.elements()
                .iter()
                .filter(|e| e.topic() == self.topic)
                .map(|e| e.partition())
                .collect()
        };
        let moved = match rebalance {
            Rebalance::Assign(list) => Moved::Assigned(partitions(list)),
            Rebalance::Revoke(list) => Moved::Revoked(partitions(list)),
            Rebalance::Error(error) => {
                tracing::warn!(%error, "kafka: rebalance");
                return;
            }
        };
        self.moved
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(moved);
    }
}

/// Where an owned partition is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Assigned (or its ingest failed); the group's committed offset not yet looked up or
    /// the seek not yet taken effect.
    Seeking,
    /// Sought to the last committed record, to learn its timestamp: the rebuild reads back
    /// the horizon before it (not before the clock, so a group that lags still rebuilds
    /// whole windows).
    Probing { until: i64 },
    /// Records before `until` (the committed offset) rebuild the windows; from it on they
    /// are ingested.
    Rebuilding { until: i64 },
    /// Ingesting.
    Live,
}

/// An owned partition.
#[derive(Clone, Copy, Debug)]
struct Owned {
    phase: Phase,
    /// The offset of the next record to handle.
    next: i64,
}

/// One record polled.
struct Polled {
    partition: i32,
    offset: i64,
    /// The record's timestamp, milliseconds since the epoch.
    timestamp: Option<i64>,
    payload: Vec<u8>,
}

/// Joins payloads into a body of newline-terminated lines.
fn body<'a>(records: impl Iterator<Item = &'a Polled>) -> Vec<u8> {
    let mut body = Vec::new();
    for record in records {
        body.extend_from_slice(&record.payload);
        body.push(b'\n');
    }
    body
}

/// A consumer-group member feeding a [`MonitorState`].
pub struct GroupConsumer {
    consumer: BaseConsumer<MemberContext>,
    options: ConsumeOptions,
    stats: Arc<ConsumeStats>,
    /// The alerts topic's ends, as last asked, shared by the takeovers of one round.
    alerts_ends: Mutex<Option<(Instant, TopicEnds)>>,
}

/// Each partition of a topic and the offset after its last record.
type TopicEnds = Vec<(i32, i64)>;

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
        let stats = Arc::new(ConsumeStats::default());
        let context = MemberContext {
            topic: options.topic.clone(),
            moved: Mutex::new(Vec::new()),
            stats: Arc::clone(&stats),
        };
        let consumer: BaseConsumer<MemberContext> = ClientConfig::new()
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
            .set("statistics.interval.ms", "5000")
            .create_with_context(context)
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
            stats,
            alerts_ends: Mutex::new(None),
        })
    }

    /// The counters (shared, readable while [`Self::run`] runs on another thread).
    pub fn stats(&self) -> Arc<ConsumeStats> {
        Arc::clone(&self.stats)
    }

    /// Consumes into `state` until `stop` is set, reading the monitor's clock (seconds since
    /// the epoch) with `clock` for each body and each takeover. Blocks: run it on a thread of
    /// its own.
    pub fn run(&self, state: &MonitorState, clock: impl Fn() -> u64, stop: &AtomicBool) {
        state.consume_partitions();
        let mut owned: BTreeMap<i32, Owned> = BTreeMap::new();
        while !stop.load(Ordering::Relaxed) {
            self.follow_rebalances(state, &mut owned);
            self.start_rebuilds(state, &mut owned);
            let records = self.gather();
            // A rebalance inside the polls: records of a partition no longer owned (or not
            // yet sought) are dropped below.
            self.follow_rebalances(state, &mut owned);
            let mut by_partition: BTreeMap<i32, Vec<Polled>> = BTreeMap::new();
            for record in records {
                by_partition
                    .entry(record.partition)
                    .or_default()
                    .push(record);
            }
            let mut commit = BTreeMap::new();
            for (partition, records) in by_partition {
                let Some(part) = owned.get_mut(&partition) else {
                    self.drop_records(records.len());
                    continue;
                };
                let until = match part.phase {
                    Phase::Seeking => {
                        self.drop_records(records.len());
                        continue;
                    }
                    Phase::Probing { until } => {
                        self.drop_records(records.len());
                        let stamp = records.first().and_then(|r| r.timestamp);
                        part.phase = self.seek_horizon(state, clock(), partition, until, stamp);
                        if part.phase == Phase::Live {
                            self.end_rebuild(state, partition);
                        }
                        continue;
                    }
                    Phase::Rebuilding { until } => until,
                    Phase::Live => i64::MIN,
                };
                let split = records.partition_point(|r| r.offset < until);
                let (old, new) = records.split_at(split);
                if !old.is_empty() {
                    state.rebuild(partition, &body(old.iter()), clock());
                }
                let last = records.last().map_or(part.next, |r| r.offset + 1);
                part.next = last;
                if part.phase != Phase::Live && (!new.is_empty() || last >= until) {
                    self.end_rebuild(state, partition);
                    part.phase = Phase::Live;
                }
                if new.is_empty() {
                    continue;
                }
                match state.ingest_partition(partition, &body(new.iter()), clock()) {
                    Ok(_) => {
                        commit.insert(partition, last);
                    }
                    Err(error) => {
                        // The engine may hold part of the body: the partition is rebuilt
                        // from the topic and the body read again, not retried on top.
                        self.stats.ingest_failures.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(%error, partition, "kafka: a body could not be stored; the partition is read again");
                        part.phase = Phase::Seeking;
                        if !stop.load(Ordering::Relaxed) {
                            std::thread::sleep(self.options.retry_pause);
                        }
                    }
                }
            }
            if !commit.is_empty() {
                // The alerts these events raised reach the topic before their offsets are
                // committed, so the partition's next owner finds them; if they do not, the
                // offsets wait for a later round (whose commit covers these records too).
                if state.flush_alerts(REQUEST_WAIT) {
                    self.commit(&commit);
                } else {
                    self.stats.commit_failures.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!("kafka: alerts not acknowledged by the alerts topic; offsets not committed yet");
                }
            }
        }
    }

    fn drop_records(&self, n: usize) {
        self.stats.dropped.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Acts on the partitions assigned and revoked since the last call: an assigned one waits
    /// for its seek ([`Self::start_rebuilds`]), a revoked one is forgotten.
    fn follow_rebalances(&self, state: &MonitorState, owned: &mut BTreeMap<i32, Owned>) {
        let moved = std::mem::take(
            &mut *self
                .consumer
                .context()
                .moved
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        for change in moved {
            match change {
                Moved::Assigned(partitions) => {
                    for partition in partitions {
                        tracing::info!(partition, "kafka: partition assigned");
                        owned.insert(
                            partition,
                            Owned {
                                phase: Phase::Seeking,
                                next: 0,
                            },
                        );
                    }
                }
                Moved::Revoked(partitions) => {
                    for partition in partitions {
                        tracing::info!(partition, "kafka: partition revoked");
                        owned.remove(&partition);
                        state.drop_partition(partition);
                    }
                }
            }
        }
        self.stats
            .partitions
            .store(owned.len() as u64, Ordering::Relaxed);
    }

    /// Looks up each newly assigned partition's committed offset and seeks to the last
    /// committed record (to learn its timestamp), or to the beginning when the group has
    /// committed none; a partition whose requests or seek fail is tried again next round.
    fn start_rebuilds(&self, state: &MonitorState, owned: &mut BTreeMap<i32, Owned>) {
        for (&partition, part) in owned.iter_mut() {
            if part.phase != Phase::Seeking {
                continue;
            }
            match self.seek_committed(partition) {
                Ok(phase) => {
                    state.begin_rebuild(partition);
                    part.phase = phase;
                    tracing::info!(partition, ?phase, "kafka: partition sought");
                    if phase == Phase::Live {
                        part.next = 0;
                        self.end_rebuild(state, partition);
                    }
                }
                Err(error) => {
                    tracing::debug!(%error, partition, "kafka: seek not yet possible");
                }
            }
        }
    }

    /// Seeks `partition` to its last committed record ([`Phase::Probing`]), or to its
    /// beginning when the group has committed none ([`Phase::Live`]).
    fn seek_committed(&self, partition: i32) -> Result<Phase, KafkaError> {
        let topic = self.options.topic.as_str();
        let mut list = TopicPartitionList::new();
        list.add_partition(topic, partition);
        let committed = self.consumer.committed_offsets(list, REQUEST_WAIT)?;
        let element = committed
            .find_partition(topic, partition)
            .ok_or(KafkaError::Seek("no committed offset answered".into()))?;
        element.error()?;
        match element.offset() {
            Offset::Offset(until) if until > 0 => {
                self.consumer
                    .seek(topic, partition, Offset::Offset(until - 1), REQUEST_WAIT)?;
                Ok(Phase::Probing { until })
            }
            _ => {
                self.consumer
                    .seek(topic, partition, Offset::Beginning, REQUEST_WAIT)?;
                Ok(Phase::Live)
            }
        }
    }

    /// Seeks `partition` back to the first record within the detectors' horizon (plus a
    /// minute) before the last committed record's timestamp `stamp` (or `now`, when it has
    /// none or is ahead of it); returns the phase the partition is then in. On a failure the
    /// partition goes back to [`Phase::Seeking`].
    fn seek_horizon(
        &self,
        state: &MonitorState,
        now: u64,
        partition: i32,
        until: i64,
        stamp: Option<i64>,
    ) -> Phase {
        let topic = self.options.topic.as_str();
        let now_ms = i64::try_from(now.saturating_mul(1000)).unwrap_or(i64::MAX);
        let reference = stamp.map_or(now_ms, |t| t.min(now_ms));
        let back = i64::try_from((state.horizon() + REBUILD_MARGIN).saturating_mul(1000))
            .unwrap_or(i64::MAX);
        let since = reference.saturating_sub(back).max(0);
        let sought = || -> Result<i64, KafkaError> {
            let mut times = TopicPartitionList::new();
            times.add_partition_offset(topic, partition, Offset::Offset(since))?;
            let found = self.consumer.offsets_for_times(times, REQUEST_WAIT)?;
            let element = found
                .find_partition(topic, partition)
                .ok_or(KafkaError::Seek("no offset for the time answered".into()))?;
            element.error()?;
            let start = match element.offset() {
                Offset::Offset(first) => first.min(until),
                // No record that recent: nothing to rebuild from.
                _ => until,
            };
            self.consumer
                .seek(topic, partition, Offset::Offset(start), REQUEST_WAIT)?;
            Ok(start)
        };
        match sought() {
            Ok(start) if start < until => {
                self.stats.rebuilds.fetch_add(1, Ordering::Relaxed);
                tracing::info!(partition, start, until, "kafka: partition rebuilding");
                Phase::Rebuilding { until }
            }
            Ok(_) => Phase::Live,
            Err(error) => {
                tracing::debug!(%error, partition, "kafka: seek back not yet possible");
                Phase::Seeking
            }
        }
    }

    /// Ends a partition's rebuild: waits (at most [`CLUSTER_WAIT`]) for the alerts topic to be
    /// read up to its end, then adopts the cluster's open alerts about the partition's callers.
    fn end_rebuild(&self, state: &MonitorState, partition: i32) {
        let Some(cluster) = state.cluster_alerts() else {
            state.end_rebuild(partition, &[]);
            return;
        };
        if let Some(topic) = &self.options.alerts_topic {
            let deadline = Instant::now() + CLUSTER_WAIT;
            match self.alerts_topic_ends(topic) {
                Ok(ends) => {
                    while !cluster.has_read(&ends) && Instant::now() < deadline {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    if !cluster.has_read(&ends) {
                        tracing::warn!(partition, "kafka: the alerts topic was not read to its end in time; adopting what is read");
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, partition, "kafka: the alerts topic's end is unknown; adopting what is read");
                }
            }
        }
        let adopted = state.end_rebuild(partition, &cluster.open_alerts());
        tracing::info!(partition, adopted, "kafka: partition rebuilt");
    }

    /// The alerts topic's ends, asked again unless asked within the last 500 ms (the
    /// partitions taken over in one round share one answer, asked after their assignment).
    fn alerts_topic_ends(&self, topic: &str) -> Result<Vec<(i32, i64)>, KafkaError> {
        let mut cached = self
            .alerts_ends
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((asked, ends)) = cached.as_ref() {
            if asked.elapsed() < Duration::from_millis(500) {
                return Ok(ends.clone());
            }
        }
        let asked = Instant::now();
        let ends = self.topic_ends(topic)?;
        *cached = Some((asked, ends.clone()));
        Ok(ends)
    }

    /// Each partition of `topic` and the offset after its last record.
    fn topic_ends(&self, topic: &str) -> Result<Vec<(i32, i64)>, KafkaError> {
        let metadata = self.consumer.fetch_metadata(Some(topic), REQUEST_WAIT)?;
        let mut ends = Vec::new();
        for t in metadata.topics().iter().filter(|t| t.name() == topic) {
            for p in t.partitions() {
                let (_, high) = self
                    .consumer
                    .fetch_watermarks(topic, p.id(), REQUEST_WAIT)?;
                ends.push((p.id(), high));
            }
        }
        Ok(ends)
    }

    /// Polls up to `batch_lines` records, waiting at most 100 ms for the first and
    /// `batch_wait` for the rest.
    fn gather(&self) -> Vec<Polled> {
        let mut records = Vec::new();
        let mut deadline: Option<Instant> = None;
        while records.len() < self.options.batch_lines {
            let wait = match deadline {
                None => Duration::from_millis(100),
                Some(deadline) => deadline.saturating_duration_since(Instant::now()),
            };
            match self.consumer.poll(wait) {
                Some(Ok(message)) => {
                    records.push(Polled {
                        partition: message.partition(),
                        offset: message.offset(),
                        timestamp: message.timestamp().to_millis(),
                        payload: message.payload().map(<[u8]>::to_vec).unwrap_or_default(),
                    });
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
            .fetch_add(records.len() as u64, Ordering::Relaxed);
        records
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
