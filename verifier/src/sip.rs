//! The verifier's SIP redirect interface (issue 18 §2): an SBC sends a copy of a call's INVITE
//! and copies headers from the answer into the real INVITE.
//!
//! An INVITE is read into the same [`VerificationRequest`] the REST API parses
//! ([`read_invite`]): the calling number from `P-Asserted-Identity` (the first value with a
//! number the REST rules accept, `tel:` ones first) or else `From`; the called number from the
//! Request-URI or else `To`; both `%`-decoded and canonicalized by the REST rules; the
//! `Identity` fields sorted into the judged one and the `ppt=rcd` ones ([`sip_identities`]:
//! the first `shaken` one judged, other `ppt` values ignored); `time` from `Date` when it is a
//! readable RFC 1123 date, else the verifier's clock; `ingress` from `[sip.ingress]`. It is
//! verified by [`VerifierState::verify_request`], the REST path's core, so the verdict, the
//! metrics and the event line are the same.
//!
//! The answer ([`VerifierSip::answer`]): `302 Moved Temporarily` with `Contact: <Request-URI>`
//! and the header the calling number came from sent back with `verstat` set in its URI
//! ([`sip::uri::with_verstat`], which replaces an upstream `verstat`; one among the header's
//! parameters is removed), optionally
//! `Attestation-Info`, the verdict header and the marketing call's vetted name as display name;
//! or, for a flag `[sip.block]` maps to a code, `608`/`607`/`403` with `Reason`. Only a request
//! from which no calling or no called number can be read gets `400` with a `Warning` naming
//! the header (nothing else a caller controls turns the dip into a `400`, which would let the
//! call through unlabelled); a client over its rate limit `503` with `Retry-After: 1`. Nothing
//! here logs a telephone number.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use ipnet::IpNet;
use passport::{NumberingPlan, Tn};
use rest::metrics::CounterKey;
use sip::message::{same_header_name, Request};
use sip::transport::{Answer, Handler, Peer};
use sip::uri::{self, NameAddr, Scheme, UriError, VerstatPlacement};

use crate::api::{self, VerificationRequest, MAX_IDENTITIES};
use crate::config::{BlockAnswer, ConfigError, SipSection};
use crate::service::VerifierState;
use crate::verdict::{Flag, Verdict, Verstat};

/// The order in which blocked flags are considered: when a verdict raises several flags that
/// `[sip.block]` maps to a code, the first of them in this order decides the answer. The
/// regulator's decisions first, then the failures of SHAKEN from the most to the least
/// telling, then the attestation's, then the marketing flags.
pub const BLOCK_ORDER: [Flag; 11] = [
    Flag::Blacklisted,
    Flag::OptedOut,
    Flag::Spoofed,
    Flag::Revoked,
    Flag::Untrusted,
    Flag::Stale,
    Flag::Unsigned,
    Flag::Gateway,
    Flag::Unregistered,
    Flag::RcdMismatch,
    Flag::Marketing,
];

/// The prefix of the SIP metrics in `/metrics`.
pub const METRICS_PREFIX: &str = "shaken_verifier_sip";

/// The `warn-agent` of the `Warning` header of a `400`.
pub const WARN_AGENT: &str = "shaken-verifier";

/// The longest verdict header name.
const MAX_HEADER_NAME: usize = 64;

/// Headers the answer or the transport sets itself (the copied `Via`, `From`, `To`, `Call-ID`,
/// `CSeq`; `Content-Length`, `Content-Type`; `Allow` of `405`/`200 OK`; the labelled and the
/// verifier's own headers), and `Identity`, which an SBC copies from a dip's answer: a verdict
/// header may take none of these names, in long or compact form
/// ([`sip::message::long_name`]).
const RESERVED_HEADERS: [&str; 15] = [
    "Via",
    "From",
    "To",
    "Call-ID",
    "CSeq",
    "Contact",
    "Content-Length",
    "Content-Type",
    "Allow",
    "Identity",
    "P-Asserted-Identity",
    "Attestation-Info",
    "Reason",
    "Warning",
    "Retry-After",
];

