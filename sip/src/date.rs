//! The `Date` header (RFC 3261 §20.17): an RFC 1123 date, always in GMT, e.g.
//! `Sat, 13 Nov 2010 23:29:00 GMT`.
//!
//! Reading is strict: only the RFC 1123 form in GMT, with the right weekday, is a date (the
//! `httpdate` crate also reads RFC 850 and asctime dates, which RFC 3261 does not allow, so a
//! value must also be exactly what formatting its time gives back). A `Date` that is not one
//! is treated by the services as if it were absent (RFC 4475 §3.1.2.13 lets an element
//! ignore such a date).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The last second `httpdate` can write: 9999-12-31 23:59:59 GMT.
const LAST_SECOND: u64 = 253_402_300_799;

/// The Date value as seconds since the epoch, `None` when it is not an RFC 1123 date in GMT
/// (`Sat, 13 Nov 2010 23:29:00 GMT`: weekday matching the date, two-digit day, English month,
/// four-digit year, 24-hour time, `GMT`). White space around the value is ignored.
pub fn parse(value: &str) -> Option<u64> {
    let value = value.trim_matches([' ', '\t']);
    if value.len() != 29 {
        return None;
    }
    let time = httpdate::parse_http_date(value).ok()?;
    let seconds = time.duration_since(UNIX_EPOCH).ok()?.as_secs();
    (format(seconds) == value).then_some(seconds)
}

/// Seconds since the epoch as a Date value. Times after the year 9999 are written as its
/// last second.
pub fn format(seconds: u64) -> String {
    let time: SystemTime = UNIX_EPOCH + Duration::from_secs(seconds.min(LAST_SECOND));
    httpdate::fmt_http_date(time)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_rfc_1123_in_gmt() {
        assert_eq!(parse("Sat, 13 Nov 2010 23:29:00 GMT"), Some(1_289_690_940));
        assert_eq!(parse(" Thu, 01 Jan 1970 00:00:00 GMT "), Some(0));
        assert_eq!(format(1_289_690_940), "Sat, 13 Nov 2010 23:29:00 GMT");
        assert_eq!(format(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(format(u64::MAX), "Fri, 31 Dec 9999 23:59:59 GMT");
        for s in [0, 1, 951_782_400, 1_700_000_000, LAST_SECOND] {
            assert_eq!(parse(&format(s)), Some(s));
        }
    }

    #[test]
    fn refuses_other_forms() {
        for bad in [
            "Fri, 01 Jan 2010 16:00:00 EST",
            "Sat, 13 Nov 2010 23:29:00 UTC",
            "Fri, 13 Nov 2010 23:29:00 GMT",
            "Sat, 13 Nov 2010 23:29:00",
            "Saturday, 13-Nov-10 23:29:00 GMT",
            "Sat Nov 13 23:29:00 2010",
            "Sat, 3 Nov 2010 23:29:00 GMT",
            "sat, 13 nov 2010 23:29:00 gmt",
            "Sat, 13 Nov 2010 24:29:00 GMT",
            "",
            "1289690940",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }
}
