//! The monitor's HTTP API, a handler for `rest`'s serve loop:
//!
//! | request | answer |
//! |---|---|
//! | `POST /v1/events` | JSON lines (`application/x-ndjson` or `application/json`), capped: `{"accepted": N, "rejected": [{"line", "error"}]}` after the commit |
//! | `GET /v1/alerts?since=T&detector=D&subject=S&limit=N` | `{"alerts": [...]}`, newest first |
//! | `GET /v1/callers/{tn}` | `{"caller", "windows", "recent", "called", "alerts"}` |
//! | `GET /v1/spcs/{spc}` | `{"spc", "windows", "recent", "alerts"}` |
//! | `GET /v1/traceback?origid=ID` | `{"origid", "events", "spc", "signer" \| "signer_error", "signer_url", "signer_ms"}` |
//! | `GET /v1/allow`, `PUT /v1/allow/{tn}`, `DELETE /v1/allow/{tn}` | the allow list; changes persisted |
//! | `GET /v1/stats?minutes=N` | the dashboard's figures |
//! | `GET /`, `GET /dashboard/...` | the dashboard ([`crate::dashboard`]) |
//! | `GET /healthz`, `GET /metrics` | health, counters |
//!
//! Only the clients of the allow-list (loopback by default) get an answer other than 403.
//! Bad input is a 4xx with a specific message in `{"error": "..."}`; a store failure is 503.
//! An unknown path is 404, a known one with the wrong method 405 with `Allow`. Subscriber
//! numbers are never logged.

use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use rest::clients::Clients;
use rest::http::{Handler, Peer};
use serde::Serialize;

use crate::config::is_tn;
use crate::detect::DetectorId;
use crate::detect::Subject;
use crate::state::MonitorState;
use crate::store::{AlertQuery, StoreError, SubjectFilter};
use crate::traceback::Tracer;

/// `GET /v1/alerts`' default and largest `limit`.
pub const DEFAULT_ALERT_LIMIT: usize = 10_000;
/// `GET /v1/stats`' default `minutes`.
pub const DEFAULT_STATS_MINUTES: u64 = 60;

type Answer = Response<Full<Bytes>>;

fn json(status: StatusCode, body: &impl Serialize) -> Answer {
    let bytes = serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec());
    let mut response = Response::new(Full::new(Bytes::from(bytes)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn error(status: StatusCode, message: &str) -> Answer {
    json(status, &serde_json::json!({ "error": message }))
}

fn unavailable(error_value: &StoreError) -> Answer {
    tracing::error!(error = %error_value, "monitor store");
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        "the store is unavailable or behind; nothing was acknowledged",
    )
}

fn method_not_allowed(allow: &'static str) -> Answer {
    let mut response = error(
        StatusCode::METHOD_NOT_ALLOWED,
        &format!("this path allows {allow}"),
    );
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    response
}

/// Decodes a percent-encoded query value (`+` is a space); `None` when malformed.
pub fn decode_query_value(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3)?;
                let hex = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// The query's `name=value` pairs, decoded; each name at most once and among `known`.
fn query_pairs<'a>(
    query: Option<&str>,
    known: &[&'a str],
) -> Result<Vec<(&'a str, String)>, String> {
    let mut pairs: Vec<(&'a str, String)> = Vec::new();
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let Some(known_name) = known.iter().find(|k| **k == name) else {
            return Err(format!(
                "unknown query parameter {:?} (known: {})",
                name.chars().take(40).collect::<String>(),
                known.join(", ")
            ));
        };
        if pairs.iter().any(|(n, _)| n == known_name) {
            return Err(format!("query parameter {name} given twice"));
        }
        let value = decode_query_value(value)
            .ok_or_else(|| format!("query parameter {name} is not valid percent-encoded UTF-8"))?;
        pairs.push((known_name, value));
    }
    Ok(pairs)
}

fn number(name: &str, value: &str) -> Result<u64, String> {
    if value.is_empty() || value.len() > 19 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{name} must be a non-negative decimal integer"));
    }
    value
        .parse()
        .map_err(|_| format!("{name} must be a non-negative decimal integer"))
}