/// `[sip]`'s answer options, checked and ready.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SipOptions {
    /// Where `verstat` goes in a `sip:` URI.
    pub placement: VerstatPlacement,
    /// Whether a passed verdict with an attestation carries `Attestation-Info`.
    pub attestation_info: bool,
    /// The verdict header's name, if any.
    pub verdict_header: Option<String>,
    /// Whether a marketing call's vetted name becomes the display name.
    pub display_name: bool,
    /// The blocked flags, in [`BLOCK_ORDER`], with their answer (never `label`).
    block: Vec<(Flag, BlockAnswer)>,
    /// Ingress networks, most specific first.
    ingress: Vec<(IpNet, String)>,
    /// The Request-URI parameter naming the trunk group, lower-case.
    trunk_param: Option<String>,
}

impl SipOptions {
    /// Checks and compiles `section`'s answer options: the verdict header's name is a token
    /// of at most 64 characters that is not a header the answer sets itself, each `[sip.block]`
    /// key is a flag's wire name, each ingress network parses and each ingress name follows
    /// the REST `ingress` rules, the trunk parameter is a token.
    pub fn from_section(section: &SipSection) -> Result<Self, ConfigError> {
        let verdict_header = match &section.verdict_header {
            None => None,
            Some(name) => {
                if name.is_empty() || name.len() > MAX_HEADER_NAME || !is_token(name) {
                    return Err(ConfigError(format!(
                        "sip.verdict_header: {name:?} is not a header name (1 to {MAX_HEADER_NAME} token characters)"
                    )));
                }
                if is_reserved(name) {
                    return Err(ConfigError(format!(
                        "sip.verdict_header: {name:?} is a header the answer sets itself"
                    )));
                }
                Some(name.clone())
            }
        };
        let mut block = Vec::new();
        for name in section.block.keys() {
            if !Flag::ALL.iter().any(|flag| flag.as_str() == name) {
                let known: Vec<&str> = BLOCK_ORDER.iter().map(|f| f.as_str()).collect();
                return Err(ConfigError(format!(
                    "sip.block: {name:?} is not a flag (one of {})",
                    known.join(", ")
                )));
            }
        }
        for flag in BLOCK_ORDER {
            match section.block.get(flag.as_str()) {
                Some(answer) if *answer != BlockAnswer::Label => block.push((flag, *answer)),
                _ => {}
            }
        }
        let mut ingress = Vec::new();
        for (network, name) in &section.ingress.addresses {
            let net: IpNet = network.parse().map_err(|_| {
                ConfigError(format!(
                    "sip.ingress.addresses: {network:?} is not a network (\"10.1.0.0/16\")"
                ))
            })?;
            api::check_ingress(name).map_err(|error| {
                ConfigError(format!("sip.ingress.addresses.{network:?}: {error}"))
            })?;
            ingress.push((net.trunc(), name.clone()));
        }
        // Most specific first; among equal prefixes the order of the map (stable).
        ingress.sort_by_key(|(net, _)| std::cmp::Reverse(net.prefix_len()));
        let trunk_param = match &section.ingress.trunk_param {
            None => None,
            Some(param) => {
                if param.is_empty() || param.len() > MAX_HEADER_NAME || !is_token(param) {
                    return Err(ConfigError(format!(
                        "sip.ingress.trunk_param: {param:?} is not a URI parameter name"
                    )));
                }
                Some(param.to_ascii_lowercase())
            }
        };
        Ok(Self {
            placement: section.verstat,
            attestation_info: section.attestation_info,
            verdict_header,
            display_name: section.display_name,
            block,
            ingress,
            trunk_param,
        })
    }

