//! Conformance vectors (STANDARDS.md §9), tampering, and property tests.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use passport::base64url;
use passport::error::Part;
use passport::identity::IdentityHeader;
use passport::keys::{SigningKey, VerifyingKey};
use passport::tnauthlist::TnAuthList;
use passport::token::{self, Passport, TokenSigner};
use passport::verify::{verify_passport, verify_rcd, verify_shaken, VerifyOptions};
use passport::{Attestation, Claims, Dest, Header, NumberingPlan, OrigId, Party, Tn, TokenError};
use proptest::prelude::*;

const RFC8225_KEY: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgi7q2TZvN9VDFg8Vy
qCP06bETrR2v8MRvr89rn4i+UAahRANCAAQWfaj1HUETpoNCrOtp9KA8o0V79IuW
ARKt9C1cFPkyd3FBP4SeiNZxQhDrD0tdBHls3/wFe8++K2FrPyQF9vuh
-----END PRIVATE KEY-----
";
const RFC8225_X5U: &str = "https://cert.example.org/passport.cer";

fn rfc8225_key() -> SigningKey {
    SigningKey::from_pem(RFC8225_KEY.as_bytes()).unwrap()
}

fn rfc8588_claims() -> Claims {
    Claims::shaken(
        1443208345,
        Party::Tn("12155551212".into()),
        Dest::tns(vec!["12125551213".into()]).unwrap(),
        Attestation::A,
        "123e4567-e89b-12d3-a456-426655440000".parse().unwrap(),
    )
}

#[test]
fn rfc_8225_appendix_a_encodes_byte_for_byte() {
    let header = Header::new("ES256", None, RFC8225_X5U);
    let claims = Claims::base(
        1471375418,
        Party::Tn("12155551212".into()),
        Dest::uris(vec!["sip:alice@example.com".into()]).unwrap(),
    );
    assert_eq!(
        header.to_json(),
        r#"{"alg":"ES256","typ":"passport","x5u":"https://cert.example.org/passport.cer"}"#
    );
    assert_eq!(
        claims.to_json(),
        r#"{"dest":{"uri":["sip:alice@example.com"]},"iat":1471375418,"orig":{"tn":"12155551212"}}"#
    );
    let input = token::signing_input(&header, &claims);
    assert_eq!(
        input,
        "eyJhbGciOiJFUzI1NiIsInR5cCI6InBhc3Nwb3J0IiwieDV1IjoiaHR0cHM6Ly9jZXJ0LmV4YW1wbGUub3JnL3Bhc3Nwb3J0LmNlciJ9.eyJkZXN0Ijp7InVyaSI6WyJzaXA6YWxpY2VAZXhhbXBsZS5jb20iXX0sImlhdCI6MTQ3MTM3NTQxOCwib3JpZyI6eyJ0biI6IjEyMTU1NTUxMjEyIn19"
    );

    // As a signing oracle: sign with the RFC key, verify with the key derived from it.
    let key = rfc8225_key();
    let signed = token::sign(&header, &claims, &key).unwrap();
    let decoded = Passport::decode(&signed).unwrap();
    assert_eq!(decoded.signing_input(), input.as_bytes());
    assert_eq!(
        decoded.verify_signature(&key.verifying_key().unwrap()),
        Ok(())
    );

    // The signature printed in the RFC verifies under neither the derived key nor the printed
    // public key (STANDARDS.md §9.1 finding); this pins that finding.
    let printed = format!(
        "{input}.VLBCIVDCaeK6M4hLJb6SHQvacAQVvoiiEOWQ_iUkqk79UD81fHQ0E1b3_GluIkba7UWYRM47ZbNFdOJquE35cw"
    );
    let printed_public = VerifyingKey::from_pem(
        b"-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE8HNbQd/TmvCKwPKHkMF9fScavGeH\n78YTU8qLS8I5HLHSSmlATLcslQMhNC/OhlWBYC626nIlo7XeebYS7Sb37g==\n-----END PUBLIC KEY-----\n",
    )
    .unwrap();
    let printed = Passport::decode(&printed).unwrap();
    assert_eq!(
        printed.verify_signature(&printed_public),
        Err(TokenError::BadSignature)
    );
    assert_eq!(
        printed.verify_signature(&key.verifying_key().unwrap()),
        Err(TokenError::BadSignature)
    );
}

