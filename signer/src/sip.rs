//! The signer's SIP redirect interface (issue 18 §1): an SBC sends a copy of a call's INVITE,
//! the signer answers it with the same decision as its REST API ([`crate::service::decide`],
//! in-process), as a final response the SBC copies headers from.
//!
//! | the signer's decision | answer |
//! |---|---|
//! | signed | `302 Moved Temporarily`, `Contact: <Request-URI>` and `Identity` (a top-level header, or inside the Contact URI with `identity = "contact"`) |
//! | refused by policy (`POL41xx`) | `403 Forbidden` (or `608 Rejected` with `refusal = 608`, and `Call-Info: <jwscard_url>;purpose=jwscard`), `Reason: SIP;cause=403;text="POL4101 ..."` |
//! | registry unavailable (`POL5031`) | `503 Service Unavailable`, `Reason: SIP;cause=503;text="POL5031 ..."` |
//! | the signer failed (no signer, signing error, trace log write failed or full) | `302` with `Contact` and no `Identity`: the call proceeds unsigned; counted by reason |
//! | client over its rate limit (not for an emergency call) | `503 Service Unavailable`, `Retry-After: 1` |
//! | a number or hint that cannot be read | `400 Bad Request`, `Warning: 399 shaken-signer "..."` naming the header |
//!
//! What is read from the INVITE ([`CallRequest::from_invite`]):
//! - calling number: the first `P-Asserted-Identity` value whose URI holds a telephone number
//!   (a `tel:` one preferred to a `sip:` one), else `From`'s;
//! - called number: the Request-URI's (its user part), else `To`'s;
//! - both canonicalized as the REST API's `orig.tn` and `dest.tn` are (the numbering plan);
//! - `Attestation-Info: A|B|C`: the attestation asked for, as REST's `attest`; absent: `A`, so
//!   that the registry decides (a registered number of the caller's is signed A, one of
//!   another customer's B, an unregistered one refused); `C` asks for a gateway call;
//! - `P-Origination-ID: <uuid>`: the `origid`; absent: a new UUID v4;
//! - the From URI's `otg` parameter (RFC 4904 originating trunk group): looked up in
//!   `[sip.trunks]` for the calling customer, as REST's `customerId` (an `otg` not in the map
//!   is ignored, and the client's own `customer` applies);
//! - `Date`: the `iat` when it is within the signer's window around its clock; otherwise the
//!   clock (a call is never refused for its `Date`).
//!
//! Who may send: the `[[clients]]` allow-list by source address (a client identified only by
//! certificate never matches over SIP). Nothing here logs a telephone number above debug.

use std::collections::BTreeMap;
use std::sync::Arc;

use passport::{Attestation, OrigId, Tn};
use rest::ApiError;
use serde_json::Value;
use sip::message::Request;
use sip::transport::{Answer, Handler, Peer};
use sip::uri::{self, NameAddr, Scheme};

use crate::api::{IatWindow, SigningRequest};
use crate::config::{IdentityPlacement, SipSection};
use crate::service::{self, Outcome, SignerState};

/// The prefix of the SIP metrics in the signer's `/metrics`.
pub const METRICS_PREFIX: &str = "shaken_signer_sip";

/// The warn-agent of the `Warning` header of a `400` (RFC 3261 §20.43: a pseudonym).
const WARN_AGENT: &str = "shaken-signer";

/// The most `P-Asserted-Identity` values looked at (RFC 3325 allows two).
const MAX_ASSERTED_IDENTITIES: usize = 4;

/// The longest Call-ID kept as the trace record's request id.
const MAX_REQUEST_ID: usize = 128;

/// What cannot be read in an INVITE: each names the header, and is answered `400`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InviteError {
    /// The header (or Request-URI) is not a name-addr or URI this interface reads.
    #[error("{0} cannot be parsed")]
    Unparsable(&'static str),
    /// No header holds a telephone number: the last one looked at.
    #[error("{0} holds no telephone number")]
    NoNumber(&'static str),
    /// The telephone number in the header is not a number the signer accepts: the header and
    /// the canonicalization's reason.
    #[error("the telephone number in {0} is not valid: {1}")]
    BadNumber(&'static str, String),
    /// `Attestation-Info` is not `A`, `B` or `C`.
    #[error("Attestation-Info is not A, B or C")]
    Attestation,
    /// `P-Origination-ID` is not a UUID.
    #[error("P-Origination-ID is not a UUID")]
    OrigId,
    /// The Request-URI cannot be put in a Contact (angle brackets, quotes or white space).
    #[error("the Request-URI cannot be used as a Contact")]
    Contact,
}

/// How the signer answers over SIP: the `[sip]` section's answer keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SipOptions {
    /// Where the Identity goes in a `302`.
    pub identity: IdentityPlacement,
    /// The status of a policy refusal, 403 or 608.
    pub refusal: u16,
    /// The `Call-Info` URL of a 608.
    pub jwscard_url: Option<String>,
    /// `otg` to customer.
    pub trunks: BTreeMap<String, String>,
}

impl Default for SipOptions {
    fn default() -> Self {
        Self {
            identity: IdentityPlacement::Header,
            refusal: 403,
            jwscard_url: None,
            trunks: BTreeMap::new(),
        }
    }
}

impl From<&SipSection> for SipOptions {
    fn from(section: &SipSection) -> Self {
        Self {
            identity: section.identity,
            refusal: section.refusal,
            jwscard_url: section.jwscard_url.clone(),
            trunks: section.trunks.clone(),
        }
    }
}

/// The signing request an INVITE makes, and where the `302` points.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallRequest {
    /// The request for [`service::decide`] (`iat` as chosen from `Date` and the clock).
    pub signing: SigningRequest,
    /// The Request-URI, the `302`'s Contact.
    pub contact: String,
}

