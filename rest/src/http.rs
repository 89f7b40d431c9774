//! Serving an ATIS-1000082 service: connections (plain or TLS, with the client certificate
//! kept), the request rules every such service applies, and JSON responses that always carry
//! `X-RequestID` (echoed, or a new random UUID, version 4).
//!
//! Request rule order: `Accept` (406 `SVC4002`), `Content-Type` (415 `SVC4004`),
//! `Content-Length` (411 `SVC4007`), size (413), then the body is read, capped.

use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};

use crate::clients::{Client, Clients};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;

use crate::error::ApiError;

const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Who is on the other end of a connection.
#[derive(Clone, Debug)]
pub struct Peer {
    /// The source address.
    pub ip: IpAddr,
    /// The TLS client certificate (DER), if one was presented.
    pub certificate: Option<Arc<[u8]>>,
}

/// A service's request handler.
pub trait Handler: Send + Sync + 'static {
    /// Answers one request.
    fn handle(
        &self,
        request: Request<Incoming>,
        peer: &Peer,
    ) -> impl Future<Output = Response<Full<Bytes>>> + Send;
}

/// Where a request goes; every service decides it the same way: an unknown client is refused
/// first, then `GET /healthz`, `GET /metrics`, `POST` on the service's path, another method on
/// one of these three paths (405, with `Allow`), anything else (404).
#[derive(Debug)]
pub enum Route<'a> {
    /// Not an allowed client (403 `POL4030`).
    Unauthorized,
    /// `GET /healthz`.
    Health,
    /// `GET /metrics`.
    Metrics,
    /// `POST` on the service path, by this client.
    Service(&'a Client),
    /// Another method on a known path (405 `POL4050`); the methods that path allows, for the
    /// `Allow` header (RFC 9110 §15.5.6): [`ALLOW_SERVICE`] or [`ALLOW_GET`].
    MethodNotAllowed(&'static str),
    /// Anything else (404 `SVC4003`).
    NotFound,
}

/// The `Allow` value of a service path: POST only (ATIS-1000082).
pub const ALLOW_SERVICE: &str = "POST";
/// The `Allow` value of `/healthz` and `/metrics`.
pub const ALLOW_GET: &str = "GET";

/// Routes a request for a service whose ATIS path is `service_path`.
pub fn route<'a>(
    clients: &'a Clients,
    peer: &Peer,
    method: &Method,
    path: &str,
    service_path: &str,
) -> Route<'a> {
    let Some(client) = clients.find(peer.ip, peer.certificate.as_deref()) else {
        return Route::Unauthorized;
    };
    match (method, path) {
        (&Method::GET, "/healthz") => Route::Health,
        (&Method::GET, "/metrics") => Route::Metrics,
        (&Method::POST, p) if p == service_path => Route::Service(client),
        (_, p) if p == service_path => Route::MethodNotAllowed(ALLOW_SERVICE),
        (_, "/healthz" | "/metrics") => Route::MethodNotAllowed(ALLOW_GET),
        _ => Route::NotFound,
    }
}

