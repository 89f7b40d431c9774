//! The ATIS-1000082 signing API's request and error shapes.
//!
//! Request: `{"signingRequest":{"attest","dest":{"tn":[..]},"iat","orig":{"tn"},"origid"}}`,
//! plus this project's optional extension members `customerId` (the calling customer, see
//! [`crate::policy`]), `rcd` (Rich Call Data the caller asks for: an object holding only a
//! string `nam`) and `crn` (a call reason string), both RFC 9795 and checked by
//! [`passport::rcd`]'s rules (non-empty, bounded, no control characters). Whether they are
//! honoured is the policy's decision, not the parser's. Response: `{"signingResponse":{"identity":"..."}}`. Errors:
//! `{"requestError":{"serviceException"|"policyException":{"messageId","text","variables"}}}`
//! where `text` is the standard's template and `variables` fill its `%1`, `%2`.
//!
//! | id | HTTP | when |
//! |---|---|---|
//! | `SVC4000` | 400 | no body |
//! | `SVC4001` | 400 | a mandatory member is missing (its name in `variables`) |
//! | `SVC4002` | 406 | `Accept` does not allow `application/json` |
//! | `SVC4003` | 404 | unknown path |
//! | `SVC4004` | 415 | `Content-Type` is not `application/json` |
//! | `SVC4005` | 400 | a member has an invalid value (name and reason in `variables`); also `iat` outside the window around the signer's clock ([`IatWindow`]) |
//! | `SVC4006` | 400 (413 when too large) | the body cannot be parsed |
//! | `SVC4007` | 411 | no `Content-Length` |
//! | `POL4050` | 405 | another method than POST |
//! | `POL5000` | 500 | internal failure |
//! | `POL4030` | 403 | client not authorized (not in the allow-list, or no accepted certificate); this project's |
//! | `POL4101` | 403 | calling number not registered; this project's |
//! | `POL4102` | 403 | calling number suspended; this project's |
//! | `POL4103` | 403 | the number's customer has not completed real-name verification; this project's |
//! | `POL4104` | 403 | domestic caller ID through a gateway; this project's |
//! | `POL4111` | 403 | calling number of a blacklisted firm (the regulator's list); this project's |
//! | `POL4112` | 403 | calling number of a suspended firm; this project's |
//! | `POL4113` | 403 | calling number blacklisted itself; this project's |
//! | `POL4114` | 403 | a called subscriber opted out of the calling firm; this project's |
//! | `POL4115` | 403 | the calling firm is over its hourly quota; this project's |
//! | `POL4116` | 403 | a call reason (`crn`) the caller may not state; this project's |
//! | `POL4117` | 403 | an `rcd` that is not the vetted name of the number's white-listed firm; this project's |
//! | `POL4290` | 429 | client over its rate limit; this project's |
//! | `POL5031` | 503 | registry unavailable; this project's |

use hyper::StatusCode;
use passport::{
    Attestation, CallReason, Claims, Dest, NumberingPlan, OrigId, Party, RichCallData, Tn,
};
use rest::body;
use serde_json::{json, Value};

use crate::marketing::MarketingRefusal;
use crate::policy::Refusal;

pub use rest::ApiError;
use rest::PolicyRefusal;

/// The policy refusal for a signing decision (this project's `POL41xx` ids, and `POL5031`).
pub fn refusal(refusal: Refusal) -> ApiError {
    let (id, status, text) = match refusal {
        Refusal::Unregistered => (
            "POL4101",
            StatusCode::FORBIDDEN,
            "Calling number '%1' is not registered",
        ),
        Refusal::Suspended => (
            "POL4102",
            StatusCode::FORBIDDEN,
            "Calling number '%1' is suspended",
        ),
        Refusal::NotVerified => (
            "POL4103",
            StatusCode::FORBIDDEN,
            "Calling number '%1' belongs to a customer whose real-name registration is incomplete",
        ),
        Refusal::DomesticViaGateway => (
            "POL4104",
            StatusCode::FORBIDDEN,
            "Domestic calling number '%1' arrived through a gateway",
        ),
        Refusal::RegistryUnavailable => (
            "POL5031",
            StatusCode::SERVICE_UNAVAILABLE,
            "Number registry unavailable. Please try again later",
        ),
        Refusal::Marketing(refusal) => marketing_refusal(refusal),
    };
    ApiError::Policy(PolicyRefusal { id, status, text })
}

