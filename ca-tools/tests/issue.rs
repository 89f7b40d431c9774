//! `CaDir::issue`: the successful path and every refusal, each with its own error.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use ca_tools::ca::{CaDir, InitOptions, IssueOptions};
use ca_tools::crl::Reason;
use ca_tools::lint::{self, Severity};
use ca_tools::{certificate, csr, pa, spc_token, CaError};
use p256::pkcs8::EncodePublicKey;
use rand_core::OsRng;

const NOW: u64 = 1_790_000_000;

struct Setup {
    _dir: tempfile::TempDir,
    ca: CaDir,
    pa_key: passport::SigningKey,
    pa_pem: Vec<u8>,
    sp_key: p256::SecretKey,
    csr: Vec<u8>,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    pa::init(&dir.path().join("pa"), "Test PA", NOW, false, &mut OsRng).unwrap();
    let options = InitOptions {
        organization: "Test CA".into(),
        country: "US".into(),
        crl_url: "https://cr.example.net/ca/intermediate.crl".into(),
        root_crl_url: None,
        force: false,
    };
    let ca = CaDir::init(&dir.path().join("ca"), &options, NOW, &mut OsRng).unwrap();
    let pa_key = ca_tools::keyfile::read_private_key(&dir.path().join("pa/pa.key")).unwrap();
    let pa_pem = std::fs::read(dir.path().join("pa/pa.pem")).unwrap();
    let sp_key = p256::SecretKey::random(&mut OsRng);
    let csr = csr::build(&sp_key, "1001", "Carrier One", "US").unwrap();
    Setup {
        _dir: dir,
        ca,
        pa_key,
        pa_pem,
        sp_key,
        csr,
    }
}

fn fingerprint(key: &p256::SecretKey) -> String {
    certificate::spki_fingerprint(key.public_key().to_public_key_der().unwrap().as_bytes())
}

fn token(s: &Setup, spc: &str, fingerprint: &str, issued_at: u64, ttl: u64) -> String {
    spc_token::create(
        &s.pa_key,
        spc,
        fingerprint,
        issued_at,
        ttl,
        "jti".into(),
        None,
    )
    .unwrap()
}

#[test]
fn a_matching_token_and_csr_get_a_clean_chain() {
    let mut s = setup();
    let t = token(&s, "1001", &fingerprint(&s.sp_key), NOW, 300);
    let (chain, serial) =
        s.ca.issue(&s.csr, &t, &s.pa_pem, 90, NOW, &mut OsRng)
            .unwrap();
    let reports = lint::lint_pem(chain.as_bytes(), Some(NOW + 10)).unwrap();
    assert_eq!(reports.len(), 2, "end entity then the issuing CA");
    for report in &reports {
        assert!(
            report
                .findings
                .iter()
                .all(|f| f.severity() == Severity::Warning),
            "{report:?}"
        );
    }
    // The serial has at least 64 random bits and is recorded.
    assert!(serial.len() >= 16, "{serial}");
    assert_eq!(s.ca.state.issued.len(), 1);
    assert_eq!(s.ca.state.issued[0].spc, "1001");
    assert_eq!(s.ca.state.issued[0].not_after, NOW + 90 * 86_400);
    // The certificate carries the CSR's key and the SPC.
    let der = passport::cert::chain_from_pem(chain.as_bytes())
        .unwrap()
        .remove(0);
    let key = passport::cert::verifying_key_of(&der).unwrap();
    assert_eq!(
        key,
        passport::SigningKey::from_secret(s.sp_key.clone())
            .unwrap()
            .verifying_key()
            .unwrap()
    );
    // Revocation, once, then a CRL that lists it.
    s.ca.revoke(&serial, Reason::Superseded, NOW + 20).unwrap();
    assert!(matches!(
        s.ca.revoke(&serial, Reason::Superseded, NOW + 20),
        Err(CaError::AlreadyRevoked(_))
    ));
    assert!(matches!(
        s.ca.revoke("00AB", Reason::Superseded, NOW),
        Err(CaError::UnknownSerial(_))
    ));
    let crl = s.ca.crl(24, NOW + 30, false).unwrap();
    assert!(crl
        .windows(serial.len() / 2)
        .any(|w| ca_tools::ca::serial_hex(w) == serial));
    assert_eq!(s.ca.state.crl_number, 1);
}

