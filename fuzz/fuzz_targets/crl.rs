//! The CRL parser: never panics; a parsed CRL's signature check never panics either.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    static KEY: OnceLock<p256::PublicKey> = OnceLock::new();
    let key = KEY.get_or_init(|| {
        p256::SecretKey::from_bytes(&[7u8; 32].into())
            .expect("key")
            .public_key()
    });
    if let Ok(crl) = ca_tools::crl::parse(data) {
        let _ = crl.verify(key);
        for entry in &crl.revoked {
            assert!(crl.is_revoked(&entry.serial));
        }
    }
});
