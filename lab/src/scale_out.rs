//! The lab on Kafka and PostgreSQL (issue 19 §4): `shaken lab --kafka BROKERS --postgres URL`.
//!
//! With both given, [`crate::world::Lab::start`] builds the same network with three changes:
//!
//! - the originating carrier's registry is imported into the PostgreSQL database
//!   ([`import_registry`], the registry's own import, replacing what was there), and that
//!   carrier runs **two signer instances**, each signing from a local copy of its own
//!   (`registry-copy-1.sqlite`, `registry-copy-2.sqlite`) fed by LISTEN/NOTIFY and a catch-up
//!   every [`SYNC_INTERVAL`] ([`synced_registry`]), so that a suspension made on PostgreSQL
//!   reaches both within [`SUSPENSION_BOUND`];
//! - the verifier publishes its event lines to the Kafka topic (keyed by the calling number)
//!   and keeps writing `events.jsonl`; it no longer pushes them over HTTP, because each monitor
//!   must see only the callers of its partitions (a monitor fed both ways would count its
//!   partitions' events twice and the other instance's events as its own);
//! - **two monitor instances** consume the topic as one consumer group ([`DEFAULT_GROUP`]),
//!   each publishing its alerts to the alerts topic and reading it whole, so that either shows
//!   the cluster's alerts ([`start_monitor`]).
//!
//! The topics are created when missing ([`ensure_topics`], [`PARTITIONS`] partitions each).
//! After the call cases, the monitoring scenario and the SIP path, the lab checks what the
//! scale-out adds ([`run`]): a call signed by each signer instance, a suspension made on
//! PostgreSQL refused by both signers within [`SUSPENSION_BOUND`] (and lifted again), the
//! verifier's events all read from Kafka and shared by both monitors, and the scenario's
//! alerts visible on both monitors.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use passport::NumberingPlan;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::RDKafkaErrorCode;
use serde_json::{json, Value};
use signer::registry::import::{ImportMode, ImportOptions};
use signer::registry::{
    NumberStatus, PgUrl, RegistryDb, RegistryLocation, StalePolicy, SyncOptions, SyncedRegistry,
};

use crate::cases::field;
use crate::client::Client;
use crate::error::LabError;
use crate::monitoring::{self, Check};
use crate::numbers::Numbers;

/// The call-event topic when none is given: the verifier's and the monitor's default.
pub const DEFAULT_TOPIC: &str = verifier::events::kafka::DEFAULT_TOPIC;
/// The monitors' consumer group.
pub const DEFAULT_GROUP: &str = "shaken-lab-monitor";
/// Partitions of each topic the lab creates (the call events' and the alerts').
pub const PARTITIONS: i32 = 4;
/// The longest time between two catch-ups of a signer's registry copy (LISTEN/NOTIFY
/// normally brings a change at once).
pub const SYNC_INTERVAL: Duration = Duration::from_secs(1);
/// The longest a suspension made on PostgreSQL may take to reach both signers.
pub const SUSPENSION_BOUND: Duration = Duration::from_secs(2);
/// How long the monitors are given at least to join their group and share the partitions
/// before the monitoring scenario ([`settle`]): a partition that moved during it would start
/// its callers' windows empty at its new owner.
pub const GROUP_SETTLE: Duration = Duration::from_secs(8);
/// How long a starting signer waits for its copy's first synchronization.
const FIRST_SYNC_WAIT: Duration = Duration::from_secs(10);
/// The longest wait for the brokers (topic creation, metadata).
const KAFKA_TIMEOUT: Duration = Duration::from_secs(15);
/// The longest wait for the monitors to have read the verifier's events.
const EVENTS_WAIT: Duration = Duration::from_secs(10);
/// How often a condition waited for is looked at again.
const POLL: Duration = Duration::from_millis(50);

