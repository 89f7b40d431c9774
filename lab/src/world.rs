//! The lab's network, running on loopback ports: the HTTPS repository publishing the lab's
//! PKI ([`crate::pki`]), the originating carrier's real-name registry, one signer per carrier,
//! and a terminating verifier with an event feed. [`Lab::start`] builds and starts it,
//! [`Lab::drive`] places calls, [`Lab::stop`] stops every service and waits for them.
//!
//! The repository's port is bound first: it goes into the certificates' CRL distribution
//! points and the x5u URLs. Once every service answers, the lab's description is written to
//! `lab.json` and `lab.env` in the lab's folder ([`crate::description`]).
//!
//! Files in the lab's folder: `pa/`, `ca/`, `rogue-ca/`, `carriers/` (keys and chains),
//! `publish/` (what the repository serves), `roots.pem` (the lab CA's root), `tls-root.pem`
//! (the repository's TLS root), `registry.csv` (the registry import file, numbers in national
//! form), `registry.sqlite`, `carrier-2001-registry.sqlite` (the gateway's, empty),
//! `trace/SPC/trace.sqlite` (each signer's trace log: a SQLite database and beside it its
//! journal folder `trace.sqlite.journal/`, so `trace/SPC/` holds the whole log),
//! `events.jsonl` (the verifier's event feed), `events-spool/` (what the verifier's pusher holds
//! while the monitor is away), `monitor.toml` and `monitor/` (the monitor's configuration and
//! store), `lists/list.json` and `lists/current.jws` (the
//! regulator's list, signed by the PA: [`crate::marketing`]), `optout/` (the opt-out service's
//! store, link key and feed token), `lab.json`, `lab.env`. On Kafka and PostgreSQL
//! ([`crate::scale_out`]) there is no `registry.sqlite` and no `events-spool/`; there are
//! instead the two signers' copies `registry-copy-1.sqlite` and `registry-copy-2.sqlite`, the
//! second signer's trace log `trace/SPC-2/` and the second monitor's store `monitor-2/`.
//!
//! The monitor (`monitor` crate) runs in process on a loopback port with its data in
//! `monitor/` and its configuration written to `monitor.toml` ([`monitor_toml`]): the
//! country's code as `home_country`, the gateway's SPC as an international gateway, and each
//! carrier's signer as the trace endpoint of its SPC (plain HTTP on loopback; the signers admit
//! loopback clients). The verifier writes `events.jsonl` and pushes the same lines to the
//! monitor every [`PUSH_INTERVAL`] (spooling to `events-spool/` while it is away).
//!
//! The opt-out service runs in process on a loopback port (plain HTTP); the originating
//! carrier's signer and the verifier each hold the list (reloaded from `lists/current.jws`
//! every second when it changes) and a mirror of the opt-outs polled every
//! [`OPTOUT_POLL`]; the verifier mints unsubscribe links to the opt-out service.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lists::ListStore;
use optout::OptOutMirror;
use passport::{NumberingPlan, SigningKey, TokenSigner};
use serde_json::{json, Value};
use signer::registry::import::{import, ImportMode, ImportOptions};
use signer::registry::{CachedRegistry, Registry};
use signer::service::{NumberLookup, SignerState, StateParts};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::cases::{self, Targets};
use crate::client::Client;
use crate::description::{lab_env, write_atomic};
use crate::error::{create_dir, read, write, LabError};
use crate::marketing::{self, ListFiles, OptOutFiles};
use crate::monitoring;
use crate::numbers::{self, Numbers};
use crate::pki::{self, Carrier, LabPki};
use crate::report::Results;
use crate::scale_out::{self, ScaleOut};
use crate::sip_path;

/// How to build the lab.
#[derive(Clone, Debug)]
pub struct LabOptions {
    /// The lab's folder (created if missing); a new temporary folder, removed when the lab is
    /// dropped, when `None`.
    pub dir: Option<PathBuf>,
    /// The country (`--country`): its numbering plan, numbers and emergency numbers.
    pub plan: NumberingPlan,
    /// PEM files of extra STI trust anchors the verifier trusts besides the lab CA's root
    /// (`--trust-anchor`).
    pub trust_anchors: Vec<PathBuf>,
    /// PEM files of extra TLS roots the verifier trusts when it fetches an x5u or a CRL over
    /// HTTPS, besides the lab's TLS root (`--repository-tls-root`).
    pub repository_tls_roots: Vec<PathBuf>,
    /// Run on Kafka and PostgreSQL (`--kafka`, `--postgres`): two signers of the originating
    /// carrier on the PostgreSQL registry, the events on Kafka, two monitors in one consumer
    /// group ([`crate::scale_out`]); `None`: the embedded defaults.
    pub scale_out: Option<ScaleOut>,
}

impl Default for LabOptions {
    fn default() -> Self {
        Self {
            dir: None,
            plan: NumberingPlan::Nanp,
            trust_anchors: vec![],
            repository_tls_roots: vec![],
            scale_out: None,
        }
    }
}

/// The longest a verification's event waits in the verifier's pusher before it is sent to the
/// monitor.
pub const PUSH_INTERVAL: Duration = Duration::from_millis(100);

/// How often the signer's and the verifier's mirrors poll the opt-out service's feed.
pub const OPTOUT_POLL: Duration = Duration::from_millis(200);
/// Seconds an unsubscribe link minted by the lab's verifier stays valid.
const LINK_TTL_SECONDS: u64 = 7 * 86_400;

/// What [`Lab::start`] is doing, reported as it goes (`shaken lab` prints each step).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Progress<'a> {
    /// Starting in this folder, with this country's numbers.
    Folder {
        /// The lab's folder.
        dir: &'a Path,
        /// `NANP`, `CN`.
        country: &'static str,
    },
    /// Making the PKI.
    Pki,
    /// Importing the originating carrier's registry from this file.
    Registry {
        /// The import file.
        csv: &'a Path,
        /// Its numbers.
        numbers: usize,
        /// `NANP`, `CN`.
        country: &'static str,
    },
    /// The regulator's list, signed by the PA, with these firms.
    Lists {
        /// The signed list.
        jws: &'a Path,
        /// Its firms: vetted name and status.
        firms: [(&'static str, &'static str); 3],
        /// Numbers blacklisted on their own.
        blacklisted_numbers: usize,
    },
    /// On Kafka and PostgreSQL: the registry imported there, the topics ready.
    ScaleOut {
        /// Where.
        scale: &'a ScaleOut,
    },
    /// Starting the services.
    Services,
    /// Every service answers; `lab.json` and `lab.env` are written.
    Ready {
        /// The lab's folder.
        dir: &'a Path,
    },
}

impl std::fmt::Display for Progress<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Folder { dir, country } => write!(
                f,
                "building a SHAKEN lab with {country} numbers in {}",
                dir.display()
            ),
            Self::Pki => f.write_str(
                "  PKI: a policy administrator, an STI-CA, carriers 1001, 2001 and 3001 (revoked), \
                 a rogue CA",
            ),
            Self::Registry {
                csv,
                numbers,
                country,
            } => write!(
                f,
                "  registry of carrier 1001: {numbers} numbers from {} ({country} plan)",
                csv.file_name().map_or_else(
                    || csv.display().to_string(),
                    |n| n.to_string_lossy().into_owned()
                )
            ),
            Self::Lists {
                jws,
                firms,
                blacklisted_numbers,
            } => {
                let of = |status: &str| {
                    firms
                        .iter()
                        .filter(|(_, s)| *s == status)
                        .map(|(name, _)| *name)
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                write!(
                    f,
                    "  regulator's list signed by the PA in lists/{}: {} firms, \
                     {blacklisted_numbers} blacklisted number(s)\n    white-listed: {}; \
                     blacklisted: {}",
                    jws.file_name().map_or_else(
                        || jws.display().to_string(),
                        |n| n.to_string_lossy().into_owned()
                    ),
                    firms.len(),
                    of("white-listed"),
                    of("blacklisted"),
                )
            }
            Self::ScaleOut { scale } => write!(
                f,
                "  on PostgreSQL: carrier 1001's registry in {}\n    \
                 imported there; 2 signers of carrier 1001, each on a copy of its own\n  \
                 on Kafka: {}, the verifier's events to topic {}\n    \
                 consumed by 2 monitors in group {}, their alerts shared on {}",
                scale.postgres,
                scale.kafka,
                scale.kafka_topic,
                scale_out::DEFAULT_GROUP,
                scale.alerts_topic(),
            ),
            Self::Services => f.write_str(
                "  services on 127.0.0.1: HTTPS repository, signers 1001 and 2001, verifier, \
                 opt-out service, monitor",
            ),
            Self::Ready { dir } => write!(
                f,
                "  ready: endpoints in {} and lab.env",
                dir.join("lab.json").display()
            ),
        }
    }
}

