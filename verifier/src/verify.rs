//! Verifying one call, in the standard's order (RFC 8224 §6.2, ATIS-1000074 §5.3): the
//! Identity header and token form (438), the request's `time` against the verifier's clock
//! (403), freshness of `iat` against that `time` (403; 438 for a token from the future), the
//! certificate through the cache (436 when it cannot be obtained, 437 when it is not trusted or
//! revoked), the ES256 signature over the received bytes and the call's numbers (438,
//! `spoofed`). The verdict and its flags are made in [`crate::verdict`].

use std::sync::{Arc, RwLock};

use passport::identity::IdentityHeader;
use passport::verify::{self, VerifyOptions};
use passport::Tn;
use pki::{TrustAnchors, ValidatedChain};

use crate::cache::{CacheConfig, Cached, CertificateCache, Loaded};
use crate::crl::{Crl, CrlStore};
use crate::error::{CredentialError, FetchError, VerifyError};
use crate::fetch::Fetcher;
use crate::verdict::{Rcd, RcdSource, Seen, Verdict, Verstat};

/// A bundle that is not a certificate chain (not PEM, no certificate, another kind of block,
/// too many certificates, a CA certificate first) could not be acquired as a credential (436);
/// a chain whose certificates are not acceptable, including one that does not parse, is 437.
fn chain_error(error: pki::Error) -> VerifyError {
    match error {
        pki::Error::Bundle(_) | pki::Error::TooManyCertificates(_) | pki::Error::WrongOrder => {
            FetchError::Unusable(error).into()
        }
        other => CredentialError::Chain(other).into(),
    }
}

/// One call to verify.
#[derive(Clone, Copy, Debug)]
pub struct Call<'a> {
    /// The calling number (canonical).
    pub from: &'a Tn,
    /// The called numbers (canonical).
    pub to: &'a [Tn],
    /// When the INVITE arrived, as the request says (the SBC fills it, often from the
    /// INVITE's `Date`, which the caller controls): checked against the verifier's own clock,
    /// then used as the reference for `iat`.
    pub time: u64,
    /// The Identity header value, if any.
    pub identity: Option<&'a str>,
}

/// The time windows of a verification, in seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Windows {
    /// Oldest acceptable `iat`, before the request's `time` (403 Stale Date beyond).
    pub max_age: u64,
    /// Newest acceptable `iat`, after the request's `time` (438 beyond).
    pub max_future: u64,
    /// How far the request's `time` may be from the verifier's own clock, either way (403
    /// Stale Date beyond): RFC 8224 §6.2 step 4 checks the INVITE's `Date` against the
    /// verifier's clock, so a captured token cannot be replayed with a back-dated `time`.
    pub request_time_skew: u64,
}

/// The default request-time skew, in seconds.
pub const DEFAULT_REQUEST_TIME_SKEW: u64 = 60;

impl Default for Windows {
    fn default() -> Self {
        Self {
            max_age: passport::verify::DEFAULT_MAX_AGE,
            max_future: passport::verify::DEFAULT_MAX_FUTURE,
            request_time_skew: DEFAULT_REQUEST_TIME_SKEW,
        }
    }
}

/// The trust in force: the anchors, and the cache generation they belong to.
#[derive(Debug)]
struct Trust {
    anchors: TrustAnchors,
    generation: u64,
}

/// The verifier: fetcher, certificate cache, trust anchors, CRLs and time windows.
#[derive(Debug)]
pub struct Verifier {
    fetcher: Fetcher,
    cache: CertificateCache,
    trust: RwLock<Arc<Trust>>,
    crls: CrlStore,
    windows: Windows,
    /// Time to fetch a chain from a repository.
    pub fetch_latency: rest::metrics::Histogram,
}

impl Verifier {
    /// A verifier.
    pub fn new(
        fetcher: Fetcher,
        cache: CacheConfig,
        anchors: TrustAnchors,
        crls: CrlStore,
        windows: Windows,
    ) -> Self {
        let cache = CertificateCache::new(cache);
        let generation = cache.generation();
        Self {
            fetcher,
            cache,
            trust: RwLock::new(Arc::new(Trust {
                anchors,
                generation,
            })),
            crls,
            windows,
            fetch_latency: rest::metrics::Histogram::default(),
        }
    }

