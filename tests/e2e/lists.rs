//! `shaken lists sign | verify | show` as the regulator and a carrier run them, with a key and
//! certificate made by OpenSSL; the signed list checked by PyJWT.

use std::path::Path;

use crate::support::{openssl, oracle, shaken, stderr, stdout, stdout_json, tempdir};

/// 2025-11-24T16:00:00Z and 2025-12-24T16:00:00Z: the list's validity; the tests pin `--now`.
const ISSUED: u64 = 1_764_000_000;
const EXPIRES: u64 = 1_766_592_000;
const DURING: &str = "1765000000";

/// The example list the `lists` crate's own tests use too.
const LIST: &str = include_str!("../../lists/tests/data/example.toml");

/// A P-256 key (`key.pem`, SEC1 as `openssl ecparam` writes it) and a self-signed certificate
/// (`cert.pem`) in `dir`, and a certificate for another key (`other.pem`).
fn regulator(dir: &Path) {
    openssl(
        &[
            "ecparam",
            "-name",
            "prime256v1",
            "-genkey",
            "-out",
            "key.pem",
        ],
        dir,
    );
    openssl(
        &[
            "req",
            "-new",
            "-x509",
            "-key",
            "key.pem",
            "-subj",
            "/CN=Regulator",
            "-days",
            "3650",
            "-out",
            "cert.pem",
        ],
        dir,
    );
    openssl(
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "other-key.pem",
            "-subj",
            "/CN=Other",
            "-days",
            "3650",
            "-out",
            "other.pem",
        ],
        dir,
    );
    std::fs::write(dir.join("list.toml"), LIST).unwrap();
}

fn sign(dir: &Path) -> std::process::Output {
    shaken([
        "lists",
        "sign",
        "--key",
        dir.join("key.pem").to_str().unwrap(),
        "--cert",
        dir.join("cert.pem").to_str().unwrap(),
        "--in",
        dir.join("list.toml").to_str().unwrap(),
        "--out",
        dir.join("list.jws").to_str().unwrap(),
    ])
}

fn verify(dir: &Path, cert: &str, file: &str, now: &str) -> std::process::Output {
    shaken([
        "lists",
        "verify",
        "--cert",
        dir.join(cert).to_str().unwrap(),
        dir.join(file).to_str().unwrap(),
        "--now",
        now,
    ])
}