#[test]
fn an_expired_token_is_refused() {
    let mut s = setup();
    let t = token(&s, "1001", &fingerprint(&s.sp_key), NOW - 600, 300);
    let err =
        s.ca.issue(&s.csr, &t, &s.pa_pem, 90, NOW, &mut OsRng)
            .unwrap_err();
    assert!(
        matches!(err, CaError::TokenExpired { exp, now: NOW } if exp == NOW - 300),
        "{err}"
    );
}

#[test]
fn a_token_signed_by_another_key_is_refused() {
    let mut s = setup();
    s.pa_key = passport::SigningKey::generate().unwrap();
    let t = token(&s, "1001", &fingerprint(&s.sp_key), NOW, 300);
    let err =
        s.ca.issue(&s.csr, &t, &s.pa_pem, 90, NOW, &mut OsRng)
            .unwrap_err();
    assert!(matches!(err, CaError::TokenSignature), "{err}");
}

#[test]
fn an_spc_mismatch_is_refused() {
    let mut s = setup();
    let t = token(&s, "1002", &fingerprint(&s.sp_key), NOW, 300);
    let err =
        s.ca.issue(&s.csr, &t, &s.pa_pem, 90, NOW, &mut OsRng)
            .unwrap_err();
    assert!(
        matches!(&err, CaError::TnAuthListMismatch { token, csr } if token == "SPC 1002" && csr == "SPC 1001"),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "SPC token TNAuthList (SPC 1002) differs from the CSR's (SPC 1001)"
    );
}

#[test]
fn a_fingerprint_mismatch_is_refused() {
    let mut s = setup();
    let other = p256::SecretKey::random(&mut OsRng);
    let t = token(&s, "1001", &fingerprint(&other), NOW, 300);
    let err =
        s.ca.issue(&s.csr, &t, &s.pa_pem, 90, NOW, &mut OsRng)
            .unwrap_err();
    assert!(
        matches!(&err, CaError::FingerprintMismatch { token, csr } if *token == fingerprint(&other) && *csr == fingerprint(&s.sp_key)),
        "{err}"
    );
}

#[test]
fn a_csr_with_a_bad_signature_is_refused() {
    let mut s = setup();
    let t = token(&s, "1001", &fingerprint(&s.sp_key), NOW, 300);
    let mut csr = s.csr.clone();
    let at = csr.windows(11).position(|w| w == b"Carrier One").unwrap();
    csr[at] = b'K';
    let err =
        s.ca.issue(&csr, &t, &s.pa_pem, 90, NOW, &mut OsRng)
            .unwrap_err();
    assert!(matches!(err, CaError::CsrSignature), "{err}");
    // Nothing was recorded for the refusals.
    assert!(s.ca.state.issued.is_empty());
}

#[test]
fn a_token_for_a_ca_certificate_is_refused() {
    let mut s = setup();
    let claims = spc_token::SpcTokenClaims {
        atc: spc_token::Atc {
            tktype: "TnAuthList".into(),
            tkvalue: "MAigBhYEMTAwMQ".into(),
            ca: true,
            fingerprint: fingerprint(&s.sp_key),
        },
        exp: NOW + 300,
        jti: Some("j".into()),
        iss: None,
    };
    let pkcs8 = p256::pkcs8::EncodePrivateKey::to_pkcs8_der(s.pa_key.secret()).unwrap();
    let t = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256),
        &claims,
        &jsonwebtoken::EncodingKey::from_ec_der(pkcs8.as_bytes()),
    )
    .unwrap();
    let err =
        s.ca.issue(&s.csr, &t, &s.pa_pem, 90, NOW, &mut OsRng)
            .unwrap_err();
    assert!(matches!(err, CaError::TokenForCa), "{err}");
}

