//! The signing service: HTTP(S) on hyper, the ATIS-1000082 request rules, client
//! authorization, rate limits, the policy, signing, and the trace log.
//!
//! Request handling order: path (404 `SVC4003`) and method (405 `POL4050`); client allowed (403
//! `POL4030`) and under its rate limit (429 `POL4290`); `Accept` (406 `SVC4002`),
//! `Content-Type` (415 `SVC4004`), `Content-Length` (411 `SVC4007`), size (413); body (400
//! `SVC400x`); policy (403/503 `POL41xx`/`POL5031`); sign; record in the trace log and wait for
//! it to be durable; answer. Every response carries `X-RequestID` (echoed, or a new UUID) and
//! `Content-Type: application/json`.

use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use ipnet::IpNet;
use passport::{Claims, Dest, NumberingPlan, Party, TokenSigner};
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;

use crate::api::{self, ApiError, SigningRequest};
use crate::config::{ClientSection, SignerConfig};
use crate::metrics::SignerMetrics;
use crate::policy::{Basis, CallFacts, Decision, PolicyConfig};
use crate::registry::{CachedRegistry, NumberRecord};
use crate::trace::{TraceLog, TraceRecord};
use crate::SignerError;

/// The signing path.
pub const SIGNING_PATH: &str = "/stir/v1/signing";
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the policy gets registry answers; the real one is [`CachedRegistry`].
pub trait NumberLookup: Send + Sync {
    /// The registry's record for a canonical number.
    fn lookup(&self, tn: &str) -> Result<Option<Arc<NumberRecord>>, SignerError>;
    /// Cache (hits, misses), for metrics.
    fn hit_counts(&self) -> (u64, u64) {
        (0, 0)
    }
}

impl NumberLookup for CachedRegistry {
    fn lookup(&self, tn: &str) -> Result<Option<Arc<NumberRecord>>, SignerError> {
        CachedRegistry::lookup(self, tn)
    }
    fn hit_counts(&self) -> (u64, u64) {
        CachedRegistry::hit_counts(self)
    }
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
    rate: u32,
    bucket: Option<Mutex<Bucket>>,
}

impl Client {
    /// From configuration.
    pub fn from_config(section: &ClientSection) -> Result<Self, SignerError> {
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
                    .ok_or_else(|| {
                        SignerError::Config(format!(
                            "client {:?}: certificate_sha256 is not 32 hex bytes",
                            section.name
                        ))
                    })?;
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

    fn matches(&self, ip: IpAddr, certificate: Option<&[u8]>) -> bool {
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

    fn allow(&self) -> bool {
        match &self.bucket {
            None => true,
            Some(bucket) => bucket
                .lock()
                .map(|mut b| b.take(Instant::now()))
                .unwrap_or(false),
        }
    }
}

/// Everything a request handler needs.
pub struct SignerState {
    signer: RwLock<Arc<TokenSigner>>,
    registry: Arc<dyn NumberLookup>,
    trace: TraceLog,
    policy: PolicyConfig,
    plan: Option<NumberingPlan>,
    clients: Vec<Client>,
    max_body: usize,
    /// Metrics.
    pub metrics: SignerMetrics,
}

impl std::fmt::Debug for SignerState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignerState")
            .field("clients", &self.clients.len())
            .finish_non_exhaustive()
    }
}

/// The pieces a service is built from.
pub struct StateParts {
    /// The token signer.
    pub signer: Arc<TokenSigner>,
    /// The registry.
    pub registry: Arc<dyn NumberLookup>,
    /// The trace log.
    pub trace: TraceLog,
    /// The policy.
    pub policy: PolicyConfig,
    /// Numbering plan for national forms.
    pub plan: Option<NumberingPlan>,
    /// Allowed clients (empty: loopback).
    pub clients: Vec<Client>,
    /// Body limit.
    pub max_body: usize,
}

impl SignerState {
    /// Builds the state.
    pub fn new(parts: StateParts) -> Self {
        let clients = if parts.clients.is_empty() {
            vec![Client::loopback()]
        } else {
            parts.clients
        };
        Self {
            signer: RwLock::new(parts.signer),
            registry: parts.registry,
            trace: parts.trace,
            policy: parts.policy,
            plan: parts.plan,
            clients,
            max_body: parts.max_body,
            metrics: SignerMetrics::default(),
        }
    }

    /// Builds the state from configuration (opens the registry and trace log).
    pub fn from_config(
        config: &SignerConfig,
        signer: Arc<TokenSigner>,
    ) -> Result<Self, SignerError> {
        let registry = crate::registry::Registry::open(&config.registry_db)?;
        let cached = CachedRegistry::new(
            registry,
            config.cache_capacity,
            Duration::from_secs(config.cache_ttl_seconds),
        );
        let clients = config
            .clients
            .iter()
            .map(Client::from_config)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self::new(StateParts {
            signer,
            registry: Arc::new(cached),
            trace: TraceLog::open(&config.trace_db)?,
            policy: config.policy_config(),
            plan: config.plan(),
            clients,
            max_body: config.max_body_bytes,
        }))
    }

    /// Swaps in a new signer (key reload); requests in flight finish with the old one.
    pub fn replace_signer(&self, signer: Arc<TokenSigner>) {
        if let Ok(mut current) = self.signer.write() {
            *current = signer;
        }
    }

    fn current_signer(&self) -> Option<Arc<TokenSigner>> {
        self.signer.read().ok().map(|s| Arc::clone(&s))
    }
}

