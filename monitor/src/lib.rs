//! The monitoring platform (issue 17, GOVERNANCE.md §4): it takes the verifiers' call events
//! (and subscribers' complaints), keeps them for traceback, runs detectors of harassing and
//! spoofing callers over event-time windows, stores the alerts they raise, and serves them to
//! analysts over an API and a dashboard.
//!
//! A crate of its own because it is a separate service run by a different party (an analyst
//! team at a carrier or the regulator) over events from many verifiers; no role crate should
//! carry it, and the detectors must stay independent of where events come from (HTTP today,
//! a shared event stream tomorrow).
//!
//! - [`event`]: the event line (the verifier's, plus `ingress` and `kind`), parsed strictly;
//! - [`detect`]: the detectors and their windows, over event time, with bounded memory;
//! - [`dashboard`]: the analyst's page, script and style, compiled in;
//! - [`mix`]: a synthetic call mix with ground truth (tests, benches, the lab);
//! - [`alerts`]: the alert book: one open alert per subject and detector, closed after a
//!   quiet window;
//! - [`config`]: the whole TOML configuration (the service's keys and the detectors');
//! - [`store`]: the store of events, alerts and allow-list changes, SQLite in the data folder
//!   or [`pgstore`]: PostgreSQL shared by several instances (`serve --db`);
//! - [`journal`]: the append-only journal that makes an accepted body durable before its
//!   answer; [`indexer`]: the thread that fills the store's event tables behind it;
//! - [`state`]: the engine, the alert book and the store together: restore on start, ingest
//!   (detectors, alert changes, a journal frame per body), the queries;
//! - [`api`]: the HTTP API; [`traceback`]: asking the signer's trace endpoint;
//!   [`metrics`]: `/metrics`;
//! - [`server`]: `shaken monitor serve` as a process; [`load`]: the throughput run;
//! - [`consume`]: the call-event topic on Kafka consumed as a member of a consumer group
//!   (issue 19, section 2); [`seen`]: the events already taken, so a replayed record is
//!   counted once; [`shards`]: one detector engine per stream read in order (the pushed
//!   events, each partition owned), so partitions out of step do not make each other late;
//!   [`cluster`]: the alerts topic shared by a group's instances.
//!
//! Nothing here reads the clock: every window is over the events' own `time`; the service
//! reads it at its edge (retention, the time of an allow-list change).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod alerts;
pub mod api;
pub mod cluster;
pub mod config;
pub mod consume;
pub mod dashboard;
pub mod detect;
pub mod event;
pub mod indexer;
pub mod journal;
pub mod load;
pub mod metrics;
pub mod mix;
pub mod pgstore;
pub mod seen;
pub mod server;
pub mod shards;
pub mod state;
pub mod store;
pub mod traceback;
