//! The committed test PKI and its deterministic generator.
//!
//! `cargo run -p certs-test` regenerates `certs-test/pki/` from a fixed seed and a fixed clock:
//! keys come from a seeded ChaCha20 generator, serials too, and signatures are deterministic
//! ECDSA (RFC 6979), so the same seed always gives the same bytes. A test regenerates into a
//! temporary folder and fails on any difference. `pki/README.md` lists every file and, for each
//! malformed certificate, what is wrong in it.
//!
//! Tests elsewhere find the files through [`pki_dir`] and [`path`].
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::path::{Path, PathBuf};

use ca_tools::certificate::{self, ext, oid, CertificateSpec};
use ca_tools::crl::{self, Reason, Revoked};
use ca_tools::lint::Rule;
use ca_tools::profile::{self, Common, Issuer};
use ca_tools::CaError;
use der::asn1::BitString;
use p256::SecretKey;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use x509_cert::ext::pkix::KeyUsages;
use x509_cert::spki::SubjectPublicKeyInfoOwned;

/// The seed of the committed PKI.
pub const SEED: u64 = 0x5348_414b_454e; // "SHAKEN"
/// The generator's clock: 2026-01-01T00:00:00Z. Every certificate starts here.
pub const T0: u64 = 1_767_225_600;
/// "Far in the future" for certificates that must stay valid: 2100-01-01T00:00:00Z.
pub const FAR: u64 = 4_102_444_800;
/// The expired certificate's end: 2026-01-02T00:00:00Z.
pub const EXPIRED_END: u64 = T0 + 86_400;
/// The SPCs with a valid certificate.
pub const SPCS: [&str; 3] = ["1001", "1002", "1003"];
/// The SPC of the revoked certificate.
pub const REVOKED_SPC: &str = "1004";
/// The SPC of the expired certificate.
pub const EXPIRED_SPC: &str = "1005";
/// The CRL URL written in the test STI certificates.
pub const CRL_URL: &str = "https://cr.shaken.test/ca/intermediate.crl";
/// The root CRL URL written in the test intermediate.
pub const ROOT_CRL_URL: &str = "https://cr.shaken.test/ca/root.crl";

/// The committed PKI folder.
pub fn pki_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("pki")
}

/// A file of the committed PKI, e.g. `path("sp/1001/chain.pem")`.
pub fn path(relative: &str) -> PathBuf {
    pki_dir().join(relative)
}

/// Runs the `openssl` command in `dir` (tests use it as an independent checker); whether it
/// succeeded, and what it printed (stdout, then stderr). Panics if `openssl` cannot run, so a
/// missing install fails the test loudly.
#[allow(clippy::panic)] // test support: a missing checker must fail the test, not pass it
pub fn openssl(args: &[&str], dir: &Path) -> (bool, String) {
    let output = std::process::Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("openssl is needed by this test and did not run: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

/// One malformed certificate per linter rule: file stem, rule, what is wrong.
pub const MALFORMED: [(&str, Rule, &str); 16] = [
    ("parse", Rule::Parse, "the DER is cut off after 100 bytes"),
    ("version", Rule::Version, "version v2 instead of v3"),
    (
        "serial-number",
        Rule::SerialNumber,
        "a 4-byte serial (32 bits, fewer than 64)",
    ),
    (
        "signature-algorithm",
        Rule::SignatureAlgorithm,
        "declares ecdsa-with-SHA384",
    ),
    (
        "public-key",
        Rule::PublicKey,
        "the P-256 key is a compressed point",
    ),
    (
        "subject-fields",
        Rule::SubjectFields,
        "the subject has no O",
    ),
    (
        "common-name",
        Rule::CommonName,
        "CN is SHAKEN 9999 but the TNAuthList SPC is 1001",
    ),
    (
        "basic-constraints",
        Rule::BasicConstraints,
        "basic constraints is not critical",
    ),
    (
        "key-usage",
        Rule::KeyUsage,
        "key usage adds keyEncipherment to digitalSignature",
    ),
    (
        "subject-key-identifier",
        Rule::SubjectKeyIdentifier,
        "no subject key identifier",
    ),
    (
        "authority-key-identifier",
        Rule::AuthorityKeyIdentifier,
        "no authority key identifier",
    ),
    (
        "certificate-policies",
        Rule::CertificatePolicies,
        "the only policy is 1.3.6.1.4.1.99999.1, not the SHAKEN CP",
    ),
    (
        "crl-distribution-points",
        Rule::CrlDistributionPoints,
        "two CRL distribution points",
    ),
    ("tn-auth-list", Rule::TnAuthList, "no TNAuthList extension"),
    (
        "extensions",
        Rule::Extensions,
        "an extended key usage extension (not allowed in STI certificates)",
    ),
    (
        "validity",
        Rule::Validity,
        "not valid before 2099-01-01 (lint with --now)",
    ),
];

struct Ca {
    key: SecretKey,
    issuer: Issuer,
    der: Vec<u8>,
}

struct Writer<'a> {
    out: &'a Path,
    files: Vec<(String, String)>,
}

impl Writer<'_> {
    fn write(&mut self, relative: &str, bytes: &[u8], description: &str) -> Result<(), CaError> {
        let path = self.out.join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| CaError::io(parent, &e))?;
        }
        std::fs::write(&path, bytes).map_err(|e| CaError::io(&path, &e))?;
        self.files
            .push((relative.to_owned(), description.to_owned()));
        Ok(())
    }

    fn key(&mut self, relative: &str, key: &SecretKey, description: &str) -> Result<(), CaError> {
        let pem = passport::SigningKey::from_secret(key.clone())?.to_pkcs8_pem()?;
        self.write(relative, pem.as_bytes(), description)
    }

    fn cert(&mut self, relative: &str, ders: &[&[u8]], description: &str) -> Result<(), CaError> {
        let pem: String = ders
            .iter()
            .map(|der| certificate::certificate_pem(der))
            .collect();
        self.write(relative, pem.as_bytes(), description)
    }
}

