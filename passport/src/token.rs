//! The compact JWS form of a PASSporT: decoding what was received, and signing new tokens.

use crate::base64url;
use crate::claims::Claims;
use crate::error::{Error, Part, TokenError};
use crate::header::{Header, ALG_ES256};
use crate::identity;
use crate::keys::{SigningKey, VerifyingKey};
use crate::nonce::Nonce;

/// The longest token accepted, in bytes. Real SHAKEN tokens are 400-700 bytes; Rich Call Data
/// can add a few hundred more.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;

/// A decoded full-form PASSporT, with the bytes it was received as.
///
/// The signature is checked over [`Passport::signing_input`], the received
/// `header.payload` text, never over re-serialized JSON: a signer that orders members
/// differently still verifies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Passport {
    header: Header,
    claims: Claims,
    token: String,
    signing_input_len: usize,
    signature: Vec<u8>,
}

impl Passport {
    /// Decodes `header.payload.signature`. Checks structure and values, not the signature.
    pub fn decode(token: &str) -> Result<Self, TokenError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::IdentityTooLong {
                len: token.len(),
                max: MAX_TOKEN_LEN,
            });
        }
        let mut parts = token.splitn(4, '.');
        let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::SegmentCount(token.split('.').count()));
        };
        if header_b64.is_empty() && payload_b64.is_empty() {
            return Err(TokenError::CompactForm);
        }
        let header = Header::from_json(&base64url::decode_part(header_b64, Part::Header)?)?;
        let claims = Claims::from_json(&base64url::decode_part(payload_b64, Part::Payload)?)?;
        let signature = base64url::decode_part(signature_b64, Part::Signature)?;
        Ok(Self {
            header,
            claims,
            signing_input_len: header_b64.len() + 1 + payload_b64.len(),
            token: token.to_owned(),
            signature,
        })
    }

    /// The header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The claims.
    pub fn claims(&self) -> &Claims {
        &self.claims
    }

    /// The token text as received.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// The received `header.payload` text the signature covers.
    pub fn signing_input(&self) -> &[u8] {
        self.token
            .as_bytes()
            .get(..self.signing_input_len)
            .unwrap_or_default()
    }

    /// The decoded signature bytes.
    pub fn signature(&self) -> &[u8] {
        &self.signature
    }

    /// Checks that `alg` is ES256 and the signature verifies under `key`.
    pub fn verify_signature(&self, key: &VerifyingKey) -> Result<(), TokenError> {
        if self.header.alg != ALG_ES256 {
            return Err(TokenError::UnsupportedAlgorithm(self.header.alg.clone()));
        }
        key.verify(self.signing_input(), &self.signature)
    }
}

/// The canonical `BASE64URL(header) "." BASE64URL(payload)` a signer signs.
pub fn signing_input(header: &Header, claims: &Claims) -> String {
    let mut out = String::with_capacity(512);
    base64url::encode_into(header.to_json().as_bytes(), &mut out);
    out.push('.');
    base64url::encode_into(claims.to_json().as_bytes(), &mut out);
    out
}

/// Signs a token with any header (for PASSporT types other than SHAKEN, and for tests).
/// The header's `alg` must be ES256.
pub fn sign(header: &Header, claims: &Claims, key: &SigningKey) -> Result<String, Error> {
    if header.alg != ALG_ES256 {
        return Err(TokenError::UnsupportedAlgorithm(header.alg.clone()).into());
    }
    let mut token = signing_input(header, claims);
    let signature = key.sign(token.as_bytes())?;
    token.push('.');
    base64url::encode_into(&signature, &mut token);
    Ok(token)
}

/// Signs SHAKEN PASSporTs for one key and one x5u, the signer's hot path.
///
/// The header is the same for every call, so its base64url form and the Identity header's
/// parameters are computed once.
#[derive(Debug)]
pub struct TokenSigner {
    key: SigningKey,
    x5u: String,
    header_prefix: String,
    identity_suffix: String,
}

impl TokenSigner {
    /// A signer for `key` whose certificate chain is published at `x5u`.
    pub fn new(key: SigningKey, x5u: impl Into<String>) -> Self {
        let x5u = x5u.into();
        let mut header_prefix = String::with_capacity(160);
        base64url::encode_into(
            Header::shaken(x5u.clone()).to_json().as_bytes(),
            &mut header_prefix,
        );
        header_prefix.push('.');
        let identity_suffix = identity::shaken_parameters(&x5u);
        Self {
            key,
            x5u,
            header_prefix,
            identity_suffix,
        }
    }

    /// The x5u URL this signer puts in its tokens.
    pub fn x5u(&self) -> &str {
        &self.x5u
    }

    /// The public key matching the signing key.
    pub fn verifying_key(&self) -> Result<VerifyingKey, Error> {
        self.key.verifying_key()
    }

    fn sign_into(
        &self,
        claims: &Claims,
        nonce: Option<Nonce>,
        out: &mut String,
    ) -> Result<(), Error> {
        let mut json = String::with_capacity(256);
        claims.write_json(&mut json);
        out.push_str(&self.header_prefix);
        base64url::encode_into(json.as_bytes(), out);
        let signature = match nonce {
            // The nonce path fails only for s = 0 (probability about 2^-256); sign afresh then.
            Some(nonce) => match self.key.sign_with_nonce(out.as_bytes(), nonce) {
                Ok(signature) => signature,
                Err(_) => self.key.sign(out.as_bytes())?,
            },
            None => self.key.sign(out.as_bytes())?,
        };
        out.push('.');
        base64url::encode_into(&signature, out);
        Ok(())
    }

    /// The signed token, `header.payload.signature`.
    pub fn sign(&self, claims: &Claims) -> Result<String, Error> {
        let mut out = String::with_capacity(640);
        self.sign_into(claims, None, &mut out)?;
        Ok(out)
    }

    /// The Identity header value: `token;info=<x5u>;alg=ES256;ppt=shaken`.
    pub fn identity_header(&self, claims: &Claims) -> Result<String, Error> {
        self.identity_header_with(claims, None)
    }

    /// [`TokenSigner::identity_header`], finishing the signature from a precomputed nonce when
    /// one is given ([`crate::nonce`]) rather than computing one now.
    pub fn identity_header_with(
        &self,
        claims: &Claims,
        nonce: Option<Nonce>,
    ) -> Result<String, Error> {
        let mut out = String::with_capacity(640 + self.identity_suffix.len());
        self.sign_into(claims, nonce, &mut out)?;
        out.push_str(&self.identity_suffix);
        Ok(out)
    }
}
