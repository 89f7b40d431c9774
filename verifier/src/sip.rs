//! The verifier's SIP redirect interface (issue 18 §2): an SBC sends a copy of a call's INVITE
//! and copies headers from the answer into the real INVITE.
//!
//! An INVITE is read into the same [`VerificationRequest`] the REST API parses
//! ([`read_invite`]): the calling number from `P-Asserted-Identity` (the first value with a
//! telephone number, a `tel:` one preferred) or else `From`; the called number from the
//! Request-URI or else `To`; both canonicalized by the REST rules; every `Identity` field
//! sorted like the REST `identity` array ([`crate::api::sort_identities`]); `time` from `Date`
//! when present, else the verifier's clock; `ingress` from `[sip.ingress]`. It is verified by
//! [`VerifierState::verify_request`], the REST path's core, so the verdict, the metrics and the
//! event line are the same.
//!
//! The answer ([`VerifierSip::answer`]): `302 Moved Temporarily` with `Contact: <Request-URI>`
//! and the header the calling number came from sent back with `verstat` set in its URI
//! ([`sip::uri::with_verstat`], which replaces an upstream `verstat`), optionally
//! `Attestation-Info`, the verdict header and the marketing call's vetted name as display name;
//! or, for a flag `[sip.block]` maps to a code, `608`/`607`/`403` with `Reason`. A request the
//! verifier cannot read gets `400` with a `Warning` naming the header; a client over its rate
//! limit `503` with `Retry-After: 1`. Nothing here logs a telephone number.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use ipnet::IpNet;
use passport::{NumberingPlan, Tn};
use rest::metrics::CounterKey;
use sip::message::Request;
use sip::transport::{Answer, Handler, Peer};
use sip::uri::{self, NameAddr, Scheme, UriError, VerstatPlacement};

use crate::api::{self, IdentitiesError, IngressError, VerificationRequest};
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

/// Headers the answer sets itself: a verdict header may not take one of these names.
const RESERVED_HEADERS: [&str; 12] = [
    "via",
    "from",
    "to",
    "call-id",
    "cseq",
    "contact",
    "content-length",
    "p-asserted-identity",
    "attestation-info",
    "reason",
    "warning",
    "retry-after",
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
                if RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
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

/// RFC 3261 `token` characters.
fn is_token(text: &str) -> bool {
    text.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b))
}

/// Why an INVITE cannot be verified: answered `400 Bad Request` with a `Warning` naming the
/// header. The messages never carry the numbers themselves.
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
    /// `Date` is not an RFC 1123 date in GMT.
    #[error("Date: not an RFC 1123 date in GMT")]
    Date,
    /// The Identity fields cannot be sorted into the judged one and the `ppt=rcd` ones.
    #[error("Identity: {0}")]
    Identity(IdentitiesError),
    /// The trunk parameter's value is not a valid ingress name.
    #[error("Request-URI parameter {param}: {error}")]
    Trunk {
        /// The parameter's name.
        param: String,
        /// Why.
        error: IngressError,
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

/// `text` canonicalized exactly as the REST API reads a `tn` (the same characters allowed,
/// then [`Tn::canonicalize`] under `plan`).
fn canonical(
    text: &str,
    header: &'static str,
    plan: Option<NumberingPlan>,
) -> Result<Tn, InviteError> {
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

/// The calling number and the header it came from: the first `P-Asserted-Identity` value with
/// a telephone number (a `tel:` one preferred, as TS 24.229 lets a PAI carry both), else
/// `From`.
fn calling(request: &Request, plan: Option<NumberingPlan>) -> Result<(Tn, Caller), InviteError> {
    // Lenient: a PAI value that does not parse is skipped (another value or From may name the
    // caller); a From that does not parse is an error, since every request has one.
    let asserted: Vec<NameAddr> = request
        .headers_named(PAI)
        .flat_map(split_values)
        .filter_map(|value| uri::parse_name_addr(value).ok())
        .filter(|address| address.uri.telephone_number().is_some())
        .collect();
    let chosen = asserted
        .iter()
        .find(|a| a.uri.scheme == Scheme::Tel)
        .or_else(|| asserted.first());
    if let Some(address) = chosen {
        let number = address.uri.telephone_number().unwrap_or_default();
        let tn = canonical(number, PAI, plan)?;
        return Ok((
            tn,
            Caller {
                header: PAI,
                address: address.clone(),
            },
        ));
    }
    let from = request.header("From").unwrap_or_default();
    let address = uri::parse_name_addr(from).map_err(|error| InviteError::Address {
        header: "From",
        error,
    })?;
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
}

/// The called number: the Request-URI's, else `To`'s.
fn called(request: &Request, plan: Option<NumberingPlan>) -> Result<Tn, InviteError> {
    if let Some(number) = uri::parse_uri(&request.uri)
        .ok()
        .as_ref()
        .and_then(|u| u.telephone_number().map(str::to_owned))
    {
        return canonical(&number, "Request-URI", plan);
    }
    let to = request.header("To").unwrap_or_default();
    let address = uri::parse_name_addr(to).map_err(|error| InviteError::Address {
        header: "To",
        error,
    })?;
    let number = address
        .uri
        .telephone_number()
        .ok_or(InviteError::NoNumber("To"))?;
    canonical(number, "To", plan)
}

/// The value of parameter `name` (lower-case) of the Request-URI: after the host, or inside
/// the user part as a telephone-subscriber parameter (RFC 4904 places `tgrp` there, some SBCs
/// after the host: both are read, the host's first). `None` when absent or without a value.
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

/// Reads an INVITE into a verification request as of `now` (used when it has no `Date`):
/// see the module documentation.
pub fn read_invite(
    request: &Request,
    source: IpAddr,
    options: &SipOptions,
    plan: Option<NumberingPlan>,
    now: u64,
) -> Result<ReadInvite, InviteError> {
    let (from, caller) = calling(request, plan)?;
    let to = called(request, plan)?;
    let time = match request.header("Date") {
        Some(date) => sip::date::parse(date).ok_or(InviteError::Date)?,
        None => now,
    };
    let fields: Vec<&str> = request
        .headers_named("Identity")
        .flat_map(split_values)
        .collect();
    let (identity, rcd_identities) =
        api::sort_identities(&fields).map_err(InviteError::Identity)?;
    let trunk = match &options.trunk_param {
        Some(param) => match request_uri_param(request, param) {
            Some(value) => {
                api::check_ingress(&value).map_err(|error| InviteError::Trunk {
                    param: param.clone(),
                    error,
                })?;
                Some(value)
            }
            None => None,
        },
        None => None,
    };
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

    async fn invite(&self, request: Request, peer: Peer) -> Answer {
        self.answer(&request, peer).await
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