/// A running lab. Its services run on the current tokio runtime until [`Lab::stop`].
#[derive(Debug)]
pub struct Lab {
    /// Keeps a temporary folder alive while the lab runs (removed when the lab is dropped).
    _temporary: Option<tempfile::TempDir>,
    dir: PathBuf,
    now: u64,
    numbers: &'static Numbers,
    pki: LabPki,
    one: SocketAddr,
    gateway: SocketAddr,
    verifier: SocketAddr,
    /// The SIP listeners (UDP and TCP on one port) of the two signers.
    one_sip: SocketAddr,
    gateway_sip: SocketAddr,
    /// The verifier's SIP listener.
    verifier_sip: SocketAddr,
    optout: SocketAddr,
    monitor: SocketAddr,
    lists: ListFiles,
    optout_files: OptOutFiles,
    /// The originating signer's mirror of the opt-outs.
    signer_optouts: Arc<OptOutMirror>,
    /// The verifier's mirror of the opt-outs.
    verifier_optouts: Arc<OptOutMirror>,
    description: Value,
    stop: watch::Sender<bool>,
    services: Vec<JoinHandle<()>>,
    /// The mirrors' pollers and the lists' reloaders: they never end, they are aborted.
    background: Vec<JoinHandle<()>>,
    /// On Kafka and PostgreSQL, the instances added.
    scale: Option<ScaleRun>,
}

/// What runs besides on Kafka and PostgreSQL ([`crate::scale_out`]).
#[derive(Debug)]
struct ScaleRun {
    /// Where.
    options: ScaleOut,
    /// The originating carrier's second signer.
    second: SocketAddr,
    /// Its mirror of the opt-outs.
    second_optouts: Arc<OptOutMirror>,
    /// The second monitor instance (the first is [`Lab::monitor`]).
    second_monitor: SocketAddr,
    /// When the monitors were started (their group settles within [`scale_out::GROUP_SETTLE`]).
    monitors_started: Instant,
}

