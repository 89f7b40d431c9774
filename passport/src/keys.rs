//! ES256 keys: loading (PKCS#8 and SEC1 PEM), generation, signing and verification.
//!
//! The arithmetic is aws-lc-rs (about six times faster than RustCrypto `p256` on this
//! hardware, for both signing and verifying); `p256` is used only to read and write the key
//! encodings. A [`VerifyingKey`] holds the public key already parsed, so verification does no
//! parsing per call. Signatures are the raw 64-byte R||S of RFC 7518 §3.4, never DER.

use std::fmt;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    EcdsaKeyPair, KeyPair, ParsedPublicKey, ECDSA_P256_SHA256_FIXED,
    ECDSA_P256_SHA256_FIXED_SIGNING,
};
use p256::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, LineEnding};
use p256::{PublicKey, SecretKey};

use crate::error::Error;
use crate::pem;

/// Length of an ES256 signature (R||S).
pub const SIGNATURE_LEN: usize = 64;

/// The most PEM blocks a key file may hold (an `EC PARAMETERS` block may precede the key).
const MAX_KEY_FILE_BLOCKS: usize = 4;

/// A P-256 private key ready to sign. Its `Debug` output shows only the public key.
pub struct SigningKey {
    pair: EcdsaKeyPair,
    secret: SecretKey,
    rng: SystemRandom,
}

impl SigningKey {
    /// Loads a key from PEM: `BEGIN PRIVATE KEY` (PKCS#8) or `BEGIN EC PRIVATE KEY` (SEC1).
    /// Other blocks such as `EC PARAMETERS` (as `openssl ecparam -genkey` writes) are skipped.
    pub fn from_pem(pem_text: &[u8]) -> Result<Self, Error> {
        let blocks = pem::parse(pem_text, MAX_KEY_FILE_BLOCKS)?;
        let mut keys = blocks.iter().filter(|b| b.label.ends_with("PRIVATE KEY"));
        let block = keys
            .next()
            .ok_or_else(|| Error::PrivateKey("no PRIVATE KEY or EC PRIVATE KEY block".into()))?;
        if keys.next().is_some() {
            return Err(Error::PrivateKey(
                "more than one private key in the file".into(),
            ));
        }
        let secret = match block.label.as_str() {
            "PRIVATE KEY" => SecretKey::from_pkcs8_der(&block.der)
                .map_err(|e| Error::PrivateKey(format!("not a P-256 PKCS#8 key: {e}")))?,
            "EC PRIVATE KEY" => SecretKey::from_sec1_der(&block.der)
                .map_err(|e| Error::PrivateKey(format!("not a P-256 SEC1 key: {e}")))?,
            "ENCRYPTED PRIVATE KEY" => {
                return Err(Error::PrivateKey("encrypted keys are not supported".into()))
            }
            other => return Err(Error::PrivateKey(format!("unsupported key type {other}"))),
        };
        Self::from_secret(secret)
    }

    /// Generates a new key from the operating system's CSPRNG.
    pub fn generate() -> Result<Self, Error> {
        Self::from_secret(SecretKey::random(&mut rand_core::OsRng))
    }

    /// Builds a key from a `p256` secret (for callers with their own random source).
    pub fn from_secret(secret: SecretKey) -> Result<Self, Error> {
        let der = secret
            .to_pkcs8_der()
            .map_err(|e| Error::PrivateKey(format!("cannot encode: {e}")))?;
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der.as_bytes())
            .map_err(|e| Error::PrivateKey(format!("rejected: {e}")))?;
        Ok(Self {
            pair,
            secret,
            rng: SystemRandom::new(),
        })
    }

    /// The key as PKCS#8 PEM, the form this project writes. Zeroed when dropped.
    pub fn to_pkcs8_pem(&self) -> Result<p256::elliptic_curve::zeroize::Zeroizing<String>, Error> {
        self.secret
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|e| Error::PrivateKey(format!("cannot encode: {e}")))
    }

    /// The `p256` secret, for operations such as certificate signing with RFC 6979.
    pub fn secret(&self) -> &SecretKey {
        &self.secret
    }

    /// The public half.
    pub fn verifying_key(&self) -> Result<VerifyingKey, Error> {
        VerifyingKey::from_sec1(self.pair.public_key().as_ref())
    }

    /// Signs `message` with ES256, returning R||S.
    pub fn sign(&self, message: &[u8]) -> Result<[u8; SIGNATURE_LEN], Error> {
        let signature = self
            .pair
            .sign(&self.rng, message)
            .map_err(|_| Error::PrivateKey("signing operation failed".into()))?;
        signature
            .as_ref()
            .try_into()
            .map_err(|_| Error::PrivateKey("signature is not 64 bytes".into()))
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field(
                "public",
                &crate::base64url::encode(self.pair.public_key().as_ref()),
            )
            .finish_non_exhaustive()
    }
}

/// A P-256 public key, parsed once, ready to verify ES256 signatures.
#[derive(Clone)]
pub struct VerifyingKey {
    parsed: ParsedPublicKey,
}

