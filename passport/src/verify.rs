//! The checks a verification service makes on a SHAKEN PASSporT, in the standard's order
//! (RFC 8224 §6.2, ATIS-1000074 §5.3): form and claims (438), freshness (403, or 438 for a
//! token from the future), signature (438), then the call's numbers (438).
//!
//! The steps are separate functions because the verifier fetches and validates the
//! certificate (436/437) between freshness and signature; [`verify_shaken`] runs them all for
//! a caller that already holds the key.

use crate::claims::Party;
use crate::error::TokenError;
use crate::header::{ALG_ES256, PPT_SHAKEN};
use crate::identity::IdentityHeader;
use crate::keys::VerifyingKey;
use crate::rcd::PPT_RCD;
use crate::tn::Tn;
use crate::token::Passport;

/// The freshness window RFC 8224 recommends, in seconds.
pub const DEFAULT_MAX_AGE: u64 = 60;
/// How far ahead of the reference time `iat` may be, in seconds, for clocks running ahead.
pub const DEFAULT_MAX_FUTURE: u64 = 10;

/// Time-related verification settings. `now` is the reference time: for ATIS-1000082 the
/// request's `time` (when the INVITE arrived), in seconds since the epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VerifyOptions {
    /// The reference time.
    pub now: u64,
    /// Oldest acceptable `iat`, in seconds before `now`.
    pub max_age: u64,
    /// Newest acceptable `iat`, in seconds after `now`.
    pub max_future: u64,
}

impl VerifyOptions {
    /// The default windows at time `now`.
    pub fn at(now: u64) -> Self {
        Self {
            now,
            max_age: DEFAULT_MAX_AGE,
            max_future: DEFAULT_MAX_FUTURE,
        }
    }
}

/// Step 1: full-form SHAKEN PASSporT, ES256, with `attest` and `origid` present.
pub fn check_shaken_form(passport: &Passport) -> Result<(), TokenError> {
    check_header(passport, PPT_SHAKEN)?;
    passport.claims().require_shaken().map(|_| ())
}

/// The header of a PASSporT of extension type `ppt`, signed with ES256.
fn check_header(passport: &Passport, ppt: &str) -> Result<(), TokenError> {
    let header = passport.header();
    if header.ppt.as_deref() != Some(ppt) {
        return Err(TokenError::InvalidHeaderParameter {
            name: "ppt",
            reason: format!("{:?} is not {ppt:?}", header.ppt),
        });
    }
    if header.alg != ALG_ES256 {
        return Err(TokenError::UnsupportedAlgorithm(header.alg.clone()));
    }
    Ok(())
}

/// Step 1 for a Rich Call Data PASSporT (RFC 9795): full form, `ppt` `rcd`, ES256, with an
/// `rcd` claim (whose `nam` is valid: parsed claims always are).
pub fn check_rcd_form(passport: &Passport) -> Result<(), TokenError> {
    check_header(passport, PPT_RCD)?;
    if passport.claims().rcd.is_none() {
        return Err(TokenError::MissingClaim("rcd"));
    }
    Ok(())
}

/// Step 2: `iat` within `[now - max_age, now + max_future]`.
pub fn check_freshness(iat: u64, options: &VerifyOptions) -> Result<(), TokenError> {
    if iat <= options.now {
        let age = options.now - iat;
        if age > options.max_age {
            return Err(TokenError::Stale {
                iat,
                age,
                max_age: options.max_age,
            });
        }
    } else {
        let ahead = iat - options.now;
        if ahead > options.max_future {
            return Err(TokenError::FromTheFuture {
                iat,
                ahead,
                allowed: options.max_future,
            });
        }
    }
    Ok(())
}

/// Step 4: `orig` is the calling number and `dest` contains every called number, compared
/// after canonicalization. The expected numbers are canonical already.
pub fn check_parties(passport: &Passport, from: Option<&Tn>, to: &[Tn]) -> Result<(), TokenError> {
    let claims = passport.claims();
    if let Some(from) = from {
        let matches = match &claims.orig {
            Party::Tn(tn) => Tn::canonicalize(tn, None).is_ok_and(|t| t == *from),
            Party::Uri(_) => false,
        };
        if !matches {
            return Err(TokenError::OrigMismatch {
                token: match &claims.orig {
                    Party::Tn(tn) => tn.clone(),
                    Party::Uri(uri) => uri.clone(),
                },
                expected: from.to_string(),
            });
        }
    }
    for expected in to {
        let found = claims
            .dest
            .tn()
            .iter()
            .any(|tn| Tn::canonicalize(tn, None).is_ok_and(|t| t == *expected));
        if !found {
            return Err(TokenError::DestMismatch(expected.to_string()));
        }
    }
    Ok(())
}

/// Runs every step with a key already in hand.
pub fn verify_shaken(
    identity: &IdentityHeader,
    key: &VerifyingKey,
    options: &VerifyOptions,
    from: Option<&Tn>,
    to: &[Tn],
) -> Result<(), TokenError> {
    check_shaken_form(identity.passport())?;
    verify_common(identity, key, options, from, to)
}

/// [`verify_shaken`] for a Rich Call Data PASSporT ([`check_rcd_form`] first): the same
/// freshness, signature and party checks.
pub fn verify_rcd(
    identity: &IdentityHeader,
    key: &VerifyingKey,
    options: &VerifyOptions,
    from: Option<&Tn>,
    to: &[Tn],
) -> Result<(), TokenError> {
    check_rcd_form(identity.passport())?;
    verify_common(identity, key, options, from, to)
}

/// The steps after the form, the same for every kind of PASSporT: freshness, the signature,
/// the parties.
fn verify_common(
    identity: &IdentityHeader,
    key: &VerifyingKey,
    options: &VerifyOptions,
    from: Option<&Tn>,
    to: &[Tn],
) -> Result<(), TokenError> {
    let passport = identity.passport();
    check_freshness(passport.claims().iat, options)?;
    passport.verify_signature(key)?;
    check_parties(passport, from, to)
}

/// [`verify_rcd`] when the token's `ppt` is `rcd`, [`verify_shaken`] otherwise (which refuses
/// any `ppt` but `shaken`): what the offline tools run on a token of either kind.
pub fn verify_passport(
    identity: &IdentityHeader,
    key: &VerifyingKey,
    options: &VerifyOptions,
    from: Option<&Tn>,
    to: &[Tn],
) -> Result<(), TokenError> {
    if identity.passport().header().ppt.as_deref() == Some(PPT_RCD) {
        verify_rcd(identity, key, options, from, to)
    } else {
        verify_shaken(identity, key, options, from, to)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn freshness_window_edges() {
        let options = VerifyOptions::at(1000);
        assert_eq!(check_freshness(1000, &options), Ok(()));
        assert_eq!(check_freshness(940, &options), Ok(()));
        assert_eq!(
            check_freshness(939, &options),
            Err(TokenError::Stale {
                iat: 939,
                age: 61,
                max_age: 60
            })
        );
        assert_eq!(check_freshness(1010, &options), Ok(()));
        assert_eq!(
            check_freshness(1011, &options),
            Err(TokenError::FromTheFuture {
                iat: 1011,
                ahead: 11,
                allowed: 10
            })
        );
        assert_eq!(
            check_freshness(0, &VerifyOptions::at(u64::MAX)).map_err(|e| e.sip_reason().code()),
            Err(403)
        );
    }
}
