//! The signer's TOML configuration. Unknown keys are refused; `shaken signer serve --validate`
//! checks a file without starting. See `signer/signer.example.toml` for every key.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use passport::NumberingPlan;
use serde::Deserialize;

use crate::error::SignerError;
use crate::policy::{GatewayDomesticRule, OutageRule, PolicyConfig, DEFAULT_EMERGENCY_NUMBERS};
use crate::registry::{PgUrl, RegistryLocation, StalePolicy, SyncOptions};

/// The local copy of a PostgreSQL registry, beside the configuration file, by default.
pub const DEFAULT_REGISTRY_COPY: &str = "registry-copy.sqlite";
/// The default `registry_sync_interval_ms`.
pub const DEFAULT_SYNC_INTERVAL_MS: u64 = 2000;
/// The shortest `registry_sync_interval_ms` accepted.
const MIN_SYNC_INTERVAL_MS: u64 = 100;
/// The longest `registry_sync_interval_ms` accepted (10 minutes).
const MAX_SYNC_INTERVAL_MS: u64 = 600_000;
/// The default `registry_max_age_seconds`.
pub const DEFAULT_REGISTRY_MAX_AGE: u64 = 300;
/// How long a starting signer waits for the first synchronization attempt of its copy.
const FIRST_SYNC_WAIT: Duration = Duration::from_secs(10);

/// The largest `nonce_pool` accepted (64 MiB of nonces).
const MAX_NONCE_POOL: usize = 1 << 20;
/// The largest `iat_max_past_seconds` and `iat_max_future_seconds` accepted (an hour: beyond
/// it, verifiers refuse what the signer would sign).
const MAX_IAT_WINDOW: u64 = 3600;

