//! The signer crate's error type (operations: registry, trace log, configuration).
//! Request-level refusals are not errors here: they are [`crate::api::ApiError`] values.

use std::path::PathBuf;

/// What can go wrong operating the signer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SignerError {
    /// The registry or trace database failed.
    #[error("database {path}: {detail}")]
    Database {
        /// The database file.
        path: PathBuf,
        /// What SQLite said.
        detail: String,
    },
    /// The database was written by a newer version of this program.
    #[error("database {path} has schema version {found}, newer than this program's {supported}")]
    SchemaTooNew {
        /// The database file.
        path: PathBuf,
        /// Its version.
        found: i64,
        /// The newest this program knows.
        supported: i64,
    },
    /// The PostgreSQL registry failed (its URL shown without the password).
    #[error("database {url}: {detail}")]
    Postgres {
        /// The URL, password hidden.
        url: String,
        /// What PostgreSQL or the connection said.
        detail: String,
    },
    /// The PostgreSQL registry's schema was written by a newer version of this program.
    #[error("database {url} has schema version {found}, newer than this program's {supported}")]
    PgSchemaTooNew {
        /// The URL, password hidden.
        url: String,
        /// Its version.
        found: i64,
        /// The newest this program knows.
        supported: i64,
    },
    /// The PostgreSQL registry's schema is missing or older than this program needs, and
    /// the signer does not migrate a shared database: `shaken registry` does.
    #[error(
        "database {url} has schema version {found}, older than the {needed} this program needs: \
         run a `shaken registry` command of this version against it to migrate it"
    )]
    PgSchemaTooOld {
        /// The URL, password hidden.
        url: String,
        /// Its version (0: no schema).
        found: i64,
        /// The version this program needs.
        needed: i64,
    },
    /// Another signer process keeps the same `registry_copy`.
    #[error("the registry copy {path} is in use by another signer (locked: {lock})")]
    RegistryCopyInUse {
        /// The copy.
        path: PathBuf,
        /// Its lock file.
        lock: PathBuf,
    },
    /// The signer's copy of a PostgreSQL registry has never been filled from it.
    #[error("the registry copy has never been synchronized from PostgreSQL")]
    RegistryNotSynced,
    /// The signer's copy of a PostgreSQL registry is older than `registry_max_age_seconds`
    /// and `registry_stale = "refuse"`.
    #[error("the registry copy is {age} s old, more than the {max} s allowed")]
    RegistryStale {
        /// Seconds since the last successful synchronization.
        age: u64,
        /// The bound.
        max: u64,
    },
    /// An import file has bad lines; nothing was applied.
    #[error("import refused, nothing was applied: {} bad line(s); first: line {}: {}", .0.len(), .0.first().map_or(0, |b| b.line), .0.first().map_or("", |b| b.reason.as_str()))]
    Import(Vec<BadLine>),
    /// A telephone number is not usable.
    #[error("telephone number: {0}")]
    Number(#[from] passport::Error),
    /// The number is not in the registry.
    #[error("{0} is not registered")]
    NotRegistered(String),
    /// A file could not be read or written.
    #[error("{path}: {detail}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        detail: String,
    },
    /// The configuration is invalid.
    #[error("configuration: {0}")]
    Config(String),
    /// A file the configuration names cannot be read.
    #[error("{key}: cannot read {}: {detail}", path.display())]
    ConfigRead {
        /// The configuration key naming the file (`key_file`).
        key: &'static str,
        /// The file, absolute.
        path: PathBuf,
        /// What the operating system said.
        detail: String,
    },
    /// A file the configuration names holds no usable key or certificate chain.
    #[error("{key}: {}: {detail}", path.display())]
    ConfigFile {
        /// The configuration key naming the file (`key_file`).
        key: &'static str,
        /// The file, absolute.
        path: PathBuf,
        /// What is wrong with it.
        detail: String,
    },
    /// The signing key does not match the published certificate.
    #[error("the signing key does not match the certificate {0}")]
    KeyMismatch(String),
    /// The carrier secret file holds fewer than 16 bytes (after trimming).
    #[error("the carrier secret in {} is shorter than 16 bytes", .0.display())]
    ShortSecret(PathBuf),
    /// The `[tls]` section is unusable.
    #[error(transparent)]
    Tls(#[from] rest::tls::TlsError),
    /// The service cannot listen.
    #[error(transparent)]
    Listen(#[from] rest::service::ListenError),
    /// The `[sip]` section is invalid.
    #[error(transparent)]
    SipConfig(#[from] sip::config::ConfigError),
    /// The SIP listener cannot start.
    #[error(transparent)]
    SipListen(#[from] sip::transport::BindError),
}

/// One refused line of an import file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadLine {
    /// 1-based line number (the header is line 1).
    pub line: usize,
    /// Why it was refused.
    pub reason: String,
}

/// `line N: reason`.
impl std::fmt::Display for BadLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.reason)
    }
}

impl SignerError {
    pub(crate) fn db(path: &std::path::Path, error: impl std::fmt::Display) -> Self {
        Self::Database {
            path: path.to_owned(),
            detail: error.to_string(),
        }
    }

    /// Reads the file that the configuration key `key` names.
    pub(crate) fn read_config_file(
        key: &'static str,
        path: &std::path::Path,
    ) -> Result<Vec<u8>, Self> {
        std::fs::read(path).map_err(|e| Self::ConfigRead {
            key,
            path: path.to_owned(),
            detail: e.to_string(),
        })
    }

    /// The file of the configuration key `key` is unusable.
    pub(crate) fn config_file(
        key: &'static str,
        path: &std::path::Path,
        detail: impl std::fmt::Display,
    ) -> Self {
        Self::ConfigFile {
            key,
            path: path.to_owned(),
            detail: detail.to_string(),
        }
    }

    /// A PostgreSQL error: the URL without its password, and the error with its causes
    /// (the client's own message is often only "invalid configuration" or "db error").
    pub(crate) fn pg(url: &crate::registry::PgUrl, error: impl std::error::Error) -> Self {
        Self::Postgres {
            url: url.redacted(),
            detail: rest::pg::error_detail(&error),
        }
    }

    pub(crate) fn io(path: &std::path::Path, error: &std::io::Error) -> Self {
        Self::Io {
            path: path.to_owned(),
            detail: error.to_string(),
        }
    }
}
