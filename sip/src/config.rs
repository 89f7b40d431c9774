//! The listener part of a service's `[sip]` section, shared by the signer and the verifier:
//! where to listen and the caps. Each service flattens it into its own `[sip]` struct, adds
//! its answer options, and calls [`refuse_unknown`] with the keys neither took (serde's
//! `deny_unknown_fields` does not work with `flatten`).
//!
//! The pattern, tested below with toml 0.8:
//!
//! ```
//! use std::collections::BTreeMap;
//! use serde::de::IgnoredAny;
//!
//! #[derive(serde::Deserialize)]
//! struct SipSection {
//!     #[serde(flatten)]
//!     listener: sip::config::ListenerConfig,
//!     identity_in_contact: Option<bool>, // a service's own key
//!     #[serde(flatten)]
//!     unknown: BTreeMap<String, IgnoredAny>, // whatever neither took
//! }
//! ```
//!
//! serde hands each key to the first flattened field that takes it, so `unknown` holds only
//! the keys that neither `ListenerConfig` nor the service's own fields know; the service then
//! calls [`refuse_unknown`]`(&section.unknown)` and [`ListenerConfig::validate`].

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;
use thiserror::Error;

use crate::message::Limits;
use crate::transaction::Timers;

/// One listening socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListenOn {
    /// `udp:ADDR`.
    Udp(SocketAddr),
    /// `tcp:ADDR`.
    Tcp(SocketAddr),
    /// `ADDR`: UDP and TCP on the same port (port 0: one free port for both).
    Both(SocketAddr),
}

/// What is wrong with a `[sip]` section.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum ConfigError {
    /// A `listen` item is not `udp:ADDR`, `tcp:ADDR` or `ADDR`.
    #[error("sip.listen: {0:?} is not \"udp:ADDR\", \"tcp:ADDR\" or \"ADDR\"")]
    Listen(String),
    /// Keys nobody knows.
    #[error("sip: unknown key(s) {0}")]
    Unknown(String),
    /// A value out of range: the key and why.
    #[error("sip.{0}: {1}")]
    Range(&'static str, String),
}

/// The listener keys of `[sip]`.
#[derive(Clone, Debug, Deserialize)]
pub struct ListenerConfig {
    /// Where to listen: `"udp:ADDR"`, `"tcp:ADDR"`, or `"ADDR"` for both.
    pub listen: Vec<String>,
    /// The largest message accepted (default 16 KiB; UDP datagrams above it are dropped, TCP
    /// connections sending one are answered `513 Message Too Large` if possible and closed).
    #[serde(default = "default_max_message_bytes")]
    pub max_message_bytes: usize,
    /// The most header fields in a message (default 64).
    #[serde(default = "default_max_headers")]
    pub max_headers: usize,
    /// Seconds a TCP connection may go without completing a message (or a CRLF keep-alive)
    /// before it is closed, however many bytes it sends meanwhile (default 60).
    #[serde(default = "default_tcp_idle_seconds")]
    pub tcp_idle_seconds: u64,
    /// The most TCP connections at once (default 1024).
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// The most transactions remembered at once (default 100,000).
    #[serde(default = "default_max_transactions")]
    pub max_transactions: usize,
    /// T1 in milliseconds (default 500; at most T2, 4000, so that Timer G's interval only
    /// ever grows).
    #[serde(default = "default_t1_ms")]
    pub t1_ms: u64,
    /// UDP answers larger than this are counted in a warning metric (default 1300, RFC 3261
    /// §18.1.1).
    #[serde(default = "default_udp_warn_bytes")]
    pub udp_warn_bytes: usize,
}

/// The largest `max_transactions` accepted (a bound on memory: about a kilobyte each).
pub const MAX_TRANSACTIONS: u64 = 10_000_000;

/// The largest `t1_ms` accepted: T2 (RFC 3261's 4 s). Timer G starts at T1 and doubles up to
/// T2; a larger T1 would make the second interval shorter than the first.
pub const MAX_T1_MS: u64 = 4000;

/// The largest `max_connections` accepted.
pub const MAX_CONNECTIONS: u64 = 1_000_000;

fn default_max_message_bytes() -> usize {
    16 * 1024
}
fn default_max_headers() -> usize {
    64
}
fn default_tcp_idle_seconds() -> u64 {
    60
}
fn default_max_connections() -> usize {
    1024
}
fn default_max_transactions() -> usize {
    100_000
}
fn default_t1_ms() -> u64 {
    500
}
fn default_udp_warn_bytes() -> usize {
    1300
}

