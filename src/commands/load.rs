//! `shaken load`: the load generator for the REST services and the raw ECDSA baseline (the
//! `lab` crate's `load` module).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use lab::load::{self, requests, DriveOptions};
use serde_json::json;

use super::{answer, unix_now};

/// Load commands.
#[derive(Subcommand, Debug)]
pub(crate) enum LoadCommand {
    /// Drive a signer with a mix of registered and unregistered calling numbers.
    Sign(LoadArgs),
    /// Drive a verifier with calls carrying tokens pre-signed with --key for --x5u.
    Verify(VerifyLoadArgs),
    /// Measure the raw single-core ECDSA P-256 sign and verify rates.
    ///
    /// aws-lc-rs with the key parsed once: the baseline the services' figures are compared
    /// with.
    Baseline {
        /// Seconds per measurement.
        #[arg(long, value_name = "SECONDS", default_value_t = 3.0)]
        seconds: f64,
    },
}

/// How hard and how long to drive a service.
#[derive(Args, Debug, Clone)]
pub(crate) struct Drive {
    /// Keep-alive connections.
    #[arg(long, value_name = "N", default_value_t = 32)]
    concurrency: usize,
    /// Seconds to run.
    #[arg(long, value_name = "SECONDS", default_value_t = 10.0)]
    duration: f64,
    /// Open loop at N requests per second (default: closed loop).
    #[arg(long, value_name = "N")]
    rate: Option<f64>,
    /// Seconds of load before measuring starts.
    ///
    /// Same schedule, not counted: new connections, a fresh process and cold caches are not
    /// the steady state being measured.
    #[arg(long, value_name = "SECONDS", default_value_t = 1.0)]
    warmup: f64,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
    /// Generator threads.
    #[arg(long, value_name = "N", default_value_t = 1)]
    threads: usize,
}

/// Arguments of `shaken load verify`.
#[derive(Args, Debug)]
pub(crate) struct VerifyLoadArgs {
    /// The verifier's URL: http://HOST:PORT/stir/v1/verification.
    ///
    /// With verifier/verifier.example.toml: http://127.0.0.1:8081/stir/v1/verification.
    #[arg(long, value_name = "URL")]
    url: String,
    #[command(flatten)]
    drive: Drive,
    /// The signing key whose certificate the verifier can fetch at --x5u.
    #[arg(long, value_name = "KEY.pem")]
    key: PathBuf,
    /// The x5u put in the tokens.
    #[arg(long, value_name = "URL")]
    x5u: String,
    /// How many distinct tokens to pre-sign.
    #[arg(long, value_name = "N", default_value_t = 1000)]
    tokens: usize,
}

/// Arguments of `shaken load sign`.
#[derive(Args, Debug)]
pub(crate) struct LoadArgs {
    /// The signer's URL: http://HOST:PORT/stir/v1/signing.
    ///
    /// With signer/signer.example.toml: http://127.0.0.1:8080/stir/v1/signing.
    #[arg(long, value_name = "URL")]
    url: String,
    #[command(flatten)]
    drive: Drive,
    /// Registered calling numbers, one per line.
    #[arg(long, value_name = "FILE")]
    numbers: PathBuf,
    /// Share of calls from unregistered numbers, 0 to 1.
    ///
    /// The signer refuses those calls.
    #[arg(long, value_name = "FRACTION", default_value_t = 0.1)]
    unregistered_share: f64,
}

/// Runs a `shaken load` command.
pub(crate) fn run(command: LoadCommand) -> Result<ExitCode> {
    let (url, drive, make_body) = match command {
        LoadCommand::Baseline { seconds } => {
            let (sign, verify) = load::baseline::baseline(seconds)?;
            println!(
                "{}",
                json!({"raw_sign_per_second": sign.round(), "raw_verify_per_second": verify.round()})
            );
            return Ok(ExitCode::SUCCESS);
        }
        LoadCommand::Sign(args) => {
            let numbers = requests::numbers_from_file(&args.numbers)?;
            (
                args.url,
                args.drive,
                requests::signing(numbers, args.unregistered_share),
            )
        }
        LoadCommand::Verify(args) => {
            let key = std::fs::read(&args.key)
                .with_context(|| format!("cannot read {}", args.key.display()))?;
            let key = passport::SigningKey::from_pem(&key)?;
            let make_body = requests::verification(key, &args.x5u, args.tokens, unix_now()?)?;
            (args.url, args.drive, make_body)
        }
    };
    let options = DriveOptions {
        url,
        concurrency: drive.concurrency,
        duration: drive.duration,
        rate: drive.rate,
        warmup: drive.warmup,
        threads: drive.threads,
    };
    options.check()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(options.threads)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let report = runtime.block_on(load::drive(options, make_body))?;
    if drive.json {
        println!("{}", report.to_json());
    } else {
        println!("{}", report.summary());
    }
    Ok(answer(report.failed == 0))
}