/// Serves on `listener` until `shutdown` completes, then lets requests in flight finish.
pub async fn serve(
    listener: TcpListener,
    state: Arc<SignerState>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shutdown: impl Future<Output = ()>,
) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
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
        let state = Arc::clone(&state);
        let watcher = graceful.watcher();
        let tls = tls.clone();
        tokio::spawn(async move {
            let builder = {
                let mut b = hyper::server::conn::http1::Builder::new();
                b.timer(TokioTimer::new())
                    .header_read_timeout(HEADER_READ_TIMEOUT);
                b
            };
            match tls {
                None => {
                    let service = service(state, peer, None);
                    let connection = builder.serve_connection(TokioIo::new(stream), service);
                    let _ = watcher.watch(connection).await;
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
                        .map(|c| c.as_ref().to_vec());
                    let service = service(state, peer, certificate);
                    let connection = builder.serve_connection(TokioIo::new(stream), service);
                    let _ = watcher.watch(connection).await;
                }
            }
        });
    }
    // Wait (bounded) for connections to finish their requests.
    let _ = tokio::time::timeout(Duration::from_secs(10), graceful.shutdown()).await;
}

/// The per-connection service: the peer's address and client certificate, and the state.
#[derive(Clone)]
struct ConnectionService {
    state: Arc<SignerState>,
    ip: IpAddr,
    certificate: Option<Arc<[u8]>>,
}

impl hyper::service::Service<Request<Incoming>> for ConnectionService {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future =
        std::pin::Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            Ok(handle(&this.state, request, this.ip, this.certificate.as_deref()).await)
        })
    }
}

fn service(
    state: Arc<SignerState>,
    peer: SocketAddr,
    certificate: Option<Vec<u8>>,
) -> ConnectionService {
    ConnectionService {
        state,
        ip: peer.ip(),
        certificate: certificate.map(Arc::from),
    }
}

fn request_id(headers: &HeaderMap) -> String {
    headers
        .get("x-requestid")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map_or_else(new_request_id, str::to_owned)
}

/// A fresh request id in UUID form: a random per-process prefix and a counter, so that a busy
/// signer does not ask the kernel for randomness on every request (it is not a secret).
fn new_request_id() -> String {
    use std::sync::atomic::AtomicU64;
    use std::sync::OnceLock;
    static PREFIX: OnceLock<u128> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let prefix = *PREFIX.get_or_init(|| uuid::Uuid::new_v4().as_u128());
    let n = u128::from(COUNTER.fetch_add(1, Ordering::Relaxed));
    let value = (prefix & !(u128::from(u64::MAX) | (0xF000_u128 << 64))) | (0x4000_u128 << 64) | n;
    uuid::Uuid::from_u128(value).to_string()
}

