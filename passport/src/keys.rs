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
use p256::elliptic_curve::ops::Reduce;
use p256::elliptic_curve::zeroize::Zeroizing;
use p256::elliptic_curve::{Field, PrimeField};
use p256::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, LineEnding};
use p256::{FieldBytes, PublicKey, Scalar, SecretKey, U256};

use crate::error::{Error, TokenError};
use crate::nonce::Nonce;
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

    /// Signs `message` with ES256 using a precomputed nonce ([`crate::nonce`]), returning
    /// R||S: a hash and two scalar multiplications. The nonce is consumed. The result is the
    /// same signature [`SigningKey::sign`] would give had it drawn the same nonce.
    pub fn sign_with_nonce(
        &self,
        message: &[u8],
        nonce: Nonce,
    ) -> Result<[u8; SIGNATURE_LEN], Error> {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, message);
        let digest: [u8; 32] = digest
            .as_ref()
            .try_into()
            .map_err(|_| Error::PrivateKey("SHA-256 digest is not 32 bytes".into()))?;
        let z = <Scalar as Reduce<U256>>::reduce_bytes(&FieldBytes::from(digest));
        let d = Zeroizing::new(self.secret.to_nonzero_scalar());
        let s = *nonce.k_inv() * (z + *nonce.r() * d.as_ref());
        // s = 0 has probability about 2^-256 and is not a valid signature.
        if bool::from(s.is_zero()) {
            return Err(Error::PrivateKey("signature with s = 0".into()));
        }
        let mut out = [0u8; SIGNATURE_LEN];
        out[..32].copy_from_slice(&nonce.r().to_repr());
        out[32..].copy_from_slice(&s.to_repr());
        Ok(out)
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
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), TokenError> {
        if signature.len() != SIGNATURE_LEN {
            return Err(TokenError::SignatureLength(signature.len()));
        }
        self.parsed
            .verify_sig(message, signature)
            .map_err(|_| TokenError::BadSignature)
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
            Err(TokenError::BadSignature)
        );
        assert_eq!(
            public.verify(b"message", &signature[..63]),
            Err(TokenError::SignatureLength(63))
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

    fn scalar(hex: &str) -> p256::NonZeroScalar {
        let bytes: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap_or_else(|e| panic!("{e}")))
            .collect();
        let repr = FieldBytes::from(<[u8; 32]>::try_from(bytes).unwrap_or_else(|_| panic!()));
        Option::from(p256::NonZeroScalar::from_repr(repr)).unwrap_or_else(|| panic!("not a scalar"))
    }

    fn key_of(d: &p256::NonZeroScalar) -> SigningKey {
        SigningKey::from_secret(SecretKey::from(d)).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Known answers with the vectors' own k: RFC 6979 A.2.5 (P-256, SHA-256, messages
    /// "sample" and "test") and the NIST CSRC example "Example of ECDSA with P-256".
    #[test]
    fn a_precomputed_nonce_gives_the_published_signatures() {
        let rfc6979 = "C9AFA9D845BA75166B5C215767B1D6934E50C3DB36E89B127B8A622B120F6721";
        let cases = [
            (
                rfc6979,
                "sample",
                "A6E3C57DD01ABE90086538398355DD4C3B17AA873382B0F24D6129493D8AAD60",
                "EFD48B2AACB6A8FD1140DD9CD45E81D69D2C877B56AAF991C34D0EA84EAF3716",
                "F7CB1C942D657C41D436C7A1B6E29F65F3E900DBB9AFF4064DC4AB2F843ACDA8",
            ),
            (
                rfc6979,
                "test",
                "D16B6AE827F17175E040871A1C7EC3500192C4C92677336EC2537ACAEE0008E0",
                "F1ABB023518351CD71D881567B1EA663ED3EFCF6C5132B354F28D3B0B7D38367",
                "019F4113742A2B14BD25926B49C649155F267E60D3814B4C0CC84250E46F0083",
            ),
            (
                "C477F9F65C22CCE20657FAA5B2D1D8122336F851A508A1ED04E479C34985BF96",
                "Example of ECDSA with P-256",
                "7A1A7E52797FC8CAAA435D2A4DACE39158504BF204FBE19F14DBB427FAEE50AE",
                "2B42F576D07F4165FF65D1F3B1500F81E44C316F1F0B3EF57325B69ACA46104F",
                "DC42C2122D6392CD3E3A993A89502A8198C1886FE69D262C4B329BDB6B63FAF1",
            ),
        ];
        for (d, message, k, r, s) in cases {
            let key = key_of(&scalar(d));
            let nonce = Nonce::from_k(&scalar(k)).unwrap_or_else(|e| panic!("{e}"));
            let signature = key
                .sign_with_nonce(message.as_bytes(), nonce)
                .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(
                signature[..32],
                scalar(r).to_repr()[..],
                "r for {message:?}"
            );
            assert_eq!(
                signature[32..],
                scalar(s).to_repr()[..],
                "s for {message:?}"
            );
        }
    }

    /// Signatures finished from pooled nonces verify with aws-lc-rs and with `p256`, and fail
    /// for another message.
    #[test]
    fn precomputed_signatures_verify_independently() {
        use p256::ecdsa::signature::Verifier;
        let key = SigningKey::generate().unwrap_or_else(|e| panic!("{e}"));
        let public = key.verifying_key().unwrap_or_else(|e| panic!("{e}"));
        let rustcrypto = p256::ecdsa::VerifyingKey::from(key.secret().public_key());
        let nonces = crate::nonce::precompute(50).unwrap_or_else(|e| panic!("{e}"));
        for (i, nonce) in nonces.into_iter().enumerate() {
            let message = format!("message {i} {}", "x".repeat(i * 7));
            let signature = key
                .sign_with_nonce(message.as_bytes(), nonce)
                .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(public.verify(message.as_bytes(), &signature), Ok(()));
            let parsed =
                p256::ecdsa::Signature::from_slice(&signature).unwrap_or_else(|e| panic!("{e}"));
            assert!(rustcrypto.verify(message.as_bytes(), &parsed).is_ok());
            assert_eq!(
                public.verify(b"another message", &signature),
                Err(TokenError::BadSignature)
            );
        }
    }
}
