//! `shaken pa | sp | ca`: the policy administrator's, the service provider's and the
//! certification authority's commands.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use ca_tools::ca::{self, CaDir, InitOptions};
use ca_tools::crl::Reason;
use ca_tools::lint::{self, Severity};
use ca_tools::{certificate, csr, keyfile, pa, spc_token};
use clap::{Args, Subcommand};

use super::unix_now;

/// Policy administrator (STI-PA) commands.
#[derive(Subcommand, Debug)]
pub(crate) enum PaCommand {
    /// Create the PA's token-signing key (DIR/pa.key, 0600) and certificate (DIR/pa.pem).
    Init {
        /// Output directory.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Organization name in the certificate.
        #[arg(long, value_name = "ORG", default_value = "Example STI-PA")]
        name: String,
        /// Replace an existing key.
        #[arg(long)]
        force: bool,
    },
    /// Sign an SPC token (RFC 9447/9448) authorizing an account key to get a certificate
    /// for an SPC.
    SpcToken(SpcTokenArgs),
}

/// Arguments of `shaken pa spc-token`.
#[derive(Args, Debug)]
pub(crate) struct SpcTokenArgs {
    /// The PA directory (pa.key).
    #[arg(long, value_name = "DIR")]
    pa: PathBuf,
    /// The service provider code.
    #[arg(long, value_name = "SPC")]
    spc: String,
    /// The account key's fingerprint, "SHA256 AB:CD:..." (SHA-256 of its DER SubjectPublicKeyInfo).
    #[arg(
        long,
        value_name = "FINGERPRINT",
        conflicts_with = "account_key",
        required_unless_present = "account_key"
    )]
    fingerprint: Option<String>,
    /// The account key (private or public PEM); its fingerprint is computed.
    #[arg(long, value_name = "KEY.pem")]
    account_key: Option<PathBuf>,
    /// Lifetime in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 3600)]
    ttl: u64,
    /// The PA certificate's URL, put in the token header's x5u.
    #[arg(long, value_name = "URL")]
    x5u: Option<String>,
    /// Write the token here instead of standard output.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Issue time in seconds since the epoch (for reproducible runs); now by default.
    #[arg(long, value_name = "SECONDS")]
    now: Option<u64>,
}

/// Service provider commands.
#[derive(Subcommand, Debug)]
pub(crate) enum SpCommand {
    /// Generate a P-256 private key (PKCS#8 PEM, mode 0600).
    Keygen {
        /// Output file.
        #[arg(long, value_name = "KEY.pem")]
        out: PathBuf,
        /// Replace an existing key.
        #[arg(long)]
        force: bool,
    },
    /// Write a CSR requesting an STI certificate with a TNAuthList for an SPC.
    Csr {
        /// The private key (PKCS#8 or SEC1 PEM).
        #[arg(long, value_name = "KEY.pem")]
        key: PathBuf,
        /// The service provider code.
        #[arg(long, value_name = "SPC")]
        spc: String,
        /// Organization (subject O).
        #[arg(long, value_name = "ORG", default_value = "Example Carrier")]
        org: String,
        /// Country (subject C).
        #[arg(long, value_name = "CC", default_value = "US")]
        country: String,
        /// Output file (PEM).
        #[arg(long, value_name = "CSR.pem")]
        out: PathBuf,
    },
}

