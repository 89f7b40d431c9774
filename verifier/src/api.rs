//! The ATIS-1000082 verification API's request and response shapes.
//!
//! Request: `{"verificationRequest":{"from":{"tn"},"to":{"tn":[..]},"time","identity"}}`;
//! `identity` may be absent (an unsigned call), a string (the call's one Identity header), or
//! an array of at most [`MAX_IDENTITIES`] strings, one per SIP Identity header (this project's
//! extension, for a Rich Call Data PASSporT beside the `shaken` one, RFC 9795). In an array,
//! the headers whose `ppt` parameter is `rcd` are Rich Call Data; at most one other may be
//! present (the `shaken` one, judged exactly as a lone string; none: unsigned). Response: `{"verificationResponse":{"verstat",
//! "reasoncode","reasontext","reasondesc", ...}}` with `reasoncode` (a JSON number),
//! `reasontext` and `reasondesc` (what exactly failed, short ASCII text; the member one
//! ATIS-1000082 implementation sends) on failure, and this project's extension members:
//! `attest`, `origid`, `spc`, `x5u` when known, `flags` always (an array of strings).
//!
//! The request may carry the extension member `ingress` (where the call entered the
//! terminating network: `international`, `interconnect`, `local` or a trunk's name), copied
//! into the event line for the monitor.

use passport::{NumberingPlan, Tn};
use rest::{body, ApiError};
use serde_json::Value;

use crate::verdict::Verdict;

/// A valid verification request, numbers canonicalized.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerificationRequest {
    /// Calling number.
    pub from: Tn,
    /// Called numbers.
    pub to: Vec<Tn>,
    /// When the INVITE arrived.
    pub time: u64,
    /// The Identity header value judged for the verdict (the `shaken` one), if any.
    pub identity: Option<String>,
    /// The Identity header values whose `ppt` parameter is `rcd` (only from an array).
    pub rcd_identities: Vec<String>,
    /// Where the call entered the terminating network (this project's extension member
    /// `ingress`): `international`, `interconnect`, `local` or a trunk's name; copied into the
    /// event line for the monitor, never judged here.
    pub ingress: Option<String>,
}

/// The longest `ingress` value.
pub const MAX_INGRESS: usize = 64;

/// Why an `ingress` value is refused (the REST member, or a SIP listener's mapping).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IngressError {
    /// Empty or longer than [`MAX_INGRESS`].
    #[error("not 1 to {MAX_INGRESS} characters")]
    Length,
    /// A character outside `A-Z a-z 0-9 . _ -`.
    #[error("only letters, digits, '.', '_' and '-' are allowed")]
    Characters,
}

/// Checks an `ingress` value: a token of 1 to [`MAX_INGRESS`] characters from
/// `A-Z a-z 0-9 . _ -` (the three well-known values and trunk names alike; anything else would
/// reach the monitor's stores and screens, so it is refused). The REST member and the SIP
/// listener's `[sip.ingress]` mapping and trunk parameter share this rule.
pub fn check_ingress(text: &str) -> Result<(), IngressError> {
    if text.is_empty() || text.len() > MAX_INGRESS {
        return Err(IngressError::Length);
    }
    if !text
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err(IngressError::Characters);
    }
    Ok(())
}

/// The `ingress` member: absent or null, or a value [`check_ingress`] accepts.
fn ingress(value: Option<&Value>) -> Result<Option<String>, ApiError> {
    let text = match value {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(text)) => text,
        Some(_) => return Err(body::invalid("ingress", "not a string")),
    };
    check_ingress(text).map_err(|error| body::invalid("ingress", error.to_string()))?;
    Ok(Some(text.clone()))
}

/// The most Identity headers a request's `identity` array may hold.
pub const MAX_IDENTITIES: usize = 4;

/// Why a call's Identity header values cannot be sorted into the judged one and the
/// `ppt=rcd` ones (the REST `identity` array; a SIP INVITE's Identity fields are never refused,
/// see `crate::sip::sip_identities`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IdentitiesError {
    /// More than [`MAX_IDENTITIES`] values.
    #[error("{0} Identity headers, more than {MAX_IDENTITIES}")]
    TooMany(usize),
    /// More than one value whose `ppt` is not `rcd`.
    #[error("more than one Identity header that is not ppt=rcd")]
    SeveralJudged,
}