    /// The blocking answer for `verdict`: the first of its flags in [`BLOCK_ORDER`] that
    /// `[sip.block]` maps to a code, with that code; `None` to label the call.
    pub fn blocking(&self, verdict: &Verdict) -> Option<(Flag, BlockAnswer)> {
        self.block
            .iter()
            .find(|(flag, _)| verdict.flags.contains(flag))
            .copied()
    }

    /// The ingress name of a request from `ip`: the most specific configured network holding
    /// it.
    pub fn ingress_of(&self, ip: IpAddr) -> Option<&str> {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
            v4 => v4,
        };
        self.ingress
            .iter()
            .find(|(net, _)| net.contains(&ip))
            .map(|(_, name)| name.as_str())
    }
}

/// Whether `name` (any case, long or compact form) is one of [`RESERVED_HEADERS`].
fn is_reserved(name: &str) -> bool {
    RESERVED_HEADERS
        .iter()
        .any(|reserved| same_header_name(name, reserved))
}

/// RFC 3261 `token` characters.
fn is_token(text: &str) -> bool {
    text.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b))
}

/// Why an INVITE cannot be verified: no calling or no called number can be read from it at
/// all. Answered `400 Bad Request` with a `Warning` naming the header (the first one tried
/// that failed); the SBC treats it as a dip failure. The messages never carry the numbers
/// themselves.
///
/// Nothing else in an INVITE is a reason to refuse it: a caller must not be able to dodge
/// `[sip.block]` or the label by making the verifier answer `400` (see [`read_invite`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InviteError {
    /// A header that must name a number is missing, or its value is not a name-addr.
    #[error("{header}: unreadable ({error})")]
    Address {
        /// The header.
        header: &'static str,
        /// What the URI parser said.
        error: UriError,
    },
    /// No telephone number where one is needed (no PAI or From with one; no called number in
    /// the Request-URI or To).
    #[error("{0}: no telephone number")]
    NoNumber(&'static str),
    /// The number is not one the REST API would accept.
    #[error("{header}: not a telephone number ({reason})")]
    BadNumber {
        /// The header (or `Request-URI`).
        header: &'static str,
        /// Why.
        reason: &'static str,
    },
}

/// The INVITE's header whose URI the answer labels with `verstat`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    /// `P-Asserted-Identity` or `From`.
    pub header: &'static str,
    /// Its value (the one that gave the calling number).
    pub address: NameAddr,
}

/// A readable INVITE: what to verify, and what to label.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadInvite {
    /// The request for [`VerifierState::verify_request`].
    pub request: VerificationRequest,
    /// The header to send back labelled.
    pub caller: Caller,
}

/// The `P-Asserted-Identity` header's name.
const PAI: &str = "P-Asserted-Identity";

/// Splits a header field into its comma-separated values, keeping commas inside quotes and
/// angle brackets (`"Doe, J" <sip:...>`, `<https://a/b,c>`), each trimmed, empty ones dropped.
pub fn split_values(field: &str) -> Vec<&str> {
    let mut values = Vec::new();
    let (mut quoted, mut escaped, mut angle) = (false, false, false);
    let mut start = 0;
    for (i, c) in field.char_indices() {
        if quoted {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => quoted = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => quoted = true,
            '<' => angle = true,
            '>' => angle = false,
            ',' if !angle => {
                values.push(field.get(start..i).unwrap_or_default());
                start = i + 1;
            }
            _ => {}
        }
    }
    values.push(field.get(start..).unwrap_or_default());
    values
        .into_iter()
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .collect()
}

