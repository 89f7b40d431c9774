//! The harness against a real Tansu: a topic with partitions, records written and read back,
//! and the broker gone once dropped.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use kafka_test::{read, Broker};
use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

#[test]
fn a_started_broker_serves_a_topic_and_is_gone_once_dropped() {
    let broker = Broker::start().unwrap();
    broker.create_topic("harness.check", 3).unwrap();
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .create()
        .unwrap();
    for (partition, value) in [(0, "a"), (2, "b"), (2, "c")] {
        producer
            .send(
                BaseRecord::to("harness.check")
                    .partition(partition)
                    .key("k")
                    .payload(value),
            )
            .unwrap();
    }
    producer.flush(Duration::from_secs(10)).unwrap();
    let mut records = read(
        &broker.bootstrap(),
        "harness.check",
        3,
        3,
        Duration::from_secs(20),
    )
    .unwrap();
    records.sort_by_key(|r| (r.partition, r.offset));
    let seen: Vec<(i32, &str, Option<&str>)> = records
        .iter()
        .map(|r| (r.partition, r.value.as_str(), r.key.as_deref()))
        .collect();
    assert_eq!(
        seen,
        [
            (0, "a", Some("k")),
            (2, "b", Some("k")),
            (2, "c", Some("k"))
        ],
        "{}",
        broker.log()
    );
    let port = broker.port();
    drop(broker);
    // Killed and waited for: nothing listens on its port any more.
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
}
