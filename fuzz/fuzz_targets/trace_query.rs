//! The signer's trace endpoint query (`origid=ID`): never panics; an accepted query names a
//! UUID that one of its `origid=` pairs carries, and the same origid alone is accepted too.
#![no_main]

use libfuzzer_sys::fuzz_target;
use signer::traceback::parse_query;

fuzz_target!(|data: &[u8]| {
    let Ok(query) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(origid) = parse_query(Some(query)) {
        let id = origid.as_str();
        assert_eq!(id.len(), 36);
        assert!(query.split('&').any(|p| p == format!("origid={id}")));
        assert_eq!(
            parse_query(Some(&format!("origid={id}"))).map(|o| o.as_str().to_owned()),
            Ok(id.to_owned())
        );
    }
});
