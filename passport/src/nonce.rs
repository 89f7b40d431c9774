//! Precomputed ECDSA nonces: the part of an ES256 signature that does not depend on the key
//! or the message, computed ahead of time so that a signature costs a hash and two scalar
//! multiplications when it is needed.
//!
//! An ECDSA signature over `z = SHA-256(message)` with key `d` picks a secret `k`, computes
//! `r = x(k·G) mod n` and `s = k⁻¹·(z + r·d) mod n`. The point multiplication `k·G` is almost
//! all of the cost and needs neither `d` nor `z`. A [`Nonce`] holds `r` and `k⁻¹` for one
//! fresh `k`; [`SigningKey::sign_with_nonce`](crate::SigningKey::sign_with_nonce) finishes the
//! signature. The signer computes nonces while its CPUs are otherwise idle, so that requests
//! arriving in a burst do not each pay for a point multiplication.
//!
//! What keeps this as safe as signing in one step:
//! - `k` is uniform in `[1, n-1]`, drawn from the operating system's CSPRNG by rejection
//!   sampling (`p256`'s `NonZeroScalar::random`);
//! - a [`Nonce`] can be used once only: signing consumes it, it cannot be cloned, and no
//!   public constructor takes `k` (a known or repeated `k` reveals the key);
//! - every copy of `k` (and the batch inversion's products of them) is wiped once `k·G` and `k⁻¹`
//!   are known, on error paths too; `k⁻¹` is as secret as the key and is zeroed when the
//!   nonce is dropped;
//! - the arithmetic is constant time: `k·G` is aws-lc-rs's P-256 base-point multiplication
//!   (reached through its ECDH key API, which computes exactly `k·G` for a chosen `k`), the
//!   scalar operations are `p256`'s.
//!
//! The tests check the result against the RFC 6979 P-256 vectors (with their `k`) and against
//! aws-lc-rs's and `p256`'s own verification.

use aws_lc_rs::agreement::{PrivateKey, ECDH_P256};
use p256::elliptic_curve::ops::Reduce;
use p256::elliptic_curve::zeroize::{Zeroize, Zeroizing};
use p256::elliptic_curve::{Field, PrimeField};
use p256::{FieldBytes, NonZeroScalar, Scalar, U256};

use crate::error::Error;

/// Length of an uncompressed SEC1 point: `04 || x || y`.
const UNCOMPRESSED_LEN: usize = 65;

/// `r` and `k⁻¹` for one secret `k`, ready to finish one ES256 signature. Used once, then
/// gone; zeroed when dropped.
pub struct Nonce {
    r: Scalar,
    k_inv: Scalar,
}

impl Nonce {
    /// `r`, the signature's first half.
    pub(crate) fn r(&self) -> &Scalar {
        &self.r
    }

    /// `k⁻¹ mod n`.
    pub(crate) fn k_inv(&self) -> &Scalar {
        &self.k_inv
    }

    /// The nonce for a given `k` (for the known-answer tests only: a chosen `k` is a
    /// disclosed key).
    #[cfg(test)]
    pub(crate) fn from_k(k: &NonZeroScalar) -> Result<Self, Error> {
        let r = r_of(k)?;
        let k_inv = Option::<Scalar>::from(k.invert())
            .ok_or_else(|| Error::PrivateKey("nonce has no inverse".into()))?;
        Ok(Self { r, k_inv })
    }
}

impl Drop for Nonce {
    fn drop(&mut self) {
        self.k_inv.zeroize();
        self.r.zeroize();
    }
}

impl std::fmt::Debug for Nonce {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Nonce(..)")
    }
}

