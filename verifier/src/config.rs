//! The verifier's TOML configuration (unknown keys refused; `--validate` checks a file).
//! See `verifier/verifier.example.toml` for every key.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use passport::NumberingPlan;
use serde::Deserialize;

use crate::cache::CacheConfig;
use crate::fetch::FetchPolicy;
use crate::verify::Windows;

pub use rest::clients::ClientSection;
pub use rest::tls::TlsSection;

/// A configuration error.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(pub String);

/// The whole configuration.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifierConfig {
    /// Address to listen on (default loopback only).
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// STI-CA roots: a PEM file or a folder of them. Reloaded on SIGHUP.
    pub trust_anchors: PathBuf,
    /// Local CRL files (DER or PEM). Reloaded on SIGHUP.
    #[serde(default)]
    pub crl_files: Vec<PathBuf>,
    /// Refuse (437) certificates whose revocation status cannot be obtained.
    #[serde(default)]
    pub require_revocation: bool,
    /// Freshness window, seconds.
    #[serde(default = "default_max_age")]
    pub max_age_seconds: u64,
    /// Allowance for clocks running ahead, seconds.
    #[serde(default = "default_max_future")]
    pub max_future_seconds: u64,
    /// How far the request's `time` may be from the verifier's clock, seconds.
    #[serde(default = "default_request_time_skew")]
    pub request_time_skew_seconds: u64,
    /// Largest request body, bytes.
    #[serde(default = "default_max_body")]
    pub max_body_bytes: usize,
    /// Numbering plan for national-form numbers (`NANP`, `CN`).
    pub country: Option<String>,
    /// Event feed: `stdout` or a file path; none by default.
    pub events: Option<String>,
    /// Certificate fetching.
    #[serde(default)]
    pub fetch: FetchSection,
    /// The certificate cache.
    #[serde(default)]
    pub cache: CacheSection,
    /// HTTPS and mutual TLS.
    pub tls: Option<TlsSection>,
    /// Allowed clients (none: loopback only).
    #[serde(default)]
    pub clients: Vec<ClientSection>,
    /// The regulator's list of marketing firms and blacklisted numbers (`[lists]`, see
    /// docs/lists.md and docs/marketing.md): the `marketing`, `blacklisted`, `opted-out` and
    /// `rcd-mismatch` flags need it.
    pub lists: Option<lists::ListsConfig>,
    /// The opt-out service (`[optout]`, see docs/optout.md and docs/marketing.md): its delta
    /// feed for the `opted-out` flag, and the key and base URL of the unsubscribe links.
    pub optout: Option<optout::OptOutSection>,
}

/// `[fetch]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FetchSection {
    /// Allow `http://` x5u (lab only).
    pub allow_http: bool,
    /// Allow loopback/private addresses (lab only).
    pub allow_private_addresses: bool,
    /// Allowed ports (empty: any).
    pub allowed_ports: Vec<u16>,
    /// Allowed hosts (empty: any).
    pub allowed_hosts: Vec<String>,
    /// Connect timeout, ms.
    pub connect_timeout_ms: u64,
    /// Total timeout, ms.
    pub total_timeout_ms: u64,
    /// Body cap, bytes.
    pub max_body_bytes: usize,
    /// Extra roots (PEM) for repository TLS, beside the Mozilla roots.
    pub extra_tls_roots: Option<PathBuf>,
}

impl Default for FetchSection {
    fn default() -> Self {
        let policy = FetchPolicy::default();
        Self {
            allow_http: false,
            allow_private_addresses: false,
            allowed_ports: policy.allowed_ports.unwrap_or_default(),
            allowed_hosts: Vec::new(),
            connect_timeout_ms: 2000,
            total_timeout_ms: 2000,
            max_body_bytes: policy.max_body,
            extra_tls_roots: None,
        }
    }
}

/// `[cache]`, in seconds.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheSection {
    /// Shortest lifetime.
    pub min_ttl: u64,
    /// Longest lifetime.
    pub max_ttl: u64,
    /// Lifetime without max-age.
    pub default_ttl: u64,
    /// Stale serving after failed refreshes.
    pub stale_ttl: u64,
    /// Negative cache.
    pub negative_ttl: u64,
    /// Most proven chains.
    pub capacity: usize,
    /// Most chains in probation (validated, no signature verified with them yet).
    pub probation_capacity: usize,
    /// Most remembered failures.
    pub negative_capacity: usize,
    /// x5u URLs fetched at start.
    pub warm_up: Vec<String>,
}

