//! `shaken signer | registry | trace`: the originating carrier's signing service, its
//! real-name registry, and traceback lookups.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Subcommand;
use passport::{NumberingPlan, Tn};
use serde_json::json;
use signer::config::SignerConfig;
use signer::registry::import::{import, ImportMode, ImportOptions};
use signer::registry::{NumberStatus, Registry};
use signer::service::{self, SignerState};
use signer::trace::{self, TraceLog};

use super::unix_now;

/// Signing service commands.
#[derive(Subcommand, Debug)]
pub(crate) enum SignerCommand {
    /// Run the ATIS-1000082 signing service (SIGHUP reloads the key, SIGTERM stops).
    Serve {
        /// The TOML configuration file.
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// Check the configuration, key and certificate, then exit.
        #[arg(long)]
        validate: bool,
    },
}

/// Registry commands.
#[derive(Subcommand, Debug)]
pub(crate) enum RegistryCommand {
    /// Bulk-load numbers and customers from CSV (see docs/signer.md for the columns).
    Import {
        /// The registry database (created if missing).
        #[arg(long, value_name = "FILE")]
        db: PathBuf,
        /// Replace the registry's numbers and customers instead of adding to them.
        #[arg(long)]
        replace: bool,
        /// Numbering plan for national-form numbers (NANP, CN).
        #[arg(long, value_name = "PLAN")]
        country: Option<NumberingPlan>,
        /// File holding the carrier secret for identity document HMACs (or set
        /// SHAKEN_REGISTRY_SECRET).
        #[arg(long, value_name = "FILE")]
        secret_file: Option<PathBuf>,
        /// The CSV file.
        #[arg(value_name = "numbers.csv")]
        file: PathBuf,
    },
    /// Show what the registry holds for a number.
    Show {
        /// The registry database.
        #[arg(long, value_name = "FILE")]
        db: PathBuf,
        /// Numbering plan for a national-form number.
        #[arg(long, value_name = "PLAN")]
        country: Option<NumberingPlan>,
        /// The number.
        tn: String,
    },
    /// Suspend a number: its calls are no longer signed.
    Suspend {
        /// The registry database.
        #[arg(long, value_name = "FILE")]
        db: PathBuf,
        /// Numbering plan for a national-form number.
        #[arg(long, value_name = "PLAN")]
        country: Option<NumberingPlan>,
        /// The number.
        tn: String,
    },
    /// Resume a suspended number.
    Resume {
        /// The registry database.
        #[arg(long, value_name = "FILE")]
        db: PathBuf,
        /// Numbering plan for a national-form number.
        #[arg(long, value_name = "PLAN")]
        country: Option<NumberingPlan>,
        /// The number.
        tn: String,
    },
}

/// Trace log commands.
#[derive(Subcommand, Debug)]
pub(crate) enum TraceCommand {
    /// Answer a traceback request: the records for an origid, or for a number in a period.
    Lookup {
        /// The trace database.
        #[arg(long, value_name = "FILE")]
        db: PathBuf,
        /// The origid of the call.
        #[arg(long, value_name = "UUID", conflicts_with_all = ["tn", "since", "until"])]
        origid: Option<String>,
        /// A calling or called number.
        #[arg(long, value_name = "TN", requires_all = ["since", "until"])]
        tn: Option<String>,
        /// Start of the period, seconds since the epoch.
        #[arg(long, value_name = "T")]
        since: Option<u64>,
        /// End of the period, seconds since the epoch.
        #[arg(long, value_name = "T")]
        until: Option<u64>,
    },
    /// Delete records older than the retention period.
    Prune {
        /// The trace database.
        #[arg(long, value_name = "FILE")]
        db: PathBuf,
        /// Days to keep.
        #[arg(long, value_name = "DAYS", default_value_t = trace::DEFAULT_RETENTION_DAYS)]
        retention_days: u64,
    },
}

