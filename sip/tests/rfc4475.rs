//! The RFC 4475 §3.1 parser torture messages (written out from the RFC's text, CRLF line
//! endings, one file each under `data/rfc4475/`, named as the RFC names them), each with the
//! parser's exact outcome; and property tests: `parse` never panics, and a response built
//! from any parsed request reads back.

// Helpers outside #[test] functions panic on a broken fixture, as a test should.
#![allow(clippy::panic)]

use proptest::prelude::*;
use sip::message::{
    frame_length, parse, parse_for_error_response, parse_response, Limits, Message, Method,
    ParseError, Request, Response,
};
use sip::uri::{parse_name_addr, Scheme};

fn bytes(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/tests/data/rfc4475/{name}.dat",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn outcome(name: &str) -> Result<Message, ParseError> {
    parse(&bytes(name), &Limits::default())
}

fn request(name: &str) -> Request {
    match outcome(name) {
        Ok(Message::Request(r)) => r,
        other => panic!("{name}: {other:?}"),
    }
}

/// Whether the transport could answer the refused message (a usable Via).
fn answerable(name: &str) -> bool {
    parse_for_error_response(&bytes(name), &Limits::default()).is_some()
}

#[test]
fn wsinv_a_short_tortuous_invite() {
    let r = request("wsinv");
    assert_eq!(r.method, Method::Invite);
    assert_eq!(r.uri, "sip:vivekg@chair-dnrc.example.com;unknownparam");
    assert_eq!(r.cseq().unwrap(), (9, Method::Invite));
    assert_eq!(r.call_id().unwrap(), "wsinv.ndaksdj@192.0.2.1");
    assert_eq!(r.body.len(), 150);
    assert_eq!(r.header("Subject"), Some(""));
    assert_eq!(
        r.header("NewFangledHeader"),
        Some("newfangled value continued newfangled value")
    );
    let via = r.top_via().unwrap();
    assert_eq!((via.host.as_str(), via.port), ("192.0.2.2", None));
    assert_eq!(via.branch.as_deref(), Some("390skdjuw"));
    assert_eq!(r.headers_named("Via").count(), 2);
    let to = parse_name_addr(r.header("To").unwrap()).unwrap();
    assert_eq!(to.param("tag"), Some(Some("1918181833n")));
    assert_eq!(to.uri.to_string(), "sip:vivekg@chair-dnrc.example.com");
    let from = parse_name_addr(r.header("From").unwrap()).unwrap();
    assert_eq!(from.display.as_deref(), Some("J Rosenberg \\\""));
    assert_eq!(from.param("tag"), Some(Some("98asjd8")));
    let contact = parse_name_addr(r.header("Contact").unwrap()).unwrap();
    assert_eq!(contact.display.as_deref(), Some("Quoted string \"\""));
    assert_eq!(contact.param("q"), Some(Some("0.33")));
    assert_eq!(contact.param("secondparam"), Some(None));
    // The answer keeps the existing To tag and both Via fields.
    let response = Response::to(&r, 302, "Moved Temporarily", "new");
    assert_eq!(response.header("To"), r.header("To"));
    assert_eq!(
        response.headers.iter().filter(|h| h.name == "Via").count(),
        2
    );
}

#[test]
fn intmeth_wide_range_of_valid_characters() {
    let r = request("intmeth");
    let method = "!interesting-Method0123456789_*+`.%indeed'~";
    assert_eq!(r.method, Method::Other(method.into()));
    assert_eq!(r.cseq().unwrap(), (139122385, Method::Other(method.into())));
    assert_eq!(
        r.call_id().unwrap(),
        "intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{"
    );
    assert_eq!(
        r.header("extensionHeader-!.%*+_`'~"),
        Some("\u{feff}大停電")
    );
    let to = parse_name_addr(r.header("To").unwrap()).unwrap();
    assert_eq!(
        to.display.as_deref(),
        Some("BEL:\u{7} NUL:\u{0} DEL:\u{7f}")
    );
    assert_eq!(
        to.uri.user.as_deref(),
        Some("1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*")
    );
    assert_eq!(to.uri.headers, None);
    let from = parse_name_addr(r.header("From").unwrap()).unwrap();
    assert_eq!(
        from.display.as_deref(),
        Some("token1~` token2'+_ token3*%!.-")
    );
    assert_eq!(from.param("tag"), Some(Some("_token~1'+`*%!-.")));
    assert_eq!(
        r.top_via().unwrap().branch.as_deref(),
        Some("z9hG4bK-.!%66*_+`'~")
    );
}

