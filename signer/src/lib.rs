//! The originating carrier's signer (STI-AS).
//!
//! This crate will hold the ATIS-1000082 signing service: it looks the calling number up in the
//! carrier's real-name registry, decides the attestation level (A/B/C) under the policy of
//! `GOVERNANCE.md` §1, refuses unregistered or suspended numbers (never emergency calls), signs
//! a SHAKEN PASSporT with the `passport` crate, and records every signed call for traceback.
//!
//! It has no content yet; the PASSporT signing it will build on is `passport::TokenSigner`.
#![forbid(unsafe_code)]
