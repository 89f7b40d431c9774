//! The SIP Identity header value (RFC 8224 §4) carrying a PASSporT.
//!
//! Written as `header.payload.signature;info=<X5U>;alg=ES256;ppt=shaken` (the angle brackets
//! are literal). Read leniently where real networks differ and strictly where it matters:
//!
//! - parameter names are case-insensitive, whitespace around `;` and `=` is ignored,
//!   parameters come in any order, unknown parameters are kept, an empty parameter (a stray
//!   `;`) is skipped, and a `;` inside `<...>` or a quoted string does not split;
//! - the token may use the base64url characters `-` and `_`, whatever the RFC 8224 ABNF's
//!   `base64-char` says (Errata 6499): PASSporTs are base64url;
//! - refused, each with its own error: input over [`MAX_IDENTITY_LEN`], a missing or
//!   malformed `info`, an `info` other than the token's `x5u`, an `alg` or `ppt` parameter
//!   that contradicts the token header, a parameter given twice, bad base64 or JSON.

use crate::error::TokenError;
use crate::header::{ALG_ES256, PPT_SHAKEN};
use crate::token::Passport;

/// The longest Identity header value accepted, in bytes.
pub const MAX_IDENTITY_LEN: usize = 8 * 1024;

/// A parsed Identity header value whose token decoded and agrees with its parameters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdentityHeader {
    passport: Passport,
    info: String,
    alg: Option<String>,
    ppt: Option<String>,
    other: Vec<(String, Option<String>)>,
}

/// `;info=<x5u>;alg=ES256;ppt=shaken`
pub(crate) fn shaken_parameters(x5u: &str) -> String {
    format!(";info=<{x5u}>;alg={ALG_ES256};ppt={PPT_SHAKEN}")
}

impl IdentityHeader {
    /// The SHAKEN Identity header value for a signed token.
    pub fn format_shaken(token: &str, x5u: &str) -> String {
        let mut out = String::with_capacity(token.len() + x5u.len() + 32);
        out.push_str(token);
        out.push_str(&shaken_parameters(x5u));
        out
    }

    /// The Identity header value for a signed token of any PASSporT type:
    /// `token;info=<x5u>;alg=ES256;ppt=PPT` (no `ppt` parameter when `ppt` is `None`).
    pub fn format(token: &str, x5u: &str, ppt: Option<&str>) -> String {
        let mut out = format!("{token};info=<{x5u}>;alg={ALG_ES256}");
        if let Some(ppt) = ppt {
            out.push_str(";ppt=");
            out.push_str(ppt);
        }
        out
    }

    /// Parses an Identity header value (without the `Identity:` name).
    pub fn parse(value: &str) -> Result<Self, TokenError> {
        if value.len() > MAX_IDENTITY_LEN {
            return Err(TokenError::IdentityTooLong {
                len: value.len(),
                max: MAX_IDENTITY_LEN,
            });
        }
        let value = value.trim();
        let (token, params) = value.split_once(';').unwrap_or((value, ""));
        let token = token.trim();

        let mut info = None;
        let mut alg = None;
        let mut ppt = None;
        let mut other: Vec<(String, Option<String>)> = Vec::new();
        for param in split_params(params) {
            let param = param.trim();
            if param.is_empty() {
                continue;
            }
            let (name, param_value) = match param.split_once('=') {
                Some((n, v)) => (n.trim(), Some(v.trim())),
                None => (param, None),
            };
            if name.is_empty() || !name.bytes().all(is_token_char) {
                return Err(TokenError::MalformedParameter(truncate(param)));
            }
            let lower = name.to_ascii_lowercase();
            let slot = match lower.as_str() {
                "info" => &mut info,
                "alg" => &mut alg,
                "ppt" => &mut ppt,
                _ => {
                    if other.iter().any(|(n, _)| *n == lower) {
                        return Err(TokenError::DuplicateParameter(lower));
                    }
                    other.push((lower, param_value.map(str::to_owned)));
                    continue;
                }
            };
            if slot.is_some() {
                return Err(TokenError::DuplicateParameter(lower));
            }
            let Some(param_value) = param_value.filter(|v| !v.is_empty()) else {
                return Err(TokenError::MalformedParameter(truncate(param)));
            };
            *slot = Some(param_value.to_owned());
        }

        let info = info.ok_or(TokenError::MissingInfo)?;
        let info = parse_info(&info)?;
        let passport = Passport::decode(token)?;
        let header = passport.header();
        if info != header.x5u {
            return Err(TokenError::InfoMismatch {
                info,
                x5u: header.x5u.clone(),
            });
        }
        if let Some(alg) = &alg {
            if *alg != header.alg {
                return Err(TokenError::ParameterMismatch {
                    name: "alg",
                    param: alg.clone(),
                    token: Some(header.alg.clone()),
                });
            }
        }
        // Leniency: a quoted ppt value (`ppt="shaken"`) is read as the bare token; some
        // implementations quote generic parameter values.
        let ppt = ppt.map(|p| p.trim_matches('"').to_owned());
        if let Some(ppt) = &ppt {
            if Some(ppt) != header.ppt.as_ref() {
                return Err(TokenError::ParameterMismatch {
                    name: "ppt",
                    param: ppt.clone(),
                    token: header.ppt.clone(),
                });
            }
        }
        Ok(Self {
            passport,
            info,
            alg,
            ppt,
            other,
        })
    }