/// Whether `spc` looks like a service provider code: 1 to 32 ASCII letters and digits.
pub fn is_spc(spc: &str) -> bool {
    (1..=32).contains(&spc.len()) && spc.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// Reads `GET /v1/alerts`' query.
pub fn alert_query(query: Option<&str>) -> Result<AlertQuery, String> {
    let mut out = AlertQuery {
        limit: DEFAULT_ALERT_LIMIT,
        ..AlertQuery::default()
    };
    for (name, value) in query_pairs(query, &["since", "detector", "subject", "limit"])? {
        match name {
            "since" => out.since = Some(number("since", &value)?),
            "limit" => {
                let n = number("limit", &value)?;
                if n == 0 {
                    return Err("limit must be at least 1".into());
                }
                out.limit = usize::try_from(n)
                    .unwrap_or(DEFAULT_ALERT_LIMIT)
                    .min(DEFAULT_ALERT_LIMIT);
            }
            "detector" => {
                out.detector = Some(DetectorId::from_name(&value).ok_or_else(|| {
                    format!(
                        "unknown detector {:?} (known: {})",
                        value.chars().take(40).collect::<String>(),
                        DetectorId::ALL
                            .iter()
                            .map(|d| d.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                })?);
            }
            _ => {
                // `caller:TN`, `spc:SPC`, `firm:ID`, `ingress:NAME`; or a bare value: digits
                // (an optional leading +) may be a calling number or a numeric SPC and match
                // either; other letters and digits are an SPC.
                let name_ok = |v: &str| {
                    (1..=64).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_graphic())
                };
                let tn = |v: &str| {
                    let digits = v.strip_prefix('+').unwrap_or(v);
                    is_tn(digits).then(|| digits.to_owned())
                };
                let bare_digits = tn(&value).filter(|_| !value.contains(':'));
                out.subject = Some(if let Some(digits) = bare_digits {
                    if !value.starts_with('+') && is_spc(&digits) {
                        SubjectFilter::Named(digits)
                    } else {
                        Subject::Caller(digits).into()
                    }
                } else if let Some(caller) = value.strip_prefix("caller:").and_then(tn) {
                    Subject::Caller(caller).into()
                } else if let Some(spc) = value.strip_prefix("spc:").filter(|v| is_spc(v)) {
                    Subject::Spc(spc.to_owned()).into()
                } else if is_spc(&value) {
                    Subject::Spc(value.clone()).into()
                } else if let Some(firm) = value.strip_prefix("firm:").filter(|v| name_ok(v)) {
                    Subject::Firm(firm.to_owned()).into()
                } else if let Some(ingress) = value.strip_prefix("ingress:").filter(|v| name_ok(v))
                {
                    Subject::Ingress(ingress.to_owned()).into()
                } else {
                    return Err(
                        "subject must be a calling number (E.164 digits) or an SPC (letters and digits), or caller:TN, spc:SPC, firm:ID, ingress:NAME"
                            .into(),
                    );
                });
            }
        }
    }
    Ok(out)
}

/// The content type of an events body: `application/x-ndjson` or `application/json`.
fn events_media_type(request: &Request<Incoming>) -> bool {
    let media = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase());
    matches!(
        media.as_deref(),
        Some("application/x-ndjson" | "application/json")
    )
}

/// The request handler.
#[derive(Debug)]
pub struct MonitorApi {
    state: Arc<MonitorState>,
    tracer: Arc<Tracer>,
    clients: Clients,
    max_body: usize,
    clock: fn() -> Option<u64>,
}

impl MonitorApi {
    /// A handler over `state`: `tracer` asks signers, `clients` may call, bodies up to
    /// `max_body` bytes, `clock` gives the time of allow-list changes.
    pub fn new(
        state: Arc<MonitorState>,
        tracer: Arc<Tracer>,
        clients: Clients,
        max_body: usize,
        clock: fn() -> Option<u64>,
    ) -> Self {
        Self {
            state,
            tracer,
            clients,
            max_body,
            clock,
        }
    }

    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&MonitorState) -> T + Send + 'static,
    ) -> Option<T> {
        let state = Arc::clone(&self.state);
        tokio::task::spawn_blocking(move || work(&state)).await.ok()
    }

    async fn post_events(&self, request: Request<Incoming>) -> Answer {
        if !events_media_type(&request) {
            return error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "the body must be application/x-ndjson or application/json (one JSON event a line)",
            );
        }
        let too_large = || {
            self.state.metrics().too_large();
            error(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!("the body is larger than {} bytes", self.max_body),
            )
        };
        let declared = request
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        if declared.is_some_and(|n| n > self.max_body as u64) {
            return too_large();
        }
        let body = match Limited::new(request.into_body(), self.max_body)
            .collect()
            .await
        {
            Ok(body) => body.to_bytes(),
            Err(e)
                if e.downcast_ref::<http_body_util::LengthLimitError>()
                    .is_some() =>
            {
                return too_large()
            }
            Err(_) => return error(StatusCode::BAD_REQUEST, "the body could not be read"),
        };
        let now = rest::service::unix_now().unwrap_or(u64::MAX);
        match self.blocking(move |state| state.ingest(&body, now)).await {
            Some(Ok(report)) => json(StatusCode::OK, &report),
            Some(Err(e)) => unavailable(&e),
            None => error(
                StatusCode::SERVICE_UNAVAILABLE,
                "ingest was interrupted; nothing was acknowledged",
            ),
        }
    }

    async fn get_alerts(&self, query: Option<&str>) -> Answer {
        let query = match alert_query(query) {
            Ok(query) => query,
            Err(message) => return error(StatusCode::BAD_REQUEST, &message),
        };
        match self.blocking(move |state| state.alerts(&query)).await {
            Some(Ok(alerts)) => json(StatusCode::OK, &serde_json::json!({ "alerts": alerts })),
            Some(Err(e)) => unavailable(&e),
            None => error(StatusCode::SERVICE_UNAVAILABLE, "the query was interrupted"),
        }
    }

    async fn get_caller(&self, tn: &str) -> Answer {
        let digits = tn.strip_prefix('+').unwrap_or(tn).to_owned();
        if !is_tn(&digits) {
            return error(
                StatusCode::BAD_REQUEST,
                "a calling number is E.164 digits (1 to 15, an optional leading +)",
            );
        }
        let result = self
            .blocking(move |state| {
                let view = state.caller(&digits)?;
                let called = state.called(&digits)?;
                Ok::<_, StoreError>(serde_json::json!({
                    "caller": digits,
                    "windows": view.windows.windows,
                    "recent": view.recent,
                    "called": called,
                    "alerts": view.alerts,
                    "unindexed": view.unindexed,
                }))
            })
            .await;
        match result {
            Some(Ok(body)) => json(StatusCode::OK, &body),
            Some(Err(e)) => unavailable(&e),
            None => error(StatusCode::SERVICE_UNAVAILABLE, "the query was interrupted"),
        }
    }

    async fn get_spc(&self, spc: &str) -> Answer {
        if !is_spc(spc) {
            return error(
                StatusCode::BAD_REQUEST,
                "an SPC is 1 to 32 ASCII letters and digits",
            );
        }
        let spc = spc.to_owned();
        let result = self
            .blocking(move |state| {
                let view = state.spc(&spc)?;
                Ok::<_, StoreError>(serde_json::json!({
                    "spc": spc,
                    "windows": view.windows.windows,
                    "recent": view.recent,
                    "alerts": view.alerts,
                    "unindexed": view.unindexed,
                }))
            })
            .await;
        match result {
            Some(Ok(body)) => json(StatusCode::OK, &body),
            Some(Err(e)) => unavailable(&e),
            None => error(StatusCode::SERVICE_UNAVAILABLE, "the query was interrupted"),
        }
    }

    async fn get_traceback(&self, query: Option<&str>) -> Answer {
        let origid = match query_pairs(query, &["origid"]) {
            Ok(pairs) => pairs.into_iter().next().map(|(_, v)| v),
            Err(message) => return error(StatusCode::BAD_REQUEST, &message),
        };
        let Some(origid) = origid.filter(|o| !o.is_empty() && o.len() <= 256) else {
            return error(
                StatusCode::BAD_REQUEST,
                "origid is required (1 to 256 characters)",
            );
        };
        let key = origid.clone();
        let events = match self.blocking(move |state| state.call(&key)).await {
            Some(Ok(events)) => events,
            Some(Err(e)) => return unavailable(&e),
            None => return error(StatusCode::SERVICE_UNAVAILABLE, "the query was interrupted"),
        };
        let spc = events.iter().find_map(|e| e.spc.clone());
        let mut body = serde_json::Map::new();
        body.insert("origid".into(), origid.clone().into());
        body.insert("found".into(), (!events.is_empty()).into());
        // Acknowledged events not yet indexed (normally 0): a call not found while this is
        // above 0 may still appear; ask again.
        body.insert(
            "unindexed".into(),
            self.state.index_progress().lag_events().into(),
        );
        body.insert(
            "events".into(),
            serde_json::to_value(&events).unwrap_or_default(),
        );
        body.insert("spc".into(), spc.clone().into());
        if let Some(spc) = &spc {
            match self.tracer.signer_record(spc, &origid).await {
                Some(record) => {
                    body.insert("signer_url".into(), record.url.into());
                    body.insert("signer_ms".into(), record.elapsed_ms.into());
                    match record.result {
                        Ok(value) => body.insert("signer".into(), value),
                        Err(message) => body.insert("signer_error".into(), message.into()),
                    };
                }
                None => {
                    body.insert(
                        "signer_error".into(),
                        format!(
                            "no trace endpoint is configured for SPC {spc} ([trace.{spc}] url)"
                        )
                        .into(),
                    );
                }
            }
        }
        json(StatusCode::OK, &body)
    }

    async fn allow_change(&self, tn: &str, allowed: bool) -> Answer {
        let digits = tn.strip_prefix('+').unwrap_or(tn).to_owned();
        if !is_tn(&digits) {
            return error(
                StatusCode::BAD_REQUEST,
                "a number is E.164 digits (1 to 15, an optional leading +)",
            );
        }
        let Some(now) = (self.clock)() else {
            return error(StatusCode::SERVICE_UNAVAILABLE, "the clock is unreadable");
        };
        let result = self
            .blocking(move |state| {
                state
                    .set_allowed(&digits, allowed, now)
                    .map(|changed| (digits, changed))
            })
            .await;
        match result {
            Some(Ok((tn, changed))) => {
                tracing::info!(allowed, changed, "allow list changed through the API");
                json(
                    StatusCode::OK,
                    &serde_json::json!({ "number": tn, "allowed": allowed, "changed": changed }),
                )
            }
            Some(Err(e)) => unavailable(&e),
            None => error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the change was interrupted",
            ),
        }
    }

    async fn get_stats(&self, query: Option<&str>) -> Answer {
        let minutes = match query_pairs(query, &["minutes"]) {
            Ok(pairs) => match pairs.into_iter().next() {
                None => DEFAULT_STATS_MINUTES,
                Some((_, value)) => match number("minutes", &value) {
                    Ok(n) if (1..=crate::state::STATS_MINUTES).contains(&n) => n,
                    Ok(_) => {
                        return error(
                            StatusCode::BAD_REQUEST,
                            &format!(
                                "minutes must be between 1 and {}",
                                crate::state::STATS_MINUTES
                            ),
                        )
                    }
                    Err(message) => return error(StatusCode::BAD_REQUEST, &message),
                },
            },
            Err(message) => return error(StatusCode::BAD_REQUEST, &message),
        };
        match self.blocking(move |state| state.stats(minutes)).await {
            Some(stats) => json(StatusCode::OK, &stats),
            None => error(StatusCode::SERVICE_UNAVAILABLE, "the query was interrupted"),
        }
    }

    async fn route(&self, request: Request<Incoming>, peer: &Peer) -> Answer {
        if self
            .clients
            .find(peer.ip, peer.certificate.as_deref())
            .is_none()
        {
            return error(StatusCode::FORBIDDEN, "this client is not allowed");
        }
        let path = request.uri().path().to_owned();
        let query = request.uri().query().map(str::to_owned);
        let query = query.as_deref();
        let method = request.method().clone();
        let get = method == Method::GET;
        match path.as_str() {
            "/healthz" if get => json(StatusCode::OK, &serde_json::json!({"status": "ok"})),
            "/metrics" if get => match self.blocking(|state| state.render_metrics()).await {
                Some(text) => rest::http::text_response(text, "text/plain; version=0.0.4"),
                None => error(StatusCode::SERVICE_UNAVAILABLE, "metrics were interrupted"),
            },
            "/healthz" | "/metrics" | "/v1/alerts" | "/v1/traceback" | "/v1/stats"
            | "/v1/allow" => match (path.as_str(), get) {
                ("/v1/alerts", true) => self.get_alerts(query).await,
                ("/v1/traceback", true) => self.get_traceback(query).await,
                ("/v1/stats", true) => self.get_stats(query).await,
                ("/v1/allow", true) => {
                    let allowed = self
                        .blocking(|state| state.allowed())
                        .await
                        .unwrap_or_default();
                    json(StatusCode::OK, &serde_json::json!({ "allow": allowed }))
                }
                _ => method_not_allowed("GET"),
            },
            "/v1/events" => match method {
                Method::POST => self.post_events(request).await,
                _ => method_not_allowed("POST"),
            },
            p => {
                if let Some(tn) = p.strip_prefix("/v1/callers/") {
                    return if get {
                        self.get_caller(tn).await
                    } else {
                        method_not_allowed("GET")
                    };
                }
                if let Some(spc) = p.strip_prefix("/v1/spcs/") {
                    return if get {
                        self.get_spc(spc).await
                    } else {
                        method_not_allowed("GET")
                    };
                }
                if let Some(tn) = p.strip_prefix("/v1/allow/") {
                    return match method {
                        Method::PUT => self.allow_change(tn, true).await,
                        Method::DELETE => self.allow_change(tn, false).await,
                        _ => method_not_allowed("PUT, DELETE"),
                    };
                }
                if p == "/" || p == "/dashboard" || p.starts_with("/dashboard/") {
                    if !get {
                        return method_not_allowed("GET");
                    }
                    if let Some(asset) = crate::dashboard::asset(p) {
                        let mut response = Response::new(Full::new(Bytes::from_static(asset.body)));
                        let headers = response.headers_mut();
                        for (name, value) in [
                            (header::CONTENT_TYPE, asset.content_type),
                            (
                                header::CONTENT_SECURITY_POLICY,
                                crate::dashboard::CONTENT_SECURITY_POLICY,
                            ),
                            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
                            (header::X_FRAME_OPTIONS, "DENY"),
                            (header::REFERRER_POLICY, "no-referrer"),
                            (header::CACHE_CONTROL, "no-cache"),
                        ] {
                            headers.insert(name, HeaderValue::from_static(value));
                        }
                        return response;
                    }
                }
                error(StatusCode::NOT_FOUND, "there is nothing at this path")
            }
        }
    }
}

