//! The TNAuthList certificate extension (RFC 8226 §9; its OID is `pki::oid::TN_AUTH_LIST`).
//!
//! ```text
//! TNAuthorizationList ::= SEQUENCE SIZE (1..MAX) OF TNEntry
//! TNEntry ::= CHOICE { spc [0] ServiceProviderCode, range [1] TelephoneNumberRange,
//!                      one [2] TelephoneNumber }
//! ```
//! The module's tags are EXPLICIT, and real SHAKEN certificates carry them so: the production
//! certificate for SPC 709J holds `30 08 A0 06 16 04 37 30 39 4A`. This encoder writes only
//! the explicit form. The decoder also accepts the IMPLICIT form (`80 04 37 30 39 4A`), because
//! at least one third-party encoder writes it; it is the only leniency. Lengths must be
//! minimal DER and nothing may follow the list.

use crate::error::Error;

const TAG_INTEGER: u8 = 0x02;
const TAG_IA5STRING: u8 = 0x16;
const TAG_SEQUENCE: u8 = 0x30;
/// Longest SPC accepted; real ones are 4 characters (US OCNs).
const MAX_SPC_LEN: usize = 64;

/// One entry of a TNAuthList.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum TnEntry {
    /// A service provider code (the OCN in the US).
    Spc(String),
    /// `count` consecutive numbers from `start`.
    Range {
        /// The first number.
        start: String,
        /// How many numbers (at least 2).
        count: u64,
    },
    /// A single telephone number.
    One(String),
}

/// A non-empty TNAuthList.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TnAuthList(Vec<TnEntry>);

impl TnAuthList {
    /// A list holding one SPC, as SHAKEN certificates do.
    pub fn spc(spc: &str) -> Result<Self, Error> {
        Self::new(vec![TnEntry::Spc(spc.to_owned())])
    }

    /// A list of entries; each is validated against the ASN.1 constraints.
    pub fn new(entries: Vec<TnEntry>) -> Result<Self, Error> {
        if entries.is_empty() {
            return Err(Error::Der("TNAuthList must hold at least one entry"));
        }
        for entry in &entries {
            match entry {
                TnEntry::Spc(spc) => check_spc(spc.as_bytes())?,
                TnEntry::Range { start, count } => {
                    check_tn(start.as_bytes())?;
                    if *count < 2 {
                        return Err(Error::Der("TelephoneNumberRange count must be at least 2"));
                    }
                }
                TnEntry::One(tn) => check_tn(tn.as_bytes())?,
            }
        }
        Ok(Self(entries))
    }

    /// The entries, in order.
    pub fn entries(&self) -> &[TnEntry] {
        &self.0
    }

    /// The SPC when the list is exactly one SPC entry (the SHAKEN case).
    pub fn single_spc(&self) -> Option<&str> {
        match self.0.as_slice() {
            [TnEntry::Spc(spc)] => Some(spc),
            _ => None,
        }
    }

    /// DER with EXPLICIT tags.
    pub fn to_der(&self) -> Vec<u8> {
        let mut entries = Vec::new();
        for entry in &self.0 {
            match entry {
                TnEntry::Spc(spc) => {
                    write_tlv(0xa0, &tlv(TAG_IA5STRING, spc.as_bytes()), &mut entries)
                }
                TnEntry::Range { start, count } => {
                    let mut seq = tlv(TAG_IA5STRING, start.as_bytes());
                    write_tlv(TAG_INTEGER, &integer_content(*count), &mut seq);
                    write_tlv(0xa1, &tlv(TAG_SEQUENCE, &seq), &mut entries);
                }
                TnEntry::One(tn) => {
                    write_tlv(0xa2, &tlv(TAG_IA5STRING, tn.as_bytes()), &mut entries)
                }
            }
        }
        tlv(TAG_SEQUENCE, &entries)
    }

