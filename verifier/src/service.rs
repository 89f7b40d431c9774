//! The verification service: the shared ATIS-1000082 request rules (`rest`), client
//! authorization and rate limits, verification, the event feed and metrics.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use lists::ListStore;
use optout::{LinkIssuer, OptOutMirror};
use passport::NumberingPlan;
use rest::clients::{Client, Clients};
use rest::http::{self as rest_http, Peer, Route};
use rest::metrics::{EnumCounter, Histogram};
use rest::ApiError;
use rest::RequestErrorId;
use tokio::net::TcpListener;

use crate::api::{self, VerificationRequest};
use crate::events::{event_line, EventSink};
use crate::marketing::{self, CarriedRcd};
use crate::verdict::{Flag, MarketingNote, Verdict, VerdictClass, Verstat};
use crate::verify::{Call, Verifier};

/// The verification path.
pub const VERIFICATION_PATH: &str = "/stir/v1/verification";

/// The verifier's metrics.
#[derive(Debug, Default)]
pub struct VerifierMetrics {
    /// Verdicts by verstat and code.
    pub verdicts: EnumCounter<VerdictClass>,
    /// Flags raised.
    pub flags: EnumCounter<Flag>,
    /// Request errors by message id.
    pub errors: EnumCounter<RequestErrorId>,
    /// Verification latency.
    pub latency: Histogram,
}

/// The verifier's clock, in seconds since the epoch: read once per request, at the edge.
pub type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

/// The system clock (0 if it is set before 1970, which every request's `time` then exceeds
/// by more than the allowed skew: refused, never accepted).
pub fn system_clock() -> Clock {
    Arc::new(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    })
}

/// Everything a request handler needs.
pub struct VerifierState {
    /// The verifier.
    pub verifier: Verifier,
    clients: Clients,
    plan: Option<NumberingPlan>,
    max_body: usize,
    events: Option<EventSink>,
    clock: Clock,
    lists: Option<Arc<ListStore>>,
    optouts: Option<Arc<OptOutMirror>>,
    links: Option<Arc<LinkIssuer>>,
    sip: Option<(Arc<sip::transport::SipStatus>, Arc<crate::sip::SipAnswers>)>,
    /// Metrics.
    pub metrics: VerifierMetrics,
}

impl std::fmt::Debug for VerifierState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifierState").finish_non_exhaustive()
    }
}

impl VerifierState {
    /// Builds the state.
    pub fn new(
        verifier: Verifier,
        clients: Vec<Client>,
        plan: Option<NumberingPlan>,
        max_body: usize,
        events: Option<EventSink>,
    ) -> Self {
        Self {
            verifier,
            clients: Clients::new(clients),
            plan,
            max_body,
            events,
            clock: system_clock(),
            lists: None,
            optouts: None,
            links: None,
            sip: None,
            metrics: VerifierMetrics::default(),
        }
    }

    /// The same state checking calls against the regulator's list held by `store`
    /// ([`crate::marketing`]).
    pub fn with_lists(mut self, store: Arc<ListStore>) -> Self {
        self.lists = Some(store);
        self
    }

    /// The same state flagging calls to subscribers who opted out of the calling firm, as the
    /// mirror of the opt-out service's feed says.
    pub fn with_optouts(mut self, optouts: Arc<OptOutMirror>) -> Self {
        self.optouts = Some(optouts);
        self
    }

    /// The same state giving each marketing call's subscriber an unsubscribe link from `links`.
    pub fn with_links(mut self, links: Arc<LinkIssuer>) -> Self {
        self.links = Some(links);
        self
    }

    /// Adds what the regulator's list and the opt-outs say of the call to its verdict
    /// ([`crate::marketing::assess`]); the SHAKEN verdict itself is never changed.
    fn assess_marketing(
        &self,
        verdict: &mut Verdict,
        from: &str,
        to: &[&str],
        rcd: Option<CarriedRcd<'_>>,
        now: u64,
    ) {
        let list = self.lists.as_ref().and_then(|store| store.current());
        let listing = list.as_deref().map(|list| list.lookup(from));
        let optouts = self.optouts.as_deref();
        let assessment = marketing::assess(
            listing,
            rcd,
            verdict.verstat == Verstat::Passed,
            to,
            |subscriber, firm| optouts.is_some_and(|o| o.is_opted_out(subscriber, firm)),
        );
        verdict.add_flags(&assessment.flags);
        if let Some(shown) = assessment.shown {
            let unsubscribe = match (&self.links, to.first()) {
                (Some(links), Some(subscriber)) => links
                    .link(subscriber, &shown.firm, &shown.nam, now)
                    .map_err(
                        |error| tracing::warn!(%error, firm = %shown.firm, "no unsubscribe link"),
                    )
                    .ok(),
                _ => None,
            };
            verdict.add_marketing(MarketingNote {
                nam: shown.nam,
                crn: shown.crn,
                firm: shown.firm,
                unsubscribe,
            });
        }
    }

