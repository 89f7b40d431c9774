//! SPC tokens: the authority token (RFC 9447/9448) a policy administrator signs to vouch that a
//! carrier holds a service provider code, and that a CA checks before issuing.
//!
//! Header `{"alg":"ES256","typ":"JWT"[,"x5u":...]}`; claims:
//! `{"atc":{"ca":false,"fingerprint":"SHA256 AB:..","tktype":"TNAuthList","tkvalue":"<base64 DER>"},"exp":..,"jti":".."[,"iss":..]}`.
//! The `fingerprint` is the SHA-256 of the account key's DER SubjectPublicKeyInfo in
//! `SHA256 XX:XX:...` form (upper-case hex pairs), the form the production STI-PA clients use.
//! `tkvalue` is written in standard base64 with padding (as those clients send) and read in
//! either standard base64 or base64url, padded or not (RFC 9448 says base64url).
//! Signing and checking go through `jsonwebtoken`, a JWT implementation independent of this
//! project's PASSporT code.

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use passport::{SigningKey, TnAuthList, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::error::CaError;

/// The longest SPC token accepted.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;
/// The longest `jti` accepted (a UUID has 36 characters); the CA keeps every one it sees.
pub const MAX_JTI_LEN: usize = 256;

/// The `atc` claim.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Atc {
    /// `TNAuthList`.
    pub tktype: String,
    /// The TNAuthList DER, base64.
    pub tkvalue: String,
    /// Whether a CA certificate is authorized (never, here).
    #[serde(default)]
    pub ca: bool,
    /// `SHA256 XX:XX:...` of the account key's SubjectPublicKeyInfo.
    pub fingerprint: String,
}

/// The token's claims.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpcTokenClaims {
    /// Authority token challenge.
    pub atc: Atc,
    /// Expiry, seconds since the epoch.
    pub exp: u64,
    /// Unique token id; RFC 9447 requires it, and the CA records it so that a token is used
    /// once. Read as optional so that its absence gets its own refusal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    /// The token authority, if named.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
}

/// Signs an SPC token for `spc` bound to `fingerprint`, valid from `now` for `ttl` seconds.
pub fn create(
    pa_key: &SigningKey,
    spc: &str,
    fingerprint: &str,
    now: u64,
    ttl: u64,
    jti: String,
    x5u: Option<String>,
) -> Result<String, CaError> {
    check_fingerprint(fingerprint)?;
    let list = TnAuthList::spc(spc)?;
    let claims = SpcTokenClaims {
        atc: Atc {
            tktype: "TNAuthList".into(),
            tkvalue: STANDARD.encode(list.to_der()),
            ca: false,
            fingerprint: fingerprint.to_owned(),
        },
        exp: now.saturating_add(ttl),
        jti: Some(jti),
        iss: None,
    };
    let mut header = Header::new(Algorithm::ES256);
    header.typ = Some("JWT".into());
    header.x5u = x5u;
    let pkcs8 = p256::pkcs8::EncodePrivateKey::to_pkcs8_der(pa_key.secret())
        .map_err(|e| CaError::InvalidArgument(format!("PA key: {e}")))?;
    let key = EncodingKey::from_ec_der(pkcs8.as_bytes());
    jsonwebtoken::encode(&header, &claims, &key).map_err(|e| CaError::TokenMalformed(e.to_string()))
}

/// What a verified SPC token authorizes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckedToken {
    /// The authorized TNAuthList.
    pub tn_auth_list: TnAuthList,
    /// The account key fingerprint, upper-case.
    pub fingerprint: String,
    /// Expiry.
    pub exp: u64,
    /// Token id.
    pub jti: String,
}

/// Verifies an SPC token with the PA's public key at time `now`.
pub fn verify(token: &str, pa_key: &VerifyingKey, now: u64) -> Result<CheckedToken, CaError> {
    let token = token.trim();
    if token.len() > MAX_TOKEN_LEN {
        return Err(CaError::TokenMalformed(format!(
            "longer than {MAX_TOKEN_LEN} bytes"
        )));
    }
    let point = pa_key.sec1_bytes();
    let (x, y) = (
        point.get(1..33).unwrap_or_default(),
        point.get(33..65).unwrap_or_default(),
    );
    let key =
        DecodingKey::from_ec_components(&URL_SAFE_NO_PAD.encode(x), &URL_SAFE_NO_PAD.encode(y))
            .map_err(|e| CaError::InvalidArgument(format!("PA key: {e}")))?;
    let mut validation = Validation::new(Algorithm::ES256);
    // Expiry is checked below against `now`, never against the clock.
    validation.validate_exp = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    let data =
        jsonwebtoken::decode::<SpcTokenClaims>(token, &key, &validation).map_err(|e| {
            match e.kind() {
                jsonwebtoken::errors::ErrorKind::InvalidSignature => CaError::TokenSignature,
                _ => CaError::TokenMalformed(e.to_string()),
            }
        })?;
    check_claims(data.claims, now)
}

