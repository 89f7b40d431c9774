//! The opt-out service over HTTP (`shaken optout serve`), on `rest`'s serve loop:
//!
//! | request | answer |
//! |---|---|
//! | `GET /u/{token}` | the link's page: the firm's name, the number masked, one button (or, when already opted out, an Undo button) |
//! | `POST /u/{token}` | form `action=opt-out` (default) or `action=undo`: records it and states the result; pressing twice says it is already done |
//! | `GET /v1/optouts?after=CURSOR&limit=N` | the delta feed, with `Authorization: Bearer TOKEN` |
//! | `GET /healthz`, `GET /metrics` | health, counters |
//!
//! A malformed or tampered token answers 400, an expired one 410, each with a page saying why;
//! nothing changes. Every answer carries `Cache-Control: no-store`, `Referrer-Policy:
//! no-referrer` (the token is in the URL), a Content-Security-Policy allowing only inline
//! style and same-origin form posts, `X-Content-Type-Options: nosniff` and `X-Frame-Options:
//! DENY`. Each client (IPv4 address or IPv6 /64) is rate-limited (429 with `Retry-After`), the
//! body is capped (413), an unknown path is 404 and a wrong method 405 with `Allow`.
//!
//! The page shows only its own token's firm and number; the feed, which lists everyone's
//! changes, needs a bearer token. Subscriber numbers are never logged.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use rest::http::{Handler, Peer};
use serde::Serialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::Loaded;
use crate::error::{OptOutError, StoreError, TokenError};
use crate::form::{parse_form, FormAction};
use crate::metrics::{FeedOutcome, Metrics};
use crate::page::{self, Subject};
use crate::ratelimit::RateLimiter;
use crate::store::{Change, Outcome, Store, Via};
use crate::token::{LinkKey, Token, MAX_TOKEN_LEN};
use crate::Clock;

/// The feed's default page size.
pub const DEFAULT_FEED_LIMIT: usize = 1000;
/// The feed's largest page size; a larger `limit` is lowered to it.
pub const MAX_FEED_LIMIT: usize = 10_000;

/// The limits a service applies to each request.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Largest body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Requests a second per client (0: unlimited).
    pub rate_per_second: f64,
    /// Requests at once per client.
    pub burst: u32,
}

/// Everything a request needs: the store, the link key, the feed tokens' digests, the limits,
/// the counters and the clock.
pub struct OptOutState {
    store: Store,
    key: LinkKey,
    feed_token_digests: Vec<[u8; 32]>,
    max_body: usize,
    limiter: RateLimiter,
    metrics: Metrics,
    clock: Clock,
}

impl std::fmt::Debug for OptOutState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OptOutState")
            .field("store", &self.store)
            .field("feed_tokens", &self.feed_token_digests.len())
            .field("max_body", &self.max_body)
            .finish_non_exhaustive()
    }
}

fn digest(token: &[u8]) -> [u8; 32] {
    Sha256::digest(token).into()
}

impl OptOutState {
    /// A service state. Only the SHA-256 of each feed token is kept; a presented token is
    /// hashed and compared with each in constant time.
    pub fn new<T: AsRef<str>>(
        store: Store,
        key: LinkKey,
        feed_tokens: &[T],
        limits: Limits,
        clock: Clock,
    ) -> Self {
        Self {
            store,
            key,
            feed_token_digests: feed_tokens
                .iter()
                .map(|t| digest(t.as_ref().as_bytes()))
                .collect(),
            max_body: limits.max_body_bytes,
            limiter: RateLimiter::new(limits.rate_per_second, limits.burst),
            metrics: Metrics::default(),
            clock,
        }
    }

    /// From a loaded configuration: opens the store (SQLite or PostgreSQL). Blocks: must not
    /// be called from an async task ([`run`] calls it through `spawn_blocking`).
    pub fn from_config(loaded: Loaded, clock: Clock) -> Result<Self, OptOutError> {
        let Loaded {
            config,
            key,
            feed_tokens,
        } = loaded;
        let store = Store::open_at(&config.db)?;
        let tokens: Vec<&str> = feed_tokens.iter().map(|t| t.as_str()).collect();
        Ok(Self::new(
            store,
            key,
            &tokens,
            Limits {
                max_body_bytes: config.max_body_bytes,
                rate_per_second: config.rate_per_second,
                burst: config.burst,
            },
            clock,
        ))
    }