/// Completes once `true` is sent on the channel (or its sender is gone).
async fn stopped(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

/// The lab verifier's `[sip]` section: UDP and TCP on one free loopback port; calls from
/// blacklisted numbers answered `608 Rejected` and calls to a subscriber who opted out of the
/// calling firm `607 Unwanted`, every other flag labelled; the verdict header and
/// `Attestation-Info` shown. Its REST API labels every call, as before.
pub const VERIFIER_SIP: &str = r#"listen = ["127.0.0.1:0"]
attestation_info = true
verdict_header = "X-Shaken-Verdict"
display_name = true
[block]
blacklisted = 608
opted-out = 607
"#;

/// The lab signers' `[sip]` section: UDP and TCP on one free loopback port, the defaults
/// otherwise (Identity as a header, 403 for refusals).
fn signer_sip_section() -> Result<signer::config::SipSection, LabError> {
    toml::from_str("listen = [\"127.0.0.1:0\"]").map_err(|e| LabError::Sip(e.to_string()))
}

/// The one address a lab SIP listener is bound to (UDP and TCP share it).
fn sip_address(bound: &[(sip::transport::Transport, SocketAddr)]) -> Result<SocketAddr, LabError> {
    bound
        .first()
        .map(|(_, address)| *address)
        .ok_or_else(|| LabError::Sip("the SIP listener has no address".into()))
}

/// Binds a loopback port.
async fn loopback() -> Result<(tokio::net::TcpListener, SocketAddr), LabError> {
    Ok(rest::service::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?)
}

/// The lab's folder: `dir` created and made absolute, or a new temporary folder.
fn folder(dir: Option<&Path>) -> Result<(Option<tempfile::TempDir>, PathBuf), LabError> {
    match dir {
        Some(dir) => {
            create_dir(dir)?;
            let dir = dir.canonicalize().map_err(|e| LabError::io(dir, &e))?;
            Ok((None, dir))
        }
        None => {
            let temporary = tempfile::Builder::new()
                .prefix("shaken-lab-")
                .tempdir()
                .map_err(|e| LabError::io(&std::env::temp_dir(), &e))?;
            let dir = temporary.path().to_owned();
            Ok((Some(temporary), dir))
        }
    }
}

impl Lab {
    /// Builds the lab as `options` say, as of `now`, reporting each step to `progress`;
    /// starts its services on loopback ports, waits until each answers, and writes `lab.json`
    /// and `lab.env`.
    pub async fn start(
        options: &LabOptions,
        now: u64,
        progress: &mut dyn FnMut(Progress<'_>),
    ) -> Result<Self, LabError> {
        let numbers = Numbers::of(options.plan);
        let country = numbers.country();
        let (temporary, dir) = folder(options.dir.as_deref())?;
        progress(Progress::Folder { dir: &dir, country });
        // The extra roots are read first: a wrong path fails before anything is built.
        let extras = Extras::read(options)?;

        // The repository's address goes into URLs inside the certificates.
        progress(Progress::Pki);
        let (repository_listener, repository) = loopback().await?;
        let base = format!("https://127.0.0.1:{}", repository.port());
        let publish = dir.join("publish");
        let pki = pki::build(&dir, &publish, &base, now, &mut rand_core::OsRng)?;

        // The originating carrier's registry, imported from a file in national form.
        let registry_csv = dir.join("registry.csv");
        let registry_db = dir.join("registry.sqlite");
        let csv = numbers.registry_csv();
        write(&registry_csv, &csv)?;
        progress(Progress::Registry {
            csv: &registry_csv,
            numbers: csv.lines().count().saturating_sub(1),
            country,
        });
        let registry: Arc<dyn NumberLookup> = match &options.scale_out {
            None => Arc::new(CachedRegistry::new(
                registry(&registry_db, &csv, numbers.plan, now)?,
                10_000,
                Duration::from_secs(60),
            )),
            // On PostgreSQL: imported there, each signer reading a copy of its own; the topics
            // made ready.
            Some(scale) => {
                let (url, csv, plan) = (scale.postgres.clone(), csv.clone(), numbers.plan);
                blocking(move || scale_out::import_registry(&url, &csv, plan, now)).await?;
                scale_out::ensure_topics(scale, &[&scale.kafka_topic, scale.alerts_topic()])
                    .await?;
                progress(Progress::ScaleOut { scale });
                synced(scale, scale_out::copy_path(&dir, 1), now).await?
            }
        };

        // The PA plays the regulator: the signed list.
        let list_files = marketing::publish_list(&dir, numbers, now)?;
        progress(Progress::Lists {
            jws: &list_files.jws,
            firms: [
                &marketing::WHITE_LISTED,
                &marketing::SMALL_QUOTA,
                &marketing::BLACKLISTED,
            ]
            .map(|f| (f.name, f.status)),
            blacklisted_numbers: numbers.blacklisted_alone.len(),
        });
        let optout_files = marketing::optout_files(&dir, &mut rand_core::OsRng)?;

        progress(Progress::Services);
        let (stop, stop_rx) = watch::channel(false);
        let mut services = vec![];
        let repository_config = ca_tools::repository::RepositoryConfig {
            dir: publish.clone(),
            max_age: 600,
        };
        let shutdown = stopped(stop_rx.clone());
        let tls = pki.repository_tls.clone();
        services.push(tokio::spawn(async move {
            let _ =
                ca_tools::repository::serve(repository_listener, tls, repository_config, shutdown)
                    .await;
        }));

        // The opt-out service, with one subscriber who opted out of the white-listed firm
        // already; the mirrors of the originating signer and of the verifier; the list held by
        // each.
        let (optout_listener, optout) = loopback().await?;
        let optout_state = optout_state(&optout_files, numbers, now)?;
        services.push(tokio::spawn(optout::server::serve(
            optout_listener,
            optout_state,
            stopped(stop_rx.clone()),
        )));
        let mut background = vec![];
        let feed_url = format!("http://{optout}/v1/optouts");
        let signer_optouts = mirror(&optout_files, &feed_url, &mut background)?;
        let verifier_optouts = mirror(&optout_files, &feed_url, &mut background)?;
        let signer_lists = list_store(&list_files, now, &mut background)?;
        let verifier_lists = list_store(&list_files, now, &mut background)?;

        // One signer per carrier, each with its trace log in a folder of its own; the
        // originating carrier's enforces the list and the opt-outs.
        let one_trace = trace_db(&dir, &pki.originating)?;
        let gateway_trace = trace_db(&dir, &pki.gateway)?;
        let (one_listener, one) = loopback().await?;
        let one_state = signer_state(&pki.originating, registry, &one_trace, numbers, now)?
            .with_lists(signer_lists)
            .with_optouts(Arc::clone(&signer_optouts));
        let (gateway_listener, gateway) = loopback().await?;
        let gateway_registry = Registry::open(&dir.join("carrier-2001-registry.sqlite"))?;
        let gateway_registry = Arc::new(CachedRegistry::new(
            gateway_registry,
            10_000,
            Duration::from_secs(60),
        ));
        let gateway_state =
            signer_state(&pki.gateway, gateway_registry, &gateway_trace, numbers, now)?;
        let [one_state, gateway_state] = [one_state, gateway_state].map(Arc::new);
        // Each signer also answers SIP dips, UDP and TCP on one port ([`crate::sip`]).
        let mut signer_sips = [SocketAddr::from(([127, 0, 0, 1], 0)); 2];
        for ((listener, state), sip_address_of) in
            [(one_listener, one_state), (gateway_listener, gateway_state)]
                .into_iter()
                .zip(signer_sips.iter_mut())
        {
            let sip = signer::server::start_sip(&signer_sip_section()?, &state).await?;
            *sip_address_of = sip_address(&sip.local_addrs())?;
            services.push(tokio::spawn(sip.serve_until(stopped(stop_rx.clone()))));
            services.push(tokio::spawn(signer::service::serve(
                listener,
                state,
                None,
                stopped(stop_rx.clone()),
            )));
        }
        let [one_sip, gateway_sip] = signer_sips;
        // On PostgreSQL, the originating carrier's second signer: the same key, policy, list
        // and opt-outs, a registry copy and a trace log of its own.
        let second = match &options.scale_out {
            None => None,
            Some(scale) => {
                let registry = synced(scale, scale_out::copy_path(&dir, 2), now).await?;
                let trace = trace_db_in(&dir, &format!("{}-2", pki.originating.spc))?;
                let optouts = mirror(&optout_files, &feed_url, &mut background)?;
                let state = signer_state(&pki.originating, registry, &trace, numbers, now)?
                    .with_lists(list_store(&list_files, now, &mut background)?)
                    .with_optouts(Arc::clone(&optouts));
                let (listener, address) = loopback().await?;
                services.push(tokio::spawn(signer::service::serve(
                    listener,
                    Arc::new(state),
                    None,
                    stopped(stop_rx.clone()),
                )));
                Some((address, optouts))
            }
        };

        // The monitor, configured to trace back to both signers; the verifier pushes to it.
        let (monitor_listener, monitor) = loopback().await?;
        let monitor_config = dir.join("monitor.toml");
        write(
            &monitor_config,
            monitor_toml(numbers, [(&pki.originating, one), (&pki.gateway, gateway)]),
        )?;
        let monitors_started = Instant::now();
        let (monitor, second_monitor) = match &options.scale_out {
            None => {
                let monitor_api = start_monitor(&monitor_config, &dir.join("monitor")).await?;
                services.push(tokio::spawn(rest::http::serve(
                    monitor_listener,
                    monitor_api,
                    None,
                    stopped(stop_rx.clone()),
                )));
                (monitor, None)
            }
            // Two instances consuming the topic as one group, each with a store of its own.
            Some(scale) => {
                drop(monitor_listener);
                let mut addresses = vec![];
                for data in ["monitor", "monitor-2"] {
                    let (task, address) = scale_out::start_monitor(
                        scale,
                        &monitor_config,
                        &dir.join(data),
                        stopped(stop_rx.clone()),
                    )?;
                    services.push(task);
                    addresses.push(address);
                }
                match addresses.as_slice() {
                    [first, second] => (*first, Some(*second)),
                    _ => (monitor, None),
                }
            }
        };

        // The terminating verifier.
        let (verifier_listener, verifier) = loopback().await?;
        let links = optout::LinkIssuer::new(
            &format!("http://{optout}"),
            optout::LinkKey::from_file(&optout_files.link_key)?,
            LINK_TTL_SECONDS,
        );
        let verifier_state = verifier_state(
            &dir,
            &pki,
            &extras,
            numbers.plan,
            monitor,
            options.scale_out.as_ref(),
        )?
        .with_lists(verifier_lists)
        .with_optouts(Arc::clone(&verifier_optouts))
        .with_links(Arc::new(links));
        // Its SIP listener blocks what the lab shows blocking ([`VERIFIER_SIP`]).
        let verifier_sip_section = toml::from_str(VERIFIER_SIP)
            .map_err(|e: toml::de::Error| LabError::Sip(e.to_string()))?;
        let verifier_sip_bound = verifier::server::SipBound::bind(&verifier_sip_section)
            .await
            .map_err(|e| LabError::Sip(e.to_string()))?;
        let verifier_sip = sip_address(&verifier_sip_bound.local_addrs())?;
        let verifier_state = Arc::new(verifier_sip_bound.attach(verifier_state));
        services.push(tokio::spawn(
            verifier_sip_bound.serve(Arc::clone(&verifier_state), stopped(stop_rx.clone())),
        ));
        services.push(tokio::spawn(verifier::service::serve(
            verifier_listener,
            verifier_state,
            None,
            stopped(stop_rx),
        )));

        let lab = Self {
            _temporary: temporary,
            dir,
            now,
            numbers,
            pki,
            one,
            gateway,
            verifier,
            one_sip,
            gateway_sip,
            verifier_sip,
            optout,
            monitor,
            lists: list_files,
            optout_files,
            signer_optouts,
            verifier_optouts,
            description: Value::Null,
            stop,
            services,
            background,
            scale: match (options.scale_out.clone(), second, second_monitor) {
                (Some(options), Some((second, second_optouts)), Some(second_monitor)) => {
                    Some(ScaleRun {
                        options,
                        second,
                        second_optouts,
                        second_monitor,
                        monitors_started,
                    })
                }
                _ => None,
            },
        };
        lab.wait_until_answering().await?;
        lab.wait_for_mirrors().await?;
        let registry_db = match &options.scale_out {
            None => json!(registry_db),
            Some(scale) => json!(scale.postgres.redacted()),
        };
        let description = lab.describe(
            &base,
            &registry_db,
            &registry_csv,
            [&one_trace, &gateway_trace],
            &extras,
        );
        let pretty = serde_json::to_string_pretty(&description)
            .map_err(|e| LabError::io(&lab.dir.join("lab.json"), &e.into()))?;
        write_atomic(&lab.dir.join("lab.env"), lab_env(&description).as_bytes())?;
        write_atomic(&lab.dir.join("lab.json"), pretty.as_bytes())?;
        progress(Progress::Ready { dir: &lab.dir });
        Ok(Self { description, ..lab })
    }

    /// Waits until the signers, the verifier, the opt-out service and the monitor answer
    /// `GET /healthz`
    /// with 200 (at most 5 s each).
    async fn wait_until_answering(&self) -> Result<(), LabError> {
        let scaled = self
            .scale
            .iter()
            .flat_map(|scale| [scale.second, scale.second_monitor]);
        for address in [
            self.one,
            self.gateway,
            self.verifier,
            self.optout,
            self.monitor,
        ]
        .into_iter()
        .chain(scaled)
        {
            let mut tries = 0;
            loop {
                let answer = match Client::connect(address).await {
                    Ok(mut client) => client.get("/healthz").await.map(|(status, _)| status),
                    Err(error) => Err(error),
                };
                match answer {
                    Ok(200) => break,
                    Ok(status) if tries >= 100 => {
                        return Err(LabError::BadResponse(format!(
                            "{address}/healthz answered {status}"
                        )))
                    }
                    Err(error) if tries >= 100 => return Err(error),
                    _ => tokio::time::sleep(Duration::from_millis(50)).await,
                }
                tries += 1;
            }
        }
        Ok(())
    }

    /// Waits until both mirrors hold the opt-out recorded at start (at most 5 s), so the first
    /// call sees the opt-outs the lab started with.
    async fn wait_for_mirrors(&self) -> Result<(), LabError> {
        let subscriber = self.numbers.opted_out;
        for _ in 0..500 {
            if [&self.signer_optouts, &self.verifier_optouts]
                .into_iter()
                .chain(self.scale.iter().map(|scale| &scale.second_optouts))
                .all(|m| m.is_opted_out(subscriber, marketing::WHITE_LISTED.id))
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Err(LabError::BadResponse(format!(
            "the opt-out mirrors did not catch up with the feed at http://{}/v1/optouts",
            self.optout
        )))
    }

    /// The lab's description: `lab.json`'s value.
    fn describe(
        &self,
        base: &str,
        registry_db: &Value,
        registry_csv: &Path,
        traces: [&Path; 2],
        extras: &Extras,
    ) -> Value {
        let http = |address: SocketAddr, path: &str| format!("http://{address}{path}");
        let firm = |f: &marketing::FirmSpec| {
            json!({"id": f.id, "name": f.name, "status": f.status,
                   "hourly_quota": f.hourly_quota, "reasons": f.reasons})
        };
        let numbers = self.numbers;
        let tns = |list: &[numbers::Subscriber]| list.iter().map(|s| s.tn).collect::<Vec<_>>();
        let [one_trace, gateway_trace] = traces;
        let endpoints = json!({
            "signing": http(self.one, "/stir/v1/signing"),
            "gateway_signing": http(self.gateway, "/stir/v1/signing"),
            "verification": http(self.verifier, "/stir/v1/verification"),
            "signer_health": http(self.one, "/healthz"),
            "signer_metrics": http(self.one, "/metrics"),
            "gateway_health": http(self.gateway, "/healthz"),
            "gateway_metrics": http(self.gateway, "/metrics"),
            "verifier_health": http(self.verifier, "/healthz"),
            "verifier_metrics": http(self.verifier, "/metrics"),
            "optout": http(self.optout, ""),
            "optout_feed": http(self.optout, "/v1/optouts"),
            "optout_health": http(self.optout, "/healthz"),
            "optout_metrics": http(self.optout, "/metrics"),
            "monitor": http(self.monitor, ""),
            "monitor_alerts": http(self.monitor, "/v1/alerts"),
            "monitor_health": http(self.monitor, "/healthz"),
            "monitor_metrics": http(self.monitor, "/metrics"),
            "repository": base,
        });
        let mut description = json!({
            "repository": base,
            "verifier": http(self.verifier, ""),
            "verifier_sip": self.verifier_sip.to_string(),
            "trust_anchors": self.dir.join("roots.pem"),
            "repository_tls_root": self.dir.join("tls-root.pem"),
            "extra_trust_anchors": extras.anchor_files,
            "extra_repository_tls_roots": extras.tls_root_files,
            "carriers": [
                carrier_json(&self.pki.originating, self.one, self.one_sip, one_trace),
                carrier_json(&self.pki.gateway, self.gateway, self.gateway_sip, gateway_trace),
            ],
            "registry_db": registry_db,
            "registry_csv": registry_csv,
            "events": self.dir.join("events.jsonl"),
            "monitor": http(self.monitor, ""),
            "monitor_config": self.dir.join("monitor.toml"),
            "monitor_data": self.dir.join("monitor"),
            "optout": http(self.optout, ""),
            "optout_db": self.optout_files.db,
            "optout_link_key": self.optout_files.link_key,
            "optout_feed_token": self.optout_files.feed_token,
            "lists": self.lists.jws,
            "list_source": self.lists.source,
            "regulator_cert": self.lists.regulator_cert,
            "firms": {
                "white_listed": firm(&marketing::WHITE_LISTED),
                "small_quota": firm(&marketing::SMALL_QUOTA),
                "blacklisted": firm(&marketing::BLACKLISTED),
            },
            "country": numbers.country(),
            "numbers": {
                "registered": tns(numbers.registered),
                "unverified": tns(numbers.unverified),
                "unregistered": numbers.unregistered,
                "suspended": tns(numbers.suspended),
                "emergency": numbers.emergency,
                "called": [numbers.called],
                "gateway_foreign": [numbers.foreign],
                "gateway_domestic": [numbers.domestic_via_gateway],
                "marketing": tns(numbers.marketing),
                "small_quota": tns(numbers.small_quota),
                "blacklisted": tns(numbers.blacklisted),
                "blacklisted_numbers": tns(numbers.blacklisted_alone),
                "opted_out": [numbers.opted_out],
                "harassing": [numbers.harassing()],
            },
            "endpoints": endpoints,
            "dir": self.dir,
        });
        if let Some(scale) = &self.scale {
            let signers = json!([http(self.one, ""), http(scale.second, "")]);
            if let Some(first) = description
                .get_mut("carriers")
                .and_then(|c| c.get_mut(0))
                .and_then(Value::as_object_mut)
            {
                first.insert("signers".into(), signers);
                first.insert(
                    "registry_copies".into(),
                    json!([
                        scale_out::copy_path(&self.dir, 1),
                        scale_out::copy_path(&self.dir, 2)
                    ]),
                );
            }
            if let Some(object) = description.as_object_mut() {
                for (key, value) in [
                    ("kafka", json!(scale.options.kafka)),
                    ("kafka_topic", json!(scale.options.kafka_topic)),
                    ("kafka_group", json!(scale_out::DEFAULT_GROUP)),
                    ("alerts_topic", json!(scale.options.alerts_topic())),
                    ("postgres", json!(scale.options.postgres.redacted())),
                    (
                        "monitors",
                        json!([http(self.monitor, ""), http(scale.second_monitor, "")]),
                    ),
                ] {
                    object.insert(key.into(), value);
                }
            }
        }
        description
    }

    /// The lab's folder (PKI, registry, trace logs, event feed, `lab.json`, `lab.env`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The lab's description, as written to `lab.json`.
    pub fn description(&self) -> &Value {
        &self.description
    }

    /// The lab's numbers.
    pub fn numbers(&self) -> &'static Numbers {
        self.numbers
    }

    /// Places `calls` calls (at least one of each case) one at a time, each stamped with the
    /// system clock at the time it is placed (the services judge time by that clock), then
    /// runs the monitoring scenario once ([`monitoring::run`]; its checks are in
    /// [`Results::monitoring`]), then the SIP path ([`sip_path::run`], in [`Results::sip`]).
    pub async fn drive(&self, calls: usize) -> Result<Results, LabError> {
        let targets = Targets {
            one: self.one,
            gateway: self.gateway,
            verifier: self.verifier,
            revoked: &self.pki.revoked,
            rogue: &self.pki.rogue,
            originating: &self.pki.originating,
            numbers: self.numbers,
            signer_optouts: &self.signer_optouts,
        };
        let start = self.now;
        let clock = move || rest::service::unix_now().unwrap_or(start);
        let mut results = cases::drive(&targets, calls, &clock).await?;
        let others: Vec<SocketAddr> = self.scale.iter().map(|s| s.second_monitor).collect();
        if let Some(scale) = &self.scale {
            // The monitors' group shares the partitions before the scenario's alerts are
            // counted (a partition moving during it would start empty at its new owner).
            let monitors = [self.monitor, scale.second_monitor];
            let settled = scale.monitors_started + scale_out::GROUP_SETTLE;
            scale_out::settle(self.verifier, &monitors, settled).await?;
        }
        let scenario = monitoring::Scenario {
            one: self.one,
            gateway: &self.pki.gateway,
            verifier: self.verifier,
            monitor: self.monitor,
            others: &others,
            // On Kafka each partition has its own detector engine: the gateway's calls are
            // spread over the partitions by caller, so it places the threshold's worth per
            // partition.
            gateway_calls: if others.is_empty() {
                monitoring::GATEWAY_CALLS
            } else {
                monitoring::GATEWAY_CALLS * crate::scale_out::PARTITIONS.unsigned_abs() as usize
            },
            originating_spc: self.pki.originating.spc,
            numbers: self.numbers,
        };
        let scenario = monitoring::run(&scenario, &clock).await?;
        let since = scenario.since;
        results.monitoring = Some(scenario);
        let numbers = self.numbers;
        let first = |list: &'static [numbers::Subscriber]| list.first().map_or("", |s| s.tn);
        let dips = sip_path::Scenario {
            signer: self.one_sip,
            verifier: self.verifier_sip,
            registered: first(numbers.registered),
            other: numbers.unregistered.first().copied().unwrap_or(""),
            blacklisted: first(numbers.blacklisted),
            callee: numbers.called,
        };
        results.sip = Some(sip_path::run(&dips).await?);
        if let Some(scale) = &self.scale {
            let monitors = [self.monitor, scale.second_monitor];
            let targets = scale_out::Targets {
                signers: &[self.one, scale.second],
                verifier: self.verifier,
                monitors: &monitors,
                postgres: &scale.options.postgres,
                gateway_spc: self.pki.gateway.spc,
                since,
                numbers,
            };
            results.scale_out = Some(scale_out::run(&targets, &clock).await?);
        }
        Ok(results)
    }

    /// Stops every service and waits until each has stopped: requests in flight finish (at
    /// most 10 s), the trace logs and the event feed are closed.
    pub async fn stop(self) {
        for task in &self.background {
            task.abort();
        }
        let _ = self.stop.send(true);
        for service in self.services {
            let _ = service.await;
        }
    }
}

/// The extra roots of [`LabOptions`], read and checked.
#[derive(Debug, Default)]
struct Extras {
    /// The extra trust anchors' PEM, concatenated.
    anchors: Vec<u8>,
    /// The extra TLS roots, DER.
    tls_roots: Vec<Vec<u8>>,
    /// The files of the extra trust anchors, absolute (for `lab.json`).
    anchor_files: Vec<PathBuf>,
    /// The files of the extra TLS roots, absolute (for `lab.json`).
    tls_root_files: Vec<PathBuf>,
}

/// `path` made absolute (it exists: it was just read).
fn absolute(path: &Path) -> Result<PathBuf, LabError> {
    path.canonicalize().map_err(|e| LabError::io(path, &e))
}

/// At most this many certificates in one extra root file.
const MAX_ROOTS_PER_FILE: usize = 100;

impl Extras {
    fn read(options: &LabOptions) -> Result<Self, LabError> {
        let mut extras = Self::default();
        for path in &options.trust_anchors {
            let pem = read(path)?;
            ::pki::TrustAnchors::from_pem(&pem).map_err(|e| LabError::ExtraRoot {
                path: path.clone(),
                detail: e.to_string(),
            })?;
            extras.anchors.extend_from_slice(&pem);
            extras.anchors.push(b'\n');
            extras.anchor_files.push(absolute(path)?);
        }
        for path in &options.repository_tls_roots {
            let ders = passport::cert::certificates_from_pem(&read(path)?, MAX_ROOTS_PER_FILE)
                .map_err(|e| LabError::ExtraRoot {
                    path: path.clone(),
                    detail: e.to_string(),
                })?;
            extras.tls_roots.extend(ders);
            extras.tls_root_files.push(absolute(path)?);
        }
        Ok(extras)
    }
}

/// The folder of `carrier`'s trace log (`trace/SPC/`, created) and the log's database in it.
fn trace_db(dir: &Path, carrier: &Carrier) -> Result<PathBuf, LabError> {
    trace_db_in(dir, carrier.spc)
}

/// The trace log's database in `trace/NAME/` (created).
fn trace_db_in(dir: &Path, name: &str) -> Result<PathBuf, LabError> {
    let folder = dir.join("trace").join(name);
    create_dir(&folder)?;
    Ok(folder.join("trace.sqlite"))
}

/// Runs `work` (the PostgreSQL client's blocking calls) off the async runtime's threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, LabError> + Send + 'static,
) -> Result<T, LabError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| LabError::Task(e.to_string()))?
}