/// `text` with its `%XX` escapes decoded ([`uri::unescape`], as the signer reads a number),
/// then canonicalized exactly as the REST API reads a `tn` (the same characters allowed, then
/// [`Tn::canonicalize`] under `plan`).
fn canonical(
    text: &str,
    header: &'static str,
    plan: Option<NumberingPlan>,
) -> Result<Tn, InviteError> {
    let text = uri::unescape(text).ok_or(InviteError::BadNumber {
        header,
        reason: "bad %-escape",
    })?;
    let text = text.as_str();
    if text.is_empty()
        || !text
            .bytes()
            .all(|b| b.is_ascii_digit() || b"*#+.-()".contains(&b))
    {
        return Err(InviteError::BadNumber {
            header,
            reason: "characters outside 0-9 * # + . - ( )",
        });
    }
    Tn::canonicalize(text, plan).map_err(|error| InviteError::BadNumber {
        header,
        reason: match error {
            passport::Error::TelephoneNumber { reason, .. } => reason,
            _ => "not a telephone number",
        },
    })
}

/// The calling number and the header it came from: the first `P-Asserted-Identity` value
/// whose telephone number the REST rules accept (`tel:` values tried first, as TS 24.229 lets
/// a PAI carry both), else `From`'s. An error only when none gives a number: then the first
/// candidate's error, or `From`'s.
fn calling(request: &Request, plan: Option<NumberingPlan>) -> Result<(Tn, Caller), InviteError> {
    // Lenient: a PAI value that does not parse, or whose number is not one, is skipped
    // (another value or From may name the caller): an unreadable PAI must not let a caller
    // turn the dip into a 400 while a readable number is there to verify.
    let asserted: Vec<NameAddr> = request
        .headers_named(PAI)
        .flat_map(split_values)
        .filter_map(|value| uri::parse_name_addr(value).ok())
        .filter(|address| address.uri.telephone_number().is_some())
        .collect();
    let tel_first = asserted
        .iter()
        .filter(|a| a.uri.scheme == Scheme::Tel)
        .chain(asserted.iter().filter(|a| a.uri.scheme != Scheme::Tel));
    let mut first_error = None;
    for address in tel_first {
        let number = address.uri.telephone_number().unwrap_or_default();
        match canonical(number, PAI, plan) {
            Ok(tn) => {
                let caller = Caller {
                    header: PAI,
                    address: address.clone(),
                };
                return Ok((tn, caller));
            }
            Err(error) => {
                first_error.get_or_insert(error);
            }
        }
    }
    let from = request.header("From").unwrap_or_default();
    let from = uri::parse_name_addr(from)
        .map_err(|error| InviteError::Address {
            header: "From",
            error,
        })
        .and_then(|address| {
            let number = address
                .uri
                .telephone_number()
                .ok_or(InviteError::NoNumber("From"))?;
            let tn = canonical(number, "From", plan)?;
            Ok((
                tn,
                Caller {
                    header: "From",
                    address,
                },
            ))
        });
    match (from, first_error) {
        (Ok(found), _) => Ok(found),
        (Err(_), Some(error)) | (Err(error), None) => Err(error),
    }
}

/// The called number: the Request-URI's when the REST rules accept it, else `To`'s. An error
/// only when neither gives a number: then the Request-URI's error, or `To`'s.
fn called(request: &Request, plan: Option<NumberingPlan>) -> Result<Tn, InviteError> {
    let mut first_error = None;
    if let Some(number) = uri::parse_uri(&request.uri)
        .ok()
        .as_ref()
        .and_then(|u| u.telephone_number().map(str::to_owned))
    {
        match canonical(&number, "Request-URI", plan) {
            Ok(tn) => return Ok(tn),
            Err(error) => first_error = Some(error),
        }
    }
    let to = request.header("To").unwrap_or_default();
    let to = uri::parse_name_addr(to)
        .map_err(|error| InviteError::Address {
            header: "To",
            error,
        })
        .and_then(|address| {
            let number = address
                .uri
                .telephone_number()
                .ok_or(InviteError::NoNumber("To"))?;
            canonical(number, "To", plan)
        });
    match (to, first_error) {
        (Ok(tn), _) => Ok(tn),
        (Err(_), Some(error)) | (Err(error), None) => Err(error),
    }
}

