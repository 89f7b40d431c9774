//! The signer's reading of an INVITE (calling and called numbers, hints, Date): never panics;
//! an accepted INVITE gives canonical numbers, a refused one a reason naming its header, and
//! the Identity placed in the Contact URI always reads back.
#![no_main]

use libfuzzer_sys::fuzz_target;
use signer::api::IatWindow;
use signer::config::IdentityPlacement;
use signer::sip::{signed_answer, CallRequest, SipOptions};
use sip::message::{parse, Limits, Message};

const IDENTITY: &str = "eyJh.eyJh.c2ln;info=<https://cr.example/c.pem>;alg=ES256;ppt=shaken";

fuzz_target!(|data: &[u8]| {
    let Ok(Message::Request(request)) = parse(data, &Limits::default()) else {
        return;
    };
    let options = SipOptions {
        trunks: [("t1".to_owned(), "c1".to_owned())].into_iter().collect(),
        ..SipOptions::default()
    };
    for plan in [None, Some(passport::NumberingPlan::Nanp)] {
        match CallRequest::from_invite(&request, &options, plan, IatWindow::default(), 1_700_000_000) {
            Ok(call) => {
                let digits = |tn: &passport::Tn| {
                    tn.as_str().bytes().all(|b| b.is_ascii_digit() || b == b'*' || b == b'#')
                };
                assert!(digits(&call.signing.orig));
                assert!(call.signing.dest.iter().all(digits));
                assert!(call.signing.iat.abs_diff(1_700_000_000) <= 60);
                let answer = signed_answer(&call.contact, IDENTITY, IdentityPlacement::Contact);
                let contact = &answer.headers[0].value;
                assert!(contact.starts_with('<') && contact.ends_with('>'));
                assert_eq!(contact.matches('<').count(), 1, "{contact}");
            }
            Err(error) => assert!(!error.to_string().is_empty()),
        }
    }
});
