//! `shaken lab`: a whole SHAKEN network on this machine, driven with every call case (the `lab`
//! crate); prints what it builds, then each case with its expected outcome and whether every
//! call got it. `docs/lab.md` describes the flags, the table, `lab.json` and `lab.env`.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;
use passport::NumberingPlan;
use tokio::signal::unix::{signal, Signal, SignalKind};

use super::{answer, unix_now};

/// Arguments of `shaken lab`.
#[derive(Args, Debug)]
pub(crate) struct LabArgs {
    /// Folder for the lab's files (default: a new temporary folder)
    ///
    /// The PKI, registry, trace logs, event feed, lab.json and lab.env. A temporary folder is
    /// removed when the lab stops.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// How many calls to place (at least one per case)
    #[arg(long, value_name = "N", default_value_t = 2600)]
    calls: usize,
    /// The carriers' country: NANP or CN
    ///
    /// Its numbering plan, its numbers (the registry is imported from national forms) and its
    /// emergency numbers, for the signers, the registry and the verifier.
    #[arg(long, value_name = "PLAN", default_value = "NANP", value_parser = country)]
    country: NumberingPlan,
    /// Leave everything running until Ctrl-C (endpoints in DIR/lab.json, DIR/lab.env)
    #[arg(long)]
    serve: bool,
    /// Also write the results as JSON to this file
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Show every flag of each verdict (by default the first, the most telling)
    #[arg(long)]
    verbose: bool,
    /// Extra STI trust anchors for the lab's verifier (PEM; repeatable)
    ///
    /// Trusted besides the lab CA's root: verify calls signed under a CA of your own.
    #[arg(long = "trust-anchor", value_name = "ROOT.pem")]
    trust_anchors: Vec<PathBuf>,
    /// Extra TLS roots for the verifier's x5u and CRL fetches (PEM; repeatable)
    ///
    /// Trusted besides the lab's TLS root when the lab's verifier fetches over HTTPS: fetch
    /// from a repository of your own (`shaken repo serve` under its own TLS certificate).
    #[arg(long = "repository-tls-root", value_name = "TLS-ROOT.pem")]
    repository_tls_roots: Vec<PathBuf>,
    /// Run on Kafka: events published there, two monitors in one group (with --postgres)
    ///
    /// The verifier publishes its events to these brokers and two monitors consume them as
    /// one group. HOST:PORT[,HOST:PORT...]. The topics are created when missing (4 partitions each).
    #[arg(long, value_name = "BROKERS", requires = "postgres")]
    kafka: Option<String>,
    /// The call-event topic on Kafka
    #[arg(long, value_name = "NAME", requires = "kafka", default_value = lab::scale_out::DEFAULT_TOPIC)]
    kafka_topic: String,
    /// Run on PostgreSQL: carrier 1001's registry there, two signers on it (with --kafka)
    ///
    /// Carrier 1001's registry is imported into this database and two of its signers sign
    /// from copies of it. postgres://USER:PASSWORD@HOST:PORT/DATABASE; the password is never shown.
    #[arg(long, value_name = "URL", requires = "kafka", value_parser = postgres_url)]
    postgres: Option<String>,
}

/// A `postgres://` or `postgresql://` URL.
fn postgres_url(text: &str) -> Result<String, String> {
    if signer::registry::PgUrl::is_url(text) {
        Ok(text.to_owned())
    } else {
        Err("not a postgres:// or postgresql:// URL".into())
    }
}

/// `NANP`, `CN` (and the other spellings the numbering plan accepts).
fn country(text: &str) -> Result<NumberingPlan, String> {
    text.parse()
        .map_err(|_| format!("{text:?} is not NANP or CN"))
}

/// Ctrl-C and SIGTERM, listened for from the moment this is made (a signal that arrives
/// before anyone waits is kept, not left to kill the process).
struct Shutdown {
    interrupt: Signal,
    terminate: Signal,
}

impl Shutdown {
    fn listen() -> Result<Self> {
        Ok(Self {
            interrupt: signal(SignalKind::interrupt()).context("listening for Ctrl-C")?,
            terminate: signal(SignalKind::terminate()).context("listening for SIGTERM")?,
        })
    }

    async fn requested(&mut self) {
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
    }
}

/// Runs the lab: exit status 0 when every call got its expected verdict, 1 otherwise, 130 when
/// Ctrl-C or SIGTERM stops it before the calls are done.
pub(crate) fn run(args: LabArgs) -> Result<ExitCode> {
    let now = unix_now()?;
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async move {
        // Ctrl-C stops the lab cleanly at any point, with or without --serve: a script may
        // send it as soon as lab.json exists, while the calls are still being placed; the
        // services stop, and a temporary folder (keys included) is removed.
        let mut shutdown = Shutdown::listen()?;
        let options = lab::LabOptions {
            dir: args.dir.clone(),
            plan: args.country,
            trust_anchors: args.trust_anchors.clone(),
            repository_tls_roots: args.repository_tls_roots.clone(),
            scale_out: match (&args.kafka, &args.postgres) {
                (Some(kafka), Some(postgres)) => Some(lab::ScaleOut {
                    kafka_topic: args.kafka_topic.clone(),
                    ..lab::ScaleOut::new(kafka, postgres)
                }),
                _ => None,
            },
        };
        let mut progress = |step: lab::Progress<'_>| println!("{step}");
        let lab = tokio::select! {
            lab = lab::Lab::start(&options, now, &mut progress) => lab?,
            () = shutdown.requested() => {
                stopped();
                return Ok(ExitCode::from(130));
            }
        };
        println!("placing {} calls, one at a time\n", args.calls);
        let results = tokio::select! {
            results = lab.drive(args.calls) => results?,
            () = shutdown.requested() => {
                lab.stop().await;
                stopped();
                return Ok(ExitCode::from(130));
            }
        };
        print!("{}", results.table(args.verbose));
        if let Some(path) = &args.json {
            let json = serde_json::to_string_pretty(&results.to_json(lab.description()))?;
            std::fs::write(path, json)
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
        if args.serve {
            println!(
                "\nthe lab is running; its endpoints are in {} and lab.env; Ctrl-C stops it",
                lab.dir().join("lab.json").display()
            );
            shutdown.requested().await;
            lab.stop().await;
            stopped();
        } else {
            lab.stop().await;
        }
        Ok(answer(results.all_matched()))
    })
}

/// The one line printed after Ctrl-C, once everything has stopped. Whoever read the output may
/// be gone by now (a script that waited for "the lab is running"): a closed pipe is not an
/// error here.
fn stopped() {
    let _ = writeln!(std::io::stdout(), "lab stopped");
}
