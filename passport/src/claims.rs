//! PASSporT claims: the base claims of RFC 8225, the SHAKEN claims of RFC 8588, and room for
//! the `div` (RFC 8946) and `rcd`/`crn` (RFC 9795) extensions.
//!
//! A parsed [`Claims`] holds only valid values: `iat` is a non-negative integer, `orig` holds
//! exactly one identity, `dest` holds at least one non-empty array, `attest` is A, B or C, and
//! `origid` is a UUID, `rcd` has a valid display name and `crn` is a valid call reason
//! ([`crate::rcd`]). Claims this crate does not know are kept, and written back in order.
//!
//! Rich Call Data goes inside the `shaken` PASSporT (ATIS-1000094's claim-in-shaken form):
//! [`Claims::with_rcd`] adds `rcd` and a top-level `crn`, and the canonical JSON puts them in
//! their lexicographic places (`attest`, `crn`, `dest`, `iat`, `orig`, `origid`, `rcd`).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde_json::Value;

use crate::error::{Part, TokenError};
use crate::json::{self, ObjectWriter, WriteValue};
use crate::rcd::{CallReason, RichCallData};

/// SHAKEN attestation level (RFC 8588 §4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Attestation {
    /// Full: the signer authenticated the caller and its right to the number.
    A,
    /// Partial: the signer authenticated the caller, not its right to the number.
    B,
    /// Gateway: the signer only saw the call enter its network.
    C,
}

impl Attestation {
    /// `"A"`, `"B"` or `"C"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::A => "A",
            Self::B => "B",
            Self::C => "C",
        }
    }
}

impl FromStr for Attestation {
    type Err = TokenError;
    fn from_str(s: &str) -> Result<Self, TokenError> {
        match s {
            "A" => Ok(Self::A),
            "B" => Ok(Self::B),
            "C" => Ok(Self::C),
            _ => Err(TokenError::InvalidClaim {
                name: "attest",
                reason: format!("{s:?} is not A, B or C"),
            }),
        }
    }
}

impl fmt::Display for Attestation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An origination identifier: a UUID in its hyphenated 8-4-4-4-12 form, case as given.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct OrigId(String);

impl OrigId {
    /// The UUID text as carried.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for OrigId {
    type Err = TokenError;
    fn from_str(s: &str) -> Result<Self, TokenError> {
        let ok = s.len() == 36
            && s.bytes().enumerate().all(|(i, b)| match i {
                8 | 13 | 18 | 23 => b == b'-',
                _ => b.is_ascii_hexdigit(),
            });
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(TokenError::InvalidClaim {
                name: "origid",
                reason: format!("{:?} is not a UUID", truncate(s)),
            })
        }
    }
}

impl fmt::Display for OrigId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One identity: the value of `orig` (and of `div`), a telephone number or a URI.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Party {
    /// `{"tn":"12155551212"}`
    Tn(String),
    /// `{"uri":"sip:alice@example.com"}`
    Uri(String),
}

impl Party {
    fn write_json(&self, out: &mut String) {
        let mut obj = ObjectWriter::new(out);
        match self {
            Self::Tn(tn) => obj.member("tn", |o| json::write_str(o, tn)),
            Self::Uri(uri) => obj.member("uri", |o| json::write_str(o, uri)),
        }
        obj.finish();
    }

    fn from_value(value: Value, name: &'static str) -> Result<Self, TokenError> {
        let invalid = |reason: &str| TokenError::InvalidClaim {
            name,
            reason: reason.to_owned(),
        };
        let Value::Object(map) = value else {
            return Err(invalid("not an object"));
        };
        if map.len() != 1 {
            return Err(invalid("must hold exactly one of 'tn' or 'uri'"));
        }
        match map.into_iter().next() {
            Some((key, Value::String(s))) if key == "tn" => {
                check_tn(&s, name)?;
                Ok(Self::Tn(s))
            }
            Some((key, Value::String(s))) if key == "uri" && !s.is_empty() => Ok(Self::Uri(s)),
            Some((key, _)) if key == "tn" || key == "uri" => {
                Err(invalid("'tn' or 'uri' is not a non-empty string"))
            }
            _ => Err(invalid("must hold exactly one of 'tn' or 'uri'")),
        }
    }
}