#[test]
fn rfc_8588_example_encodes_byte_for_byte() {
    let header = Header::shaken(RFC8225_X5U);
    let input = token::signing_input(&header, &rfc8588_claims());
    assert_eq!(
        input,
        "eyJhbGciOiJFUzI1NiIsInBwdCI6InNoYWtlbiIsInR5cCI6InBhc3Nwb3J0IiwieDV1IjoiaHR0cHM6Ly9jZXJ0LmV4YW1wbGUub3JnL3Bhc3Nwb3J0LmNlciJ9.eyJhdHRlc3QiOiJBIiwiZGVzdCI6eyJ0biI6WyIxMjEyNTU1MTIxMyJdfSwiaWF0IjoxNDQzMjA4MzQ1LCJvcmlnIjp7InRuIjoiMTIxNTU1NTEyMTIifSwib3JpZ2lkIjoiMTIzZTQ1NjctZTg5Yi0xMmQzLWE0NTYtNDI2NjU1NDQwMDAwIn0"
    );
    // The fast signer produces the same signing input.
    let signer = TokenSigner::new(rfc8225_key(), RFC8225_X5U);
    let signed = signer.sign(&rfc8588_claims()).unwrap();
    assert!(signed.starts_with(&format!("{input}.")));
}

#[test]
fn rfc_7515_a3_es256_signature_verifies() {
    let x = base64url::decode_part("f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", Part::Header)
        .unwrap();
    let y = base64url::decode_part("x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0", Part::Header)
        .unwrap();
    let point: Vec<u8> = [&[4u8][..], &x, &y].concat();
    let key = VerifyingKey::from_sec1(&point).unwrap();
    let input = "eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ";
    let signature = base64url::decode_part(
        "DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q",
        Part::Signature,
    )
    .unwrap();
    assert_eq!(key.verify(input.as_bytes(), &signature), Ok(()));
    let mut flipped = signature.clone();
    flipped[0] ^= 1;
    assert_eq!(
        key.verify(input.as_bytes(), &flipped),
        Err(TokenError::BadSignature)
    );
}

#[test]
fn production_certificate_tnauthlist_is_709j_and_re_encodes() {
    let pem = include_bytes!("data/production-shaken-709J.pem");
    let chain = passport::cert::chain_from_pem(pem).unwrap();
    let cert = passport::cert::parse_certificate(&chain[0]).unwrap();
    let ext = cert
        .extensions()
        .iter()
        .find(|e| e.oid.to_id_string() == "1.3.6.1.5.5.7.1.26")
        .unwrap();
    assert_eq!(
        ext.value,
        [0x30, 0x08, 0xa0, 0x06, 0x16, 0x04, b'7', b'0', b'9', b'J']
    );
    let list = TnAuthList::from_der(ext.value).unwrap();
    assert_eq!(list.single_spc(), Some("709J"));
    assert_eq!(list.to_der(), ext.value);
}

/// A signed Identity header for the RFC 8588 claims at a fixed time, and its key.
fn signed_identity() -> (String, VerifyingKey) {
    let signer = TokenSigner::new(SigningKey::generate().unwrap(), RFC8225_X5U);
    let identity = signer.identity_header(&rfc8588_claims()).unwrap();
    (identity, signer.verifying_key().unwrap())
}

fn check(identity: &str, key: &VerifyingKey) -> Result<(), TokenError> {
    let parsed = IdentityHeader::parse(identity)?;
    let from = Tn::canonicalize("+1 215 555 1212", None).unwrap();
    let to = [Tn::canonicalize("12125551213", None).unwrap()];
    verify_shaken(
        &parsed,
        key,
        &VerifyOptions::at(1443208345 + 30),
        Some(&from),
        &to,
    )
}

#[test]
fn the_untouched_token_verifies() {
    let (identity, key) = signed_identity();
    assert_eq!(check(&identity, &key), Ok(()));
    assert!(
        identity.ends_with(";info=<https://cert.example.org/passport.cer>;alg=ES256;ppt=shaken")
    );
}

