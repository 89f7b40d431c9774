//! The certificate chain loader: never panics on arbitrary input, PEM or raw DER.
#![no_main]

use libfuzzer_sys::fuzz_target;
use passport::cert;

fuzz_target!(|data: &[u8]| {
    let _ = cert::verifying_key_from_pem_chain(data);
    let _ = cert::verifying_key_of(data);
});
