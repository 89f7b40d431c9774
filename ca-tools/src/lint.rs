//! The STI certificate linter: ATIS-1000080 v004 §6.4.1 rules as errors, the stricter SHAKEN
//! Certificate Policy v1.3 subject rules as warnings.
//!
//! Profiles: a self-issued CA certificate is a root (no policy or CRL distribution point
//! required); another CA certificate is an intermediate; anything else is an end entity, which
//! also needs a TNAuthList holding one SPC and `CN=SHAKEN <SPC>`.

use std::fmt;

use x509_parser::extensions::{DistributionPointName, GeneralName, ParsedExtension};
use x509_parser::prelude::{FromDer, X509Certificate, X509Version};
use x509_parser::public_key::PublicKey;

/// Every rule the linter checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Rule {
    /// The certificate parses as DER X.509.
    Parse,
    /// Version is v3.
    Version,
    /// Serial is positive, at least 64 bits and at most 20 bytes.
    SerialNumber,
    /// Signature algorithm is ecdsa-with-SHA256.
    SignatureAlgorithm,
    /// The key is id-ecPublicKey on P-256.
    PublicKey,
    /// Subject holds C, O and CN.
    SubjectFields,
    /// End-entity CN is `SHAKEN <SPC>`.
    CommonName,
    /// Basic constraints present, critical, CA flag matching the profile.
    BasicConstraints,
    /// Key usage present, critical; EE digitalSignature only, CA keyCertSign.
    KeyUsage,
    /// Subject key identifier present.
    SubjectKeyIdentifier,
    /// Authority key identifier present.
    AuthorityKeyIdentifier,
    /// Exactly one policy, the SHAKEN CP OID (intermediate and EE).
    CertificatePolicies,
    /// Exactly one CRL distribution point with a URI (intermediate and EE).
    CrlDistributionPoints,
    /// TNAuthList present with exactly one SPC (EE).
    TnAuthList,
    /// No extension outside the allowed set, none twice.
    Extensions,
    /// Valid at the given time.
    Validity,
    /// CP v1.3: subject holds only CN, C, O and serialNumber.
    Cp13SubjectAttributes,
    /// CP v1.3: subject serialNumber included along with the CN.
    Cp13SubjectSerialNumber,
    /// CP v1.3 uses policy 1.3; 1.1 is older.
    Cp13PolicyVersion,
}

impl Rule {
    /// The rule's stable identifier, as printed.
    pub fn id(self) -> &'static str {
        match self {
            Self::Parse => "parse",
            Self::Version => "atis-1000080.version",
            Self::SerialNumber => "atis-1000080.serial-number",
            Self::SignatureAlgorithm => "atis-1000080.signature-algorithm",
            Self::PublicKey => "atis-1000080.public-key",
            Self::SubjectFields => "atis-1000080.subject-fields",
            Self::CommonName => "atis-1000080.common-name",
            Self::BasicConstraints => "atis-1000080.basic-constraints",
            Self::KeyUsage => "atis-1000080.key-usage",
            Self::SubjectKeyIdentifier => "atis-1000080.subject-key-identifier",
            Self::AuthorityKeyIdentifier => "atis-1000080.authority-key-identifier",
            Self::CertificatePolicies => "atis-1000080.certificate-policies",
            Self::CrlDistributionPoints => "atis-1000080.crl-distribution-points",
            Self::TnAuthList => "atis-1000080.tn-auth-list",
            Self::Extensions => "atis-1000080.extensions",
            Self::Validity => "atis-1000080.validity",
            Self::Cp13SubjectAttributes => "shaken-cp-1.3.subject-attributes",
            Self::Cp13SubjectSerialNumber => "shaken-cp-1.3.subject-serial-number",
            Self::Cp13PolicyVersion => "shaken-cp-1.3.policy-version",
        }
    }

    /// Errors fail the lint; warnings are reported only.
    pub fn severity(self) -> Severity {
        match self {
            Self::Cp13SubjectAttributes
            | Self::Cp13SubjectSerialNumber
            | Self::Cp13PolicyVersion => Severity::Warning,
            _ => Severity::Error,
        }
    }
}