/// Rebuilds the identity with one decoded byte of `part` XORed with `mask`.
fn tamper(identity: &str, part: usize, index: usize, mask: u8) -> String {
    let (token, params) = identity.split_once(';').unwrap();
    let mut parts: Vec<Vec<u8>> = token
        .split('.')
        .map(|p| base64url::decode_part(p, Part::Header).unwrap())
        .collect();
    parts[part][index] ^= mask;
    let token: Vec<String> = parts.iter().map(|p| base64url::encode(p)).collect();
    format!("{};{params}", token.join("."))
}

#[test]
fn changing_any_byte_fails_with_the_right_error() {
    let (identity, key) = signed_identity();
    let (token, _) = identity.split_once(';').unwrap();
    let lengths: Vec<usize> = token
        .split('.')
        .map(|p| base64url::decode_part(p, Part::Header).unwrap().len())
        .collect();
    for (part, &len) in lengths.iter().enumerate() {
        for index in 0..len {
            for mask in [0x01, 0x20, 0x80] {
                let tampered = tamper(&identity, part, index, mask);
                let err = check(&tampered, &key).expect_err("tampered token verified");
                // Freshness is checked before the signature (RFC 8224 order), so an altered
                // `iat` may be reported as stale (403) rather than as a bad signature (438).
                let code = if matches!(err, TokenError::Stale { .. }) {
                    403
                } else {
                    438
                };
                assert_eq!(err.sip_reason().code(), code, "{err}");
                let expected = match part {
                    0 => matches!(
                        err,
                        TokenError::Json {
                            part: Part::Header,
                            ..
                        } | TokenError::InvalidHeaderParameter { .. }
                            | TokenError::MissingHeaderParameter(_)
                            | TokenError::InfoMismatch { .. }
                            | TokenError::ParameterMismatch { .. }
                            | TokenError::BadSignature
                    ),
                    1 => matches!(
                        err,
                        TokenError::Json {
                            part: Part::Payload,
                            ..
                        } | TokenError::InvalidClaim { .. }
                            | TokenError::MissingClaim(_)
                            | TokenError::Stale { .. }
                            | TokenError::FromTheFuture { .. }
                            | TokenError::BadSignature
                    ),
                    _ => err == TokenError::BadSignature,
                };
                assert!(expected, "part {part} byte {index} mask {mask:#x}: {err:?}");
            }
        }
    }
}

#[test]
fn verification_outcomes_map_to_sip_codes() {
    let (identity, key) = signed_identity();
    let parsed = IdentityHeader::parse(&identity).unwrap();
    let stale = verify_shaken(
        &parsed,
        &key,
        &VerifyOptions::at(1443208345 + 61),
        None,
        &[],
    );
    assert!(matches!(stale, Err(TokenError::Stale { age: 61, .. })));
    assert_eq!(stale.unwrap_err().sip_reason().code(), 403);

    let other = SigningKey::generate().unwrap().verifying_key().unwrap();
    assert_eq!(check(&identity, &other), Err(TokenError::BadSignature));

    let wrong_from = Tn::canonicalize("12155550000", None).unwrap();
    let err = verify_shaken(
        &parsed,
        &key,
        &VerifyOptions::at(1443208345),
        Some(&wrong_from),
        &[],
    );
    assert!(matches!(err, Err(TokenError::OrigMismatch { .. })));
    let wrong_to = [Tn::canonicalize("12125550000", None).unwrap()];
    let err = verify_shaken(
        &parsed,
        &key,
        &VerifyOptions::at(1443208345),
        None,
        &wrong_to,
    );
    assert_eq!(err, Err(TokenError::DestMismatch("12125550000".into())));
}

