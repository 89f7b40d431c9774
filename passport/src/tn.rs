//! Telephone number canonicalization (RFC 8224 §8.3) with national numbering plans.
//!
//! A canonical TN is ASCII `[#*]?DIGIT+`: the form PASSporT `orig.tn` and `dest.tn` carry and
//! the form compared when a verifier matches a token against the call. The rules:
//!
//! - Visual separators (`-`, `.`, `(`, `)`, spaces) are dropped; a `tel:` prefix and any URI
//!   parameters after `;` are ignored. Any other character is an error.
//! - A leading `+` means the digits are E.164 already. A leading `*` or `#` (a service code)
//!   is kept and the digits are not converted.
//! - Short codes (six digits or fewer: 110, 911, 95xxx, 12345) are never prefixed.
//! - Without a default country, other bare digits are taken as E.164, after removing the ITU
//!   international prefix `00`; a number that would then start with `0` is refused.
//! - With a default country, that country's national forms are converted to E.164 and its
//!   international prefix removed (NANP: `011`, 10-digit `NXX NXX XXXX`; China: `00`, 11-digit
//!   mobiles `1[3-9]…`, fixed lines with trunk prefix `0`). Anything else is taken as E.164.
//! - The result has at most 15 digits (the E.164 maximum).

use std::fmt;
use std::str::FromStr;

use crate::error::Error;

/// A national numbering plan used to convert national forms to E.164.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NumberingPlan {
    /// The North American Numbering Plan, country code 1.
    Nanp,
    /// China, country code 86.
    China,
}

impl NumberingPlan {
    /// The E.164 country code digits.
    pub fn country_code(self) -> &'static str {
        match self {
            Self::Nanp => "1",
            Self::China => "86",
        }
    }

    /// The international call prefix dialled in this country.
    pub fn international_prefix(self) -> &'static str {
        match self {
            Self::Nanp => "011",
            Self::China => "00",
        }
    }

    /// Converts a national form (digits only) to E.164 digits, or `None` if it is not one.
    fn national_to_e164(self, digits: &str) -> Result<Option<String>, &'static str> {
        let bytes = digits.as_bytes();
        match self {
            Self::Nanp => match bytes {
                // NXX NXX XXXX: area code and exchange both start with 2-9.
                [a, _, _, e, ..] if bytes.len() == 10 && *a >= b'2' && *e >= b'2' => {
                    Ok(Some(format!("1{digits}")))
                }
                _ => Ok(None),
            },
            Self::China => match bytes {
                // Mobile: 11 digits, 1 then 3-9.
                [b'1', second, ..] if bytes.len() == 11 && (b'3'..=b'9').contains(second) => {
                    Ok(Some(format!("86{digits}")))
                }
                // Fixed line: trunk prefix 0, area code of 2-3 digits, subscriber of 7-8.
                [b'0', rest @ ..] => {
                    if (9..=11).contains(&rest.len()) && rest.first() != Some(&b'0') {
                        Ok(Some(format!("86{}", &digits[1..])))
                    } else {
                        Err("not a Chinese fixed-line number (0 + area code + 7-8 digits)")
                    }
                }
                _ => Ok(None),
            },
        }
    }
}

impl FromStr for NumberingPlan {
    type Err = Error;

    /// Accepts `NANP`, `US`, `CA`, `1`, `+1` for NANP and `CN`, `86`, `+86` for China.
    fn from_str(s: &str) -> Result<Self, Error> {
        match s
            .trim()
            .trim_start_matches('+')
            .to_ascii_uppercase()
            .as_str()
        {
            "NANP" | "US" | "CA" | "1" => Ok(Self::Nanp),
            "CN" | "CHINA" | "86" => Ok(Self::China),
            _ => Err(Error::TelephoneNumber {
                input: s.to_owned(),
                reason: "unknown numbering plan (known: NANP/US/CA/1, CN/86)",
            }),
        }
    }
}

/// The longest input accepted, separators included.
const MAX_INPUT_LEN: usize = 64;
/// E.164 numbers have at most 15 digits.
const MAX_DIGITS: usize = 15;
/// Numbers of at most this many digits are short codes and never prefixed.
const MAX_SHORT_CODE: usize = 6;

/// A telephone number in canonical form, `[#*]?DIGIT+`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tn(String);