    /// Verifies one call as of `now` (the verifier's clock, read once by the caller at its
    /// edge): the SHAKEN verification, what the regulator's list and the opt-outs add, the
    /// metrics and the event line. The REST API and the SIP listener both call it, so a call
    /// gets the same verdict and the same event line whichever way it came.
    pub async fn verify_request(&self, request: &VerificationRequest, now: u64) -> Verdict {
        let started = Instant::now();
        let call = Call {
            from: &request.from,
            to: &request.to,
            time: request.time,
            identity: request.identity.as_deref(),
        };
        let mut verdict = self
            .verifier
            .verify_with_rcd(call, &request.rcd_identities, now)
            .await;
        if self.lists.is_some() {
            let to: Vec<&str> = request.to.iter().map(|tn| tn.as_str()).collect();
            let rcd = verdict.rcd.clone();
            let carried = rcd.as_ref().map(|rcd| CarriedRcd {
                nam: &rcd.nam,
                crn: rcd.crn.as_deref(),
            });
            self.assess_marketing(&mut verdict, request.from.as_str(), &to, carried, now);
        }
        self.metrics.latency.observe(started.elapsed());
        self.metrics.verdicts.inc(verdict.class());
        for flag in &verdict.flags {
            self.metrics.flags.inc(*flag);
        }
        if let Some(events) = &self.events {
            let to: Vec<String> = request.to.iter().map(ToString::to_string).collect();
            events.emit(
                request.from.as_str(),
                event_line(
                    request.time,
                    request.from.as_str(),
                    &to,
                    request.ingress.as_deref(),
                    &verdict,
                ),
            );
        }
        verdict
    }

    /// The verifier's clock, read now (seconds since the epoch). Callers read it once per
    /// request, at their edge.
    pub fn now(&self) -> u64 {
        (self.clock)()
    }

    /// The numbering plan national-form numbers are read in.
    pub fn plan(&self) -> Option<NumberingPlan> {
        self.plan
    }

    /// The allowed client a request from `ip` is, matched by address only (no client
    /// certificate: a client identified by its certificate never matches). The SIP listener
    /// uses it; the REST API matches certificates too.
    pub fn client_by_address(&self, ip: std::net::IpAddr) -> Option<&Client> {
        self.clients.find(ip, None)
    }

    /// The same state showing a SIP listener's counters and the SIP answers in `/metrics`
    /// (under `shaken_verifier_sip_`).
    pub fn with_sip_metrics(
        mut self,
        status: Arc<sip::transport::SipStatus>,
        answers: Arc<crate::sip::SipAnswers>,
    ) -> Self {
        self.sip = Some((status, answers));
        self
    }

    /// Stops the event feed's pusher, spooling the lines it still holds (blocks until done;
    /// the service calls it once serving has stopped).
    pub fn stop_events(&self) {
        if let Some(events) = &self.events {
            events.stop();
        }
    }

    /// The same state reading another clock (tests pin time with it).
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    fn error(
        &self,
        error: &ApiError,
        extra: Option<&str>,
        request_id: &str,
    ) -> Response<Full<Bytes>> {
        // The verifier sends no policy refusal of its own: every error has a key.
        if let Some(id) = error.request_error_id() {
            self.metrics.errors.inc(id);
        }
        rest_http::error_response(error, extra, request_id)
    }

