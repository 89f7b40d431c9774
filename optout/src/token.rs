//! The unsubscribe token: what a link binds (a subscriber's number, a firm, its vetted name, an
//! expiry), MACed with a key shared by the terminating verifiers that mint links and the opt-out
//! service that honours them.
//!
//! # Format
//!
//! `base64url(payload) "." base64url(HMAC-SHA-256(key, payload))`, both unpadded, where the
//! payload is compact binary:
//!
//! | bytes | field |
//! |---|---|
//! | 1 | version, `0x01` |
//! | 8 | expiry, seconds since the epoch, big-endian |
//! | 1 + n | the subscriber's number: length, then 1 to 15 ASCII digits (E.164 without `+`) |
//! | 1 + n | the firm id: length, then 1 to 64 ASCII letters, digits, `-`, `_`, `.` |
//! | 1 + n | the firm's vetted display name: length, then 1 to 200 bytes of UTF-8 without control characters |
//!
//! Nothing may follow the name. The MAC covers the whole payload, version included, so a link
//! minted for one number cannot be edited to another number, firm, name or expiry. A token is
//! valid while `now < expiry`.
//!
//! # The key
//!
//! At least 32 bytes ([`MIN_KEY_BYTES`]). A key file holds either hex (e.g. `openssl rand -hex
//! 32`), or base64 (standard or URL alphabet, padded or not), or the raw bytes; surrounding
//! whitespace is ignored for the text forms. See [`LinkKey::from_file_bytes`].

use std::path::Path;

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::error::{KeyError, TokenError};

/// The payload version this code writes and reads.
pub const VERSION: u8 = 1;
/// The fewest key bytes accepted.
pub const MIN_KEY_BYTES: usize = 32;
/// The most key bytes accepted.
pub const MAX_KEY_BYTES: usize = 1024;
/// The longest token text accepted (characters); longer text is refused before decoding.
pub const MAX_TOKEN_LEN: usize = 512;
/// The longest subscriber number (E.164: 15 digits).
pub const MAX_SUBSCRIBER_DIGITS: usize = 15;
/// The longest firm id.
pub const MAX_FIRM_ID_LEN: usize = 64;
/// The longest firm name, in bytes of UTF-8.
pub const MAX_FIRM_NAME_BYTES: usize = 200;

const MAC_LEN: usize = 32;

type HmacSha256 = Hmac<Sha256>;

/// The key that MACs unsubscribe tokens. Not printable; its bytes are wiped when dropped.
pub struct LinkKey(zeroize::Zeroizing<Vec<u8>>);

impl std::fmt::Debug for LinkKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LinkKey(..)")
    }
}

impl LinkKey {
    /// A key from its raw bytes: [`MIN_KEY_BYTES`] to [`MAX_KEY_BYTES`] of them.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, KeyError> {
        if bytes.len() < MIN_KEY_BYTES {
            return Err(KeyError::TooShort(bytes.len()));
        }
        if bytes.len() > MAX_KEY_BYTES {
            return Err(KeyError::TooLong(bytes.len()));
        }
        Ok(Self(zeroize::Zeroizing::new(bytes.to_vec())))
    }

    /// A key from a key file's content: hex when the trimmed content is an even number of hex
    /// digits, else base64 (standard or URL alphabet, padded or not) when it decodes, else the
    /// raw bytes as they are. The result must hold at least [`MIN_KEY_BYTES`] bytes.
    pub fn from_file_bytes(content: &[u8]) -> Result<Self, KeyError> {
        let text = std::str::from_utf8(content).ok().map(str::trim);
        if let Some(text) = text.filter(|t| !t.is_empty()) {
            if text.len() % 2 == 0 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
                let decoded = zeroize::Zeroizing::new(hex_decode(text));
                return Self::from_bytes(&decoded);
            }
            for engine in [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD] {
                if let Ok(decoded) = engine.decode(text) {
                    let decoded = zeroize::Zeroizing::new(decoded);
                    return Self::from_bytes(&decoded);
                }
            }
        }
        Self::from_bytes(content)
    }

    /// Reads a key file (see [`LinkKey::from_file_bytes`]).
    pub fn from_file(path: &Path) -> Result<Self, KeyError> {
        let content = zeroize::Zeroizing::new(std::fs::read(path).map_err(|e| KeyError::Read {
            path: path.to_owned(),
            detail: e.to_string(),
        })?);
        Self::from_file_bytes(&content)
    }

    fn mac(&self) -> HmacSha256 {
        // HMAC accepts keys of any length; `from_bytes` has checked it anyway.
        <HmacSha256 as Mac>::new_from_slice(&self.0).unwrap_or_else(|_| unreachable_hmac())
    }
}

