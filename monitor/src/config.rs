//! The monitor's whole TOML configuration: the service's own keys (this file) and the
//! detection settings ([`DetectionConfig`], the detectors' part: `home_country`, `allow_file`,
//! `lists`, `lateness_seconds`, `[detectors.NAME]`).
//!
//! The file is read once as a TOML table and split: the keys named in [`SERVICE_KEYS`] go to
//! [`ServiceConfig`], every other key to [`DetectionConfig`]. Each side refuses keys it does
//! not know, so a misspelt key is an error naming it, whichever side it was meant for.
//!
//! | key | default | meaning |
//! |---|---|---|
//! | `max_body_bytes` | 16 MiB | largest `POST /v1/events` body; at least 8 MiB |
//! | `retention_days` | 90 | events and closed alerts older than this (event time) are deleted |
//! | `max_future_seconds` | 300 | a line whose `time` is further ahead of the monitor's clock is refused (one event far in the future would make every later one late) |
//! | `durability` | `"process"` | `"process"`: SQLite WAL, `synchronous=NORMAL` (an acknowledged event survives `kill -9`); `"power"`: `synchronous=FULL` (it survives a power loss too) |
//! | `[[clients]]` | loopback only | who may use the API (`rest::clients` sections: `name`, `ips`, `certificate_sha256`) |
//! | `[trace.SPC]` `url` | none | the signing carrier's trace endpoint for that SPC (`https://…/trace/v1/calls`) |
//! | `[trace_fetch]` | see [`TraceFetchConfig`] | how those endpoints are fetched |

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::detect::DetectionConfig;

/// The smallest `max_body_bytes` accepted (the issue asks for at least 8 MiB).
pub const MIN_BODY_BYTES: usize = 8 * 1024 * 1024;
/// The default `max_body_bytes`.
pub const DEFAULT_BODY_BYTES: usize = 16 * 1024 * 1024;
/// The default `retention_days`.
pub const DEFAULT_RETENTION_DAYS: u64 = 90;
/// The default `max_future_seconds`.
pub const DEFAULT_MAX_FUTURE_SECONDS: u64 = 300;

/// The top-level keys (and tables) that belong to [`ServiceConfig`].
pub const SERVICE_KEYS: &[&str] = &[
    "max_body_bytes",
    "retention_days",
    "max_future_seconds",
    "durability",
    "clients",
    "trace",
    "trace_fetch",
    "db",
];

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read the configuration {path}: {detail}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What the system said.
        detail: String,
    },
    /// Not TOML, or a key of the wrong type, or an unknown key.
    #[error("configuration {path}: {detail}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// What is wrong, naming the key.
        detail: String,
    },
    /// `max_body_bytes` below the minimum.
    #[error("max_body_bytes = {0} is below the minimum of {MIN_BODY_BYTES} (8 MiB)")]
    BodyTooSmall(usize),
    /// `retention_days = 0`.
    #[error("retention_days must be at least 1")]
    NoRetention,
    /// A `[trace.SPC]` URL that is not an http(s) URL.
    #[error("trace.{spc}.url {url:?}: {detail}")]
    TraceUrl {
        /// The SPC.
        spc: String,
        /// The URL.
        url: String,
        /// Why.
        detail: String,
    },
    /// A `[[clients]]` section that cannot be used.
    #[error("clients: {0}")]
    Clients(String),
    /// The allow file is unreadable or has a bad line.
    #[error("allow_file: {0}")]
    AllowFile(#[from] crate::detect::AllowFileError),
    /// The detection keys' values.
    #[error(transparent)]
    Detection(#[from] crate::detect::config::ConfigError),
}

/// How the store makes a commit durable.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// SQLite WAL with `synchronous=NORMAL`: a committed batch survives the process being
    /// killed (`kill -9`), not necessarily a power loss.
    #[default]
    Process,
    /// `synchronous=FULL`: the WAL is synced at each commit; survives a power loss.
    Power,
}

/// `[trace.SPC]`: where a signing carrier answers traceback lookups.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TraceEndpoint {
    /// The endpoint, e.g. `https://signer.example:8443/trace/v1/calls`; `?origid=ID` is
    /// appended.
    pub url: String,
}

/// `[trace_fetch]`: the policy for fetching trace endpoints (through `rest::fetch`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TraceFetchConfig {
    /// Allow `http://` URLs on loopback addresses (the lab); otherwise HTTPS to public
    /// addresses only. Default false.
    pub allow_http_loopback: bool,
    /// Allow private (RFC 1918 and the like) addresses over HTTPS, for carriers reached over
    /// a private interconnect. Default false.
    pub allow_private_addresses: bool,
    /// Time for the whole fetch, milliseconds. Default 2000.
    pub timeout_ms: u64,
    /// Largest answer accepted, bytes. Default 64 KiB.
    pub max_body_bytes: usize,
}