/// The `dest` claim: telephone numbers and/or URIs, at least one in all.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Dest {
    tn: Vec<String>,
    uri: Vec<String>,
}

impl Dest {
    /// A destination of telephone numbers (sorted, as RFC 8225 §5.2.1 asks). `None` if empty.
    pub fn tns(mut tns: Vec<String>) -> Option<Self> {
        if tns.is_empty() {
            return None;
        }
        tns.sort();
        Some(Self {
            tn: tns,
            uri: Vec::new(),
        })
    }

    /// A destination of URIs (sorted). `None` if empty.
    pub fn uris(mut uris: Vec<String>) -> Option<Self> {
        if uris.is_empty() {
            return None;
        }
        uris.sort();
        Some(Self {
            tn: Vec::new(),
            uri: uris,
        })
    }

    /// The telephone numbers, as carried.
    pub fn tn(&self) -> &[String] {
        &self.tn
    }

    /// The URIs, as carried.
    pub fn uri(&self) -> &[String] {
        &self.uri
    }

    fn write_json(&self, out: &mut String) {
        let mut obj = ObjectWriter::new(out);
        for (name, items) in [("tn", &self.tn), ("uri", &self.uri)] {
            if !items.is_empty() {
                obj.member(name, |o| {
                    o.push('[');
                    for (i, item) in items.iter().enumerate() {
                        if i > 0 {
                            o.push(',');
                        }
                        json::write_str(o, item);
                    }
                    o.push(']');
                });
            }
        }
        obj.finish();
    }

    fn from_value(value: Value) -> Result<Self, TokenError> {
        let invalid = |name, reason: &str| TokenError::InvalidClaim {
            name,
            reason: reason.to_owned(),
        };
        let Value::Object(map) = value else {
            return Err(invalid("dest", "not an object"));
        };
        let mut dest = Self {
            tn: Vec::new(),
            uri: Vec::new(),
        };
        for (key, value) in map {
            let (name, slot) = match key.as_str() {
                "tn" => ("dest.tn", &mut dest.tn),
                "uri" => ("dest.uri", &mut dest.uri),
                _ => {
                    return Err(TokenError::InvalidClaim {
                        name: "dest",
                        reason: format!("unexpected member {:?}", truncate(&key)),
                    })
                }
            };
            let Value::Array(items) = value else {
                return Err(invalid(name, "not an array"));
            };
            if items.is_empty() {
                return Err(invalid(name, "empty array"));
            }
            for item in items {
                match item {
                    Value::String(s) if name == "dest.tn" => {
                        check_tn(&s, name)?;
                        slot.push(s);
                    }
                    Value::String(s) if !s.is_empty() => slot.push(s),
                    _ => {
                        return Err(invalid(
                            name,
                            "holds something other than a non-empty string",
                        ))
                    }
                }
            }
        }
        if dest.tn.is_empty() && dest.uri.is_empty() {
            return Err(invalid("dest", "holds neither 'tn' nor 'uri'"));
        }
        Ok(dest)
    }
}

/// A `tn` value in a token: non-empty, at most 64 characters, only the characters an
/// ATIS-1000082 signer accepts (`0-9 * # + . - ( )`). Canonical form is not required here:
/// it is compared after canonicalization.
fn check_tn(s: &str, name: &'static str) -> Result<(), TokenError> {
    let ok = !s.is_empty()
        && s.len() <= 64
        && s.bytes().any(|b| b.is_ascii_digit())
        && s.bytes()
            .all(|b| b.is_ascii_digit() || b"*#+.-()".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(TokenError::InvalidClaim {
            name,
            reason: format!("{:?} is not a telephone number", truncate(s)),
        })
    }
}