#[test]
fn esc01_escaped_uris() {
    let r = request("esc01");
    assert_eq!(r.uri, "sip:sips%3Auser%40example.com@example.net");
    assert_eq!(r.header("c"), Some("application/sdp"));
    let to = parse_name_addr(r.header("To").unwrap()).unwrap();
    assert_eq!(to.uri.user.as_deref(), Some("%75se%72"));
    let contact = parse_name_addr(r.header("m").unwrap()).unwrap();
    assert_eq!(contact.uri.param("n%61me"), Some(Some("v%61lue%25%34%31")));
    assert_eq!(r.body.len(), 150);
}

#[test]
fn lwsdisp_no_space_before_angle_bracket() {
    let r = request("lwsdisp");
    let from = parse_name_addr(r.header("From").unwrap()).unwrap();
    assert_eq!(from.display.as_deref(), Some("caller"));
    assert_eq!(from.param("tag"), Some(Some("323")));
}

#[test]
fn semiuri_semicolon_in_user_part_and_folded_list() {
    let r = request("semiuri");
    assert_eq!(r.method, Method::Options);
    assert_eq!(r.uri, "sip:user;par=u%40example.net@example.com");
    let uri = sip::uri::parse_uri(&r.uri).unwrap();
    assert_eq!(uri.user.as_deref(), Some("user;par=u%40example.net"));
    assert_eq!(uri.host, "example.com");
    assert!(r
        .header("Accept")
        .unwrap()
        .ends_with("message/sip, message/sipfrag"));
}

#[test]
fn badbranch_parses_and_is_not_rfc3261() {
    // RFC 4475 §3.1.2.18 (badbranch): the parser must not break; the branch is just the
    // cookie. It is kept as received; the transaction layer matches it like any branch.
    let r = request("badbranch");
    let via = r.top_via().unwrap();
    assert_eq!(via.branch.as_deref(), Some("z9hG4bK"));
}

#[test]
fn bext01_unknown_require_still_parses() {
    let r = request("bext01");
    assert_eq!(r.top_via().unwrap().transport, sip::via::ViaTransport::Tls);
}

#[test]
fn baddate_parses_and_its_date_is_not_a_date() {
    // RFC 4475 §3.1.2.13: an element may accept it; the Date is treated as absent.
    let r = request("baddate");
    assert_eq!(sip::date::parse(r.header("Date").unwrap()), None);
}

#[test]
fn scalar02_overlarge_cseq_is_a_bad_cseq() {
    assert_eq!(outcome("scalar02"), Err(ParseError::BadHeader("CSeq")));
    assert!(answerable("scalar02"));
}

#[test]
fn quotbal_unterminated_quote_parses_but_its_to_does_not() {
    // RFC 4475 §3.1.2.8: the message is invalid; our parser keeps header values opaque, so
    // the message reads, and the To value is refused where it is interpreted.
    let r = request("quotbal");
    assert!(parse_name_addr(r.header("To").unwrap()).is_err());
}

