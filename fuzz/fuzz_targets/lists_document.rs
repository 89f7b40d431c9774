//! The regulator's list: the document parser (JSON and TOML) and the signed list's splitter
//! and verifier with a fixed certificate. A document that parses must come back unchanged
//! from its canonical JSON, and every entry's ends must be found by the index.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use lists::document::{Format, ListDocument};
use lists::{jws, ListIndex, RegulatorCert};

const CERT: &str = include_str!("../../lists/tests/data/regulator-cert.pem");

fuzz_target!(|data: &[u8]| {
    static REGULATOR: OnceLock<RegulatorCert> = OnceLock::new();
    let regulator =
        REGULATOR.get_or_init(|| RegulatorCert::from_pem(CERT.as_bytes()).expect("certificate"));
    for format in [Format::Json, Format::Toml] {
        if let Ok(document) = ListDocument::parse(data, format) {
            let canonical = document.canonical_json();
            let again = ListDocument::parse(canonical.as_bytes(), Format::Json)
                .expect("the canonical form parses");
            assert_eq!(again, document);
            let index = ListIndex::new(document);
            for firm in &index.document().firms {
                for entry in &firm.numbers {
                    let first = format!("{:0width$}", entry.first(), width = usize::from(entry.digits()));
                    assert_eq!(index.lookup(&first).firm.map(|f| &f.id), Some(&firm.id));
                }
            }
        }
    }
    let _ = jws::split(data);
    let _ = jws::verify(data, regulator);
    let _ = jws::decode_unverified(data);
});
