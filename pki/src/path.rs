//! Building and checking the path from a SHAKEN end-entity certificate to a trusted STI-CA
//! root, with the work capped by an explicit [`Budget`] (modelled on rustls-webpki's).
//!
//! The end entity (first certificate) must be valid at the reference time and pass the STI
//! certificate profile ([`crate::profile::end_entity_errors`]: any error refuses it). The path
//! is built upward by issuer name: at each step a trust anchor of that name that signed the
//! certificate ends the path (the anchor must not have expired); otherwise an intermediate from
//! the bundle that signed it continues it, and must be valid, flagged CA and allowed to sign
//! certificates. Signatures are ECDSA P-256 with SHA-256 only. Every signature check spends the
//! budget, and so does every link: running out is an error of its own.

use p256::ecdsa::signature::Verifier as _;
use p256::ecdsa::{DerSignature, VerifyingKey as EcdsaKey};
use p256::pkcs8::DecodePublicKey;
use x509_parser::extensions::{DistributionPointName, GeneralName, ParsedExtension};
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::anchors::TrustAnchors;
use crate::error::Error;
use crate::oid;
use crate::profile::{self, Finding, Rule};

/// The most certificates accepted in a bundle (as many as the PEM chain splitter reads).
pub const MAX_CERTIFICATES: usize = passport::cert::MAX_CHAIN_CERTIFICATES;

/// The work one path may cost.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget {
    /// Signature checks (each candidate issuer tried costs one).
    pub signatures: usize,
    /// Links walked from the end entity towards an anchor.
    pub depth: usize,
}

impl Default for Budget {
    /// 16 signature checks, 4 links: a SHAKEN path is an end entity, at most two
    /// intermediates and a root.
    fn default() -> Self {
        Self {
            signatures: 16,
            depth: 4,
        }
    }
}

/// One link of a validated chain, with what revocation checking needs.
#[derive(Clone, Debug)]
pub struct Link {
    /// Position in the bundle.
    pub index: usize,
    /// Serial number bytes, as encoded.
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
    /// The earliest notAfter of the path, seconds since the epoch.
    pub not_after: u64,
    /// The certificates below the anchor, end entity first.
    pub links: Vec<Link>,
}

fn check_validity(cert: &X509Certificate<'_>, index: usize, now: u64) -> Result<(), Error> {
    let now_i = i64::try_from(now).unwrap_or(i64::MAX);
    let validity = cert.validity();
    let (not_before, not_after) = (
        validity.not_before.timestamp(),
        validity.not_after.timestamp(),
    );
    if now_i < not_before {
        return Err(Error::NotYetValid {
            index,
            not_before,
            now,
        });
    }
    if now_i > not_after {
        return Err(Error::Expired {
            index,
            not_after,
            now,
        });
    }
    Ok(())
}

/// What is left of a budget.
struct Spending {
    budget: Budget,
    signatures: usize,
}

impl Spending {
    /// Spends one signature check, then checks that `key` signed `cert` with ECDSA-SHA256.
    fn signed_by(&mut self, cert: &X509Certificate<'_>, key: &EcdsaKey) -> Result<bool, Error> {
        self.signatures = self
            .signatures
            .checked_sub(1)
            .ok_or(Error::SignatureBudget(self.budget.signatures))?;
        if !oid::is(&cert.signature_algorithm.algorithm, &oid::ECDSA_WITH_SHA256) {
            return Ok(false);
        }
        let Ok(signature) = DerSignature::from_bytes(&cert.signature_value.data) else {
            return Ok(false);
        };
        Ok(key
            .verify(cert.tbs_certificate.as_ref(), &signature)
            .is_ok())
    }
}