#[test]
fn invalid_messages_get_their_specific_error() {
    for (name, error, can_answer) in [
        ("ncl", ParseError::ContentLength, true),
        ("clerr", ParseError::ContentLength, true),
        ("insuf", ParseError::Missing("From"), true),
        ("ltgtruri", ParseError::StartLine, true),
        ("lwsruri", ParseError::StartLine, true),
        ("lwsstart", ParseError::StartLine, true),
        ("trws", ParseError::StartLine, true),
        ("badvers", ParseError::Version, true),
        ("mismatch01", ParseError::BadHeader("CSeq"), true),
        // RFC 4475 allows 501 or 400 for mismatch02; we answer 400.
        ("mismatch02", ParseError::BadHeader("CSeq"), true),
        // A response with a code over 699: dropped (never answered).
        ("bigcode", ParseError::StartLine, false),
    ] {
        assert_eq!(outcome(name), Err(error.clone()), "{name}");
        assert_eq!(answerable(name), can_answer, "{name}");
    }
    assert_eq!(ParseError::Version.status().0, 505);
}

#[test]
fn noreason_is_a_response() {
    assert_eq!(outcome("noreason"), Ok(Message::Response(100)));
    let response = parse_response(&bytes("noreason"), &Limits::default()).unwrap();
    assert_eq!(response.reason, "");
}

#[test]
fn every_torture_message_frames_on_a_stream_without_panicking() {
    let dir = format!("{}/tests/data/rfc4475", env!("CARGO_MANIFEST_DIR"));
    for entry in std::fs::read_dir(dir).unwrap() {
        let data = std::fs::read(entry.unwrap().path()).unwrap();
        let _ = frame_length(&data, &Limits::default());
        let _ = parse_for_error_response(&data, &Limits::default());
    }
    // A valid one frames to exactly its length.
    let wsinv = bytes("wsinv");
    assert_eq!(
        frame_length(&wsinv, &Limits::default()),
        Ok(Some(wsinv.len()))
    );
    assert_eq!(sip::uri::parse_uri("tel:+1").unwrap().scheme, Scheme::Tel);
}

proptest! {
    #[test]
    fn parse_never_panics(data in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let limits = Limits { max_message_bytes: 1024, max_headers: 16 };
        let _ = parse(&data, &limits);
        let _ = frame_length(&data, &limits);
        let _ = parse_for_error_response(&data, &limits);
    }

    #[test]
    fn mutated_torture_messages_never_panic(
        which in 0usize..3,
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
    ) {
        let mut data = bytes(["wsinv", "intmeth", "esc01"][which]);
        for (at, byte) in edits {
            let at = at % data.len();
            data[at] = byte;
        }
        if let Ok(Message::Request(r)) = parse(&data, &Limits::default()) {
            let _ = r.top_via();
            let _ = r.cseq();
            for name in ["From", "To"] {
                if let Some(value) = r.header(name) {
                    let _ = parse_name_addr(value).map(|na| na.to_string());
                }
            }
            let bytes = Response::to(&r, 400, "Bad Request", "t").to_bytes();
            prop_assert!(parse_response(&bytes, &Limits::default()).is_ok());
        }
    }

    #[test]
    fn responses_round_trip(
        code in 100u16..700,
        reason in "[A-Za-z ]{0,20}",
        call_id in "[A-Za-z0-9@.-]{1,30}",
        tag in "[A-Za-z0-9]{1,10}",
        body in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let text = format!(
            "INVITE sip:+12155551212@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKa\r\n\
             From: <sip:a@b>;tag=1\r\nTo: <sip:c@d>\r\nCall-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
        );
        let Ok(Message::Request(r)) = parse(text.as_bytes(), &Limits::default()) else {
            return Err(TestCaseError::fail("request"));
        };
        let mut response = Response::to(&r, code, &reason, &tag).with_header("X-Test", "1");
        response.body = body;
        let back = parse_response(&response.to_bytes(), &Limits::default()).unwrap();
        prop_assert_eq!(back.code, code);
        prop_assert_eq!(back.reason, reason);
        prop_assert_eq!(back.headers, response.headers);
        prop_assert_eq!(back.body, response.body);
    }
}