/// The whole configuration.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignerConfig {
    /// Address to listen on (default loopback only).
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// The x5u URL put in every token.
    pub x5u: String,
    /// The signing key (PKCS#8 or SEC1 PEM). Reloaded on SIGHUP.
    pub key_file: PathBuf,
    /// A copy of the chain published at x5u. When absent, the chain is fetched from x5u.
    pub certificate_file: Option<PathBuf>,
    /// Roots to trust when fetching x5u over HTTPS (PEM); needed for private repositories.
    pub x5u_tls_roots: Option<PathBuf>,
    /// The registry: an SQLite file, or a PostgreSQL URL (`postgres://...`) whose local copy
    /// the signer keeps in `registry_copy` ([`crate::registry::sync`]).
    pub registry_db: RegistryLocation,
    /// With a PostgreSQL `registry_db`: the local copy (SQLite), default
    /// `registry-copy.sqlite` beside the configuration file.
    pub registry_copy: Option<PathBuf>,
    /// With a PostgreSQL `registry_db`: the longest time between two catch-ups, in
    /// milliseconds (changes announced by NOTIFY arrive sooner).
    pub registry_sync_interval_ms: Option<u64>,
    /// With a PostgreSQL `registry_db`: the copy's age beyond which `registry_stale` applies.
    pub registry_max_age_seconds: Option<u64>,
    /// With a PostgreSQL `registry_db`: `keep` signing from a stale copy, or `refuse` (the
    /// outage rule: `POL5031`).
    pub registry_stale: Option<StalePolicy>,
    /// The trace log database.
    pub trace_db: PathBuf,
    /// Days trace records are kept.
    #[serde(default = "default_retention")]
    pub trace_retention_days: u64,
    /// Most disk the trace journal may take, in MiB (see docs/signer.md): what the signer keeps
    /// while the trace database does not take records. When it is full, signing stops
    /// (`POL5000`) until the database works again.
    #[serde(default = "default_journal_mib")]
    pub trace_journal_max_mib: u64,
    /// Under load, the least time between two syncs of the trace journal, in microseconds
    /// (see docs/signer.md): records wait up to this long to share a sync, which costs CPU.
    /// When the previous sync carried a single record, the next is not delayed. 0: never wait.
    #[serde(default = "default_sync_interval")]
    pub trace_sync_interval_us: u64,
    /// ECDSA nonces computed ahead of time, while the CPUs are idle (see docs/signer.md): a
    /// burst of requests then signs about a third faster. 0: sign each request in one step.
    #[serde(default = "default_nonce_pool")]
    pub nonce_pool: usize,
    /// File holding the carrier secret used for identity document HMACs.
    pub hmac_secret_file: Option<PathBuf>,
    /// Numbering plan for national-form numbers and the carrier's own country (`NANP`, `CN`).
    pub country: Option<String>,
    /// Most seconds a request's `iat` may be before the signer's clock (older: `SVC4005`).
    #[serde(default = "default_iat_max_past")]
    pub iat_max_past_seconds: u64,
    /// Most seconds a request's `iat` may be after the signer's clock (further: `SVC4005`).
    #[serde(default = "default_iat_max_future")]
    pub iat_max_future_seconds: u64,
    /// Largest request body accepted, in bytes.
    #[serde(default = "default_max_body")]
    pub max_body_bytes: usize,
    /// Registry cache size (numbers).
    #[serde(default = "default_cache_capacity")]
    pub cache_capacity: u64,
    /// Registry cache lifetime, in seconds.
    #[serde(default = "default_cache_ttl")]
    pub cache_ttl_seconds: u64,
    /// Warn when the certificate expires in fewer days than this.
    #[serde(default = "default_expiry_warning")]
    pub certificate_expiry_warning_days: u64,
    /// The attestation policy.
    #[serde(default)]
    pub policy: PolicySection,
    /// HTTPS, and mutual TLS when `client_ca_file` is set.
    pub tls: Option<TlsSection>,
    /// Clients allowed to ask for signatures. None configured: loopback only.
    #[serde(default)]
    pub clients: Vec<ClientSection>,
    /// The regulator's list of marketing firms and blacklisted numbers (`[lists]`, see
    /// docs/lists.md and docs/marketing.md). Without it, no call is refused or branded by list.
    pub lists: Option<lists::ListsConfig>,
    /// The opt-out service's delta feed (`[optout]`, see docs/optout.md and docs/marketing.md):
    /// marketing calls to subscribers who opted out of the firm are refused (`POL4114`).
    pub optout: Option<optout::OptOutSection>,
    /// The SIP redirect interface (`[sip]`, see docs/signer.md "Signing over SIP"). Without
    /// it, no SIP listener: the REST API only.
    pub sip: Option<SipSection>,
}

/// Where the `302` of a signed call carries the Identity header.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum IdentityPlacement {
    /// A top-level `Identity` header field (RFC 8224).
    #[default]
    Header,
    /// Embedded in the Contact URI as an escaped header parameter
    /// (`<sip:...?Identity=ESCAPED>`, RFC 3261 §19.1.1), for SBCs that copy it from there.
    Contact,
}

/// The largest `jwscard_url` accepted.
const MAX_JWSCARD_URL: usize = 512;
/// The longest `[sip.trunks]` key (an `otg` value) and customer id accepted.
const MAX_TRUNK_TEXT: usize = 128;

/// `[sip]`: the listener's keys ([`sip::config::ListenerConfig`], flattened) and how the
/// signer answers. Unknown keys are refused by [`SipSection::check`] (serde's
/// `deny_unknown_fields` does not work with `flatten`).
#[derive(Clone, Debug, Deserialize)]
pub struct SipSection {
    /// `listen`, caps and timers. Declared first: it takes its keys before `unknown` sees
    /// the rest.
    #[serde(flatten)]
    pub listener: sip::config::ListenerConfig,
    /// `header` (default) or `contact`.
    #[serde(default)]
    pub identity: IdentityPlacement,
    /// The status of a policy refusal: `403` (default, Forbidden) or `608` (Rejected,
    /// RFC 8688).
    #[serde(default = "default_sip_refusal")]
    pub refusal: u16,
    /// With `refusal = 608`: an HTTPS URL sent as `Call-Info: <URL>;purpose=jwscard`
    /// (RFC 8688 §3.2), where the caller finds how to contest the refusal.
    pub jwscard_url: Option<String>,
    /// The From URI's `otg` parameter (RFC 4904 originating trunk group) to the customer the
    /// trunk speaks for: the policy's calling customer, as a REST request's `customerId`.
    #[serde(default)]
    pub trunks: std::collections::BTreeMap<String, String>,
    /// Keys nobody took, refused by [`SipSection::check`].
    #[serde(flatten)]
    pub unknown: std::collections::BTreeMap<String, serde::de::IgnoredAny>,
}