/// The URIs of a certificate's CRL distribution points.
pub fn crl_urls(cert: &X509Certificate<'_>) -> Vec<String> {
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

fn profile_error(rule: Rule, message: &str) -> Error {
    Error::Profile {
        index: 0,
        findings: vec![Finding {
            rule,
            message: message.to_owned(),
        }],
    }
}

/// The end entity's ES256 key and SPC, once its profile is clean.
fn end_entity(cert: &X509Certificate<'_>) -> Result<(passport::VerifyingKey, String), Error> {
    let findings = profile::end_entity_errors(cert);
    if !findings.is_empty() {
        return Err(Error::Profile { index: 0, findings });
    }
    // The profile checked both; these can only fail if the two readers disagree.
    let key = passport::VerifyingKey::from_spki_der(cert.public_key().raw)
        .map_err(|_| profile_error(Rule::PublicKey, "the key is not an ES256 (P-256) key"))?;
    let spc = cert
        .extensions()
        .iter()
        .find(|e| oid::is(&e.oid, &oid::TN_AUTH_LIST))
        .and_then(|e| passport::TnAuthList::from_der(e.value).ok())
        .and_then(|list| list.single_spc().map(str::to_owned))
        .ok_or_else(|| profile_error(Rule::TnAuthList, "no TNAuthList with one SPC"))?;
    Ok((key, spc))
}

/// Validates a chain (DER certificates, end entity first) at `now`, within the default budget.
pub fn validate(
    chain: &[Vec<u8>],
    anchors: &TrustAnchors,
    now: u64,
) -> Result<ValidatedChain, Error> {
    validate_within(chain, anchors, now, Budget::default())
}

/// Validates a chain at `now` within `budget`.
pub fn validate_within(
    chain: &[Vec<u8>],
    anchors: &TrustAnchors,
    now: u64,
    budget: Budget,
) -> Result<ValidatedChain, Error> {
    if chain.len() > MAX_CERTIFICATES {
        return Err(Error::TooManyCertificates(MAX_CERTIFICATES));
    }
    let certs: Vec<X509Certificate<'_>> = chain
        .iter()
        .enumerate()
        .map(|(index, der)| match X509Certificate::from_der(der) {
            Ok(([], cert)) => Ok(cert),
            Ok(_) => Err(Error::Parse {
                index,
                detail: "trailing bytes".into(),
            }),
            Err(e) => Err(Error::Parse {
                index,
                detail: e.to_string(),
            }),
        })
        .collect::<Result<_, _>>()?;
    let first = certs.first().ok_or(Error::Bundle(
        passport::cert::CertificateError::NoCertificate,
    ))?;
    if matches!(first.basic_constraints(), Ok(Some(bc)) if bc.value.ca) {
        return Err(Error::WrongOrder);
    }
    check_validity(first, 0, now)?;
    let (key, spc) = end_entity(first)?;

    let mut spending = Spending {
        budget,
        signatures: budget.signatures,
    };
    let mut links = Vec::new();
    let mut not_after = first.validity().not_after.timestamp();
    let mut current = 0usize;
    for _ in 0..budget.depth {
        let cert = certs.get(current).ok_or(Error::PathTooLong(budget.depth))?;
        let issuer = cert.issuer().as_raw();
        let link = |issuer_key: EcdsaKey| Link {
            index: current,
            serial: cert.raw_serial().to_vec(),
            issuer: issuer.to_vec(),
            issuer_key,
            crl_urls: crl_urls(cert),
        };
        // An anchor with that name that signed it ends the path.
        let mut named = false;
        for anchor in anchors.anchors.iter().filter(|a| a.subject == issuer) {
            named = true;
            if spending.signed_by(cert, &anchor.key)? {
                if i64::try_from(now).unwrap_or(i64::MAX) > anchor.not_after {
                    return Err(Error::AnchorExpired(cert.issuer().to_string()));
                }
                links.push(link(anchor.key));
                return Ok(ValidatedChain {
                    key,
                    spc,
                    not_after: u64::try_from(not_after).unwrap_or(0),
                    links,
                });
            }
        }
        if named {
            return Err(Error::BadSignature(current));
        }
        // Otherwise an intermediate from the bundle.
        let mut next = None;
        let (mut candidates, mut without_key) = (0, None);
        for (i, candidate) in certs.iter().enumerate().skip(1) {
            if i == current || candidate.subject().as_raw() != issuer {
                continue;
            }
            candidates += 1;
            let Ok(candidate_key) = EcdsaKey::from_public_key_der(candidate.public_key().raw)
            else {
                without_key = Some(i);
                continue;
            };
            if spending.signed_by(cert, &candidate_key)? {
                next = Some((i, candidate, candidate_key));
                break;
            }
        }
        let Some((next, ca, issuer_key)) = next else {
            return Err(match (candidates, without_key) {
                (0, _) => Error::UnknownIssuer {
                    index: current,
                    issuer: cert.issuer().to_string(),
                },
                // Every candidate of that name had a key that is not P-256.
                (1, Some(i)) => Error::IssuerKey(i),
                _ => Error::BadSignature(current),
            });
        };
        check_validity(ca, next, now)?;
        // RFC 5280 §4.2: a certificate with a critical extension the validator does not know
        // must be refused. (The end entity's profile refuses any extension outside the STI
        // set, critical or not.)
        if let Some(unknown) = ca.extensions().iter().find(|e| {
            e.critical
                && !oid::STI_EXTENSIONS
                    .iter()
                    .any(|known| oid::is(&e.oid, known))
        }) {
            return Err(Error::UnknownCriticalExtension {
                index: next,
                oid: unknown.oid.to_id_string(),
            });
        }
        if !matches!(ca.basic_constraints(), Ok(Some(bc)) if bc.value.ca) {
            return Err(Error::IssuerNotCa(next));
        }
        if let Ok(Some(ku)) = ca.key_usage() {
            if !ku.value.key_cert_sign() {
                return Err(Error::IssuerKeyUsage(next));
            }
        }
        not_after = not_after.min(ca.validity().not_after.timestamp());
        links.push(link(issuer_key));
        current = next;
    }
    Err(Error::PathTooLong(budget.depth))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000;

    fn read(relative: &str) -> Vec<u8> {
        std::fs::read(certs_test::path(relative)).unwrap_or_default()
    }

    fn chain(relative: &str) -> Vec<Vec<u8>> {
        passport::cert::chain_from_pem(&read(relative)).unwrap_or_default()
    }

    fn anchors() -> TrustAnchors {
        TrustAnchors::from_pem(&read("ca/root.pem")).unwrap_or_default()
    }

    #[test]
    fn the_test_pki_chain_validates_with_its_spc_and_crl_urls() {
        let validated = validate(&chain("sp/1001/chain.pem"), &anchors(), NOW);
        let Ok(validated) = validated else {
            panic!("{validated:?}")
        };
        assert_eq!(validated.spc, "1001");
        assert_eq!(validated.links.len(), 2, "end entity and intermediate");
        assert!(validated.links.iter().all(|l| !l.crl_urls.is_empty()));
    }

    #[test]
    fn each_failure_has_its_own_error() {
        let good = chain("sp/1001/chain.pem");
        assert!(matches!(
            validate(&chain("expired/chain.pem"), &anchors(), NOW),
            Err(Error::Expired { index: 0, .. })
        ));
        assert!(matches!(
            validate(&chain("untrusted/chain.pem"), &anchors(), NOW),
            Err(Error::UnknownIssuer { index: 1, .. })
        ));
        let reversed: Vec<Vec<u8>> = good.iter().rev().cloned().collect();
        assert_eq!(
            validate(&reversed, &anchors(), NOW).err(),
            Some(Error::WrongOrder)
        );
        let only_end_entity = vec![good[0].clone()];
        assert!(matches!(
            validate(&only_end_entity, &anchors(), NOW),
            Err(Error::UnknownIssuer { index: 0, .. })
        ));
        let nine = vec![good[0].clone(); 9];
        assert_eq!(
            validate(&nine, &anchors(), NOW).err(),
            Some(Error::TooManyCertificates(8))
        );
    }

    #[test]
    fn the_budget_caps_signature_checks_and_links() {
        let good = chain("sp/1001/chain.pem");
        let tight = Budget {
            signatures: 1,
            depth: 4,
        };
        assert_eq!(
            validate_within(&good, &anchors(), NOW, tight).err(),
            Some(Error::SignatureBudget(1))
        );
        let short = Budget {
            signatures: 16,
            depth: 1,
        };
        assert_eq!(
            validate_within(&good, &anchors(), NOW, short).err(),
            Some(Error::PathTooLong(1))
        );
        // The same intermediate seven times: each is tried once per link, within the budget.
        let mut padded = good.clone();
        padded.extend(std::iter::repeat_n(good[1].clone(), 6));
        assert!(validate(&padded, &anchors(), NOW).is_ok());
    }
}