/// How serious a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    /// A rule of ATIS-1000080 v004 §6.4.1 is broken.
    Error,
    /// A SHAKEN CP v1.3 recommendation is not followed.
    Warning,
}

/// One violated rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// Which rule.
    pub rule: Rule,
    /// What exactly is wrong.
    pub message: String,
}

impl Finding {
    /// Error or warning.
    pub fn severity(&self) -> Severity {
        self.rule.severity()
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let severity = match self.severity() {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, "{severity}: {}: {}", self.rule.id(), self.message)
    }
}

/// Which profile a certificate was linted against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Profile {
    /// Self-issued CA.
    Root,
    /// Other CA.
    Intermediate,
    /// End entity (the signer's certificate).
    EndEntity,
}

const OID_ECDSA_SHA256: &str = "1.2.840.10045.4.3.2";
const OID_EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";
const OID_P256: &str = "1.2.840.10045.3.1.7";
const OID_CP_1_3: &str = "2.16.840.1.114569.1.1.3";
const OID_CP_1_1: &str = "2.16.840.1.114569.1.1.1";
const OID_TN_AUTH_LIST: &str = "1.3.6.1.5.5.7.1.26";
const OID_COUNTRY: &str = "2.5.4.6";
const OID_ORGANIZATION: &str = "2.5.4.10";
const OID_COMMON_NAME: &str = "2.5.4.3";
const OID_SERIAL_NUMBER: &str = "2.5.4.5";
/// SKI, AKI, basic constraints, key usage, TNAuthList, CRL DP, certificate policies.
const ALLOWED_EXTENSIONS: [&str; 7] = [
    "2.5.29.14",
    "2.5.29.35",
    "2.5.29.19",
    "2.5.29.15",
    OID_TN_AUTH_LIST,
    "2.5.29.31",
    "2.5.29.32",
];

/// Lints one DER certificate. `now`, when given, also checks validity.
pub fn lint(der: &[u8], now: Option<u64>) -> (Option<Profile>, Vec<Finding>) {
    let mut findings = Vec::new();
    let mut add = |rule: Rule, message: String| findings.push(Finding { rule, message });
    let cert = match X509Certificate::from_der(der) {
        Ok(([], cert)) => cert,
        Ok(_) => {
            add(Rule::Parse, "trailing bytes after the certificate".into());
            return (None, findings);
        }
        Err(e) => {
            add(Rule::Parse, format!("does not parse: {e}"));
            return (None, findings);
        }
    };
    let is_ca = matches!(cert.basic_constraints(), Ok(Some(bc)) if bc.value.ca);
    let profile = match (is_ca, cert.subject() == cert.issuer()) {
        (true, true) => Profile::Root,
        (true, false) => Profile::Intermediate,
        (false, _) => Profile::EndEntity,
    };

    if cert.version() != X509Version::V3 {
        add(
            Rule::Version,
            format!("version is {}, must be v3", cert.version().0 + 1),
        );
    }
    check_serial(cert.raw_serial(), &mut add);
    let outer = cert.signature_algorithm.algorithm.to_id_string();
    let inner = cert.tbs_certificate.signature.algorithm.to_id_string();
    if outer != OID_ECDSA_SHA256 || inner != OID_ECDSA_SHA256 {
        add(
            Rule::SignatureAlgorithm,
            format!("signature algorithm is {outer} (TBS {inner}), must be ecdsa-with-SHA256"),
        );
    }
    check_public_key(&cert, &mut add);
    let subject_oids: Vec<String> = cert
        .subject()
        .iter_attributes()
        .map(|a| a.attr_type().to_id_string())
        .collect();
    for (oid, label) in [
        (OID_COUNTRY, "C"),
        (OID_ORGANIZATION, "O"),
        (OID_COMMON_NAME, "CN"),
    ] {
        if !subject_oids.iter().any(|o| o == oid) {
            add(Rule::SubjectFields, format!("subject has no {label}"));
        }
    }
    let extra: Vec<&String> = subject_oids
        .iter()
        .filter(|o| {
            ![
                OID_COUNTRY,
                OID_ORGANIZATION,
                OID_COMMON_NAME,
                OID_SERIAL_NUMBER,
            ]
            .contains(&o.as_str())
        })
        .collect();
    if !extra.is_empty() {
        add(
            Rule::Cp13SubjectAttributes,
            format!("subject holds attributes other than CN, C, O, serialNumber: {extra:?}"),
        );
    }
    if profile == Profile::EndEntity && !subject_oids.iter().any(|o| o == OID_SERIAL_NUMBER) {
        add(
            Rule::Cp13SubjectSerialNumber,
            "subject has no serialNumber attribute".into(),
        );
    }

    check_extensions(&cert, profile, &mut add);

    if let Some(now) = now {
        let validity = cert.validity();
        let (start, end) = (
            validity.not_before.timestamp(),
            validity.not_after.timestamp(),
        );
        let now = i64::try_from(now).unwrap_or(i64::MAX);
        if now < start {
            add(
                Rule::Validity,
                format!("not valid before {} (now {now})", validity.not_before),
            );
        } else if now > end {
            add(
                Rule::Validity,
                format!("expired at {} (now {now})", validity.not_after),
            );
        }
    }
    (Some(profile), findings)
}