impl Tn {
    /// Canonicalizes `input` under an optional default numbering plan (see the module docs).
    pub fn canonicalize(input: &str, plan: Option<NumberingPlan>) -> Result<Self, Error> {
        let err = |reason| Error::TelephoneNumber {
            input: input.chars().take(MAX_INPUT_LEN).collect(),
            reason,
        };
        if input.len() > MAX_INPUT_LEN {
            return Err(err("longer than 64 characters"));
        }
        let mut text = input.trim();
        if text.len() >= 4
            && text
                .get(..4)
                .is_some_and(|p| p.eq_ignore_ascii_case("tel:"))
        {
            text = &text[4..];
            if let Some((number, _params)) = text.split_once(';') {
                text = number;
            }
        }

        let mut lead: Option<char> = None;
        let mut digits = String::with_capacity(text.len());
        for c in text.chars() {
            match c {
                '0'..='9' => digits.push(c),
                '-' | '.' | '(' | ')' | ' ' => {}
                '+' | '*' | '#' if digits.is_empty() && lead.is_none() => lead = Some(c),
                '+' | '*' | '#' => return Err(err("'+', '*' or '#' allowed only at the start")),
                _ => return Err(err("contains a character that is not a digit or separator")),
            }
        }
        if digits.is_empty() {
            return Err(err("has no digits"));
        }

        let canonical = match lead {
            Some(marker @ ('*' | '#')) => format!("{marker}{digits}"),
            Some(_plus) => digits,
            None if digits.len() <= MAX_SHORT_CODE => digits,
            None => match plan {
                None => digits
                    .strip_prefix("00")
                    .map_or_else(|| digits.clone(), str::to_owned),
                Some(plan) => {
                    if let Some(international) = digits.strip_prefix(plan.international_prefix()) {
                        international.to_owned()
                    } else {
                        match plan.national_to_e164(&digits) {
                            Ok(Some(e164)) => e164,
                            Ok(None) => digits,
                            Err(reason) => return Err(err(reason)),
                        }
                    }
                }
            },
        };

        let body = canonical.trim_start_matches(['*', '#']);
        let is_service_code = matches!(lead, Some('*' | '#'));
        if !is_service_code && body.len() > MAX_SHORT_CODE && body.starts_with('0') {
            return Err(err(
                "not an E.164 number (a country code never starts with 0)",
            ));
        }
        if body.len() > MAX_DIGITS {
            return Err(err("has more than 15 digits"));
        }
        Ok(Self(canonical))
    }

    /// The canonical digits (with a leading `*` or `#` for service codes).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Consumes the number and returns its canonical string.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for Tn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canon(input: &str, plan: Option<NumberingPlan>) -> Result<String, Error> {
        Tn::canonicalize(input, plan).map(Tn::into_string)
    }

    #[test]
    fn rfc_8224_examples() {
        assert_eq!(canon("+1-(215)-555-1212", None), Ok("12155551212".into()));
        assert_eq!(canon("tel:+12155551212", None), Ok("12155551212".into()));
        assert_eq!(
            canon("tel:+1.215.555.1212;phone-context=x", None),
            Ok("12155551212".into())
        );
    }

    #[test]
    fn bare_digits_are_e164_without_a_default_country() {
        assert_eq!(canon("12155551212", None), Ok("12155551212".into()));
        assert_eq!(
            canon("0086 138 1234 5678", None),
            Ok("8613812345678".into())
        );
        assert!(canon("021-6123 4567", None).is_err());
    }

    #[test]
    fn nanp_national_forms() {
        let nanp = Some(NumberingPlan::Nanp);
        assert_eq!(canon("(215) 555-1212", nanp), Ok("12155551212".into()));
        assert_eq!(canon("1-215-555-1212", nanp), Ok("12155551212".into()));
        assert_eq!(
            canon("011 44 20 7123 4567", nanp),
            Ok("442071234567".into())
        );
        assert_eq!(canon("911", nanp), Ok("911".into()));
        // Area code starting with 1 is not a national form: left as given.
        assert_eq!(canon("1155551212", nanp), Ok("1155551212".into()));
    }

    #[test]
    fn china_national_forms() {
        let cn = Some(NumberingPlan::China);
        assert_eq!(canon("13812345678", cn), Ok("8613812345678".into()));
        assert_eq!(canon("021-6123 4567", cn), Ok("862161234567".into()));
        assert_eq!(canon("010 1234 5678", cn), Ok("861012345678".into()));
        assert_eq!(canon("0755-1234567", cn), Ok("867551234567".into()));
        assert_eq!(canon("0086 21 6123 4567", cn), Ok("862161234567".into()));
        assert_eq!(canon("+86 138 1234 5678", cn), Ok("8613812345678".into()));
        assert_eq!(canon("110", cn), Ok("110".into()));
        assert_eq!(canon("95588", cn), Ok("95588".into()));
        // A NANP E.164 number without + is not a Chinese national form.
        assert_eq!(canon("12155551212", cn), Ok("12155551212".into()));
        assert!(canon("0211", cn).is_ok(), "4 digits is a short code");
        assert!(canon("02161", cn).is_ok());
        assert!(canon("0216123", cn).is_err());
    }

    #[test]
    fn service_codes_and_refusals() {
        assert_eq!(canon("*67", None), Ok("*67".into()));
        assert_eq!(canon("#31#", None).map_err(|_| ()), Err(()));
        assert!(canon("", None).is_err());
        assert!(canon("+", None).is_err());
        assert!(canon("1215555121a", None).is_err());
        assert!(canon("12+155551212", None).is_err());
        assert!(canon("+1234567890123456", None).is_err());
        assert!(canon(&"1".repeat(65), None).is_err());
        assert!(canon("+0123456789", None).is_err());
    }

    #[test]
    fn plans_parse() {
        assert_eq!("us".parse::<NumberingPlan>(), Ok(NumberingPlan::Nanp));
        assert_eq!("+86".parse::<NumberingPlan>(), Ok(NumberingPlan::China));
        assert!("fr".parse::<NumberingPlan>().is_err());
    }
}