#[test]
fn sign_verify_show_and_exit_codes() {
    let dir = tempdir();
    let dir = dir.path();
    regulator(dir);
    let signed = sign(dir);
    assert!(signed.status.success(), "{}", stderr(&signed));
    let said = stdout(&signed);
    assert!(
        said.contains("list.jws: version 7, 2 firms, 10002 firm numbers, 10001 blacklisted numbers, expires 2025-12-24T16:00:00Z (1766592000)"),
        "{said}"
    );

    // Valid during its validity.
    let ok = verify(dir, "cert.pem", "list.jws", DURING);
    assert_eq!(ok.status.code(), Some(0), "{}{}", stdout(&ok), stderr(&ok));
    assert!(stdout(&ok).contains("valid: version 7"));
    assert_eq!(stdout(&ok).lines().count(), 1);

    // Expired, and not yet issued: 1, saying why.
    let expired = verify(dir, "cert.pem", "list.jws", &EXPIRES.to_string());
    assert_eq!(expired.status.code(), Some(1));
    assert!(
        stdout(&expired).contains("expired at 2025-12-24T16:00:00Z (1766592000)"),
        "{}",
        stdout(&expired)
    );
    let early = verify(dir, "cert.pem", "list.jws", &(ISSUED - 301).to_string());
    assert_eq!(early.status.code(), Some(1));
    assert!(
        stdout(&early).contains("is issued at"),
        "{}",
        stdout(&early)
    );

    // Another certificate: 1.
    let other = verify(dir, "other.pem", "list.jws", DURING);
    assert_eq!(other.status.code(), Some(1));
    assert!(stdout(&other).contains("x5t#S256"), "{}", stdout(&other));

    // A changed byte anywhere (a sample of positions across the three segments, the dots and
    // the final newline): 1.
    let original = std::fs::read(dir.join("list.jws")).unwrap();
    let dots: Vec<usize> = original
        .iter()
        .enumerate()
        .filter(|(_, b)| **b == b'.')
        .map(|(i, _)| i)
        .collect();
    let mut positions = vec![
        0,
        1,
        dots[0],
        dots[0] + 1,
        dots[1],
        dots[1] + 1,
        original.len() - 2,
        original.len() - 1,
    ];
    positions.extend((0..original.len()).step_by(97));
    for position in positions {
        let mut changed = original.clone();
        changed[position] = if changed[position] == b'A' {
            b'B'
        } else {
            b'A'
        };
        std::fs::write(dir.join("changed.jws"), &changed).unwrap();
        let out = verify(dir, "cert.pem", "changed.jws", DURING);
        assert_eq!(
            out.status.code(),
            Some(1),
            "byte {position}: {}{}",
            stdout(&out),
            stderr(&out)
        );
        assert!(stdout(&out).contains("refused"), "byte {position}");
    }

    // Unreadable file or certificate: 2, naming the file.
    let missing = verify(dir, "cert.pem", "missing.jws", DURING);
    assert_eq!(missing.status.code(), Some(2));
    assert!(
        stderr(&missing).contains("missing.jws"),
        "{}",
        stderr(&missing)
    );
    let no_cert = verify(dir, "nope.pem", "list.jws", DURING);
    assert_eq!(no_cert.status.code(), Some(2));
    assert!(stderr(&no_cert).contains("nope.pem"));
    let key_as_cert = verify(dir, "key.pem", "list.jws", DURING);
    assert_eq!(
        key_as_cert.status.code(),
        Some(2),
        "{}",
        stderr(&key_as_cert)
    );

    // Show, verified first.
    let show = shaken([
        "lists",
        "show",
        "--cert",
        dir.join("cert.pem").to_str().unwrap(),
        dir.join("list.jws").to_str().unwrap(),
        "--now",
        DURING,
    ]);
    assert!(show.status.success(), "{}", stderr(&show));
    let text = stdout(&show);
    for needle in [
        "signature valid",
        "version 7",
        "issued  2025-11-24T16:00:00Z (1764000000)",
        "expires 2025-12-24T16:00:00Z (1766592000)\n",
        "91310000MA1FL1234X  Example Insurance Co.",
        "status white-listed, hourly quota 1000",
        "reasons: Policy renewal; Appointment reminder",
        "10001 numbers: 8613800138000, 862158880000-862158889999",
        "status blacklisted, hourly quota 0",
        "10001 blacklisted numbers: 8617000000001, 8617100000000-8617100009999",
    ] {
        assert!(text.contains(needle), "{needle:?} in\n{text}");
    }
    // Show of a changed list with --cert: 1; without --cert it says the signature is unchecked.
    let show_changed = shaken([
        "lists",
        "show",
        "--cert",
        dir.join("other.pem").to_str().unwrap(),
        dir.join("list.jws").to_str().unwrap(),
    ]);
    assert_eq!(show_changed.status.code(), Some(1));
    let unchecked = shaken([
        "lists",
        "show",
        dir.join("list.jws").to_str().unwrap(),
        "--now",
        DURING,
    ]);
    assert!(stdout(&unchecked).contains("signature NOT checked"));
    let toml = shaken([
        "lists",
        "show",
        dir.join("list.toml").to_str().unwrap(),
        "--now",
        DURING,
    ]);
    assert!(
        stdout(&toml).contains("unsigned TOML list"),
        "{}",
        stdout(&toml)
    );
}