fn check_serial(serial: &[u8], add: &mut impl FnMut(Rule, String)) {
    let significant = serial.iter().skip_while(|b| **b == 0).count();
    match serial.first() {
        None => add(Rule::SerialNumber, "serial number is empty".into()),
        Some(b) if b & 0x80 != 0 => add(Rule::SerialNumber, "serial number is negative".into()),
        _ if significant == 0 => add(Rule::SerialNumber, "serial number is zero".into()),
        _ if significant < 8 => add(
            Rule::SerialNumber,
            format!("serial number has {} significant bytes, fewer than the 64 bits ATIS-1000080 requires", significant),
        ),
        _ if serial.len() > 20 => add(Rule::SerialNumber, format!("serial number is {} bytes, more than 20", serial.len())),
        _ => {}
    }
}

fn check_public_key(cert: &X509Certificate<'_>, add: &mut impl FnMut(Rule, String)) {
    let spki = cert.public_key();
    let algorithm = spki.algorithm.algorithm.to_id_string();
    let curve = spki
        .algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.as_oid().ok())
        .map(|o| o.to_id_string());
    let point_ok = matches!(spki.parsed(), Ok(PublicKey::EC(point)) if point.data().len() == 65);
    if algorithm != OID_EC_PUBLIC_KEY || curve.as_deref() != Some(OID_P256) || !point_ok {
        add(
            Rule::PublicKey,
            format!(
                "key is {algorithm} on {}, must be an uncompressed id-ecPublicKey P-256 point",
                curve.unwrap_or_else(|| "no curve".into())
            ),
        );
    }
}

