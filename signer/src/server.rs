//! The signing service as a process (`shaken signer serve`): the key checked against its
//! certificate, the TLS configuration and the files `[lists]` and `[optout]` name
//! ([`Prepared::load`], everything `--validate` checks),
//! then the registry, trace log and serve loop ([`Prepared::run`]), and beside it the SIP
//! listener of a `[sip]` section ([`start_sip`]), stopped with it, its counters in `/metrics`. SIGHUP re-reads the
//! configuration file's signing credentials (`x5u`, `key_file`, `certificate_file`,
//! `x5u_tls_roots`) and reloads the key: a key that does not match its certificate, or a file
//! that no longer parses, is refused and the previous key and x5u kept. The other keys take
//! effect at the next start. The trace log is pruned at start and every hour.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rest::service::Listening;

use crate::config::SignerConfig;
use crate::credentials::{self, Credentials};
use crate::error::SignerError;
use crate::service::{self, SignerState};
use crate::trace::TraceLog;

/// How often the trace log is pruned while the service runs.
const PRUNE_INTERVAL: Duration = Duration::from_secs(3600);

/// A checked configuration with its credentials and TLS loaded: the service can start.
pub struct Prepared {
    config: SignerConfig,
    /// The file the configuration was read from, re-read on SIGHUP (none: reload the same
    /// files).
    config_path: Option<PathBuf>,
    credentials: Credentials,
    tls: Option<tokio_rustls::TlsAcceptor>,
}

impl std::fmt::Debug for Prepared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prepared")
            .field("listen", &self.config.listen)
            .field("certificate", &self.credentials.subject)
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

impl Prepared {
    /// Loads the signing key and its certificate (a copy, or fetched from x5u) and checks that
    /// they match, then the `[tls]` section and the files of `[lists]` (the regulator's
    /// certificate) and `[optout]` (the feed's token); any failure is an error naming its key,
    /// so a signer that starts signs tokens verifiers can check.
    pub async fn load(config: SignerConfig) -> Result<Self, SignerError> {
        let credentials = credentials::load(&config).await?;
        // The files `[lists]` and `[optout]` name, read now so that `--validate` names the key
        // of one that cannot be used (the service would fail to start on it).
        if let Some(section) = &config.lists {
            lists::consumer::check(section).map_err(|e| SignerError::Config(e.to_string()))?;
        }
        if let Some(section) = &config.optout {
            section
                .check()
                .map_err(|e| SignerError::Config(e.to_string()))?;
        }
        let tls = config.tls.as_ref().map(rest::tls::acceptor).transpose()?;
        Ok(Self {
            config,
            config_path: None,
            credentials,
            tls,
        })
    }

    /// As [`Prepared::load`], for the configuration in the file `path`, which SIGHUP re-reads
    /// for the signing credentials.
    pub async fn load_file(path: PathBuf) -> Result<Self, SignerError> {
        let config = SignerConfig::load(&path)?;
        let mut prepared = Self::load(config).await?;
        prepared.config_path = Some(path);
        Ok(prepared)
    }

    /// The signing certificate's subject.
    pub fn certificate_subject(&self) -> &str {
        &self.credentials.subject
    }

    /// Opens the registry and trace log, notes the certificate's expiry and prunes the trace
    /// log (both as of `now`), binds the listener and serves until `shutdown` completes, with
    /// the SIGHUP reload and the hourly pruning running beside. Logs through `tracing`.
    pub async fn run(
        self,
        now: u64,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), SignerError> {
        let Self {
            config,
            config_path,
            credentials,
            tls,
        } = self;
        // Opening the state may wait (up to 10 s) for a PostgreSQL registry's first
        // synchronization: off the runtime's threads.
        let state = {
            let (config, signer) = (config.clone(), Arc::clone(&credentials.signer));
            tokio::task::spawn_blocking(move || SignerState::from_config(&config, signer))
                .await
                .map_err(|e| SignerError::Config(format!("opening the signer's state: {e}")))??
        };
        let state = Arc::new(state);
        if service::note_certificate_expiry(
            &state,
            credentials.not_after,
            now,
            config.certificate_expiry_warning_days,
        ) {
            tracing::warn!(
                days = service::days_left(credentials.not_after, now),
                "signing certificate expires soon"
            );
        }
        let pruned = TraceLog::prune(&config.trace_db, config.trace_retention_days, now)?;
        tracing::info!(pruned, "trace log pruned");
        let Listening {
            listener,
            address,
            hangup,
        } = rest::service::listen(config.listen).await?;
        tracing::info!(%address, tls = tls.is_some(), certificate = %credentials.subject, "signer listening");
        let sip = match &config.sip {
            Some(section) => Some(start_sip(section, &state).await?),
            None => None,
        };
        tokio::spawn(reload_on_sighup(
            hangup,
            config.clone(),
            config_path,
            Arc::clone(&state),
        ));
        tokio::spawn(prune_hourly(config));
        let (stop_sip, sip_stopped) = tokio::sync::watch::channel(false);
        let shutdown = async move {
            shutdown.await;
            let _ = stop_sip.send(true);
        };
        let sip = sip.map(|sip| {
            let mut stopped = sip_stopped;
            tokio::spawn(sip.serve_until(async move {
                let _ = stopped.wait_for(|stop| *stop).await;
            }))
        });
        service::serve(listener, Arc::clone(&state), tls, shutdown).await;
        if let Some(sip) = sip {
            let _ = sip.await;
        }
        tracing::info!("signer stopped");
        drop(state);
        Ok(())
    }
}

