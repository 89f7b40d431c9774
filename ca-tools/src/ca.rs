//! The STI-CA's directory: its root and issuing (intermediate) certificates and keys, and the
//! state file recording what it issued and revoked.
//!
//! Layout of a CA directory:
//!
//! | file | content |
//! |---|---|
//! | `root.pem`, `root.key` | the self-signed root certificate and its PKCS#8 key (0600) |
//! | `intermediate.pem`, `intermediate.key` | the issuing CA certificate and key (0600) |
//! | `ca.json` | the state: names, CRL URLs, CRL numbers, every issued and revoked serial |
//!
//! `ca.json` (format 1) is JSON: `{"format":1,"organization","country","crl_url",
//! "root_crl_url","crl_number","root_crl_number","issued":[{"serial","subject","spc",
//! "not_before","not_after"}],"revoked":[{"serial","reason","revoked_at"}],
//! "token_ids":[{"jti","used_at","serial"}]}`; serials are upper-case hex. `token_ids` (the
//! SPC tokens already used) is optional: absent means none, and it is left out while empty, so
//! files written before it existed stay readable and unchanged. The file is rewritten
//! atomically after each change, together with the file the change produced (a CRL, a chain),
//! so a command that fails leaves it as it was.

use std::path::{Path, PathBuf};

use der::Decode;
use serde::{Deserialize, Serialize};
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::Certificate;

use crate::certificate::{self, oid};
use crate::crl::{self, Reason, Revoked};
use crate::error::CaError;
use crate::keyfile;
use crate::output::Output;
use crate::profile::{self, Common, Issuer};
use crate::{csr, spc_token};

/// Seconds in a day.
pub const DAY: u64 = 86_400;
/// Default validity of an issued end-entity certificate, in days.
pub const DEFAULT_EE_DAYS: u64 = 90;
/// Root CA validity, in days (20 years).
pub const ROOT_DAYS: u64 = 20 * 365;
/// Issuing CA validity, in days (10 years).
pub const INTERMEDIATE_DAYS: u64 = 10 * 365;

/// The files of one issuance ([`CaDir::issue_files`]).
#[derive(Clone, Copy, Debug)]
pub struct IssueFiles<'a> {
    /// The CSR, PEM or DER.
    pub csr: &'a Path,
    /// The SPC token, as text.
    pub spc_token: &'a Path,
    /// The trusted PA certificate, PEM.
    pub pa_certificate: &'a Path,
    /// Where the issued chain (end entity, then the issuing CA) is written, PEM.
    pub out: &'a Path,
}

/// A certificate this CA issued.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssuedRecord {
    /// Serial, upper-case hex.
    pub serial: String,
    /// Subject, as text.
    pub subject: String,
    /// The SPC of its TNAuthList.
    pub spc: String,
    /// Validity start.
    pub not_before: u64,
    /// Validity end.
    pub not_after: u64,
}

/// An SPC token used for an issuance: a token is used once unless reuse is allowed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenUse {
    /// The token's `jti`.
    pub jti: String,
    /// When it was used.
    pub used_at: u64,
    /// The serial issued with it.
    pub serial: String,
}

/// A revocation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevokedRecord {
    /// Serial, upper-case hex.
    pub serial: String,
    /// Why.
    pub reason: Reason,
    /// When.
    pub revoked_at: u64,
}

/// The CA's state file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaState {
    /// Format version, 1.
    pub format: u32,
    /// Organization name in the CA's subjects.
    pub organization: String,
    /// Country code in the CA's subjects.
    pub country: String,
    /// Where the issuing CA's CRL is published (the end entities' CRL distribution point).
    pub crl_url: String,
    /// Where the root's CRL is published (the issuing CA's CRL distribution point).
    pub root_crl_url: String,
    /// Number of the last issuing-CA CRL.
    pub crl_number: u64,
    /// Number of the last root CRL.
    pub root_crl_number: u64,
    /// Issued end-entity certificates.
    pub issued: Vec<IssuedRecord>,
    /// Revocations.
    pub revoked: Vec<RevokedRecord>,
    /// The SPC tokens used so far; absent in older files, left out while empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub token_ids: Vec<TokenUse>,
}