/// Certification authority commands.
#[derive(Subcommand, Debug)]
pub(crate) enum CaCommand {
    /// Create a root and an issuing CA in DIR.
    Init {
        /// The CA directory.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Organization name.
        #[arg(long, value_name = "ORG", default_value = "Example STI-CA")]
        name: String,
        /// Country code.
        #[arg(long, value_name = "CC", default_value = "US")]
        country: String,
        /// Where the issuing CA's CRL is published (end entities' CRL distribution point).
        #[arg(long, value_name = "URL")]
        crl_url: String,
        /// Where the root's CRL is published; `root.crl` beside --crl-url by default.
        #[arg(long, value_name = "URL")]
        root_crl_url: Option<String>,
        /// Replace existing keys.
        #[arg(long)]
        force: bool,
        /// Creation time in seconds since the epoch; now by default.
        #[arg(long, value_name = "SECONDS")]
        now: Option<u64>,
    },
    /// Check an SPC token and a CSR and issue an STI certificate chain.
    Issue {
        /// The CA directory.
        #[arg(long = "ca", value_name = "DIR")]
        ca_dir: PathBuf,
        /// The CSR (PEM or DER).
        #[arg(long, value_name = "CSR.pem")]
        csr: PathBuf,
        /// File holding the SPC token.
        #[arg(long, value_name = "TOKEN_FILE")]
        spc_token: PathBuf,
        /// The trusted PA certificate.
        #[arg(long, value_name = "PA.pem")]
        pa_cert: PathBuf,
        /// Validity in days.
        #[arg(long, value_name = "N", default_value_t = ca::DEFAULT_EE_DAYS)]
        days: u64,
        /// Output: end-entity certificate then the issuing CA, PEM.
        #[arg(long, value_name = "CHAIN.pem")]
        out: PathBuf,
        /// Issuance time in seconds since the epoch; now by default.
        #[arg(long, value_name = "SECONDS")]
        now: Option<u64>,
    },
    /// Revoke an issued certificate.
    Revoke {
        /// The CA directory.
        #[arg(long = "ca", value_name = "DIR")]
        ca_dir: PathBuf,
        /// Serial number in hex.
        #[arg(
            long,
            value_name = "HEX",
            conflicts_with = "cert",
            required_unless_present = "cert"
        )]
        serial: Option<String>,
        /// The certificate (or chain; its first certificate).
        #[arg(long, value_name = "CERT.pem")]
        cert: Option<PathBuf>,
        /// keyCompromise, superseded, cessationOfOperation, ... (RFC 5280).
        #[arg(long, value_name = "REASON", default_value = "unspecified")]
        reason: String,
        /// Revocation time in seconds since the epoch; now by default.
        #[arg(long, value_name = "SECONDS")]
        now: Option<u64>,
    },
    /// Write the next CRL (DER) of the issuing CA, or of the root with --root.
    Crl {
        /// The CA directory.
        #[arg(long = "ca", value_name = "DIR")]
        ca_dir: PathBuf,
        /// Hours until nextUpdate.
        #[arg(long, value_name = "N", default_value_t = 168)]
        next_update_hours: u64,
        /// Output file (DER).
        #[arg(long, value_name = "CRL")]
        out: PathBuf,
        /// The root's CRL instead of the issuing CA's.
        #[arg(long)]
        root: bool,
        /// thisUpdate in seconds since the epoch; now by default.
        #[arg(long, value_name = "SECONDS")]
        now: Option<u64>,
    },
    /// Check certificates against ATIS-1000080 v004 §6.4.1 (errors) and SHAKEN CP v1.3
    /// (warnings). Exits 1 when any error is found.
    Lint {
        /// PEM file with one or more certificates.
        #[arg(value_name = "CERT.pem")]
        cert: PathBuf,
        /// Also check validity at this time (seconds since the epoch).
        #[arg(long, value_name = "SECONDS")]
        now: Option<u64>,
    },
}

fn read(path: &Path, what: &str) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read {what} {}", path.display()))
}

fn now_or(now: Option<u64>) -> Result<u64> {
    now.map_or_else(unix_now, Ok)
}

