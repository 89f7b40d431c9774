//! Rich Call Data (RFC 9795): the `rcd` claim (who is calling, as a person reads it) and the
//! `crn` claim (why), carried inside a `shaken` PASSporT (ATIS-1000094's claim-in-shaken form)
//! or in a PASSporT of its own with `ppt` `rcd`.
//!
//! A [`RichCallData`] always holds a display name `nam` that is non-empty, at most
//! [`MAX_NAM_CHARS`] characters and free of control characters; its other members (RFC 9795's
//! `apn`, `icn`, `jcd`, `jcl`, and any later ones) are kept as received and written back in
//! canonical order. A [`CallReason`] is non-empty, at most [`MAX_CRN_CHARS`] characters and free
//! of control characters.
//!
//! Limits: RFC 9795 sets none. A name longer than [`MAX_NAM_CHARS`] cannot be shown on a phone
//! (CNAM shows 15 characters), and control characters (line breaks, escape sequences, the
//! bidirectional overrides) would let a caller forge what the display shows, so both are
//! refused, on parse as on build.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde_json::{Map, Value};

use crate::error::TokenError;
use crate::json::{self, ObjectWriter};

/// The longest `nam`, in characters.
pub const MAX_NAM_CHARS: usize = 64;
/// The longest `crn`, in characters.
pub const MAX_CRN_CHARS: usize = 128;
/// The most members an `rcd` object may hold (RFC 9795 registers five).
pub const MAX_RCD_MEMBERS: usize = 16;

/// The `ppt` of a Rich Call Data PASSporT (RFC 9795).
pub const PPT_RCD: &str = "rcd";

/// Checks a display text: non-empty, at most `max` characters, no control or bidirectional
/// formatting characters. Returns why not.
fn check_text(text: &str, max: usize) -> Result<(), String> {
    if text.is_empty() {
        return Err("empty".into());
    }
    let count = text.chars().count();
    if count > max {
        return Err(format!("{count} characters, more than {max}"));
    }
    if let Some(c) = text.chars().find(|c| is_forbidden(*c)) {
        return Err(format!(
            "holds the control character U+{:04X}",
            u32::from(c)
        ));
    }
    Ok(())
}

/// Control characters, and the Unicode bidirectional controls (U+202A-202E, U+2066-2069,
/// U+200E/200F) that reorder what a display shows.
fn is_forbidden(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// The `rcd` claim: a valid display name `nam` and the other members as received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RichCallData {
    nam: String,
    other: BTreeMap<String, Value>,
}

impl RichCallData {
    /// An `rcd` holding only `nam`; refused ([`TokenError::InvalidRcd`]) if `nam` is empty,
    /// longer than [`MAX_NAM_CHARS`] characters, or holds a control character.
    pub fn new(nam: impl Into<String>) -> Result<Self, TokenError> {
        let nam = nam.into();
        check_text(&nam, MAX_NAM_CHARS).map_err(|reason| TokenError::InvalidRcd {
            member: "nam",
            reason,
        })?;
        Ok(Self {
            nam,
            other: BTreeMap::new(),
        })
    }

    /// The display name.
    pub fn nam(&self) -> &str {
        &self.nam
    }

    /// The members other than `nam` (`apn`, `icn`, `jcd`, `jcl`, ...), as received.
    pub fn other(&self) -> &BTreeMap<String, Value> {
        &self.other
    }

    /// Parses the value of an `rcd` claim: an object with a valid `nam`, at most
    /// [`MAX_RCD_MEMBERS`] members.
    pub fn from_value(value: Value) -> Result<Self, TokenError> {
        let Value::Object(map) = value else {
            return Err(TokenError::InvalidRcd {
                member: "rcd",
                reason: "not an object".into(),
            });
        };
        Self::from_map(map)
    }

    fn from_map(mut map: Map<String, Value>) -> Result<Self, TokenError> {
        if map.len() > MAX_RCD_MEMBERS {
            return Err(TokenError::InvalidRcd {
                member: "rcd",
                reason: format!("{} members, more than {MAX_RCD_MEMBERS}", map.len()),
            });
        }
        let nam = match map.remove("nam") {
            None => {
                return Err(TokenError::InvalidRcd {
                    member: "nam",
                    reason: "absent".into(),
                })
            }
            Some(Value::String(nam)) => nam,
            Some(_) => {
                return Err(TokenError::InvalidRcd {
                    member: "nam",
                    reason: "not a string".into(),
                })
            }
        };
        let mut rcd = Self::new(nam)?;
        rcd.other = map.into_iter().collect();
        Ok(rcd)
    }

