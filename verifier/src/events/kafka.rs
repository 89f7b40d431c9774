//! Publishing event lines to a Kafka topic (`[events] kafka`): each line is one record whose
//! value is the line (the same JSON as the file and the push carry) and whose key is the
//! calling number's canonical digits, so that one caller's events land in one partition and
//! keep their order there.
//!
//! The client is librdkafka (through `rdkafka`), configured as an idempotent producer
//! (`enable.idempotence`: acknowledged by all in-sync replicas, retried without duplicates or
//! reordering within a partition) with the `murmur2_random` partitioner, the Java client's
//! default, so that a key lands in the same partition whichever of the two wrote it.
//!
//! A verification never waits for the broker: [`KafkaPublisher::emit`] hands the line to
//! librdkafka's queue and returns. What happens to a line:
//!
//! - the queue holds `kafka_queue_lines` lines; a line that finds it full is not queued and is
//!   counted at once (`undelivered`, reason `queue_full`);
//! - a queued line is sent as soon as a broker leading its partition answers, retried across
//!   broker failures, and counted `delivered` when acknowledged;
//! - a line not acknowledged within `kafka_message_timeout_ms` of being queued (the brokers were
//!   away all that time), or refused by the broker for good, is counted (`undelivered`, reason
//!   `failed`);
//! - on [`KafkaPublisher::stop`] the publisher waits up to `kafka_flush_ms` for the queue to
//!   drain; what is still queued after that is purged and counted (`failed`).
//!
//! Lines are held in memory only: unlike the push's spool, nothing survives the process. A
//! line is therefore delivered at least once if the process lives until it is acknowledged;
//! a crash loses the lines still queued.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::ClientContext;

/// The topic when `kafka_topic` is not set.
pub const DEFAULT_TOPIC: &str = "shaken.call-events";

/// How long librdkafka waits for more lines to fill a batch (its default), milliseconds; the
/// message timeout must be above it.
pub const LINGER_MS: u64 = 5;

/// How a publisher runs (from `[events]`, see [`crate::config::EventsSection`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KafkaOptions {
    /// The bootstrap brokers, `HOST:PORT[,HOST:PORT...]`.
    pub brokers: String,
    /// The topic every line goes to.
    pub topic: String,
    /// Most lines waiting in librdkafka's queue (sent or not yet acknowledged).
    pub queue_lines: usize,
    /// Longest time a line may wait for its acknowledgement before it is given up.
    pub message_timeout: Duration,
    /// Longest wait for the queue to drain on [`KafkaPublisher::stop`].
    pub flush_timeout: Duration,
}

/// Why a publisher cannot start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KafkaStartError {
    /// librdkafka refused the configuration (a bad broker list, a value out of range).
    #[error("events.kafka: librdkafka refused the configuration: {0}")]
    Config(#[source] KafkaError),
    /// The thread that serves delivery reports cannot be started.
    #[error("events.kafka: cannot start the delivery thread: {0}")]
    Thread(#[source] std::io::Error),
}

/// What the publisher has done, in lines, for `/metrics`.
#[derive(Debug, Default)]
pub struct KafkaStats {
    /// Lines handed to librdkafka's queue.
    pub queued: AtomicU64,
    /// Lines the broker acknowledged.
    pub delivered: AtomicU64,
    /// Lines not queued because the queue was full.
    pub queue_full: AtomicU64,
    /// Lines librdkafka would not queue for another reason (a producer that met a fatal error).
    pub not_queued: AtomicU64,
    /// Queued lines given up: not acknowledged in time, refused by the broker, or purged at
    /// stop.
    pub failed: AtomicU64,
    /// Whether the last delivery report was a failure (to log a change once, not every line).
    failing: AtomicBool,
}

impl KafkaStats {
    /// Lines that will never reach the topic: `queue_full`, `not_queued` and `failed`.
    pub fn undelivered(&self) -> u64 {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        load(&self.queue_full) + load(&self.not_queued) + load(&self.failed)
    }

    /// Lines queued and neither acknowledged nor given up yet.
    pub fn in_queue(&self) -> u64 {
        // Read the outcomes first: a line is counted queued before its outcome.
        let done = self.delivered.load(Ordering::Acquire) + self.failed.load(Ordering::Acquire);
        self.queued.load(Ordering::Acquire).saturating_sub(done)
    }

    /// The Prometheus text of these counters.
    pub fn render(&self, out: &mut String) {
        let in_queue = self.in_queue();
        use std::fmt::Write;
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let p = "shaken_verifier_events_kafka";
        let _ = writeln!(
            out,
            "# HELP {p}_queued_total Event lines handed to the Kafka producer's queue.\n\
             # TYPE {p}_queued_total counter\n\
             {p}_queued_total {}\n\
             # HELP {p}_delivered_total Event lines the Kafka brokers acknowledged.\n\
             # TYPE {p}_delivered_total counter\n\
             {p}_delivered_total {}\n\
             # HELP {p}_undelivered_total Event lines that will never reach the topic: the queue was full, or the line was not acknowledged within kafka_message_timeout_ms, refused, or purged at stop.\n\
             # TYPE {p}_undelivered_total counter\n\
             {p}_undelivered_total{{reason=\"queue_full\"}} {}\n\
             {p}_undelivered_total{{reason=\"not_queued\"}} {}\n\
             {p}_undelivered_total{{reason=\"failed\"}} {}\n\
             # HELP {p}_queue_lines Event lines queued for Kafka and neither acknowledged nor given up yet.\n\
             # TYPE {p}_queue_lines gauge\n\
             {p}_queue_lines {in_queue}",
            load(&self.queued),
            load(&self.delivered),
            load(&self.queue_full),
            load(&self.not_queued),
            load(&self.failed),
        );
    }
}

/// librdkafka's callbacks: delivery reports into the counters, its logs into `tracing`.
struct Context {
    stats: Arc<KafkaStats>,
}

impl ClientContext for Context {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        // librdkafka's own lines name brokers, topics and partitions, never record contents.
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error
            | RDKafkaLogLevel::Warning => {
                tracing::warn!(target: "librdkafka", facility, "{message}")
            }
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
                tracing::info!(target: "librdkafka", facility, "{message}")
            }
            RDKafkaLogLevel::Debug => tracing::debug!(target: "librdkafka", facility, "{message}"),
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::warn!(target: "librdkafka", %error, reason, "events.kafka: client error");
    }
}

