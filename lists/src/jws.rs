//! The signed list: a compact JWS (RFC 7515), ES256, whose payload is the document's
//! canonical JSON.
//!
//! Consumers are configured with the regulator's certificate (PEM); the list names it instead
//! of carrying it: the protected header is exactly
//! `{"alg":"ES256","typ":"shaken-list+jwt","x5t#S256":"<base64url SHA-256 of the certificate DER>"}`
//! (any other member is refused). Verification checks, in order: the compact form, the
//! header, `alg`, `typ`, that `x5t#S256` is the configured certificate's, the signature over
//! the bytes as received with the certificate's P-256 key, then the payload as a document.
//! Nothing here reads the clock: validity in time is the store's ([`crate::store::check`]).
//!
//! Every segment must be strict unpadded base64url, so any changed byte, separators included,
//! fails. One final `\n` (as `shaken lists sign` writes the file) is the only byte tolerated
//! after the signature.

use passport::error::Part;
use passport::{base64url, SigningKey, VerifyingKey};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::document::{Format, ListDocument};
use crate::error::JwsError;

/// The `typ` of a signed list.
pub const TYP: &str = "shaken-list+jwt";
/// The largest signed list accepted (a list of a million numbers is about 20 MB).
pub const MAX_JWS_BYTES: usize = 256 * 1024 * 1024;
/// The largest protected header accepted.
const MAX_HEADER_BYTES: usize = 1024;

/// The regulator's certificate as consumers hold it: its key and its thumbprint.
#[derive(Clone, Debug)]
pub struct RegulatorCert {
    key: VerifyingKey,
    thumbprint: String,
}

impl RegulatorCert {
    /// Reads the first certificate of a PEM file; its key must be P-256.
    pub fn from_pem(pem_text: &[u8]) -> Result<Self, JwsError> {
        let chain = passport::cert::chain_from_pem(pem_text)
            .map_err(|e| JwsError::Certificate(e.to_string()))?;
        let der = chain
            .first()
            .ok_or_else(|| JwsError::Certificate("no certificate".into()))?;
        Self::from_der(der)
    }

    /// Reads a DER certificate; its key must be P-256.
    pub fn from_der(der: &[u8]) -> Result<Self, JwsError> {
        let key = passport::cert::verifying_key_of(der)
            .map_err(|e| JwsError::Certificate(e.to_string()))?;
        Ok(Self {
            key,
            thumbprint: base64url::encode(&Sha256::digest(der)),
        })
    }

    /// The `x5t#S256` value naming this certificate.
    pub fn thumbprint(&self) -> &str {
        &self.thumbprint
    }

    /// The certificate's public key.
    pub fn key(&self) -> &VerifyingKey {
        &self.key
    }
}

/// A list whose signature verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedList {
    /// The validated document.
    pub document: ListDocument,
    /// The payload bytes as signed.
    pub payload: Vec<u8>,
}

/// The protected header, exactly these three members.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProtectedHeader {
    alg: String,
    typ: String,
    #[serde(rename = "x5t#S256")]
    thumbprint: String,
}

/// Signs `document` with `key`, which must be the key of `cert`. The result is the compact
/// JWS, without a final newline.
pub fn sign(
    document: &ListDocument,
    key: &SigningKey,
    cert: &RegulatorCert,
) -> Result<String, JwsError> {
    let public = key
        .verifying_key()
        .map_err(|e| JwsError::Key(e.to_string()))?;
    if &public != cert.key() {
        return Err(JwsError::KeyMismatch);
    }
    let header = format!(
        r#"{{"alg":"ES256","typ":"{TYP}","x5t#S256":"{}"}}"#,
        cert.thumbprint()
    );
    let mut token = base64url::encode(header.as_bytes());
    token.push('.');
    base64url::encode_into(document.canonical_json().as_bytes(), &mut token);
    let signature = key
        .sign(token.as_bytes())
        .map_err(|e| JwsError::Signing(e.to_string()))?;
    token.push('.');
    base64url::encode_into(&signature, &mut token);
    Ok(token)
}

/// The three segments of a compact JWS, decoded, with the signing input as received.
#[derive(Debug)]
pub struct Parts<'a> {
    /// `header.payload` as received: what the signature covers.
    pub signing_input: &'a [u8],
    /// The decoded protected header.
    pub header: Vec<u8>,
    /// The decoded payload.
    pub payload: Vec<u8>,
    /// The decoded signature.
    pub signature: Vec<u8>,
}

