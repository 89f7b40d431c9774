//! Fetching resources safely from URLs the caller does not control: certificates and CRLs for
//! the verifier (every x5u comes from a token anyone can forge), the regulator's lists and the
//! opt-out feed for the signer and the verifier. A fetch is treated as hostile input:
//!
//! - HTTPS only, unless the policy allows plain HTTP (the local lab and tests);
//! - ports 443 and 8443 by default, others only by configuration; an optional host allow-list;
//! - the name is resolved first and every address checked: loopback, private, link-local,
//!   unspecified and other internal addresses are refused unless the policy allows them; the
//!   connection then goes to the checked address, so a second DNS answer cannot redirect it;
//! - connect and total timeouts (2 s each by default), a body cap (64 KiB by default), no
//!   redirects (a 3xx is an error, never followed), only 200 accepted.
//!
//! [`Fetcher::post`] sends a body (the verifier's event batches to the monitor) under the same
//! policy; it answers any status but a redirect, for the caller to judge.
//!
//! Server TLS is checked against the Mozilla roots (webpki-roots) plus any configured extra
//! roots.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full, Limited};
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, ServerName};

/// Why a fetch failed. Each refusal by the policy happens before any connection is made.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// The URL does not parse.
    #[error("{0:?} is not a valid URL")]
    BadUrl(String),
    /// Plain HTTP (or another scheme) where HTTPS is required.
    #[error("URL scheme {0:?} is not allowed (HTTPS only)")]
    Scheme(String),
    /// The port is not in the allowed set.
    #[error("URL port {0} is not allowed")]
    Port(u16),
    /// The host is not in the allow-list.
    #[error("URL host {0:?} is not in the allow-list")]
    Host(String),
    /// The host resolves to a loopback, private or otherwise internal address.
    #[error("URL host resolves to {0}, a loopback/private address that is not allowed")]
    Address(std::net::IpAddr),
    /// Name resolution failed.
    #[error("cannot resolve host {0:?}")]
    Resolve(String),
    /// The TCP connection failed.
    #[error("cannot connect to the server: {0}")]
    Connect(String),
    /// The TLS handshake failed.
    #[error("TLS with the server failed: {0}")]
    Tls(String),
    /// Connect or total timeout.
    #[error("the server did not answer within {0} ms")]
    Timeout(u128),
    /// A redirect (not followed).
    #[error("the server redirected (HTTP {0}); redirects are not followed")]
    Redirect(u16),
    /// Another non-200 status.
    #[error("the server answered HTTP {0}")]
    Status(u16),
    /// The body exceeded the cap.
    #[error("the response is larger than {0} bytes")]
    TooLarge(usize),
    /// The HTTP exchange failed.
    #[error("HTTP with the server failed: {0}")]
    Http(String),
}

/// What fetches may do.
#[derive(Clone, Debug)]
pub struct FetchPolicy {
    /// Allow `http://` URLs.
    pub allow_http: bool,
    /// Allow loopback, private and other internal addresses.
    pub allow_private_addresses: bool,
    /// Allowed ports (`None`: any).
    pub allowed_ports: Option<Vec<u16>>,
    /// Allowed host names (`None`: any), compared case-insensitively.
    pub allowed_hosts: Option<Vec<String>>,
    /// Time to establish the TCP connection.
    pub connect_timeout: Duration,
    /// Time for the whole exchange.
    pub total_timeout: Duration,
    /// Largest body accepted.
    pub max_body: usize,
}

impl Default for FetchPolicy {
    fn default() -> Self {
        Self {
            allow_http: false,
            allow_private_addresses: false,
            allowed_ports: Some(vec![443, 8443]),
            allowed_hosts: None,
            connect_timeout: Duration::from_secs(2),
            total_timeout: Duration::from_secs(2),
            max_body: 64 * 1024,
        }
    }
}

/// A fetched resource.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fetched {
    /// The body.
    pub body: Vec<u8>,
    /// `Cache-Control: max-age`, if the server sent one (`no-cache`/`no-store` give 0).
    pub max_age: Option<u64>,
}