/// The Identity header values an INVITE's verification uses, from every `Identity` field
/// (`y` too, comma-separated values split), in order: the judged one and the Rich Call Data
/// ones, the two parts [`api::sort_identities`] gives the REST path (which, unlike this, refuses
/// an array it cannot sort: a REST client is the carrier's own software, an INVITE's headers
/// are the caller's).
///
/// - Judged: the first value whose `ppt` parameter is `shaken` (any case) or that has none,
///   including a value that does not parse at all (judged, it fails with `438` as a REST
///   `identity` string would). Further such values are ignored: the first decides.
/// - Rich Call Data: the values whose `ppt` is `rcd`, at most [`MAX_IDENTITIES`] (the rest
///   ignored).
/// - Ignored: every other `ppt` (`div` of a diverted call, RFC 8946, and any future one).
///
/// Never an error: however many Identity headers a caller adds, the call is verified and
/// labelled (the SIP parser's caps bound their number and size).
pub fn sip_identities<S: AsRef<str>>(values: &[S]) -> (Option<String>, Vec<String>) {
    let mut judged = None;
    let mut rcd = Vec::new();
    for value in values {
        let value = value.as_ref();
        match passport::identity::ppt_parameter(value) {
            Some(passport::rcd::PPT_RCD) => {
                if rcd.len() < MAX_IDENTITIES {
                    rcd.push(value.to_owned());
                }
            }
            Some(ppt) if !ppt.eq_ignore_ascii_case("shaken") => {}
            _ => {
                if judged.is_none() {
                    judged = Some(value.to_owned());
                }
            }
        }
    }
    (judged, rcd)
}

/// The value of parameter `name` (lower-case) of the Request-URI: after the host, or inside
/// the user part as a telephone-subscriber parameter. RFC 4904 defines `tgrp` and
/// `trunk-context` as parameters of a telephone number, so inside a `tel:` URI or the user
/// part of a `sip:` URI with `user=phone`; some SBCs put them after the host: both are read,
/// the host's first. `None` when absent or without a value.
fn request_uri_param(request: &Request, name: &str) -> Option<String> {
    let parsed = uri::parse_uri(&request.uri).ok()?;
    if let Some(Some(value)) = parsed.param(name) {
        return Some(value.to_owned());
    }
    let user = parsed.user.as_deref()?;
    user.split(';').skip(1).find_map(|param| {
        let (key, value) = param.split_once('=')?;
        key.eq_ignore_ascii_case(name).then(|| value.to_owned())
    })
}

/// Reads an INVITE into a verification request as of `now` (used when it has no readable
/// `Date`): see the module documentation.
///
/// Only the numbers can make it fail ([`InviteError`]). A `Date` that is not a strict RFC 1123
/// date in GMT is treated as absent (the verifier's clock is the call's time; the token's
/// `iat` is still checked against it), as [`sip::date`] says; the Identity headers are sorted
/// by [`sip_identities`], never refused; a trunk parameter whose value is not a valid ingress
/// name is ignored (the address mapping applies).
pub fn read_invite(
    request: &Request,
    source: IpAddr,
    options: &SipOptions,
    plan: Option<NumberingPlan>,
    now: u64,
) -> Result<ReadInvite, InviteError> {
    let (from, caller) = calling(request, plan)?;
    let to = called(request, plan)?;
    let time = request
        .header("Date")
        .and_then(sip::date::parse)
        .unwrap_or(now);
    let fields: Vec<&str> = request
        .headers_named("Identity")
        .flat_map(split_values)
        .collect();
    let (identity, rcd_identities) = sip_identities(&fields);
    let trunk = options
        .trunk_param
        .as_ref()
        .and_then(|param| request_uri_param(request, param))
        .filter(|value| api::check_ingress(value).is_ok());
    let ingress = trunk.or_else(|| options.ingress_of(source).map(str::to_owned));
    Ok(ReadInvite {
        request: VerificationRequest {
            from,
            to: vec![to],
            time,
            identity,
            rcd_identities,
            ingress,
        },
        caller,
    })
}

