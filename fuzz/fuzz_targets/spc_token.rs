//! SPC token checking: the JWT path with a fixed PA key, and the claim checks on any JSON.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

const PA_PUBLIC: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEFn2o9R1BE6aDQqzrafSgPKNFe/SLlgESrfQtXBT5MndxQT+EnojWcUIQ6w9LXQR5bN/8BXvPvithaz8kBfb7oQ==
-----END PUBLIC KEY-----
";

fuzz_target!(|data: &[u8]| {
    static KEY: OnceLock<passport::VerifyingKey> = OnceLock::new();
    let key =
        KEY.get_or_init(|| passport::VerifyingKey::from_pem(PA_PUBLIC.as_bytes()).expect("key"));
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = ca_tools::spc_token::verify(text, key, 1_800_000_000);
    }
    if let Ok(claims) = serde_json::from_slice::<ca_tools::spc_token::SpcTokenClaims>(data) {
        let _ = ca_tools::spc_token::check_claims(claims, 1_800_000_000);
    }
});
