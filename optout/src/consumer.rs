//! A signer's or verifier's `[optout]` section: where the opt-out service's delta feed is, and,
//! for a verifier, how to mint unsubscribe links. [`start_mirror`] builds the local copy every
//! decision reads and starts its poller; [`link_issuer`] reads the link key.
//!
//! ```toml
//! [optout]
//! feed_url = "https://optout.example/v1/optouts"
//! feed_token_file = "optout-feed.token"   # the bearer token, one line
//! poll_interval_ms = 2000                 # default 2000
//! # verifier only: the links given to called subscribers
//! link_base_url = "https://optout.example"
//! link_key_file = "optout-link.key"       # the key the opt-out service trusts
//! link_ttl_seconds = 604800               # default 7 days
//! ```
//!
//! The feed is fetched with [`rest::fetch`] under the consumer's policy: HTTPS only and no
//! internal addresses, unless `allow_insecure_loopback` (the lab, tests) lets plain HTTP to
//! loopback through.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rest::fetch::{FetchPolicy, Fetcher};
use serde::Deserialize;

use crate::error::KeyError;
use crate::mirror::{spawn_poller, OptOutMirror};
use crate::token::{LinkIssuer, LinkKey};
use crate::Clock;

/// The default interval between two polls of the feed.
pub const DEFAULT_POLL_INTERVAL_MS: u64 = 2000;
/// The default lifetime of an unsubscribe link: 7 days.
pub const DEFAULT_LINK_TTL_SECONDS: u64 = 7 * 24 * 3600;

/// The `[optout]` section.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct OptOutSection {
    /// The feed's URL (`GET` with `?after=CURSOR`).
    pub feed_url: String,
    /// A file holding the feed's bearer token (one line).
    pub feed_token_file: PathBuf,
    /// Milliseconds between two polls (at least 100).
    #[serde(default = "default_poll")]
    pub poll_interval_ms: u64,
    /// Allow plain HTTP and loopback addresses for the feed (the lab, tests).
    #[serde(default)]
    pub allow_insecure_loopback: bool,
    /// Verifier only: the opt-out service's public base URL, which links point at.
    pub link_base_url: Option<String>,
    /// Verifier only: the key the opt-out service checks links with.
    pub link_key_file: Option<PathBuf>,
    /// Verifier only: seconds a link stays valid.
    #[serde(default = "default_ttl")]
    pub link_ttl_seconds: u64,
}

fn default_poll() -> u64 {
    DEFAULT_POLL_INTERVAL_MS
}

fn default_ttl() -> u64 {
    DEFAULT_LINK_TTL_SECONDS
}

/// Why an `[optout]` section cannot be used; each message names its key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConsumerError {
    /// `feed_token_file` cannot be read or is empty.
    #[error("optout.feed_token_file: {path}: {detail}")]
    FeedToken {
        /// The file.
        path: PathBuf,
        /// Why.
        detail: String,
    },
    /// `feed_url` is not a usable URL.
    #[error("optout.feed_url: {0}")]
    FeedUrl(rest::fetch::FetchError),
    /// `poll_interval_ms` is below 100.
    #[error("optout.poll_interval_ms: {0} is below 100")]
    PollInterval(u64),
    /// `link_key_file` cannot be used.
    #[error("optout.link_key_file: {0}")]
    LinkKey(KeyError),
    /// One of `link_base_url` and `link_key_file` without the other.
    #[error("optout.link_base_url and optout.link_key_file go together")]
    LinkHalf,
    /// `link_base_url` is not an http(s) URL.
    #[error("optout.link_base_url: {0:?} is not an http(s) URL")]
    LinkBase(String),
    /// The fetcher cannot be built (TLS roots).
    #[error("optout: {0}")]
    Fetcher(rest::fetch::FetchError),
}

impl OptOutSection {
    /// Makes relative paths relative to `base` (the configuration file's folder).
    pub fn resolve_paths(&mut self, base: &std::path::Path) {
        for path in [Some(&mut self.feed_token_file), self.link_key_file.as_mut()]
            .into_iter()
            .flatten()
        {
            if path.is_relative() {
                *path = base.join(&*path);
            }
        }
    }

    /// The fetch policy for the feed: `base` (the consumer's x5u policy), opened to plain HTTP
    /// and loopback when `allow_insecure_loopback`.
    pub fn fetch_policy(&self, base: &FetchPolicy) -> FetchPolicy {
        if self.allow_insecure_loopback {
            FetchPolicy {
                allow_http: true,
                allow_private_addresses: true,
                allowed_ports: None,
                ..base.clone()
            }
        } else {
            base.clone()
        }
    }

