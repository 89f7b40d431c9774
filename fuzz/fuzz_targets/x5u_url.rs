//! The x5u URL parser (the x5u comes from a token anyone can forge): never panics; a parsed URL
//! is http(s) with a non-empty lowercase host without `@`, a path starting with `/` and no
//! fragment, and `scheme://host:port/path` (IPv6 host in brackets) parses to the same URL.
#![no_main]

use libfuzzer_sys::fuzz_target;
use verifier::fetch::FetchError;
use verifier::fetch::Url;

/// The longest URL text `Url::parse` reads.
const MAX_URL: usize = 2048;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(url) = Url::parse(text) else {
        return;
    };
    assert!(url.scheme == "https" || url.scheme == "http", "{url:?}");
    assert!(!url.host.is_empty() && !url.host.contains('@'), "{url:?}");
    assert!(!url.host.chars().any(char::is_uppercase), "{url:?}");
    assert!(
        url.path.starts_with('/') && !url.path.contains('#'),
        "{url:?}"
    );
    let host = if url.host.contains(':') {
        format!("[{}]", url.host)
    } else {
        url.host.clone()
    };
    let again = format!("{}://{}:{}{}", url.scheme, host, url.port, url.path);
    if again.len() <= MAX_URL {
        assert_eq!(Url::parse(&again).as_ref(), Ok(&url), "{again}");
    } else {
        // Spelling out the port (or brackets, or the `/` before a query) can take a URL
        // near the length cap over it: then it is refused for its length, nothing else.
        assert!(
            matches!(Url::parse(&again), Err(FetchError::BadUrl(_))),
            "{again}"
        );
    }
});
