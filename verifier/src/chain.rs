//! Validating a certificate chain from an x5u against the configured STI-CA trust anchors.
//!
//! The end entity (first certificate) must be valid at the reference time, carry a P-256 key,
//! digitalSignature key usage, no CA flag, the SHAKEN certificate policy and a TNAuthList with
//! an SPC. The path is built upward by issuer name, each link's ECDSA-SHA256 signature checked,
//! each CA certificate valid, flagged CA and allowed to sign certificates, until a trust anchor
//! signs. The work is capped: at most [`MAX_CERTIFICATES`] certificates and [`MAX_DEPTH`] links.

use p256::ecdsa::signature::Verifier as _;
use p256::ecdsa::{DerSignature, VerifyingKey as EcdsaKey};
use p256::pkcs8::DecodePublicKey;
use x509_parser::extensions::{DistributionPointName, GeneralName, ParsedExtension};
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::error::CredentialError;

/// The most certificates accepted in a bundle.
pub const MAX_CERTIFICATES: usize = 8;
/// The most links walked from the end entity to an anchor.
pub const MAX_DEPTH: usize = 4;
const ECDSA_WITH_SHA256: &str = "1.2.840.10045.4.3.2";
const SHAKEN_POLICIES: [&str; 2] = ["2.16.840.1.114569.1.1.3", "2.16.840.1.114569.1.1.1"];
const TN_AUTH_LIST: &str = "1.3.6.1.5.5.7.1.26";

/// One trusted root.
#[derive(Clone, Debug)]
struct Anchor {
    subject: Vec<u8>,
    key: EcdsaKey,
    not_after: i64,
}

/// The trusted STI-CA roots.
#[derive(Clone, Debug, Default)]
pub struct TrustAnchors {
    anchors: Vec<Anchor>,
}

impl TrustAnchors {
    /// From a PEM bundle of root certificates.
    pub fn from_pem(pem: &[u8]) -> Result<Self, String> {
        let blocks = passport::pem::parse(pem, 1024).map_err(|e| e.to_string())?;
        let mut anchors = Vec::new();
        for block in blocks.iter().filter(|b| b.label == "CERTIFICATE") {
            let (_, cert) = X509Certificate::from_der(&block.der)
                .map_err(|e| format!("trust anchor does not parse: {e}"))?;
            let key = EcdsaKey::from_public_key_der(cert.public_key().raw).map_err(|_| {
                format!("trust anchor {} does not have a P-256 key", cert.subject())
            })?;
            anchors.push(Anchor {
                subject: cert.subject().as_raw().to_vec(),
                key,
                not_after: cert.validity().not_after.timestamp(),
            });
        }
        if anchors.is_empty() {
            return Err("no trust anchor certificates".into());
        }
        Ok(Self { anchors })
    }

    /// From a PEM file, or every `.pem`/`.crt` file of a folder.
    pub fn from_path(path: &std::path::Path) -> Result<Self, String> {
        let mut pem = Vec::new();
        if path.is_dir() {
            let mut entries: Vec<_> = std::fs::read_dir(path)
                .map_err(|e| format!("{}: {e}", path.display()))?
                .flatten()
                .map(|e| e.path())
                .collect();
            entries.sort();
            for file in entries
                .iter()
                .filter(|p| p.extension().is_some_and(|e| e == "pem" || e == "crt"))
            {
                pem.extend(std::fs::read(file).map_err(|e| format!("{}: {e}", file.display()))?);
                pem.push(b'\n');
            }
        } else {
            pem = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        }
        Self::from_pem(&pem)
    }

    /// How many anchors.
    pub fn len(&self) -> usize {
        self.anchors.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.anchors.is_empty()
    }
}

/// One link of a validated chain, with what revocation checking needs.
#[derive(Clone, Debug)]
pub struct Link {
    /// Position in the bundle.
    pub index: usize,
    /// Serial number bytes.
    pub serial: Vec<u8>,
    /// The issuer's name (raw DER).
    pub issuer: Vec<u8>,
    /// The issuer's key (which also signs its CRL).
    pub issuer_key: EcdsaKey,
    /// CRL distribution point URIs.
    pub crl_urls: Vec<String>,
}

/// A chain that validated: the signer's key and what the verdict reports.
#[derive(Clone, Debug)]
pub struct ValidatedChain {
    /// The end entity's key, parsed once for ES256.
    pub key: passport::VerifyingKey,
    /// The SPC of its TNAuthList.
    pub spc: String,
    /// The earliest notAfter of the path.
    pub not_after: u64,
    /// The certificates below the anchor, end entity first.
    pub links: Vec<Link>,
}

