//! The PASSporT JOSE header (RFC 8225 §4, RFC 8588 §3).

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::error::{Part, TokenError};
use crate::json::{self, ObjectWriter};

/// The `typ` every PASSporT carries.
pub const TYP_PASSPORT: &str = "passport";
/// The `ppt` of a SHAKEN PASSporT.
pub const PPT_SHAKEN: &str = "shaken";
/// The only signature algorithm SHAKEN uses.
pub const ALG_ES256: &str = "ES256";

/// A PASSporT header. `typ` is always `passport`: a header with another `typ` does not parse.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// The JWS algorithm, `ES256` for SHAKEN.
    pub alg: String,
    /// The PASSporT extension type (`shaken`, `div`, `rcd`, ...), if any.
    pub ppt: Option<String>,
    /// The URL of the signer's certificate chain.
    pub x5u: String,
    /// Header parameters this crate does not know, kept as received.
    extra: BTreeMap<String, Value>,
}

impl Header {
    /// A header with the given `alg`, optional `ppt` and `x5u`.
    pub fn new(alg: impl Into<String>, ppt: Option<String>, x5u: impl Into<String>) -> Self {
        Self {
            alg: alg.into(),
            ppt,
            x5u: x5u.into(),
            extra: BTreeMap::new(),
        }
    }

    /// A SHAKEN header: `alg` ES256, `ppt` shaken, the given `x5u`.
    pub fn shaken(x5u: impl Into<String>) -> Self {
        Self {
            alg: ALG_ES256.into(),
            ppt: Some(PPT_SHAKEN.into()),
            x5u: x5u.into(),
            extra: BTreeMap::new(),
        }
    }

    /// A Rich Call Data header (RFC 9795): `alg` ES256, `ppt` rcd, the given `x5u`.
    pub fn rcd(x5u: impl Into<String>) -> Self {
        Self::new(ALG_ES256, Some(crate::rcd::PPT_RCD.into()), x5u)
    }

    /// Header parameters this crate does not interpret.
    pub fn extra(&self) -> &BTreeMap<String, Value> {
        &self.extra
    }

    /// Appends the canonical JSON of the header.
    pub fn write_json(&self, out: &mut String) {
        let alg = |o: &mut String| json::write_str(o, &self.alg);
        let typ = |o: &mut String| json::write_str(o, TYP_PASSPORT);
        let x5u = |o: &mut String| json::write_str(o, &self.x5u);
        let mut obj = ObjectWriter::new(out);
        match &self.ppt {
            Some(ppt) => {
                let ppt = |o: &mut String| json::write_str(o, ppt);
                obj.members_merged(
                    &[("alg", &alg), ("ppt", &ppt), ("typ", &typ), ("x5u", &x5u)],
                    &self.extra,
                );
            }
            None => obj.members_merged(&[("alg", &alg), ("typ", &typ), ("x5u", &x5u)], &self.extra),
        }
        obj.finish();
    }

    /// The canonical JSON of the header.
    pub fn to_json(&self) -> String {
        let mut out = String::with_capacity(128);
        self.write_json(&mut out);
        out
    }

    /// Parses header JSON bytes.
    pub fn from_json(bytes: &[u8]) -> Result<Self, TokenError> {
        let mut map = json::parse_object(bytes, Part::Header)?;
        let alg = take_string(&mut map, "alg")?.ok_or(TokenError::MissingHeaderParameter("alg"))?;
        let typ = take_string(&mut map, "typ")?.ok_or(TokenError::MissingHeaderParameter("typ"))?;
        if typ != TYP_PASSPORT {
            return Err(TokenError::InvalidHeaderParameter {
                name: "typ",
                reason: format!("{typ:?} is not \"passport\""),
            });
        }
        let ppt = take_string(&mut map, "ppt")?;
        let x5u = take_string(&mut map, "x5u")?.ok_or(TokenError::MissingHeaderParameter("x5u"))?;
        if x5u.is_empty() {
            return Err(TokenError::InvalidHeaderParameter {
                name: "x5u",
                reason: "empty".into(),
            });
        }
        Ok(Self {
            alg,
            ppt,
            x5u,
            extra: map.into_iter().collect(),
        })
    }
}

fn take_string(
    map: &mut Map<String, Value>,
    name: &'static str,
) -> Result<Option<String>, TokenError> {
    match map.remove(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(TokenError::InvalidHeaderParameter {
            name,
            reason: format!("not a string: {other}"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shaken_header_is_canonical() {
        assert_eq!(
            Header::shaken("https://cert.example.org/passport.cer").to_json(),
            r#"{"alg":"ES256","ppt":"shaken","typ":"passport","x5u":"https://cert.example.org/passport.cer"}"#
        );
    }

    #[test]
    fn parse_keeps_unknown_parameters_and_checks_typ() {
        let h = Header::from_json(br#"{"x5u":"u","typ":"passport","alg":"ES256","kid":"k"}"#);
        let h = h.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(h.ppt, None);
        assert_eq!(
            h.to_json(),
            r#"{"alg":"ES256","kid":"k","typ":"passport","x5u":"u"}"#
        );
        assert!(matches!(
            Header::from_json(br#"{"alg":"ES256","typ":"JWT","x5u":"u"}"#),
            Err(TokenError::InvalidHeaderParameter { name: "typ", .. })
        ));
        assert_eq!(
            Header::from_json(br#"{"alg":"ES256","typ":"passport"}"#),
            Err(TokenError::MissingHeaderParameter("x5u"))
        );
        assert!(matches!(
            Header::from_json(br#"{"alg":256,"typ":"passport","x5u":"u"}"#),
            Err(TokenError::InvalidHeaderParameter { name: "alg", .. })
        ));
    }
}