    /// The counters.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Runs `op` on the store on tokio's blocking pool: a store call waits on the disk or on
    /// PostgreSQL, and must not hold up the tasks serving other requests.
    async fn with_store<T: Send + 'static>(
        self: &Arc<Self>,
        op: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let state = Arc::clone(self);
        tokio::task::spawn_blocking(move || op(&state.store))
            .await
            .unwrap_or_else(|error| Err(StoreError::Interrupted(error.to_string())))
    }

    fn authorized(&self, headers: &HeaderMap) -> bool {
        let Some(presented) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim)
        else {
            return false;
        };
        let presented = digest(presented.as_bytes());
        // Every configured token is compared, so the time does not say which one matched.
        self.feed_token_digests
            .iter()
            .fold(subtle::Choice::from(0), |found, d| {
                found | d.ct_eq(&presented)
            })
            .into()
    }
}

/// Adds the headers every answer carries.
fn secure(mut response: Response<Full<Bytes>>) -> Response<Full<Bytes>> {
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CACHE_CONTROL, "no-store"),
        (header::REFERRER_POLICY, "no-referrer"),
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

fn html(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    response
}

fn json(status: StatusCode, body: &impl Serialize) -> Response<Full<Bytes>> {
    let bytes = serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec());
    let mut response = Response::new(Full::new(Bytes::from(bytes)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn json_error(status: StatusCode, message: &str) -> Response<Full<Bytes>> {
    json(status, &serde_json::json!({ "error": message }))
}

fn with_header(
    mut response: Response<Full<Bytes>>,
    name: header::HeaderName,
    value: &str,
) -> Response<Full<Bytes>> {
    if let Ok(value) = HeaderValue::from_str(value) {
        response.headers_mut().insert(name, value);
    }
    response
}

fn method_not_allowed(allow: &'static str) -> Response<Full<Bytes>> {
    with_header(
        html(
            StatusCode::METHOD_NOT_ALLOWED,
            page::message("Not allowed", "This address does not accept that request."),
        ),
        header::ALLOW,
        allow,
    )
}

fn refused_page(error: &TokenError) -> Response<Full<Bytes>> {
    let status = match error {
        TokenError::Expired { .. } => StatusCode::GONE,
        _ => StatusCode::BAD_REQUEST,
    };
    html(status, page::refused(error))
}

fn unavailable() -> Response<Full<Bytes>> {
    html(
        StatusCode::SERVICE_UNAVAILABLE,
        page::message(
            "Please try again",
            "The service cannot record your choice right now. Nothing was changed; please try again in a few minutes.",
        ),
    )
}

/// The feed's answer body.
#[derive(Serialize)]
struct FeedPage<'a> {
    changes: &'a [Change],
    cursor: u64,
}

/// Reads `after` and `limit` from the feed's query string.
fn feed_query(query: Option<&str>) -> Result<(u64, usize), &'static str> {
    let mut after = 0;
    let mut limit = DEFAULT_FEED_LIMIT;
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let number = || -> Result<u64, &'static str> {
            if value.is_empty() || value.len() > 20 || !value.bytes().all(|b| b.is_ascii_digit()) {
                return Err("after and limit are decimal numbers");
            }
            value
                .parse()
                .map_err(|_| "after and limit are decimal numbers")
        };
        match name {
            "after" => after = number()?,
            "limit" => {
                let n = number()?;
                if n == 0 {
                    return Err("limit must be at least 1");
                }
                limit = usize::try_from(n)
                    .unwrap_or(MAX_FEED_LIMIT)
                    .min(MAX_FEED_LIMIT);
            }
            _ => return Err("unknown query parameter (after, limit)"),
        }
    }
    Ok((after, limit))
}

/// The token part of `/u/{token}`.
fn token_of(path: &str) -> Option<&str> {
    path.strip_prefix("/u/")
}

/// The request handler.
#[derive(Debug)]
pub struct OptOutService {
    state: Arc<OptOutState>,
}

impl OptOutService {
    /// A handler over `state`.
    pub fn new(state: Arc<OptOutState>) -> Self {
        Self { state }
    }