/// Runs a `shaken pa` command.
pub(crate) fn run_pa(command: PaCommand) -> Result<ExitCode> {
    match command {
        PaCommand::Init { out, name, force } => {
            pa::init(&out, &name, unix_now()?, force, &mut rand_core::OsRng)?;
            eprintln!(
                "wrote {}/pa.key (0600) and {}/pa.pem",
                out.display(),
                out.display()
            );
        }
        PaCommand::SpcToken(args) => {
            let key = keyfile::read_private_key(&args.pa.join("pa.key"))?;
            let fingerprint = match (&args.fingerprint, &args.account_key) {
                (Some(f), _) => f.clone(),
                (None, Some(path)) => account_key_fingerprint(&read(path, "account key")?)
                    .with_context(|| format!("--account-key {}", path.display()))?,
                (None, None) => bail!("give --fingerprint or --account-key"),
            };
            let jti = uuid::Uuid::new_v4().to_string();
            let token = spc_token::create(
                &key,
                &args.spc,
                &fingerprint,
                now_or(args.now)?,
                args.ttl,
                jti,
                args.x5u,
            )?;
            match args.out {
                Some(path) => keyfile::write_public(&path, format!("{token}\n").as_bytes())?,
                None => println!("{token}"),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The fingerprint of a private or public key PEM.
fn account_key_fingerprint(pem: &[u8]) -> Result<String> {
    use p256::pkcs8::{DecodePublicKey, EncodePublicKey};
    let public = match passport::SigningKey::from_pem(pem) {
        Ok(key) => key.secret().public_key(),
        Err(_) => {
            let blocks = passport::pem::parse(pem, 4)?;
            let block = blocks
                .iter()
                .find(|b| b.label == "PUBLIC KEY")
                .context("no private key or PUBLIC KEY block")?;
            p256::PublicKey::from_public_key_der(&block.der).context("not a P-256 public key")?
        }
    };
    let der = public
        .to_public_key_der()
        .context("encoding the public key")?;
    Ok(certificate::spki_fingerprint(der.as_bytes()))
}

/// Runs a `shaken sp` command.
pub(crate) fn run_sp(command: SpCommand) -> Result<ExitCode> {
    match command {
        SpCommand::Keygen { out, force } => {
            let secret = p256::SecretKey::random(&mut rand_core::OsRng);
            keyfile::write_private_key(&out, &secret, force)?;
            eprintln!("wrote {} (0600)", out.display());
        }
        SpCommand::Csr {
            key,
            spc,
            org,
            country,
            out,
        } => {
            let key = keyfile::read_private_key(&key)?;
            let der = csr::build(key.secret(), &spc, &org, &country)?;
            keyfile::write_public(
                &out,
                certificate::pem_block("CERTIFICATE REQUEST", &der).as_bytes(),
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs a `shaken ca` command.
pub(crate) fn run_ca(command: CaCommand) -> Result<ExitCode> {
    match command {
        CaCommand::Init {
            out,
            name,
            country,
            crl_url,
            root_crl_url,
            force,
            now,
        } => {
            let options = InitOptions {
                organization: name,
                country,
                crl_url,
                root_crl_url,
                force,
            };
            CaDir::init(&out, &options, now_or(now)?, &mut rand_core::OsRng)?;
            eprintln!(
                "CA created in {} (root.pem, intermediate.pem, keys 0600, ca.json)",
                out.display()
            );
        }
        CaCommand::Issue {
            ca_dir,
            csr,
            spc_token,
            pa_cert,
            days,
            out,
            now,
        } => {
            let mut ca = CaDir::open(&ca_dir)?;
            let token = String::from_utf8(read(&spc_token, "SPC token")?)
                .context("SPC token is not text")?;
            let (chain, serial) = ca.issue(
                &read(&csr, "CSR")?,
                token.trim(),
                &read(&pa_cert, "PA certificate")?,
                days,
                now_or(now)?,
                &mut rand_core::OsRng,
            )?;
            keyfile::write_public(&out, chain.as_bytes())?;
            eprintln!("issued serial {serial} to {}", out.display());
        }
        CaCommand::Revoke {
            ca_dir,
            serial,
            cert,
            reason,
            now,
        } => {
            let mut ca = CaDir::open(&ca_dir)?;
            let serial = match (serial, cert) {
                (Some(serial), _) => serial,
                (None, Some(path)) => ca::serial_of_certificate_pem(&read(&path, "certificate")?)?,
                (None, None) => bail!("give --serial or --cert"),
            };
            let reason: Reason = reason.parse()?;
            ca.revoke(&serial, reason, now_or(now)?)?;
            eprintln!("revoked {serial} ({reason}); publish a new CRL with `shaken ca crl`");
        }
        CaCommand::Crl {
            ca_dir,
            next_update_hours,
            out,
            root,
            now,
        } => {
            let mut ca = CaDir::open(&ca_dir)?;
            let der = ca.crl(next_update_hours, now_or(now)?, root)?;
            keyfile::write_public(&out, &der)?;
        }
        CaCommand::Lint { cert, now } => {
            let results = lint::lint_pem(&read(&cert, "certificate")?, now)
                .with_context(|| format!("{}", cert.display()))?;
            let mut errors = 0;
            for report in results {
                let profile = report
                    .profile
                    .map_or_else(|| "unparsed".to_owned(), |p| format!("{p:?}"));
                println!(
                    "certificate {} ({profile}): {} finding(s)",
                    report.index,
                    report.findings.len()
                );
                for finding in report.findings {
                    if finding.severity() == Severity::Error {
                        errors += 1;
                    }
                    println!("  {finding}");
                }
            }
            if errors > 0 {
                return Ok(ExitCode::from(1));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
