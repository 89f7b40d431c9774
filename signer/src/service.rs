//! The signing service: the ATIS-1000082 request rules (shared with the verifier, in `rest`),
//! client authorization and rate limits, the policy, signing, and the trace log.
//!
//! Handling order: path (404 `SVC4003`) and method (405 `POL4050`); client allowed (403
//! `POL4030`) and under its rate limit (429 `POL4290`); the JSON POST header rules and body
//! (`SVC400x`); `iat` within the window around the signer's clock (`SVC4005`, see
//! [`crate::api::IatWindow`]; an emergency call is never refused for it, but signed with the
//! signer's clock as `iat`); policy (403/503 `POL41xx`/`POL5031`); sign; record in the trace log
//! and wait for it to be durable; answer. Every response carries `X-RequestID`.
//!
//! The clock is read once per request, when its body has been parsed, and passed on.
//!
//! `GET /trace/v1/calls?origid=ID` ([`crate::traceback`]) answers the trace log's records of a
//! call, to the same clients, under the same rate limits.

use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use lists::ListStore;
use optout::OptOutMirror;
use passport::{Claims, Dest, NumberingPlan, Party, TokenSigner};
use rest::clients::{Client, Clients};
use rest::fetch::FetchPolicy;
use rest::http::{self as rest_http, Peer, Route};
use sip::transport::SipStatus;
use tokio::net::TcpListener;

use crate::api::{self, ApiError, IatWindow, SigningRequest};
use crate::config::SignerConfig;
use crate::marketing::{self, Branding, Marketing, MarketingRefusal};
use crate::metrics::SignerMetrics;
use crate::nonces::NoncePool;
use crate::policy::{Basis, CallFacts, Decision, PolicyConfig, Refusal};
use crate::quota::FirmQuotas;
use crate::registry::{CachedRegistry, NumberRecord, RegistryLocation, SyncedRegistry};
use crate::trace::{TraceLog, TraceOptions, TraceRecord};
use crate::traceback;
use crate::SignerError;

/// The signing path.
pub const SIGNING_PATH: &str = "/stir/v1/signing";

/// Where the policy gets registry answers; the real one is [`CachedRegistry`].
pub trait NumberLookup: Send + Sync {
    /// The registry's record for a canonical number.
    fn lookup(&self, tn: &str) -> Result<Option<Arc<NumberRecord>>, SignerError>;
    /// The record for a canonical number as of `now` (the request's clock reading): a
    /// registry whose answers can be too old ([`crate::registry::SyncedRegistry`]) refuses
    /// then. By default, [`NumberLookup::lookup`].
    fn lookup_at(&self, tn: &str, now: u64) -> Result<Option<Arc<NumberRecord>>, SignerError> {
        let _ = now;
        self.lookup(tn)
    }
    /// Cache (hits, misses), for metrics.
    fn hit_counts(&self) -> (u64, u64) {
        (0, 0)
    }
    /// Metrics of the registry's own, as of `now` (Prometheus text; none by default).
    fn render_metrics(&self, now: u64) -> String {
        let _ = now;
        String::new()
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

/// The signer's clock, in seconds since the epoch: read once per request, at the edge.
pub type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

/// The system clock (0 if it is set before 1970: every `iat` is then after it by more than the
/// window allows, so requests are refused, not signed with a wrong time).
pub fn system_clock() -> Clock {
    Arc::new(|| rest::service::unix_now().unwrap_or(0))
}

/// Everything a request handler needs.
pub struct SignerState {
    signer: RwLock<Arc<TokenSigner>>,
    registry: Arc<dyn NumberLookup>,
    trace: TraceLog,
    policy: PolicyConfig,
    plan: Option<NumberingPlan>,
    clients: Clients,
    max_body: usize,
    nonces: NoncePool,
    iat_window: IatWindow,
    clock: Clock,
    lists: Option<Arc<ListStore>>,
    optouts: Option<Arc<OptOutMirror>>,
    quotas: FirmQuotas,
    /// The SIP listener's counters, once one serves this state ([`crate::sip`]).
    sip: OnceLock<Arc<SipStatus>>,
    /// Metrics.
    pub metrics: SignerMetrics,
}

impl std::fmt::Debug for SignerState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignerState").finish_non_exhaustive()
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
    /// Precomputed nonces kept ready ([`crate::nonces`]); 0: none, every signature in one step.
    pub nonce_pool: usize,
}

impl SignerState {
    /// Builds the state, with the default [`IatWindow`] and the system clock.
    pub fn new(parts: StateParts) -> Self {
        let nonces = NoncePool::start(parts.nonce_pool).unwrap_or_else(|error| {
            tracing::warn!(%error, "cannot start the nonce refill thread; signing in one step");
            NoncePool::none()
        });
        Self {
            signer: RwLock::new(parts.signer),
            registry: parts.registry,
            trace: parts.trace,
            policy: parts.policy,
            plan: parts.plan,
            clients: Clients::new(parts.clients),
            max_body: parts.max_body,
            nonces,
            iat_window: IatWindow::default(),
            clock: system_clock(),
            lists: None,
            optouts: None,
            quotas: FirmQuotas::new(),
            sip: OnceLock::new(),
            metrics: SignerMetrics::default(),
        }
    }