fn dn(org: &str, cn: &str) -> Result<x509_cert::name::Name, CaError> {
    certificate::name(&[
        (oid::COUNTRY, "US"),
        (oid::ORGANIZATION, org),
        (oid::COMMON_NAME, cn),
    ])
}

fn common(
    rng: &mut ChaCha20Rng,
    key: &SecretKey,
    subject: x509_cert::name::Name,
    not_after: u64,
) -> Result<Common, CaError> {
    Ok(Common {
        serial: certificate::random_serial(rng)?,
        subject,
        subject_public_key: certificate::spki(&key.public_key())?,
        not_before: T0,
        not_after,
    })
}

fn new_ca(rng: &mut ChaCha20Rng, org: &str) -> Result<(Ca, Ca), CaError> {
    let root_key = SecretKey::random(&mut *rng);
    let root_common = common(
        rng,
        &root_key,
        dn(org, &format!("{org} SHAKEN Root CA"))?,
        FAR,
    )?;
    let root_der = certificate::sign_certificate(profile::root_ca(root_common)?, &root_key)?;
    let root = Ca {
        issuer: issuer_of(&root_der)?,
        key: root_key,
        der: root_der,
    };
    let key = SecretKey::random(&mut *rng);
    let spec = profile::intermediate_ca(
        common(
            rng,
            &key,
            dn(org, &format!("{org} SHAKEN Issuing CA"))?,
            FAR,
        )?,
        &root.issuer,
        ROOT_CRL_URL,
    )?;
    let der = certificate::sign_certificate(spec, &root.key)?;
    let intermediate = Ca {
        issuer: issuer_of(&der)?,
        key,
        der,
    };
    Ok((root, intermediate))
}

fn issuer_of(der: &[u8]) -> Result<Issuer, CaError> {
    use der::Decode;
    let cert = x509_cert::Certificate::from_der(der)?;
    Ok(Issuer {
        key_id: certificate::key_identifier(&cert.tbs_certificate.subject_public_key_info),
        name: cert.tbs_certificate.subject,
    })
}

/// An STI end-entity spec for `spc` under `ca`, valid until `not_after`.
fn sti_spec(
    rng: &mut ChaCha20Rng,
    ca: &Ca,
    key: &SecretKey,
    spc: &str,
    org: &str,
    not_after: u64,
) -> Result<CertificateSpec, CaError> {
    let list = passport::TnAuthList::spc(spc)?;
    profile::sti_end_entity(
        common(rng, key, dn(org, &format!("SHAKEN {spc}"))?, not_after)?,
        &ca.issuer,
        CRL_URL,
        &list,
    )
}

