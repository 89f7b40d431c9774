//! The raw single-core ECDSA P-256 sign and verify rates (aws-lc-rs, key parsed once): the
//! baseline every figure of the services is compared with.

use std::time::{Duration, Instant};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    EcdsaKeyPair, KeyPair, ParsedPublicKey, ECDSA_P256_SHA256_FIXED,
    ECDSA_P256_SHA256_FIXED_SIGNING,
};

use super::MAX_SECONDS;
use crate::error::LabError;

/// Raw ECDSA P-256 sign and verify operations per second on one core, each measured for
/// `seconds` (more than 0, at most [`MAX_SECONDS`]) over a 400-byte message (about a
/// PASSporT's signing input).
pub fn baseline(seconds: f64) -> Result<(f64, f64), LabError> {
    if !(seconds > 0.0 && seconds <= MAX_SECONDS) {
        return Err(LabError::OutOfRange {
            option: "seconds",
            value: seconds.to_string(),
            range: "more than 0 and at most 86400",
        });
    }
    let period = Duration::from_secs_f64(seconds);
    let rng = SystemRandom::new();
    let document = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
        .map_err(|_| LabError::Baseline("key generation"))?;
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, document.as_ref())
        .map_err(|_| LabError::Baseline("key parsing"))?;
    let public = ParsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, pair.public_key().as_ref())
        .map_err(|_| LabError::Baseline("public key parsing"))?;
    let message = [0x42u8; 400];
    let signature = pair
        .sign(&rng, &message)
        .map_err(|_| LabError::Baseline("signing"))?;
    let rate = |op: &dyn Fn() -> bool, what: &'static str| -> Result<f64, LabError> {
        let start = Instant::now();
        let mut n = 0u64;
        while start.elapsed() < period {
            for _ in 0..64 {
                if !op() {
                    return Err(LabError::Baseline(what));
                }
            }
            n += 64;
        }
        Ok(n as f64 / start.elapsed().as_secs_f64())
    };
    let sign = rate(&|| pair.sign(&rng, &message).is_ok(), "signing")?;
    let verify = rate(
        &|| public.verify_sig(&message, signature.as_ref()).is_ok(),
        "verification",
    )?;
    Ok((sign, verify))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_rates_are_measured() {
        let (sign, verify) = baseline(0.02).unwrap();
        assert!(sign > 0.0 && verify > 0.0, "{sign} {verify}");
        for refused in [0.0, -1.0, f64::NAN, f64::INFINITY, 1e9] {
            assert!(
                matches!(baseline(refused), Err(LabError::OutOfRange { .. })),
                "{refused}"
            );
        }
    }
}