    /// The same state refusing marketing calls to subscribers who opted out, as the mirror of
    /// the opt-out service's feed says.
    pub fn with_optouts(mut self, optouts: Arc<OptOutMirror>) -> Self {
        self.optouts = Some(optouts);
        self
    }

    /// The marketing rules for `request` ([`crate::marketing`]), before the quota.
    fn marketing(&self, request: &SigningRequest) -> Result<Option<Marketing>, MarketingRefusal> {
        let list = self.lists.as_ref().and_then(|store| store.current());
        let listing = list
            .as_deref()
            .map(|list| list.lookup(request.orig.as_str()));
        let optouts = self.optouts.as_deref();
        marketing::decide(
            listing,
            branding(request),
            &request.dest,
            |subscriber, firm| optouts.is_some_and(|o| o.is_opted_out(subscriber, firm)),
        )
    }

    /// The same state enforcing the regulator's list held by `store` ([`crate::marketing`]).
    pub fn with_lists(mut self, store: Arc<ListStore>) -> Self {
        self.lists = Some(store);
        self
    }

    /// The same state with another window for requests' `iat`.
    pub fn with_iat_window(mut self, window: IatWindow) -> Self {
        self.iat_window = window;
        self
    }

    /// The same state reading another clock (tests pin time with it).
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Builds the state from configuration (opens the registry and trace log).
    pub fn from_config(
        config: &SignerConfig,
        signer: Arc<TokenSigner>,
    ) -> Result<Self, SignerError> {
        let registry: Arc<dyn NumberLookup> = match &config.registry_db {
            RegistryLocation::File(path) => Arc::new(CachedRegistry::new(
                crate::registry::Registry::open(path)?,
                config.cache_capacity,
                Duration::from_secs(config.cache_ttl_seconds),
            )),
            RegistryLocation::Postgres(url) => {
                Arc::new(SyncedRegistry::start(config.sync_options(url.clone()))?)
            }
        };
        let clients = config
            .clients
            .iter()
            .map(|c| Client::from_config(c).map_err(|e| SignerError::Config(e.to_string())))
            .collect::<Result<Vec<_>, _>>()?;
        let state = Self::new(StateParts {
            signer,
            registry,
            trace: TraceLog::open_with(
                &config.trace_db,
                &TraceOptions {
                    journal_max_bytes: config.trace_journal_max_mib << 20,
                    sync_interval: Duration::from_micros(config.trace_sync_interval_us),
                },
            )?,
            policy: config.policy_config(),
            plan: config.plan(),
            clients,
            max_body: config.max_body_bytes,
            nonce_pool: config.nonce_pool,
        })
        .with_iat_window(config.iat_window());
        let roots = config.x5u_tls_root_ders()?;
        let mut state = state;
        if let Some(section) = &config.lists {
            let store = lists::consumer::start(
                section,
                &FetchPolicy::default(),
                &roots,
                Arc::clone(&state.clock),
            )
            .map_err(|e| SignerError::Config(e.to_string()))?;
            state = state.with_lists(store);
        }
        if let Some(section) = &config.optout {
            let mirror = section
                .start_mirror(&FetchPolicy::default(), &roots, Arc::clone(&state.clock))
                .map_err(|e| SignerError::Config(e.to_string()))?;
            state = state.with_optouts(mirror);
        }
        Ok(state)
    }