impl CaState {
    /// The first use of the token `jti`, if it was used.
    pub fn token_use(&self, jti: &str) -> Option<&TokenUse> {
        self.token_ids.iter().find(|used| used.jti == jti)
    }
}

/// How to issue ([`CaDir::issue_with`], [`CaDir::issue_files`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IssueOptions {
    /// Validity in days, 1..=825.
    pub days: u64,
    /// Issue even if the SPC token's `jti` was used before (it is recorded again).
    pub allow_token_reuse: bool,
}

impl IssueOptions {
    /// `days` of validity; a token used before is refused.
    pub fn days(days: u64) -> Self {
        Self {
            days,
            allow_token_reuse: false,
        }
    }
}

/// One issuance: what it produced and what it records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Issuance {
    /// The PEM chain: the end entity, then the issuing CA.
    pub chain: String,
    /// What the state records about the certificate (serial, subject, SPC, validity).
    pub record: IssuedRecord,
    /// The SPC token's `jti`, recorded as used.
    pub jti: String,
    /// The token's earlier use, when reuse was allowed and it had been used.
    pub reused: Option<TokenUse>,
}

/// One CRL ([`CaDir::write_crl`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssuedCrl {
    /// The CRL, DER.
    pub der: Vec<u8>,
    /// Its CRL number.
    pub number: u64,
    /// Signed by the root (true) or by the issuing CA.
    pub root: bool,
    /// thisUpdate.
    pub this_update: u64,
    /// nextUpdate.
    pub next_update: u64,
    /// How many certificates it lists.
    pub entries: usize,
}

/// Settings for a new CA.
#[derive(Clone, Debug)]
pub struct InitOptions {
    /// Organization name.
    pub organization: String,
    /// Two-letter country code.
    pub country: String,
    /// URL where the issuing CA's CRL will be published.
    pub crl_url: String,
    /// URL where the root's CRL will be published; by default `root.crl` beside `crl_url`.
    pub root_crl_url: Option<String>,
    /// Replace existing keys and state.
    pub force: bool,
}

/// An open CA directory.
#[derive(Debug)]
pub struct CaDir {
    dir: PathBuf,
    /// The state.
    pub state: CaState,
    root_key: passport::SigningKey,
    intermediate_key: passport::SigningKey,
    root_der: Vec<u8>,
    intermediate_der: Vec<u8>,
}

/// Upper-case hex of serial bytes.
pub fn serial_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

fn check_country(country: &str) -> Result<(), CaError> {
    if country.len() == 2 && country.bytes().all(|b| b.is_ascii_uppercase()) {
        Ok(())
    } else {
        Err(CaError::InvalidArgument(format!(
            "country {country:?} is not a two-letter upper-case code"
        )))
    }
}

fn check_url(url: &str, what: &str) -> Result<(), CaError> {
    let ok = (url.starts_with("https://") || url.starts_with("http://"))
        && url.len() > 8
        && url.is_ascii()
        && !url.contains(char::is_whitespace);
    if ok {
        Ok(())
    } else {
        Err(CaError::InvalidArgument(format!(
            "{what} {url:?} is not an http(s) URL"
        )))
    }
}

fn default_root_crl_url(crl_url: &str) -> String {
    match crl_url.rsplit_once('/') {
        Some((base, _)) if base.len() > "https:/".len() => format!("{base}/root.crl"),
        _ => format!("{}/root.crl", crl_url.trim_end_matches('/')),
    }
}

fn issuer_of(der: &[u8]) -> Result<Issuer, CaError> {
    let cert = Certificate::from_der(der)?;
    Ok(Issuer {
        name: cert.tbs_certificate.subject.clone(),
        key_id: certificate::key_identifier(&cert.tbs_certificate.subject_public_key_info),
    })
}

