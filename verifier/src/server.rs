//! The verification service as a process (`shaken verifier serve`): from the configuration to
//! the trust anchors, local CRLs, fetcher, clients and TLS ([`Prepared::load`], everything
//! `--validate` checks), then the event feed, the verifier and the serve loop
//! ([`Prepared::run`]), and the SIP listener beside the REST one when `[sip]` is set
//! ([`SipBound`], stopped with it). SIGHUP reloads the trust anchors and local CRLs; if the new files are
//! unusable the previous ones stay in force.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use pki::TrustAnchors;
use rest::clients::{Client, ClientError};
use rest::service::{ListenError, Listening};
use rest::tls::TlsError;

use std::time::Duration;

use crate::config::{ConfigError, EventsSection, SipSection, VerifierConfig};
use crate::crl::{Crl, CrlStore};
use crate::events::file::FileWriter;
use crate::events::kafka::{KafkaOptions, KafkaPublisher};
use crate::events::push::{PushOptions, Pusher};
use crate::events::{self, EventSink};
use crate::fetch::{FetchPolicy, Fetcher};
use crate::service::{self, VerifierState};
use crate::sip::{SipAnswers, SipOptions, VerifierSip};
use crate::verify::Verifier;

/// Why the verification service cannot start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// The configuration file is unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The trust anchors cannot be loaded.
    #[error("trust_anchors: {0}")]
    TrustAnchors(pki::Error),
    /// A local CRL file does not parse.
    #[error("crl_files: {}: {error}", path.display())]
    Crl {
        /// The CRL file.
        path: PathBuf,
        /// What is wrong with it.
        error: pki::Error,
    },
    /// A file named by the configuration cannot be read.
    #[error("{key}: cannot read {}: {detail}", path.display())]
    Read {
        /// The configuration key naming it (`crl_files`, `fetch.extra_tls_roots`).
        key: &'static str,
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        detail: String,
    },
    /// The extra TLS roots for fetching do not parse.
    #[error("fetch.extra_tls_roots: {0}")]
    ExtraRoots(passport::cert::CertificateError),
    /// The fetcher cannot be built.
    #[error(transparent)]
    Fetcher(#[from] rest::fetch::FetchError),
    /// The `[lists]` section cannot be used (its message names the key).
    #[error(transparent)]
    Lists(Box<lists::ConsumerError>),
    /// The `[optout]` section cannot be used (its message names the key).
    #[error(transparent)]
    OptOut(Box<optout::consumer::ConsumerError>),
    /// A `[[clients]]` entry is unusable.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The `[tls]` section is unusable.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The event feed cannot be opened.
    #[error("opening the event feed {target}: {detail}")]
    Events {
        /// The configured target.
        target: String,
        /// What the operating system said.
        detail: String,
    },
    /// The listening address cannot be bound.
    #[error(transparent)]
    Listen(#[from] ListenError),
    /// The SIP listener (`[sip]`) cannot be bound.
    #[error("sip: {0}")]
    Sip(#[from] sip::transport::BindError),
}

/// The trust anchors the configuration names (a file or a folder).
pub fn load_anchors(config: &VerifierConfig) -> Result<TrustAnchors, ServerError> {
    TrustAnchors::from_path(&config.trust_anchors).map_err(ServerError::TrustAnchors)
}

/// The local CRL files the configuration names, each parsed.
pub fn load_crls(config: &VerifierConfig) -> Result<Vec<Crl>, ServerError> {
    config
        .crl_files
        .iter()
        .map(|path| {
            let bytes = read("crl_files", path)?;
            Crl::parse(&bytes).map_err(|error| ServerError::Crl {
                path: path.clone(),
                error,
            })
        })
        .collect()
}

/// Reads the file that the configuration key `key` names.
fn read(key: &'static str, path: &Path) -> Result<Vec<u8>, ServerError> {
    std::fs::read(path).map_err(|e| ServerError::Read {
        key,
        path: path.to_owned(),
        detail: e.to_string(),
    })
}

/// A checked configuration and what it names, loaded: the service can start.
pub struct Prepared {
    config: VerifierConfig,
    anchors: TrustAnchors,
    crls: Vec<Crl>,
    fetcher: Fetcher,
    /// The extra TLS roots (DER), also trusted for the regulator's list.
    extra_roots: Vec<Vec<u8>>,
    clients: Vec<Client>,
    tls: Option<tokio_rustls::TlsAcceptor>,
}

impl std::fmt::Debug for Prepared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prepared")
            .field("listen", &self.config.listen)
            .field("trust_anchors", &self.anchors.len())
            .field("crls", &self.crls.len())
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

impl Prepared {
    /// Loads the trust anchors, CRLs, extra fetch roots, clients and TLS of `config`; any
    /// unusable one is an error, so a service that starts has all of them.
    pub fn load(config: VerifierConfig) -> Result<Self, ServerError> {
        let anchors = load_anchors(&config)?;
        let crls = load_crls(&config)?;
        let extra_roots = match &config.fetch.extra_tls_roots {
            Some(path) => passport::cert::chain_from_pem(&read("fetch.extra_tls_roots", path)?)
                .map_err(ServerError::ExtraRoots)?,
            None => Vec::new(),
        };
        let fetcher = Fetcher::new(config.fetch_policy(), &extra_roots)?;
        if let Some(section) = &config.lists {
            lists::consumer::check(section).map_err(|e| ServerError::Lists(Box::new(e)))?;
        }
        if let Some(section) = &config.optout {
            section
                .check()
                .map_err(|e| ServerError::OptOut(Box::new(e)))?;
        }
        let clients = config
            .clients
            .iter()
            .map(Client::from_config)
            .collect::<Result<Vec<_>, _>>()?;
        let tls = config.tls.as_ref().map(rest::tls::acceptor).transpose()?;
        Ok(Self {
            config,
            anchors,
            crls,
            fetcher,
            extra_roots,
            clients,
            tls,
        })
    }

    /// How many trust anchors were loaded.
    pub fn trust_anchor_count(&self) -> usize {
        self.anchors.len()
    }

    /// How many local CRL files were loaded.
    pub fn crl_count(&self) -> usize {
        self.crls.len()
    }

    /// Opens the event feed, warms the certificate cache up (as of `now`), binds the listener
    /// and serves until `shutdown` completes, reloading on each SIGHUP. Logs through `tracing`.
    pub async fn run(
        self,
        now: u64,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), ServerError> {
        let Self {
            config,
            anchors,
            crls,
            fetcher,
            extra_roots,
            clients,
            tls,
        } = self;
        let events = match &config.events {
            Some(section) => Some(open_events(section, &extra_roots)?),
            None => None,
        };
        let verifier = Verifier::new(
            fetcher,
            config.cache_config(),
            anchors,
            CrlStore::new(crls, config.require_revocation),
            config.windows(),
        );
        let mut state = VerifierState::new(
            verifier,
            clients,
            config.plan(),
            config.max_body_bytes,
            events,
        );
        if let Some(section) = &config.lists {
            let clock: crate::service::Clock = crate::service::system_clock();
            let store =
                lists::consumer::start(section, &config.fetch_policy(), &extra_roots, clock)
                    .map_err(|e| ServerError::Lists(Box::new(e)))?;
            state = state.with_lists(store);
        }
        if let Some(section) = &config.optout {
            let optout_error = |e| ServerError::OptOut(Box::new(e));
            let mirror = section
                .start_mirror(
                    &config.fetch_policy(),
                    &extra_roots,
                    crate::service::system_clock(),
                )
                .map_err(optout_error)?;
            state = state.with_optouts(mirror);
            if let Some(issuer) = section.link_issuer().map_err(optout_error)? {
                state = state.with_links(Arc::new(issuer));
            }
        }
        let sip = match &config.sip {
            Some(section) => {
                let bound = SipBound::bind(section).await?;
                state = bound.attach(state);
                Some(bound)
            }
            None => None,
        };
        let state = Arc::new(state);
        for x5u in &config.cache.warm_up {
            match state.verifier.warm_up(x5u, now).await {
                Ok(chain) => tracing::info!(%x5u, spc = %chain.spc, "warmed up"),
                Err(error) => tracing::warn!(%x5u, %error, "warm-up failed"),
            }
        }
        let Listening {
            listener,
            address,
            hangup,
        } = rest::service::listen(config.listen).await?;
        tracing::info!(%address, tls = tls.is_some(), "verifier listening");
        tokio::spawn(reload_on_sighup(hangup, config, Arc::clone(&state)));
        // One shutdown for both listeners: the SIP one stops when the REST one is told to.
        let (stop_sip, sip_stopped) = tokio::sync::watch::channel(false);
        let sip_task = sip.map(|bound| {
            let mut sip_stopped = sip_stopped;
            tokio::spawn(bound.serve(Arc::clone(&state), async move {
                let _ = sip_stopped.wait_for(|stop| *stop).await;
            }))
        });
        service::serve(listener, Arc::clone(&state), tls, async move {
            shutdown.await;
            let _ = stop_sip.send(true);
        })
        .await;
        if let Some(task) = sip_task {
            let _ = task.await;
        }
        // The pusher spools what it holds in memory, for the next start to send.
        let _ = tokio::task::spawn_blocking(move || state.stop_events()).await;
        tracing::info!("verifier stopped");
        Ok(())
    }
}

/// The verifier's SIP listener, bound (`[sip]`): attach its counters to the state, then serve.
#[derive(Debug)]
pub struct SipBound {
    listener: sip::transport::SipListener,
    options: SipOptions,
    answers: Arc<SipAnswers>,
}

impl SipBound {
    /// Checks `section`'s answer options and binds its listen items.
    pub async fn bind(section: &SipSection) -> Result<Self, ServerError> {
        let options = SipOptions::from_section(section)?;
        let listener = sip::transport::SipListener::bind(&section.listener).await?;
        let addresses: Vec<String> = listener
            .local_addrs()
            .iter()
            .map(|(transport, address)| format!("{}:{address}", transport.as_str()))
            .collect();
        tracing::info!(addresses = %addresses.join(" "), "verifier SIP listening");
        Ok(Self {
            listener,
            options,
            answers: Arc::new(SipAnswers::default()),
        })
    }

    /// The addresses bound, with their transport.
    pub fn local_addrs(&self) -> Vec<(sip::transport::Transport, std::net::SocketAddr)> {
        self.listener.local_addrs()
    }

    /// `state` showing this listener's counters and answers in `/metrics`.
    pub fn attach(&self, state: VerifierState) -> VerifierState {
        state.with_sip_metrics(self.listener.status(), Arc::clone(&self.answers))
    }

    /// Serves INVITEs through `state` until `shutdown` completes.
    pub async fn serve(self, state: Arc<VerifierState>, shutdown: impl Future<Output = ()>) {
        let handler = Arc::new(VerifierSip::new(state, self.options, self.answers));
        self.listener.serve(handler, shutdown).await;
    }
}

/// The event feed `[events]` describes: its file and its pusher (whose spool is opened, and
/// whose batches waiting there are sent first).
pub fn open_events(
    section: &EventsSection,
    extra_roots: &[Vec<u8>],
) -> Result<EventSink, ServerError> {
    let file =
        match &section.file {
            Some(target) => Some(FileWriter::open(&events::target(target)).map_err(|e| {
                ServerError::Events {
                    target: target.clone(),
                    detail: e.to_string(),
                }
            })?),
            None => None,
        };
    let push = match &section.push {
        Some(url) => Some(
            Pusher::start(push_options(section, url, extra_roots)).map_err(|e| {
                ServerError::Events {
                    target: url.clone(),
                    detail: e.to_string(),
                }
            })?,
        ),
        None => None,
    };
    let sink = EventSink::new(file, push);
    match &section.kafka {
        Some(brokers) => {
            let publisher =
                KafkaPublisher::start(kafka_options(section, brokers)).map_err(|e| {
                    ServerError::Events {
                        target: brokers.clone(),
                        detail: e.to_string(),
                    }
                })?;
            tracing::info!(brokers, topic = %section.kafka_topic, "events published to Kafka");
            Ok(sink.with_kafka(publisher))
        }
        None => Ok(sink),
    }
}

/// The Kafka publisher's options from `[events]`, with `brokers` its `kafka` key.
pub fn kafka_options(section: &EventsSection, brokers: &str) -> KafkaOptions {
    KafkaOptions {
        brokers: brokers.to_owned(),
        topic: section.kafka_topic.clone(),
        queue_lines: section.kafka_queue_lines,
        message_timeout: Duration::from_millis(section.kafka_message_timeout_ms),
        flush_timeout: Duration::from_millis(section.kafka_flush_ms),
    }
}

/// The pusher's options from `[events]` (its push URL `url`): the client may reach private
/// addresses (the operator names the monitor, no call does) and, with
/// `allow_insecure_loopback`, plain HTTP (the configuration allows it to loopback only).
pub fn push_options(section: &EventsSection, url: &str, extra_roots: &[Vec<u8>]) -> PushOptions {
    let timeout = Duration::from_millis(section.timeout_ms);
    PushOptions {
        url: url.to_owned(),
        batch_lines: section.batch_lines,
        batch_bytes: section.batch_bytes,
        batch_interval: Duration::from_millis(section.batch_interval_ms),
        spool_dir: section
            .spool_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(crate::config::DEFAULT_SPOOL_DIR)),
        spool_max_bytes: section.spool_max_bytes,
        backoff_min: Duration::from_millis(section.backoff_min_ms),
        backoff_max: Duration::from_millis(section.backoff_max_ms),
        queue_lines: section.queue_lines,
        policy: FetchPolicy {
            allow_http: section.allow_insecure_loopback,
            allow_private_addresses: true,
            allowed_ports: None,
            allowed_hosts: None,
            connect_timeout: timeout,
            total_timeout: timeout,
            max_body: PUSH_ANSWER_MAX_BYTES,
        },
        extra_roots: extra_roots.to_vec(),
    }
}

/// The largest answer to a pushed batch read (the monitor lists the lines it refused).
const PUSH_ANSWER_MAX_BYTES: usize = 1 << 20;

/// Reloads the trust anchors and local CRLs on each SIGHUP received by `hangup`; keeps the
/// previous ones, and logs why, when either is unusable.
async fn reload_on_sighup(
    mut hangup: tokio::signal::unix::Signal,
    config: VerifierConfig,
    state: Arc<VerifierState>,
) {
    while hangup.recv().await.is_some() {
        match (load_anchors(&config), load_crls(&config)) {
            (Ok(anchors), Ok(crls)) => {
                let count = anchors.len();
                state.verifier.reload(anchors, crls);
                tracing::info!(anchors = count, "trust anchors and CRLs reloaded");
            }
            (Err(error), _) | (_, Err(error)) => {
                tracing::error!(%error, "reload failed; keeping the previous trust anchors and CRLs")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> VerifierConfig {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("verifier.toml");
        std::fs::write(&path, text).unwrap();
        VerifierConfig::load(&path).unwrap()
    }

    #[test]
    fn loads_the_anchors_and_crls_it_names() {
        let prepared = Prepared::load(config(&format!(
            "trust_anchors = \"{}\"\ncrl_files = [\"{}\"]\n",
            certs_test::path("ca/root.pem").display(),
            certs_test::path("ca/intermediate.crl").display()
        )))
        .unwrap();
        assert_eq!(prepared.trust_anchor_count(), 1);
        assert_eq!(prepared.crl_count(), 1);
    }

    #[test]
    fn unusable_files_are_named() {
        let anchors = certs_test::path("ca/root.pem");
        let missing = config(&format!(
            "trust_anchors = \"{}\"\ncrl_files = [\"/nonexistent/x.crl\"]\n",
            anchors.display()
        ));
        let error = Prepared::load(missing).unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("crl_files: cannot read /nonexistent/x.crl: "),
            "{error}"
        );

        let bad_crl = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(bad_crl.path(), b"not a CRL").unwrap();
        let garbled = config(&format!(
            "trust_anchors = \"{}\"\ncrl_files = [\"{}\"]\n",
            anchors.display(),
            bad_crl.path().display()
        ));
        let error = Prepared::load(garbled).unwrap_err();
        assert!(matches!(error, ServerError::Crl { .. }), "{error}");
        assert!(
            error
                .to_string()
                .starts_with(&format!("crl_files: {}", bad_crl.path().display())),
            "{error}"
        );

        let no_anchors = config("trust_anchors = \"/nonexistent/roots.pem\"\n");
        let error = Prepared::load(no_anchors).unwrap_err();
        assert!(error.to_string().starts_with("trust_anchors: "), "{error}");
    }
}