fn default_sip_refusal() -> u16 {
    403
}

impl SipSection {
    /// Checks the section: no unknown key, the listener's values, `refusal` 403 or 608,
    /// `jwscard_url` an HTTPS URL usable in a header (and only with 608), trunk names and
    /// customers non-empty and bounded.
    pub fn check(&self) -> Result<(), SignerError> {
        let bad = |m: String| Err(SignerError::Config(m));
        sip::config::refuse_unknown(&self.unknown)?;
        self.listener.validate()?;
        if self.refusal != 403 && self.refusal != 608 {
            return bad(format!("sip.refusal {} is not 403 or 608", self.refusal));
        }
        if let Some(url) = &self.jwscard_url {
            let usable = url.starts_with("https://")
                && url.len() <= MAX_JWSCARD_URL
                && url
                    .bytes()
                    .all(|b| b.is_ascii_graphic() && b != b'<' && b != b'>');
            if !usable {
                return bad(format!(
                    "sip.jwscard_url {:?} is not an https URL of at most {MAX_JWSCARD_URL} \
                     printable characters without <>",
                    url.chars().take(64).collect::<String>()
                ));
            }
            if self.refusal != 608 {
                return bad("sip.jwscard_url is sent only with refusal = 608".into());
            }
        }
        for (otg, customer) in &self.trunks {
            let fits = |t: &str| !t.is_empty() && t.len() <= MAX_TRUNK_TEXT;
            if !fits(otg) || !fits(customer) {
                return bad(format!(
                    "sip.trunks: trunk and customer must be 1 to {MAX_TRUNK_TEXT} characters"
                ));
            }
        }
        Ok(())
    }
}

/// `[policy]`.
#[derive(Clone, Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct PolicySection {
    /// Emergency numbers (default: 110, 112, 119, 120, 122, 911).
    pub emergency_numbers: Option<Vec<String>>,
    /// `refuse` (default) or `sign-c`.
    #[serde(default)]
    pub gateway_domestic: GatewayDomesticRule,
    /// `refuse` (default) or `sign-c`.
    #[serde(default)]
    pub registry_outage: OutageRule,
}

pub use rest::clients::ClientSection;
pub use rest::tls::TlsSection;

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}
fn default_retention() -> u64 {
    crate::trace::DEFAULT_RETENTION_DAYS
}
fn default_journal_mib() -> u64 {
    crate::trace::DEFAULT_JOURNAL_MAX_BYTES >> 20
}
fn default_sync_interval() -> u64 {
    u64::try_from(crate::trace::DEFAULT_SYNC_INTERVAL.as_micros()).unwrap_or(1000)
}
fn default_nonce_pool() -> usize {
    crate::nonces::DEFAULT_CAPACITY
}
fn default_iat_max_past() -> u64 {
    crate::api::DEFAULT_IAT_MAX_PAST
}
fn default_iat_max_future() -> u64 {
    crate::api::DEFAULT_IAT_MAX_FUTURE
}
fn default_max_body() -> usize {
    16 * 1024
}
fn default_cache_capacity() -> u64 {
    1_000_000
}
fn default_cache_ttl() -> u64 {
    60
}
fn default_expiry_warning() -> u64 {
    14
}

