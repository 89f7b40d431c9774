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

pub use pki::Crl;
use pki::{Link, ValidatedChain};

use crate::error::{CredentialError, Unavailable};
use crate::fetch::Fetcher;

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
    ) -> Result<Option<Crl>, Unavailable> {
        if let Ok(local) = self.local.read() {
            if let Some(crl) = local.iter().find(|c| {
                c.issuer() == link.issuer && c.current_at(now) && c.signed_by(&link.issuer_key)
            }) {
                return Ok(Some(crl.clone()));
            }
        }
        let Some(url) = link.crl_urls.first() else {
            return Ok(None);
        };
        if let Some(crl) = self.fetched.get(url) {
            if crl.current_at(now) {
                // Cached under its URL, it may still be another CA's CRL than this
                // certificate's issuer (whose distribution point names that URL).
                if crl.issuer() != link.issuer || !crl.signed_by(&link.issuer_key) {
                    return Err(Unavailable::WrongIssuer(url.clone()));
                }
                return Ok(Some(crl));
            }
        }
        let body = fetcher.fetch(url).await.map_err(Unavailable::Fetch)?;
        let mut crl = Crl::parse(&body.body).map_err(|error| Unavailable::Unusable {
            url: url.clone(),
            error,
        })?;
        if crl.issuer() != link.issuer || !crl.signed_by(&link.issuer_key) {
            return Err(Unavailable::WrongIssuer(url.clone()));
        }
        if !crl.current_at(now) {
            return Err(Unavailable::PastNextUpdate(url.clone()));
        }
        if crl.next_update.is_none() {
            crl.next_update = Some(now.saturating_add(DEFAULT_CRL_TTL));
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
                        reason: Unavailable::NoCrl,
                    })
                }
                Err(reason) => {
                    return Err(CredentialError::RevocationUnavailable {
                        index: link.index,
                        reason,
                    })
                }
            }
        }
        Ok(earliest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000;

    fn read(relative: &str) -> Vec<u8> {
        std::fs::read(certs_test::path(relative)).unwrap_or_default()
    }

    fn links(chain: &str, root: &str) -> Vec<Link> {
        let ders = passport::cert::chain_from_pem(&read(chain)).unwrap_or_default();
        let anchors = pki::TrustAnchors::from_pem(&read(root)).unwrap_or_default();
        pki::path::validate(&ders, &anchors, NOW)
            .map(|c| c.links)
            .unwrap_or_default()
    }

    #[tokio::test]
    async fn a_cached_crl_is_used_only_for_certificates_of_its_issuer() {
        let store = CrlStore::default();
        let fetcher = Fetcher::new(crate::fetch::FetchPolicy::default(), &[])
            .unwrap_or_else(|e| panic!("{e}"));
        let ours = links("sp/1001/chain.pem", "ca/root.pem");
        let theirs = links("untrusted/chain.pem", "untrusted/root.pem");
        let (Some(ours), Some(theirs)) = (ours.first(), theirs.first()) else {
            panic!("both chains validate against their own roots")
        };
        // The test CA's CRL, cached under the URL the other CA's certificate also names.
        let crl = Crl::parse(&read("ca/intermediate.crl")).unwrap_or_else(|e| panic!("{e}"));
        let url = theirs.crl_urls.first().cloned().unwrap_or_default();
        store.fetched.insert(url.clone(), crl.clone());
        assert!(matches!(
            store.crl_for(theirs, &fetcher, NOW).await,
            Err(Unavailable::WrongIssuer(u)) if u == url
        ));
        // For a certificate of its own issuer, the cached CRL is used.
        let own_url = ours.crl_urls.first().cloned().unwrap_or_default();
        store.fetched.insert(own_url, crl);
        assert!(matches!(
            store.crl_for(ours, &fetcher, NOW).await,
            Ok(Some(_))
        ));
    }
}
