//! Interoperability with PyJWT + cryptography: their tokens verify here, ours verify there.

use passport::identity::IdentityHeader;
use passport::verify::{verify_shaken, VerifyOptions};
use passport::{cert, Tn};

use crate::support::{oracle, shaken, stderr, stdout, stdout_json, tempdir};

const X5U: &str = "https://cr.example.net/pyjwt.pem";

#[test]
fn tokens_signed_here_verify_in_pyjwt() {
    let dir = tempdir();
    let out = oracle(&["keygen", dir.path().to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    // The key Python wrote in its traditional SEC1 form, loaded by our signer.
    for key in ["key-sec1.pem", "key-pkcs8.pem"] {
        let key = dir.path().join(key);
        let output = shaken([
            "passport",
            "sign",
            "--key",
            key.to_str().unwrap(),
            "--x5u",
            X5U,
            "--orig",
            "12155551212",
            "--dest",
            "12125551213",
            "--dest",
            "12125551214",
            "--attest",
            "B",
            "--iat",
            "1700000000",
            "--origid",
            "de305d54-75b4-431b-adb2-eb6b9e546014",
        ]);
        assert!(output.status.success(), "{}", stderr(&output));
        let identity = stdout(&output);
        let token = identity.split(';').next().unwrap();
        let cert = dir.path().join("cert.pem");
        let checked = oracle(&["verify", token, cert.to_str().unwrap()]);
        assert!(
            checked.status.success(),
            "PyJWT rejected our token: {}",
            stderr(&checked)
        );
        let seen = stdout_json(&checked);
        assert_eq!(
            seen["header"],
            serde_json::json!({"alg": "ES256", "ppt": "shaken", "typ": "passport", "x5u": X5U})
        );
        assert_eq!(
            seen["claims"],
            serde_json::json!({
                "attest": "B",
                "dest": {"tn": ["12125551213", "12125551214"]},
                "iat": 1700000000,
                "orig": {"tn": "12155551212"},
                "origid": "de305d54-75b4-431b-adb2-eb6b9e546014"
            })
        );
        // PyJWT also rejects our token once a byte of it changes.
        let mut tampered = token.to_owned();
        tampered.insert(tampered.find('.').unwrap() + 5, 'A');
        tampered.remove(tampered.find('.').unwrap() + 6);
        if tampered != token {
            assert!(!oracle(&["verify", &tampered, cert.to_str().unwrap()])
                .status
                .success());
        }
    }
}

#[test]
fn tokens_signed_by_pyjwt_verify_here() {
    let dir = tempdir();
    let out = oracle(&["keygen", dir.path().to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let signed = oracle(&[
        "sign",
        dir.path().to_str().unwrap(),
        X5U,
        "12155551212",
        "12125551213",
        "1700000000",
    ]);
    assert!(signed.status.success(), "{}", stderr(&signed));
    let signed = stdout_json(&signed);
    let token = signed["token"].as_str().unwrap();
    let identity = format!("{token};info=<{X5U}>;alg=ES256;ppt=shaken");

    // Through the library: PyJWT's payload is not in canonical order, and still verifies,
    // because the signature is checked over the bytes as received.
    let parsed = IdentityHeader::parse(&identity).unwrap();
    let received_payload = token.split('.').nth(1).unwrap();
    let canonical_payload =
        passport::base64url::encode(parsed.passport().claims().to_json().as_bytes());
    assert_ne!(
        received_payload, canonical_payload,
        "the oracle should sign non-canonical JSON"
    );
    let key =
        cert::verifying_key_from_pem_chain(&std::fs::read(dir.path().join("cert.pem")).unwrap())
            .unwrap();
    let from = Tn::canonicalize("12155551212", None).unwrap();
    let to = [Tn::canonicalize("12125551213", None).unwrap()];
    assert_eq!(
        verify_shaken(
            &parsed,
            &key,
            &VerifyOptions::at(1700000005),
            Some(&from),
            &to
        ),
        Ok(())
    );
    assert_eq!(
        parsed
            .passport()
            .claims()
            .origid
            .as_ref()
            .map(|o| o.as_str()),
        signed["payload"]["origid"].as_str()
    );

    // Through the command line.
    let cert = dir.path().join("cert.pem");
    let output = shaken([
        "passport",
        "verify",
        "--identity",
        &identity,
        "--cert",
        cert.to_str().unwrap(),
        "--from",
        "+1-215-555-1212",
        "--to",
        "12125551213",
        "--now",
        "1700000005",
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", stdout(&output));
    assert_eq!(stdout_json(&output)["verstat"], "TN-Validation-Passed");
}
