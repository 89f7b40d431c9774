//! Revocation: CRLs from the certificates' distribution points (fetched through the safe
//! fetcher and cached until their nextUpdate) and CRL files configured locally.
//!
//! A CRL is used only after its signature verifies with the key of the CA that issued the
//! certificate being checked, and only before its `nextUpdate` (RFC 5280 §6.3.3: past it, the
//! status is undetermined). When no usable CRL can be obtained, the certificate is accepted
//! unless revocation is required by configuration (`require_revocation`), which makes that a
//! 437. A check reports the earliest `nextUpdate` of the CRLs it used, which bounds how long
//! the certificate cache may keep the chain. Fetched CRLs are kept in a bounded store.

use std::sync::RwLock;

use p256::ecdsa::signature::Verifier as _;
use p256::ecdsa::{DerSignature, VerifyingKey as EcdsaKey};
use x509_parser::prelude::FromDer;
use x509_parser::revocation_list::CertificateRevocationList;

use crate::chain::{Link, ValidatedChain};
use crate::error::CredentialError;
use crate::fetch::Fetcher;

/// A parsed CRL.
#[derive(Clone, Debug)]
pub struct Crl {
    issuer: Vec<u8>,
    tbs: Vec<u8>,
    signature: Vec<u8>,
    algorithm: String,
    /// nextUpdate, seconds since the epoch.
    pub next_update: Option<u64>,
    revoked: Vec<Vec<u8>>,
}

impl Crl {
    /// Parses a DER (or PEM `X509 CRL`) CRL.
    pub fn parse(bytes: &[u8]) -> Result<Self, String> {
        let der = if bytes.starts_with(b"-----") {
            let blocks = passport::pem::parse(bytes, 1).map_err(|e| e.to_string())?;
            blocks
                .into_iter()
                .find(|b| b.label == "X509 CRL")
                .map(|b| b.der)
                .ok_or("no X509 CRL block")?
        } else {
            bytes.to_vec()
        };
        let (rest, crl) = CertificateRevocationList::from_der(&der)
            .map_err(|e| format!("CRL does not parse: {e}"))?;
        if !rest.is_empty() {
            return Err("trailing bytes after the CRL".into());
        }
        Ok(Self {
            issuer: crl.issuer().as_raw().to_vec(),
            tbs: crl.tbs_cert_list.as_ref().to_vec(),
            signature: crl.signature_value.data.to_vec(),
            algorithm: crl.signature_algorithm.algorithm.to_id_string(),
            next_update: crl
                .next_update()
                .map(|t| u64::try_from(t.timestamp()).unwrap_or(0)),
            revoked: crl
                .iter_revoked_certificates()
                .map(|r| r.raw_serial().to_vec())
                .collect(),
        })
    }

    /// Whether `key` signed it.
    pub fn signed_by(&self, key: &EcdsaKey) -> bool {
        self.algorithm == "1.2.840.10045.4.3.2"
            && DerSignature::from_bytes(&self.signature)
                .is_ok_and(|s| key.verify(&self.tbs, &s).is_ok())
    }

    /// Whether a serial is listed.
    pub fn lists(&self, serial: &[u8]) -> bool {
        self.revoked.iter().any(|s| s == serial)
    }
}

/// Where CRLs come from, and the cache of fetched ones.
pub struct CrlStore {
    local: RwLock<Vec<Crl>>,
    fetched: moka::sync::Cache<String, Crl>,
    /// Refuse certificates whose revocation status cannot be obtained.
    pub require_revocation: bool,
}

impl std::fmt::Debug for CrlStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CrlStore")
            .field("require_revocation", &self.require_revocation)
            .finish_non_exhaustive()
    }
}

impl Default for CrlStore {
    fn default() -> Self {
        Self::new(Vec::new(), false)
    }
}

/// How long a fetched CRL without nextUpdate is kept.
const DEFAULT_CRL_TTL: u64 = 3600;
/// The most fetched CRLs kept (one per issuing CA whose certificates are seen).
const FETCHED_CAPACITY: u64 = 1024;

/// Whether a CRL may be used at `now`: before its nextUpdate.
fn current(crl: &Crl, now: u64) -> bool {
    crl.next_update.is_none_or(|next| now < next)
}

impl CrlStore {
    /// A store with local CRLs.
    pub fn new(local: Vec<Crl>, require_revocation: bool) -> Self {
        Self {
            local: RwLock::new(local),
            fetched: moka::sync::Cache::new(FETCHED_CAPACITY),
            require_revocation,
        }
    }

    /// Replaces the local CRLs and forgets fetched ones (reload).
    pub fn replace_local(&self, local: Vec<Crl>) {
        if let Ok(mut current) = self.local.write() {
            *current = local;
        }
        self.fetched.invalidate_all();
    }

    async fn crl_for(
        &self,
        link: &Link,
        fetcher: &Fetcher,
        now: u64,
    ) -> Result<Option<Crl>, String> {
        if let Ok(local) = self.local.read() {
            if let Some(crl) = local.iter().find(|c| {
                c.issuer == link.issuer && current(c, now) && c.signed_by(&link.issuer_key)
            }) {
                return Ok(Some(crl.clone()));
            }
        }
        let Some(url) = link.crl_urls.first() else {
            return Ok(None);
        };
        if let Some(crl) = self.fetched.get(url) {
            if current(&crl, now) {
                return Ok(Some(crl));
            }
        }
        let body = fetcher.fetch(url).await.map_err(|e| e.to_string())?;
        let mut crl = Crl::parse(&body.body)?;
        if crl.issuer != link.issuer || !crl.signed_by(&link.issuer_key) {
            return Err(format!(
                "the CRL at {url} is not signed by the certificate's issuer"
            ));
        }
        if !current(&crl, now) {
            return Err(format!("the CRL at {url} is past its nextUpdate"));
        }
        if crl.next_update.is_none() {
            crl.next_update = Some(now + DEFAULT_CRL_TTL);
        }
        self.fetched.insert(url.clone(), crl.clone());
        Ok(Some(crl))
    }

    /// Checks every link of a validated chain; returns the earliest nextUpdate of the CRLs
    /// used (none when no CRL with a nextUpdate was used).
    pub async fn check(
        &self,
        chain: &ValidatedChain,
        fetcher: &Fetcher,
        now: u64,
    ) -> Result<Option<u64>, CredentialError> {
        let mut earliest: Option<u64> = None;
        for link in &chain.links {
            let found = self.crl_for(link, fetcher, now).await;
            if let Ok(Some(crl)) = &found {
                if let Some(next) = crl.next_update {
                    earliest = Some(earliest.map_or(next, |e| e.min(next)));
                }
            }
            match found {
                Ok(Some(crl)) if crl.lists(&link.serial) => {
                    let serial = link.serial.iter().map(|b| format!("{b:02X}")).collect();
                    return Err(CredentialError::Revoked {
                        index: link.index,
                        serial,
                    });
                }
                Ok(Some(_)) => {}
                Ok(None) | Err(_) if !self.require_revocation => {}
                Ok(None) => {
                    return Err(CredentialError::RevocationUnavailable {
                        index: link.index,
                        detail: "no CRL distribution point and no local CRL".into(),
                    })
                }
                Err(detail) => {
                    return Err(CredentialError::RevocationUnavailable {
                        index: link.index,
                        detail,
                    })
                }
            }
        }
        Ok(earliest)
    }
}