impl ProducerContext for Context {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => {
                self.stats.delivered.fetch_add(1, Ordering::Release);
                if self.stats.failing.swap(false, Ordering::Relaxed) {
                    tracing::info!("events.kafka: lines are acknowledged again");
                }
            }
            Err((error, _)) => {
                self.stats.failed.fetch_add(1, Ordering::Release);
                if !self.stats.failing.swap(true, Ordering::Relaxed) {
                    // The record (a subscriber's number and call) is not logged.
                    tracing::warn!(%error, "events.kafka: a line was given up; later failures are counted in shaken_verifier_events_kafka_undelivered_total");
                }
            }
        }
    }
}

/// The publisher: librdkafka's producer and a thread serving its delivery reports.
pub struct KafkaPublisher {
    producer: Arc<BaseProducer<Context>>,
    topic: String,
    flush_timeout: Duration,
    stats: Arc<KafkaStats>,
    stopping: Arc<AtomicBool>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl std::fmt::Debug for KafkaPublisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaPublisher")
            .field("topic", &self.topic)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

/// The librdkafka configuration of `options`.
fn client_config(options: &KafkaOptions) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &options.brokers)
        .set("client.id", "shaken-verifier")
        .set("enable.idempotence", "true")
        .set("partitioner", "murmur2_random")
        .set(
            "queue.buffering.max.messages",
            options.queue_lines.to_string(),
        )
        .set(
            "message.timeout.ms",
            options.message_timeout.as_millis().to_string(),
        )
        .set("linger.ms", LINGER_MS.to_string());
    config
}

