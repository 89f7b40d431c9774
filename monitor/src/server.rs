//! `shaken monitor serve` as a process: opens the state (restoring alerts and windows),
//! listens, serves the API until `shutdown` completes, prunes past retention every hour (the
//! clock is read here, at the edge, and passed in), and, with a `lists` section, runs the
//! regulator's list reloader and hands each new version to the detectors; with `--kafka`, a
//! member of the call-event topic's consumer group runs beside the API ([`run_with`]).

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::api::MonitorApi;
use crate::cluster::{AlertPublisher, AlertReader, ClusterAlerts};
use crate::config::{ConfigError, MonitorConfig};
use crate::consume::{ConsumeOptions, GroupConsumer};
use crate::state::MonitorState;
use crate::store::StoreError;
use crate::traceback::{TraceError, Tracer};

/// How often retention runs.
pub const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// Why the service could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// The configuration (or its allow file) is unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The store could not be opened or restored.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The trace client could not be built.
    #[error("trace endpoints: {0}")]
    Trace(#[from] TraceError),
    /// The address could not be bound.
    #[error(transparent)]
    Listen(#[from] rest::service::ListenError),
    /// The `lists` section could not be started.
    #[error(transparent)]
    Lists(Box<lists::consumer::ConsumerError>),
    /// The Kafka consumer could not be started.
    #[error(transparent)]
    Consume(#[from] crate::consume::ConsumeError),
    /// The alerts topic's clients could not be started.
    #[error(transparent)]
    Cluster(#[from] crate::cluster::ClusterError),
}

impl From<lists::consumer::ConsumerError> for ServeError {
    fn from(error: lists::consumer::ConsumerError) -> Self {
        Self::Lists(Box::new(error))
    }
}

/// How often the regulator's list held by the reloader is checked for a new version.
pub const LIST_CHECK_EVERY: Duration = Duration::from_secs(10);

/// Starts the regulator's list reloader of `lists` (when configured) and a task handing each
/// new version to the detectors.
fn follow_list(
    config: &MonitorConfig,
    state: &Arc<MonitorState>,
) -> Result<Option<tokio::task::JoinHandle<()>>, ServeError> {
    let Some(section) = &config.detection.lists else {
        return Ok(None);
    };
    let clock: Arc<dyn Fn() -> u64 + Send + Sync> =
        Arc::new(|| rest::service::unix_now().unwrap_or(0));
    let store = lists::consumer::start(section, &rest::fetch::FetchPolicy::default(), &[], clock)?;
    let state = Arc::clone(state);
    Ok(Some(tokio::spawn(async move {
        let mut held = None;
        let mut every = tokio::time::interval(LIST_CHECK_EVERY);
        loop {
            every.tick().await;
            let current = store.current();
            let version = current.as_ref().map(|list| list.version());
            if version != held {
                held = version;
                tracing::info!(version = ?version, "regulator list handed to the detectors");
                state.set_list(current);
            }
        }
    })))
}

/// A running service's parts, ready to serve.
#[derive(Debug)]
pub struct Prepared {
    /// The state.
    pub state: Arc<MonitorState>,
    /// The handler.
    pub api: Arc<MonitorApi>,
}

/// Opens the state in `dir` and builds the handler from `config`.
pub fn prepare(dir: &Path, config: &MonitorConfig) -> Result<Prepared, ServeError> {
    let allow = config.read_allow_file()?;
    let (state, restored) = MonitorState::open(dir, config, allow)?;
    match &config.service.db {
        // The URL's Display hides the password.
        Some(url) => tracing::info!(db = %url, "monitor store on PostgreSQL"),
        None => tracing::info!(data = %dir.display(), "monitor store on SQLite"),
    }
    tracing::info!(
        open_alerts = restored.open_alerts,
        replayed = restored.replayed,
        indexed_from_journal = restored.indexed,
        unreadable = restored.unreadable,
        "monitor state restored"
    );
    let state = Arc::new(state);
    let api = Arc::new(MonitorApi::new(
        Arc::clone(&state),
        Arc::new(Tracer::new(&config.service)?),
        config.service.api_clients()?,
        config.service.max_body_bytes,
        rest::service::unix_now,
    ));
    Ok(Prepared { state, api })
}

/// Runs the service: prepares it, listens on `listen`, logs `monitor listening
/// address=...`, prunes every [`PRUNE_EVERY`], and serves until `shutdown` completes.
pub async fn run(
    listen: SocketAddr,
    dir: &Path,
    config: &MonitorConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    run_with(listen, dir, config, None, shutdown).await
}

/// A consumer-group member running on a thread of its own, stopped by [`Self::stop`].
struct ConsumerThread {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<()>,
}

impl ConsumerThread {
    /// Joins the group and starts consuming into `state` (the clock read at each body).
    fn start(options: ConsumeOptions, state: &Arc<MonitorState>) -> Result<Self, ServeError> {
        let consumer = GroupConsumer::new(options)?;
        state.attach_consumer_stats(consumer.stats());
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let state = Arc::clone(state);
            let stop = Arc::clone(&stop);
            std::thread::Builder::new()
                .name("kafka-consumer".into())
                .spawn(move || {
                    consumer.run(&state, || rest::service::unix_now().unwrap_or(0), &stop);
                    // Dropping the consumer leaves the group: its partitions move at once.
                    drop(consumer);
                })
                .map_err(|error| StoreError::Folder {
                    path: Path::new("(kafka consumer)").to_owned(),
                    detail: format!("cannot start its thread: {error}"),
                })?
        };
        Ok(Self { stop, thread })
    }

    /// Asks the consumer to stop after the body in hand (stored and committed, or neither)
    /// and waits for it.
    async fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        let thread = self.thread;
        if tokio::task::spawn_blocking(move || thread.join())
            .await
            .is_err()
        {
            tracing::warn!("kafka: the consumer thread did not stop cleanly");
        }
    }
}

/// The alerts topic's reader on a thread of its own, and the publisher, stopped by
/// [`Self::stop`].
struct ClusterThread {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<()>,
    publisher: Arc<AlertPublisher>,
}

/// A name for this process, unique among a cluster's instances: the pid and the start time.
fn instance_name() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{}-{nanos}", std::process::id())
}

