//! The signing request decoder: never panics; every refusal maps to an SVC id and a JSON body.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for plan in [None, Some(passport::NumberingPlan::China)] {
        match signer::api::parse_signing_request(data, plan) {
            Ok(request) => {
                assert!(!request.dest.is_empty());
                // Accepted Rich Call Data always makes claims that parse back the same.
                let claims = request
                    .claims(request.iat, request.attest, request.rcd.clone(), request.crn.clone())
                    .expect("claims from a valid request");
                let json = claims.to_json();
                assert_eq!(passport::Claims::from_json(json.as_bytes()).as_ref(), Ok(&claims));
            }
            Err(error) => {
                assert!(error.message_id().starts_with("SVC"));
                let body: serde_json::Value =
                    serde_json::from_slice(&error.body(None)).expect("error body is JSON");
                assert!(body["requestError"]["serviceException"]["messageId"].is_string());
            }
        }
    }
});
