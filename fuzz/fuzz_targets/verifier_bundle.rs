//! The verifier's PEM bundle reader and chain validation on whatever a repository sends.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use verifier::chain::{self, TrustAnchors};

const ROOT: &[u8] = include_bytes!("../../certs-test/pki/ca/root.pem");

fuzz_target!(|data: &[u8]| {
    static ANCHORS: OnceLock<TrustAnchors> = OnceLock::new();
    let anchors = ANCHORS.get_or_init(|| TrustAnchors::from_pem(ROOT).expect("anchors"));
    if let Ok(ders) = chain::bundle(data) {
        assert!(ders.len() <= chain::MAX_CERTIFICATES);
        let _ = chain::validate(&ders, anchors, 1_800_000_000);
    }
    // Raw DER too, as one certificate.
    let _ = chain::validate(&[data.to_vec()], anchors, 1_800_000_000);
});
