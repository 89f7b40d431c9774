//! Verifying one call, in the standard's order (RFC 8224 §6.2, ATIS-1000074 §5.3): the
//! Identity header and token form (438), freshness against the request's `time` (403; 438 for
//! a token from the future), the certificate through the cache (436 when it cannot be
//! obtained, 437 when it is not trusted or revoked), the ES256 signature over the received
//! bytes and the call's numbers (438, `spoofed`).
//!
//! The verdict carries the flags a switch acts on: `spoofed`, `untrusted`, `revoked`, `stale`,
//! `unsigned`, `gateway` (attestation C) and `unregistered` (anything not attested A: the caller
//! ID is not vouched for as the caller's own registered number).

use std::sync::{Arc, RwLock};

use passport::identity::IdentityHeader;
use passport::verify::{self, VerifyOptions};
use passport::{Attestation, SipReason, Tn};

use crate::cache::{CacheConfig, CertificateCache, Loaded, Outcome};
use crate::chain::{self, TrustAnchors, ValidatedChain};
use crate::crl::{Crl, CrlStore};
use crate::error::{CredentialError, FetchError, VerifyError};
use crate::fetch::Fetcher;

/// A resource that is not a usable chain could not be acquired as a credential (436); a chain
/// that is usable but not acceptable stays 437.
fn unusable(error: CredentialError) -> VerifyError {
    match error {
        CredentialError::Bundle(detail) => FetchError::Unusable(detail).into(),
        CredentialError::TooManyCertificates(n) => {
            FetchError::Unusable(format!("more than {n} certificates")).into()
        }
        CredentialError::Parse { index, detail } => {
            FetchError::Unusable(format!("certificate {index} does not parse: {detail}")).into()
        }
        other => other.into(),
    }
}

/// The three verstat values (3GPP TS 24.229).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verstat {
    /// `TN-Validation-Passed`.
    Passed,
    /// `TN-Validation-Failed`.
    Failed,
    /// `No-TN-Validation`.
    NoValidation,
}

impl Verstat {
    /// The wire value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Passed => "TN-Validation-Passed",
            Self::Failed => "TN-Validation-Failed",
            Self::NoValidation => "No-TN-Validation",
        }
    }
}

/// A flag on a verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Flag {
    /// The signature does not verify, or the numbers do not match the token (438).
    Spoofed,
    /// The certificate is not trusted (437).
    Untrusted,
    /// The certificate is revoked (437).
    Revoked,
    /// `iat` is too old (403).
    Stale,
    /// No Identity header.
    Unsigned,
    /// Attestation C.
    Gateway,
    /// Not attested A by a valid token.
    Unregistered,
}

impl Flag {
    /// The wire value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Spoofed => "spoofed",
            Self::Untrusted => "untrusted",
            Self::Revoked => "revoked",
            Self::Stale => "stale",
            Self::Unsigned => "unsigned",
            Self::Gateway => "gateway",
            Self::Unregistered => "unregistered",
        }
    }
}

/// The answer for one call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// The verstat.
    pub verstat: Verstat,
    /// The SIP code and phrase, when failed.
    pub reason: Option<SipReason>,
    /// What exactly failed.
    pub detail: Option<String>,
    /// The token's attestation, when it decoded.
    pub attest: Option<Attestation>,
    /// The token's origid, when it decoded.
    pub origid: Option<String>,
    /// The signer's SPC, when its certificate validated.
    pub spc: Option<String>,
    /// The token's x5u, when it decoded.
    pub x5u: Option<String>,
    /// Flags, sorted.
    pub flags: Vec<Flag>,
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

    /// The validated chain for an x5u at `now`, through the cache.
    pub async fn credential(
        &self,
        x5u: &str,
        now: u64,
    ) -> Result<Arc<ValidatedChain>, VerifyError> {
        let trust = self
            .trust
            .read()
            .map(|t| Arc::clone(&t))
            .map_err(|_| CredentialError::Untrusted("anchors unavailable".into()))?;
        let chain = self
            .cache
            .get(x5u, now, || async {
                Outcome {
                    generation: trust.generation,
                    result: self.load(x5u, &trust.anchors, now).await,
                }
            })
            .await?;
        // A cached chain may expire while cached.
        if now > chain.not_after {
            return Err(CredentialError::Validity {
                index: 0,
                now,
                detail: "expired while cached".into(),
            }
            .into());
        }
        Ok(chain)
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
        let ders = chain::bundle(&fetched.body).map_err(unusable)?;
        let chain = chain::validate(&ders, anchors, now).map_err(unusable)?;
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
    pub async fn verify(&self, call: Call<'_>, now: u64) -> Verdict {
        let mut verdict = Verdict {
            verstat: Verstat::Failed,
            reason: None,
            detail: None,
            attest: None,
            origid: None,
            spc: None,
            x5u: None,
            flags: Vec::new(),
        };
        let Some(identity) = call.identity.filter(|i| !i.trim().is_empty()) else {
            verdict.verstat = Verstat::NoValidation;
            verdict.flags = vec![Flag::Unsigned, Flag::Unregistered];
            return verdict;
        };
        let outcome = self.check(call, identity, now, &mut verdict).await;
        match outcome {
            Ok(()) => {
                verdict.verstat = Verstat::Passed;
                match verdict.attest {
                    Some(Attestation::A) => {}
                    Some(Attestation::B) => verdict.flags.push(Flag::Unregistered),
                    _ => verdict.flags.extend([Flag::Gateway, Flag::Unregistered]),
                }
            }
            Err(error) => {
                verdict.reason = Some(error.sip_reason());
                verdict.detail = Some(error.to_string());
                match &error {
                    VerifyError::Passport(passport::Error::Stale { .. })
                    | VerifyError::RequestTime { .. } => verdict.flags.push(Flag::Stale),
                    VerifyError::Passport(
                        passport::Error::BadSignature
                        | passport::Error::OrigMismatch { .. }
                        | passport::Error::DestMismatch(_),
                    ) => verdict.flags.push(Flag::Spoofed),
                    VerifyError::Credential(CredentialError::Revoked { .. }) => {
                        verdict.flags.push(Flag::Revoked)
                    }
                    VerifyError::Credential(_) => verdict.flags.push(Flag::Untrusted),
                    _ => {}
                }
                if verdict.attest == Some(Attestation::C) {
                    verdict.flags.push(Flag::Gateway);
                }
                verdict.flags.push(Flag::Unregistered);
            }
        }
        verdict.flags.sort();
        verdict
    }

    async fn check(
        &self,
        call: Call<'_>,
        identity: &str,
        now: u64,
        verdict: &mut Verdict,
    ) -> Result<(), VerifyError> {
        let parsed = IdentityHeader::parse(identity)?;
        let passport = parsed.passport();
        let claims = passport.claims();
        verdict.attest = claims.attest;
        verdict.origid = claims.origid.as_ref().map(ToString::to_string);
        verdict.x5u = Some(passport.header().x5u.clone());
        verify::check_shaken_form(passport)?;
        let skew = call.time.abs_diff(now);
        if skew > self.windows.request_time_skew {
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
        let chain = self.credential(&passport.header().x5u, now).await?;
        verdict.spc = Some(chain.spc.clone());
        passport.verify_signature(&chain.key)?;
        verify::check_parties(passport, Some(call.from), call.to)?;
        Ok(())
    }
}