    /// Decodes DER (see the module docs for the one leniency).
    pub fn from_der(der: &[u8]) -> Result<Self, Error> {
        let (tag, mut content, rest) = read_tlv(der)?;
        if tag != TAG_SEQUENCE {
            return Err(Error::Der("TNAuthList is not a SEQUENCE"));
        }
        if !rest.is_empty() {
            return Err(Error::Der("trailing bytes after the TNAuthList"));
        }
        let mut entries = Vec::new();
        while !content.is_empty() {
            let (tag, inner, rest) = read_tlv(content)?;
            content = rest;
            let entry = match tag {
                0xa0 => TnEntry::Spc(ia5(read_only(inner, TAG_IA5STRING)?, check_spc)?),
                // Leniency: IMPLICIT [0] IA5String, written by some non-SHAKEN encoders.
                0x80 => TnEntry::Spc(ia5(inner, check_spc)?),
                0xa1 => {
                    // EXPLICIT wraps a SEQUENCE; IMPLICIT (leniency) puts its content directly.
                    let seq = if inner.first() == Some(&TAG_SEQUENCE) {
                        read_only(inner, TAG_SEQUENCE)?
                    } else {
                        inner
                    };
                    read_range(seq)?
                }
                0xa2 => TnEntry::One(ia5(read_only(inner, TAG_IA5STRING)?, check_tn)?),
                // Leniency: IMPLICIT [2] IA5String.
                0x82 => TnEntry::One(ia5(inner, check_tn)?),
                _ => return Err(Error::Der("TNEntry has an unknown tag")),
            };
            entries.push(entry);
        }
        Self::new(entries)
    }
}

fn read_range(seq: &[u8]) -> Result<TnEntry, Error> {
    let (tag, start, rest) = read_tlv(seq)?;
    if tag != TAG_IA5STRING {
        return Err(Error::Der("TelephoneNumberRange start is not an IA5String"));
    }
    let (tag, count, _extensions) = read_tlv(rest)?;
    // The `...` extension marker allows later elements after `count`; they are ignored.
    if tag != TAG_INTEGER {
        return Err(Error::Der("TelephoneNumberRange count is not an INTEGER"));
    }
    Ok(TnEntry::Range {
        start: ia5(start, check_tn)?,
        count: read_u64(count)?,
    })
}

fn check_spc(bytes: &[u8]) -> Result<(), Error> {
    if bytes.is_empty() || bytes.len() > MAX_SPC_LEN {
        return Err(Error::Der("SPC must be 1 to 64 characters"));
    }
    if !bytes.iter().all(|b| b.is_ascii_graphic() || *b == b' ') {
        return Err(Error::Der(
            "SPC holds a non-printable or non-ASCII character",
        ));
    }
    Ok(())
}

fn check_tn(bytes: &[u8]) -> Result<(), Error> {
    if bytes.is_empty() || bytes.len() > 15 {
        return Err(Error::Der("TelephoneNumber must be 1 to 15 characters"));
    }
    if !bytes
        .iter()
        .all(|b| b.is_ascii_digit() || *b == b'#' || *b == b'*')
    {
        return Err(Error::Der(
            "TelephoneNumber holds a character outside 0-9 # *",
        ));
    }
    Ok(())
}

fn ia5(bytes: &[u8], check: fn(&[u8]) -> Result<(), Error>) -> Result<String, Error> {
    check(bytes)?;
    // The checks above allow only ASCII, so this conversion cannot fail.
    String::from_utf8(bytes.to_vec()).map_err(|_| Error::Der("IA5String is not ASCII"))
}

/// The content of `input`, which must be exactly one TLV with `tag`.
fn read_only(input: &[u8], tag: u8) -> Result<&[u8], Error> {
    let (found, content, rest) = read_tlv(input)?;
    if found != tag {
        return Err(Error::Der("unexpected tag inside a TNEntry"));
    }
    if !rest.is_empty() {
        return Err(Error::Der("trailing bytes inside a TNEntry"));
    }
    Ok(content)
}

/// Reads one tag-length-value with a single-byte tag and a minimal definite length.
fn read_tlv(input: &[u8]) -> Result<(u8, &[u8], &[u8]), Error> {
    let (&tag, rest) = input
        .split_first()
        .ok_or(Error::Der("truncated: missing tag"))?;
    if tag & 0x1f == 0x1f {
        return Err(Error::Der("multi-byte tags are not used in a TNAuthList"));
    }
    let (&first, mut rest) = rest
        .split_first()
        .ok_or(Error::Der("truncated: missing length"))?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 {
            return Err(Error::Der("indefinite length is not DER"));
        }
        if n > 3 {
            return Err(Error::Der("length too large"));
        }
        let (bytes, after) = rest
            .split_at_checked(n)
            .ok_or(Error::Der("truncated: length bytes"))?;
        rest = after;
        if bytes.first() == Some(&0) {
            return Err(Error::Der("length has a leading zero byte (not DER)"));
        }
        let len = bytes
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        if len < 0x80 {
            return Err(Error::Der("long-form length below 128 (not DER)"));
        }
        len
    };
    let (content, rest) = rest
        .split_at_checked(len)
        .ok_or(Error::Der("truncated: content shorter than its length"))?;
    Ok((tag, content, rest))
}