/// The value of the first attribute `oid` in a name, as text.
pub fn name_attribute(name: &Name, attribute: der::asn1::ObjectIdentifier) -> Option<String> {
    name.0
        .iter()
        .flat_map(|rdn| rdn.0.iter())
        .find(|atv| atv.oid == attribute)
        .and_then(|atv| {
            atv.value
                .decode_as::<der::asn1::PrintableStringRef<'_>>()
                .map(|s| s.to_string())
                .or_else(|_| {
                    atv.value
                        .decode_as::<der::asn1::Utf8StringRef<'_>>()
                        .map(|s| s.to_string())
                })
                .ok()
        })
}

impl CaDir {
    /// Creates a CA in `dir` (and any missing folder on the way): root and issuing CA keys and
    /// certificates, and an empty state. Without `options.force`, existing keys or state are
    /// refused before anything is written; every file is written, or none.
    pub fn init(
        dir: &Path,
        options: &InitOptions,
        now: u64,
        rng: &mut impl rand_core::CryptoRngCore,
    ) -> Result<Self, CaError> {
        check_country(&options.country)?;
        check_url(&options.crl_url, "--crl-url")?;
        let root_crl_url = options
            .root_crl_url
            .clone()
            .unwrap_or_else(|| default_root_crl_url(&options.crl_url));
        check_url(&root_crl_url, "root CRL URL")?;
        if !options.force {
            for key in ["root.key", "intermediate.key"] {
                if dir.join(key).exists() {
                    return Err(CaError::KeyExists(dir.join(key)));
                }
            }
            if dir.join("ca.json").exists() {
                return Err(CaError::StateExists(dir.join("ca.json")));
            }
        }

        let root_secret = p256::SecretKey::random(&mut *rng);
        let intermediate_secret = p256::SecretKey::random(&mut *rng);
        let root_name = certificate::name(&[
            (oid::COUNTRY, &options.country),
            (oid::ORGANIZATION, &options.organization),
            (
                oid::COMMON_NAME,
                &format!("{} SHAKEN Root CA", options.organization),
            ),
        ])?;
        let intermediate_name = certificate::name(&[
            (oid::COUNTRY, &options.country),
            (oid::ORGANIZATION, &options.organization),
            (
                oid::COMMON_NAME,
                &format!("{} SHAKEN Issuing CA", options.organization),
            ),
        ])?;
        let root_spec = profile::root_ca(Common {
            serial: certificate::random_serial(rng)?,
            subject: root_name,
            subject_public_key: certificate::spki(&root_secret.public_key())?,
            not_before: now,
            not_after: now + ROOT_DAYS * DAY,
        })?;
        let root_der = certificate::sign_certificate(root_spec, &root_secret)?;
        let intermediate_spec = profile::intermediate_ca(
            Common {
                serial: certificate::random_serial(rng)?,
                subject: intermediate_name,
                subject_public_key: certificate::spki(&intermediate_secret.public_key())?,
                not_before: now,
                not_after: now + INTERMEDIATE_DAYS * DAY,
            },
            &issuer_of(&root_der)?,
            &root_crl_url,
        )?;
        let intermediate_der = certificate::sign_certificate(intermediate_spec, &root_secret)?;

        let mut output = Output::new();
        output.private(
            &dir.join("root.key"),
            keyfile::private_key_pem(&root_secret)?.as_bytes(),
            options.force,
        )?;
        output.private(
            &dir.join("intermediate.key"),
            keyfile::private_key_pem(&intermediate_secret)?.as_bytes(),
            options.force,
        )?;
        output.public(
            &dir.join("root.pem"),
            certificate::certificate_pem(&root_der).as_bytes(),
        )?;
        output.public(
            &dir.join("intermediate.pem"),
            certificate::certificate_pem(&intermediate_der).as_bytes(),
        )?;
        let mut ca = Self {
            dir: dir.to_owned(),
            state: CaState {
                format: 1,
                organization: options.organization.clone(),
                country: options.country.clone(),
                crl_url: options.crl_url.clone(),
                root_crl_url,
                crl_number: 0,
                root_crl_number: 0,
                issued: Vec::new(),
                revoked: Vec::new(),
                token_ids: Vec::new(),
            },
            root_key: passport::SigningKey::from_secret(root_secret)?,
            intermediate_key: passport::SigningKey::from_secret(intermediate_secret)?,
            root_der,
            intermediate_der,
        };
        let state = ca.state.clone();
        ca.commit(output, state)?;
        Ok(ca)
    }

