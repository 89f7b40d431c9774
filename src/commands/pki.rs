//! `shaken pa | sp | ca`: the policy administrator's, the service provider's and the
//! certification authority's commands.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use ca_tools::ca::{self, CaDir, InitOptions, IssueFiles, IssueOptions};
use ca_tools::crl::Reason;
use ca_tools::lint;
use ca_tools::output::missing_folders;
use ca_tools::time::Timestamp;
use ca_tools::{certificate, csr, keyfile, pa};
use clap::{ArgGroup, Args, Subcommand};
use rand_core::OsRng;

use super::{now_or, read};

/// Policy administrator (STI-PA) commands.
#[derive(Subcommand, Debug)]
pub(crate) enum PaCommand {
    /// Create the PA's token-signing key and certificate in DIR.
    ///
    /// Writes DIR/pa.key (P-256, PKCS#8, mode 0600) and the self-signed DIR/pa.pem (10 years),
    /// which CAs trust as --pa-cert. DIR is created if missing.
    Init {
        /// Output folder.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Organization name in the certificate.
        #[arg(long, value_name = "ORG", default_value = "Example STI-PA")]
        name: String,
        /// Replace an existing key.
        #[arg(long)]
        force: bool,
        /// Creation time in seconds since the epoch; now by default.
        #[arg(long, value_name = "SECONDS")]
        now: Option<u64>,
    },
    /// Sign an SPC token for an SPC and an account key (RFC 9447/9448).
    SpcToken(SpcTokenArgs),
}

/// Arguments of `shaken pa spc-token`.
#[derive(Args, Debug)]
#[command(group(ArgGroup::new("account").required(true).args(["fingerprint", "account_key"])))]
pub(crate) struct SpcTokenArgs {
    /// The PA folder (its pa.key signs).
    #[arg(long, value_name = "DIR")]
    pa: PathBuf,
    /// The service provider code.
    #[arg(long, value_name = "SPC")]
    spc: String,
    /// The account key's fingerprint, "SHA256 AB:CD:...".
    ///
    /// SHA-256 of the key's DER SubjectPublicKeyInfo, as `shaken sp keygen` prints it.
    #[arg(long, value_name = "FINGERPRINT")]
    fingerprint: Option<String>,
    /// The account key, private or public PEM, whose fingerprint to use.
    #[arg(long, value_name = "KEY.pem")]
    account_key: Option<PathBuf>,
    /// Lifetime in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 3600)]
    ttl: u64,
    /// The PA certificate's URL, put in the token header's x5u.
    #[arg(long, value_name = "URL")]
    x5u: Option<String>,
    /// Write the token to FILE instead of standard output.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Issue time in seconds since the epoch; now by default.
    #[arg(long, value_name = "SECONDS")]
    now: Option<u64>,
}