/// Sorts a call's Identity header values into the one judged for the verdict (the `shaken`
/// one: at most one value whose `ppt` parameter is not `rcd`) and the `ppt=rcd` ones, in
/// order. At most [`MAX_IDENTITIES`] values.
pub fn sort_identities<S: AsRef<str>>(
    values: &[S],
) -> Result<(Option<String>, Vec<String>), IdentitiesError> {
    if values.len() > MAX_IDENTITIES {
        return Err(IdentitiesError::TooMany(values.len()));
    }
    let mut shaken = None;
    let mut rcd = Vec::new();
    for value in values {
        let value = value.as_ref();
        if passport::identity::ppt_parameter(value) == Some(passport::rcd::PPT_RCD) {
            rcd.push(value.to_owned());
        } else if shaken.replace(value.to_owned()).is_some() {
            return Err(IdentitiesError::SeveralJudged);
        }
    }
    Ok((shaken, rcd))
}

/// The `identity` member: absent, a string, or an array of strings sorted by
/// [`sort_identities`]. A lone string is never inspected here (the verifier judges it whatever
/// its `ppt`), so calls without Rich Call Data cost nothing more.
fn identities(value: Option<&Value>) -> Result<(Option<String>, Vec<String>), ApiError> {
    let items = match value {
        None | Some(Value::Null) => return Ok((None, Vec::new())),
        Some(Value::String(s)) => return Ok((Some(s.clone()), Vec::new())),
        Some(Value::Array(items)) => items,
        Some(_) => {
            return Err(body::invalid(
                "identity",
                "not a string or an array of strings",
            ))
        }
    };
    if items.len() > MAX_IDENTITIES {
        return Err(body::invalid(
            "identity",
            IdentitiesError::TooMany(items.len()).to_string(),
        ));
    }
    let strings: Vec<&str> = items
        .iter()
        .map_while(|item| match item {
            Value::String(value) => Some(value.as_str()),
            _ => None,
        })
        .collect();
    // Items are judged in order: a second judged value before a non-string one is named first.
    let sorted =
        sort_identities(&strings).map_err(|error| body::invalid("identity", error.to_string()))?;
    if strings.len() < items.len() {
        return Err(body::invalid("identity", "an array item is not a string"));
    }
    Ok(sorted)
}

/// Parses a verification request body.
pub fn parse_verification_request(
    body: &[u8],
    plan: Option<NumberingPlan>,
) -> Result<VerificationRequest, ApiError> {
    let request = body::top_object(body, "verificationRequest")?;
    let from = body::single_tn(&request, "from", plan)?;
    let to = body::tn_array(&request, "to", plan)?;
    let time = body::positive_integer(&request, "time")?;
    let (identity, rcd_identities) = identities(request.get("identity"))?;
    let ingress = ingress(request.get("ingress"))?;
    Ok(VerificationRequest {
        from,
        to,
        time,
        identity,
        rcd_identities,
        ingress,
    })
}

