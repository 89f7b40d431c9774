//! Base64url without padding (RFC 7515 §2), strict on input.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::{DecodeError, Engine};

use crate::error::{Part, TokenError};

/// Encodes bytes as unpadded base64url.
pub fn encode(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Appends the unpadded base64url encoding of `bytes` to `out`.
pub fn encode_into(bytes: &[u8], out: &mut String) {
    URL_SAFE_NO_PAD.encode_string(bytes, out);
}

/// Decodes one part of a compact JWS.
///
/// Only the base64url alphabet is accepted: no padding, no whitespace, no `+` or `/`, and no
/// non-zero trailing bits, so that one token has exactly one encoding.
pub fn decode_part(text: &str, part: Part) -> Result<Vec<u8>, TokenError> {
    URL_SAFE_NO_PAD.decode(text).map_err(|error| match error {
        DecodeError::InvalidByte(offset, _) | DecodeError::InvalidLastSymbol(offset, _)
            if !is_base64url(text, offset) =>
        {
            character_error(text, offset, part)
        }
        DecodeError::InvalidPadding => {
            let offset = text.find('=').unwrap_or(text.len());
            character_error(text, offset, part)
        }
        _ => TokenError::Base64(part),
    })
}

fn is_base64url(text: &str, offset: usize) -> bool {
    text.as_bytes()
        .get(offset)
        .is_some_and(|&b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The error naming the character at `offset` (which may be inside a multi-byte character).
fn character_error(text: &str, offset: usize, part: Part) -> TokenError {
    let start = (0..=offset.min(text.len()))
        .rev()
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(0);
    match text.get(start..).and_then(|rest| rest.chars().next()) {
        Some(found) => TokenError::TokenCharacter {
            part,
            found,
            offset: start,
        },
        None => TokenError::Base64(part),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_strictness() {
        let encoded = encode(b"\xfb\xff");
        assert_eq!(encoded, "-_8");
        assert_eq!(
            decode_part(&encoded, Part::Header),
            Ok(b"\xfb\xff".to_vec())
        );
        assert_eq!(
            decode_part("-_8=", Part::Payload),
            Err(TokenError::TokenCharacter {
                part: Part::Payload,
                found: '=',
                offset: 3
            })
        );
        assert!(matches!(
            decode_part("+/8", Part::Header),
            Err(TokenError::TokenCharacter { found: '+', .. })
        ));
        assert!(matches!(
            decode_part("ab\u{e9}cd", Part::Header),
            Err(TokenError::TokenCharacter {
                found: '\u{e9}',
                offset: 2,
                ..
            })
        ));
        assert!(matches!(
            decode_part("ab cd", Part::Header),
            Err(TokenError::TokenCharacter {
                found: ' ',
                offset: 2,
                ..
            })
        ));
        // A single leftover character can never be valid, nor can non-zero trailing bits.
        assert_eq!(
            decode_part("A", Part::Signature),
            Err(TokenError::Base64(Part::Signature))
        );
        assert_eq!(
            decode_part("-_9", Part::Signature),
            Err(TokenError::Base64(Part::Signature))
        );
    }
}
