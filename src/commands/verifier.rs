//! `shaken verifier serve`: the terminating carrier's verification service.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Subcommand;
use verifier::config::VerifierConfig;
use verifier::server::Prepared;

use super::unix_now;

/// Verification service commands.
#[derive(Subcommand, Debug)]
pub(crate) enum VerifierCommand {
    /// Run the ATIS-1000082 verification service.
    ///
    /// SIGHUP reloads the trust anchors and CRLs; SIGTERM stops.
    Serve {
        /// The TOML configuration file.
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// Check the configuration, trust anchors and CRL files, then exit.
        #[arg(long)]
        validate: bool,
    },
}

/// Runs a `shaken verifier` command.
pub(crate) fn run(command: VerifierCommand) -> Result<ExitCode> {
    let VerifierCommand::Serve { config, validate } = command;
    rest::service::init_logging();
    let prepared = Prepared::load(VerifierConfig::load(&config)?)?;
    if validate {
        let (anchors, crls) = (prepared.trust_anchor_count(), prepared.crl_count());
        println!(
            "configuration OK: {anchors} trust anchor{}, {crls} CRL file{}",
            if anchors == 1 { "" } else { "s" },
            if crls == 1 { "" } else { "s" }
        );
        return Ok(ExitCode::SUCCESS);
    }
    let now = unix_now()?;
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(prepared.run(now, rest::service::shutdown_signal()))?;
    Ok(ExitCode::SUCCESS)
}