impl KafkaPublisher {
    /// Creates the producer (it connects in the background: an absent broker is not an error
    /// here) and starts the thread that serves its delivery reports.
    pub fn start(options: KafkaOptions) -> Result<Self, KafkaStartError> {
        let stats = Arc::new(KafkaStats::default());
        let context = Context {
            stats: Arc::clone(&stats),
        };
        let producer: BaseProducer<Context> = client_config(&options)
            .create_with_context(context)
            .map_err(KafkaStartError::Config)?;
        let producer = Arc::new(producer);
        let stopping = Arc::new(AtomicBool::new(false));
        let thread = {
            let producer = Arc::clone(&producer);
            let stopping = Arc::clone(&stopping);
            std::thread::Builder::new()
                .name("events-kafka".into())
                .spawn(move || {
                    while !stopping.load(Ordering::Relaxed) {
                        producer.poll(Duration::from_millis(100));
                    }
                })
                .map_err(KafkaStartError::Thread)?
        };
        Ok(Self {
            producer,
            topic: options.topic,
            flush_timeout: options.flush_timeout,
            stats,
            stopping,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Queues one line (JSON, no newline) keyed by `key`, the calling number; never waits. A
    /// full queue (or a producer that has stopped) loses the line and counts it.
    pub fn emit(&self, key: &str, line: &str) {
        let record = BaseRecord::to(&self.topic).key(key).payload(line);
        match self.producer.send(record) {
            Ok(()) => {
                self.stats.queued.fetch_add(1, Ordering::Release);
            }
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                self.stats.queue_full.fetch_add(1, Ordering::Relaxed);
            }
            Err((error, _)) => {
                self.stats.not_queued.fetch_add(1, Ordering::Relaxed);
                if !self.stats.failing.swap(true, Ordering::Relaxed) {
                    tracing::warn!(%error, "events.kafka: a line could not be queued");
                }
            }
        }
    }

    /// The counters.
    pub fn stats(&self) -> &KafkaStats {
        &self.stats
    }

    /// Lines queued and neither acknowledged nor given up yet.
    pub fn in_queue(&self) -> u64 {
        self.stats.in_queue()
    }

    /// The Prometheus text of the counters and the queue's length.
    pub fn render(&self, out: &mut String) {
        self.stats.render(out);
    }

    /// Waits up to the flush timeout for the queued lines to be acknowledged, then purges
    /// the rest (counted as failed) and stops the delivery thread. Blocks until done; later
    /// calls do nothing.
    pub fn stop(&self) {
        let thread = self.thread.lock().ok().and_then(|mut t| t.take());
        let Some(thread) = thread else {
            return;
        };
        if self.producer.flush(self.flush_timeout).is_err() {
            let left = self.in_queue();
            tracing::warn!(
                left,
                "events.kafka: lines still unacknowledged at stop are given up"
            );
            self.producer
                .purge(rdkafka::producer::PurgeConfig::default().queue().inflight());
            // Serve the purge's delivery reports, so that they are counted.
            let _ = self.producer.flush(Duration::from_millis(500));
        }
        self.stopping.store(true, Ordering::Relaxed);
        let _ = thread.join();
    }
}

impl Drop for KafkaPublisher {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(brokers: &str) -> KafkaOptions {
        KafkaOptions {
            brokers: brokers.into(),
            topic: DEFAULT_TOPIC.into(),
            queue_lines: 3,
            message_timeout: Duration::from_millis(300),
            flush_timeout: Duration::from_millis(100),
        }
    }

    /// A loopback port nothing listens on (bound, then released).
    fn dead_port() -> u16 {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    }

    #[test]
    fn a_full_queue_counts_lines_at_once_and_an_absent_broker_counts_them_after_the_timeout() {
        let publisher =
            KafkaPublisher::start(options(&format!("127.0.0.1:{}", dead_port()))).unwrap();
        for i in 0..5 {
            publisher.emit("12155550100", &format!("{{\"n\":{i}}}"));
        }
        // Three fit in the queue, two do not: counted before emit returned.
        let stats = publisher.stats();
        assert_eq!(stats.queued.load(Ordering::Relaxed), 3);
        assert_eq!(stats.queue_full.load(Ordering::Relaxed), 2);
        assert_eq!(publisher.in_queue(), 3);
        // No broker: the three queued lines are given up once their timeout has passed.
        let mut waited = 0;
        while stats.failed.load(Ordering::Relaxed) < 3 && waited < 100 {
            std::thread::sleep(Duration::from_millis(50));
            waited += 1;
        }
        assert_eq!(stats.failed.load(Ordering::Relaxed), 3);
        assert_eq!(stats.delivered.load(Ordering::Relaxed), 0);
        assert_eq!(stats.undelivered(), 5);
        assert_eq!(publisher.in_queue(), 0);
        let mut text = String::new();
        publisher.render(&mut text);
        assert!(text
            .contains("shaken_verifier_events_kafka_undelivered_total{reason=\"queue_full\"} 2\n"));
        assert!(
            text.contains("shaken_verifier_events_kafka_undelivered_total{reason=\"failed\"} 3\n")
        );
        assert!(text.contains("shaken_verifier_events_kafka_queue_lines 0"));
    }

    #[test]
    fn stop_purges_what_the_broker_never_acknowledged_and_counts_it() {
        let mut options = options(&format!("127.0.0.1:{}", dead_port()));
        options.message_timeout = Duration::from_secs(60);
        let publisher = KafkaPublisher::start(options).unwrap();
        publisher.emit("12155550100", "{}");
        publisher.emit("12155550101", "{}");
        publisher.stop();
        assert_eq!(publisher.stats().failed.load(Ordering::Relaxed), 2);
        assert_eq!(publisher.in_queue(), 0);
        // A second stop does nothing.
        publisher.stop();
        assert_eq!(publisher.stats().failed.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn a_bad_configuration_is_refused_naming_the_section() {
        let mut options = options("127.0.0.1:9092");
        // librdkafka refuses a timeout not above linger.ms.
        options.message_timeout = Duration::from_millis(LINGER_MS);
        let error = KafkaPublisher::start(options).unwrap_err().to_string();
        assert!(
            error.starts_with("events.kafka: librdkafka refused"),
            "{error}"
        );
    }
}
