//! `shaken lists sign | verify | show`: the regulator's signed list of marketing firms and
//! blacklisted numbers (the `lists` crate). Exit status: 0 valid, 1 a readable list that
//! fails (signature, content, a changed byte, expired), 2 unreadable input.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::Subcommand;
use lists::document::{Format, ListDocument, NumberEntry};
use lists::jws::{self, RegulatorCert};
use lists::ListError;
use passport::SigningKey;
use pki::time::Timestamp;

use super::{now_or, read};

/// Regulator list commands.
#[derive(Subcommand, Debug)]
pub(crate) enum ListsCommand {
    /// Sign a list (TOML or JSON) into a compact JWS.
    Sign {
        /// The regulator's private key (PEM, PKCS#8 or SEC1, P-256).
        #[arg(long, value_name = "KEY.pem")]
        key: PathBuf,
        /// The regulator's certificate (PEM) for that key.
        #[arg(long, value_name = "CERT.pem")]
        cert: PathBuf,
        /// The list: a .toml or .json file.
        #[arg(long = "in", value_name = "LIST.toml")]
        input: PathBuf,
        /// Where to write the signed list.
        #[arg(long, value_name = "LIST.jws")]
        out: PathBuf,
    },
    /// Verify a signed list: exit 0 valid, 1 refused (and why), 2 unreadable.
    Verify {
        /// The regulator's certificate (PEM).
        #[arg(long, value_name = "CERT.pem")]
        cert: PathBuf,
        /// The signed list.
        #[arg(value_name = "LIST.jws")]
        file: PathBuf,
        /// Reference time, seconds since the epoch (default: now).
        #[arg(long, value_name = "SECONDS")]
        now: Option<u64>,
    },
    /// Show a list (signed, TOML or JSON) for a person to read.
    Show {
        /// Verify the signed list with this certificate first.
        #[arg(long, value_name = "CERT.pem")]
        cert: Option<PathBuf>,
        /// The list: .jws, .toml or .json.
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// Reference time for "expired", seconds since the epoch (default: now).
        #[arg(long, value_name = "SECONDS")]
        now: Option<u64>,
    },
}

/// Runs a `shaken lists` command.
pub(crate) fn run(command: ListsCommand) -> Result<ExitCode> {
    match command {
        ListsCommand::Sign {
            key,
            cert,
            input,
            out,
        } => sign(&key, &cert, &input, &out),
        ListsCommand::Verify { cert, file, now } => verify(&cert, &file, now),
        ListsCommand::Show { cert, file, now } => show(cert.as_deref(), &file, now),
    }
}

fn regulator_cert(path: &Path) -> Result<RegulatorCert> {
    RegulatorCert::from_pem(&read(path, "certificate")?)
        .with_context(|| format!("--cert {}", path.display()))
}

fn sign(key: &Path, cert: &Path, input: &Path, out: &Path) -> Result<ExitCode> {
    let signing_key = SigningKey::from_pem(&read(key, "key")?)
        .with_context(|| format!("--key {}", key.display()))?;
    let regulator = regulator_cert(cert)?;
    let document = ListDocument::parse_file(input, &read(input, "list")?)
        .with_context(|| format!("{}", input.display()))?;
    let token = jws::sign(&document, &signing_key, &regulator)
        .with_context(|| format!("--key {} with --cert {}", key.display(), cert.display()))?;
    std::fs::write(out, format!("{token}\n"))
        .with_context(|| format!("cannot write {}", out.display()))?;
    println!("wrote {}: {}", out.display(), summary(&document));
    Ok(ExitCode::SUCCESS)
}

fn verify(cert: &Path, file: &Path, now: Option<u64>) -> Result<ExitCode> {
    let regulator = regulator_cert(cert)?;
    let bytes = read(file, "signed list")?;
    let now = now_or(now)?;
    match lists::store::check(&bytes, &regulator, now) {
        Ok(verified) => {
            println!("{}: valid: {}", file.display(), summary(&verified.document));
            Ok(ExitCode::SUCCESS)
        }
        Err(error) => {
            println!("{}: refused: {}", file.display(), refusal(&error));
            Ok(ExitCode::from(1))
        }
    }
}