    /// Opens an existing CA directory.
    pub fn open(dir: &Path) -> Result<Self, CaError> {
        let state_path = dir.join("ca.json");
        let text = std::fs::read(&state_path).map_err(|e| CaError::io(&state_path, &e))?;
        let state: CaState = serde_json::from_slice(&text).map_err(|e| CaError::State {
            path: state_path.clone(),
            detail: e.to_string(),
        })?;
        if state.format != 1 {
            return Err(CaError::State {
                path: state_path,
                detail: format!("unknown format {}", state.format),
            });
        }
        let read_cert = |name: &str| -> Result<Vec<u8>, CaError> {
            let path = dir.join(name);
            let pem = std::fs::read(&path).map_err(|e| CaError::io(&path, &e))?;
            let mut chain = passport::cert::chain_from_pem(&pem)?;
            if chain.len() != 1 {
                return Err(CaError::InvalidArgument(format!(
                    "{} must hold one certificate",
                    path.display()
                )));
            }
            Ok(chain.remove(0))
        };
        Ok(Self {
            dir: dir.to_owned(),
            state,
            root_key: keyfile::read_private_key(&dir.join("root.key"))?,
            intermediate_key: keyfile::read_private_key(&dir.join("intermediate.key"))?,
            root_der: read_cert("root.pem")?,
            intermediate_der: read_cert("intermediate.pem")?,
        })
    }

    /// Writes the state file atomically.
    pub fn save(&self) -> Result<(), CaError> {
        let mut output = Output::new();
        output.public(&self.state_path(), &self.state_json(&self.state)?)?;
        output.commit()
    }

    /// The state file, `DIR/ca.json`.
    pub fn state_path(&self) -> PathBuf {
        self.dir.join("ca.json")
    }

    fn state_json(&self, state: &CaState) -> Result<Vec<u8>, CaError> {
        serde_json::to_vec_pretty(state).map_err(|e| CaError::State {
            path: self.state_path(),
            detail: e.to_string(),
        })
    }

    /// Writes `output`'s files and then `state` as the state file, all or nothing; the state
    /// in memory changes only when they are written.
    fn commit(&mut self, mut output: Output, state: CaState) -> Result<(), CaError> {
        output.public(&self.state_path(), &self.state_json(&state)?)?;
        output.commit()?;
        self.state = state;
        Ok(())
    }

    /// The root certificate, DER.
    pub fn root_der(&self) -> &[u8] {
        &self.root_der
    }

    /// The issuing CA certificate, DER.
    pub fn intermediate_der(&self) -> &[u8] {
        &self.intermediate_der
    }

    /// Checks a CSR and an SPC token and issues an STI end-entity certificate, refusing a
    /// token used before ([`CaDir::issue_with`] with [`IssueOptions::days`]). Records it in the
    /// state and returns the PEM chain (end entity, then the issuing CA) and the new serial in
    /// hex.
    pub fn issue(
        &mut self,
        csr_bytes: &[u8],
        token: &str,
        pa_certificate_pem: &[u8],
        days: u64,
        now: u64,
        rng: &mut impl rand_core::CryptoRngCore,
    ) -> Result<(String, String), CaError> {
        let issuance = self.issue_with(
            csr_bytes,
            token,
            pa_certificate_pem,
            IssueOptions::days(days),
            now,
            rng,
        )?;
        Ok((issuance.chain, issuance.record.serial))
    }