impl CallRequest {
    /// Reads an INVITE (see the module docs) under `options`' trunks, with the signer's
    /// numbering plan `plan`, `iat` window and clock `now`.
    pub fn from_invite(
        request: &Request,
        options: &SipOptions,
        plan: Option<passport::NumberingPlan>,
        window: IatWindow,
        now: u64,
    ) -> Result<Self, InviteError> {
        if request
            .uri
            .bytes()
            .any(|b| matches!(b, b'<' | b'>' | b'"') || b.is_ascii_whitespace())
        {
            return Err(InviteError::Contact);
        }
        let from_header = request
            .header("From")
            .ok_or(InviteError::NoNumber("From"))?;
        let from =
            uri::parse_name_addr(from_header).map_err(|_| InviteError::Unparsable("From"))?;
        let (orig_header, orig_text) = calling_number(request, &from)?;
        let orig = canonical(orig_header, &orig_text, "orig.tn", plan)?;
        let (dest_header, dest_text) = called_number(request)?;
        let dest = canonical(dest_header, &dest_text, "dest.tn", plan)?;
        let attest = match request.header("Attestation-Info") {
            None => Attestation::A,
            // Leniency: some SBCs send the level in lower case or padded.
            Some(value) => value
                .trim()
                .to_ascii_uppercase()
                .parse::<Attestation>()
                .map_err(|_| InviteError::Attestation)?,
        };
        let origid = match request.header("P-Origination-ID") {
            None => new_origid().ok_or(InviteError::OrigId)?,
            Some(value) => value
                .trim()
                .parse::<OrigId>()
                .map_err(|_| InviteError::OrigId)?,
        };
        let customer = otg(&from).and_then(|trunk| options.trunks.get(trunk).cloned());
        let iat = request
            .header("Date")
            .and_then(sip::date::parse)
            .filter(|date| window.check(*date, now).is_ok())
            .unwrap_or(now);
        Ok(Self {
            signing: SigningRequest {
                attest,
                dest: vec![dest],
                iat,
                orig,
                origid,
                customer,
                rcd: None,
                crn: None,
            },
            contact: request.uri.clone(),
        })
    }
}

/// The calling number's header and text: the first `P-Asserted-Identity` value with a
/// telephone number (`tel:` preferred), else `From`'s.
fn calling_number(
    request: &Request,
    from: &NameAddr,
) -> Result<(&'static str, String), InviteError> {
    const PAI: &str = "P-Asserted-Identity";
    let mut asserted = Vec::new();
    for field in request.headers_named(PAI) {
        for value in split_values(field) {
            if asserted.len() == MAX_ASSERTED_IDENTITIES {
                break;
            }
            asserted.push(uri::parse_name_addr(value).map_err(|_| InviteError::Unparsable(PAI))?);
        }
    }
    let numbered = |tel: bool| {
        asserted
            .iter()
            .filter(|a| (a.uri.scheme == Scheme::Tel) == tel)
            .find_map(|a| a.uri.telephone_number())
    };
    if let Some(number) = numbered(true).or_else(|| numbered(false)) {
        return Ok((PAI, number.to_owned()));
    }
    from.uri
        .telephone_number()
        .map(|n| ("From", n.to_owned()))
        .ok_or(InviteError::NoNumber("From"))
}

/// The called number's header and text: the Request-URI's, else `To`'s.
fn called_number(request: &Request) -> Result<(&'static str, String), InviteError> {
    if let Ok(target) = uri::parse_uri(&request.uri) {
        if let Some(number) = target.telephone_number() {
            return Ok(("Request-URI", number.to_owned()));
        }
    }
    let to = request.header("To").ok_or(InviteError::NoNumber("To"))?;
    let to = uri::parse_name_addr(to).map_err(|_| InviteError::Unparsable("To"))?;
    to.uri
        .telephone_number()
        .map(|n| ("To", n.to_owned()))
        .ok_or(InviteError::NoNumber("To"))
}

/// A number from `header`, unescaped, canonicalized by the REST API's own rule for `name`.
fn canonical(
    header: &'static str,
    text: &str,
    name: &str,
    plan: Option<passport::NumberingPlan>,
) -> Result<Tn, InviteError> {
    let text =
        uri::unescape(text).ok_or_else(|| InviteError::BadNumber(header, "bad %-escape".into()))?;
    rest::body::tn(&Value::String(text), name, plan).map_err(|error| match error {
        ApiError::InvalidValue(_, reason) => InviteError::BadNumber(header, reason),
        other => InviteError::BadNumber(header, other.message_id().into()),
    })
}

