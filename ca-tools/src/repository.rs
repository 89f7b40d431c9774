//! The certificate repository (STI-CR): an HTTPS server that publishes certificate chains and
//! CRLs from a folder at stable URLs.
//!
//! - `GET` and `HEAD` only (others: 405 with `Allow`). A file is served at the URL path of its
//!   path relative to the folder.
//! - Only `.pem`, `.crt`, `.cer` (as `application/pem-certificate-chain`) and `.crl` (as
//!   `application/pkix-crl`) are served; every other name is 404, and so is a chain file that
//!   holds a private key, so a key left in the folder by mistake is never published.
//! - Path segments are limited to `[A-Za-z0-9._-]`, none may start with `.`, and the resolved
//!   file must stay inside the folder (no `..`, no escaping symlink).
//! - `Cache-Control: max-age=N`, a strong `ETag` (SHA-256 of the content), `If-None-Match`
//!   answered with 304.
//! - Files are read per request (so a new CRL is published by replacing the file), with a size
//!   cap. Connections go through the serve loop every service shares ([`rest::http::serve`]):
//!   TLS handshakes and request headers have timeouts, shutdown is graceful.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use rest::http::{Handler, Peer};
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::error::CaError;

/// The largest file served.
pub const MAX_FILE_SIZE: u64 = 1024 * 1024;
/// The default `Cache-Control: max-age`.
pub const DEFAULT_MAX_AGE: u64 = 3600;

/// What the repository serves.
#[derive(Clone, Debug)]
pub struct RepositoryConfig {
    /// The folder published.
    pub dir: PathBuf,
    /// `Cache-Control: max-age` in seconds.
    pub max_age: u64,
}

/// The repository's request handler for the shared serve loop ([`rest::http::serve`]): every
/// request answered by [`respond`] over one published folder.
#[derive(Debug)]
pub struct Repository {
    config: RepositoryConfig,
}

impl Repository {
    /// The repository publishing `config.dir`, resolved once to its real path (the check that
    /// a served file stays inside the folder compares real paths). Fails if the folder cannot
    /// be resolved.
    pub fn new(config: RepositoryConfig) -> Result<Self, CaError> {
        let dir = config
            .dir
            .canonicalize()
            .map_err(|e| CaError::io(&config.dir, &e))?;
        Ok(Self {
            config: RepositoryConfig { dir, ..config },
        })
    }
}

impl Handler for Repository {
    fn handle(
        &self,
        request: Request<Incoming>,
        _peer: &Peer,
    ) -> impl Future<Output = Response<Full<Bytes>>> + Send {
        std::future::ready(respond(
            &self.config,
            request.method(),
            request.uri().path(),
            request.headers(),
        ))
    }
}

/// Serves HTTPS on `listener` with `tls` (for instance from [`rest::tls::acceptor_from_pem`])
/// until `shutdown` completes, then lets requests in flight finish. Fails at once, serving
/// nothing, if the folder cannot be resolved.
pub async fn serve(
    listener: TcpListener,
    tls: TlsAcceptor,
    config: RepositoryConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), CaError> {
    let repository = Arc::new(Repository::new(config)?);
    rest::http::serve(listener, repository, Some(tls), shutdown).await;
    Ok(())
}