impl SignerConfig {
    /// Reads and checks a configuration file. Relative paths are taken from the file's folder.
    pub fn load(path: &Path) -> Result<Self, SignerError> {
        let text = std::fs::read_to_string(path).map_err(|e| SignerError::io(path, &e))?;
        let mut config: Self = toml::from_str(&text)
            .map_err(|e| SignerError::Config(format!("{}: {e}", path.display())))?;
        let base = path.parent().unwrap_or(Path::new("."));
        config.resolve_paths(base);
        config.check()?;
        Ok(config)
    }

    fn resolve_paths(&mut self, base: &Path) {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        fix(&mut self.key_file);
        self.registry_db = self.registry_db.clone().resolved_from(base);
        if let Some(copy) = &mut self.registry_copy {
            fix(copy);
        } else if matches!(self.registry_db, RegistryLocation::Postgres(_)) {
            self.registry_copy = Some(base.join(DEFAULT_REGISTRY_COPY));
        }
        fix(&mut self.trace_db);
        for p in [
            &mut self.certificate_file,
            &mut self.x5u_tls_roots,
            &mut self.hmac_secret_file,
        ]
        .into_iter()
        .flatten()
        {
            fix(p);
        }
        if let Some(section) = &mut self.optout {
            section.resolve_paths(base);
        }
        if let Some(section) = &mut self.lists {
            section.resolve_paths(base);
        }
        if let Some(tls) = &mut self.tls {
            fix(&mut tls.cert_file);
            fix(&mut tls.key_file);
            if let Some(ca) = &mut tls.client_ca_file {
                fix(ca);
            }
        }
    }