impl Default for TraceFetchConfig {
    fn default() -> Self {
        Self {
            allow_http_loopback: false,
            allow_private_addresses: false,
            timeout_ms: 2000,
            max_body_bytes: 64 * 1024,
        }
    }
}

/// The service's own keys.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServiceConfig {
    /// Largest `POST /v1/events` body, bytes.
    pub max_body_bytes: usize,
    /// Days of event time kept.
    pub retention_days: u64,
    /// The most a line's `time` may be ahead of the monitor's clock, seconds.
    pub max_future_seconds: u64,
    /// How commits are made durable.
    pub durability: Durability,
    /// Who may use the API; empty: loopback only.
    pub clients: Vec<rest::clients::ClientSection>,
    /// Trace endpoints by SPC.
    pub trace: BTreeMap<String, TraceEndpoint>,
    /// How trace endpoints are fetched.
    pub trace_fetch: TraceFetchConfig,
    /// The store's PostgreSQL database (`db = "postgres://..."`, or `serve --db`); none: the
    /// SQLite databases of the data folder. Its `Debug` hides the password.
    #[serde(deserialize_with = "pg_url")]
    pub db: Option<rest::pg::PgUrl>,
}

/// Reads `db`: a `postgres://` or `postgresql://` URL (the value is not repeated in the error,
/// it may hold a password).
fn pg_url<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<rest::pg::PgUrl>, D::Error> {
    let text = String::deserialize(deserializer)?;
    if rest::pg::PgUrl::is_url(&text) {
        Ok(Some(rest::pg::PgUrl::new(&text)))
    } else {
        Err(serde::de::Error::custom(
            "db must be a postgres:// or postgresql:// URL",
        ))
    }
}

impl Default for ServiceConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: DEFAULT_BODY_BYTES,
            retention_days: DEFAULT_RETENTION_DAYS,
            max_future_seconds: DEFAULT_MAX_FUTURE_SECONDS,
            durability: Durability::Process,
            clients: Vec::new(),
            trace: BTreeMap::new(),
            trace_fetch: TraceFetchConfig::default(),
            db: None,
        }
    }
}

impl ServiceConfig {
    /// The API's allow-list: the `[[clients]]` sections, or loopback only when there are
    /// none. The monitor serves plain HTTP, so clients are told apart by address (`ips`).
    pub fn api_clients(&self) -> Result<rest::clients::Clients, ConfigError> {
        let clients = self
            .clients
            .iter()
            .map(rest::clients::Client::from_config)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ConfigError::Clients(e.to_string()))?;
        Ok(rest::clients::Clients::new(clients))
    }
}

/// The whole configuration.
#[derive(Clone, Debug, Default)]
pub struct MonitorConfig {
    /// The service's keys.
    pub service: ServiceConfig,
    /// The detectors' keys.
    pub detection: DetectionConfig,
}

impl MonitorConfig {
    /// Reads and checks a configuration file. Relative paths in it (`allow_file`, the
    /// `lists` section's certificate and file) are relative to the file's folder, as the
    /// signer and the verifier read theirs.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            path: path.to_owned(),
            detail: e.to_string(),
        })?;
        let mut config = Self::parse(&text).map_err(|e| match e {
            ConfigError::Syntax { detail, .. } => ConfigError::Syntax {
                path: path.to_owned(),
                detail,
            },
            other => other,
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        if let Some(lists) = &mut config.detection.lists {
            lists.resolve_paths(base);
        }
        if let Some(allow) = &mut config.detection.allow_file {
            if allow.is_relative() {
                *allow = base.join(&*allow);
            }
        }
        Ok(config)
    }

    /// Parses and checks a configuration text (errors name the file as `(text)`).
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let syntax = |detail: String| ConfigError::Syntax {
            path: PathBuf::from("(text)"),
            detail,
        };
        let mut table: toml::Table = toml::from_str(text).map_err(|e| syntax(e.to_string()))?;
        let mut service = toml::Table::new();
        for key in SERVICE_KEYS {
            if let Some(value) = table.remove(*key) {
                service.insert((*key).to_owned(), value);
            }
        }
        let service: ServiceConfig = toml::Value::Table(service)
            .try_into()
            .map_err(|e: toml::de::Error| syntax(e.to_string()))?;
        let detection: DetectionConfig = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| syntax(e.to_string()))?;
        let config = Self { service, detection };
        config.check()?;
        Ok(config)
    }

    fn check(&self) -> Result<(), ConfigError> {
        let service = &self.service;
        if service.max_body_bytes < MIN_BODY_BYTES {
            return Err(ConfigError::BodyTooSmall(service.max_body_bytes));
        }
        if service.retention_days == 0 {
            return Err(ConfigError::NoRetention);
        }
        for (spc, endpoint) in &service.trace {
            rest::fetch::Url::parse(&endpoint.url).map_err(|e| ConfigError::TraceUrl {
                spc: spc.clone(),
                url: endpoint.url.clone(),
                detail: e.to_string(),
            })?;
        }
        service.api_clients()?;
        self.detection.validate()?;
        Ok(())
    }

    /// The numbers of `allow_file`, when one is named (read by the detectors' reader).
    pub fn read_allow_file(&self) -> Result<Vec<String>, ConfigError> {
        match &self.detection.allow_file {
            Some(path) => Ok(crate::detect::read_allow_file(path)?),
            None => Ok(Vec::new()),
        }
    }
}