fn tls_acceptor(config: &SignerConfig) -> Result<Option<tokio_rustls::TlsAcceptor>> {
    config
        .tls
        .as_ref()
        .map(rest::tls::acceptor)
        .transpose()
        .map_err(Into::into)
}

/// Runs a `shaken signer` command.
pub(crate) fn run_signer(command: SignerCommand) -> Result<ExitCode> {
    let SignerCommand::Serve {
        config: config_path,
        validate,
    } = command;
    rest::service::init_logging();
    let config = SignerConfig::load(&config_path)?;
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async move {
        let credentials = signer::credentials::load(&config).await?;
        let tls = tls_acceptor(&config)?;
        if validate {
            println!("configuration OK: key matches {}", credentials.subject);
            return Ok(ExitCode::SUCCESS);
        }
        let state = Arc::new(SignerState::from_config(&config, Arc::clone(&credentials.signer))?);
        let now = unix_now()?;
        if service::note_certificate_expiry(&state, credentials.not_after, now, config.certificate_expiry_warning_days) {
            tracing::warn!(days = service::days_left(credentials.not_after, now), "signing certificate expires soon");
        }
        let pruned = TraceLog::prune(&config.trace_db, config.trace_retention_days, now)?;
        tracing::info!(pruned, "trace log pruned");
        let rest::service::Listening {
            listener,
            address,
            hangup,
        } = rest::service::listen(config.listen).await?;
        tracing::info!(%address, tls = tls.is_some(), certificate = %credentials.subject, "signer listening");

        tokio::spawn(reload_on_sighup(hangup, config.clone(), Arc::clone(&state)));
        tokio::spawn(prune_hourly(config.clone()));
        service::serve(listener, Arc::clone(&state), tls, rest::service::shutdown_signal()).await;
        tracing::info!("signer stopped");
        drop(state);
        Ok(ExitCode::SUCCESS)
    })
}

