//! The TNAuthList DER decoder: never panics; what decodes re-encodes (explicit tags) to DER
//! that decodes to the same list.
#![no_main]

use libfuzzer_sys::fuzz_target;
use passport::TnAuthList;

fuzz_target!(|data: &[u8]| {
    if let Ok(list) = TnAuthList::from_der(data) {
        let der = list.to_der();
        assert_eq!(
            TnAuthList::from_der(&der).expect("re-encoded DER decodes"),
            list
        );
    }
});
