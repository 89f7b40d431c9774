//! The CSR parser and checker (`shaken ca issue`): never panics on PEM or DER input.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(csr) = ca_tools::csr::parse_and_check(data) {
        // A CSR that checks always names exactly one TNAuthList that re-encodes.
        let der = csr.tn_auth_list.to_der();
        assert_eq!(
            passport::TnAuthList::from_der(&der).expect("re-encodes"),
            csr.tn_auth_list
        );
    }
});