    /// The certificate cache (for metrics and tests).
    pub fn cache(&self) -> &CertificateCache {
        &self.cache
    }

    /// The CRL store.
    pub fn crls(&self) -> &CrlStore {
        &self.crls
    }

    /// Replaces the trust anchors and the local CRLs (a reload) and empties the cache. A chain
    /// being fetched meanwhile is judged against the trust its call started with and is not
    /// stored: the next call fetches it again and validates it against the new trust.
    pub fn reload(&self, anchors: TrustAnchors, local_crls: Vec<Crl>) {
        let Ok(mut trust) = self.trust.write() else {
            return;
        };
        self.crls.replace_local(local_crls);
        let generation = self.cache.clear();
        *trust = Arc::new(Trust {
            anchors,
            generation,
        });
    }

    /// The validated chain for an x5u at `now`, through the cache (a chain not yet proven by a
    /// signature stays in the cache's probation).
    pub async fn credential(
        &self,
        x5u: &str,
        now: u64,
    ) -> Result<Arc<ValidatedChain>, VerifyError> {
        self.cached(x5u, now).await.map(|(cached, _)| cached.chain)
    }

    /// As [`Verifier::credential`], for a URL the operator vouches for (the `warm_up` list):
    /// the chain is stored as proven at once.
    pub async fn warm_up(&self, x5u: &str, now: u64) -> Result<Arc<ValidatedChain>, VerifyError> {
        let (cached, generation) = self.cached(x5u, now).await?;
        self.cache.confirm(x5u, generation);
        Ok(cached.chain)
    }

    /// The cached chain and the generation of the trust it was judged against.
    async fn cached(&self, x5u: &str, now: u64) -> Result<(Cached, u64), VerifyError> {
        let trust = self
            .trust
            .read()
            .map(|t| Arc::clone(&t))
            .map_err(|_| CredentialError::Chain(pki::Error::NoAnchors))?;
        let cached = self
            .cache
            .get(x5u, now, trust.generation, || {
                self.load(x5u, &trust.anchors, now)
            })
            .await?;
        // The cache never serves an entry past its chain's notAfter; this guards the rule.
        let not_after = cached.chain.not_after;
        if now > not_after {
            return Err(CredentialError::Chain(pki::Error::Expired {
                index: 0,
                not_after: i64::try_from(not_after).unwrap_or(i64::MAX),
                now,
            })
            .into());
        }
        Ok((cached, trust.generation))
    }

    /// Fetches, validates and checks revocation: what the cache stores, and until when.
    async fn load(
        &self,
        x5u: &str,
        anchors: &TrustAnchors,
        now: u64,
    ) -> Result<Loaded, VerifyError> {
        let started = std::time::Instant::now();
        let fetched = self.fetcher.fetch(x5u).await;
        self.fetch_latency.observe(started.elapsed());
        let fetched = fetched?;
        let ders = passport::cert::chain_from_pem(&fetched.body)
            .map_err(|e| chain_error(pki::Error::Bundle(e)))?;
        let chain = pki::path::validate(&ders, anchors, now).map_err(chain_error)?;
        let crl_next_update = self.crls.check(&chain, &self.fetcher, now).await?;
        let valid_until = crl_next_update.map_or(chain.not_after, |n| n.min(chain.not_after));
        Ok(Loaded {
            chain,
            max_age: fetched.max_age,
            valid_until,
        })
    }

    /// Verifies one call at `now`, the verifier's own clock (seconds since the epoch), which
    /// judges the request's `time`, certificate validity, revocation and cache lifetimes.
    /// A passed verdict carries the `shaken` PASSporT's own Rich Call Data, if any.
    pub async fn verify(&self, call: Call<'_>, now: u64) -> Verdict {
        let Some(identity) = call.identity.filter(|i| !i.trim().is_empty()) else {
            return Verdict::unsigned();
        };
        let mut seen = Seen::default();
        match self.check(call, identity, now, &mut seen).await {
            Ok(()) => Verdict::passed(seen),
            Err(error) => Verdict::failed(&error, seen),
        }
    }

