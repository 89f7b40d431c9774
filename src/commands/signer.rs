//! `shaken signer | registry | trace`: the originating carrier's signing service, its
//! real-name registry, and traceback lookups.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{ArgGroup, Args, Subcommand};
use passport::{NumberingPlan, Tn};
use serde_json::json;
use signer::registry::import::{carrier_secret, import_file, ImportMode, ImportOptions};
use signer::registry::{NumberStatus, RegistryDb, RegistryLocation};
use signer::server::Prepared;
use signer::trace::{self, TraceLog};

use super::{answer, unix_now};

/// Signing service commands.
#[derive(Subcommand, Debug)]
pub(crate) enum SignerCommand {
    /// Run the ATIS-1000082 signing service.
    ///
    /// SIGHUP reloads the x5u, key and chain named by the configuration; SIGTERM stops.
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
    /// Bulk-load numbers and customers from CSV.
    ///
    /// See docs/signer.md for the columns.
    Import {
        /// The registry: an SQLite file (created if missing) or a postgres:// URL.
        #[arg(long, value_name = "FILE|URL")]
        db: RegistryLocation,
        /// Replace the registry's numbers and customers instead of adding to them.
        #[arg(long)]
        replace: bool,
        /// Numbering plan for national-form numbers (NANP, CN).
        #[arg(long, value_name = "PLAN")]
        country: Option<NumberingPlan>,
        /// File holding the carrier secret for identity document HMACs.
        ///
        /// Or set SHAKEN_REGISTRY_SECRET.
        #[arg(long, value_name = "FILE")]
        secret_file: Option<PathBuf>,
        /// The CSV file.
        #[arg(value_name = "numbers.csv")]
        file: PathBuf,
    },
    /// Show what the registry holds for a number.
    Show(NumberArgs),
    /// Suspend a number: its calls are no longer signed.
    Suspend(NumberArgs),
    /// Resume a suspended number.
    Resume(NumberArgs),
}

/// A number of the registry.
#[derive(Args, Debug)]
pub(crate) struct NumberArgs {
    /// The registry database: an SQLite file or a postgres:// URL.
    #[arg(long, value_name = "FILE|URL")]
    db: RegistryLocation,
    /// Numbering plan for a national-form number.
    #[arg(long, value_name = "PLAN")]
    country: Option<NumberingPlan>,
    /// The number.
    tn: String,
}

/// Trace log commands.
#[derive(Subcommand, Debug)]
pub(crate) enum TraceCommand {
    /// Answer a traceback request: the records for an origid, or for a number in a period.
    #[command(group(ArgGroup::new("query").required(true).args(["origid", "tn"])))]
    Lookup {
        /// The trace database.
        #[arg(long, value_name = "FILE")]
        db: PathBuf,
        /// The origid of the call.
        #[arg(long, value_name = "UUID", conflicts_with_all = ["tn", "since", "until"])]
        origid: Option<String>,
        /// A calling or called number (with --since and --until).
        #[arg(long, value_name = "TN", requires_all = ["since", "until"])]
        tn: Option<String>,
        /// Start of the --tn period, seconds since the epoch.
        #[arg(long, value_name = "SECONDS")]
        since: Option<u64>,
        /// End of the --tn period, seconds since the epoch.
        #[arg(long, value_name = "SECONDS")]
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

/// Runs a `shaken signer` command.
pub(crate) fn run_signer(command: SignerCommand) -> Result<ExitCode> {
    let SignerCommand::Serve { config, validate } = command;
    rest::service::init_logging();
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async move {
        let prepared = Prepared::load_file(config).await?;
        if validate {
            println!(
                "configuration OK: key matches {}",
                prepared.certificate_subject()
            );
        } else {
            prepared
                .run(unix_now()?, rest::service::shutdown_signal())
                .await?;
        }
        Ok(ExitCode::SUCCESS)
    })
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
            let secret = carrier_secret(
                secret_file.as_deref(),
                std::env::var("SHAKEN_REGISTRY_SECRET").ok(),
            )?;
            let actor = format!("cli:import {}", file.display());
            let mut progress = |lines: usize| eprintln!("  {lines} lines read");
            let (mode, done) = match replace {
                true => (ImportMode::Replace, "replaced"),
                false => (ImportMode::Merge, "merged"),
            };
            let options = ImportOptions {
                mode,
                plan: country,
                secret: secret.as_deref(),
                actor: &actor,
                now: unix_now()?,
                progress: &mut progress,
            };
            match import_file(&db, &file, options) {
                Ok(summary) => eprintln!("imported {summary} ({done})"),
                Err(signer::SignerError::Import(bad)) => {
                    eprintln!(
                        "import refused, nothing was applied; {} bad line(s):",
                        bad.len()
                    );
                    for line in &bad {
                        eprintln!("  {line}");
                    }
                    return Ok(answer(false));
                }
                Err(e) => return Err(e.into()),
            }
            Ok(ExitCode::SUCCESS)
        }
        RegistryCommand::Show(NumberArgs { db, country, tn }) => {
            let mut registry = RegistryDb::open(&db)?;
            let tn = Tn::canonicalize(&tn, country)?;
            match registry.lookup(tn.as_str())? {
                Some(record) => {
                    println!("{}", record.to_json());
                    Ok(ExitCode::SUCCESS)
                }
                None => {
                    println!("{}", json!({"tn": tn.as_str(), "registered": false}));
                    Ok(ExitCode::from(1))
                }
            }
        }
        RegistryCommand::Suspend(number) => {
            set_status(&number, NumberStatus::Suspended, "cli:suspend")
        }
        RegistryCommand::Resume(number) => set_status(&number, NumberStatus::Active, "cli:resume"),
    }
}

fn set_status(number: &NumberArgs, status: NumberStatus, actor: &str) -> Result<ExitCode> {
    let mut registry = RegistryDb::open(&number.db)?;
    let tn = Tn::canonicalize(&number.tn, number.country)?;
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
            for record in &records {
                println!("{}", record.to_json());
            }
            Ok(answer(!records.is_empty()))
        }
        TraceCommand::Prune { db, retention_days } => {
            let pruned = TraceLog::prune(&db, retention_days, unix_now()?)?;
            eprintln!("deleted {pruned} records older than {retention_days} days");
            Ok(ExitCode::SUCCESS)
        }
    }
}
