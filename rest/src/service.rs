//! What every service process does around its serve loop ([`crate::http::serve`]): structured
//! logs ([`init_logging`]), its listener bound with the SIGHUP handler already installed
//! ([`listen`]), stopping on SIGTERM or Ctrl-C ([`shutdown_signal`]), and the clock read at the
//! service's edge ([`unix_now`]).

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::net::TcpListener;
use tokio::signal::unix::{signal, Signal, SignalKind};

/// Why a service could not start listening.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ListenError {
    /// The address could not be bound (in use, not local, not permitted).
    #[error("cannot listen on {address}: {detail}")]
    Bind {
        /// The address asked for.
        address: SocketAddr,
        /// What the operating system said.
        detail: String,
    },
    /// The SIGHUP handler could not be installed.
    #[error("installing the SIGHUP handler: {0}")]
    Hangup(String),
}

/// A bound listener, the address it is bound to (the port chosen when `:0` was asked), and
/// the SIGHUP stream that reloads the service.
#[derive(Debug)]
pub struct Listening {
    /// The listener, ready to accept.
    pub listener: TcpListener,
    /// The address actually bound.
    pub address: SocketAddr,
    /// Receives each SIGHUP; installed before the service says it is listening, since a SIGHUP
    /// arriving before the handler exists would end the process.
    pub hangup: Signal,
}

/// Binds `address`; returns the listener and the address actually bound.
pub async fn bind(address: SocketAddr) -> Result<(TcpListener, SocketAddr), ListenError> {
    let bind_error = |e: std::io::Error| ListenError::Bind {
        address,
        detail: e.to_string(),
    };
    let listener = TcpListener::bind(address).await.map_err(bind_error)?;
    let bound = listener.local_addr().map_err(bind_error)?;
    Ok((listener, bound))
}

/// Binds a service's listener and installs its SIGHUP handler, both before the service says it
/// is listening.
pub async fn listen(address: SocketAddr) -> Result<Listening, ListenError> {
    let (listener, address) = bind(address).await?;
    let hangup = signal(SignalKind::hangup()).map_err(|e| ListenError::Hangup(e.to_string()))?;
    Ok(Listening {
        listener,
        address,
        hangup,
    })
}

/// Completes on Ctrl-C or SIGTERM (on Ctrl-C alone if the SIGTERM handler cannot be installed).
pub async fn shutdown_signal() {
    let mut term = match signal(SignalKind::terminate()) {
        Ok(term) => term,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// Structured logs on standard error, filtered by `SHAKEN_LOG` (default `info`), coloured only
/// on a terminal. A second call (or a subscriber already installed) changes nothing.
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SHAKEN_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

/// Seconds since the epoch, or `None` when the system clock is before 1970. Services read the
/// clock here, at their edge, and pass the time down.
pub fn unix_now() -> Option<u64> {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .ok()
        .map(|d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn listen_reports_the_bound_port_and_a_taken_address() {
        let first = listen("127.0.0.1:0".parse().unwrap()).await.unwrap();
        assert_ne!(first.address.port(), 0);
        let error = bind(first.address).await.unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with(&format!("cannot listen on {}: ", first.address)),
            "{error}"
        );
    }

    #[test]
    fn the_clock_is_after_1970() {
        assert!(unix_now().is_some_and(|now| now > 1_600_000_000));
    }
}
