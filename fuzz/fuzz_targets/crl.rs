//! The one CRL parser (DER, or PEM with an `X509 CRL` block), as the verifier and the CA tools
//! use it: never panics; a parsed CRL's signature check never panics either, and every listed
//! serial is found.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    static KEY: OnceLock<p256::ecdsa::VerifyingKey> = OnceLock::new();
    let key = KEY.get_or_init(|| {
        let secret = p256::SecretKey::from_bytes(&[7u8; 32].into()).expect("key");
        p256::ecdsa::VerifyingKey::from(&secret.public_key())
    });
    if let Ok(crl) = pki::Crl::parse(data) {
        let _ = crl.verify(key);
        let _ = crl.current_at(1_800_000_000);
        for entry in &crl.revoked {
            assert!(crl.lists(&entry.serial));
        }
    }
});
