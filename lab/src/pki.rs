//! The lab's PKI, made with the project's own CA tools: a policy administrator; an STI-CA; an
//! originating carrier (SPC 1001), a gateway carrier (SPC 2001) and a carrier whose certificate
//! is revoked (SPC 3001); a rogue CA nobody trusts, with its own carrier; and the repository's
//! TLS certificate from a lab TLS root. Chains and CRLs are published in the repository's
//! folder, at URLs under the repository's base URL.

use std::path::{Path, PathBuf};

use ca_tools::ca::{CaDir, InitOptions};
use ca_tools::certificate::{self, oid};
use ca_tools::crl::Reason;
use ca_tools::profile::{self, Common};
use ca_tools::{csr, keyfile, pa, spc_token};
use passport::SigningKey;
use rand_core::CryptoRngCore;
use tokio_rustls::TlsAcceptor;

use crate::error::{create_dir, read, write, LabError};

/// Days the lab's carrier certificates are valid.
const CARRIER_DAYS: u64 = 30;
/// Seconds the lab's TLS certificates are valid.
const TLS_SECONDS: u64 = 30 * 86_400;

/// A carrier of the lab: its key and chain files, and the x5u its chain is published at.
#[derive(Clone, Debug)]
pub struct Carrier {
    /// Its organization name.
    pub name: &'static str,
    /// Its service provider code.
    pub spc: &'static str,
    /// Its signing key (PKCS#8 PEM).
    pub key: PathBuf,
    /// Its certificate chain (PEM).
    pub chain: PathBuf,
    /// The URL its chain is published at.
    pub x5u: String,
    /// When its certificate expires (Unix seconds): the signer's expiry metric.
    pub not_after: u64,
}

/// What the lab's PKI made.
pub struct LabPki {
    /// The originating carrier (SPC 1001), whose subscribers are in the registry.
    pub originating: Carrier,
    /// The gateway carrier (SPC 2001) for international traffic.
    pub gateway: Carrier,
    /// A carrier whose certificate is revoked (SPC 3001), listed in the published CRL.
    pub revoked: Carrier,
    /// A carrier certified by the rogue CA (SPC 1001 too), which no verifier trusts.
    pub rogue: Carrier,
    /// The STI-CA's root certificate (DER): the verifier's trust anchor, also in `roots.pem`.
    pub ca_root: Vec<u8>,
    /// The lab TLS root (DER) that issued the repository's certificate, also in
    /// `tls-root.pem`.
    pub tls_root: Vec<u8>,
    /// The repository's TLS configuration (certificate for `localhost` and 127.0.0.1).
    pub repository_tls: TlsAcceptor,
}

impl std::fmt::Debug for LabPki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LabPki")
            .field("originating", &self.originating)
            .field("gateway", &self.gateway)
            .field("revoked", &self.revoked)
            .field("rogue", &self.rogue)
            .finish_non_exhaustive()
    }
}