#[allow(clippy::panic)]
fn unreachable_hmac() -> HmacSha256 {
    // `Hmac::new_from_slice` never fails: HMAC hashes or pads a key of any length.
    panic!("HMAC-SHA-256 refused a key")
}

fn hex_decode(text: &str) -> Vec<u8> {
    text.as_bytes()
        .chunks(2)
        .filter_map(|pair| std::str::from_utf8(pair).ok())
        .filter_map(|pair| u8::from_str_radix(pair, 16).ok())
        .collect()
}

/// What a valid token says: who may opt out of which firm, until when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Token {
    /// The subscriber's number, E.164 digits without `+`.
    pub subscriber: String,
    /// The firm's id in the regulator's list.
    pub firm_id: String,
    /// The firm's vetted display name.
    pub firm_name: String,
    /// Seconds since the epoch at which the token stops being valid.
    pub expires_at: u64,
}

impl Token {
    /// Checks the token's own fields (the bounds of the payload format).
    pub fn check_fields(&self) -> Result<(), TokenError> {
        check_subscriber(&self.subscriber)?;
        check_firm_id(&self.firm_id)?;
        check_firm_name(&self.firm_name)?;
        Ok(())
    }

    /// Encodes and MACs the token with `key`. Fails only when a field is out of bounds.
    pub fn encode(&self, key: &LinkKey) -> Result<String, TokenError> {
        self.check_fields()?;
        let mut payload = Vec::with_capacity(16 + self.firm_name.len());
        payload.push(VERSION);
        payload.extend_from_slice(&self.expires_at.to_be_bytes());
        for field in [&self.subscriber, &self.firm_id, &self.firm_name] {
            // Each length was checked to fit in a byte.
            payload.push(
                u8::try_from(field.len()).map_err(|_| TokenError::Malformed("field too long"))?,
            );
            payload.extend_from_slice(field.as_bytes());
        }
        let mut mac = key.mac();
        mac.update(&payload);
        let tag = mac.finalize().into_bytes();
        Ok(format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(&payload),
            URL_SAFE_NO_PAD.encode(tag)
        ))
    }

    /// Parses and checks a token as of `now`: the MAC first (compared in constant time), then
    /// the payload's fields, then the expiry. A token whose text does not have the format is
    /// [`TokenError::Malformed`]; one whose MAC does not match (a changed byte, another number,
    /// another key) is [`TokenError::BadMac`]; an authentic one at or after its expiry is
    /// [`TokenError::Expired`].
    pub fn parse(text: &str, key: &LinkKey, now: u64) -> Result<Token, TokenError> {
        if text.len() > MAX_TOKEN_LEN {
            return Err(TokenError::Malformed("too long"));
        }
        let (payload_text, mac_text) = text
            .split_once('.')
            .ok_or(TokenError::Malformed("no '.' separator"))?;
        let payload = URL_SAFE_NO_PAD
            .decode(payload_text)
            .map_err(|_| TokenError::Malformed("payload is not base64url"))?;
        let tag = URL_SAFE_NO_PAD
            .decode(mac_text)
            .map_err(|_| TokenError::Malformed("MAC is not base64url"))?;
        if tag.len() != MAC_LEN {
            return Err(TokenError::Malformed("MAC is not 32 bytes"));
        }
        let mut mac = key.mac();
        mac.update(&payload);
        // `verify_slice` compares in constant time.
        mac.verify_slice(&tag).map_err(|_| TokenError::BadMac)?;
        let token = decode_payload(&payload)?;
        if now >= token.expires_at {
            return Err(TokenError::Expired {
                expired_at: token.expires_at,
            });
        }
        Ok(token)
    }
}

