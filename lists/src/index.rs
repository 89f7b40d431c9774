//! Looking numbers up in a list at line rate: which firm calls from a number, and whether the
//! number is blacklisted on its own.
//!
//! Single numbers sit in a hash map keyed by (length, value); ranges in one sorted vector per
//! length, searched by binary search. A number only ever matches entries of its own length
//! (`861380013800` is not in `8613800138000-8613800138999`). The document's validation
//! guarantees that entries never overlap, so at most one entry holds a number and the binary
//! search only needs to look at the range starting at or before it. Lookups take constant
//! time for single numbers and logarithmic time in the number of ranges.

use std::collections::HashMap;

use crate::document::{parse_digits, Firm, FirmStatus, ListDocument, MAX_DIGITS};

/// Who owns an entry: a firm's position in the document, or the blacklist.
const BLACKLIST: u32 = u32::MAX;

/// The ranges of one length, sorted by first number. The first numbers are kept apart from
/// the rest so that the binary search walks a dense array of `u64` (fewer cache misses on a
/// list of a million entries).
#[derive(Clone, Debug, Default)]
struct Ranges {
    firsts: Vec<u64>,
    lasts: Vec<u64>,
    owners: Vec<u32>,
}

/// What the list says about one number.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Listing<'a> {
    /// The firm whose numbers hold it, whatever its status.
    pub firm: Option<&'a Firm>,
    /// Whether `blacklisted_numbers` holds it (never together with a firm: the document
    /// refuses a number listed twice).
    pub blacklisted_number: bool,
}

impl Listing<'_> {
    /// Whether calls from this number are barred by the list: a blacklisted number, or a
    /// number of a blacklisted or suspended firm.
    pub fn barred(&self) -> bool {
        self.blacklisted_number
            || self.firm.is_some_and(|f| {
                matches!(f.status, FirmStatus::Blacklisted | FirmStatus::Suspended)
            })
    }

    /// The firm, when it is white-listed: its calls are marketing calls.
    pub fn white_listed_firm(&self) -> Option<&Firm> {
        self.firm.filter(|f| f.status == FirmStatus::WhiteListed)
    }
}

/// A validated document with its lookup structures.
#[derive(Debug)]
pub struct ListIndex {
    document: ListDocument,
    exact: HashMap<u64, u32>,
    /// `ranges[n]`: the ranges of `n`-digit numbers.
    ranges: Vec<Ranges>,
    by_id: HashMap<String, u32>,
}

/// The hash key of a number: its value and its length, which a value alone would lose.
fn key(digits: u8, value: u64) -> u64 {
    // value < 10^15 < 2^50: four more bits hold the length (at most 15).
    (value << 4) | u64::from(digits)
}

impl ListIndex {
    /// Builds the lookup structures (time linear in the entries, plus sorting the ranges).
    pub fn new(document: ListDocument) -> Self {
        let mut exact = HashMap::new();
        let mut unsorted: Vec<Vec<(u64, u64, u32)>> = vec![Vec::new(); MAX_DIGITS + 1];
        let mut by_id = HashMap::with_capacity(document.firms.len());
        let owners = document
            .firms
            .iter()
            .enumerate()
            .map(|(i, firm)| (u32::try_from(i).unwrap_or(BLACKLIST - 1), &firm.numbers))
            .chain(std::iter::once((BLACKLIST, &document.blacklisted_numbers)));
        for (owner, entries) in owners {
            for entry in entries {
                if entry.is_range() {
                    if let Some(list) = unsorted.get_mut(usize::from(entry.digits())) {
                        list.push((entry.first(), entry.last(), owner));
                    }
                } else {
                    exact.insert(key(entry.digits(), entry.first()), owner);
                }
            }
        }
        let ranges = unsorted
            .into_iter()
            .map(|mut list| {
                list.sort_unstable_by_key(|r| r.0);
                Ranges {
                    firsts: list.iter().map(|r| r.0).collect(),
                    lasts: list.iter().map(|r| r.1).collect(),
                    owners: list.iter().map(|r| r.2).collect(),
                }
            })
            .collect();
        for (i, firm) in document.firms.iter().enumerate() {
            by_id.insert(firm.id.clone(), u32::try_from(i).unwrap_or(BLACKLIST - 1));
        }
        Self {
            document,
            exact,
            ranges,
            by_id,
        }
    }

    /// The document.
    pub fn document(&self) -> &ListDocument {
        &self.document
    }

