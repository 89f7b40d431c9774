//! The verifier's CRL parser (DER or PEM) and its signature check.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    static KEY: OnceLock<p256::ecdsa::VerifyingKey> = OnceLock::new();
    let key = KEY.get_or_init(|| {
        let secret = p256::SecretKey::from_bytes(&[9u8; 32].into()).expect("key");
        p256::ecdsa::VerifyingKey::from(&secret.public_key())
    });
    if let Ok(crl) = verifier::crl::Crl::parse(data) {
        let _ = crl.signed_by(key);
        let _ = crl.lists(&[1, 2, 3]);
    }
});