/// Reads the payload: every byte accounted for.
fn decode_payload(payload: &[u8]) -> Result<Token, TokenError> {
    let (&version, rest) = payload
        .split_first()
        .ok_or(TokenError::Malformed("empty payload"))?;
    if version != VERSION {
        return Err(TokenError::UnknownVersion(version));
    }
    let (expiry, rest) = rest
        .split_first_chunk::<8>()
        .ok_or(TokenError::Malformed("payload too short"))?;
    let (subscriber, rest) = field(rest)?;
    let (firm_id, rest) = field(rest)?;
    let (firm_name, rest) = field(rest)?;
    if !rest.is_empty() {
        return Err(TokenError::Malformed("bytes after the firm name"));
    }
    let token = Token {
        subscriber,
        firm_id,
        firm_name,
        expires_at: u64::from_be_bytes(*expiry),
    };
    token.check_fields()?;
    Ok(token)
}

fn field(bytes: &[u8]) -> Result<(String, &[u8]), TokenError> {
    let (&len, rest) = bytes
        .split_first()
        .ok_or(TokenError::Malformed("payload too short"))?;
    let (value, rest) = rest
        .split_at_checked(usize::from(len))
        .ok_or(TokenError::Malformed("payload too short"))?;
    let value =
        std::str::from_utf8(value).map_err(|_| TokenError::Malformed("field is not UTF-8"))?;
    Ok((value.to_owned(), rest))
}

/// A subscriber number as tokens carry it: 1 to 15 ASCII digits.
pub fn check_subscriber(subscriber: &str) -> Result<(), TokenError> {
    if subscriber.is_empty()
        || subscriber.len() > MAX_SUBSCRIBER_DIGITS
        || !subscriber.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(TokenError::BadField("subscriber: 1 to 15 digits"));
    }
    Ok(())
}

/// A firm id: 1 to 64 ASCII letters, digits, `-`, `_`, `.`.
pub fn check_firm_id(firm: &str) -> Result<(), TokenError> {
    if firm.is_empty()
        || firm.len() > MAX_FIRM_ID_LEN
        || !firm
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return Err(TokenError::BadField(
            "firm id: 1 to 64 letters, digits, '-', '_', '.'",
        ));
    }
    Ok(())
}

/// A firm name: 1 to 200 bytes of UTF-8 without control characters.
pub fn check_firm_name(name: &str) -> Result<(), TokenError> {
    if name.is_empty() || name.len() > MAX_FIRM_NAME_BYTES || name.chars().any(char::is_control) {
        return Err(TokenError::BadField(
            "firm name: 1 to 200 bytes without control characters",
        ));
    }
    Ok(())
}

/// Mints unsubscribe links: what a terminating verifier holds.
#[derive(Debug)]
pub struct LinkIssuer {
    base_url: String,
    key: LinkKey,
    ttl_seconds: u64,
}

impl LinkIssuer {
    /// An issuer of links `{base_url}/u/{token}` (a trailing `/` of `base_url` is dropped)
    /// valid for `ttl_seconds` after they are minted.
    pub fn new(base_url: &str, key: LinkKey, ttl_seconds: u64) -> Self {
        Self {
            base_url: base_url.trim_end_matches('/').to_owned(),
            key,
            ttl_seconds,
        }
    }