fn plain(status: StatusCode, text: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// The response to one request (exposed for tests that need no network).
pub fn respond(
    config: &RepositoryConfig,
    method: &Method,
    path: &str,
    headers: &hyper::HeaderMap,
) -> Response<Full<Bytes>> {
    if method != Method::GET && method != Method::HEAD {
        let mut response = plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    let Some((file, content_type)) = resolve(&config.dir, path) else {
        return plain(StatusCode::NOT_FOUND, "not found\n");
    };
    let body = match read_capped(&file) {
        Ok(body) => body,
        Err(_) => return plain(StatusCode::NOT_FOUND, "not found\n"),
    };
    if content_type == CHAIN && contains(&body, b"PRIVATE KEY") {
        // Never publish a key, whatever the file is called.
        return plain(StatusCode::NOT_FOUND, "not found\n");
    }
    let digest = Sha256::digest(&body);
    let etag = format!(
        "\"{}\"",
        digest
            .iter()
            .take(16)
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    );
    let cache_control = format!("max-age={}", config.max_age);
    let not_modified = headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .any(|tag| tag == "*" || tag == etag || tag.strip_prefix("W/") == Some(etag.as_str()));

    let length = body.len();
    let mut response = if not_modified {
        let mut r = Response::new(Full::new(Bytes::new()));
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        r
    } else if method == Method::HEAD {
        Response::new(Full::new(Bytes::new()))
    } else {
        Response::new(Full::new(Bytes::from(body)))
    };
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(v) = HeaderValue::from_str(&cache_control) {
        headers.insert(header::CACHE_CONTROL, v);
    }
    if let Ok(v) = HeaderValue::from_str(&etag) {
        headers.insert(header::ETAG, v);
    }
    if method == Method::HEAD && !not_modified {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    }
    response
}

const CHAIN: &str = "application/pem-certificate-chain";
const CRL: &str = "application/pkix-crl";

/// The file for a URL path and its content type, or `None` if it must not be served.
fn resolve(root: &Path, url_path: &str) -> Option<(PathBuf, &'static str)> {
    let relative = url_path.strip_prefix('/')?;
    let mut path = root.to_owned();
    for segment in relative.split('/') {
        let allowed = !segment.is_empty()
            && !segment.starts_with('.')
            && segment
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
        if !allowed {
            return None;
        }
        path.push(segment);
    }
    let content_type = match path.extension()?.to_str()? {
        "pem" | "crt" | "cer" => CHAIN,
        "crl" => CRL,
        _ => return None,
    };
    // Resolve symlinks and make sure the file is still inside the published folder.
    let real = path.canonicalize().ok()?;
    if !real.starts_with(root) || !real.is_file() {
        return None;
    }
    Some((real, content_type))
}

fn read_capped(path: &Path) -> std::io::Result<Vec<u8>> {
    let size = std::fs::metadata(path)?.len();
    if size > MAX_FILE_SIZE {
        return Err(std::io::Error::other("file too large to serve"));
    }
    std::fs::read(path)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dir: &Path) -> RepositoryConfig {
        RepositoryConfig {
            dir: dir.canonicalize().unwrap(),
            max_age: 600,
        }
    }

    #[test]
    fn serves_only_published_kinds_inside_the_folder() {
        let outer = tempfile::tempdir().unwrap();
        let dir = outer.path().join("pub");
        std::fs::create_dir_all(dir.join("sp")).unwrap();
        std::fs::write(
            dir.join("sp/chain.pem"),
            "-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        std::fs::write(
            dir.join("sp/key.pem"),
            "-----BEGIN PRIVATE KEY-----\nAA==\n-----END PRIVATE KEY-----\n",
        )
        .unwrap();
        std::fs::write(dir.join("ca.crl"), [0x30, 0x00]).unwrap();
        std::fs::write(dir.join("ca.key"), "secret").unwrap();
        std::fs::write(outer.path().join("outside.pem"), "x").unwrap();
        std::os::unix::fs::symlink(outer.path().join("outside.pem"), dir.join("link.pem")).unwrap();
        let c = config(&dir);
        let get = |p: &str| respond(&c, &Method::GET, p, &hyper::HeaderMap::new()).status();
        assert_eq!(get("/sp/chain.pem"), StatusCode::OK);
        assert_eq!(get("/ca.crl"), StatusCode::OK);
        for refused in [
            "/sp/key.pem",
            "/ca.key",
            "/link.pem",
            "/../outside.pem",
            "/sp/../ca.crl",
            "/sp//chain.pem",
            "/.hidden.pem",
            "/sp/chain.pem/",
            "sp/chain.pem",
            "/%2e%2e/outside.pem",
        ] {
            assert_eq!(get(refused), StatusCode::NOT_FOUND, "{refused}");
        }
        assert_eq!(
            respond(&c, &Method::POST, "/ca.crl", &hyper::HeaderMap::new()).status(),
            StatusCode::METHOD_NOT_ALLOWED
        );
    }
}
