//! `shaken repo serve`: the certificate repository (STI-CR) over HTTPS.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use ca_tools::repository::{self, RepositoryConfig};
use clap::Subcommand;

use super::read;

/// Certificate repository commands.
#[derive(Subcommand, Debug)]
pub(crate) enum RepoCommand {
    /// Serve the chains (.pem/.crt/.cer) and CRLs (.crl) under DIR over HTTPS.
    Serve {
        /// The folder to publish; a file's URL path is its path relative to it.
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
        /// Address to listen on.
        #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8443")]
        listen: SocketAddr,
        /// TLS certificate chain (PEM).
        #[arg(long, value_name = "CERT.pem")]
        tls_cert: PathBuf,
        /// TLS private key (PKCS#8 or SEC1 PEM).
        #[arg(long, value_name = "KEY.pem")]
        tls_key: PathBuf,
        /// Cache-Control max-age in seconds.
        #[arg(long, value_name = "SECONDS", default_value_t = repository::DEFAULT_MAX_AGE)]
        max_age: u64,
    },
}

/// Runs a `shaken repo` command.
pub(crate) fn run(command: RepoCommand) -> Result<ExitCode> {
    let RepoCommand::Serve {
        dir,
        listen,
        tls_cert,
        tls_key,
        max_age,
    } = command;
    let (chain, key) = (
        read(&tls_cert, "TLS certificate")?,
        read(&tls_key, "TLS key")?,
    );
    let tls = rest::tls::acceptor_from_pem(&chain, &key).context("--tls-cert/--tls-key")?;
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async move {
        let (listener, address) = rest::service::bind(listen).await?;
        eprintln!("serving {} at https://{address}/", dir.display());
        repository::serve(
            listener,
            tls,
            RepositoryConfig { dir, max_age },
            rest::service::shutdown_signal(),
        )
        .await
        .context("repository")?;
        eprintln!("stopped");
        Ok(ExitCode::SUCCESS)
    })
}
