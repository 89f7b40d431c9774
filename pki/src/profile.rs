//! The STI certificate profile: ATIS-1000080 v004 §6.4.1 rules as errors, the stricter SHAKEN
//! Certificate Policy v1.3 subject rules as warnings. One check serves both readers: the CA
//! tools' linter reports every finding; the verifier refuses an end entity with any error
//! (SIP 437) and ignores warnings.
//!
//! Profiles: a self-issued CA certificate is a root (no policy or CRL distribution point
//! required); another CA certificate is an intermediate; anything else is an end entity, which
//! also needs a TNAuthList holding one SPC and `CN=SHAKEN <SPC>`. Findings are ranked: errors
//! before warnings, each in the order of [`Rule`].

use std::fmt;

use x509_parser::extensions::{DistributionPointName, GeneralName, ParsedExtension, X509Extension};
use x509_parser::prelude::{FromDer, X509Certificate, X509Version};
use x509_parser::public_key::PublicKey;

use crate::oid::{self, ObjectIdentifier};

/// Every rule of the profile.
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

/// How serious a finding is (errors rank first).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
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

/// Checks one DER certificate. `now`, when given, also checks validity. The profile is `None`
/// when the certificate does not parse (the one finding is then [`Rule::Parse`]).
pub fn lint(der: &[u8], now: Option<u64>) -> (Option<Profile>, Vec<Finding>) {
    match X509Certificate::from_der(der) {
        Ok(([], cert)) => {
            let (profile, findings) = check(&cert, now);
            (Some(profile), findings)
        }
        Ok(_) => (
            None,
            vec![Finding {
                rule: Rule::Parse,
                message: "trailing bytes after the certificate".into(),
            }],
        ),
        Err(e) => (
            None,
            vec![Finding {
                rule: Rule::Parse,
                message: format!("does not parse: {e}"),
            }],
        ),
    }
}

/// The profile of a parsed certificate.
pub fn profile_of(cert: &X509Certificate<'_>) -> Profile {
    let is_ca = matches!(cert.basic_constraints(), Ok(Some(bc)) if bc.value.ca);
    match (is_ca, cert.subject() == cert.issuer()) {
        (true, true) => Profile::Root,
        (true, false) => Profile::Intermediate,
        (false, _) => Profile::EndEntity,
    }
}

/// The errors of an end entity's profile check (validity aside: path building checks it at
/// its own reference time). Empty when the certificate may sign PASSporTs.
pub fn end_entity_errors(cert: &X509Certificate<'_>) -> Vec<Finding> {
    let (_, findings) = check(cert, None);
    findings
        .into_iter()
        .filter(|f| f.severity() == Severity::Error)
        .collect()
}