/// Where the scale-out runs: `--kafka`, `--kafka-topic` and `--postgres`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScaleOut {
    /// The bootstrap brokers, `HOST:PORT[,HOST:PORT...]`.
    pub kafka: String,
    /// The call-event topic.
    pub kafka_topic: String,
    /// The PostgreSQL database of the originating carrier's registry (shown without its
    /// password).
    pub postgres: PgUrl,
}

impl ScaleOut {
    /// On `kafka` with the verifier's default topic, the registry at `postgres`.
    pub fn new(kafka: &str, postgres: &str) -> Self {
        Self {
            kafka: kafka.to_owned(),
            kafka_topic: DEFAULT_TOPIC.to_owned(),
            postgres: PgUrl::new(postgres),
        }
    }

    /// The alerts topic the monitors share.
    pub fn alerts_topic(&self) -> &'static str {
        monitor::cluster::DEFAULT_ALERTS_TOPIC
    }

    /// A Kafka error on these brokers.
    fn kafka_error(&self, detail: String) -> LabError {
        LabError::Kafka {
            brokers: self.kafka.clone(),
            detail,
        }
    }
}

/// Creates each of `topics` that does not exist yet, with [`PARTITIONS`] partitions
/// (replication factor 1: a lab), and waits until every partition of each has a leader.
pub async fn ensure_topics(scale: &ScaleOut, topics: &[&str]) -> Result<(), LabError> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &scale.kafka)
        .set("log_level", "3")
        .create()
        .map_err(|e| scale.kafka_error(format!("cannot make an admin client: {e}")))?;
    let new: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|topic| NewTopic::new(topic, PARTITIONS, TopicReplication::Fixed(1)))
        .collect();
    let options = AdminOptions::new()
        .request_timeout(Some(KAFKA_TIMEOUT))
        .operation_timeout(Some(KAFKA_TIMEOUT));
    let results = admin
        .create_topics(new.iter(), &options)
        .await
        .map_err(|e| scale.kafka_error(format!("cannot create the topics: {e}")))?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => {
                return Err(scale.kafka_error(format!("cannot create topic {topic}: {code}")))
            }
        }
    }
    let deadline = Instant::now() + KAFKA_TIMEOUT;
    for topic in topics {
        loop {
            let metadata = admin
                .inner()
                .fetch_metadata(Some(topic), Duration::from_secs(2));
            let led = metadata.as_ref().ok().is_some_and(|m| {
                m.topics().iter().any(|t| {
                    t.name() == *topic
                        && t.error().is_none()
                        && !t.partitions().is_empty()
                        && t.partitions().iter().all(|p| p.leader() >= 0)
                })
            });
            if led {
                break;
            }
            if Instant::now() >= deadline {
                let detail = match metadata {
                    Ok(_) => format!("topic {topic} has no led partitions"),
                    Err(e) => format!("no metadata for topic {topic}: {e}"),
                };
                return Err(scale.kafka_error(detail));
            }
            tokio::time::sleep(POLL).await;
        }
    }
    Ok(())
}

/// Imports the originating carrier's registry `csv` (national forms under `plan`) into the
/// PostgreSQL database, replacing what it held. Blocking: the PostgreSQL client must not run
/// on the async runtime's threads.
pub fn import_registry(
    url: &PgUrl,
    csv: &str,
    plan: NumberingPlan,
    now: u64,
) -> Result<(), LabError> {
    let mut registry = RegistryDb::open(&RegistryLocation::Postgres(url.clone()))?;
    let mut progress = |_| {};
    registry.import(
        csv.as_bytes(),
        ImportOptions {
            mode: ImportMode::Replace,
            plan: Some(plan),
            secret: None,
            actor: "lab",
            now,
            progress: &mut progress,
        },
    )?;
    Ok(())
}

