//! The verifier's TOML configuration (unknown keys refused; `--validate` checks a file).
//! See `verifier/verifier.example.toml` for every key.

use std::collections::BTreeMap;
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
    /// The event feed (`[events]`, or the older string form `events = "PATH|stdout"`): a
    /// file or stdout, and/or batches pushed to the monitor; none by default.
    #[serde(default, deserialize_with = "events_string_or_table")]
    pub events: Option<EventsSection>,
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
    /// The SIP redirect interface (`[sip]`, see docs/sip.md "Verifier"): none by default.
    pub sip: Option<SipSection>,
}

/// `[sip]`: the SIP listener (the keys of [`sip::config::ListenerConfig`], flattened) and what
/// the verifier's answers carry. Unknown keys are refused by [`SipSection::check`] (serde's
/// `deny_unknown_fields` does not work with `flatten`).
#[derive(Clone, Debug, Deserialize)]
pub struct SipSection {
    /// Where to listen and the caps.
    #[serde(flatten)]
    pub listener: sip::config::ListenerConfig,
    /// Where `verstat` goes in a `sip:` URI: `"user-part"` (3GPP TS 24.229, the default) or
    /// `"uri-parameter"`.
    #[serde(default)]
    pub verstat: sip::uri::VerstatPlacement,
    /// An `Attestation-Info: A|B|C` header on a passed verdict with an attestation.
    #[serde(default)]
    pub attestation_info: bool,
    /// The name of a header carrying the flags, the SPC and the reason code
    /// (`flags=spoofed,gateway;spc=709J;reason=438`, see [`crate::sip::verdict_header_value`]);
    /// none by default.
    pub verdict_header: Option<String>,
    /// The vetted name of a white-listed marketing call as the display name of the labelled
    /// P-Asserted-Identity (or From).
    #[serde(default)]
    pub display_name: bool,
    /// `[sip.block]`: flag wire name to answer (`608`, `607`, `403` or `"label"`, the default
    /// for every flag).
    #[serde(default)]
    pub block: BTreeMap<String, BlockAnswer>,
    /// `[sip.ingress]`: the event line's `ingress` from the SBC's address or a trunk parameter.
    #[serde(default)]
    pub ingress: IngressSection,
    /// The keys nobody took (refused).
    #[serde(flatten)]
    unknown: BTreeMap<String, serde::de::IgnoredAny>,
}

impl SipSection {
    /// Checks every value: the listener's, the verdict header's name, each blocked flag, each
    /// ingress network and name, the trunk parameter; refuses unknown keys.
    pub fn check(&self) -> Result<(), ConfigError> {
        sip::config::refuse_unknown(&self.unknown).map_err(|e| ConfigError(e.to_string()))?;
        self.listener
            .validate()
            .map_err(|e| ConfigError(e.to_string()))?;
        crate::sip::SipOptions::from_section(self).map(|_| ())
    }
}

/// What the verifier answers a call raising a flag (`[sip.block]`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BlockAnswer {
    /// `"label"`: a `302` with the verstat, like any other call (the default).
    #[default]
    Label,
    /// `403`: `403 Forbidden`.
    Forbidden,
    /// `607`: `607 Unwanted` (RFC 8197).
    Unwanted,
    /// `608`: `608 Rejected` (RFC 8688).
    Rejected,
}

impl BlockAnswer {
    /// The SIP status and reason phrase of a blocking answer; `None` for `label`.
    pub fn status(self) -> Option<(u16, &'static str)> {
        match self {
            Self::Label => None,
            Self::Forbidden => Some((403, "Forbidden")),
            Self::Unwanted => Some((607, "Unwanted")),
            Self::Rejected => Some((608, "Rejected")),
        }
    }
}