/// Service provider commands.
#[derive(Subcommand, Debug)]
pub(crate) enum SpCommand {
    /// Generate a P-256 private key (PKCS#8 PEM, mode 0600) and print its fingerprint.
    Keygen {
        /// Output file.
        #[arg(long, value_name = "KEY.pem")]
        out: PathBuf,
        /// Replace an existing key.
        #[arg(long)]
        force: bool,
    },
    /// Write a CSR asking for an STI certificate for an SPC.
    ///
    /// The CSR's subject is C=CC, O=ORG, CN=SHAKEN <SPC>, and it requests a TNAuthList holding
    /// the SPC.
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
    ///
    /// Writes DIR/root.key, DIR/intermediate.key (mode 0600), DIR/root.pem,
    /// DIR/intermediate.pem and the state DIR/ca.json. DIR is created if missing.
    Init {
        /// The CA folder.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Organization name.
        #[arg(long, value_name = "ORG", default_value = "Example STI-CA")]
        name: String,
        /// Country code.
        #[arg(long, value_name = "CC", default_value = "US")]
        country: String,
        /// Where the issuing CA's CRL is published.
        ///
        /// The CRL distribution point of every certificate the CA issues.
        #[arg(long, value_name = "URL")]
        crl_url: String,
        /// Where the root's CRL is published; root.crl beside --crl-url by default.
        #[arg(long, value_name = "URL")]
        root_crl_url: Option<String>,
        /// Replace existing keys and state.
        #[arg(long)]
        force: bool,
        /// Creation time in seconds since the epoch; now by default.
        #[arg(long, value_name = "SECONDS")]
        now: Option<u64>,
    },
    /// Check an SPC token and a CSR and issue an STI certificate chain.
    ///
    /// Each SPC token is used once: its jti is recorded in ca.json, and a second issuance
    /// with it is refused unless --allow-token-reuse is given.
    Issue {
        /// The CA folder.
        #[arg(long = "ca", value_name = "DIR")]
        ca_dir: PathBuf,
        /// The CSR (PEM or DER).
        #[arg(long, value_name = "CSR.pem")]
        csr: PathBuf,
        /// File holding the SPC token.
        #[arg(long, value_name = "TOKEN.jwt")]
        spc_token: PathBuf,
        /// The trusted PA certificate.
        #[arg(long, value_name = "PA.pem")]
        pa_cert: PathBuf,
        /// Validity in days (at most 825).
        #[arg(long, value_name = "N", default_value_t = ca::DEFAULT_EE_DAYS)]
        days: u64,
        /// Output: the end-entity certificate, then the issuing CA (PEM).
        #[arg(long, value_name = "CHAIN.pem")]
        out: PathBuf,
        /// Issue even if this SPC token was used before.
        #[arg(long)]
        allow_token_reuse: bool,
        /// Issuance time in seconds since the epoch; now by default.
        #[arg(long, value_name = "SECONDS")]
        now: Option<u64>,
    },
    /// Record the revocation of an issued certificate.
    ///
    /// Publish it with a new CRL (`shaken ca crl`).
    #[command(group(ArgGroup::new("certificate").required(true).args(["serial", "cert"])))]
    Revoke {
        /// The CA folder.
        #[arg(long = "ca", value_name = "DIR")]
        ca_dir: PathBuf,
        /// Serial number in hex (colons allowed).
        #[arg(long, value_name = "HEX")]
        serial: Option<String>,
        /// The certificate, or a chain starting with it.
        #[arg(long, value_name = "CERT.pem")]
        cert: Option<PathBuf>,
        /// Why, by RFC 5280 name: keyCompromise, superseded, ...
        ///
        /// unspecified, keyCompromise, caCompromise, affiliationChanged, superseded,
        /// cessationOfOperation, certificateHold, privilegeWithdrawn; any case, `-` or `_`
        /// allowed.
        #[arg(long, value_name = "REASON", default_value = "unspecified")]
        reason: String,
        /// Revocation time in seconds since the epoch; now by default.
        #[arg(long, value_name = "SECONDS")]
        now: Option<u64>,
    },
    /// Write the next CRL (DER) of the issuing CA, or of the root with --root.
    ///
    /// Missing folders of FILE are created. The CRL number recorded in ca.json advances only
    /// when the CRL is written.
    Crl {
        /// The CA folder.
        #[arg(long = "ca", value_name = "DIR")]
        ca_dir: PathBuf,
        /// Hours from thisUpdate to nextUpdate.
        #[arg(long, value_name = "HOURS", default_value_t = 168)]
        next_update_hours: u64,
        /// Output file (DER).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// The root's CRL instead of the issuing CA's.
        #[arg(long)]
        root: bool,
        /// thisUpdate in seconds since the epoch; now by default.
        #[arg(long, value_name = "SECONDS")]
        now: Option<u64>,
    },
    /// Check certificates against the STI certificate profile; exit 1 on any error.
    ///
    /// Errors: ATIS-1000080 v004 §6.4.1, and validity at --now (the clock by default).
    /// Warnings: SHAKEN CP v1.3.
    Lint {
        /// PEM file with one or more certificates.
        #[arg(value_name = "CERT.pem")]
        cert: PathBuf,
        /// Check validity at this time (seconds since the epoch) instead of now.
        #[arg(long, value_name = "SECONDS")]
        now: Option<u64>,
    },
}

/// Says which folders a successful command created (those missing before it ran).
fn report_created(missing: &[PathBuf]) {
    for folder in missing {
        eprintln!("created folder {}", folder.display());
    }
}

/// `n thing` or `n things`.
fn count(n: usize, thing: &str) -> String {
    if n == 1 {
        format!("1 {thing}")
    } else {
        format!("{n} {thing}s")
    }
}

fn file_in(dir: &Path, name: &str) -> String {
    dir.join(name).display().to_string()
}

