//! The ATIS-1000082 verification API's request and response shapes.
//!
//! Request: `{"verificationRequest":{"from":{"tn"},"to":{"tn":[..]},"time","identity"}}`;
//! `identity` may be absent (an unsigned call). Response: `{"verificationResponse":{"verstat",
//! "reasoncode","reasontext","reasondesc", ...}}` with `reasoncode` (a JSON number),
//! `reasontext` and `reasondesc` (what exactly failed, short ASCII text; the member one
//! ATIS-1000082 implementation sends) on failure, and this project's extension members:
//! `attest`, `origid`, `spc`, `x5u` when known, `flags` always (an array of strings).

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
    /// The Identity header value, if the call carried one.
    pub identity: Option<String>,
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
    let identity = match request.get("identity") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(body::invalid("identity", "not a string")),
    };
    Ok(VerificationRequest {
        from,
        to,
        time,
        identity,
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
}
