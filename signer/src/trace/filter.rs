//! A Bloom filter per stored trace row, over the origids and telephone numbers of its records,
//! so that a traceback lookup decodes only the rows that may hold its call instead of every
//! row of its time window (for an origid without a window: the whole log).
//!
//! Format of a stored filter: one byte `k` (probes per key, 1..=16), then the bit array (bit
//! `i` is bit `i % 8` of byte `i / 8`). A key is hashed with 64-bit FNV-1a; probe `j` is bit
//! `(h1 + j * h2) mod m` with `h2` derived from `h1` (double hashing), so the format does not
//! depend on Rust's own hasher, which may change between releases. About 10 bits per key and 7
//! probes: under 1% false positives.
//!
//! A filter that is missing or malformed answers "maybe": a lookup never misses a record
//! because of its filter.

use serde::Deserialize;

use super::TraceRecord;

/// Bits per key.
const BITS_PER_KEY: usize = 10;
/// Probes per key.
const PROBES: u8 = 7;
/// The most probes a stored filter may ask for.
const MAX_PROBES: u8 = 16;

/// What a lookup asks a filter about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Key<'a> {
    /// An origid (compared without regard to case, as lookups do).
    Origid(&'a str),
    /// A calling or called number (canonical form).
    Tn(&'a str),
}

impl Key<'_> {
    /// The key's 64-bit hash.
    pub(super) fn hash(self) -> u64 {
        match self {
            Key::Origid(origid) => fnv1a(
                b"origid:"
                    .iter()
                    .copied()
                    .chain(origid.bytes().map(|b| b.to_ascii_lowercase())),
            ),
            Key::Tn(tn) => fnv1a(b"tn:".iter().copied().chain(tn.bytes())),
        }
    }
}

impl Key<'_> {
    /// Whether `record` holds this key: its origid (without regard to case), or its calling or
    /// a called number. The filter holds exactly the keys for which this is true.
    pub(super) fn matches(self, record: &TraceRecord) -> bool {
        match self {
            Key::Origid(origid) => record
                .origid
                .as_deref()
                .is_some_and(|o| o.eq_ignore_ascii_case(origid)),
            Key::Tn(tn) => record.orig == tn || record.dest.iter().any(|d| d == tn),
        }
    }
}

/// The fields of a record line that go into the filter.
#[derive(Deserialize)]
struct Keys<'a> {
    #[serde(borrow, default)]
    origid: Option<&'a str>,
    #[serde(borrow)]
    orig: &'a str,
    #[serde(borrow, default)]
    dest: Vec<&'a str>,
}

/// Collects the keys of a row's records, then builds its filter.
#[derive(Debug, Default)]
pub(super) struct Builder {
    hashes: Vec<u64>,
    /// A record line could not be read: the row gets no filter (so it is always decoded).
    unreadable: bool,
}

impl Builder {
    /// Adds the keys of the records in `lines` (JSON lines, as journal frames hold them).
    pub(super) fn add_lines(&mut self, lines: &str) {
        for line in lines.lines() {
            match serde_json::from_str::<Keys<'_>>(line) {
                Ok(keys) => {
                    if let Some(origid) = keys.origid {
                        self.hashes.push(Key::Origid(origid).hash());
                    }
                    self.hashes.push(Key::Tn(keys.orig).hash());
                    self.hashes
                        .extend(keys.dest.iter().map(|tn| Key::Tn(tn).hash()));
                }
                Err(_) => self.unreadable = true,
            }
        }
    }

    /// The filter of everything added (`None` if a line was unreadable), and an empty builder.
    pub(super) fn finish(&mut self) -> Option<Vec<u8>> {
        let hashes = std::mem::take(&mut self.hashes);
        if std::mem::take(&mut self.unreadable) {
            return None;
        }
        let bytes = (hashes.len() * BITS_PER_KEY).div_ceil(8).max(8);
        let mut filter = vec![0u8; 1 + bytes];
        let (k, bits) = filter.split_first_mut()?;
        *k = PROBES;
        for hash in hashes {
            for bit in probes(hash, PROBES, bytes * 8) {
                if let Some(byte) = bits.get_mut(bit / 8) {
                    *byte |= 1 << (bit % 8);
                }
            }
        }
        Some(filter)
    }
}

