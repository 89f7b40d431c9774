//! Base64url without padding (RFC 7515 §2), strict on input.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

use crate::error::{Error, Part};

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
pub fn decode_part(text: &str, part: Part) -> Result<Vec<u8>, Error> {
    if let Some((offset, found)) = text
        .char_indices()
        .find(|&(_, c)| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
    {
        return Err(Error::TokenCharacter {
            part,
            found,
            offset,
        });
    }
    URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|_| Error::Base64(part))
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
            Err(Error::TokenCharacter {
                part: Part::Payload,
                found: '=',
                offset: 3
            })
        );
        assert!(matches!(
            decode_part("+/8", Part::Header),
            Err(Error::TokenCharacter { found: '+', .. })
        ));
        // A single leftover character can never be valid, nor can non-zero trailing bits.
        assert_eq!(
            decode_part("A", Part::Signature),
            Err(Error::Base64(Part::Signature))
        );
        assert_eq!(
            decode_part("-_9", Part::Signature),
            Err(Error::Base64(Part::Signature))
        );
    }
}
