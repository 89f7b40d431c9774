//! `cargo run -p certs-test [-- --out DIR]`: regenerates the test PKI (default: `certs-test/pki`).
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let out = match (args.next().as_deref(), args.next()) {
        (None, _) => certs_test::pki_dir(),
        (Some("--out"), Some(dir)) => PathBuf::from(dir),
        _ => {
            eprintln!("usage: certs-test [--out DIR]");
            return ExitCode::from(2);
        }
    };
    match certs_test::generate(&out, certs_test::SEED) {
        Ok(()) => {
            eprintln!("test PKI written to {}", out.display());
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("certs-test: {error}");
            ExitCode::from(1)
        }
    }
}
