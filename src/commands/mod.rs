//! Command families of the `shaken` binary.

pub(crate) mod passport;