/// Splits and decodes a compact JWS, checking its form only (no signature, no content).
pub fn split(jws: &[u8]) -> Result<Parts<'_>, JwsError> {
    if jws.len() > MAX_JWS_BYTES {
        return Err(JwsError::TooLarge(MAX_JWS_BYTES));
    }
    let jws = jws.strip_suffix(b"\n").unwrap_or(jws);
    let text = std::str::from_utf8(jws).map_err(|_| JwsError::Form("not ASCII text"))?;
    let mut segments = text.split('.');
    let (Some(header), Some(payload), Some(signature), None) = (
        segments.next(),
        segments.next(),
        segments.next(),
        segments.next(),
    ) else {
        return Err(JwsError::Form(
            "expected three segments separated by two dots",
        ));
    };
    if header.len() > MAX_HEADER_BYTES {
        return Err(JwsError::Header("larger than 1024 bytes".into()));
    }
    let signing_input = jws
        .get(..header.len() + 1 + payload.len())
        .ok_or(JwsError::Form("truncated"))?;
    let decode = |segment: &str, part: Part, name: &'static str| {
        base64url::decode_part(segment, part).map_err(|_| JwsError::Base64(name))
    };
    Ok(Parts {
        signing_input,
        header: decode(header, Part::Header, "header")?,
        payload: decode(payload, Part::Payload, "payload")?,
        signature: decode(signature, Part::Signature, "signature")?,
    })
}

/// Verifies a signed list against the configured certificate and reads its document.
pub fn verify(jws: &[u8], cert: &RegulatorCert) -> Result<VerifiedList, JwsError> {
    let parts = split(jws)?;
    let header: ProtectedHeader =
        serde_json::from_slice(&parts.header).map_err(|e| JwsError::Header(e.to_string()))?;
    if header.alg != "ES256" {
        return Err(JwsError::Algorithm(header.alg));
    }
    if header.typ != TYP {
        return Err(JwsError::Type(header.typ));
    }
    if header.thumbprint != cert.thumbprint() {
        return Err(JwsError::Thumbprint(header.thumbprint));
    }
    cert.key()
        .verify(parts.signing_input, &parts.signature)
        .map_err(|_| JwsError::Signature)?;
    let document = ListDocument::parse(&parts.payload, Format::Json)?;
    Ok(VerifiedList {
        document,
        payload: parts.payload,
    })
}

