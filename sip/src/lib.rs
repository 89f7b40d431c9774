//! SIP for the redirect interface (RFC 3261): the part of a SIP server that an SBC's
//! "dip" needs, shared by the signer and the verifier.
//!
//! An SBC sends a copy of a call's INVITE; the service answers it with a final response
//! (`302` carrying headers the SBC copies into the real INVITE, or a refusal) and never
//! proxies anything. So this crate holds only:
//!
//! - [`message`]: the parser of requests (bounded: size, header count; compact header names;
//!   folded lines) and the builder of responses (RFC 3261 §8.2.6: Via, From, To with a tag,
//!   Call-ID, CSeq copied);
//! - [`uri`]: name-addr and URIs (`sip:`, `sips:`, `tel:`), the telephone number they carry,
//!   and the placement of `verstat` (3GPP TS 24.229);
//! - [`via`]: the top `Via` (sent-by, branch, transport), which names a transaction and says
//!   where to answer;
//! - [`date`]: the `Date` header (RFC 3261 §20.17: RFC 1123 in GMT);
//! - [`transaction`]: the INVITE server transaction table without sockets (RFC 3261 §17.2.1:
//!   retransmissions answered from memory, Timers G, H and I, `CANCEL`), bounded;
//! - [`transport`]: the UDP and TCP listeners on one port (RFC 3261 §18), the allow-list, the
//!   caps, and the [`transport::Handler`] a service implements;
//! - [`config`]: the `[sip]` section both services read.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod config;
pub mod date;
pub mod message;
pub mod metrics;
pub mod transaction;
pub mod transport;
pub mod uri;
pub mod via;

pub use message::{Method, ParseError, Request, Response};