impl ClusterThread {
    /// Attaches the alerts topic `topic` on `brokers` to `state`: its alerts are published
    /// there, and the topic is read whole into the alerts `state` serves.
    fn start(
        brokers: &str,
        topic: &str,
        state: &Arc<MonitorState>,
        keep_closed: u64,
    ) -> Result<Self, ServeError> {
        let instance = instance_name();
        let publisher = Arc::new(AlertPublisher::new(brokers, topic, &instance)?);
        let reader = AlertReader::new(brokers, topic, &instance)?;
        let alerts = Arc::new(ClusterAlerts::default());
        alerts.keep_closed_for(keep_closed);
        state.attach_cluster(Arc::clone(&alerts), Some(Arc::clone(&publisher)));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = Arc::clone(&stop);
            std::thread::Builder::new()
                .name("kafka-alerts".into())
                .spawn(move || reader.run(&alerts, &stop))
                .map_err(|error| StoreError::Folder {
                    path: Path::new("(kafka alerts reader)").to_owned(),
                    detail: format!("cannot start its thread: {error}"),
                })?
        };
        tracing::info!(%topic, %instance, "kafka: alerts topic attached");
        Ok(Self {
            stop,
            thread,
            publisher,
        })
    }

    /// Stops the reader and gives the publisher up to 5 s to deliver what it holds.
    async fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        let thread = self.thread;
        let publisher = self.publisher;
        let _ = tokio::task::spawn_blocking(move || {
            publisher.flush(Duration::from_secs(5));
            thread.join()
        })
        .await;
    }
}

/// Runs the service as [`run`] does and, with `kafka`, a member of its consumer group on a
/// thread of its own beside the HTTP API (which still takes pushed events): it joins before
/// the API listens, its counters are in `/metrics`, and on shutdown it finishes the body in
/// hand and leaves the group before this returns. With `alerts_topic`, the alerts this
/// instance stores are published there and the whole topic is read, so the API shows the
/// cluster's alerts ([`crate::cluster`]).
pub async fn run_with(
    listen: SocketAddr,
    dir: &Path,
    config: &MonitorConfig,
    kafka: Option<ConsumeOptions>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    let dir = dir.to_owned();
    let config_copy = config.clone();
    let prepared = tokio::task::spawn_blocking(move || prepare(&dir, &config_copy))
        .await
        .map_err(|_| StoreError::Folder {
            path: Path::new("(start)").to_owned(),
            detail: "start-up was interrupted".into(),
        })??;
    let cluster = match kafka.as_ref() {
        Some(ConsumeOptions {
            brokers,
            alerts_topic: Some(topic),
            ..
        }) => Some(ClusterThread::start(
            brokers,
            topic,
            &prepared.state,
            // Closed alerts of other instances are forgotten after the retention, as this
            // instance's own are pruned from its store.
            config.service.retention_days.saturating_mul(86_400),
        )?),
        _ => None,
    };
    let consumer = match kafka {
        Some(options) => {
            let state = Arc::clone(&prepared.state);
            let filled = tokio::task::spawn_blocking(move || {
                state.recognize_replays(crate::seen::DEFAULT_CAP)
            })
            .await
            .map_err(|_| StoreError::Folder {
                path: Path::new("(start)").to_owned(),
                detail: "start-up was interrupted".into(),
            })??;
            prepared.state.consume_partitions();
            tracing::info!(
                filled,
                topic = %options.topic,
                group = %options.group,
                "kafka: joining the consumer group (replayed records are recognized)"
            );
            Some(ConsumerThread::start(options, &prepared.state)?)
        }
        None => None,
    };
    let (listener, bound) = rest::service::bind(listen).await?;
    tracing::info!(address = %bound, "monitor listening");
    let list_follower = follow_list(config, &prepared.state)?;
    let state = Arc::clone(&prepared.state);
    let pruner = tokio::spawn(async move {
        let mut every = tokio::time::interval(PRUNE_EVERY);
        loop {
            every.tick().await;
            let Some(now) = rest::service::unix_now() else {
                continue;
            };
            let state = Arc::clone(&state);
            match tokio::task::spawn_blocking(move || state.prune(now)).await {
                Ok(Ok(deleted)) => tracing::info!(deleted, "retention ran"),
                Ok(Err(error)) => tracing::error!(%error, "retention failed"),
                Err(_) => {}
            }
        }
    });
    rest::http::serve(listener, prepared.api, None, shutdown).await;
    if let Some(consumer) = consumer {
        consumer.stop().await;
    }
    if let Some(cluster) = cluster {
        cluster.stop().await;
    }
    pruner.abort();
    if let Some(follower) = list_follower {
        follower.abort();
    }
    tracing::info!("monitor stopped");
    Ok(())
}