fn truncate(s: &str) -> String {
    s.chars().take(64).collect()
}

/// The claims of a PASSporT.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claims {
    /// Issued-at time, seconds since the epoch.
    pub iat: u64,
    /// The calling party.
    pub orig: Party,
    /// The called party or parties.
    pub dest: Dest,
    /// SHAKEN attestation level (required in a `shaken` PASSporT).
    pub attest: Option<Attestation>,
    /// SHAKEN origination identifier (required in a `shaken` PASSporT).
    pub origid: Option<OrigId>,
    /// The diverting party of a `div` PASSporT (RFC 8946).
    pub div: Option<Party>,
    /// Rich Call Data (RFC 9795): a valid `nam`, other members as received.
    pub rcd: Option<RichCallData>,
    /// Call reason (RFC 9795), a top-level claim.
    pub crn: Option<CallReason>,
    extra: BTreeMap<String, Value>,
}

/// Claim names this crate interprets; every other claim goes to [`Claims::extra`].
const KNOWN: [&str; 8] = [
    "attest", "crn", "dest", "div", "iat", "orig", "origid", "rcd",
];

impl Claims {
    /// The base claims of RFC 8225 only.
    pub fn base(iat: u64, orig: Party, dest: Dest) -> Self {
        Self {
            iat,
            orig,
            dest,
            attest: None,
            origid: None,
            div: None,
            rcd: None,
            crn: None,
            extra: BTreeMap::new(),
        }
    }

    /// The claims of a SHAKEN PASSporT.
    pub fn shaken(iat: u64, orig: Party, dest: Dest, attest: Attestation, origid: OrigId) -> Self {
        Self {
            iat,
            orig,
            dest,
            attest: Some(attest),
            origid: Some(origid),
            div: None,
            rcd: None,
            crn: None,
            extra: BTreeMap::new(),
        }
    }

    /// The claims of a Rich Call Data PASSporT (`ppt` `rcd`, RFC 9795): the base claims with
    /// `rcd` and an optional `crn`.
    pub fn rcd_passport(
        iat: u64,
        orig: Party,
        dest: Dest,
        rcd: RichCallData,
        crn: Option<CallReason>,
    ) -> Self {
        let mut claims = Self::base(iat, orig, dest);
        claims.rcd = Some(rcd);
        claims.crn = crn;
        claims
    }

    /// These claims with an `rcd` holding the display name `nam` and, if given, a call reason
    /// `crn`: what a signer adds to a marketing call's `shaken` PASSporT. Refused with
    /// [`TokenError::InvalidRcd`] or [`TokenError::InvalidCrn`] when a value is not valid
    /// ([`crate::rcd`]'s rules); an `rcd` or `crn` already present is replaced.
    pub fn with_rcd(mut self, nam: &str, crn: Option<&str>) -> Result<Self, TokenError> {
        self.rcd = Some(RichCallData::new(nam)?);
        self.crn = crn.map(CallReason::new).transpose()?;
        Ok(self)
    }

    /// The display name of the `rcd` claim, if the claims carry one.
    pub fn rcd_name(&self) -> Option<&str> {
        self.rcd.as_ref().map(RichCallData::nam)
    }

    /// The call reason, if the claims carry one.
    pub fn call_reason(&self) -> Option<&str> {
        self.crn.as_ref().map(CallReason::as_str)
    }

    /// Claims this crate does not interpret, kept as received.
    pub fn extra(&self) -> &BTreeMap<String, Value> {
        &self.extra
    }

    /// Adds a claim this crate does not interpret. Refuses the names it does interpret.
    pub fn insert_extra(&mut self, name: String, value: Value) -> Result<(), TokenError> {
        if KNOWN.contains(&name.as_str()) {
            return Err(TokenError::InvalidClaim {
                name: "extra",
                reason: format!("{name:?} is a claim with its own field"),
            });
        }
        self.extra.insert(name, value);
        Ok(())
    }

