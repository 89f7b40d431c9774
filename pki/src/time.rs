//! How a time reaches a person: RFC 3339 in UTC, then the seconds since the epoch in brackets,
//! `2026-12-03T21:00:00Z (1796331600)`. The date is what a person reads; the number is what
//! they pass back to a `--now SECONDS` flag. Every message of the CA tools and the linter that
//! shows a time goes through [`Timestamp`].

use std::fmt;

/// A time in seconds since the epoch, displayed as `2026-12-03T21:00:00Z (1796331600)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timestamp(pub i64);

impl From<u64> for Timestamp {
    /// Times past the year 292 billion are shown as the last representable second.
    fn from(seconds: u64) -> Self {
        Self(i64::try_from(seconds).unwrap_or(i64::MAX))
    }
}

impl From<i64> for Timestamp {
    fn from(seconds: i64) -> Self {
        Self(seconds)
    }
}

/// `seconds` as `2026-12-03T21:00:00Z (1796331600)`.
pub fn display(seconds: u64) -> String {
    Timestamp::from(seconds).to_string()
}

/// The proleptic Gregorian date of a day number (days since 1970-01-01), after Howard
/// Hinnant's `civil_from_days`: exact for every `i64` day this module can be given.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let seconds = self.0;
        let (year, month, day) = civil_from_days(seconds.div_euclid(86_400));
        let of_day = seconds.rem_euclid(86_400);
        write!(
            f,
            "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z ({seconds})",
            of_day / 3600,
            of_day % 3600 / 60,
            of_day % 60
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_instants() {
        assert_eq!(display(0), "1970-01-01T00:00:00Z (0)");
        assert_eq!(display(1_796_331_600), "2026-12-03T21:00:00Z (1796331600)");
        assert_eq!(display(1_767_225_600), "2026-01-01T00:00:00Z (1767225600)");
        // A leap day, and the last second before it.
        assert_eq!(display(1_709_164_800), "2024-02-29T00:00:00Z (1709164800)");
        assert_eq!(display(1_709_164_799), "2024-02-28T23:59:59Z (1709164799)");
        // 2000 is a leap year, 2100 is not.
        assert_eq!(display(951_782_400), "2000-02-29T00:00:00Z (951782400)");
        assert_eq!(display(4_107_542_400), "2100-03-01T00:00:00Z (4107542400)");
        assert_eq!(Timestamp(-1).to_string(), "1969-12-31T23:59:59Z (-1)");
        assert_eq!(
            display(u64::MAX),
            Timestamp(i64::MAX).to_string(),
            "saturates"
        );
    }
}