/// The marketing rules' refusals ([`crate::marketing`]): this project's `POL4111`-`POL4117`,
/// each 403.
fn marketing_refusal(refusal: MarketingRefusal) -> (&'static str, StatusCode, &'static str) {
    let (id, text) = match refusal {
        MarketingRefusal::FirmBlacklisted => (
            "POL4111",
            "Calling number '%1' belongs to a blacklisted firm",
        ),
        MarketingRefusal::FirmSuspended => {
            ("POL4112", "Calling number '%1' belongs to a suspended firm")
        }
        MarketingRefusal::NumberBlacklisted => ("POL4113", "Calling number '%1' is blacklisted"),
        MarketingRefusal::OptedOut => (
            "POL4114",
            "A called subscriber opted out of the calls of the firm of '%1'",
        ),
        MarketingRefusal::OverQuota => (
            "POL4115",
            "The firm of calling number '%1' is over its hourly call quota",
        ),
        MarketingRefusal::ReasonNotAllowed => (
            "POL4116",
            "Calling number '%1' may not state this call reason",
        ),
        MarketingRefusal::RcdNotAllowed => (
            "POL4117",
            "Calling number '%1' may not brand calls with this name",
        ),
    };
    (id, StatusCode::FORBIDDEN, text)
}

/// Default [`IatWindow::max_past`], seconds: the verifiers' freshness window (RFC 8224's
/// recommended 60 s), so that a token older than this would be stale on arrival.
pub const DEFAULT_IAT_MAX_PAST: u64 = 60;
/// Default [`IatWindow::max_future`], seconds: an allowance for the client's clock running ahead.
pub const DEFAULT_IAT_MAX_FUTURE: u64 = 10;

/// How far a request's `iat` may be from the signer's clock (`iat_max_past_seconds`,
/// `iat_max_future_seconds`). A request outside it gets `SVC4005` with the variables `iat` and
/// the window it broke (`more than 60 s before the signer's clock`), instead of a token that
/// verifiers would find stale on arrival (or, ahead, that they would refuse as not yet valid).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IatWindow {
    /// Most seconds `iat` may be before the signer's clock.
    pub max_past: u64,
    /// Most seconds `iat` may be after the signer's clock.
    pub max_future: u64,
}

impl Default for IatWindow {
    fn default() -> Self {
        Self {
            max_past: DEFAULT_IAT_MAX_PAST,
            max_future: DEFAULT_IAT_MAX_FUTURE,
        }
    }
}

/// Why an `iat` is outside the [`IatWindow`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IatError {
    /// `iat` is more than `max_past` seconds before the signer's clock.
    #[error("more than {max_past} s before the signer's clock")]
    TooOld {
        /// The request's `iat`.
        iat: u64,
        /// The signer's clock.
        now: u64,
        /// The window's `max_past`.
        max_past: u64,
    },
    /// `iat` is more than `max_future` seconds after the signer's clock.
    #[error("more than {max_future} s after the signer's clock")]
    TooNew {
        /// The request's `iat`.
        iat: u64,
        /// The signer's clock.
        now: u64,
        /// The window's `max_future`.
        max_future: u64,
    },
}

impl IatWindow {
    /// Checks `iat` against the signer's clock `now` (both seconds since the epoch); the
    /// edges are inside: `now - max_past` and `now + max_future` are accepted.
    pub fn check(&self, iat: u64, now: u64) -> Result<(), IatError> {
        if iat < now && now - iat > self.max_past {
            return Err(IatError::TooOld {
                iat,
                now,
                max_past: self.max_past,
            });
        }
        if iat > now && iat - now > self.max_future {
            return Err(IatError::TooNew {
                iat,
                now,
                max_future: self.max_future,
            });
        }
        Ok(())
    }
}

impl From<IatError> for ApiError {
    /// `SVC4005` with the variables `iat` and the window broken.
    fn from(error: IatError) -> Self {
        body::invalid("iat", error.to_string())
    }
}

/// A valid signing request, numbers canonicalized.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SigningRequest {
    /// Requested attestation.
    pub attest: Attestation,
    /// Called numbers.
    pub dest: Vec<Tn>,
    /// Issued-at time from the request.
    pub iat: u64,
    /// Calling number.
    pub orig: Tn,
    /// Origination identifier.
    pub origid: OrigId,
    /// The calling customer, if the request names one (`customerId` extension member).
    pub customer: Option<String>,
    /// Rich Call Data the request asks for (`rcd` extension member: `{"nam": ...}`), valid.
    pub rcd: Option<RichCallData>,
    /// The call reason the request states (`crn` extension member), valid.
    pub crn: Option<CallReason>,
}