impl VerifyingKey {
    /// From a SEC1 point (65-byte uncompressed or 33-byte compressed).
    pub fn from_sec1(point: &[u8]) -> Result<Self, Error> {
        // Decode with p256 first: it checks that the point is on the curve and gives the
        // uncompressed form that aws-lc-rs expects.
        let public = PublicKey::from_sec1_bytes(point)
            .map_err(|_| Error::PublicKey("not a P-256 point".into()))?;
        let uncompressed = p256::EncodedPoint::from(public);
        let parsed = ParsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, uncompressed.as_bytes())
            .map_err(|e| Error::PublicKey(format!("rejected: {e}")))?;
        Ok(Self { parsed })
    }

    /// From a DER SubjectPublicKeyInfo.
    pub fn from_spki_der(der: &[u8]) -> Result<Self, Error> {
        let public = PublicKey::from_public_key_der(der)
            .map_err(|e| Error::PublicKey(format!("not a P-256 SubjectPublicKeyInfo: {e}")))?;
        Self::from_sec1(p256::EncodedPoint::from(public).as_bytes())
    }

    /// From a `BEGIN PUBLIC KEY` PEM block.
    pub fn from_pem(pem_text: &[u8]) -> Result<Self, Error> {
        let blocks = pem::parse(pem_text, MAX_KEY_FILE_BLOCKS)?;
        let block = blocks
            .iter()
            .find(|b| b.label == "PUBLIC KEY")
            .ok_or_else(|| Error::PublicKey("no PUBLIC KEY block".into()))?;
        Self::from_spki_der(&block.der)
    }

    /// The uncompressed SEC1 point.
    pub fn sec1_bytes(&self) -> &[u8] {
        self.parsed.as_ref()
    }

    /// Verifies an ES256 signature (R||S) over `message`.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), Error> {
        if signature.len() != SIGNATURE_LEN {
            return Err(Error::SignatureLength(signature.len()));
        }
        self.parsed
            .verify_sig(message, signature)
            .map_err(|_| Error::BadSignature)
    }
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("VerifyingKey")
            .field(&crate::base64url::encode(self.sec1_bytes()))
            .finish()
    }
}

impl PartialEq for VerifyingKey {
    fn eq(&self, other: &Self) -> bool {
        self.sec1_bytes() == other.sec1_bytes()
    }
}

impl Eq for VerifyingKey {}

#[cfg(test)]
mod tests {
    use super::*;

    /// The RFC 8225 Appendix A private key (PKCS#8).
    const RFC8225_KEY: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgi7q2TZvN9VDFg8Vy
qCP06bETrR2v8MRvr89rn4i+UAahRANCAAQWfaj1HUETpoNCrOtp9KA8o0V79IuW
ARKt9C1cFPkyd3FBP4SeiNZxQhDrD0tdBHls3/wFe8++K2FrPyQF9vuh
-----END PRIVATE KEY-----
";

    /// The public key derived from it (STANDARDS.md §9.1 finding).
    const RFC8225_DERIVED_PUBLIC: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEFn2o9R1BE6aDQqzrafSgPKNFe/SLlgESrfQtXBT5MndxQT+EnojWcUIQ6w9LXQR5bN/8BXvPvithaz8kBfb7oQ==
-----END PUBLIC KEY-----
";

    #[test]
    fn pkcs8_and_sec1_load_the_same_key() {
        let key = SigningKey::from_pem(RFC8225_KEY.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
        let public = VerifyingKey::from_pem(RFC8225_DERIVED_PUBLIC.as_bytes())
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(key.verifying_key(), Ok(public.clone()));

        let sec1 = key
            .secret()
            .to_sec1_pem(LineEnding::LF)
            .unwrap_or_else(|e| panic!("{e}"));
        let with_params = format!(
            "-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n{}",
            sec1.as_str()
        );
        let again = SigningKey::from_pem(with_params.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(again.verifying_key(), Ok(public.clone()));

        let signature = again.sign(b"message").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(public.verify(b"message", &signature), Ok(()));
        assert_eq!(
            public.verify(b"messagE", &signature),
            Err(Error::BadSignature)
        );
        assert_eq!(
            public.verify(b"message", &signature[..63]),
            Err(Error::SignatureLength(63))
        );
    }

    #[test]
    fn written_keys_are_pkcs8_and_reload() {
        let key = SigningKey::generate().unwrap_or_else(|e| panic!("{e}"));
        let pem_text = key.to_pkcs8_pem().unwrap_or_else(|e| panic!("{e}"));
        assert!(pem_text.starts_with("-----BEGIN PRIVATE KEY-----\n"));
        let again = SigningKey::from_pem(pem_text.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(again.verifying_key(), key.verifying_key());
        assert!(!format!("{key:?}").contains(&pem_text[28..60]));
    }

    #[test]
    fn refusals_name_the_problem() {
        let e = SigningKey::from_pem(RFC8225_DERIVED_PUBLIC.as_bytes()).err();
        assert!(matches!(e, Some(Error::PrivateKey(m)) if m.contains("no PRIVATE KEY")));
        let e = SigningKey::from_pem(
            b"-----BEGIN ENCRYPTED PRIVATE KEY-----\nAA==\n-----END ENCRYPTED PRIVATE KEY-----\n",
        )
        .err();
        assert!(matches!(e, Some(Error::PrivateKey(m)) if m.contains("encrypted")));
        let e =
            SigningKey::from_pem(b"-----BEGIN PRIVATE KEY-----\nAA==\n-----END PRIVATE KEY-----\n")
                .err();
        assert!(matches!(e, Some(Error::PrivateKey(m)) if m.contains("PKCS#8")));
        assert!(VerifyingKey::from_sec1(&[4; 65]).is_err());
    }
}