fn profile(index: usize, detail: impl Into<String>) -> CredentialError {
    CredentialError::Profile {
        index,
        detail: detail.into(),
    }
}

fn check_validity(
    cert: &X509Certificate<'_>,
    index: usize,
    now: u64,
) -> Result<(), CredentialError> {
    let now_i = i64::try_from(now).unwrap_or(i64::MAX);
    let validity = cert.validity();
    if now_i < validity.not_before.timestamp() {
        return Err(CredentialError::Validity {
            index,
            now,
            detail: format!("not valid before {}", validity.not_before),
        });
    }
    if now_i > validity.not_after.timestamp() {
        return Err(CredentialError::Validity {
            index,
            now,
            detail: format!("expired at {}", validity.not_after),
        });
    }
    Ok(())
}

fn signed_by(cert: &X509Certificate<'_>, key: &EcdsaKey) -> bool {
    if cert.signature_algorithm.algorithm.to_id_string() != ECDSA_WITH_SHA256 {
        return false;
    }
    let Ok(signature) = DerSignature::from_bytes(&cert.signature_value.data) else {
        return false;
    };
    key.verify(cert.tbs_certificate.as_ref(), &signature)
        .is_ok()
}

fn crl_urls(cert: &X509Certificate<'_>) -> Vec<String> {
    let mut urls = Vec::new();
    for extension in cert.extensions() {
        if let ParsedExtension::CRLDistributionPoints(points) = extension.parsed_extension() {
            for point in points.iter() {
                if let Some(DistributionPointName::FullName(names)) = &point.distribution_point {
                    for name in names {
                        if let GeneralName::URI(uri) = name {
                            urls.push((*uri).to_owned());
                        }
                    }
                }
            }
        }
    }
    urls
}

fn check_end_entity(
    cert: &X509Certificate<'_>,
) -> Result<(passport::VerifyingKey, String), CredentialError> {
    let key = passport::VerifyingKey::from_spki_der(cert.public_key().raw)
        .map_err(|_| profile(0, "the key is not an ES256 (P-256) key"))?;
    if let Ok(Some(bc)) = cert.basic_constraints() {
        if bc.value.ca {
            return Err(profile(0, "the end entity is a CA certificate"));
        }
    }
    match cert.key_usage() {
        Ok(Some(ku)) if ku.value.digital_signature() => {}
        Ok(Some(_)) => return Err(profile(0, "key usage does not allow digitalSignature")),
        _ => return Err(profile(0, "no key usage extension")),
    }
    let mut has_policy = false;
    let mut spc = None;
    for extension in cert.extensions() {
        match extension.parsed_extension() {
            ParsedExtension::CertificatePolicies(policies) => {
                has_policy = policies
                    .iter()
                    .any(|p| SHAKEN_POLICIES.contains(&p.policy_id.to_id_string().as_str()));
            }
            _ if extension.oid.to_id_string() == TN_AUTH_LIST => {
                let list = passport::TnAuthList::from_der(extension.value)
                    .map_err(|e| profile(0, format!("TNAuthList: {e}")))?;
                spc = list.entries().iter().find_map(|e| match e {
                    passport::TnEntry::Spc(s) => Some(s.clone()),
                    _ => None,
                });
            }
            _ => {}
        }
    }
    if !has_policy {
        return Err(profile(
            0,
            "no SHAKEN certificate policy (2.16.840.1.114569.1.1.3)",
        ));
    }
    let spc = spc.ok_or_else(|| profile(0, "no TNAuthList with an SPC"))?;
    Ok((key, spc))
}

