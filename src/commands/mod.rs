//! Command families of the `shaken` binary.

pub(crate) mod lab;
pub(crate) mod lists;
pub(crate) mod load;
pub(crate) mod monitor;
pub(crate) mod optout;
pub(crate) mod passport;
pub(crate) mod pki;
pub(crate) mod repo;
pub(crate) mod signer;
pub(crate) mod verifier;

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;

/// The content of a file, or an error naming it as `what`.
pub(crate) fn read(path: &Path, what: &str) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read {what} {}", path.display()))
}

/// Seconds since the epoch, read once at the edge of the program.
pub(crate) fn unix_now() -> anyhow::Result<u64> {
    rest::service::unix_now().context("the system clock is before 1970")
}

/// `now` when given (a flag pinning the time), else the clock.
pub(crate) fn now_or(now: Option<u64>) -> anyhow::Result<u64> {
    now.map_or_else(unix_now, Ok)
}

/// The exit status of an answer: 0 when it is positive, 1 when it is negative.
pub(crate) fn answer(positive: bool) -> ExitCode {
    if positive {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
