//! The `Date` header (RFC 3261 §20.17): an RFC 1123 date, always in GMT, e.g.
//! `Sat, 13 Nov 2010 23:29:00 GMT`.
//!
//! CONTRACT (skeleton): filled by the "message" part.

/// The Date value as seconds since the epoch, `None` when it is not an RFC 1123 date in GMT.
pub fn parse(value: &str) -> Option<u64> {
    let _ = value;
    None
}

/// Seconds since the epoch as a Date value.
pub fn format(seconds: u64) -> String {
    let _ = seconds;
    String::new()
}