    /// The SHAKEN claims, or the 438 error a verifier gives when one is missing.
    pub fn require_shaken(&self) -> Result<(Attestation, &OrigId), TokenError> {
        let attest = self.attest.ok_or(TokenError::MissingClaim("attest"))?;
        let origid = self
            .origid
            .as_ref()
            .ok_or(TokenError::MissingClaim("origid"))?;
        Ok((attest, origid))
    }

    /// Appends the canonical JSON of the claims.
    pub fn write_json(&self, out: &mut String) {
        let attest = |o: &mut String| {
            if let Some(a) = self.attest {
                json::write_str(o, a.as_str());
            }
        };
        let crn = |o: &mut String| {
            if let Some(c) = &self.crn {
                json::write_str(o, c.as_str());
            }
        };
        let dest = |o: &mut String| self.dest.write_json(o);
        let div = |o: &mut String| {
            if let Some(d) = &self.div {
                d.write_json(o);
            }
        };
        let iat = |o: &mut String| {
            use std::fmt::Write;
            let _ = write!(o, "{}", self.iat);
        };
        let orig = |o: &mut String| self.orig.write_json(o);
        let origid = |o: &mut String| {
            if let Some(id) = &self.origid {
                json::write_str(o, id.as_str());
            }
        };
        let rcd = |o: &mut String| {
            if let Some(r) = &self.rcd {
                r.write_json(o);
            }
        };
        // Known claims in lexicographic order; absent optional ones are left out.
        let all: [(&'static str, WriteValue<'_>, bool); 8] = [
            ("attest", &attest, self.attest.is_some()),
            ("crn", &crn, self.crn.is_some()),
            ("dest", &dest, true),
            ("div", &div, self.div.is_some()),
            ("iat", &iat, true),
            ("orig", &orig, true),
            ("origid", &origid, self.origid.is_some()),
            ("rcd", &rcd, self.rcd.is_some()),
        ];
        let present: Vec<(&'static str, WriteValue<'_>)> = all
            .into_iter()
            .filter(|(_, _, is_present)| *is_present)
            .map(|(name, write, _)| (name, write))
            .collect();
        let mut obj = ObjectWriter::new(out);
        obj.members_merged(&present, &self.extra);
        obj.finish();
    }

    /// The canonical JSON of the claims.
    pub fn to_json(&self) -> String {
        let mut out = String::with_capacity(256);
        self.write_json(&mut out);
        out
    }

    /// Parses claims JSON bytes.
    pub fn from_json(bytes: &[u8]) -> Result<Self, TokenError> {
        let mut map = json::parse_object(bytes, Part::Payload)?;
        let iat = match map.remove("iat") {
            None => return Err(TokenError::MissingClaim("iat")),
            Some(Value::Number(n)) => n.as_u64().ok_or_else(|| TokenError::InvalidClaim {
                name: "iat",
                reason: format!("{n} is not a non-negative integer"),
            })?,
            Some(other) => {
                return Err(TokenError::InvalidClaim {
                    name: "iat",
                    reason: format!("not a number: {}", truncate(&other.to_string())),
                })
            }
        };
        let orig = Party::from_value(
            map.remove("orig").ok_or(TokenError::MissingClaim("orig"))?,
            "orig",
        )?;
        let dest = Dest::from_value(map.remove("dest").ok_or(TokenError::MissingClaim("dest"))?)?;
        let attest = match map.remove("attest") {
            None => None,
            Some(Value::String(s)) => Some(s.parse()?),
            Some(_) => return Err(not_a_string("attest")),
        };
        let origid = match map.remove("origid") {
            None => None,
            Some(Value::String(s)) => Some(s.parse()?),
            Some(_) => return Err(not_a_string("origid")),
        };
        let div = map
            .remove("div")
            .map(|v| Party::from_value(v, "div"))
            .transpose()?;
        let rcd = map
            .remove("rcd")
            .map(RichCallData::from_value)
            .transpose()?;
        let crn = match map.remove("crn") {
            None => None,
            Some(Value::String(s)) => Some(CallReason::new(s)?),
            Some(_) => {
                return Err(TokenError::InvalidCrn {
                    reason: "not a string".into(),
                })
            }
        };
        Ok(Self {
            iat,
            orig,
            dest,
            attest,
            origid,
            div,
            rcd,
            crn,
            extra: map.into_iter().collect(),
        })
    }
}