#[test]
fn sign_refuses_bad_input_naming_the_file() {
    let dir = tempdir();
    let dir = dir.path();
    regulator(dir);
    // A key that is not the certificate's.
    let mismatched = shaken([
        "lists",
        "sign",
        "--key",
        dir.join("other-key.pem").to_str().unwrap(),
        "--cert",
        dir.join("cert.pem").to_str().unwrap(),
        "--in",
        dir.join("list.toml").to_str().unwrap(),
        "--out",
        dir.join("list.jws").to_str().unwrap(),
    ]);
    assert_eq!(mismatched.status.code(), Some(2));
    assert!(
        stderr(&mismatched).contains("does not match"),
        "{}",
        stderr(&mismatched)
    );
    assert!(!dir.join("list.jws").exists());
    // An inconsistent list: a firm's number also blacklisted.
    std::fs::write(
        dir.join("list.toml"),
        LIST.replace("\"8617000000001\"", "\"8613900139000\""),
    )
    .unwrap();
    let inconsistent = sign(dir);
    assert_eq!(inconsistent.status.code(), Some(2));
    let message = stderr(&inconsistent);
    assert!(
        message.contains("list.toml")
            && message.contains("91440300MA5G9ABC1Y")
            && message.contains("blacklisted_numbers"),
        "{message}"
    );
}

#[test]
fn pyjwt_verifies_the_signed_list_and_reads_the_same_payload() {
    let dir = tempdir();
    let dir = dir.path();
    regulator(dir);
    assert!(sign(dir).status.success());
    let json = dir.join("list.json");
    let checked = oracle(&[
        "verify-list",
        dir.join("list.jws").to_str().unwrap(),
        dir.join("cert.pem").to_str().unwrap(),
    ]);
    assert!(
        checked.status.success(),
        "PyJWT rejected our list: {}",
        stderr(&checked)
    );
    let seen = stdout_json(&checked);
    assert_eq!(seen["header"]["alg"], "ES256");
    assert_eq!(seen["header"]["typ"], "shaken-list+jwt");
    assert_eq!(
        seen["header"]["x5t#S256"], seen["x5t#S256"],
        "our thumbprint is the certificate's"
    );
    assert_eq!(seen["header"].as_object().unwrap().len(), 3);
    // The payload PyJWT decoded is the canonical JSON of the same document, whichever way
    // it was written.
    let payload = seen["payload"].as_str().unwrap();
    let value: serde_json::Value = serde_json::from_str(payload).unwrap();
    assert_eq!(value["version"], 7);
    assert_eq!(value["firms"][0]["name"], "Example Insurance Co.");
    std::fs::write(&json, serde_json::to_string_pretty(&value).unwrap()).unwrap();
    let from_json = shaken([
        "lists",
        "sign",
        "--key",
        dir.join("key.pem").to_str().unwrap(),
        "--cert",
        dir.join("cert.pem").to_str().unwrap(),
        "--in",
        json.to_str().unwrap(),
        "--out",
        dir.join("again.jws").to_str().unwrap(),
    ]);
    assert!(from_json.status.success(), "{}", stderr(&from_json));
    let again = oracle(&[
        "verify-list",
        dir.join("again.jws").to_str().unwrap(),
        dir.join("cert.pem").to_str().unwrap(),
    ]);
    assert_eq!(stdout_json(&again)["payload"], payload);
    // And PyJWT refuses it with another certificate, or once a byte changes.
    let other = oracle(&[
        "verify-list",
        dir.join("list.jws").to_str().unwrap(),
        dir.join("other.pem").to_str().unwrap(),
    ]);
    assert!(!other.status.success());
    let mut changed = std::fs::read(dir.join("list.jws")).unwrap();
    changed[60] = if changed[60] == b'A' { b'B' } else { b'A' };
    std::fs::write(dir.join("changed.jws"), changed).unwrap();
    let tampered = oracle(&[
        "verify-list",
        dir.join("changed.jws").to_str().unwrap(),
        dir.join("cert.pem").to_str().unwrap(),
    ]);
    assert!(!tampered.status.success());
}