    /// The decoded token.
    pub fn passport(&self) -> &Passport {
        &self.passport
    }

    /// The `info` URI, without angle brackets.
    pub fn info(&self) -> &str {
        &self.info
    }

    /// The `alg` parameter, if present.
    pub fn alg(&self) -> Option<&str> {
        self.alg.as_deref()
    }

    /// The `ppt` parameter, if present.
    pub fn ppt(&self) -> Option<&str> {
        self.ppt.as_deref()
    }

    /// Other parameters, names lower-cased, in the order received.
    pub fn other_parameters(&self) -> &[(String, Option<String>)] {
        &self.other
    }
}

/// The `ppt` parameter of an Identity header value, without parsing the token: how a
/// verifier tells a request's several Identity headers apart cheaply (RFC 8225 §8.1: a
/// PASSporT with a `ppt` is carried with the `ppt` parameter). Name case-insensitive, value
/// trimmed and unquoted, as [`IdentityHeader::parse`] reads it; `None` when absent or when the
/// value is over [`MAX_IDENTITY_LEN`].
pub fn ppt_parameter(value: &str) -> Option<&str> {
    if value.len() > MAX_IDENTITY_LEN {
        return None;
    }
    let (_, params) = value.trim().split_once(';')?;
    split_params(params).find_map(|param| {
        let (name, value) = param.split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("ppt")
            .then(|| value.trim().trim_matches('"'))
    })
}

/// Splits at `;` outside `<...>` and outside double quotes.
fn split_params(params: &str) -> impl Iterator<Item = &str> {
    let mut start = 0;
    let mut in_angle = false;
    let mut in_quote = false;
    let mut escaped = false;
    let mut pieces = Vec::new();
    for (i, c) in params.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if in_quote => escaped = true,
            '"' if !in_angle => in_quote = !in_quote,
            '<' if !in_quote => in_angle = true,
            '>' if !in_quote => in_angle = false,
            ';' if !in_angle && !in_quote => {
                pieces.push(params.get(start..i).unwrap_or_default());
                start = i + 1;
            }
            _ => {}
        }
    }
    pieces.push(params.get(start..).unwrap_or_default());
    pieces.into_iter()
}

/// `<URI>` → `URI`. The URI must be non-empty, with no whitespace or angle brackets.
fn parse_info(value: &str) -> Result<String, TokenError> {
    let inner = value
        .strip_prefix('<')
        .and_then(|v| v.strip_suffix('>'))
        .map(str::trim)
        .ok_or_else(|| TokenError::MalformedInfo(truncate(value)))?;
    let valid = !inner.is_empty()
        && inner.contains(':')
        && !inner
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '<' || c == '>');
    if valid {
        Ok(inner.to_owned())
    } else {
        Err(TokenError::MalformedInfo(truncate(value)))
    }
}

/// RFC 3261 `token` characters.
fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b)
}

fn truncate(s: &str) -> String {
    s.chars().take(80).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ppt_parameter_is_found_without_parsing_the_token() {
        assert_eq!(
            ppt_parameter("a.b.c;info=<https://x/c.pem>;alg=ES256;ppt=rcd"),
            Some("rcd")
        );
        assert_eq!(
            ppt_parameter("a.b.c ; PPT = \"shaken\" ;info=<https://x/;ppt=rcd>"),
            Some("shaken")
        );
        assert_eq!(ppt_parameter("a.b.c;info=<https://x/;ppt=rcd>"), None);
        assert_eq!(ppt_parameter("a.b.c"), None);
        assert_eq!(ppt_parameter("a.b.c;ppt"), None);
        let long = format!("{};ppt=rcd", "a".repeat(MAX_IDENTITY_LEN));
        assert_eq!(ppt_parameter(&long), None);
    }
}