/// A signer's registry on PostgreSQL: its copy at `copy`, synchronized at start
/// ([`scale_out::synced_registry`]).
async fn synced(
    scale: &ScaleOut,
    copy: PathBuf,
    now: u64,
) -> Result<Arc<dyn NumberLookup>, LabError> {
    let url = scale.postgres.clone();
    let registry = blocking(move || scale_out::synced_registry(&url, &copy, now)).await?;
    Ok(Arc::new(registry))
}

/// The opt-out service's state: its store at `files.db` (with [`Numbers::opted_out`] opted
/// out of the white-listed firm at `now`), the link key and the feed token of `files`.
fn optout_state(
    files: &OptOutFiles,
    numbers: &Numbers,
    now: u64,
) -> Result<Arc<optout::OptOutState>, LabError> {
    let store = optout::Store::open(&files.db)?;
    store.opt_out(
        numbers.opted_out,
        marketing::WHITE_LISTED.id,
        optout::Via::Link,
        now,
    )?;
    let token = read(&files.feed_token)?;
    let token = String::from_utf8_lossy(&token).trim().to_owned();
    Ok(Arc::new(optout::OptOutState::new(
        store,
        optout::LinkKey::from_file(&files.link_key)?,
        &[token],
        optout::server::Limits {
            max_body_bytes: 4096,
            rate_per_second: 1000.0,
            burst: 1000,
        },
        optout::system_clock(),
    )))
}

