//! The verification request decoder: never panics; every refusal is an ATIS-1000082 `SVC`
//! request error with a JSON body; an accepted request has 1 to 64 canonical called numbers, a
//! canonical calling number and a positive time. The first byte picks the numbering plan.
#![no_main]

use libfuzzer_sys::fuzz_target;
use passport::NumberingPlan;

/// `[#*]?DIGIT{1,15}`.
fn canonical(tn: &str) -> bool {
    let digits = tn.strip_prefix(['#', '*']).unwrap_or(tn);
    (1..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit())
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, body)) = data.split_first() else {
        return;
    };
    let plan = match first % 3 {
        0 => None,
        1 => Some(NumberingPlan::Nanp),
        _ => Some(NumberingPlan::China),
    };
    match verifier::api::parse_verification_request(body, plan) {
        Ok(request) => {
            assert!(!request.to.is_empty() && request.to.len() <= 64);
            for tn in &request.to {
                assert!(canonical(tn.as_str()), "to {:?}", tn.as_str());
            }
            assert!(
                canonical(request.from.as_str()),
                "from {:?}",
                request.from.as_str()
            );
            assert!(request.time > 0);
            // At most four Identity headers; the rcd ones say so in their ppt parameter.
            assert!(
                request.rcd_identities.len() + usize::from(request.identity.is_some())
                    <= verifier::api::MAX_IDENTITIES
            );
            for rcd in &request.rcd_identities {
                assert_eq!(passport::identity::ppt_parameter(rcd), Some("rcd"));
            }
        }
        Err(error) => {
            let id = error.message_id();
            assert!(
                ["SVC4000", "SVC4001", "SVC4005", "SVC4006"].contains(&id),
                "{id}"
            );
            let json: serde_json::Value =
                serde_json::from_slice(&error.body(None)).expect("error body is JSON");
            let exception = &json["requestError"]["serviceException"];
            assert_eq!(exception["messageId"], id);
            assert!(exception["text"].is_string() && exception["variables"].is_array());
        }
    }
});