/// Validates a chain (DER certificates, end entity first) at `now`.
pub fn validate(
    chain: &[Vec<u8>],
    anchors: &TrustAnchors,
    now: u64,
) -> Result<ValidatedChain, CredentialError> {
    if chain.len() > MAX_CERTIFICATES {
        return Err(CredentialError::TooManyCertificates(MAX_CERTIFICATES));
    }
    let certs: Vec<X509Certificate<'_>> = chain
        .iter()
        .enumerate()
        .map(|(index, der)| match X509Certificate::from_der(der) {
            Ok(([], cert)) => Ok(cert),
            Ok(_) => Err(CredentialError::Parse {
                index,
                detail: "trailing bytes".into(),
            }),
            Err(e) => Err(CredentialError::Parse {
                index,
                detail: e.to_string(),
            }),
        })
        .collect::<Result<_, _>>()?;
    let end_entity = certs
        .first()
        .ok_or_else(|| CredentialError::Bundle("no certificate".into()))?;
    if matches!(end_entity.basic_constraints(), Ok(Some(bc)) if bc.value.ca) {
        return Err(CredentialError::Bundle(
            "the first certificate is a CA certificate (wrong chain order)".into(),
        ));
    }
    check_validity(end_entity, 0, now)?;
    let (key, spc) = check_end_entity(end_entity)?;

    let mut links = Vec::new();
    let mut not_after = end_entity.validity().not_after.timestamp();
    let mut current = 0usize;
    for _ in 0..MAX_DEPTH {
        let cert = certs
            .get(current)
            .ok_or_else(|| CredentialError::Untrusted("broken path".into()))?;
        let issuer = cert.issuer().as_raw();
        // An anchor with that name that signed it ends the path.
        let named: Vec<&Anchor> = anchors
            .anchors
            .iter()
            .filter(|a| a.subject == issuer)
            .collect();
        if let Some(anchor) = named.iter().find(|a| signed_by(cert, &a.key)) {
            if i64::try_from(now).unwrap_or(i64::MAX) > anchor.not_after {
                return Err(CredentialError::Untrusted(format!(
                    "the trust anchor {} has expired",
                    cert.issuer()
                )));
            }
            links.push(Link {
                index: current,
                serial: cert.raw_serial().to_vec(),
                issuer: issuer.to_vec(),
                issuer_key: anchor.key,
                crl_urls: crl_urls(cert),
            });
            return Ok(ValidatedChain {
                key,
                spc,
                not_after: u64::try_from(not_after).unwrap_or(0),
                links,
            });
        }
        if !named.is_empty() {
            return Err(CredentialError::BadSignature(current));
        }
        // Otherwise an intermediate from the bundle.
        let candidates: Vec<usize> = (1..certs.len())
            .filter(|&i| {
                i != current && certs.get(i).is_some_and(|c| c.subject().as_raw() == issuer)
            })
            .collect();
        let (next, issuer_key) = candidates
            .iter()
            .find_map(|&i| {
                let candidate = certs.get(i)?;
                let key = EcdsaKey::from_public_key_der(candidate.public_key().raw).ok()?;
                signed_by(cert, &key).then_some((i, key))
            })
            .ok_or_else(|| {
                if candidates.is_empty() {
                    CredentialError::Untrusted(format!(
                        "issuer {} is neither a trust anchor nor in the bundle",
                        cert.issuer()
                    ))
                } else {
                    CredentialError::BadSignature(current)
                }
            })?;
        let ca = certs
            .get(next)
            .ok_or_else(|| CredentialError::Untrusted("broken path".into()))?;
        check_validity(ca, next, now)?;
        if !matches!(ca.basic_constraints(), Ok(Some(bc)) if bc.value.ca) {
            return Err(profile(next, "issuer is not a CA certificate"));
        }
        if let Ok(Some(ku)) = ca.key_usage() {
            if !ku.value.key_cert_sign() {
                return Err(profile(next, "issuer key usage does not allow keyCertSign"));
            }
        }
        not_after = not_after.min(ca.validity().not_after.timestamp());
        links.push(Link {
            index: current,
            serial: cert.raw_serial().to_vec(),
            issuer: issuer.to_vec(),
            issuer_key,
            crl_urls: crl_urls(cert),
        });
        current = next;
    }
    Err(CredentialError::Untrusted(format!(
        "no trust anchor within {MAX_DEPTH} links"
    )))
}

/// Splits a PEM bundle into DER certificates, capped.
pub fn bundle(pem: &[u8]) -> Result<Vec<Vec<u8>>, CredentialError> {
    let blocks = passport::pem::parse(pem, MAX_CERTIFICATES).map_err(|e| {
        if e.to_string().contains("more than") {
            CredentialError::TooManyCertificates(MAX_CERTIFICATES)
        } else {
            CredentialError::Bundle(e.to_string())
        }
    })?;
    let certs: Vec<Vec<u8>> = blocks
        .into_iter()
        .filter(|b| b.label == "CERTIFICATE")
        .map(|b| b.der)
        .collect();
    if certs.is_empty() {
        return Err(CredentialError::Bundle("no CERTIFICATE block".into()));
    }
    Ok(certs)
}
