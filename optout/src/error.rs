//! The crate's errors, one enum per cause: a token ([`TokenError`]), a key ([`KeyError`]), the
//! store ([`StoreError`]), the configuration ([`ConfigError`]), a form body ([`FormError`]),
//! and the service as a whole ([`OptOutError`]).

use std::path::PathBuf;

/// Why an unsubscribe token is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// The text is not a token: wrong shape, not base64url, truncated, too long.
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    /// The MAC does not match: the token was changed (another number, firm, name or expiry),
    /// or minted with another key.
    #[error("the token's MAC does not match (changed, or minted with another key)")]
    BadMac,
    /// An authentic token of a payload version this code does not read.
    #[error("token payload version {0} is not supported")]
    UnknownVersion(u8),
    /// A field out of the format's bounds (when minting, or in an authentic payload).
    #[error("token field out of bounds: {0}")]
    BadField(&'static str),
    /// An authentic token used at or after its expiry.
    #[error("the token expired at {expired_at}")]
    Expired {
        /// Its expiry, seconds since the epoch.
        expired_at: u64,
    },
}

impl TokenError {
    /// The reason as a metric label and a log field: `malformed`, `bad-mac` or `expired`.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Malformed(_) | Self::UnknownVersion(_) | Self::BadField(_) => "malformed",
            Self::BadMac => "bad-mac",
            Self::Expired { .. } => "expired",
        }
    }
}

/// Why a link key cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The key file cannot be read.
    #[error("cannot read the link key file {path}: {detail}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        detail: String,
    },
    /// Fewer than 32 bytes.
    #[error("the link key has {0} bytes; at least 32 are needed")]
    TooShort(usize),
    /// More than 1024 bytes.
    #[error("the link key has {0} bytes; at most 1024 are accepted")]
    TooLong(usize),
}

/// A failure of the opt-out store. A PostgreSQL URL appears only without its password.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// SQLite failed.
    #[error("opt-out database {path}: {source}")]
    Db {
        /// The database file.
        path: PathBuf,
        /// What SQLite said.
        source: rusqlite::Error,
    },
    /// The SQLite database was written by a newer version.
    #[error(
        "opt-out database {path} has schema version {found}; this program reads up to {supported}"
    )]
    SchemaTooNew {
        /// The database file.
        path: PathBuf,
        /// Its version.
        found: i64,
        /// The newest this code reads.
        supported: i64,
    },
    /// PostgreSQL cannot be reached, or refused or failed a statement. A request that meets
    /// it is answered 503; the next one connects again.
    #[error("opt-out database {url}: {detail}")]
    Postgres {
        /// The URL without its password.
        url: String,
        /// What the client or the server said, with its causes.
        detail: String,
    },
    /// The PostgreSQL schema was written by a newer version.
    #[error(
        "opt-out database {url} has opt-out schema version {found}; this program reads up to {supported}"
    )]
    PgSchemaTooNew {
        /// The URL without its password.
        url: String,
        /// Its version.
        found: i64,
        /// The newest this code reads.
        supported: i64,
    },
    /// A stored row this code did not write (an unknown action).
    #[error("opt-out database {db}: unexpected value {value:?} in column {column}")]
    Corrupt {
        /// The database file, or the URL without its password.
        db: String,
        /// The column.
        column: &'static str,
        /// The value found.
        value: String,
    },
    /// The blocking task running a store call did not finish (it panicked, or the runtime is
    /// shutting down).
    #[error("the opt-out store call did not finish: {0}")]
    Interrupted(String),
}

/// A configuration problem; each names the key it is about.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("cannot read the configuration {path}: {detail}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        detail: String,
    },
    /// The TOML does not parse or has an unknown or missing key (the message names it).
    #[error("configuration {path}: {detail}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message, naming the key.
        detail: String,
    },
    /// A key's value is not usable.
    #[error("configuration key {key}: {reason}")]
    Invalid {
        /// The key.
        key: &'static str,
        /// What is wrong.
        reason: String,
    },
}

/// Why a form body is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FormError {
    /// Not `application/x-www-form-urlencoded` text.
    #[error("the form body is not URL-encoded text")]
    NotText,
    /// `action` given twice.
    #[error("the form gives action twice")]
    DuplicateAction,
    /// An `action` other than `opt-out` and `undo`.
    #[error("unknown form action {0:?}")]
    UnknownAction(String),
}

/// A failure of the opt-out service as a whole (starting it, or a piece of it).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OptOutError {
    /// The configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The link key.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The store.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Listening.
    #[error(transparent)]
    Listen(#[from] rest::service::ListenError),
}