impl<'de> Deserialize<'de> for BlockAnswer {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = BlockAnswer;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("608, 607, 403 or \"label\"")
            }
            fn visit_i64<E: serde::de::Error>(self, value: i64) -> Result<BlockAnswer, E> {
                match value {
                    403 => Ok(BlockAnswer::Forbidden),
                    607 => Ok(BlockAnswer::Unwanted),
                    608 => Ok(BlockAnswer::Rejected),
                    _ => Err(E::invalid_value(
                        serde::de::Unexpected::Signed(value),
                        &self,
                    )),
                }
            }
            fn visit_u64<E: serde::de::Error>(self, value: u64) -> Result<BlockAnswer, E> {
                match i64::try_from(value) {
                    Ok(value) => self.visit_i64(value),
                    Err(_) => Err(E::invalid_value(
                        serde::de::Unexpected::Unsigned(value),
                        &self,
                    )),
                }
            }
            fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<BlockAnswer, E> {
                match value {
                    "label" => Ok(BlockAnswer::Label),
                    _ => Err(E::invalid_value(serde::de::Unexpected::Str(value), &self)),
                }
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// `[sip.ingress]`: where a SIP call entered the terminating network, for the event line.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngressSection {
    /// The SBC's network (`"10.1.0.0/16"`) to an ingress name (`"interconnect"`); the most
    /// specific network holding the source address wins.
    #[serde(default)]
    pub addresses: BTreeMap<String, String>,
    /// A parameter of the Request-URI naming the trunk group (e.g. `tgrp`, which RFC 4904
    /// defines with `trunk-context` as telephone-number parameters): when the INVITE carries
    /// it with a valid ingress name, its value is the ingress (before the address mapping); an
    /// invalid value is ignored.
    pub trunk_param: Option<String>,
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

/// `[events]`: where each verification's event line goes. `file` and `push` may both be set;
/// with neither, no feed. The older form `events = "PATH|stdout"` is `file` alone.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct EventsSection {
    /// `stdout` or a file path (relative to the configuration's folder), appended to.
    pub file: Option<String>,
    /// The monitor's `POST /v1/events` URL: `https://`, or `http://` to a loopback address
    /// when `allow_insecure_loopback`.
    pub push: Option<String>,
    /// Most lines in one pushed batch.
    pub batch_lines: usize,
    /// Most bytes in one pushed batch (a batch closes before a line would take it beyond).
    pub batch_bytes: usize,
    /// Longest time a line waits for its batch to fill, milliseconds.
    pub batch_interval_ms: u64,
    /// Connect and total timeout of one push, milliseconds.
    pub timeout_ms: u64,
    /// Where batches wait while the monitor is away (relative to the configuration's folder;
    /// default `events-spool` beside it). Created 0700, one process at a time.
    pub spool_dir: Option<PathBuf>,
    /// Most bytes the spool holds; a batch that would go beyond is lost and counted.
    pub spool_max_bytes: u64,
    /// First wait after a failed push, milliseconds; doubled after each failure.
    pub backoff_min_ms: u64,
    /// Longest wait between two attempts, milliseconds.
    pub backoff_max_ms: u64,
    /// Lines waiting for the pusher in memory; beyond it a line is lost and counted.
    pub queue_lines: usize,
    /// Allow `http://` to a loopback address (the lab, tests), like `[optout]`'s switch.
    pub allow_insecure_loopback: bool,
    /// The Kafka bootstrap brokers, `HOST:PORT[,HOST:PORT...]`: each line is also published
    /// to `kafka_topic`, keyed by the calling number.
    pub kafka: Option<String>,
    /// The topic the lines are published to.
    pub kafka_topic: String,
    /// Lines waiting in the Kafka producer's queue (sent or not yet acknowledged); beyond it a
    /// line is not queued and is counted undelivered.
    pub kafka_queue_lines: usize,
    /// Longest time a queued line waits for the brokers' acknowledgement before it is given up
    /// and counted undelivered, milliseconds.
    pub kafka_message_timeout_ms: u64,
    /// Longest wait at stop for the queued lines to be acknowledged, milliseconds.
    pub kafka_flush_ms: u64,
}

