//! `shaken monitor serve | load`: the monitoring platform, and its throughput run.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Subcommand;
use monitor::config::MonitorConfig;

/// Monitoring platform commands.
#[derive(Subcommand, Debug)]
pub(crate) enum MonitorCommand {
    /// Run the monitor: events in, detectors, alerts, traceback, the API.
    ///
    /// SIGTERM or Ctrl-C stops it.
    Serve {
        /// Address to listen on.
        #[arg(long, value_name = "ADDR")]
        listen: SocketAddr,
        /// The data folder (created 0700 when missing): the SQLite store.
        ///
        /// With --db it holds the local event journal and the instance id only.
        #[arg(long, value_name = "DIR")]
        data: PathBuf,
        /// Keep the store in this PostgreSQL database (`postgres://...`).
        ///
        /// Instead of SQLite in --data; several instances may share it. Give the password
        /// in PGPASSWORD rather than here. Overrides the configuration's `db`.
        #[arg(long, value_name = "URL")]
        db: Option<String>,
        /// The TOML configuration file (defaults for every key without one).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Check the configuration (and its allow file), then exit.
        #[arg(long)]
        validate: bool,
        /// Also consume the call-event topic on these brokers (`HOST:PORT[,...]`).
        ///
        /// As a member of a consumer group, beside the HTTP API (push keeps working).
        #[arg(long, value_name = "BROKERS")]
        kafka: Option<String>,
        /// The call-event topic (with --kafka).
        #[arg(long, value_name = "NAME", default_value = monitor::consume::DEFAULT_TOPIC, requires = "kafka")]
        topic: String,
        /// The consumer group (with --kafka).
        ///
        /// Instances in one group share the topic's partitions.
        #[arg(long, value_name = "NAME", default_value = monitor::consume::DEFAULT_GROUP, requires = "kafka")]
        group: String,
        /// The alerts topic (with --kafka), shared by the group's instances.
        ///
        /// Each instance publishes its alerts there and reads every instance's.
        #[arg(long, value_name = "NAME", default_value = monitor::cluster::DEFAULT_ALERTS_TOPIC, requires = "kafka")]
        alerts_topic: String,
    },
    /// Measure ingest throughput over HTTP against the parse-only floor; prints JSON.
    ///
    /// A monitor runs in this process on loopback, fed over HTTP with every detector on; the
    /// floor (the same lines only parsed, on one core) is measured in the same run.
    Load {
        /// Ordinary subscribers of the synthetic mix (each places 1 to 3 calls).
        #[arg(long, default_value_t = 1_000_000, value_name = "N")]
        callers: u64,
        /// The mix's seed.
        #[arg(long, default_value_t = 1, value_name = "N")]
        seed: u64,
        /// Event lines per POST.
        #[arg(long, default_value_t = 20_000, value_name = "N")]
        batch: usize,
        /// Concurrent connections.
        #[arg(long, default_value_t = 2, value_name = "N")]
        connections: usize,
        /// Seconds of event time the events span.
        #[arg(long, default_value_t = 3600, value_name = "SECONDS")]
        span: u64,
        /// A fresh data folder for the run's store (a temporary one when not given).
        #[arg(long, value_name = "DIR")]
        data: Option<PathBuf>,
        /// Index into this PostgreSQL database (`postgres://...`) instead of SQLite.
        ///
        /// Use an empty database: the run's events are added to what it holds.
        #[arg(long, value_name = "URL")]
        db: Option<String>,
        /// The monitor's configuration (else defaults, the mix's country and gateways).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
}

fn load_config(path: Option<&PathBuf>) -> Result<MonitorConfig> {
    match path {
        Some(path) => Ok(MonitorConfig::load(path)?),
        None => Ok(MonitorConfig::default()),
    }
}

/// Runs a `shaken monitor` command.
pub(crate) fn run(command: MonitorCommand) -> Result<ExitCode> {
    match command {
        MonitorCommand::Serve {
            listen,
            data,
            db,
            config,
            validate,
            kafka,
            topic,
            group,
            alerts_topic,
        } => {
            let mut config = load_config(config.as_ref())?;
            if let Some(db) = db {
                if !rest::pg::PgUrl::is_url(&db) {
                    anyhow::bail!("--db must be a postgres:// or postgresql:// URL");
                }
                config.service.db = Some(rest::pg::PgUrl::new(&db));
            }
            let allow = config.read_allow_file()?;
            if validate {
                println!(
                    "configuration OK: {} allow-listed number(s), {} trace endpoint(s)",
                    allow.len(),
                    config.service.trace.len()
                );
                // The URL's Display hides the password.
                match &config.service.db {
                    Some(url) => println!("store: PostgreSQL {url}"),
                    None => println!("store: SQLite in {}", data.display()),
                }
                return Ok(ExitCode::SUCCESS);
            }
            rest::service::init_logging();
            let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
            let kafka = kafka.map(|brokers| {
                let mut options = monitor::consume::ConsumeOptions::new(&brokers);
                options.topic = topic;
                options.group = group;
                options.alerts_topic = Some(alerts_topic);
                options
            });
            runtime.block_on(monitor::server::run_with(
                listen,
                &data,
                &config,
                kafka,
                rest::service::shutdown_signal(),
            ))?;
            Ok(ExitCode::SUCCESS)
        }
        MonitorCommand::Load {
            callers,
            seed,
            batch,
            connections,
            span,
            data,
            db,
            config,
        } => {
            let mut config = load_config(config.as_ref())?;
            if let Some(db) = db {
                if !rest::pg::PgUrl::is_url(&db) {
                    anyhow::bail!("--db must be a postgres:// or postgresql:// URL");
                }
                config.service.db = Some(rest::pg::PgUrl::new(&db));
            }
            let temporary = tempfile_dir()?;
            let data = data.unwrap_or_else(|| temporary.join("data"));
            let options = monitor::load::LoadOptions {
                callers,
                seed,
                batch,
                connections,
                start_time: super::unix_now()?.saturating_sub(span + 60),
                span_seconds: span,
                data,
            };
            let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
            let report = runtime.block_on(monitor::load::run(&options, &config));
            let _ = std::fs::remove_dir_all(&temporary);
            println!("{}", serde_json::to_string_pretty(&report?)?);
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// A new private folder under the system's temporary folder.
fn tempfile_dir() -> Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!(
        "shaken-monitor-load-{}-{}",
        std::process::id(),
        super::unix_now()?
    ));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}