    fn feed_token(&self) -> Result<String, ConsumerError> {
        let bad = |detail: String| ConsumerError::FeedToken {
            path: self.feed_token_file.clone(),
            detail,
        };
        let text =
            std::fs::read_to_string(&self.feed_token_file).map_err(|e| bad(e.to_string()))?;
        let token = text.trim();
        if token.is_empty() || token.len() > 1024 || token.chars().any(char::is_whitespace) {
            return Err(bad(
                "not one token of 1 to 1024 characters on one line".into()
            ));
        }
        Ok(token.to_owned())
    }

    /// Checks the section without starting anything (what `--validate` does).
    pub fn check(&self) -> Result<(), ConsumerError> {
        rest::fetch::Url::parse(&self.feed_url).map_err(ConsumerError::FeedUrl)?;
        if self.poll_interval_ms < 100 {
            return Err(ConsumerError::PollInterval(self.poll_interval_ms));
        }
        self.feed_token()?;
        self.link_issuer().map(|_| ())
    }

    /// The link issuer, when `link_base_url` and `link_key_file` are set.
    pub fn link_issuer(&self) -> Result<Option<LinkIssuer>, ConsumerError> {
        match (&self.link_base_url, &self.link_key_file) {
            (None, None) => Ok(None),
            (Some(base), Some(key_file)) => {
                if !base.starts_with("https://") && !base.starts_with("http://") {
                    return Err(ConsumerError::LinkBase(base.clone()));
                }
                let key = LinkKey::from_file(key_file).map_err(ConsumerError::LinkKey)?;
                Ok(Some(LinkIssuer::new(base, key, self.link_ttl_seconds)))
            }
            _ => Err(ConsumerError::LinkHalf),
        }
    }

    /// Builds the mirror and starts its poller on the current tokio runtime. The first poll
    /// happens at once; decisions never wait for it.
    pub fn start_mirror(
        &self,
        base: &FetchPolicy,
        tls_roots: &[Vec<u8>],
        clock: Clock,
    ) -> Result<Arc<OptOutMirror>, ConsumerError> {
        self.check()?;
        let token = self.feed_token()?;
        let fetcher =
            Fetcher::new(self.fetch_policy(base), tls_roots).map_err(ConsumerError::Fetcher)?;
        let mirror = Arc::new(OptOutMirror::new());
        spawn_poller(
            Arc::clone(&mirror),
            self.feed_url.clone(),
            token,
            fetcher,
            Duration::from_millis(self.poll_interval_ms),
            clock,
        );
        Ok(mirror)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(dir: &std::path::Path) -> OptOutSection {
        let text = format!(
            "feed_url = \"http://127.0.0.1:9/v1/optouts\"\nfeed_token_file = \"{}\"\n",
            dir.join("feed.token").display()
        );
        toml::from_str(&text).unwrap()
    }

    #[test]
    fn errors_name_their_key() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = section(dir.path());
        assert_eq!(config.poll_interval_ms, DEFAULT_POLL_INTERVAL_MS);
        let error = config.check().unwrap_err().to_string();
        assert!(error.starts_with("optout.feed_token_file:"), "{error}");
        std::fs::write(dir.path().join("feed.token"), "secret-token\n").unwrap();
        config.check().unwrap();
        assert!(config.link_issuer().unwrap().is_none());
        config.link_base_url = Some("http://127.0.0.1:9".into());
        assert!(matches!(config.check(), Err(ConsumerError::LinkHalf)));
        config.link_key_file = Some(dir.path().join("link.key"));
        let error = config.check().unwrap_err().to_string();
        assert!(error.starts_with("optout.link_key_file:"), "{error}");
        std::fs::write(dir.path().join("link.key"), [7u8; 32]).unwrap();
        let issuer = config.link_issuer().unwrap().unwrap();
        let link = issuer.link("8613800138000", "F1", "Firm One", 100).unwrap();
        assert!(link.starts_with("http://127.0.0.1:9/u/"), "{link}");
        config.poll_interval_ms = 10;
        assert!(matches!(
            config.check(),
            Err(ConsumerError::PollInterval(10))
        ));
        // Plain HTTP to loopback only when the section says so.
        assert!(!config.fetch_policy(&FetchPolicy::default()).allow_http);
        config.allow_insecure_loopback = true;
        assert!(config.fetch_policy(&FetchPolicy::default()).allow_http);
    }
}