/// The From URI's `otg` parameter: a `sip:` URI parameter, or a `tel:` URI's own parameter.
fn otg(from: &NameAddr) -> Option<&str> {
    if let Some(Some(value)) = from.uri.param("otg") {
        return Some(value);
    }
    if from.uri.scheme != Scheme::Tel {
        return None;
    }
    from.uri
        .user
        .as_deref()?
        .split(';')
        .skip(1)
        .find_map(|p| {
            p.split_once('=')
                .filter(|(n, _)| n.eq_ignore_ascii_case("otg"))
        })
        .map(|(_, v)| v)
}

/// The values of a header field holding several name-addrs, split at the commas outside
/// quotes and angle brackets.
fn split_values(field: &str) -> Vec<&str> {
    let mut values = Vec::new();
    let (mut start, mut quoted, mut escaped, mut angle) = (0, false, false, false);
    for (i, c) in field.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '<' if !quoted => angle = true,
            '>' if !quoted => angle = false,
            ',' if !quoted && !angle => {
                values.push(field.get(start..i).unwrap_or_default().trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    values.push(field.get(start..).unwrap_or_default().trim());
    values.retain(|v| !v.is_empty());
    values
}

/// A new `origid`: a UUID v4 (its hyphenated form always parses as one).
fn new_origid() -> Option<OrigId> {
    uuid::Uuid::new_v4().hyphenated().to_string().parse().ok()
}

/// The signer's SIP [`Handler`]: the allow-list, the rate limit, and each INVITE through
/// [`service::decide`].
pub struct SipSigner {
    state: Arc<SignerState>,
    options: SipOptions,
}

impl std::fmt::Debug for SipSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SipSigner")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl SipSigner {
    /// A handler answering for `state` as `options` say.
    pub fn new(state: Arc<SignerState>, options: SipOptions) -> Self {
        Self { state, options }
    }

    /// Answers one new INVITE from `peer` (see the module docs), reading the clock once.
    pub async fn answer(&self, request: &Request, peer: Peer) -> Answer {
        let state = &*self.state;
        let Some(client) = state.client_at(peer.addr.ip()) else {
            return Answer::new(403, "Forbidden");
        };
        let now = state.now();
        let call = match CallRequest::from_invite(
            request,
            &self.options,
            state.plan(),
            state.iat_window(),
            now,
        ) {
            Ok(call) => call,
            Err(error) => {
                tracing::debug!(%error, "INVITE refused 400");
                state.metrics.sip_calls.inc(r#"outcome="bad_request""#);
                return bad_request(&error.to_string());
            }
        };
        // An emergency call is answered whatever the client's rate.
        if !state.policy().is_emergency(&call.signing.dest) && !client.allow() {
            state.metrics.sip_calls.inc(r#"outcome="rate_limited""#);
            return Answer::new(503, "Service Unavailable").with_header("Retry-After", "1");
        }
        let call_id = request_id(request.call_id().unwrap_or_default());
        let orig = call.signing.orig.clone();
        let outcome = service::decide(state, call.signing, client, &call_id, now).await;
        self.outcome_answer(outcome, &call.contact, orig.as_str())
    }

    /// The answer for the decision's outcome (counted).
    fn outcome_answer(&self, outcome: Outcome, contact: &str, orig: &str) -> Answer {
        let metrics = &self.state.metrics;
        match outcome {
            Outcome::Signed(signed) => {
                metrics.sip_calls.inc(match signed.level {
                    Attestation::A => r#"outcome="signed",attest="A""#,
                    Attestation::B => r#"outcome="signed",attest="B""#,
                    Attestation::C => r#"outcome="signed",attest="C""#,
                });
                signed_answer(contact, &signed.identity, self.options.identity)
            }
            Outcome::Refused(error) => {
                metrics.sip_calls.inc(r#"outcome="refused""#);
                refused_answer(&error, orig, &self.options)
            }
            Outcome::Failed(failure) => {
                tracing::warn!(
                    ?failure,
                    "call answered 302 without Identity: the signer failed"
                );
                metrics.sip_calls.inc(r#"outcome="unsigned""#);
                metrics.sip_unsigned.inc(failure);
                Answer::new(302, "Moved Temporarily").with_header("Contact", format!("<{contact}>"))
            }
            Outcome::Invalid(error) => {
                metrics.sip_calls.inc(r#"outcome="bad_request""#);
                bad_request(error.message_id())
            }
        }
    }
}

impl Handler for SipSigner {
    fn allowed(&self, peer: &Peer) -> bool {
        self.state.client_at(peer.addr.ip()).is_some()
    }

    async fn invite(&self, request: &Request, peer: Peer) -> Answer {
        // The same latency histogram as REST requests (`shaken_signer_request_seconds`).
        let started = std::time::Instant::now();
        let answer = self.answer(request, peer).await;
        self.state.metrics.latency.observe(started.elapsed());
        answer
    }
}

/// `302` to `contact` with `identity`, as a header or inside the Contact URI.
pub fn signed_answer(contact: &str, identity: &str, placement: IdentityPlacement) -> Answer {
    let answer = Answer::new(302, "Moved Temporarily");
    match placement {
        IdentityPlacement::Header => answer
            .with_header("Contact", format!("<{contact}>"))
            .with_header("Identity", identity),
        IdentityPlacement::Contact => {
            // Only a sip: or sips: URI has headers (RFC 3261 §19.1.1); a tel: Request-URI gets
            // the Identity as a header of its own, as with `identity = "header"`.
            let parsed = uri::parse_uri(contact);
            if parsed.as_ref().is_ok_and(|u| u.scheme == uri::Scheme::Tel) {
                return signed_answer(contact, identity, IdentityPlacement::Header);
            }
            // A Request-URI should carry no headers; if one does, the Identity is one more.
            let has_headers = parsed.is_ok_and(|u| u.headers.is_some());
            let separator = if has_headers { '&' } else { '?' };
            answer.with_header(
                "Contact",
                format!(
                    "<{contact}{separator}Identity={}>",
                    uri::escape_header_value(identity)
                ),
            )
        }
    }
}

/// The trace record's request id for a call: its Call-ID when that is 1 to
/// [`MAX_REQUEST_ID`] bytes of visible ASCII (what REST requires of `X-RequestID`), else a new
/// UUID (a Call-ID may hold anything a caller's equipment wrote).
fn request_id(call_id: &str) -> String {
    if !call_id.is_empty()
        && call_id.len() <= MAX_REQUEST_ID
        && call_id.bytes().all(|b| b.is_ascii_graphic())
    {
        call_id.to_owned()
    } else {
        uuid::Uuid::new_v4().to_string()
    }
}

/// The refusal's answer: `503` for `POL5031` (the registry, not the caller), otherwise the
/// configured 403 or 608, with a `Reason` naming the POL id and the REST API's text.
fn refused_answer(error: &ApiError, orig: &str, options: &SipOptions) -> Answer {
    let (code, phrase) = match (error.message_id(), options.refusal) {
        ("POL5031", _) => (503, "Service Unavailable"),
        (_, 608) => (608, "Rejected"),
        _ => (403, "Forbidden"),
    };
    let text = match error {
        ApiError::Policy(refusal) => refusal.text.replace("%1", orig),
        _ => String::new(),
    };
    let answer = Answer::new(code, phrase).with_header(
        "Reason",
        format!(
            "SIP;cause={code};text=\"{}\"",
            quoted(&format!("{} {text}", error.message_id()))
        ),
    );
    match (&options.jwscard_url, code) {
        (Some(url), 608) => answer.with_header("Call-Info", format!("<{url}>;purpose=jwscard")),
        _ => answer,
    }
}

/// `400 Bad Request` with a `Warning` saying why.
fn bad_request(why: &str) -> Answer {
    Answer::new(400, "Bad Request")
        .with_header("Warning", format!("399 {WARN_AGENT} \"{}\"", quoted(why)))
}

/// `text` for a quoted-string: printable ASCII, `"` and `\` escaped, anything else `?`.
fn quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            ' '..='~' => out.push(c),
            _ => out.push('?'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::net::SocketAddr;

    use passport::identity::IdentityHeader;
    use passport::{Party, SigningKey, TokenSigner};
    use rest::clients::{Client, ClientSection};
    use sip::message::{Message, Request};
    use sip::transport::Transport;

    use super::*;
    use crate::registry::{Customer, NumberRecord, NumberStatus};
    use crate::service::{NumberLookup, StateParts};
    use crate::trace::TraceLog;
    use crate::SignerError;

    const NOW: u64 = 1_700_000_000;
    const X5U: &str = "https://cr.shaken.test/sp/1001/chain.pem";

    /// The registry: 12155551212 of verified c1, 12155551213 suspended, nothing else.
    struct Numbers(HashMap<&'static str, Arc<NumberRecord>>);

    impl NumberLookup for Numbers {
        fn lookup(&self, tn: &str) -> Result<Option<Arc<NumberRecord>>, SignerError> {
            Ok(self.0.get(tn).cloned())
        }
    }

    fn record(tn: &str, status: NumberStatus) -> Arc<NumberRecord> {
        Arc::new(NumberRecord {
            tn: tn.into(),
            customer: Customer {
                id: "c1".into(),
                name: "One".into(),
                verified: true,
            },
            status,
            via_range: false,
        })
    }

    struct Fixture {
        state: Arc<SignerState>,
        _dir: tempfile::TempDir,
    }

    /// A registry that cannot be read.
    struct Down;

    impl NumberLookup for Down {
        fn lookup(&self, _tn: &str) -> Result<Option<Arc<NumberRecord>>, SignerError> {
            Err(SignerError::Config("simulated registry outage".into()))
        }
    }

    fn fixture(rate: u32) -> Fixture {
        fixture_with(
            rate,
            Arc::new(Numbers(HashMap::from([
                ("12155551212", record("12155551212", NumberStatus::Active)),
                (
                    "12155551213",
                    record("12155551213", NumberStatus::Suspended),
                ),
            ]))),
        )
    }

    fn fixture_with(rate: u32, numbers: Arc<dyn NumberLookup>) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let client = Client::from_config(&ClientSection {
            name: "sbc".into(),
            ips: vec!["127.0.0.0/8".parse().unwrap()],
            certificate_sha256: None,
            customer: None,
            rate_limit_per_second: rate,
        })
        .unwrap();
        let state = SignerState::new(StateParts {
            signer: Arc::new(TokenSigner::new(SigningKey::generate().unwrap(), X5U)),
            registry: numbers,
            trace: TraceLog::open(&dir.path().join("trace.sqlite")).unwrap(),
            policy: crate::policy::PolicyConfig::default(),
            plan: Some(passport::NumberingPlan::Nanp),
            clients: vec![client],
            max_body: 4096,
            nonce_pool: 0,
        })
        .with_clock(Arc::new(|| NOW));
        Fixture {
            state: Arc::new(state),
            _dir: dir,
        }
    }

    fn invite(uri: &str, from: &str, to: &str, extra: &str) -> Request {
        let text = format!(
            "INVITE {uri} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-1\r\n\
             Max-Forwards: 70\r\nFrom: {from};tag=1\r\nTo: {to}\r\nCall-ID: call-1@sbc\r\n\
             CSeq: 1 INVITE\r\n{extra}Content-Length: 0\r\n\r\n"
        );
        match sip::message::parse(text.as_bytes(), &sip::message::Limits::default()).unwrap() {
            Message::Request(request) => request,
            other => panic!("{other:?}"),
        }
    }

    fn peer() -> Peer {
        Peer {
            addr: "127.0.0.1:5070".parse().unwrap(),
            transport: Transport::Udp,
        }
    }

    fn header<'a>(answer: &'a Answer, name: &str) -> Option<&'a str> {
        answer
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value.as_str())
    }

    async fn answer_with(fixture: &Fixture, options: SipOptions, request: &Request) -> Answer {
        SipSigner::new(Arc::clone(&fixture.state), options)
            .answer(request, peer())
            .await
    }

    const FROM: &str = "<sip:+12155551212@sbc.example;user=phone>";
    const TO: &str = "<sip:+12125551213@example.net>";
    const RURI: &str = "sip:+1-212-555-1213@example.net;user=phone";
    const ORIGID: &str = "de305d54-75b4-431b-adb2-eb6b9e546014";

    fn claims_of(identity: &str) -> passport::Claims {
        IdentityHeader::parse(identity)
            .unwrap()
            .passport()
            .claims()
            .clone()
    }

    #[tokio::test]
    async fn a_signed_call_is_a_302_whose_identity_is_the_rest_core_s() {
        let f = fixture(0);
        let request = invite(
            RURI,
            FROM,
            TO,
            &format!("P-Origination-ID: {ORIGID}\r\nAttestation-Info: A\r\n"),
        );
        let answer = answer_with(&f, SipOptions::default(), &request).await;
        assert_eq!(
            (answer.code, answer.reason.as_str()),
            (302, "Moved Temporarily")
        );
        assert_eq!(
            header(&answer, "Contact"),
            Some(format!("<{RURI}>").as_str())
        );
        let identity = header(&answer, "Identity").unwrap();
        assert!(
            identity.ends_with(&format!(";info=<{X5U}>;alg=ES256;ppt=shaken")),
            "{identity}"
        );
        let claims = claims_of(identity);
        assert_eq!(claims.orig, Party::Tn("12155551212".into()));
        assert_eq!(claims.dest.tn(), ["12125551213".to_owned()]);
        assert_eq!(claims.attest, Some(Attestation::A));
        assert_eq!(claims.origid.as_ref().map(OrigId::as_str), Some(ORIGID));
        assert_eq!(claims.iat, NOW);
        // The REST path's core for the same call: the same header and claims, byte for byte.
        let call = CallRequest::from_invite(
            &request,
            &SipOptions::default(),
            f.state.plan(),
            f.state.iat_window(),
            NOW,
        )
        .unwrap();
        let client = f.state.client_at("127.0.0.1".parse().unwrap()).unwrap();
        let Outcome::Signed(rest) = service::decide(&f.state, call.signing, client, "r", NOW).await
        else {
            panic!("not signed");
        };
        let unsigned = |s: &str| {
            s.split_once(';')
                .unwrap()
                .0
                .rsplit_once('.')
                .unwrap()
                .0
                .to_owned()
        };
        assert_eq!(unsigned(&rest.identity), unsigned(identity));
        assert_eq!(
            rest.identity.split_once(';').unwrap().1,
            identity.split_once(';').unwrap().1
        );
        assert_eq!(
            f.state
                .metrics
                .sip_calls
                .get(r#"outcome="signed",attest="A""#),
            1
        );
        // Without hints: attestation A asked (the registry decides) and a fresh origid.
        let plain = answer_of(&f, invite(RURI, FROM, TO, "")).await;
        let claims = claims_of(header(&plain, "Identity").unwrap());
        assert_eq!(claims.attest, Some(Attestation::A));
        assert_ne!(claims.origid.as_ref().map(OrigId::as_str), Some(ORIGID));
        // A number of another customer's trunk is lowered to B.
        let options = SipOptions {
            trunks: BTreeMap::from([("pbx7".into(), "c9".into())]),
            ..SipOptions::default()
        };
        let from = "<sip:+12155551212@sbc.example;user=phone;otg=pbx7>";
        let lowered = answer_with(&f, options, &invite(RURI, from, TO, "")).await;
        let claims = claims_of(header(&lowered, "Identity").unwrap());
        assert_eq!(claims.attest, Some(Attestation::B));
    }

    async fn answer_of(f: &Fixture, request: Request) -> Answer {
        answer_with(f, SipOptions::default(), &request).await
    }

    #[tokio::test]
    async fn the_identity_in_the_contact_uri_is_escaped_and_reads_back() {
        let f = fixture(0);
        let options = SipOptions {
            identity: IdentityPlacement::Contact,
            ..SipOptions::default()
        };
        let answer = answer_with(&f, options, &invite(RURI, FROM, TO, "")).await;
        assert_eq!(answer.code, 302);
        assert_eq!(header(&answer, "Identity"), None);
        let contact = header(&answer, "Contact").unwrap();
        let parsed = uri::parse_name_addr(contact).unwrap();
        let headers = parsed.uri.headers.as_deref().unwrap();
        let escaped = headers.strip_prefix("Identity=").unwrap();
        assert!(
            !escaped.contains(';') && !escaped.contains('<'),
            "{escaped}"
        );
        let identity = uri::unescape(escaped).unwrap();
        assert_eq!(claims_of(&identity).orig, Party::Tn("12155551212".into()));
        assert!(
            contact.starts_with(&format!("<{RURI}?Identity=")),
            "{contact}"
        );
    }

    #[tokio::test]
    async fn the_calling_number_is_the_asserted_one_tel_preferred() {
        let f = fixture(0);
        let from = "<sip:+12155559999@sbc.example;user=phone>";
        let pai = "P-Asserted-Identity: \"Alice, Inc\" <sip:+12155550000@sbc.example;user=phone>, <tel:+1-215-555-1212>\r\n";
        let answer = answer_of(&f, invite(RURI, from, TO, pai)).await;
        assert_eq!(answer.code, 302, "{answer:?}");
        let claims = claims_of(header(&answer, "Identity").unwrap());
        assert_eq!(claims.orig, Party::Tn("12155551212".into()));
        // One P-Asserted-Identity with a sip URI: it is taken over From.
        let pai = "P-Asserted-Identity: <sip:+1(215)555.1212@sbc.example;user=phone>\r\n";
        let answer = answer_of(&f, invite(RURI, from, TO, pai)).await;
        assert_eq!(
            claims_of(header(&answer, "Identity").unwrap()).orig,
            Party::Tn("12155551212".into())
        );
        // A P-Asserted-Identity without a number: From.
        let pai = "P-Asserted-Identity: <sip:alice@sbc.example>\r\n";
        let answer = answer_of(&f, invite(RURI, FROM, TO, pai)).await;
        assert_eq!(answer.code, 302);
        // The called number from To when the Request-URI holds none; tel URIs; national form.
        let answer = answer_of(
            &f,
            invite(
                "sip:gw@example.net",
                "<tel:(215)555-1212>",
                "<tel:+1.212.555.1213>",
                "",
            ),
        )
        .await;
        let claims = claims_of(header(&answer, "Identity").unwrap());
        assert_eq!(claims.orig, Party::Tn("12155551212".into()));
        assert_eq!(claims.dest.tn(), ["12125551213".to_owned()]);
    }

    #[tokio::test]
    async fn numbers_and_hints_that_cannot_be_read_are_400_naming_the_header() {
        let f = fixture(0);
        let cases = [
            (invite(RURI, "<sip:alice@sbc.example>", TO, ""), "From"),
            (
                invite("sip:gw@example.net", FROM, "<sip:bob@example.net>", ""),
                "To",
            ),
            (
                invite(RURI, "<sip:+1215x@sbc.example;user=phone>", TO, ""),
                "From",
            ),
            (
                invite(
                    RURI,
                    FROM,
                    TO,
                    "P-Asserted-Identity: <sip:+1215abc@h;user=phone>\r\n",
                ),
                "P-Asserted-Identity",
            ),
            (
                invite(RURI, FROM, TO, "Attestation-Info: D\r\n"),
                "Attestation-Info",
            ),
            (
                invite(RURI, FROM, TO, "P-Origination-ID: 42\r\n"),
                "P-Origination-ID",
            ),
        ];
        for (request, named) in cases {
            let answer = answer_of(&f, request).await;
            assert_eq!(answer.code, 400, "{named}: {answer:?}");
            let warning = header(&answer, "Warning").unwrap();
            assert!(warning.starts_with("399 shaken-signer \""), "{warning}");
            assert!(warning.contains(named), "{named}: {warning}");
        }
        assert_eq!(f.state.metrics.sip_calls.get(r#"outcome="bad_request""#), 6);
    }

    #[tokio::test]
    async fn iat_is_the_date_within_the_window_else_the_clock() {
        let f = fixture(0);
        let at = |seconds: u64| {
            let date = format!("Date: {}\r\n", sip::date::format(seconds));
            invite(RURI, FROM, TO, &date)
        };
        for (date, iat) in [
            (NOW - 30, NOW - 30),
            (NOW + 5, NOW + 5),
            (NOW - 61, NOW),
            (NOW + 11, NOW),
        ] {
            let answer = answer_of(&f, at(date)).await;
            assert_eq!(answer.code, 302);
            assert_eq!(
                claims_of(header(&answer, "Identity").unwrap()).iat,
                iat,
                "Date {date}"
            );
        }
        let garbled = answer_of(&f, invite(RURI, FROM, TO, "Date: yesterday\r\n")).await;
        assert_eq!(claims_of(header(&garbled, "Identity").unwrap()).iat, NOW);
    }

    #[tokio::test]
    async fn policy_refusals_are_403_or_608_with_the_pol_id() {
        let f = fixture(0);
        let unregistered = invite(RURI, "<sip:+12155550001@sbc.example;user=phone>", TO, "");
        let answer = answer_of(&f, unregistered.clone()).await;
        assert_eq!((answer.code, answer.reason.as_str()), (403, "Forbidden"));
        assert_eq!(
            header(&answer, "Reason"),
            Some("SIP;cause=403;text=\"POL4101 Calling number '12155550001' is not registered\"")
        );
        assert_eq!(header(&answer, "Identity"), None);
        let suspended = invite(RURI, "<sip:+12155551213@sbc.example;user=phone>", TO, "");
        let answer = answer_of(&f, suspended).await;
        assert!(header(&answer, "Reason").unwrap().contains("POL4102"));
        let options = SipOptions {
            refusal: 608,
            jwscard_url: Some("https://redress.example/jws".into()),
            ..SipOptions::default()
        };
        let answer = answer_with(&f, options, &unregistered).await;
        assert_eq!((answer.code, answer.reason.as_str()), (608, "Rejected"));
        assert!(header(&answer, "Reason")
            .unwrap()
            .starts_with("SIP;cause=608;text=\"POL4101 "));
        assert_eq!(
            header(&answer, "Call-Info"),
            Some("<https://redress.example/jws>;purpose=jwscard")
        );
        assert_eq!(f.state.metrics.sip_calls.get(r#"outcome="refused""#), 3);
        // Recorded in the trace log as REST records them, under the Call-ID.
        let records = (0..50)
            .find_map(|_| {
                let found = crate::trace::lookup_tn(
                    f.state.trace().path(),
                    "12155550001",
                    0,
                    u64::MAX >> 2,
                )
                .unwrap();
                if found.len() == 2 {
                    return Some(found);
                }
                std::thread::sleep(std::time::Duration::from_millis(50));
                None
            })
            .unwrap();
        assert!(records.iter().all(|r| r.outcome == "refused"
            && r.message_id.as_deref() == Some("POL4101")
            && r.request_id == "call-1@sbc"
            && r.client == "sbc"));
    }

    #[tokio::test]
    async fn emergency_calls_are_signed_even_unregistered_and_over_the_rate() {
        let f = fixture(1);
        let from = "<sip:+12155550001@sbc.example;user=phone>";
        for _ in 0..3 {
            let answer = answer_of(
                &f,
                invite("sip:911@example.net", from, "<sip:911@example.net>", ""),
            )
            .await;
            assert_eq!(answer.code, 302, "{answer:?}");
            let claims = claims_of(header(&answer, "Identity").unwrap());
            assert_eq!(claims.attest, Some(Attestation::C));
            assert_eq!(claims.dest.tn(), ["911".to_owned()]);
        }
    }

    #[tokio::test]
    async fn over_the_rate_limit_is_503_retry_after_1() {
        let f = fixture(1);
        let first = answer_of(&f, invite(RURI, FROM, TO, "")).await;
        assert_eq!(first.code, 302);
        let second = answer_of(&f, invite(RURI, FROM, TO, "")).await;
        assert_eq!(
            (second.code, header(&second, "Retry-After")),
            (503, Some("1"))
        );
        assert_eq!(
            f.state.metrics.sip_calls.get(r#"outcome="rate_limited""#),
            1
        );
    }

    #[tokio::test]
    async fn a_failure_of_the_signer_is_a_302_without_identity_counted() {
        let f = fixture(0);
        let signer = SipSigner::new(Arc::clone(&f.state), SipOptions::default());
        for failure in [
            service::Failure::Trace,
            service::Failure::NoSigner,
            service::Failure::Trace,
        ] {
            let answer = signer.outcome_answer(Outcome::Failed(failure), RURI, "12155551212");
            assert_eq!(answer.code, 302);
            assert_eq!(
                header(&answer, "Contact"),
                Some(format!("<{RURI}>").as_str())
            );
            assert_eq!(header(&answer, "Identity"), None);
        }
        assert_eq!(f.state.metrics.sip_unsigned.get(service::Failure::Trace), 2);
        assert_eq!(
            f.state.metrics.sip_unsigned.get(service::Failure::NoSigner),
            1
        );
        let text = f.state.metrics.render_sip();
        assert!(
            text.contains("shaken_signer_sip_unsigned_total{reason=\"trace\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("shaken_signer_sip_calls_total{outcome=\"unsigned\"} 3"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn only_allowed_addresses_are_answered() {
        let f = fixture(0);
        let signer = SipSigner::new(Arc::clone(&f.state), SipOptions::default());
        let outside = Peer {
            addr: SocketAddr::from(([192, 0, 2, 1], 5060)),
            transport: Transport::Tcp,
        };
        assert!(!signer.allowed(&outside));
        assert!(signer.allowed(&peer()));
        let answer = signer.answer(&invite(RURI, FROM, TO, ""), outside).await;
        assert_eq!(answer.code, 403);
    }

    #[test]
    fn values_split_outside_quotes_and_brackets() {
        assert_eq!(
            split_values("\"a, b\" <sip:x@h;p=1,2>, <tel:+1>,"),
            vec!["\"a, b\" <sip:x@h;p=1,2>", "<tel:+1>"]
        );
        assert_eq!(uri::unescape("%2B1%2d215"), Some("+1-215".into()));
        assert_eq!(uri::unescape("%2"), None);
        assert_eq!(uri::unescape("%zz1"), None);
    }

    #[tokio::test]
    async fn an_invite_over_a_real_udp_socket_gets_its_302_and_the_metrics_count_it() {
        let f = fixture(0);
        let section: SipSection = toml::from_str("listen = [\"127.0.0.1:0\"]").unwrap();
        let service = crate::server::start_sip(&section, &f.state).await.unwrap();
        let (_, address) = service
            .local_addrs()
            .into_iter()
            .find(|(t, _)| *t == Transport::Udp)
            .unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let serving = tokio::spawn(service.serve_until(async move {
            let _ = stopped.await;
        }));
        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let local = socket.local_addr().unwrap();
        let message = format!(
            "INVITE {RURI} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-udp1\r\n\
             Max-Forwards: 70\r\nFrom: {FROM};tag=9\r\nTo: {TO}\r\nCall-ID: udp-1@sbc\r\n\
             CSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
        );
        socket.send_to(message.as_bytes(), address).await.unwrap();
        let mut buffer = vec![0u8; 8192];
        // A `100 Trying` comes first when the answer takes more than 200 ms (a busy machine).
        let reply = loop {
            let (n, _) = tokio::time::timeout(
                std::time::Duration::from_secs(5),
                socket.recv_from(&mut buffer),
            )
            .await
            .unwrap()
            .unwrap();
            let reply = String::from_utf8_lossy(&buffer[..n]).into_owned();
            if !reply.starts_with("SIP/2.0 100 ") {
                break reply;
            }
        };
        assert!(
            reply.starts_with("SIP/2.0 302 Moved Temporarily\r\n"),
            "{reply}"
        );
        assert!(reply.contains("Call-ID: udp-1@sbc\r\n"), "{reply}");
        let identity = reply
            .lines()
            .find_map(|l| l.strip_prefix("Identity: "))
            .unwrap();
        assert_eq!(claims_of(identity).orig, Party::Tn("12155551212".into()));
        let metrics = f.state.render_metrics();
        assert!(
            metrics.contains("shaken_signer_sip_calls_total{outcome=\"signed\",attest=\"A\"} 1"),
            "{metrics}"
        );
        let listener_lines = metrics
            .lines()
            .filter(|l| {
                l.starts_with("shaken_signer_sip_")
                    && !l.contains("_calls_total")
                    && !l.contains("_unsigned_total")
            })
            .count();
        assert!(listener_lines > 0, "the listener's counters: {metrics}");
        stop.send(()).unwrap();
        tokio::time::timeout(std::time::Duration::from_secs(5), serving)
            .await
            .unwrap()
            .unwrap();
    }

    #[tokio::test]
    async fn a_registry_outage_is_503_naming_pol5031_and_emergency_calls_still_go() {
        let f = fixture_with(0, Arc::new(Down));
        let options = SipOptions {
            refusal: 608,
            ..SipOptions::default()
        };
        let answer = answer_with(&f, options, &invite(RURI, FROM, TO, "")).await;
        assert_eq!(
            (answer.code, answer.reason.as_str()),
            (503, "Service Unavailable")
        );
        let reason = header(&answer, "Reason").unwrap();
        assert!(
            reason.starts_with("SIP;cause=503;text=\"POL5031 "),
            "{reason}"
        );
        let emergency = answer_of(&f, invite("sip:911@example.net", FROM, TO, "")).await;
        assert_eq!(emergency.code, 302);
        assert!(header(&emergency, "Identity").is_some());
    }

    #[test]
    fn a_contact_uri_with_headers_gets_the_identity_as_one_more() {
        let answer = signed_answer(
            "sip:+12125551213@h?X-A=1",
            "t;info=<https://x/c.pem>",
            IdentityPlacement::Contact,
        );
        assert_eq!(
            header(&answer, "Contact"),
            Some("<sip:+12125551213@h?X-A=1&Identity=t%3Binfo%3D%3Chttps://x/c.pem%3E>")
        );
    }

    #[test]
    fn a_call_id_becomes_the_request_id_only_when_rest_would_take_it() {
        assert_eq!(
            request_id("a84b4c76e66710@pc33.example"),
            "a84b4c76e66710@pc33.example"
        );
        for bad in [
            "",
            "has space",
            "caf\u{e9}",
            &"x".repeat(MAX_REQUEST_ID + 1),
        ] {
            let id = request_id(bad);
            assert_ne!(id, bad);
            assert!(uuid::Uuid::parse_str(&id).is_ok(), "{id}");
        }
    }

    #[test]
    fn contact_mode_with_a_tel_request_uri_puts_the_identity_in_a_header() {
        let answer = signed_answer(
            "tel:+12125551212",
            "TOKEN;info=<https://x>",
            IdentityPlacement::Contact,
        );
        assert_eq!(answer.code, 302);
        let header = |name: &str| {
            answer
                .headers
                .iter()
                .find(|h| h.name == name)
                .map(|h| h.value.clone())
        };
        assert_eq!(header("Contact").as_deref(), Some("<tel:+12125551212>"));
        assert_eq!(
            header("Identity").as_deref(),
            Some("TOKEN;info=<https://x>")
        );
    }
}