    /// The Prometheus text.
    pub fn render_metrics(&self) -> String {
        use std::fmt::Write;
        let mut out = String::with_capacity(4096);
        self.metrics.verdicts.render(
            "shaken_verifier_verdicts_total",
            "Verifications by verstat and SIP code.",
            &mut out,
        );
        self.metrics.flags.render(
            "shaken_verifier_flags_total",
            "Flags raised on verdicts.",
            &mut out,
        );
        self.metrics.errors.render(
            "shaken_verifier_errors_total",
            "Request errors by ATIS-1000082 message id.",
            &mut out,
        );
        self.metrics.latency.render(
            "shaken_verifier_verification_duration_seconds",
            "Time to verify one request.",
            &mut out,
        );
        self.verifier.fetch_latency.render(
            "shaken_verifier_fetch_duration_seconds",
            "Time to fetch a certificate chain.",
            &mut out,
        );
        let stats = self.verifier.cache().stats();
        for (name, value) in [
            ("hits", stats.hits),
            ("stale", stats.stale),
            ("misses", stats.misses),
            ("fetches", stats.fetches),
            ("negative", stats.negative),
        ] {
            let _ = writeln!(out, "# TYPE shaken_verifier_cache_{name}_total counter\nshaken_verifier_cache_{name}_total {value}");
        }
        let cache = self.verifier.cache();
        let _ = writeln!(
            out,
            "# HELP shaken_verifier_cache_entries Entries in the certificate cache, by store.\n\
             # TYPE shaken_verifier_cache_entries gauge\n\
             shaken_verifier_cache_entries{{store=\"proven\"}} {}\n\
             shaken_verifier_cache_entries{{store=\"probation\"}} {}\n\
             shaken_verifier_cache_entries{{store=\"failures\"}} {}\n\
             # HELP shaken_verifier_cache_fetches_in_flight Certificate fetches in flight.\n\
             # TYPE shaken_verifier_cache_fetches_in_flight gauge\n\
             shaken_verifier_cache_fetches_in_flight {}",
            cache.len(),
            cache.in_probation(),
            cache.failures(),
            cache.in_flight()
        );
        if let Some(lists) = &self.lists {
            out.push_str(&lists.render_metrics("shaken_verifier", (self.clock)()));
        }
        if let Some(mirror) = &self.optouts {
            out.push_str(&mirror.render_metrics("shaken_verifier"));
        }
        let dropped = self.events.as_ref().map_or(0, EventSink::dropped);
        let _ = writeln!(
            out,
            "# HELP shaken_verifier_events_dropped_total Event lines dropped because the writer fell behind.\n\
             # TYPE shaken_verifier_events_dropped_total counter\n\
             shaken_verifier_events_dropped_total {dropped}"
        );
        if let Some(stats) = self.events.as_ref().and_then(EventSink::push_stats) {
            stats.render(&mut out);
        }
        if let Some(kafka) = self.events.as_ref().and_then(EventSink::kafka) {
            kafka.render(&mut out);
        }
        if let Some((status, answers)) = &self.sip {
            out.push_str(&status.render(crate::sip::METRICS_PREFIX));
            out.push_str(&answers.render(crate::sip::METRICS_PREFIX));
        }
        out
    }
}

impl rest_http::Handler for VerifierState {
    fn handle(
        &self,
        request: Request<Incoming>,
        peer: &Peer,
    ) -> impl Future<Output = Response<Full<Bytes>>> + Send {
        handle(self, request, peer.clone())
    }
}

/// Serves on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    state: Arc<VerifierState>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shutdown: impl Future<Output = ()>,
) {
    rest_http::serve(listener, state, tls, shutdown).await;
}

/// Handles one request.
pub async fn handle(
    state: &VerifierState,
    request: Request<Incoming>,
    peer: Peer,
) -> Response<Full<Bytes>> {
    let request_id = rest_http::request_id(request.headers());
    match rest_http::route(
        &state.clients,
        &peer,
        request.method(),
        request.uri().path(),
        VERIFICATION_PATH,
    ) {
        Route::Unauthorized => state.error(&ApiError::Unauthorized, None, &request_id),
        Route::Health => rest_http::health(&request_id),
        Route::Metrics => {
            rest_http::text_response(state.render_metrics(), "text/plain; version=0.0.4")
        }
        Route::Service(client) => verify(state, request, client, &request_id).await,
        Route::MethodNotAllowed(allow) => {
            state.error(&ApiError::MethodNotAllowed(allow), None, &request_id)
        }
        Route::NotFound => state.error(&ApiError::NotFound, None, &request_id),
    }
}

async fn verify(
    state: &VerifierState,
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
    let parsed = match api::parse_verification_request(&body, state.plan) {
        Ok(parsed) => parsed,
        Err(error) => return state.error(&error, None, request_id),
    };
    let now = (state.clock)();
    let verdict = state.verify_request(&parsed, now).await;
    rest_http::json_response(
        StatusCode::OK,
        api::verification_response(&verdict),
        request_id,
    )
}