#[test]
fn identity_header_leniency_and_refusals() {
    let (identity, key) = signed_identity();
    let (token, _) = identity.split_once(';').unwrap();
    let x5u = RFC8225_X5U;
    // Accepted: case, whitespace, order, unknown parameters, a ';' inside a quoted value.
    for ok in [
        format!("{token};INFO=<{x5u}>;Alg=ES256;PPT=shaken"),
        format!("  {token} ; info = <{x5u}> ; ppt = shaken ; alg = ES256 "),
        format!("{token};ppt=shaken;foo=\"a;b\";info=<{x5u}>;bar"),
        format!("{token};info=<{x5u}>"),
        format!("{token};info=<{x5u}>;ppt=\"shaken\";"),
    ] {
        assert_eq!(check(&ok, &key), Ok(()), "{ok}");
    }
    let parsed = IdentityHeader::parse(&format!("{token};info=<{x5u}>;X-Foo=1;bar")).unwrap();
    assert_eq!(
        parsed.other_parameters(),
        &[
            ("x-foo".to_owned(), Some("1".to_owned())),
            ("bar".to_owned(), None)
        ]
    );

    type Expect = fn(&TokenError) -> bool;
    let refusals: Vec<(String, Expect)> = vec![
        (format!("{token};alg=ES256;ppt=shaken"), |e| {
            *e == TokenError::MissingInfo
        }),
        (format!("{token};info={x5u}"), |e| {
            matches!(e, TokenError::MalformedInfo(_))
        }),
        (format!("{token};info=<https://evil.example/x.pem>"), |e| {
            matches!(e, TokenError::InfoMismatch { .. })
        }),
        (format!("{token};info=<{x5u}>;ppt=div"), |e| {
            matches!(e, TokenError::ParameterMismatch { name: "ppt", .. })
        }),
        (format!("{token};info=<{x5u}>;alg=RS256"), |e| {
            matches!(e, TokenError::ParameterMismatch { name: "alg", .. })
        }),
        (format!("{token};info=<{x5u}>;info=<{x5u}>"), |e| {
            matches!(e, TokenError::DuplicateParameter(_))
        }),
        (format!("{token};info=<{x5u}>;a b=1"), |e| {
            matches!(e, TokenError::MalformedParameter(_))
        }),
        (format!("{};info=<{x5u}>", "A".repeat(9000)), |e| {
            matches!(e, TokenError::IdentityTooLong { .. })
        }),
        (
            format!("..{};info=<{x5u}>", token.rsplit('.').next().unwrap()),
            |e| *e == TokenError::CompactForm,
        ),
        (format!("{}.x;info=<{x5u}>", token), |e| {
            matches!(e, TokenError::SegmentCount(4))
        }),
        (format!("{}=;info=<{x5u}>", token), |e| {
            matches!(
                e,
                TokenError::TokenCharacter {
                    part: Part::Signature,
                    found: '=',
                    ..
                }
            )
        }),
        (
            format!("e30.{};info=<{x5u}>", token.split_once('.').unwrap().1),
            |e| matches!(e, TokenError::MissingHeaderParameter("alg")),
        ),
        (
            format!(
                "bm90IGpzb24.{};info=<{x5u}>",
                token.split_once('.').unwrap().1
            ),
            |e| {
                matches!(
                    e,
                    TokenError::Json {
                        part: Part::Header,
                        ..
                    }
                )
            },
        ),
    ];
    for (bad, expected) in refusals {
        let err = check(&bad, &key).expect_err(&bad);
        assert!(expected(&err), "{bad}: {err:?}");
        assert_eq!(err.sip_reason().code(), 438);
    }
}

#[test]
fn a_non_shaken_passport_is_refused_by_shaken_verification() {
    let key = rfc8225_key();
    let claims = Claims::base(
        1443208345,
        Party::Tn("12155551212".into()),
        Dest::tns(vec!["12125551213".into()]).unwrap(),
    );
    let token = token::sign(&Header::new("ES256", None, RFC8225_X5U), &claims, &key).unwrap();
    let identity = format!("{token};info=<{RFC8225_X5U}>;alg=ES256");
    let err = check(&identity, &key.verifying_key().unwrap()).unwrap_err();
    assert!(matches!(
        err,
        TokenError::InvalidHeaderParameter { name: "ppt", .. }
    ));

    let token = token::sign(&Header::shaken(RFC8225_X5U), &claims, &key).unwrap();
    let identity = IdentityHeader::format_shaken(&token, RFC8225_X5U);
    assert_eq!(
        check(&identity, &key.verifying_key().unwrap()),
        Err(TokenError::MissingClaim("attest"))
    );
}

