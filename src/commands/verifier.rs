//! `shaken verifier serve`: the terminating carrier's verification service.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Subcommand;
use rest::clients::Client;
use verifier::chain::TrustAnchors;
use verifier::config::VerifierConfig;
use verifier::crl::{Crl, CrlStore};
use verifier::events::{self, EventSink};
use verifier::fetch::Fetcher;
use verifier::service::{self, VerifierState};
use verifier::verify::Verifier;

use super::unix_now;

/// Verification service commands.
#[derive(Subcommand, Debug)]
pub(crate) enum VerifierCommand {
    /// Run the ATIS-1000082 verification service (SIGHUP reloads trust anchors and CRLs,
    /// SIGTERM stops).
    Serve {
        /// The TOML configuration file.
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// Check the configuration, trust anchors and CRL files, then exit.
        #[arg(long)]
        validate: bool,
    },
}

fn load_crls(config: &VerifierConfig) -> Result<Vec<Crl>> {
    config
        .crl_files
        .iter()
        .map(|path| {
            let bytes =
                std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
            Crl::parse(&bytes).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
        })
        .collect()
}

fn load_anchors(config: &VerifierConfig) -> Result<TrustAnchors> {
    TrustAnchors::from_path(&config.trust_anchors)
        .map_err(|e| anyhow::anyhow!("trust_anchors: {e}"))
}

/// Runs a `shaken verifier` command.
pub(crate) fn run(command: VerifierCommand) -> Result<ExitCode> {
    let VerifierCommand::Serve {
        config: config_path,
        validate,
    } = command;
    rest::service::init_logging();
    let config = VerifierConfig::load(&config_path)?;
    let anchors = load_anchors(&config)?;
    let crls = load_crls(&config)?;
    let extra_roots = match &config.fetch.extra_tls_roots {
        Some(path) => passport::cert::chain_from_pem(
            &std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?,
        )?,
        None => Vec::new(),
    };
    let fetcher = Fetcher::new(config.fetch_policy(), &extra_roots)?;
    let clients = config
        .clients
        .iter()
        .map(Client::from_config)
        .collect::<Result<Vec<_>, _>>()?;
    let tls = config.tls.as_ref().map(rest::tls::acceptor).transpose()?;
    if validate {
        println!(
            "configuration OK: {} trust anchors, {} CRL files",
            anchors.len(),
            crls.len()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let events = match &config.events {
        Some(target) => {
            Some(EventSink::open(&events::target(target)).context("opening the event feed")?)
        }
        None => None,
    };
    let verifier = Verifier::new(
        fetcher,
        config.cache_config(),
        anchors,
        CrlStore::new(crls, config.require_revocation),
        config.max_age_seconds,
        config.max_future_seconds,
    );
    let state = Arc::new(VerifierState::new(
        verifier,
        clients,
        config.plan(),
        config.max_body_bytes,
        events,
    ));
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async move {
        for x5u in &config.cache.warm_up {
            match state.verifier.credential(x5u, unix_now()?).await {
                Ok(chain) => tracing::info!(%x5u, spc = %chain.spc, "warmed up"),
                Err(error) => tracing::warn!(%x5u, %error, "warm-up failed"),
            }
        }
        let rest::service::Listening {
            listener,
            address,
            hangup,
        } = rest::service::listen(config.listen).await?;
        tracing::info!(%address, tls = tls.is_some(), "verifier listening");
        tokio::spawn(reload_on_sighup(hangup, config.clone(), Arc::clone(&state)));
        service::serve(listener, state, tls, rest::service::shutdown_signal()).await;
        tracing::info!("verifier stopped");
        Ok(ExitCode::SUCCESS)
    })
}

/// Reloads on each SIGHUP received by `hangup`, which is installed before the service says it
/// is listening (a SIGHUP before that would otherwise end the process).
async fn reload_on_sighup(
    mut hangup: tokio::signal::unix::Signal,
    config: VerifierConfig,
    state: Arc<VerifierState>,
) {
    while hangup.recv().await.is_some() {
        match (load_anchors(&config), load_crls(&config)) {
            (Ok(anchors), Ok(crls)) => {
                let count = anchors.len();
                state.verifier.crls().replace_local(crls);
                state.verifier.replace_anchors(anchors);
                tracing::info!(anchors = count, "trust anchors and CRLs reloaded");
            }
            (Err(error), _) | (_, Err(error)) => {
                tracing::error!(%error, "reload failed; keeping the previous trust anchors and CRLs")
            }
        }
    }
}