/// The checks on a signed token's claims: unexpired at `now`, `tktype` TNAuthList, `ca` false,
/// a `tkvalue` that decodes to a TNAuthList, a well-formed `fingerprint`, and a `jti` (RFC 9447
/// §4 requires one; a token without it is refused rather than accepted with a warning, since
/// the CA could not tell its second use from its first).
pub fn check_claims(claims: SpcTokenClaims, now: u64) -> Result<CheckedToken, CaError> {
    if claims.exp <= now {
        return Err(CaError::TokenExpired {
            exp: claims.exp,
            now,
        });
    }
    // RFC 9447's generic example spells it "TnAuthList"; compare without case.
    if !claims.atc.tktype.eq_ignore_ascii_case("TNAuthList") {
        return Err(CaError::TokenMalformed(format!(
            "atc.tktype {:?} is not TNAuthList",
            claims.atc.tktype
        )));
    }
    if claims.atc.ca {
        return Err(CaError::TokenForCa);
    }
    let der = decode_any_base64(&claims.atc.tkvalue)
        .ok_or_else(|| CaError::TokenMalformed("atc.tkvalue is not base64".into()))?;
    let tn_auth_list = TnAuthList::from_der(&der)
        .map_err(|e| CaError::TokenMalformed(format!("atc.tkvalue TNAuthList: {e}")))?;
    check_fingerprint(&claims.atc.fingerprint)?;
    let jti = match claims.jti {
        Some(jti) if !jti.trim().is_empty() && jti.len() <= MAX_JTI_LEN => jti,
        Some(jti) if !jti.trim().is_empty() => {
            return Err(CaError::TokenMalformed(format!(
                "jti is longer than {MAX_JTI_LEN} bytes"
            )))
        }
        _ => {
            return Err(CaError::TokenMalformed(
                "no jti (RFC 9447 requires a unique token id; the CA records it so that a \
                 token is used once)"
                    .into(),
            ))
        }
    };
    Ok(CheckedToken {
        tn_auth_list,
        fingerprint: claims.atc.fingerprint.to_ascii_uppercase(),
        exp: claims.exp,
        jti,
    })
}

fn decode_any_base64(text: &str) -> Option<Vec<u8>> {
    [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD]
        .iter()
        .find_map(|engine| engine.decode(text).ok())
}

/// `SHA256 ` then 32 hex byte pairs joined by `:`.
fn check_fingerprint(fingerprint: &str) -> Result<(), CaError> {
    let ok = fingerprint.strip_prefix("SHA256 ").is_some_and(|hex| {
        let pairs: Vec<&str> = hex.split(':').collect();
        pairs.len() == 32
            && pairs
                .iter()
                .all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit()))
    });
    if ok {
        Ok(())
    } else {
        Err(CaError::TokenMalformed(format!(
            "fingerprint {fingerprint:?} is not \"SHA256 XX:XX:...\" with 32 bytes"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fingerprint() -> String {
        crate::certificate::spki_fingerprint(b"account key")
    }

    #[test]
    fn created_tokens_verify_and_carry_the_spc() {
        let pa = SigningKey::generate().unwrap();
        let token = create(&pa, "709J", &fingerprint(), 1000, 600, "jti-1".into(), None).unwrap();
        let checked = verify(&token, &pa.verifying_key().unwrap(), 1000).unwrap();
        assert_eq!(checked.tn_auth_list.single_spc(), Some("709J"));
        assert_eq!(checked.fingerprint, fingerprint());
        assert_eq!(checked.exp, 1600);
        // The tkvalue is the production DER in padded standard base64.
        let payload = token.split('.').nth(1).unwrap();
        let json = String::from_utf8(URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
        assert!(json.contains("\"tkvalue\":\"MAigBhYENzA5Sg==\""), "{json}");
        assert!(json.contains("\"tktype\":\"TNAuthList\""));
    }

    #[test]
    fn refusals() {
        let pa = SigningKey::generate().unwrap();
        let public = pa.verifying_key().unwrap();
        let token = create(&pa, "709J", &fingerprint(), 1000, 600, "j".into(), None).unwrap();
        assert!(matches!(
            verify(&token, &public, 1600),
            Err(CaError::TokenExpired {
                exp: 1600,
                now: 1600
            })
        ));
        let other = SigningKey::generate().unwrap().verifying_key().unwrap();
        assert!(matches!(
            verify(&token, &other, 1000),
            Err(CaError::TokenSignature)
        ));
        assert!(matches!(
            verify("a.b.c", &public, 1000),
            Err(CaError::TokenMalformed(_))
        ));
        assert!(create(&pa, "709J", "SHA256 AB", 0, 1, "j".into(), None).is_err());
    }

    #[test]
    fn a_token_without_a_jti_is_refused() {
        let claims = |jti: Option<&str>| SpcTokenClaims {
            atc: Atc {
                tktype: "TNAuthList".into(),
                tkvalue: "MAigBhYENzA5Sg==".into(),
                ca: false,
                fingerprint: fingerprint(),
            },
            exp: 2000,
            jti: jti.map(str::to_owned),
            iss: None,
        };
        for jti in [None, Some(""), Some("  ")] {
            let err = check_claims(claims(jti), 1000).unwrap_err();
            assert!(
                matches!(&err, CaError::TokenMalformed(m) if m.starts_with("no jti")),
                "{err}"
            );
        }
        let long = "j".repeat(MAX_JTI_LEN + 1);
        assert!(check_claims(claims(Some(&long)), 1000).is_err());
        assert_eq!(check_claims(claims(Some("j-1")), 1000).unwrap().jti, "j-1");
        // Absent from the JSON, not only empty.
        let json = r#"{"atc":{"tktype":"TNAuthList","tkvalue":"MAigBhYENzA5Sg==","fingerprint":"x"},"exp":1}"#;
        let parsed: SpcTokenClaims = serde_json::from_str(json).unwrap();
        assert_eq!(parsed.jti, None);
    }
}