/// Writes the whole test PKI into `out` from `seed`.
pub fn generate(out: &Path, seed: u64) -> Result<(), CaError> {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let mut w = Writer {
        out,
        files: Vec::new(),
    };

    // Policy administrator.
    let pa_key = SecretKey::random(&mut rng);
    let pa_spec = profile::policy_administrator(common(
        &mut rng,
        &pa_key,
        dn("Test STI-PA", "Test STI-PA Token Signer")?,
        FAR,
    )?)?;
    let pa_der = certificate::sign_certificate(pa_spec, &pa_key)?;
    w.key(
        "pa/pa.key",
        &pa_key,
        "policy administrator's token-signing key",
    )?;
    w.cert(
        "pa/pa.pem",
        &[&pa_der],
        "policy administrator's self-signed certificate",
    )?;

    // The trusted STI-CA.
    let (root, intermediate) = new_ca(&mut rng, "Test STI-CA")?;
    w.key("ca/root.key", &root.key, "STI-CA root key")?;
    w.cert(
        "ca/root.pem",
        &[&root.der],
        "STI-CA root certificate: the trust anchor",
    )?;
    w.key(
        "ca/intermediate.key",
        &intermediate.key,
        "STI-CA issuing CA key",
    )?;
    w.cert(
        "ca/intermediate.pem",
        &[&intermediate.der],
        "STI-CA issuing CA certificate",
    )?;

    // Valid carriers.
    for (i, spc) in SPCS.iter().enumerate() {
        let key = SecretKey::random(&mut rng);
        let org = ["Carrier One", "Carrier Two", "Carrier Three"]
            .get(i)
            .copied()
            .unwrap_or("Carrier");
        let der = certificate::sign_certificate(
            sti_spec(&mut rng, &intermediate, &key, spc, org, FAR)?,
            &intermediate.key,
        )?;
        w.key(
            &format!("sp/{spc}/key.pem"),
            &key,
            &format!("SPC {spc} signing key"),
        )?;
        w.cert(
            &format!("sp/{spc}/cert.pem"),
            &[&der],
            &format!("SPC {spc} STI certificate, valid until 2100"),
        )?;
        w.cert(
            &format!("sp/{spc}/chain.pem"),
            &[&der, &intermediate.der],
            &format!("SPC {spc} chain as served at its x5u: certificate, then the issuing CA"),
        )?;
    }

    // Expired.
    let key = SecretKey::random(&mut rng);
    let der = certificate::sign_certificate(
        sti_spec(
            &mut rng,
            &intermediate,
            &key,
            EXPIRED_SPC,
            "Expired Carrier",
            EXPIRED_END,
        )?,
        &intermediate.key,
    )?;
    w.key("expired/key.pem", &key, "key of the expired certificate")?;
    w.cert(
        "expired/chain.pem",
        &[&der, &intermediate.der],
        "SPC 1005 chain whose certificate expired 2026-01-02",
    )?;

    // Revoked, and the CRLs.
    let key = SecretKey::random(&mut rng);
    let spec = sti_spec(
        &mut rng,
        &intermediate,
        &key,
        REVOKED_SPC,
        "Revoked Carrier",
        FAR,
    )?;
    let revoked_serial = spec.serial.as_bytes().to_vec();
    let der = certificate::sign_certificate(spec, &intermediate.key)?;
    w.key("revoked/key.pem", &key, "key of the revoked certificate")?;
    w.cert(
        "revoked/chain.pem",
        &[&der, &intermediate.der],
        "SPC 1004 chain whose certificate is revoked (keyCompromise)",
    )?;
    let revoked = [Revoked {
        serial: revoked_serial,
        revoked_at: T0 + 3600,
        reason: Reason::KeyCompromise,
    }];
    let crl_der = crl::build(
        &intermediate.issuer,
        &intermediate.key,
        1,
        T0 + 3600,
        FAR,
        &revoked,
    )?;
    w.write(
        "ca/intermediate.crl",
        &crl_der,
        "issuing CA CRL (DER) listing the revoked certificate; nextUpdate 2100",
    )?;
    let root_crl = crl::build(&root.issuer, &root.key, 1, T0, FAR, &[])?;
    w.write(
        "ca/root.crl",
        &root_crl,
        "root CRL (DER), empty; nextUpdate 2100",
    )?;

    // A chain from a root nobody trusts, claiming a trusted carrier's SPC.
    let (rogue_root, rogue_intermediate) = new_ca(&mut rng, "Rogue CA")?;
    let key = SecretKey::random(&mut rng);
    let der = certificate::sign_certificate(
        sti_spec(
            &mut rng,
            &rogue_intermediate,
            &key,
            "1001",
            "Rogue Carrier",
            FAR,
        )?,
        &rogue_intermediate.key,
    )?;
    w.cert(
        "untrusted/root.pem",
        &[&rogue_root.der],
        "a root that is not a trust anchor",
    )?;
    w.key(
        "untrusted/key.pem",
        &key,
        "key of the untrusted certificate",
    )?;
    w.cert(
        "untrusted/chain.pem",
        &[&der, &rogue_intermediate.der],
        "SPC 1001 chain issued under the untrusted root",
    )?;

    // TLS for the repository.
    let tls_root_key = SecretKey::random(&mut rng);
    let tls_root_der = certificate::sign_certificate(
        profile::root_ca(common(
            &mut rng,
            &tls_root_key,
            dn("Test Repository TLS", "Test Repository TLS Root")?,
            FAR,
        )?)?,
        &tls_root_key,
    )?;
    let tls_key = SecretKey::random(&mut rng);
    let localhost = [
        std::net::IpAddr::from([127, 0, 0, 1]),
        std::net::IpAddr::from(std::net::Ipv6Addr::LOCALHOST),
    ];
    let tls_der = certificate::sign_certificate(
        profile::tls_server(
            common(
                &mut rng,
                &tls_key,
                dn("Test Repository TLS", "localhost")?,
                FAR,
            )?,
            &issuer_of(&tls_root_der)?,
            &["localhost"],
            &localhost,
        )?,
        &tls_root_key,
    )?;
    w.cert(
        "tls/root.pem",
        &[&tls_root_der],
        "root that the repository's TLS certificate chains to (a client trusts it)",
    )?;
    w.cert(
        "tls/server.pem",
        &[&tls_der],
        "repository TLS certificate for localhost, 127.0.0.1 and ::1",
    )?;
    w.key("tls/server.key", &tls_key, "repository TLS key")?;

    // One malformed certificate per linter rule.
    for (stem, rule, what) in MALFORMED {
        let der = malformed(&mut rng, &intermediate, rule)?;
        w.cert(&format!("malformed/{stem}.pem"), &[&der], what)?;
    }
    // And one that passes ATIS-1000080 but uses the older CP v1.1 policy (a warning).
    let key = SecretKey::random(&mut rng);
    let mut spec = sti_spec(&mut rng, &intermediate, &key, "1001", "Carrier One", FAR)?;
    replace_extension(
        &mut spec,
        &oid::CERTIFICATE_POLICIES,
        ext::certificate_policies(&[oid::SHAKEN_CP_1_1])?,
    );
    let der = certificate::sign_certificate(spec, &intermediate.key)?;
    w.cert(
        "malformed/cp-1.1-policy.pem",
        &[&der],
        "policy is SHAKEN CP v1.1 (a warning, not an error)",
    )?;

    // A TLS client certificate (e.g. an SBC's, for a signer's mutual TLS), under the TLS root.
    let client_key = SecretKey::random(&mut rng);
    let client_der = certificate::sign_certificate(
        profile::tls_client(
            common(&mut rng, &client_key, dn("Test SBC", "sbc-1.test")?, FAR)?,
            &issuer_of(&tls_root_der)?,
        )?,
        &tls_root_key,
    )?;
    w.cert(
        "tls/client.pem",
        &[&client_der],
        "TLS client certificate (clientAuth) of a test SBC, under tls/root.pem",
    )?;
    w.key("tls/client.key", &client_key, "that client's key")?;

    write_readme(&mut w)
}

