//! The crate's one error type: why the lab could not be built or driven, or a load could not be
//! run. A call that gets an unexpected verdict is not an error: it is a result
//! ([`crate::report::Results`]).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// What can go wrong building or driving the lab, or running a load.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LabError {
    // --- Files ---
    /// A file or folder of the lab could not be read, written or created.
    #[error("{path}: {detail}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// What the operating system said.
        detail: String,
    },

    // --- The roles, as they report their own failures ---
    /// Building the PKI failed (PA, CA, issuance, revocation, CRLs).
    #[error(transparent)]
    Ca(#[from] ca_tools::CaError),
    /// The registry, trace log or signer failed.
    #[error(transparent)]
    Signer(#[from] signer::SignerError),
    /// A key, certificate or token could not be made or read.
    #[error(transparent)]
    Passport(#[from] passport::Error),
    /// A token the lab signs is not valid (a bug of the lab's own claims).
    #[error(transparent)]
    Token(#[from] passport::TokenError),
    /// The verifier's fetcher could not be built.
    #[error(transparent)]
    Fetcher(#[from] rest::fetch::FetchError),
    /// An extra root given to the lab (`--trust-anchor`, `--repository-tls-root`) is not a
    /// usable PEM certificate file.
    #[error("{path}: {detail}")]
    ExtraRoot {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        detail: String,
    },
    /// The lab's trust anchors are unusable.
    #[error("trust anchors: {0}")]
    TrustAnchors(::pki::Error),
    /// The repository's TLS configuration is unusable.
    #[error(transparent)]
    Tls(#[from] rest::tls::TlsError),
    /// The regulator's list could not be signed.
    #[error("regulator list: {0}")]
    ListSigning(#[from] lists::JwsError),
    /// The regulator's list the lab wrote is not a valid document.
    #[error("regulator list: {0}")]
    ListDocument(#[from] lists::DocumentError),
    /// The regulator's list was refused by a consumer's store.
    #[error("regulator list: {0}")]
    ListRefused(#[from] lists::ListError),
    /// The opt-out service's store could not be opened or written.
    #[error("opt-out store: {0}")]
    OptOutStore(#[from] optout::StoreError),
    /// The opt-out link key could not be used.
    #[error("opt-out link key: {0}")]
    LinkKey(#[from] optout::KeyError),
    /// The monitor could not be configured or started.
    #[error("monitor: {0}")]
    Monitor(#[from] monitor::server::ServeError),
    /// The verifier's event pusher could not be started.
    #[error(transparent)]
    Push(#[from] verifier::events::push::PushError),
    /// The Kafka brokers given with `--kafka` could not be used (topic creation, metadata).
    #[error("kafka at {brokers}: {detail}")]
    Kafka {
        /// The bootstrap brokers.
        brokers: String,
        /// What failed.
        detail: String,
    },
    /// A signer's copy of the PostgreSQL registry was not synchronized at start.
    #[error("the registry copy {copy} was not synchronized from {url} at start")]
    RegistryCopy {
        /// The copy (SQLite).
        copy: PathBuf,
        /// The PostgreSQL URL, without its password.
        url: String,
    },
    /// A certificate the lab made does not decode.
    #[error("ASN.1: {0}")]
    Asn1(String),

    // --- The network ---
    /// A loopback listener could not be bound.
    #[error(transparent)]
    Listen(#[from] rest::service::ListenError),
    /// A SIP listener's configuration or socket.
    #[error("SIP listener: {0}")]
    Sip(String),
    /// A service could not be reached.
    #[error("cannot connect to {address}: {detail}")]
    Connect {
        /// The service.
        address: SocketAddr,
        /// What failed.
        detail: String,
    },
    /// An HTTP exchange with a service failed.
    #[error("HTTP: {0}")]
    Http(String),
    /// A service closed the connection before answering.
    #[error("the connection was closed before the answer")]
    Closed,
    /// A service's answer is not HTTP/1.1 as expected.
    #[error("bad response: {0}")]
    BadResponse(String),

    // --- The load generator ---
    /// A target URL is not `http://HOST:PORT/PATH`.
    #[error("url {0:?} is not http://HOST:PORT/PATH")]
    Url(String),
    /// A target host does not resolve.
    #[error("cannot resolve {0}")]
    Resolve(String),
    /// A load option is outside what the generator can run with.
    #[error("{option} {value} is out of range: {range}")]
    OutOfRange {
        /// The option's name.
        option: &'static str,
        /// The value given.
        value: String,
        /// What is accepted.
        range: &'static str,
    },
    /// The socket option asking for receive time-stamps was refused.
    #[error("SO_TIMESTAMPNS: {0}")]
    Timestamps(String),
    /// A latency histogram could not be made.
    #[error("histogram: {0}")]
    Histogram(String),
    /// A raw ECDSA operation of the baseline failed.
    #[error("baseline: {0} failed")]
    Baseline(&'static str),
    /// A connection task of the generator ended abnormally.
    #[error("load task: {0}")]
    Task(String),
}

impl LabError {
    /// An I/O error on `path`.
    pub fn io(path: &Path, error: &std::io::Error) -> Self {
        Self::Io {
            path: path.to_owned(),
            detail: error.to_string(),
        }
    }
}

impl From<der::Error> for LabError {
    fn from(error: der::Error) -> Self {
        Self::Asn1(error.to_string())
    }
}

impl From<hdrhistogram::CreationError> for LabError {
    fn from(error: hdrhistogram::CreationError) -> Self {
        Self::Histogram(error.to_string())
    }
}

impl From<hyper::Error> for LabError {
    fn from(error: hyper::Error) -> Self {
        Self::Http(error.to_string())
    }
}

/// Reads a file, naming it on failure.
pub(crate) fn read(path: &Path) -> Result<Vec<u8>, LabError> {
    std::fs::read(path).map_err(|e| LabError::io(path, &e))
}

/// Writes a file, naming it on failure.
pub(crate) fn write(path: &Path, bytes: impl AsRef<[u8]>) -> Result<(), LabError> {
    std::fs::write(path, bytes).map_err(|e| LabError::io(path, &e))
}

/// Creates a folder and its parents, naming it on failure.
pub(crate) fn create_dir(path: &Path) -> Result<(), LabError> {
    std::fs::create_dir_all(path).map_err(|e| LabError::io(path, &e))
}