/// ATIS-1000094's claim-in-shaken form: the RFC 8588 claims with `rcd` and `crn` give exactly
/// these bytes (decoded below, so the expectation is readable), and the token verifies.
#[test]
fn marketing_claims_inside_shaken_encode_byte_for_byte() {
    let claims = rfc8588_claims()
        .with_rcd("Example Marketing Co.", Some("Product offer"))
        .unwrap();
    let signer = TokenSigner::new(rfc8225_key(), RFC8225_X5U);
    let identity = signer.identity_header(&claims).unwrap();
    let payload = identity.split('.').nth(1).unwrap();
    assert_eq!(
        payload,
        "eyJhdHRlc3QiOiJBIiwiY3JuIjoiUHJvZHVjdCBvZmZlciIsImRlc3QiOnsidG4iOlsiMTIxMjU1NTEyMTMiXX0sImlhdCI6MTQ0MzIwODM0NSwib3JpZyI6eyJ0biI6IjEyMTU1NTUxMjEyIn0sIm9yaWdpZCI6IjEyM2U0NTY3LWU4OWItMTJkMy1hNDU2LTQyNjY1NTQ0MDAwMCIsInJjZCI6eyJuYW0iOiJFeGFtcGxlIE1hcmtldGluZyBDby4ifX0"
    );
    assert_eq!(
        String::from_utf8(base64url::decode_part(payload, Part::Payload).unwrap()).unwrap(),
        r#"{"attest":"A","crn":"Product offer","dest":{"tn":["12125551213"]},"iat":1443208345,"orig":{"tn":"12155551212"},"origid":"123e4567-e89b-12d3-a456-426655440000","rcd":{"nam":"Example Marketing Co."}}"#
    );
    assert_eq!(
        check(&identity, &rfc8225_key().verifying_key().unwrap()),
        Ok(())
    );
    let parsed = IdentityHeader::parse(&identity).unwrap();
    assert_eq!(
        parsed.passport().claims().rcd_name(),
        Some("Example Marketing Co.")
    );
    assert_eq!(
        parsed.passport().claims().call_reason(),
        Some("Product offer")
    );
}

/// A separate `ppt=rcd` PASSporT (RFC 9795) verifies with the same steps, and is refused by
/// the SHAKEN check and without its `rcd`.
#[test]
fn an_rcd_passport_verifies_with_the_same_machinery() {
    let key = rfc8225_key();
    let verifying = key.verifying_key().unwrap();
    let claims = Claims::rcd_passport(
        1443208345,
        Party::Tn("12155551212".into()),
        Dest::tns(vec!["12125551213".into()]).unwrap(),
        passport::RichCallData::new("Example Marketing Co.").unwrap(),
        Some("Sales".parse().unwrap()),
    );
    let token = token::sign(&Header::rcd(RFC8225_X5U), &claims, &key).unwrap();
    let identity = IdentityHeader::format(&token, RFC8225_X5U, Some("rcd"));
    assert!(identity.ends_with(";alg=ES256;ppt=rcd"));
    let parsed = IdentityHeader::parse(&identity).unwrap();
    let options = VerifyOptions::at(1443208345);
    let from = Tn::canonicalize("12155551212", None).unwrap();
    let to = [Tn::canonicalize("12125551213", None).unwrap()];
    assert_eq!(
        verify_rcd(&parsed, &verifying, &options, Some(&from), &to),
        Ok(())
    );
    assert_eq!(
        verify_passport(&parsed, &verifying, &options, Some(&from), &to),
        Ok(())
    );
    assert!(matches!(
        verify_shaken(&parsed, &verifying, &options, Some(&from), &to),
        Err(TokenError::InvalidHeaderParameter { name: "ppt", .. })
    ));
    let other = [Tn::canonicalize("12125550000", None).unwrap()];
    assert!(matches!(
        verify_rcd(&parsed, &verifying, &options, Some(&from), &other),
        Err(TokenError::DestMismatch(_))
    ));
    assert!(matches!(
        verify_rcd(
            &parsed,
            &verifying,
            &VerifyOptions::at(1443208345 + 61),
            Some(&from),
            &to
        ),
        Err(TokenError::Stale { .. })
    ));
    // A shaken token is not an rcd token, and an rcd token needs its rcd.
    let shaken = TokenSigner::new(key, RFC8225_X5U)
        .identity_header(&rfc8588_claims())
        .unwrap();
    let shaken = IdentityHeader::parse(&shaken).unwrap();
    assert!(matches!(
        verify_rcd(&shaken, &verifying, &options, None, &[]),
        Err(TokenError::InvalidHeaderParameter { name: "ppt", .. })
    ));
    let bare = Claims::base(
        1443208345,
        Party::Tn("12155551212".into()),
        Dest::tns(vec!["12125551213".into()]).unwrap(),
    );
    let token = token::sign(&Header::rcd(RFC8225_X5U), &bare, &rfc8225_key()).unwrap();
    let bare =
        IdentityHeader::parse(&IdentityHeader::format(&token, RFC8225_X5U, Some("rcd"))).unwrap();
    assert_eq!(
        verify_rcd(&bare, &verifying, &options, None, &[]),
        Err(TokenError::MissingClaim("rcd"))
    );
}

