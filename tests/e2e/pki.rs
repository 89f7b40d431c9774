//! The CA tools as a user runs them, checked by OpenSSL: keygen, CSR, SPC token, issue,
//! revoke, CRL, lint.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::support::{openssl, shaken, stderr, stdout, tempdir};

fn ok(args: &[&str]) -> String {
    let output = shaken(args);
    assert!(
        output.status.success(),
        "shaken {args:?} failed: {}",
        stderr(&output)
    );
    stdout(&output)
}

#[test]
fn issue_revoke_and_publish_a_crl_checked_by_openssl() {
    let dir = tempdir();
    let d = dir.path();
    let p = |name: &str| d.join(name).to_str().unwrap().to_owned();

    ok(&["pa", "init", "--out", &p("pa")]);
    ok(&[
        "ca",
        "init",
        "--out",
        &p("ca"),
        "--name",
        "Test STI-CA",
        "--crl-url",
        "https://cr.example.net/ca/intermediate.crl",
    ]);
    ok(&["sp", "keygen", "--out", &p("sp.key")]);
    for key in ["pa/pa.key", "ca/root.key", "ca/intermediate.key", "sp.key"] {
        let mode = std::fs::metadata(d.join(key)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{key}");
        assert!(std::fs::read_to_string(d.join(key))
            .unwrap()
            .starts_with("-----BEGIN PRIVATE KEY-----\n"));
    }
    // Keys are never overwritten by accident.
    let output = shaken(["sp", "keygen", "--out", &p("sp.key")]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("refusing to overwrite"),
        "{}",
        stderr(&output)
    );

    ok(&[
        "sp",
        "csr",
        "--key",
        &p("sp.key"),
        "--spc",
        "1001",
        "--org",
        "Carrier One",
        "--out",
        &p("sp.csr"),
    ]);
    openssl(&["req", "-in", "sp.csr", "-verify", "-noout"], d);

    let token = ok(&[
        "pa",
        "spc-token",
        "--pa",
        &p("pa"),
        "--spc",
        "1001",
        "--account-key",
        &p("sp.key"),
    ]);
    std::fs::write(d.join("token.jwt"), token.trim()).unwrap();
    ok(&[
        "ca",
        "issue",
        "--ca",
        &p("ca"),
        "--csr",
        &p("sp.csr"),
        "--spc-token",
        &p("token.jwt"),
        "--pa-cert",
        &p("pa/pa.pem"),
        "--out",
        &p("chain.pem"),
    ]);

    // OpenSSL: the chain verifies against the root; the TNAuthList is exactly the explicit DER.
    openssl(
        &[
            "verify",
            "-CAfile",
            "ca/root.pem",
            "-untrusted",
            "ca/intermediate.pem",
            "chain.pem",
        ],
        d,
    );
    let (ok_text, text) = certs_test::openssl(
        &[
            "x509",
            "-in",
            "chain.pem",
            "-noout",
            "-text",
            "-certopt",
            "ext_dump",
        ],
        d,
    );
    assert!(ok_text, "{text}");
    assert!(text.contains("30 08 a0 06 16 04 31 30-30 31"), "{text}");
    assert!(
        text.contains("Subject: C = US, O = Carrier One, CN = SHAKEN 1001"),
        "{text}"
    );
    assert!(text.contains("Policy: 2.16.840.1.114569.1.1.3"), "{text}");
    assert!(
        text.contains("URI:https://cr.example.net/ca/intermediate.crl"),
        "{text}"
    );
    let lint = shaken(["ca", "lint", &p("chain.pem")]);
    assert_eq!(lint.status.code(), Some(0), "{}", stdout(&lint));

    // Revoke and publish; OpenSSL lists the serial and refuses the chain with the CRL.
    ok(&[
        "ca",
        "revoke",
        "--ca",
        &p("ca"),
        "--cert",
        &p("chain.pem"),
        "--reason",
        "keyCompromise",
    ]);
    ok(&[
        "ca",
        "crl",
        "--ca",
        &p("ca"),
        "--out",
        &p("intermediate.crl"),
    ]);
    let (_, serial) = certs_test::openssl(&["x509", "-in", "chain.pem", "-noout", "-serial"], d);
    let serial = serial.trim().trim_start_matches("serial=").to_owned();
    let (crl_ok, crl) = certs_test::openssl(
        &[
            "crl",
            "-inform",
            "DER",
            "-in",
            "intermediate.crl",
            "-noout",
            "-text",
        ],
        d,
    );
    assert!(crl_ok, "{crl}");
    assert!(
        crl.contains(&serial) && crl.contains("Key Compromise") && crl.contains("CRL Number"),
        "{crl}"
    );
    openssl(
        &[
            "crl",
            "-inform",
            "DER",
            "-in",
            "intermediate.crl",
            "-out",
            "crl.pem",
        ],
        d,
    );
    std::fs::write(
        d.join("bundle.pem"),
        [
            std::fs::read(d.join("ca/intermediate.pem")).unwrap(),
            std::fs::read(d.join("ca/root.pem")).unwrap(),
        ]
        .concat(),
    )
    .unwrap();
    let (verified, text) = certs_test::openssl(
        &[
            "verify",
            "-crl_check",
            "-CAfile",
            "bundle.pem",
            "-CRLfile",
            "crl.pem",
            "chain.pem",
        ],
        d,
    );
    assert!(!verified && text.contains("revoked"), "{text}");
    let output = shaken(["ca", "revoke", "--ca", &p("ca"), "--serial", &serial]);
    assert!(
        stderr(&output).contains("already revoked"),
        "{}",
        stderr(&output)
    );

    // The root's CRL for the issuing CA's distribution point.
    ok(&[
        "ca",
        "crl",
        "--ca",
        &p("ca"),
        "--root",
        "--out",
        &p("root.crl"),
    ]);
    openssl(
        &[
            "crl",
            "-inform",
            "DER",
            "-in",
            "root.crl",
            "-CAfile",
            "ca/root.pem",
            "-noout",
        ],
        d,
    );
}

#[test]
fn issue_refusals_name_the_failed_check() {
    let dir = tempdir();
    let d = dir.path();
    let p = |name: &str| d.join(name).to_str().unwrap().to_owned();
    ok(&["pa", "init", "--out", &p("pa")]);
    ok(&["pa", "init", "--out", &p("other-pa")]);
    ok(&[
        "ca",
        "init",
        "--out",
        &p("ca"),
        "--crl-url",
        "https://cr.example.net/ca.crl",
    ]);
    ok(&["sp", "keygen", "--out", &p("sp.key")]);
    ok(&[
        "sp",
        "csr",
        "--key",
        &p("sp.key"),
        "--spc",
        "1001",
        "--out",
        &p("sp.csr"),
    ]);
    let write_token = |name: &str, args: &[&str]| {
        let token = ok(args);
        std::fs::write(d.join(name), token.trim()).unwrap();
    };
    write_token(
        "expired.jwt",
        &[
            "pa",
            "spc-token",
            "--pa",
            &p("pa"),
            "--spc",
            "1001",
            "--account-key",
            &p("sp.key"),
            "--now",
            "1000",
            "--ttl",
            "60",
        ],
    );
    write_token(
        "other-pa.jwt",
        &[
            "pa",
            "spc-token",
            "--pa",
            &p("other-pa"),
            "--spc",
            "1001",
            "--account-key",
            &p("sp.key"),
        ],
    );
    write_token(
        "other-spc.jwt",
        &[
            "pa",
            "spc-token",
            "--pa",
            &p("pa"),
            "--spc",
            "1002",
            "--account-key",
            &p("sp.key"),
        ],
    );
    write_token(
        "other-key.jwt",
        &[
            "pa",
            "spc-token",
            "--pa",
            &p("pa"),
            "--spc",
            "1001",
            "--fingerprint",
            &format!("SHA256 {}", ["AB"; 32].join(":")),
        ],
    );
    for (token, expected) in [
        ("expired.jwt", "SPC token expired"),
        (
            "other-pa.jwt",
            "signature does not verify with the PA certificate",
        ),
        (
            "other-spc.jwt",
            "TNAuthList (SPC 1002) differs from the CSR's (SPC 1001)",
        ),
        ("other-key.jwt", "is not the CSR key's"),
    ] {
        let output = shaken([
            "ca",
            "issue",
            "--ca",
            &p("ca"),
            "--csr",
            &p("sp.csr"),
            "--spc-token",
            &p(token),
            "--pa-cert",
            &p("pa/pa.pem"),
            "--out",
            &p("chain.pem"),
        ]);
        assert_eq!(output.status.code(), Some(2), "{token}");
        assert!(
            stderr(&output).contains(expected),
            "{token}: {}",
            stderr(&output)
        );
        assert!(!d.join("chain.pem").exists());
    }
}

#[test]
fn lint_exit_status_follows_the_findings() {
    let production = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("passport/tests/data/production-shaken-709J.pem");
    let output = shaken([
        "ca",
        "lint",
        production.to_str().unwrap(),
        "--now",
        "1660000000",
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", stdout(&output));
    assert!(stdout(&output).contains("warning: shaken-cp-1.3.subject-attributes"));
    let output = shaken([
        "ca",
        "lint",
        production.to_str().unwrap(),
        "--now",
        "1795000000",
    ]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stdout(&output).contains("error: atis-1000080.validity"),
        "{}",
        stdout(&output)
    );
    for (stem, _, _) in certs_test::MALFORMED {
        let file = certs_test::path(&format!("malformed/{stem}.pem"));
        let output = shaken(["ca", "lint", file.to_str().unwrap(), "--now", "1767225700"]);
        assert_eq!(output.status.code(), Some(1), "{stem}: {}", stdout(&output));
        assert!(
            stdout(&output).contains(&format!("error: atis-1000080.{stem}")) || stem == "parse",
            "{stem}: {}",
            stdout(&output)
        );
    }
}
