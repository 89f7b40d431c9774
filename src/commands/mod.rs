//! Command families of the `shaken` binary.

pub(crate) mod lab;
pub(crate) mod load;
pub(crate) mod passport;
pub(crate) mod pki;
pub(crate) mod repo;
pub(crate) mod signer;
pub(crate) mod verifier;

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the epoch, read once at the edge of the program.
pub(crate) fn unix_now() -> anyhow::Result<u64> {
    use anyhow::Context;
    Ok(SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .context("the system clock is before 1970")?
        .as_secs())
}
