//! `shaken`: the command line over the project's library crates.
//!
//! Each command family lives in `commands/`; this file only parses arguments and dispatches.
//! Exit status: 0 success, 1 a negative answer (a call that failed verification), 2 unusable
//! input (a file that cannot be read, a key or certificate that cannot be parsed, a bad flag).
#![forbid(unsafe_code)]

mod commands;

/// mimalloc instead of the system allocator (see docs/DEPENDENCIES.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// STIR/SHAKEN caller-identity attestation: sign, verify and inspect PASSporTs.
#[derive(Parser, Debug)]
#[command(name = "shaken", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// A whole SHAKEN network on this machine: CA, carriers, signers, verifier, every call case.
    Lab(commands::lab::LabArgs),
    /// Offline PASSporT operations: sign, verify, decode.
    #[command(subcommand)]
    Passport(commands::passport::PassportCommand),
    /// Policy administrator (STI-PA): key, certificate, SPC tokens.
    #[command(subcommand)]
    Pa(commands::pki::PaCommand),
    /// Service provider: key generation and certificate signing requests.
    #[command(subcommand)]
    Sp(commands::pki::SpCommand),
    /// Certification authority (STI-CA): init, issue, revoke, CRL, lint.
    #[command(subcommand)]
    Ca(commands::pki::CaCommand),
    /// Certificate repository (STI-CR): serve chains and CRLs over HTTPS.
    #[command(subcommand)]
    Repo(commands::repo::RepoCommand),
    /// Signing service (STI-AS).
    #[command(subcommand)]
    Signer(commands::signer::SignerCommand),
    /// Verification service (STI-VS).
    #[command(subcommand)]
    Verifier(commands::verifier::VerifierCommand),
    /// The real-name registry: import, show, suspend, resume.
    #[command(subcommand)]
    Registry(commands::signer::RegistryCommand),
    /// The signer's trace log: traceback lookups and pruning.
    #[command(subcommand)]
    Trace(commands::signer::TraceCommand),
    /// One-click unsubscribe: the opt-out service and its links.
    #[command(subcommand)]
    Optout(commands::optout::OptOutCommand),
    /// Load generator and the raw ECDSA baseline.
    #[command(subcommand)]
    Load(commands::load::LoadCommand),
    /// The regulator's signed list of marketing firms: sign, verify, show.
    #[command(subcommand)]
    Lists(commands::lists::ListsCommand),
    /// The monitoring platform: detectors of harassing and spoofing callers, alerts, traceback.
    #[command(subcommand)]
    Monitor(commands::monitor::MonitorCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Lab(args) => commands::lab::run(args),
        Command::Passport(command) => commands::passport::run(command),
        Command::Pa(command) => commands::pki::run_pa(command),
        Command::Sp(command) => commands::pki::run_sp(command),
        Command::Ca(command) => commands::pki::run_ca(command),
        Command::Repo(command) => commands::repo::run(command),
        Command::Signer(command) => commands::signer::run_signer(command),
        Command::Verifier(command) => commands::verifier::run(command),
        Command::Registry(command) => commands::signer::run_registry(command),
        Command::Trace(command) => commands::signer::run_trace(command),
        Command::Optout(command) => commands::optout::run(command),
        Command::Load(command) => commands::load::run(command),
        Command::Lists(command) => commands::lists::run(command),
        Command::Monitor(command) => commands::monitor::run(command),
    };
    match outcome {
        Ok(code) => code,
        Err(error) => {
            eprintln!("shaken: {error:#}");
            ExitCode::from(2)
        }
    }
}
