//! The big regulator list the `lists` and `verifier` benches share: `firms` firms, each with
//! 8 single numbers (the first at `SINGLES_BASE + 8 i`) and 2 ranges of 100 numbers, built in
//! memory (not signed).

use lists::document::{Firm, FirmStatus, ListDocument, NumberEntry};
use lists::ListIndex;

pub(crate) const SINGLES_PER_FIRM: u64 = 8;
pub(crate) const RANGES_PER_FIRM: u64 = 2;
pub(crate) const SINGLES_BASE: u64 = 8_613_000_000_000;
pub(crate) const RANGES_BASE: u64 = 8_615_000_000_000;

pub(crate) fn list(firms: u64) -> ListIndex {
    let firms = (0..firms)
        .map(|i| {
            let mut numbers = Vec::new();
            for j in 0..SINGLES_PER_FIRM {
                let n = SINGLES_BASE + i * SINGLES_PER_FIRM + j;
                numbers.push(NumberEntry::parse(&n.to_string()).unwrap());
            }
            for k in 0..RANGES_PER_FIRM {
                let first = RANGES_BASE + (i * RANGES_PER_FIRM + k) * 1000;
                numbers.push(NumberEntry::parse(&format!("{first}-{}", first + 99)).unwrap());
            }
            Firm {
                id: format!("F{i:08}"),
                name: format!("Firm {i}"),
                status: FirmStatus::WhiteListed,
                numbers,
                hourly_quota: 1000,
                reasons: vec!["Reminder".into(), "Policy renewal".into()],
            }
        })
        .collect();
    ListIndex::new(ListDocument {
        version: 1,
        issued_at: 0,
        expires_at: u64::MAX,
        firms,
        blacklisted_numbers: Vec::new(),
    })
}
