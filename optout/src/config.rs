//! The opt-out service's TOML configuration (`shaken optout serve --config FILE`). Unknown keys
//! are refused and every error names its key; relative paths are relative to the file's folder.
//! `optout/optout.example.toml` shows every key.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::ConfigError;
use crate::store::StoreLocation;
use crate::token::LinkKey;

/// The shortest feed token accepted.
pub const MIN_FEED_TOKEN_LEN: usize = 16;
/// The largest `max_body_bytes` accepted.
pub const MAX_BODY_LIMIT: usize = 64 * 1024;

/// The whole configuration.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptOutConfig {
    /// Address to listen on (default `127.0.0.1:8090`).
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Where the store lives: an SQLite file (created if missing), or a PostgreSQL database
    /// given as a `postgres://` URL (see `docs/postgresql.md`).
    pub db: StoreLocation,
    /// The key that MACs link tokens, shared with the verifiers that mint links (hex, base64
    /// or raw; at least 32 bytes).
    pub link_key_file: PathBuf,
    /// A file of feed bearer tokens, one a line (blank lines and `#` comments ignored).
    pub feed_tokens_file: Option<PathBuf>,
    /// Feed bearer tokens given inline (with or instead of `feed_tokens_file`).
    #[serde(default)]
    pub feed_tokens: Vec<String>,
    /// Largest request body accepted, in bytes (the form is a few bytes).
    #[serde(default = "default_max_body")]
    pub max_body_bytes: usize,
    /// Requests per second each client (IPv4 address or IPv6 /64) may make, on average;
    /// 0: unlimited. `/healthz` and `/metrics` are not counted.
    #[serde(default = "default_rate")]
    pub rate_per_second: f64,
    /// Requests a client may make at once before the rate applies.
    #[serde(default = "default_burst")]
    pub burst: u32,
    /// The base URL links point at (what verifiers configure as `link_base_url`); logged at
    /// start.
    pub public_base_url: Option<String>,
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8090))
}
fn default_max_body() -> usize {
    4096
}
fn default_rate() -> f64 {
    2.0
}
fn default_burst() -> u32 {
    20
}

fn invalid(key: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        reason: reason.into(),
    }
}

/// A configuration with its key and feed tokens read: what the service needs to start.
#[derive(Debug)]
pub struct Loaded {
    /// The configuration.
    pub config: OptOutConfig,
    /// The link key.
    pub key: LinkKey,
    /// The feed tokens (from the file and inline).
    pub feed_tokens: Vec<zeroize::Zeroizing<String>>,
}

impl OptOutConfig {
    /// Parses `text` (named `path` in errors); relative paths become relative to `base`.
    pub fn parse(text: &str, path: &Path, base: &Path) -> Result<Self, ConfigError> {
        let mut config: Self = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            detail: e.to_string().trim_end().to_owned(),
        })?;
        config.db = config.db.resolved_from(base);
        for p in [&mut config.link_key_file]
            .into_iter()
            .chain(config.feed_tokens_file.as_mut())
        {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        config.check()?;
        Ok(config)
    }

    /// Reads and checks the file at `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            path: path.to_owned(),
            detail: e.to_string(),
        })?;
        Self::parse(&text, path, path.parent().unwrap_or(Path::new(".")))
    }

    fn check(&self) -> Result<(), ConfigError> {
        if self.max_body_bytes == 0 || self.max_body_bytes > MAX_BODY_LIMIT {
            return Err(invalid(
                "max_body_bytes",
                format!(
                    "{} is not between 1 and {MAX_BODY_LIMIT}",
                    self.max_body_bytes
                ),
            ));
        }
        if !self.rate_per_second.is_finite() || self.rate_per_second < 0.0 {
            return Err(invalid("rate_per_second", "must be 0 (unlimited) or more"));
        }
        if self.burst == 0 {
            return Err(invalid("burst", "must be at least 1"));
        }
        if let Some(url) = &self.public_base_url {
            rest::fetch::Url::parse(url).map_err(|e| invalid("public_base_url", e.to_string()))?;
        }
        Ok(())
    }

    /// Reads the link key and the feed tokens. A feed token must be at least 16 printable
    /// ASCII characters without spaces, and at least one must be configured.
    pub fn read_secrets(self) -> Result<Loaded, ConfigError> {
        let key = LinkKey::from_file(&self.link_key_file)
            .map_err(|e| invalid("link_key_file", e.to_string()))?;
        let mut tokens: Vec<zeroize::Zeroizing<String>> = Vec::new();
        if let Some(file) = &self.feed_tokens_file {
            let text = zeroize::Zeroizing::new(std::fs::read_to_string(file).map_err(|e| {
                invalid(
                    "feed_tokens_file",
                    format!("cannot read {}: {e}", file.display()),
                )
            })?);
            for line in text.lines().map(str::trim) {
                if !line.is_empty() && !line.starts_with('#') {
                    tokens.push(zeroize::Zeroizing::new(line.to_owned()));
                }
            }
            check_tokens(&tokens, "feed_tokens_file")?;
        }
        let inline: Vec<_> = self
            .feed_tokens
            .iter()
            .map(|t| zeroize::Zeroizing::new(t.clone()))
            .collect();
        check_tokens(&inline, "feed_tokens")?;
        tokens.extend(inline);
        if tokens.is_empty() {
            return Err(invalid(
                "feed_tokens",
                "no feed token configured (feed_tokens or feed_tokens_file)",
            ));
        }
        Ok(Loaded {
            config: self,
            key,
            feed_tokens: tokens,
        })
    }
}