/// Why a list is refused, with times as a person reads them.
fn refusal(error: &ListError) -> String {
    match error {
        ListError::Expired {
            version,
            expires_at,
            now,
        } => format!(
            "version {version} expired at {}; it is now {}",
            Timestamp::from(*expires_at),
            Timestamp::from(*now)
        ),
        ListError::NotYetValid {
            version,
            issued_at,
            now,
            skew,
        } => format!(
            "version {version} is issued at {}, more than {skew} s after now, {}",
            Timestamp::from(*issued_at),
            Timestamp::from(*now)
        ),
        other => other.to_string(),
    }
}

fn show(cert: Option<&Path>, file: &Path, now: Option<u64>) -> Result<ExitCode> {
    let bytes = read(file, "list")?;
    let now = now_or(now)?;
    let signed = file
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("jws"))
        || bytes.starts_with(b"eyJ");
    let (document, origin) = if signed {
        match cert {
            Some(cert) => {
                let regulator = regulator_cert(cert)?;
                match jws::verify(&bytes, &regulator) {
                    Ok(verified) => (
                        verified.document,
                        format!("signature valid for {}", cert.display()),
                    ),
                    Err(error) => {
                        println!("{}: refused: {error}", file.display());
                        return Ok(ExitCode::from(1));
                    }
                }
            }
            None => match jws::decode_unverified(&bytes) {
                Ok(document) => (
                    document,
                    "signature NOT checked (give --cert to check it)".to_owned(),
                ),
                Err(error) => {
                    println!("{}: refused: {error}", file.display());
                    return Ok(ExitCode::from(1));
                }
            },
        }
    } else {
        if cert.is_some() {
            bail!(
                "--cert: {} is not a signed list (.jws); nothing to verify",
                file.display()
            );
        }
        let format = match Format::of_file(file, &bytes) {
            Format::Json => "JSON",
            Format::Toml => "TOML",
        };
        let document = match ListDocument::parse_file(file, &bytes) {
            Ok(document) => document,
            Err(error) => {
                println!("{}: refused: {error}", file.display());
                return Ok(ExitCode::from(1));
            }
        };
        (document, format!("unsigned {format} list"))
    };
    print!(
        "{}",
        describe(&document, &file.display().to_string(), &origin, now)
    );
    Ok(ExitCode::SUCCESS)
}

/// `1 firm`, `2 firms`.
fn count(n: u64, thing: &str) -> String {
    if n == 1 {
        format!("1 {thing}")
    } else {
        format!("{n} {thing}s")
    }
}

/// One line: version, firms, numbers, expiry.
fn summary(document: &ListDocument) -> String {
    format!(
        "version {}, {}, {}, {}, expires {}",
        document.version,
        count(document.firms.len() as u64, "firm"),
        count(document.firm_number_count(), "firm number"),
        count(document.blacklisted_number_count(), "blacklisted number"),
        Timestamp::from(document.expires_at)
    )
}

fn entries(list: &[NumberEntry]) -> String {
    if list.is_empty() {
        return "none".to_owned();
    }
    list.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The whole list for a person.
fn describe(document: &ListDocument, file: &str, origin: &str, now: u64) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{file}: {origin}");
    let _ = writeln!(out, "version {}", document.version);
    let _ = writeln!(out, "issued  {}", Timestamp::from(document.issued_at));
    let state = if document.expires_at <= now {
        "  EXPIRED"
    } else {
        ""
    };
    let _ = writeln!(
        out,
        "expires {}{state}",
        Timestamp::from(document.expires_at)
    );
    let _ = writeln!(out, "{}:", count(document.firms.len() as u64, "firm"));
    for firm in &document.firms {
        let _ = writeln!(out, "  {}  {}", firm.id, firm.name);
        let _ = writeln!(
            out,
            "    status {}, hourly quota {}",
            firm.status, firm.hourly_quota
        );
        let reasons = if firm.reasons.is_empty() {
            "none".to_owned()
        } else {
            firm.reasons.join("; ")
        };
        let _ = writeln!(out, "    reasons: {reasons}");
        let _ = writeln!(
            out,
            "    {}: {}",
            count(firm.number_count(), "number"),
            entries(&firm.numbers)
        );
    }
    let _ = writeln!(
        out,
        "{}: {}",
        count(document.blacklisted_number_count(), "blacklisted number"),
        entries(&document.blacklisted_numbers)
    );
    out
}
