//! Interoperability with PyJWT + cryptography: their tokens verify here, ours verify there.

use passport::identity::IdentityHeader;
use passport::verify::{verify_rcd, verify_shaken, VerifyOptions};
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

/// A marketing call's token from our command line (Rich Call Data inside the `shaken`
/// PASSporT, and a separate `ppt=rcd` one) verifies in PyJWT with the same claims.
#[test]
fn rich_call_data_signed_here_verifies_in_pyjwt() {
    let dir = tempdir();
    let out = oracle(&["keygen", dir.path().to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let key = dir.path().join("key-pkcs8.pem");
    let cert = dir.path().join("cert.pem");
    for ppt in ["shaken", "rcd"] {
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
            "--attest",
            "A",
            "--iat",
            "1700000000",
            "--origid",
            "de305d54-75b4-431b-adb2-eb6b9e546014",
            "--rcd-nam",
            "Example Marketing 营销",
            "--crn",
            "Product offer",
            "--ppt",
            ppt,
        ]);
        assert!(output.status.success(), "{}", stderr(&output));
        let identity = stdout(&output);
        assert!(identity.trim_end().ends_with(&format!(";ppt={ppt}")));
        let token = identity.split(';').next().unwrap();
        let checked = oracle(&["verify", token, cert.to_str().unwrap()]);
        assert!(
            checked.status.success(),
            "PyJWT rejected our {ppt} token: {}",
            stderr(&checked)
        );
        let seen = stdout_json(&checked);
        assert_eq!(seen["header"]["ppt"], ppt);
        let mut expected = serde_json::json!({
            "crn": "Product offer",
            "dest": {"tn": ["12125551213"]},
            "iat": 1700000000,
            "orig": {"tn": "12155551212"},
            "rcd": {"nam": "Example Marketing 营销"}
        });
        if ppt == "shaken" {
            expected["attest"] = "A".into();
            expected["origid"] = "de305d54-75b4-431b-adb2-eb6b9e546014".into();
        }
        assert_eq!(seen["claims"], expected);
    }
}

/// PyJWT's tokens with Rich Call Data, in its non-canonical member order (the `rcd` object's
/// members too), verify here: a `shaken` PASSporT with `rcd` and `crn`, and an RFC 9795
/// `ppt=rcd` PASSporT, through the library and the command line.
#[test]
fn rich_call_data_signed_by_pyjwt_verifies_here() {
    let dir = tempdir();
    let out = oracle(&["keygen", dir.path().to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let cert = dir.path().join("cert.pem");
    let key = cert::verifying_key_from_pem_chain(&std::fs::read(&cert).unwrap()).unwrap();
    let from = Tn::canonicalize("12155551212", None).unwrap();
    let to = [Tn::canonicalize("12125551213", None).unwrap()];
    for ppt in ["shaken", "rcd"] {
        let signed = oracle(&[
            "sign",
            dir.path().to_str().unwrap(),
            X5U,
            "12155551212",
            "12125551213",
            "1700000000",
            ppt,
            "Example Marketing",
            "Sales",
        ]);
        assert!(signed.status.success(), "{}", stderr(&signed));
        let signed = stdout_json(&signed);
        let token = signed["token"].as_str().unwrap();
        let identity = format!("{token};info=<{X5U}>;alg=ES256;ppt={ppt}");
        let parsed = IdentityHeader::parse(&identity).unwrap();
        let claims = parsed.passport().claims();
        assert_eq!(claims.rcd_name(), Some("Example Marketing"));
        assert_eq!(claims.call_reason(), Some("Sales"));
        // The other member is kept as received.
        assert_eq!(
            claims.rcd.as_ref().unwrap().other().get("apn"),
            Some(&serde_json::json!("12155551212"))
        );
        let received_payload = token.split('.').nth(1).unwrap();
        assert_ne!(
            received_payload,
            passport::base64url::encode(claims.to_json().as_bytes()),
            "the oracle should sign non-canonical JSON"
        );
        let options = VerifyOptions::at(1700000005);
        let outcome = if ppt == "shaken" {
            verify_shaken(&parsed, &key, &options, Some(&from), &to)
        } else {
            verify_rcd(&parsed, &key, &options, Some(&from), &to)
        };
        assert_eq!(outcome, Ok(()), "{ppt}");

        let output = shaken([
            "passport",
            "verify",
            "--identity",
            &identity,
            "--cert",
            cert.to_str().unwrap(),
            "--from",
            "12155551212",
            "--to",
            "12125551213",
            "--now",
            "1700000005",
        ]);
        assert_eq!(output.status.code(), Some(0), "{}", stdout(&output));
        let verdict = stdout_json(&output);
        assert_eq!(verdict["verstat"], "TN-Validation-Passed");
        assert_eq!(
            verdict["rcd"],
            serde_json::json!({"apn": "12155551212", "nam": "Example Marketing"})
        );
        assert_eq!(verdict["crn"], "Sales");
    }
}