#[test]
fn reopening_the_directory_keeps_the_state() {
    let mut s = setup();
    let t = token(&s, "1001", &fingerprint(&s.sp_key), NOW, 300);
    s.ca.issue(&s.csr, &t, &s.pa_pem, 90, NOW, &mut OsRng)
        .unwrap();
    let reopened = CaDir::open(&s._dir.path().join("ca")).unwrap();
    assert_eq!(reopened.state, s.ca.state);
    let options = InitOptions {
        organization: "Test CA".into(),
        country: "US".into(),
        crl_url: "https://cr.example.net/x.crl".into(),
        root_crl_url: None,
        force: false,
    };
    let err = CaDir::init(&s._dir.path().join("ca"), &options, NOW, &mut OsRng).unwrap_err();
    assert!(matches!(err, CaError::KeyExists(_)), "{err}");
}

/// The file-based path the command line takes: a key generated to a file, a CSR written from
/// it, the fingerprint read back from the key file, a token signed from the PA directory, and
/// issuance from those files; a refused issuance writes no chain.
#[test]
fn issuance_from_files_writes_the_chain_only_when_it_succeeds() {
    let mut s = setup();
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name);
    ca_tools::keyfile::generate_private_key(&path("sp.key"), false, &mut OsRng).unwrap();
    csr::write_request(
        &path("sp.key"),
        "1001",
        "Carrier One",
        "US",
        &path("sp.csr"),
    )
    .unwrap();
    let key_pem = std::fs::read(path("sp.key")).unwrap();
    let fingerprint = certificate::key_fingerprint_from_pem(&key_pem).unwrap();
    let public_pem = passport::SigningKey::from_pem(&key_pem)
        .unwrap()
        .secret()
        .public_key()
        .to_public_key_pem(Default::default())
        .unwrap();
    assert_eq!(
        certificate::key_fingerprint_from_pem(public_pem.as_bytes()).unwrap(),
        fingerprint
    );
    assert!(matches!(
        certificate::key_fingerprint_from_pem(b"nothing"),
        Err(CaError::NoKey(_))
    ));
    let pa_dir = s._dir.path().join("pa");
    let request = pa::SpcTokenRequest {
        spc: "1001",
        fingerprint: &fingerprint,
        ttl: 300,
        x5u: None,
    };
    let token = pa::sign_spc_token(&pa_dir, &request, NOW, &mut OsRng)
        .unwrap()
        .token;
    std::fs::write(path("token"), format!("{token}\n")).unwrap();
    let files = ca_tools::ca::IssueFiles {
        csr: &path("sp.csr"),
        spc_token: &path("token"),
        pa_certificate: &pa_dir.join("pa.pem"),
        out: &path("chain.pem"),
    };
    let serial =
        s.ca.issue_files(&files, IssueOptions::days(90), NOW, &mut OsRng)
            .unwrap()
            .record
            .serial;
    let chain = std::fs::read(path("chain.pem")).unwrap();
    assert_eq!(
        ca_tools::ca::serial_of_certificate_pem(&chain).unwrap(),
        serial
    );

    let refused = ca_tools::ca::IssueFiles {
        out: &path("refused.pem"),
        ..files
    };
    let err =
        s.ca.issue_files(&refused, IssueOptions::days(90), NOW + 600, &mut OsRng)
            .unwrap_err();
    assert!(matches!(err, CaError::TokenExpired { .. }), "{err}");
    assert!(!path("refused.pem").exists());
}