/// Whether `tn` is E.164 digits: 1 to 15 ASCII digits.
pub fn is_tn(tn: &str) -> bool {
    (1..=15).contains(&tn.len()) && tn.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;

    #[test]
    fn defaults_apply_to_an_empty_file() {
        let config = MonitorConfig::parse("").unwrap();
        assert_eq!(config.service.max_body_bytes, DEFAULT_BODY_BYTES);
        assert_eq!(config.service.retention_days, 90);
        assert_eq!(config.service.durability, Durability::Process);
        assert!(config.service.trace.is_empty());
    }

    #[test]
    fn service_and_detection_keys_are_split() {
        let config = MonitorConfig::parse(
            r#"
            home_country = "86"
            durability = "power"
            retention_days = 30
            max_body_bytes = 9000000
            [trace.709J]
            url = "https://signer.example/trace/v1/calls"
            [trace_fetch]
            allow_http_loopback = true
            "#,
        )
        .unwrap();
        assert_eq!(config.detection.home_country.as_deref(), Some("86"));
        assert_eq!(config.service.durability, Durability::Power);
        assert_eq!(config.service.retention_days, 30);
        assert_eq!(config.service.max_body_bytes, 9_000_000);
        assert!(config.service.trace_fetch.allow_http_loopback);
        assert_eq!(
            config.service.trace.get("709J").map(|t| t.url.as_str()),
            Some("https://signer.example/trace/v1/calls")
        );
    }

    #[test]
    fn bad_values_are_refused_by_name() {
        assert!(matches!(
            MonitorConfig::parse("max_body_bytes = 1000"),
            Err(ConfigError::BodyTooSmall(1000))
        ));
        assert!(matches!(
            MonitorConfig::parse("retention_days = 0"),
            Err(ConfigError::NoRetention)
        ));
        assert!(matches!(
            MonitorConfig::parse("durability = \"disk\""),
            Err(ConfigError::Syntax { .. })
        ));
        let error = MonitorConfig::parse("[trace.X1]\nurl = \"ftp://x\"").unwrap_err();
        assert!(error.to_string().contains("trace.X1.url"), "{error}");
        let error = MonitorConfig::parse("[trace_fetch]\ntimeout = 3").unwrap_err();
        assert!(error.to_string().contains("timeout"), "{error}");
    }

    #[test]
    fn db_is_a_postgresql_url_whose_password_is_never_shown() {
        assert!(MonitorConfig::parse("").unwrap().service.db.is_none());
        let config =
            MonitorConfig::parse("db = \"postgres://mon:s3cr3t@db.example/shaken\"").unwrap();
        let url = config.service.db.clone().unwrap();
        assert_eq!(url.secret(), "postgres://mon:s3cr3t@db.example/shaken");
        assert!(!format!("{config:?}").contains("s3cr3t"));
        let error = MonitorConfig::parse("db = \"monitor-s3cr3t.db\"").unwrap_err();
        assert!(matches!(error, ConfigError::Syntax { .. }), "{error}");
        assert!(error.to_string().contains("postgres://"), "{error}");
        assert!(!error.to_string().contains("s3cr3t"), "{error}");
    }

    #[test]
    fn relative_paths_are_relative_to_the_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("allow.txt"), "8613800000001\n").unwrap();
        let path = dir.path().join("monitor.toml");
        std::fs::write(&path, "allow_file = \"allow.txt\"\n").unwrap();
        let config = MonitorConfig::load(&path).unwrap();
        assert_eq!(config.read_allow_file().unwrap(), vec!["8613800000001"]);
        std::fs::write(dir.path().join("allow.txt"), "86-138\n").unwrap();
        let error = config.read_allow_file().unwrap_err();
        assert!(error.to_string().contains("line 1"), "{error}");
        std::fs::write(&path, "allow_flie = \"x\"\n").unwrap();
        let error = MonitorConfig::load(&path).unwrap_err();
        assert!(error.to_string().contains("allow_flie"), "{error}");
    }
}