    /// Swaps in a new signer (key reload); requests in flight finish with the old one.
    pub fn replace_signer(&self, signer: Arc<TokenSigner>) {
        if let Ok(mut current) = self.signer.write() {
            *current = signer;
        }
    }

    /// The trace log the state records into.
    pub fn trace(&self) -> &TraceLog {
        &self.trace
    }

    /// Precomputed nonces ready now ([`crate::nonces`]).
    pub fn nonces_ready(&self) -> usize {
        self.nonces.ready()
    }

    /// The allowed client a request from `ip` without a TLS certificate is (the SIP
    /// interface's allow-list: a client identified only by certificate never matches).
    pub fn client_at(&self, ip: std::net::IpAddr) -> Option<&Client> {
        self.clients.find(ip, None)
    }

    /// The numbering plan national-form numbers are read with.
    pub fn plan(&self) -> Option<NumberingPlan> {
        self.plan
    }

    /// The policy's settings (emergency numbers...).
    pub fn policy(&self) -> &PolicyConfig {
        &self.policy
    }

    /// The window a request's `iat` must be in around the signer's clock.
    pub fn iat_window(&self) -> IatWindow {
        self.iat_window
    }

    /// Reads the signer's clock (seconds since the epoch): once per request, at the edge.
    pub fn now(&self) -> u64 {
        (self.clock)()
    }

    /// Makes `/metrics` show the counters of the SIP listener serving this state (the first
    /// one attached; later calls are ignored).
    pub fn attach_sip(&self, status: Arc<SipStatus>) {
        let _ = self.sip.set(status);
    }

    /// The text of `/metrics`: the signer's, the list's and the opt-out mirror's when
    /// configured, and the SIP listener's and the SIP outcomes when one is attached.
    pub fn render_metrics(&self) -> String {
        let mut text = self.metrics.render(self.registry.hit_counts());
        text.push_str(&self.registry.render_metrics((self.clock)()));
        if let Some(lists) = &self.lists {
            text.push_str(&lists.render_metrics("shaken_signer", (self.clock)()));
        }
        if let Some(mirror) = &self.optouts {
            text.push_str(&mirror.render_metrics("shaken_signer"));
        }
        if let Some(sip) = self.sip.get() {
            text.push_str(&sip.render(crate::sip::METRICS_PREFIX));
            text.push_str(&self.metrics.render_sip());
        }
        text
    }

    fn current_signer(&self) -> Option<Arc<TokenSigner>> {
        self.signer.read().ok().map(|s| Arc::clone(&s))
    }