/// A mirror of the opt-out feed at `feed_url`, polled every [`OPTOUT_POLL`] over plain HTTP
/// on loopback with the token of `files`; its poller is pushed on `background`.
fn mirror(
    files: &OptOutFiles,
    feed_url: &str,
    background: &mut Vec<JoinHandle<()>>,
) -> Result<Arc<OptOutMirror>, LabError> {
    let token = read(&files.feed_token)?;
    let token = String::from_utf8_lossy(&token).trim().to_owned();
    let fetcher = rest::fetch::Fetcher::new(loopback_policy(), &[])?;
    let mirror = Arc::new(OptOutMirror::new());
    background.push(optout::spawn_poller(
        Arc::clone(&mirror),
        feed_url.to_owned(),
        token,
        fetcher,
        OPTOUT_POLL,
        optout::system_clock(),
    ));
    Ok(mirror)
}

/// Plain HTTP to loopback, short timeouts: how the lab's consumers reach the lab's services.
fn loopback_policy() -> rest::fetch::FetchPolicy {
    rest::fetch::FetchPolicy {
        allow_http: true,
        allow_private_addresses: true,
        allowed_ports: None,
        connect_timeout: Duration::from_millis(500),
        total_timeout: Duration::from_millis(1000),
        max_body: 1 << 20,
        ..Default::default()
    }
}

/// A consumer's store of the regulator's list: the signed list of `files` offered at `now`,
/// then reloaded every second when the file changes (the reloader pushed on `background`).
fn list_store(
    files: &ListFiles,
    now: u64,
    background: &mut Vec<JoinHandle<()>>,
) -> Result<Arc<ListStore>, LabError> {
    let cert = lists::RegulatorCert::from_pem(&read(&files.regulator_cert)?)?;
    let store = Arc::new(ListStore::new(cert));
    store.offer(&read(&files.jws)?, now)?;
    background.push(lists::spawn_reloader(
        Arc::clone(&store),
        lists::ListSource::File(files.jws.clone()),
        rest::fetch::Fetcher::new(loopback_policy(), &[])?,
        Duration::from_secs(1),
        optout::system_clock(),
    ));
    Ok(store)
}

