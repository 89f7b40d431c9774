//! Serving an ATIS-1000082 service: connections (plain or TLS, with the client certificate
//! kept), the request rules every such service applies, and JSON responses that always carry
//! `X-RequestID` (echoed, or a new UUID-form id).
//!
//! Request rule order: `Accept` (406 `SVC4002`), `Content-Type` (415 `SVC4004`),
//! `Content-Length` (411 `SVC4007`), size (413), then the body is read, capped.

use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
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
/// that path (405), anything else (404).
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
    /// Another method on the service path (405 `POL4050`).
    MethodNotAllowed,
    /// Anything else (404 `SVC4003`).
    NotFound,
}

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
        (_, p) if p == service_path => Route::MethodNotAllowed,
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

/// A fresh request id in UUID form: a random per-process prefix and a counter, so that a busy
/// service does not ask the kernel for randomness on every request (it is not a secret).
pub fn new_request_id() -> String {
    static PREFIX: OnceLock<u128> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let prefix = *PREFIX.get_or_init(|| uuid::Uuid::new_v4().as_u128());
    let n = u128::from(COUNTER.fetch_add(1, Ordering::Relaxed));
    let value = (prefix & !(u128::from(u64::MAX) | (0xF000_u128 << 64))) | (0x4000_u128 << 64) | n;
    uuid::Uuid::from_u128(value).to_string()
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

/// The error's JSON response.
pub fn error_response(
    error: &ApiError,
    extra: Option<&str>,
    request_id: &str,
) -> Response<Full<Bytes>> {
    json_response(error.status(), error.body(extra), request_id)
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