fn check_extensions(
    cert: &X509Certificate<'_>,
    profile: Profile,
    add: &mut impl FnMut(Rule, String),
) {
    let extensions = cert.extensions();
    let mut seen: Vec<String> = Vec::new();
    for extension in extensions {
        let oid = extension.oid.to_id_string();
        if seen.contains(&oid) {
            add(
                Rule::Extensions,
                format!("extension {oid} appears more than once"),
            );
        }
        if !ALLOWED_EXTENSIONS.contains(&oid.as_str()) {
            add(
                Rule::Extensions,
                format!("extension {oid} is not allowed in an STI certificate"),
            );
        }
        seen.push(oid);
    }
    let find = |oid: &str| extensions.iter().find(|e| e.oid.to_id_string() == oid);

    match find("2.5.29.19") {
        None => add(
            Rule::BasicConstraints,
            "basic constraints extension is missing".into(),
        ),
        Some(e) => {
            if !e.critical {
                add(
                    Rule::BasicConstraints,
                    "basic constraints is not critical".into(),
                );
            }
            match e.parsed_extension() {
                ParsedExtension::BasicConstraints(bc) => {
                    if profile == Profile::EndEntity && bc.ca {
                        add(Rule::BasicConstraints, "end entity has CA true".into());
                    }
                }
                _ => add(
                    Rule::BasicConstraints,
                    "basic constraints does not parse".into(),
                ),
            }
        }
    }

    match find("2.5.29.15") {
        None => add(Rule::KeyUsage, "key usage extension is missing".into()),
        Some(e) => {
            if !e.critical {
                add(Rule::KeyUsage, "key usage is not critical".into());
            }
            match e.parsed_extension() {
                ParsedExtension::KeyUsage(ku) => match profile {
                    Profile::EndEntity if ku.flags != 1 => add(
                        Rule::KeyUsage,
                        format!("end entity key usage is {ku}, must be digitalSignature only"),
                    ),
                    Profile::Root | Profile::Intermediate if !ku.key_cert_sign() => add(
                        Rule::KeyUsage,
                        format!("CA key usage is {ku}, must include keyCertSign"),
                    ),
                    _ => {}
                },
                _ => add(Rule::KeyUsage, "key usage does not parse".into()),
            }
        }
    }

    if find("2.5.29.14").is_none() {
        add(
            Rule::SubjectKeyIdentifier,
            "subject key identifier is missing".into(),
        );
    }
    if find("2.5.29.35").is_none() {
        add(
            Rule::AuthorityKeyIdentifier,
            "authority key identifier is missing".into(),
        );
    }

    if profile != Profile::Root {
        check_policies(find("2.5.29.32"), add);
        check_crl_dp(find("2.5.29.31"), add);
    }

    if profile == Profile::EndEntity {
        match find(OID_TN_AUTH_LIST) {
            None => add(Rule::TnAuthList, "TNAuthList extension is missing".into()),
            Some(e) => match passport::TnAuthList::from_der(e.value) {
                Err(err) => add(
                    Rule::TnAuthList,
                    format!("TNAuthList does not decode: {err}"),
                ),
                Ok(list) => match list.single_spc() {
                    None => add(
                        Rule::TnAuthList,
                        format!(
                            "TNAuthList must hold exactly one SPC, holds {:?}",
                            list.entries()
                        ),
                    ),
                    Some(spc) => {
                        let expected = format!("SHAKEN {spc}");
                        let cns: Vec<String> = cert
                            .subject()
                            .iter_common_name()
                            .filter_map(|cn| cn.as_str().ok().map(str::to_owned))
                            .collect();
                        if cns != [expected.clone()] {
                            add(
                                Rule::CommonName,
                                format!("subject CN is {cns:?}, must be {expected:?}"),
                            );
                        }
                    }
                },
            },
        }
    }
}

fn check_policies(
    extension: Option<&x509_parser::extensions::X509Extension<'_>>,
    add: &mut impl FnMut(Rule, String),
) {
    let Some(e) = extension else {
        add(
            Rule::CertificatePolicies,
            "certificate policies extension is missing".into(),
        );
        return;
    };
    let ParsedExtension::CertificatePolicies(policies) = e.parsed_extension() else {
        add(
            Rule::CertificatePolicies,
            "certificate policies does not parse".into(),
        );
        return;
    };
    let oids: Vec<String> = policies
        .iter()
        .map(|p| p.policy_id.to_id_string())
        .collect();
    match oids.as_slice() {
        [one] if one == OID_CP_1_3 => {}
        [one] if one == OID_CP_1_1 => add(
            Rule::Cp13PolicyVersion,
            "policy is CP v1.1 (2.16.840.1.114569.1.1.1); current is 1.1.3".into(),
        ),
        _ => add(
            Rule::CertificatePolicies,
            format!("policies are {oids:?}, must be exactly [{OID_CP_1_3:?}]"),
        ),
    }
    if e.critical {
        add(
            Rule::CertificatePolicies,
            "certificate policies should not be critical".into(),
        );
    }
}