/// Runs a `shaken pa` command.
pub(crate) fn run_pa(command: PaCommand) -> Result<ExitCode> {
    match command {
        PaCommand::Init {
            out,
            name,
            force,
            now,
        } => {
            let missing = missing_folders(&out.join("pa.key"));
            let files = pa::init(&out, &name, now_or(now)?, force, &mut OsRng)?;
            report_created(&missing);
            eprintln!(
                "wrote {} (PA token-signing key, P-256, mode 0600)",
                files.key.display()
            );
            eprintln!(
                "wrote {} (PA certificate, valid until {}; CAs trust it as --pa-cert)",
                files.certificate.display(),
                Timestamp::from(files.not_after)
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
            let signed = pa::sign_spc_token(&args.pa, &request, now_or(args.now)?, &mut OsRng)?;
            let what = format!(
                "SPC token for SPC {}, jti {}, expires {}",
                args.spc,
                signed.jti,
                Timestamp::from(signed.expires)
            );
            match args.out {
                Some(path) => {
                    let missing = missing_folders(&path);
                    keyfile::write_public(&path, format!("{}\n", signed.token).as_bytes())?;
                    report_created(&missing);
                    eprintln!("wrote {} ({what})", path.display());
                }
                None => {
                    println!("{}", signed.token);
                    eprintln!("{what}");
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs a `shaken sp` command.
pub(crate) fn run_sp(command: SpCommand) -> Result<ExitCode> {
    match command {
        SpCommand::Keygen { out, force } => {
            let missing = missing_folders(&out);
            let public = keyfile::generate_private_key(&out, force, &mut OsRng)?;
            report_created(&missing);
            eprintln!(
                "wrote {} (P-256 private key, mode 0600; fingerprint {})",
                out.display(),
                certificate::public_key_fingerprint(&public)?
            );
        }
        SpCommand::Csr {
            key,
            spc,
            org,
            country,
            out,
        } => {
            let missing = missing_folders(&out);
            csr::write_request(&key, &spc, &org, &country, &out)?;
            report_created(&missing);
            eprintln!("wrote {} (CSR for SPC {spc})", out.display());
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
            let missing = missing_folders(&out.join("ca.json"));
            let ca = CaDir::init(&out, &options, now_or(now)?, &mut OsRng)?;
            let (_, root_until) = ca::validity_of(ca.root_der())?;
            let (_, intermediate_until) = ca::validity_of(ca.intermediate_der())?;
            report_created(&missing);
            eprintln!(
                "wrote {} (root CA key, mode 0600)",
                file_in(&out, "root.key")
            );
            eprintln!(
                "wrote {} (issuing CA key, mode 0600)",
                file_in(&out, "intermediate.key")
            );
            eprintln!(
                "wrote {} (root CA certificate, valid until {}; verifiers trust it)",
                file_in(&out, "root.pem"),
                Timestamp::from(root_until)
            );
            eprintln!(
                "wrote {} (issuing CA certificate, valid until {}; its CRL: {})",
                file_in(&out, "intermediate.pem"),
                Timestamp::from(intermediate_until),
                ca.state.root_crl_url
            );
            eprintln!(
                "wrote {} (CA state; the CRL of the certificates it issues: {})",
                ca.state_path().display(),
                ca.state.crl_url
            );
        }
        CaCommand::Issue {
            ca_dir,
            csr,
            spc_token,
            pa_cert,
            days,
            out,
            allow_token_reuse,
            now,
        } => {
            let files = IssueFiles {
                csr: &csr,
                spc_token: &spc_token,
                pa_certificate: &pa_cert,
                out: &out,
            };
            let options = IssueOptions {
                days,
                allow_token_reuse,
            };
            let missing = missing_folders(&out);
            let mut ca = CaDir::open(&ca_dir)?;
            let issued = ca.issue_files(&files, options, now_or(now)?, &mut OsRng)?;
            let record = &issued.record;
            report_created(&missing);
            if let Some(used) = &issued.reused {
                eprintln!(
                    "warning: SPC token jti {} was already used at {} for serial {}; \
                     issued again (--allow-token-reuse)",
                    used.jti,
                    Timestamp::from(used.used_at),
                    used.serial
                );
            }
            eprintln!(
                "wrote {} (certificate chain for SPC {}: serial {}, valid {} to {}, \
                 then the issuing CA)",
                out.display(),
                record.spc,
                record.serial,
                Timestamp::from(record.not_before),
                Timestamp::from(record.not_after)
            );
            eprintln!(
                "recorded in {}: serial {} issued to SPC {}, SPC token jti {} used",
                ca.state_path().display(),
                record.serial,
                record.spc,
                issued.jti
            );
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
            let record = ca.revoke(&serial, reason, now_or(now)?)?;
            eprintln!(
                "recorded in {}: serial {} revoked ({}) at {}; publish a new CRL with \
                 `shaken ca crl`",
                ca.state_path().display(),
                record.serial,
                record.reason,
                Timestamp::from(record.revoked_at)
            );
        }
        CaCommand::Crl {
            ca_dir,
            next_update_hours,
            out,
            root,
            now,
        } => {
            let missing = missing_folders(&out);
            let mut ca = CaDir::open(&ca_dir)?;
            let crl = ca.write_crl(&out, next_update_hours, now_or(now)?, root)?;
            report_created(&missing);
            eprintln!(
                "wrote {} (CRL number {} of the {}, {}, thisUpdate {}, nextUpdate {})",
                out.display(),
                crl.number,
                if crl.root { "root CA" } else { "issuing CA" },
                count(crl.entries, "revoked certificate"),
                Timestamp::from(crl.this_update),
                Timestamp::from(crl.next_update)
            );
            eprintln!(
                "recorded in {}: CRL number {} of the {}",
                ca.state_path().display(),
                crl.number,
                if crl.root { "root CA" } else { "issuing CA" }
            );
        }
        CaCommand::Lint { cert, now } => {
            let now = now_or(now)?;
            let reports = lint::lint_pem(&read(&cert, "certificate")?, Some(now))
                .with_context(|| format!("{}", cert.display()))?;
            eprintln!("validity checked at {}", Timestamp::from(now));
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