impl ListenerConfig {
    /// The listen items, parsed.
    ///
    /// `udp:127.0.0.1:5060`, `tcp:[::1]:5060`, and a bare `127.0.0.1:5060` for both; the
    /// transport prefix is case-insensitive, the address is an IP address (no host name: a
    /// listener binds, it does not resolve).
    pub fn listen_on(&self) -> Result<Vec<ListenOn>, ConfigError> {
        self.listen.iter().map(|item| parse_listen(item)).collect()
    }

    /// The message caps.
    pub fn limits(&self) -> Limits {
        Limits {
            max_message_bytes: self.max_message_bytes,
            max_headers: self.max_headers,
        }
    }

    /// The timers (T2 and T4 at their RFC values, T1 as configured).
    pub fn timers(&self) -> Timers {
        Timers {
            t1: Duration::from_millis(self.t1_ms),
            ..Timers::default()
        }
    }

    /// The TCP idle timeout.
    pub fn tcp_idle(&self) -> Duration {
        Duration::from_secs(self.tcp_idle_seconds)
    }

    /// Checks every value: at least one listen item and each parses; `max_message_bytes` in
    /// 1 KiB..=1 MiB, `max_headers` in 8..=1024, `t1_ms` in 50..=[`MAX_T1_MS`] (T2),
    /// `max_transactions`,
    /// `max_connections` and `tcp_idle_seconds` at least 1.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.listen.is_empty() {
            return Err(ConfigError::Range(
                "listen",
                "at least one address is needed".into(),
            ));
        }
        self.listen_on()?;
        in_range(
            "max_message_bytes",
            self.max_message_bytes as u64,
            1024,
            1024 * 1024,
        )?;
        in_range("max_headers", self.max_headers as u64, 8, 1024)?;
        in_range("t1_ms", self.t1_ms, 50, MAX_T1_MS)?;
        in_range(
            "max_transactions",
            self.max_transactions as u64,
            1,
            MAX_TRANSACTIONS,
        )?;
        in_range(
            "max_connections",
            self.max_connections as u64,
            1,
            MAX_CONNECTIONS,
        )?;
        in_range("tcp_idle_seconds", self.tcp_idle_seconds, 1, 86_400)?;
        Ok(())
    }
}

fn in_range(key: &'static str, value: u64, min: u64, max: u64) -> Result<(), ConfigError> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(ConfigError::Range(
            key,
            format!("{value} is not in {min}..={max}"),
        ))
    }
}

/// One `listen` item.
fn parse_listen(item: &str) -> Result<ListenOn, ConfigError> {
    let bad = || ConfigError::Listen(item.to_owned());
    let (kind, address) = match item.split_once(':') {
        Some((prefix, rest)) if prefix.eq_ignore_ascii_case("udp") => (Some(true), rest),
        Some((prefix, rest)) if prefix.eq_ignore_ascii_case("tcp") => (Some(false), rest),
        _ => (None, item),
    };
    let address: SocketAddr = address.trim().parse().map_err(|_| bad())?;
    Ok(match kind {
        Some(true) => ListenOn::Udp(address),
        Some(false) => ListenOn::Tcp(address),
        None => ListenOn::Both(address),
    })
}