/// A signer's registry: its local `copy` of the PostgreSQL registry, synchronized every
/// [`SYNC_INTERVAL`] and on every change notified; fails when the first synchronization did
/// not succeed. Blocking (it waits for that first synchronization).
pub fn synced_registry(url: &PgUrl, copy: &Path, now: u64) -> Result<SyncedRegistry, LabError> {
    let registry = SyncedRegistry::start(SyncOptions {
        url: url.clone(),
        copy: copy.to_owned(),
        interval: SYNC_INTERVAL,
        max_age: signer::config::DEFAULT_REGISTRY_MAX_AGE,
        stale: StalePolicy::Keep,
        cache_capacity: 10_000,
        cache_ttl: Duration::from_secs(60),
        first_sync_wait: FIRST_SYNC_WAIT,
    })?;
    if registry.age(now).is_none() {
        return Err(LabError::RegistryCopy {
            copy: copy.to_owned(),
            url: url.redacted(),
        });
    }
    Ok(registry)
}

/// A free loopback address: a port bound and released at once (the monitor's service binds
/// it again itself).
fn free_loopback() -> Result<SocketAddr, LabError> {
    let probe = std::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .map_err(|e| LabError::io(Path::new("127.0.0.1:0"), &e))?;
    probe
        .local_addr()
        .map_err(|e| LabError::io(Path::new("127.0.0.1:0"), &e))
}

/// Starts a monitor instance as `shaken monitor serve --kafka` does: its configuration at
/// `config`, its store in `data`, consuming the call-event topic in [`DEFAULT_GROUP`] and
/// sharing the alerts topic, until `shutdown`; returns its task and address.
pub fn start_monitor(
    scale: &ScaleOut,
    config: &Path,
    data: &Path,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(tokio::task::JoinHandle<()>, SocketAddr), LabError> {
    let config =
        monitor::config::MonitorConfig::load(config).map_err(monitor::server::ServeError::from)?;
    let mut options = monitor::consume::ConsumeOptions::new(&scale.kafka);
    options.topic = scale.kafka_topic.clone();
    options.group = DEFAULT_GROUP.to_owned();
    options.alerts_topic = Some(scale.alerts_topic().to_owned());
    let address = free_loopback()?;
    let data = data.to_owned();
    let task = tokio::spawn(async move {
        if let Err(error) =
            monitor::server::run_with(address, &data, &config, Some(options), shutdown).await
        {
            // The lab's output is its log: a monitor that cannot run says why there.
            eprintln!("the lab's monitor at {address} stopped: {error}");
        }
    });
    Ok((task, address))
}

/// The copy of the `n`-th (from 1) signer of the originating carrier in the lab's folder.
pub fn copy_path(dir: &Path, n: usize) -> PathBuf {
    dir.join(format!("registry-copy-{n}.sqlite"))
}

/// What [`run`] checks.
#[derive(Clone, Copy, Debug)]
pub struct Targets<'a> {
    /// The originating carrier's signer instances.
    pub signers: &'a [SocketAddr],
    /// The verifier.
    pub verifier: SocketAddr,
    /// The monitor instances.
    pub monitors: &'a [SocketAddr],
    /// The registry on PostgreSQL.
    pub postgres: &'a PgUrl,
    /// The gateway carrier's SPC (its `out-of-area` alert).
    pub gateway_spc: &'a str,
    /// Event time at which the monitoring scenario began.
    pub since: u64,
    /// The country's numbers.
    pub numbers: &'a Numbers,
}

/// Runs the scale-out checks (see the module's documentation), in this order: signed by
/// each signer, suspended on PostgreSQL, events through Kafka, alerts on every monitor.
pub async fn run(targets: &Targets<'_>, clock: &dyn Fn() -> u64) -> Result<Vec<Check>, LabError> {
    Ok(vec![
        each_signer(targets, clock).await?,
        suspension(targets, clock).await?,
        events_through_kafka(targets).await?,
        alerts_everywhere(targets).await?,
    ])
}