    fn error(
        &self,
        error: &ApiError,
        extra: Option<&str>,
        request_id: &str,
    ) -> Response<Full<Bytes>> {
        self.metrics.errors.inc_for_message(error.message_id());
        rest_http::error_response(error, extra, request_id)
    }
}

impl rest_http::Handler for SignerState {
    fn handle(
        &self,
        request: Request<Incoming>,
        peer: &Peer,
    ) -> impl Future<Output = Response<Full<Bytes>>> + Send {
        handle(self, request, peer.clone())
    }
}

/// Serves on `listener` until `shutdown` completes, then lets requests in flight finish.
pub async fn serve(
    listener: TcpListener,
    state: Arc<SignerState>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shutdown: impl Future<Output = ()>,
) {
    rest_http::serve(listener, state, tls, shutdown).await;
}

/// Handles one request.
pub async fn handle(
    state: &SignerState,
    request: Request<Incoming>,
    peer: Peer,
) -> Response<Full<Bytes>> {
    let started = Instant::now();
    let request_id = rest_http::request_id(request.headers());
    if request.uri().path() == traceback::TRACE_PATH {
        return trace_call(state, &request, &peer, &request_id).await;
    }
    let route = rest_http::route(
        &state.clients,
        &peer,
        request.method(),
        request.uri().path(),
        SIGNING_PATH,
    );
    let response = match route {
        Route::Unauthorized => state.error(&ApiError::Unauthorized, None, &request_id),
        Route::Health => rest_http::health(&request_id),
        Route::Metrics => {
            return rest_http::text_response(state.render_metrics(), "text/plain; version=0.0.4");
        }
        Route::Service(client) => sign(state, request, client, &request_id).await,
        Route::MethodNotAllowed(allow) => {
            state.error(&ApiError::MethodNotAllowed(allow), None, &request_id)
        }
        Route::NotFound => state.error(&ApiError::NotFound, None, &request_id),
    };
    state.metrics.latency.observe(started.elapsed());
    response
}

/// `GET /trace/v1/calls?origid=ID` ([`crate::traceback`]): the client allowed and under its
/// rate as for signing, then the trace log's records of that origid, read off the request's
/// thread (SQLite and the journal's recent frames).
async fn trace_call(
    state: &SignerState,
    request: &Request<Incoming>,
    peer: &Peer,
    request_id: &str,
) -> Response<Full<Bytes>> {
    let Some(client) = state.clients.find(peer.ip, peer.certificate.as_deref()) else {
        return state.error(&ApiError::Unauthorized, None, request_id);
    };
    if request.method() != hyper::Method::GET {
        return state.error(
            &ApiError::MethodNotAllowed(rest_http::ALLOW_GET),
            None,
            request_id,
        );
    }
    if !client.allow() {
        return state.error(
            &ApiError::RateLimited,
            Some(&client.rate.to_string()),
            request_id,
        );
    }
    let origid = match traceback::parse_query(request.uri().query()) {
        Ok(origid) => origid,
        Err(error) => return state.error(&error, None, request_id),
    };
    let path = state.trace.path().to_owned();
    let wanted = origid.as_str().to_owned();
    let found =
        tokio::task::spawn_blocking(move || crate::trace::lookup_origid(&path, &wanted)).await;
    match found {
        Ok(Ok(records)) if records.is_empty() => state.error(
            &ApiError::Policy(traceback::UNKNOWN_ORIGID),
            Some(origid.as_str()),
            request_id,
        ),
        Ok(Ok(records)) => rest_http::json_response(
            StatusCode::OK,
            traceback::answer(&origid, &records),
            request_id,
        ),
        Ok(Err(error)) => {
            tracing::error!(%error, "trace lookup failed");
            state.error(&ApiError::Internal, None, request_id)
        }
        Err(error) => {
            tracing::error!(%error, "trace lookup task failed");
            state.error(&ApiError::Internal, None, request_id)
        }
    }
}

async fn sign(
    state: &SignerState,
    request: Request<Incoming>,
    client: &Client,
    request_id: &str,
) -> Response<Full<Bytes>> {
    if !client.allow() {
        return state.error(
            &ApiError::RateLimited,
            Some(&client.rate.to_string()),
            request_id,
        );
    }
    if let Err(error) = rest_http::check_json_post(request.headers(), state.max_body) {
        return state.error(&error, None, request_id);
    }
    let body = match rest_http::read_body(request, state.max_body).await {
        Ok(body) => body,
        Err(error) => return state.error(&error, None, request_id),
    };
    let parsed = match api::parse_signing_request(&body, state.plan) {
        Ok(parsed) => parsed,
        Err(error) => return state.error(&error, None, request_id),
    };
    let now = (state.clock)();
    decide_and_sign(state, parsed, client, request_id, now).await
}

/// The `iat` to sign with: the request's when it is within the window around `now`; `now`
/// for an emergency call whose `iat` is not (an emergency call is never refused for a clock
/// problem, and a token stamped with the signer's clock is the one verifiers will accept);
/// otherwise the `SVC4005` refusal.
fn iat_to_sign(state: &SignerState, request: &SigningRequest, now: u64) -> Result<u64, ApiError> {
    match state.iat_window.check(request.iat, now) {
        Ok(()) => Ok(request.iat),
        Err(error) if state.policy.is_emergency(&request.dest) => {
            tracing::warn!(%error, iat = request.iat, now, "emergency call: signed with the signer's clock as iat");
            Ok(now)
        }
        Err(error) => Err(error.into()),
    }
}

/// What the one signing decision ([`decide`]) came to, for the REST API and the SIP
/// interface alike.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Signed and recorded in the trace log.
    Signed(Signed),
    /// Refused by policy (`POL41xx`, `POL5031`), recorded in the trace log: the refusal, whose
    /// `%1` is the calling number.
    Refused(ApiError),
    /// The request cannot be decided (its `iat` outside the window, no called number); nothing
    /// recorded.
    Invalid(ApiError),
    /// The signer itself failed; nothing signed (a trace record may be missing too).
    Failed(Failure),
}

