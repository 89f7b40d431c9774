//! `shaken optout serve | link`: the one-click unsubscribe service, and minting a link by hand.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Subcommand;
use optout::{LinkIssuer, LinkKey, OptOutConfig};

use super::now_or;

/// Opt-out service commands.
#[derive(Subcommand, Debug)]
pub(crate) enum OptOutCommand {
    /// Run the opt-out service: link pages, the button, the delta feed.
    ///
    /// SIGTERM or Ctrl-C stops it.
    Serve {
        /// The TOML configuration file.
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// Address to listen on, instead of the configuration's `listen`.
        #[arg(long, value_name = "ADDR")]
        listen: Option<SocketAddr>,
        /// The store, instead of the configuration's `db`: a file or a PostgreSQL URL
        ///
        /// A PostgreSQL database as `postgres://USER@HOST:PORT/DATABASE`, the password in
        /// PGPASSWORD.
        #[arg(long, value_name = "URL|PATH")]
        db: Option<optout::store::StoreLocation>,
        /// Check the configuration, key and feed tokens, then exit.
        #[arg(long)]
        validate: bool,
    },
    /// Print an unsubscribe link for a subscriber and a firm.
    Link {
        /// The link key file (hex, base64 or raw; at least 32 bytes).
        #[arg(long, value_name = "FILE")]
        key_file: PathBuf,
        /// The opt-out service's public base URL.
        #[arg(long, value_name = "URL")]
        base_url: String,
        /// The subscriber's number, E.164 digits (a leading + is dropped).
        #[arg(long, value_name = "TN")]
        subscriber: String,
        /// The firm's id in the regulator's list.
        #[arg(long, value_name = "ORG")]
        firm: String,
        /// The firm's vetted display name.
        #[arg(long, value_name = "VALUE")]
        name: String,
        /// Seconds the link stays valid.
        #[arg(long, value_name = "SECONDS", default_value_t = 7 * 24 * 3600)]
        ttl: u64,
        /// Mint as of this time (seconds since the epoch) instead of now.
        #[arg(long, value_name = "SECONDS")]
        now: Option<u64>,
    },
}

/// Runs a `shaken optout` command.
pub(crate) fn run(command: OptOutCommand) -> Result<ExitCode> {
    match command {
        OptOutCommand::Serve {
            config,
            listen,
            db,
            validate,
        } => {
            let mut config = OptOutConfig::load(&config)?;
            if let Some(db) = db {
                config.db = db;
            }
            let loaded = config.read_secrets()?;
            if validate {
                // A URL is shown without its password.
                println!(
                    "configuration OK: {} feed token(s), database {}",
                    loaded.feed_tokens.len(),
                    loaded.config.db
                );
                return Ok(ExitCode::SUCCESS);
            }
            rest::service::init_logging();
            let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
            runtime.block_on(optout::server::run(
                loaded,
                listen,
                optout::system_clock(),
                rest::service::shutdown_signal(),
            ))?;
            Ok(ExitCode::SUCCESS)
        }
        OptOutCommand::Link {
            key_file,
            base_url,
            subscriber,
            firm,
            name,
            ttl,
            now,
        } => {
            let key = LinkKey::from_file(&key_file).context("--key-file")?;
            rest::fetch::Url::parse(&base_url).context("--base-url")?;
            let link = LinkIssuer::new(&base_url, key, ttl)
                .link(
                    subscriber.trim_start_matches('+'),
                    &firm,
                    &name,
                    now_or(now)?,
                )
                .context("--subscriber, --firm or --name")?;
            println!("{link}");
            Ok(ExitCode::SUCCESS)
        }
    }
}