fn replace_extension(
    spec: &mut CertificateSpec,
    id: &oid::ObjectIdentifier,
    with: x509_cert::ext::Extension,
) {
    if let Some(slot) = spec.extensions.iter_mut().find(|e| e.extn_id == *id) {
        *slot = with;
    }
}

fn remove_extension(spec: &mut CertificateSpec, id: &oid::ObjectIdentifier) {
    spec.extensions.retain(|e| e.extn_id != *id);
}

fn malformed(rng: &mut ChaCha20Rng, ca: &Ca, rule: Rule) -> Result<Vec<u8>, CaError> {
    let key = SecretKey::random(&mut *rng);
    let mut spec = sti_spec(rng, ca, &key, "1001", "Carrier One", FAR)?;
    match rule {
        Rule::Parse => {
            let der = certificate::sign_certificate(spec, &ca.key)?;
            return Ok(der.get(..100).unwrap_or_default().to_vec());
        }
        Rule::Version => {
            let mut tbs = certificate::tbs_certificate(spec)?;
            tbs.version = x509_cert::Version::V2;
            return certificate::sign_tbs(tbs, &ca.key);
        }
        Rule::SerialNumber => {
            spec.serial = x509_cert::serial_number::SerialNumber::new(&[0x12, 0x34, 0x56, 0x78])?
        }
        Rule::SignatureAlgorithm => {
            let mut tbs = certificate::tbs_certificate(spec)?;
            tbs.signature.oid = oid::ECDSA_WITH_SHA384;
            return certificate::sign_tbs(tbs, &ca.key);
        }
        Rule::PublicKey => {
            use p256::elliptic_curve::sec1::ToEncodedPoint;
            let compressed = key.public_key().to_encoded_point(true);
            spec.subject_public_key = SubjectPublicKeyInfoOwned {
                algorithm: spec.subject_public_key.algorithm.clone(),
                subject_public_key: BitString::from_bytes(compressed.as_bytes())?,
            };
        }
        Rule::SubjectFields => {
            spec.subject =
                certificate::name(&[(oid::COUNTRY, "US"), (oid::COMMON_NAME, "SHAKEN 1001")])?
        }
        Rule::CommonName => spec.subject = dn("Carrier One", "SHAKEN 9999")?,
        Rule::BasicConstraints => {
            let mut bc = ext::basic_constraints(false, None)?;
            bc.critical = false;
            replace_extension(&mut spec, &oid::BASIC_CONSTRAINTS, bc);
        }
        Rule::KeyUsage => replace_extension(
            &mut spec,
            &oid::KEY_USAGE,
            ext::key_usage(KeyUsages::DigitalSignature | KeyUsages::KeyEncipherment)?,
        ),
        Rule::SubjectKeyIdentifier => remove_extension(&mut spec, &oid::SUBJECT_KEY_IDENTIFIER),
        Rule::AuthorityKeyIdentifier => remove_extension(&mut spec, &oid::AUTHORITY_KEY_IDENTIFIER),
        Rule::CertificatePolicies => replace_extension(
            &mut spec,
            &oid::CERTIFICATE_POLICIES,
            ext::certificate_policies(&[der::asn1::ObjectIdentifier::new_unwrap(
                "1.3.6.1.4.1.99999.1",
            )])?,
        ),
        Rule::CrlDistributionPoints => replace_extension(
            &mut spec,
            &oid::CRL_DISTRIBUTION_POINTS,
            ext::crl_distribution_points(&[CRL_URL, "https://backup.shaken.test/ca.crl"])?,
        ),
        Rule::TnAuthList => remove_extension(&mut spec, &oid::TN_AUTH_LIST),
        Rule::Extensions => spec.extensions.push(ext::server_auth()?),
        Rule::Validity => spec.not_before = 4_070_908_800, // 2099-01-01
        Rule::Cp13SubjectAttributes | Rule::Cp13SubjectSerialNumber | Rule::Cp13PolicyVersion => {}
    }
    certificate::sign_certificate(spec, &ca.key)
}

