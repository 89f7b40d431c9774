//! End-to-end tests of the `shaken` binary and of interoperability with independent
//! implementations, compiled as one test binary with a module per topic.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod browser;
mod cli;
mod guides;
mod http;
mod interop_pyjwt;
mod lab;
mod lab_scale_out;
mod lists;
mod monitor;
mod monitor_browser;
mod monitor_kafka;
mod monitor_postgres;
mod monitor_push;
mod openapi;
mod optout_browser;
mod optout_postgres;
mod pki;
mod registry_postgres;
mod repository;
mod signer;
mod signer_process;
mod sip;
mod support;
mod verifier;
mod verifier_kafka;
mod verifier_process;