impl SigningRequest {
    /// The claims of the `shaken` PASSporT for this request, signed at `level` with `iat`, and
    /// carrying the Rich Call Data the policy decided on (`rcd`: the vetted name; `crn`: an
    /// allowed reason), which need not be the request's own. Canonical order is the writer's.
    pub fn claims(
        &self,
        iat: u64,
        level: Attestation,
        rcd: Option<RichCallData>,
        crn: Option<CallReason>,
    ) -> Result<Claims, ApiError> {
        let dest = Dest::tns(self.dest.iter().map(ToString::to_string).collect())
            .ok_or_else(|| body::invalid("dest.tn", "empty"))?;
        let mut claims = Claims::shaken(
            iat,
            Party::Tn(self.orig.to_string()),
            dest,
            level,
            self.origid.clone(),
        );
        claims.rcd = rcd;
        claims.crn = crn;
        Ok(claims)
    }
}

/// The `rcd` extension member: an object with a valid string `nam` and nothing else (a caller
/// may not set an icon, a jCard or another number: those would need vetting this service does
/// not do).
fn parse_rcd(value: &Value) -> Result<RichCallData, ApiError> {
    let Value::Object(map) = value else {
        return Err(body::invalid("rcd", "not an object"));
    };
    if let Some(other) = map.keys().find(|k| *k != "nam") {
        let name: String = other.chars().take(32).collect();
        return Err(body::invalid(
            "rcd",
            format!("member {name:?} is not accepted: only \"nam\""),
        ));
    }
    match map.get("nam") {
        None => Err(body::invalid("rcd.nam", "absent")),
        Some(Value::String(nam)) => RichCallData::new(nam.as_str()).map_err(|e| match e {
            passport::TokenError::InvalidRcd { reason, .. } => body::invalid("rcd.nam", reason),
            other => body::invalid("rcd.nam", other.to_string()),
        }),
        Some(_) => Err(body::invalid("rcd.nam", "not a string")),
    }
}

/// The `crn` extension member: a valid call reason.
fn parse_crn(value: &Value) -> Result<CallReason, ApiError> {
    let Value::String(text) = value else {
        return Err(body::invalid("crn", "not a string"));
    };
    CallReason::new(text.as_str()).map_err(|e| match e {
        passport::TokenError::InvalidCrn { reason } => body::invalid("crn", reason),
        other => body::invalid("crn", other.to_string()),
    })
}

/// Parses a signing request body.
pub fn parse_signing_request(
    body: &[u8],
    plan: Option<NumberingPlan>,
) -> Result<SigningRequest, ApiError> {
    let request = body::top_object(body, "signingRequest")?;
    let attest = match body::member(&request, "attest", "attest")? {
        Value::String(s) => s
            .parse::<Attestation>()
            .map_err(|_| body::invalid("attest", "must be A, B or C"))?,
        _ => return Err(body::invalid("attest", "must be A, B or C")),
    };
    let dest = body::tn_array(&request, "dest", plan)?;
    let iat = body::positive_integer(&request, "iat")?;
    let orig = body::single_tn(&request, "orig", plan)?;
    let origid = match body::member(&request, "origid", "origid")? {
        Value::String(s) => s
            .parse::<OrigId>()
            .map_err(|_| body::invalid("origid", "not a UUID"))?,
        _ => return Err(body::invalid("origid", "not a UUID")),
    };
    let customer = match request.get("customerId") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if !s.is_empty() && s.len() <= 128 => Some(s.clone()),
        Some(_) => {
            return Err(body::invalid(
                "customerId",
                "not a non-empty string of at most 128 characters",
            ))
        }
    };
    let rcd = match request.get("rcd") {
        None | Some(Value::Null) => None,
        Some(value) => Some(parse_rcd(value)?),
    };
    let crn = match request.get("crn") {
        None | Some(Value::Null) => None,
        Some(value) => Some(parse_crn(value)?),
    };
    Ok(SigningRequest {
        attest,
        dest,
        iat,
        orig,
        origid,
        customer,
        rcd,
        crn,
    })
}