/// Signs a call from `orig` to `dest` at `now` at `signer`: the Identity header, or the
/// refusal's message id.
async fn sign(
    signer: SocketAddr,
    orig: &str,
    dest: &str,
    now: u64,
) -> Result<Result<String, String>, LabError> {
    let body = json!({"signingRequest": {"attest": "A", "orig": {"tn": orig},
        "dest": {"tn": [dest]}, "iat": now, "origid": uuid::Uuid::new_v4().to_string()}});
    let (status, reply) = Client::connect(signer)
        .await?
        .post("/stir/v1/signing", body.to_string())
        .await?;
    if status == 200 {
        if let Some(identity) = field(&reply, &["signingResponse", "identity"]).as_str() {
            return Ok(Ok(identity.to_owned()));
        }
    }
    let error = field(&reply, &["requestError"]);
    let id = field(error, &["policyException", "messageId"])
        .as_str()
        .or(field(error, &["serviceException", "messageId"]).as_str())
        .map_or_else(
            || format!("HTTP {status} without a message id"),
            str::to_owned,
        );
    Ok(Err(id))
}

/// A registered number's call signed `A` by each signer instance and verified
/// `TN-Validation-Passed`.
async fn each_signer(targets: &Targets<'_>, clock: &dyn Fn() -> u64) -> Result<Check, LabError> {
    let numbers = targets.numbers;
    let (orig, dest) = (numbers.registered(0), numbers.called);
    let mut got = vec![];
    let mut passed = 0;
    for (n, signer) in targets.signers.iter().enumerate() {
        let now = clock();
        let verdict = match sign(*signer, orig, dest, now).await? {
            Ok(identity) => {
                let body = json!({"verificationRequest": {"from": {"tn": orig},
                    "to": {"tn": [dest]}, "time": now, "identity": identity}});
                let (_, reply) = Client::connect(targets.verifier)
                    .await?
                    .post("/stir/v1/verification", body.to_string())
                    .await?;
                field(&reply, &["verificationResponse", "verstat"])
                    .as_str()
                    .unwrap_or("no verstat")
                    .to_owned()
            }
            Err(id) => format!("refused {id}"),
        };
        passed += usize::from(verdict == "TN-Validation-Passed");
        got.push(format!("signer {}: {verdict}", n + 1));
    }
    Ok(Check {
        name: "signed by each signer",
        calls: targets.signers.len(),
        expected: format!(
            "signed A by each of {} signers, TN-Validation-Passed",
            targets.signers.len()
        ),
        got: got.join("; "),
        matched: passed == targets.signers.len() && passed >= 2,
    })
}

/// Sets `tn`'s status on PostgreSQL, as `shaken registry suspend|resume --db` does.
async fn set_status(url: &PgUrl, tn: &str, status: NumberStatus, now: u64) -> Result<(), LabError> {
    let (url, tn) = (url.clone(), tn.to_owned());
    tokio::task::spawn_blocking(move || {
        let mut registry = RegistryDb::open(&RegistryLocation::Postgres(url))?;
        registry.set_status(&tn, status, "lab", now)?;
        Ok::<_, LabError>(())
    })
    .await
    .map_err(|e| LabError::Task(e.to_string()))?
}

/// Asks every signer to sign calls from `tn` until each answers as `wanted` says, for at most
/// `bound` (then a little longer, to tell late from never); each signer's time to its first
/// such answer, and how many signing requests were sent.
async fn until_every_signer(
    targets: &Targets<'_>,
    tn: &str,
    wanted: impl Fn(&Result<String, String>) -> bool,
    clock: &dyn Fn() -> u64,
) -> Result<(Vec<Option<Duration>>, usize), LabError> {
    let started = Instant::now();
    let mut reached: Vec<Option<Duration>> = vec![None; targets.signers.len()];
    let mut requests = 0;
    while reached.iter().any(Option::is_none) && started.elapsed() < SUSPENSION_BOUND * 3 {
        for (signer, at) in targets.signers.iter().zip(reached.iter_mut()) {
            if at.is_none() {
                requests += 1;
                if wanted(&sign(*signer, tn, targets.numbers.called, clock()).await?) {
                    *at = Some(started.elapsed());
                }
            }
        }
        tokio::time::sleep(POLL).await;
    }
    Ok((reached, requests))
}