    /// [`CaDir::issue`] with options; records the certificate and the token's `jti` in the
    /// state.
    pub fn issue_with(
        &mut self,
        csr_bytes: &[u8],
        token: &str,
        pa_certificate_pem: &[u8],
        options: IssueOptions,
        now: u64,
        rng: &mut impl rand_core::CryptoRngCore,
    ) -> Result<Issuance, CaError> {
        let issuance =
            self.prepare_issue(csr_bytes, token, pa_certificate_pem, options, now, rng)?;
        self.commit(Output::new(), self.state_after(&issuance, now))?;
        Ok(issuance)
    }

    /// The state once `issuance` is recorded.
    fn state_after(&self, issuance: &Issuance, now: u64) -> CaState {
        let mut state = self.state.clone();
        state.issued.push(issuance.record.clone());
        state.token_ids.push(TokenUse {
            jti: issuance.jti.clone(),
            used_at: now,
            serial: issuance.record.serial.clone(),
        });
        state
    }

    /// Every check, then the certificate; changes nothing.
    ///
    /// Checks, each with its own error: the CSR parses and its signature verifies; the token
    /// is signed by the PA key, unexpired at `now`, not for a CA, has a `jti`, and its
    /// TNAuthList and fingerprint equal the CSR's TNAuthList and key; its `jti` was not used
    /// before (unless `options.allow_token_reuse`).
    fn prepare_issue(
        &self,
        csr_bytes: &[u8],
        token: &str,
        pa_certificate_pem: &[u8],
        options: IssueOptions,
        now: u64,
        rng: &mut impl rand_core::CryptoRngCore,
    ) -> Result<Issuance, CaError> {
        let days = options.days;
        if days == 0 || days > 825 {
            return Err(CaError::InvalidArgument(format!(
                "--days {days} is outside 1..=825"
            )));
        }
        let request = csr::parse_and_check(csr_bytes)?;
        let pa_key = passport::cert::verifying_key_from_pem_chain(pa_certificate_pem)?;
        let authorized = spc_token::verify(token, &pa_key, now)?;
        if authorized.tn_auth_list != request.tn_auth_list {
            return Err(CaError::TnAuthListMismatch {
                token: describe_list(&authorized.tn_auth_list),
                csr: describe_list(&request.tn_auth_list),
            });
        }
        let csr_fingerprint = certificate::spki_fingerprint(&request.spki_der);
        if authorized.fingerprint != csr_fingerprint {
            return Err(CaError::FingerprintMismatch {
                token: authorized.fingerprint,
                csr: csr_fingerprint,
            });
        }
        let reused = self.state.token_use(&authorized.jti).cloned();
        if let (Some(used), false) = (&reused, options.allow_token_reuse) {
            return Err(CaError::TokenReused {
                jti: used.jti.clone(),
                used_at: used.used_at,
                serial: used.serial.clone(),
            });
        }
        let spc = request
            .tn_auth_list
            .single_spc()
            .ok_or_else(|| CaError::CsrMalformed("TNAuthList must hold exactly one SPC".into()))?
            .to_owned();
        let country = name_attribute(&request.subject, oid::COUNTRY)
            .ok_or_else(|| CaError::CsrMalformed("subject has no C (country)".into()))?;
        let organization = name_attribute(&request.subject, oid::ORGANIZATION)
            .ok_or_else(|| CaError::CsrMalformed("subject has no O (organization)".into()))?;
        let subject = certificate::name(&[
            (oid::COUNTRY, &country),
            (oid::ORGANIZATION, &organization),
            (oid::COMMON_NAME, &format!("SHAKEN {spc}")),
        ])?;
        let serial = certificate::random_serial(rng)?;
        let serial_text = serial_hex(serial.as_bytes());
        let subject_text = subject.to_string();
        let spec = profile::sti_end_entity(
            Common {
                serial,
                subject,
                subject_public_key: certificate::spki(&request.public_key)?,
                not_before: now,
                not_after: now + days * DAY,
            },
            &issuer_of(&self.intermediate_der)?,
            &self.state.crl_url,
            &request.tn_auth_list,
        )?;
        let der = certificate::sign_certificate(spec, self.intermediate_key.secret())?;
        let chain = certificate::certificate_pem(&der)
            + &certificate::certificate_pem(&self.intermediate_der);
        Ok(Issuance {
            chain,
            record: IssuedRecord {
                serial: serial_text,
                subject: subject_text,
                spc,
                not_before: now,
                not_after: now + days * DAY,
            },
            jti: authorized.jti,
            reused,
        })
    }