fn read_u64(content: &[u8]) -> Result<u64, Error> {
    match content {
        [] => Err(Error::Der("empty INTEGER")),
        [first, ..] if first & 0x80 != 0 => Err(Error::Der("negative INTEGER")),
        [0, second, ..] if second & 0x80 == 0 => Err(Error::Der("INTEGER not minimally encoded")),
        _ => {
            let digits = content.strip_prefix(&[0]).unwrap_or(content);
            if digits.len() > 8 {
                return Err(Error::Der("INTEGER larger than 64 bits"));
            }
            Ok(digits
                .iter()
                .fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
        }
    }
}

fn integer_content(value: u64) -> Vec<u8> {
    let bytes = value.to_be_bytes();
    let skip = bytes.iter().take_while(|&&b| b == 0).count().min(7);
    let mut out = Vec::with_capacity(9);
    if bytes.get(skip).is_some_and(|b| b & 0x80 != 0) {
        out.push(0);
    }
    out.extend_from_slice(bytes.get(skip..).unwrap_or_default());
    out
}

fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 4);
    write_tlv(tag, content, &mut out);
    out
}

fn write_tlv(tag: u8, content: &[u8], out: &mut Vec<u8>) {
    out.push(tag);
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        let significant = bytes.get(skip..).unwrap_or_default();
        out.push(0x80 | significant.len() as u8);
        out.extend_from_slice(significant);
    }
    out.extend_from_slice(content);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap_or_default())
            .collect()
    }

    #[test]
    fn production_709j_round_trips_byte_for_byte() {
        let der = hex("3008A00616043730394A");
        let list = TnAuthList::from_der(&der).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(list.single_spc(), Some("709J"));
        assert_eq!(list.to_der(), der);
        assert_eq!(TnAuthList::spc("709J").map(|l| l.to_der()), Ok(der));
    }

    #[test]
    fn implicit_form_is_accepted_but_never_written() {
        let list = TnAuthList::from_der(&hex("300680043730394A")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(list.single_spc(), Some("709J"));
        assert_eq!(list.to_der(), hex("3008A00616043730394A"));
    }

    #[test]
    fn range_and_one_round_trip() {
        let list = TnAuthList::new(vec![
            TnEntry::Range {
                start: "12155551000".into(),
                count: 200,
            },
            TnEntry::One("12155559999".into()),
            TnEntry::Spc("1234".into()),
        ])
        .unwrap_or_else(|e| panic!("{e}"));
        let der = list.to_der();
        // count 200 needs a leading zero byte: 02 02 00 C8.
        assert!(der.windows(4).any(|w| w == [0x02, 0x02, 0x00, 0xc8]));
        assert_eq!(TnAuthList::from_der(&der), Ok(list));
    }

    #[test]
    fn long_lists_use_long_form_lengths() {
        let entries: Vec<_> = (0..40).map(|i| TnEntry::Spc(format!("SPC{i}"))).collect();
        let list = TnAuthList::new(entries).unwrap_or_else(|e| panic!("{e}"));
        let der = list.to_der();
        assert_eq!(
            der.get(1),
            Some(&0x82),
            "{} bytes need a two-byte length",
            der.len()
        );
        assert_eq!(TnAuthList::from_der(&der), Ok(list));
    }

    #[test]
    fn malformed_der_is_refused() {
        for bad in [
            "",
            "3000",
            "3008A00616043730394A00",
            "3009A00616043730394A",
            "3108A00616043730394A",
            "3008A00613043730394A",
            "3080A00616043730394A0000",
            "308108A00616043730394A",
            "3008A306160437303941",
            "300BA1093007160131020101",
            "300CA10A30081601310203000002",
            "3002A000",
            "30048002FF00",
        ] {
            assert!(TnAuthList::from_der(&hex(bad)).is_err(), "{bad}");
        }
    }
}
