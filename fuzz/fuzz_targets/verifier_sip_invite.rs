//! The verifier's reading of an INVITE (`verifier::sip::read_invite`, over the `sip` parser):
//! never panics; an accepted INVITE gives canonical calling and called numbers, at most four
//! Identity values sorted by `ppt`, and an `ingress` the REST rules accept; a refusal's message
//! (the `Warning` text of the 400) is ASCII. The first byte picks the numbering plan and the
//! source address.
#![no_main]

use std::net::{IpAddr, Ipv4Addr};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use passport::NumberingPlan;
use sip::message::{Limits, Message};
use verifier::config::SipSection;
use verifier::sip::{read_invite, SipOptions};

/// `[#*]?DIGIT{1,15}`.
fn canonical(tn: &str) -> bool {
    let digits = tn.strip_prefix(['#', '*']).unwrap_or(tn);
    (1..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit())
}

fn options() -> &'static SipOptions {
    static OPTIONS: OnceLock<SipOptions> = OnceLock::new();
    OPTIONS.get_or_init(|| {
        let section: SipSection = toml::from_str(
            "listen = [\"127.0.0.1:0\"]\n[ingress]\ntrunk_param = \"tgrp\"\n\
             [ingress.addresses]\n\"10.0.0.0/8\" = \"interconnect\"\n\"10.1.0.0/16\" = \"local\"\n",
        )
        .expect("the fuzz configuration");
        SipOptions::from_section(&section).expect("the fuzz options")
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, bytes)) = data.split_first() else {
        return;
    };
    let plan = match first % 3 {
        0 => None,
        1 => Some(NumberingPlan::Nanp),
        _ => Some(NumberingPlan::China),
    };
    let source = IpAddr::V4(Ipv4Addr::new(10, first % 3, 0, 1));
    let Ok(Message::Request(request)) = sip::message::parse(bytes, &Limits::default()) else {
        return;
    };
    match read_invite(&request, source, options(), plan, 1_700_000_000) {
        Ok(read) => {
            let call = &read.request;
            assert!(canonical(call.from.as_str()), "from {:?}", call.from.as_str());
            assert_eq!(call.to.len(), 1);
            assert!(canonical(call.to[0].as_str()), "to {:?}", call.to[0].as_str());
            assert!(
                call.rcd_identities.len() + usize::from(call.identity.is_some())
                    <= verifier::api::MAX_IDENTITIES
            );
            for rcd in &call.rcd_identities {
                assert_eq!(passport::identity::ppt_parameter(rcd), Some("rcd"));
            }
            if let Some(ingress) = &call.ingress {
                assert!(verifier::api::check_ingress(ingress).is_ok(), "{ingress:?}");
            }
            assert!(read.caller.address.uri.telephone_number().is_some());
        }
        Err(error) => assert!(!error.to_string().is_empty()),
    }
});
