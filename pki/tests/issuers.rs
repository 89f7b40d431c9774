//! Path building against issuers made for the occasion with the CA tools: an intermediate
//! with a critical extension nobody knows is refused (RFC 5280 §4.2).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use ca_tools::certificate::{self, oid};
use ca_tools::profile::{self, Common, Issuer};
use der::{Decode, Encode};
use p256::SecretKey;

const NOW: u64 = 1_800_000_000;

fn read(relative: &str) -> Vec<u8> {
    std::fs::read(certs_test::path(relative)).unwrap()
}

fn issuer_of(der: &[u8]) -> Issuer {
    let cert = x509_cert::Certificate::from_der(der).unwrap();
    Issuer {
        key_id: certificate::key_identifier(&cert.tbs_certificate.subject_public_key_info),
        name: cert.tbs_certificate.subject,
    }
}

fn common(key: &SecretKey, cn: &str) -> Common {
    Common {
        serial: certificate::random_serial(&mut rand_core::OsRng).unwrap(),
        subject: certificate::name(&[
            (oid::COUNTRY, "US"),
            (oid::ORGANIZATION, "Test"),
            (oid::COMMON_NAME, cn),
        ])
        .unwrap(),
        subject_public_key: certificate::spki(&key.public_key()).unwrap(),
        not_before: NOW - 86_400,
        not_after: NOW + 86_400,
    }
}

/// An end entity under a new intermediate signed by the test root; `extra` is added to the
/// intermediate's extensions.
fn chain_with(extra: Option<x509_cert::ext::Extension>) -> Vec<Vec<u8>> {
    let root_der = passport::cert::chain_from_pem(&read("ca/root.pem")).unwrap()[0].clone();
    let root_key = passport::SigningKey::from_pem(&read("ca/root.key")).unwrap();
    let intermediate_key = SecretKey::random(&mut rand_core::OsRng);
    let mut spec = profile::intermediate_ca(
        common(&intermediate_key, "Test Issuing CA 2"),
        &issuer_of(&root_der),
        "https://cr.example/root.crl",
    )
    .unwrap();
    spec.extensions.extend(extra);
    let intermediate = certificate::sign_certificate(spec, root_key.secret()).unwrap();
    let key = SecretKey::random(&mut rand_core::OsRng);
    let end_entity = certificate::sign_certificate(
        profile::sti_end_entity(
            common(&key, "SHAKEN 1001"),
            &issuer_of(&intermediate),
            "https://cr.example/ca.crl",
            &passport::TnAuthList::spc("1001").unwrap(),
        )
        .unwrap(),
        &intermediate_key,
    )
    .unwrap();
    vec![end_entity, intermediate]
}

#[test]
fn an_issuer_with_an_unknown_critical_extension_is_refused() {
    let anchors = pki::TrustAnchors::from_pem(&read("ca/root.pem")).unwrap();
    // Without the extension, the made-up chain validates: the test is about the extension.
    assert!(pki::path::validate(&chain_with(None), &anchors, NOW).is_ok());
    let unknown = der::asn1::ObjectIdentifier::new_unwrap("1.3.6.1.4.1.99999.7");
    let critical = x509_cert::ext::Extension {
        extn_id: unknown,
        critical: true,
        extn_value: der::asn1::OctetString::new(der::asn1::Null.to_der().unwrap()).unwrap(),
    };
    assert_eq!(
        pki::path::validate(&chain_with(Some(critical.clone())), &anchors, NOW).err(),
        Some(pki::Error::UnknownCriticalExtension {
            index: 1,
            oid: unknown.to_string()
        })
    );
    // The same extension, not critical, is ignored.
    let ignorable = x509_cert::ext::Extension {
        critical: false,
        ..critical
    };
    assert!(pki::path::validate(&chain_with(Some(ignorable)), &anchors, NOW).is_ok());
}