/// The answer to a [`Fetcher::post`]: its status (anything but a redirect) and its body,
/// capped like a fetched one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Posted {
    /// The HTTP status.
    pub status: u16,
    /// The body.
    pub body: Vec<u8>,
}

impl Posted {
    /// Whether the status is 2xx (the receiver took what was sent).
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// A parsed http(s) URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Url {
    /// `https` or `http`.
    pub scheme: String,
    /// Host name or IP literal (without brackets).
    pub host: String,
    /// Port.
    pub port: u16,
    /// Path and query, starting with `/`.
    pub path: String,
}

impl Url {
    /// Parses an absolute http(s) URL; user info and fragments are refused.
    pub fn parse(text: &str) -> Result<Self, FetchError> {
        let bad = || FetchError::BadUrl(text.chars().take(200).collect());
        if text.len() > 2048 || text.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad());
        }
        let (scheme, rest) = text.split_once("://").ok_or_else(bad)?;
        let scheme = scheme.to_ascii_lowercase();
        let default_port = match scheme.as_str() {
            "https" => 443,
            "http" => 80,
            _ => return Err(FetchError::Scheme(scheme)),
        };
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) => (
                rest.get(..i).ok_or_else(bad)?,
                rest.get(i..).ok_or_else(bad)?,
            ),
            None => (rest, "/"),
        };
        if authority.is_empty() || authority.contains('@') || path.contains('#') {
            return Err(bad());
        }
        // The port: 1 to 5 ASCII digits, not 0 (u16's own parser would take `+443`).
        let port_of = |digits: &str| -> Result<u16, FetchError> {
            if digits.is_empty() || digits.len() > 5 || !digits.bytes().all(|b| b.is_ascii_digit())
            {
                return Err(bad());
            }
            digits.parse().ok().filter(|p| *p != 0).ok_or_else(bad)
        };
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            // An IPv6 literal, only in brackets (RFC 3986 §3.2.2).
            let (host, after) = v6.split_once(']').ok_or_else(bad)?;
            if host.parse::<std::net::Ipv6Addr>().is_err() {
                return Err(bad());
            }
            let port = match after.strip_prefix(':') {
                Some(p) => port_of(p)?,
                None if after.is_empty() => default_port,
                None => return Err(bad()),
            };
            (host.to_owned(), port)
        } else {
            let (host, port) = match authority.split_once(':') {
                Some((host, port)) => (host, port_of(port)?),
                None => (authority, default_port),
            };
            // A DNS name or an IPv4 literal: labels of 1 to 63 letters, digits and inner
            // hyphens. A colon here (an unbracketed IPv6 literal) is refused.
            let labels_ok = host.len() <= 253
                && host.split('.').all(|label| {
                    !label.is_empty()
                        && label.len() <= 63
                        && !label.starts_with('-')
                        && !label.ends_with('-')
                        && label
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                });
            if !labels_ok {
                return Err(bad());
            }
            (host.to_owned(), port)
        };
        let path = if path.starts_with('?') {
            format!("/{path}")
        } else {
            path.to_owned()
        };
        Ok(Self {
            scheme,
            host: host.to_ascii_lowercase(),
            port,
            path,
        })
    }
}

/// Whether an address is internal (loopback, private, link-local, unspecified, ...).
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || v4.octets()[0] == 100 && (v4.octets()[1] & 0xc0) == 64 // 100.64.0.0/10 CGNAT
                || v4.octets()[0] == 0
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_internal(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00 // unique local
                || (first & 0xffc0) == 0xfe80 // link local
        }
    }
}

/// Parses `Cache-Control` for `max-age`; `no-cache`/`no-store` count as 0.
pub fn max_age(cache_control: &str) -> Option<u64> {
    let mut found = None;
    for directive in cache_control.split(',') {
        let directive = directive.trim().to_ascii_lowercase();
        if directive == "no-cache" || directive == "no-store" {
            return Some(0);
        }
        if let Some(value) = directive.strip_prefix("max-age=") {
            found = value.trim_matches('"').parse().ok();
        }
    }
    found
}