/// Reloads on each SIGHUP received by `hangup`, which is installed before the service says it
/// is listening (a SIGHUP before that would otherwise end the process).
async fn reload_on_sighup(
    mut hangup: tokio::signal::unix::Signal,
    config: SignerConfig,
    state: Arc<SignerState>,
) {
    while hangup.recv().await.is_some() {
        match signer::credentials::load(&config).await {
            Ok(credentials) => {
                state.replace_signer(credentials.signer);
                let now = unix_now().unwrap_or(0);
                service::note_certificate_expiry(
                    &state,
                    credentials.not_after,
                    now,
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

async fn prune_hourly(config: SignerConfig) {
    loop {
        tokio::time::sleep(Duration::from_secs(3600)).await;
        if let Ok(now) = unix_now() {
            match TraceLog::prune(&config.trace_db, config.trace_retention_days, now) {
                Ok(pruned) => tracing::info!(pruned, "trace log pruned"),
                Err(error) => tracing::warn!(%error, "trace log pruning failed"),
            }
        }
    }
}

fn secret(file: Option<&Path>) -> Result<Option<Vec<u8>>> {
    if let Some(path) = file {
        let bytes =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        let trimmed = String::from_utf8_lossy(&bytes).trim().as_bytes().to_vec();
        if trimmed.len() < 16 {
            bail!(
                "the carrier secret in {} is shorter than 16 bytes",
                path.display()
            );
        }
        return Ok(Some(trimmed));
    }
    Ok(std::env::var("SHAKEN_REGISTRY_SECRET")
        .ok()
        .map(String::into_bytes))
}

/// Runs a `shaken registry` command.
pub(crate) fn run_registry(command: RegistryCommand) -> Result<ExitCode> {
    match command {
        RegistryCommand::Import {
            db,
            replace,
            country,
            secret_file,
            file,
        } => {
            let mut registry = Registry::open(&db)?;
            let input = std::fs::File::open(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let secret = secret(secret_file.as_deref())?;
            let actor = format!("cli:import {}", file.display());
            let mut progress = |lines: usize| eprintln!("  {lines} lines read");
            let result = import(
                &mut registry,
                std::io::BufReader::new(input),
                ImportOptions {
                    mode: if replace {
                        ImportMode::Replace
                    } else {
                        ImportMode::Merge
                    },
                    plan: country,
                    secret: secret.as_deref(),
                    actor: &actor,
                    now: unix_now()?,
                    progress: &mut progress,
                },
            );
            match result {
                Ok(summary) => {
                    eprintln!(
                        "imported {} lines: {} numbers, {} ranges, {} customers ({})",
                        summary.lines,
                        summary.numbers,
                        summary.ranges,
                        summary.customers,
                        if replace { "replaced" } else { "merged" }
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Err(signer::SignerError::Import(bad)) => {
                    eprintln!(
                        "import refused, nothing was applied; {} bad line(s):",
                        bad.len()
                    );
                    for line in &bad {
                        eprintln!("  line {}: {}", line.line, line.reason);
                    }
                    Ok(ExitCode::from(1))
                }
                Err(e) => Err(e.into()),
            }
        }
        RegistryCommand::Show { db, country, tn } => {
            let registry = Registry::open(&db)?;
            let tn = Tn::canonicalize(&tn, country)?;
            match registry.lookup(tn.as_str())? {
                Some(record) => {
                    println!(
                        "{}",
                        json!({"tn": record.tn, "customer": record.customer.id, "name": record.customer.name,
                               "verified": record.customer.verified, "status": record.status.as_str(),
                               "via_range": record.via_range})
                    );
                    Ok(ExitCode::SUCCESS)
                }
                None => {
                    println!("{}", json!({"tn": tn.as_str(), "registered": false}));
                    Ok(ExitCode::from(1))
                }
            }
        }
        RegistryCommand::Suspend { db, country, tn } => {
            set_status(&db, country, &tn, NumberStatus::Suspended, "cli:suspend")
        }
        RegistryCommand::Resume { db, country, tn } => {
            set_status(&db, country, &tn, NumberStatus::Active, "cli:resume")
        }
    }
}

fn set_status(
    db: &Path,
    country: Option<NumberingPlan>,
    tn: &str,
    status: NumberStatus,
    actor: &str,
) -> Result<ExitCode> {
    let registry = Registry::open(db)?;
    let tn = Tn::canonicalize(tn, country)?;
    let before = registry.set_status(tn.as_str(), status, actor, unix_now()?)?;
    eprintln!("{tn}: {} -> {}", before.status.as_str(), status.as_str());
    Ok(ExitCode::SUCCESS)
}

/// Runs a `shaken trace` command.
pub(crate) fn run_trace(command: TraceCommand) -> Result<ExitCode> {
    match command {
        TraceCommand::Lookup {
            db,
            origid,
            tn,
            since,
            until,
        } => {
            if !db.exists() {
                bail!("{} does not exist", db.display());
            }
            let records = match (origid, tn, since, until) {
                (Some(origid), _, _, _) => trace::lookup_origid(&db, &origid)?,
                (None, Some(tn), Some(since), Some(until)) => {
                    let tn = Tn::canonicalize(&tn, None)?;
                    trace::lookup_tn(&db, tn.as_str(), since, until)?
                }
                _ => bail!("give --origid, or --tn with --since and --until"),
            };
            for r in &records {
                println!(
                    "{}",
                    json!({"at": r.at, "request_id": r.request_id, "outcome": r.outcome, "message_id": r.message_id,
                           "origid": r.origid, "orig": r.orig, "dest": r.dest, "attest": r.attest,
                           "customer": r.customer, "client": r.client})
                );
            }
            Ok(if records.is_empty() {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
        TraceCommand::Prune { db, retention_days } => {
            let pruned = TraceLog::prune(&db, retention_days, unix_now()?)?;
            eprintln!("deleted {pruned} records older than {retention_days} days");
            Ok(ExitCode::SUCCESS)
        }
    }
}
