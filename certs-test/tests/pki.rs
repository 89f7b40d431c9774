//! The committed test PKI: reproducible byte for byte, linted as described, and accepted or
//! refused by OpenSSL as its README says.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::BTreeMap;
use std::path::Path;

use ca_tools::lint::{self, Rule, Severity};
use certs_test::{path, pki_dir, MALFORMED, T0};

fn files(root: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let name = path
                    .strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                out.insert(name, std::fs::read(&path).unwrap());
            }
        }
    }
    out
}

#[test]
fn regenerating_gives_the_committed_bytes() {
    let dir = tempfile::tempdir().unwrap();
    certs_test::generate(dir.path(), certs_test::SEED).unwrap();
    let fresh = files(dir.path());
    let committed = files(&pki_dir());
    assert_eq!(
        fresh.keys().collect::<Vec<_>>(),
        committed.keys().collect::<Vec<_>>(),
        "the file lists differ: run `cargo run -p certs-test` and commit"
    );
    for (name, bytes) in &fresh {
        assert!(
            committed[name] == *bytes,
            "{name} differs from the committed file: run `cargo run -p certs-test`"
        );
    }
    // Another seed gives other keys: the seed is really used.
    let other = tempfile::tempdir().unwrap();
    certs_test::generate(other.path(), certs_test::SEED + 1).unwrap();
    assert_ne!(files(other.path())["ca/root.pem"], committed["ca/root.pem"]);
}

fn errors(relative: &str, now: u64) -> Vec<Rule> {
    let pem = std::fs::read(path(relative)).unwrap();
    let reports = lint::lint_pem(&pem, Some(now)).unwrap();
    let mut rules: Vec<Rule> = reports
        .iter()
        .flat_map(|r| r.findings.iter())
        .filter(|f| f.severity() == Severity::Error)
        .map(|f| f.rule)
        .collect();
    rules.dedup();
    rules
}

#[test]
fn each_malformed_certificate_breaks_exactly_its_rule() {
    for (stem, rule, what) in MALFORMED {
        let found = errors(&format!("malformed/{stem}.pem"), T0 + 60);
        assert_eq!(found, vec![rule], "malformed/{stem}.pem ({what})");
    }
    let pem = std::fs::read(path("malformed/cp-1.1-policy.pem")).unwrap();
    let report = &lint::lint_pem(&pem, Some(T0 + 60)).unwrap()[0];
    assert!(report
        .findings
        .iter()
        .all(|f| f.severity() == Severity::Warning));
    assert!(report
        .findings
        .iter()
        .any(|f| f.rule == Rule::Cp13PolicyVersion));
}

#[test]
fn valid_certificates_lint_without_errors() {
    let now = 1_800_000_000; // 2027
    for relative in [
        "ca/root.pem",
        "ca/intermediate.pem",
        "sp/1001/chain.pem",
        "sp/1002/chain.pem",
        "sp/1003/chain.pem",
        "revoked/chain.pem",
        "untrusted/chain.pem",
        "untrusted/root.pem",
    ] {
        assert_eq!(errors(relative, now), vec![], "{relative}");
    }
    assert_eq!(errors("expired/chain.pem", now), vec![Rule::Validity]);
    assert_eq!(errors("expired/chain.pem", T0 + 60), vec![]);
}

fn openssl(args: &[&str]) -> (bool, String) {
    certs_test::openssl(args, &pki_dir())
}

#[test]
fn openssl_accepts_the_valid_chains_and_refuses_the_others() {
    let at = (T0 + 86_400 * 30).to_string();
    for spc in certs_test::SPCS {
        let chain = format!("sp/{spc}/cert.pem");
        let (ok, text) = openssl(&[
            "verify",
            "-attime",
            &at,
            "-CAfile",
            "ca/root.pem",
            "-untrusted",
            "ca/intermediate.pem",
            &chain,
        ]);
        assert!(ok, "{chain}: {text}");
    }
    let (ok, text) = openssl(&[
        "verify",
        "-CAfile",
        "ca/root.pem",
        "-untrusted",
        "ca/intermediate.pem",
        "sp/1001/cert.pem",
    ]);
    assert!(ok, "valid at the real clock too: {text}");

    let (ok, text) = openssl(&[
        "verify",
        "-CAfile",
        "ca/root.pem",
        "-untrusted",
        "ca/intermediate.pem",
        "expired/chain.pem",
    ]);
    assert!(!ok && text.contains("expired"), "{text}");

    let (ok, text) = openssl(&["verify", "-CAfile", "ca/root.pem", "untrusted/chain.pem"]);
    assert!(!ok, "{text}");

    let (ok, text) = openssl(&["verify", "-CAfile", "tls/root.pem", "tls/server.pem"]);
    assert!(ok, "{text}");
    let (ok, text) = openssl(&[
        "x509",
        "-in",
        "tls/server.pem",
        "-noout",
        "-ext",
        "subjectAltName",
    ]);
    assert!(
        ok && text.contains("DNS:localhost") && text.contains("IP Address:127.0.0.1"),
        "{text}"
    );
}

#[test]
fn openssl_reads_the_crl_and_the_tnauthlist() {
    let (ok, text) = openssl(&[
        "crl",
        "-inform",
        "DER",
        "-in",
        "ca/intermediate.crl",
        "-noout",
        "-text",
    ]);
    assert!(ok, "{text}");
    let serial = {
        let (_, out) = openssl(&["x509", "-in", "revoked/chain.pem", "-noout", "-serial"]);
        out.trim().trim_start_matches("serial=").to_owned()
    };
    assert!(text.contains(&serial), "CRL does not list {serial}: {text}");
    assert!(text.contains("Key Compromise"), "{text}");
    assert!(text.contains("CRL Number"), "{text}");

    // The issuing CA's signature on the CRL verifies.
    let (ok, text) = openssl(&[
        "crl",
        "-inform",
        "DER",
        "-in",
        "ca/intermediate.crl",
        "-CAfile",
        "ca/intermediate.pem",
        "-noout",
    ]);
    assert!(ok && text.contains("verify OK"), "{text}");

    // The TNAuthList extension is exactly SEQUENCE { [0] { IA5String "1001" } }.
    let (ok, text) = openssl(&[
        "x509",
        "-in",
        "sp/1001/cert.pem",
        "-noout",
        "-text",
        "-certopt",
        "ext_dump",
    ]);
    assert!(ok, "{text}");
    assert!(text.contains("1.3.6.1.5.5.7.1.26"), "{text}");
    assert!(text.contains("30 08 a0 06 16 04 31 30-30 31"), "{text}");
}