fn check_crl_dp(
    extension: Option<&x509_parser::extensions::X509Extension<'_>>,
    add: &mut impl FnMut(Rule, String),
) {
    let Some(e) = extension else {
        add(
            Rule::CrlDistributionPoints,
            "CRL distribution points extension is missing".into(),
        );
        return;
    };
    let ParsedExtension::CRLDistributionPoints(points) = e.parsed_extension() else {
        add(
            Rule::CrlDistributionPoints,
            "CRL distribution points does not parse".into(),
        );
        return;
    };
    let points: Vec<_> = points.iter().collect();
    let [point] = points.as_slice() else {
        add(
            Rule::CrlDistributionPoints,
            format!("{} distribution points, must be exactly one", points.len()),
        );
        return;
    };
    let has_uri = matches!(&point.distribution_point, Some(DistributionPointName::FullName(names))
        if names.iter().any(|n| matches!(n, GeneralName::URI(_))));
    if !has_uri {
        add(
            Rule::CrlDistributionPoints,
            "the distribution point has no URI".into(),
        );
    }
}

/// The lint result of one certificate in a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertificateReport {
    /// Position in the file, from 0.
    pub index: usize,
    /// The profile it was checked against (`None` if it did not parse).
    pub profile: Option<Profile>,
    /// What is wrong.
    pub findings: Vec<Finding>,
}

impl CertificateReport {
    /// How many of the findings are errors.
    pub fn errors(&self) -> usize {
        self.findings
            .iter()
            .filter(|f| f.severity() == Severity::Error)
            .count()
    }
}

/// `certificate N (Profile): K finding(s)`, then each finding on its own indented line.
impl fmt::Display for CertificateReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let profile = self
            .profile
            .map_or_else(|| "unparsed".to_owned(), |p| format!("{p:?}"));
        write!(
            f,
            "certificate {} ({profile}): {} finding(s)",
            self.index,
            self.findings.len()
        )?;
        for finding in &self.findings {
            write!(f, "\n  {finding}")?;
        }
        Ok(())
    }
}

/// Lints every certificate of a PEM file.
pub fn lint_pem(pem: &[u8], now: Option<u64>) -> Result<Vec<CertificateReport>, passport::Error> {
    let chain = passport::cert::chain_from_pem(pem)?;
    Ok(chain
        .iter()
        .enumerate()
        .map(|(index, der)| {
            let (profile, findings) = lint(der, now);
            CertificateReport {
                index,
                profile,
                findings,
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    const PRODUCTION: &[u8] =
        include_bytes!("../../passport/tests/data/production-shaken-709J.pem");

    #[test]
    fn production_certificate_passes_inside_its_validity() {
        let results = lint_pem(PRODUCTION, Some(1_660_000_000)).unwrap();
        let [CertificateReport {
            index: 0,
            profile: Some(Profile::EndEntity),
            findings,
        }] = results.as_slice()
        else {
            panic!("{results:?}")
        };
        let errors: Vec<_> = findings
            .iter()
            .filter(|f| f.severity() == Severity::Error)
            .collect();
        assert!(errors.is_empty(), "{errors:?}");
        // Its subject has OU=SHAKEN and no serialNumber: CP v1.3 warnings.
        assert!(findings
            .iter()
            .any(|f| f.rule == Rule::Cp13SubjectAttributes));
        assert!(findings
            .iter()
            .any(|f| f.rule == Rule::Cp13SubjectSerialNumber));
    }

    #[test]
    fn production_certificate_is_expired_in_2026() {
        let results = lint_pem(PRODUCTION, Some(1_795_000_000)).unwrap();
        assert!(results[0]
            .findings
            .iter()
            .any(|f| f.rule == Rule::Validity && f.message.contains("expired")));
    }

    #[test]
    fn garbage_is_a_parse_finding() {
        let (profile, findings) = lint(b"\x30\x03\x02\x01\x01", None);
        assert_eq!(profile, None);
        assert_eq!(findings[0].rule, Rule::Parse);
    }
}
