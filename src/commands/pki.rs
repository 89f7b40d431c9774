//! `shaken pa | sp | ca`: the policy administrator's, the service provider's and the
//! certification authority's commands.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use ca_tools::ca::{self, CaDir, InitOptions, IssueFiles};
use ca_tools::crl::Reason;
use ca_tools::lint;
use ca_tools::{certificate, csr, keyfile, pa};
use clap::{Args, Subcommand};
use rand_core::OsRng;

use super::{now_or, read, unix_now};

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

/// Runs a `shaken pa` command.
pub(crate) fn run_pa(command: PaCommand) -> Result<ExitCode> {
    match command {
        PaCommand::Init { out, name, force } => {
            pa::init(&out, &name, unix_now()?, force, &mut OsRng)?;
            eprintln!(
                "wrote {}/pa.key (0600) and {}/pa.pem",
                out.display(),
                out.display()
            );
        }
        PaCommand::SpcToken(args) => {
            let fingerprint = match (args.fingerprint, &args.account_key) {
                (Some(fingerprint), _) => fingerprint,
                (None, Some(path)) => {
                    certificate::key_fingerprint_from_pem(&read(path, "account key")?)
                        .with_context(|| format!("--account-key {}", path.display()))?
                }
                (None, None) => bail!("give --fingerprint or --account-key"),
            };
            let request = pa::SpcTokenRequest {
                spc: &args.spc,
                fingerprint: &fingerprint,
                ttl: args.ttl,
                x5u: args.x5u,
            };
            let token = pa::sign_spc_token(&args.pa, &request, now_or(args.now)?, &mut OsRng)?;
            match args.out {
                Some(path) => keyfile::write_public(&path, format!("{token}\n").as_bytes())?,
                None => println!("{token}"),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs a `shaken sp` command.
pub(crate) fn run_sp(command: SpCommand) -> Result<ExitCode> {
    match command {
        SpCommand::Keygen { out, force } => {
            keyfile::generate_private_key(&out, force, &mut OsRng)?;
            eprintln!("wrote {} (0600)", out.display());
        }
        SpCommand::Csr {
            key,
            spc,
            org,
            country,
            out,
        } => csr::write_request(&key, &spc, &org, &country, &out)?,
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
            CaDir::init(&out, &options, now_or(now)?, &mut OsRng)?;
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
            let files = IssueFiles {
                csr: &csr,
                spc_token: &spc_token,
                pa_certificate: &pa_cert,
                out: &out,
            };
            let serial =
                CaDir::open(&ca_dir)?.issue_files(&files, days, now_or(now)?, &mut OsRng)?;
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
            let der = CaDir::open(&ca_dir)?.crl(next_update_hours, now_or(now)?, root)?;
            keyfile::write_public(&out, &der)?;
        }
        CaCommand::Lint { cert, now } => {
            let reports = lint::lint_pem(&read(&cert, "certificate")?, now)
                .with_context(|| format!("{}", cert.display()))?;
            for report in &reports {
                println!("{report}");
            }
            if reports.iter().any(|report| report.errors() > 0) {
                return Ok(ExitCode::from(1));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