/// The `/healthz` answer.
pub fn health(request_id: &str) -> Response<Full<Bytes>> {
    json_response(StatusCode::OK, br#"{"status":"ok"}"#.to_vec(), request_id)
}

/// The request's X-RequestID if usable (printable ASCII, at most 128 bytes), else a new one.
pub fn request_id(headers: &HeaderMap) -> String {
    headers
        .get("x-requestid")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map_or_else(new_request_id, str::to_owned)
}

/// A fresh request id: a random UUID, version 4 (RFC 9562), lower-case and hyphenated. The
/// random bits come from a per-thread generator seeded from the operating system, so that a
/// busy service does not ask the kernel for randomness on every request (an id is not a
/// secret, but it must not repeat).
pub fn new_request_id() -> String {
    let bytes = REQUEST_ID_RNG.with(|rng| {
        let mut rng = rng.borrow_mut();
        let mut bytes = [0_u8; 16];
        let (high, low) = bytes.split_at_mut(8);
        high.copy_from_slice(&rng.next().to_le_bytes());
        low.copy_from_slice(&rng.next().to_le_bytes());
        bytes
    });
    uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .hyphenated()
        .to_string()
}

thread_local! {
    static REQUEST_ID_RNG: std::cell::RefCell<SplitMix64> = std::cell::RefCell::new(SplitMix64::from_os());
}

/// SplitMix64 (Steele, Lea and Flood, 2014): a counter through a bijective mixer, so one
/// thread's outputs do not repeat within 2^64 calls; threads start from independent OS seeds.
struct SplitMix64(u64);

impl SplitMix64 {
    fn from_os() -> Self {
        use std::hash::{BuildHasher, Hasher};
        // The standard library keys each `RandomState` from the operating system's randomness
        // (once per thread, then a step per value): an empty hash under such a key is a seed.
        Self(
            std::collections::hash_map::RandomState::new()
                .build_hasher()
                .finish(),
        )
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// A JSON response with `X-RequestID`.
pub fn json_response(status: StatusCode, body: Vec<u8>, request_id: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Ok(id) = HeaderValue::from_str(request_id) {
        headers.insert("x-requestid", id);
    }
    response
}

/// The error's JSON response; a 405 carries the `Allow` header its error names.
pub fn error_response(
    error: &ApiError,
    extra: Option<&str>,
    request_id: &str,
) -> Response<Full<Bytes>> {
    let mut response = json_response(error.status(), error.body(extra), request_id);
    if let ApiError::MethodNotAllowed(allow) = error {
        if let Ok(value) = HeaderValue::from_str(allow) {
            response.headers_mut().insert(header::ALLOW, value);
        }
    }
    response
}

/// A plain-text response (metrics).
pub fn text_response(body: String, content_type: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

fn accepts_json(headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(accept) = headers.get(header::ACCEPT) else {
        return Ok(());
    };
    let text = accept
        .to_str()
        .map_err(|_| ApiError::NotAcceptable("(not text)".into()))?;
    let ok = text.split(',').any(|item| {
        let media = item
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        media == "application/json" || media == "application/*" || media == "*/*"
    });
    if ok {
        Ok(())
    } else {
        Err(ApiError::NotAcceptable(text.chars().take(100).collect()))
    }
}

/// The header rules of a JSON POST: Accept, Content-Type, Content-Length, size.
pub fn check_json_post(headers: &HeaderMap, max_body: usize) -> Result<(), ApiError> {
    accepts_json(headers)?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .eq_ignore_ascii_case("application/json")
    {
        return Err(ApiError::UnsupportedMediaType);
    }
    let length = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<usize>().ok())
        .ok_or(ApiError::MissingContentLength)?;
    if length > max_body {
        return Err(ApiError::TooLarge(max_body));
    }
    Ok(())
}

/// Reads a request body, at most `max_body` bytes.
pub async fn read_body(request: Request<Incoming>, max_body: usize) -> Result<Bytes, ApiError> {
    Limited::new(request.into_body(), max_body)
        .collect()
        .await
        .map(|body| body.to_bytes())
        .map_err(|_| ApiError::TooLarge(max_body))
}

struct ConnectionService<H> {
    handler: Arc<H>,
    peer: Peer,
}

impl<H> Clone for ConnectionService<H> {
    fn clone(&self) -> Self {
        Self {
            handler: Arc::clone(&self.handler),
            peer: self.peer.clone(),
        }
    }
}

impl<H: Handler> hyper::service::Service<Request<Incoming>> for ConnectionService<H> {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future =
        std::pin::Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        let this = self.clone();
        Box::pin(async move { Ok(this.handler.handle(request, &this.peer).await) })
    }
}

/// Serves on `listener` (HTTPS when `tls` is given) until `shutdown` completes, then lets
/// requests in flight finish (at most 10 s).
pub async fn serve<H: Handler>(
    listener: TcpListener,
    handler: Arc<H>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shutdown: impl Future<Output = ()>,
) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, address): (tokio::net::TcpStream, SocketAddr) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let handler = Arc::clone(&handler);
        let watcher = graceful.watcher();
        let tls = tls.clone();
        tokio::spawn(async move {
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT);
            match tls {
                None => {
                    let service = ConnectionService {
                        handler,
                        peer: Peer {
                            ip: address.ip(),
                            certificate: None,
                        },
                    };
                    let _ = watcher
                        .watch(builder.serve_connection(TokioIo::new(stream), service))
                        .await;
                }
                Some(acceptor) => {
                    let Ok(Ok(stream)) =
                        tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await
                    else {
                        return;
                    };
                    let certificate = stream
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|c| c.first())
                        .map(|c| Arc::from(c.as_ref()));
                    let service = ConnectionService {
                        handler,
                        peer: Peer {
                            ip: address.ip(),
                            certificate,
                        },
                    };
                    let _ = watcher
                        .watch(builder.serve_connection(TokioIo::new(stream), service))
                        .await;
                }
            }
        });
    }
    let _ = tokio::time::timeout(Duration::from_secs(10), graceful.shutdown()).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_request_ids_are_distinct_version_4_uuids() {
        let mut seen = std::collections::HashSet::new();
        let ids: Vec<String> = (0..2000).map(|_| new_request_id()).collect();
        // From other threads too: each has its own generator.
        let others: Vec<String> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..4)
                .map(|_| scope.spawn(|| (0..500).map(|_| new_request_id()).collect::<Vec<_>>()))
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap())
                .collect()
        });
        for id in ids.iter().chain(&others) {
            let parsed = uuid::Uuid::parse_str(id).unwrap();
            assert_eq!(parsed.get_version(), Some(uuid::Version::Random), "{id}");
            assert_eq!(parsed.get_variant(), uuid::Variant::RFC4122, "{id}");
            assert_eq!(
                id,
                &parsed.hyphenated().to_string(),
                "lower-case hyphenated"
            );
            assert_eq!(id.len(), 36);
            assert!(seen.insert(id.clone()), "{id} repeats");
        }
        assert_eq!(seen.len(), 4000);
    }

    #[test]
    fn a_usable_request_id_is_echoed_and_a_bad_one_replaced() {
        let mut headers = HeaderMap::new();
        headers.insert("x-requestid", HeaderValue::from_static("sbc-42"));
        assert_eq!(request_id(&headers), "sbc-42");
        headers.insert("x-requestid", HeaderValue::from_static("has space"));
        assert!(uuid::Uuid::parse_str(&request_id(&headers)).is_ok());
        assert!(uuid::Uuid::parse_str(&request_id(&HeaderMap::new())).is_ok());
    }

    #[test]
    fn every_405_names_the_allowed_methods() {
        let clients = Clients::new(Vec::new());
        let peer = Peer {
            ip: IpAddr::from([127, 0, 0, 1]),
            certificate: None,
        };
        let allow = |method: Method, path: &str| match route(
            &clients,
            &peer,
            &method,
            path,
            "/stir/v1/signing",
        ) {
            Route::MethodNotAllowed(allow) => Some(allow),
            _ => None,
        };
        assert_eq!(allow(Method::GET, "/stir/v1/signing"), Some("POST"));
        assert_eq!(allow(Method::PUT, "/stir/v1/signing"), Some("POST"));
        assert_eq!(allow(Method::POST, "/healthz"), Some("GET"));
        assert_eq!(allow(Method::DELETE, "/metrics"), Some("GET"));
        assert_eq!(allow(Method::POST, "/stir/v1/signing"), None);
        assert!(matches!(
            route(&clients, &peer, &Method::PUT, "/other", "/stir/v1/signing"),
            Route::NotFound
        ));

        let response = error_response(&ApiError::MethodNotAllowed(ALLOW_SERVICE), None, "r-1");
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(
            response
                .headers()
                .get(header::ALLOW)
                .map(HeaderValue::as_bytes),
            Some(&b"POST"[..])
        );
        let other = error_response(&ApiError::NotFound, None, "r-1");
        assert!(other.headers().get(header::ALLOW).is_none());
    }
}