/// The verdict header's value: `flags=F1,F2` (the flags' wire names, omitted when there are
/// none), `spc=SPC` (when the certificate validated), `reason=CODE` (the SIP reason code, when
/// failed), joined by `;` in that order; ASCII only, no telephone number. For example
/// `flags=spoofed,unregistered;spc=709J;reason=438`.
pub fn verdict_header_value(verdict: &Verdict) -> String {
    let mut parts = Vec::with_capacity(3);
    if !verdict.flags.is_empty() {
        let flags: Vec<&str> = verdict.flags.iter().map(|f| f.as_str()).collect();
        parts.push(format!("flags={}", flags.join(",")));
    }
    if let Some(spc) = &verdict.spc {
        // The SPC comes from a certificate: anything but token characters is escaped.
        let mut escaped = String::with_capacity(spc.len());
        for b in spc.bytes() {
            if b.is_ascii_alphanumeric() || b"-.!*_+`'~".contains(&b) {
                escaped.push(char::from(b));
            } else {
                escaped.push_str(&format!("%{b:02X}"));
            }
        }
        parts.push(format!("spc={escaped}"));
    }
    if let Some(reason) = verdict.reason {
        parts.push(format!("reason={}", reason.code()));
    }
    parts.join(";")
}

/// The verifier's answers by kind, for `/metrics`.
#[derive(Debug, Default)]
pub struct SipAnswers {
    /// `302` with a verstat.
    pub labelled: AtomicU64,
    /// `403` by `[sip.block]`.
    pub blocked_403: AtomicU64,
    /// `607` by `[sip.block]`.
    pub blocked_607: AtomicU64,
    /// `608` by `[sip.block]`.
    pub blocked_608: AtomicU64,
    /// `400`: an INVITE the verifier cannot read.
    pub bad_requests: AtomicU64,
    /// `503`: a client over its rate limit.
    pub rate_limited: AtomicU64,
}

impl SipAnswers {
    /// The Prometheus text under `prefix` (`shaken_verifier_sip`):
    /// `PREFIX_answers_total{kind,code}`.
    pub fn render(&self, prefix: &str) -> String {
        use std::fmt::Write;
        let mut out = format!(
            "# HELP {prefix}_answers_total INVITEs answered by the verifier, by kind and code.\n\
             # TYPE {prefix}_answers_total counter\n"
        );
        for (kind, code, counter) in [
            ("labelled", 302, &self.labelled),
            ("blocked", 403, &self.blocked_403),
            ("blocked", 607, &self.blocked_607),
            ("blocked", 608, &self.blocked_608),
            ("bad-request", 400, &self.bad_requests),
            ("rate-limited", 503, &self.rate_limited),
        ] {
            let _ = writeln!(
                out,
                "{prefix}_answers_total{{kind=\"{kind}\",code=\"{code}\"}} {}",
                counter.load(Ordering::Relaxed)
            );
        }
        out
    }
}

/// The verifier as a [`Handler`] of the SIP listener.
#[derive(Debug)]
pub struct VerifierSip {
    state: Arc<VerifierState>,
    options: SipOptions,
    answers: Arc<SipAnswers>,
}

impl VerifierSip {
    /// The handler answering with `options`, verifying through `state`, counting in `answers`
    /// (shared with `/metrics` through [`VerifierState::with_sip_metrics`]).
    pub fn new(state: Arc<VerifierState>, options: SipOptions, answers: Arc<SipAnswers>) -> Self {
        Self {
            state,
            options,
            answers,
        }
    }