    /// [`Verifier::verify`] for a call that also carried `rcd_identities`, Identity headers
    /// with `ppt=rcd` (RFC 9795). The verdict is exactly [`Verifier::verify`]'s: a Rich Call
    /// Data PASSporT never changes it. When the verdict passed and the `shaken` PASSporT
    /// carried no Rich Call Data, the first of `rcd_identities` that verifies (a certificate
    /// this verifier accepts, through the same cache and path validation; a fresh `iat`
    /// against the request's `time`; the signature; `orig` and `dest` matching the call)
    /// gives the verdict's [`Verdict::rcd`], with [`RcdSource::RcdPassport`]. Failures are
    /// logged at debug level (their SIP class only) and otherwise ignored.
    pub async fn verify_with_rcd(
        &self,
        call: Call<'_>,
        rcd_identities: &[String],
        now: u64,
    ) -> Verdict {
        let mut verdict = self.verify(call, now).await;
        if verdict.verstat != Verstat::Passed || verdict.rcd.is_some() {
            return verdict;
        }
        for identity in rcd_identities {
            match self.check_rcd(call, identity, now).await {
                Ok(rcd) => {
                    verdict.rcd = Some(rcd);
                    break;
                }
                // Only the class of failure: the error names numbers, which are identity data.
                Err(error) => {
                    tracing::debug!(reason = %crate::verdict::judge(&error).0, "rcd PASSporT not accepted")
                }
            }
        }
        verdict
    }

    /// The checks of [`Verifier::check`] for a `ppt=rcd` PASSporT (the request's `time` was
    /// already found near the verifier's clock by the `shaken` check).
    async fn check_rcd(
        &self,
        call: Call<'_>,
        identity: &str,
        now: u64,
    ) -> Result<Rcd, VerifyError> {
        let parsed = IdentityHeader::parse(identity)?;
        let passport = parsed.passport();
        verify::check_rcd_form(passport)?;
        let options = VerifyOptions {
            now: call.time,
            max_age: self.windows.max_age,
            max_future: self.windows.max_future,
        };
        verify::check_freshness(passport.claims().iat, &options)?;
        let x5u = &passport.header().x5u;
        let (cached, generation) = self.cached(x5u, now).await?;
        passport.verify_signature(&cached.chain.key)?;
        if !cached.proven {
            self.cache.confirm(x5u, generation);
        }
        verify::check_parties(passport, Some(call.from), call.to)?;
        Rcd::from_claims(passport.claims(), RcdSource::RcdPassport).ok_or(VerifyError::Token(
            passport::TokenError::MissingClaim("rcd"),
        ))
    }

    async fn check(
        &self,
        call: Call<'_>,
        identity: &str,
        now: u64,
        seen: &mut Seen,
    ) -> Result<(), VerifyError> {
        let parsed = IdentityHeader::parse(identity)?;
        let passport = parsed.passport();
        let claims = passport.claims();
        seen.attest = claims.attest;
        seen.origid = claims.origid.as_ref().map(ToString::to_string);
        seen.x5u = Some(passport.header().x5u.clone());
        if claims.rcd.is_some() {
            seen.rcd = Rcd::from_claims(claims, RcdSource::InShaken);
        }
        verify::check_shaken_form(passport)?;
        if call.time.abs_diff(now) > self.windows.request_time_skew {
            return Err(VerifyError::RequestTime {
                time: call.time,
                now,
                allowed: self.windows.request_time_skew,
            });
        }
        let options = VerifyOptions {
            now: call.time,
            max_age: self.windows.max_age,
            max_future: self.windows.max_future,
        };
        verify::check_freshness(claims.iat, &options)?;
        let x5u = &passport.header().x5u;
        let (cached, generation) = self.cached(x5u, now).await?;
        seen.spc = Some(cached.chain.spc.clone());
        passport.verify_signature(&cached.chain.key)?;
        // A chain a signature verified with leaves probation: a flood of forged tokens whose
        // x5u serves some real public chain never displaces proven ones.
        if !cached.proven {
            self.cache.confirm(x5u, generation);
        }
        verify::check_parties(passport, Some(call.from), call.to)?;
        Ok(())
    }
}
