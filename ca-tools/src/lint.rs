//! The STI certificate linter: the profile of `pki::profile` (ATIS-1000080 v004 §6.4.1 rules as
//! errors, SHAKEN CP v1.3 subject rules as warnings), reported for every certificate of a file.
//! The verifier applies the same check to the end entities it is given.

use std::fmt;

pub use pki::profile::{lint, Finding, Profile, Rule, Severity};

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
pub fn lint_pem(
    pem: &[u8],
    now: Option<u64>,
) -> Result<Vec<CertificateReport>, passport::cert::CertificateError> {
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