/// Whether the row with this stored filter may hold `key` (`true` for a malformed filter).
pub(super) fn may_contain(filter: &[u8], key: Key<'_>) -> bool {
    let Some((&k, bits)) = filter.split_first() else {
        return true;
    };
    if k == 0 || k > MAX_PROBES || bits.is_empty() {
        return true;
    }
    probes(key.hash(), k, bits.len() * 8).all(|bit| {
        bits.get(bit / 8)
            .is_none_or(|byte| byte & (1 << (bit % 8)) != 0)
    })
}

/// The bit positions probed for a key's hash in a filter of `m` bits.
fn probes(hash: u64, k: u8, m: usize) -> impl Iterator<Item = usize> {
    let m = m.max(1) as u64;
    let h2 = splitmix64(hash) | 1;
    (0..u64::from(k))
        .map(move |j| usize::try_from(hash.wrapping_add(j.wrapping_mul(h2)) % m).unwrap_or(0))
}

fn fnv1a(bytes: impl Iterator<Item = u8>) -> u64 {
    bytes.fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(i: u32) -> String {
        format!(
            r#"{{"at":1,"request_id":"r","outcome":"signed","origid":"0000000{i:x}-AAAA-4000-8000-000000000000","orig":"1215{i:07}","dest":["1212{i:07}"],"client":"c"}}"#
        )
    }

    /// The filter of `line(0)` to `line(count - 1)`.
    fn filter_of(count: u32) -> Vec<u8> {
        let mut builder = Builder::default();
        let lines: String = (0..count).map(|i| line(i) + "\n").collect();
        builder.add_lines(&lines);
        builder.finish().unwrap()
    }

    #[test]
    fn every_key_added_is_found_whatever_the_origid_case() {
        let filter = filter_of(300);
        for i in 0..300 {
            let origid = format!("0000000{i:x}-aaaa-4000-8000-000000000000");
            assert!(may_contain(&filter, Key::Origid(&origid)));
            assert!(may_contain(&filter, Key::Tn(&format!("1215{i:07}"))));
            assert!(may_contain(&filter, Key::Tn(&format!("1212{i:07}"))));
        }
    }

    #[test]
    fn keys_not_added_are_mostly_rejected() {
        let filter = filter_of(300);
        let false_positives = (0..10_000)
            .filter(|i| may_contain(&filter, Key::Tn(&format!("1999{i:07}"))))
            .count();
        // ~10 bits and 7 probes per key: about 0.8% expected.
        assert!(false_positives < 300, "{false_positives} false positives");
        // An origid and a number with the same text are different keys.
        assert_ne!(Key::Origid("x").hash(), Key::Tn("x").hash());
    }

    #[test]
    fn an_unreadable_line_or_a_malformed_filter_means_maybe() {
        let mut builder = Builder::default();
        builder.add_lines(&format!("{}\nnot json\n", line(1)));
        assert_eq!(builder.finish(), None);
        // The builder starts over after finish.
        builder.add_lines(&line(2));
        assert!(builder.finish().is_some());
        for malformed in [&[][..], &[7][..], &[0, 0xff][..], &[200, 0][..]] {
            assert!(may_contain(malformed, Key::Tn("12155550100")));
        }
    }

    #[test]
    fn the_hash_is_fnv1a_64() {
        // Published FNV-1a 64 test vectors.
        assert_eq!(fnv1a(b"".iter().copied()), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a".iter().copied()), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(b"foobar".iter().copied()), 0x8594_4171_f739_67e8);
        assert_eq!(Key::Tn("1").hash(), fnv1a(b"tn:1".iter().copied()));
        assert_eq!(
            Key::Origid("AB").hash(),
            fnv1a(b"origid:ab".iter().copied())
        );
    }
}
