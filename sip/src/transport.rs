//! The UDP and TCP listeners (RFC 3261 §18) on one port, in front of a [`Handler`].
//!
//! For each message: parse it within the caps (malformed: `400` when its Via is usable,
//! dropped otherwise); drop responses; refuse a source the handler does not allow (`403`);
//! ask the [`crate::transaction::Transactions`] table what to do (retransmissions answered
//! from memory, ACKs absorbed, CANCEL answered `200`); `OPTIONS` gets `200`; other methods
//! `405` with `Allow`; a new INVITE goes to [`Handler::invite`] exactly once, and its answer
//! becomes a response copying Via, From, To (plus a To tag), Call-ID and CSeq.
//!
//! UDP answers go to the top Via's sent-by (with `received`/`rport` rules of RFC 3261
//! §18.2.2 and RFC 3581: in practice the source address and port); TCP answers go back on
//! the connection. TCP frames by `Content-Length`, carries many transactions per connection,
//! and closes idle connections.
//!
//! CONTRACT (skeleton): filled by the "transport" part.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use thiserror::Error;

use crate::config::ListenerConfig;
use crate::message::{Header, Request};
use crate::metrics::SipMetrics;
use crate::transaction::TransactionCounts;

/// A transport.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Transport {
    /// UDP.
    Udp,
    /// TCP.
    Tcp,
}

impl Transport {
    /// `udp` or `tcp`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Udp => "udp",
            Self::Tcp => "tcp",
        }
    }
}

/// Who sent a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Peer {
    /// The source address and port.
    pub addr: SocketAddr,
    /// The transport it came over.
    pub transport: Transport,
}

/// A service's answer to an INVITE: the status, the reason phrase and the headers of its own
/// (Contact, Identity, Reason, P-Asserted-Identity...). The transport adds what every
/// response copies from its request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    /// The status code.
    pub code: u16,
    /// The reason phrase.
    pub reason: String,
    /// The service's header fields, in order.
    pub headers: Vec<Header>,
}

impl Answer {
    /// An answer with no header of its own.
    pub fn new(code: u16, reason: &str) -> Self {
        Self {
            code,
            reason: reason.to_owned(),
            headers: Vec::new(),
        }
    }

    /// The same answer with one more header field.
    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push(Header {
            name: name.to_owned(),
            value: value.into(),
        });
        self
    }
}

/// What a service plugs into the listener.
pub trait Handler: Send + Sync + 'static {
    /// Whether `peer` may send requests (the service's client allow-list); others get `403`.
    fn allowed(&self, peer: &Peer) -> bool;

    /// Answers a new INVITE with its final response. Called once per transaction, never for a
    /// retransmission.
    fn invite(&self, request: Request, peer: Peer) -> impl Future<Output = Answer> + Send;
}

/// Why the listener could not start.
#[derive(Debug, Error)]
pub enum BindError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// A socket could not be bound: the address and the error.
    #[error("cannot listen on {0}: {1}")]
    Bind(String, std::io::Error),
}

/// The listener's counters and the transaction table's counts, for `/metrics`.
#[derive(Debug, Default)]
pub struct SipStatus {
    /// The counters.
    pub metrics: SipMetrics,
    counts: std::sync::Mutex<TransactionCounts>,
}

impl SipStatus {
    /// The Prometheus text under `prefix` (e.g. `shaken_signer_sip`).
    pub fn render(&self, prefix: &str) -> String {
        let counts = self.counts.lock().map(|c| *c).unwrap_or_default();
        self.metrics.render(prefix, counts)
    }
}

/// The bound sockets of a `[sip]` section, ready to serve.
#[derive(Debug)]
pub struct SipListener {
    status: Arc<SipStatus>,
}

impl SipListener {
    /// Binds every `listen` item (for `ADDR` with port 0, UDP and TCP get the same free port).
    pub async fn bind(config: &ListenerConfig) -> Result<Self, BindError> {
        let _ = config;
        Ok(Self {
            status: Arc::new(SipStatus::default()),
        })
    }

    /// The addresses actually bound, with their transport.
    pub fn local_addrs(&self) -> Vec<(Transport, SocketAddr)> {
        Vec::new()
    }

    /// The counters, shared with the running listener.
    pub fn status(&self) -> Arc<SipStatus> {
        self.status.clone()
    }

    /// Serves until `shutdown` completes.
    pub async fn serve<H: Handler>(self, handler: Arc<H>, shutdown: impl Future<Output = ()>) {
        let _ = handler;
        shutdown.await;
    }
}