/// The success body.
pub fn signing_response(identity: &str) -> Vec<u8> {
    json!({"signingResponse": {"identity": identity}})
        .to_string()
        .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{"signingRequest":{"attest":"A","dest":{"tn":["+1(212)555-1213"]},"iat":1443208345,"orig":{"tn":"12155551212"},"origid":"de305d54-75b4-431b-adb2-eb6b9e546014"}}"#;

    #[test]
    fn parses_and_canonicalizes() {
        let request = parse_signing_request(GOOD.as_bytes(), None).unwrap();
        assert_eq!(request.dest[0].as_str(), "12125551213");
        assert_eq!(request.attest, Attestation::A);
        assert_eq!(request.customer, None);
        assert_eq!((request.rcd, request.crn), (None, None));
    }

    #[test]
    fn rich_call_data_members_parse_and_build_claims() {
        let body = GOOD.replace(
            r#""attest":"A","#,
            r#""attest":"A","rcd":{"nam":"Example Marketing"},"crn":"Product offer","#,
        );
        let request = parse_signing_request(body.as_bytes(), None).unwrap();
        assert_eq!(
            request.rcd.as_ref().map(|r| r.nam()),
            Some("Example Marketing")
        );
        assert_eq!(
            request.crn.as_ref().map(|c| c.as_str()),
            Some("Product offer")
        );
        let claims = request
            .claims(
                1443208345,
                Attestation::A,
                request.rcd.clone(),
                request.crn.clone(),
            )
            .unwrap();
        assert_eq!(
            claims.to_json(),
            r#"{"attest":"A","crn":"Product offer","dest":{"tn":["12125551213"]},"iat":1443208345,"orig":{"tn":"12155551212"},"origid":"de305d54-75b4-431b-adb2-eb6b9e546014","rcd":{"nam":"Example Marketing"}}"#
        );
        let plain = request
            .claims(1443208345, Attestation::B, None, None)
            .unwrap();
        assert_eq!((plain.rcd_name(), plain.call_reason()), (None, None));

        let with = |members: &str| {
            GOOD.replace(r#""attest":"A","#, &format!(r#""attest":"A",{members},"#))
        };
        for (members, variable) in [
            (r#""rcd":"Example""#, "rcd"),
            (r#""rcd":{}"#, "rcd.nam"),
            (r#""rcd":{"nam":""}"#, "rcd.nam"),
            (r#""rcd":{"nam":5}"#, "rcd.nam"),
            (r#""rcd":{"nam":"A\nB"}"#, "rcd.nam"),
            (r#""rcd":{"nam":"A","icn":"https://x/i.png"}"#, "rcd"),
            (r#""crn":"""#, "crn"),
            (r#""crn":["Sales"]"#, "crn"),
            (r#""crn":"Sales\u0007""#, "crn"),
        ] {
            let body = with(members);
            let err = parse_signing_request(body.as_bytes(), None).unwrap_err();
            assert_eq!(err.message_id(), "SVC4005", "{body}");
            let json: Value = serde_json::from_slice(&err.body(None)).unwrap();
            assert_eq!(
                json["requestError"]["serviceException"]["variables"][0], variable,
                "{body}"
            );
        }
        let long = with(&format!(r#""rcd":{{"nam":"{}"}}"#, "n".repeat(65)));
        assert!(parse_signing_request(long.as_bytes(), None).is_err());
    }

    #[test]
    fn each_member_error_names_the_member() {
        let cases: &[(&str, &str, &str)] = &[
            ("", "SVC4000", ""),
            ("{", "SVC4006", ""),
            (r#"{"signingRequest":{"a":1,"a":2}}"#, "SVC4006", ""),
            (r#"{"x":1}"#, "SVC4001", "signingRequest"),
            (&GOOD.replace(r#""attest":"A","#, ""), "SVC4001", "attest"),
            (
                &GOOD.replace(r#""attest":"A""#, r#""attest":"D""#),
                "SVC4005",
                "attest",
            ),
            (&GOOD.replace(r#""iat":1443208345,"#, ""), "SVC4001", "iat"),
            (&GOOD.replace("1443208345", "-5"), "SVC4005", "iat"),
            (&GOOD.replace("1443208345", "\"1\""), "SVC4005", "iat"),
            (
                &GOOD.replace(r#""tn":["+1(212)555-1213"]"#, r#""tn":[]"#),
                "SVC4005",
                "dest.tn",
            ),
            (
                &GOOD.replace(r#""tn":["+1(212)555-1213"]"#, r#""uri":["sip:a@b"]"#),
                "SVC4001",
                "dest.tn",
            ),
            (
                &GOOD.replace("12155551212", "1215555x212"),
                "SVC4005",
                "orig.tn",
            ),
            (
                &GOOD.replace(r#""orig":{"tn":"12155551212"},"#, ""),
                "SVC4001",
                "orig",
            ),
            (
                &GOOD.replace("de305d54-75b4-431b-adb2-eb6b9e546014", "nope"),
                "SVC4005",
                "origid",
            ),
        ];
        for (body, id, variable) in cases {
            let err = parse_signing_request(body.as_bytes(), None).unwrap_err();
            assert_eq!(err.message_id(), *id, "{body}");
            let json: Value = serde_json::from_slice(&err.body(None)).unwrap();
            let kind = json["requestError"]["serviceException"].clone();
            assert_eq!(kind["messageId"], *id);
            if !variable.is_empty() {
                assert_eq!(kind["variables"][0], *variable, "{body}");
            }
        }
    }

    #[test]
    fn policy_errors_use_policy_exception_and_fill_the_number() {
        let err = refusal(Refusal::Unregistered);
        let json: Value = serde_json::from_slice(&err.body(Some("12155551212"))).unwrap();
        assert_eq!(
            json["requestError"]["policyException"]["messageId"],
            "POL4101"
        );
        assert_eq!(
            json["requestError"]["policyException"]["variables"][0],
            "12155551212"
        );
        assert_eq!(err.status(), StatusCode::FORBIDDEN);
        assert_eq!(
            refusal(Refusal::RegistryUnavailable).status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(ApiError::Unauthorized.status(), StatusCode::FORBIDDEN);
        assert_eq!(
            ApiError::MethodNotAllowed("POST").status(),
            StatusCode::METHOD_NOT_ALLOWED
        );
    }

    #[test]
    fn every_refusal_has_its_own_id_and_an_ascii_body() {
        let mut ids = std::collections::HashSet::new();
        for refusal_kind in [
            Refusal::Unregistered,
            Refusal::Suspended,
            Refusal::NotVerified,
            Refusal::DomesticViaGateway,
            Refusal::RegistryUnavailable,
            Refusal::Marketing(MarketingRefusal::FirmBlacklisted),
            Refusal::Marketing(MarketingRefusal::FirmSuspended),
            Refusal::Marketing(MarketingRefusal::NumberBlacklisted),
            Refusal::Marketing(MarketingRefusal::OptedOut),
            Refusal::Marketing(MarketingRefusal::OverQuota),
            Refusal::Marketing(MarketingRefusal::ReasonNotAllowed),
            Refusal::Marketing(MarketingRefusal::RcdNotAllowed),
        ] {
            // No wildcard: a new refusal stops this from compiling until it is listed above.
            match refusal_kind {
                Refusal::Unregistered
                | Refusal::Suspended
                | Refusal::NotVerified
                | Refusal::DomesticViaGateway
                | Refusal::RegistryUnavailable => {}
                Refusal::Marketing(
                    MarketingRefusal::FirmBlacklisted
                    | MarketingRefusal::FirmSuspended
                    | MarketingRefusal::NumberBlacklisted
                    | MarketingRefusal::OptedOut
                    | MarketingRefusal::OverQuota
                    | MarketingRefusal::ReasonNotAllowed
                    | MarketingRefusal::RcdNotAllowed,
                ) => {}
            }
            assert!(
                ids.insert(refusal(refusal_kind).message_id()),
                "{refusal_kind:?} shares its id"
            );
            let body = refusal(refusal_kind).body(Some("12155551212"));
            assert!(
                body.iter().all(|b| (b' '..=b'~').contains(b)),
                "{}",
                String::from_utf8_lossy(&body)
            );
        }
    }

    #[test]
    fn the_iat_window_edges_are_inside() {
        let window = IatWindow::default();
        let now = 1_700_000_000;
        assert_eq!(window.check(now, now), Ok(()));
        assert_eq!(window.check(now - 60, now), Ok(()));
        assert_eq!(window.check(now + 10, now), Ok(()));
        assert!(matches!(
            window.check(now - 61, now),
            Err(IatError::TooOld { max_past: 60, .. })
        ));
        assert!(matches!(
            window.check(now + 11, now),
            Err(IatError::TooNew { max_future: 10, .. })
        ));
        // A clock read as 0 (set before 1970) refuses every iat rather than accepting one.
        assert!(window.check(now, 0).is_err());
        let narrow = IatWindow {
            max_past: 0,
            max_future: 0,
        };
        assert!(narrow.check(now, now).is_ok() && narrow.check(now - 1, now).is_err());

        let error = ApiError::from(window.check(now - 61, now).unwrap_err());
        assert_eq!(error.message_id(), "SVC4005");
        assert_eq!(error.status(), StatusCode::BAD_REQUEST);
        let json: Value = serde_json::from_slice(&error.body(None)).unwrap();
        assert_eq!(
            json["requestError"]["serviceException"]["variables"],
            json!(["iat", "more than 60 s before the signer's clock"])
        );
        let ahead = ApiError::from(window.check(now + 11, now).unwrap_err());
        let json: Value = serde_json::from_slice(&ahead.body(None)).unwrap();
        assert_eq!(
            json["requestError"]["serviceException"]["variables"],
            json!(["iat", "more than 10 s after the signer's clock"])
        );
    }
}