    /// Appends the canonical JSON of the object (members sorted, nested objects too).
    pub fn write_json(&self, out: &mut String) {
        let nam = |o: &mut String| json::write_str(o, &self.nam);
        let mut obj = ObjectWriter::new(out);
        obj.members_merged(&[("nam", &nam)], &self.other);
        obj.finish();
    }
}

/// The `crn` claim: a call reason a person reads.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CallReason(String);

impl CallReason {
    /// A call reason; refused ([`TokenError::InvalidCrn`]) if empty, longer than
    /// [`MAX_CRN_CHARS`] characters, or holding a control character.
    pub fn new(text: impl Into<String>) -> Result<Self, TokenError> {
        let text = text.into();
        check_text(&text, MAX_CRN_CHARS).map_err(|reason| TokenError::InvalidCrn { reason })?;
        Ok(Self(text))
    }

    /// The reason as carried.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for CallReason {
    type Err = TokenError;
    fn from_str(s: &str) -> Result<Self, TokenError> {
        Self::new(s)
    }
}

impl fmt::Display for CallReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_bounded_and_printable() {
        assert_eq!(
            RichCallData::new("Example Corp").map(|r| r.nam),
            Ok("Example Corp".into())
        );
        assert!(RichCallData::new("中国移动营销").is_ok());
        assert!(RichCallData::new("x".repeat(MAX_NAM_CHARS)).is_ok());
        for (bad, why) in [
            (String::new(), "empty"),
            ("x".repeat(MAX_NAM_CHARS + 1), "65 characters"),
            ("Bank\nof trust".into(), "U+000A"),
            ("Bank\u{202E}knab".into(), "U+202E"),
        ] {
            match RichCallData::new(bad.clone()) {
                Err(TokenError::InvalidRcd {
                    member: "nam",
                    reason,
                }) => {
                    assert!(reason.contains(why), "{bad:?}: {reason}")
                }
                other => panic!("{bad:?}: {other:?}"),
            }
        }
        assert!(CallReason::new("Sales").is_ok());
        assert!(matches!(
            CallReason::new(""),
            Err(TokenError::InvalidCrn { .. })
        ));
        assert!(matches!(
            CallReason::new("y".repeat(MAX_CRN_CHARS + 1)),
            Err(TokenError::InvalidCrn { .. })
        ));
        assert!(matches!(
            "a\tb".parse::<CallReason>(),
            Err(TokenError::InvalidCrn { .. })
        ));
    }

    #[test]
    fn objects_keep_other_members_sorted() {
        let value: Value = serde_json::from_str(
            r#"{"jcl":"https://x/j.json","nam":"Example","icn":"https://x/i.png","apn":"12155551212"}"#,
        )
        .unwrap();
        let rcd = RichCallData::from_value(value).unwrap();
        let mut out = String::new();
        rcd.write_json(&mut out);
        assert_eq!(
            out,
            r#"{"apn":"12155551212","icn":"https://x/i.png","jcl":"https://x/j.json","nam":"Example"}"#
        );
        for (text, member) in [
            (r#""Example""#, "rcd"),
            (r#"{"icn":"https://x/i.png"}"#, "nam"),
            (r#"{"nam":7}"#, "nam"),
            (r#"{"nam":""}"#, "nam"),
        ] {
            let value: Value = serde_json::from_str(text).unwrap();
            match RichCallData::from_value(value) {
                Err(TokenError::InvalidRcd { member: m, .. }) => assert_eq!(m, member, "{text}"),
                other => panic!("{text}: {other:?}"),
            }
        }
        let many: Map<String, Value> = (0..=MAX_RCD_MEMBERS)
            .map(|i| (format!("m{i}"), Value::Null))
            .chain([("nam".to_owned(), Value::from("n"))])
            .collect();
        assert!(matches!(
            RichCallData::from_value(Value::Object(many)),
            Err(TokenError::InvalidRcd { member: "rcd", .. })
        ));
    }
}
