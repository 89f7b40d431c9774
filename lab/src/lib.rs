//! The lab and the load generator: the programs that drive the roles end to end.
//!
//! This crate exists because both need every role at once. The lab ([`world`], [`cases`],
//! [`report`]) builds a whole SHAKEN network on this machine with the project's own tools (a
//! policy administrator, a CA, carriers with a real-name registry, the HTTPS repository, one
//! signer per carrier, a terminating verifier) with the numbers of one country ([`numbers`])
//! and drives every call case through the REST APIs, comparing each verdict with the one
//! expected, the marketing firms of the regulator's list and the one-click unsubscribe
//! included ([`marketing`]), then plays a harassing caller and a gateway pushing domestic caller
//! IDs to the monitor its verifier pushes to, and traces an alert back to the customer
//! ([`monitoring`]), and makes an SBC's signing and verification dips over the SIP listeners
//! ([`sip_path`]); it describes itself in `lab.json` and `lab.env` ([`description`]). With
//! `--kafka` and `--postgres` it runs on those engines instead of the embedded defaults
//! ([`scale_out`]). The load generator ([`load`]) drives one
//! service as hard as asked and measures it. The role crates (`ca-tools`, `signer`, `verifier`)
//! must not depend on one another, and the `shaken` binary stays argument parsing and dispatch,
//! so what ties the roles together lives here, and new call cases are added here.
//!
//! Time is a parameter: the caller reads the clock once and passes `now` in.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod cases;
pub mod client;
pub mod description;
pub mod error;
pub mod load;
pub mod marketing;
pub mod monitoring;
pub mod numbers;
pub mod pki;
pub mod report;
pub mod scale_out;
pub mod sip_path;
pub mod world;

pub use error::LabError;
pub use scale_out::ScaleOut;
pub use world::{Lab, LabOptions, Progress};
