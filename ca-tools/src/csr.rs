//! Certificate signing requests (PKCS#10) that ask for a TNAuthList: made by `shaken sp csr`,
//! checked by `shaken ca issue`.

use der::asn1::ObjectIdentifier;
use der::{Decode, Encode};
use p256::ecdsa::signature::Verifier;
use p256::ecdsa::{DerSignature, VerifyingKey as EcdsaVerifyingKey};
use p256::pkcs8::DecodePublicKey;
use x509_cert::attr::Attribute;
use x509_cert::ext::Extension;
use x509_cert::name::Name;
use x509_cert::request::{CertReq, CertReqInfo, ExtensionReq, Version};

use crate::certificate::{self, ext, oid};
use crate::error::CaError;

/// `pkcs-9-at-extensionRequest`.
const EXTENSION_REQUEST: ObjectIdentifier = oid::EXTENSION_REQUEST;
/// The most bytes a CSR file may have.
pub const MAX_CSR_LEN: usize = 64 * 1024;

/// Builds a CSR for `key` with subject `C, O, CN=SHAKEN <SPC>` requesting a TNAuthList holding
/// the SPC. Returns DER.
pub fn build(
    key: &p256::SecretKey,
    spc: &str,
    organization: &str,
    country: &str,
) -> Result<Vec<u8>, CaError> {
    let list = passport::TnAuthList::spc(spc)?;
    let common_name = format!("SHAKEN {spc}");
    let subject = certificate::name(&[
        (oid::COUNTRY, country),
        (oid::ORGANIZATION, organization),
        (oid::COMMON_NAME, &common_name),
    ])?;
    let request = ExtensionReq(vec![ext::tn_auth_list(&list)?]);
    let attribute = Attribute::try_from(request)?;
    let info = CertReqInfo {
        version: Version::V1,
        subject,
        public_key: certificate::spki(&key.public_key())?,
        attributes: vec![attribute].try_into()?,
    };
    let signature = certificate::sign_der(key, &info.to_der()?)?;
    let request = CertReq {
        info,
        algorithm: certificate::ecdsa_sha256(),
        signature,
    };
    Ok(request.to_der()?)
}

/// Writes to `out`, as PEM, the CSR [`build`] makes for the private key in `key_file` (PKCS#8
/// or SEC1 PEM), creating missing folders; `out` is left as it was if anything fails.
pub fn write_request(
    key_file: &std::path::Path,
    spc: &str,
    organization: &str,
    country: &str,
    out: &std::path::Path,
) -> Result<(), CaError> {
    let key = crate::keyfile::read_private_key(key_file)?;
    let der = build(key.secret(), spc, organization, country)?;
    crate::keyfile::write_public(
        out,
        certificate::pem_block("CERTIFICATE REQUEST", &der).as_bytes(),
    )
}

/// A CSR whose signature verified.
#[derive(Clone, Debug)]
pub struct CheckedCsr {
    /// The requested subject.
    pub subject: Name,
    /// The requested public key.
    pub public_key: p256::PublicKey,
    /// The DER SubjectPublicKeyInfo (what the SPC token fingerprint covers).
    pub spki_der: Vec<u8>,
    /// The requested TNAuthList.
    pub tn_auth_list: passport::TnAuthList,
}

/// Parses a CSR (PEM `CERTIFICATE REQUEST` or DER), checks its self-signature and extracts
/// the TNAuthList it requests.
pub fn parse_and_check(bytes: &[u8]) -> Result<CheckedCsr, CaError> {
    if bytes.len() > MAX_CSR_LEN {
        return Err(CaError::CsrMalformed(format!(
            "larger than {MAX_CSR_LEN} bytes"
        )));
    }
    let der = if bytes.windows(11).any(|w| w == b"-----BEGIN ") {
        let blocks =
            passport::pem::parse(bytes, 1).map_err(|e| CaError::CsrMalformed(e.to_string()))?;
        let block = blocks
            .into_iter()
            .find(|b| b.label == "CERTIFICATE REQUEST" || b.label == "NEW CERTIFICATE REQUEST")
            .ok_or_else(|| CaError::CsrMalformed("no CERTIFICATE REQUEST block".into()))?;
        block.der
    } else {
        bytes.to_vec()
    };
    let request = CertReq::from_der(&der).map_err(|e| CaError::CsrMalformed(e.to_string()))?;
    if request.algorithm.oid != oid::ECDSA_WITH_SHA256 {
        return Err(CaError::CsrMalformed(format!(
            "signature algorithm {} is not ecdsa-with-SHA256",
            request.algorithm.oid
        )));
    }
    let spki_der = request.info.public_key.to_der()?;
    let public_key = p256::PublicKey::from_public_key_der(&spki_der)
        .map_err(|e| CaError::CsrMalformed(format!("public key is not P-256: {e}")))?;
    let signature = DerSignature::from_bytes(request.signature.raw_bytes())
        .map_err(|_| CaError::CsrSignature)?;
    EcdsaVerifyingKey::from(&public_key)
        .verify(&request.info.to_der()?, &signature)
        .map_err(|_| CaError::CsrSignature)?;

    let mut lists = Vec::new();
    for attribute in request.info.attributes.iter() {
        if attribute.oid != EXTENSION_REQUEST {
            continue;
        }
        for value in attribute.values.iter() {
            let extensions: Vec<Extension> = value
                .decode_as()
                .map_err(|e| CaError::CsrMalformed(format!("extensionRequest: {e}")))?;
            for extension in extensions {
                if extension.extn_id == oid::TN_AUTH_LIST {
                    lists.push(extension.extn_value.as_bytes().to_vec());
                }
            }
        }
    }
    let [list] = lists.as_slice() else {
        return Err(CaError::CsrMalformed(format!(
            "requests {} TNAuthList extensions, needs exactly one",
            lists.len()
        )));
    };
    let tn_auth_list = passport::TnAuthList::from_der(list)
        .map_err(|e| CaError::CsrMalformed(format!("TNAuthList: {e}")))?;
    Ok(CheckedCsr {
        subject: request.info.subject,
        public_key,
        spki_der,
        tn_auth_list,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_csr_checks_and_tampering_is_caught() {
        let key = p256::SecretKey::random(&mut rand_core::OsRng);
        let der = build(&key, "1001", "Example Carrier", "US").unwrap();
        let csr = parse_and_check(&der).unwrap();
        assert_eq!(csr.tn_auth_list.single_spc(), Some("1001"));
        assert_eq!(csr.public_key, key.public_key());
        let pem = certificate::pem_block("CERTIFICATE REQUEST", &der);
        assert!(parse_and_check(pem.as_bytes()).is_ok());

        // Flip a byte of the SPC inside the signed info.
        let mut tampered = der.clone();
        let at = tampered.windows(4).position(|w| w == b"1001").unwrap();
        tampered[at] = b'9';
        assert!(matches!(
            parse_and_check(&tampered),
            Err(CaError::CsrSignature)
        ));
        assert!(matches!(
            parse_and_check(b"garbage"),
            Err(CaError::CsrMalformed(_))
        ));
    }
}
