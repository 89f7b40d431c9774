//! `shaken passport sign | verify | decode`: offline PASSporT operations.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use passport::claims::{Attestation, Claims, Dest, OrigId, Party};
use passport::inspect;
use passport::token::{Passport, TokenSigner};
use passport::verify::{self, VerifyOptions};
use passport::{
    cert, CallReason, Header, IdentityHeader, NumberingPlan, RichCallData, SigningKey, Tn,
};

use super::{answer, now_or, read};

/// Offline PASSporT operations.
#[derive(Subcommand, Debug)]
pub(crate) enum PassportCommand {
    /// Sign a SHAKEN (or Rich Call Data) PASSporT and print the Identity header value.
    Sign(SignArgs),
    /// Verify an Identity header value with a certificate and print a verdict as JSON.
    Verify(VerifyArgs),
    /// Print the header and claims of a PASSporT as JSON, without verifying it.
    Decode(DecodeArgs),
}

/// Arguments of `shaken passport sign`.
#[derive(Args, Debug)]
pub(crate) struct SignArgs {
    /// Private key, PEM: PKCS#8 (BEGIN PRIVATE KEY) or SEC1 (BEGIN EC PRIVATE KEY).
    #[arg(long, value_name = "KEY.pem")]
    key: PathBuf,
    /// URL of the certificate chain, put in the token's x5u and the header's info.
    #[arg(long, value_name = "URL")]
    x5u: String,
    /// Calling number, in any usual form (+1 215-555-1212, tel:+12155551212, ...).
    #[arg(long, value_name = "TN")]
    orig: String,
    /// Called number; repeat for several.
    #[arg(long, value_name = "TN", required = true)]
    dest: Vec<String>,
    /// Attestation level.
    #[arg(long, value_name = "A|B|C")]
    attest: Attestation,
    /// Origination identifier (a UUID); a random one by default.
    #[arg(long, value_name = "UUID")]
    origid: Option<OrigId>,
    /// Issued-at time in seconds since the epoch; now by default.
    #[arg(long, value_name = "SECONDS")]
    iat: Option<u64>,
    /// Numbering plan for national-form numbers (NANP or CN); none by default.
    #[arg(long, value_name = "PLAN")]
    country: Option<NumberingPlan>,
    /// Rich Call Data display name (the rcd claim's nam, RFC 9795).
    #[arg(long, value_name = "NAME")]
    rcd_nam: Option<String>,
    /// Call reason (the crn claim, RFC 9795).
    #[arg(long, value_name = "REASON")]
    crn: Option<String>,
    /// PASSporT type: shaken (rcd inside it), or a separate rcd PASSporT (RFC 9795).
    ///
    /// With rcd, --rcd-nam is required and --attest and --origid are not put in the token.
    #[arg(long, value_name = "PPT", default_value = "shaken")]
    ppt: PptArg,
}

/// The PASSporT types `shaken passport sign` makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum PptArg {
    /// A SHAKEN PASSporT.
    Shaken,
    /// A Rich Call Data PASSporT.
    Rcd,
}

/// Where the Identity header value comes from.
#[derive(Args, Debug)]
#[group(required = true, multiple = false)]
pub(crate) struct IdentitySource {
    /// The Identity header value (token;info=<...>;alg=ES256;ppt=shaken).
    #[arg(long, value_name = "VALUE")]
    identity: Option<String>,
    /// A file holding the Identity header value.
    ///
    /// An `Identity:` prefix is allowed.
    #[arg(long, value_name = "FILE")]
    identity_file: Option<PathBuf>,
}

/// Arguments of `shaken passport verify`.
#[derive(Args, Debug)]
pub(crate) struct VerifyArgs {
    #[command(flatten)]
    source: IdentitySource,
    /// Certificate chain (PEM) whose first key checks the signature.
    #[arg(long, value_name = "CHAIN.pem")]
    cert: PathBuf,
    /// Expected calling number: the token's orig must match it.
    #[arg(long, value_name = "TN")]
    from: Option<String>,
    /// Expected called number, in the token's dest; repeat for several.
    #[arg(long, value_name = "TN")]
    to: Vec<String>,
    /// When the call arrived, seconds since the epoch; now by default.
    #[arg(long, value_name = "SECONDS")]
    now: Option<u64>,
    /// Oldest acceptable iat, in seconds before --now.
    ///
    /// The freshness window.
    #[arg(long, value_name = "SECONDS", default_value_t = verify::DEFAULT_MAX_AGE)]
    max_age: u64,
    /// Newest acceptable iat, in seconds after --now.
    ///
    /// The allowance for clocks running ahead.
    #[arg(long, value_name = "SECONDS", default_value_t = verify::DEFAULT_MAX_FUTURE)]
    max_future: u64,
    /// Numbering plan for national-form --from and --to numbers (NANP or CN).
    #[arg(long, value_name = "PLAN")]
    country: Option<NumberingPlan>,
}