/// A signed call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signed {
    /// The Identity header value, exactly as the REST API returns it in `identity`
    /// (`TOKEN;info=<x5u>;alg=ES256;ppt=shaken`) and the SIP interface puts in its `302`.
    pub identity: String,
    /// The attestation signed.
    pub level: passport::Attestation,
    /// Why at that level.
    pub basis: Basis,
}

/// Why the signer could not answer a call it would have signed or refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Failure {
    /// No signer to sign with (its lock poisoned).
    NoSigner,
    /// Signing failed (the key, or the regulator's list gave an unusable name or reason).
    Signing,
    /// The trace log could not make the record durable (write failed, journal full).
    Trace,
}

impl crate::metrics::CounterKey for Failure {
    const ALL: &'static [Self] = &[Self::NoSigner, Self::Signing, Self::Trace];
    fn index(self) -> usize {
        match self {
            Self::NoSigner => 0,
            Self::Signing => 1,
            Self::Trace => 2,
        }
    }
    /// The metric label set (`reason="trace"`).
    fn labels(self) -> &'static str {
        match self {
            Self::NoSigner => r#"reason="no_signer""#,
            Self::Signing => r#"reason="signing""#,
            Self::Trace => r#"reason="trace""#,
        }
    }
}

/// The REST wrapper of [`decide`]: the outcome as the HTTP response.
async fn decide_and_sign(
    state: &SignerState,
    request: SigningRequest,
    client: &Client,
    request_id: &str,
    now: u64,
) -> Response<Full<Bytes>> {
    let orig = request.orig.clone();
    match decide(state, request, client, request_id, now).await {
        Outcome::Signed(signed) => rest_http::json_response(
            StatusCode::OK,
            api::signing_response(&signed.identity),
            request_id,
        ),
        Outcome::Refused(error) => state.error(&error, Some(orig.as_str()), request_id),
        Outcome::Invalid(error) => state.error(&error, None, request_id),
        Outcome::Failed(_) => state.error(&ApiError::Internal, None, request_id),
    }
}