    async fn link_page(&self, token_text: &str) -> Response<Full<Bytes>> {
        let state = &self.state;
        let token = match Token::parse(token_text, &state.key, (state.clock)()) {
            Ok(token) => token,
            Err(error) => {
                state.metrics.refused(&error);
                tracing::info!(reason = error.reason(), "link refused");
                return refused_page(&error);
            }
        };
        let subject = Subject {
            token: token_text,
            firm_name: &token.firm_name,
            subscriber: &token.subscriber,
        };
        let (subscriber, firm) = (token.subscriber.clone(), token.firm_id.clone());
        let looked_up = state
            .with_store(move |store| store.is_opted_out(&subscriber, &firm))
            .await;
        match looked_up {
            Ok(opted_out) => {
                state.metrics.page();
                let body = if opted_out {
                    page::opted_out(&subject, false)
                } else {
                    page::confirm(&subject)
                };
                html(StatusCode::OK, body)
            }
            Err(error) => {
                tracing::error!(%error, "opt-out store");
                unavailable()
            }
        }
    }

    async fn link_post(
        &self,
        token_text: &str,
        request: Request<Incoming>,
    ) -> Response<Full<Bytes>> {
        let state = &self.state;
        let too_large = || {
            state.metrics.too_large();
            html(
                StatusCode::PAYLOAD_TOO_LARGE,
                page::message(
                    "Request too large",
                    "The form sent is larger than this service accepts.",
                ),
            )
        };
        let declared = request
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        if declared.is_some_and(|n| n > u64::try_from(state.max_body).unwrap_or(u64::MAX)) {
            return too_large();
        }
        let form_type = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                v.split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase()
            });
        // A missing Content-Type is read as a form: the body must still parse as one.
        if form_type.is_some_and(|t| t != "application/x-www-form-urlencoded") {
            return html(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                page::message(
                    "Unsupported form",
                    "The button sends an ordinary web form; this request was something else.",
                ),
            );
        }
        let Ok(body) = rest::http::read_body(request, state.max_body).await else {
            return too_large();
        };
        let token = match Token::parse(token_text, &state.key, (state.clock)()) {
            Ok(token) => token,
            Err(error) => {
                state.metrics.refused(&error);
                tracing::info!(reason = error.reason(), "link refused");
                return refused_page(&error);
            }
        };
        let action = match parse_form(&body) {
            Ok(action) => action,
            Err(error) => {
                return html(
                    StatusCode::BAD_REQUEST,
                    page::message("Unknown request", &format!("{error}. Nothing was changed.")),
                )
            }
        };
        let now = (state.clock)();
        let subject = Subject {
            token: token_text,
            firm_name: &token.firm_name,
            subscriber: &token.subscriber,
        };
        let (subscriber, firm) = (token.subscriber.clone(), token.firm_id.clone());
        let result = state
            .with_store(move |store| match action {
                FormAction::OptOut => store.opt_out(&subscriber, &firm, Via::Link, now),
                FormAction::Undo => store.undo(&subscriber, &firm, Via::Link, now),
            })
            .await;
        let outcome = match result {
            Ok(outcome) => outcome,
            Err(error) => {
                tracing::error!(%error, "opt-out store");
                return unavailable();
            }
        };
        let changed = match outcome {
            Outcome::Changed(seq) => {
                match action {
                    FormAction::OptOut => state.metrics.opt_out(),
                    FormAction::Undo => state.metrics.undo(),
                }
                tracing::info!(firm = %token.firm_id, seq, undo = action == FormAction::Undo, "opt-out change recorded");
                true
            }
            Outcome::Unchanged => {
                state.metrics.repeated();
                false
            }
        };
        let body = match action {
            FormAction::OptOut => page::opted_out(&subject, changed),
            FormAction::Undo => page::undone(&subject, changed),
        };
        html(StatusCode::OK, body)
    }

    async fn feed(&self, request: &Request<Incoming>) -> Response<Full<Bytes>> {
        let state = &self.state;
        if !state.authorized(request.headers()) {
            state.metrics.feed(FeedOutcome::Unauthorized);
            return with_header(
                json_error(StatusCode::UNAUTHORIZED, "a feed bearer token is required"),
                header::WWW_AUTHENTICATE,
                "Bearer realm=\"optout\"",
            );
        }
        let (after, limit) = match feed_query(request.uri().query()) {
            Ok(query) => query,
            Err(message) => {
                state.metrics.feed(FeedOutcome::BadRequest);
                return json_error(StatusCode::BAD_REQUEST, message);
            }
        };
        match state
            .with_store(move |store| store.changes_after(after, limit))
            .await
        {
            Ok((changes, cursor)) => {
                state.metrics.feed(FeedOutcome::Ok);
                json(
                    StatusCode::OK,
                    &FeedPage {
                        changes: &changes,
                        cursor,
                    },
                )
            }
            Err(error) => {
                tracing::error!(%error, "opt-out store");
                json_error(StatusCode::SERVICE_UNAVAILABLE, "the store is unavailable")
            }
        }
    }

    async fn route(&self, request: Request<Incoming>, peer: &Peer) -> Response<Full<Bytes>> {
        let state = &self.state;
        let path = request.uri().path().to_owned();
        let method = request.method().clone();
        match (&method, path.as_str()) {
            (&Method::GET, "/healthz") => {
                return json(StatusCode::OK, &serde_json::json!({"status": "ok"}))
            }
            (&Method::GET, "/metrics") => {
                let counts = state.with_store(|store| store.counts()).await.ok();
                let mut response =
                    Response::new(Full::new(Bytes::from(state.metrics.render(counts))));
                response.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; version=0.0.4"),
                );
                return response;
            }
            (_, "/healthz" | "/metrics") => return method_not_allowed("GET"),
            _ => {}
        }
        let known = path == "/v1/optouts" || token_of(&path).is_some();
        if !known {
            return html(
                StatusCode::NOT_FOUND,
                page::message("Not found", "There is nothing at this address."),
            );
        }
        if let Err(wait) = state.limiter.check(peer.ip, Instant::now()) {
            state.metrics.rate_limited();
            let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            return with_header(
                html(
                    StatusCode::TOO_MANY_REQUESTS,
                    page::message("Too many requests", "Please wait a moment and try again."),
                ),
                header::RETRY_AFTER,
                &seconds.max(1).to_string(),
            );
        }
        if path == "/v1/optouts" {
            return match method {
                Method::GET => self.feed(&request).await,
                _ => method_not_allowed("GET"),
            };
        }
        let token_text = token_of(&path).unwrap_or("");
        if token_text.len() > MAX_TOKEN_LEN * 3 {
            // Refused before anything else; Token::parse would refuse it too.
            let error = TokenError::Malformed("too long");
            state.metrics.refused(&error);
            return refused_page(&error);
        }
        match method {
            Method::GET => self.link_page(token_text).await,
            Method::POST => self.link_post(token_text, request).await,
            _ => method_not_allowed("GET, POST"),
        }
    }
}

