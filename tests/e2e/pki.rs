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

/// A PA, a CA, a carrier key and CSR in `d`, all as of `NOW`.
const NOW: &str = "1800000000";

fn carrier_setup(d: &Path) {
    let p = |name: &str| d.join(name).to_str().unwrap().to_owned();
    ok(&["pa", "init", "--out", &p("pa")]);
    ok(&[
        "ca",
        "init",
        "--out",
        &p("ca"),
        "--crl-url",
        "https://cr.example.net/ca/intermediate.crl",
        "--now",
        NOW,
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
}

fn ca_json(d: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(d.join("ca/ca.json")).unwrap()).unwrap()
}

/// `ca crl` into a folder that does not exist creates it, says so, and publishes CRL number 1,
/// then 2; each run says what it wrote, with nextUpdate as a date.
#[test]
fn a_crl_into_a_missing_folder_is_created_and_numbered_from_1() {
    let dir = tempdir();
    let d = dir.path();
    let p = |name: &str| d.join(name).to_str().unwrap().to_owned();
    carrier_setup(d);
    let out = p("publish/ca/intermediate.crl");
    let output = shaken(["ca", "crl", "--ca", &p("ca"), "--out", &out, "--now", NOW]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let said = stderr(&output);
    assert!(
        said.contains(&format!("created folder {}\n", p("publish")))
            && said.contains(&format!("created folder {}\n", p("publish/ca"))),
        "{said}"
    );
    assert!(
        said.contains(&format!(
            "wrote {out} (CRL number 1 of the issuing CA, 0 revoked certificates, \
             thisUpdate 2027-01-15T08:00:00Z (1800000000), \
             nextUpdate 2027-01-22T08:00:00Z (1800604800))"
        )),
        "{said}"
    );
    assert!(
        said.contains(&format!("recorded in {}: CRL number 1", p("ca/ca.json"))),
        "{said}"
    );
    let crl = pki::Crl::parse(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(crl.number, Some(1));
    assert_eq!(ca_json(d)["crl_number"], 1);
    ok(&["ca", "crl", "--ca", &p("ca"), "--out", &out]);
    let crl = pki::Crl::parse(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(crl.number, Some(2));
    assert_eq!(ca_json(d)["crl_number"], 2);
    // Nothing but the CRL in its folder: no temporary file left behind.
    assert_eq!(std::fs::read_dir(d.join("publish/ca")).unwrap().count(), 1);
}

/// A write that fails (the file asked for is a folder, or a folder on its way is a file: both
/// fail as root too) changes nothing: `ca.json` stays byte for byte, no CRL number or serial or
/// token is used up, and the error names the user's path, never a temporary file.
#[test]
fn a_failed_write_changes_nothing_and_names_the_users_file() {
    let dir = tempdir();
    let d = dir.path();
    let p = |name: &str| d.join(name).to_str().unwrap().to_owned();
    carrier_setup(d);
    std::fs::create_dir(d.join("taken")).unwrap();
    std::fs::write(d.join("plain-file"), "x").unwrap();
    let token = ok(&[
        "pa",
        "spc-token",
        "--pa",
        &p("pa"),
        "--spc",
        "1001",
        "--account-key",
        &p("sp.key"),
        "--now",
        NOW,
    ]);
    std::fs::write(d.join("token.jwt"), token.trim()).unwrap();
    let state = std::fs::read(d.join("ca/ca.json")).unwrap();
    let entries = |folder: &Path| {
        let mut names: Vec<String> = std::fs::read_dir(folder)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    let before = entries(d);
    let ca_files = entries(&d.join("ca"));

    let (ca, key, csr, token, pa, pa_cert) = (
        p("ca"),
        p("sp.key"),
        p("sp.csr"),
        p("token.jwt"),
        p("pa"),
        p("pa/pa.pem"),
    );
    for bad in [p("taken"), p("plain-file/out")] {
        let bad = bad.as_str();
        let mut runs: Vec<Vec<&str>> = vec![
            vec!["ca", "crl", "--ca", &ca, "--out", bad, "--now", NOW],
            vec!["ca", "crl", "--ca", &ca, "--root", "--out", bad],
            vec![
                "ca",
                "issue",
                "--ca",
                &ca,
                "--csr",
                &csr,
                "--spc-token",
                &token,
                "--pa-cert",
                &pa_cert,
                "--out",
                bad,
                "--now",
                NOW,
            ],
            vec!["sp", "keygen", "--out", bad],
            vec!["sp", "csr", "--key", &key, "--spc", "1001", "--out", bad],
            vec![
                "pa",
                "spc-token",
                "--pa",
                &pa,
                "--spc",
                "1001",
                "--account-key",
                &key,
                "--out",
                bad,
            ],
        ];
        // An existing empty folder is a fine place for a new CA.
        if bad != p("taken") {
            runs.push(vec![
                "ca",
                "init",
                "--out",
                bad,
                "--crl-url",
                "https://cr.example.net/x.crl",
            ]);
        }
        for args in runs {
            let output = shaken(&args);
            let said = stderr(&output);
            assert_eq!(output.status.code(), Some(2), "{args:?}: {said}");
            assert!(said.contains(bad), "{args:?}: {said}");
            assert!(!said.contains(".partial"), "{args:?}: {said}");
            assert_eq!(
                std::fs::read(d.join("ca/ca.json")).unwrap(),
                state,
                "{args:?}"
            );
            assert_eq!(entries(d), before, "{args:?}");
            assert_eq!(entries(&d.join("ca")), ca_files, "{args:?}");
            assert!(entries(&d.join("taken")).is_empty(), "{args:?}");
        }
    }
    let output = shaken(["pa", "init", "--out", &p("plain-file")]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains(&p("plain-file/pa.key")),
        "{}",
        stderr(&output)
    );
    assert!(!stderr(&output).contains(".partial"), "{}", stderr(&output));

    // The token was not used up by the failed issuance, and the first CRL is number 1.
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
        "--now",
        NOW,
    ]);
    ok(&["ca", "crl", "--ca", &p("ca"), "--out", &p("ca.crl")]);
    assert_eq!(ca_json(d)["crl_number"], 1);
    assert_eq!(ca_json(d)["issued"].as_array().unwrap().len(), 1);
}

/// Each command that writes says what it wrote, times as RFC 3339 dates with the epoch seconds;
/// `ca issue` refuses a second use of an SPC token, naming its jti and when it was used.
#[test]
fn writes_are_reported_and_a_token_is_used_once() {
    let dir = tempdir();
    let d = dir.path();
    let p = |name: &str| d.join(name).to_str().unwrap().to_owned();
    let said = |args: &[&str]| {
        let output = shaken(args);
        assert!(output.status.success(), "{args:?}: {}", stderr(&output));
        stderr(&output)
    };
    let text = said(&["pa", "init", "--out", &p("pa")]);
    assert!(
        text.contains(&format!("created folder {}\n", p("pa"))),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "wrote {} (PA token-signing key, P-256, mode 0600)",
            p("pa/pa.key")
        )),
        "{text}"
    );
    assert!(text.contains(&format!(
        "wrote {} (PA certificate, valid until 20",
        p("pa/pa.pem")
    )));
    let text = said(&[
        "ca",
        "init",
        "--out",
        &p("ca"),
        "--crl-url",
        "https://cr.example.net/ca/intermediate.crl",
        "--now",
        NOW,
    ]);
    for expected in [
        format!("wrote {} (root CA key, mode 0600)", p("ca/root.key")),
        format!(
            "wrote {} (issuing CA key, mode 0600)",
            p("ca/intermediate.key")
        ),
        format!(
            "wrote {} (root CA certificate, valid until 2047-01-10T08:00:00Z (2430720000)",
            p("ca/root.pem")
        ),
        format!(
            "wrote {} (issuing CA certificate, valid until 2037-01-12T08:00:00Z (2115360000); \
             its CRL: https://cr.example.net/ca/root.crl)",
            p("ca/intermediate.pem")
        ),
        format!(
            "wrote {} (CA state; the CRL of the certificates it issues: \
             https://cr.example.net/ca/intermediate.crl)",
            p("ca/ca.json")
        ),
    ] {
        assert!(text.contains(&expected), "{expected}\n{text}");
    }
    let text = said(&["sp", "keygen", "--out", &p("sp.key")]);
    assert!(
        text.contains(&format!(
            "wrote {} (P-256 private key, mode 0600; fingerprint SHA256 ",
            p("sp.key")
        )),
        "{text}"
    );
    let fingerprint = text
        .split("fingerprint ")
        .nth(1)
        .unwrap()
        .trim()
        .trim_end_matches(')')
        .to_owned();
    let text = said(&[
        "sp",
        "csr",
        "--key",
        &p("sp.key"),
        "--spc",
        "1001",
        "--out",
        &p("sp.csr"),
    ]);
    assert!(
        text.contains(&format!("wrote {} (CSR for SPC 1001)", p("sp.csr"))),
        "{text}"
    );
    let text = said(&[
        "pa",
        "spc-token",
        "--pa",
        &p("pa"),
        "--spc",
        "1001",
        "--fingerprint",
        &fingerprint,
        "--out",
        &p("token.jwt"),
        "--now",
        NOW,
    ]);
    assert!(
        text.contains(&format!(
            "wrote {} (SPC token for SPC 1001, jti ",
            p("token.jwt")
        )) && text.contains(", expires 2027-01-15T09:00:00Z (1800003600))"),
        "{text}"
    );
    let jti = text
        .split("jti ")
        .nth(1)
        .unwrap()
        .split(',')
        .next()
        .unwrap();
    let issue = |out: &str, now: &str, extra: &[&str]| {
        let mut args: Vec<String> = vec![
            "ca".into(),
            "issue".into(),
            "--ca".into(),
            p("ca"),
            "--csr".into(),
            p("sp.csr"),
            "--spc-token".into(),
            p("token.jwt"),
            "--pa-cert".into(),
            p("pa/pa.pem"),
            "--now".into(),
            now.into(),
            "--out".into(),
            p(out),
        ];
        args.extend(extra.iter().map(|a| a.to_string()));
        shaken(args)
    };
    let output = issue("chain.pem", NOW, &[]);
    let text = stderr(&output);
    assert!(output.status.success(), "{text}");
    assert!(
        text.contains(&format!(
            "wrote {} (certificate chain for SPC 1001: serial ",
            p("chain.pem")
        )) && text.contains(
            ", valid 2027-01-15T08:00:00Z (1800000000) to 2027-04-15T08:00:00Z (1807776000), \
                 then the issuing CA)"
        ),
        "{text}"
    );
    let serial = text
        .split("serial ")
        .nth(1)
        .unwrap()
        .split(',')
        .next()
        .unwrap()
        .to_owned();
    assert!(
        text.contains(&format!(
            "recorded in {}: serial {serial} issued to SPC 1001, SPC token jti {jti} used",
            p("ca/ca.json")
        )),
        "{text}"
    );
    assert_eq!(ca_json(d)["token_ids"][0]["jti"], jti);

    // The same token again: refused, naming the jti and when it was used.
    let state = std::fs::read(d.join("ca/ca.json")).unwrap();
    let output = issue("again.pem", "1800000060", &[]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains(&format!(
            "SPC token jti {jti} was already used at 2027-01-15T08:00:00Z (1800000000) for \
             serial {serial}"
        )),
        "{}",
        stderr(&output)
    );
    assert!(!d.join("again.pem").exists());
    assert_eq!(std::fs::read(d.join("ca/ca.json")).unwrap(), state);
    let output = issue("again.pem", "1800000060", &["--allow-token-reuse"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stderr(&output).contains(&format!(
            "warning: SPC token jti {jti} was already used at 2027-01-15T08:00:00Z (1800000000)"
        )),
        "{}",
        stderr(&output)
    );
    assert_eq!(ca_json(d)["token_ids"].as_array().unwrap().len(), 2);

    let text = said(&[
        "ca",
        "revoke",
        "--ca",
        &p("ca"),
        "--serial",
        &serial,
        "--reason",
        "superseded",
        "--now",
        "1800000120",
    ]);
    assert!(
        text.contains(&format!(
            "recorded in {}: serial {serial} revoked (superseded) at 2027-01-15T08:02:00Z \
             (1800000120); publish a new CRL with `shaken ca crl`",
            p("ca/ca.json")
        )),
        "{text}"
    );
    let text = said(&[
        "ca",
        "crl",
        "--ca",
        &p("ca"),
        "--out",
        &p("ca.crl"),
        "--now",
        "1800000180",
    ]);
    assert!(
        text.contains("CRL number 1 of the issuing CA, 1 revoked certificate,"),
        "{text}"
    );
}

/// `ca lint` checks validity against the clock unless --now says otherwise: the test PKI's
/// expired chain (carrier 1005, expired 2026-01-02) is an error today, and fine at a time
/// inside its validity.
#[test]
fn lint_checks_validity_now_by_default() {
    let expired = certs_test::path("expired/chain.pem");
    let output = shaken(["ca", "lint", expired.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1), "{}", stdout(&output));
    assert!(
        stdout(&output).contains(
            "error: atis-1000080.validity: expired at 2026-01-02T00:00:00Z (1767312000) (now 20"
        ),
        "{}",
        stdout(&output)
    );
    assert!(
        stderr(&output).contains("validity checked at 20"),
        "{}",
        stderr(&output)
    );
    let output = shaken([
        "ca",
        "lint",
        expired.to_str().unwrap(),
        "--now",
        "1767225700",
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", stdout(&output));
    assert!(
        stderr(&output).contains("validity checked at 2026-01-01T00:01:40Z (1767225700)"),
        "{}",
        stderr(&output)
    );
}