/// Reads the document of a signed list WITHOUT checking its signature: for showing a list
/// to a person who has no certificate at hand. Never use the result to decide a call.
pub fn decode_unverified(jws: &[u8]) -> Result<ListDocument, JwsError> {
    let parts = split(jws)?;
    Ok(ListDocument::parse(&parts.payload, Format::Json)?)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::error::DocumentError;

    /// A regulator key and a self-signed certificate for it, made once by OpenSSL
    /// (`openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 36500`).
    pub(crate) const KEY: &str = include_str!("../tests/data/regulator-key.pem");
    /// The certificate of [`KEY`].
    pub(crate) const CERT: &str = include_str!("../tests/data/regulator-cert.pem");
    /// Another certificate, for another key.
    pub(crate) const OTHER_CERT: &str = include_str!("../tests/data/other-cert.pem");

    pub(crate) fn key() -> SigningKey {
        SigningKey::from_pem(KEY.as_bytes()).unwrap_or_else(|e| panic!("{e}"))
    }

    pub(crate) fn cert() -> RegulatorCert {
        RegulatorCert::from_pem(CERT.as_bytes()).unwrap_or_else(|e| panic!("{e}"))
    }

    /// A small document with this version and validity.
    pub(crate) fn document(version: u64, issued_at: u64, expires_at: u64) -> ListDocument {
        let json = format!(
            r#"{{"version":{version},"issued_at":{issued_at},"expires_at":{expires_at},
            "firms":[{{"id":"F1","name":"Firm One","status":"white-listed","numbers":["8613800138000","8621000-8621999"],"hourly_quota":10,"reasons":["Renewal"]}}],
            "blacklisted_numbers":["8617000000001"]}}"#
        );
        ListDocument::parse(json.as_bytes(), Format::Json).unwrap_or_else(|e| panic!("{e}"))
    }

    pub(crate) fn signed(version: u64, issued_at: u64, expires_at: u64) -> String {
        sign(&document(version, issued_at, expires_at), &key(), &cert())
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// A token made of these three JSON/byte parts, signed with the test key.
    fn forge(header: &str, payload: &str) -> String {
        let mut token = format!(
            "{}.{}",
            base64url::encode(header.as_bytes()),
            base64url::encode(payload.as_bytes())
        );
        let signature = key()
            .sign(token.as_bytes())
            .unwrap_or_else(|e| panic!("{e}"));
        token.push('.');
        token.push_str(&base64url::encode(&signature));
        token
    }

    #[test]
    fn a_signed_list_verifies_and_reads_back() {
        let token = signed(3, 100, 200);
        let verified = verify(token.as_bytes(), &cert()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(verified.document, document(3, 100, 200));
        assert_eq!(
            verified.payload,
            document(3, 100, 200).canonical_json().into_bytes()
        );
        let with_newline = format!("{token}\n");
        assert!(verify(with_newline.as_bytes(), &cert()).is_ok());
        assert_eq!(
            decode_unverified(token.as_bytes()),
            Ok(document(3, 100, 200))
        );
        let header = split(token.as_bytes())
            .unwrap_or_else(|e| panic!("{e}"))
            .header;
        assert_eq!(
            String::from_utf8_lossy(&header),
            format!(
                r#"{{"alg":"ES256","typ":"shaken-list+jwt","x5t#S256":"{}"}}"#,
                cert().thumbprint()
            )
        );
    }

    #[test]
    fn every_changed_byte_fails() {
        let token = format!("{}\n", signed(1, 100, 200));
        let cert = cert();
        let bytes = token.as_bytes();
        for position in 0..bytes.len() {
            for replacement in [b'A', b'.', b'\n', b'_', b'0'] {
                let mut changed = bytes.to_vec();
                if changed.get(position) == Some(&replacement) {
                    continue;
                }
                if let Some(b) = changed.get_mut(position) {
                    *b = replacement;
                }
                assert!(
                    verify(&changed, &cert).is_err(),
                    "byte {position} changed to {:?} still verifies",
                    char::from(replacement)
                );
            }
        }
        // Removing or adding bytes fails too (but for the final newline).
        let plain = token.trim_end();
        assert!(verify(format!("{plain}\n\n").as_bytes(), &cert).is_err());
        assert!(verify(format!(" {plain}").as_bytes(), &cert).is_err());
        assert!(verify(format!("{plain}\r\n").as_bytes(), &cert).is_err());
        assert!(verify(&plain.as_bytes()[1..], &cert).is_err());
    }

    #[test]
    fn header_rules() {
        let payload = document(1, 100, 200).canonical_json();
        let thumbprint = cert().thumbprint().to_owned();
        let cert = cert();
        let check = |header: String| verify(forge(&header, &payload).as_bytes(), &cert);
        assert!(check(format!(
            r#"{{"alg":"ES256","typ":"shaken-list+jwt","x5t#S256":"{thumbprint}"}}"#
        ))
        .is_ok());
        assert_eq!(
            check(format!(
                r#"{{"alg":"ES384","typ":"shaken-list+jwt","x5t#S256":"{thumbprint}"}}"#
            ))
            .err(),
            Some(JwsError::Algorithm("ES384".into()))
        );
        assert_eq!(
            check(format!(
                r#"{{"alg":"ES256","typ":"JWT","x5t#S256":"{thumbprint}"}}"#
            ))
            .err(),
            Some(JwsError::Type("JWT".into()))
        );
        assert_eq!(
            check(r#"{"alg":"ES256","typ":"shaken-list+jwt","x5t#S256":"AAAA"}"#.into()).err(),
            Some(JwsError::Thumbprint("AAAA".into()))
        );
        for bad in [
            format!(
                r#"{{"alg":"ES256","typ":"shaken-list+jwt","x5t#S256":"{thumbprint}","x5u":"https://x"}}"#
            ),
            format!(
                r#"{{"alg":"ES256","alg":"ES256","typ":"shaken-list+jwt","x5t#S256":"{thumbprint}"}}"#
            ),
            r#"{"alg":"ES256","typ":"shaken-list+jwt"}"#.into(),
            "[]".into(),
        ] {
            assert!(
                matches!(check(bad.clone()), Err(JwsError::Header(_))),
                "{bad}"
            );
        }
        // A valid signature over a payload that is not a valid document.
        let header =
            format!(r#"{{"alg":"ES256","typ":"shaken-list+jwt","x5t#S256":"{thumbprint}"}}"#);
        assert!(matches!(
            verify(forge(&header, r#"{"version":1}"#).as_bytes(), &cert),
            Err(JwsError::Document(DocumentError::Syntax { .. }))
        ));
    }

    #[test]
    fn form_and_certificate_errors() {
        let cert = cert();
        assert!(matches!(verify(b"a.b", &cert), Err(JwsError::Form(_))));
        assert!(matches!(verify(b"a.b.c.d", &cert), Err(JwsError::Form(_))));
        assert!(matches!(verify(b"\xff.b.c", &cert), Err(JwsError::Form(_))));
        assert_eq!(
            verify(b"a=.b.c", &cert).err(),
            Some(JwsError::Base64("header"))
        );
        let other =
            RegulatorCert::from_pem(OTHER_CERT.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
        // The same token with another configured certificate: its thumbprint is not named.
        assert!(matches!(
            verify(signed(1, 1, 2).as_bytes(), &other),
            Err(JwsError::Thumbprint(_))
        ));
        assert_eq!(
            sign(&document(1, 1, 2), &key(), &other).err(),
            Some(JwsError::KeyMismatch)
        );
        assert!(matches!(
            RegulatorCert::from_pem(KEY.as_bytes()),
            Err(JwsError::Certificate(_))
        ));
        assert!(matches!(
            RegulatorCert::from_pem(b""),
            Err(JwsError::Certificate(_))
        ));
    }
}