/// A bound SIP listener with the signer's handler, ready to serve.
pub struct SipService {
    listener: sip::transport::SipListener,
    handler: Arc<crate::sip::SipSigner>,
}

impl std::fmt::Debug for SipService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SipService")
            .field("addresses", &self.listener.local_addrs())
            .finish_non_exhaustive()
    }
}

impl SipService {
    /// The addresses bound, with their transport.
    pub fn local_addrs(&self) -> Vec<(sip::transport::Transport, std::net::SocketAddr)> {
        self.listener.local_addrs()
    }

    /// Serves until `shutdown` completes.
    pub async fn serve_until(self, shutdown: impl Future<Output = ()>) {
        self.listener.serve(self.handler, shutdown).await;
    }
}

/// Binds the `[sip]` listener for `state` (its counters then shown in `/metrics`).
pub async fn start_sip(
    section: &crate::config::SipSection,
    state: &Arc<SignerState>,
) -> Result<SipService, SignerError> {
    let listener = sip::transport::SipListener::bind(&section.listener).await?;
    state.attach_sip(listener.status());
    for (transport, address) in listener.local_addrs() {
        tracing::info!(%address, transport = transport.as_str(), "signer SIP listening");
    }
    let handler = Arc::new(crate::sip::SipSigner::new(
        Arc::clone(state),
        crate::sip::SipOptions::from(section),
    ));
    Ok(SipService { listener, handler })
}

/// On each SIGHUP received by `hangup`: re-reads the signing credentials' keys from
/// `config_path` (when there is one; `config` otherwise), loads the key and chain, and switches
/// to them. Keeps signing with the previous key and x5u, and logs why, when the file no longer
/// parses, the new key cannot be loaded or does not match its certificate.
async fn reload_on_sighup(
    mut hangup: tokio::signal::unix::Signal,
    config: SignerConfig,
    config_path: Option<PathBuf>,
    state: Arc<SignerState>,
) {
    let mut current = config;
    while hangup.recv().await.is_some() {
        let mut next = current.clone();
        if let Some(path) = &config_path {
            match SignerConfig::load(path) {
                Ok(read) => {
                    next.x5u = read.x5u;
                    next.key_file = read.key_file;
                    next.certificate_file = read.certificate_file;
                    next.x5u_tls_roots = read.x5u_tls_roots;
                }
                Err(error) => {
                    tracing::error!(%error, "configuration unreadable; still signing with the previous key");
                    continue;
                }
            }
        }
        match credentials::load(&next).await {
            Ok(credentials) => {
                state.replace_signer(credentials.signer);
                service::note_certificate_expiry(
                    &state,
                    credentials.not_after,
                    rest::service::unix_now().unwrap_or(0),
                    next.certificate_expiry_warning_days,
                );
                tracing::info!(certificate = %credentials.subject, x5u = %next.x5u, "signing key reloaded");
                current = next;
            }
            Err(error) => {
                tracing::error!(%error, "key reload failed; still signing with the previous key")
            }
        }
    }
}

/// Prunes the trace log every [`PRUNE_INTERVAL`], as of the time each pruning starts.
async fn prune_hourly(config: SignerConfig) {
    loop {
        tokio::time::sleep(PRUNE_INTERVAL).await;
        if let Some(now) = rest::service::unix_now() {
            match TraceLog::prune(&config.trace_db, config.trace_retention_days, now) {
                Ok(pruned) => tracing::info!(pruned, "trace log pruned"),
                Err(error) => tracing::warn!(%error, "trace log pruning failed"),
            }
        }
    }
}
