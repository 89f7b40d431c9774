//! The unsubscribe link token (`optout::Token::parse`) with a fixed key, and the form body the
//! page's button posts (`optout::form::parse_form`). A token that parses re-encodes to the
//! same text (its base64url is canonical and nothing is ignored).
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

/// The key of the committed seeds (raw bytes in a key file).
const KEY: &[u8; 32] = b"fuzz-key-fuzz-key-fuzz-key-fuzz!";

fuzz_target!(|data: &[u8]| {
    static LINK_KEY: OnceLock<optout::LinkKey> = OnceLock::new();
    let key = LINK_KEY.get_or_init(|| optout::LinkKey::from_bytes(KEY).expect("key"));
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(token) = optout::Token::parse(text, key, 1_800_000_000) {
            assert_eq!(token.encode(key).expect("a parsed token encodes"), text);
        }
    }
    let _ = optout::form::parse_form(data);
});