/// The times of [`until_every_signer`] in words: `signer 1 after 120 ms, signer 2 never`.
fn times(reached: &[Option<Duration>]) -> String {
    reached
        .iter()
        .enumerate()
        .map(|(n, at)| match at {
            Some(at) => format!("signer {} after {} ms", n + 1, at.as_millis()),
            None => format!("signer {} never", n + 1),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The harassing caller (registered, used by no call case) suspended on PostgreSQL: both
/// signers must refuse it (`POL4102`) within [`SUSPENSION_BOUND`]; then resumed, both must
/// sign it again within the same bound.
async fn suspension(targets: &Targets<'_>, clock: &dyn Fn() -> u64) -> Result<Check, LabError> {
    let tn = targets.numbers.harassing();
    let within = |reached: &[Option<Duration>]| {
        reached
            .iter()
            .all(|at| at.is_some_and(|at| at <= SUSPENSION_BOUND))
    };
    set_status(targets.postgres, tn, NumberStatus::Suspended, clock()).await?;
    let (refused, sent) = until_every_signer(
        targets,
        tn,
        |answer| answer.as_ref().err().is_some_and(|id| id == "POL4102"),
        clock,
    )
    .await?;
    set_status(targets.postgres, tn, NumberStatus::Active, clock()).await?;
    let (signing, sent_after) =
        until_every_signer(targets, tn, |answer| answer.is_ok(), clock).await?;
    Ok(Check {
        name: "suspended on PostgreSQL",
        calls: sent + sent_after,
        expected: format!(
            "POL4102 at every signer within {} s, then signed again",
            SUSPENSION_BOUND.as_secs()
        ),
        got: format!("refused: {}; resumed: {}", times(&refused), times(&signing)),
        matched: within(&refused) && within(&signing),
    })
}

/// The first sample of metric `name` in `/metrics` at `address` (0 when absent).
async fn metric(address: SocketAddr, name: &str) -> Result<u64, LabError> {
    let (status, text) = Client::connect(address).await?.get("/metrics").await?;
    if status != 200 {
        return Err(LabError::BadResponse(format!(
            "{address}/metrics answered {status}"
        )));
    }
    Ok(text
        .lines()
        .find_map(|line| {
            let value = line.strip_prefix(name)?.strip_prefix(' ')?;
            value.trim().parse::<f64>().ok()
        })
        .map_or(0, |value| value as u64))
}

/// How far the monitors' group is: the events the verifier's producer has had acknowledged,
/// and the records each monitor has read.
async fn progress(
    verifier: SocketAddr,
    monitors: &[SocketAddr],
) -> Result<(u64, Vec<u64>), LabError> {
    let delivered = metric(verifier, "shaken_verifier_events_kafka_delivered_total").await?;
    let mut read = vec![];
    for monitor in monitors {
        read.push(metric(*monitor, "monitor_kafka_records_total").await?);
    }
    Ok((delivered, read))
}

/// Whether every delivered event has been read and each monitor has read some: each holds
/// partitions, and the group is not behind.
fn caught_up(delivered: u64, read: &[u64]) -> bool {
    delivered > 0
        && read.len() >= 2
        && read.iter().sum::<u64>() >= delivered
        && read.iter().all(|r| *r > 0)
}

/// Waits until the monitors' group has settled before the monitoring scenario: at least
/// until `settled` (the monitors' start plus [`GROUP_SETTLE`]), then until every monitor has
/// read records and together they have read every event delivered so far (each holds
/// partitions; none is behind), for at most [`EVENTS_WAIT`] more. It does not fail: the
/// scale-out checks say what did not happen.
pub async fn settle(
    verifier: SocketAddr,
    monitors: &[SocketAddr],
    settled: Instant,
) -> Result<(), LabError> {
    tokio::time::sleep_until(settled.into()).await;
    let deadline = Instant::now() + EVENTS_WAIT;
    loop {
        let (delivered, read) = progress(verifier, monitors).await?;
        if caught_up(delivered, &read) || Instant::now() >= deadline {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The verifier's events delivered to Kafka all read by the monitors, each monitor reading a
/// share (both are members of the group holding partitions).
async fn events_through_kafka(targets: &Targets<'_>) -> Result<Check, LabError> {
    let deadline = Instant::now() + EVENTS_WAIT;
    let (delivered, read) = loop {
        let (delivered, read) = progress(targets.verifier, targets.monitors).await?;
        if caught_up(delivered, &read) || Instant::now() >= deadline {
            break (delivered, read);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let shares = read
        .iter()
        .enumerate()
        .map(|(n, r)| format!("monitor {} read {r}", n + 1))
        .collect::<Vec<_>>()
        .join(", ");
    Ok(Check {
        name: "events through Kafka",
        calls: 0,
        expected: "every delivered event read by the group, each monitor a share".into(),
        got: format!("{delivered} delivered; {shares}"),
        matched: caught_up(delivered, &read),
    })
}

/// The monitoring scenario's alerts (`high-frequency` on the harassing caller, `out-of-area`
/// on the gateway) visible at every monitor, whichever instance raised them.
async fn alerts_everywhere(targets: &Targets<'_>) -> Result<Check, LabError> {
    let harasser = targets.numbers.harassing();
    let mut missing = vec![];
    for (n, monitor) in targets.monitors.iter().enumerate() {
        let deadline = Instant::now() + monitoring::ALERT_WAIT;
        loop {
            let alerts = alerts(*monitor).await?;
            let lacking: Vec<&str> = [
                ("high-frequency", "caller", harasser),
                ("out-of-area", "spc", targets.gateway_spc),
            ]
            .into_iter()
            .filter(|(detector, kind, value)| {
                monitoring::find(&alerts, detector, kind, value, targets.since).is_none()
            })
            .map(|(detector, _, _)| detector)
            .collect();
            if lacking.is_empty() {
                break;
            }
            if Instant::now() >= deadline {
                missing.push(format!("monitor {} lacks {}", n + 1, lacking.join(", ")));
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok(Check {
        name: "alerts on every monitor",
        calls: targets.monitors.len(),
        expected: format!(
            "high-frequency and out-of-area at each of {} monitors",
            targets.monitors.len()
        ),
        got: if missing.is_empty() {
            format!("both alerts at all {} monitors", targets.monitors.len())
        } else {
            missing.join("; ")
        },
        matched: missing.is_empty() && targets.monitors.len() >= 2,
    })
}

/// The alerts `GET /v1/alerts` at `monitor` gives.
async fn alerts(monitor: SocketAddr) -> Result<Vec<Value>, LabError> {
    let (status, text) = Client::connect(monitor).await?.get("/v1/alerts").await?;
    if status != 200 {
        return Err(LabError::BadResponse(format!(
            "{monitor}/v1/alerts answered {status}"
        )));
    }
    let answer: Value = serde_json::from_str(&text)
        .map_err(|e| LabError::BadResponse(format!("{monitor}/v1/alerts: not JSON: {e}")))?;
    Ok(field(&answer, &["alerts"])
        .as_array()
        .cloned()
        .unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_group_has_caught_up_when_every_event_is_read_and_each_monitor_read_some() {
        assert!(caught_up(10, &[4, 6]));
        assert!(caught_up(10, &[5, 7]), "a replayed record is read twice");
        assert!(!caught_up(10, &[4, 5]), "one event not read yet");
        assert!(!caught_up(10, &[0, 10]), "a monitor without partitions");
        assert!(!caught_up(0, &[0, 0]), "nothing delivered");
        assert!(!caught_up(10, &[10]), "one monitor is no group");
    }

    #[test]
    fn times_name_each_signer_and_the_ones_never_reached() {
        let reached = [Some(Duration::from_millis(120)), None];
        assert_eq!(times(&reached), "signer 1 after 120 ms, signer 2 never");
    }
}