/// Makes the lab's PKI in `dir` as of `now`, publishing chains and CRLs in `publish`, whose
/// files the repository serves at `base` (`https://127.0.0.1:PORT`).
pub fn build(
    dir: &Path,
    publish: &Path,
    base: &str,
    now: u64,
    rng: &mut impl CryptoRngCore,
) -> Result<LabPki, LabError> {
    pa::init(&dir.join("pa"), "Lab STI-PA", now, true, &mut *rng)?;
    let pa_key = keyfile::read_private_key(&dir.join("pa/pa.key"))?;
    let pa_pem = read(&dir.join("pa/pa.pem"))?;
    let options = InitOptions {
        organization: "Lab STI-CA".into(),
        country: "US".into(),
        crl_url: format!("{base}/ca/intermediate.crl"),
        root_crl_url: Some(format!("{base}/ca/root.crl")),
        force: true,
    };
    let mut ca = CaDir::init(&dir.join("ca"), &options, now - 60, &mut *rng)?;
    let issuer = CarrierIssuer {
        pa_key: &pa_key,
        pa_pem: &pa_pem,
        dir,
        publish,
        base,
        now,
    };
    let originating = issuer.issue(&mut ca, "Lab Carrier One", "1001", "sp/1001", &mut *rng)?;
    let gateway = issuer.issue(&mut ca, "Lab Gateway Carrier", "2001", "sp/2001", &mut *rng)?;
    let revoked = issuer.issue(&mut ca, "Lab Revoked Carrier", "3001", "sp/3001", &mut *rng)?;
    let revoked_serial = ca_tools::ca::serial_of_certificate_pem(&read(&revoked.chain)?)?;
    ca.revoke(&revoked_serial, Reason::KeyCompromise, now - 30)?;
    create_dir(&publish.join("ca"))?;
    write(
        &publish.join("ca/intermediate.crl"),
        ca.crl(24, now - 30, false)?,
    )?;
    write(&publish.join("ca/root.crl"), ca.crl(24, now - 30, true)?)?;
    let rogue_options = InitOptions {
        organization: "Rogue CA".into(),
        crl_url: format!("{base}/rogue/intermediate.crl"),
        root_crl_url: None,
        ..options.clone()
    };
    let mut rogue_ca = CaDir::init(&dir.join("rogue-ca"), &rogue_options, now - 60, &mut *rng)?;
    let rogue = issuer.issue(&mut rogue_ca, "Rogue Carrier", "1001", "rogue", &mut *rng)?;

    let (tls_root, repository_tls) = repository_tls(now, rng)?;
    write(
        &dir.join("tls-root.pem"),
        certificate::certificate_pem(&tls_root),
    )?;
    write(
        &dir.join("roots.pem"),
        certificate::certificate_pem(ca.root_der()),
    )?;
    Ok(LabPki {
        originating,
        gateway,
        revoked,
        rogue,
        ca_root: ca.root_der().to_vec(),
        tls_root,
        repository_tls,
    })
}

/// A lab TLS root (DER) and the repository's TLS configuration with a certificate it issued
/// for `localhost` and 127.0.0.1.
fn repository_tls(
    now: u64,
    rng: &mut impl CryptoRngCore,
) -> Result<(Vec<u8>, TlsAcceptor), LabError> {
    let tls_root_key = p256::SecretKey::random(&mut *rng);
    let tls_name = certificate::name(&[
        (oid::COUNTRY, "US"),
        (oid::ORGANIZATION, "Lab"),
        (oid::COMMON_NAME, "Lab Repository TLS Root"),
    ])?;
    let tls_root = certificate::sign_certificate(
        profile::root_ca(Common {
            serial: certificate::random_serial(&mut *rng)?,
            subject: tls_name,
            subject_public_key: certificate::spki(&tls_root_key.public_key())?,
            not_before: now - 60,
            not_after: now + TLS_SECONDS,
        })?,
        &tls_root_key,
    )?;
    let tls_key = p256::SecretKey::random(&mut *rng);
    let issuer = {
        use der::Decode;
        let cert = x509_cert::Certificate::from_der(&tls_root)?;
        profile::Issuer {
            key_id: certificate::key_identifier(&cert.tbs_certificate.subject_public_key_info),
            name: cert.tbs_certificate.subject,
        }
    };
    let server = certificate::sign_certificate(
        profile::tls_server(
            Common {
                serial: certificate::random_serial(&mut *rng)?,
                subject: certificate::name(&[
                    (oid::COUNTRY, "US"),
                    (oid::ORGANIZATION, "Lab"),
                    (oid::COMMON_NAME, "localhost"),
                ])?,
                subject_public_key: certificate::spki(&tls_key.public_key())?,
                not_before: now - 60,
                not_after: now + TLS_SECONDS,
            },
            &issuer,
            &["localhost"],
            &[std::net::IpAddr::from([127, 0, 0, 1])],
        )?,
        &tls_root_key,
    )?;
    let tls = rest::tls::acceptor_from_pem(
        certificate::certificate_pem(&server).as_bytes(),
        SigningKey::from_secret(tls_key)?.to_pkcs8_pem()?.as_bytes(),
    )?;
    Ok((tls_root, tls))
}