/// The originating carrier's registry, imported from `csv` with the numbering plan `plan`.
fn registry(path: &Path, csv: &str, plan: NumberingPlan, now: u64) -> Result<Registry, LabError> {
    let mut registry = Registry::open(path)?;
    let mut progress = |_| {};
    import(
        &mut registry,
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
    Ok(registry)
}

/// A signer's state for `carrier`, with `registry`, its trace log at `trace_db`, and the
/// country's numbering plan, home country code and emergency numbers.
fn signer_state(
    carrier: &Carrier,
    registry: Arc<dyn NumberLookup>,
    trace_db: &Path,
    numbers: &Numbers,
    now: u64,
) -> Result<SignerState, LabError> {
    let key = SigningKey::from_pem(&read(&carrier.key)?)?;
    let state = SignerState::new(StateParts {
        signer: Arc::new(TokenSigner::new(key, carrier.x5u.clone())),
        registry,
        trace: signer::trace::TraceLog::open(trace_db)?,
        policy: signer::policy::PolicyConfig {
            home_country_code: Some(numbers.plan.country_code().to_owned()),
            emergency_numbers: numbers.emergency.iter().map(|e| (*e).to_owned()).collect(),
            ..Default::default()
        },
        plan: Some(numbers.plan),
        clients: vec![],
        max_body: 16 * 1024,
        nonce_pool: signer::nonces::DEFAULT_CAPACITY,
    });
    // As `signer serve` does at start: the expiry metric (no warning, the lab's certificates
    // are made fresh and the lab's log is the table).
    signer::service::note_certificate_expiry(&state, carrier.not_after, now, 0);
    Ok(state)
}

/// The terminating verifier's state: it trusts the lab CA's root and the extra trust anchors,
/// fetches from loopback over TLS trusting the lab TLS root and the extra TLS roots, reads
/// numbers with the country's plan, writes its event feed to `events.jsonl` and pushes it to
/// the monitor at `monitor` (batches at most [`PUSH_INTERVAL`] apart, spooled in
/// `events-spool/` while the monitor is away).
fn verifier_state(
    dir: &Path,
    pki: &LabPki,
    extras: &Extras,
    plan: NumberingPlan,
    monitor: SocketAddr,
    scale: Option<&ScaleOut>,
) -> Result<verifier::service::VerifierState, LabError> {
    let policy = verifier::fetch::FetchPolicy {
        allow_private_addresses: true,
        allowed_ports: None,
        connect_timeout: Duration::from_millis(500),
        total_timeout: Duration::from_millis(1000),
        ..Default::default()
    };
    let mut tls_roots = vec![pki.tls_root.clone()];
    tls_roots.extend(extras.tls_roots.iter().cloned());
    let fetcher = verifier::fetch::Fetcher::new(policy, &tls_roots)?;
    let mut anchors = ca_tools::certificate::certificate_pem(&pki.ca_root).into_bytes();
    anchors.push(b'\n');
    anchors.extend_from_slice(&extras.anchors);
    let anchors = ::pki::TrustAnchors::from_pem(&anchors).map_err(LabError::TrustAnchors)?;
    let verifier = verifier::verify::Verifier::new(
        fetcher,
        verifier::cache::CacheConfig::default(),
        anchors,
        verifier::crl::CrlStore::default(),
        verifier::verify::Windows::default(),
    );
    let events_path = dir.join("events.jsonl");
    let file = verifier::events::file::FileWriter::open(&verifier::events::EventTarget::File(
        events_path.clone(),
    ))
    .map_err(|e| LabError::io(&events_path, &e))?;
    // On Kafka the events go to the topic only (and the file): each monitor instance must
    // see just its partitions' callers ([`crate::scale_out`]).
    if let Some(scale) = scale {
        let publisher =
            verifier::events::kafka::KafkaPublisher::start(verifier::events::kafka::KafkaOptions {
                brokers: scale.kafka.clone(),
                topic: scale.kafka_topic.clone(),
                queue_lines: 100_000,
                message_timeout: Duration::from_secs(300),
                flush_timeout: Duration::from_secs(5),
            })
            .map_err(|e| LabError::Kafka {
                brokers: scale.kafka.clone(),
                detail: e.to_string(),
            })?;
        let events = verifier::events::EventSink::new(Some(file), None).with_kafka(publisher);
        return Ok(verifier::service::VerifierState::new(
            verifier,
            vec![],
            Some(plan),
            16 * 1024,
            Some(events),
        ));
    }
    let push_url = format!("http://{monitor}/v1/events");
    let section = verifier::config::EventsSection {
        push: Some(push_url.clone()),
        batch_interval_ms: u64::try_from(PUSH_INTERVAL.as_millis()).unwrap_or(100),
        timeout_ms: 1000,
        backoff_min_ms: 100,
        backoff_max_ms: 2000,
        spool_dir: Some(dir.join("events-spool")),
        allow_insecure_loopback: true,
        ..Default::default()
    };
    let pusher = verifier::events::push::Pusher::start(verifier::server::push_options(
        &section,
        &push_url,
        &[],
    ))?;
    let events = verifier::events::EventSink::new(Some(file), Some(pusher));
    Ok(verifier::service::VerifierState::new(
        verifier,
        vec![],
        Some(plan),
        16 * 1024,
        Some(events),
    ))
}

/// The monitor's configuration (`monitor.toml`): `home_country` is the country's code, the
/// gateway carrier (the second of `signers`) is an international gateway, and each carrier's
/// signer at its loopback address is the trace endpoint of its SPC (plain HTTP allowed on
/// loopback). The detectors keep their defaults.
pub fn monitor_toml(numbers: &Numbers, signers: [(&Carrier, SocketAddr); 2]) -> String {
    let [(_, _), (gateway, _)] = &signers;
    let mut text = format!(
        "# The lab's monitor: shaken monitor serve --config monitor.toml --data monitor\n\
         home_country = \"{}\"\n\
         international_gateway_spcs = [\"{}\"]\n\
         international_ingress = [\"international\"]\n\n\
         [trace_fetch]\n\
         allow_http_loopback = true\n\
         timeout_ms = 1000\n",
        numbers.plan.country_code(),
        gateway.spc,
    );
    for (carrier, address) in signers {
        text.push_str(&format!(
            "\n[trace.\"{}\"]\nurl = \"http://{address}{}\"\n",
            carrier.spc,
            signer::traceback::TRACE_PATH
        ));
    }
    text
}

/// Reads the monitor's configuration at `config` and opens its store in `data` (created),
/// restoring what a previous run of the lab in the same folder left; returns its API.
async fn start_monitor(
    config: &Path,
    data: &Path,
) -> Result<Arc<monitor::api::MonitorApi>, LabError> {
    let config =
        monitor::config::MonitorConfig::load(config).map_err(monitor::server::ServeError::from)?;
    let data = data.to_owned();
    let prepared = tokio::task::spawn_blocking(move || monitor::server::prepare(&data, &config))
        .await
        .map_err(|e| LabError::Task(e.to_string()))??;
    Ok(prepared.api)
}

/// A carrier as `lab.json` describes it: its signer's base URL, files, x5u, and its trace
/// log's folder (`trace_dir`) and database (`trace_db`).
fn carrier_json(carrier: &Carrier, signer: SocketAddr, sip: SocketAddr, trace_db: &Path) -> Value {
    json!({"name": carrier.name, "spc": carrier.spc, "signer": format!("http://{signer}"),
           "sip": sip.to_string(),
           "key": carrier.key, "chain": carrier.chain, "x5u": carrier.x5u,
           "trace_dir": trace_db.parent(), "trace_db": trace_db})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cases::CASES;

    /// `url` (`http://127.0.0.1:PORT/PATH`) as an address and a path.
    fn split(url: &str) -> (SocketAddr, String) {
        let rest = url.strip_prefix("http://").unwrap();
        let (address, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        (address.parse().unwrap(), path.to_owned())
    }

    async fn start(dir: &Path, plan: NumberingPlan) -> Lab {
        let now = rest::service::unix_now().unwrap();
        let options = LabOptions {
            dir: Some(dir.join("lab")),
            plan,
            ..LabOptions::default()
        };
        let mut steps = vec![];
        let lab = Lab::start(&options, now, &mut |p| steps.push(p.to_string()))
            .await
            .unwrap();
        assert_eq!(steps.len(), 6, "{steps:?}");
        assert!(
            steps[3].ends_with(
                "white-listed: Sunrise Insurance, Brightway Surveys; \
                 blacklisted: Nightcall Marketing"
            ),
            "{steps:?}"
        );
        assert!(steps[4].contains("opt-out service"), "{steps:?}");
        assert!(steps[0].contains(lab.dir().to_str().unwrap()), "{steps:?}");
        lab
    }

    /// Every case once, each with its expected outcome; then the monitoring scenario, whose
    /// three checks match: the harassing caller and the gateway raised their alerts at the
    /// monitor through the verifier's push, and the traceback reached the customer.
    async fn every_case(lab: &Lab) {
        let results = lab.drive(1).await.unwrap();
        let table = results.table(true);
        assert!(results.all_matched(), "{table}");
        assert_eq!(results.cases.len(), CASES.len());
        assert!(results.cases.iter().all(|c| c.calls == 1));
        let monitoring = results.monitoring.as_ref().unwrap();
        let names: Vec<_> = monitoring.checks.iter().map(|c| c.name).collect();
        assert_eq!(
            names,
            ["harassing caller", "gateway domestic IDs", "traceback"]
        );
        assert!(monitoring.checks.iter().all(|c| c.matched), "{table}");
        let numbers = lab.numbers();
        let [harassing, gateway, traceback] = &monitoring.checks[..] else {
            unreachable!()
        };
        assert!(harassing.got.starts_with(numbers.harassing()), "{table}");
        assert!(gateway.got.contains("SPC 2001"), "{table}");
        assert!(
            traceback.got.starts_with("customer h1 at SPC 1001 in "),
            "{table}"
        );
        let hop = monitoring.hop_ms.unwrap();
        assert!(hop > 0.0 && hop < 1000.0, "{hop} ms");
        assert!(table.contains("\nharassing caller "), "{table}");
        assert!(table.contains("the monitor raised every expected alert (3 of 3 checks)"));
        let json = results.to_json(lab.description());
        assert_eq!(json["monitor"]["checks"][2]["result"], "pass");
        assert_eq!(json["ok"], true);
        // The verifier wrote its events to the file too, the ingress carried through.
        let events = std::fs::read_to_string(lab.dir().join("events.jsonl")).unwrap();
        let pushed = events
            .lines()
            .filter(|l| l.contains(r#""ingress":"international""#))
            .count();
        assert_eq!(pushed, crate::monitoring::GATEWAY_CALLS, "{events}");
    }

    /// The lab in process: every case once, each with its expected verdict; `lab.json` and
    /// `lab.env` agree and each endpoint answers; the signers export their certificate's days
    /// left.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_case_gets_its_expected_verdict() {
        let dir = tempfile::tempdir().unwrap();
        let lab = start(dir.path(), NumberingPlan::Nanp).await;
        every_case(&lab).await;
        let written: Value =
            serde_json::from_slice(&std::fs::read(lab.dir().join("lab.json")).unwrap()).unwrap();
        assert_eq!(&written, lab.description());
        assert!(lab.dir().join("events.jsonl").exists());
        assert_eq!(written["country"], "NANP");
        // Every member lab.json had before it grew keeps its name and meaning.
        for member in [
            "repository",
            "verifier",
            "trust_anchors",
            "repository_tls_root",
            "carriers",
            "registry_db",
            "numbers",
            "dir",
        ] {
            assert!(written.get(member).is_some(), "lab.json lost {member}");
        }
        assert_eq!(written["dir"].as_str(), lab.dir().to_str());
        // The marketing members: the list verifies with the regulator certificate; the firms'
        // numbers; the opt-out service's base URL and secrets (0600).
        let cert = std::fs::read(written["regulator_cert"].as_str().unwrap()).unwrap();
        let cert = lists::RegulatorCert::from_pem(&cert).unwrap();
        let jws = std::fs::read(written["lists"].as_str().unwrap()).unwrap();
        let list = lists::store::check(&jws, &cert, rest::service::unix_now().unwrap()).unwrap();
        assert_eq!(list.document.firms.len(), 3);
        assert!(Path::new(written["list_source"].as_str().unwrap()).exists());
        assert_eq!(
            written["numbers"]["marketing"],
            json!(["12155550401", "12155550402"])
        );
        assert_eq!(
            written["numbers"]["blacklisted"],
            json!(["12155550601", "12155550602"])
        );
        assert_eq!(
            written["firms"]["white_listed"]["name"],
            "Sunrise Insurance"
        );
        assert!(written["optout"]
            .as_str()
            .unwrap()
            .starts_with("http://127.0.0.1:"));
        for secret in ["optout_link_key", "optout_feed_token"] {
            use std::os::unix::fs::PermissionsExt;
            let file = Path::new(written[secret].as_str().unwrap());
            let mode = std::fs::metadata(file).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{secret}");
        }
        assert!(written["verifier"]
            .as_str()
            .unwrap()
            .starts_with("http://127.0.0.1:"));
        for number_kind in [
            "registered",
            "unverified",
            "unregistered",
            "suspended",
            "emergency",
        ] {
            assert!(
                written["numbers"][number_kind].is_array(),
                "lab.json lost numbers.{number_kind}"
            );
        }
        let carriers = written["carriers"].as_array().unwrap();
        let names: Vec<_> = carriers
            .iter()
            .map(|c| c["spc"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["1001", "2001"]);
        for carrier in carriers {
            for member in ["name", "signer", "key", "chain", "x5u"] {
                assert!(
                    carrier[member].is_string(),
                    "carriers[].{member}: {carrier}"
                );
            }
            assert!(Path::new(carrier["key"].as_str().unwrap()).exists());
        }
        // The trace logs are where lab.json says, one folder per signer.
        for carrier in written["carriers"].as_array().unwrap() {
            let trace_dir = Path::new(carrier["trace_dir"].as_str().unwrap());
            let trace_db = Path::new(carrier["trace_db"].as_str().unwrap());
            assert_eq!(trace_db.parent(), Some(trace_dir));
            assert!(trace_db.exists(), "{}", trace_db.display());
        }

        // lab.env, sourced by sh, gives the same endpoints and values as lab.json.
        let endpoints = written["endpoints"].as_object().unwrap();
        let mut variables: Vec<(String, String)> = endpoints
            .iter()
            .map(|(name, url)| {
                let variable = format!("SHAKEN_{}_URL", name.to_ascii_uppercase());
                (variable, url.as_str().unwrap().to_owned())
            })
            .collect();
        for (variable, member) in [
            ("SHAKEN_REGISTERED_TN", &written["numbers"]["registered"][0]),
            ("SHAKEN_CALLED_TN", &written["numbers"]["called"][0]),
            (
                "SHAKEN_UNREGISTERED_TN",
                &written["numbers"]["unregistered"][0],
            ),
            ("SHAKEN_TRACE_DB", &written["carriers"][0]["trace_db"]),
            ("SHAKEN_REGISTRY_DB", &written["registry_db"]),
            ("SHAKEN_DIR", &written["dir"]),
            ("SHAKEN_LISTS", &written["lists"]),
            ("SHAKEN_REGULATOR_CERT", &written["regulator_cert"]),
            ("SHAKEN_MARKETING_TN", &written["numbers"]["marketing"][0]),
            (
                "SHAKEN_BLACKLISTED_TN",
                &written["numbers"]["blacklisted"][0],
            ),
            (
                "SHAKEN_OPTOUT_FEED_TOKEN_FILE",
                &written["optout_feed_token"],
            ),
            ("SHAKEN_OPTOUT_LINK_KEY", &written["optout_link_key"]),
            ("SHAKEN_HARASSING_TN", &written["numbers"]["harassing"][0]),
        ] {
            variables.push((variable.to_owned(), member.as_str().unwrap().to_owned()));
        }
        let script: String = variables
            .iter()
            .map(|(variable, _)| format!("printf '%s\\n' \"${variable}\"\n"))
            .collect();
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!(". \"$1\"\n{script}"))
            .arg("sh")
            .arg(lab.dir().join("lab.env"))
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let printed: Vec<String> = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect();
        let expected: Vec<String> = variables.iter().map(|(_, v)| v.clone()).collect();
        assert_eq!(printed, expected);
        assert_eq!(endpoints.len(), 18);
        assert_eq!(written["monitor"], endpoints["monitor"]);
        let config = std::fs::read_to_string(written["monitor_config"].as_str().unwrap()).unwrap();
        assert!(config.contains("home_country = \"1\"\n"), "{config}");
        assert!(
            config.contains("international_gateway_spcs = [\"2001\"]"),
            "{config}"
        );

        // Every endpoint answers: health and metrics 200, signing and verification 200.
        let numbers = lab.numbers();
        for (name, url) in endpoints {
            let url = url.as_str().unwrap();
            if name == "repository" {
                assert!(url.starts_with("https://127.0.0.1:"));
                continue;
            }
            if name == "optout" {
                assert_eq!(Some(url), written["optout"].as_str());
                continue;
            }
            if name == "monitor" {
                // The base URL: the dashboard.
                let (address, _) = split(url);
                let (status, page) = Client::connect(address)
                    .await
                    .unwrap()
                    .get("/")
                    .await
                    .unwrap();
                assert_eq!(status, 200);
                assert!(page.contains("<html"), "{page}");
                continue;
            }
            let (address, path) = split(url);
            let mut client = Client::connect(address).await.unwrap();
            let status = match name.as_str() {
                "signing" | "gateway_signing" => {
                    let (attest, orig) = if name == "signing" {
                        ("A", numbers.registered(0))
                    } else {
                        ("C", numbers.foreign)
                    };
                    let body = json!({"signingRequest": {"attest": attest,
                        "orig": {"tn": orig}, "dest": {"tn": [numbers.called]},
                        "iat": rest::service::unix_now().unwrap(),
                        "origid": uuid::Uuid::new_v4().to_string()}});
                    client.post(&path, body.to_string()).await.unwrap().0
                }
                "verification" => {
                    let body = json!({"verificationRequest": {"from": {"tn": numbers.registered(0)},
                        "to": {"tn": [numbers.called]}, "time": rest::service::unix_now().unwrap()}});
                    client.post(&path, body.to_string()).await.unwrap().0
                }
                // The feed wants its bearer token.
                "optout_feed" => {
                    assert_eq!(client.get(&path).await.unwrap().0, 401, "{url}");
                    continue;
                }
                _ => client.get(&path).await.unwrap().0,
            };
            assert_eq!(status, 200, "{name} {url}");
        }

        // The signers export their certificate's days left (30-day certificates).
        for name in ["signer_metrics", "gateway_metrics"] {
            let (address, path) = split(endpoints[name].as_str().unwrap());
            let (status, metrics) = Client::connect(address)
                .await
                .unwrap()
                .get(&path)
                .await
                .unwrap();
            assert_eq!(status, 200);
            let days = metrics
                .lines()
                .find_map(|l| l.strip_prefix("shaken_signer_certificate_expiry_days "))
                .unwrap();
            assert!(days == "29" || days == "30", "{days}");
        }
        lab.stop().await;
    }

    /// `--country CN`: Chinese numbers, the registry imported from national forms (`021 ...`),
    /// China's emergency numbers, and every case, the classic gateway spoof included, with its
    /// expected verdict.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_case_gets_its_expected_verdict_with_chinese_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let lab = start(dir.path(), NumberingPlan::China).await;
        every_case(&lab).await;
        let written: Value =
            serde_json::from_slice(&std::fs::read(lab.dir().join("lab.json")).unwrap()).unwrap();
        assert_eq!(written["country"], "CN");
        for kind in ["marketing", "blacklisted", "small_quota", "opted_out"] {
            for tn in written["numbers"][kind].as_array().unwrap() {
                assert!(tn.as_str().unwrap().starts_with("86"), "{kind} {tn}");
            }
        }
        for kind in [
            "registered",
            "unverified",
            "unregistered",
            "suspended",
            "called",
        ] {
            for tn in written["numbers"][kind].as_array().unwrap() {
                assert!(tn.as_str().unwrap().starts_with("86"), "{kind} {tn}");
            }
        }
        assert_eq!(
            written["numbers"]["emergency"],
            json!(["110", "119", "120", "122"])
        );
        let csv = std::fs::read_to_string(written["registry_csv"].as_str().unwrap()).unwrap();
        assert!(csv.contains("\n021 6234 5678,"), "{csv}");
        let registry = Registry::open(Path::new(written["registry_db"].as_str().unwrap())).unwrap();
        let record = registry.lookup("862162345678").unwrap().unwrap();
        assert_eq!(record.tn, "862162345678");
        lab.stop().await;
    }

    /// `--trust-anchor` and `--repository-tls-root`: a carrier of another CA, published by a
    /// repository of its own under its own TLS certificate, verifies at the lab's verifier
    /// once both are given (436 without the TLS root: its x5u cannot be fetched; 437
    /// untrusted with the TLS root only).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_verifier_trusts_extra_anchors_and_repository_roots() {
        let now = rest::service::unix_now().unwrap();
        // Another PA, CA and carrier, made with ca-tools, and their repository.
        let other = tempfile::tempdir().unwrap();
        let (listener, address) = loopback().await.unwrap();
        let base = format!("https://127.0.0.1:{}", address.port());
        let publish = other.path().join("publish");
        let pki = pki::build(other.path(), &publish, &base, now, &mut rand_core::OsRng).unwrap();
        let (stop, stop_rx) = watch::channel(false);
        let repository = tokio::spawn(ca_tools::repository::serve(
            listener,
            pki.repository_tls.clone(),
            ca_tools::repository::RepositoryConfig {
                dir: publish,
                max_age: 600,
            },
            stopped(stop_rx),
        ));
        let anchor = other.path().join("roots.pem");
        let tls_root = other.path().join("tls-root.pem");

        for (anchors, tls_roots, verstat, code, flag) in [
            (vec![], vec![], "TN-Validation-Failed", Some(436), None),
            (
                vec![],
                vec![tls_root.clone()],
                "TN-Validation-Failed",
                Some(437),
                Some("untrusted"),
            ),
            (
                vec![anchor.clone()],
                vec![tls_root.clone()],
                "TN-Validation-Passed",
                None,
                None,
            ),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let options = LabOptions {
                dir: Some(dir.path().join("lab")),
                trust_anchors: anchors,
                repository_tls_roots: tls_roots,
                ..LabOptions::default()
            };
            let lab = Lab::start(&options, now, &mut |_| {}).await.unwrap();
            let numbers = lab.numbers();
            let identity = cases::direct_identity(
                &pki.originating,
                &pki.originating.x5u,
                numbers.registered(0),
                numbers.called,
                rest::service::unix_now().unwrap(),
            )
            .unwrap();
            let body = json!({"verificationRequest": {"from": {"tn": numbers.registered(0)},
                "to": {"tn": [numbers.called]}, "time": rest::service::unix_now().unwrap(),
                "identity": identity}});
            let (status, reply) = Client::connect(lab.verifier)
                .await
                .unwrap()
                .post("/stir/v1/verification", body.to_string())
                .await
                .unwrap();
            assert_eq!(status, 200);
            let verdict = &reply["verificationResponse"];
            assert_eq!(verdict["verstat"], verstat, "{reply}");
            assert_eq!(verdict["reasoncode"].as_u64(), code, "{reply}");
            if let Some(flag) = flag {
                assert!(
                    verdict["flags"].as_array().unwrap().contains(&json!(flag)),
                    "{reply}"
                );
            }
            assert_eq!(
                lab.description()["extra_trust_anchors"]
                    .as_array()
                    .unwrap()
                    .len(),
                options.trust_anchors.len()
            );
            lab.stop().await;
        }
        let _ = stop.send(true);
        repository.await.unwrap().unwrap();

        // A file that is not a certificate is refused, naming it.
        let options = LabOptions {
            trust_anchors: vec![other.path().join("publish/ca/root.crl")],
            ..LabOptions::default()
        };
        let error = Lab::start(&options, now, &mut |_| {}).await.unwrap_err();
        assert!(matches!(error, LabError::ExtraRoot { .. }), "{error}");
    }
}