impl Default for EventsSection {
    fn default() -> Self {
        Self {
            file: None,
            push: None,
            batch_lines: 1000,
            batch_bytes: 1 << 20,
            batch_interval_ms: 200,
            timeout_ms: 2000,
            spool_dir: None,
            spool_max_bytes: 256 << 20,
            backoff_min_ms: 500,
            backoff_max_ms: 30_000,
            queue_lines: 65_536,
            allow_insecure_loopback: false,
            kafka: None,
            kafka_topic: crate::events::kafka::DEFAULT_TOPIC.to_owned(),
            kafka_queue_lines: 1_000_000,
            kafka_message_timeout_ms: 300_000,
            kafka_flush_ms: 5_000,
        }
    }
}

/// The spool folder's name beside the configuration file when `spool_dir` is not set.
pub const DEFAULT_SPOOL_DIR: &str = "events-spool";

impl EventsSection {
    /// Checks the push URL against the policy (https, or http to loopback with the switch),
    /// and that every size and time is positive and ordered.
    pub fn check(&self) -> Result<(), ConfigError> {
        let bad = |what: &str| Err(ConfigError(format!("events.{what}")));
        if let Some(push) = &self.push {
            let url = rest::fetch::Url::parse(push)
                .map_err(|e| ConfigError(format!("events.push: {e}")))?;
            if url.scheme == "http" {
                if !self.allow_insecure_loopback {
                    return bad("push: http:// needs allow_insecure_loopback = true (lab only); use https://");
                }
                let loopback = url.host == "localhost"
                    || url
                        .host
                        .parse::<std::net::IpAddr>()
                        .is_ok_and(|ip| ip.is_loopback());
                if !loopback {
                    return bad("push: http:// is allowed to a loopback address only");
                }
            }
        }
        if self.batch_lines == 0 || self.batch_bytes == 0 {
            return bad("batch_lines and batch_bytes must be positive");
        }
        if self.batch_interval_ms == 0 || self.timeout_ms == 0 || self.backoff_min_ms == 0 {
            return bad("batch_interval_ms, timeout_ms and backoff_min_ms must be positive");
        }
        if self.backoff_min_ms > self.backoff_max_ms {
            return bad("backoff_min_ms is above backoff_max_ms");
        }
        if self.queue_lines == 0 {
            return bad("queue_lines must be positive");
        }
        if let Some(brokers) = &self.kafka {
            check_brokers(brokers).map_err(|e| ConfigError(format!("events.kafka: {e}")))?;
        }
        check_topic(&self.kafka_topic)
            .map_err(|e| ConfigError(format!("events.kafka_topic: {e}")))?;
        // librdkafka's ranges: at most 2^31 - 1 of each.
        if self.kafka_queue_lines == 0 || self.kafka_queue_lines > KAFKA_MAX {
            return bad("kafka_queue_lines must be between 1 and 2147483647");
        }
        let linger = crate::events::kafka::LINGER_MS;
        if self.kafka_message_timeout_ms <= linger
            || self.kafka_message_timeout_ms > KAFKA_MAX as u64
        {
            return bad("kafka_message_timeout_ms must be between 6 and 2147483647");
        }
        Ok(())
    }
}

/// The largest count or time librdkafka takes for a queue length or a timeout.
const KAFKA_MAX: usize = i32::MAX as usize;

/// Checks `HOST:PORT[,HOST:PORT...]`: each item a host (a name, an IPv4 address or a bracketed
/// IPv6 address) and a port from 1 to 65535.
fn check_brokers(brokers: &str) -> Result<(), String> {
    for item in brokers.split(',') {
        let item = item.trim();
        let (host, port) = item
            .rsplit_once(':')
            .ok_or_else(|| format!("`{item}` is not HOST:PORT"))?;
        if host.is_empty() || host.contains(char::is_whitespace) {
            return Err(format!("`{item}` has no host"));
        }
        if host.starts_with('[') != host.ends_with(']') {
            return Err(format!(
                "`{item}`: an IPv6 address is written [ADDRESS]:PORT"
            ));
        }
        match port.parse::<u16>() {
            Ok(p) if p > 0 => {}
            _ => return Err(format!("`{item}` has no port from 1 to 65535")),
        }
    }
    Ok(())
}