/// Issues carriers' certificates with the lab's PA and publishes their chains.
struct CarrierIssuer<'a> {
    pa_key: &'a SigningKey,
    pa_pem: &'a [u8],
    dir: &'a Path,
    publish: &'a Path,
    base: &'a str,
    now: u64,
}

impl CarrierIssuer<'_> {
    /// A key, CSR and SPC token for `spc`; the chain issued by `ca`, published at `path`.
    fn issue(
        &self,
        ca: &mut CaDir,
        name: &'static str,
        spc: &'static str,
        path: &str,
        rng: &mut impl CryptoRngCore,
    ) -> Result<Carrier, LabError> {
        use p256::pkcs8::EncodePublicKey;
        let folder = self.dir.join("carriers").join(path.replace('/', "-"));
        create_dir(&folder)?;
        let secret = p256::SecretKey::random(&mut *rng);
        keyfile::write_private_key(&folder.join("key.pem"), &secret, true)?;
        let request = csr::build(&secret, spc, name, "US")?;
        let spki = secret
            .public_key()
            .to_public_key_der()
            .map_err(|e| LabError::Asn1(e.to_string()))?;
        let fingerprint = certificate::spki_fingerprint(spki.as_bytes());
        let token = spc_token::create(
            self.pa_key,
            spc,
            &fingerprint,
            self.now,
            300,
            uuid::Uuid::new_v4().to_string(),
            None,
        )?;
        let (chain, _) = ca.issue(
            &request,
            &token,
            self.pa_pem,
            CARRIER_DAYS,
            self.now - 60,
            rng,
        )?;
        write(&folder.join("chain.pem"), &chain)?;
        let not_after = not_after(chain.as_bytes())?;
        create_dir(&self.publish.join(path))?;
        write(&self.publish.join(path).join("chain.pem"), &chain)?;
        Ok(Carrier {
            name,
            spc,
            key: folder.join("key.pem"),
            chain: folder.join("chain.pem"),
            x5u: format!("{}/{path}/chain.pem", self.base),
            not_after,
        })
    }
}

/// When the first certificate of a PEM chain expires (Unix seconds).
fn not_after(chain: &[u8]) -> Result<u64, LabError> {
    use der::Decode;
    let ders = passport::cert::chain_from_pem(chain).map_err(passport::Error::from)?;
    let first = ders
        .first()
        .ok_or_else(|| LabError::Asn1("an empty chain".into()))?;
    let cert = x509_cert::Certificate::from_der(first)?;
    Ok(cert
        .tbs_certificate
        .validity
        .not_after
        .to_unix_duration()
        .as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pki_publishes_chains_and_crls_and_revokes_one_carrier() {
        let dir = tempfile::tempdir().unwrap();
        let publish = dir.path().join("publish");
        let now = 1_790_000_000;
        let pki = build(
            dir.path(),
            &publish,
            "https://127.0.0.1:1",
            now,
            &mut rand_core::OsRng,
        )
        .unwrap();
        for carrier in [&pki.originating, &pki.gateway, &pki.revoked, &pki.rogue] {
            let published = carrier.x5u.strip_prefix("https://127.0.0.1:1/").unwrap();
            assert_eq!(
                std::fs::read(publish.join(published)).unwrap(),
                std::fs::read(&carrier.chain).unwrap()
            );
        }
        assert_eq!(pki.rogue.spc, "1001");
        // Issued a minute back, for CARRIER_DAYS.
        assert_eq!(pki.originating.not_after, now - 60 + CARRIER_DAYS * 86_400);
        let crl = ::pki::Crl::parse(&std::fs::read(publish.join("ca/intermediate.crl")).unwrap())
            .unwrap();
        let serial = |c: &Carrier| {
            ca_tools::ca::serial_of_certificate_pem(&std::fs::read(&c.chain).unwrap()).unwrap()
        };
        let listed: Vec<String> = crl
            .revoked
            .iter()
            .map(|r| ca_tools::ca::serial_hex(&r.serial))
            .collect();
        assert_eq!(listed, vec![serial(&pki.revoked)]);
        assert!(dir.path().join("roots.pem").exists());
        assert!(dir.path().join("tls-root.pem").exists());
    }
}
