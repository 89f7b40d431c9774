//! `shaken lab`: a whole SHAKEN network on this machine, driven with every call case (the `lab`
//! crate); prints each case with its expected and actual verdicts.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;

use super::{answer, unix_now};

/// Arguments of `shaken lab`.
#[derive(Args, Debug)]
pub(crate) struct LabArgs {
    /// Folder for the lab's PKI, registry, logs and lab.json (default: a new temporary folder).
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// How many calls to drive.
    #[arg(long, default_value_t = 2600)]
    calls: usize,
    /// Leave everything running (Ctrl-C stops) and write DIR/lab.json.
    #[arg(long)]
    serve: bool,
    /// Also write the results as JSON to this file.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
}

/// Runs the lab: exit status 0 when every call got its expected verdict, 1 otherwise.
pub(crate) fn run(args: LabArgs) -> Result<ExitCode> {
    let now = unix_now()?;
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async move {
        let lab = lab::Lab::start(args.dir.as_deref(), now).await?;
        let results = lab.drive(args.calls).await?;
        print!("{}", results.table());
        if let Some(path) = &args.json {
            let json = serde_json::to_string_pretty(&results.to_json(lab.description()))?;
            std::fs::write(path, json)
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
        if args.serve {
            println!(
                "\nthe lab is running; its addresses are in {}; Ctrl-C stops it",
                lab.dir().join("lab.json").display()
            );
            rest::service::shutdown_signal().await;
        }
        lab.stop().await;
        Ok(answer(results.all_matched()))
    })
}