    /// The answer to a new INVITE from `peer`: see the module documentation.
    pub async fn answer(&self, request: &Request, peer: Peer) -> Answer {
        let Some(client) = self.state.client_by_address(peer.addr.ip()) else {
            return Answer::new(403, "Forbidden");
        };
        if !client.allow() {
            self.answers.rate_limited.fetch_add(1, Ordering::Relaxed);
            return Answer::new(503, "Service Unavailable").with_header("Retry-After", "1");
        }
        let now = self.state.now();
        let read = match read_invite(
            request,
            peer.addr.ip(),
            &self.options,
            self.state.plan(),
            now,
        ) {
            Ok(read) => read,
            Err(error) => {
                tracing::debug!(%error, client = %client.name, "INVITE not verified");
                self.answers.bad_requests.fetch_add(1, Ordering::Relaxed);
                let text = rest::error::ascii(&error.to_string()).replace(['"', '\\'], "'");
                return Answer::new(400, "Bad Request")
                    .with_header("Warning", format!("399 {WARN_AGENT} \"{text}\""));
            }
        };
        let verdict = self.state.verify_request(&read.request, now).await;
        self.answer_verdict(request, &read.caller, &verdict)
    }

    /// The answer carrying `verdict` for `request`, whose calling number came from `caller`.
    fn answer_verdict(&self, request: &Request, caller: &Caller, verdict: &Verdict) -> Answer {
        let mut answer = match self.options.blocking(verdict) {
            Some((flag, block)) => {
                let (code, phrase) = block.status().unwrap_or((403, "Forbidden"));
                let counter = match code {
                    607 => &self.answers.blocked_607,
                    608 => &self.answers.blocked_608,
                    _ => &self.answers.blocked_403,
                };
                counter.fetch_add(1, Ordering::Relaxed);
                Answer::new(code, phrase).with_header(
                    "Reason",
                    format!("SIP;cause={code};text=\"{}\"", flag.as_str()),
                )
            }
            None => {
                self.answers.labelled.fetch_add(1, Ordering::Relaxed);
                let mut labelled = caller.address.clone();
                // An upstream verstat is never passed on: in the URI (with_verstat removes it)
                // nor among the header parameters (where an addr-spec value such as
                // `tel:+1...;verstat=...` puts it, RFC 3261 §20.10).
                labelled.params.retain(|(name, _)| name != "verstat");
                labelled.uri = uri::with_verstat(
                    &caller.address.uri,
                    verdict.verstat.as_str(),
                    self.options.placement,
                );
                if self.options.display_name {
                    if let Some(note) = &verdict.marketing {
                        labelled.display = Some(note.nam.clone());
                    }
                }
                let mut answer = Answer::new(302, "Moved Temporarily")
                    .with_header("Contact", format!("<{}>", request.uri))
                    .with_header(caller.header, labelled.to_string());
                if self.options.attestation_info && verdict.verstat == Verstat::Passed {
                    if let Some(attest) = verdict.attest {
                        answer = answer.with_header("Attestation-Info", attest.as_str());
                    }
                }
                answer
            }
        };
        if let Some(name) = &self.options.verdict_header {
            answer = answer.with_header(name, verdict_header_value(verdict));
        }
        answer
    }
}

impl Handler for VerifierSip {
    fn allowed(&self, peer: &Peer) -> bool {
        self.state.client_by_address(peer.addr.ip()).is_some()
    }