/// The success body: `{"verificationResponse": <the verdict>}`.
pub fn verification_response(verdict: &Verdict) -> Vec<u8> {
    struct Body<'a>(&'a Verdict);
    impl serde::Serialize for Body<'_> {
        fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            use serde::ser::SerializeMap;
            let mut map = serializer.serialize_map(Some(1))?;
            map.serialize_entry("verificationResponse", self.0)?;
            map.end()
        }
    }
    // Serializing strings and numbers into a Vec cannot fail.
    serde_json::to_vec(&Body(verdict)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{"verificationRequest":{"from":{"tn":"12155551212"},"to":{"tn":["12355551212"]},"time":1443208345,"identity":"x"}}"#;

    #[test]
    fn parses_and_names_missing_members() {
        let request = parse_verification_request(GOOD.as_bytes(), None).unwrap();
        assert_eq!(
            (
                request.from.as_str(),
                request.time,
                request.identity.as_deref()
            ),
            ("12155551212", 1443208345, Some("x"))
        );
        let no_identity = GOOD.replace(r#","identity":"x""#, "");
        assert_eq!(
            parse_verification_request(no_identity.as_bytes(), None)
                .unwrap()
                .identity,
            None
        );
        for (body, id, variable) in [
            (
                GOOD.replace(r#""from":{"tn":"12155551212"},"#, ""),
                "SVC4001",
                "from",
            ),
            (
                GOOD.replace(r#""tn":["12355551212"]"#, r#""tn":[]"#),
                "SVC4005",
                "to.tn",
            ),
            (GOOD.replace("1443208345", "\"now\""), "SVC4005", "time"),
            (GOOD.replace(r#","time":1443208345"#, ""), "SVC4001", "time"),
            (
                GOOD.replace(r#""identity":"x""#, r#""identity":5"#),
                "SVC4005",
                "identity",
            ),
        ] {
            let err = parse_verification_request(body.as_bytes(), None).unwrap_err();
            assert_eq!(err.message_id(), id, "{body}");
            let json: Value = serde_json::from_slice(&err.body(None)).unwrap();
            assert_eq!(
                json["requestError"]["serviceException"]["variables"][0],
                variable
            );
        }
    }

    #[test]
    fn ingress_is_an_optional_short_token() {
        let with =
            |ingress: &str| GOOD.replace(r#""time""#, &format!(r#""ingress":{ingress},"time""#));
        let parse = |ingress: &str| parse_verification_request(with(ingress).as_bytes(), None);
        assert_eq!(
            parse_verification_request(GOOD.as_bytes(), None)
                .unwrap()
                .ingress,
            None
        );
        assert_eq!(parse("null").unwrap().ingress, None);
        for good in [
            "international",
            "interconnect",
            "local",
            "trunk-7.GZ_2",
            &"a".repeat(64),
        ] {
            assert_eq!(
                parse(&format!("\"{good}\"")).unwrap().ingress.as_deref(),
                Some(good)
            );
        }
        let bad: [String; 8] = [
            "\"\"".to_owned(),
            format!("\"{}\"", "a".repeat(65)),
            "\"trunk 7\"".into(),
            "\"<script>\"".into(),
            "\"gw/1\"".into(),
            "\"\\u00e9\"".into(),
            "5".into(),
            "[\"local\"]".into(),
        ];
        for bad in bad {
            let err = parse(&bad).unwrap_err();
            assert_eq!(err.message_id(), "SVC4005", "{bad}");
            let json: Value = serde_json::from_slice(&err.body(None)).unwrap();
            assert_eq!(
                json["requestError"]["serviceException"]["variables"][0], "ingress",
                "{bad}"
            );
        }
    }

    #[test]
    fn identity_arrays_are_sorted_by_ppt() {
        let with = |identity: &str| {
            GOOD.replace(r#""identity":"x""#, &format!(r#""identity":{identity}"#))
        };
        let parse = |identity: &str| parse_verification_request(with(identity).as_bytes(), None);
        let request =
            parse(r#"["r;info=<https://a/c>;ppt=rcd","s;info=<https://a/c>;ppt=shaken"]"#).unwrap();
        assert_eq!(
            request.identity.as_deref(),
            Some("s;info=<https://a/c>;ppt=shaken")
        );
        assert_eq!(request.rcd_identities, ["r;info=<https://a/c>;ppt=rcd"]);
        // Only Rich Call Data: unsigned as far as the verdict goes.
        let request = parse(r#"["r;ppt=rcd"]"#).unwrap();
        assert_eq!((request.identity, request.rcd_identities.len()), (None, 1));
        let request = parse("[]").unwrap();
        assert_eq!((request.identity, request.rcd_identities.len()), (None, 0));
        // A lone string is the judged one, whatever it says.
        let request = parse(r#""r;ppt=rcd""#).unwrap();
        assert_eq!(request.identity.as_deref(), Some("r;ppt=rcd"));
        assert!(request.rcd_identities.is_empty());
        for bad in [
            r#"["a","b"]"#,
            r#"["a;ppt=shaken","b;ppt=div"]"#,
            r#"["a",5]"#,
            r#"["1;ppt=rcd","2;ppt=rcd","3;ppt=rcd","4;ppt=rcd","5;ppt=rcd"]"#,
            r#"{"a":1}"#,
        ] {
            let err = parse(bad).unwrap_err();
            assert_eq!(err.message_id(), "SVC4005", "{bad}");
            let json: Value = serde_json::from_slice(&err.body(None)).unwrap();
            assert_eq!(
                json["requestError"]["serviceException"]["variables"][0],
                "identity"
            );
        }
    }
}