    /// What the list says about `tn`: E.164 digits, a leading `+` tolerated (the form some
    /// callers keep). Anything that is not a number is in no list.
    pub fn lookup(&self, tn: &str) -> Listing<'_> {
        let digits = tn.strip_prefix('+').unwrap_or(tn);
        let Ok((length, value)) = parse_digits(digits) else {
            return Listing::default();
        };
        let owner = self
            .exact
            .get(&key(length, value))
            .copied()
            .or_else(|| self.range_owner(length, value));
        match owner {
            None => Listing::default(),
            Some(BLACKLIST) => Listing {
                firm: None,
                blacklisted_number: true,
            },
            Some(i) => Listing {
                firm: usize::try_from(i)
                    .ok()
                    .and_then(|i| self.document.firms.get(i)),
                blacklisted_number: false,
            },
        }
    }

    fn range_owner(&self, length: u8, value: u64) -> Option<u32> {
        let list = self.ranges.get(usize::from(length))?;
        // The ranges starting at or before `value`; only the last of them can hold it.
        let candidate = list
            .firsts
            .partition_point(|first| *first <= value)
            .checked_sub(1)?;
        let last = *list.lasts.get(candidate)?;
        if value <= last {
            list.owners.get(candidate).copied()
        } else {
            None
        }
    }

    /// The firm with this id.
    pub fn firm(&self, id: &str) -> Option<&Firm> {
        let i = usize::try_from(*self.by_id.get(id)?).ok()?;
        self.document.firms.get(i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::document::Format;

    fn index() -> ListIndex {
        let doc = ListDocument::parse(
            br#"{"version":1,"issued_at":1,"expires_at":2,
                "firms":[
                  {"id":"A","name":"A Co.","status":"white-listed","numbers":["8613800138000","862158880000-862158889999","5","10-19"],"hourly_quota":1,"reasons":[]},
                  {"id":"S","name":"S Co.","status":"suspended","numbers":["8613800138001"],"hourly_quota":1,"reasons":[]},
                  {"id":"B","name":"B Co.","status":"blacklisted","numbers":["8621588800000-8621588899999"],"hourly_quota":0,"reasons":[]}],
                "blacklisted_numbers":["8617000000001","8617100000000-8617100009999","862158890000-862158890000"]}"#,
            Format::Json,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        ListIndex::new(doc)
    }

    fn firm_of(index: &ListIndex, tn: &str) -> Option<String> {
        index.lookup(tn).firm.map(|f| f.id.clone())
    }

    #[test]
    fn exact_numbers_and_range_edges() {
        let index = index();
        let a = Some("A".to_owned());
        assert_eq!(firm_of(&index, "8613800138000"), a);
        assert_eq!(firm_of(&index, "+8613800138000"), a);
        assert_eq!(firm_of(&index, "8613800138002"), None);
        // First, last, one before, one past.
        assert_eq!(firm_of(&index, "862158880000"), a);
        assert_eq!(firm_of(&index, "862158889999"), a);
        assert_eq!(firm_of(&index, "862158884321"), a);
        assert_eq!(firm_of(&index, "862158879999"), None);
        assert_eq!(index.lookup("862158890000").firm, None);
        assert!(index.lookup("862158890000").blacklisted_number);
        assert_eq!(firm_of(&index, "862158890001"), None);
        // Same leading digits, other lengths: the 13-digit range is firm B's, and neither
        // length matches the other's range.
        assert_eq!(firm_of(&index, "8621588800000"), Some("B".into()));
        assert_eq!(firm_of(&index, "86215888000"), None);
        assert_eq!(firm_of(&index, "86215888000000"), None);
        // One- and two-digit entries.
        assert_eq!(firm_of(&index, "5"), a);
        assert_eq!(firm_of(&index, "10"), a);
        assert_eq!(firm_of(&index, "19"), a);
        assert_eq!(firm_of(&index, "9"), None);
        assert_eq!(firm_of(&index, "20"), None);
        assert_eq!(firm_of(&index, "100"), None);
    }

    #[test]
    fn blacklist_and_statuses() {
        let index = index();
        let listing = index.lookup("8617000000001");
        assert_eq!(
            listing,
            Listing {
                firm: None,
                blacklisted_number: true
            }
        );
        assert!(listing.barred());
        for tn in ["8617100000000", "8617100009999", "8617100005000"] {
            assert!(index.lookup(tn).blacklisted_number, "{tn}");
        }
        assert!(!index.lookup("8617100010000").blacklisted_number);
        assert!(!index.lookup("8617099999999").blacklisted_number);
        assert!(index.lookup("8613800138001").barred());
        assert!(index.lookup("8621588850000").barred());
        let white = index.lookup("8613800138000");
        assert!(!white.barred());
        assert_eq!(
            white.white_listed_firm().map(|f| f.name.as_str()),
            Some("A Co.")
        );
        assert!(index.lookup("8613800138001").white_listed_firm().is_none());
        assert_eq!(index.lookup("not a number"), Listing::default());
        assert_eq!(index.lookup(""), Listing::default());
        assert_eq!(index.lookup("+"), Listing::default());
        assert_eq!(index.lookup("18446744073709551616"), Listing::default());
    }

    #[test]
    fn firms_by_id() {
        let index = index();
        assert_eq!(
            index.firm("S").map(|f| f.status),
            Some(FirmStatus::Suspended)
        );
        assert!(index.firm("s").is_none());
        assert_eq!(index.document().version, 1);
    }
}
