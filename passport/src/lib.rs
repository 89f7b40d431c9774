//! The SHAKEN PASSporT core shared by the signer, the verifier and the CA tools.
//!
//! - [`claims`] and [`header`]: the PASSporT (RFC 8225) with the SHAKEN claims (RFC 8588),
//!   written as canonical JSON ([`json`] rules) and parsed into types that cannot hold invalid
//!   values;
//! - [`token`]: the compact JWS form, decoded with the received bytes kept for the signature
//!   check, and [`token::TokenSigner`] for the signer's hot path;
//! - [`rcd`]: Rich Call Data (RFC 9795), the `rcd` and `crn` claims, always valid;
//! - [`identity`]: the SIP Identity header value (RFC 8224);
//! - [`verify`]: the verification steps in the standard's order, each failure one SIP code;
//! - [`inspect`]: what the offline tools show of a token: a verdict, a decoded token;
//! - [`tn`]: telephone number canonicalization with NANP and Chinese national plans;
//! - [`tnauthlist`]: the TNAuthList certificate extension (RFC 8226) in DER;
//! - [`keys`], [`cert`] and [`pem`]: ES256 keys (aws-lc-rs arithmetic), certificates, PEM;
//! - [`nonce`]: ECDSA nonces computed ahead of time, for the signer's bursts;
//! - [`error`]: the one error type and its mapping to SIP codes.
//!
//! Nothing here reads the clock: the reference time is always a parameter.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod base64url;
pub mod cert;
pub mod claims;
pub mod error;
pub mod header;
pub mod identity;
pub mod inspect;
pub mod json;
pub mod keys;
pub mod nonce;
pub mod pem;
pub mod rcd;
pub mod tn;
pub mod tnauthlist;
pub mod token;
pub mod verify;

pub use claims::{Attestation, Claims, Dest, OrigId, Party};
pub use error::{Error, Fault, Part, SipReason, TokenError};
pub use header::Header;
pub use identity::IdentityHeader;
pub use keys::{SigningKey, VerifyingKey};
pub use nonce::Nonce;
pub use rcd::{CallReason, RichCallData};
pub use tn::{NumberingPlan, Tn};
pub use tnauthlist::{TnAuthList, TnEntry};
pub use token::{Passport, TokenSigner};
pub use verify::VerifyOptions;
