//! Who may call a service: an allow-list of clients identified by source network and/or the
//! SHA-256 of their TLS client certificate, each optionally speaking for a customer, each with
//! an optional rate limit. With no client configured, loopback only.

use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;

use ipnet::IpNet;
use serde::Deserialize;
use sha2::{Digest, Sha256};

/// `[[clients]]` in a service's configuration.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientSection {
    /// A name for logs, metrics and trace records.
    pub name: String,
    /// Networks it may connect from (empty: any, when identified by certificate).
    #[serde(default)]
    pub ips: Vec<IpNet>,
    /// SHA-256 of its client certificate (DER), hex with or without `:`.
    pub certificate_sha256: Option<String>,
    /// The customer (or trunk) it speaks for.
    pub customer: Option<String>,
    /// Requests per second allowed (0: unlimited).
    #[serde(default)]
    pub rate_limit_per_second: u32,
}

/// A token bucket refilled `rate` times a second, holding at most `rate` tokens.
#[derive(Debug)]
struct Bucket {
    rate: f64,
    tokens: f64,
    last: Instant,
}

impl Bucket {
    fn take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.rate);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// One allowed client.
#[derive(Debug)]
pub struct Client {
    /// Its name.
    pub name: String,
    ips: Vec<IpNet>,
    certificate_sha256: Option<Vec<u8>>,
    /// The customer it speaks for.
    pub customer: Option<String>,
    /// Its rate limit (0: none).
    pub rate: u32,
    bucket: Option<Mutex<Bucket>>,
}

/// A configuration problem with a client entry.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("client {name:?}: {reason}")]
pub struct ClientError {
    /// The client's name.
    pub name: String,
    /// What is wrong.
    pub reason: String,
}

impl Client {
    /// From configuration.
    pub fn from_config(section: &ClientSection) -> Result<Self, ClientError> {
        let bad = |reason: &str| ClientError {
            name: section.name.clone(),
            reason: reason.into(),
        };
        if section.ips.is_empty() && section.certificate_sha256.is_none() {
            return Err(bad("has neither ips nor certificate_sha256"));
        }
        let certificate_sha256 = match &section.certificate_sha256 {
            None => None,
            Some(hex) => {
                let clean: String = hex.chars().filter(|c| *c != ':').collect();
                let bytes = (0..clean.len())
                    .step_by(2)
                    .map(|i| {
                        clean
                            .get(i..i + 2)
                            .and_then(|p| u8::from_str_radix(p, 16).ok())
                    })
                    .collect::<Option<Vec<u8>>>()
                    .filter(|b| b.len() == 32)
                    .ok_or_else(|| bad("certificate_sha256 is not 32 hex bytes"))?;
                Some(bytes)
            }
        };
        let rate = section.rate_limit_per_second;
        Ok(Self {
            name: section.name.clone(),
            ips: section.ips.clone(),
            certificate_sha256,
            customer: section.customer.clone(),
            rate,
            bucket: (rate > 0).then(|| {
                Mutex::new(Bucket {
                    rate: f64::from(rate),
                    tokens: f64::from(rate),
                    last: Instant::now(),
                })
            }),
        })
    }

    /// The default client when none is configured: anything on loopback.
    pub fn loopback() -> Self {
        let nets = ["127.0.0.0/8", "::1/128"]
            .iter()
            .filter_map(|n| n.parse().ok())
            .collect();
        Self {
            name: "loopback".into(),
            ips: nets,
            certificate_sha256: None,
            customer: None,
            rate: 0,
            bucket: None,
        }
    }

    /// Whether a connection from `ip` with this client certificate (DER) is this client.
    pub fn matches(&self, ip: IpAddr, certificate: Option<&[u8]>) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
            v4 => v4,
        };
        let ip_ok = self.ips.is_empty() || self.ips.iter().any(|net| net.contains(&ip));
        let cert_ok = match (&self.certificate_sha256, certificate) {
            (None, _) => true,
            (Some(wanted), Some(presented)) => Sha256::digest(presented)[..] == wanted[..],
            (Some(_), None) => false,
        };
        ip_ok && cert_ok
    }

    /// Takes one token from the rate limit; false when over it.
    pub fn allow(&self) -> bool {
        match &self.bucket {
            None => true,
            Some(bucket) => bucket
                .lock()
                .map(|mut b| b.take(Instant::now()))
                .unwrap_or(false),
        }
    }
}

/// The allow-list.
#[derive(Debug)]
pub struct Clients(Vec<Client>);

impl Clients {
    /// From configured clients; none means loopback only.
    pub fn new(clients: Vec<Client>) -> Self {
        if clients.is_empty() {
            Self(vec![Client::loopback()])
        } else {
            Self(clients)
        }
    }

    /// The client a connection is, if any.
    pub fn find(&self, ip: IpAddr, certificate: Option<&[u8]>) -> Option<&Client> {
        self.0.iter().find(|c| c.matches(ip, certificate))
    }
}
