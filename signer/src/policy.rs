//! The attestation policy of `GOVERNANCE.md` §1: who gets which attestation level, and who
//! gets none. A pure function of the request, the registry's answer and the configuration.
//!
//! | case | decision |
//! |---|---|
//! | a called number is an emergency number | always sign: the level the registry allows (as below, the requested level capped), C at worst, even with the registry down |
//! | registry unavailable (not emergency) | refuse (`POL5031`), or sign C if configured |
//! | request C (gateway) with a domestic caller ID | refuse (`POL4104`), or sign C if configured |
//! | request C otherwise | sign C |
//! | request A/B, number not registered | refuse (`POL4101`) |
//! | request A/B, number suspended | refuse (`POL4102`) |
//! | request A/B, customer not identity-verified | refuse (`POL4103`) |
//! | request A/B, the request identifies the calling customer and the number is not theirs | sign B (A lowered) |
//! | request A/B otherwise (the number's owner is taken to be the caller) | sign as requested |

use passport::{Attestation, Tn};
use serde::Deserialize;

use crate::registry::{NumberRecord, NumberStatus};

/// What to do with a gateway (C) request whose caller ID is from the carrier's own country.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum GatewayDomesticRule {
    /// Refuse it: a domestic caller ID should not arrive through an international gateway.
    #[default]
    Refuse,
    /// Sign it C like any gateway call.
    SignC,
}

/// What to do with non-emergency calls while the registry cannot be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum OutageRule {
    /// Refuse with `POL5031` (503), so the SBC can retry or route elsewhere.
    #[default]
    Refuse,
    /// Sign C: the call goes out, attested only as gateway.
    SignC,
}

/// The policy's settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyConfig {
    /// Country code of the carrier's own country (`1`, `86`), for the gateway rule.
    pub home_country_code: Option<String>,
    /// Emergency numbers (canonical short codes).
    pub emergency_numbers: Vec<String>,
    /// The gateway rule.
    pub gateway_domestic: GatewayDomesticRule,
    /// The outage rule.
    pub registry_outage: OutageRule,
}

/// Emergency numbers served by default: China 110, 119, 120, 122, 112; NANP 911; EU 112.
pub const DEFAULT_EMERGENCY_NUMBERS: [&str; 6] = ["110", "112", "119", "120", "122", "911"];

impl Default for PolicyConfig {
    fn default() -> Self {
        Self {
            home_country_code: None,
            emergency_numbers: DEFAULT_EMERGENCY_NUMBERS
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
            gateway_domestic: GatewayDomesticRule::default(),
            registry_outage: OutageRule::default(),
        }
    }
}

/// Why a call is not signed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Refusal {
    /// The calling number is not in the registry.
    Unregistered,
    /// The calling number is suspended.
    Suspended,
    /// The number's customer has not completed the real-name check.
    NotVerified,
    /// A domestic caller ID arrived through a gateway.
    DomesticViaGateway,
    /// The registry cannot be read.
    RegistryUnavailable,
    /// Refused by the marketing rules ([`crate::marketing`]).
    Marketing(crate::marketing::MarketingRefusal),
}

/// Why a call is signed at the level it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Basis {
    /// The registry vouches for the number and the caller.
    Registered,
    /// The caller is verified but the number is not theirs: A lowered to B.
    NotCallersNumber,
    /// A gateway call.
    Gateway,
    /// An emergency call signed whatever the registry says.
    Emergency,
    /// Signed C because the registry is down and the outage rule says so.
    Outage,
}

/// The policy's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Sign with this level.
    Sign(Attestation, Basis),
    /// Do not sign.
    Refuse(Refusal),
}

/// What the policy needs to know about a request.
#[derive(Clone, Copy, Debug)]
pub struct CallFacts<'a> {
    /// The level asked for.
    pub attest: Attestation,
    /// The calling number (canonical).
    pub orig: &'a Tn,
    /// The called numbers (canonical).
    pub dest: &'a [Tn],
    /// The calling customer, when the request identifies one.
    pub customer: Option<&'a str>,
}

impl PolicyConfig {
    /// Whether any called number is an emergency number.
    pub fn is_emergency(&self, dest: &[Tn]) -> bool {
        dest.iter()
            .any(|d| self.emergency_numbers.iter().any(|e| e == d.as_str()))
    }

    /// Whether a number belongs to the carrier's own country.
    pub fn is_domestic(&self, tn: &Tn) -> bool {
        self.home_country_code
            .as_deref()
            .is_some_and(|cc| tn.as_str().starts_with(cc) && tn.as_str().len() > 6)
    }

    /// Whether `decide` needs the registry's answer for this request.
    pub fn needs_lookup(&self, facts: &CallFacts<'_>) -> bool {
        facts.attest != Attestation::C || self.is_emergency(facts.dest)
    }

