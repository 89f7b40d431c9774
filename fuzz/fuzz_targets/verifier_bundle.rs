//! The verifier's reading of whatever a repository sends: the PEM chain splitter, then path
//! building against the test PKI's root.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use pki::TrustAnchors;

const ROOT: &[u8] = include_bytes!("../../certs-test/pki/ca/root.pem");

fuzz_target!(|data: &[u8]| {
    static ANCHORS: OnceLock<TrustAnchors> = OnceLock::new();
    let anchors = ANCHORS.get_or_init(|| TrustAnchors::from_pem(ROOT).expect("anchors"));
    if let Ok(ders) = passport::cert::chain_from_pem(data) {
        assert!(ders.len() <= pki::path::MAX_CERTIFICATES);
        let _ = pki::path::validate(&ders, anchors, 1_800_000_000);
    }
    // Raw DER too, as one certificate.
    let _ = pki::path::validate(&[data.to_vec()], anchors, 1_800_000_000);
});