/// Arguments of `shaken passport decode`.
#[derive(Args, Debug)]
pub(crate) struct DecodeArgs {
    #[command(flatten)]
    source: IdentitySource,
}

/// Runs one `shaken passport` command.
pub(crate) fn run(command: PassportCommand) -> Result<ExitCode> {
    match command {
        PassportCommand::Sign(args) => sign(args),
        PassportCommand::Verify(args) => verify(args),
        PassportCommand::Decode(args) => decode(args),
    }
}

fn canonical(input: &str, plan: Option<NumberingPlan>, flag: &str) -> Result<Tn> {
    Tn::canonicalize(input, plan).with_context(|| format!("{flag} {input:?}"))
}

fn sign(args: SignArgs) -> Result<ExitCode> {
    if !(args.x5u.starts_with("https://") || args.x5u.starts_with("http://")) {
        bail!("--x5u {:?} is not an http(s) URL", args.x5u);
    }
    if args.x5u.starts_with("http://") {
        eprintln!("shaken: warning: --x5u is plain http; verifiers outside a lab refuse it");
    }
    let key = SigningKey::from_pem(&read(&args.key, "key")?)
        .with_context(|| format!("--key {}", args.key.display()))?;
    let orig = canonical(&args.orig, args.country, "--orig")?;
    let dest = args
        .dest
        .iter()
        .map(|d| canonical(d, args.country, "--dest").map(Tn::into_string))
        .collect::<Result<Vec<_>>>()?;
    let dest = Dest::tns(dest).context("--dest is required")?;
    let origid = match args.origid {
        Some(origid) => origid,
        None => uuid::Uuid::new_v4().to_string().parse()?,
    };
    let iat = now_or(args.iat)?;
    let crn = args
        .crn
        .as_deref()
        .map(CallReason::new)
        .transpose()
        .context("--crn")?;
    let rcd = args
        .rcd_nam
        .as_deref()
        .map(RichCallData::new)
        .transpose()
        .context("--rcd-nam")?;
    if rcd.is_none() && crn.is_some() {
        bail!("--crn needs --rcd-nam: a call reason is Rich Call Data");
    }
    let orig = Party::Tn(orig.into_string());
    if args.ppt == PptArg::Rcd {
        let rcd = rcd.context("--ppt rcd needs --rcd-nam")?;
        let claims = Claims::rcd_passport(iat, orig, dest, rcd, crn);
        let token = passport::token::sign(&Header::rcd(args.x5u.as_str()), &claims, &key)?;
        println!(
            "{}",
            IdentityHeader::format(&token, &args.x5u, Some(passport::rcd::PPT_RCD))
        );
        return Ok(ExitCode::SUCCESS);
    }
    let mut claims = Claims::shaken(iat, orig, dest, args.attest, origid);
    claims.rcd = rcd;
    claims.crn = crn;
    let signer = TokenSigner::new(key, args.x5u);
    println!("{}", signer.identity_header(&claims)?);
    Ok(ExitCode::SUCCESS)
}

/// The Identity header value from the flag or the file, without an `Identity:` prefix.
fn identity_value(source: &IdentitySource) -> Result<String> {
    let text = match (&source.identity, &source.identity_file) {
        (Some(value), _) => value.clone(),
        (None, Some(path)) => String::from_utf8(read(path, "identity file")?)
            .with_context(|| format!("{} is not UTF-8 text", path.display()))?,
        (None, None) => bail!("give --identity or --identity-file"),
    };
    Ok(inspect::header_value(&text).to_owned())
}

fn verify(args: VerifyArgs) -> Result<ExitCode> {
    let value = identity_value(&args.source)?;
    let key = cert::verifying_key_from_pem_chain(&read(&args.cert, "certificate")?)
        .with_context(|| format!("--cert {}", args.cert.display()))?;
    let from = args
        .from
        .as_deref()
        .map(|f| canonical(f, args.country, "--from"))
        .transpose()?;
    let to = args
        .to
        .iter()
        .map(|t| canonical(t, args.country, "--to"))
        .collect::<Result<Vec<_>>>()?;
    let options = VerifyOptions {
        now: now_or(args.now)?,
        max_age: args.max_age,
        max_future: args.max_future,
    };

    let (verdict, passed) = inspect::offline_verdict(&value, &key, &options, from.as_ref(), &to);
    println!("{verdict}");
    Ok(answer(passed))
}

fn decode(args: DecodeArgs) -> Result<ExitCode> {
    let value = identity_value(&args.source)?;
    let token = value.split(';').next().unwrap_or_default().trim();
    let passport = match Passport::decode(token) {
        Ok(passport) => passport,
        Err(error) => {
            eprintln!("shaken: cannot decode the PASSporT: {error}");
            return Ok(ExitCode::from(1));
        }
    };
    let output = inspect::decoded(&passport)?;
    println!("{}", serde_json::to_string_pretty(&output)?);
    Ok(ExitCode::SUCCESS)
}