fn check_tokens(
    tokens: &[zeroize::Zeroizing<String>],
    key: &'static str,
) -> Result<(), ConfigError> {
    for (index, token) in tokens.iter().enumerate() {
        if token.len() < MIN_FEED_TOKEN_LEN || !token.bytes().all(|b| b.is_ascii_graphic()) {
            // The token itself is a secret: name its position only.
            return Err(invalid(
                key,
                format!(
                    "token {} is not {MIN_FEED_TOKEN_LEN} or more printable characters without spaces",
                    index + 1
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<OptOutConfig, ConfigError> {
        OptOutConfig::parse(text, Path::new("optout.toml"), Path::new("/etc/shaken"))
    }

    #[test]
    fn defaults_paths_and_errors_naming_their_key() {
        let config = parse("db = \"optout.db\"\nlink_key_file = \"/k\"\n").unwrap();
        assert_eq!(
            config.db,
            StoreLocation::File("/etc/shaken/optout.db".into())
        );
        let config =
            parse("db = \"postgres://o:pw@db.example/optout\"\nlink_key_file = \"/k\"\n").unwrap();
        assert_eq!(config.db.to_string(), "postgres://o@db.example:5432/optout");
        assert_eq!(config.link_key_file, Path::new("/k"));
        assert_eq!(config.max_body_bytes, 4096);
        assert_eq!(config.listen, default_listen());
        for (text, key) in [
            (
                "db = \"a\"\nlink_key_file = \"k\"\nmax_body_bytes = 0\n",
                "max_body_bytes",
            ),
            ("db = \"a\"\nlink_key_file = \"k\"\nburst = 0\n", "burst"),
            (
                "db = \"a\"\nlink_key_file = \"k\"\nrate_per_second = -1.0\n",
                "rate_per_second",
            ),
            (
                "db = \"a\"\nlink_key_file = \"k\"\npublic_base_url = \"ftp://x\"\n",
                "public_base_url",
            ),
            (
                "db = \"a\"\nlink_key_file = \"k\"\nlisten_on = \"x\"\n",
                "listen_on",
            ),
            ("db = \"a\"\n", "link_key_file"),
        ] {
            let error = parse(text).unwrap_err().to_string();
            assert!(error.contains(key), "{text}: {error}");
        }
    }

    #[test]
    fn the_example_configuration_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("optout.example.toml");
        let config = OptOutConfig::load(&path).unwrap();
        assert_eq!(config.burst, 20);
        assert_eq!(
            config.db,
            StoreLocation::File(Path::new(env!("CARGO_MANIFEST_DIR")).join("optout.db"))
        );
        assert_eq!(
            config.public_base_url.as_deref(),
            Some("https://optout.example.net")
        );
    }

    #[test]
    fn secrets_are_read_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("link.key"), "ab".repeat(32)).unwrap();
        std::fs::write(
            dir.path().join("tokens"),
            "# carriers\ncarrier-one-0123456789\n\n",
        )
        .unwrap();
        let text = "db = \"o.db\"\nlink_key_file = \"link.key\"\nfeed_tokens_file = \"tokens\"\nfeed_tokens = [\"carrier-two-0123456789\"]\n";
        let loaded = OptOutConfig::parse(text, Path::new("x"), dir.path())
            .unwrap()
            .read_secrets()
            .unwrap();
        assert_eq!(loaded.feed_tokens.len(), 2);
        let short = "db = \"o.db\"\nlink_key_file = \"link.key\"\nfeed_tokens = [\"short\"]\n";
        let error = OptOutConfig::parse(short, Path::new("x"), dir.path())
            .unwrap()
            .read_secrets()
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("feed_tokens") && !error.contains("short"),
            "{error}"
        );
        let none = "db = \"o.db\"\nlink_key_file = \"link.key\"\n";
        assert!(OptOutConfig::parse(none, Path::new("x"), dir.path())
            .unwrap()
            .read_secrets()
            .unwrap_err()
            .to_string()
            .contains("feed_tokens"));
        let bad_key = "db = \"o.db\"\nlink_key_file = \"missing.key\"\nfeed_tokens = [\"carrier-two-0123456789\"]\n";
        assert!(OptOutConfig::parse(bad_key, Path::new("x"), dir.path())
            .unwrap()
            .read_secrets()
            .unwrap_err()
            .to_string()
            .contains("link_key_file"));
    }
}