    /// The link for `subscriber` (E.164 digits) to opt out of `firm_id` (shown as `firm_name`),
    /// minted at `now`. Fails only when a field is out of the token's bounds.
    pub fn link(
        &self,
        subscriber: &str,
        firm_id: &str,
        firm_name: &str,
        now: u64,
    ) -> Result<String, TokenError> {
        let token = Token {
            subscriber: subscriber.to_owned(),
            firm_id: firm_id.to_owned(),
            firm_name: firm_name.to_owned(),
            expires_at: now.saturating_add(self.ttl_seconds),
        };
        Ok(format!("{}/u/{}", self.base_url, token.encode(&self.key)?))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn key() -> LinkKey {
        LinkKey::from_bytes(&[7; 32]).unwrap()
    }

    fn token() -> Token {
        Token {
            subscriber: "8613800138000".into(),
            firm_id: "91310000MA1FL1234X".into(),
            firm_name: "Sunrise Insurance 阳光保险".into(),
            expires_at: 1_000_000,
        }
    }

    #[test]
    fn a_token_round_trips_until_its_expiry() {
        let text = token().encode(&key()).unwrap();
        assert_eq!(Token::parse(&text, &key(), 999_999).unwrap(), token());
        assert_eq!(
            Token::parse(&text, &key(), 1_000_000),
            Err(TokenError::Expired {
                expired_at: 1_000_000
            })
        );
        assert!(text.len() < MAX_TOKEN_LEN);
        assert!(text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')));
    }

    #[test]
    fn every_changed_byte_is_refused() {
        let text = token().encode(&key()).unwrap();
        let bytes = text.as_bytes();
        for i in 0..bytes.len() {
            for replacement in [b'A', b'-', b'.', b'z', b'%'] {
                if bytes[i] == replacement {
                    continue;
                }
                let mut changed = bytes.to_vec();
                changed[i] = replacement;
                let changed = String::from_utf8(changed).unwrap();
                match Token::parse(&changed, &key(), 0) {
                    Err(TokenError::BadMac | TokenError::Malformed(_)) => {}
                    other => panic!("byte {i} -> {replacement}: {other:?}"),
                }
            }
        }
        // A truncated or extended token, too.
        assert!(Token::parse(&text[..text.len() - 1], &key(), 0).is_err());
        assert!(Token::parse(&format!("{text}A"), &key(), 0).is_err());
    }

    #[test]
    fn a_token_for_another_number_or_key_is_a_bad_mac() {
        let text = token().encode(&key()).unwrap();
        let other = Token {
            subscriber: "8613900139000".into(),
            ..token()
        }
        .encode(&key())
        .unwrap();
        // The other number's payload with this token's MAC.
        let (payload, _) = other.split_once('.').unwrap();
        let (_, mac) = text.split_once('.').unwrap();
        assert_eq!(
            Token::parse(&format!("{payload}.{mac}"), &key(), 0),
            Err(TokenError::BadMac)
        );
        let other_key = LinkKey::from_bytes(&[8; 32]).unwrap();
        assert_eq!(Token::parse(&text, &other_key, 0), Err(TokenError::BadMac));
    }

    #[test]
    fn malformed_text_is_named() {
        for text in ["", "abc", "a.b", "....", &"A".repeat(MAX_TOKEN_LEN + 1)] {
            assert!(
                matches!(Token::parse(text, &key(), 0), Err(TokenError::Malformed(_))),
                "{text}"
            );
        }
        // Authentic bytes that are not a payload of this version: malformed, not trusted.
        let mut mac = key().mac();
        mac.update(&[2, 0]);
        let tag = mac.finalize().into_bytes();
        let text = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode([2, 0]),
            URL_SAFE_NO_PAD.encode(tag)
        );
        assert_eq!(
            Token::parse(&text, &key(), 0),
            Err(TokenError::UnknownVersion(2))
        );
    }

    #[test]
    fn fields_out_of_bounds_are_not_minted() {
        let issuer = LinkIssuer::new("http://127.0.0.1:8090/", key(), 60);
        assert!(issuer.link("+861380", "F1", "Firm", 0).is_err());
        assert!(issuer.link("1234567890123456", "F1", "Firm", 0).is_err());
        assert!(issuer.link("8613800138000", "F 1", "Firm", 0).is_err());
        assert!(issuer.link("8613800138000", "F1", "", 0).is_err());
        assert!(issuer.link("8613800138000", "F1", "a\nb", 0).is_err());
        assert!(issuer
            .link("8613800138000", "F1", &"x".repeat(201), 0)
            .is_err());
        let link = issuer.link("8613800138000", "F1", "Firm", 100).unwrap();
        let token = link.strip_prefix("http://127.0.0.1:8090/u/").unwrap();
        let parsed = Token::parse(token, &key(), 159).unwrap();
        assert_eq!(parsed.expires_at, 160);
        assert!(Token::parse(token, &key(), 160).is_err());
    }

    #[test]
    fn key_files_in_hex_base64_or_raw() {
        let hex: String = (0..32).map(|i| format!("{i:02x}")).collect();
        let expected: Vec<u8> = (0..32).collect();
        let from_hex = LinkKey::from_file_bytes(format!("{hex}\n").as_bytes()).unwrap();
        assert_eq!(*from_hex.0, expected);
        let b64 = STANDARD.encode(&expected);
        assert_eq!(
            *LinkKey::from_file_bytes(b64.as_bytes()).unwrap().0,
            expected
        );
        let raw = [0xff_u8; 40];
        assert_eq!(*LinkKey::from_file_bytes(&raw).unwrap().0, raw.to_vec());
        assert_eq!(
            LinkKey::from_file_bytes(b"0011").unwrap_err(),
            KeyError::TooShort(2)
        );
        assert!(format!("{from_hex:?}").contains(".."));
    }
}