impl Default for CacheSection {
    fn default() -> Self {
        let c = CacheConfig::default();
        Self {
            min_ttl: c.min_ttl,
            max_ttl: c.max_ttl,
            default_ttl: c.default_ttl,
            stale_ttl: c.stale_ttl,
            negative_ttl: c.negative_ttl,
            capacity: c.capacity,
            probation_capacity: c.probation_capacity,
            negative_capacity: c.negative_capacity,
            warm_up: Vec::new(),
        }
    }
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8081))
}
fn default_max_age() -> u64 {
    passport::verify::DEFAULT_MAX_AGE
}
fn default_max_future() -> u64 {
    passport::verify::DEFAULT_MAX_FUTURE
}
fn default_request_time_skew() -> u64 {
    crate::verify::DEFAULT_REQUEST_TIME_SKEW
}
fn default_max_body() -> usize {
    16 * 1024
}

impl VerifierConfig {
    /// Reads and checks a file; relative paths are taken from its folder.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(format!("{}: {e}", path.display())))?;
        let mut config: Self =
            toml::from_str(&text).map_err(|e| ConfigError(format!("{}: {e}", path.display())))?;
        let base = path.parent().unwrap_or(Path::new("."));
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        fix(&mut config.trust_anchors);
        config.crl_files.iter_mut().for_each(fix);
        if let Some(p) = &mut config.fetch.extra_tls_roots {
            fix(p);
        }
        if let Some(tls) = &mut config.tls {
            fix(&mut tls.cert_file);
            fix(&mut tls.key_file);
            if let Some(ca) = &mut tls.client_ca_file {
                fix(ca);
            }
        }
        if let Some(section) = &mut config.optout {
            section.resolve_paths(base);
        }
        if let Some(section) = &mut config.lists {
            section.resolve_paths(base);
        }
        if let Some(events) = &config.events {
            if events != "stdout" && events != "-" && Path::new(events).is_relative() {
                config.events = Some(base.join(events).display().to_string());
            }
        }
        config.check()?;
        Ok(config)
    }

    /// Checks values the types do not.
    pub fn check(&self) -> Result<(), ConfigError> {
        if let Some(country) = &self.country {
            country
                .parse::<NumberingPlan>()
                .map_err(|e| ConfigError(format!("country: {e}")))?;
        }
        if self.fetch.connect_timeout_ms == 0 || self.fetch.total_timeout_ms == 0 {
            return Err(ConfigError("fetch timeouts must be positive".into()));
        }
        if self.cache.min_ttl > self.cache.max_ttl {
            return Err(ConfigError("cache.min_ttl is above cache.max_ttl".into()));
        }
        Ok(())
    }

    /// The numbering plan.
    pub fn plan(&self) -> Option<NumberingPlan> {
        self.country.as_deref().and_then(|c| c.parse().ok())
    }

    /// The fetch policy.
    pub fn fetch_policy(&self) -> FetchPolicy {
        FetchPolicy {
            allow_http: self.fetch.allow_http,
            allow_private_addresses: self.fetch.allow_private_addresses,
            allowed_ports: (!self.fetch.allowed_ports.is_empty())
                .then(|| self.fetch.allowed_ports.clone()),
            allowed_hosts: (!self.fetch.allowed_hosts.is_empty())
                .then(|| self.fetch.allowed_hosts.clone()),
            connect_timeout: Duration::from_millis(self.fetch.connect_timeout_ms),
            total_timeout: Duration::from_millis(self.fetch.total_timeout_ms),
            max_body: self.fetch.max_body_bytes,
        }
    }

    /// The time windows.
    pub fn windows(&self) -> Windows {
        Windows {
            max_age: self.max_age_seconds,
            max_future: self.max_future_seconds,
            request_time_skew: self.request_time_skew_seconds,
        }
    }

    /// The cache settings.
    pub fn cache_config(&self) -> CacheConfig {
        CacheConfig {
            min_ttl: self.cache.min_ttl,
            max_ttl: self.cache.max_ttl,
            default_ttl: self.cache.default_ttl,
            stale_ttl: self.cache.stale_ttl,
            negative_ttl: self.cache.negative_ttl,
            capacity: self.cache.capacity,
            probation_capacity: self.cache.probation_capacity,
            negative_capacity: self.cache.negative_capacity,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_configuration_is_valid() {
        let config = VerifierConfig::load(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("verifier.example.toml"),
        )
        .unwrap();
        assert_eq!(config.fetch_policy().allowed_ports, Some(vec![443, 8443]));
        assert!(!config.fetch_policy().allow_http);
        assert!(config.trust_anchors.is_absolute());
        let lists = config.lists.as_ref().unwrap();
        assert!(lists.regulator_cert.is_absolute());
        assert!(Path::new(&lists.source).is_absolute(), "{}", lists.source);
        assert!(toml::from_str::<VerifierConfig>("trust_anchors = \"r\"\ncolour = 1\n").is_err());
        assert!(
            toml::from_str::<VerifierConfig>("trust_anchors = \"r\"\n[fetch]\ncolour = 1\n")
                .is_err()
        );
    }
}
