//! Traceback's last hop: asking the signing carrier's trace endpoint (`[trace.SPC] url`, the
//! signer's `GET /trace/v1/calls?origid=ID`) for its record of a call, through `rest::fetch`
//! (the one bounded client: timeouts, body cap, no redirects, address checks).
//!
//! The signer's answer is what `shaken trace lookup --origid` prints; it is embedded as
//! opaque JSON. A failing fetch is an error value for the answer, never a failed request.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rest::fetch::{FetchError, FetchPolicy, Fetcher, Url};

use crate::config::{ServiceConfig, TraceEndpoint};

/// Why the signer's record could not be had.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TraceError {
    /// The fetch failed (policy, connection, timeout, status, size).
    #[error("{0}")]
    Fetch(#[from] FetchError),
    /// A plain-HTTP endpoint that is not on loopback.
    #[error("plain HTTP to {0} refused: only loopback hosts may be reached over http (allow_http_loopback)")]
    HttpNotLoopback(String),
    /// The answer is not JSON.
    #[error("the signer's answer is not JSON: {0}")]
    NotJson(String),
}

/// The signer's record of a call and how long the fetch took.
#[derive(Clone, Debug)]
pub struct SignerRecord {
    /// Where it was asked.
    pub url: String,
    /// The record, or why there is none.
    pub result: Result<serde_json::Value, String>,
    /// Milliseconds the fetch took.
    pub elapsed_ms: u64,
}

/// The trace endpoints by SPC and the client that asks them.
#[derive(Debug)]
pub struct Tracer {
    fetcher: Fetcher,
    endpoints: BTreeMap<String, TraceEndpoint>,
    allow_http_loopback: bool,
}

/// `text` percent-encoded for a query value (unreserved characters kept).
pub fn encode_query_value(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn is_loopback_host(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

impl Tracer {
    /// From the service's `[trace.SPC]` and `[trace_fetch]` settings.
    pub fn new(config: &ServiceConfig) -> Result<Self, TraceError> {
        let fetch = &config.trace_fetch;
        let timeout = Duration::from_millis(fetch.timeout_ms.max(1));
        let policy = FetchPolicy {
            allow_http: fetch.allow_http_loopback,
            allow_private_addresses: fetch.allow_http_loopback || fetch.allow_private_addresses,
            // The operator configures these URLs: any port.
            allowed_ports: None,
            allowed_hosts: None,
            connect_timeout: timeout,
            total_timeout: timeout,
            max_body: fetch.max_body_bytes,
        };
        Ok(Self {
            fetcher: Fetcher::new(policy, &[])?,
            endpoints: config.trace.clone(),
            allow_http_loopback: fetch.allow_http_loopback,
        })
    }

    /// Whether a trace endpoint is configured for `spc`.
    pub fn knows(&self, spc: &str) -> bool {
        self.endpoints.contains_key(spc)
    }

    /// Asks `spc`'s trace endpoint for the call `origid`; `None` when no endpoint is
    /// configured for it.
    pub async fn signer_record(&self, spc: &str, origid: &str) -> Option<SignerRecord> {
        let endpoint = self.endpoints.get(spc)?;
        let separator = if endpoint.url.contains('?') { '&' } else { '?' };
        let url = format!(
            "{}{separator}origid={}",
            endpoint.url,
            encode_query_value(origid)
        );
        let started = Instant::now();
        let result = self.fetch(&url).await.map_err(|e| e.to_string());
        Some(SignerRecord {
            url,
            result,
            elapsed_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        })
    }

    async fn fetch(&self, url: &str) -> Result<serde_json::Value, TraceError> {
        let parsed = Url::parse(url)?;
        if parsed.scheme == "http" && !is_loopback_host(&parsed.host) {
            return Err(TraceError::HttpNotLoopback(parsed.host));
        }
        if parsed.scheme == "http" && !self.allow_http_loopback {
            return Err(FetchError::Scheme(parsed.scheme).into());
        }
        let fetched = self
            .fetcher
            .fetch_with(url, "application/json", None)
            .await?;
        serde_json::from_slice(&fetched.body).map_err(|e| TraceError::NotJson(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(encode_query_value("ab-9_.~"), "ab-9_.~");
        assert_eq!(encode_query_value("a b&c=d/é"), "a%20b%26c%3Dd%2F%C3%A9");
    }

    #[tokio::test]
    async fn plain_http_goes_to_loopback_only_and_failures_are_values() {
        let config = crate::config::MonitorConfig::parse(
            "[trace.709J]\nurl = \"http://127.0.0.1:9/trace/v1/calls\"\n[trace.X2]\nurl = \"http://192.0.2.1/t\"\n[trace_fetch]\nallow_http_loopback = true\ntimeout_ms = 500\n",
        )
        .unwrap();
        let tracer = Tracer::new(&config.service).unwrap();
        assert!(tracer.signer_record("NONE", "o1").await.is_none());
        let record = tracer.signer_record("709J", "o 1").await.unwrap();
        assert_eq!(record.url, "http://127.0.0.1:9/trace/v1/calls?origid=o%201");
        assert!(record.result.is_err(), "nothing listens on port 9");
        let record = tracer.signer_record("X2", "o1").await.unwrap();
        assert!(record.result.unwrap_err().contains("only loopback"));
        let strict =
            crate::config::MonitorConfig::parse("[trace.709J]\nurl = \"http://127.0.0.1:9/t\"\n")
                .unwrap();
        let record = Tracer::new(&strict.service)
            .unwrap()
            .signer_record("709J", "o1")
            .await
            .unwrap();
        assert!(record.result.unwrap_err().contains("scheme"));
    }
}
