//! The trace endpoint, for traceback: `GET /trace/v1/calls?origid=ID` answers what
//! `shaken trace lookup --origid ID` prints, as one JSON document:
//! `{"origid": ID, "records": [{"at", "request_id", "outcome", "message_id", "origid", "orig",
//! "dest", "attest", "customer", "client", "firm"}, ...]}` (every member of each record, `null`
//! when absent; [`TraceRecord::to_json`]), oldest first. `customer` is the registration
//! reference (the registry's customer id): the registry's identity data (the subscriber's name,
//! ID document) never leaves the signer.
//!
//! The endpoint is protected exactly like signing: the same client allow-list, client
//! certificates and rate limits (`[[clients]]`), refused with the same `POL4030`/`POL4290`.
//! A missing `origid` is 400 `SVC4001`, one that is not a UUID 400 `SVC4005`, an origid the
//! log does not hold 404 [`UNKNOWN_ORIGID`] (`POL4040`, this project's id).
//!
//! The trace record of a call is durable before its signing answer is sent (see
//! [`crate::trace`]), so a lookup right after signing finds it.

use passport::claims::OrigId;
use rest::error::PolicyRefusal;
use rest::ApiError;

use crate::trace::TraceRecord;

/// The trace endpoint's path.
pub const TRACE_PATH: &str = "/trace/v1/calls";

/// 404: the trace log holds no record for the origid.
pub const UNKNOWN_ORIGID: PolicyRefusal = PolicyRefusal {
    id: "POL4040",
    status: hyper::StatusCode::NOT_FOUND,
    text: "No trace record for origid %1",
};

/// The longest query string read.
const MAX_QUERY: usize = 512;

/// The `origid` of the query string (`origid=ID`, other parameters ignored; given twice is an
/// error).
pub fn parse_query(query: Option<&str>) -> Result<OrigId, ApiError> {
    let query = query.unwrap_or_default();
    if query.len() > MAX_QUERY {
        return Err(ApiError::InvalidValue(
            "origid".into(),
            format!("query longer than {MAX_QUERY} bytes"),
        ));
    }
    let mut found = None;
    for pair in query.split('&') {
        let Some(value) = pair.strip_prefix("origid=") else {
            continue;
        };
        if found.replace(value).is_some() {
            return Err(ApiError::InvalidValue(
                "origid".into(),
                "given more than once".into(),
            ));
        }
    }
    let value = found.ok_or_else(|| ApiError::MissingParameter("origid".into()))?;
    value
        .parse::<OrigId>()
        .map_err(|_| ApiError::InvalidValue("origid".into(), "not a UUID".into()))
}

/// The answer's body for `origid` and its records.
pub fn answer(origid: &OrigId, records: &[TraceRecord]) -> Vec<u8> {
    serde_json::json!({
        "origid": origid.as_str(),
        "records": records.iter().map(TraceRecord::to_json).collect::<Vec<_>>(),
    })
    .to_string()
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "de305d54-75b4-431b-adb2-eb6b9e546014";

    #[test]
    fn the_query_names_one_uuid() {
        assert_eq!(
            parse_query(Some(&format!("origid={ID}"))).unwrap().as_str(),
            ID
        );
        assert_eq!(
            parse_query(Some(&format!("x=1&origid={}", ID.to_uppercase())))
                .unwrap()
                .as_str(),
            ID.to_uppercase()
        );
        for (query, id) in [
            (None, "SVC4001"),
            (Some(""), "SVC4001"),
            (Some("orig=1"), "SVC4001"),
            (Some("origid="), "SVC4005"),
            (Some("origid=42"), "SVC4005"),
            (
                Some("origid=de305d54-75b4-431b-adb2-eb6b9e54601%"),
                "SVC4005",
            ),
        ] {
            let error = parse_query(query).unwrap_err();
            assert_eq!(error.message_id(), id, "{query:?}");
            assert_eq!(error.status().as_u16(), 400);
        }
        let twice = format!("origid={ID}&origid={ID}");
        assert_eq!(
            parse_query(Some(&twice)).unwrap_err().message_id(),
            "SVC4005"
        );
        let long = format!("origid={ID}&{}", "x".repeat(600));
        assert_eq!(
            parse_query(Some(&long)).unwrap_err().message_id(),
            "SVC4005"
        );
    }

    #[test]
    fn the_answer_holds_every_member_of_each_record() {
        let record = TraceRecord {
            at: 1_700_000_000,
            request_id: "r1".into(),
            outcome: "signed".into(),
            message_id: None,
            origid: Some(ID.into()),
            orig: "12155551212".into(),
            dest: vec!["12125551213".into()],
            attest: Some("A".into()),
            customer: Some("c1".into()),
            client: "sbc".into(),
            firm: None,
        };
        let origid: OrigId = ID.parse().unwrap();
        let json: serde_json::Value =
            serde_json::from_slice(&answer(&origid, std::slice::from_ref(&record))).unwrap();
        assert_eq!(json["origid"], ID);
        assert_eq!(json["records"][0], record.to_json());
        assert_eq!(json["records"][0]["customer"], "c1");
        assert!(json["records"][0]["firm"].is_null());
        let error = ApiError::Policy(UNKNOWN_ORIGID);
        assert_eq!(
            (error.status().as_u16(), error.message_id()),
            (404, "POL4040")
        );
        let body: serde_json::Value = serde_json::from_slice(&error.body(Some(ID))).unwrap();
        assert_eq!(body["requestError"]["policyException"]["variables"][0], ID);
    }
}