    /// Decides. `lookup` is the registry's answer for `facts.orig` (`Err(())` when the
    /// registry could not be read); it is ignored for plain gateway calls.
    pub fn decide(
        &self,
        facts: &CallFacts<'_>,
        lookup: Result<Option<&NumberRecord>, ()>,
    ) -> Decision {
        let registry_level =
            |record: Option<&NumberRecord>| -> Result<(Attestation, Basis), Refusal> {
                let record = record.ok_or(Refusal::Unregistered)?;
                if record.status == NumberStatus::Suspended {
                    return Err(Refusal::Suspended);
                }
                if !record.customer.verified {
                    return Err(Refusal::NotVerified);
                }
                match facts.customer {
                    Some(customer)
                        if customer != record.customer.id && facts.attest == Attestation::A =>
                    {
                        Ok((Attestation::B, Basis::NotCallersNumber))
                    }
                    _ => Ok((facts.attest, Basis::Registered)),
                }
            };

        if self.is_emergency(facts.dest) {
            if facts.attest == Attestation::C {
                return Decision::Sign(Attestation::C, Basis::Emergency);
            }
            return match lookup.ok().map(registry_level) {
                Some(Ok((level, _))) => Decision::Sign(level, Basis::Emergency),
                _ => Decision::Sign(Attestation::C, Basis::Emergency),
            };
        }
        if facts.attest == Attestation::C {
            if self.is_domestic(facts.orig) && self.gateway_domestic == GatewayDomesticRule::Refuse
            {
                return Decision::Refuse(Refusal::DomesticViaGateway);
            }
            return Decision::Sign(Attestation::C, Basis::Gateway);
        }
        match lookup {
            Err(()) => match self.registry_outage {
                OutageRule::Refuse => Decision::Refuse(Refusal::RegistryUnavailable),
                OutageRule::SignC => Decision::Sign(Attestation::C, Basis::Outage),
            },
            Ok(record) => match registry_level(record) {
                Ok((level, basis)) => Decision::Sign(level, basis),
                Err(refusal) => Decision::Refuse(refusal),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Customer;

    fn tn(s: &str) -> Tn {
        Tn::canonicalize(s, None).unwrap()
    }

    fn record(customer: &str, verified: bool, status: NumberStatus) -> NumberRecord {
        NumberRecord {
            tn: "12155551212".into(),
            customer: Customer {
                id: customer.into(),
                name: customer.into(),
                verified,
            },
            status,
            via_range: false,
        }
    }

    fn decide(
        config: &PolicyConfig,
        attest: Attestation,
        dest: &str,
        customer: Option<&str>,
        lookup: Result<Option<&NumberRecord>, ()>,
    ) -> Decision {
        let orig = tn("12155551212");
        let dest = [tn(dest)];
        config.decide(
            &CallFacts {
                attest,
                orig: &orig,
                dest: &dest,
                customer,
            },
            lookup,
        )
    }

    #[test]
    fn every_branch() {
        use Attestation::*;
        let config = PolicyConfig {
            home_country_code: Some("1".into()),
            ..PolicyConfig::default()
        };
        let good = record("c1", true, NumberStatus::Active);
        let suspended = record("c1", true, NumberStatus::Suspended);
        let unverified = record("c1", false, NumberStatus::Active);
        let to = "12125551213";
        assert_eq!(
            decide(&config, A, to, None, Ok(Some(&good))),
            Decision::Sign(A, Basis::Registered)
        );
        assert_eq!(
            decide(&config, A, to, Some("c1"), Ok(Some(&good))),
            Decision::Sign(A, Basis::Registered)
        );
        assert_eq!(
            decide(&config, A, to, Some("pbx"), Ok(Some(&good))),
            Decision::Sign(B, Basis::NotCallersNumber)
        );
        assert_eq!(
            decide(&config, B, to, Some("pbx"), Ok(Some(&good))),
            Decision::Sign(B, Basis::Registered)
        );
        assert_eq!(
            decide(&config, B, to, None, Ok(Some(&good))),
            Decision::Sign(B, Basis::Registered)
        );
        assert_eq!(
            decide(&config, A, to, None, Ok(None)),
            Decision::Refuse(Refusal::Unregistered)
        );
        assert_eq!(
            decide(&config, A, to, None, Ok(Some(&suspended))),
            Decision::Refuse(Refusal::Suspended)
        );
        assert_eq!(
            decide(&config, B, to, None, Ok(Some(&unverified))),
            Decision::Refuse(Refusal::NotVerified)
        );
        assert_eq!(
            decide(&config, A, to, None, Err(())),
            Decision::Refuse(Refusal::RegistryUnavailable)
        );
        // Gateway: a domestic caller ID is refused by default; a foreign one is signed C.
        assert_eq!(
            decide(&config, C, to, None, Ok(None)),
            Decision::Refuse(Refusal::DomesticViaGateway)
        );
        let foreign = tn("442071234567");
        let dest = [tn(to)];
        let facts = CallFacts {
            attest: C,
            orig: &foreign,
            dest: &dest,
            customer: None,
        };
        assert_eq!(
            config.decide(&facts, Err(())),
            Decision::Sign(C, Basis::Gateway)
        );
        assert!(!config.needs_lookup(&facts));
        let lenient = PolicyConfig {
            gateway_domestic: GatewayDomesticRule::SignC,
            registry_outage: OutageRule::SignC,
            ..config.clone()
        };
        assert_eq!(
            decide(&lenient, C, to, None, Ok(None)),
            Decision::Sign(C, Basis::Gateway)
        );
        assert_eq!(
            decide(&lenient, A, to, None, Err(())),
            Decision::Sign(C, Basis::Outage)
        );
        // Emergency: always signed, at the registry's level, C at worst.
        assert_eq!(
            decide(&config, A, "911", None, Ok(Some(&good))),
            Decision::Sign(A, Basis::Emergency)
        );
        assert_eq!(
            decide(&config, A, "911", None, Ok(None)),
            Decision::Sign(C, Basis::Emergency)
        );
        assert_eq!(
            decide(&config, A, "911", None, Ok(Some(&suspended))),
            Decision::Sign(C, Basis::Emergency)
        );
        assert_eq!(
            decide(&config, A, "911", None, Err(())),
            Decision::Sign(C, Basis::Emergency)
        );
        assert_eq!(
            decide(&config, C, "110", None, Ok(None)),
            Decision::Sign(C, Basis::Emergency)
        );
        assert_eq!(
            decide(&config, A, "112", Some("pbx"), Ok(Some(&good))),
            Decision::Sign(B, Basis::Emergency)
        );
    }
}