/// Fetches URLs under a policy.
#[derive(Clone)]
pub struct Fetcher {
    policy: FetchPolicy,
    tls: Arc<rustls::ClientConfig>,
}

impl std::fmt::Debug for Fetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fetcher")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl Fetcher {
    /// A fetcher trusting the Mozilla roots plus `extra_roots` (DER) for repository TLS.
    pub fn new(policy: FetchPolicy, extra_roots: &[Vec<u8>]) -> Result<Self, FetchError> {
        let mut roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        for der in extra_roots {
            roots
                .add(CertificateDer::from(der.clone()))
                .map_err(|e| FetchError::Tls(e.to_string()))?;
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| FetchError::Tls(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Self {
            policy,
            tls: Arc::new(tls),
        })
    }

    /// The policy.
    pub fn policy(&self) -> &FetchPolicy {
        &self.policy
    }

    /// Checks a URL against the policy and resolves it to an allowed address.
    pub async fn check(&self, url: &str) -> Result<(Url, SocketAddr), FetchError> {
        let url = Url::parse(url)?;
        if url.scheme == "http" && !self.policy.allow_http {
            return Err(FetchError::Scheme(url.scheme));
        }
        if let Some(ports) = &self.policy.allowed_ports {
            if !ports.contains(&url.port) {
                return Err(FetchError::Port(url.port));
            }
        }
        if let Some(hosts) = &self.policy.allowed_hosts {
            if !hosts.iter().any(|h| h.eq_ignore_ascii_case(&url.host)) {
                return Err(FetchError::Host(url.host));
            }
        }
        let addresses: Vec<SocketAddr> = match url.host.parse::<IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, url.port)],
            Err(_) => tokio::time::timeout(
                self.policy.connect_timeout,
                tokio::net::lookup_host((url.host.as_str(), url.port)),
            )
            .await
            .map_err(|_| FetchError::Resolve(url.host.clone()))?
            .map_err(|_| FetchError::Resolve(url.host.clone()))?
            .collect(),
        };
        let first = addresses
            .first()
            .copied()
            .ok_or_else(|| FetchError::Resolve(url.host.clone()))?;
        if !self.policy.allow_private_addresses {
            if let Some(bad) = addresses.iter().find(|a| is_internal(a.ip())) {
                return Err(FetchError::Address(bad.ip()));
            }
        }
        Ok((url, first))
    }

    /// Fetches `url` (GET) under the policy, accepting certificate chains and CRLs.
    pub async fn fetch(&self, url: &str) -> Result<Fetched, FetchError> {
        self.fetch_with(
            url,
            "application/pem-certificate-chain, application/pkix-crl, */*",
            None,
        )
        .await
    }

    /// Fetches `url` (GET) under the policy with this `Accept` header and, when given, this
    /// `Authorization` header (never logged).
    pub async fn fetch_with(
        &self,
        url: &str,
        accept: &str,
        authorization: Option<&str>,
    ) -> Result<Fetched, FetchError> {
        let started = Instant::now();
        let total = self.policy.total_timeout;
        match tokio::time::timeout(total, self.fetch_inner(url, accept, authorization)).await {
            Ok(result) => result,
            Err(_) => Err(FetchError::Timeout(started.elapsed().as_millis())),
        }
    }

    async fn fetch_inner(
        &self,
        url: &str,
        accept: &str,
        authorization: Option<&str>,
    ) -> Result<Fetched, FetchError> {
        let (url, authority, tcp) = self.open(url).await?;
        let mut request = hyper::Request::get(url.path.as_str())
            .header(hyper::header::HOST, authority)
            .header(hyper::header::ACCEPT, accept);
        if let Some(authorization) = authorization {
            request = request.header(hyper::header::AUTHORIZATION, authorization);
        }
        let request = request
            .body(Empty::<Bytes>::new())
            .map_err(|e| FetchError::Http(e.to_string()))?;
        let response = self.round_trip(&url, tcp, request).await?;
        let status = response.status().as_u16();
        if (300..400).contains(&status) {
            return Err(FetchError::Redirect(status));
        }
        if status != 200 {
            return Err(FetchError::Status(status));
        }
        let max_age = response
            .headers()
            .get(hyper::header::CACHE_CONTROL)
            .and_then(|v| v.to_str().ok())
            .and_then(max_age);
        let body = self.read_capped(response).await?;
        Ok(Fetched { body, max_age })
    }

    /// Sends `body` to `url` with `POST` and this `Content-Type`, under the same policy as a
    /// fetch (scheme, port, host and address checks before connecting; the connect and total
    /// timeouts; the answer's body capped at the policy's `max_body`; no redirects: a 3xx is
    /// [`FetchError::Redirect`]). Every other status is an answer, not an error: the caller
    /// decides what a 4xx or a 5xx means for what it sent.
    pub async fn post(
        &self,
        url: &str,
        content_type: &str,
        body: Bytes,
    ) -> Result<Posted, FetchError> {
        let started = Instant::now();
        let total = self.policy.total_timeout;
        match tokio::time::timeout(total, self.post_inner(url, content_type, body)).await {
            Ok(result) => result,
            Err(_) => Err(FetchError::Timeout(started.elapsed().as_millis())),
        }
    }

    async fn post_inner(
        &self,
        url: &str,
        content_type: &str,
        body: Bytes,
    ) -> Result<Posted, FetchError> {
        let (url, authority, tcp) = self.open(url).await?;
        let request = hyper::Request::post(url.path.as_str())
            .header(hyper::header::HOST, authority)
            .header(hyper::header::ACCEPT, "application/json")
            .header(hyper::header::CONTENT_TYPE, content_type)
            .header(hyper::header::CONTENT_LENGTH, body.len())
            .body(Full::new(body))
            .map_err(|e| FetchError::Http(e.to_string()))?;
        let response = self.round_trip(&url, tcp, request).await?;
        let status = response.status().as_u16();
        if (300..400).contains(&status) {
            return Err(FetchError::Redirect(status));
        }
        let body = self.read_capped(response).await?;
        Ok(Posted { status, body })
    }

    /// Checks `url`, connects to the checked address within the connect timeout; returns the
    /// URL, the `Host` value and the connection.
    async fn open(&self, url: &str) -> Result<(Url, String, tokio::net::TcpStream), FetchError> {
        let (url, address) = self.check(url).await?;
        let tcp = tokio::time::timeout(
            self.policy.connect_timeout,
            tokio::net::TcpStream::connect(address),
        )
        .await
        .map_err(|_| FetchError::Timeout(self.policy.connect_timeout.as_millis()))?
        .map_err(|e| FetchError::Connect(e.to_string()))?;
        let _ = tcp.set_nodelay(true);
        let authority = if (url.scheme == "https" && url.port == 443)
            || (url.scheme == "http" && url.port == 80)
        {
            url.host.clone()
        } else if url.host.contains(':') {
            format!("[{}]:{}", url.host, url.port)
        } else {
            format!("{}:{}", url.host, url.port)
        };
        Ok((url, authority, tcp))
    }

    /// Sends `request` over `tcp` (in TLS for `https`) and returns the response's head.
    async fn round_trip<B>(
        &self,
        url: &Url,
        tcp: tokio::net::TcpStream,
        request: hyper::Request<B>,
    ) -> Result<hyper::Response<hyper::body::Incoming>, FetchError>
    where
        B: hyper::body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        if url.scheme == "https" {
            let name = ServerName::try_from(url.host.clone())
                .map_err(|e| FetchError::Tls(e.to_string()))?;
            let stream = tokio_rustls::TlsConnector::from(Arc::clone(&self.tls))
                .connect(name, tcp)
                .await
                .map_err(|e| FetchError::Tls(e.to_string()))?;
            send(TokioIo::new(stream), request).await
        } else {
            send(TokioIo::new(tcp), request).await
        }
    }

    /// The response's body, refused beyond the policy's cap (declared or read).
    async fn read_capped(
        &self,
        response: hyper::Response<hyper::body::Incoming>,
    ) -> Result<Vec<u8>, FetchError> {
        let declared = response
            .headers()
            .get(hyper::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        if declared.is_some_and(|n| n > self.policy.max_body) {
            return Err(FetchError::TooLarge(self.policy.max_body));
        }
        Ok(Limited::new(response.into_body(), self.policy.max_body)
            .collect()
            .await
            .map_err(|e| {
                if e.downcast_ref::<http_body_util::LengthLimitError>()
                    .is_some()
                {
                    FetchError::TooLarge(self.policy.max_body)
                } else {
                    FetchError::Http(e.to_string())
                }
            })?
            .to_bytes()
            .to_vec())
    }
}