fn not_a_string(name: &'static str) -> TokenError {
    TokenError::InvalidClaim {
        name,
        reason: "not a string".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origid() -> OrigId {
        "123e4567-e89b-12d3-a456-426655440000"
            .parse()
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn rfc_8588_payload_is_canonical() {
        let claims = Claims::shaken(
            1443208345,
            Party::Tn("12155551212".into()),
            Dest::tns(vec!["12125551213".into()]).unwrap_or_else(|| panic!("non-empty")),
            Attestation::A,
            origid(),
        );
        assert_eq!(
            claims.to_json(),
            r#"{"attest":"A","dest":{"tn":["12125551213"]},"iat":1443208345,"orig":{"tn":"12155551212"},"origid":"123e4567-e89b-12d3-a456-426655440000"}"#
        );
    }

    #[test]
    fn extensions_and_unknown_claims_keep_their_place() {
        let text = r#"{"zz":[1,{"b":2,"a":1}],"rcd":{"nam":"Example","icn":"https://x/i.png"},"orig":{"tn":"1"},"iat":5,"div":{"tn":"2"},"dest":{"uri":["sip:b@x","sip:a@x"],"tn":["3"]},"crn":"Sales","aa":true}"#;
        let claims = Claims::from_json(text.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(claims.div, Some(Party::Tn("2".into())));
        assert_eq!(claims.call_reason(), Some("Sales"));
        assert_eq!(claims.rcd_name(), Some("Example"));
        assert_eq!(
            claims.to_json(),
            r#"{"aa":true,"crn":"Sales","dest":{"tn":["3"],"uri":["sip:b@x","sip:a@x"]},"div":{"tn":"2"},"iat":5,"orig":{"tn":"1"},"rcd":{"icn":"https://x/i.png","nam":"Example"},"zz":[1,{"a":1,"b":2}]}"#
        );
        assert_eq!(Claims::from_json(claims.to_json().as_bytes()), Ok(claims));
    }

    #[test]
    fn rich_call_data_goes_in_its_canonical_place() {
        let claims = Claims::shaken(
            1443208345,
            Party::Tn("12155551212".into()),
            Dest::tns(vec!["12125551213".into()]).unwrap_or_else(|| panic!("non-empty")),
            Attestation::A,
            origid(),
        )
        .with_rcd("Example Marketing", Some("Sales"))
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            claims.to_json(),
            r#"{"attest":"A","crn":"Sales","dest":{"tn":["12125551213"]},"iat":1443208345,"orig":{"tn":"12155551212"},"origid":"123e4567-e89b-12d3-a456-426655440000","rcd":{"nam":"Example Marketing"}}"#
        );
        assert_eq!(claims.rcd_name(), Some("Example Marketing"));
        assert_eq!(claims.call_reason(), Some("Sales"));
        assert_eq!(
            Claims::from_json(claims.to_json().as_bytes()),
            Ok(claims.clone())
        );
        // Without a reason, no crn; replacing keeps one rcd.
        let plain = claims
            .with_rcd("Other", None)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(plain.call_reason(), None);
        assert!(!plain.to_json().contains("crn"));
        assert!(matches!(
            plain.clone().with_rcd("", None),
            Err(TokenError::InvalidRcd { member: "nam", .. })
        ));
        assert!(matches!(
            plain.with_rcd("Fine", Some("bad\u{7}")),
            Err(TokenError::InvalidCrn { .. })
        ));
    }

    #[test]
    fn invalid_rich_call_data_does_not_parse() {
        let base = r#""iat":1,"dest":{"tn":["1"]},"orig":{"tn":"1""#;
        for (extra, want_rcd) in [
            (r#""rcd":"Example""#, Some("rcd")),
            (r#""rcd":{}"#, Some("nam")),
            (r#""rcd":{"nam":""}"#, Some("nam")),
            (r#""rcd":{"nam":["x"]}"#, Some("nam")),
            (r#""rcd":{"nam":"a\u0000b"}"#, Some("nam")),
            (r#""crn":"""#, None),
            (r#""crn":5"#, None),
            (r#""crn":"two\nlines""#, None),
        ] {
            let text = format!("{{{base}}},{extra}}}");
            match (Claims::from_json(text.as_bytes()), want_rcd) {
                (Err(TokenError::InvalidRcd { member, .. }), Some(want)) => {
                    assert_eq!(member, want, "{text}")
                }
                (Err(TokenError::InvalidCrn { .. }), None) => {}
                (other, _) => panic!("{text}: {other:?}"),
            }
        }
    }

    #[test]
    fn invalid_values_do_not_parse() {
        let cases: &[(&str, &str)] = &[
            (r#"{"dest":{"tn":["1"]},"orig":{"tn":"1"}}"#, "iat"),
            (r#"{"iat":-1,"dest":{"tn":["1"]},"orig":{"tn":"1"}}"#, "iat"),
            (
                r#"{"iat":1.5,"dest":{"tn":["1"]},"orig":{"tn":"1"}}"#,
                "iat",
            ),
            (
                r#"{"iat":"1","dest":{"tn":["1"]},"orig":{"tn":"1"}}"#,
                "iat",
            ),
            (r#"{"iat":1,"dest":{"tn":[]},"orig":{"tn":"1"}}"#, "dest.tn"),
            (r#"{"iat":1,"dest":{},"orig":{"tn":"1"}}"#, "dest"),
            (
                r#"{"iat":1,"dest":{"tn":"1"},"orig":{"tn":"1"}}"#,
                "dest.tn",
            ),
            (
                r#"{"iat":1,"dest":{"tn":["1"]},"orig":{"tn":"1","uri":"sip:x"}}"#,
                "orig",
            ),
            (
                r#"{"iat":1,"dest":{"tn":["1"]},"orig":{"tn":["1"]}}"#,
                "orig",
            ),
            (
                r#"{"iat":1,"dest":{"tn":["x"]},"orig":{"tn":"1"}}"#,
                "dest.tn",
            ),
            (
                r#"{"iat":1,"dest":{"tn":["1"]},"orig":{"tn":"1"},"attest":"D"}"#,
                "attest",
            ),
            (
                r#"{"iat":1,"dest":{"tn":["1"]},"orig":{"tn":"1"},"origid":"nope"}"#,
                "origid",
            ),
        ];
        for (text, claim) in cases {
            match Claims::from_json(text.as_bytes()) {
                Err(TokenError::MissingClaim(name))
                | Err(TokenError::InvalidClaim { name, .. }) => {
                    assert_eq!(name, *claim, "{text}")
                }
                other => panic!("{text}: {other:?}"),
            }
        }
    }

    #[test]
    fn require_shaken_names_the_missing_claim() {
        let claims =
            Claims::from_json(br#"{"iat":1,"dest":{"tn":["1"]},"orig":{"tn":"1"},"attest":"B"}"#)
                .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            claims.require_shaken().err(),
            Some(TokenError::MissingClaim("origid"))
        );
        assert!(claims
            .clone()
            .insert_extra("orig".into(), Value::Null)
            .is_err());
    }
}