// --- Property tests ---

fn plan() -> impl Strategy<Value = Option<NumberingPlan>> {
    prop_oneof![
        Just(None),
        Just(Some(NumberingPlan::Nanp)),
        Just(Some(NumberingPlan::China))
    ]
}

fn claims_strategy() -> impl Strategy<Value = Claims> {
    (
        any::<u64>(),
        "[0-9]{1,15}",
        prop::collection::vec("[+]?[0-9]{1,15}", 1..4),
        prop_oneof![
            Just(Attestation::A),
            Just(Attestation::B),
            Just(Attestation::C)
        ],
        any::<u128>(),
        prop::collection::btree_map("x[a-z]{0,6}", "[ -~é中]{0,12}", 0..3),
        prop::option::of("[ -~]{1,20}"),
        prop::option::of("[ -~é中]{1,20}"),
    )
        .prop_map(|(iat, orig, dest, attest, id, extra, crn, nam)| {
            let hex = format!("{id:032x}");
            let origid: OrigId = format!(
                "{}-{}-{}-{}-{}",
                &hex[..8],
                &hex[8..12],
                &hex[12..16],
                &hex[16..20],
                &hex[20..]
            )
            .parse()
            .unwrap();
            let mut claims = Claims::shaken(
                iat,
                Party::Tn(orig),
                Dest::tns(dest).unwrap(),
                attest,
                origid,
            );
            if let Some(nam) = nam {
                claims = claims.with_rcd(&nam, crn.as_deref()).unwrap();
            }
            for (name, value) in extra {
                claims.insert_extra(name, value.into()).unwrap();
            }
            claims
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn canonicalization_is_idempotent(input in "[+]?[0-9 ().-]{0,24}", plan in plan()) {
        if let Ok(tn) = Tn::canonicalize(&input, plan) {
            // A canonical number read again as canonical is unchanged...
            prop_assert_eq!(Tn::canonicalize(tn.as_str(), None), Ok(tn.clone()));
            // ...and so is it read again, marked E.164, under the same plan. (Read as bare
            // digits under a national plan it could be ambiguous: 2125551234 is a Moroccan
            // E.164 number and a NANP national one.)
            let marked = format!("+{tn}");
            prop_assert_eq!(Tn::canonicalize(&marked, plan), Ok(tn));
        }
    }

    #[test]
    fn encode_then_parse_is_the_identity(claims in claims_strategy(), x5u in "https://[a-z]{1,10}\\.example/[a-z0-9/]{0,20}") {
        let signer = TokenSigner::new(rfc8225_key(), x5u.clone());
        let identity = signer.identity_header(&claims).unwrap();
        let parsed = IdentityHeader::parse(&identity).unwrap();
        prop_assert_eq!(parsed.passport().claims(), &claims);
        prop_assert_eq!(parsed.passport().header(), &Header::shaken(x5u));
        prop_assert_eq!(Claims::from_json(claims.to_json().as_bytes()), Ok(claims));
    }

    #[test]
    fn identity_parser_never_panics(input in ".{0,400}") {
        let _ = IdentityHeader::parse(&input);
    }

    #[test]
    fn identity_parser_never_panics_on_near_misses(
        token in "[A-Za-z0-9_.=-]{0,200}",
        params in prop::collection::vec("[ a-zA-Z=<>\";:/.]{0,30}", 0..5),
    ) {
        let _ = IdentityHeader::parse(&format!("{token};{}", params.join(";")));
    }
}