    /// [`CaDir::issue_with`] from files: reads the CSR (PEM or DER), the SPC token (text,
    /// surrounding whitespace ignored) and the PA certificate, and writes the PEM chain to
    /// `files.out` (creating missing folders) together with the state: both, or, if any check
    /// or write fails, neither.
    pub fn issue_files(
        &mut self,
        files: &IssueFiles<'_>,
        options: IssueOptions,
        now: u64,
        rng: &mut impl rand_core::CryptoRngCore,
    ) -> Result<Issuance, CaError> {
        let read = |path: &Path| std::fs::read(path).map_err(|e| CaError::io(path, &e));
        let token = String::from_utf8(read(files.spc_token)?)
            .map_err(|_| CaError::TokenMalformed("not UTF-8 text".into()))?;
        let issuance = self.prepare_issue(
            &read(files.csr)?,
            token.trim(),
            &read(files.pa_certificate)?,
            options,
            now,
            rng,
        )?;
        let mut output = Output::new();
        output.public(files.out, issuance.chain.as_bytes())?;
        self.commit(output, self.state_after(&issuance, now))?;
        Ok(issuance)
    }

    /// Records the revocation of an issued certificate; returns the record.
    pub fn revoke(
        &mut self,
        serial: &str,
        reason: Reason,
        now: u64,
    ) -> Result<RevokedRecord, CaError> {
        let serial = normalize_serial(serial)?;
        if !self.state.issued.iter().any(|i| i.serial == serial) {
            return Err(CaError::UnknownSerial(serial));
        }
        if self.state.revoked.iter().any(|r| r.serial == serial) {
            return Err(CaError::AlreadyRevoked(serial));
        }
        let record = RevokedRecord {
            serial,
            reason,
            revoked_at: now,
        };
        let mut state = self.state.clone();
        state.revoked.push(record.clone());
        self.commit(Output::new(), state)?;
        Ok(record)
    }

    /// Issues the next CRL of the issuing CA (or, with `root`, of the root), valid from `now`
    /// for `next_update_hours`, and records its number. Returns DER.
    pub fn crl(
        &mut self,
        next_update_hours: u64,
        now: u64,
        root: bool,
    ) -> Result<Vec<u8>, CaError> {
        let (crl, state) = self.prepare_crl(next_update_hours, now, root)?;
        self.commit(Output::new(), state)?;
        Ok(crl.der)
    }

    /// [`CaDir::crl`] written to `out` (creating missing folders) together with the state:
    /// the CRL number advances only when the CRL file is written.
    pub fn write_crl(
        &mut self,
        out: &Path,
        next_update_hours: u64,
        now: u64,
        root: bool,
    ) -> Result<IssuedCrl, CaError> {
        let (crl, state) = self.prepare_crl(next_update_hours, now, root)?;
        let mut output = Output::new();
        output.public(out, &crl.der)?;
        self.commit(output, state)?;
        Ok(crl)
    }

