//! The PASSporT decoder on arbitrary text: never panics; decoded claims and header re-encode
//! to JSON that decodes to the same values.
#![no_main]

use libfuzzer_sys::fuzz_target;
use passport::token::Passport;
use passport::{Claims, Header};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(passport) = Passport::decode(text) {
        let claims = passport.claims();
        assert_eq!(
            &Claims::from_json(claims.to_json().as_bytes()).expect("re-encoded claims parse"),
            claims
        );
        let header = passport.header();
        assert_eq!(
            &Header::from_json(header.to_json().as_bytes()).expect("re-encoded header parses"),
            header
        );
        assert!(passport.signing_input().len() < text.len());
    }
    // The claims and header JSON parsers on raw bytes too.
    let _ = Claims::from_json(data);
    let _ = Header::from_json(data);
});