fn write_readme(w: &mut Writer<'_>) -> Result<(), CaError> {
    let mut text = String::from(
        "# Test PKI\n\nGenerated by `cargo run -p certs-test` (seed and clock in `certs-test/src/lib.rs`);\n\
         do not edit by hand. A test regenerates it and fails on any difference. Every certificate\n\
         starts 2026-01-01T00:00:00Z; the valid ones end 2100-01-01. Keys are PKCS#8 PEM. These\n\
         keys are public test material: never trust this PKI outside tests.\n\n\
         | file | what it is |\n|---|---|\n",
    );
    let mut files = w.files.clone();
    files.sort();
    for (file, description) in files {
        text.push_str(&format!("| `{file}` | {description} |\n"));
    }
    text.push_str(
        "\nEach `malformed/*.pem` breaks one rule of `shaken ca lint` (named after the rule, \
         `atis-1000080.<name>`) and nothing else; the description says what is wrong.\n",
    );
    let readme = w.out.join("README.md");
    std::fs::write(&readme, text).map_err(|e| CaError::io(&readme, &e))
}

/// The DER of the first certificate of a committed PEM file (for tests).
pub fn der_of(relative: &str) -> Result<Vec<u8>, CaError> {
    let pem = std::fs::read(path(relative)).map_err(|e| CaError::io(path(relative), &e))?;
    let mut chain = passport::cert::chain_from_pem(&pem)?;
    if chain.is_empty() {
        return Err(CaError::InvalidArgument(format!(
            "{relative} holds no certificate"
        )));
    }
    Ok(chain.swap_remove(0))
}
