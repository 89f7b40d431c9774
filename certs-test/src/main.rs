//! Generator for the test PKI (not written yet): see the crate documentation.
#![forbid(unsafe_code)]

fn main() {
    eprintln!("certs-test: the test PKI generator arrives with the CA tools (issue 3)");
    std::process::exit(2);
}