impl Handler for MonitorApi {
    fn handle(
        &self,
        request: Request<Incoming>,
        peer: &Peer,
    ) -> impl Future<Output = Answer> + Send {
        let request_id = rest::http::request_id(request.headers());
        async move {
            let mut response = self.route(request, peer).await;
            let headers = response.headers_mut();
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            headers.insert(
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            );
            if let Ok(id) = HeaderValue::from_str(&request_id) {
                headers.insert("x-requestid", id);
            }
            response
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;

    #[test]
    fn alert_queries_are_read_strictly() {
        let q = alert_query(None).unwrap();
        assert_eq!(
            (q.limit, q.since, q.detector.is_none()),
            (DEFAULT_ALERT_LIMIT, None, true)
        );
        let q = alert_query(Some(
            "since=100&detector=fan-out&subject=%2B8613800000001&limit=5",
        ))
        .unwrap();
        assert_eq!(q.since, Some(100));
        assert_eq!(q.detector, Some(DetectorId::FanOut));
        assert_eq!(
            q.subject,
            Some(Subject::Caller("8613800000001".into()).into())
        );
        assert_eq!(q.limit, 5);
        assert_eq!(
            alert_query(Some("subject=709J")).unwrap().subject,
            Some(Subject::Spc("709J".into()).into())
        );
        // Digits alone may be a calling number or a numeric SPC: both match.
        assert_eq!(
            alert_query(Some("subject=2001")).unwrap().subject,
            Some(SubjectFilter::Named("2001".into()))
        );
        assert_eq!(
            alert_query(Some("subject=spc:2001")).unwrap().subject,
            Some(Subject::Spc("2001".into()).into())
        );
        assert_eq!(
            alert_query(Some("subject=caller:8613800000001"))
                .unwrap()
                .subject,
            Some(Subject::Caller("8613800000001".into()).into())
        );
        assert_eq!(
            alert_query(Some("limit=99999999")).unwrap().limit,
            DEFAULT_ALERT_LIMIT
        );
        for (bad, says) in [
            ("since=-1", "since"),
            ("since=1e9", "since"),
            ("limit=0", "limit"),
            ("detector=loud", "unknown detector"),
            ("subject=86-138", "subject"),
            ("color=red", "unknown query parameter"),
            ("since=1&since=2", "twice"),
            ("subject=%zz", "percent"),
        ] {
            let message = alert_query(Some(bad)).unwrap_err();
            assert!(message.contains(says), "{bad}: {message}");
        }
    }

    #[test]
    fn query_values_decode() {
        assert_eq!(decode_query_value("a%20b+c").as_deref(), Some("a b c"));
        assert_eq!(decode_query_value("%C3%A9").as_deref(), Some("é"));
        assert_eq!(decode_query_value("%4"), None);
        assert_eq!(decode_query_value("%FF"), None);
    }
}