async fn send<T, B>(
    io: TokioIo<T>,
    request: hyper::Request<B>,
) -> Result<hyper::Response<hyper::body::Incoming>, FetchError>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| FetchError::Http(e.to_string()))?;
    tokio::spawn(connection);
    sender
        .send_request(request)
        .await
        .map_err(|e| FetchError::Http(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_strictly() {
        let u = Url::parse("https://CR.example.net/sp/1001/chain.pem?v=2").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.path.as_str()),
            ("cr.example.net", 443, "/sp/1001/chain.pem?v=2")
        );
        let u = Url::parse("https://[::1]:8443/a").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("::1", 8443));
        assert_eq!(Url::parse("http://127.0.0.1:9/x").unwrap().port, 9);
        for bad in [
            "ftp://x/y",
            "https://",
            "https://u:p@host/x",
            "https://host:99999/",
            "https://ho st/",
            "https://host/#f",
            "host/x",
            "https://[::1/x",
            // Found by the x5u_url fuzz target: an unbracketed IPv6 literal, a signed port,
            // labels that are not DNS labels, port 0, a bracketed non-address.
            "https://::1/a",
            "https://a:b:443/x",
            "https://::ffff:127.0.0.1:8443/x",
            "https://host:+0443/x",
            "https://-..-/x",
            "https://host:0/x",
            "https://[example]/x",
            "https://host./x",
        ] {
            assert!(Url::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn internal_addresses() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.1.1",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:10.0.0.1",
        ] {
            assert!(is_internal(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["8.8.8.8", "2001:4860::8888", "100.128.0.1"] {
            assert!(!is_internal(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn cache_control() {
        assert_eq!(max_age("public, max-age=600"), Some(600));
        assert_eq!(max_age("no-store"), Some(0));
        assert_eq!(max_age("public"), None);
        assert_eq!(max_age("max-age=abc"), None);
    }

    /// A one-shot HTTP/1.1 server on loopback answering `answer` (a whole response) and
    /// handing back the request it read.
    async fn one_shot(answer: &'static str) -> (String, tokio::task::JoinHandle<String>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/v1/events", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut seen = Vec::new();
            let mut buffer = [0_u8; 4096];
            // Read the head, then the body its Content-Length announces.
            loop {
                let n = stream.read(&mut buffer).await.unwrap();
                seen.extend_from_slice(&buffer[..n]);
                let text = String::from_utf8_lossy(&seen).to_string();
                if let Some((head, body)) = text.split_once("\r\n\r\n") {
                    let length = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length: "))
                        .and_then(|v| v.parse::<usize>().ok())
                        .unwrap_or(0);
                    if body.len() >= length {
                        break;
                    }
                }
                if n == 0 {
                    break;
                }
            }
            stream.write_all(answer.as_bytes()).await.unwrap();
            String::from_utf8_lossy(&seen).to_string()
        });
        (url, task)
    }

    fn loopback_policy() -> FetchPolicy {
        FetchPolicy {
            allow_http: true,
            allow_private_addresses: true,
            allowed_ports: None,
            ..FetchPolicy::default()
        }
    }

    #[tokio::test]
    async fn post_sends_the_body_and_answers_any_status_but_a_redirect() {
        let fetcher = Fetcher::new(loopback_policy(), &[]).unwrap();
        let (url, server) =
            one_shot("HTTP/1.1 200 OK\r\ncontent-length: 14\r\n\r\n{\"accepted\":2}").await;
        let posted = fetcher
            .post(
                &url,
                "application/x-ndjson",
                Bytes::from_static(b"{}\n{}\n"),
            )
            .await
            .unwrap();
        assert_eq!(posted.status, 200);
        assert!(posted.is_success());
        assert_eq!(posted.body, br#"{"accepted":2}"#);
        let request = server.await.unwrap();
        assert!(
            request.starts_with("POST /v1/events HTTP/1.1\r\n"),
            "{request}"
        );
        assert!(
            request.contains("content-type: application/x-ndjson\r\n"),
            "{request}"
        );
        assert!(request.ends_with("\r\n\r\n{}\n{}\n"), "{request}");

        let (url, _server) =
            one_shot("HTTP/1.1 413 Payload Too Large\r\ncontent-length: 0\r\n\r\n").await;
        let posted = fetcher
            .post(&url, "text/plain", Bytes::new())
            .await
            .unwrap();
        assert_eq!((posted.status, posted.is_success()), (413, false));

        let (url, _server) = one_shot(
            "HTTP/1.1 307 Temporary Redirect\r\nlocation: /x\r\ncontent-length: 0\r\n\r\n",
        )
        .await;
        assert_eq!(
            fetcher.post(&url, "text/plain", Bytes::new()).await,
            Err(FetchError::Redirect(307))
        );

        let small = Fetcher::new(
            FetchPolicy {
                max_body: 4,
                ..loopback_policy()
            },
            &[],
        )
        .unwrap();
        let (url, _server) =
            one_shot("HTTP/1.1 200 OK\r\ncontent-length: 14\r\n\r\n{\"accepted\":2}").await;
        assert_eq!(
            small.post(&url, "text/plain", Bytes::new()).await,
            Err(FetchError::TooLarge(4))
        );
    }

    #[tokio::test]
    async fn post_keeps_the_policy_and_the_timeout() {
        let fetcher = Fetcher::new(FetchPolicy::default(), &[]).unwrap();
        assert_eq!(
            fetcher
                .post(
                    "http://127.0.0.1:8443/v1/events",
                    "text/plain",
                    Bytes::new()
                )
                .await,
            Err(FetchError::Scheme("http".into()))
        );
        assert_eq!(
            fetcher
                .post("https://127.0.0.1/v1/events", "text/plain", Bytes::new())
                .await,
            Err(FetchError::Address("127.0.0.1".parse().unwrap()))
        );
        // A server that accepts and never answers: the total timeout ends the wait.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/v1/events", listener.local_addr().unwrap());
        let _hold = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            tokio::time::sleep(Duration::from_secs(5)).await;
            drop(stream);
        });
        let slow = Fetcher::new(
            FetchPolicy {
                total_timeout: Duration::from_millis(200),
                ..loopback_policy()
            },
            &[],
        )
        .unwrap();
        let started = Instant::now();
        assert!(matches!(
            slow.post(&url, "text/plain", Bytes::new()).await,
            Err(FetchError::Timeout(_))
        ));
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[tokio::test]
    async fn policy_refusals_happen_before_any_connection() {
        let fetcher = Fetcher::new(FetchPolicy::default(), &[]).unwrap();
        assert_eq!(
            fetcher.fetch("http://cr.example.net/a.pem").await,
            Err(FetchError::Scheme("http".into()))
        );
        assert_eq!(
            fetcher.fetch("https://cr.example.net:9443/a.pem").await,
            Err(FetchError::Port(9443))
        );
        assert_eq!(
            fetcher.fetch("https://127.0.0.1/a.pem").await,
            Err(FetchError::Address("127.0.0.1".parse().unwrap()))
        );
        let listed = Fetcher::new(
            FetchPolicy {
                allowed_hosts: Some(vec!["cr.example.net".into()]),
                ..FetchPolicy::default()
            },
            &[],
        )
        .unwrap();
        assert_eq!(
            listed.fetch("https://evil.example/a.pem").await,
            Err(FetchError::Host("evil.example".into()))
        );
    }
}