fn json_response(status: StatusCode, body: Vec<u8>, request_id: &str) -> Response<Full<Bytes>> {
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

fn error_response(
    state: &SignerState,
    error: &ApiError,
    extra: Option<&str>,
    request_id: &str,
) -> Response<Full<Bytes>> {
    state.metrics.errors.inc_for_message(error.message_id());
    json_response(error.status(), error.body(extra), request_id)
}

/// Handles one request.
pub async fn handle(
    state: &SignerState,
    request: Request<Incoming>,
    ip: IpAddr,
    certificate: Option<&[u8]>,
) -> Response<Full<Bytes>> {
    let started = Instant::now();
    let request_id = request_id(request.headers());
    let client = state.clients.iter().find(|c| c.matches(ip, certificate));
    let response = match (request.method(), request.uri().path()) {
        (_, _) if client.is_none() => {
            error_response(state, &ApiError::Unauthorized, None, &request_id)
        }
        (&Method::GET, "/healthz") => {
            json_response(StatusCode::OK, br#"{"status":"ok"}"#.to_vec(), &request_id)
        }
        (&Method::GET, "/metrics") => {
            let mut response = Response::new(Full::new(Bytes::from(
                state.metrics.render(state.registry.hit_counts()),
            )));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4"),
            );
            return response;
        }
        (&Method::POST, SIGNING_PATH) => match client {
            Some(client) => sign(state, request, client, &request_id).await,
            None => error_response(state, &ApiError::Unauthorized, None, &request_id),
        },
        (_, SIGNING_PATH) => error_response(state, &ApiError::MethodNotAllowed, None, &request_id),
        _ => error_response(state, &ApiError::NotFound, None, &request_id),
    };
    state.metrics.latency.observe(started.elapsed());
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

fn checks_before_body(headers: &HeaderMap, max_body: usize) -> Result<(), ApiError> {
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

async fn sign(
    state: &SignerState,
    request: Request<Incoming>,
    client: &Client,
    request_id: &str,
) -> Response<Full<Bytes>> {
    if !client.allow() {
        return error_response(
            state,
            &ApiError::RateLimited,
            Some(&client.rate.to_string()),
            request_id,
        );
    }
    if let Err(error) = checks_before_body(request.headers(), state.max_body) {
        return error_response(state, &error, None, request_id);
    }
    let body = match Limited::new(request.into_body(), state.max_body)
        .collect()
        .await
    {
        Ok(body) => body.to_bytes(),
        Err(_) => {
            return error_response(state, &ApiError::TooLarge(state.max_body), None, request_id)
        }
    };
    let parsed = match api::parse_signing_request(&body, state.plan) {
        Ok(parsed) => parsed,
        Err(error) => return error_response(state, &error, None, request_id),
    };
    decide_and_sign(state, parsed, client, request_id).await
}

async fn decide_and_sign(
    state: &SignerState,
    request: SigningRequest,
    client: &Client,
    request_id: &str,
) -> Response<Full<Bytes>> {
    let customer = request.customer.as_deref().or(client.customer.as_deref());
    let facts = CallFacts {
        attest: request.attest,
        orig: &request.orig,
        dest: &request.dest,
        customer,
    };
    let lookup = if state.policy.needs_lookup(&facts) {
        state
            .registry
            .lookup(request.orig.as_str())
            .map_err(|error| {
                tracing::warn!(%error, "registry lookup failed");
            })
    } else {
        Ok(None)
    };
    let decision = state.policy.decide(
        &facts,
        lookup.as_ref().map(|r| r.as_deref()).map_err(|_| ()),
    );
    let owner = lookup.ok().flatten().map(|r| r.customer.id.clone());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut record = TraceRecord {
        at: now,
        request_id: request_id.to_owned(),
        outcome: String::new(),
        message_id: None,
        origid: Some(request.origid.to_string()),
        orig: request.orig.to_string(),
        dest: request.dest.iter().map(ToString::to_string).collect(),
        attest: None,
        customer: owner,
        client: client.name.clone(),
    };
    match decision {
        Decision::Refuse(refusal) => {
            let error = ApiError::Policy(refusal);
            record.outcome = "refused".into();
            record.message_id = Some(error.message_id().to_owned());
            if let Err(e) = state.trace.record(record).await {
                tracing::error!(error = %e, "trace log write failed");
                return error_response(state, &ApiError::Internal, None, request_id);
            }
            state
                .metrics
                .requests
                .inc("outcome=\"refused\",attest=\"none\"");
            error_response(state, &error, Some(request.orig.as_str()), request_id)
        }
        Decision::Sign(level, basis) => {
            let Some(signer) = state.current_signer() else {
                return error_response(state, &ApiError::Internal, None, request_id);
            };
            let dest = Dest::tns(request.dest.iter().map(ToString::to_string).collect());
            let Some(dest) = dest else {
                return error_response(
                    state,
                    &ApiError::InvalidValue("dest.tn".into(), "empty".into()),
                    None,
                    request_id,
                );
            };
            let claims = Claims::shaken(
                request.iat,
                Party::Tn(request.orig.to_string()),
                dest,
                level,
                request.origid.clone(),
            );
            let identity = match signer.identity_header(&claims) {
                Ok(identity) => identity,
                Err(e) => {
                    tracing::error!(error = %e, "signing failed");
                    state
                        .metrics
                        .requests
                        .inc("outcome=\"error\",attest=\"none\"");
                    return error_response(state, &ApiError::Internal, None, request_id);
                }
            };
            record.outcome = "signed".into();
            record.attest = Some(level.to_string());
            if basis == Basis::Emergency {
                record.message_id = Some("emergency".into());
            }
            if let Err(e) = state.trace.record(record).await {
                tracing::error!(error = %e, "trace log write failed");
                state
                    .metrics
                    .requests
                    .inc("outcome=\"error\",attest=\"none\"");
                return error_response(state, &ApiError::Internal, None, request_id);
            }
            state.metrics.requests.inc(signed_label(level));
            json_response(StatusCode::OK, api::signing_response(&identity), request_id)
        }
    }
}

fn signed_label(level: passport::Attestation) -> &'static str {
    match level {
        passport::Attestation::A => r#"outcome="signed",attest="A""#,
        passport::Attestation::B => r#"outcome="signed",attest="B""#,
        passport::Attestation::C => r#"outcome="signed",attest="C""#,
    }
}

/// Days from `now` to `not_after`, for the expiry metric.
pub fn days_left(not_after: u64, now: u64) -> i64 {
    (i64::try_from(not_after).unwrap_or(i64::MAX) - i64::try_from(now).unwrap_or(0))
        .div_euclid(86_400)
}

/// Stores the certificate expiry in the metrics and says whether to warn.
pub fn note_certificate_expiry(
    state: &SignerState,
    not_after: u64,
    now: u64,
    warn_days: u64,
) -> bool {
    let days = days_left(not_after, now);
    state
        .metrics
        .certificate_days_left
        .store(days, Ordering::Relaxed);
    days < i64::try_from(warn_days).unwrap_or(i64::MAX)
}
