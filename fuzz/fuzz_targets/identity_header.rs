//! The Identity header parser on arbitrary text: never panics, and whatever parses
//! re-formats to a value that parses to the same token.
#![no_main]

use libfuzzer_sys::fuzz_target;
use passport::identity::IdentityHeader;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(parsed) = IdentityHeader::parse(text) {
        let token = parsed.passport().token();
        let again = IdentityHeader::format_shaken(token, parsed.info());
        if parsed.passport().header().ppt.as_deref() == Some("shaken")
            && parsed.passport().header().alg == "ES256"
        {
            let reparsed = IdentityHeader::parse(&again).expect("a formatted header parses");
            assert_eq!(reparsed.passport(), parsed.passport());
        }
    }
});