/// Computes `count` fresh nonces. The inversions are done together (Montgomery's trick: one
/// inversion and three multiplications a nonce), so a batch of a few dozen costs little more
/// than its point multiplications.
pub fn precompute(count: usize) -> Result<Vec<Nonce>, Error> {
    let mut rng = rand_core::OsRng;
    // Every copy of a k, or of a product of them, is wiped when dropped, on error paths too.
    let mut ks = Zeroizing::new(Vec::with_capacity(count));
    let mut rs = Vec::with_capacity(count);
    while ks.len() < count {
        let mut k = NonZeroScalar::random(&mut rng);
        let r = r_of(&k);
        let k_value = Zeroizing::new(*k);
        k.zeroize();
        let r = r?;
        // r = 0 happens with probability about 2^-256; such a k cannot sign, so draw again.
        if bool::from(r.is_zero()) {
            continue;
        }
        ks.push(*k_value);
        rs.push(r);
    }
    let mut inverses = batch_invert(&mut ks)?;
    Ok(rs
        .into_iter()
        .zip(inverses.iter_mut())
        .map(|(r, k_inv)| Nonce { r, k_inv: *k_inv })
        .collect())
}

/// `x(k·G) mod n`.
fn r_of(k: &NonZeroScalar) -> Result<Scalar, Error> {
    let mut k_bytes: FieldBytes = k.to_repr();
    let key = PrivateKey::from_private_key(&ECDH_P256, &k_bytes);
    k_bytes.zeroize();
    let failed = || Error::PrivateKey("nonce point multiplication failed".into());
    let point = key
        .map_err(|_| failed())?
        .compute_public_key()
        .map_err(|_| failed())?;
    let point = point.as_ref();
    let x: [u8; 32] = match point.get(1..33) {
        Some(x) if point.len() == UNCOMPRESSED_LEN => x.try_into().map_err(|_| failed())?,
        _ => return Err(Error::PrivateKey("nonce point is not uncompressed".into())),
    };
    Ok(<Scalar as Reduce<U256>>::reduce_bytes(&FieldBytes::from(x)))
}

/// The inverses of `values` (all non-zero), which are zeroed on the way. The inverses are
/// wiped when the returned vector is dropped.
fn batch_invert(values: &mut [Scalar]) -> Result<Zeroizing<Vec<Scalar>>, Error> {
    // prefix[i] = values[0] · … · values[i-1]
    let mut prefix = Zeroizing::new(Vec::with_capacity(values.len()));
    let mut product = Zeroizing::new(Scalar::ONE);
    for v in values.iter() {
        prefix.push(*product);
        *product *= v;
    }
    let mut inverse = Zeroizing::new(
        Option::<Scalar>::from(product.invert())
            .ok_or_else(|| Error::PrivateKey("nonce has no inverse".into()))?,
    );
    let mut out = Zeroizing::new(Vec::with_capacity(values.len()));
    for (value, before) in values.iter_mut().zip(prefix.iter()).rev() {
        // inverse = (values[0] · … · value)⁻¹, so inverse · before = value⁻¹
        out.push(*inverse * before);
        *inverse *= *value;
        value.zeroize();
    }
    out.reverse();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_inversion_gives_each_inverse() {
        let mut rng = rand_core::OsRng;
        let values: Vec<Scalar> = (0..17).map(|_| *NonZeroScalar::random(&mut rng)).collect();
        let mut work = values.clone();
        let inverses = batch_invert(&mut work).unwrap();
        for (v, inv) in values.iter().zip(inverses.iter()) {
            assert_eq!(*v * inv, Scalar::ONE);
        }
        assert!(
            work.iter().all(|v| bool::from(v.is_zero())),
            "k values are wiped"
        );
    }

    #[test]
    fn precomputed_nonces_are_distinct() {
        let nonces = precompute(64).unwrap();
        assert_eq!(nonces.len(), 64);
        let mut rs: Vec<_> = nonces.iter().map(|n| n.r().to_repr()).collect();
        rs.sort();
        rs.dedup();
        assert_eq!(rs.len(), 64);
    }

    #[test]
    fn an_empty_batch_is_empty() {
        assert!(precompute(0).unwrap().is_empty());
    }
}