    /// Checks values that the types do not.
    pub fn check(&self) -> Result<(), SignerError> {
        let bad = |m: String| Err(SignerError::Config(m));
        if !self.x5u.starts_with("https://") && !self.x5u.starts_with("http://") {
            return bad(format!("x5u {:?} is not an http(s) URL", self.x5u));
        }
        if let Some(country) = &self.country {
            country
                .parse::<NumberingPlan>()
                .map_err(|e| SignerError::Config(format!("country: {e}")))?;
        }
        if self.max_body_bytes < 256 || self.max_body_bytes > 1 << 20 {
            return bad(format!(
                "max_body_bytes {} is outside 256..=1048576",
                self.max_body_bytes
            ));
        }
        let journal_min = crate::trace::MIN_JOURNAL_BYTES >> 20;
        if self.trace_journal_max_mib < journal_min || self.trace_journal_max_mib > 1 << 20 {
            return bad(format!(
                "trace_journal_max_mib {} is outside {journal_min}..=1048576",
                self.trace_journal_max_mib
            ));
        }
        let postgres = matches!(self.registry_db, RegistryLocation::Postgres(_));
        let sync_keys = self.registry_copy.is_some()
            || self.registry_sync_interval_ms.is_some()
            || self.registry_max_age_seconds.is_some()
            || self.registry_stale.is_some();
        if sync_keys && !postgres {
            return bad(
                "registry_copy, registry_sync_interval_ms, registry_max_age_seconds and \
                        registry_stale apply only to a postgres:// registry_db"
                    .into(),
            );
        }
        if let Some(ms) = self.registry_sync_interval_ms {
            if !(MIN_SYNC_INTERVAL_MS..=MAX_SYNC_INTERVAL_MS).contains(&ms) {
                return bad(format!(
                    "registry_sync_interval_ms {ms} is outside \
                     {MIN_SYNC_INTERVAL_MS}..={MAX_SYNC_INTERVAL_MS}"
                ));
            }
        }
        if self.registry_max_age_seconds == Some(0) {
            return bad("registry_max_age_seconds must be at least 1".into());
        }
        if let RegistryLocation::Postgres(url) = &self.registry_db {
            let interval = self
                .registry_sync_interval_ms
                .unwrap_or(DEFAULT_SYNC_INTERVAL_MS);
            let max_age = self
                .registry_max_age_seconds
                .unwrap_or(DEFAULT_REGISTRY_MAX_AGE);
            let connect = crate::registry::postgres::connect_timeout(url);
            if let Some(needed) = max_age_too_short(max_age, interval, connect) {
                return bad(format!(
                    "registry_max_age_seconds {max_age} is shorter than a healthy signer's copy \
                     can stay with registry_sync_interval_ms {interval} (two intervals and a \
                     {} ms reconnection): at least {needed}",
                    connect.as_millis()
                ));
            }
        }
        if self.trace_sync_interval_us > 100_000 {
            return bad(format!(
                "trace_sync_interval_us {} is outside 0..=100000",
                self.trace_sync_interval_us
            ));
        }
        for (key, value) in [
            ("iat_max_past_seconds", self.iat_max_past_seconds),
            ("iat_max_future_seconds", self.iat_max_future_seconds),
        ] {
            if value > MAX_IAT_WINDOW {
                return bad(format!("{key} {value} is outside 0..={MAX_IAT_WINDOW}"));
            }
        }
        if self.nonce_pool > MAX_NONCE_POOL {
            return bad(format!(
                "nonce_pool {} is outside 0..={MAX_NONCE_POOL}",
                self.nonce_pool
            ));
        }
        for client in &self.clients {
            if client.ips.is_empty() && client.certificate_sha256.is_none() {
                return bad(format!(
                    "client {:?} has neither ips nor certificate_sha256",
                    client.name
                ));
            }
            if client.certificate_sha256.is_some()
                && self
                    .tls
                    .as_ref()
                    .and_then(|t| t.client_ca_file.as_ref())
                    .is_none()
            {
                return bad(format!(
                    "client {:?} is identified by certificate but [tls] has no client_ca_file",
                    client.name
                ));
            }
        }
        if let Some(section) = &self.optout {
            if section.link_base_url.is_some() || section.link_key_file.is_some() {
                return bad(
                    "optout.link_base_url, optout.link_key_file: only a verifier gives \
                            unsubscribe links; remove them from the signer's [optout]"
                        .into(),
                );
            }
        }
        if let Some(section) = &self.sip {
            section.check()?;
        }
        if let Some(numbers) = &self.policy.emergency_numbers {
            if numbers
                .iter()
                .any(|n| n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()))
            {
                return bad("policy.emergency_numbers must be digits".into());
            }
        }
        Ok(())
    }

    /// The certificates of `x5u_tls_roots` (DER), none when it is not set: the extra roots for
    /// HTTPS fetches (the chain at x5u, the regulator's list).
    pub fn x5u_tls_root_ders(&self) -> Result<Vec<Vec<u8>>, SignerError> {
        let Some(path) = &self.x5u_tls_roots else {
            return Ok(vec![]);
        };
        let pem = SignerError::read_config_file("x5u_tls_roots", path)?;
        passport::cert::chain_from_pem(&pem)
            .map_err(|e| SignerError::config_file("x5u_tls_roots", path, e))
    }

    /// The numbering plan, if configured.
    pub fn plan(&self) -> Option<NumberingPlan> {
        self.country.as_deref().and_then(|c| c.parse().ok())
    }

    /// The window for requests' `iat`.
    pub fn iat_window(&self) -> crate::api::IatWindow {
        crate::api::IatWindow {
            max_past: self.iat_max_past_seconds,
            max_future: self.iat_max_future_seconds,
        }
    }

    /// How the local copy of a PostgreSQL registry at `url` is kept (the defaults filled in).
    pub fn sync_options(&self, url: PgUrl) -> SyncOptions {
        SyncOptions {
            url,
            copy: self
                .registry_copy
                .clone()
                .unwrap_or_else(|| PathBuf::from(DEFAULT_REGISTRY_COPY)),
            interval: Duration::from_millis(
                self.registry_sync_interval_ms
                    .unwrap_or(DEFAULT_SYNC_INTERVAL_MS),
            ),
            max_age: self
                .registry_max_age_seconds
                .unwrap_or(DEFAULT_REGISTRY_MAX_AGE),
            stale: self.registry_stale.unwrap_or_default(),
            cache_capacity: self.cache_capacity,
            cache_ttl: Duration::from_secs(self.cache_ttl_seconds),
            first_sync_wait: FIRST_SYNC_WAIT,
        }
    }

    /// The policy settings.
    pub fn policy_config(&self) -> PolicyConfig {
        PolicyConfig {
            home_country_code: self.plan().map(|p| p.country_code().to_owned()),
            emergency_numbers: self.policy.emergency_numbers.clone().unwrap_or_else(|| {
                DEFAULT_EMERGENCY_NUMBERS
                    .iter()
                    .map(|s| (*s).to_owned())
                    .collect()
            }),
            gateway_domestic: self.policy.gateway_domestic,
            registry_outage: self.policy.registry_outage,
        }
    }
}

