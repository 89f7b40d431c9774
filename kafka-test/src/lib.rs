//! A Kafka-API broker on loopback for the tests that need one: [Tansu](broker), Apache-2.0,
//! one process with in-memory storage, started on a free loopback port, killed when dropped;
//! and [`read`](reader), which reads a topic back with a plain librdkafka consumer.
//!
//! The broker is not built here: `.ci/run` installs it once (`cargo install tansu --locked
//! --features dynostore`) into a cache folder outside the clone, and [`broker::tansu_binary`]
//! finds it there (or where `SHAKEN_TANSU` says).

pub mod broker;
pub mod reader;

pub use broker::{Broker, BrokerError};
pub use reader::{read, Record};