    async fn invite(&self, request: &Request, peer: Peer) -> Answer {
        self.answer(request, peer).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_split_on_commas_outside_quotes_and_brackets() {
        assert_eq!(
            split_values(r#""Doe, J\"," <sip:+1@a;x=1>;t=2, <tel:+2> ,,"#),
            [r#""Doe, J\"," <sip:+1@a;x=1>;t=2"#, "<tel:+2>"]
        );
        assert_eq!(
            split_values("tok;info=<https://a/b,c>;ppt=shaken,r;ppt=rcd"),
            ["tok;info=<https://a/b,c>;ppt=shaken", "r;ppt=rcd"]
        );
        assert!(split_values(" , ").is_empty());
    }

    #[test]
    fn the_most_specific_network_names_the_ingress() {
        let section: SipSection = toml::from_str(
            "listen = [\"127.0.0.1:0\"]\n[ingress.addresses]\n\"10.0.0.0/8\" = \"interconnect\"\n\"10.1.2.0/24\" = \"local\"\n\"::/0\" = \"international\"\n",
        )
        .unwrap();
        let options = SipOptions::from_section(&section).unwrap();
        let ingress = |ip: &str| options.ingress_of(ip.parse().unwrap());
        assert_eq!(ingress("10.1.2.3"), Some("local"));
        assert_eq!(ingress("10.9.2.3"), Some("interconnect"));
        assert_eq!(ingress("::ffff:10.1.2.3"), Some("local"));
        assert_eq!(ingress("2001:db8::1"), Some("international"));
        assert_eq!(ingress("192.0.2.1"), None);
    }

    #[test]
    fn the_verdict_header_takes_no_name_the_answer_or_transport_sets() {
        let options = |name: &str| {
            let section: SipSection = toml::from_str(&format!(
                "listen = [\"127.0.0.1:0\"]\nverdict_header = \"{name}\"\n"
            ))
            .unwrap();
            SipOptions::from_section(&section)
        };
        for reserved in [
            "f",
            "t",
            "v",
            "i",
            "m",
            "l",
            "c",
            "y",
            "F",
            "Identity",
            "IDENTITY",
            "Allow",
            "Content-Type",
            "content-length",
            "p-asserted-identity",
            "Attestation-Info",
            "Reason",
            "Warning",
            "Retry-After",
            "CSeq",
        ] {
            let error = options(reserved).unwrap_err();
            assert!(
                error.0.contains("a header the answer sets itself"),
                "{reserved}: {error:?}"
            );
        }
        for free in ["X-Shaken-Verdict", "X-Verdict", "s", "Verdict"] {
            assert_eq!(
                options(free).unwrap().verdict_header.as_deref(),
                Some(free),
                "{free}"
            );
        }
    }

    #[test]
    fn identities_judge_the_first_shaken_keep_rcd_and_ignore_the_rest() {
        // A diverted call (RFC 8946): the shaken one is judged, the div one ignored.
        let (judged, rcd) = sip_identities(&["d;info=<https://a/d>;ppt=div", "s;ppt=shaken"]);
        assert_eq!((judged.as_deref(), rcd.len()), (Some("s;ppt=shaken"), 0));
        // Several judged ones: the first, even when it does not parse (it then fails, 438).
        let (judged, _) = sip_identities(&["garbage", "s;ppt=shaken", "t"]);
        assert_eq!(judged.as_deref(), Some("garbage"));
        let (judged, _) = sip_identities(&["s;ppt=\"SHAKEN\"", "t;ppt=shaken"]);
        assert_eq!(judged.as_deref(), Some("s;ppt=\"SHAKEN\""));
        // Rich Call Data: at most MAX_IDENTITIES, the rest ignored; never an error.
        let many: Vec<String> = (0..9).map(|i| format!("r{i};ppt=rcd")).collect();
        let (judged, rcd) = sip_identities(&many);
        assert_eq!(judged, None);
        assert_eq!(rcd, many.get(..MAX_IDENTITIES).unwrap());
        let none: [&str; 0] = [];
        assert_eq!(sip_identities(&none), (None, vec![]));
    }

    #[test]
    fn the_verdict_header_is_ascii_with_the_spc_escaped() {
        let mut verdict = Verdict::unsigned();
        assert_eq!(
            verdict_header_value(&verdict),
            "flags=unsigned,unregistered"
        );
        verdict.flags.clear();
        verdict.spc = Some("70 9J;é".into());
        verdict.reason = Some(passport::SipReason::InvalidIdentityHeader);
        assert_eq!(
            verdict_header_value(&verdict),
            "spc=70%209J%3B%C3%A9;reason=438"
        );
    }
}