/// Refuses the keys a flattened `[sip]` section left over.
pub fn refuse_unknown(
    unknown: &BTreeMap<String, serde::de::IgnoredAny>,
) -> Result<(), ConfigError> {
    if unknown.is_empty() {
        Ok(())
    } else {
        Err(ConfigError::Unknown(
            unknown.keys().cloned().collect::<Vec<_>>().join(", "),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::de::IgnoredAny;

    fn config(listen: &[&str]) -> ListenerConfig {
        toml::from_str(&format!("listen = {listen:?}")).unwrap()
    }

    #[test]
    fn listen_items_parse_with_or_without_a_transport() {
        let parsed = config(&["udp:127.0.0.1:5060", "TCP:[::1]:5061", "127.0.0.1:0"])
            .listen_on()
            .unwrap();
        assert_eq!(
            parsed,
            vec![
                ListenOn::Udp("127.0.0.1:5060".parse().unwrap()),
                ListenOn::Tcp("[::1]:5061".parse().unwrap()),
                ListenOn::Both("127.0.0.1:0".parse().unwrap()),
            ]
        );
        for bad in [
            "udp:localhost:5060",
            "sctp:127.0.0.1:5060",
            "127.0.0.1",
            "tcp:::1:5060",
            "",
        ] {
            assert_eq!(
                config(&[bad]).listen_on(),
                Err(ConfigError::Listen(bad.into())),
                "{bad}"
            );
            assert!(config(&[bad]).validate().is_err());
        }
    }

    #[test]
    fn defaults_and_timers() {
        let c = config(&["127.0.0.1:5060"]);
        assert_eq!(c.max_message_bytes, 16 * 1024);
        assert_eq!(c.max_headers, 64);
        assert_eq!(c.max_transactions, 100_000);
        assert_eq!(c.udp_warn_bytes, 1300);
        assert_eq!(c.timers(), Timers::default());
        assert_eq!(c.validate(), Ok(()));
        let fast: ListenerConfig =
            toml::from_str("listen = [\"127.0.0.1:0\"]\nt1_ms = 50").unwrap();
        assert_eq!(fast.timers().t1, Duration::from_millis(50));
        assert_eq!(fast.timers().t2, Duration::from_secs(4));
        assert_eq!(fast.timers().t4, Duration::from_secs(5));
    }

    #[test]
    fn values_out_of_range_name_their_key() {
        let cases: [(&str, &str); 12] = [
            ("max_message_bytes", "1023"),
            ("max_message_bytes", "1048577"),
            ("max_headers", "7"),
            ("max_headers", "1025"),
            ("t1_ms", "49"),
            ("t1_ms", "4001"),
            ("max_transactions", "0"),
            ("max_connections", "0"),
            ("max_connections", "1000001"),
            ("max_transactions", "10000001"),
            ("tcp_idle_seconds", "0"),
            ("tcp_idle_seconds", "86401"),
        ];
        for (key, value) in cases {
            let c: ListenerConfig =
                toml::from_str(&format!("listen = [\"127.0.0.1:0\"]\n{key} = {value}")).unwrap();
            match c.validate() {
                Err(ConfigError::Range(named, _)) => assert_eq!(named, key),
                other => panic!("{key} = {value}: {other:?}"),
            }
        }
        for (key, value) in [
            ("max_message_bytes", "1024"),
            ("max_message_bytes", "1048576"),
            ("max_headers", "8"),
            ("t1_ms", "50"),
            ("t1_ms", "4000"),
        ] {
            let c: ListenerConfig =
                toml::from_str(&format!("listen = [\"127.0.0.1:0\"]\n{key} = {value}")).unwrap();
            assert_eq!(c.validate(), Ok(()), "{key} = {value}");
        }
        let empty = config(&[]);
        assert!(matches!(
            empty.validate(),
            Err(ConfigError::Range("listen", _))
        ));
    }

    /// The pattern the signer and the verifier use for their `[sip]` section.
    #[derive(Debug, serde::Deserialize)]
    struct ServiceSip {
        #[serde(flatten)]
        listener: ListenerConfig,
        some_service_key: Option<String>,
        #[serde(flatten)]
        unknown: BTreeMap<String, IgnoredAny>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct ServiceConfig {
        sip: ServiceSip,
    }

    #[test]
    fn a_flattened_listener_takes_its_keys_and_leaves_only_unknown_ones() {
        let text = r#"
            [sip]
            listen = ["udp:127.0.0.1:5060", "tcp:127.0.0.1:5060"]
            max_message_bytes = 4096
            t1_ms = 100
            some_service_key = "yes"
            typo_key = 3
            other = { a = 1 }
        "#;
        let config: ServiceConfig = toml::from_str(text).unwrap();
        let sip = config.sip;
        assert_eq!(sip.listener.listen.len(), 2);
        assert_eq!(sip.listener.max_message_bytes, 4096);
        assert_eq!(sip.listener.t1_ms, 100);
        assert_eq!(sip.listener.max_headers, 64);
        assert_eq!(sip.some_service_key.as_deref(), Some("yes"));
        assert_eq!(
            sip.unknown.keys().collect::<Vec<_>>(),
            vec!["other", "typo_key"]
        );
        assert_eq!(
            refuse_unknown(&sip.unknown),
            Err(ConfigError::Unknown("other, typo_key".into()))
        );

        let clean: ServiceConfig =
            toml::from_str("[sip]\nlisten = [\"127.0.0.1:0\"]\nsome_service_key = \"x\"").unwrap();
        assert!(clean.sip.unknown.is_empty());
        assert_eq!(refuse_unknown(&clean.sip.unknown), Ok(()));
        assert_eq!(clean.sip.listener.validate(), Ok(()));

        // A listener key of the wrong type is an error, not an unknown key.
        let wrong =
            toml::from_str::<ServiceConfig>("[sip]\nlisten = [\"127.0.0.1:0\"]\nt1_ms = \"fast\"");
        assert!(wrong.is_err());
    }
}