    /// The next CRL and the state recording its number; changes nothing.
    fn prepare_crl(
        &self,
        next_update_hours: u64,
        now: u64,
        root: bool,
    ) -> Result<(IssuedCrl, CaState), CaError> {
        let next_update = next_update_hours
            .checked_mul(3600)
            .and_then(|seconds| now.checked_add(seconds))
            .filter(|_| next_update_hours > 0)
            .ok_or_else(|| {
                CaError::InvalidArgument(format!(
                    "--next-update-hours {next_update_hours} is not a number of hours from 1 on \
                     that ends before the year 2^64"
                ))
            })?;
        let mut state = self.state.clone();
        let (der, number, entries) = if root {
            state.root_crl_number += 1;
            let der = crl::build(
                &issuer_of(&self.root_der)?,
                self.root_key.secret(),
                state.root_crl_number,
                now,
                next_update,
                &[],
            )?;
            (der, state.root_crl_number, 0)
        } else {
            state.crl_number += 1;
            let revoked = state
                .revoked
                .iter()
                .map(|r| {
                    Ok(Revoked {
                        serial: hex_bytes(&r.serial)?,
                        revoked_at: r.revoked_at,
                        reason: r.reason,
                    })
                })
                .collect::<Result<Vec<_>, CaError>>()?;
            let der = crl::build(
                &issuer_of(&self.intermediate_der)?,
                self.intermediate_key.secret(),
                state.crl_number,
                now,
                next_update,
                &revoked,
            )?;
            (der, state.crl_number, revoked.len())
        };
        let crl = IssuedCrl {
            der,
            number,
            root,
            this_update: now,
            next_update,
            entries,
        };
        Ok((crl, state))
    }
}

/// notBefore and notAfter of a DER certificate, in seconds since the epoch.
pub fn validity_of(der: &[u8]) -> Result<(u64, u64), CaError> {
    let validity = Certificate::from_der(der)?.tbs_certificate.validity;
    Ok((
        validity.not_before.to_unix_duration().as_secs(),
        validity.not_after.to_unix_duration().as_secs(),
    ))
}

fn describe_list(list: &passport::TnAuthList) -> String {
    match list.single_spc() {
        Some(spc) => format!("SPC {spc}"),
        None => format!("{:?}", list.entries()),
    }
}

/// Upper-case hex without separators; accepts `:` separators, `0x`, and any case.
pub fn normalize_serial(serial: &str) -> Result<String, CaError> {
    let cleaned: String = serial
        .trim()
        .trim_start_matches("0x")
        .chars()
        .filter(|c| *c != ':')
        .collect();
    if cleaned.is_empty() || cleaned.len() > 40 || !cleaned.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(CaError::InvalidArgument(format!(
            "serial {serial:?} is not hexadecimal"
        )));
    }
    let upper = cleaned.to_ascii_uppercase();
    Ok(if upper.len() % 2 == 1 {
        format!("0{upper}")
    } else {
        upper
    })
}

fn hex_bytes(hex: &str) -> Result<Vec<u8>, CaError> {
    (0..hex.len())
        .step_by(2)
        .map(|i| {
            hex.get(i..i + 2)
                .and_then(|pair| u8::from_str_radix(pair, 16).ok())
                .ok_or_else(|| {
                    CaError::InvalidArgument(format!("serial {hex:?} is not hexadecimal"))
                })
        })
        .collect()
}

/// The serial of a certificate, in the CA state's hex form.
pub fn serial_of_certificate_pem(pem: &[u8]) -> Result<String, CaError> {
    let chain = passport::cert::chain_from_pem(pem)?;
    let first = chain
        .first()
        .ok_or_else(|| CaError::InvalidArgument("no certificate".into()))?;
    let cert = Certificate::from_der(first)?;
    Ok(serial_hex(cert.tbs_certificate.serial_number.as_bytes()))
}

/// A serial as a `SerialNumber`, for callers building certificates by hand.
pub fn serial_from_hex(hex: &str) -> Result<SerialNumber, CaError> {
    Ok(SerialNumber::new(&hex_bytes(&normalize_serial(hex)?)?)?)
}
