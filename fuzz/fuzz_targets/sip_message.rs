//! The SIP message parser on arbitrary bytes: never panics (parse, TCP framing, the partial
//! parse for error answers), and for a request every accessor the services use works without
//! panicking: the top Via, CSeq, From/To/P-Asserted-Identity as name-addr, the telephone
//! number, verstat in both placements, and the response, whose bytes read back.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sip::message::{
    frame_length, parse, parse_for_error_response, parse_response, Limits, Message, Response,
};
use sip::uri::{parse_name_addr, parse_uri, with_verstat, VerstatPlacement};

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    let _ = frame_length(data, &limits);
    if let Some(partial) = parse_for_error_response(data, &limits) {
        let bytes = Response::to(&partial, 400, "Bad Request", "t").to_bytes();
        parse_response(&bytes, &limits).expect("a 400 reads back");
    }
    let Ok(Message::Request(request)) = parse(data, &limits) else {
        return;
    };
    let _ = request.top_via();
    let _ = request.cseq();
    let _ = parse_uri(&request.uri).map(|u| u.to_string());
    for name in ["From", "To", "P-Asserted-Identity"] {
        let Some(value) = request.header(name) else {
            continue;
        };
        let Ok(name_addr) = parse_name_addr(value) else {
            continue;
        };
        let _ = name_addr.uri.telephone_number();
        let text = name_addr.to_string();
        parse_name_addr(&text).expect("a written name-addr reads back");
        for placement in [VerstatPlacement::UserPart, VerstatPlacement::UriParameter] {
            let uri = with_verstat(&name_addr.uri, "TN-Validation-Passed", placement);
            let _ = uri.to_string();
        }
    }
    let bytes = Response::to(&request, 302, "Moved Temporarily", "t").to_bytes();
    parse_response(&bytes, &limits).expect("a response reads back");
});
