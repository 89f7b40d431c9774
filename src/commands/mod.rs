//! Command families of the `shaken` binary.

pub(crate) mod lab;
pub(crate) mod load;
pub(crate) mod passport;
pub(crate) mod pki;
pub(crate) mod repo;
pub(crate) mod signer;
pub(crate) mod verifier;

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the epoch, read once at the edge of the program.
pub(crate) fn unix_now() -> anyhow::Result<u64> {
    use anyhow::Context;
    Ok(SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .context("the system clock is before 1970")?
        .as_secs())
}

/// Binds a service's listener and installs its SIGHUP handler, both before the service says it
/// is listening (a SIGHUP arriving before the handler exists would end the process).
pub(crate) async fn listen(
    address: std::net::SocketAddr,
) -> anyhow::Result<(
    tokio::net::TcpListener,
    std::net::SocketAddr,
    tokio::signal::unix::Signal,
)> {
    use anyhow::Context;
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| format!("cannot listen on {address}"))?;
    let bound = listener.local_addr()?;
    let hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .context("installing the SIGHUP handler")?;
    Ok((listener, bound, hangup))
}
