//! Reading a topic back in a test: a plain librdkafka consumer, no consumer group, every
//! partition assigned from its first offset, until a number of records has arrived or a
//! deadline passes.

use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use crate::BrokerError;

/// One record read back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// Its partition.
    pub partition: i32,
    /// Its offset in the partition.
    pub offset: i64,
    /// Its key, as UTF-8 (lossy), if any.
    pub key: Option<String>,
    /// Its value, as UTF-8 (lossy).
    pub value: String,
}

/// Reads `topic` at `bootstrap` from the beginning of each of its `partitions` until `count`
/// records have arrived or `timeout` has passed, and returns them in the order they arrived
/// (which keeps each partition's order).
pub fn read(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    count: usize,
    timeout: Duration,
) -> Result<Vec<Record>, BrokerError> {
    let failed = |what: &str, e: rdkafka::error::KafkaError| BrokerError::Topic {
        name: topic.to_owned(),
        detail: format!("{what}: {e}"),
    };
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "kafka-test-reader")
        .set("enable.auto.commit", "false")
        .set("log_level", "0")
        .create()
        .map_err(|e| failed("creating the consumer", e))?;
    let mut assignment = TopicPartitionList::new();
    for partition in 0..partitions {
        assignment
            .add_partition_offset(topic, partition, Offset::Beginning)
            .map_err(|e| failed("assigning", e))?;
    }
    consumer
        .assign(&assignment)
        .map_err(|e| failed("assigning", e))?;
    let deadline = Instant::now() + timeout;
    let mut records = Vec::new();
    while records.len() < count && Instant::now() < deadline {
        // Errors (a partition's end, a reconnection) are transient here: polled again until
        // the deadline.
        if let Some(Ok(message)) = consumer.poll(Duration::from_millis(100)) {
            records.push(Record {
                partition: message.partition(),
                offset: message.offset(),
                key: message
                    .key()
                    .map(|k| String::from_utf8_lossy(k).into_owned()),
                value: String::from_utf8_lossy(message.payload().unwrap_or_default()).into_owned(),
            });
        }
    }
    Ok(records)
}
