//! The signing service as a process (`shaken signer serve`): the key checked against its
//! certificate and the TLS configuration ([`Prepared::load`], everything `--validate` checks),
//! then the registry, trace log and serve loop ([`Prepared::run`]). SIGHUP reloads the key (a
//! key that does not match its certificate is refused and the previous one kept); the trace
//! log is pruned at start and every hour.

use std::future::Future;
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
    /// they match, then the `[tls]` section; any failure is an error, so a signer that starts
    /// signs tokens verifiers can check.
    pub async fn load(config: SignerConfig) -> Result<Self, SignerError> {
        let credentials = credentials::load(&config).await?;
        let tls = config.tls.as_ref().map(rest::tls::acceptor).transpose()?;
        Ok(Self {
            config,
            credentials,
            tls,
        })
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
            credentials,
            tls,
        } = self;
        let state = Arc::new(SignerState::from_config(
            &config,
            Arc::clone(&credentials.signer),
        )?);
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
        tokio::spawn(reload_on_sighup(hangup, config.clone(), Arc::clone(&state)));
        tokio::spawn(prune_hourly(config));
        service::serve(listener, Arc::clone(&state), tls, shutdown).await;
        tracing::info!("signer stopped");
        drop(state);
        Ok(())
    }
}

/// Reloads the key on each SIGHUP received by `hangup`; keeps signing with the previous key,
/// and logs why, when the new one cannot be loaded or does not match its certificate.
async fn reload_on_sighup(
    mut hangup: tokio::signal::unix::Signal,
    config: SignerConfig,
    state: Arc<SignerState>,
) {
    while hangup.recv().await.is_some() {
        match credentials::load(&config).await {
            Ok(credentials) => {
                state.replace_signer(credentials.signer);
                service::note_certificate_expiry(
                    &state,
                    credentials.not_after,
                    rest::service::unix_now().unwrap_or(0),
                    config.certificate_expiry_warning_days,
                );
                tracing::info!(certificate = %credentials.subject, "signing key reloaded");
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