/// The shortest `registry_max_age_seconds` (the second returned) that a healthy signer's
/// copy, caught up every `interval_ms`, can keep: two intervals (one catch-up missed) and one
/// reconnection taking `connect`; `None` when `max_age` is enough. A shorter bound would make
/// the copy stale, and with `registry_stale = "refuse"` calls refused, without any fault.
fn max_age_too_short(max_age: u64, interval_ms: u64, connect: Duration) -> Option<u64> {
    let needed_ms = 2 * interval_ms + connect.as_millis() as u64;
    (max_age.saturating_mul(1000) < needed_ms).then(|| needed_ms.div_ceil(1000))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_configuration_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("signer.example.toml");
        let config = SignerConfig::load(&path).unwrap();
        assert_eq!(config.listen, default_listen());
        assert!(config.key_file.is_absolute());
        assert_eq!(
            config.policy_config().home_country_code.as_deref(),
            Some("1")
        );
        assert_eq!(config.clients.len(), 2);
        assert_eq!(config.nonce_pool, crate::nonces::DEFAULT_CAPACITY);
        assert_eq!(config.iat_window(), crate::api::IatWindow::default());
        let lists = config.lists.as_ref().unwrap();
        assert!(lists.regulator_cert.is_absolute());
        assert!(Path::new(&lists.source).is_absolute(), "{}", lists.source);
        let sip = config.sip.as_ref().unwrap();
        assert_eq!(sip.listener.listen, ["127.0.0.1:5060"]);
        assert_eq!(sip.trunks.get("pbx-17").map(String::as_str), Some("c-1017"));
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused() {
        let base = "x5u = \"https://cr.example.net/a.pem\"\nkey_file = \"k\"\nregistry_db = \"r\"\ntrace_db = \"t\"\n";
        assert!(toml::from_str::<SignerConfig>(base)
            .unwrap()
            .check()
            .is_ok());
        assert!(toml::from_str::<SignerConfig>(&format!("{base}colour = 1\n")).is_err());
        assert!(toml::from_str::<SignerConfig>(&format!("{base}[policy]\ncolour = 1\n")).is_err());
        assert!(toml::from_str::<SignerConfig>(&format!(
            "{base}[policy]\ngateway_domestic = \"maybe\"\n"
        ))
        .is_err());
        let bad_url = base.replace("https://cr.example.net/a.pem", "ftp://x");
        assert!(toml::from_str::<SignerConfig>(&bad_url)
            .unwrap()
            .check()
            .is_err());
        let journal = |mib: u64| {
            toml::from_str::<SignerConfig>(&format!("{base}trace_journal_max_mib = {mib}\n"))
                .unwrap()
                .check()
        };
        assert!(journal(8).is_err(), "smaller than two segments");
        assert!(journal(16).is_ok());
        assert!(journal(2 << 20).is_err());
        let interval = |us: u64| {
            toml::from_str::<SignerConfig>(&format!("{base}trace_sync_interval_us = {us}\n"))
                .unwrap()
                .check()
        };
        assert!(interval(0).is_ok());
        assert!(interval(100_000).is_ok());
        assert!(interval(100_001).is_err());
        let pool = |n: usize| {
            toml::from_str::<SignerConfig>(&format!("{base}nonce_pool = {n}\n"))
                .unwrap()
                .check()
        };
        assert!(pool(0).is_ok(), "0 turns the pool off");
        assert!(pool(MAX_NONCE_POOL).is_ok());
        assert!(pool(MAX_NONCE_POOL + 1).is_err());
        let window = |past: u64, future: u64| {
            toml::from_str::<SignerConfig>(&format!(
                "{base}iat_max_past_seconds = {past}\niat_max_future_seconds = {future}\n"
            ))
            .unwrap()
        };
        let wide = window(300, 0);
        assert!(wide.check().is_ok());
        assert_eq!(
            wide.iat_window(),
            crate::api::IatWindow {
                max_past: 300,
                max_future: 0
            }
        );
        assert!(window(MAX_IAT_WINDOW, MAX_IAT_WINDOW).check().is_ok());
        let error = window(MAX_IAT_WINDOW + 1, 10).check().unwrap_err();
        assert!(
            error.to_string().contains("iat_max_past_seconds"),
            "{error}"
        );
        assert!(window(60, MAX_IAT_WINDOW + 1).check().is_err());
        let cert_client =
            format!("{base}[[clients]]\nname = \"sbc\"\ncertificate_sha256 = \"ab\"\n");
        assert!(toml::from_str::<SignerConfig>(&cert_client)
            .unwrap()
            .check()
            .is_err());
    }

    #[test]
    fn the_postgresql_registry_keys_are_read_and_checked() {
        let base = "x5u = \"https://cr.example.net/a.pem\"\nkey_file = \"k\"\ntrace_db = \"t\"\n";
        let load = |extra: &str| {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("signer.toml");
            std::fs::write(&path, format!("{base}{extra}")).unwrap();
            SignerConfig::load(&path).map(|c| (dir.path().to_owned(), c))
        };
        let (dir, config) = load("registry_db = \"postgres://s:pw@127.0.0.1:5432/reg\"\n").unwrap();
        let RegistryLocation::Postgres(url) = &config.registry_db else {
            panic!("{:?}", config.registry_db)
        };
        let options = config.sync_options(url.clone());
        assert_eq!(options.copy, dir.join(DEFAULT_REGISTRY_COPY));
        assert_eq!(options.interval, Duration::from_millis(2000));
        assert_eq!((options.max_age, options.stale), (300, StalePolicy::Keep));
        assert!(
            !format!("{config:?}").contains("pw@"),
            "the password is not shown"
        );
        let (_, config) = load(
            "registry_db = \"postgresql://h/reg\"\nregistry_copy = \"c.sqlite\"\n\
             registry_sync_interval_ms = 100\nregistry_max_age_seconds = 6\n\
             registry_stale = \"refuse\"\n",
        )
        .unwrap();
        let RegistryLocation::Postgres(url) = &config.registry_db else {
            panic!()
        };
        let options = config.sync_options(url.clone());
        assert!(options.copy.is_absolute() && options.copy.ends_with("c.sqlite"));
        assert_eq!((options.max_age, options.stale), (6, StalePolicy::Refuse));
        let refused = |extra: &str| load(extra).unwrap_err().to_string();
        assert!(
            refused("registry_db = \"r.sqlite\"\nregistry_stale = \"keep\"\n")
                .contains("apply only to a postgres://")
        );
        assert!(
            refused("registry_db = \"postgres://h/r\"\nregistry_sync_interval_ms = 99\n")
                .contains("registry_sync_interval_ms 99")
        );
        assert!(
            refused("registry_db = \"postgres://h/r\"\nregistry_max_age_seconds = 0\n")
                .contains("registry_max_age_seconds")
        );
        // A bound a healthy signer cannot keep: 2 x 2 s + the 5 s connection timeout > 8 s.
        let short = refused("registry_db = \"postgres://h/r\"\nregistry_max_age_seconds = 8\n");
        assert!(
            short.contains("registry_max_age_seconds 8") && short.contains("at least 9"),
            "{short}"
        );
        assert!(load("registry_db = \"postgres://h/r\"\nregistry_max_age_seconds = 9\n").is_ok());
        // The URL's own connection timeout counts.
        assert!(load(
            "registry_db = \"postgres://h/r?connect_timeout=1\"\nregistry_max_age_seconds = 5\n"
        )
        .is_ok());
        assert!(
            refused("registry_db = \"postgres://h/r\"\nregistry_stale = \"maybe\"\n")
                .contains("maybe")
        );
        // A file registry is resolved from the configuration's folder, as before.
        let (dir, config) = load("registry_db = \"r.sqlite\"\n").unwrap();
        assert_eq!(
            config.registry_db,
            RegistryLocation::File(dir.join("r.sqlite"))
        );
        assert_eq!(config.registry_copy, None);
    }

    #[test]
    fn the_sip_section_is_read_and_checked() {
        let base = "x5u = \"https://cr.example.net/a.pem\"\nkey_file = \"k\"\nregistry_db = \"r\"\ntrace_db = \"t\"\n";
        let none = toml::from_str::<SignerConfig>(base).unwrap();
        assert!(none.sip.is_none(), "no [sip]: no listener");
        let full = format!(
            "{base}[sip]\nlisten = [\"udp:127.0.0.1:5060\", \"tcp:127.0.0.1:5060\"]\n\
             max_headers = 40\nidentity = \"contact\"\nrefusal = 608\n\
             jwscard_url = \"https://redress.example/jws\"\n\
             [sip.trunks]\npbx7 = \"c9\"\n"
        );
        let config = toml::from_str::<SignerConfig>(&full).unwrap();
        config.check().unwrap();
        let sip = config.sip.as_ref().unwrap();
        assert_eq!(sip.listener.listen.len(), 2);
        assert_eq!(sip.listener.max_headers, 40);
        assert_eq!(sip.identity, IdentityPlacement::Contact);
        assert_eq!(sip.refusal, 608);
        assert_eq!(sip.trunks.get("pbx7").map(String::as_str), Some("c9"));
        let minimal =
            toml::from_str::<SignerConfig>(&format!("{base}[sip]\nlisten = [\"127.0.0.1:0\"]\n"))
                .unwrap();
        minimal.check().unwrap();
        let sip = minimal.sip.unwrap();
        assert_eq!(
            (sip.identity, sip.refusal),
            (IdentityPlacement::Header, 403)
        );
        let refused = |extra: &str| {
            let text = format!("{base}[sip]\nlisten = [\"127.0.0.1:0\"]\n{extra}");
            match toml::from_str::<SignerConfig>(&text) {
                Err(e) => e.to_string(),
                Ok(config) => config.check().unwrap_err().to_string(),
            }
        };
        assert!(refused("colour = 1\n").contains("colour"));
        assert!(refused("refusal = 404\n").contains("sip.refusal"));
        assert!(refused("identity = \"body\"\n").contains("body"));
        assert!(refused("refusal = 608\njwscard_url = \"http://x\"\n").contains("jwscard_url"));
        assert!(refused("jwscard_url = \"https://x/j\"\n").contains("608"));
        assert!(refused("[sip.trunks]\n\"\" = \"c\"\n").contains("trunks"));
        assert!(refused("max_headers = 0\n").contains("max_headers"));
        let bad_listen = format!("{base}[sip]\nlisten = [\"sctp:1.2.3.4:5\"]\n");
        assert!(toml::from_str::<SignerConfig>(&bad_listen)
            .unwrap()
            .check()
            .is_err());
    }
}
