//! The private and public key PEM loaders: never panic on arbitrary input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use passport::{SigningKey, VerifyingKey};

fuzz_target!(|data: &[u8]| {
    if let Ok(key) = SigningKey::from_pem(data) {
        let public = key.verifying_key().expect("a loaded key has a public half");
        let signature = key.sign(b"fuzz").expect("a loaded key signs");
        public
            .verify(b"fuzz", &signature)
            .expect("and its signature verifies");
    }
    let _ = VerifyingKey::from_pem(data);
    let _ = passport::pem::parse(data, 8);
});