/// Checks a Kafka topic name: 1 to 249 characters of `[A-Za-z0-9._-]`, not `.` or `..`.
fn check_topic(topic: &str) -> Result<(), String> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if topic.is_empty() || topic.len() > 249 || topic == "." || topic == ".." {
        return Err("a topic name has 1 to 249 characters and is not `.` or `..`".into());
    }
    if !topic.chars().all(allowed) {
        return Err(format!(
            "`{topic}`: a topic name has only letters, digits, `.`, `_` and `-`"
        ));
    }
    Ok(())
}

/// `events` as a string (`"PATH|stdout"`, the older form: the file alone) or as a table.
fn events_string_or_table<'de, D>(deserializer: D) -> Result<Option<EventsSection>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    struct Visitor;
    impl<'de> serde::de::Visitor<'de> for Visitor {
        type Value = Option<EventsSection>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a file path, \"stdout\", or an [events] table")
        }
        fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<Self::Value, E> {
            Ok(Some(EventsSection {
                file: Some(value.to_owned()),
                ..EventsSection::default()
            }))
        }
        fn visit_map<M: serde::de::MapAccess<'de>>(self, map: M) -> Result<Self::Value, M::Error> {
            EventsSection::deserialize(serde::de::value::MapAccessDeserializer::new(map)).map(Some)
        }
    }
    deserializer.deserialize_any(Visitor)
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
        if let Some(events) = &mut config.events {
            if let Some(file) = &mut events.file {
                if file != "stdout" && file != "-" && Path::new(file.as_str()).is_relative() {
                    *file = base.join(&*file).display().to_string();
                }
            }
            if events.push.is_some() {
                let spool = events
                    .spool_dir
                    .get_or_insert_with(|| PathBuf::from(DEFAULT_SPOOL_DIR));
                fix(spool);
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
        if let Some(events) = &self.events {
            events.check()?;
        }
        if let Some(sip) = &self.sip {
            sip.check()?;
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
        let events = config.events.as_ref().unwrap();
        assert!(Path::new(events.file.as_deref().unwrap()).is_absolute());
        assert!(events.push.is_some());
        assert!(events.spool_dir.as_ref().unwrap().is_absolute());
        let sip = config.sip.as_ref().unwrap();
        assert_eq!(sip.block.get("blacklisted"), Some(&BlockAnswer::Rejected));
        assert_eq!(sip.verdict_header.as_deref(), Some("X-Shaken-Verdict"));
    }

    /// Writes `text` as a configuration file in a fresh folder and loads it.
    fn load(text: &str) -> (tempfile::TempDir, Result<VerifierConfig, ConfigError>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("verifier.toml");
        std::fs::write(&path, format!("trust_anchors = \"roots.pem\"\n{text}")).unwrap();
        let config = VerifierConfig::load(&path);
        (dir, config)
    }

    #[test]
    fn events_is_a_string_or_a_table() {
        // The older string form: a file alone, relative to the configuration's folder.
        let (dir, config) = load("events = \"events.jsonl\"\n");
        let events = config.unwrap().events.unwrap();
        assert_eq!(
            events.file.as_deref(),
            Some(dir.path().join("events.jsonl").to_str().unwrap())
        );
        assert_eq!((events.push, events.spool_dir), (None, None));
        let (_dir, config) = load("events = \"stdout\"\n");
        assert_eq!(
            config.unwrap().events.unwrap().file.as_deref(),
            Some("stdout")
        );
        // The table: both a file and a push; the spool defaults beside the file.
        let (dir, config) = load(
            "[events]\nfile = \"stdout\"\npush = \"https://monitor.example.net/v1/events\"\nbatch_lines = 10\n",
        );
        let events = config.unwrap().events.unwrap();
        assert_eq!(events.file.as_deref(), Some("stdout"));
        assert_eq!(events.batch_lines, 10);
        assert_eq!(events.timeout_ms, EventsSection::default().timeout_ms);
        assert_eq!(events.spool_dir, Some(dir.path().join(DEFAULT_SPOOL_DIR)));
        let (dir, config) = load(
            "[events]\npush = \"http://127.0.0.1:9/v1/events\"\nallow_insecure_loopback = true\nspool_dir = \"sp\"\n",
        );
        let events = config.unwrap().events.unwrap();
        assert_eq!(events.file, None);
        assert_eq!(events.spool_dir, Some(dir.path().join("sp")));
        // No events at all.
        assert_eq!(load("").1.unwrap().events, None);
    }

    #[test]
    fn bad_events_tables_are_refused_naming_the_key() {
        for (text, expected) in [
            ("[events]\ncolour = 1\n", "unknown field `colour`"),
            ("events = 5\n", "a file path, \"stdout\", or an [events] table"),
            ("[events]\npush = \"ftp://m/v1/events\"\n", "events.push"),
            (
                "[events]\npush = \"http://127.0.0.1:9/v1/events\"\n",
                "events.push: http:// needs allow_insecure_loopback",
            ),
            (
                "[events]\npush = \"http://10.0.0.1:9/v1/events\"\nallow_insecure_loopback = true\n",
                "loopback address only",
            ),
            ("[events]\nbatch_lines = 0\n", "events.batch_lines"),
            ("[events]\ntimeout_ms = 0\n", "timeout_ms"),
            (
                "[events]\nbackoff_min_ms = 10\nbackoff_max_ms = 5\n",
                "backoff_min_ms is above backoff_max_ms",
            ),
            ("[events]\nqueue_lines = 0\n", "queue_lines"),
            ("[events]\nkafka = \"broker\"\n", "events.kafka: `broker` is not HOST:PORT"),
            (
                "[events]\nkafka = \"a:9092,b:0\"\n",
                "events.kafka: `b:0` has no port from 1 to 65535",
            ),
            ("[events]\nkafka = \":9092\"\n", "events.kafka: `:9092` has no host"),
            ("[events]\nkafka = \"[::1:9092\"\n", "written [ADDRESS]:PORT"),
            ("[events]\nkafka_topic = \"\"\n", "events.kafka_topic: a topic name has 1"),
            (
                "[events]\nkafka_topic = \"call events\"\n",
                "events.kafka_topic: `call events`: a topic name has only",
            ),
            ("[events]\nkafka_queue_lines = 0\n", "kafka_queue_lines"),
            (
                "[events]\nkafka_message_timeout_ms = 2147483648\n",
                "kafka_message_timeout_ms",
            ),
            ("[events]\nkafka_message_timeout_ms = 5\n", "kafka_message_timeout_ms"),
        ] {
            let error = load(text).1.unwrap_err();
            assert!(error.to_string().contains(expected), "{text}: {error}");
        }
    }

    #[test]
    fn the_kafka_keys_have_defaults_and_are_read() {
        let (_dir, config) = load("[events]\nkafka = \"127.0.0.1:9092\"\n");
        let events = config.unwrap().events.unwrap();
        assert_eq!(events.kafka.as_deref(), Some("127.0.0.1:9092"));
        assert_eq!(events.kafka_topic, "shaken.call-events");
        assert_eq!(
            (events.kafka_queue_lines, events.kafka_message_timeout_ms),
            (1_000_000, 300_000)
        );
        // Kafka alone opens no spool, as push does.
        assert_eq!(
            (events.file, events.push, events.spool_dir),
            (None, None, None)
        );
        let (_dir, config) = load(
            "[events]\nkafka = \"k1.example.net:9092, [::1]:9093\"\nkafka_topic = \"east.calls_v2\"\n\
             kafka_queue_lines = 10\nkafka_message_timeout_ms = 1000\nkafka_flush_ms = 0\n",
        );
        let events = config.unwrap().events.unwrap();
        assert_eq!(events.kafka_topic, "east.calls_v2");
        assert_eq!(
            (
                events.kafka_queue_lines,
                events.kafka_message_timeout_ms,
                events.kafka_flush_ms
            ),
            (10, 1000, 0)
        );
    }

    #[test]
    fn the_sip_section_has_defaults_and_refuses_what_it_does_not_know() {
        let (_dir, config) = load("[sip]\nlisten = [\"127.0.0.1:0\"]\n");
        let sip = config.unwrap().sip.unwrap();
        assert_eq!(sip.verstat, sip::uri::VerstatPlacement::UserPart);
        assert!(!sip.attestation_info && !sip.display_name);
        assert_eq!(sip.verdict_header, None);
        assert!(sip.block.is_empty());
        assert_eq!(sip.listener.max_headers, 64);

        let (_dir, config) = load(
            "[sip]\nlisten = [\"udp:127.0.0.1:5060\"]\nverstat = \"uri-parameter\"\n\
             attestation_info = true\ndisplay_name = true\nverdict_header = \"X-Shaken-Verdict\"\n\
             max_headers = 32\n\
             [sip.block]\nblacklisted = 608\nopted-out = 607\nspoofed = \"label\"\nstale = 403\n\
             [sip.ingress]\ntrunk_param = \"tgrp\"\n\
             [sip.ingress.addresses]\n\"10.1.0.0/16\" = \"interconnect\"\n",
        );
        let sip = config.unwrap().sip.unwrap();
        assert_eq!(sip.verstat, sip::uri::VerstatPlacement::UriParameter);
        assert_eq!(sip.listener.max_headers, 32);
        assert_eq!(sip.block.get("blacklisted"), Some(&BlockAnswer::Rejected));
        assert_eq!(sip.block.get("opted-out"), Some(&BlockAnswer::Unwanted));
        assert_eq!(sip.block.get("spoofed"), Some(&BlockAnswer::Label));
        assert_eq!(sip.block.get("stale"), Some(&BlockAnswer::Forbidden));
        assert_eq!(sip.ingress.trunk_param.as_deref(), Some("tgrp"));

        let listen = "[sip]\nlisten = [\"127.0.0.1:0\"]\n";
        for (extra, expected) in [
            ("colour = 1\n", "unknown key(s) colour"),
            ("verstat = \"header\"\n", "unknown variant"),
            (
                "[sip.block]\nspofed = 608\n",
                "sip.block: \"spofed\" is not a flag",
            ),
            ("[sip.block]\nspoofed = 600\n", "608, 607, 403 or \"label\""),
            (
                "[sip.block]\nspoofed = \"drop\"\n",
                "608, 607, 403 or \"label\"",
            ),
            ("verdict_header = \"X Verdict\"\n", "sip.verdict_header"),
            (
                "verdict_header = \"Contact\"\n",
                "a header the answer sets itself",
            ),
            ("[sip.ingress]\ncolour = 1\n", "unknown field `colour`"),
            (
                "[sip.ingress.addresses]\n\"10.1.0.0/33\" = \"x\"\n",
                "is not a network",
            ),
            (
                "[sip.ingress.addresses]\n\"10.1.0.0/16\" = \"trunk 7\"\n",
                "only letters",
            ),
            (
                "[sip.ingress]\ntrunk_param = \"t g\"\n",
                "sip.ingress.trunk_param",
            ),
        ] {
            let text = format!("{listen}{extra}");
            let error = load(&text).1.unwrap_err();
            assert!(error.to_string().contains(expected), "{text}: {error}");
        }
        let error = load("[sip]\nlisten = [\"nowhere\"]\n").1.unwrap_err();
        assert!(error.to_string().contains("sip.listen"), "{error}");
    }
}