/// A token is used once: its jti is recorded with the serial it got, a second issuance with
/// it is refused with both named, and allowing reuse records the second use too.
#[test]
fn a_token_is_used_once_unless_reuse_is_allowed() {
    let mut s = setup();
    let t = token(&s, "1001", &fingerprint(&s.sp_key), NOW, 300);
    let (_, serial) =
        s.ca.issue(&s.csr, &t, &s.pa_pem, 90, NOW, &mut OsRng)
            .unwrap();
    assert_eq!(s.ca.state.token_ids.len(), 1);
    assert_eq!(s.ca.state.token_ids[0].jti, "jti");
    assert_eq!(s.ca.state.token_ids[0].used_at, NOW);
    assert_eq!(s.ca.state.token_ids[0].serial, serial);
    let before = s.ca.state.clone();
    let err =
        s.ca.issue(&s.csr, &t, &s.pa_pem, 90, NOW + 5, &mut OsRng)
            .unwrap_err();
    assert!(
        matches!(&err, CaError::TokenReused { jti, used_at: NOW, serial: first } if jti == "jti" && *first == serial),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "SPC token jti jti was already used at 2026-09-21T14:13:20Z (1790000000) for serial \
             {serial} (a token is used once; get a new one, or pass --allow-token-reuse)"
        )
    );
    assert_eq!(s.ca.state, before, "a refusal records nothing");
    let options = IssueOptions {
        days: 90,
        allow_token_reuse: true,
    };
    let again =
        s.ca.issue_with(&s.csr, &t, &s.pa_pem, options, NOW + 5, &mut OsRng)
            .unwrap();
    assert_eq!(
        again.reused.as_ref().map(|u| u.serial.as_str()),
        Some(serial.as_str())
    );
    assert_eq!(s.ca.state.token_ids.len(), 2);
    assert_eq!(s.ca.state.issued.len(), 2);
}

/// `ca.json` files written before `token_ids` existed open as having used no token, and a
/// state without used tokens is written without the member.
#[test]
fn a_state_file_without_token_ids_is_read() {
    let s = setup();
    let path = s._dir.path().join("ca/ca.json");
    let written = std::fs::read_to_string(&path).unwrap();
    assert!(!written.contains("token_ids"), "{written}");
    let old = r#"{"format":1,"organization":"Test CA","country":"US",
        "crl_url":"https://cr.example.net/ca/intermediate.crl",
        "root_crl_url":"https://cr.example.net/ca/root.crl","crl_number":3,
        "root_crl_number":1,"issued":[],"revoked":[]}"#;
    std::fs::write(&path, old).unwrap();
    let reopened = CaDir::open(&s._dir.path().join("ca")).unwrap();
    assert!(reopened.state.token_ids.is_empty());
    assert_eq!(reopened.state.crl_number, 3);
}

/// The CRL number advances only when the CRL is written: a write into a missing folder
/// creates it, a write that fails leaves `ca.json` byte for byte as it was and names the file
/// asked for.
#[test]
fn a_crl_number_is_recorded_only_with_its_crl() {
    let mut s = setup();
    let dir = s._dir.path().to_owned();
    let out = dir.join("publish/ca/intermediate.crl");
    let first = s.ca.write_crl(&out, 24, NOW, false).unwrap();
    assert_eq!((first.number, first.entries), (1, 0));
    assert_eq!(first.next_update, NOW + 24 * 3600);
    assert_eq!(
        pki::Crl::parse(&std::fs::read(&out).unwrap())
            .unwrap()
            .number,
        Some(1)
    );
    let state = std::fs::read(dir.join("ca/ca.json")).unwrap();
    std::fs::create_dir(dir.join("taken")).unwrap();
    let err =
        s.ca.write_crl(&dir.join("taken"), 24, NOW, false)
            .unwrap_err();
    assert!(
        matches!(&err, CaError::Io { path, .. } if *path == dir.join("taken")),
        "{err}"
    );
    assert!(!err.to_string().contains(".partial"), "{err}");
    assert_eq!(std::fs::read(dir.join("ca/ca.json")).unwrap(), state);
    assert_eq!(s.ca.state.crl_number, 1);
    let second = s.ca.write_crl(&out, 24, NOW + 60, false).unwrap();
    assert_eq!(second.number, 2);
    let root =
        s.ca.write_crl(&dir.join("root.crl"), 24, NOW, true)
            .unwrap();
    assert_eq!((root.number, root.root), (1, true));
    assert!(s.ca.write_crl(&out, 0, NOW, false).is_err());
    assert!(s.ca.write_crl(&out, u64::MAX, NOW, false).is_err());
    assert_eq!(s.ca.state.crl_number, 2);
}