/// Checks a parsed certificate against its profile; findings ranked (errors first).
pub fn check(cert: &X509Certificate<'_>, now: Option<u64>) -> (Profile, Vec<Finding>) {
    let mut findings = Vec::new();
    let mut add = |rule: Rule, message: String| findings.push(Finding { rule, message });
    let profile = profile_of(cert);

    if cert.version() != X509Version::V3 {
        add(
            Rule::Version,
            format!("version is {}, must be v3", cert.version().0 + 1),
        );
    }
    check_serial(cert.raw_serial(), &mut add);
    let outer = &cert.signature_algorithm.algorithm;
    let inner = &cert.tbs_certificate.signature.algorithm;
    if !oid::is(outer, &oid::ECDSA_WITH_SHA256) || !oid::is(inner, &oid::ECDSA_WITH_SHA256) {
        add(
            Rule::SignatureAlgorithm,
            format!(
                "signature algorithm is {outer} (TBS {inner}), must be ecdsa-with-SHA256 ({})",
                oid::ECDSA_WITH_SHA256
            ),
        );
    }
    check_public_key(cert, &mut add);
    let subject_has = |wanted: &ObjectIdentifier| {
        cert.subject()
            .iter_attributes()
            .any(|a| oid::is(a.attr_type(), wanted))
    };
    for (wanted, label) in [
        (oid::COUNTRY, "C"),
        (oid::ORGANIZATION, "O"),
        (oid::COMMON_NAME, "CN"),
    ] {
        if !subject_has(&wanted) {
            add(Rule::SubjectFields, format!("subject has no {label}"));
        }
    }
    let allowed = [
        oid::COUNTRY,
        oid::ORGANIZATION,
        oid::COMMON_NAME,
        oid::SERIAL_NUMBER,
    ];
    let extra: Vec<String> = cert
        .subject()
        .iter_attributes()
        .map(|a| a.attr_type())
        .filter(|found| !allowed.iter().any(|a| oid::is(found, a)))
        .map(|found| found.to_id_string())
        .collect();
    if !extra.is_empty() {
        add(
            Rule::Cp13SubjectAttributes,
            format!("subject holds attributes other than CN, C, O, serialNumber: {extra:?}"),
        );
    }
    if profile == Profile::EndEntity && !subject_has(&oid::SERIAL_NUMBER) {
        add(
            Rule::Cp13SubjectSerialNumber,
            "subject has no serialNumber attribute".into(),
        );
    }

    check_extensions(cert, profile, &mut add);

    if let Some(now) = now {
        let validity = cert.validity();
        let (start, end) = (
            validity.not_before.timestamp(),
            validity.not_after.timestamp(),
        );
        let now = i64::try_from(now).unwrap_or(i64::MAX);
        let shown = |t: i64| crate::time::Timestamp(t);
        if now < start {
            add(
                Rule::Validity,
                format!("not valid before {} (now {})", shown(start), shown(now)),
            );
        } else if now > end {
            add(
                Rule::Validity,
                format!("expired at {} (now {})", shown(end), shown(now)),
            );
        }
    }
    findings.sort_by_key(|f| (f.severity(), f.rule));
    (profile, findings)
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
    let algorithm = &spki.algorithm.algorithm;
    let curve = spki
        .algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.as_oid().ok());
    let point_ok = matches!(spki.parsed(), Ok(PublicKey::EC(point)) if point.data().len() == 65);
    let curve_ok = curve.as_ref().is_some_and(|c| oid::is(c, &oid::SECP256R1));
    if !oid::is(algorithm, &oid::EC_PUBLIC_KEY) || !curve_ok || !point_ok {
        add(
            Rule::PublicKey,
            format!(
                "key is {algorithm} on {}, must be an uncompressed id-ecPublicKey ({}) P-256 ({}) point",
                curve.map_or_else(|| "no curve".into(), |c| c.to_id_string()),
                oid::EC_PUBLIC_KEY,
                oid::SECP256R1
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
    for (i, extension) in extensions.iter().enumerate() {
        let id = &extension.oid;
        if extensions.iter().take(i).any(|e| e.oid == *id) {
            add(
                Rule::Extensions,
                format!("extension {id} appears more than once"),
            );
        }
        if !oid::STI_EXTENSIONS
            .iter()
            .any(|allowed| oid::is(id, allowed))
        {
            add(
                Rule::Extensions,
                format!("extension {id} is not allowed in an STI certificate"),
            );
        }
    }
    let find = |wanted: &ObjectIdentifier| extensions.iter().find(|e| oid::is(&e.oid, wanted));

    match find(&oid::BASIC_CONSTRAINTS) {
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

    match find(&oid::KEY_USAGE) {
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

    if find(&oid::SUBJECT_KEY_IDENTIFIER).is_none() {
        add(
            Rule::SubjectKeyIdentifier,
            "subject key identifier is missing".into(),
        );
    }
    if find(&oid::AUTHORITY_KEY_IDENTIFIER).is_none() {
        add(
            Rule::AuthorityKeyIdentifier,
            "authority key identifier is missing".into(),
        );
    }

    if profile != Profile::Root {
        check_policies(find(&oid::CERTIFICATE_POLICIES), add);
        check_crl_dp(find(&oid::CRL_DISTRIBUTION_POINTS), add);
    }

    if profile == Profile::EndEntity {
        match find(&oid::TN_AUTH_LIST) {
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

fn check_policies(extension: Option<&X509Extension<'_>>, add: &mut impl FnMut(Rule, String)) {
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
    let ids: Vec<_> = policies.iter().map(|p| &p.policy_id).collect();
    match ids.as_slice() {
        [one] if oid::is(one, &oid::SHAKEN_CP_1_3) => {}
        [one] if oid::is(one, &oid::SHAKEN_CP_1_1) => add(
            Rule::Cp13PolicyVersion,
            format!(
                "policy is CP v1.1 ({}); current is CP v1.3 ({})",
                oid::SHAKEN_CP_1_1,
                oid::SHAKEN_CP_1_3
            ),
        ),
        _ => add(
            Rule::CertificatePolicies,
            format!(
                "policies are {:?}, must be exactly [\"{}\"]",
                ids.iter().map(|i| i.to_id_string()).collect::<Vec<_>>(),
                oid::SHAKEN_CP_1_3
            ),
        ),
    }
    if e.critical {
        add(
            Rule::CertificatePolicies,
            "certificate policies should not be critical".into(),
        );
    }
}

fn check_crl_dp(extension: Option<&X509Extension<'_>>, add: &mut impl FnMut(Rule, String)) {
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

#[cfg(test)]
mod tests {
    use super::*;

    const PRODUCTION: &[u8] =
        include_bytes!("../../passport/tests/data/production-shaken-709J.pem");

    fn production() -> Vec<u8> {
        passport::cert::chain_from_pem(PRODUCTION)
            .unwrap_or_default()
            .swap_remove(0)
    }

    #[test]
    fn production_certificate_passes_inside_its_validity() {
        let (profile, findings) = lint(&production(), Some(1_660_000_000));
        assert_eq!(profile, Some(Profile::EndEntity));
        let errors: Vec<_> = findings
            .iter()
            .filter(|f| f.severity() == Severity::Error)
            .collect();
        assert!(errors.is_empty(), "{errors:?}");
        // Its subject has OU=SHAKEN and no serialNumber: CP v1.3 warnings.
        let rules: Vec<Rule> = findings.iter().map(|f| f.rule).collect();
        assert_eq!(
            rules,
            [Rule::Cp13SubjectAttributes, Rule::Cp13SubjectSerialNumber]
        );
        let der = production();
        let (_, cert) = X509Certificate::from_der(&der).unwrap_or_else(|_| unreachable!());
        assert!(end_entity_errors(&cert).is_empty());
    }

    #[test]
    fn production_certificate_is_expired_in_2026() {
        let (_, findings) = lint(&production(), Some(1_795_000_000));
        assert!(findings.iter().any(|f| f.rule == Rule::Validity
            && f.message
                == "expired at 2022-10-03T04:26:15Z (1664771175) \
                        (now 2026-11-18T11:06:40Z (1795000000))"));
        assert_eq!(
            findings.first().map(Finding::severity),
            Some(Severity::Error),
            "ranked"
        );
    }

    #[test]
    fn garbage_is_a_parse_finding() {
        let (profile, findings) = lint(b"\x30\x03\x02\x01\x01", None);
        assert_eq!(profile, None);
        assert_eq!(findings.first().map(|f| f.rule), Some(Rule::Parse));
    }
}