impl Handler for OptOutService {
    fn handle(
        &self,
        request: Request<Incoming>,
        peer: &Peer,
    ) -> impl Future<Output = Response<Full<Bytes>>> + Send {
        let request_id = rest::http::request_id(request.headers());
        async move {
            let response = self.route(request, peer).await;
            with_header(
                secure(response),
                header::HeaderName::from_static("x-requestid"),
                &request_id,
            )
        }
    }
}

/// Serves `state` on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<OptOutState>,
    shutdown: impl Future<Output = ()>,
) {
    rest::http::serve(
        listener,
        Arc::new(OptOutService::new(state)),
        None,
        shutdown,
    )
    .await;
}

/// Runs the service of a loaded configuration: opens the store, listens on `listen` (or the
/// configuration's address), logs `optout listening address=...`, and serves until
/// `shutdown` completes.
pub async fn run(
    loaded: Loaded,
    listen: Option<SocketAddr>,
    clock: Clock,
    shutdown: impl Future<Output = ()>,
) -> Result<(), OptOutError> {
    let address = listen.unwrap_or(loaded.config.listen);
    let base = loaded.config.public_base_url.clone();
    let location = loaded.config.db.clone();
    let state = tokio::task::spawn_blocking(move || OptOutState::from_config(loaded, clock))
        .await
        .map_err(|error| StoreError::Interrupted(error.to_string()))??;
    let state = Arc::new(state);
    tracing::info!(db = %location, "optout store open");
    let (listener, bound) = rest::service::bind(address).await?;
    tracing::info!(address = %bound, public_base_url = base.as_deref().unwrap_or("(not set)"), "optout listening");
    serve(listener, state, shutdown).await;
    tracing::info!("optout stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feed_queries() {
        assert_eq!(feed_query(None), Ok((0, DEFAULT_FEED_LIMIT)));
        assert_eq!(feed_query(Some("after=12&limit=5")), Ok((12, 5)));
        assert_eq!(feed_query(Some("limit=99999999")), Ok((0, MAX_FEED_LIMIT)));
        assert!(feed_query(Some("limit=0")).is_err());
        assert!(feed_query(Some("after=-1")).is_err());
        assert!(feed_query(Some("after=1e3")).is_err());
        assert!(feed_query(Some("after=99999999999999999999")).is_err());
        assert!(feed_query(Some("subscriber=86138")).is_err());
    }
}