/// The one signing decision, in-process: `iat` against the window, the policy with the
/// registry, the marketing rules and the quota, signing, and the trace record made durable
/// before answering. `request_id` and `client` go into the trace record; `client`'s customer
/// stands for the caller unless the request names one. Counts the request metrics.
pub async fn decide(
    state: &SignerState,
    request: SigningRequest,
    client: &Client,
    request_id: &str,
    now: u64,
) -> Outcome {
    let iat = match iat_to_sign(state, &request, now) {
        Ok(iat) => iat,
        Err(error) => return Outcome::Invalid(error),
    };
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
            .lookup_at(request.orig.as_str(), now)
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
    // The marketing rules, for calls the registry lets through; emergency calls never meet
    // any list. The quota is taken last, once every other rule has passed.
    let (decision, marketing) = match decision {
        Decision::Sign(level, basis) if basis != Basis::Emergency => {
            match state.marketing(&request).and_then(|marketing| {
                take_quota(state, marketing.as_ref(), now).map(|()| marketing)
            }) {
                Ok(marketing) => (Decision::Sign(level, basis), marketing),
                Err(refusal) => (Decision::Refuse(Refusal::Marketing(refusal)), None),
            }
        }
        other => (other, None),
    };
    let owner = lookup.ok().flatten().map(|r| r.customer.id.clone());
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
        // Traceback of a marketing call needs the firm it was signed for.
        firm: marketing.as_ref().map(|m| m.firm_id.clone()),
    };
    match decision {
        Decision::Refuse(refusal) => {
            let error = api::refusal(refusal);
            record.outcome = "refused".into();
            record.message_id = Some(error.message_id().to_owned());
            if let Err(e) = state.trace.record(record).await {
                tracing::error!(error = %e, "trace log write failed");
                return Outcome::Failed(Failure::Trace);
            }
            state
                .metrics
                .requests
                .inc(r#"outcome="refused",attest="none""#);
            Outcome::Refused(error)
        }
        Decision::Sign(level, basis) => {
            let Some(signer) = state.current_signer() else {
                return Outcome::Failed(Failure::NoSigner);
            };
            let Some(dest) = Dest::tns(request.dest.iter().map(ToString::to_string).collect())
            else {
                return Outcome::Invalid(ApiError::InvalidValue("dest.tn".into(), "empty".into()));
            };
            let claims = Claims::shaken(
                iat,
                Party::Tn(request.orig.to_string()),
                dest,
                level,
                request.origid.clone(),
            );
            // A marketing call carries the vetted name and the reason (claim-in-shaken form).
            let claims = match &marketing {
                Some(m) => match claims.with_rcd(&m.nam, m.crn.as_deref()) {
                    Ok(claims) => claims,
                    Err(e) => {
                        tracing::error!(error = %e, "the list's name or reason is not a valid RCD");
                        return Outcome::Failed(Failure::Signing);
                    }
                },
                None => claims,
            };
            let nonce = state.nonces.take();
            state.metrics.count_signature(nonce.is_some());
            let identity = match signer.identity_header_with(&claims, nonce) {
                Ok(identity) => identity,
                Err(e) => {
                    tracing::error!(error = %e, "signing failed");
                    state
                        .metrics
                        .requests
                        .inc(r#"outcome="error",attest="none""#);
                    return Outcome::Failed(Failure::Signing);
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
                    .inc(r#"outcome="error",attest="none""#);
                return Outcome::Failed(Failure::Trace);
            }
            state.metrics.requests.inc(signed_label(level));
            Outcome::Signed(Signed {
                identity,
                level,
                basis,
            })
        }
    }
}

/// Takes a slot of a marketing call's firm's hourly quota (`POL4115` when it is used up).
fn take_quota(
    state: &SignerState,
    marketing: Option<&Marketing>,
    now: u64,
) -> Result<(), MarketingRefusal> {
    let Some(marketing) = marketing else {
        return Ok(());
    };
    let quota = u32::try_from(marketing.hourly_quota).unwrap_or(u32::MAX);
    state
        .quotas
        .try_take(&marketing.firm_id, quota, now)
        .map_err(|_| MarketingRefusal::OverQuota)
}

/// What the request asks to show: its `rcd.nam` and `crn` extension members.
fn branding(request: &SigningRequest) -> Branding<'_> {
    Branding {
        rcd_nam: request.rcd.as_ref().map(|rcd| rcd.nam()),
        crn: request.crn.as_ref().map(|crn| crn.as_str()),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_configured_iat_window_is_the_one_used() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("signer.toml");
        std::fs::write(
            &path,
            "x5u = \"https://cr.example.net/sp/1001/chain.pem\"\nkey_file = \"key.pem\"\n\
             registry_db = \"registry.sqlite\"\ntrace_db = \"trace.sqlite\"\n\
             iat_max_past_seconds = 5\niat_max_future_seconds = 2\n",
        )
        .unwrap();
        let config = SignerConfig::load(&path).unwrap();
        let key = passport::SigningKey::generate().unwrap();
        let signer = Arc::new(TokenSigner::new(key, config.x5u.clone()));
        let state = SignerState::from_config(&config, signer).unwrap();
        assert_eq!(
            state.iat_window,
            IatWindow {
                max_past: 5,
                max_future: 2
            }
        );
        let now = 1_700_000_000;
        assert!(state.iat_window.check(now - 6, now).is_err());
        assert!(state.iat_window.check(now + 3, now).is_err());
        assert!(state.iat_window.check(now - 5, now).is_ok());
    }
}
